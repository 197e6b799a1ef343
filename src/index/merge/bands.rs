//! Step 2 of a merge: the band file, a k-way merge per band of the sources' entries.

use std::path::Path;

use super::renumber::{Remap, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::encode::{begin_bands_file, dir_bits, finish_bands_file, SpillFile};
use crate::index::manifest::FileEntry;
use crate::index::segment::Segment;

/// Band entries collected for the spill files of one band file, written out every 2^16.
struct BandOut {
    /// Directory bits.
    d: u32,
    prefixes: SpillFile,
    cids: SpillFile,
    out_p: Vec<u32>,
    out_c: Vec<u32>,
}

impl BandOut {
    /// Adds the entries of one prefix (its contents sorted and deduplicated, as a content
    /// unified from two sources has an entry in each) to the directory `dirs` and the
    /// output.
    fn push_group(&mut self, prefix: u32, group: &mut Vec<u32>, dirs: &mut [u32]) -> Result<()> {
        let d = self.d;
        group.sort_unstable();
        group.dedup();
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
/// `(prefix, content)`) with content ids remapped.
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
    let nb = 1usize << d;
    let mut w = begin_bands_file(&path, nc, bands, d, params.lsh.rows)?;
    let mut out = BandOut {
        d,
        prefixes: SpillFile::new(&seg_dir.join("fps.spill.tmp"))?,
        cids: SpillFile::new(&seg_dir.join("cids.spill.tmp"))?,
        out_p: Vec::with_capacity(1 << 16),
        out_c: Vec::with_capacity(1 << 16),
    };
    let mut dirs = vec![0u32; nb + 1];
    for band in 0..bands {
        dirs.iter_mut().for_each(|x| *x = 0);
        sources.iter().for_each(|s| s.prefetch_band(band));
        merge_band(sources, &new.remaps, band, &mut dirs, &mut out)?;
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
    finish_bands_file(w, &path, out.prefixes, out.cids)
}

/// Merges band `band` of every source into `out`, counting each bucket's entries in
/// `dirs[bucket + 1]`. Entries come out in prefix order.
fn merge_band(
    sources: &[Segment],
    remaps: &[Remap],
    band: usize,
    dirs: &mut [u32],
    out: &mut BandOut,
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
                if best.is_none_or(|(_, b)| h < b) {
                    best = Some((i, h));
                }
            }
        }
        let next = best.map(|(_, h)| h);
        if next.is_none_or(|(p, _)| p != group_prefix) && !group.is_empty() {
            out.push_group(group_prefix, &mut group, dirs)?;
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
