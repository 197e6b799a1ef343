//! The segment files' layout: magic numbers, section names, codecs and the band-key split.
//!
//! FORMAT.md is the byte-level specification; these constants name its magics and sections
//! (by position) so the reader and the writers agree on them.

/// Magic bytes of the band table file.
pub const BANDS_MAGIC: &[u8; 8] = b"TRBANDS\0";
/// Magic bytes of the signature file.
pub const SIGS_MAGIC: &[u8; 8] = b"TRSIGS\0\0";
/// Magic bytes of the posts file.
pub const POSTS_MAGIC: &[u8; 8] = b"TRPOSTS\0";
/// Magic bytes of the stored-text file.
pub const TEXT_MAGIC: &[u8; 8] = b"TRTEXT\0\0";

/// Section names of the band file, by position (format 1 to 4).
pub const BANDS_SECTIONS: [&str; 4] = ["meta", "dirs", "fps", "cids"];
/// Section names of the band file from format 5 on: each bucket's entries packed together.
pub const BANDS_SECTIONS_V5: [&str; 3] = ["meta", "dirs", "entries"];
/// The length of the band file's meta section from format version 5 on (24 before).
pub const BANDS_META_LEN_V5: usize = 32;
/// Section names of the signature file.
pub const SIGS_SECTIONS: [&str; 3] = ["meta", "sigs", "hashes"];
/// Section names of the posts file.
pub const POSTS_SECTIONS: [&str; 11] = [
    "meta",
    "content_posts",
    "ts",
    "id_offsets",
    "id_bytes",
    "account_of",
    "account_offsets",
    "account_bytes",
    "platform_of",
    "platform_offsets",
    "platform_bytes",
];
/// Section names of the posts file from format 6 on: each post's time, account, platform and
/// id start packed in one row.
pub const POSTS_SECTIONS_V6: [&str; 8] = [
    "meta",
    "content_posts",
    "rows",
    "id_bytes",
    "account_offsets",
    "account_bytes",
    "platform_offsets",
    "platform_bytes",
];
/// The length of the posts file's meta section from format version 6 on (32 before).
pub const POSTS_META_LEN_V6: usize = 56;

/// The widths of a format-6 post row, each the fewest bits its largest value needs:
/// `ts_bits` (the time code: 0 = unknown, else `ts - ts_base + 1`), `account_bits`,
/// `platform_bits` (dictionary indexes below their counts) and `id_bits` (an id's start in
/// `id_bytes`, at most its length). A row is the four fields in that order, low bits first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostRowWidths {
    /// Bits of the time code.
    pub ts_bits: u32,
    /// Bits of the account index.
    pub account_bits: u32,
    /// Bits of the platform index.
    pub platform_bits: u32,
    /// Bits of the id's start offset.
    pub id_bits: u32,
}

impl PostRowWidths {
    /// The widths of the rows of a posts file with these counts, whose times span
    /// `ts_span` (the largest time code: 0 when no time is known, else the latest time less
    /// the earliest, plus 1).
    pub fn of(n_accounts: u64, n_platforms: u64, id_bytes: u64, ts_span: u64) -> PostRowWidths {
        use crate::index::format::bits_for;
        PostRowWidths {
            ts_bits: bits_for(ts_span),
            account_bits: bits_for(n_accounts.saturating_sub(1)),
            platform_bits: bits_for(n_platforms.saturating_sub(1)),
            id_bits: bits_for(id_bytes),
        }
    }

    /// Bits per row.
    pub fn stride(&self) -> u32 {
        self.ts_bits + self.account_bits + self.platform_bits + self.id_bits
    }
}

/// Magic bytes of a deletion bitmap file.
pub const DELETED_MAGIC: &[u8; 8] = b"TRDEL\0\0\0";
/// Section names of a deletion bitmap file.
pub const DELETED_SECTIONS: [&str; 2] = ["meta", "bits"];
/// Section names of the text file.
pub const TEXT_SECTIONS: [&str; 4] = ["meta", "block_offsets", "blocks", "dictionary"];

/// The timestamp value that means "no timestamp".
pub const NO_TS: i64 = i64::MIN;
/// Text block codec: zstd.
pub const CODEC_ZSTD: u32 = 1;
/// Text block codec: zstd with the dictionary in section 3 (format version 3; an empty
/// dictionary means frames without one).
pub const CODEC_ZSTD_DICT: u32 = 2;

/// The most directory bits a band table may use.
pub const MAX_DIR_BITS: u32 = 30;

/// The longest stored text (bytes) a reader accepts: the build's record limit (the default
/// `InputOptions::max_record_bytes`, 64 MiB), which no text of a record can exceed. A text
/// frame declaring more is refused as corrupt before anything is allocated.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// The length of the signature file's meta section from format version 4 on (16 before).
pub const SIGS_META_LEN: usize = 32;
/// Bit 0 of the signature file's `flags` (format 4): the segment stores texts.
pub const SIGS_FLAG_HAS_TEXT: u32 = 1;

