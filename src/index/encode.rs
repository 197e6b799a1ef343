//! Encoders of a segment's files (`bands`, `sigs`, `posts`, `ids.fst`, `text`, `deleted-*`),
//! shared by the bulk build and the merge. FORMAT.md is the byte-level spec.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3;

use super::buffer::{Buffer, Dict, BAND_TABLES_AT_ONCE};
use super::durable::{create_dir, create_file, sync_dir, tmp_path, ChunkWriter, Pieces};
use super::format::{le_chunks, packed_len, BitPacker, EnvelopeWriter};
use super::manifest::{segment_dir_name, FileEntry, SegmentEntry};
use super::options::StageTimes;
use super::order::{invert, ContentOrder, KeyGroups};
use super::segment::{
    entry_widths, prefetch_item, split_key, PostRowWidths, BANDS_MAGIC, BANDS_META_LEN_V5,
    CODEC_ZSTD_DICT, DELETED_MAGIC, MAX_DIR_BITS, NO_TS, POSTS_MAGIC, POSTS_META_LEN_V6,
    POSTS_SECTIONS_V6, SIGS_MAGIC, TEXT_MAGIC,
};
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;

/// Posts per compressed text block: each post is its own zstd frame, compressed with a
/// dictionary trained on the segment's texts, so a hit's text costs one small frame's
/// decompression (sizes and times measured: ARCHITECTURE.md, "Stored texts"). Readers take
/// the value from the file.
pub(crate) const TEXT_BLOCK_POSTS: u32 = 1;

/// Largest text dictionary, bytes.
const TEXT_DICT_BYTES: usize = 64 << 10;

/// Most sample blocks a text dictionary is trained on (training takes about a second).
pub(crate) const TEXT_DICT_SAMPLES: usize = 10_000;

/// Fewest sample blocks a share of a distributed build trains on
/// ([`StagedBuilder::share_of`](super::staged::StagedBuilder::share_of)).
pub(crate) const TEXT_DICT_SHARE_SAMPLES: usize = 1_000;

/// Fewest posts for which a segment trains a text dictionary.
const TEXT_DICT_MIN_POSTS: usize = 1_000;

/// zstd level for stored texts.
pub(crate) const TEXT_ZSTD_LEVEL: i32 = 2;

/// Average entries per band bucket the directory aims for.
const BUCKET_TARGET: u64 = 32;

/// Writes a deletion bitmap for a segment of `posts` posts and returns its manifest entry.
pub(crate) fn write_deleted(
    seg_dir: &Path,
    generation: u64,
    posts: u64,
    words: &[u64],
) -> Result<super::manifest::DeletedEntry> {
    let name = format!("deleted-{generation:06}");
    let path = seg_dir.join(&name);
    let count: u64 = words.iter().map(|w| u64::from(w.count_ones())).sum();
    let mut w = EnvelopeWriter::create(&path, DELETED_MAGIC, 2)?;
    w.begin(0)?;
    let mut meta = Vec::with_capacity(16);
    meta.extend_from_slice(&posts.to_le_bytes());
    meta.extend_from_slice(&count.to_le_bytes());
    w.write(&meta)?;
    w.begin(1)?;
    w.write_u64s(words)?;
    w.finish()?;
    sync_dir(seg_dir)?;
    let fe = file_entry(&path)?;
    Ok(super::manifest::DeletedEntry {
        file: name,
        count,
        len: fe.len,
        xxh3: fe.xxh3,
    })
}

/// The directory bits for `n` entries per band: buckets of about [`BUCKET_TARGET`] entries.
pub fn dir_bits(n: u64) -> u32 {
    let mut d = 0;
    while d < MAX_DIR_BITS && (n >> d) > BUCKET_TARGET {
        d += 1;
    }
    d
}

/// Runs `f` and also returns its wall time in seconds (the steps of a segment's writing
/// and of a merge that run beside each other).
pub(crate) fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = std::time::Instant::now();
    f().map(|e| (e, t.elapsed().as_secs_f64()))
}

