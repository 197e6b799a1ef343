//! Cache hints for a segment's pages: kernel read-ahead (`madvise(WILLNEED)`), CPU
//! prefetches and touches of the bytes a later step will read, and dropping pages a long
//! pass has finished with. None of them changes an answer.

use std::ops::Range;

use super::{Data, EntryLayout, PostLayout, Segment};

/// One of a segment's files, for [`Segment::release_file_pages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFile {
    /// `sigs`: signatures and content hashes.
    Sigs,
    /// `posts`: post metadata.
    Posts,
    /// `text`: stored texts.
    Text,
    /// `ids.fst`: the id map.
    Ids,
}

impl Segment {
    /// Drops this process's mapping of every page of the segment's files (see
    /// [`Data::release`]): for long sequential passes whose memory must stay bounded.
    pub(crate) fn release_pages(&self) {
        self.bands.file.data.release();
        self.sigs.data.release();
        self.posts.file.data.release();
        self.ids.release();
        if let Some(t) = &self.texts {
            t.file.data.release();
        }
        if let Some(d) = &self.deleted {
            d.data.release();
        }
    }

    /// [`release_pages`](Self::release_pages) of one file only, for passes that run beside
    /// passes over the segment's other files (a merge's file steps).
    pub(crate) fn release_file_pages(&self, file: SegmentFile) {
        match file {
            SegmentFile::Sigs => self.sigs.data.release(),
            SegmentFile::Posts => self.posts.file.data.release(),
            SegmentFile::Ids => self.ids.release(),
            SegmentFile::Text => {
                if let Some(t) = &self.texts {
                    t.file.data.release();
                }
            }
        }
    }

    /// Asks the kernel to read in the directory entries for these probes (cold queries).
    pub(crate) fn prefetch_dirs(&self, keys: &[u64]) {
        let stride = (1usize << self.bands.dir_bits) + 1;
        for (band, &key) in keys.iter().enumerate().take(self.bands_n as usize) {
            let (bucket, _) = self.split_key(key);
            let off = self.bands.dirs.start + (band * stride + bucket) * 4;
            self.bands.file.data.prefetch(off, 8);
        }
    }

    /// Asks the kernel to read in one whole band table (the clustering self-join reads it
    /// front to back; the maps are advised for random access otherwise).
    pub(crate) fn prefetch_band(&self, band: usize) {
        let n = self.n_contents as usize;
        let stride = (1usize << self.bands.dir_bits) + 1;
        let d = &self.bands.file.data;
        d.prefetch(self.bands.dirs.start + band * stride * 4, stride * 4);
        let r = self.entry_bytes(band, &(0..n));
        d.prefetch(r.start, r.len());
        if let EntryLayout::Columns { cids, .. } = &self.bands.entries {
            d.prefetch(cids.start + band * n * 4, n * 4);
        }
    }

    /// Asks the kernel to read in the signature file (signatures and content hashes),
    /// `chunk` bytes per request, stopping early when `stop` says so. For whole-index passes.
    pub(crate) fn prefetch_signatures(&self, chunk: usize, stop: &dyn Fn() -> bool) {
        prefetch_chunks(&self.sigs.data, 0..self.sigs.data.len(), chunk, stop);
    }

    /// Asks the kernel to read in the post metadata file and the text block offsets, `chunk`
    /// bytes per request, stopping early when `stop` says so. For whole-index passes.
    pub(crate) fn prefetch_metadata(&self, chunk: usize, stop: &dyn Fn() -> bool) {
        let d = &self.posts.file.data;
        prefetch_chunks(d, 0..d.len(), chunk, stop);
        if let Some(t) = &self.texts {
            prefetch_chunks(&t.file.data, t.block_offsets.clone(), chunk, stop);
        }
    }

    /// Asks the kernel to read in the text block holding post `p` (and its offset entry).
    pub(crate) fn prefetch_text(&self, p: u32) {
        let Some(t) = &self.texts else {
            return;
        };
        let block = (p / t.block_posts.max(1)) as usize;
        let offs = t.file.view::<8>(&t.block_offsets);
        t.file.data.prefetch(t.block_offsets.start + block * 8, 16);
        if let (Some(s), Some(e)) = (offs.get(block), offs.get(block + 1)) {
            let s = t.blocks.start.saturating_add(s as usize);
            let e = t.blocks.start.saturating_add(e as usize);
            t.file.data.prefetch(s, e.saturating_sub(s));
        }
    }

