//! Reading one segment: band tables, b-bit signatures, posts, ids and stored texts.
//!
//! [`Segment::open`] parses every file's envelope and checks that each section has exactly
//! the length its counts imply — O(1) work per file, no full read. Afterwards every access
//! is bounds-checked against those proven lengths and returns [`Error::Corrupt`] rather than
//! panicking when a value inside a section is impossible (an offset past the end, a content
//! id out of range, invalid UTF-8). The `ids.fst` map is checked against its manifest
//! checksum before its first use, because `fst` itself trusts its input.

mod layout;
mod open;
mod prefetch;
mod text;
mod verify;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::format::{Envelope, LeArray, PackedBits};
use super::manifest::SegmentEntry;
use super::mmap::Data;
use crate::error::{Error, Result};

pub use layout::*;
pub(crate) use prefetch::{prefetch_item, SegmentFile};
pub use text::TextCache;
use text::Texts;

#[derive(Debug)]
struct File {
    path: PathBuf,
    data: Data,
    env: Envelope,
}

/// Proven layout of the band file.
#[derive(Debug)]
struct Bands {
    file: File,
    dir_bits: u32,
    /// Format 2 on: entries hold the key's bits `D..32` (the top 32 bits but for the
    /// bucket's `D`). Format 1: the 16 key bits after the directory bits (`u16`).
    v2: bool,
    dirs: Range<usize>,
    entries: EntryLayout,
}

/// Where a band file keeps its entries.
#[derive(Debug)]
enum EntryLayout {
    /// Formats 1 to 4: every entry's tag in `fps` (`u32` when `wide`, else `u16`) and its
    /// content id in `cids` (`u32`), two arrays of `bands * n_contents`.
    Columns {
        wide: bool,
        fps: Range<usize>,
        cids: Range<usize>,
    },
    /// Format 5: entry `i` (over all bands) is `tag_bits` of tag then `id_bits` of content id
    /// from bit `i * (tag_bits + id_bits)` of `entries` (a bucket's entries are one run).
    Packed {
        entries: Range<usize>,
        tag_bits: u32,
        id_bits: u32,
    },
}

/// Proven layout of the posts file.
#[derive(Debug)]
struct Posts {
    file: File,
    n_accounts: u64,
    n_platforms: u64,
    content_posts: Range<usize>,
    /// Each post's time, account, platform and id start.
    rows: PostLayout,
    id_bytes: Range<usize>,
    account_offsets: Range<usize>,
    account_bytes: Range<usize>,
    platform_offsets: Range<usize>,
    platform_bytes: Range<usize>,
    /// Format 7: each content's posts are ordered by time (unknown last), then id.
    by_time: bool,
}

/// Where a posts file keeps each post's fixed-size metadata.
#[derive(Debug)]
enum PostLayout {
    /// Formats 1 to 5: four arrays, `ts` (`i64`), `id_offsets` (`u64`, one more than the
    /// posts), `account_of` and `platform_of` (`u32`).
    Columns {
        ts: Range<usize>,
        id_offsets: Range<usize>,
        account_of: Range<usize>,
        platform_of: Range<usize>,
    },
    /// Format 6: post `p`'s row is `stride` bits from bit `p * stride` of `rows`: the time
    /// code (0 = unknown, else `ts - ts_base + 1`), the account, the platform and the id's
    /// start in `id_bytes` (its end: the next row's start, or the end of `id_bytes`).
    Rows {
        rows: Range<usize>,
        ts_base: i64,
        codec: RowCodec,
    },
}

/// Format 6: where each field of a post row starts (bits after the row's start) and the mask
/// of its width, computed once at open: a field is then one `u64` load, a shift and a mask.
#[derive(Debug, Clone, Copy)]
struct RowCodec {
    /// Bits per row.
    stride: u64,
    /// The time code's width and mask (it starts the row).
    ts_bits: u32,
    ts_mask: u64,
    account_at: u64,
    account_mask: u64,
    platform_at: u64,
    platform_mask: u64,
    id_at: u64,
    id_mask: u64,
}

impl RowCodec {
    fn new(w: &PostRowWidths) -> RowCodec {
        let mask = |bits: u32| match bits {
            0 => 0,
            b => u64::MAX >> (64 - b.min(64)),
        };
        let account_at = u64::from(w.ts_bits);
        let platform_at = account_at + u64::from(w.account_bits);
        let id_at = platform_at + u64::from(w.platform_bits);
        RowCodec {
            stride: u64::from(w.stride()),
            ts_bits: w.ts_bits,
            ts_mask: mask(w.ts_bits),
            account_at,
            account_mask: mask(w.account_bits),
            platform_at,
            platform_mask: mask(w.platform_bits),
            id_at,
            id_mask: mask(w.id_bits),
        }
    }

    /// The time code of the row starting at bit `at` (a code of more than 57 bits can run
    /// past one load: it takes the byte after it too).
    #[inline]
    fn ts(&self, bits: &PackedBits<'_>, at: u64) -> Option<u64> {
        if self.ts_bits > 57 {
            bits.get_wide(at, self.ts_bits)
        } else {
            bits.field(at, self.ts_mask)
        }
    }

    /// The account and platform of the row starting at bit `at`.
    #[inline]
    fn labels(&self, bits: &PackedBits<'_>, at: u64) -> Option<(u32, u32)> {
        let a = bits.field(at + self.account_at, self.account_mask)?;
        let pl = bits.field(at + self.platform_at, self.platform_mask)?;
        Some((u32::try_from(a).ok()?, u32::try_from(pl).ok()?))
    }

    /// The id start of the row starting at bit `at`.
    #[inline]
    fn id(&self, bits: &PackedBits<'_>, at: u64) -> Option<u64> {
        bits.field(at + self.id_at, self.id_mask)
    }
}

/// Format 6: the time a row's time code stands for: `Some(None)` for 0 (unknown), `None`
/// for an impossible code (past the range of `i64`, or the unknown-time marker).
#[inline]
fn time_of_code(ts_base: i64, code: u64) -> Option<Option<i64>> {
    match code.checked_sub(1) {
        None => Some(None),
        Some(off) => ts_base
            .checked_add_unsigned(off)
            .filter(|&t| t != NO_TS)
            .map(Some),
    }
}

/// Where one band's matches of a probe are ([`Segment::probe_runs`]): entries `r` of
/// `band` (a bucket's entries are sorted by tag, so they are one run), whose tag is `tag`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Run {
    band: usize,
    tag: u32,
    r: Range<usize>,
}

impl Run {
    /// How many entries match.
    pub(crate) fn len(&self) -> usize {
        self.r.len()
    }

    /// The `n` shortest of `runs` (the earlier band first among equally long ones; all of
    /// them if there are `n` or fewer) into `out`, if a cap of `cap` entries cuts none of
    /// them. A content whose band keys equal the query's in all but `n - 1` bands is in one
    /// of them.
    pub(crate) fn shortest_uncut(runs: &[Run], cap: usize, n: usize, out: &mut Vec<Run>) -> bool {
        out.clear();
        for _ in 0..n.min(runs.len()) {
            // Runs are one a band.
            let next = runs
                .iter()
                .filter(|r| !out.iter().any(|o| o.band == r.band))
                .min_by_key(|r| r.len());
            match next {
                Some(r) if r.len() <= cap => out.push(r.clone()),
                _ => return false,
            }
        }
        true
    }
}

/// The entries of a band file (every band's, entry `band * n_contents + j` is entry `j` of
/// `band`), whatever their layout.
enum Entries<'a> {
    Narrow(LeArray<'a, 2>, LeArray<'a, 4>),
    Wide(LeArray<'a, 4>, LeArray<'a, 4>),
    Packed(PackedEntries<'a>),
}

/// A format-5 band file's entries: each is its tag, then its content id, bit-packed.
#[derive(Clone, Copy)]
struct PackedEntries<'a> {
    bits: PackedBits<'a>,
    tag_bits: u32,
    /// Bits per entry (tag and id: 2 to 64).
    width: u64,
    tag_mask: u64,
    id_mask: u64,
}