/// Writes one segment's files and returns its manifest entry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_segment(
    dir: &Path,
    id: u64,
    b: &Buffer,
    params: &FingerprintParams,
    store_text: bool,
    times: &mut StageTimes,
    texts: &mut BuildTexts,
    pieces: Pieces,
) -> Result<SegmentEntry> {
    let mut clock = std::time::Instant::now();
    let mut lap = |stage: &mut f64| {
        let now = std::time::Instant::now();
        *stage += (now - clock).as_secs_f64();
        clock = now;
    };
    let seg_dir = begin_segment(dir, id)?;
    let nc = b.contents.len();
    let np = b.posts();
    let bands = params.lsh.bands as usize;
    let k = params.num_perm as usize;

    // The build's text dictionary, or, for its first segment, one trained on its own thread
    // while the other files are written, on blocks of posts in input order (the final
    // order is known once the bands are built).
    let input_block = |blk: usize| -> Vec<u8> {
        let lo = blk * TEXT_BLOCK_POSTS as usize;
        let hi = (lo + TEXT_BLOCK_POSTS as usize).min(np);
        let texts: Vec<&[u8]> = (lo..hi).map(|p| b.text(p)).collect();
        raw_block(&texts)
    };
    let nb_text = np.div_ceil(TEXT_BLOCK_POSTS as usize);
    let training = match (&texts.codec, store_text) {
        (_, false) => None,
        (Some(codec), true) => Some(Training::Shared(std::sync::Arc::clone(codec))),
        (None, true) => {
            let samples: Vec<Vec<u8>> = TextCodec::sample_blocks(nb_text, texts.samples)
                .map(input_block)
                .collect();
            // Without a thread to spare, the dictionary is trained when the texts are written.
            let shared = std::sync::Arc::new(samples);
            let theirs = std::sync::Arc::clone(&shared);
            Some(Training::Own(
                std::thread::Builder::new()
                    .name("textreuse-dict".into())
                    .spawn(move || TextCodec::train(&theirs))
                    .map_err(|_| shared),
            ))
        }
    };
    let mut files = BTreeMap::new();
    // Bands: built `BAND_TABLES_AT_ONCE` at a time in parallel, written in band order; their
    // key groups decide the content order (`order.rs`).
    let mut grouping = ContentOrder::new(nc);
    let rank;
    let bands_file;
    {
        let path = seg_dir.join("bands");
        let d = dir_bits(nc as u64);
        let mut w = BandsFile::begin(&path, nc as u64, bands, (d, params.lsh.rows), pieces)?;
        let packing = w.packing();
        // Band tables are built in groups to bound memory, each group while the one before
        // it is written and fed to the content order (serial passes), in band order. Each
        // table's entries are packed, and its key groups collected, where it is built.
        type Table = (Vec<u32>, BandPacker, KeyGroups);
        let groups: Vec<Vec<usize>> = (0..bands)
            .collect::<Vec<_>>()
            .chunks(BAND_TABLES_AT_ONCE)
            .map(|c| c.to_vec())
            .collect();
        let mut consume = |tables: Vec<Table>| -> Result<()> {
            for (dirs, packed, key_groups) in tables {
                w.dirs(&dirs)?;
                w.packed_entries(packed)?;
                grouping.add_groups(&key_groups);
            }
            Ok(())
        };
        let build = |g: &[usize]| -> Vec<Table> {
            // The buffer keeps each band's keys as a column (in blocks of contents).
            g.par_iter()
                .map(|&band| {
                    let (dirs, entries) = band_table(|| b.key_column(band, bands), nc, d);
                    let mut packed = packing.band(band);
                    for &e in &entries {
                        packed.pack_entry((e >> 32) as u32, e as u32);
                    }
                    let key_groups = KeyGroups::of_entries(&dirs, &entries);
                    (dirs, packed, key_groups)
                })
                .collect()
        };
        let mut pending: Vec<Table> = Vec::new();
        for g in &groups {
            let (consumed, built) =
                rayon::join(|| consume(std::mem::take(&mut pending)), || build(g));
            consumed?;
            pending = built;
        }
        consume(pending)?;
        // Content ids are first-seen numbers until here; the file gets the final ones (its
        // entries are copied in beside the other files).
        rank = grouping.finish();
        bands_file = w;
    }
    lap(&mut times.bands);
    let perm = invert(&rank);

    // Group posts by content (in final order); within a content, by time (unknown last),
    // then id: the order a lookup ranks equally similar posts in (format 7).
    let mut content_posts = vec![0u32; nc + 1];
    for &c in &b.post_content {
        content_posts[rank[c as usize] as usize + 1] += 1;
    }
    for i in 0..nc {
        content_posts[i + 1] += content_posts[i];
    }
    let mut order = vec![0u32; np];
    let mut next = content_posts.clone();
    for (p, &c) in b.post_content.iter().enumerate() {
        let c = rank[c as usize] as usize;
        order[next[c] as usize] = p as u32;
        next[c] += 1;
    }
    drop(next);
    let by_time = |&p: &u32| {
        let t = b.post_ts[p as usize];
        (if t == NO_TS { i64::MAX } else { t }, b.id(p as usize))
    };
    for w in content_posts.windows(2) {
        let posts = &mut order[w[0] as usize..w[1] as usize];
        if posts.len() > 1 && !posts.is_sorted_by_key(by_time) {
            posts.sort_unstable_by(|x, y| by_time(x).cmp(&by_time(y)));
        }
    }
    let text_block = |blk: usize, out: &mut Vec<u8>| {
        let lo = blk * TEXT_BLOCK_POSTS as usize;
        let hi = (lo + TEXT_BLOCK_POSTS as usize).min(np);
        // Posts are in content order, their texts scattered over the buffer: the next
        // block's texts are fetched while this one is compressed.
        let ahead = |i: usize| order.get(i).map(|&p| p as usize);
        for i in hi..(2 * hi - lo).min(np) {
            if let Some(p) = ahead(i) {
                b.prefetch_text(p, ahead(i + 4 * TEXT_BLOCK_POSTS as usize));
            }
        }
        let mut raw = RawBlock::new(out, hi - lo);
        order[lo..hi]
            .iter()
            .for_each(|&p| raw.push(b.text(p as usize)));
    };
    // The band entries and the signature, posts, id and text files depend only on the
    // content order: they are written at once (texts on one worker and its parallel
    // rounds, the others as four tasks beside it), so their serial passes overlap the text
    // compression and, without texts, each other.
    let sigs_file = || -> Result<FileEntry> {
        write_sigs_file(
            &seg_dir.join("sigs"),
            &SigsHeader {
                n: nc as u64,
                k,
                params,
                has_text: store_text,
            },
            &mut |w| {
                let mut sigs: Vec<u8> = Vec::with_capacity(k << 12);
                for chunk in perm.chunks(1 << 12) {
                    sigs.clear();
                    for &c in chunk {
                        sigs.extend_from_slice(&b.sigs[c as usize * k..(c as usize + 1) * k]);
                    }
                    w.write(&sigs)?;
                }
                Ok(())
            },
            &mut |w| {
                let hashes: Vec<u128> = perm.iter().map(|&c| b.hashes[c as usize]).collect();
                w.write_u128s(&hashes)
            },
            pieces,
        )
    };
    // Posts, in content order.
    let posts_file = || -> Result<FileEntry> {
        let rows = BufferRows { b, order: &order };
        let account_of: Vec<u32> = order.iter().map(|&p| b.post_account[p as usize]).collect();
        let platform_of: Vec<u32> = order.iter().map(|&p| b.post_platform[p as usize]).collect();
        let posts = PostsColumns {
            n_contents: nc as u64,
            content_posts: &content_posts,
            rows: &rows,
            account_of: &account_of,
            accounts: &b.accounts,
            platform_of: &platform_of,
            platforms: &b.platforms,
        };
        write_posts_file(&seg_dir.join("posts"), &posts, pieces)
    };
    // Ids: an fst map from external id to post index.
    let ids_file = || -> Result<FileEntry> {
        let path = seg_dir.join("ids.fst");
        let mut by_id: Vec<u32> = (0..np as u32).collect();
        // Post index of input post p is its position in `order`.
        let mut position = vec![0u32; np];
        for (i, &p) in order.iter().enumerate() {
            position[p as usize] = i as u32;
        }
        by_id.par_sort_unstable_by(|&x, &y| b.id(x as usize).cmp(b.id(y as usize)));
        let tmp = tmp_path(&path);
        let mut mb = begin_ids_file(&tmp, pieces)?;
        for &p in &by_id {
            mb.insert(b.id(p as usize), position[p as usize] as u64)
                .map_err(|e| fst_error(&tmp, e))?;
        }
        finish_ids_file(mb, &tmp, &path)
    };
    // Texts: one zstd frame per post (TEXT_BLOCK_POSTS), compressed in parallel with a
    // dictionary trained on a sample of them.
    let text_file = |training: Option<Training>| -> Result<Option<(FileEntry, Option<std::sync::Arc<TextCodec>>)>> {
        let Some(training) = training else {
            return Ok(None);
        };
        let (codec, trained) = match training {
            Training::Shared(codec) => (codec, None),
            Training::Own(trained) => {
                let codec = std::sync::Arc::new(match trained {
                    // A training thread that died leaves the texts without a dictionary.
                    Ok(thread) => thread.join().unwrap_or_else(|_| TextCodec::train(&[])),
                    Err(samples) => TextCodec::train(&samples),
                });
                // Kept for the build's later segments (a segment too small to train one
                // leaves the next to try).
                let keep = (!codec.dict().is_empty()).then(|| std::sync::Arc::clone(&codec));
                (codec, keep)
            }
        };
        let text = write_text_file(
            &seg_dir,
            np as u64,
            nb_text,
            &codec,
            &|| (),
            &|_, blk, out| {
                text_block(blk, out);
                Ok(())
            },
            &mut || {},
            pieces,
        )?;
        Ok(Some((text, trained)))
    };
    let (text, ((entries, sigs), (posts, ids))) = rayon::join(
        || timed(|| text_file(training)),
        || {
            rayon::join(
                || rayon::join(|| timed(|| bands_file.finish(&rank)), || timed(sigs_file)),
                || rayon::join(|| timed(posts_file), || timed(ids_file)),
            )
        },
    );
    for (name, r, stage) in [
        ("bands", entries, &mut times.band_entries),
        ("sigs", sigs, &mut times.sigs),
        ("posts", posts, &mut times.posts),
        ("ids.fst", ids, &mut times.ids),
    ] {
        let (entry, secs) = r?;
        files.insert(name.to_string(), entry);
        *stage += secs;
    }
    let (text, secs) = text?;
    times.texts += secs;
    if let Some((entry, trained)) = text {
        files.insert("text".to_string(), entry);
        if let Some(codec) = trained {
            texts.codec = Some(codec);
        }
    }
    lap(&mut times.files);
    finish_segment(
        dir,
        &seg_dir,
        SegmentEntry {
            id,
            posts: np as u64,
            contents: nc as u64,
            has_text: store_text,
            files,
            deleted: None,
        },
    )
}

