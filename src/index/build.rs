//! Bulk index building with bounded memory.
//!
//! [`IndexBuilder`] takes posts in input order. Posts are fingerprinted in parallel (rayon)
//! and inserted in order, so the output does not depend on the thread count. Exact
//! duplicates (equal normalized text) collapse into one *content*. When the buffered segment
//! reaches its share of the memory budget it is *flushed*: posts are grouped by content,
//! each band's entries are bucketed by a counting sort on the top bits of their keys and
//! written sequentially, and the segment's files are fsynced and renamed into place. The
//! segments become visible together, through one new manifest, at [`IndexBuilder::finish`].
//!
//! Duplicate ids are detected exactly: within the buffered segment by a hash map (confirmed
//! on the stored id), across flushed segments by a Bloom filter confirmed on their `ids.fst`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::format::{sync_dir, EnvelopeWriter};
use super::manifest::{segment_dir_name, FileEntry, Manifest, SegmentEntry};
use super::segment::{
    split_key, BANDS_MAGIC, CODEC_ZSTD_DICT, DELETED_MAGIC, MAX_DIR_BITS, NO_TS, POSTS_MAGIC,
    SIGS_MAGIC, TEXT_MAGIC,
};
use super::WriterLock;
use crate::error::{Error, Result};
use crate::fingerprint::{FingerprintParams, Fingerprinter, Scratch};
use crate::input::RawPost;
use crate::minhash::to_bbit;

/// Posts per compressed text block: a hit's text costs one block's decompression, so each
/// post is its own zstd frame, compressed with a dictionary trained on the segment's texts
/// (on the dev corpus: 157 B a post with offsets and dictionary, against 174 B for blocks of
/// 8 posts without one, and 2.0 instead of 10 µs to decompress a hit's text). Readers take
/// the value from the file.
pub(crate) const TEXT_BLOCK_POSTS: u32 = 1;
/// Largest text dictionary, bytes.
const TEXT_DICT_BYTES: usize = 64 << 10;
/// Most sample blocks a text dictionary is trained on (training takes about a second).
const TEXT_DICT_SAMPLES: usize = 10_000;
/// Fewest posts for which a segment trains a text dictionary.
const TEXT_DICT_MIN_POSTS: usize = 1_000;
/// zstd level for stored texts.
pub(crate) const TEXT_ZSTD_LEVEL: i32 = 3;
/// Band tables a flush builds at once (in parallel). A constant, not the thread count: the
/// memory a flush needs decides where segments end, and that must not depend on threads.
const BAND_TABLES_AT_ONCE: usize = 4;
/// Average entries per band bucket the directory aims for.
const BUCKET_TARGET: u64 = 32;

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

/// A hasher for keys that already are uniformly distributed hashes (content and id hashes):
/// it keeps the low 64 bits instead of hashing again.
#[derive(Default, Clone, Copy)]
pub(crate) struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; fold them in.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

pub(crate) type PreHashedMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<PreHashed>>;

/// A post fingerprinted in parallel, waiting for in-order insertion.
struct Prepared {
    content_hash: u128,
    empty: bool,
}

/// The fingerprints of a batch of posts, waiting for [`IndexBuilder::add_prepared`]: per
/// chunk of posts, their outcomes and flat 8-bit signature and band-key buffers.
pub(crate) struct PreparedBatch {
    chunks: Vec<(Vec<Prepared>, Vec<u8>, Vec<u64>)>,
}

/// Fingerprints `posts` in parallel (rayon) for [`IndexBuilder::add_prepared`].
pub(crate) fn prepare(fp: &Fingerprinter, posts: &[RawPost]) -> PreparedBatch {
    let k = fp.params().num_perm as usize;
    let bands = fp.params().lsh.bands as usize;
    let chunks = posts
        .par_chunks(256)
        .map_init(
            || (Scratch::new(), Vec::new()),
            |(scratch, keys), chunk| {
                let mut prepared = Vec::with_capacity(chunk.len());
                let mut sigs = Vec::with_capacity(chunk.len() * k);
                let mut all_keys = Vec::with_capacity(chunk.len() * bands);
                for post in chunk {
                    match fp.fingerprint_with(&post.text, scratch) {
                        Some(f) => {
                            let start = sigs.len();
                            sigs.resize(start + k, 0);
                            to_bbit(f.signature, &mut sigs[start..]);
                            let hash = f.content_hash;
                            fp.band_keys(f.signature, keys);
                            all_keys.extend_from_slice(keys);
                            prepared.push(Prepared {
                                content_hash: hash,
                                empty: false,
                            });
                        }
                        None => prepared.push(Prepared {
                            content_hash: 0,
                            empty: true,
                        }),
                    }
                }
                (prepared, sigs, all_keys)
            },
        )
        .collect();
    PreparedBatch { chunks }
}

/// The segment being buffered in memory.
#[derive(Default)]
struct Buffer {
    contents: PreHashedMap<u128, u32>,
    /// b-bit signatures, `k` bytes per content.
    sigs: Vec<u8>,
    /// Content hashes, in content order.
    hashes: Vec<u128>,
    /// Band keys, `bands` per content.
    keys: Vec<u64>,
    /// Per post: content, ts, account, platform, id range, text range.
    post_content: Vec<u32>,
    post_ts: Vec<i64>,
    post_account: Vec<u32>,
    post_platform: Vec<u32>,
    id_ends: Vec<u64>,
    ids: Vec<u8>,
    text_ends: Vec<u64>,
    texts: Vec<u8>,
    id_hashes: PreHashedMap<u64, u32>,
    accounts: Dict,
    platforms: Dict,
}

/// Interned strings in first-seen order.
#[derive(Default)]
pub(crate) struct Dict {
    index: HashMap<String, u32, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
    pub(crate) ends: Vec<u64>,
    pub(crate) bytes: Vec<u8>,
}

