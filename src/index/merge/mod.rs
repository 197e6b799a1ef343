//! Merging segments: fewer segments for faster lookups, and deleted posts dropped for good.
//!
//! A merge picks a run of adjacent segments (the tiered policy below), writes them as one new
//! segment and publishes a manifest that names it instead of them. Everything streams:
//!
//! - **Band tables** are k-way merged. Every format-2 entry holds the top 32 bits of its
//!   band key, so the merged table can use any directory size: per band, the sources'
//!   entries (each sorted by prefix, a prefix's entries first seen first) are merged in one
//!   sequential pass with content ids remapped (a prefix's entries in source order, so they
//!   stay first seen first). Bands are merged in parallel into memory when the budget has
//!   room (`bands.rs`), else streamed one at a time; either way they are written, and their
//!   key groups fed to the new content order (near-duplicates together: `order.rs`), in
//!   band order. The content ids are spilled and renumbered to that order when they are
//!   copied into the file.
//! - **Signatures, posts and texts** are copied in that content order (posts of a content
//!   in source order, then their order), dead posts left out. Texts are one zstd frame per
//!   post: when every source's frames share one dictionary (the segments of one build) the
//!   frames are copied as they are; otherwise they are recompressed with a dictionary
//!   trained for the new segment, each parallel task reading and compressing a run of posts.
//! - **Ids**: the sources' `ids.fst` maps are streamed through an fst union, which yields
//!   ids in sorted order, straight into the new map.
//!
//! Memory is the remap tables (4 bytes per source post and content), the content tables,
//! the bands held in memory (8 bytes per content each, only as many as the budget allows)
//! and two rounds of compressed text blocks. Old files are removed after the new
//! manifest is published; readers that have them mapped keep reading them (POSIX unlink).

mod bands;
mod files;
mod renumber;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::encode::{begin_segment, finish_segment, timed};
use super::manifest::{Manifest, SegmentEntry};
use super::segment::Segment;
use super::txn::Txn;
use crate::error::{Error, Result};
use bands::merge_bands;
use files::{write_ids, write_posts, write_sigs, write_texts};
use renumber::renumber;

/// Options of [`IndexWriter::merge`](super::IndexWriter::merge) and [`merge`](super::merge()).
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Merge until at most this many segments remain (at least 1). When there are already
    /// no more, segments holding deleted posts are rewritten without them.
    pub max_segments: usize,
    /// Memory budget in bytes; the merge refuses to start if its tables would not fit.
    pub memory_budget: usize,
}

