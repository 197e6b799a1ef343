//! Stored texts: the `text` file's zstd frames and the per-reader decompression cache.
//!
//! A post's text is read by [`Segment::text`]: its block's frame is decompressed into a
//! [`TextCache`] (reused across calls, with its zstd context), then sliced by the block's
//! offset header.

use std::ops::Range;

use super::{File, Segment, MAX_TEXT_BYTES};
use crate::error::{Error, Result};
use crate::index::format::read_u32;

/// The most bytes a decompressed block may take whatever its declared size: a bound for
/// format-2 blocks of many posts.
const MAX_BLOCK_BYTES: u64 = 1 << 30;

/// The most bytes a decompressed block of `m` posts may hold: its offset header and `m`
/// texts of at most [`MAX_TEXT_BYTES`] each (one text for format 3 on), and never more than
/// [`MAX_BLOCK_BYTES`]. A frame declaring more is corrupt (or crafted to exhaust memory),
/// and is refused before anything is allocated.
pub(super) fn max_block_bytes(m: u64) -> u64 {
    (m + 1)
        .saturating_mul(4)
        .saturating_add(m.saturating_mul(MAX_TEXT_BYTES))
        .min(MAX_BLOCK_BYTES)
}

/// Proven layout of the text file.
#[derive(Debug)]
pub(super) struct Texts {
    pub(super) file: File,
    pub(super) block_posts: u32,
    pub(super) block_offsets: Range<usize>,
    pub(super) blocks: Range<usize>,
    /// The zstd dictionary's bytes (codec 2), if not empty.
    pub(super) dict: Option<Range<usize>>,
    /// The dictionary, digested on first use (opening stays O(1)).
    pub(super) ddict: std::sync::OnceLock<Option<Ddict>>,
}

/// A digested zstd decompression dictionary.
pub(super) struct Ddict(zstd::zstd_safe::DDict<'static>);

impl std::fmt::Debug for Ddict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ddict")
    }
}

impl Segment {
    /// The text of post `p`, if texts are stored. `cache` holds the last decompressed block.
    pub(crate) fn text(&self, p: u32, cache: &mut TextCache) -> Result<Option<String>> {
        Ok(self.text_str(p, cache)?.map(String::from))
    }