    /// Asks the CPU to start loading the offset entries of post `p`'s text frame (one
    /// post per frame, as [`text_frame`](Self::text_frame) reads; a hint).
    #[inline]
    pub(crate) fn prefetch_text_frame_offset(&self, p: u32) {
        if let Some(t) = &self.texts {
            let at = t.block_offsets.start.saturating_add(p as usize * 8);
            prefetch_item(&t.file.data, at);
            prefetch_item(&t.file.data, at.saturating_add(8));
        }
    }

    /// Asks the CPU to start loading the first cache lines of post `p`'s text frame (one
    /// post per frame; its offsets best asked for first with
    /// [`prefetch_text_frame_offset`](Self::prefetch_text_frame_offset); a hint).
    #[inline]
    pub(crate) fn prefetch_text_frame(&self, p: u32) {
        let Some(t) = &self.texts else {
            return;
        };
        let offs = t.file.view::<8>(&t.block_offsets);
        if let (Some(s), Some(e)) = (offs.get(p as usize), offs.get(p as usize + 1)) {
            let s = t.blocks.start.saturating_add(s as usize);
            let e = t
                .blocks
                .start
                .saturating_add(e as usize)
                .min(s.saturating_add(TEXT_FRAME_PREFETCH_BYTES));
            let mut at = s;
            while at < e {
                prefetch_item(&t.file.data, at);
                at += 64;
            }
        }
    }

    /// Asks the kernel to read in the fingerprint and id entries for these probes.
    pub(crate) fn prefetch_buckets(&self, keys: &[u64]) {
        let n = self.n_contents as usize;
        for (band, &key) in keys.iter().enumerate().take(self.bands_n as usize) {
            let (bucket, _) = self.split_key(key);
            if let Ok(r) = self.bucket(band, bucket) {
                let d = &self.bands.file.data;
                let bytes = self.entry_bytes(band, &r);
                d.prefetch(bytes.start, bytes.len());
                if let EntryLayout::Columns { cids, .. } = &self.bands.entries {
                    d.prefetch(cids.start + (band * n + r.start) * 4, r.len() * 4);
                }
            }
        }
    }

    /// Asks the CPU to fetch content `c`'s signature into its cache (warm lookups: the
    /// reads of many candidates overlap).
    #[inline]
    pub(crate) fn touch_signature(&self, c: u32) {
        let start = self.sigs_range.start + c as usize * self.k;
        let end = start + self.k.max(1) - 1;
        let mut at = start;
        while at < end {
            prefetch_item(&self.sigs.data, at);
            at = (at | 63) + 1;
        }
        prefetch_item(&self.sigs.data, end);
    }

    /// Asks the CPU to fetch content `c`'s post range (its `content_posts` entry) into its
    /// cache.
    #[inline]
    pub(crate) fn touch_content(&self, c: u32) {
        let p = &self.posts;
        prefetch_item(&p.file.data, p.content_posts.start + c as usize * 4);
    }

    /// The byte range of the fixed-size metadata of posts `r` in each of the posts file's
    /// arrays (one range for format 6's rows, with the next row's id start and the 8-byte
    /// load of the last field).
    fn post_bytes(&self, r: Range<u32>) -> [Range<usize>; 4] {
        let (s, e) = (r.start as usize, r.end as usize);
        match &self.posts.rows {
            PostLayout::Columns {
                ts,
                id_offsets,
                account_of,
                platform_of,
            } => [
                ts.start + s * 8..ts.start + e * 8,
                id_offsets.start + s * 8..id_offsets.start + e * 8 + 8,
                account_of.start + s * 4..account_of.start + e * 4,
                platform_of.start + s * 4..platform_of.start + e * 4,
            ],
            PostLayout::Rows { rows, codec, .. } => {
                let stride = codec.stride as usize;
                let end = ((e + 1) * stride / 8 + 8).min(rows.len());
                [
                    rows.start + s * stride / 8..rows.start + end,
                    0..0,
                    0..0,
                    0..0,
                ]
            }
        }
    }

