//! Step 2 of a merge: the band file, a k-way merge per band of the sources' entries.

use std::path::Path;

use rayon::prelude::*;

use super::renumber::{Remap, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::encode::{dir_bits, BandsFile};
use crate::index::manifest::FileEntry;
use crate::index::order::ContentOrder;
use crate::index::segment::Segment;

/// Bytes a band merged into memory holds per content (a tag and a content id), for the
/// merge's memory check.
pub(super) const BAND_BYTES_PER_CONTENT: u64 = 8;

/// Removes repeated ids from `group`, keeping each one's first place.
fn dedup_keep_first(group: &mut Vec<u32>, scratch: &mut Vec<u32>) {
    if group.len() < 2 {
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

/// One band's entries as they are merged: its directory (each bucket's count at
/// `dirs[bucket + 1]`, prefix sums once the band is done), tags and content ids.
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

    /// Turns the counts into the directory's prefix sums, checked against `nc` contents.
    fn close_dirs(&mut self, seg_dir: &Path, band: usize, nc: u64) -> Result<()> {
        for i in 0..self.dirs.len() - 1 {
            self.dirs[i + 1] += self.dirs[i];
        }
        let total = self.dirs[self.dirs.len() - 1];
        if total as u64 != nc {
            return Err(Error::corrupt(
                seg_dir,
                format!("band {band} merged {total} entries for {nc} contents"),
            ));
        }
        Ok(())
    }
}

/// Writes the band file: per band, a k-way merge of the sources' entries (each sorted by
/// prefix) with content ids remapped. Returns it with the content order its key groups
/// decide (`rank[c]` is the final id of the content `new` numbers `c`), which its content
/// ids already follow.
///
/// With `at_once` of 1 or more, that many bands are merged in parallel, each into memory
/// ([`BAND_BYTES_PER_CONTENT`]), while the ones merged before are fed to the content order
/// and written, in band order (so up to twice `at_once` bands are held); with 0, each band
/// streams into the file as it is merged. Both give the same bytes: the content order sees
/// the same groups in the same order.
pub(super) fn merge_bands(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    params: &FingerprintParams,
    at_once: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(FileEntry, Vec<u32>)> {
    let path = seg_dir.join("bands");
    let bands = params.lsh.bands as usize;
    let nc = new.n_contents();
    let d = dir_bits(nc);
    let mut w = BandsFile::begin(&path, nc, bands, d, params.lsh.rows)?;
    let mut grouping = ContentOrder::new(nc as usize);
    if at_once == 0 {
        let mut out = BandTable::new(d, 1 << 16);
        for band in 0..bands {
            out.dirs.iter_mut().for_each(|x| *x = 0);
            sources.iter().for_each(|s| s.prefetch_band(band));
            merge_band(sources, &new.remaps, band, d, &mut |prefix, group| {
                grouping.add_group(group);
                out.push_group(prefix, group);
                if out.tags.len() >= 1 << 16 {
                    out.flush(&mut w)?;
                }
                Ok(())
            })?;
            out.flush(&mut w)?;
            out.close_dirs(seg_dir, band, nc)?;
            w.dirs(&out.dirs)?;
            sources.iter().for_each(Segment::release_pages);
            progress(band + 1, bands);
        }
    } else {
        // Each chunk's bands are merged while the chunk before is consumed.
        let mut consume = |tables: Vec<(usize, BandTable)>| -> Result<()> {
            for (_, mut t) in tables {
                // A table's runs of equal tags in a bucket are its key prefixes' groups.
                grouping.add_table(&t.dirs, &t.tags, &t.cids);
                w.dirs(&t.dirs)?;
                t.flush(&mut w)?;
            }
            Ok(())
        };
        let all: Vec<usize> = (0..bands).collect();
        let mut pending: Vec<(usize, BandTable)> = Vec::new();
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
                            let mut t = BandTable::new(d, nc as usize);
                            merge_band(sources, &new.remaps, band, d, &mut |prefix, group| {
                                t.push_group(prefix, group);
                                Ok(())
                            })?;
                            t.close_dirs(seg_dir, band, nc)?;
                            Ok((band, t))
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
    let rank = grouping.finish();
    let entry = w.finish(&rank)?;
    Ok((entry, rank))
}

/// Merges band `band` of every source, handing each key prefix's entries to `emit` in
/// prefix order: in source order, each source's in its own order (first seen first:
/// FORMAT.md); a content unified from two sources has an entry in each, and the first is
/// kept, so a group stays in first-seen order.
///
/// The merge goes a range of prefixes at a time (the `d`-bit buckets of the new table,
/// about 32 entries each): each source's entries in
/// the range, one source after another, are sorted by prefix with a stable sort, which
/// leaves equal prefixes in source order and each source's in its own order, as a k-way
/// merge that prefers the earlier source would (`merge_band_kway`, the test oracle).
fn merge_band(
    sources: &[Segment],
    remaps: &[Remap],
    band: usize,
    d: u32,
    emit: &mut dyn FnMut(u32, &[u32]) -> Result<()>,
) -> Result<()> {
    let mut cursors = sources
        .iter()
        .zip(remaps)
        .map(|(s, r)| BandCursor::new(s, band, &r.content))
        .collect::<Result<Vec<_>>>()?;
    let shift = 32 - d.min(32);
    let mut range: Vec<(u32, u32)> = Vec::new();
    let mut group: Vec<u32> = Vec::new();
    let mut scratch: Vec<u32> = Vec::new();
    // The next range: the one of the smallest prefix any source has left.
    while let Some(low) = cursors.iter().filter_map(|c| c.head()).map(|h| h.0).min() {
        let end = (u64::from(low >> shift) + 1) << shift;
        range.clear();
        for c in &mut cursors {
            c.drain_below(end, &mut range)?;
        }
        if !range.is_sorted_by_key(|e| e.0) {
            range.sort_by_key(|e| e.0);
        }
        for run in range.chunk_by(|a, b| a.0 == b.0) {
            group.clear();
            group.extend(run.iter().map(|e| e.1));
            dedup_keep_first(&mut group, &mut scratch);
            emit(run[0].0, &group)?;
        }
    }
    Ok(())
}

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
        .map(|(s, r)| BandCursor::new(s, band, &r.content))
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

/// Reads one band of one source in entry order, remapping content ids and skipping dead
/// contents.
struct BandCursor<'a> {
    seg: &'a Segment,
    band: usize,
    remap: &'a [u32],
    bucket: usize,
    /// Entries read from the source, not yet remapped.
    raw: Vec<(u64, u32)>,
    /// Remapped live entries: `(prefix, new content)`.
    buf: Vec<(u32, u32)>,
    pos: usize,
    head: Option<(u32, u32)>,
}

impl<'a> BandCursor<'a> {
    /// Entries read (whole buckets) and remapped at a time.
    const BATCH: usize = 512;

    fn new(seg: &'a Segment, band: usize, remap: &'a [u32]) -> Result<BandCursor<'a>> {
        let mut c = BandCursor {
            seg,
            band,
            remap,
            bucket: 0,
            raw: Vec::with_capacity(Self::BATCH * 2),
            buf: Vec::with_capacity(Self::BATCH * 2),
            pos: 0,
            head: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn head(&self) -> Option<(u32, u32)> {
        self.head
    }

    /// Moves the entries whose prefix is below `end` (the cursor's next ones, in order)
    /// to `out`.
    fn drain_below(&mut self, end: u64, out: &mut Vec<(u32, u32)>) -> Result<()> {
        while let Some(h) = self.head.filter(|h| u64::from(h.0) < end) {
            out.push(h);
            // The rest of the buffer is in prefix order too: its run below `end` goes at once.
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let n = rest.iter().take_while(|e| u64::from(e.0) < end).count();
            out.extend_from_slice(&rest[..n]);
            self.pos += n;
            self.advance()?;
        }
        Ok(())
    }

    fn advance(&mut self) -> Result<()> {
        loop {
            if let Some(&e) = self.buf.get(self.pos) {
                self.pos += 1;
                self.head = Some(e);
                return Ok(());
            }
            if self.bucket >= self.seg.buckets_per_band() {
                self.head = None;
                return Ok(());
            }
            self.refill()?;
        }
    }

    /// Reads the next buckets (at least [`BATCH`](Self::BATCH) entries, or to the end of
    /// the band) and remaps them in one pass: the remap lookups are independent of each
    /// other, so their cache misses overlap instead of waiting one by one.
    fn refill(&mut self) -> Result<()> {
        let shift = self.seg.known_key_bits() - 32;
        let n = self.seg.buckets_per_band();
        self.raw.clear();
        while self.raw.len() < Self::BATCH && self.bucket < n {
            self.seg
                .bucket_entries(self.band, self.bucket, &mut self.raw)?;
            self.bucket += 1;
        }
        self.buf.clear();
        self.pos = 0;
        for &(prefix, c) in &self.raw {
            let new = self.remap.get(c as usize).copied().unwrap_or(u32::MAX);
            if new != u32::MAX {
                self.buf.push(((prefix >> shift) as u32, new));
            }
        }
        Ok(())
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
                merge_band(sources, &new.remaps, band, d, &mut |p, g| {
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
                    merge_bands(&seg_dir, sources, &new, &params, at_once, &mut |d, n| {
                        calls.push((d, n))
                    })
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