/// How a writer's segments compress their texts: with the dictionary of its first segment
/// that trained one (every segment of a build then shares it, so the closing merge copies
/// their frames instead of recompressing them), trained on at most `samples` blocks.
pub(crate) struct BuildTexts {
    /// Most sample blocks the dictionary is trained on.
    pub(crate) samples: usize,
    /// The dictionary trained, once one is.
    pub(crate) codec: Option<std::sync::Arc<TextCodec>>,
}

impl std::fmt::Debug for BuildTexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildTexts")
            .field("samples", &self.samples)
            .field("dict_bytes", &self.codec.as_ref().map(|c| c.dict().len()))
            .finish()
    }
}

/// A segment's text dictionary: the build's, or its own being trained (on a thread, or,
/// without one, from the samples when the texts are written).
enum Training {
    Shared(std::sync::Arc<TextCodec>),
    Own(std::result::Result<std::thread::JoinHandle<TextCodec>, std::sync::Arc<Vec<Vec<u8>>>>),
}

/// Creates the directory of segment `id` in `dir` and returns its path.
pub(crate) fn begin_segment(dir: &Path, id: u64) -> Result<PathBuf> {
    let seg_dir = dir.join(segment_dir_name(id));
    create_dir(&seg_dir)?;
    Ok(seg_dir)
}

/// Ends a segment whose files are written: fsyncs its directory and `dir` (the segment
/// is durable before a manifest names it) and returns its manifest entry.
pub(crate) fn finish_segment(
    dir: &Path,
    seg_dir: &Path,
    entry: SegmentEntry,
) -> Result<SegmentEntry> {
    sync_dir(seg_dir)?;
    sync_dir(dir)?;
    Ok(entry)
}

/// The posts of a segment as the `posts` file's encoder reads them: each post's time and
/// id, visited in post order (a pass per column, so neither a build nor a merge holds the
/// columns decoded at once).
pub(crate) trait PostRows {
    /// Posts.
    fn len(&self) -> u64;
    /// Calls `f(ts, id)` for each post in order.
    fn visit(&self, f: &mut dyn FnMut(i64, &[u8]) -> Result<()>) -> Result<()>;
}

/// The buffered posts in content order (a build's flush).
struct BufferRows<'a> {
    b: &'a Buffer,
    order: &'a [u32],
}

impl PostRows for BufferRows<'_> {
    fn len(&self) -> u64 {
        self.order.len() as u64
    }

    fn visit(&self, f: &mut dyn FnMut(i64, &[u8]) -> Result<()>) -> Result<()> {
        for &p in self.order {
            f(self.b.post_ts[p as usize], self.b.id(p as usize))?;
        }
        Ok(())
    }
}

/// Everything the `posts` file holds (FORMAT.md), in post order.
pub(crate) struct PostsColumns<'a> {
    /// Contents in the segment.
    pub(crate) n_contents: u64,
    /// Start of each content's posts (`n_contents + 1` entries).
    pub(crate) content_posts: &'a [u32],
    /// Times and ids.
    pub(crate) rows: &'a dyn PostRows,
    /// Each post's account (index into `accounts`).
    pub(crate) account_of: &'a [u32],
    /// Account names in first-seen order.
    pub(crate) accounts: &'a Dict,
    /// Each post's platform (index into `platforms`).
    pub(crate) platform_of: &'a [u32],
    /// Platform names in first-seen order.
    pub(crate) platforms: &'a Dict,
}