impl<'a> PackedEntries<'a> {
    /// The entries in `bytes`, of tags of `tag_bits` and ids of `id_bits` (1 to 32 each:
    /// checked at open).
    fn new(bytes: &'a [u8], tag_bits: u32, id_bits: u32) -> PackedEntries<'a> {
        let (tag_bits, id_bits) = (tag_bits.clamp(1, 32), id_bits.clamp(1, 32));
        PackedEntries {
            bits: PackedBits::new(bytes),
            tag_bits,
            width: u64::from(tag_bits + id_bits),
            tag_mask: u64::MAX >> (64 - tag_bits),
            id_mask: u64::MAX >> (64 - id_bits),
        }
    }

    /// The tag and content id of entry `i`, or `None` out of bounds: one `u64` load when
    /// the two fit in 57 bits (always, but for a table of 2^31 contents in one bucket).
    #[inline]
    fn get(&self, i: u64) -> Option<(u64, u64)> {
        let at = i * self.width;
        if self.width <= 57 {
            let e = self
                .bits
                .field(at, (self.id_mask << self.tag_bits) | self.tag_mask)?;
            Some((e & self.tag_mask, e >> self.tag_bits))
        } else {
            let t = self.bits.field(at, self.tag_mask)?;
            Some((
                t,
                self.bits
                    .field(at + u64::from(self.tag_bits), self.id_mask)?,
            ))
        }
    }
}

impl Entries<'_> {
    /// The tag of entry `i`, or `None` out of bounds.
    #[inline]
    fn tag(&self, i: usize) -> Option<u32> {
        match self {
            Entries::Narrow(t, _) => t.get(i).map(u32::from),
            Entries::Wide(t, _) => t.get(i),
            Entries::Packed(p) => p.get(i as u64).map(|(t, _)| t as u32),
        }
    }

    /// The content id of entry `i`, or `None` out of bounds.
    #[inline]
    fn cid(&self, i: usize) -> Option<u32> {
        match self {
            Entries::Narrow(_, c) | Entries::Wide(_, c) => c.get(i),
            Entries::Packed(p) => p.get(i as u64).and_then(|(_, c)| u32::try_from(c).ok()),
        }
    }
}

/// One post's metadata, borrowed from a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostRef<'a> {
    /// External id.
    pub id: &'a str,
    /// Account.
    pub account: &'a str,
    /// Platform.
    pub platform: &'a str,
    /// Unix seconds, if known.
    pub ts: Option<i64>,
}

/// An open segment.
#[derive(Debug)]
pub struct Segment {
    entry: SegmentEntry,
    dir: PathBuf,
    n_contents: u64,
    n_posts: u64,
    bands_n: u32,
    k: usize,
    bands: Bands,
    sigs: File,
    sigs_range: Range<usize>,
    /// Format 2: each content's 128-bit hash of its normalized text.
    hashes: Option<Range<usize>>,
    posts: Posts,
    ids: Data,
    ids_checked: OnceLock<std::result::Result<(), String>>,
    texts: Option<Texts>,
    deleted: Option<Deleted>,
    live_contents: OnceLock<Vec<bool>>,
    /// The checksum of the `sigs` file the manifest records, parsed: it names the
    /// segment's contents (their hashes, in content order) for the lookups' shingle memo.
    sigs_sum: Option<u64>,
}

/// Proven layout of a deletion bitmap.
#[derive(Debug)]
struct Deleted {
    path: PathBuf,
    data: Data,
    env: Envelope,
    bits: Range<usize>,
}

impl Segment {
    /// The manifest entry.
    pub fn entry(&self) -> &SegmentEntry {
        &self.entry
    }

    /// The segment's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of unique texts.
    pub fn n_contents(&self) -> u64 {
        self.n_contents
    }

    /// Number of posts.
    pub fn n_posts(&self) -> u64 {
        self.n_posts
    }

    /// Whether post `p` is deleted.
    #[inline]
    pub(crate) fn is_deleted(&self, p: u32) -> bool {
        match &self.deleted {
            None => false,
            Some(d) => LeArray::<8>::proven(&d.data[d.bits.clone()])
                .get(p as usize / 64)
                .is_some_and(|w| w >> (p % 64) & 1 == 1),
        }
    }

    /// The deletion bitmap's words (bit `p % 64` of word `p / 64` = post `p` deleted), if any
    /// post is deleted.
    pub(crate) fn deleted_words(&self) -> Option<Vec<u64>> {
        let d = self.deleted.as_ref()?;
        let a = LeArray::<8>::proven(&d.data[d.bits.clone()]);
        Some((0..a.len()).filter_map(|i| a.get(i)).collect())
    }

    /// The checksum of the `sigs` file the manifest records, if it parses.
    pub(crate) fn sigs_sum(&self) -> Option<u64> {
        self.sigs_sum
    }

    /// Whether the segment records content hashes (format 2).
    pub(crate) fn has_hashes(&self) -> bool {
        self.hashes.is_some()
    }

    /// The 128-bit hash of content `c`'s normalized text (the exact-duplicate key), if the
    /// segment records it (format 2).
    pub(crate) fn content_hash(&self, c: u32) -> Option<u128> {
        let r = self.hashes.as_ref()?;
        let start = r.start.checked_add((c as usize).checked_mul(16)?)?;
        let b = self.sigs.data.get(start..start.checked_add(16)?)?;
        if start + 16 > r.end {
            return None;
        }
        Some(u128::from_le_bytes(b.try_into().ok()?))
    }

    /// Which contents still have a live post, when some post is deleted (computed once).
    pub(crate) fn live_contents(&self) -> Option<&[bool]> {
        self.deleted.as_ref()?;
        Some(self.live_contents.get_or_init(|| {
            (0..self.n_contents as u32)
                .map(|c| {
                    self.content_posts(c)
                        .is_ok_and(|mut r| r.any(|p| !self.is_deleted(p)))
                })
                .collect()
        }))
    }

    /// Whether post texts are stored.
    pub fn has_text(&self) -> bool {
        self.texts.is_some()
    }

    /// The `(bucket, tag)` of a band key for this segment: the tag is what an entry stores
    /// (format 2: the key's bits `D..32`; format 1: the 16 bits after the directory bits).
    #[inline]
    pub(crate) fn split_key(&self, key: u64) -> (usize, u32) {
        if self.bands.v2 {
            split_key(key, self.bands.dir_bits)
        } else {
            let (b, fp) = split_key_v1(key, self.bands.dir_bits);
            (b, fp as u32)
        }
    }

    /// How many leading bits of every band key this segment's entries determine (format 2:
    /// 32; format 1: the directory bits plus 16).
    pub(crate) fn known_key_bits(&self) -> u32 {
        if self.bands.v2 {
            32
        } else {
            self.bands.dir_bits + 16
        }
    }

    /// The byte range of the file holding entries `r` of `band`, where a probe reads them:
    /// their tags (formats 1 to 4) or their packed run (format 5, with the load of the last
    /// field's 8 bytes).
    fn entry_bytes(&self, band: usize, r: &Range<usize>) -> Range<usize> {
        let base = band * self.n_contents as usize;
        match &self.bands.entries {
            EntryLayout::Columns { wide, fps, .. } => {
                let w = if *wide { 4 } else { 2 };
                fps.start + (base + r.start) * w..fps.start + (base + r.end) * w
            }
            EntryLayout::Packed {
                entries,
                tag_bits,
                id_bits,
            } => {
                // Up to the end of the 8-byte load of the last entry's id.
                let e = (tag_bits + id_bits) as usize;
                let s = entries.start + (base + r.start) * e / 8;
                let end = match r.end.checked_sub(1) {
                    Some(last) if r.end > r.start => {
                        entries.start + ((base + last) * e + *tag_bits as usize) / 8 + 8
                    }
                    _ => s,
                };
                s..end.min(entries.end).max(s)
            }
        }
    }

    /// The entry range of `bucket` in `band`.
    fn bucket(&self, band: usize, bucket: usize) -> Result<Range<usize>> {
        let dirs = self.bands.file.view::<4>(&self.bands.dirs);
        let base = band * ((1usize << self.bands.dir_bits) + 1) + bucket;
        let (Some(s), Some(e)) = (dirs.get(base), dirs.get(base + 1)) else {
            return Err(Error::corrupt(
                &self.bands.file.path,
                "bucket directory out of range",
            ));
        };
        if s > e || e as u64 > self.n_contents {
            return Err(Error::corrupt(
                &self.bands.file.path,
                format!("bucket {bucket} of band {band} has range {s}..{e}"),
            ));
        }
        Ok(s as usize..e as usize)
    }

