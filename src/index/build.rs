//! Building an index in bulk: [`IndexBuilder`], the bulk path of [`IndexWriter`] (one
//! build, one commit), its options, and [`NewPost`], a post to index.
//!
//! The builder's memory is bounded: buffered posts are written out as a segment whenever
//! they reach their share of the budget, and the segments become visible together, through
//! one new manifest, at [`IndexBuilder::finish`].

use std::path::Path;

use super::txn::Create;
use super::writer::IndexWriter;
use crate::error::{Error, Result};
use crate::fingerprint::{FingerprintParams, Fingerprinter};
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

/// What happened to one post handed to [`IndexBuilder::add`].
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

/// A post to index: borrowed fields, nothing of a parser's (no line numbers). The input
/// readers' `RawPost` converts into one (`NewPost::from(&raw)`), and
/// [`IndexWriter::add`] takes either.
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

/// Builds an index from posts, with bounded memory: an [`IndexWriter`] used for one bulk
/// build ([`create`](Self::create), [`add`](Self::add)..., [`finish`](Self::finish)).
#[derive(Debug)]
pub struct IndexBuilder {
    writer: IndexWriter,
}

impl IndexBuilder {
    /// Starts a build into `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::IndexExists`] if `dir` already holds an index and `opts.existing` is
    /// [`Existing::Refuse`]; [`Error::NotEmpty`] if it holds other files and no index
    /// (unless [`Existing::Replace`]); [`Error::Damaged`] if it holds index files but no
    /// `CURRENT`; [`Error::Locked`] if another writer holds the lock; invalid parameters;
    /// I/O errors.
    pub fn create(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<IndexBuilder> {
        let dir = dir.as_ref();
        let existing = opts.existing;
        let (create, replace) = match opts.existing {
            Existing::Refuse | Existing::Append => (Create::IfEmpty, false),
            Existing::Replace => (Create::Beside, true),
        };
        if opts.existing == Existing::Refuse {
            // Checked before anything is created or opened.
            Fingerprinter::new(opts.params)?;
            if super::manifest::Manifest::load_current(dir)?.is_some() {
                return Err(Error::IndexExists {
                    path: dir.to_path_buf(),
                });
            }
        }
        let writer = IndexWriter::begin(dir, opts, create, replace)?;
        if existing == Existing::Refuse && writer.manifest().is_some() {
            // Published between the check above and the lock.
            return Err(Error::IndexExists {
                path: dir.to_path_buf(),
            });
        }
        Ok(IndexBuilder { writer })
    }

    /// The fingerprinter posts are fingerprinted with.
    pub fn fingerprinter(&self) -> &Fingerprinter {
        self.writer.fingerprinter()
    }

    /// Counts so far.
    pub fn stats(&self) -> &BuildStats {
        self.writer.stats()
    }

    /// Adds posts, in order; fingerprints them in parallel. Returns each post's outcome.
    /// Takes [`NewPost`]s or the input readers' `RawPost`s.
    pub fn add<'p, P>(&mut self, posts: &'p [P]) -> Result<Vec<PostOutcome>>
    where
        &'p P: Into<NewPost<'p>>,
    {
        self.writer.add(posts)
    }

    /// Deletes the live posts with these ids; returns the ids no live post has.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<Vec<String>> {
        self.writer.delete(ids)
    }

    /// The writer underneath (for the ingest job's overlapped insertion).
    pub(crate) fn writer_mut(&mut self) -> &mut IndexWriter {
        &mut self.writer
    }

    /// Flushes what is buffered and publishes the index: one new manifest names every segment
    /// written (replacing the previous generation's, with [`Existing::Replace`]).
    pub fn finish(mut self) -> Result<BuildStats> {
        self.writer.commit()
    }
}