/// Writes a `posts` file (format 6: each post's time, account, platform and id start in one
/// bit-packed row), the one encoder of its 8 sections (a build's flush and a merge both call
/// it), and returns its manifest entry. Three passes over the rows: the time span and id
/// length (the rows' widths), the rows, the id bytes.
pub(crate) fn write_posts_file(
    path: &Path,
    c: &PostsColumns<'_>,
    pieces: Pieces,
) -> Result<FileEntry> {
    let np = c.rows.len();
    let (na, npl) = (c.accounts.ends.len() as u64, c.platforms.ends.len() as u64);
    let bad = |what: String| Error::InvalidParameter(format!("{}: {what}", path.display()));
    if c.account_of.len() as u64 != np || c.platform_of.len() as u64 != np {
        return Err(bad(format!(
            "{np} posts with {} accounts and {} platforms",
            c.account_of.len(),
            c.platform_of.len()
        )));
    }
    // Pass 1: the earliest and latest known times, and the ids' length.
    let (mut lo, mut hi, mut id_len) = (i64::MAX, i64::MIN, 0u64);
    c.rows.visit(&mut |ts, id| {
        if ts != NO_TS {
            lo = lo.min(ts);
            hi = hi.max(ts);
        }
        id_len += id.len() as u64;
        Ok(())
    })?;
    // Time code: 0 = unknown, else ts - base + 1 (at most 2^64 - 1: no known time is i64::MIN).
    let (base, span) = if lo <= hi {
        (lo, (hi.wrapping_sub(lo) as u64) + 1)
    } else {
        (0, 0)
    };
    let wd = PostRowWidths::of(na, npl, id_len, span);
    let mut w = EnvelopeWriter::create_in(path, POSTS_MAGIC, POSTS_SECTIONS_V6.len(), pieces)?;
    w.begin(0)?;
    let mut meta = Vec::with_capacity(POSTS_META_LEN_V6);
    for v in [np, c.n_contents, na, npl, base as u64] {
        meta.extend_from_slice(&v.to_le_bytes());
    }
    for v in [wd.ts_bits, wd.account_bits, wd.platform_bits, wd.id_bits] {
        meta.extend_from_slice(&v.to_le_bytes());
    }
    w.write(&meta)?;
    w.begin(1)?;
    w.write_u32s(c.content_posts)?;
    // Pass 2: the rows, written out a few thousand words at a time.
    w.begin(2)?;
    let mut packer = BitPacker::default();
    let (mut i, mut at, mut words) = (0usize, 0u64, 0u64);
    c.rows.visit(&mut |ts, id| {
        let (a, pl) = (c.account_of[i], c.platform_of[i]);
        if u64::from(a) >= na || u64::from(pl) >= npl {
            return Err(bad(format!("post {i} names account {a} or platform {pl}")));
        }
        let code = if ts == NO_TS {
            0
        } else {
            (ts.wrapping_sub(base) as u64) + 1
        };
        packer.push(code, wd.ts_bits);
        packer.push(u64::from(a), wd.account_bits);
        packer.push(u64::from(pl), wd.platform_bits);
        packer.push(at, wd.id_bits);
        at += id.len() as u64;
        i += 1;
        if packer.words.len() >= 1 << 13 {
            w.write_u64s(&packer.words)?;
            words += packer.words.len() as u64;
            packer.words.clear();
        }
        Ok(())
    })?;
    packer.flush();
    packer.words.push(0);
    words += packer.words.len() as u64;
    w.write_u64s(&packer.words)?;
    if Some(words * 8) != packed_len(np, wd.stride()) || i as u64 != np || at != id_len {
        return Err(bad("the posts changed between passes".into()));
    }
    // Pass 3: the ids.
    w.begin(3)?;
    c.rows.visit(&mut |_, id| w.write(id))?;
    w.begin(4)?;
    w.write_u64s(&[0])?;
    w.write_u64s(&c.accounts.ends)?;
    w.begin(5)?;
    w.write(&c.accounts.bytes)?;
    w.begin(6)?;
    w.write_u64s(&[0])?;
    w.write_u64s(&c.platforms.ends)?;
    w.begin(7)?;
    w.write(&c.platforms.bytes)?;
    w.finish()?;
    file_entry(path)
}

/// A band file being written (the one encoder of its sections; a build's flush and a merge
/// both use it): band after band, each band's directory goes into the file and its entries,
/// packed (format 5: tag, then content id), into a spill file, copied in with their content
/// ids renumbered at the end, since the final content ids are known only after the last
/// band.
pub(crate) struct BandsFile {
    path: PathBuf,
    w: EnvelopeWriter,
    tag_bits: u32,
    id_bits: u32,
    /// Entries per band.
    n: u64,
    /// Entries every band must have, over all bands.
    want: u64,
    /// Entries packed so far.
    packed: u64,
    packer: BitPacker,
    spill: SpillFile,
}

impl BandsFile {
    /// Starts the band file `path` of `n` contents with a directory of `d` bits (its spill
    /// file, `entries.spill.tmp`, next to it).
    pub(crate) fn begin(
        path: &Path,
        n: u64,
        bands: usize,
        (d, rows): (u32, u32),
        pieces: Pieces,
    ) -> Result<BandsFile> {
        let (tag_bits, id_bits) = entry_widths(n, d);
        let mut w = EnvelopeWriter::create_in(path, BANDS_MAGIC, 3, pieces)?;
        w.begin(0)?;
        let mut meta = Vec::with_capacity(BANDS_META_LEN_V5);
        meta.extend_from_slice(&n.to_le_bytes());
        meta.extend_from_slice(&(bands as u32).to_le_bytes());
        meta.extend_from_slice(&d.to_le_bytes());
        meta.extend_from_slice(&rows.to_le_bytes());
        meta.extend_from_slice(&0u32.to_le_bytes());
        meta.extend_from_slice(&tag_bits.to_le_bytes());
        meta.extend_from_slice(&id_bits.to_le_bytes());
        w.write(&meta)?;
        w.begin(1)?;
        Ok(BandsFile {
            path: path.to_path_buf(),
            w,
            tag_bits,
            id_bits,
            n,
            want: bands as u64 * n,
            packed: 0,
            packer: BitPacker::default(),
            spill: SpillFile::new(&path.with_file_name("entries.spill.tmp"))?,
        })
    }

    /// The next band's directory (`2^d + 1` prefix sums), once per band in band order.
    pub(crate) fn dirs(&mut self, dirs: &[u32]) -> Result<()> {
        self.w.write_u32s(dirs)
    }

    /// The next entries: their tags (each key's bits `d..32`) and content ids, in the file's
    /// order (band, bucket, tag, first seen).
    pub(crate) fn entries(&mut self, tags: &[u32], cids: &[u32]) -> Result<()> {
        for (&t, &c) in tags.iter().zip(cids) {
            self.packer.push(u64::from(t), self.tag_bits);
            self.packer.push(u64::from(c), self.id_bits);
            if self.packer.words.len() >= 1 << 16 {
                self.spill.write_u64s(&self.packer.words)?;
                self.packer.words.clear();
            }
        }
        self.packed += tags.len().min(cids.len()) as u64;
        Ok(())
    }

