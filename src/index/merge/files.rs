//! Steps 3 to 6 of a merge: the signature, posts, id and text files, copied from the
//! sources in the new order through the build's encoders.

use std::path::Path;

use fst::{IntoStreamer, Streamer};
use rayon::prelude::*;

use super::renumber::{content_hash, Renumbering};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;
use crate::index::buffer::Dict;
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
    write_posts_file(&seg_dir.join("posts"), &posts)
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
    let mut mb = begin_ids_file(&tmp)?;
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
}

impl<'a> TextBlocks<'a> {
    fn new(sources: &'a [Segment], order: &'a [(u32, u32)]) -> TextBlocks<'a> {
        TextBlocks {
            sources,
            order,
            caches: sources.iter().map(|_| TextCache::default()).collect(),
        }
    }

    /// Raw block `blk`, into `out`.
    fn block(&mut self, blk: usize, out: &mut Vec<u8>) -> Result<()> {
        let lo = blk * TEXT_BLOCK_POSTS as usize;
        let hi = (lo + TEXT_BLOCK_POSTS as usize).min(self.order.len());
        let mut raw = RawBlock::new(out, hi - lo);
        for &(si, p) in &self.order[lo..hi] {
            let si = si as usize;
            let text = self.sources[si].text_str(p, &mut self.caches[si])?;
            raw.push(text.unwrap_or_default().as_bytes());
        }
        Ok(())
    }
}

/// Rounds of text blocks (`write_text_file`) read between releases of the sources' pages.
const TEXT_ROUNDS_PER_RELEASE: usize = 4;

/// How many frames ahead, in new order, a copy of frames asks the CPU to load a frame's
/// bytes (its offsets twice as far ahead; measured in ARCHITECTURE.md, 4 gave no more).
const TEXT_PREFETCH_FRAMES: usize = 8;

/// Writes the text file. When every source holds one frame per post compressed with the
/// same trained dictionary (the segments of one build), each live post's frame is copied as
/// it is, in new order, with that dictionary. Otherwise the texts are read in new order and
/// recompressed, with a dictionary trained on a sample of them, evenly spaced in the new
/// order (read before the sequential pass); each task of the parallel pass reads and
/// compresses its blocks.
pub(super) fn write_texts(
    seg_dir: &Path,
    sources: &[Segment],
    new: &Renumbering,
) -> Result<FileEntry> {
    let mut release = {
        // Pages read are released every few rounds: after a release, the pages a round
        // shares with earlier ones fault in again (the dev 10M merge: 2.8M page faults
        // releasing every round, 2.3M every 4, peak RSS 0.1 GB more).
        let mut rounds = 0usize;
        move || {
            rounds += 1;
            if rounds.is_multiple_of(TEXT_ROUNDS_PER_RELEASE) {
                sources
                    .iter()
                    .for_each(|s| s.release_file_pages(SegmentFile::Text));
            }
        }
    };
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
                sources[si as usize].text_frame(p)
            },
            &mut release,
        );
    }
    let np = new.n_posts();
    let nb = (np as usize).div_ceil(TEXT_BLOCK_POSTS as usize);
    let order = &new.order;
    let samples = TextCodec::sample_blocks(nb, TEXT_DICT_SAMPLES)
        .collect::<Vec<usize>>()
        .into_par_iter()
        .map_init(
            || TextBlocks::new(sources, order),
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
        &|| TextBlocks::new(sources, order),
        &|reader, blk, out| reader.block(blk, out),
        &mut release,
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