impl Dict {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.ends.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len() as u64);
        self.index.insert(s.to_string(), i);
        i
    }

    fn memory(&self) -> usize {
        self.bytes.capacity() * 2 + self.index.capacity() * 40 + self.ends.capacity() * 8
    }
}

impl Buffer {
    fn posts(&self) -> usize {
        self.post_content.len()
    }

    fn id(&self, p: usize) -> &[u8] {
        let s = if p == 0 {
            0
        } else {
            self.id_ends[p - 1] as usize
        };
        &self.ids[s..self.id_ends[p] as usize]
    }

    fn text(&self, p: usize) -> &[u8] {
        let s = if p == 0 {
            0
        } else {
            self.text_ends[p - 1] as usize
        };
        &self.texts[s..self.text_ends[p] as usize]
    }

    /// Approximate bytes held (by capacity, since a growing vector holds its old and new
    /// buffers for a moment), plus what a flush needs on top: the band tables being built in
    /// parallel and the post permutation arrays.
    fn memory(&self) -> usize {
        let map = |cap: usize, entry: usize| cap * (entry + 1) * 8 / 7;
        let held = self.sigs.capacity()
            + self.hashes.capacity() * 16
            + self.keys.capacity() * 8
            + map(self.contents.capacity(), 20)
            + map(self.id_hashes.capacity(), 12)
            + (self.post_content.capacity()
                + self.post_account.capacity()
                + self.post_platform.capacity())
                * 4
            + (self.post_ts.capacity() + self.id_ends.capacity() + self.text_ends.capacity()) * 8
            + self.ids.capacity()
            + self.texts.capacity()
            + self.accounts.memory()
            + self.platforms.memory();
        let n = self.contents.len();
        let flush = BAND_TABLES_AT_ONCE * n * 16 + self.posts() * 12;
        held + flush
    }
}

/// A scalable Bloom filter over 64-bit id hashes (layers double in size).
#[derive(Default)]
struct Bloom {
    layers: Vec<(Vec<u64>, u64, u64)>, // (bits, capacity, count)
}

impl Bloom {
    fn probes(h: u64, nbits: u64) -> impl Iterator<Item = u64> {
        let (h1, h2) = (h, h.rotate_left(32) | 1);
        (0..7u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % nbits)
    }

    fn contains(&self, h: u64) -> bool {
        self.layers.iter().any(|(bits, _, _)| {
            let n = bits.len() as u64 * 64;
            Bloom::probes(h, n).all(|b| bits[(b / 64) as usize] & (1 << (b % 64)) != 0)
        })
    }

    fn insert(&mut self, h: u64) {
        let need = match self.layers.last() {
            Some((_, cap, count)) => count >= cap,
            None => true,
        };
        if need {
            let cap = self.layers.last().map_or(1 << 20, |l| l.1 * 2);
            // ~10 bits per id: about 1% false positives with 7 probes.
            self.layers
                .push((vec![0u64; (cap * 10 / 64 + 1) as usize], cap, 0));
        }
        if let Some((bits, _, count)) = self.layers.last_mut() {
            let n = bits.len() as u64 * 64;
            for b in Bloom::probes(h, n) {
                bits[(b / 64) as usize] |= 1 << (b % 64);
            }
            *count += 1;
        }
    }
}

/// Where a live post with a given id is held.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// In the buffered segment.
    Buffered,
    /// In a segment written by this builder: (segment id, post).
    Written((u64, u32)),
    /// In a segment of the index appended to.
    Kept((u64, u32)),
}

/// Builds an index from posts, with bounded memory.
pub struct IndexBuilder {
    dir: PathBuf,
    opts: BuildOptions,
    fp: Fingerprinter,
    previous: Option<Manifest>,
    /// The previous generation's segments, open, when appending.
    kept: Vec<super::segment::Segment>,
    /// New deletion bitmaps by segment id (kept or written), complete (old bits included).
    deletes: BTreeMap<u64, Vec<u64>>,
    next_segment: u64,
    written: Vec<SegmentEntry>,
    flushed_ids: Vec<fst::Map<super::mmap::Data>>,
    bloom: Bloom,
    buf: Buffer,
    stats: BuildStats,
    _lock: WriterLock,
}

impl std::fmt::Debug for IndexBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexBuilder")
            .field("dir", &self.dir)
            .field("stats", &self.stats)
            .finish()
    }
}