    /// Appends to `out` the content ids whose key in `band` matches `key`, at most `cap` of
    /// them. Returns whether the cap cut the list short. The oracle of
    /// [`probe_all`](Self::probe_all) in the tests.
    #[cfg(test)]
    pub(crate) fn probe(
        &self,
        band: usize,
        key: u64,
        cap: usize,
        out: &mut Vec<u32>,
    ) -> Result<bool> {
        let (bucket, tag) = self.split_key(key);
        let r = self.bucket(band, bucket)?;
        self.probe_range(band, r, tag, cap, out)
    }

    /// The entries of bucket range `r` of `band` whose tag is `tag`, at most `cap`.
    #[cfg(test)]
    fn probe_range(
        &self,
        band: usize,
        r: Range<usize>,
        tag: u32,
        cap: usize,
        out: &mut Vec<u32>,
    ) -> Result<bool> {
        let entries = self.entries();
        let lo = self.first_match(&entries, band, r.clone(), tag);
        self.take_matches(&entries, band, lo..r.end, tag, cap, out)
    }

    /// The entries of every band, for [`first_match`](Self::first_match) and
    /// [`take_matches`](Self::take_matches).
    #[inline]
    fn entries(&self) -> Entries<'_> {
        let f = &self.bands.file;
        match &self.bands.entries {
            EntryLayout::Columns {
                wide: true,
                fps,
                cids,
            } => Entries::Wide(f.view::<4>(fps), f.view::<4>(cids)),
            EntryLayout::Columns {
                wide: false,
                fps,
                cids,
            } => Entries::Narrow(f.view::<2>(fps), f.view::<4>(cids)),
            EntryLayout::Packed {
                entries,
                tag_bits,
                id_bits,
            } => Entries::Packed(PackedEntries::new(
                f.data.get(entries.clone()).unwrap_or_default(),
                *tag_bits,
                *id_bits,
            )),
        }
    }

    /// The first entry of bucket range `r` of `band` whose tag is at least `tag` (`r.end` if
    /// none). A bucket's entries are sorted by tag, so this is a binary search. (On a damaged
    /// file the order may not hold; the search then misses entries but stays in bounds, and
    /// `verify` names the file.)
    #[inline]
    fn first_match(&self, tags: &Entries<'_>, band: usize, r: Range<usize>, tag: u32) -> usize {
        self.partition_point(tags, band, r, |t| t < Some(tag))
    }

    /// The end of the entries of bucket range `r` of `band` (from its first match on) whose
    /// tag is `tag`: a binary search, as [`first_match`](Self::first_match)'s.
    #[inline]
    fn match_end(&self, tags: &Entries<'_>, band: usize, r: Range<usize>, tag: u32) -> usize {
        self.partition_point(tags, band, r, |t| t == Some(tag))
    }

    /// The first entry of range `r` of `band` whose tag `before` does not hold for (`r.end`
    /// if none), `before` holding for a prefix of the range.
    #[inline]
    fn partition_point(
        &self,
        tags: &Entries<'_>,
        band: usize,
        r: Range<usize>,
        before: impl Fn(Option<u32>) -> bool,
    ) -> usize {
        let base = band * self.n_contents as usize;
        let (mut lo, mut hi) = (r.start, r.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(tags.tag(base + mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Appends the content ids of the entries of `band` from `r.start` on while their tag is
    /// `tag` (and `r` lasts), at most `cap` of them. Returns whether the cap cut the list.
    fn take_matches(
        &self,
        entries: &Entries<'_>,
        band: usize,
        r: Range<usize>,
        tag: u32,
        cap: usize,
        out: &mut Vec<u32>,
    ) -> Result<bool> {
        let base = band * self.n_contents as usize;
        if let Entries::Packed(p) = entries {
            // One load per entry: its tag and content id together.
            for (taken, j) in r.enumerate() {
                let Some((t, c)) = p.get((base + j) as u64) else {
                    break;
                };
                if t != u64::from(tag) {
                    break;
                }
                if taken == cap {
                    return Ok(true);
                }
                if c >= self.n_contents {
                    return Err(Error::corrupt(
                        &self.bands.file.path,
                        format!("band {band} entry {j}: content id out of range"),
                    ));
                }
                out.push(c as u32);
            }
            return Ok(false);
        }
        for (taken, j) in r.enumerate() {
            if entries.tag(base + j) != Some(tag) {
                break;
            }
            if taken == cap {
                return Ok(true);
            }
            match entries.cid(base + j) {
                Some(c) if (c as u64) < self.n_contents => out.push(c),
                _ => {
                    return Err(Error::corrupt(
                        &self.bands.file.path,
                        format!("band {band} entry {j}: content id out of range"),
                    ))
                }
            }
        }
        Ok(false)
    }

    /// [`probe`](Self::probe) for every band's key at once (`keys[band]`): the runs of
    /// [`probe_runs`](Self::probe_runs), taken. Same result as probing band after band.
    /// Returns whether a cap cut a list short.
    pub(crate) fn probe_all(&self, keys: &[u64], cap: usize, out: &mut Vec<u32>) -> Result<bool> {
        let mut runs = Vec::new();
        self.probe_runs(keys, &mut runs)?;
        self.take_runs(&runs, cap, out)
    }

    /// Finds where each band's matches of `keys[band]` are (`runs`, cleared first, band after
    /// band), in rounds whose memory reads overlap instead of following one another: the
    /// directory entries of every band are prefetched, then read and each bucket's entries
    /// prefetched (format 5: the packed run of tags and ids; before: the tags), then every
    /// bucket searched for the first and the last match (before format 5, the content ids of
    /// each first match are prefetched too). Nothing is taken yet: a lookup may need one
    /// band's matches only ([`Index::fill_at_one`](crate::index::Index)).
    pub(crate) fn probe_runs(&self, keys: &[u64], runs: &mut Vec<Run>) -> Result<()> {
        /// Bands per group of rounds (every band of the default 32 in one).
        const GROUP: usize = 64;
        // Most lines of one bucket prefetched (a heavy bucket is searched, not read): its
        // tags before format 5, its packed run (about 4.7 bytes an entry) from format 5 on.
        let lines = match self.bands.entries {
            EntryLayout::Columns { .. } => 4,
            EntryLayout::Packed { .. } => 8,
        };
        let n = keys.len().min(self.bands_n as usize);
        let nc = self.n_contents as usize;
        let stride = (1usize << self.bands.dir_bits) + 1;
        let data: &[u8] = &self.bands.file.data;
        let entries = self.entries();
        runs.clear();
        for first in (0..n).step_by(GROUP) {
            let last = (first + GROUP).min(n);
            let mut buckets = [0usize; GROUP];
            // Round 1: the directory entries (a bucket's bounds are two adjacent entries).
            for (band, b) in (first..last).zip(buckets.iter_mut()) {
                let (bucket, _) = self.split_key(keys[band]);
                let at = self.bands.dirs.start + (band * stride + bucket) * 4;
                prefetch_item(data, at);
                if at % 64 == 60 {
                    prefetch_item(data, at + 4);
                }
                *b = bucket;
            }
            // Round 2: the bucket ranges, and their entries (or tags).
            let from = runs.len();
            for (band, &bucket) in (first..last).zip(buckets.iter()) {
                let r = self.bucket(band, bucket)?;
                let bytes = self.entry_bytes(band, &r);
                let mut at = bytes.start;
                for _ in 0..lines {
                    if at >= bytes.end {
                        break;
                    }
                    prefetch_item(data, at);
                    at = (at | 63) + 1;
                }
                let (_, tag) = self.split_key(keys[band]);
                runs.push(Run { band, tag, r });
            }
            // Round 3: each bucket's matches (before format 5, and their first content id).
            for run in &mut runs[from..] {
                let lo = self.first_match(&entries, run.band, run.r.clone(), run.tag);
                let hi = self.match_end(&entries, run.band, lo..run.r.end, run.tag);
                if let EntryLayout::Columns { cids, .. } = &self.bands.entries {
                    if lo < hi {
                        prefetch_item(data, cids.start + (run.band * nc + lo) * 4);
                    }
                }
                run.r = lo..hi;
            }
        }
        Ok(())
    }

    /// Appends the content ids of `runs` ([`probe_runs`](Self::probe_runs)) to `out`, at most
    /// `cap` of each. Returns whether the cap cut one short.
    pub(crate) fn take_runs(&self, runs: &[Run], cap: usize, out: &mut Vec<u32>) -> Result<bool> {
        let entries = self.entries();
        let mut cut = false;
        for run in runs {
            cut |= self.take_matches(&entries, run.band, run.r.clone(), run.tag, cap, out)?;
        }
        Ok(cut)
    }

    /// Every `(key prefix, content)` entry of a bucket, for the self-join of clustering and
    /// for merging: the prefix is the key's leading [`known_key_bits`](Self::known_key_bits)
    /// bits.
    pub(crate) fn bucket_entries(
        &self,
        band: usize,
        bucket: usize,
        out: &mut Vec<(u64, u32)>,
    ) -> Result<()> {
        let r = self.bucket(band, bucket)?;
        let base = band * self.n_contents as usize;
        let entries = self.entries();
        for j in r {
            match (entries.tag(base + j), entries.cid(base + j)) {
                (Some(t), Some(c)) if (c as u64) < self.n_contents => {
                    // The bucket's bits, then the tag's.
                    let tag_bits = self.known_key_bits() - self.bands.dir_bits;
                    out.push((((bucket as u64) << tag_bits) | t as u64, c));
                }
                _ => {
                    return Err(Error::corrupt(
                        &self.bands.file.path,
                        format!("band {band} entry {j} is out of range"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// [`bucket_entries`](Self::bucket_entries) of the buckets of `band` from `from` on, until
    /// at least `at_least` entries are appended or the band ends; returns the next bucket.
    /// A format-5 table is decoded in one loop (its widths, directory and bounds read once),
    /// for merging, which reads every band whole.
    pub(crate) fn band_entries_from(
        &self,
        band: usize,
        from: usize,
        at_least: usize,
        out: &mut Vec<(u64, u32)>,
    ) -> Result<usize> {
        let nb = self.buckets_per_band();
        let start = out.len();
        let EntryLayout::Packed {
            entries,
            tag_bits,
            id_bits,
        } = &self.bands.entries
        else {
            let mut b = from;
            while b < nb && out.len() - start < at_least {
                self.bucket_entries(band, b, out)?;
                b += 1;
            }
            return Ok(b);
        };
        let path = &self.bands.file.path;
        let dirs = self.bands.file.view::<4>(&self.bands.dirs);
        let packed = PackedEntries::new(
            self.bands
                .file
                .data
                .get(entries.clone())
                .unwrap_or_default(),
            *tag_bits,
            *id_bits,
        );
        let n = self.n_contents;
        let base = band as u64 * n;
        let key_tag_bits = self.known_key_bits() - self.bands.dir_bits;
        let dir_base = band * (nb + 1);
        let dir = |b: usize| {
            dirs.get(dir_base + b)
                .filter(|&x| u64::from(x) <= n)
                .ok_or_else(|| {
                    Error::corrupt(path, format!("bucket {b} of band {band} is out of range"))
                })
        };
        let mut b = from;
        let mut s = if b < nb { dir(b)? } else { 0 };
        while b < nb && out.len() - start < at_least {
            let end = dir(b + 1)?;
            if s > end {
                return Err(Error::corrupt(
                    path,
                    format!("bucket {b} of band {band} has range {s}..{end}"),
                ));
            }
            let high = (b as u64) << key_tag_bits;
            for j in u64::from(s)..u64::from(end) {
                match packed.get(base + j) {
                    Some((t, c)) if c < n => out.push((high | t, c as u32)),
                    _ => {
                        return Err(Error::corrupt(
                            path,
                            format!("band {band} entry {j} is out of range"),
                        ))
                    }
                }
            }
            s = end;
            b += 1;
        }
        Ok(b)
    }

    /// The number of directory buckets per band.
    pub(crate) fn buckets_per_band(&self) -> usize {
        1usize << self.bands.dir_bits
    }

    /// The 8-bit signature of content `c`.
    #[inline]
    pub(crate) fn signature(&self, c: u32) -> Result<&[u8]> {
        let start = (c as usize)
            .checked_mul(self.k)
            .map(|s| self.sigs_range.start + s);
        match start {
            Some(s) if (c as u64) < self.n_contents => Ok(&self.sigs.data[s..s + self.k]),
            _ => Err(Error::corrupt(
                &self.sigs.path,
                format!("content id {c} out of range"),
            )),
        }
    }

    /// The number of bytes each of `cands`' signatures shares with `sig`, in order, into
    /// `out` ([`crate::minhash::equal_bytes_each`], fetching signatures ahead).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a content id out of range.
    pub(crate) fn equal_counts(&self, cands: &[u32], sig: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let sigs = &self.sigs.data[self.sigs_range.clone()];
        crate::minhash::equal_bytes_each(sigs, self.k, cands, sig, out, |c| self.touch_signature(c))
            .map_err(|c| Error::corrupt(&self.sigs.path, format!("content id {c} out of range")))
    }

    /// Whether each content's posts are ordered by time (unknown last), then id (format 7):
    /// the order a lookup ranks equally similar posts in, so the first live posts of a
    /// content are its best.
    pub(crate) fn posts_by_time(&self) -> bool {
        self.posts.by_time
    }

    /// Tests: the (time, unknown last; id) keys of content `c`'s posts, in stored order.
    #[cfg(test)]
    pub(crate) fn time_id_keys(&self, c: u32) -> Vec<(i64, String)> {
        self.content_posts(c)
            .unwrap()
            .map(|p| {
                let ts = self.post_ts(p).unwrap().unwrap_or(i64::MAX);
                (ts, self.post_id(p).unwrap().to_string())
            })
            .collect()
    }

    /// The posts of content `c` (a range of post indexes).
    pub(crate) fn content_posts(&self, c: u32) -> Result<Range<u32>> {
        let cp = self.posts.file.view::<4>(&self.posts.content_posts);
        match (cp.get(c as usize), cp.get(c as usize + 1)) {
            (Some(s), Some(e)) if s <= e && e as u64 <= self.n_posts => Ok(s..e),
            _ => Err(Error::corrupt(
                &self.posts.file.path,
                format!("posts of content {c} out of range"),
            )),
        }
    }

    /// The content of post `p` (binary search over the content ranges).
    pub(crate) fn content_of(&self, p: u32) -> Result<u32> {
        let cp = self.posts.file.view::<4>(&self.posts.content_posts);
        let (mut lo, mut hi) = (0usize, self.n_contents as usize);
        // Find the last c with cp[c] <= p.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match cp.get(mid + 1) {
                Some(v) if v <= p => lo = mid + 1,
                Some(_) => hi = mid,
                None => break,
            }
        }
        let r = self.content_posts(lo as u32)?;
        if r.contains(&p) {
            Ok(lo as u32)
        } else {
            Err(Error::corrupt(
                &self.posts.file.path,
                format!("post {p} belongs to no content"),
            ))
        }
    }

    /// The string at `span` of the bytes section `bytes` (item `i` of `what`, for messages).
    fn string_at<'a>(
        &'a self,
        bytes: &Range<usize>,
        span: Option<(u64, u64)>,
        i: u64,
        what: &str,
    ) -> Result<&'a str> {
        let f = &self.posts.file;
        let Some((s, e)) = span else {
            return Err(Error::corrupt(&f.path, format!("{what} {i} out of range")));
        };
        let b = usize::try_from(s)
            .ok()
            .zip(usize::try_from(e).ok())
            .and_then(|(s, e)| f.data.get(bytes.clone())?.get(s..e))
            .ok_or_else(|| Error::corrupt(&f.path, format!("{what} {i} bytes out of range")))?;
        std::str::from_utf8(b)
            .map_err(|_| Error::corrupt(&f.path, format!("{what} {i} is not UTF-8")))
    }

    /// Dictionary string `i` (bounds in `offsets`, bytes in `bytes`).
    fn string<'a>(
        &'a self,
        offsets: &Range<usize>,
        bytes: &Range<usize>,
        i: u64,
        what: &str,
    ) -> Result<&'a str> {
        let offs = self.posts.file.view::<8>(offsets);
        let span = offs.get(i as usize).zip(offs.get(i as usize + 1));
        self.string_at(bytes, span, i, what)
    }

    /// The error for post `p` past the segment's posts.
    fn no_post(&self, p: u32) -> Error {
        Error::corrupt(&self.posts.file.path, format!("post {p} out of range"))
    }

    /// The error for post `p`'s stored time being impossible.
    fn bad_time(&self, p: u32) -> Error {
        Error::corrupt(
            &self.posts.file.path,
            format!("post {p}'s time is out of range"),
        )
    }

    /// Format 6: the packed rows, and the bit where post `p`'s row starts.
    #[inline]
    fn row(&self, p: u32) -> Option<(PackedBits<'_>, u64, &RowCodec)> {
        match &self.posts.rows {
            PostLayout::Rows { rows, codec, .. } => {
                let bits = PackedBits::new(self.posts.file.data.get(rows.clone())?);
                Some((bits, u64::from(p) * codec.stride, codec))
            }
            PostLayout::Columns { .. } => None,
        }
    }

    /// The time of post `p` (which must be below `n_posts`), if known: an error when the
    /// stored value is impossible (format 6: past the time range).
    #[inline]
    fn ts_of(&self, p: u32) -> Result<Option<i64>> {
        let f = &self.posts.file;
        match &self.posts.rows {
            PostLayout::Columns { ts, .. } => match f.view::<8>(ts).get(p as usize) {
                Some(t) => Ok(Some(t as i64).filter(|&t| t != NO_TS)),
                None => Err(self.bad_time(p)),
            },
            PostLayout::Rows { rows, codec, .. } => {
                let bits = PackedBits::new(f.data.get(rows.clone()).unwrap_or_default());
                match codec.ts(&bits, u64::from(p) * codec.stride) {
                    Some(code) => self.ts_from_code(p, code),
                    None => Err(self.bad_time(p)),
                }
            }
        }
    }

    /// The account and platform numbers of post `p`, unchecked against the dictionaries.
    #[inline]
    fn labels_raw(&self, p: u32) -> Option<(u32, u32)> {
        if p as u64 >= self.n_posts {
            return None;
        }
        if let Some((bits, at, codec)) = self.row(p) {
            return codec.labels(&bits, at);
        }
        let PostLayout::Columns {
            account_of,
            platform_of,
            ..
        } = &self.posts.rows
        else {
            return None;
        };
        let f = &self.posts.file;
        let a = f.view::<4>(account_of).get(p as usize)?;
        Some((a, f.view::<4>(platform_of).get(p as usize)?))
    }

    /// Where post `p`'s id starts in `id_bytes` and its account number, unchecked (for the
    /// cache hints of a hit's strings).
    #[inline]
    pub(super) fn id_start_and_account(&self, p: u32) -> Option<(u64, u32)> {
        if let Some((bits, at, codec)) = self.row(p) {
            let a = bits.field(at + codec.account_at, codec.account_mask)?;
            return Some((codec.id(&bits, at)?, u32::try_from(a).ok()?));
        }
        let PostLayout::Columns {
            id_offsets,
            account_of,
            ..
        } = &self.posts.rows
        else {
            return None;
        };
        let f = &self.posts.file;
        let s = f.view::<8>(id_offsets).get(p as usize)?;
        Some((s, f.view::<4>(account_of).get(p as usize)?))
    }

    /// The bounds of post `p`'s id in `id_bytes` (unchecked against it).
    #[inline]
    fn id_span(&self, p: u32) -> Option<(u64, u64)> {
        if p as u64 >= self.n_posts {
            return None;
        }
        if let Some((bits, at, codec)) = self.row(p) {
            let s = codec.id(&bits, at)?;
            let e = if u64::from(p) + 1 < self.n_posts {
                codec.id(&bits, at + codec.stride)?
            } else {
                self.posts.id_bytes.len() as u64
            };
            return Some((s, e));
        }
        let PostLayout::Columns { id_offsets, .. } = &self.posts.rows else {
            return None;
        };
        let offs = self.posts.file.view::<8>(id_offsets);
        offs.get(p as usize).zip(offs.get(p as usize + 1))
    }

    /// The metadata of post `p`.
    pub(crate) fn post(&self, p: u32) -> Result<PostRef<'_>> {
        let ((account, platform, ts), span) = self.labels_and_span(p)?;
        let id = match span {
            // Format 6: the id's bounds came with the row, read once.
            Some(span) => self.string_at(&self.posts.id_bytes, Some(span), p as u64, "id")?,
            None => self.post_id(p)?,
        };
        Ok(PostRef {
            id,
            account,
            platform,
            ts,
        })
    }

    /// Post `p`'s account and platform numbers (checked against the dictionaries) and time,
    /// without reading its id or strings: what a lookup's filters look at, for posts most
    /// of which they drop.
    #[inline]
    pub(crate) fn post_label_ids(&self, p: u32) -> Result<(u32, u32, Option<i64>)> {
        if let Some((bits, at, codec)) = self.row(p) {
            // Format 6: one row read for all three.
            let fields = codec.ts(&bits, at).zip(codec.labels(&bits, at));
            let (code, labels) = match fields {
                Some(f) if u64::from(p) < self.n_posts => f,
                _ => return Err(self.no_post(p)),
            };
            let (a, pl) = self.labels_checked(p, Some(labels))?;
            return Ok((a, pl, self.ts_from_code(p, code)?));
        }
        let (a, pl) = self.labels_of(p)?;
        Ok((a, pl, self.ts_of(p)?))
    }

    /// Post `p`'s account, platform and time, and in format 6 its id's bounds from the same
    /// row read (`None` before: the id is read on its own).
    #[allow(clippy::type_complexity)]
    fn labels_and_span(&self, p: u32) -> Result<((&str, &str, Option<i64>), Option<(u64, u64)>)> {
        if let Some(row) = self.row_fields(p) {
            let (code, a, pl, span) = row.ok_or_else(|| self.no_post(p))?;
            let ts = self.ts_from_code(p, code)?;
            let (a, pl) = self.labels_checked(p, Some((a, pl)))?;
            return Ok(((self.account(a)?, self.platform(pl)?, ts), Some(span)));
        }
        let (a, pl) = self.labels_of(p)?;
        Ok(((self.account(a)?, self.platform(pl)?, self.ts_of(p)?), None))
    }

    /// Format 6: post `p`'s row, decoded: its time code, account, platform and id bounds
    /// (`Some(None)` for a post out of range or a row out of bounds; `None` for formats 1 to
    /// 5).
    #[inline]
    #[allow(clippy::type_complexity)]
    fn row_fields(&self, p: u32) -> Option<Option<(u64, u32, u32, (u64, u64))>> {
        let (bits, at, codec) = self.row(p)?;
        if p as u64 >= self.n_posts {
            return Some(None);
        }
        let read = || {
            let code = codec.ts(&bits, at)?;
            let (a, pl) = codec.labels(&bits, at)?;
            Some((code, a, pl, self.id_span(p)?))
        };
        Some(read())
    }

    /// Format 6: the time post `p`'s row time code stands for (0: unknown).
    #[inline]
    fn ts_from_code(&self, p: u32, code: u64) -> Result<Option<i64>> {
        let PostLayout::Rows { ts_base, .. } = &self.posts.rows else {
            return Ok(None);
        };
        time_of_code(*ts_base, code).ok_or_else(|| self.bad_time(p))
    }

    /// The time of post `p` (unix seconds), if it has one; reads only the time field. An
    /// error for a post out of range or an impossible stored time.
    #[inline]
    pub(crate) fn post_ts(&self, p: u32) -> Result<Option<i64>> {
        if p as u64 >= self.n_posts {
            return Err(self.no_post(p));
        }
        self.ts_of(p)
    }

    /// The posts of `r` (one content's, format 7: in time order, unknown last) whose time is
    /// known and within `since..=until` (either bound optional): two binary searches, the
    /// others are never read. `r` itself when the segment's posts are not in time order.
    pub(crate) fn posts_in_time(
        &self,
        r: Range<u32>,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Range<u32>> {
        if !self.posts_by_time() || (since.is_none() && until.is_none()) {
            return Ok(r);
        }
        // The first post of `r` for which `past` holds (a prefix of `r` fails it).
        let first = |r: Range<u32>, past: &dyn Fn(Option<i64>) -> bool| -> Result<u32> {
            let (mut lo, mut hi) = (r.start, r.end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if past(self.ts_of(mid)?) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            Ok(lo)
        };
        if r.end as u64 > self.n_posts {
            return Err(self.no_post(r.end.saturating_sub(1)));
        }
        let start = match since {
            Some(s) => first(r.clone(), &|t| t.is_none_or(|t| t >= s))?,
            None => r.start,
        };
        let end = first(start..r.end, &|t| match (t, until) {
            (None, _) => true,
            (Some(t), Some(u)) => t > u,
            (Some(_), None) => false,
        })?;
        Ok(start..end)
    }

    /// Calls `f(p, time)` for each post `p` of `r` that is not deleted, in order, until it
    /// returns false: the time scan of a limited lookup, with the layout's decoding hoisted
    /// out of the loop. An error for a post out of range or an impossible stored time.
    #[inline]
    pub(crate) fn live_post_times(
        &self,
        r: Range<u32>,
        mut f: impl FnMut(u32, Option<i64>) -> bool,
    ) -> Result<()> {
        if r.end as u64 > self.n_posts {
            return Err(self.no_post(r.end.saturating_sub(1)));
        }
        let file = &self.posts.file;
        match &self.posts.rows {
            PostLayout::Rows {
                rows,
                ts_base,
                codec,
            } => {
                let bits = PackedBits::new(file.data.get(rows.clone()).unwrap_or_default());
                for p in r {
                    if self.is_deleted(p) {
                        continue;
                    }
                    let code = codec.ts(&bits, u64::from(p) * codec.stride);
                    let code = code.ok_or_else(|| self.no_post(p))?;
                    let ts = time_of_code(*ts_base, code).ok_or_else(|| self.bad_time(p))?;
                    if !f(p, ts) {
                        break;
                    }
                }
            }
            PostLayout::Columns { ts, .. } => {
                let a = file.view::<8>(ts);
                for p in r {
                    if self.is_deleted(p) {
                        continue;
                    }
                    match a.get(p as usize) {
                        Some(t) => {
                            if !f(p, Some(t as i64).filter(|&t| t != NO_TS)) {
                                break;
                            }
                        }
                        None => return Err(self.no_post(p)),
                    }
                }
            }
        }
        Ok(())
    }

    /// The time and id bytes of post `p`, its row decoded once; the id is not checked as
    /// UTF-8 (a merge copies it as it is; every reader checks it on use).
    pub(crate) fn post_ts_and_id_bytes(&self, p: u32) -> Result<(Option<i64>, &[u8])> {
        let (ts, span) = match self.row_fields(p) {
            Some(row) => {
                let (code, _, _, span) = row.ok_or_else(|| self.no_post(p))?;
                (self.ts_from_code(p, code)?, Some(span))
            }
            None => (self.post_ts(p)?, self.id_span(p)),
        };
        let f = &self.posts.file;
        let bytes = span
            .and_then(|(s, e)| {
                let (s, e) = (usize::try_from(s).ok()?, usize::try_from(e).ok()?);
                f.data.get(self.posts.id_bytes.clone())?.get(s..e)
            })
            .ok_or_else(|| Error::corrupt(&f.path, format!("id {p} bytes out of range")))?;
        Ok((ts, bytes))
    }

    /// The external id of post `p`; reads only the id bounds.
    pub(crate) fn post_id(&self, p: u32) -> Result<&str> {
        if p as u64 >= self.n_posts {
            return Err(self.no_post(p));
        }
        self.string_at(&self.posts.id_bytes, self.id_span(p), p as u64, "id")
    }

    /// The account and platform numbers of post `p` (indexes into this segment's
    /// dictionaries, checked against their lengths).
    pub(crate) fn labels_of(&self, p: u32) -> Result<(u32, u32)> {
        self.labels_checked(p, self.labels_raw(p))
    }

    /// `labels` (post `p`'s), checked against the dictionaries' lengths.
    #[inline]
    fn labels_checked(&self, p: u32, labels: Option<(u32, u32)>) -> Result<(u32, u32)> {
        match labels {
            Some((a, pl))
                if (a as u64) < self.posts.n_accounts && (pl as u64) < self.posts.n_platforms =>
            {
                Ok((a, pl))
            }
            _ => Err(Error::corrupt(
                &self.posts.file.path,
                format!("post {p} is out of range or names an account or platform out of range"),
            )),
        }
    }

    /// The name of account number `a`.
    pub(crate) fn account(&self, a: u32) -> Result<&str> {
        self.string(
            &self.posts.account_offsets,
            &self.posts.account_bytes,
            a as u64,
            "account",
        )
    }

    /// The name of platform number `pl`.
    pub(crate) fn platform(&self, pl: u32) -> Result<&str> {
        self.string(
            &self.posts.platform_offsets,
            &self.posts.platform_bytes,
            pl as u64,
            "platform",
        )
    }

    /// The account number of post `p` (an index into this segment's account dictionary),
    /// if it is one.
    pub(crate) fn account_of(&self, p: u32) -> Option<u32> {
        self.labels_raw(p)
            .map(|(a, _)| a)
            .filter(|&a| (a as u64) < self.posts.n_accounts)
    }

    /// The id map (`ids.fst`), checked against its manifest checksum before its first use.
    pub(crate) fn id_map(&self) -> Result<fst::Map<&[u8]>> {
        let checked = self.ids_checked.get_or_init(|| {
            let want = self
                .entry
                .files
                .get("ids.fst")
                .map(|f| f.xxh3.clone())
                .unwrap_or_default();
            let got = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&self.ids));
            if got == want {
                Ok(())
            } else {
                Err(format!("checksum {got} differs from the manifest's {want}"))
            }
        });
        let path = self.dir.join("ids.fst");
        if let Err(what) = checked {
            return Err(Error::ChecksumMismatch {
                path,
                section: what.clone(),
            });
        }
        fst::Map::new(&self.ids[..]).map_err(|e| Error::corrupt(&path, e.to_string()))
    }

    /// Looks up an external id. Checks the `ids.fst` checksum on first use.
    pub(crate) fn find_id(&self, id: &str) -> Result<Option<u32>> {
        let map = self.id_map()?;
        let path = self.dir.join("ids.fst");
        // The fst was checked (checksum and structure) before its first use; a file crafted
        // to pass both can still trip an assertion inside fst: turn that into an error.
        let found =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.get(id.as_bytes())))
                .map_err(|_| Error::corrupt(&path, "the id map is malformed"))?;
        match found {
            Some(p) if p < self.n_posts => Ok(Some(p as u32)),
            Some(p) => Err(Error::corrupt(
                &path,
                format!("id maps to post {p}, out of range"),
            )),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::format::{read_u32, read_u64};
    use crate::index::Access;
    use crate::index::{Index, OpenOptions};
    use crate::QueryOptions;

    /// `Access::InMemory` reads the files a lookup probes into memory and leaves the stored
    /// texts mapped, and a hit's text reads the same either way.
    #[test]
    fn in_memory_reads_all_but_the_texts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v7/index");
        let open = |access| {
            Index::open_with(
                &dir,
                OpenOptions {
                    access,
                    prefetch: false,
                },
            )
            .unwrap()
        };
        let (mapped, read) = (open(Access::Mmap), open(Access::InMemory));
        let seg = &read.segments()[0];
        assert!(!matches!(seg.sigs.data, crate::index::mmap::Data::Mmap(_)));
        assert!(!matches!(
            seg.bands.file.data,
            crate::index::mmap::Data::Mmap(_)
        ));
        let texts = seg.texts.as_ref().expect("the v7 fixture stores texts");
        assert!(matches!(texts.file.data, crate::index::mmap::Data::Mmap(_)));
        let opts = QueryOptions {
            with_text: true,
            limit: 0,
            ..QueryOptions::default()
        };
        // The text posted 60 more times (`make_v7.sh`).
        let posts = std::fs::read_to_string(dir.join("../posts.jsonl")).unwrap();
        let post: serde_json::Value = serde_json::from_str(posts.lines().nth(17).unwrap()).unwrap();
        let q = post["text"].as_str().unwrap();
        let (a, b) = (
            mapped.query(q, &opts).unwrap(),
            read.query(q, &opts).unwrap(),
        );
        assert!(a.hits.len() > 60);
        assert!(!a.hits.is_empty());
        assert!(a.hits.iter().all(|h| h.text.is_some()));
        assert_eq!(format!("{:?}", a.hits), format!("{:?}", b.hits));
    }

    /// The format-4 fixture (`tests/fixtures/make_v4.sh`, built with `--keep-hashtags`)
    /// keeps opening and answering as recorded, and its signature file carries the parameter
    /// record of its manifest's (non-default) parameters.
    #[test]
    fn format_v4_fixture_opens_answers_as_recorded_and_records_its_parameters() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v4");
        let (m, _) = crate::index::Manifest::load_current(&dir.join("index"))
            .unwrap()
            .unwrap();
        assert_eq!(m.format_version, 4);
        assert_eq!(
            m.params.normalizer.hashtags,
            crate::text::Hashtags::KeepWords
        );
        let sigs = dir
            .join("index")
            .join(m.segments[0].dir_name())
            .join("sigs");
        let bytes = std::fs::read(&sigs).unwrap();
        let env = Envelope::parse(&sigs, &bytes, SIGS_MAGIC, "signature").unwrap();
        assert_eq!(env.version, 4);
        let meta = &bytes[env.sections[0].range.clone()];
        assert_eq!(meta.len(), SIGS_META_LEN);
        assert_eq!(read_u64(meta, 16), params_digest(&m.params));
        assert_ne!(
            params_digest(&m.params),
            params_digest(&crate::FingerprintParams::default())
        );
        assert_eq!(read_u32(meta, 24), SIGS_FLAG_HAS_TEXT);
        answers_as_recorded(&dir);
    }

    /// The format-5 fixture (`tests/fixtures/make_v5.sh`) keeps opening and answering as
    /// recorded; its band file packs entries of the widths its counts imply.
    #[test]
    fn format_v5_fixture_opens_and_answers_as_recorded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v5");
        let (m, _) = crate::index::Manifest::load_current(&dir.join("index"))
            .unwrap()
            .unwrap();
        assert_eq!(m.format_version, 5);
        let path = dir
            .join("index")
            .join(m.segments[0].dir_name())
            .join("bands");
        let bytes = std::fs::read(&path).unwrap();
        let env = Envelope::parse(&path, &bytes, BANDS_MAGIC, "band table").unwrap();
        assert_eq!(env.version, 5);
        assert_eq!(env.sections.len(), BANDS_SECTIONS_V5.len());
        let meta = &bytes[env.sections[0].range.clone()];
        assert_eq!(meta.len(), BANDS_META_LEN_V5);
        let (n, d) = (read_u64(meta, 0), read_u32(meta, 12));
        assert_eq!(n, m.segments[0].contents);
        let (tag_bits, id_bits) = (read_u32(meta, 24), read_u32(meta, 28));
        assert_eq!((tag_bits, id_bits), (32 - d, 9), "{n} contents, D = {d}");
        let entries = env.sections[2].range.len() as u64;
        assert_eq!(entries, (32 * n * 37).div_ceil(64) * 8 + 8);
        answers_as_recorded(&dir);
    }

    /// The format-6 fixture (`tests/fixtures/make_v6.sh`) keeps opening and answering as
    /// recorded; its posts file packs rows of the widths its counts and times imply, and every
    /// post's time (unknown, before 1970, far ahead), account and platform read back as its
    /// input gave them.
    #[test]
    fn format_v6_fixture_opens_and_answers_as_recorded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v6");
        let (m, _) = crate::index::Manifest::load_current(&dir.join("index"))
            .unwrap()
            .unwrap();
        assert_eq!(m.format_version, 6);
        let path = dir
            .join("index")
            .join(m.segments[0].dir_name())
            .join("posts");
        let bytes = std::fs::read(&path).unwrap();
        let env = Envelope::parse(&path, &bytes, POSTS_MAGIC, "posts").unwrap();
        assert_eq!(env.version, 6);
        assert_eq!(env.sections.len(), POSTS_SECTIONS_V6.len());
        let meta = &bytes[env.sections[0].range.clone()];
        assert_eq!(meta.len(), POSTS_META_LEN_V6);
        let (np, na, npl) = (read_u64(meta, 0), read_u64(meta, 16), read_u64(meta, 24));
        let inputs: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("posts.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let times: Vec<i64> = inputs.iter().filter_map(|p| p["ts"].as_i64()).collect();
        let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        assert_eq!((lo, hi), (-2208988800, 4102444800));
        assert_eq!(read_u64(meta, 32) as i64, lo, "ts_base");
        let id_len = env.sections[3].range.len() as u64;
        let widths = PostRowWidths::of(na, npl, id_len, (hi - lo) as u64 + 1);
        assert_eq!(widths.ts_bits, 33, "a span of 200 years");
        let got = (
            read_u32(meta, 40),
            read_u32(meta, 44),
            read_u32(meta, 48),
            read_u32(meta, 52),
        );
        let want = (
            widths.ts_bits,
            widths.account_bits,
            widths.platform_bits,
            widths.id_bits,
        );
        assert_eq!(got, want);
        assert_eq!(
            env.sections[2].range.len() as u64,
            (np * u64::from(widths.stride())).div_ceil(64) * 8 + 8
        );
        let index = Index::open(dir.join("index")).unwrap();
        let mut read = 0;
        for p in &inputs {
            let id = p["id"].to_string();
            // Posts whose text normalizes to nothing are not indexed.
            let Some(got) = index.post(&id).unwrap() else {
                continue;
            };
            assert_eq!(got.account, p["account"].as_str().unwrap(), "{id}");
            assert_eq!(got.platform, p["platform"].as_str().unwrap(), "{id}");
            assert_eq!(got.ts, p["ts"].as_i64(), "{id}");
            read += 1;
        }
        assert_eq!(read, np);
        answers_as_recorded(&dir);
    }

    /// The format-7 fixture (`tests/fixtures/make_v7.sh`) keeps opening and answering as
    /// recorded, and its 60 copies of one text (ids and times out of input order, times
    /// tied, some unknown) are one content whose posts are in time order, unknown last,
    /// then id order.
    #[test]
    fn format_v7_fixture_opens_answers_as_recorded_and_orders_posts_by_time() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v7");
        let (m, _) = crate::index::Manifest::load_current(&dir.join("index"))
            .unwrap()
            .unwrap();
        assert_eq!(m.format_version, 7);
        let index = Index::open(dir.join("index")).unwrap();
        let seg = &index.segments()[0];
        assert!(seg.posts_by_time());
        let mut longest = Vec::new();
        for c in 0..seg.n_contents() as u32 {
            let keys = seg.time_id_keys(c);
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "content {c}: {keys:?}"
            );
            if keys.len() > longest.len() {
                longest = keys;
            }
        }
        assert!(longest.len() >= 60, "{} posts", longest.len());
        assert_eq!(longest.last().unwrap().0, i64::MAX, "unknown times last");
        index.verify().unwrap();
        answers_as_recorded(&dir);
    }

    /// Every format's band tables hold, in each band, one entry per content: the leading
    /// bits of its band key that the format keeps, in key order (the oracle: each fixture
    /// post's fingerprint, computed again).
    #[test]
    fn band_tables_hold_each_contents_key_once_per_band() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for version in ["v1", "v2", "v3", "v4", "v5", "v6", "v7"] {
            let dir = root.join(version);
            let index = Index::open(dir.join("index")).unwrap();
            let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
            let fp = index.fingerprinter();
            for seg in index.segments() {
                let bits = seg.known_key_bits();
                let bands = seg.bands_n as usize;
                let mut want: Vec<Vec<(u64, u32)>> = vec![Vec::new(); bands];
                let mut seen = std::collections::HashSet::new();
                let mut keys = Vec::new();
                for line in posts.lines() {
                    let post: serde_json::Value = serde_json::from_str(line).unwrap();
                    let id = match &post["id"] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let Some(p) = seg.find_id(&id).unwrap() else {
                        continue;
                    };
                    let c = seg.content_of(p).unwrap();
                    let f = fp.fingerprint(post["text"].as_str().unwrap()).unwrap();
                    keys.clear();
                    fp.band_keys(&f.signature, &mut keys);
                    if seen.insert(c) {
                        for (j, &k) in keys.iter().enumerate() {
                            want[j].push((k >> (64 - bits), c));
                        }
                    }
                }
                assert_eq!(seen.len() as u64, seg.n_contents(), "{version}");
                for (j, want) in want.iter_mut().enumerate() {
                    let mut got = Vec::new();
                    for b in 0..seg.buckets_per_band() {
                        seg.bucket_entries(j, b, &mut got).unwrap();
                    }
                    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "{version}");
                    got.sort_unstable();
                    want.sort_unstable();
                    assert_eq!(&got, want, "{version} band {j}");
                }
            }
        }
    }

    /// The fixture in `dir` opens (memory-mapped and in memory), verifies, and answers its
    /// 300 posts as its `expected.jsonl` records.
    fn answers_as_recorded(dir: &Path) {
        let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
        let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
        let opts = QueryOptions {
            with_text: false,
            min_similarity: 0.3,
            exact_near_threshold: false,
            ..QueryOptions::default()
        };
        for access in [Access::Mmap, Access::InMemory] {
            let index = Index::open_with(
                dir.join("index"),
                OpenOptions {
                    access,
                    prefetch: false,
                },
            )
            .unwrap();
            index.verify().unwrap();
            let mut n = 0;
            for (post, want) in posts.lines().zip(expected.lines()) {
                let post: serde_json::Value = serde_json::from_str(post).unwrap();
                let want: serde_json::Value = serde_json::from_str(want).unwrap();
                let got = index.query(post["text"].as_str().unwrap(), &opts).unwrap();
                let want = want["hits"].as_array().unwrap();
                assert_eq!(got.hits.len(), want.len(), "query {post}");
                for (g, w) in got.hits.iter().zip(want) {
                    assert_eq!(g.id, w[0].as_str().unwrap(), "query {post}");
                    assert!((g.similarity - w[1].as_f64().unwrap()).abs() < 1e-5);
                }
                n += 1;
            }
            assert_eq!(n, 300);
        }
    }

    /// `posts_in_time` is the posts a linear scan keeps (time known and in the window), on
    /// every content of the format-7 fixture, and every post on the format-6 one (not in
    /// time order, nothing is skipped).
    #[test]
    fn posts_in_time_are_the_posts_in_the_window() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut narrowed = 0;
        for version in ["v6", "v7"] {
            let index = Index::open(root.join(version).join("index")).unwrap();
            for seg in index.segments() {
                let mut times: Vec<i64> = (0..seg.n_posts as u32)
                    .filter_map(|p| seg.post_ts(p).unwrap())
                    .collect();
                times.sort_unstable();
                let pick = |f: usize| times.get(times.len() * f / 4).copied();
                let bounds = [
                    (pick(1), None),
                    (None, pick(2)),
                    (pick(1), pick(3)),
                    (pick(2), pick(2)),
                    (Some(i64::MIN), Some(i64::MAX)),
                    (pick(3), pick(1)),
                ];
                for c in 0..seg.n_contents as u32 {
                    let all = seg.content_posts(c).unwrap();
                    for &(since, until) in &bounds {
                        let got = seg.posts_in_time(all.clone(), since, until).unwrap();
                        if !seg.posts_by_time() {
                            assert_eq!(got, all, "{version}");
                            continue;
                        }
                        let want: Vec<u32> = all
                            .clone()
                            .filter(|&p| {
                                seg.post_ts(p).unwrap().is_some_and(|t| {
                                    since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
                                })
                            })
                            .collect();
                        assert_eq!(got.clone().collect::<Vec<_>>(), want, "{version} {c}");
                        narrowed += usize::from(got.len() < all.len());
                    }
                }
            }
        }
        assert!(
            narrowed > 20,
            "{narrowed} windows narrower than their content"
        );
    }

    /// `post_label_ids` reads what `post` reads, but the id and the strings, in every format.
    #[test]
    fn post_label_ids_are_the_posts_labels() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for version in ["v1", "v2", "v3", "v4", "v5", "v6", "v7"] {
            let index = Index::open(root.join(version).join("index")).unwrap();
            let mut checked = 0;
            for seg in index.segments() {
                for p in 0..seg.n_posts as u32 {
                    let post = seg.post(p).unwrap();
                    let (a, pl, ts) = seg.post_label_ids(p).unwrap();
                    let labels = (seg.account(a).unwrap(), seg.platform(pl).unwrap(), ts);
                    assert_eq!(labels, (post.account, post.platform, post.ts), "{version}");
                    checked += 1;
                }
                assert!(seg.post_label_ids(seg.n_posts as u32).is_err(), "{version}");
            }
            assert!(checked >= 50, "{version}: {checked}");
        }
    }

    /// Probing every band at once finds what probing band after band finds, on the fixtures
    /// of every format version (16-bit and 32-bit tags), with and without a cap.
    #[test]
    fn probe_all_finds_what_probing_band_after_band_finds() {
        // And `Run::shortest_uncut` names the shortest band list the cap did not cut.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for version in ["v1", "v2", "v3", "v4", "v5", "v6", "v7"] {
            let dir = root.join(version);
            let index = Index::open(dir.join("index")).unwrap();
            let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
            let mut keys = Vec::new();
            let mut checked = 0;
            for line in posts.lines().take(60) {
                let post: serde_json::Value = serde_json::from_str(line).unwrap();
                let Some(f) = index
                    .fingerprinter()
                    .fingerprint(post["text"].as_str().unwrap())
                else {
                    continue;
                };
                keys.clear();
                index.fingerprinter().band_keys(&f.signature, &mut keys);
                for seg in index.segments() {
                    for cap in [usize::MAX, 2, 1] {
                        let (mut all, mut one) = (Vec::new(), Vec::new());
                        let cut_all = seg.probe_all(&keys, cap, &mut all).unwrap();
                        let mut cut_one = false;
                        // (length, band, list, cut) of each band's probe.
                        let mut lists = Vec::new();
                        for (band, &key) in keys.iter().enumerate() {
                            let start = one.len();
                            let cut = seg.probe(band, key, cap, &mut one).unwrap();
                            cut_one |= cut;
                            let list = one[start..].to_vec();
                            lists.push((list.len() + usize::from(cut), band, list, cut));
                        }
                        lists.sort();
                        let mut runs = Vec::new();
                        seg.probe_runs(&keys, &mut runs).unwrap();
                        for n in [1, 2] {
                            // The `n` shortest lists, if no cap cut them.
                            let want =
                                lists.iter().take(n).all(|l| !l.3).then(|| {
                                    lists.iter().take(n).flat_map(|l| l.2.clone()).collect()
                                });
                            let mut picked = Vec::new();
                            let got = Run::shortest_uncut(&runs, cap, n, &mut picked).then(|| {
                                let mut list = Vec::new();
                                assert!(!seg.take_runs(&picked, cap, &mut list).unwrap());
                                list
                            });
                            assert_eq!(got, want, "{version}: cap {cap}, {n} shortest");
                        }
                        all.sort_unstable();
                        one.sort_unstable();
                        assert_eq!(all, one, "{version}: {}", seg.dir().display());
                        assert_eq!(cut_all, cut_one, "{version}");
                        checked += usize::from(!one.is_empty());
                    }
                }
            }
            assert!(checked > 40, "{version}: {checked} probes found something");
        }
    }
}
