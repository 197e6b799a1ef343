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
use xxhash_rust::xxh3::xxh3_64;

use super::encode::{write_deleted, write_segment, BAND_TABLES_AT_ONCE};
use super::manifest::{Manifest, SegmentEntry};
use super::segment::NO_TS;
use super::txn::{cleanup_after_publish, remove_leftovers};
use super::WriterLock;
use crate::error::{Error, Result};
use crate::fingerprint::{FingerprintParams, Fingerprinter, Scratch};
use crate::input::RawPost;
use crate::minhash::to_bbit;

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
pub(crate) struct Buffer {
    pub(crate) contents: PreHashedMap<u128, u32>,
    /// b-bit signatures, `k` bytes per content.
    pub(crate) sigs: Vec<u8>,
    /// Content hashes, in content order.
    pub(crate) hashes: Vec<u128>,
    /// Band keys, `bands` per content.
    pub(crate) keys: Vec<u64>,
    /// Per post: content, ts, account, platform, id range, text range.
    pub(crate) post_content: Vec<u32>,
    pub(crate) post_ts: Vec<i64>,
    pub(crate) post_account: Vec<u32>,
    pub(crate) post_platform: Vec<u32>,
    pub(crate) id_ends: Vec<u64>,
    pub(crate) ids: Vec<u8>,
    pub(crate) text_ends: Vec<u64>,
    pub(crate) texts: Vec<u8>,
    pub(crate) id_hashes: PreHashedMap<u64, u32>,
    pub(crate) accounts: Dict,
    pub(crate) platforms: Dict,
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
    pub(crate) fn posts(&self) -> usize {
        self.post_content.len()
    }

    pub(crate) fn id(&self, p: usize) -> &[u8] {
        let s = if p == 0 {
            0
        } else {
            self.id_ends[p - 1] as usize
        };
        &self.ids[s..self.id_ends[p] as usize]
    }

    pub(crate) fn text(&self, p: usize) -> &[u8] {
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
    pub(crate) fn memory(&self) -> usize {
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
