//! Shingles: hashed windows of consecutive tokens.
//!
//! Each token is hashed with xxh3-64; a shingle of `w` tokens is the xxh3-64 of its tokens'
//! hashes (little-endian, concatenated). A post with `1 <= n < w` tokens gives one shingle
//! of all its tokens; a post with no tokens gives none. Shingle hashes are 64-bit, so
//! collisions are negligible at any corpus size that matters for a set of one post's
//! shingles.

use xxhash_rust::xxh3::xxh3_64;

use crate::text::Normalized;

/// The largest shingle width accepted.
pub const MAX_SHINGLE: usize = 16;

/// Appends the shingle hashes of `tokens` (in order, duplicates kept) to `out`, using
/// `token_hashes` as scratch space. `width` must be in `1..=MAX_SHINGLE`.
pub fn shingle_hashes<'a>(
    tokens: impl Iterator<Item = &'a str>,
    width: usize,
    token_hashes: &mut Vec<u64>,
    out: &mut Vec<u64>,
) {
    token_hashes.clear();
    token_hashes.extend(tokens.map(|t| token_hash(t.as_bytes())));
    windows(token_hashes, width, out);
}

/// [`shingle_hashes`] of a normalized text's tokens, read straight from its token spans.
pub fn shingle_hashes_of(
    normalized: &Normalized,
    width: usize,
    token_hashes: &mut Vec<u64>,
    out: &mut Vec<u64>,
) {
    shingle_hashes_of_range(
        normalized,
        0..normalized.spans().len(),
        width,
        token_hashes,
        out,
    );
}

/// [`shingle_hashes_of`] over the tokens `range` only (as if they were the whole text):
/// the shingles of a long text are made a range of tokens at a time, each range
/// overlapping the next by `width - 1` tokens, so that no buffer grows with the text.
pub(crate) fn shingle_hashes_of_range(
    normalized: &Normalized,
    range: std::ops::Range<usize>,
    width: usize,
    token_hashes: &mut Vec<u64>,
    out: &mut Vec<u64>,
) {
    let text = normalized.text().as_bytes();
    let spans = normalized.spans().get(range).unwrap_or_default();
    token_hashes.clear();
    token_hashes.extend(spans.iter().map(|s| {
        // Spans lie inside the text (on character boundaries); the empty fallback is
        // never taken.
        token_hash(
            text.get(s.start as usize..s.end as usize)
                .unwrap_or_default(),
        )
    }));
    windows(token_hashes, width, out);
}

/// xxh3-64 of a token's bytes.
#[inline(always)]
fn token_hash(t: &[u8]) -> u64 {
    match <&[u8; 3]>::try_from(t) {
        // Most Han characters are three bytes: a known length folds the hash's dispatch.
        Ok(b) => xxh3_64(b),
        Err(_) => xxh3_64(t),
    }
}

/// Appends the hash of each window of `width` token hashes (one of all of them if there
/// are fewer) to `out`.
fn windows(token_hashes: &[u64], width: usize, out: &mut Vec<u64>) {
    debug_assert!((1..=MAX_SHINGLE).contains(&width));
    let width = width.clamp(1, MAX_SHINGLE);
    let n = token_hashes.len();
    if n == 0 {
        return;
    }
    let mut buf = [0u8; 8 * MAX_SHINGLE];
    if n < width {
        out.push(hash_window(token_hashes, &mut buf));
        return;
    }
    out.reserve(n - width + 1);
    // Widths known at compile time let the hash's length dispatch fold away.
    match width {
        2 => push_windows::<2>(token_hashes, out),
        3 => out.extend(
            token_hashes
                .windows(3)
                .map(|w| xxh3_64_words3(w[0], w[1], w[2])),
        ),
        4 => push_windows::<4>(token_hashes, out),
        5 => push_windows::<5>(token_hashes, out),
        _ => {
            for w in token_hashes.windows(width) {
                out.push(hash_window(w, &mut buf));
            }
        }
    }
}

/// [`hash_window`] over every window of `W` hashes.
#[inline]
fn push_windows<const W: usize>(hashes: &[u64], out: &mut Vec<u64>) {
    let mut buf = [0u8; 8 * MAX_SHINGLE];
    for w in hashes.windows(W) {
        for (i, h) in w.iter().enumerate() {
            buf[8 * i..8 * i + 8].copy_from_slice(&h.to_le_bytes());
        }
        out.push(xxh3_64(&buf[..8 * W]));
    }
}

#[inline]
fn hash_window(w: &[u64], buf: &mut [u8; 8 * MAX_SHINGLE]) -> u64 {
    for (i, h) in w.iter().enumerate() {
        buf[8 * i..8 * i + 8].copy_from_slice(&h.to_le_bytes());
    }
    xxh3_64(&buf[..8 * w.len()])
}

