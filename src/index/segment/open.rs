//! Opening a segment: each file's envelope parsed, every section's length proven against
//! the counts, and the cheap invariants checked (FORMAT.md, "Open checks") — O(1) work per
//! file but for the deletion bitmap, which is checked whole.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use super::*;
use crate::error::{Error, Result};
use crate::index::format::{packed_len, read_u32, read_u64, Envelope, LeArray, PackedBits};
use crate::index::manifest::SegmentEntry;
use crate::index::mmap::Data;
use crate::index::Access;

impl File {
    pub(super) fn open(
        dir: &Path,
        name: &str,
        entry: &SegmentEntry,
        access: Access,
        magic: &[u8; 8],
        kind: &'static str,
    ) -> Result<File> {
        let path = dir.join(name);
        let data = Data::open(&path, access)?;
        if let Some(f) = entry.files.get(name) {
            if f.len != data.len() as u64 {
                return Err(Error::corrupt(
                    &path,
                    format!("is {} bytes, the manifest says {}", data.len(), f.len),
                ));
            }
        } else {
            return Err(Error::corrupt(&path, "is not listed in the manifest"));
        }
        let env = Envelope::parse(&path, &data, magic, kind)?;
        Ok(File { path, data, env })
    }

    pub(super) fn section(&self, i: usize) -> Result<Range<usize>> {
        self.env.section(&self.path, i, i as u32)
    }

    pub(super) fn meta(&self, want: usize) -> Result<&[u8]> {
        let r = self.section(0)?;
        if r.len() < want {
            return Err(Error::corrupt(&self.path, "meta section is too short"));
        }
        Ok(&self.data[r])
    }

    pub(super) fn arr<const W: usize>(
        &self,
        i: usize,
        count: u64,
        what: &str,
    ) -> Result<Range<usize>> {
        let r = self.section(i)?;
        LeArray::<W>::new(&self.path, what, &self.data[r.clone()], count)?;
        Ok(r)
    }

    /// Checks that the offset array at `r` (of `u64`s) starts at 0 and ends at `end`: the
    /// cheap open-time check that it spans exactly its bytes section.
    pub(super) fn offsets_span(&self, r: &Range<usize>, end: u64, what: &str) -> Result<()> {
        let a = self.view::<8>(r);
        let (first, last) = (a.get(0), a.len().checked_sub(1).and_then(|i| a.get(i)));
        if first != Some(0) || last != Some(end) {
            return Err(Error::corrupt(
                &self.path,
                format!("{what} run from {first:?} to {last:?}, not from 0 to {end}"),
            ));
        }
        Ok(())
    }

    #[inline]
    pub(super) fn view<const W: usize>(&self, r: &Range<usize>) -> LeArray<'_, W> {
        // The range was proven at open to lie within the file and hold whole elements.
        LeArray::proven(self.data.get(r.clone()).unwrap_or_default())
    }
}