    /// How to pack a band's entries apart from the others (on another thread), to be
    /// handed to [`packed_entries`](Self::packed_entries) in band order.
    pub(crate) fn packing(&self) -> BandPacking {
        BandPacking {
            tag_bits: self.tag_bits,
            id_bits: self.id_bits,
            n: self.n,
        }
    }

    /// The next band's entries, packed by the [`BandPacking::band`] packer of it.
    pub(crate) fn packed_entries(&mut self, band: BandPacker) -> Result<()> {
        if !self.packer.append(band.packer) {
            return Err(Error::InvalidParameter(format!(
                "{}: a band's entries packed for another place",
                self.path.display()
            )));
        }
        if self.packer.words.len() >= 1 << 16 {
            self.spill.write_u64s(&self.packer.words)?;
            self.packer.words.clear();
        }
        self.packed += band.count;
        Ok(())
    }

    /// Copies in the entries, each content id `c` as `rank[c]`, and returns the file's
    /// manifest entry.
    pub(crate) fn finish(self, rank: &[u32]) -> Result<FileEntry> {
        let BandsFile {
            path,
            mut w,
            tag_bits,
            id_bits,
            n: _,
            want,
            packed,
            mut packer,
            mut spill,
        } = self;
        if packed != want {
            return Err(Error::InvalidParameter(format!(
                "{}: {packed} band entries written, {want} expected",
                path.display()
            )));
        }
        packer.flush();
        spill.write_u64s(&packer.words)?;
        w.begin(2)?;
        spill.copy_packed_ranked_into(&mut w, rank, tag_bits, id_bits, packed)?;
        // The zero word that keeps every field's 8-byte load inside the section.
        w.write_u64s(&[0])?;
        w.finish()?;
        file_entry(&path)
    }
}

/// The widths of a band file's entries and the entries per band: every band has `n`
/// entries, so where each band's entries start in the packed stream is known before the
/// bands before it are packed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BandPacking {
    tag_bits: u32,
    id_bits: u32,
    n: u64,
}

impl BandPacking {
    /// A packer for the entries of band `band`, each packed with
    /// [`BandPacker::pack_entry`] in the file's order.
    pub(crate) fn band(&self, band: usize) -> BandPacker {
        let e = u64::from(self.tag_bits + self.id_bits);
        let start = (band as u64).wrapping_mul(self.n).wrapping_mul(e) % 64;
        BandPacker {
            tag_bits: self.tag_bits,
            id_bits: self.id_bits,
            packer: BitPacker::starting_at(start as u32),
            count: 0,
        }
    }
}

/// One band's entries packed on their own: see [`BandsFile::packing`].
pub(crate) struct BandPacker {
    tag_bits: u32,
    id_bits: u32,
    packer: BitPacker,
    count: u64,
}

impl BandPacker {
    /// Packs the next entry (its tag and content id), in the file's order.
    #[inline]
    pub(crate) fn pack_entry(&mut self, tag: u32, cid: u32) {
        self.packer.push(u64::from(tag), self.tag_bits);
        self.packer.push(u64::from(cid), self.id_bits);
        self.count += 1;
    }
}

/// The meta section of a signature file: `n` contents of `k` bytes each, the segment's
/// parameter record and whether it stores texts.
pub(crate) struct SigsHeader<'a> {
    pub(crate) n: u64,
    pub(crate) k: usize,
    pub(crate) params: &'a FingerprintParams,
    pub(crate) has_text: bool,
}

/// Writes a signature file, the one encoder of its 3 sections (a build's flush and a merge
/// both call it): the meta section, then `sigs` writes the signatures (`n * k` bytes, in
/// content order, from a 64-byte aligned offset) and `hashes` the content hashes (`n`
/// `u128`s). Returns its manifest entry.
pub(crate) fn write_sigs_file(
    path: &Path,
    h: &SigsHeader<'_>,
    sigs: &mut dyn FnMut(&mut EnvelopeWriter) -> Result<()>,
    hashes: &mut dyn FnMut(&mut EnvelopeWriter) -> Result<()>,
    pieces: Pieces,
) -> Result<FileEntry> {
    let mut w = EnvelopeWriter::create_in(path, SIGS_MAGIC, 3, pieces)?;
    w.begin(0)?;
    w.write(&super::segment::sigs_meta(h.n, h.k, h.params, h.has_text))?;
    // Line-aligned: a 128-byte signature is two cache lines, not three.
    w.begin_aligned(1, 64)?;
    sigs(&mut w)?;
    w.begin(2)?;
    hashes(&mut w)?;
    w.finish()?;
    file_entry(path)
}

/// An id map being written to `tmp`.
pub(crate) type IdsBuilder = fst::MapBuilder<ChunkWriter>;

/// Starts an id map (`ids.fst`) at the temporary path `tmp`.
pub(crate) fn begin_ids_file(tmp: &Path, pieces: Pieces) -> Result<IdsBuilder> {
    let f = create_file(tmp)?;
    let w = ChunkWriter::new(f, pieces).map_err(|e| Error::io(tmp, e))?;
    fst::MapBuilder::new(w).map_err(|e| fst_error(tmp, e))
}

/// An error of the fst crate while writing `path`: an I/O error is [`Error::Io`] (a full
/// disk is not a damaged index); anything else (keys out of order) is a bug in the caller.
pub(crate) fn fst_error(path: &Path, e: fst::Error) -> Error {
    match e {
        fst::Error::Io(io) => Error::io(path, io),
        other => Error::InvalidParameter(format!("{}: {other}", path.display())),
    }
}