impl IndexBuilder {
    /// Starts a build into `dir` (created if missing).
    ///
    /// # Errors
    /// If `dir` already holds an index and `opts.existing` is [`Existing::Refuse`], if another
    /// writer holds the index's lock, on invalid parameters, and on I/O errors.
    pub fn create(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<IndexBuilder> {
        let dir = dir.as_ref().to_path_buf();
        if opts.existing != Existing::Append {
            // Checked before anything is created (an append uses the index's parameters).
            Fingerprinter::new(opts.params)?;
        }
        if opts.memory_budget < (16 << 20) {
            return Err(Error::InvalidParameter(
                "the memory budget must be at least 16 MiB".into(),
            ));
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = WriterLock::acquire(&dir)?;
        let previous = Manifest::load_current(&dir)?.map(|(m, _)| m);
        if previous.is_some() && opts.existing == Existing::Refuse {
            return Err(Error::IndexState {
                path: dir,
                what: "already holds an index; choose another directory, delete it, replace it (--force) or add to it (--append)".into(),
            });
        }
        let mut opts = opts;
        let mut kept = Vec::new();
        if let (Existing::Append, Some(m)) = (opts.existing, &previous) {
            // Appended posts are fingerprinted like the index's own.
            opts.params = m.params;
            for s in &m.segments {
                kept.push(super::segment::Segment::open(
                    &dir,
                    s,
                    &m.params,
                    super::Access::Mmap,
                )?);
            }
        }
        let fp = Fingerprinter::new(opts.params)?;
        let max_seen = remove_leftovers(&dir, previous.as_ref())?;
        Ok(IndexBuilder {
            dir,
            fp,
            previous,
            kept,
            deletes: BTreeMap::new(),
            next_segment: max_seen.max(1),
            written: Vec::new(),
            flushed_ids: Vec::new(),
            bloom: Bloom::default(),
            buf: Buffer::default(),
            stats: BuildStats::default(),
            opts,
            _lock: lock,
        })
    }

    /// The fingerprinter posts are fingerprinted with.
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fp
    }

    /// Counts so far.
    pub fn stats(&self) -> &BuildStats {
        &self.stats
    }

    /// Adds posts, in order; fingerprints them in parallel. Returns each post's outcome.
    pub fn add(&mut self, posts: &[RawPost]) -> Result<Vec<PostOutcome>> {
        let prepared = prepare(&self.fp, posts);
        self.add_prepared(posts, prepared)
    }

    /// [`add`](Self::add) with the fingerprints already computed by [`prepare`] (with this
    /// builder's fingerprinter) for these `posts`, so that a caller can fingerprint the
    /// next batch while this one is inserted.
    pub(crate) fn add_prepared(
        &mut self,
        posts: &[RawPost],
        prepared: PreparedBatch,
    ) -> Result<Vec<PostOutcome>> {
        let k = self.fp.params().num_perm as usize;
        let bands = self.fp.params().lsh.bands as usize;
        let chunks = prepared.chunks;
        let mut outcomes = Vec::with_capacity(posts.len());
        let mut posts_iter = posts.iter();
        for (prepared, sigs, keys) in chunks {
            let mut fi = 0;
            for p in prepared {
                let Some(post) = posts_iter.next() else { break };
                self.stats.posts += 1;
                if p.empty {
                    self.stats.empty += 1;
                    outcomes.push(PostOutcome::Empty);
                    continue;
                }
                let (sig, key) = (
                    &sigs[fi * k..(fi + 1) * k],
                    &keys[fi * bands..(fi + 1) * bands],
                );
                fi += 1;
                let mut outcome = PostOutcome::Indexed;
                if let Some(old) = self.find_existing_id(&post.id)? {
                    match (old, self.opts.on_existing_id) {
                        (Holder::Kept(addr), OnExistingId::Replace) => {
                            self.mark_deleted(addr)?;
                            self.stats.replaced += 1;
                            outcome = PostOutcome::Replaced;
                        }
                        _ => {
                            self.stats.duplicate_ids += 1;
                            outcomes.push(PostOutcome::DuplicateId);
                            continue;
                        }
                    }
                }
                self.insert(post, p.content_hash, sig, key);
                self.stats.indexed += 1;
                outcomes.push(outcome);
            }
            if self.buf.memory() >= self.opts.memory_budget
                || self.buf.contents.len() as u64 >= u32::MAX as u64 / 2
            {
                self.flush()?;
            }
        }
        Ok(outcomes)
    }

    /// Where a live post with this id already is, if anywhere.
    fn find_existing_id(&mut self, id: &str) -> Result<Option<Holder>> {
        let h = xxh3_64(id.as_bytes());
        if let Some(&p) = self.buf.id_hashes.get(&h) {
            if self.buf.id(p as usize) == id.as_bytes() {
                return Ok(Some(Holder::Buffered));
            }
        }
        if self.bloom.contains(h) {
            for (m, e) in self.flushed_ids.iter().zip(&self.written) {
                if let Some(p) = m.get(id.as_bytes()) {
                    if !self.is_marked(e.id, p as u32) {
                        return Ok(Some(Holder::Written((e.id, p as u32))));
                    }
                }
            }
        }
        for seg in self.kept.iter().rev() {
            if let Some(p) = seg.find_id(id)? {
                if !seg.is_deleted(p) && !self.is_marked(seg.entry().id, p) {
                    return Ok(Some(Holder::Kept((seg.entry().id, p))));
                }
            }
        }
        Ok(None)
    }

    fn is_marked(&self, seg: u64, p: u32) -> bool {
        self.deletes
            .get(&seg)
            .and_then(|w| w.get(p as usize / 64))
            .is_some_and(|w| w >> (p % 64) & 1 == 1)
    }

    /// Marks post `p` of segment `seg` (kept or written by this build) deleted.
    fn mark_deleted(&mut self, (seg, p): (u64, u32)) -> Result<()> {
        let words = match self.deletes.entry(seg) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let (n, old) = if let Some(s) = self.kept.iter().find(|s| s.entry().id == seg) {
                    (s.n_posts(), s.deleted_words())
                } else if let Some(e) = self.written.iter().find(|e| e.id == seg) {
                    (e.posts, None)
                } else {
                    return Err(Error::InvalidParameter(format!("no segment {seg}")));
                };
                v.insert(old.unwrap_or_else(|| vec![0u64; n.div_ceil(64) as usize]))
            }
        };
        match words.get_mut(p as usize / 64) {
            Some(w) if *w >> (p % 64) & 1 == 0 => {
                *w |= 1 << (p % 64);
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Error::InvalidParameter(format!(
                "segment {seg} has no post {p}"
            ))),
        }
    }

    /// Deletes the live posts with these ids (posts indexed before, or added earlier by this
    /// writer). Returns the ids that no live post has.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for id in ids {
            let id = id.as_ref();
            let mut found = self.find_existing_id(id)?;
            if let Some(Holder::Buffered) = found {
                // Added by this writer and still buffered: write it out so it has an
                // address to mark.
                self.flush()?;
                found = self.find_existing_id(id)?;
            }
            let found = match found {
                Some(Holder::Written(addr) | Holder::Kept(addr)) => Some(addr),
                Some(Holder::Buffered) | None => None,
            };
            match found {
                Some(addr) => {
                    self.mark_deleted(addr)?;
                    self.stats.deleted += 1;
                }
                None => missing.push(id.to_string()),
            }
        }
        Ok(missing)
    }

    fn insert(&mut self, post: &RawPost, hash: u128, sig: &[u8], keys: &[u64]) {
        let b = &mut self.buf;
        let n = b.contents.len() as u32;
        let cid = match b.contents.entry(hash) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                e.insert(n);
                b.hashes.push(hash);
                b.sigs.extend_from_slice(sig);
                b.keys.extend_from_slice(keys);
                n
            }
        };
        let p = b.posts() as u32;
        b.post_content.push(cid);
        b.post_ts.push(post.ts.unwrap_or(NO_TS));
        let a = b.accounts.intern(&post.account);
        b.post_account.push(a);
        let pl = b.platforms.intern(&post.platform);
        b.post_platform.push(pl);
        b.ids.extend_from_slice(post.id.as_bytes());
        b.id_ends.push(b.ids.len() as u64);
        if self.opts.store_text {
            b.texts.extend_from_slice(post.text.as_bytes());
        }
        b.text_ends.push(b.texts.len() as u64);
        // A 64-bit hash collision between two different ids keeps the first in the map; the
        // second is then only checked against flushed segments (probability ~2^-64 per pair).
        b.id_hashes.entry(xxh3_64(post.id.as_bytes())).or_insert(p);
    }

    /// Writes the buffered posts as a segment (not yet visible: see [`finish`](Self::finish)).
    fn flush(&mut self) -> Result<()> {
        if self.buf.posts() == 0 {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let id = self.next_segment;
        self.next_segment += 1;
        let entry = write_segment(&self.dir, id, &buf, self.fp.params(), self.opts.store_text)?;
        self.stats.segments += 1;
        self.stats.unique_texts += entry.contents;
        self.stats.bytes += entry.files.values().map(|f| f.len).sum::<u64>();
        // Remember the ids for duplicate detection.
        for p in 0..buf.posts() {
            self.bloom.insert(xxh3_64(buf.id(p)));
        }
        let ids_path = self.dir.join(entry.dir_name()).join("ids.fst");
        let bytes = super::mmap::Data::map(&ids_path)?;
        self.flushed_ids
            .push(fst::Map::new(bytes).map_err(|e| Error::corrupt(&ids_path, e.to_string()))?);
        self.written.push(entry);
        Ok(())
    }

    /// Flushes what is buffered and publishes the index: one new manifest names every segment
    /// written (replacing the previous generation's, with [`Existing::Replace`]).
    pub fn finish(mut self) -> Result<BuildStats> {
        self.flush()?;
        let generation = self.previous.as_ref().map_or(1, |m| m.generation + 1);
        let appending = self.opts.existing == Existing::Append;
        let mut segments = if appending {
            self.previous
                .as_ref()
                .map(|m| m.segments.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        segments.append(&mut self.written);
        for s in &mut segments {
            if let Some(words) = self.deletes.get(&s.id) {
                let entry =
                    write_deleted(&self.dir.join(s.dir_name()), generation, s.posts, words)?;
                self.stats.bytes += entry.len;
                s.deleted = Some(entry);
            }
        }
        let manifest = Manifest {
            format_version: super::format::FORMAT_VERSION,
            generation,
            params: *self.fp.params(),
            segments,
            next_segment_id: self.next_segment,
            // Saved clusters stay valid for the segments they were computed over (appended
            // segments have none until saved again); a rebuild drops them.
            clusters: if appending {
                self.previous.as_ref().and_then(|m| m.clusters.clone())
            } else {
                None
            },
            checksum: String::new(),
        };
        manifest.publish(&self.dir)?;
        // What the old generation alone used is unreachable now; readers that still map its
        // files keep them alive until they close (POSIX unlink semantics).
        if let Some(old) = &self.previous {
            cleanup_after_publish(&self.dir, old, &manifest);
        }
        let mut stats = self.stats.clone();
        stats.bytes +=
            fs::metadata(self.dir.join(Manifest::file_name(generation))).map_or(0, |m| m.len());
        Ok(stats)
    }
}

/// Removes what `old` named and `new` does not: segment directories, deletion bitmaps and
/// the cluster file. Best effort: leftovers are removed by the next writer.
pub(crate) fn cleanup_after_publish(dir: &Path, old: &Manifest, new: &Manifest) {
    for s in &old.segments {
        match new.segments.iter().find(|n| n.id == s.id) {
            None => {
                let _ = fs::remove_dir_all(dir.join(s.dir_name()));
            }
            Some(n) => {
                if let Some(d) = &s.deleted {
                    if n.deleted.as_ref().map(|x| &x.file) != Some(&d.file) {
                        let _ = fs::remove_file(dir.join(s.dir_name()).join(&d.file));
                    }
                }
            }
        }
    }
    if let Some(c) = &old.clusters {
        if new.clusters.as_ref().map(|x| &x.file) != Some(&c.file) {
            let _ = fs::remove_file(dir.join(&c.file));
        }
    }
}

/// Removes the leftovers of a writer that died before publishing: segment directories,
/// deletion bitmaps and cluster files that the live manifest `previous` does not name, and
/// temporary files. The caller holds the writer lock. Returns the least segment id that is
/// safe to use next.
pub(crate) fn remove_leftovers(dir: &Path, previous: Option<&Manifest>) -> Result<u64> {
    // Leftovers of a build that died before publishing: segments, deletion bitmaps and
    // cluster files no manifest names, and temporary files. We hold the writer lock, so
    // nobody else is writing them.
    let live: Vec<String> = previous
        .iter()
        .flat_map(|m| m.segments.iter().map(|s| s.dir_name()))
        .collect();
    for s in previous.iter().flat_map(|m| m.segments.iter()) {
        remove_stale_segment_files(&dir.join(s.dir_name()), s)?;
    }
    let live_clusters: Vec<String> = previous
        .iter()
        .filter_map(|m| m.clusters.as_ref().map(|c| c.file.clone()))
        .collect();
    let mut max_seen = previous.as_ref().map_or(0, |m| m.next_segment_id);
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("seg-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            max_seen = max_seen.max(n + 1);
            if !live.contains(&name) {
                fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        } else if name.ends_with(".tmp")
            || (name.starts_with("CLUSTERS-") && !live_clusters.contains(&name))
        {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(max_seen)
}

/// Removes the files in a live segment's directory that its manifest entry does not name
/// (deletion bitmaps of unpublished generations, temporary files).
fn remove_stale_segment_files(seg_dir: &Path, entry: &SegmentEntry) -> Result<()> {
    let Ok(rd) = fs::read_dir(seg_dir) else {
        return Ok(());
    };
    for e in rd {
        let e = e.map_err(|e| Error::io(seg_dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let stale_deleted = name.starts_with("deleted-")
            && entry.deleted.as_ref().map(|d| d.file.as_str()) != Some(name.as_str());
        if stale_deleted || name.ends_with(".tmp") {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// Writes a deletion bitmap for a segment of `posts` posts and returns its manifest entry.
pub(crate) fn write_deleted(
    seg_dir: &Path,
    generation: u64,
    posts: u64,
    words: &[u64],
) -> Result<super::manifest::DeletedEntry> {
    let name = format!("deleted-{generation:06}");
    let path = seg_dir.join(&name);
    let count: u64 = words.iter().map(|w| u64::from(w.count_ones())).sum();
    let mut w = EnvelopeWriter::create(&path, DELETED_MAGIC, 2)?;
    w.begin(0)?;
    let mut meta = Vec::with_capacity(16);
    meta.extend_from_slice(&posts.to_le_bytes());
    meta.extend_from_slice(&count.to_le_bytes());
    w.write(&meta)?;
    w.begin(1)?;
    w.write_u64s(words)?;
    w.finish()?;
    sync_dir(seg_dir)?;
    let fe = file_entry(&path)?;
    Ok(super::manifest::DeletedEntry {
        file: name,
        count,
        len: fe.len,
        xxh3: fe.xxh3,
    })
}

/// The directory bits for `n` entries per band: buckets of about [`BUCKET_TARGET`] entries.
pub fn dir_bits(n: u64) -> u32 {
    let mut d = 0;
    while d < MAX_DIR_BITS && (n >> d) > BUCKET_TARGET {
        d += 1;
    }
    d
}

/// Writes one segment's files and returns its manifest entry.
fn write_segment(
    dir: &Path,
    id: u64,
    b: &Buffer,
    params: &FingerprintParams,
    store_text: bool,
) -> Result<SegmentEntry> {
    let seg_dir = dir.join(segment_dir_name(id));
    fs::create_dir_all(&seg_dir).map_err(|e| Error::io(&seg_dir, e))?;
    let nc = b.contents.len();
    let np = b.posts();
    let bands = params.lsh.bands as usize;
    let k = params.num_perm as usize;

    // Group posts by content, keeping input order within a content.
    let mut content_posts = vec![0u32; nc + 1];
    for &c in &b.post_content {
        content_posts[c as usize + 1] += 1;
    }
    for i in 0..nc {
        content_posts[i + 1] += content_posts[i];
    }
    let mut order = vec![0u32; np];
    let mut next = content_posts.clone();
    for (p, &c) in b.post_content.iter().enumerate() {
        order[next[c as usize] as usize] = p as u32;
        next[c as usize] += 1;
    }

    // The text dictionary trains on its own thread while the other files are written.
    let text_block = |blk: usize| -> Vec<u8> {
        let lo = blk * TEXT_BLOCK_POSTS as usize;
        let hi = (lo + TEXT_BLOCK_POSTS as usize).min(np);
        let texts: Vec<&[u8]> = order[lo..hi].iter().map(|&p| b.text(p as usize)).collect();
        raw_block(&texts)
    };
    let nb_text = np.div_ceil(TEXT_BLOCK_POSTS as usize);
    let training = store_text.then(|| {
        let samples: Vec<Vec<u8>> = TextCodec::sample_blocks(nb_text).map(text_block).collect();
        // Without a thread to spare, the dictionary is trained when the texts are written.
        let shared = std::sync::Arc::new(samples);
        let theirs = std::sync::Arc::clone(&shared);
        std::thread::Builder::new()
            .name("textreuse-dict".into())
            .spawn(move || TextCodec::train(&theirs))
            .map_err(|_| shared)
    });
    let mut files = BTreeMap::new();
    // Bands: built `BAND_TABLES_AT_ONCE` at a time in parallel, written in band order.
    {
        let path = seg_dir.join("bands");
        let d = dir_bits(nc as u64);
        let mut w = begin_bands_file(&path, nc as u64, bands, d, params.lsh.rows)?;
        let mut tables: Vec<(Vec<u32>, Vec<u32>, Vec<u32>)> = Vec::new();
        // Sections are written one after another: dirs of all bands, then fps, then cids.
        // Build all band tables in groups to bound memory, spilling fps and cids to
        // temporary files when there is more than one group.
        let groups: Vec<Vec<usize>> = (0..bands)
            .collect::<Vec<_>>()
            .chunks(BAND_TABLES_AT_ONCE)
            .map(|c| c.to_vec())
            .collect();
        let mut spill_fps = SpillFile::new(&seg_dir.join("fps.spill.tmp"))?;
        let mut spill_cids = SpillFile::new(&seg_dir.join("cids.spill.tmp"))?;
        for g in &groups {
            tables.clear();
            tables.par_extend(
                g.par_iter()
                    .map(|&band| band_table(&b.keys, bands, band, nc, d)),
            );
            for (dirs, fps, cids) in &tables {
                w.write_u32s(dirs)?;
                spill_fps.write_tags(fps, d)?;
                spill_cids.write_u32s(cids)?;
            }
        }
        files.insert(
            "bands".to_string(),
            finish_bands_file(w, &path, spill_fps, spill_cids)?,
        );
    }
    // Signatures.
    {
        let path = seg_dir.join("sigs");
        let mut w = begin_sigs_file(&path, nc as u64, k, params, store_text)?;
        w.write(&b.sigs)?;
        w.begin(2)?;
        w.write_u128s(&b.hashes)?;
        w.finish()?;
        files.insert("sigs".to_string(), file_entry(&path)?);
    }
    // Posts, in content order.
    {
        let path = seg_dir.join("posts");
        let mut w = EnvelopeWriter::create(&path, POSTS_MAGIC, 11)?;
        w.begin(0)?;
        let mut meta = Vec::new();
        for v in [
            np as u64,
            nc as u64,
            b.accounts.ends.len() as u64,
            b.platforms.ends.len() as u64,
        ] {
            meta.extend_from_slice(&v.to_le_bytes());
        }
        w.write(&meta)?;
        w.begin(1)?;
        w.write_u32s(&content_posts)?;
        w.begin(2)?;
        let ts: Vec<u64> = order
            .iter()
            .map(|&p| b.post_ts[p as usize] as u64)
            .collect();
        w.write_u64s(&ts)?;
        w.begin(3)?;
        let mut total = 0u64;
        w.write_u64s(&[0])?;
        for chunk in order.chunks(1 << 16) {
            let offs: Vec<u64> = chunk
                .iter()
                .map(|&p| {
                    total += b.id(p as usize).len() as u64;
                    total
                })
                .collect();
            w.write_u64s(&offs)?;
        }
        w.begin(4)?;
        for &p in &order {
            w.write(b.id(p as usize))?;
        }
        w.begin(5)?;
        for chunk in order.chunks(1 << 16) {
            let accounts: Vec<u32> = chunk.iter().map(|&p| b.post_account[p as usize]).collect();
            w.write_u32s(&accounts)?;
        }
        w.begin(6)?;
        w.write_u64s(&[0])?;
        w.write_u64s(&b.accounts.ends)?;
        w.begin(7)?;
        w.write(&b.accounts.bytes)?;
        w.begin(8)?;
        for chunk in order.chunks(1 << 16) {
            let platforms: Vec<u32> = chunk.iter().map(|&p| b.post_platform[p as usize]).collect();
            w.write_u32s(&platforms)?;
        }
        w.begin(9)?;
        w.write_u64s(&[0])?;
        w.write_u64s(&b.platforms.ends)?;
        w.begin(10)?;
        w.write(&b.platforms.bytes)?;
        w.finish()?;
        files.insert("posts".to_string(), file_entry(&path)?);
    }
    // Ids: an fst map from external id to post index.
    {
        let path = seg_dir.join("ids.fst");
        let mut by_id: Vec<u32> = (0..np as u32).collect();
        // Post index of input post p is its position in `order`.
        let mut position = vec![0u32; np];
        for (i, &p) in order.iter().enumerate() {
            position[p as usize] = i as u32;
        }
        by_id.par_sort_unstable_by(|&x, &y| b.id(x as usize).cmp(b.id(y as usize)));
        let tmp = super::format::tmp_path(&path);
        let mut mb = begin_ids_file(&tmp)?;
        for &p in &by_id {
            mb.insert(b.id(p as usize), position[p as usize] as u64)
                .map_err(|e| Error::InvalidParameter(format!("{}: {e}", tmp.display())))?;
        }
        files.insert("ids.fst".to_string(), finish_ids_file(mb, &tmp, &path)?);
    }
    // Texts: blocks of TEXT_BLOCK_POSTS posts, zstd-compressed in parallel with a
    // dictionary trained on a sample of them.
    if let Some(training) = training {
        let path = seg_dir.join("text");
        let (nb, block) = (nb_text, text_block);
        let codec = match training {
            // A training thread that died leaves the texts without a dictionary.
            Ok(thread) => thread.join().unwrap_or_else(|_| TextCodec::train(&[])),
            Err(samples) => TextCodec::train(&samples),
        };
        // Blocks are compressed in parallel, a group at a time, into a spill file (bounded
        // memory); their offsets go first in the file, so the blocks are copied in after.
        let mut spill = SpillFile::new(&seg_dir.join("text.spill.tmp"))?;
        let mut offs = Vec::with_capacity(nb + 1);
        offs.push(0u64);
        const GROUP: usize = 16_384;
        for g in (0..nb).step_by(GROUP) {
            let raw: Vec<Vec<u8>> = (g..(g + GROUP).min(nb))
                .into_par_iter()
                .map(block)
                .collect();
            for blk in codec.compress_blocks(&path, &raw)? {
                offs.push(offs[offs.len() - 1] + blk.len() as u64);
                spill.write_bytes(&blk)?;
            }
        }
        files.insert(
            "text".to_string(),
            write_text_file(&path, np as u64, &offs, spill, codec.dict())?,
        );
    }
    sync_dir(&seg_dir)?;
    sync_dir(dir)?;
    Ok(SegmentEntry {
        id,
        posts: np as u64,
        contents: nc as u64,
        has_text: store_text,
        files,
        deleted: None,
    })
}

/// Starts a band file of `n` contents with a directory of `d` bits: writes the meta section
/// and begins the `dirs` section.
pub(crate) fn begin_bands_file(
    path: &Path,
    n: u64,
    bands: usize,
    d: u32,
    rows: u32,
) -> Result<EnvelopeWriter> {
    let mut w = EnvelopeWriter::create(path, BANDS_MAGIC, 4)?;
    w.begin(0)?;
    let mut meta = Vec::with_capacity(24);
    meta.extend_from_slice(&n.to_le_bytes());
    meta.extend_from_slice(&(bands as u32).to_le_bytes());
    meta.extend_from_slice(&d.to_le_bytes());
    meta.extend_from_slice(&rows.to_le_bytes());
    meta.extend_from_slice(&0u32.to_le_bytes());
    w.write(&meta)?;
    w.begin(1)?;
    Ok(w)
}

/// Ends a band file: copies in the spilled prefixes and content ids, and returns the file's
/// manifest entry.
pub(crate) fn finish_bands_file(
    mut w: EnvelopeWriter,
    path: &Path,
    prefixes: SpillFile,
    cids: SpillFile,
) -> Result<FileEntry> {
    w.begin(2)?;
    prefixes.copy_into(&mut w)?;
    w.begin(3)?;
    cids.copy_into(&mut w)?;
    w.finish()?;
    file_entry(path)
}

/// Starts a signature file of `n` contents and `k` bytes each: writes the meta section (with
/// the segment's parameter record) and begins the `sigs` section.
pub(crate) fn begin_sigs_file(
    path: &Path,
    n: u64,
    k: usize,
    params: &FingerprintParams,
    has_text: bool,
) -> Result<EnvelopeWriter> {
    let mut w = EnvelopeWriter::create(path, SIGS_MAGIC, 3)?;
    w.begin(0)?;
    w.write(&super::segment::sigs_meta(n, k, params, has_text))?;
    w.begin(1)?;
    Ok(w)
}

/// An id map being written to `tmp`.
pub(crate) type IdsBuilder = fst::MapBuilder<std::io::BufWriter<fs::File>>;

/// Starts an id map (`ids.fst`) at the temporary path `tmp`.
pub(crate) fn begin_ids_file(tmp: &Path) -> Result<IdsBuilder> {
    let f = fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    fst::MapBuilder::new(std::io::BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| Error::corrupt(tmp, e.to_string()))
}

/// Ends an id map: fsyncs it, renames it from `tmp` to `path`, returns its manifest entry.
pub(crate) fn finish_ids_file(mb: IdsBuilder, tmp: &Path, path: &Path) -> Result<FileEntry> {
    let w = mb
        .into_inner()
        .map_err(|e| Error::corrupt(tmp, e.to_string()))?;
    let f = w.into_inner().map_err(|e| Error::io(tmp, e.into_error()))?;
    f.sync_data().map_err(|e| Error::io(tmp, e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    file_entry(path)
}

/// Writes a text file of `np` posts from its block offsets and the spilled compressed
/// blocks, and returns its manifest entry.
pub(crate) fn write_text_file(
    path: &Path,
    np: u64,
    offs: &[u64],
    blocks: SpillFile,
    dict: &[u8],
) -> Result<FileEntry> {
    let mut w = EnvelopeWriter::create(path, TEXT_MAGIC, 4)?;
    w.begin(0)?;
    let mut meta = Vec::with_capacity(16);
    meta.extend_from_slice(&np.to_le_bytes());
    meta.extend_from_slice(&TEXT_BLOCK_POSTS.to_le_bytes());
    meta.extend_from_slice(&CODEC_ZSTD_DICT.to_le_bytes());
    w.write(&meta)?;
    w.begin(1)?;
    w.write_u64s(offs)?;
    w.begin(2)?;
    blocks.copy_into(&mut w)?;
    w.begin(3)?;
    w.write(dict)?;
    w.finish()?;
    file_entry(path)
}

/// A decompressed text block: `u32` offsets of its texts, then the texts (FORMAT.md).
pub(crate) fn raw_block(texts: &[&[u8]]) -> Vec<u8> {
    let len: usize = texts.iter().map(|t| t.len()).sum();
    let mut raw = Vec::with_capacity(len + 4 * (texts.len() + 1));
    let mut off = 0u32;
    raw.extend_from_slice(&0u32.to_le_bytes());
    for t in texts {
        off += t.len() as u32;
        raw.extend_from_slice(&off.to_le_bytes());
    }
    for t in texts {
        raw.extend_from_slice(t);
    }
    raw
}

/// How a segment's text blocks are compressed: zstd at [`TEXT_ZSTD_LEVEL`], with a
/// dictionary trained on a sample of the blocks when there are enough of them.
pub(crate) struct TextCodec {
    dict: Vec<u8>,
    prepared: Option<zstd::dict::EncoderDictionary<'static>>,
}

impl TextCodec {
    /// The blocks a dictionary for `n` blocks is trained on: up to [`TEXT_DICT_SAMPLES`],
    /// evenly spaced (the same blocks give the same dictionary); none when the segment has
    /// too few posts to be worth one.
    pub(crate) fn sample_blocks(n: usize) -> impl Iterator<Item = usize> {
        let n = if n * (TEXT_BLOCK_POSTS as usize) < TEXT_DICT_MIN_POSTS {
            0
        } else {
            n
        };
        (0..n).step_by(n.div_ceil(TEXT_DICT_SAMPLES).max(1))
    }

    /// Trains on the sample blocks ([`sample_blocks`](Self::sample_blocks)). Too small a
    /// sample, or one zstd cannot learn from, gives no dictionary.
    pub(crate) fn train(samples: &[Vec<u8>]) -> TextCodec {
        // At most a quarter of the sample, and nothing from a sample under 16 KiB.
        let total: usize = samples.iter().map(Vec::len).sum();
        let dict = if total < 16 << 10 {
            Vec::new()
        } else {
            zstd::dict::from_samples(samples, TEXT_DICT_BYTES.min(total / 4)).unwrap_or_default()
        };
        let prepared =
            (!dict.is_empty()).then(|| zstd::dict::EncoderDictionary::copy(&dict, TEXT_ZSTD_LEVEL));
        TextCodec { dict, prepared }
    }

    /// The dictionary (empty for none).
    pub(crate) fn dict(&self) -> &[u8] {
        &self.dict
    }

    /// Compresses decompressed text blocks in parallel, one compression context per
    /// thread's share, in input order. Byte-identical blocks (a text reposted verbatim;
    /// posts are grouped by content, so its copies are neighbours) are compressed once: a
    /// frame depends only on its input, so the output is what compressing each would give.
    pub(crate) fn compress_blocks(&self, path: &Path, raw: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let mut first: HashMap<&[u8], usize> = HashMap::with_capacity(raw.len());
        let mut unique: Vec<&[u8]> = Vec::new();
        let slot: Vec<usize> = raw
            .iter()
            .map(|r| {
                *first.entry(r.as_slice()).or_insert_with(|| {
                    unique.push(r);
                    unique.len() - 1
                })
            })
            .collect();
        let share = unique
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        let compressed: Vec<Vec<u8>> = unique
            .par_chunks(share)
            .flat_map_iter(|chunk| {
                let mut z = match &self.prepared {
                    Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(d),
                    None => zstd::bulk::Compressor::new(TEXT_ZSTD_LEVEL),
                };
                chunk
                    .iter()
                    .map(|raw| {
                        let z = z.as_mut().map_err(|e| {
                            Error::io(path, std::io::Error::new(e.kind(), e.to_string()))
                        })?;
                        z.compress(raw).map_err(|e| Error::io(path, e))
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Result<_>>()?;
        Ok(slot.into_iter().map(|u| compressed[u].clone()).collect())
    }
}

/// One band's table: directory, entry tags (each key's bits `d..32`) and content ids, sorted
/// within each bucket by (tag, cid); the directory is on the keys' top `d` bits.
fn band_table(
    keys: &[u64],
    bands: usize,
    band: usize,
    n: usize,
    d: u32,
) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let nb = 1usize << d;
    let mut dirs = vec![0u32; nb + 1];
    for c in 0..n {
        let (bucket, _) = split_key(keys[c * bands + band], d);
        dirs[bucket + 1] += 1;
    }
    for i in 0..nb {
        dirs[i + 1] += dirs[i];
    }
    let mut pos: Vec<u32> = dirs[..nb].to_vec();
    let mut entries = vec![(0u32, 0u32); n];
    for c in 0..n {
        let key = keys[c * bands + band];
        let (bucket, tag) = split_key(key, d);
        entries[pos[bucket] as usize] = (tag, c as u32);
        pos[bucket] += 1;
    }
    for i in 0..nb {
        entries[dirs[i] as usize..dirs[i + 1] as usize].sort_unstable();
    }
    let tags = entries.iter().map(|e| e.0).collect();
    let cids = entries.iter().map(|e| e.1).collect();
    (dirs, tags, cids)
}

/// A temporary spill file for one section that is built out of order.
pub(crate) struct SpillFile {
    path: PathBuf,
    out: std::io::BufWriter<fs::File>,
}

impl SpillFile {
    pub(crate) fn new(path: &Path) -> Result<SpillFile> {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(SpillFile {
            path: path.to_path_buf(),
            out: std::io::BufWriter::with_capacity(1 << 20, f),
        })
    }

    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Writes band entry tags for a directory of `d` bits: `u16` when `d >= 16` (the tags
    /// then fit), else `u32`.
    pub(crate) fn write_tags(&mut self, tags: &[u32], d: u32) -> Result<()> {
        if d >= 16 {
            self.write_bytes(
                &tags
                    .iter()
                    .flat_map(|&x| (x as u16).to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        } else {
            self.write_u32s(tags)
        }
    }

    pub(crate) fn write_u32s(&mut self, xs: &[u32]) -> Result<()> {
        self.write_bytes(&xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
    }

    pub(crate) fn copy_into(self, w: &mut EnvelopeWriter) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
        }
        drop(f);
        fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// The manifest entry of a finished file: its length and whole-file xxh3.
pub(crate) fn file_entry(path: &Path) -> Result<FileEntry> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok(FileEntry {
        len,
        xxh3: format!("{:016x}", h.digest()),
    })
}

/// The writer of a living index: adds posts as new segments, deletes posts by id, and
/// publishes both atomically with [`commit`](IndexWriter::commit). Holds the index's writer
/// lock until committed or dropped; a second writer gets [`Error::IndexState`]. Readers
/// keep answering from the generation they opened (see [`Index::reload`](super::Index::reload)).
///
/// Dropping the writer without committing publishes nothing; the segments it had written
/// are removed by the next writer.
#[derive(Debug)]
pub struct IndexWriter {
    inner: IndexBuilder,
}

impl IndexWriter {
    /// Opens the index in `dir` for writing (creating it with `opts.params` if missing).
    /// `opts.existing` is ignored: new posts are always appended.
    pub fn open(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<IndexWriter> {
        let opts = BuildOptions {
            existing: Existing::Append,
            ..opts
        };
        Ok(IndexWriter {
            inner: IndexBuilder::create(dir, opts)?,
        })
    }

    /// Adds posts (fingerprinted in parallel). Ids the index already holds are skipped as
    /// [`PostOutcome::DuplicateId`], or supersede the old post with
    /// [`OnExistingId::Replace`].
    pub fn add(&mut self, posts: &[RawPost]) -> Result<Vec<PostOutcome>> {
        self.inner.add(posts)
    }

    /// Marks the live posts with these ids deleted; returns the ids no live post has.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<Vec<String>> {
        self.inner.delete(ids)
    }

    /// Counts so far.
    pub fn stats(&self) -> &BuildStats {
        self.inner.stats()
    }

    /// The fingerprinter (the index's parameters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        self.inner.fingerprinter()
    }

    /// Writes what is buffered and publishes one new manifest with the new segments and
    /// deletions. Releases the lock.
    pub fn commit(self) -> Result<BuildStats> {
        self.inner.finish()
    }
}