/// The xxh3-64 of the fingerprint parameters' canonical bytes, recorded in every format-4
/// segment's signature file and compared with the manifest's `params` at open: a manifest
/// whose parameters were edited (and its checksum recomputed) cannot make a segment answer
/// under parameters it was not built with.
///
/// The canonical bytes (FORMAT.md, `sigs`): `normalizer_version u32, hashtags u32 (0 =
/// remove, 1 = keep words), t2s u32, shingle u32, num_perm u32, bands u32, rows u32, seed
/// u64`, little-endian. A new parameter must be added here and bump the format version.
pub fn params_digest(p: &crate::FingerprintParams) -> u64 {
    let hashtags: u32 = match p.normalizer.hashtags {
        crate::text::Hashtags::Remove => 0,
        crate::text::Hashtags::KeepWords => 1,
    };
    let mut b = Vec::with_capacity(36);
    for v in [
        p.normalizer_version,
        hashtags,
        u32::from(p.normalizer.t2s),
        p.shingle,
        p.num_perm,
        p.lsh.bands,
        p.lsh.rows,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&p.seed.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// The signature file's meta section as this build writes it (format 4 on): `n_contents u64,
/// k u32, bits u32 (8), params_xxh3 u64 ([`params_digest`]), flags u32
/// ([`SIGS_FLAG_HAS_TEXT`]), reserved u32 (0)`.
pub fn sigs_meta(n: u64, k: usize, params: &crate::FingerprintParams, has_text: bool) -> Vec<u8> {
    let mut meta = Vec::with_capacity(SIGS_META_LEN);
    meta.extend_from_slice(&n.to_le_bytes());
    meta.extend_from_slice(&(k as u32).to_le_bytes());
    meta.extend_from_slice(&8u32.to_le_bytes());
    meta.extend_from_slice(&params_digest(params).to_le_bytes());
    let flags = if has_text { SIGS_FLAG_HAS_TEXT } else { 0 };
    meta.extend_from_slice(&flags.to_le_bytes());
    meta.extend_from_slice(&0u32.to_le_bytes());
    meta
}

/// The `(bucket, tag)` of a band key in a format-2 table with a directory of `dir_bits` (D)
/// bits: the bucket is the key's top D bits and the tag its bits `D..32`, so that bucket and
/// tag together hold the key's top 32 bits whatever D is (tables can be merged and
/// re-bucketed). The tag fits 16 bits when D >= 16.
#[inline]
pub fn split_key(key: u64, dir_bits: u32) -> (usize, u32) {
    let bucket = if dir_bits == 0 {
        0
    } else {
        (key >> (64 - dir_bits)) as usize
    };
    let top = (key >> 32) as u32;
    let tag = if dir_bits == 0 {
        top
    } else {
        top & (u32::MAX >> dir_bits)
    };
    (bucket, tag)
}

/// The widths of a format-5 band entry for `n` contents and a directory of `dir_bits` (D)
/// bits: `(tag bits, content id bits)`: the tag is the key's bits `D..32` (`32 - D` bits) and
/// the content id takes the bits `n - 1` needs, at least 1.
#[inline]
pub fn entry_widths(n: u64, dir_bits: u32) -> (u32, u32) {
    let id_bits = (64 - n.saturating_sub(1).leading_zeros()).max(1);
    (32 - dir_bits.min(31), id_bits)
}

/// The `(bucket, fingerprint)` of a band key in a format-1 table: the fingerprint is the 16
/// bits after the directory bits.
#[inline]
pub fn split_key_v1(key: u64, dir_bits: u32) -> (usize, u16) {
    let bucket = if dir_bits == 0 {
        0
    } else {
        (key >> (64 - dir_bits)) as usize
    };
    let fp = (key >> (48 - dir_bits)) as u16;
    (bucket, fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Format 2: bucket and tag together are the key's top 32 bits for every directory size,
    /// and the tag fits 16 bits from D = 16 on (those tables store `u16` tags).
    #[test]
    fn format_2_bucket_and_tag_hold_the_top_32_key_bits() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for d in 0..=MAX_DIR_BITS {
                let (bucket, tag) = split_key(x, d);
                let top = if d == 0 {
                    tag as u64
                } else {
                    ((bucket as u64) << (32 - d)) | tag as u64
                };
                assert_eq!(top, x >> 32, "d = {d}");
                assert!(bucket < 1 << d);
                if d >= 16 {
                    assert!(tag <= u16::MAX as u32, "d = {d}");
                }
            }
        }
    }
}