/// Ends an id map: fsyncs it, renames it from `tmp` to `path`, returns its manifest entry.
pub(crate) fn finish_ids_file(mb: IdsBuilder, tmp: &Path, path: &Path) -> Result<FileEntry> {
    let w = mb.into_inner().map_err(|e| fst_error(tmp, e))?;
    let f = w.into_inner().map_err(|e| Error::io(tmp, e))?;
    f.sync_data().map_err(|e| Error::io(tmp, e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    file_entry(path)
}

/// Text blocks compressed in one parallel round; a round's compressed blocks, and the
/// round's before it (written while this one is compressed), are in memory.
const TEXT_GROUP_BLOCKS: usize = 16_384;

/// Text blocks one task reads and compresses in a row (one compression context).
const TEXT_PIECE_BLOCKS: usize = 256;

/// Compressed text blocks of one task: their frames one after another, and each one's end.
type Frames = (Vec<u8>, Vec<usize>);

/// Writes the `text` file of the segment in `seg_dir`, the one encoder of its sections (a
/// build's flush and a merge both call it): `np` posts in `nb` raw blocks compressed with
/// `codec`. Rounds of blocks are read and compressed in parallel, a task per
/// [`TEXT_PIECE_BLOCKS`] with its own `reader()` state, `raw_block(state, i, out)` filling
/// `out` with raw block `i`; each round is written (in block order) while the next one is
/// compressed, and `after_round` runs after each. The block offsets go first in the file
/// (their room is reserved) and are filled in at the end. Returns its manifest entry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_text_file<R, I, F>(
    seg_dir: &Path,
    np: u64,
    nb: usize,
    codec: &TextCodec,
    reader: &I,
    raw_block: &F,
    after_round: &mut dyn FnMut(),
    pieces: Pieces,
) -> Result<FileEntry>
where
    I: Fn() -> R + Sync,
    F: Fn(&mut R, usize, &mut Vec<u8>) -> Result<()> + Sync,
{
    let path = seg_dir.join("text");
    write_frames(
        seg_dir,
        np,
        nb,
        codec.dict(),
        &|| (reader(), None, Vec::new(), Vec::new()),
        &|(state, z, raw, prev), piece| {
            let z = match z {
                Some(z) => z,
                slot => slot.insert(codec.compressor(&path)?),
            };
            codec.compress_piece(&path, z, piece, raw, prev, &mut |i, out| {
                raw_block(state, i, out)
            })
        },
        after_round,
        pieces,
    )
}

/// Writes the `text` file of the segment in `seg_dir` from frames already compressed with
/// `dict` (a merge of sources that share it): block `i` of `nb` is `frame(i)`, copied as
/// it is. As [`write_text_file`] otherwise.
pub(crate) fn copy_text_file<'a, F>(
    seg_dir: &Path,
    np: u64,
    nb: usize,
    dict: &[u8],
    frame: &F,
    after_round: &mut dyn FnMut(),
    pieces: Pieces,
) -> Result<FileEntry>
where
    F: Fn(usize) -> Result<&'a [u8]> + Sync,
{
    write_frames(
        seg_dir,
        np,
        nb,
        dict,
        &|| (),
        &|(), piece| {
            let mut frames = Vec::new();
            let mut ends = Vec::with_capacity(piece.len());
            for i in piece {
                frames.extend_from_slice(frame(i)?);
                ends.push(frames.len());
            }
            Ok((frames, ends))
        },
        after_round,
        pieces,
    )
}

/// The one encoder of the `text` file's sections: `nb` blocks of `np` posts whose frames
/// `piece(state, range)` makes, a parallel task per [`TEXT_PIECE_BLOCKS`] with its own
/// `state()`, a round of [`TEXT_GROUP_BLOCKS`] at a time; each round is written (in block
/// order) while the next one is made, and `after_round` runs after each. The block offsets
/// go first in the file (their room is reserved) and are filled in at the end; the
/// dictionary `dict` goes last.
#[allow(clippy::too_many_arguments)]
fn write_frames<S, I, F>(
    seg_dir: &Path,
    np: u64,
    nb: usize,
    dict: &[u8],
    state: &I,
    piece: &F,
    after_round: &mut dyn FnMut(),
    pieces: Pieces,
) -> Result<FileEntry>
where
    I: Fn() -> S + Sync,
    F: Fn(&mut S, std::ops::Range<usize>) -> Result<Frames> + Sync,
{
    let path = seg_dir.join("text");
    let mut w = EnvelopeWriter::create_in(&path, TEXT_MAGIC, 4, pieces)?;
    w.begin(0)?;
    let mut meta = Vec::with_capacity(16);
    meta.extend_from_slice(&np.to_le_bytes());
    meta.extend_from_slice(&TEXT_BLOCK_POSTS.to_le_bytes());
    meta.extend_from_slice(&CODEC_ZSTD_DICT.to_le_bytes());
    w.write(&meta)?;
    let mut offsets = w.reserve(1, (nb as u64 + 1) * 8)?;
    w.begin(2)?;
    let mut offs = Vec::with_capacity(nb + 1);
    offs.push(0u64);
    let make_round = |round: std::ops::Range<usize>| -> Result<Vec<Frames>> {
        let pieces: Vec<std::ops::Range<usize>> = round
            .clone()
            .step_by(TEXT_PIECE_BLOCKS)
            .map(|lo| lo..(lo + TEXT_PIECE_BLOCKS).min(round.end))
            .collect();
        pieces.into_par_iter().map_init(state, piece).collect()
    };
    let write_round = |w: &mut EnvelopeWriter, offs: &mut Vec<u64>, round: Vec<Frames>| {
        for (frames, ends) in round {
            let base = offs[offs.len() - 1];
            offs.extend(ends.iter().map(|&e| base + e as u64));
            w.write(&frames)?;
        }
        Ok::<(), Error>(())
    };
    let mut pending: Option<Vec<Frames>> = None;
    for g in (0..nb).step_by(TEXT_GROUP_BLOCKS) {
        let (written, made) = rayon::join(
            || match pending.take() {
                Some(round) => write_round(&mut w, &mut offs, round),
                None => Ok(()),
            },
            || make_round(g..(g + TEXT_GROUP_BLOCKS).min(nb)),
        );
        written?;
        pending = Some(made?);
        after_round();
    }
    if let Some(round) = pending.take() {
        write_round(&mut w, &mut offs, round)?;
    }
    if offs.len() != nb + 1 {
        return Err(Error::InvalidParameter(format!(
            "{}: {} text blocks made for {nb}",
            path.display(),
            offs.len() - 1
        )));
    }
    le_chunks(&offs, u64::to_le_bytes, |b| w.fill(&mut offsets, b))?;
    w.close(offsets)?;
    w.begin(3)?;
    w.write(dict)?;
    w.finish()?;
    file_entry(&path)
}

/// A decompressed text block being built in `out` (cleared): room for the offsets of `m`
/// texts, each text added with [`RawBlock::push`].
pub(crate) struct RawBlock<'a> {
    out: &'a mut Vec<u8>,
    i: usize,
    m: usize,
}

impl<'a> RawBlock<'a> {
    /// Starts a block of `m` texts in `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>, m: usize) -> RawBlock<'a> {
        out.clear();
        out.resize(4 * (m + 1), 0);
        RawBlock { out, i: 0, m }
    }

    /// Adds the next text (at most `m`; its offsets are `u32`, as in [`raw_block`]).
    pub(crate) fn push(&mut self, text: &[u8]) {
        if self.i >= self.m {
            return;
        }
        self.out.extend_from_slice(text);
        let end = (self.out.len() - 4 * (self.m + 1)) as u32;
        self.i += 1;
        self.out[4 * self.i..4 * self.i + 4].copy_from_slice(&end.to_le_bytes());
    }
}