    /// The text of post `p` (checked UTF-8), if texts are stored, borrowed from `cache`,
    /// which holds the last decompressed block.
    pub(crate) fn text_str<'c>(&self, p: u32, cache: &'c mut TextCache) -> Result<Option<&'c str>> {
        let Some(t) = &self.texts else {
            return Ok(None);
        };
        let bytes = self.text_bytes(t, p, cache)?;
        simdutf8::basic::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::corrupt(&t.file.path, format!("text of post {p} is not UTF-8")))
    }

    /// Appends the text of post `p` to `out`; `false` (and nothing appended) if texts are
    /// not stored. `cache` holds the last decompressed block.
    pub(crate) fn text_into(
        &self,
        p: u32,
        cache: &mut TextCache,
        out: &mut String,
    ) -> Result<bool> {
        match self.text_str(p, cache)? {
            Some(s) => {
                out.push_str(s);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The dictionary this segment's text frames were compressed with (empty for none),
    /// when its texts are stored one post per frame (format 3 on): its frames can then be
    /// copied, as they are, into a text file with the same dictionary.
    pub(crate) fn text_frame_dict(&self) -> Option<&[u8]> {
        let t = self.texts.as_ref()?;
        (t.block_posts == 1).then(|| match &t.dict {
            Some(r) => &t.file.data[r.clone()],
            None => &[][..],
        })
    }

    /// The length of the text file in bytes (0 without stored texts).
    pub(crate) fn text_file_len(&self) -> usize {
        self.texts.as_ref().map_or(0, |t| t.file.data.len())
    }

    /// The bytes of the text file that reading post `p`'s text touches, as offsets into the
    /// file: its block's entries in the block offsets, then its block's frame. `None` without
    /// stored texts or past the offsets; a frame the offsets put past the file is cut to it
    /// (reading it is what reports the damage). For a merge's count of the pages it maps in.
    pub(crate) fn text_spans(&self, p: u32) -> Option<[Range<usize>; 2]> {
        let t = self.texts.as_ref()?;
        let block = (p / t.block_posts) as usize;
        let offs = t.file.view::<8>(&t.block_offsets);
        let (s, e) = (offs.get(block)?, offs.get(block + 1)?);
        let at = t.block_offsets.start + block * 8;
        let end = t.blocks.end;
        let frame = |o: u64| {
            usize::try_from(o)
                .map_or(end, |o| t.blocks.start.saturating_add(o))
                .min(end)
        };
        let s = frame(s);
        Some([at..at + 16, s..frame(e).max(s)])
    }

    /// The compressed frame of post `p`'s text, for a segment whose texts are stored one
    /// post per frame ([`text_frame_dict`](Self::text_frame_dict)). The frame must span its
    /// bytes exactly and declare no more than a text may hold (what decompressing would
    /// check first); its content is not decompressed.
    pub(crate) fn text_frame(&self, p: u32) -> Result<&[u8]> {
        let Some(t) = self.texts.as_ref().filter(|t| t.block_posts == 1) else {
            return Err(Error::InvalidParameter(format!(
                "{}: texts are not stored one post per frame",
                self.dir.display()
            )));
        };
        if p as u64 >= self.n_posts {
            return Err(Error::corrupt(
                &t.file.path,
                format!("post {p} out of range"),
            ));
        }
        let offs = t.file.view::<8>(&t.block_offsets);
        let (Some(s), Some(e)) = (offs.get(p as usize), offs.get(p as usize + 1)) else {
            return Err(Error::corrupt(
                &t.file.path,
                format!("text block {p} out of range"),
            ));
        };
        let raw = t.file.data[t.blocks.clone()]
            .get(s as usize..e as usize)
            .ok_or_else(|| {
                Error::corrupt(&t.file.path, format!("text block {p} bytes out of range"))
            })?;
        let size = zstd::zstd_safe::get_frame_content_size(raw).ok().flatten();
        let spans = zstd::zstd_safe::find_frame_compressed_size(raw).ok() == Some(raw.len());
        match size {
            Some(size) if spans && size <= max_block_bytes(1) => Ok(raw),
            _ => Err(Error::corrupt(
                &t.file.path,
                format!("text block {p} is not one zstd frame of a text"),
            )),
        }
    }

    /// The stored bytes of post `p`'s text, from the block `cache` holds (decompressed
    /// first if it holds another).
    fn text_bytes<'c>(&self, t: &Texts, p: u32, cache: &'c mut TextCache) -> Result<&'c [u8]> {
        if p as u64 >= self.n_posts {
            return Err(Error::corrupt(
                &t.file.path,
                format!("post {p} out of range"),
            ));
        }
        let block = p / t.block_posts;
        let key = (self.entry.id, block);
        if cache.key != Some(key) {
            let decoded = cache.key.take().and(cache.frame.take());
            let offs = t.file.view::<8>(&t.block_offsets);
            let (Some(s), Some(e)) = (offs.get(block as usize), offs.get(block as usize + 1))
            else {
                return Err(Error::corrupt(
                    &t.file.path,
                    format!("text block {block} out of range"),
                ));
            };
            let blocks = &t.file.data[t.blocks.clone()];
            let raw = blocks.get(s as usize..e as usize).ok_or_else(|| {
                Error::corrupt(
                    &t.file.path,
                    format!("text block {block} bytes out of range"),
                )
            })?;
            let first = u64::from(block) * u64::from(t.block_posts);
            let m = (self.n_posts - first).min(u64::from(t.block_posts));
            let frame = (self.entry.id, s as usize..e as usize, m);
            // A frame byte-identical to the one `cache` holds decoded, in this segment (one
            // dictionary) and for as many posts, decodes to the same block: a text reposted
            // verbatim is one frame after another, and a lookup's hits are often its copies.
            if let Some(d) = decoded.filter(|d| d.0 == frame.0 && d.2 == m) {
                if blocks.get(d.1.clone()) == Some(raw) {
                    cache.key = Some(key);
                    cache.frame = Some(frame);
                    return self.text_in_block(t, p, block, cache);
                }
            }
            cache.buf.clear();
            let size = zstd::zstd_safe::get_frame_content_size(raw)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Error::corrupt(
                        &t.file.path,
                        format!("text block {block} has no valid zstd frame header"),
                    )
                })?;
            let limit = max_block_bytes(m);
            if size > limit {
                return Err(Error::corrupt(
                    &t.file.path,
                    format!(
                        "text block {block} declares {size} bytes decompressed, more than the \
                         {limit} its {m} post(s) may hold"
                    ),
                ));
            }
            cache.buf.reserve(size as usize);
            let dctx = match &mut cache.dec {
                Some(d) => d,
                slot => slot.insert(zstd::zstd_safe::DCtx::try_create().ok_or_else(|| {
                    Error::io(
                        &t.file.path,
                        std::io::Error::other("cannot allocate a zstd context"),
                    )
                })?),
            };
            let done = match &t.dict {
                Some(r) => {
                    let dict = t.ddict.get_or_init(|| {
                        zstd::zstd_safe::DDict::try_create(&t.file.data[r.clone()]).map(Ddict)
                    });
                    let Some(dict) = dict else {
                        return Err(Error::corrupt(
                            &t.file.path,
                            "the text dictionary is damaged",
                        ));
                    };
                    dctx.decompress_using_ddict(&mut cache.buf, raw, &dict.0)
                }
                None => dctx.decompress(&mut cache.buf, raw),
            };
            done.map_err(|code| {
                Error::corrupt(
                    &t.file.path,
                    format!(
                        "text block {block}: {}",
                        zstd::zstd_safe::get_error_name(code)
                    ),
                )
            })?;
            cache.key = Some(key);
            cache.frame = Some(frame);
        }
        self.text_in_block(t, p, block, cache)
    }

    /// Post `p`'s text in its block `block`, which `cache` holds decompressed.
    fn text_in_block<'c>(
        &self,
        t: &Texts,
        p: u32,
        block: u32,
        cache: &'c TextCache,
    ) -> Result<&'c [u8]> {
        let first = block * t.block_posts;
        let m = (self.n_posts - first as u64).min(t.block_posts as u64) as usize;
        let i = (p - first) as usize;
        let b = &cache.buf;
        let header = (m + 1) * 4;
        if b.len() < header {
            return Err(Error::corrupt(
                &t.file.path,
                format!("text block {block} is too short"),
            ));
        }
        let (s, e) = (read_u32(b, i * 4) as usize, read_u32(b, i * 4 + 4) as usize);
        b.get(header + s..header + e)
            .filter(|_| s <= e)
            .ok_or_else(|| Error::corrupt(&t.file.path, format!("text of post {p} out of range")))
    }
}

/// The last decompressed text block and a reusable decompression context.
#[derive(Default)]
pub struct TextCache {
    key: Option<(u64, u32)>,
    /// The segment, byte range and post count of the frame `buf` was decompressed from.
    frame: Option<(u64, Range<usize>, u64)>,
    buf: Vec<u8>,
    dec: Option<zstd::zstd_safe::DCtx<'static>>,
}

impl std::fmt::Debug for TextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCache")
            .field("key", &self.key)
            .field("buf_len", &self.buf.len())
            .finish()
    }
}