impl Default for MergeOptions {
    fn default() -> MergeOptions {
        MergeOptions {
            max_segments: 1,
            memory_budget: 2 << 30,
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeStats {
    /// Segments before.
    pub segments_before: usize,
    /// Segments after.
    pub segments_after: usize,
    /// Ids of the segments that were merged (replaced).
    pub merged: Vec<u64>,
    /// Ids of the segments written.
    pub written: Vec<u64>,
    /// Posts read from the merged segments, deleted ones included.
    pub posts_in: u64,
    /// Posts written (the live ones).
    pub posts_out: u64,
    /// Unique texts written.
    pub unique_texts_out: u64,
    /// Bytes of the merged segments' files.
    pub bytes_in: u64,
    /// Bytes of the written segments' files.
    pub bytes_out: u64,
    /// Whether a saved cluster assignment was dropped (its posts were renumbered; run
    /// `textreuse clusters --save` again).
    pub clusters_dropped: bool,
    /// Whether stored texts were dropped because some merged segment had none.
    pub texts_dropped: bool,
    /// Times the sources' text pages were released during the text step (each time, the
    /// pages read since the last one would have passed the memory budget's room; 0 when
    /// the sources' texts fit in it).
    pub text_page_releases: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Where the time went, step by step.
    pub steps: MergeSteps,
}

/// Seconds a merge spent in each step, over all its runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeSteps {
    /// Checksumming the sources (and the clusters file kept).
    pub verify: f64,
    /// New content and post numbers.
    pub renumber: f64,
    /// The band file's merge: its directories, its entries (spilled) and the content order.
    pub bands: f64,
    /// The signature file and, beside it, the band file's entries copied in, renumbered to
    /// the content order (wall time: the two steps below overlap inside it).
    pub sigs_wall: f64,
    /// The signature file.
    pub sigs: f64,
    /// The band file's entries copied in.
    pub band_entries: f64,
    /// The posts, id and text files, written at once after the signatures (wall time: the
    /// three steps below overlap inside it).
    pub files: f64,
    /// The posts file.
    pub posts: f64,
    /// The id map.
    pub ids: f64,
    /// The text file (frame copies, or decompression, dictionary training and compression).
    pub texts: f64,
}

/// Which segments (by position) a merge down to `max_segments` rewrites: runs of adjacent
/// segments, each becoming one segment.
///
/// With more than `max_segments` segments, the run of `n - max_segments + 1` adjacent
/// segments holding the fewest posts is merged (appends leave small segments at the end,
/// so the newest, smallest ones are merged first and the large ones are not rewritten).
/// Otherwise each segment that holds deleted posts is rewritten alone.
pub fn plan(segments: &[SegmentEntry], max_segments: usize) -> Vec<std::ops::Range<usize>> {
    let n = segments.len();
    let max = max_segments.max(1);
    if n > max {
        let len = n - max + 1;
        let cost = |r: std::ops::Range<usize>| segments[r].iter().map(|s| s.posts).sum::<u64>();
        // The cheapest run; among equals, the latest.
        let best = (0..=n - len)
            .rev()
            .min_by_key(|&i| cost(i..i + len))
            .unwrap_or(0);
        return std::iter::once(best..best + len).collect();
    }
    segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.deleted.is_some())
        .map(|(i, _)| i..i + 1)
        .collect()
}

/// Which segments a merge toward `max_segments` rewrites when the merge of each run must fit
/// `budget` bytes ([`memory_need`]): [`plan`]'s runs when each fits. Otherwise (more
/// segments than `max_segments`), the segments are grouped from the first, each group of
/// adjacent segments as long as its merge fits, and each group of two or more is merged: the
/// fewest segments that merges within the budget can leave (a greedy cut is optimal for
/// adjacent groups whose cost grows with their length), possibly fewer than
/// `max_segments`. With no more segments than `max_segments`, the segments holding deleted
/// posts whose rewrite fits. Empty when no two adjacent segments fit together.
pub fn plan_within(
    segments: &[SegmentEntry],
    max_segments: usize,
    budget: usize,
) -> Vec<std::ops::Range<usize>> {
    let need = |r: std::ops::Range<usize>| {
        let s = &segments[r];
        memory_need(
            s.iter().map(|s| s.posts).sum(),
            s.iter().map(|s| s.contents).sum(),
        )
    };
    let runs = plan(segments, max_segments);
    if runs.iter().all(|r| need(r.clone()) <= budget) {
        return runs;
    }
    if segments.len() <= max_segments.max(1) {
        return runs
            .into_iter()
            .filter(|r| need(r.clone()) <= budget)
            .collect();
    }
    let mut groups = Vec::new();
    let mut start = 0;
    for end in 1..=segments.len() {
        if end == segments.len() || need(start..end + 1) > budget {
            if end - start >= 2 {
                groups.push(start..end);
            }
            start = end;
        }
    }
    groups
}

/// Writes the merged segments of generation `old` (whose segments `open` are, in order)
/// and returns the manifest to publish (`None` if there is nothing to merge): the runs of
/// [`plan`], or with `within_budget` those of [`plan_within`]. Every source
/// segment's files, and the clusters file kept, are checksummed first: damage is refused,
/// never rewritten under fresh checksums.
pub(crate) fn merge_segments(
    txn: &mut Txn,
    old: &Manifest,
    open: &[Segment],
    opts: &MergeOptions,
    within_budget: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Option<Manifest>, MergeStats)> {
    let dir = txn.dir().to_path_buf();
    let dir = dir.as_path();
    let mut stats = MergeStats {
        segments_before: old.segments.len(),
        ..MergeStats::default()
    };
    let runs = if within_budget {
        plan_within(&old.segments, opts.max_segments, opts.memory_budget)
    } else {
        plan(&old.segments, opts.max_segments)
    };
    if runs.is_empty() {
        return Ok((None, stats));
    }
    // A run that cannot be merged (format 1, or more than the budget) is refused before
    // any file is read: checksumming first read every source file (a bulk build under a
    // small budget did, only to leave its segments as they were).
    let fits = runs
        .iter()
        .map(|run| check_mergeable(&open[run.clone()], opts, rayon::current_num_threads()))
        .collect::<Result<Vec<_>>>()?;
    let t = std::time::Instant::now();
    // The sources are checked in parallel; the first damaged one (in order) is reported.
    let checked: Vec<Result<()>> = runs
        .iter()
        .flat_map(|run| &open[run.clone()])
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|s| s.verify())
        .collect();
    checked.into_iter().collect::<Result<()>>()?;
    stats.steps.verify += t.elapsed().as_secs_f64();
    let mut segments: Vec<SegmentEntry> = Vec::new();
    let mut cursor = 0;
    for (run, &fit) in runs.iter().zip(&fits) {
        segments.extend_from_slice(&old.segments[cursor..run.start]);
        let sources = &open[run.clone()];
        for s in &old.segments[run.clone()] {
            stats.merged.push(s.id);
            stats.posts_in += s.posts;
            stats.bytes_in += s.files.values().map(|f| f.len).sum::<u64>();
        }
        let id = txn.new_segment_id();
        if let Some(entry) = merge_run(dir, id, sources, old, opts, fit, &mut stats, progress)? {
            stats.written.push(id);
            stats.posts_out += entry.posts;
            stats.unique_texts_out += entry.contents;
            stats.bytes_out += entry.files.values().map(|f| f.len).sum::<u64>();
            segments.push(entry);
        }
        cursor = run.end;
    }
    segments.extend_from_slice(&old.segments[cursor..]);
    // A saved cluster assignment numbers posts by segment: keep it only if the segments it
    // covers (the first ones) were not rewritten.
    let clusters = match &old.clusters {
        Some(c) => {
            let cf = super::clusters_file::ClustersFile::open(dir, c, old, super::Access::Mmap)?;
            let covered = cf.segment_ids();
            if covered.iter().any(|id| stats.merged.contains(id)) {
                stats.clusters_dropped = true;
                None
            } else {
                cf.verify()?;
                Some(c.clone())
            }
        }
        None => None,
    };
    let manifest = Manifest {
        format_version: super::format::FORMAT_VERSION,
        generation: old.generation + 1,
        params: old.params,
        segments,
        next_segment_id: txn.next_segment_id(),
        clusters,
        checksum: String::new(),
    };
    Ok((Some(manifest), stats))
}

