//! Step 2 of a merge: the band file, a k-way merge per band of the sources' entries.

use std::path::Path;

use super::renumber::{Remap, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::encode::{begin_bands_file, dir_bits, finish_bands_file, SpillFile};
use crate::index::manifest::FileEntry;
use crate::index::order::ContentOrder;
use crate::index::segment::Segment;

/// Band entries collected for the spill files of one band file, written out every 2^16.
struct BandOut {
    /// Directory bits.
    d: u32,
    prefixes: SpillFile,
    cids: SpillFile,
    out_p: Vec<u32>,
    out_c: Vec<u32>,
    scratch: Vec<u32>,
}

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

impl BandOut {
    /// Adds the entries of one prefix to the directory `dirs`, the output and the content
    /// order. They come in source order, each source's in its own order (first seen first:
    /// FORMAT.md), and a content unified from two sources has an entry in each: the first
    /// is kept, so the group stays in first-seen order.
    fn push_group(
        &mut self,
        prefix: u32,
        group: &mut Vec<u32>,
        dirs: &mut [u32],
        grouping: &mut ContentOrder,
    ) -> Result<()> {
        let d = self.d;
        dedup_keep_first(group, &mut self.scratch);
        grouping.add_group(group);
        let bucket = if d == 0 {
            0
        } else {
            (prefix >> (32 - d)) as usize
        };
        dirs[bucket + 1] += group.len() as u32;
        let tag = if d == 0 {
            prefix
        } else {
            prefix & (u32::MAX >> d)
        };
        for &cid in group.iter() {
            self.out_p.push(tag);
            self.out_c.push(cid);
        }
        group.clear();
        if self.out_p.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the collected entries to the spill files.
    fn flush(&mut self) -> Result<()> {
        self.prefixes.write_tags(&self.out_p, self.d)?;
        self.cids.write_u32s(&self.out_c)?;
        self.out_p.clear();
        self.out_c.clear();
        Ok(())
    }
}

/// Writes the band file: per band, a k-way merge of the sources' entries (each sorted by
/// prefix) with content ids remapped. Returns it with the content order its key groups
/// decide (`rank[c]` is the final id of the content `new` numbers `c`), which its content
/// ids already follow.
pub(super) fn merge_bands(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    params: &FingerprintParams,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(FileEntry, Vec<u32>)> {
    let path = seg_dir.join("bands");
    let bands = params.lsh.bands as usize;
    let nc = new.n_contents();
    let d = dir_bits(nc);
    let nb = 1usize << d;
    let mut w = begin_bands_file(&path, nc, bands, d, params.lsh.rows)?;
    let mut out = BandOut {
        d,
        prefixes: SpillFile::new(&seg_dir.join("fps.spill.tmp"))?,
        cids: SpillFile::new(&seg_dir.join("cids.spill.tmp"))?,
        out_p: Vec::with_capacity(1 << 16),
        out_c: Vec::with_capacity(1 << 16),
        scratch: Vec::new(),
    };
    let mut grouping = ContentOrder::new(nc as usize);
    let mut dirs = vec![0u32; nb + 1];
    for band in 0..bands {
        dirs.iter_mut().for_each(|x| *x = 0);
        sources.iter().for_each(|s| s.prefetch_band(band));
        merge_band(
            sources,
            &new.remaps,
            band,
            &mut dirs,
            &mut out,
            &mut grouping,
        )?;
        for i in 0..nb {
            dirs[i + 1] += dirs[i];
        }
        if dirs[nb] as u64 != nc {
            return Err(Error::corrupt(
                seg_dir,
                format!("band {band} merged {} entries for {nc} contents", dirs[nb]),
            ));
        }
        w.write_u32s(&dirs)?;
        sources.iter().for_each(Segment::release_pages);
        progress(band + 1, bands);
    }
    let rank = grouping.finish();
    let entry = finish_bands_file(w, &path, out.prefixes, out.cids, Some(&rank))?;
    Ok((entry, rank))
}

/// Merges band `band` of every source into `out`, counting each bucket's entries in
/// `dirs[bucket + 1]`. Entries come out in prefix order, those of one prefix in source
/// order.
fn merge_band(
    sources: &[Segment],
    remaps: &[Remap],
    band: usize,
    dirs: &mut [u32],
    out: &mut BandOut,
    grouping: &mut ContentOrder,
) -> Result<()> {
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
                // Equal prefixes: the earlier source first.
                if best.is_none_or(|(_, b)| h.0 < b.0) {
                    best = Some((i, h));
                }
            }
        }
        let next = best.map(|(_, h)| h);
        if next.is_none_or(|(p, _)| p != group_prefix) && !group.is_empty() {
            out.push_group(group_prefix, &mut group, dirs, grouping)?;
        }
        let (Some((i, _)), Some((prefix, cid))) = (best, next) else {
            break;
        };
        cursors[i].advance()?;
        group_prefix = prefix;
        group.push(cid);
    }
    out.flush()
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