/// A decompressed text block: `u32` offsets of its texts, then the texts (FORMAT.md).
pub(crate) fn raw_block(texts: &[&[u8]]) -> Vec<u8> {
    let len: usize = texts.iter().map(|t| t.len()).sum();
    let mut raw = Vec::with_capacity(len + 4 * (texts.len() + 1));
    let mut off = 0u32;
    raw.extend_from_slice(&0u32.to_le_bytes());
    for t in texts {
        off += t.len() as u32;
        raw.extend_from_slice(&off.to_le_bytes());
    }
    for t in texts {
        raw.extend_from_slice(t);
    }
    raw
}

/// How a segment's text blocks are compressed: zstd at [`TEXT_ZSTD_LEVEL`], with a
/// dictionary trained on a sample of the blocks when there are enough of them.
pub(crate) struct TextCodec {
    dict: Vec<u8>,
    prepared: Option<zstd::dict::EncoderDictionary<'static>>,
}

impl TextCodec {
    /// The blocks a dictionary for `n` blocks is trained on: up to `most` (normally
    /// [`TEXT_DICT_SAMPLES`]), evenly spaced (the same blocks give the same dictionary);
    /// none when the segment has too few posts to be worth one.
    pub(crate) fn sample_blocks(n: usize, most: usize) -> impl Iterator<Item = usize> {
        let n = if n * (TEXT_BLOCK_POSTS as usize) < TEXT_DICT_MIN_POSTS {
            0
        } else {
            n
        };
        (0..n).step_by(n.div_ceil(most.max(1)).max(1))
    }

    /// Trains on the sample blocks ([`sample_blocks`](Self::sample_blocks)). Too small a
    /// sample, or one zstd cannot learn from, gives no dictionary.
    pub(crate) fn train(samples: &[Vec<u8>]) -> TextCodec {
        // At most a quarter of the sample, and nothing from a sample under 16 KiB.
        let total: usize = samples.iter().map(Vec::len).sum();
        let dict = if total < 16 << 10 {
            Vec::new()
        } else {
            zstd::dict::from_samples(samples, TEXT_DICT_BYTES.min(total / 4)).unwrap_or_default()
        };
        let prepared =
            (!dict.is_empty()).then(|| zstd::dict::EncoderDictionary::copy(&dict, TEXT_ZSTD_LEVEL));
        TextCodec { dict, prepared }
    }

    /// The dictionary (empty for none).
    pub(crate) fn dict(&self) -> &[u8] {
        &self.dict
    }

    /// A compression context for this codec (errors name `path`). Its frames leave out the
    /// dictionary's id (4 bytes a frame): a reader decodes them with the file's own
    /// dictionary, never by looking one up by id.
    pub(crate) fn compressor(&self, path: &Path) -> Result<zstd::bulk::Compressor<'_>> {
        let err = |e: std::io::Error| Error::io(path, std::io::Error::new(e.kind(), e.to_string()));
        let mut z = match &self.prepared {
            Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(d),
            None => zstd::bulk::Compressor::new(TEXT_ZSTD_LEVEL),
        }
        .map_err(err)?;
        z.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false))
            .map_err(err)?;
        Ok(z)
    }

    /// Compresses raw blocks `piece` (`raw_block(i, out)` fills `out` with block `i`) with
    /// `z`, one frame each, one after another. A block byte-identical to the one before it
    /// (a text reposted verbatim; posts are grouped by content, so its copies are
    /// neighbours) is compressed once: a frame depends only on its input, so its copy is
    /// what compressing it again would give. `raw` and `prev` are reusable buffers.
    fn compress_piece(
        &self,
        path: &Path,
        z: &mut zstd::bulk::Compressor<'_>,
        piece: std::ops::Range<usize>,
        raw: &mut Vec<u8>,
        prev: &mut Vec<u8>,
        raw_block: &mut dyn FnMut(usize, &mut Vec<u8>) -> Result<()>,
    ) -> Result<Frames> {
        let mut frames = Vec::new();
        let mut ends = Vec::with_capacity(piece.len());
        let mut frame = Vec::new();
        let mut last = 0..0;
        for (j, i) in piece.enumerate() {
            raw.clear();
            raw_block(i, raw)?;
            let start = frames.len();
            if j > 0 && raw == prev {
                frames.extend_from_within(last);
            } else {
                frame.clear();
                frame.reserve(zstd::zstd_safe::compress_bound(raw.len()));
                z.compress_to_buffer(raw.as_slice(), &mut frame)
                    .map_err(|e| Error::io(path, e))?;
                frames.extend_from_slice(&frame);
                std::mem::swap(raw, prev);
            }
            last = start..frames.len();
            ends.push(frames.len());
        }
        Ok((frames, ends))
    }
}

/// One band's table from its keys' top 32 bits (`column()` gives them in content order, `n`
/// contents): the directory, on the keys' top `d` bits, and the entries, each its tag (the
/// key's bits `d..32`) in the high 32 bits and its content id in the low ones, sorted
/// within each bucket (by tag, then content id). One array, so placing an entry is one
/// write where separate tag and id arrays took two (each a cache miss at 10M contents).
fn band_table<C, I>(column: C, n: usize, d: u32) -> (Vec<u32>, Vec<u64>)
where
    C: Fn() -> I,
    I: Iterator<Item = u32>,
{
    let nb = 1usize << d;
    // `split_key` on the key's top 32 bits.
    let split = |top: u32| split_key(u64::from(top) << 32, d);
    let mut dirs = vec![0u32; nb + 1];
    for top in column() {
        dirs[split(top).0 + 1] += 1;
    }
    for i in 0..nb {
        dirs[i + 1] += dirs[i];
    }
    let mut pos: Vec<u32> = dirs[..nb].to_vec();
    let mut entries = vec![0u64; n];
    for (c, top) in column().enumerate() {
        let (bucket, tag) = split(top);
        let at = pos[bucket] as usize;
        entries[at] = (u64::from(tag) << 32) | c as u64;
        pos[bucket] += 1;
    }
    drop(pos);
    for i in 0..nb {
        let (lo, hi) = (dirs[i] as usize, dirs[i + 1] as usize);
        sort_bucket(&mut entries[lo..hi]);
    }
    (dirs, entries)
}

