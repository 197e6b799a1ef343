//! Steps 3 to 6 of a merge: the signature, posts, id and text files, copied from the
//! sources in the new order through the build's encoders.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use fst::{IntoStreamer, Streamer};
use rayon::prelude::*;

use super::renumber::{content_hash, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::buffer::Dict;
use crate::index::durable::Pieces;
use crate::index::encode::{
    begin_ids_file, copy_text_file, finish_ids_file, write_posts_file, write_sigs_file,
    write_text_file, PostRows, PostsColumns, RawBlock, SigsHeader, TextCodec, TEXT_BLOCK_POSTS,
    TEXT_DICT_SAMPLES,
};
use crate::index::manifest::FileEntry;
use crate::index::segment::{Segment, SegmentFile, TextCache, NO_TS};

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
                self.sources
                    .iter()
                    .for_each(|s| s.release_file_pages(SegmentFile::Posts));
            }
            let (ts, id) = self.sources[si as usize].post_ts_and_id_bytes(p)?;
            f(ts.unwrap_or(NO_TS), id)?;
        }
        Ok(())
    }
}

/// Writes the signature file: the live contents' signatures and hashes, in new order.
pub(super) fn write_sigs(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    params: &FingerprintParams,
    has_text: bool,
) -> Result<FileEntry> {
    let header = SigsHeader {
        n: new.n_contents(),
        k: params.num_perm as usize,
        params,
        has_text,
    };
    let entry = write_sigs_file(
        &seg_dir.join("sigs"),
        &header,
        &mut |w| {
            // Written 4,096 signatures at a time (a write hashes what it is given: small
            // ones cost a copy each).
            let mut sigs: Vec<u8> = Vec::with_capacity(header.k << 12);
            for (i, chunk) in new.content_src.chunks(1 << 12).enumerate() {
                if i % 64 == 0 {
                    sources
                        .iter()
                        .for_each(|s| s.release_file_pages(SegmentFile::Sigs));
                }
                sigs.clear();
                for &(si, c) in chunk {
                    sigs.extend_from_slice(sources[si as usize].signature(c)?);
                }
                w.write(&sigs)?;
            }
            Ok(())
        },
        &mut |w| {
            let mut hashes = Vec::with_capacity(1 << 12);
            for (i, chunk) in new.content_src.chunks(1 << 12).enumerate() {
                if i % 64 == 0 {
                    sources
                        .iter()
                        .for_each(|s| s.release_file_pages(SegmentFile::Sigs));
                }
                hashes.clear();
                for &(si, c) in chunk {
                    hashes.push(content_hash(&sources[si as usize], c)?);
                }
                w.write_u128s(&hashes)?;
            }
            Ok(())
        },
        Pieces::Huge,
    )?;
    sources
        .iter()
        .for_each(|s| s.release_file_pages(SegmentFile::Sigs));
    Ok(entry)
}

/// Writes the posts file: several sequential passes over the live posts in new order, with
/// the account and platform dictionaries in first-seen order, as a build makes them.
pub(super) fn write_posts(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
) -> Result<FileEntry> {
    let mut accounts = Dict::default();
    let mut platforms = Dict::default();
    let mut account_of = Vec::with_capacity(new.order.len());
    let mut platform_of = Vec::with_capacity(new.order.len());
    // Each source's account and platform numbers, renumbered when first met (so the new
    // dictionaries are in first-seen order, as interning every post's names would make
    // them); `u32::MAX` is not met yet.
    let mut account_map: Vec<Vec<u32>> = vec![Vec::new(); sources.len()];
    let mut platform_map: Vec<Vec<u32>> = vec![Vec::new(); sources.len()];
    for (i, &(si, p)) in new.order.iter().enumerate() {
        // Every 2^18 posts, the pages read so far are released (bounded resident memory).
        if i % (1 << 18) == 0 {
            sources
                .iter()
                .for_each(|s| s.release_file_pages(SegmentFile::Posts));
        }
        let s = &sources[si as usize];
        let (a, pl) = s.labels_of(p)?;
        let slot = renumbered(&mut account_map[si as usize], a);
        if *slot == u32::MAX {
            *slot = accounts.intern(s.account(a)?);
        }
        account_of.push(*slot);
        let slot = renumbered(&mut platform_map[si as usize], pl);
        if *slot == u32::MAX {
            *slot = platforms.intern(s.platform(pl)?);
        }
        platform_of.push(*slot);
    }
    let rows = LiveRows {
        sources,
        order: &new.order,
    };
    let posts = PostsColumns {
        n_contents: new.n_contents(),
        content_posts: &new.content_posts,
        rows: &rows,
        account_of: &account_of,
        accounts: &accounts,
        platform_of: &platform_of,
        platforms: &platforms,
    };
    write_posts_file(&seg_dir.join("posts"), &posts, Pieces::Huge)
}

/// The slot of number `i` in a renumbering table (grown on demand, `u32::MAX` for unseen).
fn renumbered(map: &mut Vec<u32>, i: u32) -> &mut u32 {
    let i = i as usize;
    if i >= map.len() {
        map.resize(i + 1, u32::MAX);
    }
    &mut map[i]
}

