//! Shingles: hashed windows of consecutive tokens.
//!
//! Each token is hashed with xxh3-64; a shingle of `w` tokens is the xxh3-64 of its tokens'
//! hashes (little-endian, concatenated). A post with `1 <= n < w` tokens gives one shingle
//! of all its tokens; a post with no tokens gives none. Shingle hashes are 64-bit, so
//! collisions are negligible at any corpus size that matters for a set of one post's
//! shingles.

use xxhash_rust::xxh3::xxh3_64;

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
    debug_assert!((1..=MAX_SHINGLE).contains(&width));
    let width = width.clamp(1, MAX_SHINGLE);
    token_hashes.clear();
    token_hashes.extend(tokens.map(|t| match <&[u8; 3]>::try_from(t.as_bytes()) {
        // Most Han characters are three bytes: a known length folds the hash's dispatch.
        Ok(b) => xxh3_64(b),
        Err(_) => xxh3_64(t.as_bytes()),
    }));
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
        3 => push_windows::<3>(token_hashes, out),
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
    fn order_matters_and_windows_agree() {
        assert_ne!(sh(&["a", "b", "c"], 3), sh(&["c", "b", "a"], 3));
        let x = sh(&["a", "b", "c", "d"], 3);
        assert_eq!(x[1], sh(&["b", "c", "d"], 3)[0]);
        // A short post's single shingle differs from any token's.
        assert_ne!(sh(&["ab"], 3), sh(&["a", "b"], 3));
    }
}
