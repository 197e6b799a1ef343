//! [`IndexWriter`]: the one writer of an index. Builds, appends, deletes, merges and saved
//! cluster assignments all go through it, and it through one [`Txn`] (lock, live
//! generation, leftovers, publish, cleanup).
//!
//! Posts are fingerprinted in parallel and inserted in order, so the output does not depend
//! on the thread count. Exact duplicates (equal normalized text) collapse into one
//! *content*. When the buffered segment reaches its share of the memory budget it is
//! *flushed*: written as a segment's files (see `encode`), fsynced and renamed into place;
//! the segments a writer flushes share one text dictionary, the first one trained.
//! New segments and deletions become visible together, through one new manifest, at
//! [`commit`](IndexWriter::commit).
//!
//! Duplicate ids are detected exactly: within the buffered segment by a hash map (confirmed
//! on the stored id), across flushed segments by a Bloom filter confirmed on their `ids.fst`,
//! and in the index's segments by their `ids.fst` (checksummed before first use).
//!
//! Nothing damaged is carried into a new generation: a deletion bitmap is checksummed
//! before its bits are copied into a new one, a merge checksums every file it rewrites and
//! the clusters file it keeps, and the clusters file an append or delete keeps must open.

use std::collections::BTreeMap;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::buffer::{prepare, Bloom, Buffer, PreparedBatch};
use super::clusters_file::{write_clusters_file, ClusterAssignment, ClustersFile};
use super::durable::Pieces;
use super::encode::{file_entry, write_deleted, write_segment, BuildTexts, TEXT_DICT_SAMPLES};
use super::manifest::{Manifest, SegmentEntry};
use super::merge::{merge_segments, MergeOptions, MergeStats};
use super::options::{BuildOptions, BuildStats, NewPost, OnExistingId, PostOutcome, StageTimes};
use super::segment::Segment;
use super::txn::{Create, Txn};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprinter;

/// Where a live post with a given id is held.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// In the buffered segment.
    Buffered,
    /// In a segment written by this writer since the last commit: (segment id, post).
    Written((u64, u32)),
    /// In a segment of the live generation: (segment id, post).
    Kept((u64, u32)),
}

/// The writer of an index: adds posts as new segments, deletes posts by id, merges
/// segments and saves cluster assignments; [`commit`](Self::commit) publishes added posts
/// and deletions atomically as a new generation, and the writer stays usable. Holds the
/// index's writer lock while it lives; a second writer gets [`Error::Locked`]. Readers keep
/// answering from the generation they opened (see [`Index::reload`](super::Index::reload)).
///
/// Dropping the writer without committing publishes nothing; the segments it had written
/// are removed by the next writer.
pub struct IndexWriter {
    txn: Txn,
    opts: BuildOptions,
    fp: Fingerprinter,
    /// The base generation's segments are dropped at the next commit (a rebuild).
    replace: bool,
    /// The live generation's segments, open (none when replacing).
    kept: Vec<Segment>,
    /// New deletion bitmaps by segment id (kept or written), complete (old bits included).
    deletes: BTreeMap<u64, Vec<u64>>,
    written: Vec<SegmentEntry>,
    flushed_ids: Vec<fst::Map<super::mmap::Data>>,
    bloom: Bloom,
    buf: Buffer,
    stats: BuildStats,
    /// Where the writer's time went, over its whole life.
    times: StageTimes,
    /// The text dictionary its segments share, and how many samples it trains on.
    texts: BuildTexts,
}

impl std::fmt::Debug for IndexWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter")
            .field("dir", &self.txn.dir())
            .field("generation", &self.txn.base().map(|m| m.generation))
            .field("stats", &self.stats)
            .finish()
    }
}

impl IndexWriter {
    /// Opens the index in `dir` for writing: takes its lock, loads the live generation and
    /// removes a dead writer's leftovers. New posts are fingerprinted with the index's own
    /// parameters; the other options are the defaults ([`open_with`](Self::open_with)).
    ///
    /// # Errors
    /// [`Error::NoIndex`] if `dir` holds no index, [`Error::Damaged`] if it lost its
    /// `CURRENT`, [`Error::Locked`] if another writer holds the lock, the errors of opening
    /// a damaged index, and I/O errors.
    pub fn open(dir: impl AsRef<Path>) -> Result<IndexWriter> {
        IndexWriter::begin(dir.as_ref(), BuildOptions::default(), Create::No, false)
    }