    /// Asks the CPU to fetch the fixed-size metadata of post `p` into its cache.
    #[inline]
    pub(crate) fn touch_post(&self, post: u32) {
        let d: &[u8] = &self.posts.file.data;
        if let PostLayout::Rows { rows, codec, .. } = &self.posts.rows {
            // The row and the next row's id start: one line, or two adjacent ones.
            let (i, stride) = (post as usize, codec.stride as usize);
            prefetch_item(d, rows.start + i * stride / 8);
            prefetch_item(d, rows.start + ((i + 2) * stride / 8).min(rows.len()));
            return;
        }
        for r in self.post_bytes(post..post + 1) {
            prefetch_item(d, r.start);
        }
    }

    /// Asks the CPU to fetch the times of posts `r` (at most 8 cache lines of them; the
    /// hardware prefetcher follows a longer run).
    #[inline]
    pub(crate) fn touch_post_times(&self, r: Range<u32>) {
        let d: &[u8] = &self.posts.file.data;
        let [bytes, ..] = self.post_bytes(r);
        let mut at = bytes.start;
        for _ in 0..8 {
            if at >= bytes.end {
                break;
            }
            prefetch_item(d, at);
            at = (at | 63) + 1;
        }
    }

    /// Second round after [`touch_post`](Self::touch_post), once its lines have arrived:
    /// asks the CPU for the first bytes of post `p`'s id and for its account's dictionary
    /// bounds (reads that depend on the first round's values).
    #[inline]
    pub(crate) fn touch_post_strings(&self, post: u32) {
        let (p, f) = (&self.posts, &self.posts.file);
        if let Some((s, a)) = self.id_start_and_account(post) {
            prefetch_item(&f.data, p.id_bytes.start.saturating_add(s as usize));
            prefetch_item(&f.data, p.account_offsets.start + a as usize * 8);
        }
    }

    /// Third round: asks the CPU for the first bytes of post `p`'s account name.
    #[inline]
    pub(crate) fn touch_post_account(&self, post: u32) {
        let (p, f) = (&self.posts, &self.posts.file);
        if let Some((_, a)) = self.id_start_and_account(post) {
            if let Some(s) = f.view::<8>(&p.account_offsets).get(a as usize) {
                prefetch_item(&f.data, p.account_bytes.start.saturating_add(s as usize));
            }
        }
    }

    /// Asks the kernel to read in content `c`'s signature.
    pub(crate) fn prefetch_signature(&self, c: u32) {
        self.sigs
            .data
            .prefetch(self.sigs_range.start + c as usize * self.k, self.k);
    }

    /// Asks the kernel to read in content `c`'s post range.
    pub(crate) fn prefetch_content(&self, c: u32) {
        let d = &self.posts.file.data;
        d.prefetch(self.posts.content_posts.start + c as usize * 4, 8);
    }

    /// Asks the kernel to read in the fixed-size metadata of posts `r`.
    pub(crate) fn prefetch_posts(&self, r: Range<u32>) {
        let d = &self.posts.file.data;
        for b in self.post_bytes(r) {
            if !b.is_empty() {
                d.prefetch(b.start, b.len());
            }
        }
    }
}

/// The most bytes of a text frame [`Segment::prefetch_text_frame`] asks for.
const TEXT_FRAME_PREFETCH_BYTES: usize = 256;

/// Asks the kernel to read in `range` of `data`, `chunk` bytes per request, until `stop`.
fn prefetch_chunks(data: &Data, range: Range<usize>, chunk: usize, stop: &dyn Fn() -> bool) {
    let mut at = range.start;
    while at < range.end && !stop() {
        let len = chunk.max(1).min(range.end - at);
        data.prefetch(at, len);
        at += len;
    }
}

/// Asks the CPU to start loading the cache line holding `items[i]` (a hint: no effect out
/// of bounds or on other architectures).
#[inline(always)]
pub(crate) fn prefetch_item<T>(items: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = items.get(i) {
        // SAFETY: a prefetch is a hint that never faults and reads nothing into the program;
        // the pointer comes from a live reference, and SSE is part of the x86-64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const T).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (items, i);
}
