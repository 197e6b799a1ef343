//! Merging segments: fewer segments for faster lookups, and deleted posts dropped for good.
//!
//! A merge picks a run of adjacent segments (the tiered policy below), writes them as one new
//! segment and publishes a manifest that names it instead of them. Everything streams:
//!
//! - **Band tables** are k-way merged. Every format-2 entry holds the top 32 bits of its
//!   band key, so the merged table can use any directory size: per band, the sources'
//!   entries (each sorted by `(prefix, content)`) are merged in one sequential pass with
//!   content ids remapped, and written out through spill files.
//! - **Signatures, posts and texts** are copied in the new post order (sources in manifest
//!   order, contents in their order, posts of a content in their order), which is each
//!   source's own order with the dead posts left out; texts are recompressed one frame per post
//!   with a dictionary trained for the new segment.
//! - **Ids**: the sources' `ids.fst` maps are streamed through an fst union, which yields
//!   ids in sorted order, straight into the new map.
//!
//! Memory is the remap tables (4 bytes per source post and content), one band's directory
//! and a group of text blocks, whatever the index size. Old files are removed after the new
//! manifest is published; readers that have them mapped keep reading them (POSIX unlink).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use fst::{IntoStreamer, Streamer};
use serde::Serialize;

use super::buffer::{Dict, PreHashedMap};
use super::encode::{
    begin_bands_file, begin_ids_file, begin_sigs_file, dir_bits, file_entry, finish_bands_file,
    finish_ids_file, raw_block, write_posts_file, write_text_file, PostRows, PostsColumns,
    SpillFile, TextCodec, TEXT_BLOCK_POSTS,
};
use super::format::sync_dir;
use super::manifest::{segment_dir_name, Manifest, SegmentEntry};
use super::segment::{Segment, TextCache, NO_TS};
use super::txn::{create_dir, Txn};
use crate::error::{Error, Result};

/// Options of [`merge`].
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
    /// Wall-clock seconds.
    pub seconds: f64,
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

/// Merges the segments of the index in `dir` and publishes the result:
/// [`IndexWriter::open`](super::IndexWriter::open) then
/// [`IndexWriter::merge`](super::IndexWriter::merge).
///
/// # Errors
/// As [`IndexWriter::merge`](super::IndexWriter::merge), and as opening the writer.
pub fn merge(dir: impl AsRef<Path>, opts: &MergeOptions) -> Result<MergeStats> {
    merge_with_progress(dir, opts, &mut |_, _| {})
}