/// Sorts one bucket's entries (tag, then content id: distinct values). Placed in content
/// order, they are sorted already unless two tags are out of order.
fn sort_bucket(entries: &mut [u64]) {
    if entries.is_sorted() {
        return;
    }
    if entries.len() <= 32 {
        // Insertion sort: fast on a bucket's few entries.
        for i in 1..entries.len() {
            let e = entries[i];
            let mut k = i;
            while k > 0 && entries[k - 1] > e {
                entries[k] = entries[k - 1];
                k -= 1;
            }
            entries[k] = e;
        }
        return;
    }
    entries.sort_unstable();
}

/// A temporary spill file for one section that is built out of order.
pub(crate) struct SpillFile {
    path: PathBuf,
    out: ChunkWriter,
}

impl SpillFile {
    pub(crate) fn new(path: &Path) -> Result<SpillFile> {
        let f = create_file(path)?;
        Ok(SpillFile {
            path: path.to_path_buf(),
            out: ChunkWriter::new(f, Pieces::Buffered).map_err(|e| Error::io(path, e))?,
        })
    }

    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    pub(crate) fn write_u64s(&mut self, xs: &[u64]) -> Result<()> {
        le_chunks(xs, u64::to_le_bytes, |b| self.write_bytes(b))
    }

    /// Copies `count` spilled packed entries (`tag_bits` of tag, then `id_bits` of content
    /// id, as [`BandsFile`] packs them) into `w`, each content id `c` as `rank[c]`: the bit
    /// positions do not change, so pieces of 64 entries (a whole number of words) are
    /// renumbered in parallel. The spill is mapped, not read: each piece loads its own
    /// words from the page cache (in parallel) instead of one thread copying them all
    /// into a buffer first; its pages are released as they are copied.
    pub(crate) fn copy_packed_ranked_into(
        self,
        w: &mut EnvelopeWriter,
        rank: &[u32],
        tag_bits: u32,
        id_bits: u32,
        count: u64,
    ) -> Result<()> {
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e))?;
        drop(f);
        let path = &self.path;
        let data = super::mmap::Data::map(path)?;
        data.advise_sequential();
        let len = data.len() as u64;
        let e = u64::from(tag_bits + id_bits);
        let bad = |what: String| Error::InvalidParameter(format!("{}: {what}", path.display()));
        let read = (count * e).div_ceil(64) * 8;
        if read != len {
            return Err(bad(format!("spill of {len} bytes, {read} to read")));
        }
        // Entries per piece renumbered on one thread, and per round: multiples of 64, so
        // that a piece is `e * PIECE / 64` whole words and a round starts on a word.
        const PIECE: u64 = 1 << 14;
        const ROUND: u64 = PIECE * 32;
        let piece_bytes = (e * PIECE / 8) as usize;
        let mut done = 0u64;
        while done < count {
            let n = (count - done).min(ROUND);
            let lo = (done * e / 8) as usize;
            let hi = lo + ((n * e).div_ceil(64) * 8) as usize;
            let bytes = data
                .get(lo..hi)
                .ok_or_else(|| bad(format!("entries {done}.. past the spill")))?;
            let pieces: Vec<Result<Vec<u8>>> = bytes
                .par_chunks(piece_bytes)
                .enumerate()
                .map(|(i, chunk)| {
                    let piece: Vec<u64> = chunk
                        .chunks_exact(8)
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                        .collect();
                    let m = (n - i as u64 * PIECE).min(PIECE);
                    let mut out = BitPacker::default();
                    out.words.reserve(piece.len());
                    // The ranks are read at random: each entry asks for the rank of the
                    // one `AHEAD` entries on first, so their cache misses overlap.
                    const AHEAD: u64 = 32;
                    let ahead = |j: u64| {
                        if let Some(c) = word_bits(&piece, j * e + u64::from(tag_bits), id_bits) {
                            prefetch_item(rank, c as usize);
                        }
                    };
                    (0..AHEAD.min(m)).for_each(ahead);
                    let e32 = tag_bits + id_bits;
                    let tag_mask = u64::MAX >> (64 - tag_bits);
                    for j in 0..m {
                        if j + AHEAD < m {
                            ahead(j + AHEAD);
                        }
                        // The whole entry in one load: its tag, then its content id.
                        let Some(v) = word_bits(&piece, j * e, e32) else {
                            return Err(bad(format!("entry {j} past the spill")));
                        };
                        let c = v >> tag_bits;
                        let r = rank
                            .get(c as usize)
                            .filter(|&&r| u64::from(r) >> id_bits == 0)
                            .ok_or_else(|| bad(format!("content {c} has no rank")))?;
                        out.push((v & tag_mask) | (u64::from(*r) << tag_bits), e32);
                    }
                    out.flush();
                    let mut le = Vec::with_capacity(out.words.len() * 8);
                    out.words
                        .iter()
                        .for_each(|x| le.extend_from_slice(&x.to_le_bytes()));
                    Ok(le)
                })
                .collect();
            for piece in pieces {
                w.write(&piece?)?;
            }
            data.release_range(lo, hi - lo);
            done += n;
        }
        drop(data);
        fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// The `width` bits (at most 64) of `words` (a little-endian bit stream) from bit `bit` on.
#[inline]
fn word_bits(words: &[u64], bit: u64, width: u32) -> Option<u64> {
    let (w, off) = ((bit / 64) as usize, (bit % 64) as u32);
    let mut v = words.get(w)? >> off;
    if off + width > 64 {
        v |= words.get(w + 1)? << (64 - off);
    }
    Some(if width >= 64 {
        v
    } else {
        v & ((1u64 << width) - 1)
    })
}

/// The manifest entry of a finished file: its length and whole-file xxh3. The file is
/// mapped, not read: it was just written, so its pages are in the page cache and hashing
/// them in place spares copying every byte into a buffer first (a build writes its bytes
/// twice, segments then merge: 8 GB at dev 10M). Pages are released as they are hashed.
pub(crate) fn file_entry(path: &Path) -> Result<FileEntry> {
    const CHUNK: usize = 16 << 20;
    let data = super::mmap::Data::map(path)?;
    data.advise_sequential();
    let mut h = Xxh3::new();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        h.update(chunk);
        data.release_range(i * CHUNK, chunk.len());
    }
    Ok(FileEntry {
        len: data.len() as u64,
        xxh3: format!("{:016x}", h.digest()),
    })
}