/// Writes the id map: the union of the sources' maps, streamed in id order, each id mapped
/// to its live post's new number.
pub(super) fn write_ids(
    dir: &Path,
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
) -> Result<FileEntry> {
    let path = seg_dir.join("ids.fst");
    let maps = sources
        .iter()
        .map(Segment::id_map)
        .collect::<Result<Vec<_>>>()?;
    let tmp = crate::index::durable::tmp_path(&path);
    let mut mb = begin_ids_file(&tmp, Pieces::Huge)?;
    let mut op = fst::map::OpBuilder::new();
    for m in &maps {
        op = op.add(m.into_stream());
    }
    let mut union = op.union();
    let mut written = 0u64;
    let mut seen = 0u64;
    // fst trusts its input; the maps were checksummed before use, and a malformed one
    // that still trips an assertion becomes an error.
    let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
        while let Some((key, vals)) = union.next() {
            // The id maps' pages read so far are released every 2^18 ids (bounded resident
            // memory while the other files are written beside this step).
            seen += 1;
            if seen % (1 << 18) == 1 {
                sources
                    .iter()
                    .for_each(|s| s.release_file_pages(SegmentFile::Ids));
            }
            // The live post with this id (the latest source's, should there be two).
            let mut live = None;
            for v in vals {
                match new.remaps[v.index].post.get(v.value as usize) {
                    Some(&n) if n != u32::MAX => {
                        if live.is_none_or(|(i, _)| v.index > i) {
                            live = Some((v.index, n));
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
            if let Some((_, n)) = live {
                mb.insert(key, u64::from(n))
                    .map_err(|e| Error::InvalidParameter(format!("{}: {e}", tmp.display())))?;
                written += 1;
            }
        }
        Ok(())
    }))
    .map_err(|_| Error::corrupt(dir, "an id map is malformed"))?;
    streamed?;
    sources
        .iter()
        .for_each(|s| s.release_file_pages(SegmentFile::Ids));
    let np = new.n_posts();
    if written != np {
        return Err(Error::corrupt(
            dir,
            format!("the id maps hold {written} live ids for {np} live posts"),
        ));
    }
    finish_ids_file(mb, &tmp, &path)
}

/// Reads the live posts' texts as raw blocks of [`TEXT_BLOCK_POSTS`] posts in new order, with
/// one block cache per source (a source is read mostly in order).
struct TextBlocks<'a> {
    sources: &'a [Segment],
    order: &'a [(u32, u32)],
    caches: Vec<TextCache>,
    mapped: &'a MappedText<'a>,
}

impl<'a> TextBlocks<'a> {
    fn new(
        sources: &'a [Segment],
        order: &'a [(u32, u32)],
        mapped: &'a MappedText<'a>,
    ) -> TextBlocks<'a> {
        TextBlocks {
            sources,
            order,
            caches: sources.iter().map(|_| TextCache::default()).collect(),
            mapped,
        }
    }

    /// Raw block `blk`, into `out`.
    fn block(&mut self, blk: usize, out: &mut Vec<u8>) -> Result<()> {
        let lo = blk * TEXT_BLOCK_POSTS as usize;
        let hi = (lo + TEXT_BLOCK_POSTS as usize).min(self.order.len());
        let mut raw = RawBlock::new(out, hi - lo);
        for &(si, p) in &self.order[lo..hi] {
            let si = si as usize;
            self.mapped.read(si, p);
            let text = self.sources[si].text_str(p, &mut self.caches[si])?;
            raw.push(text.unwrap_or_default().as_bytes());
        }
        Ok(())
    }
}

/// The unit in which a merge counts the source text pages it has mapped in: a read that
/// faults maps in the aligned 64 KiB around it (the kernel's fault-around, where those
/// pages are cached), so a chunk touched is counted whole.
const TEXT_CHUNK: usize = 64 << 10;

/// The sources' text pages a merge's text step has mapped in since they were last released,
/// counted in [`TEXT_CHUNK`]s (a bit per chunk, set by the parallel tasks as they read);
/// after a round that leaves more than `room` bytes mapped, every source's text pages are
/// released. With room for all of the sources' texts they are never released: each page is
/// read in once (the dev 10M merge's texts step took 7.9-8.8 s releasing every 4 rounds,
/// 4.5-5.4 s never, ARCHITECTURE.md).
pub(super) struct MappedText<'a> {
    sources: &'a [Segment],
    chunks: Vec<Vec<AtomicU64>>,
    mapped: AtomicUsize,
    room: usize,
    releases: AtomicUsize,
}