impl Segment {
    /// Opens segment `entry` of the index in `index_dir`, validating headers and lengths.
    /// `generation` is the generation of the manifest that lists `entry`: a deletion bitmap
    /// in the segment's directory that this generation should name and does not is an error
    /// (see [`check_unnamed_bitmaps`]).
    pub(crate) fn open(
        index_dir: &Path,
        entry: &SegmentEntry,
        generation: u64,
        params: &crate::FingerprintParams,
        access: Access,
    ) -> Result<Segment> {
        let (bands_n, rows_n, k) = (params.lsh.bands, params.lsh.rows, params.num_perm as usize);
        let dir = index_dir.join(entry.dir_name());
        // Names inside the index are never followed: its files are opened with O_NOFOLLOW,
        // and a segment directory must not be a symbolic link either.
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(Error::corrupt(
                    &dir,
                    "is not a directory (a symbolic link or another kind of file)",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let nc = entry.contents;
        let np = entry.posts;
        if nc > u32::MAX as u64 || np > u32::MAX as u64 || nc > np {
            return Err(Error::corrupt(
                &dir,
                format!("impossible counts: {np} posts, {nc} contents"),
            ));
        }
        // Bands.
        let f = File::open(&dir, "bands", entry, access, BANDS_MAGIC, "band table")?;
        let v5 = f.env.version >= 5;
        let m = f.meta(if v5 { BANDS_META_LEN_V5 } else { 24 })?;
        let (n, b, dir_bits, rows) = (
            read_u64(m, 0),
            read_u32(m, 8),
            read_u32(m, 12),
            read_u32(m, 16),
        );
        if n != nc || b != bands_n || dir_bits > MAX_DIR_BITS || rows != rows_n {
            return Err(Error::corrupt(&f.path, format!("meta ({n} contents, {b} bands, {dir_bits} dir bits) disagrees with the manifest")));
        }
        let dir_len = (b as u64) * ((1u64 << dir_bits) + 1);
        let entries = (b as u64) * n;
        let dirs = f.arr::<4>(1, dir_len, "dirs")?;
        let v2 = f.env.version >= 2;
        let entries = if v5 {
            // Format 5: the entries' field widths, as the counts imply them.
            let (tag_bits, id_bits) = (read_u32(m, 24), read_u32(m, 28));
            if (tag_bits, id_bits) != entry_widths(n, dir_bits) {
                return Err(Error::corrupt(
                    &f.path,
                    format!(
                        "entries of {tag_bits} tag bits and {id_bits} id bits, not the {:?} \
                         that {n} contents and {dir_bits} directory bits imply",
                        entry_widths(n, dir_bits)
                    ),
                ));
            }
            let r = f.section(2)?;
            let want = packed_len(entries, tag_bits + id_bits);
            if want != Some(r.len() as u64) {
                return Err(Error::corrupt(
                    &f.path,
                    format!(
                        "entries is {} bytes, expected {want:?} for {entries} entries of {} bits",
                        r.len(),
                        tag_bits + id_bits
                    ),
                ));
            }
            EntryLayout::Packed {
                entries: r,
                tag_bits,
                id_bits,
            }
        } else {
            let wide = v2 && dir_bits < 16;
            let fps = if wide {
                f.arr::<4>(2, entries, "fps")?
            } else {
                f.arr::<2>(2, entries, "fps")?
            };
            EntryLayout::Columns {
                wide,
                fps,
                cids: f.arr::<4>(3, entries, "cids")?,
            }
        };
        // Every band's directory runs from entry 0 to entry n (O(bands) reads).
        let per_band = (1usize << dir_bits) + 1;
        let d = f.view::<4>(&dirs);
        for j in 0..b as usize {
            let (first, last) = (d.get(j * per_band), d.get(j * per_band + per_band - 1));
            if first != Some(0) || last.map(u64::from) != Some(n) {
                return Err(Error::corrupt(
                    &f.path,
                    format!("band {j}'s directory does not span its {n} entries"),
                ));
            }
        }
        let bands = Bands {
            file: f,
            dir_bits,
            v2,
            dirs,
            entries,
        };
        // Signatures.
        let sigs = File::open(&dir, "sigs", entry, access, SIGS_MAGIC, "signature")?;
        let v4 = sigs.env.version >= 4;
        let m = sigs.meta(if v4 { SIGS_META_LEN } else { 16 })?;
        let (n, kk, bits) = (read_u64(m, 0), read_u32(m, 8), read_u32(m, 12));
        if n != nc || kk as usize != k || bits != 8 {
            return Err(Error::corrupt(
                &sigs.path,
                format!("meta ({n} contents, k={kk}, {bits} bits) disagrees with the manifest"),
            ));
        }
        if v4 {
            // The segment's own record of how it was fingerprinted (format 4).
            let (digest, flags) = (read_u64(m, 16), read_u32(m, 24));
            if digest != params_digest(params) {
                return Err(Error::corrupt(
                    &sigs.path,
                    "the segment was fingerprinted with other parameters than the manifest's \
                     (normalizer, shingle, num_perm, seed or bands)",
                ));
            }
            let has_text = flags & SIGS_FLAG_HAS_TEXT != 0;
            if has_text != entry.has_text || flags & !SIGS_FLAG_HAS_TEXT != 0 {
                return Err(Error::corrupt(
                    &sigs.path,
                    format!(
                        "records has_text = {has_text} (flags {flags:#x}), the manifest says {}",
                        entry.has_text
                    ),
                ));
            }
        }
        let sigs_range = sigs.arr::<1>(1, nc * k as u64, "sigs")?;
        let hashes = if sigs.env.version >= 2 {
            Some(sigs.arr::<16>(2, nc, "hashes")?)
        } else {
            None
        };
        // Posts.
        let f = File::open(&dir, "posts", entry, access, POSTS_MAGIC, "posts")?;
        let v6 = f.env.version >= 6;
        // Format 7: each content's posts are in time order (unknown last), then id order.
        let by_time = f.env.version >= 7;
        let m = f.meta(if v6 { POSTS_META_LEN_V6 } else { 32 })?;
        let (n, c, na, npl) = (
            read_u64(m, 0),
            read_u64(m, 8),
            read_u64(m, 16),
            read_u64(m, 24),
        );
        if n != np || c != nc || na > np.max(1) || npl > np.max(1) {
            return Err(Error::corrupt(&f.path, "meta disagrees with the manifest"));
        }
        let posts = if v6 {
            let (ts_base, got) = (
                read_u64(m, 32) as i64,
                PostRowWidths {
                    ts_bits: read_u32(m, 40),
                    account_bits: read_u32(m, 44),
                    platform_bits: read_u32(m, 48),
                    id_bits: read_u32(m, 52),
                },
            );
            let id_bytes = f.section(3)?;
            // The widths the counts imply (the time's: at most 64 bits, any span).
            let want = PostRowWidths::of(na, npl, id_bytes.len() as u64, 0);
            if got.ts_bits > 64
                || got
                    != (PostRowWidths {
                        ts_bits: got.ts_bits,
                        ..want
                    })
            {
                return Err(Error::corrupt(
                    &f.path,
                    format!(
                        "rows of widths {got:?}, not those {na} accounts, {npl} platforms and \
                         {} id bytes imply ({want:?}, a time of at most 64 bits)",
                        id_bytes.len()
                    ),
                ));
            }
            let rows = f.section(2)?;
            let want_len = packed_len(np, got.stride());
            if want_len != Some(rows.len() as u64) {
                return Err(Error::corrupt(
                    &f.path,
                    format!(
                        "rows is {} bytes, expected {want_len:?} for {np} rows of {} bits",
                        rows.len(),
                        got.stride()
                    ),
                ));
            }
            // The first id starts at 0 (the next ones are checked where they are read).
            let skip = u64::from(got.ts_bits + got.account_bits + got.platform_bits);
            let first = PackedBits::new(&f.data[rows.clone()]).get_wide(skip, got.id_bits);
            if np > 0 && first != Some(0) {
                return Err(Error::corrupt(
                    &f.path,
                    format!("the first id starts at {first:?}, not at 0"),
                ));
            }
            Posts {
                content_posts: f.arr::<4>(1, nc + 1, "content_posts")?,
                rows: PostLayout::Rows {
                    rows,
                    ts_base,
                    codec: RowCodec::new(&got),
                },
                id_bytes,
                account_offsets: f.arr::<8>(4, na + 1, "account_offsets")?,
                account_bytes: f.section(5)?,
                platform_offsets: f.arr::<8>(6, npl + 1, "platform_offsets")?,
                platform_bytes: f.section(7)?,
                n_accounts: na,
                n_platforms: npl,
                by_time,
                file: f,
            }
        } else {
            let id_offsets = f.arr::<8>(3, np + 1, "id_offsets")?;
            let id_bytes = f.section(4)?;
            f.offsets_span(&id_offsets, id_bytes.len() as u64, "id_offsets")?;
            Posts {
                content_posts: f.arr::<4>(1, nc + 1, "content_posts")?,
                rows: PostLayout::Columns {
                    ts: f.arr::<8>(2, np, "ts")?,
                    id_offsets,
                    account_of: f.arr::<4>(5, np, "account_of")?,
                    platform_of: f.arr::<4>(8, np, "platform_of")?,
                },
                id_bytes,
                account_offsets: f.arr::<8>(6, na + 1, "account_offsets")?,
                account_bytes: f.section(7)?,
                platform_offsets: f.arr::<8>(9, npl + 1, "platform_offsets")?,
                platform_bytes: f.section(10)?,
                n_accounts: na,
                n_platforms: npl,
                by_time,
                file: f,
            }
        };
        {
            let f = &posts.file;
            let cp = f.view::<4>(&posts.content_posts);
            let (first, last) = (cp.get(0), cp.get(nc as usize));
            if first != Some(0) || last.map(u64::from) != Some(np) {
                return Err(Error::corrupt(
                    &f.path,
                    format!("content_posts run from {first:?} to {last:?}, not from 0 to {np}"),
                ));
            }
            let (acc, plat) = (&posts.account_bytes, &posts.platform_bytes);
            f.offsets_span(&posts.account_offsets, acc.len() as u64, "account_offsets")?;
            f.offsets_span(
                &posts.platform_offsets,
                plat.len() as u64,
                "platform_offsets",
            )?;
        }
        // Ids.
        let ids_path = dir.join("ids.fst");
        let ids = Data::open(&ids_path, access)?;
        match entry.files.get("ids.fst") {
            Some(fe) if fe.len == ids.len() as u64 => {}
            _ => {
                return Err(Error::corrupt(
                    &ids_path,
                    "length disagrees with the manifest",
                ))
            }
        }
        // Texts: mapped whatever `access` says. A hit reads one frame of them, so reading
        // them in (the largest file) would cost memory and open time for nothing.
        let texts = if entry.has_text {
            let f = File::open(&dir, "text", entry, Access::Mmap, TEXT_MAGIC, "text")?;
            let m = f.meta(16)?;
            let (n, block_posts, codec) = (read_u64(m, 0), read_u32(m, 8), read_u32(m, 12));
            let codec_ok = codec == CODEC_ZSTD || (codec == CODEC_ZSTD_DICT && f.env.version >= 3);
            if n != np || block_posts == 0 || !codec_ok {
                return Err(Error::corrupt(&f.path, "meta disagrees with the manifest"));
            }
            let nb = np.div_ceil(block_posts as u64);
            let block_offsets = f.arr::<8>(1, nb + 1, "block_offsets")?;
            let blocks = f.section(2)?;
            f.offsets_span(&block_offsets, blocks.len() as u64, "block_offsets")?;
            let dict = if codec == CODEC_ZSTD_DICT {
                Some(f.section(3)?).filter(|r| !r.is_empty())
            } else {
                None
            };
            Some(Texts {
                file: f,
                block_posts,
                block_offsets,
                blocks,
                dict,
                ddict: std::sync::OnceLock::new(),
            })
        } else {
            None
        };
        // Deleted posts.
        let deleted = match &entry.deleted {
            None => None,
            Some(d) => {
                let valid = d.file.starts_with("deleted-") && !d.file.contains(['/', '\\']);
                let path = dir.join(&d.file);
                if !valid {
                    return Err(Error::corrupt(&path, "is not a deletion file name"));
                }
                let data = Data::open(&path, access)?;
                if d.len != data.len() as u64 {
                    return Err(Error::corrupt(
                        &path,
                        format!("is {} bytes, the manifest says {}", data.len(), d.len),
                    ));
                }
                let env = Envelope::parse(&path, &data, DELETED_MAGIC, "deletion bitmap")?;
                let meta = env.section(&path, 0, 0)?;
                if meta.len() < 16 {
                    return Err(Error::corrupt(&path, "meta section is too short"));
                }
                let (n, count) = (read_u64(&data[meta.clone()], 0), read_u64(&data[meta], 8));
                if n != np || count != d.count || count > np {
                    return Err(Error::corrupt(&path, "meta disagrees with the manifest"));
                }
                let bits = env.section(&path, 1, 1)?;
                let words = LeArray::<8>::new(&path, "bits", &data[bits.clone()], np.div_ceil(64))?;
                // The bitmap is small (a bit per post): check it whole at open, so that a
                // damaged one is an error rather than wrong hits.
                let set: u64 = (0..words.len())
                    .filter_map(|i| words.get(i))
                    .map(|w| u64::from(w.count_ones()))
                    .sum();
                if set != count {
                    return Err(Error::corrupt(
                        &path,
                        format!("has {set} bits set, the manifest says {count}"),
                    ));
                }
                if format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data)) != d.xxh3 {
                    return Err(Error::ChecksumMismatch {
                        path,
                        section: "whole file".into(),
                    });
                }
                Some(Deleted {
                    path,
                    data,
                    env,
                    bits,
                })
            }
        };
        check_unnamed_bitmaps(&dir, entry, generation)?;
        Ok(Segment {
            entry: entry.clone(),
            dir,
            n_contents: nc,
            n_posts: np,
            bands_n,
            k,
            bands,
            sigs,
            sigs_range,
            hashes,
            posts,
            ids,
            ids_checked: OnceLock::new(),
            texts,
            deleted,
            live_contents: OnceLock::new(),
            sigs_sum: entry
                .files
                .get("sigs")
                .and_then(|f| u64::from_str_radix(&f.xxh3, 16).ok()),
        })
    }
}