/// [`merge`], reporting `(bands done, bands)` for each run.
pub fn merge_with_progress(
    dir: impl AsRef<Path>,
    opts: &MergeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MergeStats> {
    super::IndexWriter::open(dir)?.merge_with_progress(opts, progress)
}

/// Writes the merged segments of generation `old` (whose segments `open` are, in order)
/// and returns the manifest to publish (`None` if there is nothing to merge). Every source
/// segment's files, and the clusters file kept, are checksummed first: damage is refused,
/// never rewritten under fresh checksums.
pub(crate) fn merge_segments(
    txn: &mut Txn,
    old: &Manifest,
    open: &[Segment],
    opts: &MergeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Option<Manifest>, MergeStats)> {
    let dir = txn.dir().to_path_buf();
    let dir = dir.as_path();
    let mut stats = MergeStats {
        segments_before: old.segments.len(),
        ..MergeStats::default()
    };
    let runs = plan(&old.segments, opts.max_segments);
    if runs.is_empty() {
        return Ok((None, stats));
    }
    for run in &runs {
        for s in &open[run.clone()] {
            s.verify()?;
        }
    }
    let mut segments: Vec<SegmentEntry> = Vec::new();
    let mut cursor = 0;
    for run in &runs {
        segments.extend_from_slice(&old.segments[cursor..run.start]);
        let sources = &open[run.clone()];
        for s in &old.segments[run.clone()] {
            stats.merged.push(s.id);
            stats.posts_in += s.posts;
            stats.bytes_in += s.files.values().map(|f| f.len).sum::<u64>();
        }
        let id = txn.new_segment_id();
        if let Some(entry) = merge_run(dir, id, sources, old, opts, &mut stats, progress)? {
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

/// The live posts of a merge's sources in their new order, for the `posts` encoder. Every
/// 2^18 posts, the pages read so far are released (bounded resident memory).
struct LiveRows<'a> {
    sources: &'a [Segment],
    order: &'a [(u32, u32)],
}

impl PostRows for LiveRows<'_> {
    fn len(&self) -> u64 {
        self.order.len() as u64
    }

    fn visit(&self, f: &mut dyn FnMut(i64, &[u8]) -> Result<()>) -> Result<()> {
        for (i, &(si, p)) in self.order.iter().enumerate() {
            if i % (1 << 18) == 0 {
                self.sources.iter().for_each(Segment::release_pages);
            }
            let m = self.sources[si as usize].post(p)?;
            f(m.ts.unwrap_or(NO_TS), m.id.as_bytes())?;
        }
        Ok(())
    }
}

/// Where the live posts and contents of one source go.
struct Remap {
    /// Old content -> new content (`u32::MAX`: no live post).
    content: Vec<u32>,
    /// Old post -> new post (`u32::MAX`: deleted).
    post: Vec<u32>,
}

/// Writes `sources` as segment `id`; `None` if no live post is left.
fn merge_run(
    dir: &Path,
    id: u64,
    sources: &[Segment],
    old: &Manifest,
    opts: &MergeOptions,
    stats: &mut MergeStats,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<SegmentEntry>> {
    for s in sources {
        if s.known_key_bits() < 32 || !s.has_hashes() {
            return Err(Error::IndexState {
                path: s.dir().to_path_buf(),
                what: "was written by format version 1, whose band entries hold too few key bits and no content hashes to merge; rebuild the index with this version".into(),
            });
        }
    }
    let total_posts: u64 = sources.iter().map(Segment::n_posts).sum();
    let total_contents: u64 = sources.iter().map(Segment::n_contents).sum();
    // Remap tables, the post order and the account and platform columns (about 24 bytes per
    // post); the content tables and the map of content hashes, sized once (about 64 bytes per
    // content); pages read between releases, text and band buffers, compression contexts
    // and allocator slack (256 MiB). Checked against peak RSS: 10 x 1M posts, 1.01 GB.
    let need = (total_posts * 24 + total_contents * 64 + (256 << 20)) as usize;
    if need > opts.memory_budget {
        return Err(Error::InvalidParameter(format!(
            "merging {total_posts} posts needs about {} MiB, more than the memory budget ({} MiB)",
            need >> 20,
            opts.memory_budget >> 20
        )));
    }
    // 1. Remap. Live contents get new ids in order of first appearance, and an exact
    // duplicate (equal content hash) in a later source joins the earlier content, so exact
    // duplicates that arrived in different segments become one group again.
    let mut remaps = Vec::with_capacity(sources.len());
    // Contents by the low 64 bits of their hash (the full hash is checked on a match; the
    // rare 64-bit collision of different texts goes to a second map).
    let mut by_hash: PreHashedMap<u64, u32> = PreHashedMap::default();
    by_hash.reserve(total_contents as usize);
    let mut collided: HashMap<u128, u32> = HashMap::new();
    let mut content_src: Vec<(u32, u32)> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    for (si, s) in sources.iter().enumerate() {
        let mut r = Remap {
            content: vec![u32::MAX; s.n_contents() as usize],
            post: vec![u32::MAX; s.n_posts() as usize],
        };
        let live = s.live_contents();
        for c in 0..s.n_contents() as u32 {
            if live.is_some_and(|l| !l[c as usize]) {
                continue;
            }
            let hash = s.content_hash(c).ok_or_else(|| {
                Error::corrupt(s.dir().join("sigs"), format!("content {c} has no hash"))
            })?;
            let next = content_src.len() as u32;
            let mut new = *by_hash.entry(hash as u64).or_insert(next);
            if new != next {
                let (fs, fc) = content_src[new as usize];
                if sources[fs as usize].content_hash(fc) != Some(hash) {
                    new = *collided.entry(hash).or_insert(next);
                }
            }
            if new == next {
                content_src.push((si as u32, c));
                counts.push(0);
            }
            r.content[c as usize] = new;
            let n = s.content_posts(c)?.filter(|&p| !s.is_deleted(p)).count();
            counts[new as usize] += n as u32;
        }
        s.release_pages();
        remaps.push(r);
    }
    drop(by_hash);
    drop(collided);
    let nc = content_src.len() as u64;
    let mut content_posts: Vec<u32> = Vec::with_capacity(counts.len() + 1);
    content_posts.push(0);
    for &n in &counts {
        let last = content_posts[content_posts.len() - 1];
        content_posts.push(last + n);
    }
    drop(counts);
    let np = content_posts[content_posts.len() - 1] as u64;
    if np == 0 {
        return Ok(None);
    }
    if nc > u32::MAX as u64 / 2 {
        return Err(Error::InvalidParameter(
            "a merged segment would hold more than 2^31 unique texts; merge fewer segments".into(),
        ));
    }
    sources.iter().for_each(Segment::release_pages);
    // Posts grouped by content, each content's posts in source order.
    let mut order: Vec<(u32, u32)> = vec![(0, 0); np as usize];
    {
        let mut next: Vec<u32> = content_posts[..nc as usize].to_vec();
        for (si, (s, r)) in sources.iter().zip(remaps.iter_mut()).enumerate() {
            for c in 0..s.n_contents() as u32 {
                let new = r.content[c as usize];
                if new == u32::MAX {
                    continue;
                }
                for p in s.content_posts(c)? {
                    if s.is_deleted(p) {
                        continue;
                    }
                    let at = next[new as usize];
                    next[new as usize] += 1;
                    order[at as usize] = (si as u32, p);
                    r.post[p as usize] = at;
                }
            }
            s.release_pages();
        }
    }
    let seg_dir = dir.join(segment_dir_name(id));
    create_dir(&seg_dir)?;
    let bands = old.params.lsh.bands as usize;
    let k = old.params.num_perm as usize;
    let mut files = BTreeMap::new();

    // 2. Band tables: a k-way merge per band.
    {
        let path = seg_dir.join("bands");
        let d = dir_bits(nc);
        let nb = 1usize << d;
        let mut w = begin_bands_file(&path, nc, bands, d, old.params.lsh.rows)?;
        let mut spill_prefixes = SpillFile::new(&seg_dir.join("fps.spill.tmp"))?;
        let mut spill_cids = SpillFile::new(&seg_dir.join("cids.spill.tmp"))?;
        let mut dirs = vec![0u32; nb + 1];
        let mut out_p: Vec<u32> = Vec::with_capacity(1 << 16);
        let mut out_c: Vec<u32> = Vec::with_capacity(1 << 16);
        for band in 0..bands {
            dirs.iter_mut().for_each(|x| *x = 0);
            sources.iter().for_each(|s| s.prefetch_band(band));
            let mut cursors = sources
                .iter()
                .zip(&remaps)
                .map(|(s, r)| BandCursor::new(s, band, &r.content))
                .collect::<Result<Vec<_>>>()?;
            // Entries come out in prefix order; the contents of one prefix are sorted and
            // deduplicated (a content unified from two sources has an entry in each).
            let mut group: Vec<u32> = Vec::new();
            let mut group_prefix = 0u32;
            loop {
                let mut best: Option<(usize, (u32, u32))> = None;
                for (i, c) in cursors.iter().enumerate() {
                    if let Some(h) = c.head() {
                        if best.is_none_or(|(_, b)| h < b) {
                            best = Some((i, h));
                        }
                    }
                }
                let next = best.map(|(_, h)| h);
                if next.is_none_or(|(p, _)| p != group_prefix) && !group.is_empty() {
                    group.sort_unstable();
                    group.dedup();
                    let bucket = if d == 0 {
                        0
                    } else {
                        (group_prefix >> (32 - d)) as usize
                    };
                    dirs[bucket + 1] += group.len() as u32;
                    let tag = if d == 0 {
                        group_prefix
                    } else {
                        group_prefix & (u32::MAX >> d)
                    };
                    for &cid in &group {
                        out_p.push(tag);
                        out_c.push(cid);
                    }
                    group.clear();
                    if out_p.len() >= 1 << 16 {
                        spill_prefixes.write_tags(&out_p, d)?;
                        spill_cids.write_u32s(&out_c)?;
                        out_p.clear();
                        out_c.clear();
                    }
                }
                let (Some((i, _)), Some((prefix, cid))) = (best, next) else {
                    break;
                };
                cursors[i].advance()?;
                group_prefix = prefix;
                group.push(cid);
            }
            spill_prefixes.write_tags(&out_p, d)?;
            spill_cids.write_u32s(&out_c)?;
            out_p.clear();
            out_c.clear();
            for i in 0..nb {
                dirs[i + 1] += dirs[i];
            }
            if dirs[nb] as u64 != nc {
                return Err(Error::corrupt(
                    &seg_dir,
                    format!("band {band} merged {} entries for {nc} contents", dirs[nb]),
                ));
            }
            w.write_u32s(&dirs)?;
            sources.iter().for_each(Segment::release_pages);
            progress(band + 1, bands);
        }
        files.insert(
            "bands".to_string(),
            finish_bands_file(w, &path, spill_prefixes, spill_cids)?,
        );
    }
    // 3. Signatures of the live contents, in new order.
    {
        let path = seg_dir.join("sigs");
        let has_text = sources.iter().all(Segment::has_text);
        let mut w = begin_sigs_file(&path, nc, k, &old.params, has_text)?;
        for (i, &(si, c)) in content_src.iter().enumerate() {
            if i % (1 << 18) == 0 {
                sources.iter().for_each(Segment::release_pages);
            }
            w.write(sources[si as usize].signature(c)?)?;
        }
        w.begin(2)?;
        let mut hashes = Vec::with_capacity(1 << 12);
        for (i, chunk) in content_src.chunks(1 << 12).enumerate() {
            if i % 64 == 0 {
                sources.iter().for_each(Segment::release_pages);
            }
            hashes.clear();
            for &(si, c) in chunk {
                let s = &sources[si as usize];
                hashes.push(s.content_hash(c).ok_or_else(|| {
                    Error::corrupt(s.dir().join("sigs"), format!("content {c} has no hash"))
                })?);
            }
            w.write_u128s(&hashes)?;
        }
        w.finish()?;
        sources.iter().for_each(Segment::release_pages);
        files.insert("sigs".to_string(), file_entry(&path)?);
    }
    // 4. Posts: several sequential passes over the live posts in new order.
    // Every 2^18 posts, the pages read so far are released (bounded resident memory).
    let live = || {
        order.iter().enumerate().map(|(i, &(si, p))| {
            if i % (1 << 18) == 0 {
                sources.iter().for_each(Segment::release_pages);
            }
            (&sources[si as usize], p)
        })
    };
    {
        // Account and platform dictionaries in first-seen order, as a build makes them.
        let mut accounts = Dict::default();
        let mut platforms = Dict::default();
        let mut account_of = Vec::with_capacity(np as usize);
        let mut platform_of = Vec::with_capacity(np as usize);
        for (s, p) in live() {
            let m = s.post(p)?;
            account_of.push(accounts.intern(m.account));
            platform_of.push(platforms.intern(m.platform));
        }
        let rows = LiveRows {
            sources,
            order: &order,
        };
        let posts = PostsColumns {
            n_contents: nc,
            content_posts: &content_posts,
            rows: &rows,
            account_of: &account_of,
            accounts: &accounts,
            platform_of: &platform_of,
            platforms: &platforms,
        };
        files.insert(
            "posts".to_string(),
            write_posts_file(&seg_dir.join("posts"), &posts)?,
        );
    }
    // 5. Ids: the union of the sources' maps, streamed in id order.
    {
        let path = seg_dir.join("ids.fst");
        let maps = sources
            .iter()
            .map(Segment::id_map)
            .collect::<Result<Vec<_>>>()?;
        let tmp = super::format::tmp_path(&path);
        let mut mb = begin_ids_file(&tmp)?;
        let mut op = fst::map::OpBuilder::new();
        for m in &maps {
            op = op.add(m.into_stream());
        }
        let mut union = op.union();
        let mut written = 0u64;
        // fst trusts its input; the maps were checksummed before use, and a malformed one
        // that still trips an assertion becomes an error.
        let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            while let Some((key, vals)) = union.next() {
                // The live post with this id (the latest source's, should there be two).
                let mut new = None;
                for v in vals {
                    let r = &remaps[v.index];
                    match r.post.get(v.value as usize) {
                        Some(&n) if n != u32::MAX => {
                            if new.is_none_or(|(i, _)| v.index > i) {
                                new = Some((v.index, n));
                            }
                        }
                        Some(_) => {}
                        None => {
                            return Err(Error::corrupt(
                                sources[v.index].dir().join("ids.fst"),
                                format!("id maps to post {}, out of range", v.value),
                            ))
                        }
                    }
                }
                if let Some((_, n)) = new {
                    mb.insert(key, u64::from(n))
                        .map_err(|e| Error::InvalidParameter(format!("{}: {e}", tmp.display())))?;
                    written += 1;
                }
            }
            Ok(())
        }))
        .map_err(|_| Error::corrupt(dir, "an id map is malformed"))?;
        streamed?;
        if written != np {
            return Err(Error::corrupt(
                dir,
                format!("the id maps hold {written} live ids for {np} live posts"),
            ));
        }
        files.insert("ids.fst".to_string(), finish_ids_file(mb, &tmp, &path)?);
    }
    // 6. Texts, when every source has them: read in new order, recompressed in blocks.
    let has_text = sources.iter().all(Segment::has_text);
    stats.texts_dropped |= !has_text && sources.iter().any(Segment::has_text);
    if has_text {
        let path = seg_dir.join("text");
        // The dictionary is trained on a sample of the merged posts' texts, evenly spaced
        // in the new order (read before the sequential pass).
        let nb = (np as usize).div_ceil(TEXT_BLOCK_POSTS as usize);
        let mut sample_caches: Vec<TextCache> =
            sources.iter().map(|_| TextCache::default()).collect();
        let mut samples: Vec<Vec<u8>> = Vec::new();
        for blk in TextCodec::sample_blocks(nb) {
            let lo = blk * TEXT_BLOCK_POSTS as usize;
            let hi = (lo + TEXT_BLOCK_POSTS as usize).min(order.len());
            let mut texts = Vec::with_capacity(hi - lo);
            for &(si, p) in &order[lo..hi] {
                let si = si as usize;
                texts.push(
                    sources[si]
                        .text(p, &mut sample_caches[si])?
                        .unwrap_or_default(),
                );
            }
            samples.push(raw_block_of(&texts));
        }
        let codec = TextCodec::train(&samples);
        drop(samples);
        let mut spill = SpillFile::new(&seg_dir.join("text.spill.tmp"))?;
        let mut offs = Vec::with_capacity(nb + 1);
        offs.push(0u64);
        // One block cache per source: a source is read mostly in order.
        let mut caches: Vec<TextCache> = sources.iter().map(|_| TextCache::default()).collect();
        let mut posts = order.iter().map(|&(si, p)| (si as usize, p));
        const GROUP: usize = 16_384;
        loop {
            // A group of raw blocks, read sequentially, then compressed in parallel.
            let mut raw_blocks: Vec<Vec<u8>> = Vec::with_capacity(GROUP);
            'fill: while raw_blocks.len() < GROUP {
                let mut texts: Vec<String> = Vec::with_capacity(TEXT_BLOCK_POSTS as usize);
                for _ in 0..TEXT_BLOCK_POSTS {
                    let Some((si, p)) = posts.next() else {
                        if !texts.is_empty() {
                            raw_blocks.push(raw_block_of(&texts));
                        }
                        break 'fill;
                    };
                    texts.push(sources[si].text(p, &mut caches[si])?.unwrap_or_default());
                }
                raw_blocks.push(raw_block_of(&texts));
            }
            sources.iter().for_each(Segment::release_pages);
            if raw_blocks.is_empty() {
                break;
            }
            let done = raw_blocks.len() < GROUP;
            for blk in codec.compress_blocks(&path, &raw_blocks)? {
                offs.push(offs[offs.len() - 1] + blk.len() as u64);
                spill.write_bytes(&blk)?;
            }
            if done {
                break;
            }
        }
        files.insert(
            "text".to_string(),
            write_text_file(&path, np, &offs, spill, codec.dict())?,
        );
    }
    sync_dir(&seg_dir)?;
    sync_dir(dir)?;
    Ok(Some(SegmentEntry {
        id,
        posts: np,
        contents: nc,
        has_text,
        files,
        deleted: None,
    }))
}