impl<'a> MappedText<'a> {
    pub(super) fn new(sources: &'a [Segment], room: usize) -> MappedText<'a> {
        let chunks = sources
            .iter()
            .map(|s| {
                let n = s.text_file_len().div_ceil(TEXT_CHUNK);
                (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()
            })
            .collect();
        MappedText {
            sources,
            chunks,
            mapped: AtomicUsize::new(0),
            room,
            releases: AtomicUsize::new(0),
        }
    }

    /// Counts the chunks reading post `p` of source `si` touches.
    fn read(&self, si: usize, p: u32) {
        let (Some(spans), Some(bits)) = (self.sources[si].text_spans(p), self.chunks.get(si))
        else {
            return;
        };
        for r in spans.iter().filter(|r| !r.is_empty()) {
            for c in r.start / TEXT_CHUNK..=(r.end - 1) / TEXT_CHUNK {
                let Some(word) = bits.get(c / 64) else {
                    break;
                };
                let bit = 1u64 << (c % 64);
                if word.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                    self.mapped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Bytes counted as mapped since the last release.
    fn mapped(&self) -> usize {
        self.mapped
            .load(Ordering::Relaxed)
            .saturating_mul(TEXT_CHUNK)
    }

    /// After a round (no read running): releases every source's text pages if more than
    /// the room is mapped.
    fn after_round(&self) {
        if self.mapped() <= self.room {
            return;
        }
        self.sources
            .iter()
            .for_each(|s| s.release_file_pages(SegmentFile::Text));
        self.chunks
            .iter()
            .flatten()
            .for_each(|word| word.store(0, Ordering::Relaxed));
        self.mapped.store(0, Ordering::Relaxed);
        self.releases.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many frames ahead, in new order, a copy of frames asks the CPU to load a frame's
/// bytes (its offsets twice as far ahead; measured in ARCHITECTURE.md, 4 gave no more).
const TEXT_PREFETCH_FRAMES: usize = 8;

/// Writes the text file. When every source holds one frame per post compressed with the
/// same trained dictionary (the segments of one build), each live post's frame is copied as
/// it is, in new order, with that dictionary. Otherwise the texts are read in new order and
/// recompressed, with a dictionary trained on a sample of them, evenly spaced in the new
/// order (read before the sequential pass); each task of the parallel pass reads and
/// compresses its blocks.
///
/// The sources' text pages stay mapped while they fit in `room` bytes ([`MappedText`]); the
/// number of times they were released is returned beside the file's entry.
pub(super) fn write_texts(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    room: usize,
) -> Result<(FileEntry, usize)> {
    let mapped = MappedText::new(sources, room);
    let entry = write_texts_within(seg_dir, sources, new, &mapped)?;
    Ok((entry, mapped.releases.into_inner()))
}

/// [`write_texts`], counting the pages it maps in with `mapped`.
fn write_texts_within(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
    mapped: &MappedText<'_>,
) -> Result<FileEntry> {
    let mut release = || mapped.after_round();
    if let Some(dict) = shared_frame_dict(sources) {
        let order = &new.order;
        return copy_text_file(
            seg_dir,
            new.n_posts(),
            order.len(),
            dict,
            &|i| {
                // The new order is scattered over the sources: ask the CPU for the offsets
                // of the frame two strides ahead and the bytes of the one a stride ahead.
                let d = TEXT_PREFETCH_FRAMES;
                if let Some(&(si, p)) = order.get(i + 2 * d) {
                    if let Some(s) = sources.get(si as usize) {
                        s.prefetch_text_frame_offset(p);
                    }
                }
                if let Some(&(si, p)) = order.get(i + d) {
                    if let Some(s) = sources.get(si as usize) {
                        s.prefetch_text_frame(p);
                    }
                }
                let (si, p) = order[i];
                mapped.read(si as usize, p);
                sources[si as usize].text_frame(p)
            },
            &mut release,
            Pieces::Huge,
        );
    }
    let np = new.n_posts();
    let nb = (np as usize).div_ceil(TEXT_BLOCK_POSTS as usize);
    let order = &new.order;
    let samples = TextCodec::sample_blocks(nb, TEXT_DICT_SAMPLES)
        .collect::<Vec<usize>>()
        .into_par_iter()
        .map_init(
            || TextBlocks::new(sources, order, mapped),
            |reader, blk| {
                let mut raw = Vec::new();
                reader.block(blk, &mut raw).map(|()| raw)
            },
        )
        .collect::<Result<Vec<Vec<u8>>>>()?;
    let codec = TextCodec::train(&samples);
    drop(samples);
    write_text_file(
        seg_dir,
        np,
        nb,
        &codec,
        &|| TextBlocks::new(sources, order, mapped),
        &|reader, blk, out| reader.block(blk, out),
        &mut release,
        Pieces::Huge,
    )
}

/// The dictionary every source's text frames were compressed with, if they all hold one
/// frame per post and their dictionaries are byte-identical and not empty (sources without
/// one, too small to train one each, are recompressed: together they may train one).
fn shared_frame_dict(sources: &[Segment]) -> Option<&[u8]> {
    let (first, rest) = sources.split_first()?;
    let dict = first.text_frame_dict().filter(|d| !d.is_empty())?;
    rest.iter()
        .all(|s| s.text_frame_dict() == Some(dict))
        .then_some(dict)
}

// Copied frames are blocks of the new text file: one post each.
const _: () = assert!(TEXT_BLOCK_POSTS == 1);