    /// Opens the index in `dir` for writing, creating it with `opts.params` if `dir` holds
    /// no index (an empty or new directory). `opts.existing` is ignored: new posts are
    /// appended.
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`Error::NotEmpty`] for a directory with other files
    /// and no index.
    pub fn open_with(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<IndexWriter> {
        IndexWriter::begin(dir.as_ref(), opts, Create::IfEmpty, false)
    }

    /// The one way in: a transaction on `dir`, then the live generation opened (kept
    /// segments are validated; a clusters file that would be carried over must open).
    pub(crate) fn begin(
        dir: &Path,
        opts: BuildOptions,
        create: Create,
        replace: bool,
    ) -> Result<IndexWriter> {
        if opts.memory_budget < (16 << 20) {
            return Err(Error::InvalidParameter(
                "the memory budget must be at least 16 MiB".into(),
            ));
        }
        if replace || Manifest::load_current(dir).ok().flatten().is_none() {
            // Checked before anything is created (an index's own parameters are used
            // otherwise, and checked below).
            Fingerprinter::new(opts.params)?;
        }
        let mut txn = Txn::begin(dir, create)?;
        let mut opts = opts;
        let mut kept = Vec::new();
        if let (false, Some(m)) = (replace, txn.base()) {
            // Added posts are fingerprinted like the index's own.
            opts.params = m.params;
            Fingerprinter::new(m.params)?;
            for s in &m.segments {
                kept.push(Segment::open(
                    dir,
                    s,
                    m.generation,
                    &m.params,
                    super::Access::Mmap,
                )?);
            }
            if let Some(c) = &m.clusters {
                ClustersFile::open(dir, c, m, super::Access::Mmap)?;
            }
        }
        txn.remove_leftovers()?;
        let fp = Fingerprinter::new(opts.params)?;
        Ok(IndexWriter {
            txn,
            fp,
            replace,
            kept,
            deletes: BTreeMap::new(),
            written: Vec::new(),
            flushed_ids: Vec::new(),
            bloom: Bloom::default(),
            buf: Buffer::default(),
            stats: BuildStats::default(),
            times: StageTimes::default(),
            opts,
            texts: BuildTexts {
                samples: TEXT_DICT_SAMPLES,
                codec: None,
            },
        })
    }

    /// Trains the text dictionary on at most `samples` texts (a share of a distributed
    /// build trains on its share), if none is trained yet.
    pub(crate) fn set_dict_samples(&mut self, samples: usize) {
        self.texts.samples = samples;
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        self.txn.dir()
    }

    /// The live generation (`None` before the first commit of a new index).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.txn.base()
    }

    /// The fingerprinter posts are fingerprinted with (the index's parameters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fp
    }

    /// Counts since the last commit.
    pub fn stats(&self) -> &BuildStats {
        &self.stats
    }

    /// Whether anything was added or deleted since the last commit.
    pub fn has_changes(&self) -> bool {
        self.buf.posts() > 0 || !self.written.is_empty() || !self.deletes.is_empty()
    }

    /// Adds posts, in order (fingerprinted in parallel); returns each post's outcome. Ids
    /// the index already holds are skipped as [`PostOutcome::DuplicateId`], or supersede
    /// the old post with [`OnExistingId::Replace`]. Takes [`NewPost`]s, or anything that
    /// lends itself as one (the input readers' `RawPost`).
    pub fn add<'p, P>(&mut self, posts: &'p [P]) -> Result<Vec<PostOutcome>>
    where
        &'p P: Into<NewPost<'p>>,
    {
        let posts: Vec<NewPost<'p>> = posts.iter().map(Into::into).collect();
        let prepared = prepare(&self.fp, &posts);
        self.add_prepared(&posts, prepared)
    }

    /// [`add`](Self::add) with the fingerprints already computed by [`prepare`] (with this
    /// writer's fingerprinter) for these `posts`, so that a caller can fingerprint the
    /// next batch while this one is inserted.
    pub(crate) fn add_prepared(
        &mut self,
        posts: &[NewPost<'_>],
        prepared: PreparedBatch,
    ) -> Result<Vec<PostOutcome>> {
        let t = std::time::Instant::now();
        let writing = self.times.segment_writing();
        let r = self.insert_prepared(posts, prepared);
        // Segments written on the way are counted in their own stages.
        self.times.insert +=
            (t.elapsed().as_secs_f64() - (self.times.segment_writing() - writing)).max(0.0);
        r
    }

    fn insert_prepared(
        &mut self,
        posts: &[NewPost<'_>],
        prepared: PreparedBatch,
    ) -> Result<Vec<PostOutcome>> {
        let k = self.fp.params().num_perm as usize;
        let bands = self.fp.params().lsh.bands as usize;
        let mut outcomes = Vec::with_capacity(posts.len());
        let mut posts_iter = posts.iter();
        for (prepared, sigs, keys) in prepared.chunks {
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
                if let Some(old) = self.find_existing_id_hashed(post.id, p.hashes.id)? {
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
                self.buf.insert(
                    post,
                    p.content_hash,
                    &p.hashes,
                    sig,
                    key,
                    self.opts.store_text,
                );
                self.stats.indexed += 1;
                outcomes.push(outcome);
            }
            let (memory, budget) = (self.buf.memory(), self.opts.memory_budget);
            if memory >= budget || self.buf.contents.len() as u64 >= u32::MAX as u64 / 2 {
                self.flush_in(Pieces::Buffered)?;
            } else if memory.saturating_add(self.buf.retained()) > budget.saturating_add(budget / 8)
            {
                // The last segment's vectors, recycled, would overrun the budget with this
                // segment's mix: what this one has not grown into is given back.
                self.buf.release_retained();
            }
        }
        Ok(outcomes)
    }

    /// Makes room for `bytes` that the caller is about to use outside this writer's buffer
    /// (a long record being fingerprinted): writes the buffered posts out as a segment if
    /// the memory budget cannot hold both. Normal records never call it, so it does not
    /// move segment boundaries on inputs without long records.
    pub(crate) fn make_room(&mut self, bytes: usize) -> Result<()> {
        if self.buf.memory().saturating_add(bytes) > self.opts.memory_budget {
            self.flush_in(Pieces::Buffered)?;
        }
        let held = self.buf.memory().saturating_add(self.buf.retained());
        if held.saturating_add(bytes) > self.opts.memory_budget {
            self.buf.release_retained();
        }
        Ok(())
    }

    /// Where a live post with this id already is, if anywhere.
    fn find_existing_id(&mut self, id: &str) -> Result<Option<Holder>> {
        self.find_existing_id_hashed(id, xxh3_64(id.as_bytes()))
    }

    /// [`find_existing_id`](Self::find_existing_id) with `h = xxh3_64(id)`.
    fn find_existing_id_hashed(&mut self, id: &str, h: u64) -> Result<Option<Holder>> {
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
            // `find_id` checksums the id map before its first use.
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

    /// Marks post `p` of segment `seg` (kept or written by this writer) deleted. A kept
    /// segment's bitmap is checksummed before its bits are carried into the new one.
    fn mark_deleted(&mut self, (seg, p): (u64, u32)) -> Result<()> {
        let words = match self.deletes.entry(seg) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let (n, old) = if let Some(s) = self.kept.iter().find(|s| s.entry().id == seg) {
                    check_deleted_file(self.txn.dir(), s.entry())?;
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

    /// Writes the buffered posts as a segment (not yet visible: see [`commit`](Self::commit)):
    /// in huge pieces if no other was written since the last commit, else as a run
    /// ([`flush_in`](Self::flush_in)).
    fn flush(&mut self) -> Result<()> {
        let pieces = if self.written.is_empty() {
            Pieces::Huge
        } else {
            Pieces::Buffered
        };
        self.flush_in(pieces)
    }

    /// Writes the buffered posts as a segment, its files handed to the kernel in `pieces`:
    /// [`Pieces::Buffered`] for a run, written because the memory budget filled (a bulk
    /// build merges its runs into one segment, written in huge pieces for the lookups that
    /// map it, and deletes them; ARCHITECTURE.md, "Lookups").
    fn flush_in(&mut self, pieces: Pieces) -> Result<()> {
        if self.buf.posts() == 0 {
            return Ok(());
        }
        let id = self.txn.new_segment_id();
        let written = write_segment(
            self.txn.dir(),
            id,
            &self.buf,
            self.fp.params(),
            self.opts.store_text,
            &mut self.times,
            &mut self.texts,
            pieces,
        );
        let entry = match written {
            Ok(entry) => entry,
            Err(e) => {
                // The posts are not kept (as before the buffer was recycled), nor its memory.
                self.buf = Buffer::default();
                return Err(e);
            }
        };
        self.stats.segments += 1;
        self.stats.unique_texts += entry.contents;
        self.stats.bytes += entry.files.values().map(|f| f.len).sum::<u64>();
        // Remember the ids for duplicate detection.
        for p in 0..self.buf.posts() {
            self.bloom.insert(xxh3_64(self.buf.id(p)));
        }
        // The next segment fills the same vectors (`Buffer::recycle`).
        self.buf.recycle();
        let ids_path = self.txn.dir().join(entry.dir_name()).join("ids.fst");
        let bytes = super::mmap::Data::map(&ids_path)?;
        self.flushed_ids
            .push(fst::Map::new(bytes).map_err(|e| Error::corrupt(&ids_path, e.to_string()))?);
        self.written.push(entry);
        Ok(())
    }

    /// Writes what is buffered and publishes one new generation with the new segments and
    /// deletions (replacing the old generation's segments, for a rebuild). Returns the
    /// counts since the last commit; the writer stays open on the new generation.
    ///
    /// # Errors
    /// I/O errors, and a damaged deletion bitmap or id map met on the way; nothing is
    /// published then.
    pub fn commit(&mut self) -> Result<BuildStats> {
        let stats = self.publish_changes()?;
        let t = std::time::Instant::now();
        self.reopen()?;
        self.times.publish += t.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// [`commit`](Self::commit) for a writer that is dropped next (a bulk build): publishes
    /// without opening the new generation's segments again (a build of many segments
    /// mapped a few pages of each, and spent the time, for nothing).
    pub(crate) fn commit_last(mut self) -> Result<(BuildStats, StageTimes)> {
        let stats = self.publish_changes()?;
        Ok((stats, std::mem::take(&mut self.times)))
    }

    /// Writes what is buffered and publishes one new generation ([`commit`](Self::commit)),
    /// leaving the writer to be reopened or dropped.
    fn publish_changes(&mut self) -> Result<BuildStats> {
        self.flush()?;
        let t = std::time::Instant::now();
        let generation = self.txn.next_generation();
        let base = if self.replace { None } else { self.txn.base() };
        let mut segments = base.map(|m| m.segments.clone()).unwrap_or_default();
        segments.append(&mut self.written);
        for s in &mut segments {
            if let Some(words) = self.deletes.get(&s.id) {
                let entry = write_deleted(
                    &self.txn.dir().join(s.dir_name()),
                    generation,
                    s.posts,
                    words,
                )?;
                self.stats.bytes += entry.len;
                s.deleted = Some(entry);
            }
        }
        let manifest = Manifest {
            format_version: super::format::FORMAT_VERSION,
            generation,
            params: *self.fp.params(),
            segments,
            next_segment_id: self.txn.next_segment_id(),
            // Saved clusters stay valid for the segments they were computed over (added
            // segments have none until saved again); a rebuild drops them.
            clusters: base.and_then(|m| m.clusters.clone()),
            checksum: String::new(),
        };
        self.txn.publish(manifest)?;
        let mut stats = std::mem::take(&mut self.stats);
        stats.bytes += std::fs::metadata(self.txn.dir().join(Manifest::file_name(generation)))
            .map_or(0, |m| m.len());
        self.times.publish += t.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Where this writer's time went so far (over all its commits): insertion, segment
    /// writing and publishing. The bulk build adds its reading, parsing and fingerprinting
    /// ([`IngestSummary::stages`](crate::index::ingest::IngestSummary::stages)).
    pub fn stage_times(&self) -> &StageTimes {
        &self.times
    }

    /// Starts over on the live generation after a publish.
    fn reopen(&mut self) -> Result<()> {
        self.replace = false;
        self.deletes.clear();
        self.written.clear();
        self.flushed_ids.clear();
        self.bloom = Bloom::default();
        self.buf = Buffer::default();
        self.kept.clear();
        if let Some(m) = self.txn.base() {
            for s in &m.segments {
                self.kept.push(Segment::open(
                    self.txn.dir(),
                    s,
                    m.generation,
                    &m.params,
                    super::Access::Mmap,
                )?);
            }
        }
        Ok(())
    }

    /// Merges segments and publishes the result: with more than
    /// [`max_segments`](MergeOptions::max_segments) segments, the run of adjacent segments
    /// holding the fewest posts becomes one; otherwise each segment holding deleted posts is
    /// rewritten alone. Changes not yet
    /// committed are committed first. Every file the merge rewrites, and the clusters file it
    /// keeps, is checksummed before anything is published.
    ///
    /// # Errors
    /// [`Error::NoIndex`] before the first commit; if a segment was written by format
    /// version 1 (rebuild it); if the merge tables do not fit `memory_budget`; on damage
    /// and I/O errors.
    pub fn merge(&mut self, opts: &MergeOptions) -> Result<MergeStats> {
        self.merge_with_progress(opts, &mut |_, _| {})
    }

    /// [`merge`](Self::merge), reporting `(bands done, bands)` for each run.
    pub fn merge_with_progress(
        &mut self,
        opts: &MergeOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeStats> {
        self.merge_planned(opts, false, progress)
    }

    /// [`merge_with_progress`](Self::merge_with_progress), but when merging down to
    /// [`max_segments`](MergeOptions::max_segments) would need more than `memory_budget`,
    /// merges what the budget allows instead of refusing: adjacent segments in groups whose
    /// merges each fit, the fewest segments such merges can leave ([`plan_within`]).
    /// `segments_after` in the stats says how many remain; nothing is merged (and
    /// `merged` is empty) when no two adjacent segments fit together.
    ///
    /// [`plan_within`]: crate::index::plan_within
    ///
    /// # Errors
    /// As [`merge`](Self::merge), except that the budget refuses nothing.
    pub fn merge_within_budget(
        &mut self,
        opts: &MergeOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeStats> {
        self.merge_planned(opts, true, progress)
    }

    fn merge_planned(
        &mut self,
        opts: &MergeOptions,
        within_budget: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeStats> {
        if self.has_changes() || self.replace {
            self.commit()?;
        }
        let t0 = std::time::Instant::now();
        let Some(old) = self.txn.base().cloned() else {
            return Err(Error::NoIndex {
                path: self.txn.dir().to_path_buf(),
            });
        };
        let (next, mut stats) = merge_segments(
            &mut self.txn,
            &old,
            &self.kept,
            opts,
            within_budget,
            progress,
        )?;
        if let Some(next) = next {
            self.txn.publish(next)?;
            self.reopen()?;
        }
        stats.segments_after = self.txn.base().map_or(0, |m| m.segments.len());
        stats.seconds = t0.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Saves a cluster assignment computed on generation `assignment.generation`: a new
    /// `CLUSTERS-<gen>.bin` published through a new generation. Every segment is checksummed
    /// first, so clusters computed from damaged files are not saved under fresh checksums.
    ///
    /// # Errors
    /// [`Error::StaleGeneration`] if the index changed since the assignment was computed (or
    /// this writer has changes not committed); [`Error::NoIndex`] before the first commit;
    /// damage and I/O errors.
    pub fn save_clusters(&mut self, assignment: &ClusterAssignment<'_>) -> Result<Manifest> {
        let Some(m) = self.txn.base().cloned() else {
            return Err(Error::NoIndex {
                path: self.txn.dir().to_path_buf(),
            });
        };
        if m.generation != assignment.generation || self.has_changes() || self.replace {
            return Err(Error::StaleGeneration {
                path: self.txn.dir().to_path_buf(),
                opened: assignment.generation,
                current: m.generation,
            });
        }
        for s in &self.kept {
            s.verify()?;
        }
        let generation = m.generation + 1;
        let entry = write_clusters_file(self.txn.dir(), &m, generation, assignment)?;
        let next = Manifest {
            generation,
            clusters: Some(entry),
            ..m
        };
        let published = self.txn.publish(next)?.clone();
        self.reopen()?;
        Ok(published)
    }
}

/// Checks a kept segment's deletion bitmap file against its manifest entry (length and
/// whole-file checksum) before its bits are carried into a new bitmap.
fn check_deleted_file(dir: &Path, entry: &SegmentEntry) -> Result<()> {
    let Some(d) = &entry.deleted else {
        return Ok(());
    };
    let path = dir.join(entry.dir_name()).join(&d.file);
    let got = file_entry(&path)?;
    if got.len != d.len || got.xxh3 != d.xxh3 {
        return Err(Error::ChecksumMismatch {
            path,
            section: "whole file".into(),
        });
    }
    Ok(())
}

/// Merges the segments of the index in `dir` and publishes the result:
/// [`IndexWriter::open`](IndexWriter::open) then
/// [`IndexWriter::merge`](IndexWriter::merge).
///
/// # Errors
/// As [`IndexWriter::merge`](IndexWriter::merge), and as opening the writer.
pub fn merge(dir: impl AsRef<Path>, opts: &MergeOptions) -> Result<MergeStats> {
    merge_with_progress(dir, opts, &mut |_, _| {})
}

/// [`merge`], reporting `(bands done, bands)` for each run.
pub fn merge_with_progress(
    dir: impl AsRef<Path>,
    opts: &MergeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MergeStats> {
    IndexWriter::open(dir)?.merge_with_progress(opts, progress)
}

/// Merges the segments of the index in `dir` as far as the memory budget allows and
/// publishes the result: [`IndexWriter::open`](IndexWriter::open) then
/// [`IndexWriter::merge_within_budget`](IndexWriter::merge_within_budget).
///
/// # Errors
/// As [`IndexWriter::merge_within_budget`](IndexWriter::merge_within_budget), and as
/// opening the writer.
pub fn merge_within_budget(
    dir: impl AsRef<Path>,
    opts: &MergeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MergeStats> {
    IndexWriter::open(dir)?.merge_within_budget(opts, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::build::IndexBuilder;
    use crate::index::{Index, QueryOptions};

    /// Posts `from..to`, each its own text of about `len` bytes ([`post_text`]).
    fn posts(from: usize, to: usize, len: usize) -> (Vec<String>, Vec<String>) {
        let ids = (from..to).map(|i| format!("p{i}")).collect();
        let texts = (from..to).map(|i| post_text(i, len)).collect();
        (ids, texts)
    }

    /// Post `i`'s text of about `len` bytes.
    fn post_text(i: usize, len: usize) -> String {
        let mut t = format!("post {i} says");
        while t.len() < len {
            t.push_str(&format!(" w{}", t.len() * 31 + i));
        }
        t
    }

    /// Adds posts `from..to` of about `len` bytes each ([`posts`]) to `w`.
    fn add_posts(w: &mut IndexWriter, from: usize, to: usize, len: usize) {
        let (ids, texts) = posts(from, to, len);
        add_texts(w, &ids, &texts);
    }

    /// Adds a post for each id and text, with no account, platform or time.
    fn add_texts(w: &mut IndexWriter, ids: &[String], texts: &[String]) {
        let batch: Vec<NewPost<'_>> = ids
            .iter()
            .zip(texts)
            .map(|(id, text)| NewPost {
                id,
                text,
                account: "",
                platform: "",
                ts: None,
            })
            .collect();
        w.add(&batch).expect("adds");
    }

    #[test]
    fn recycled_vectors_give_back_what_a_new_mix_would_overrun_the_budget_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = 16 << 20;
        let opts = BuildOptions {
            memory_budget: budget,
            ..BuildOptions::default()
        };
        let mut b = IndexBuilder::create(dir.path().join("index"), opts).expect("creates");
        let w = b.writer_mut();
        let add = |w: &mut IndexWriter, from: usize, to: usize, len: usize| {
            add_posts(w, from, to, len);
            // What the buffer holds, recycled vectors included, stays within the budget
            // plus an eighth (the check runs after each chunk of 256 posts; these batches
            // are one chunk each).
            let held = w.buf.memory() + w.buf.retained();
            assert!(
                held <= budget + budget / 8,
                "{held} bytes held after post {to} (budget {budget})"
            );
        };
        // Long posts until the first segment is written: its texts' memory is recycled.
        let mut next = 0;
        while w.stats().segments == 0 {
            add(w, next, next + 256, 4_000);
            next += 256;
        }
        assert!(w.buf.retained() > budget / 2, "the texts' memory is kept");
        // Then short posts: their signatures and band keys grow where the texts were.
        let first = w.stats().segments;
        while w.stats().segments == first {
            add(w, next, next + 256, 40);
            next += 256;
        }
        b.finish().expect("finishes");
    }

    /// Copies directory `from` (files and directories) to `to`.
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("reads") {
            let e = e.expect("entry");
            let dest = to.join(e.file_name());
            if e.file_type().expect("type").is_dir() {
                copy_dir(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).expect("copies");
            }
        }
    }

    /// Every file under `dir`, by path relative to it, with its bytes.
    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).expect("reads") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let rel = p.strip_prefix(dir).expect("under").display().to_string();
                    out.insert(rel, std::fs::read(&p).expect("reads"));
                }
            }
        }
        out
    }

    /// Builds an index in `<tmp>/a` under a 16 MiB budget, adding batches of 256 posts (the
    /// texts `text(i)`, ids `p<i>`) until it has `segments` segments, and copies it to
    /// `<tmp>/b`. Returns the two directories, the manifest and how many posts were added.
    fn two_copies_in_segments(
        tmp: &Path,
        segments: u64,
        text: impl Fn(usize) -> String,
    ) -> (std::path::PathBuf, std::path::PathBuf, Manifest, usize) {
        let (a, b) = (tmp.join("a"), tmp.join("b"));
        let opts = BuildOptions {
            memory_budget: 16 << 20,
            ..BuildOptions::default()
        };
        let mut builder = IndexBuilder::create(&a, opts).expect("creates");
        let w = builder.writer_mut();
        let mut next = 0;
        while w.stats().segments < segments {
            let (ids, texts): (Vec<String>, Vec<String>) = (next..next + 256)
                .map(|i| (format!("p{i}"), text(i)))
                .unzip();
            add_texts(w, &ids, &texts);
            next += 256;
        }
        builder.finish().expect("finishes");
        copy_dir(&a, &b);
        let (m, _) = Manifest::load_current(&a)
            .expect("loads")
            .expect("an index");
        assert!(m.segments.len() as u64 >= segments);
        (a, b, m, next)
    }

    #[test]
    fn a_merge_within_budget_merges_the_groups_that_fit_and_answers_as_one_segment_does() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Texts of letters (the normalizer drops digits): no two alike.
        let text = |i: usize| -> String {
            (0..300u64)
                .map(|j| {
                    let mut v = (i as u64 * 1_000 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                    let mut w = String::new();
                    for _ in 0..5 {
                        w.push(char::from(b'a' + (v % 26) as u8));
                        v /= 26;
                    }
                    w
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (a, b, m, next) = two_copies_in_segments(tmp.path(), 5, text);
        let n = m.segments.len();
        assert!(m.segments.iter().all(|s| s.contents == s.posts));
        let n_posts: u64 = m.segments.iter().map(|s| s.posts).sum();
        let contents: u64 = m.segments.iter().map(|s| s.contents).sum();
        // Room for a merge of about two fifths of the posts: a few merges, none of them all.
        let budget = super::super::merge::memory_need(n_posts * 2 / 5, contents * 2 / 5);
        let opts = MergeOptions {
            max_segments: 1,
            memory_budget: budget,
        };
        let err = merge(&b, &opts).expect_err("the whole merge does not fit");
        assert!(err.to_string().contains("memory budget"), "{err}");
        let groups = super::super::merge::plan_within(&m.segments, 1, budget);
        let left = n - groups.iter().map(|g| g.len() - 1).sum::<usize>();
        assert!(1 < left && left < n, "{groups:?} of {n}");
        let mut calls = 0;
        let st = merge_within_budget(&a, &opts, &mut |_, _| calls += 1).expect("merges");
        assert_eq!(st.segments_before, n);
        assert_eq!(st.segments_after, left);
        assert_eq!(st.written.len(), groups.len());
        let grouped: u64 = groups
            .iter()
            .flat_map(|g| &m.segments[g.clone()])
            .map(|s| s.posts)
            .sum();
        assert_eq!((st.posts_in, st.posts_out), (grouped, grouped));
        assert!(calls > 0);
        // Each merged segment fits the budget: its posts and contents need no more.
        let (after, _) = Manifest::load_current(&a)
            .expect("loads")
            .expect("an index");
        assert_eq!(after.segments.len(), left);
        for s in after.segments.iter().filter(|s| st.written.contains(&s.id)) {
            assert!(super::super::merge::memory_need(s.posts, s.contents) <= budget);
        }
        // The same answers as the whole index merged into one segment.
        merge(
            &b,
            &MergeOptions {
                memory_budget: 1 << 30,
                ..MergeOptions::default()
            },
        )
        .expect("merges");
        let (ia, ib) = (
            Index::open(&a).expect("opens"),
            Index::open(&b).expect("opens"),
        );
        assert_eq!(ib.segments().len(), 1);
        assert_eq!(ia.segments().len(), left);
        let q = QueryOptions {
            limit: 0,
            ..QueryOptions::default()
        };
        for i in (0..next).step_by(97) {
            // One word in thirty changed.
            let changed = text(i)
                .split(' ')
                .enumerate()
                .map(|(j, w)| if j % 30 == 0 { "changed" } else { w })
                .collect::<Vec<_>>()
                .join(" ");
            let hits = |i: &Index| -> Vec<(String, u64)> {
                i.query(&changed, &q)
                    .expect("queries")
                    .hits
                    .into_iter()
                    .map(|h| (h.id, h.similarity.to_bits()))
                    .collect()
            };
            let got = hits(&ia);
            assert!(!got.is_empty());
            assert_eq!(got, hits(&ib));
        }
        // Again within the same budget: each group was as long as the budget allowed (and
        // no two posts share a text, so merging saved nothing), so nothing more is merged.
        let again = merge_within_budget(&a, &opts, &mut |_, _| {}).expect("merges");
        assert!(again.merged.is_empty(), "{again:?}");
        assert_eq!(again.segments_after, left);
    }

    #[test]
    fn a_merge_keeps_source_texts_mapped_while_they_fit_and_writes_the_same_bytes_either_way() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, b, m, _) = two_copies_in_segments(tmp.path(), 3, |i| post_text(i, 2_000));
        let need = super::super::merge::memory_need(
            m.segments.iter().map(|s| s.posts).sum(),
            m.segments.iter().map(|s| s.contents).sum(),
        );
        // Room for every source text: read in once, never released.
        let roomy = merge(
            &a,
            &MergeOptions {
                memory_budget: need + (1 << 30),
                ..MergeOptions::default()
            },
        )
        .expect("merges");
        assert_eq!(roomy.segments_after, 1);
        assert_eq!(roomy.text_page_releases, 0);
        // No room: released after every round of frames.
        let tight = merge(
            &b,
            &MergeOptions {
                memory_budget: need,
                ..MergeOptions::default()
            },
        )
        .expect("merges");
        assert!(tight.text_page_releases >= 1, "{tight:?}");
        assert_eq!(files(&a), files(&b), "the same index either way");
    }
}