/// A decompressed text block: `u32` offsets, then the texts.
fn raw_block_of(texts: &[String]) -> Vec<u8> {
    let texts: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    raw_block(&texts)
}

/// Reads one band of one source in entry order, remapping content ids and skipping dead
/// contents.
struct BandCursor<'a> {
    seg: &'a Segment,
    band: usize,
    remap: &'a [u32],
    bucket: usize,
    buf: Vec<(u64, u32)>,
    pos: usize,
    head: Option<(u32, u32)>,
}

impl<'a> BandCursor<'a> {
    fn new(seg: &'a Segment, band: usize, remap: &'a [u32]) -> Result<BandCursor<'a>> {
        let mut c = BandCursor {
            seg,
            band,
            remap,
            bucket: 0,
            buf: Vec::new(),
            pos: 0,
            head: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn head(&self) -> Option<(u32, u32)> {
        self.head
    }

    fn advance(&mut self) -> Result<()> {
        let shift = self.seg.known_key_bits() - 32;
        loop {
            while self.pos < self.buf.len() {
                let (prefix, c) = self.buf[self.pos];
                self.pos += 1;
                let new = self.remap.get(c as usize).copied().unwrap_or(u32::MAX);
                if new != u32::MAX {
                    self.head = Some(((prefix >> shift) as u32, new));
                    return Ok(());
                }
            }
            if self.bucket >= self.seg.buckets_per_band() {
                self.head = None;
                return Ok(());
            }
            self.buf.clear();
            self.pos = 0;
            self.seg
                .bucket_entries(self.band, self.bucket, &mut self.buf)?;
            self.bucket += 1;
        }
    }
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
            deleted: deleted.then(|| super::super::manifest::DeletedEntry {
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
}
