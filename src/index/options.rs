//! What a writer is given and reports: [`BuildOptions`], [`NewPost`] (a post to index,
//! nothing of a parser's), each post's [`PostOutcome`] and the counts of [`BuildStats`].

use crate::fingerprint::FingerprintParams;
use crate::input::RawPost;

/// What to do when the index directory already holds an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Refuse with an error (the default).
    #[default]
    Refuse,
    /// Build a new generation and replace the old one atomically when done.
    Replace,
    /// Add new segments to the existing index (created if missing); its fingerprint
    /// parameters are kept and `BuildOptions::params` is ignored.
    Append,
}

/// What to do with a post whose id is already live in the index (when appending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnExistingId {
    /// Report the post as a duplicate and skip it (the default).
    #[default]
    Skip,
    /// Mark the old post deleted and index the new one.
    Replace,
}

/// Options of a bulk build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Fingerprint parameters, stored in the manifest.
    pub params: FingerprintParams,
    /// Memory budget in bytes for buffered posts and the flush that writes them.
    pub memory_budget: usize,
    /// Store post texts (zstd-compressed) so hits can show them.
    pub store_text: bool,
    /// What to do if the directory already holds an index.
    pub existing: Existing,
    /// What to do with a post whose id the index already holds.
    pub on_existing_id: OnExistingId,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            params: FingerprintParams::default(),
            memory_budget: 2 << 30,
            store_text: true,
            existing: Existing::Refuse,
            on_existing_id: OnExistingId::Skip,
        }
    }
}

/// What happened to one post handed to [`IndexBuilder::add`](crate::index::IndexBuilder::add).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    /// Indexed.
    Indexed,
    /// Not indexed: no token left after normalization (nothing to match on).
    Empty,
    /// Not indexed: its id was already indexed.
    DuplicateId,
    /// Indexed, and the post that had its id before is now deleted
    /// ([`OnExistingId::Replace`]).
    Replaced,
}

/// Counts of a build, so far or in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BuildStats {
    /// Posts handed to the builder.
    pub posts: u64,
    /// Posts indexed.
    pub indexed: u64,
    /// Unique texts indexed (summed over segments).
    pub unique_texts: u64,
    /// Posts skipped because their text had no token after normalization.
    pub empty: u64,
    /// Posts skipped because their id was already indexed.
    pub duplicate_ids: u64,
    /// Posts that superseded an indexed post with the same id (counted in `indexed` too).
    pub replaced: u64,
    /// Posts deleted by id.
    pub deleted: u64,
    /// Segments written.
    pub segments: u64,
    /// Bytes of index files written.
    pub bytes: u64,
}

/// Where a build's time went: wall-clock seconds per stage (`textreuse build --verbose`).
///
/// Reading, parsing and fingerprinting a batch overlap the insertion of the one before it
/// (on its own thread), and reading a batch overlaps parsing and fingerprinting the one
/// before it (on another), so the stages add up to more than the build's wall time. Segment
/// writing happens inside insertion (when the memory budget is full) and at the end; it is
/// counted in its own stages, not in `insert`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Reading input records (decompression included).
    pub read: f64,
    /// Parsing records into posts (in parallel).
    pub parse: f64,
    /// Normalizing, shingling and MinHashing (in parallel).
    pub fingerprint: f64,
    /// Inserting fingerprinted posts into the in-memory buffer (duplicate checks included).
    pub insert: f64,
    /// Segment writing: building the band tables and their content order, writing their
    /// directories and spilling their entries.
    pub bands: f64,
    /// Segment writing: the band entries copied into the band file, renumbered to the
    /// content order, then the signature, posts, id and text files, written at once (wall
    /// time: the five stages below overlap inside it).
    pub files: f64,
    /// Segment writing: the band entries copied in (before the signatures).
    pub band_entries: f64,
    /// Segment writing: the signature file.
    pub sigs: f64,
    /// Segment writing: the post metadata file.
    pub posts: f64,
    /// Segment writing: sorting ids and writing the id map.
    pub ids: f64,
    /// Segment writing: waiting for the text dictionary, compressing and writing texts.
    pub texts: f64,
    /// Publishing the generation (manifest, `CURRENT`, cleanup).
    pub publish: f64,
}

impl StageTimes {
    /// Seconds spent writing segments: the band tables, then the other files (written at
    /// once, so their own stages add up to more than `files`).
    pub fn segment_writing(&self) -> f64 {
        self.bands + self.files
    }
}

/// A post to index: borrowed fields, nothing of a parser's (no line numbers). The input
/// readers' `RawPost` converts into one (`NewPost::from(&raw)`), and
/// [`IndexWriter::add`](crate::index::IndexWriter::add) takes either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewPost<'a> {
    /// The post's external id (unique in the index).
    pub id: &'a str,
    /// The post's text, unnormalized.
    pub text: &'a str,
    /// The posting account (`""` if unknown).
    pub account: &'a str,
    /// The platform (`""` if unknown).
    pub platform: &'a str,
    /// The post's time in unix seconds, if known.
    pub ts: Option<i64>,
}

impl<'a> From<&'a RawPost> for NewPost<'a> {
    fn from(p: &'a RawPost) -> NewPost<'a> {
        NewPost {
            id: &p.id,
            text: &p.text,
            account: &p.account,
            platform: &p.platform,
            ts: p.ts,
        }
    }
}

impl<'a> From<&NewPost<'a>> for NewPost<'a> {
    fn from(p: &NewPost<'a>) -> NewPost<'a> {
        *p
    }
}