/// The generation a deletion bitmap's file name (`deleted-<generation>`) says it was
/// written for.
pub(crate) fn bitmap_generation(name: &str) -> Option<u64> {
    name.strip_prefix("deleted-")
        .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|g| g.parse().ok())
}

/// Refuses a segment whose manifest entry dropped deleted posts: evidence on disk that the
/// manifest cannot account for, since a manifest edited whole has a valid checksum.
///
/// The writer of generation `g` names `deleted-<g>` in the entry of every segment it
/// deletes from, and later generations name it or a newer bitmap until the segment is
/// merged away; a writer that dies before publishing leaves `deleted-<g>` for the
/// generation after the live one, which the next writer removes before it publishes. So
/// in a segment directory of generation `generation`, a bitmap written for a generation
/// after the one the entry names (any, if it names none) and not after `generation` was
/// named once and dropped since. Bitmaps of older generations (left when a writer died
/// between publishing and cleaning up) and of later ones (a writer at work, or one that
/// died) are not evidence. A bitmap the entry names from a generation after `generation`
/// cannot exist either. Costs one directory listing per segment.
pub(crate) fn check_unnamed_bitmaps(
    seg_dir: &Path,
    entry: &SegmentEntry,
    generation: u64,
) -> Result<()> {
    let named = entry
        .deleted
        .as_ref()
        .map(|d| (d, bitmap_generation(&d.file)));
    if let Some((d, g)) = named {
        if g.is_none_or(|g| g > generation) {
            return Err(Error::corrupt(
                seg_dir.join(&d.file),
                format!(
                    "is named by the manifest of generation {generation} but is not a deletion \
                     bitmap of that generation or an earlier one"
                ),
            ));
        }
    }
    let named_gen = named.and_then(|(_, g)| g);
    let rd = std::fs::read_dir(seg_dir).map_err(|e| Error::io(seg_dir, e))?;
    // The newest such bitmap is named (whatever order the directory lists them in).
    let mut dropped: Option<(u64, std::ffi::OsString)> = None;
    for e in rd {
        let e = e.map_err(|e| Error::io(seg_dir, e))?;
        let name = e.file_name();
        let Some(g) = name.to_str().and_then(bitmap_generation) else {
            continue;
        };
        let evidence = g <= generation && named_gen.is_none_or(|n| g > n);
        if evidence && dropped.as_ref().is_none_or(|(d, _)| g > *d) {
            dropped = Some((g, name));
        }
    }
    if let Some((g, name)) = dropped {
        let names = match named {
            Some((d, _)) => format!("names {}", d.file),
            None => "names no deletion bitmap".to_string(),
        };
        return Err(Error::corrupt(
            seg_dir.join(name),
            format!(
                "is the deletion bitmap of generation {g}, but the manifest (generation \
                 {generation}) {names} for this segment: an entry that deletes posts was \
                 dropped from the manifest, and deleted posts would come back"
            ),
        ));
    }
    Ok(())
}