/// The first four little-endian words of xxh3's default secret.
const SECRET: [u64; 4] = [
    0xbe4b_a423_396c_feb8,
    0x1cad_21f7_2c81_017c,
    0xdb97_9083_e96d_d4de,
    0x1f67_b3b7_a4a4_4072,
];

/// `xxh3_64` of the 24 bytes `a`, `b`, `c` (little-endian), computed in registers: the
/// 17-to-128-byte case of XXH3 with seed 0 and the default secret (two 16-byte mixes and
/// the final avalanche). A test checks it against `xxh3_64` itself.
#[inline(always)]
fn xxh3_64_words3(a: u64, b: u64, c: u64) -> u64 {
    const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
    #[inline(always)]
    fn fold(x: u64, y: u64) -> u64 {
        let p = u128::from(x) * u128::from(y);
        (p as u64) ^ ((p >> 64) as u64)
    }
    let mut acc = 24u64.wrapping_mul(PRIME64_1);
    acc = acc.wrapping_add(fold(a ^ SECRET[0], b ^ SECRET[1]));
    acc = acc.wrapping_add(fold(b ^ SECRET[2], c ^ SECRET[3]));
    acc ^= acc >> 37;
    acc = acc.wrapping_mul(0x1656_6791_9E37_79F9);
    acc ^ (acc >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(tokens: &[&str], w: usize) -> Vec<u64> {
        let mut s = Vec::new();
        let mut out = Vec::new();
        shingle_hashes(tokens.iter().copied(), w, &mut s, &mut out);
        out
    }

    #[test]
    fn counts() {
        assert_eq!(sh(&[], 3).len(), 0);
        assert_eq!(sh(&["a"], 3).len(), 1);
        assert_eq!(sh(&["a", "b"], 3).len(), 1);
        assert_eq!(sh(&["a", "b", "c"], 3).len(), 1);
        assert_eq!(sh(&["a", "b", "c", "d"], 3).len(), 2);
        assert_eq!(sh(&["a", "b", "c", "d"], 1).len(), 4);
    }

    #[test]
    fn every_width_hashes_its_window_bytes() {
        // The compile-time widths and the generic path hash the same bytes.
        let toks = ["a", "bb", "中", "ccc", "d", "ee", "f", "g", "h"];
        for w in 1..=MAX_SHINGLE {
            let hashes: Vec<u64> = toks.iter().map(|t| xxh3_64(t.as_bytes())).collect();
            let want: Vec<u64> = if hashes.len() < w {
                vec![xxh3_64(
                    &hashes
                        .iter()
                        .flat_map(|h| h.to_le_bytes())
                        .collect::<Vec<u8>>(),
                )]
            } else {
                hashes
                    .windows(w)
                    .map(|win| {
                        xxh3_64(
                            &win.iter()
                                .flat_map(|h| h.to_le_bytes())
                                .collect::<Vec<u8>>(),
                        )
                    })
                    .collect()
            };
            assert_eq!(sh(&toks, w), want, "width {w}");
        }
    }

    #[test]
    fn words3_is_xxh3_of_the_bytes() {
        let mut rng = crate::minhash::SplitMix64(7);
        let mut words = vec![0, u64::MAX, 1 << 63, 0x0102_0304_0506_0708];
        words.extend((0..300).map(|_| rng.next_u64()));
        for w in words.windows(3) {
            let bytes: Vec<u8> = w.iter().flat_map(|h| h.to_le_bytes()).collect();
            assert_eq!(xxh3_64_words3(w[0], w[1], w[2]), xxh3_64(&bytes), "{w:x?}");
        }
    }

    #[test]
    fn spans_and_token_strings_hash_alike() {
        let n = crate::text::Normalizer::default();
        let mut norm = Normalized::new();
        let (mut th, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for text in [
            "COVID疫苗vaccine真相 and more words here",
            "a",
            "這個政府說謊",
            "one two",
            "",
            "supercalifragilisticexpialidocious antidisestablishmentarianism 中",
        ] {
            n.normalize(text, &mut norm);
            for w in 1..=MAX_SHINGLE {
                a.clear();
                b.clear();
                shingle_hashes(norm.tokens(), w, &mut th, &mut a);
                shingle_hashes_of(&norm, w, &mut th, &mut b);
                assert_eq!(a, b, "{text:?}, width {w}");
            }
        }
    }

    #[test]
    fn order_matters_and_windows_agree() {
        assert_ne!(sh(&["a", "b", "c"], 3), sh(&["c", "b", "a"], 3));
        let x = sh(&["a", "b", "c", "d"], 3);
        assert_eq!(x[1], sh(&["b", "c", "d"], 3)[0]);
        // A short post's single shingle differs from any token's.
        assert_ne!(sh(&["ab"], 3), sh(&["a", "b"], 3));
    }
}