/// Writes `sources` as segment `id`, merging `at_once` bands at a time beside the `need`
/// bytes of its other tables ([`check_mergeable`]); `None` if no live post is left.
#[allow(clippy::too_many_arguments)]
fn merge_run(
    dir: &Path,
    id: u64,
    sources: &[Segment],
    old: &Manifest,
    opts: &MergeOptions,
    (at_once, need): (usize, usize),
    stats: &mut MergeStats,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<SegmentEntry>> {
    let mut clock = std::time::Instant::now();
    let mut lap = |step: &mut f64| {
        let now = std::time::Instant::now();
        *step += (now - clock).as_secs_f64();
        clock = now;
    };
    let Some(mut new) = renumber(sources)? else {
        return Ok(None);
    };
    lap(&mut stats.steps.renumber);
    let seg_dir = begin_segment(dir, id)?;
    let mut files = BTreeMap::new();
    // The band merge decides the content order (near-duplicates together: `order.rs`); the
    // other files are written in it.
    let (bands, rank) = merge_bands(&seg_dir, sources, &new, &old.params, at_once, progress)?;
    new.reorder(&rank)?;
    lap(&mut stats.steps.bands);
    let has_text = sources.iter().all(Segment::has_text);
    stats.texts_dropped |= !has_text && sources.iter().any(Segment::has_text);
    // The other files depend only on the new order. The signatures go first, beside the
    // band entries' copy into the band file (renumbered to the new order): they are read at
    // random over the sources, and between two releases of their pages (every 2^18
    // contents) nearly the whole of the sources' signature files is mapped in (the merge's
    // peak memory). Then the texts (frame copies or parallel recompression) on one worker,
    // and the posts and the ids as two tasks beside them (the id step streams the sources'
    // maps into the fst builder: little memory of its own), each step releasing only its
    // own files' pages.
    let new = &new;
    let (entries, sigs) = rayon::join(
        || timed(|| bands.finish(&rank)),
        || timed(|| write_sigs(&seg_dir, sources, new, &old.params, has_text)),
    );
    drop(rank);
    let (entry, secs) = entries?;
    files.insert("bands".to_string(), entry);
    stats.steps.band_entries += secs;
    // A failed signature file stops the merge before the other files are written.
    let sigs = Ok(sigs?);
    lap(&mut stats.steps.sigs_wall);
    let files_start = std::time::Instant::now();
    let (text, (posts, ids)) = rayon::join(
        || {
            timed(|| {
                // The budget's room beside the merge's tables holds source text pages.
                let room = opts.memory_budget.saturating_sub(need);
                has_text
                    .then(|| write_texts(&seg_dir, sources, new, room))
                    .transpose()
            })
        },
        || {
            rayon::join(
                || timed(|| write_posts(&seg_dir, sources, new)),
                || timed(|| write_ids(dir, &seg_dir, sources, new)),
            )
        },
    );
    for (name, r, step) in [
        ("sigs", sigs, &mut stats.steps.sigs),
        ("posts", posts, &mut stats.steps.posts),
        ("ids.fst", ids, &mut stats.steps.ids),
    ] {
        let (entry, secs) = r?;
        files.insert(name.to_string(), entry);
        *step += secs;
    }
    let (text, secs) = text?;
    stats.steps.texts += secs;
    if let Some((entry, releases)) = text {
        files.insert("text".to_string(), entry);
        stats.text_page_releases += releases;
    }
    stats.steps.files += files_start.elapsed().as_secs_f64();
    let entry = SegmentEntry {
        id,
        posts: new.n_posts(),
        contents: new.n_contents(),
        has_text,
        files,
        deleted: None,
    };
    finish_segment(dir, &seg_dir, entry).map(Some)
}

/// Refuses sources written by format version 1, and a merge whose tables would not fit the
/// memory budget. Returns how many bands to merge at once (in parallel, held in memory:
/// `merge_bands`): up to `threads`, as many as the budget has room for besides the tables
/// (0: none, each band streams into the file), and the memory the merge needs besides its
/// bands ([`merge_need`]).
fn check_mergeable(
    sources: &[Segment],
    opts: &MergeOptions,
    threads: usize,
) -> Result<(usize, usize)> {
    for s in sources {
        if s.known_key_bits() < 32 || !s.has_hashes() {
            return Err(Error::IndexState {
                path: s.dir().to_path_buf(),
                what: "was written by format version 1, whose band entries hold too few key bits and no content hashes to merge; rebuild the index with this version".into(),
            });
        }
    }
    let (total_posts, total_contents, need) = merge_need(sources);
    if need > opts.memory_budget {
        return Err(Error::InvalidParameter(format!(
            "merging {total_posts} posts needs about {} MiB, more than the memory budget ({} MiB)",
            need >> 20,
            opts.memory_budget >> 20
        )));
    }
    // Bands merged in memory: each holds its entries (8 bytes per content), and twice as
    // many as are merged at once are held.
    let per_band = (total_contents * bands::BAND_BYTES_PER_CONTENT).max(1) as usize;
    Ok((
        threads.min((opts.memory_budget - need) / per_band / 2),
        need,
    ))
}

/// The posts and contents of a merge's sources, and the memory the merge needs besides its
/// bands and the source text pages it keeps mapped, in bytes.
fn merge_need(sources: &[Segment]) -> (u64, u64, usize) {
    let total_posts: u64 = sources.iter().map(Segment::n_posts).sum();
    let total_contents: u64 = sources.iter().map(Segment::n_contents).sum();
    // Remap tables, the post order (twice while it is reordered) and the account and
    // platform columns (about 32 bytes per post); the content tables, the content order and
    // the map of content hashes, sized once (about 76 bytes per content); pages read between
    // releases, text and band buffers, compression contexts and allocator slack (256 MiB).
    // Checked against peak RSS: 10 x 1M posts, 1.01 GB (before the content order); the
    // closing merge of dev 10M (6 segments) peaked at 0.55 GB anonymous memory and 0.54 GB
    // of mapped source pages (before the content order, with two bands merged at once), and
    // at 1.52 GB RSS with the content order and two bands merged while two are written.
    (
        total_posts,
        total_contents,
        memory_need(total_posts, total_contents),
    )
}

/// The memory a merge of `posts` posts and `contents` contents needs besides its bands and
/// the source text pages it keeps mapped, in bytes: the least `memory_budget` that merges
/// them ([`MergeOptions`]).
pub fn memory_need(posts: u64, contents: u64) -> usize {
    let need = posts
        .saturating_mul(32)
        .saturating_add(contents.saturating_mul(76))
        .saturating_add(256 << 20);
    usize::try_from(need).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, posts: u64, deleted: bool) -> SegmentEntry {
        SegmentEntry {
            id,
            posts,
            contents: posts,
            has_text: true,
            files: BTreeMap::new(),
            deleted: deleted.then(|| crate::index::manifest::DeletedEntry {
                file: format!("deleted-{id:06}"),
                count: 1,
                len: 0,
                xxh3: String::new(),
            }),
        }
    }

    #[test]
    fn plan_merges_the_cheapest_adjacent_run_or_rewrites_segments_with_deletions() {
        // Ten segments: big old ones first, small appended ones last.
        let segs: Vec<SegmentEntry> = [1000, 900, 800, 10, 12, 9, 11, 10, 8, 7]
            .iter()
            .enumerate()
            .map(|(i, &n)| seg(i as u64 + 1, n, false))
            .collect();
        // Down to 4: a run of 7 adjacent segments, the one with the fewest posts.
        assert_eq!(plan(&segs, 4), vec![3..10]);
        // Down to 1: everything.
        assert_eq!(plan(&segs, 1), vec![0..10]);
        // Down to 9: the cheapest pair (8 + 7), the latest among equals.
        assert_eq!(plan(&segs, 9), vec![8..10]);
        // Already few enough and nothing deleted: nothing to do.
        assert!(plan(&segs, 10).is_empty());
        assert!(plan(&segs, 0).len() == 1, "0 means 1");
        // Few enough, but some hold deleted posts: each is rewritten alone.
        let mut segs = segs;
        segs[1] = seg(2, 900, true);
        segs[6] = seg(7, 11, true);
        assert_eq!(plan(&segs, 10), vec![1..2, 6..7]);
    }

    #[test]
    fn plan_within_groups_adjacent_segments_into_the_fewest_merges_that_fit() {
        const M: u64 = 1 << 20;
        // Each segment of `n` MiB-posts needs 108 bytes a post (32 + 76: one content each).
        let segs: Vec<SegmentEntry> = [3, 3, 3, 3, 3, 3, 3, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| seg(i as u64 + 1, n * M, false))
            .collect();
        let need = |posts: u64| memory_need(posts * M, posts * M);
        // Room for everything: the plain plan.
        assert_eq!(plan_within(&segs, 1, need(22)), vec![0..8]);
        assert_eq!(plan_within(&segs, 1, need(22)), plan(&segs, 1));
        // Room for 9 MiB-posts a merge: 3 + 3 + 3 three times over, the last two (3 + 1)
        // together, from the first segment on.
        assert_eq!(plan_within(&segs, 1, need(9)), vec![0..3, 3..6, 6..8]);
        // A budget just under a merge of 9 holds pairs.
        assert_eq!(
            plan_within(&segs, 1, need(9) - 1),
            vec![0..2, 2..4, 4..6, 6..8]
        );
        // Room for no pair but the last (3 + 1): only it.
        assert_eq!(plan_within(&segs, 1, need(4)), vec![6..8]);
        // Room for no pair at all: nothing.
        assert!(plan_within(&segs, 1, need(3)).is_empty());
        // Down to 7 (the last pair), which fits: the plain plan.
        assert_eq!(plan_within(&segs, 7, need(4)), vec![6..8]);
        // Few enough already: rewrites of segments with deletions, those that fit.
        let mut segs = segs;
        segs[0] = seg(1, 3 * M, true);
        segs[7] = seg(8, M, true);
        assert_eq!(plan_within(&segs, 8, need(1)), vec![7..8]);
        assert_eq!(plan_within(&segs, 8, need(3)), vec![0..1, 7..8]);
    }
}
