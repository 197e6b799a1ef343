//! Step 2 of a merge: the band file, a k-way merge per band of the sources' entries.

use std::path::Path;

use rayon::prelude::*;

use super::renumber::{Remap, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::durable::Pieces;
use crate::index::encode::{dir_bits, BandPacker, BandPacking, BandsFile};
use crate::index::order::{ContentOrder, KeyGroups};
use crate::index::segment::{prefetch_item, Segment};

/// Bytes a band merged into memory holds per content, for the merge's memory check: its
/// entry packed (a tag and a content id: 37 bits at dev 1M and 10M) and, for the contents in
/// key groups of two or more (18% of the entries at dev 1M), 4 bytes more.
pub(super) const BAND_BYTES_PER_CONTENT: u64 = 8;

/// Removes repeated ids from `group`, keeping each one's first place.
fn dedup_keep_first(group: &mut Vec<u32>, scratch: &mut Vec<u32>) {
    if group.len() < 2 {
        return;
    }
    if group.len() <= 16 {
        // A few ids: each against the ones kept before it.
        let mut kept = 1;
        for i in 1..group.len() {
            let c = group[i];
            if !group[..kept].contains(&c) {
                group[kept] = c;
                kept += 1;
            }
        }
        group.truncate(kept);
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(group);
    scratch.sort_unstable();
    if scratch.windows(2).all(|w| w[0] != w[1]) {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(group.len());
    group.retain(|&c| seen.insert(c));
}

/// A directory of `d` bits: the bucket of a key prefix and the tag it keeps.
fn bucket_and_tag(prefix: u32, d: u32) -> (usize, u32) {
    if d == 0 {
        (0, prefix)
    } else {
        ((prefix >> (32 - d)) as usize, prefix & (u32::MAX >> d))
    }
}

/// Turns a band's bucket counts (each bucket's at `dirs[bucket + 1]`) into the directory's
/// prefix sums, checked against `nc` contents.
fn close_dirs(dirs: &mut [u32], seg_dir: &Path, band: usize, nc: u64) -> Result<()> {
    for i in 0..dirs.len() - 1 {
        dirs[i + 1] += dirs[i];
    }
    let total = dirs[dirs.len() - 1];
    if total as u64 != nc {
        return Err(Error::corrupt(
            seg_dir,
            format!("band {band} merged {total} entries for {nc} contents"),
        ));
    }
    Ok(())
}

/// One band's entries as they are streamed into the file: its directory (each bucket's
/// count at `dirs[bucket + 1]`, prefix sums once the band is done), tags and content ids.
struct BandTable {
    d: u32,
    dirs: Vec<u32>,
    tags: Vec<u32>,
    cids: Vec<u32>,
}

impl BandTable {
    fn new(d: u32, capacity: usize) -> BandTable {
        BandTable {
            d,
            dirs: vec![0u32; (1usize << d) + 1],
            tags: Vec::with_capacity(capacity),
            cids: Vec::with_capacity(capacity),
        }
    }

    /// Adds the entries of one key prefix.
    fn push_group(&mut self, prefix: u32, group: &[u32]) {
        let (bucket, tag) = bucket_and_tag(prefix, self.d);
        self.dirs[bucket + 1] += group.len() as u32;
        for &cid in group {
            self.tags.push(tag);
            self.cids.push(cid);
        }
    }

    /// Writes the collected entries (not the directory) to `w`.
    fn flush(&mut self, w: &mut BandsFile) -> Result<()> {
        w.entries(&self.tags, &self.cids)?;
        self.tags.clear();
        self.cids.clear();
        Ok(())
    }
}

/// One band merged in memory (on a worker): its directory, its entries packed where they go
/// in the file, and its key groups of two or more contents, for the content order.
struct MergedBand {
    dirs: Vec<u32>,
    packed: BandPacker,
    groups: KeyGroups,
}

impl MergedBand {
    /// Merges band `band` (see [`merge_band`]).
    fn merge(
        sources: &[Segment],
        remaps: &[Remap],
        shared: &[u64],
        band: usize,
        d: u32,
        packing: &BandPacking,
    ) -> Result<MergedBand> {
        let mut m = MergedBand {
            dirs: vec![0u32; (1usize << d) + 1],
            packed: packing.band(band),
            groups: KeyGroups::default(),
        };
        merge_band(sources, remaps, shared, band, d, &mut |prefix, group| {
            let (bucket, tag) = bucket_and_tag(prefix, d);
            m.dirs[bucket + 1] += group.len() as u32;
            for &cid in group {
                m.packed.pack_entry(tag, cid);
            }
            m.groups.push(group);
            Ok(())
        })?;
        Ok(m)
    }
}

/// The new contents that more than one source holds (a bit per content): a key group that
/// holds one may hold it twice (once per source), and only those are de-duplicated.
fn shared_contents(remaps: &[Remap], nc: u64) -> Vec<u64> {
    let words = (nc as usize).div_ceil(64);
    let mut seen = vec![0u64; words];
    let mut shared = vec![0u64; words];
    for r in remaps {
        for &c in r.content.iter().filter(|&&c| (c as u64) < nc) {
            let (w, bit) = (c as usize / 64, 1u64 << (c % 64));
            shared[w] |= seen[w] & bit;
            seen[w] |= bit;
        }
    }
    shared
}

/// Merges the band tables into a band file left open (directories written, entries
/// spilled): per band, a k-way merge of the sources' entries (each sorted by prefix) with
/// content ids remapped. Returns the file with the content order its key groups decide (`rank[c]` is the final id of
/// the content `new` numbers `c`); [`BandsFile::finish`] with that order copies in the
/// entries (beside the signatures: `merge_run`).
///
/// With `at_once` of 1 or more, that many bands are merged in parallel, each into memory
/// ([`BAND_BYTES_PER_CONTENT`]: its entries packed, its key groups of two or more), while
/// the ones merged before are fed to the content order and written, in band order (so up
/// to twice `at_once` bands are held); with 0, each band streams into the file as it is
/// merged. Both give the same bytes: the content order sees the same groups in the same
/// order.
pub(super) fn merge_bands(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    params: &FingerprintParams,
    at_once: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(BandsFile, Vec<u32>)> {
    let path = seg_dir.join("bands");
    let bands = params.lsh.bands as usize;
    let nc = new.n_contents();
    let d = dir_bits(nc);
    let mut w = BandsFile::begin(&path, nc, bands, (d, params.lsh.rows), Pieces::Huge)?;
    let mut grouping = ContentOrder::new(nc as usize);
    let shared = shared_contents(&new.remaps, nc);
    if at_once == 0 {
        let mut out = BandTable::new(d, 1 << 16);
        for band in 0..bands {
            out.dirs.iter_mut().for_each(|x| *x = 0);
            sources.iter().for_each(|s| s.prefetch_band(band));
            merge_band(
                sources,
                &new.remaps,
                &shared,
                band,
                d,
                &mut |prefix, group| {
                    grouping.add_group(group);
                    out.push_group(prefix, group);
                    if out.tags.len() >= 1 << 16 {
                        out.flush(&mut w)?;
                    }
                    Ok(())
                },
            )?;
            out.flush(&mut w)?;
            close_dirs(&mut out.dirs, seg_dir, band, nc)?;
            w.dirs(&out.dirs)?;
            sources.iter().for_each(Segment::release_pages);
            progress(band + 1, bands);
        }
    } else {
        let packing = w.packing();
        // Each chunk's bands are merged while the chunk before is consumed.
        let mut consume = |merged: Vec<(usize, MergedBand)>| -> Result<()> {
            for (_, m) in merged {
                grouping.add_groups(&m.groups);
                w.dirs(&m.dirs)?;
                w.packed_entries(m.packed)?;
            }
            Ok(())
        };
        let all: Vec<usize> = (0..bands).collect();
        let mut pending: Vec<(usize, MergedBand)> = Vec::new();
        for chunk in all.chunks(at_once) {
            for &band in chunk {
                sources.iter().for_each(|s| s.prefetch_band(band));
            }
            let done: Vec<usize> = pending.iter().map(|(b, _)| *b).collect();
            let (consumed, merged) = rayon::join(
                || consume(std::mem::take(&mut pending)),
                || {
                    chunk
                        .par_iter()
                        .map(|&band| {
                            let mut m = MergedBand::merge(
                                sources,
                                &new.remaps,
                                &shared,
                                band,
                                d,
                                &packing,
                            )?;
                            close_dirs(&mut m.dirs, seg_dir, band, nc)?;
                            Ok((band, m))
                        })
                        .collect::<Result<Vec<_>>>()
                },
            );
            consumed?;
            done.iter().for_each(|&b| progress(b + 1, bands));
            pending = merged?;
            sources.iter().for_each(Segment::release_pages);
        }
        let done: Vec<usize> = pending.iter().map(|(b, _)| *b).collect();
        consume(pending)?;
        done.iter().for_each(|&b| progress(b + 1, bands));
    }
    Ok((w, grouping.finish()))
}

/// Merges band `band` of every source, handing each key prefix's entries to `emit` in
/// prefix order: in source order, each source's in its own order (first seen first:
/// FORMAT.md); a content unified from two sources (`shared`: [`shared_contents`]) has an
/// entry in each, and the first is kept, so a group stays in first-seen order.
///
/// The merge goes a range of prefixes at a time (the `d`-bit buckets of the new table,
/// about 32 entries each): each source's entries in the range, one source after another,
/// are sorted by prefix and then by place in the range, which leaves equal prefixes in
/// source order and each source's in its own order, as a k-way merge that prefers the
/// earlier source would (`merge_band_kway`, the test oracle).
fn merge_band(
    sources: &[Segment],
    remaps: &[Remap],
    shared: &[u64],
    band: usize,
    d: u32,
    emit: &mut dyn FnMut(u32, &[u32]) -> Result<()>,
) -> Result<()> {
    let mut cursors = sources
        .iter()
        .zip(remaps)
        .map(|(s, r)| BandCursor::new(s, band, &r.content, shared))
        .collect::<Result<Vec<_>>>()?;
    let shift = 32 - d.min(32);
    let mut range: Vec<(u32, u32)> = Vec::new();
    let mut keys: Vec<u64> = Vec::new();
    let mut group: Vec<u32> = Vec::new();
    let mut scratch: Vec<u32> = Vec::new();
    // The next range: the one of the smallest prefix any source has left.
    while let Some(low) = cursors.iter().filter_map(BandCursor::next_prefix).min() {
        let end = (u64::from(low >> shift) + 1) << shift;
        range.clear();
        for c in &mut cursors {
            c.drain_below(end, &mut range)?;
        }
        // Sorted by (prefix, place): a stable sort by prefix, on plain integers.
        keys.clear();
        keys.extend(
            range
                .iter()
                .enumerate()
                .map(|(i, e)| (u64::from(e.0) << 32) | i as u64),
        );
        if !keys.is_sorted() {
            keys.sort_unstable();
        }
        for run in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
            group.clear();
            let mut any_shared = 0;
            for &k in run {
                let c = range[k as u32 as usize].1;
                any_shared |= c;
                group.push(c & !SHARED);
            }
            // Repeats come from a content held by two sources; a small group is checked
            // anyway (it costs a few comparisons).
            if group.len() <= 16 || any_shared & SHARED != 0 {
                dedup_keep_first(&mut group, &mut scratch);
            }
            emit((run[0] >> 32) as u32, &group)?;
        }
    }
    Ok(())
}

/// The bit a cursor sets on the new content ids that [`shared_contents`] marks (ids are
/// below 2^31: `renumber`).
const SHARED: u32 = 1 << 31;

/// The k-way merge [`merge_band`] replaced, one entry at a time (the earlier source first
/// among equal prefixes): the oracle its tests compare against.
#[cfg(test)]
fn merge_band_kway(
    sources: &[Segment],
    remaps: &[Remap],
    band: usize,
    emit: &mut dyn FnMut(u32, &[u32]) -> Result<()>,
) -> Result<()> {
    let mut cursors = sources
        .iter()
        .zip(remaps)
        .map(|(s, r)| BandCursor::new(s, band, &r.content, &[]))
        .collect::<Result<Vec<_>>>()?;
    let mut group: Vec<u32> = Vec::new();
    let mut scratch: Vec<u32> = Vec::new();
    let mut group_prefix = 0u32;
    loop {
        let mut best: Option<(usize, (u32, u32))> = None;
        for (i, c) in cursors.iter().enumerate() {
            if let Some(h) = c.head() {
                // Equal prefixes: the earlier source first.
                if best.is_none_or(|(_, b)| h.0 < b.0) {
                    best = Some((i, h));
                }
            }
        }
        let next = best.map(|(_, h)| h);
        if next.is_none_or(|(p, _)| p != group_prefix) && !group.is_empty() {
            dedup_keep_first(&mut group, &mut scratch);
            emit(group_prefix, &group)?;
            group.clear();
        }
        let (Some((i, _)), Some((prefix, cid))) = (best, next) else {
            break;
        };
        cursors[i].advance()?;
        group_prefix = prefix;
        group.push(cid);
    }
    Ok(())
}

/// Reads one band of one source in entry order, remapping content ids (those of
/// `shared` contents flagged with [`SHARED`]) and skipping dead contents.
struct BandCursor<'a> {
    seg: &'a Segment,
    band: usize,
    remap: &'a [u32],
    shared: &'a [u64],
    bucket: usize,
    /// Entries read from the source, not yet remapped.
    raw: Vec<(u64, u32)>,
    /// Their new content ids.
    news: Vec<u32>,
    /// Remapped live entries: `(prefix, new content)`; those from `pos` on are next.
    buf: Vec<(u32, u32)>,
    pos: usize,
}

impl<'a> BandCursor<'a> {
    /// Entries read (whole buckets) and remapped at a time.
    const BATCH: usize = 1024;

    fn new(
        seg: &'a Segment,
        band: usize,
        remap: &'a [u32],
        shared: &'a [u64],
    ) -> Result<BandCursor<'a>> {
        let mut c = BandCursor {
            seg,
            band,
            remap,
            shared,
            bucket: 0,
            raw: Vec::with_capacity(Self::BATCH * 2),
            news: Vec::with_capacity(Self::BATCH * 2),
            buf: Vec::with_capacity(Self::BATCH * 2),
            pos: 0,
        };
        c.refill()?;
        Ok(c)
    }

    /// The next entry, if any is left (the test oracle's one-at-a-time merge).
    #[cfg(test)]
    fn head(&self) -> Option<(u32, u32)> {
        self.buf.get(self.pos).copied()
    }

    /// Moves past the next entry (the test oracle's one-at-a-time merge).
    #[cfg(test)]
    fn advance(&mut self) -> Result<()> {
        self.pos += 1;
        if self.pos >= self.buf.len() {
            self.refill()?;
        }
        Ok(())
    }

    /// The prefix of the next entry, if any is left.
    fn next_prefix(&self) -> Option<u32> {
        self.buf.get(self.pos).map(|e| e.0)
    }

    /// Moves the entries whose prefix is below `end` (the cursor's next ones, in order)
    /// to `out`.
    fn drain_below(&mut self, end: u64, out: &mut Vec<(u32, u32)>) -> Result<()> {
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let n = rest.iter().take_while(|e| u64::from(e.0) < end).count();
            out.extend_from_slice(&rest[..n]);
            self.pos += n;
            if self.pos < self.buf.len() || !self.refill()? {
                return Ok(());
            }
        }
    }

    /// Reads the next buckets (at least [`BATCH`](Self::BATCH) entries, or to the end of
    /// the band) and remaps them in one pass: the remap lookups are independent of each
    /// other, so their cache misses overlap instead of waiting one by one. Returns whether
    /// any entry is left.
    fn refill(&mut self) -> Result<bool> {
        let shift = self.seg.known_key_bits() - 32;
        let n = self.seg.buckets_per_band();
        self.buf.clear();
        self.pos = 0;
        while self.buf.is_empty() && self.bucket < n {
            self.raw.clear();
            self.bucket =
                self.seg
                    .band_entries_from(self.band, self.bucket, Self::BATCH, &mut self.raw)?;
            // The lookups first, in a loop of loads alone (many misses in flight), then
            // the live entries kept.
            self.news.clear();
            self.news
                .extend(self.raw.iter().enumerate().map(|(i, &(_, c))| {
                    if let Some(&(_, ahead)) = self.raw.get(i + 16) {
                        prefetch_item(self.remap, ahead as usize);
                    }
                    self.remap.get(c as usize).copied().unwrap_or(u32::MAX)
                }));
            for (&(prefix, _), &new) in self.raw.iter().zip(&self.news) {
                if new != u32::MAX {
                    let w = self.shared.get(new as usize / 64).copied().unwrap_or(0);
                    let flag = ((w >> (new % 64)) as u32 & 1) << 31;
                    self.buf.push(((prefix >> shift) as u32, new | flag));
                }
            }
        }
        Ok(!self.buf.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::merge::renumber::renumber;
    use crate::index::{BuildOptions, Existing, Index, IndexBuilder, NewPost};

    /// Three segments of near-copies (texts of a small vocabulary, some repeated with one
    /// word changed in later segments), so the band merge meets shared keys, contents
    /// unified across segments and key groups that decide the content order.
    fn three_segments(dir: &Path) -> Index {
        let words: Vec<String> = (0..200).map(|i| format!("w{i:x}")).collect();
        let mut state = 12345u64;
        let mut below = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % n
        };
        let mut texts: Vec<String> = Vec::new();
        for seg in 0..3 {
            let mut posts: Vec<(String, String)> = Vec::new();
            for i in 0..1500 {
                let text = if i % 4 == 3 && !texts.is_empty() {
                    let mut w: Vec<String> = texts[below(texts.len())]
                        .split(' ')
                        .map(str::to_string)
                        .collect();
                    let at = below(w.len());
                    w[at] = words[below(words.len())].clone();
                    w.join(" ")
                } else if i % 7 == 6 && !texts.is_empty() {
                    texts[below(texts.len())].clone()
                } else {
                    (0..16)
                        .map(|_| words[below(words.len())].as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                texts.push(text.clone());
                posts.push((format!("s{seg}p{i}"), text));
            }
            let existing = if seg == 0 {
                Existing::Refuse
            } else {
                Existing::Append
            };
            let mut b = IndexBuilder::create(
                dir,
                BuildOptions {
                    existing,
                    ..BuildOptions::default()
                },
            )
            .unwrap();
            let news: Vec<NewPost> = posts
                .iter()
                .map(|(id, text)| NewPost {
                    id,
                    text,
                    account: "a",
                    platform: "p",
                    ts: Some(1_700_000_000),
                })
                .collect();
            b.add(&news).unwrap();
            b.finish().unwrap();
        }
        Index::open(dir).unwrap()
    }

    #[test]
    fn the_range_merge_emits_what_the_k_way_merge_does() {
        let tmp = tempfile::tempdir().unwrap();
        let index = three_segments(&tmp.path().join("index"));
        let sources = index.segments();
        let new = renumber(sources).unwrap().unwrap();
        let bands = FingerprintParams::default().lsh.bands as usize;
        let unified = shared_contents(&new.remaps, new.n_contents());
        assert!(
            unified.iter().any(|&w| w != 0),
            "some contents are held by two segments"
        );
        let mut groups = 0;
        let mut shared = 0;
        // The new table's directory bits, and coarser and finer ranges.
        for d in [0, 3, dir_bits(new.n_contents()), 20, 32] {
            for band in 0..bands {
                let mut want: Vec<(u32, Vec<u32>)> = Vec::new();
                merge_band_kway(sources, &new.remaps, band, &mut |p, g| {
                    want.push((p, g.to_vec()));
                    Ok(())
                })
                .unwrap();
                let mut got: Vec<(u32, Vec<u32>)> = Vec::new();
                merge_band(sources, &new.remaps, &unified, band, d, &mut |p, g| {
                    got.push((p, g.to_vec()));
                    Ok(())
                })
                .unwrap();
                assert_eq!(got, want, "band {band}, {d} bits");
                groups += want.len();
                shared += want.iter().filter(|(_, g)| g.len() > 1).count();
            }
        }
        assert!(
            groups > 0 && shared > 0,
            "some keys are shared: {shared} of {groups}"
        );
    }

    #[test]
    fn bands_merged_in_parallel_or_streamed_give_the_same_file_and_content_order() {
        let tmp = tempfile::tempdir().unwrap();
        let index = three_segments(&tmp.path().join("index"));
        let sources = index.segments();
        assert_eq!(sources.len(), 3);
        let new = renumber(sources).unwrap().unwrap();
        let params = FingerprintParams::default();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut outs = Vec::new();
        for at_once in [0, 1, 2, 3] {
            let seg_dir = tmp.path().join(format!("out-{at_once}"));
            std::fs::create_dir(&seg_dir).unwrap();
            let mut calls = Vec::new();
            let (entry, rank) = pool
                .install(|| {
                    let (w, rank) =
                        merge_bands(&seg_dir, sources, &new, &params, at_once, &mut |d, n| {
                            calls.push((d, n))
                        })?;
                    w.finish(&rank).map(|entry| (entry, rank))
                })
                .unwrap();
            let bands = params.lsh.bands as usize;
            assert_eq!(calls, (1..=bands).map(|d| (d, bands)).collect::<Vec<_>>());
            let files: Vec<_> = std::fs::read_dir(&seg_dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(files, ["bands"], "no spill file is left");
            outs.push((
                std::fs::read(seg_dir.join("bands")).unwrap(),
                entry.xxh3,
                rank,
            ));
        }
        let rank = &outs[0].2;
        assert!(
            rank.iter().enumerate().any(|(c, &r)| r as usize != c),
            "the key groups reorder some contents"
        );
        for (i, out) in outs.iter().enumerate().skip(1) {
            assert!(
                out == &outs[0],
                "at_once {i} differs from the streamed merge"
            );
        }
    }
}
