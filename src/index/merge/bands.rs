//! Step 2 of a merge: the band file, a k-way merge per band of the sources' entries.

use std::path::Path;

use rayon::prelude::*;

use super::renumber::{Remap, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::encode::{begin_bands_file, dir_bits, finish_bands_file, SpillFile};
use crate::index::manifest::FileEntry;
use crate::index::segment::Segment;

/// Bands merged at once (in parallel), each into memory (8 bytes per content) before it is
/// written out in band order.
pub(super) const MERGE_BANDS_AT_ONCE: usize = 2;

/// One merged band: its directory (prefix sums, `2^d + 1` entries), tags and content ids.
struct MergedBand {
    dirs: Vec<u32>,
    tags: Vec<u32>,
    cids: Vec<u32>,
}

/// Writes the band file: per band, a k-way merge of the sources' entries (each sorted by
/// `(prefix, content)`) with content ids remapped; [`MERGE_BANDS_AT_ONCE`] bands at a time.
pub(super) fn merge_bands(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    params: &FingerprintParams,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FileEntry> {
    let path = seg_dir.join("bands");
    let bands = params.lsh.bands as usize;
    let nc = new.n_contents();
    let d = dir_bits(nc);
    let mut w = begin_bands_file(&path, nc, bands, d, params.lsh.rows)?;
    let mut prefixes = SpillFile::new(&seg_dir.join("fps.spill.tmp"))?;
    let mut cids = SpillFile::new(&seg_dir.join("cids.spill.tmp"))?;
    let all: Vec<usize> = (0..bands).collect();
    for group in all.chunks(MERGE_BANDS_AT_ONCE) {
        for &band in group {
            sources.iter().for_each(|s| s.prefetch_band(band));
        }
        let merged: Vec<Result<MergedBand>> = group
            .par_iter()
            .map(|&band| merge_band(sources, &new.remaps, band, d, nc as usize))
            .collect();
        for (&band, m) in group.iter().zip(merged) {
            let m = m?;
            let total = m.dirs.last().copied().unwrap_or(0);
            if total as u64 != nc {
                return Err(Error::corrupt(
                    seg_dir,
                    format!("band {band} merged {total} entries for {nc} contents"),
                ));
            }
            w.write_u32s(&m.dirs)?;
            prefixes.write_tags(&m.tags, d)?;
            cids.write_u32s(&m.cids)?;
            progress(band + 1, bands);
        }
        sources.iter().for_each(Segment::release_pages);
    }
    finish_bands_file(w, &path, prefixes, cids)
}

/// Merges band `band` of every source into a table with a directory of `d` bits. Entries
/// come out in prefix order; a content unified from two sources, which has an entry in
/// each, is kept once.
fn merge_band(
    sources: &[Segment],
    remaps: &[Remap],
    band: usize,
    d: u32,
    nc: usize,
) -> Result<MergedBand> {
    let nb = 1usize << d;
    let mut out = MergedBand {
        dirs: vec![0u32; nb + 1],
        tags: Vec::with_capacity(nc),
        cids: Vec::with_capacity(nc),
    };
    let mut cursors = sources
        .iter()
        .zip(remaps)
        .map(|(s, r)| BandCursor::new(s, band, &r.content))
        .collect::<Result<Vec<_>>>()?;
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
            out.push_group(group_prefix, &mut group, d);
        }
        let (Some((i, _)), Some((prefix, cid))) = (best, next) else {
            break;
        };
        cursors[i].advance()?;
        group_prefix = prefix;
        group.push(cid);
    }
    for i in 0..nb {
        out.dirs[i + 1] += out.dirs[i];
    }
    Ok(out)
}

impl MergedBand {
    /// Adds the entries of one prefix (its contents sorted and deduplicated, as a content
    /// unified from two sources has an entry in each), counting them in `dirs[bucket + 1]`.
    fn push_group(&mut self, prefix: u32, group: &mut Vec<u32>, d: u32) {
        group.sort_unstable();
        group.dedup();
        let bucket = if d == 0 {
            0
        } else {
            (prefix >> (32 - d)) as usize
        };
        self.dirs[bucket + 1] += group.len() as u32;
        let tag = if d == 0 {
            prefix
        } else {
            prefix & (u32::MAX >> d)
        };
        for &cid in group.iter() {
            self.tags.push(tag);
            self.cids.push(cid);
        }
        group.clear();
    }
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
