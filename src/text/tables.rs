//! Character tables: Traditional -> Simplified Chinese, Latin lookalikes, character classes.
//!
//! The T2S table is generated at build time from OpenCC's `data/TSCharacters.txt`
//! (`build.rs`); it is idempotent (chains are resolved). The lookalike table lists every
//! Greek and Cyrillic letter (and a few small capitals) whose UTS #39 confusable skeleton
//! is a single ASCII letter; a unit test re-derives it from the `unicode-security` crate.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/t2s_table.rs"));
}

pub use generated::T2S_LEN;
use generated::{T2S_BMP, T2S_BMP_BASE, T2S_BMP_BITS, T2S_OTHER};

/// [`t2s`] on a code point in U+4E00..=U+9FFF (any other value is returned unchanged).
#[inline]
pub fn t2s_u32(u: u32) -> u32 {
    let Some(i) = u.checked_sub(T2S_BMP_BASE) else {
        return u;
    };
    let i = i as usize;
    match T2S_BMP_BITS.get(i / 64) {
        Some(w) if w & (1 << (i % 64)) != 0 => {}
        _ => return u,
    }
    match T2S_BMP.get(i) {
        Some(0) | None => u,
        Some(1) => char::from_u32(u).map_or(u, |c| t2s(c) as u32),
        Some(&v) => u32::from(v),
    }
}

/// Folds one Traditional Chinese character to its Simplified form (identity otherwise).
#[inline]
pub fn t2s(c: char) -> char {
    let u = c as u32;
    if let Some(i) = u.checked_sub(T2S_BMP_BASE) {
        if let Some(&v) = T2S_BMP.get(i as usize) {
            match v {
                0 => return c,
                1 => {} // the target is outside the BMP: see T2S_OTHER
                v => return char::from_u32(u32::from(v)).unwrap_or(c),
            }
        }
    }
    if u < 0x2000 {
        return c;
    }
    match T2S_OTHER.binary_search_by_key(&u, |&(k, _)| k) {
        Ok(i) => char::from_u32(T2S_OTHER[i].1).unwrap_or(c),
        Err(_) => c,
    }
}

/// Greek and Cyrillic letters that look like a Latin letter, and that letter (lowercase).
/// Capital letters whose skeleton is `l` (Greek Iota, Cyrillic Byelorussian-Ukrainian I and
/// Palochka) fold to `i`, the letter an uppercase `I` lowercases to.
pub(crate) static LOOKALIKES: [(char, char); 85] = [
    ('\u{037F}', 'j'),
    ('\u{0391}', 'a'),
    ('\u{0392}', 'b'),
    ('\u{0395}', 'e'),
    ('\u{0396}', 'z'),
    ('\u{0397}', 'h'),
    ('\u{0399}', 'i'),
    ('\u{039A}', 'k'),
    ('\u{039C}', 'm'),
    ('\u{039D}', 'n'),
    ('\u{039F}', 'o'),
    ('\u{03A1}', 'p'),
    ('\u{03A4}', 't'),
    ('\u{03A5}', 'y'),
    ('\u{03A7}', 'x'),
    ('\u{03B1}', 'a'),
    ('\u{03B3}', 'y'),
    ('\u{03B9}', 'i'),
    ('\u{03BD}', 'v'),
    ('\u{03BF}', 'o'),
    ('\u{03C1}', 'p'),
    ('\u{03C3}', 'o'),
    ('\u{03C5}', 'u'),
    ('\u{03D2}', 'y'),
    ('\u{03DC}', 'f'),
    ('\u{03ED}', 'o'),
    ('\u{03F1}', 'p'),
    ('\u{03F2}', 'c'),
    ('\u{03F3}', 'j'),
    ('\u{03F8}', 'p'),
    ('\u{03F9}', 'c'),
    ('\u{03FA}', 'm'),
    ('\u{0405}', 's'),
    ('\u{0406}', 'i'),
    ('\u{0408}', 'j'),
    ('\u{0410}', 'a'),
    ('\u{0412}', 'b'),
    ('\u{0415}', 'e'),
    ('\u{041A}', 'k'),
    ('\u{041C}', 'm'),
    ('\u{041D}', 'h'),
    ('\u{041E}', 'o'),
    ('\u{0420}', 'p'),
    ('\u{0421}', 'c'),
    ('\u{0422}', 't'),
    ('\u{0423}', 'y'),
    ('\u{0425}', 'x'),
    ('\u{042C}', 'b'),
    ('\u{0430}', 'a'),
    ('\u{0433}', 'r'),
    ('\u{0435}', 'e'),
    ('\u{043E}', 'o'),
    ('\u{0440}', 'p'),
    ('\u{0441}', 'c'),
    ('\u{0443}', 'y'),
    ('\u{0445}', 'x'),
    ('\u{0448}', 'w'),
    ('\u{0455}', 's'),
    ('\u{0456}', 'i'),
    ('\u{0458}', 'j'),
    ('\u{0461}', 'w'),
    ('\u{0474}', 'v'),
    ('\u{0475}', 'v'),
    ('\u{04AE}', 'y'),
    ('\u{04AF}', 'y'),
    ('\u{04BA}', 'h'),
    ('\u{04BB}', 'h'),
    ('\u{04BD}', 'e'),
    ('\u{04C0}', 'i'),
    ('\u{04CF}', 'l'),
    ('\u{0501}', 'd'),
    ('\u{050C}', 'g'),
    ('\u{051A}', 'q'),
    ('\u{051B}', 'q'),
    ('\u{051C}', 'w'),
    ('\u{051D}', 'w'),
    ('\u{1D04}', 'c'),
    ('\u{1D0F}', 'o'),
    ('\u{1D11}', 'o'),
    ('\u{1D1C}', 'u'),
    ('\u{1D20}', 'v'),
    ('\u{1D21}', 'w'),
    ('\u{1D22}', 'z'),
    ('\u{1D26}', 'r'),
    ('\u{1FBE}', 'i'),
];

/// The Latin letter that `c` (a Greek or Cyrillic lookalike) stands for, if any.
#[inline]
pub fn lookalike(c: char) -> Option<char> {
    let u = c as u32;
    if !(0x037F..=0x1FBE).contains(&u) {
        return None;
    }
    LOOKALIKES
        .binary_search_by_key(&c, |&(k, _)| k)
        .ok()
        .map(|i| LOOKALIKES[i].1)
}

/// Han ideographs, Hiragana and Katakana: each character is a token of its own.
#[inline]
pub fn is_char_token(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x2_0000..=0x3_134F
        | 0x3040..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF)
}

/// Emoji, pictographs and their modifiers, which are deleted (they do not split words).
#[inline]
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1_F000..=0x1_FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0xFE00..=0xFE0F
        | 0xE_0020..=0xE_007F | 0x20E3 | 0x2300..=0x23FF | 0xE_0100..=0xE_01EF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_security::confusable_detection::skeleton;

    #[test]
    fn lookalikes_sorted_and_match_uts39_skeletons() {
        assert!(LOOKALIKES.windows(2).all(|w| w[0].0 < w[1].0));
        for &(c, l) in &LOOKALIKES {
            let s: String = skeleton(&c.to_string()).collect();
            let want = if c.is_uppercase() && s == "l" {
                'i'
            } else {
                s.chars().next().unwrap().to_ascii_lowercase()
            };
            assert_eq!(l, want, "U+{:04X} skeleton {s:?}", c as u32);
        }
        // And nothing in the Greek and Cyrillic blocks is missing.
        for u in 0x0370u32..0x0530 {
            let Some(c) = char::from_u32(u) else { continue };
            let s: String = skeleton(&c.to_string()).collect();
            let single_ascii = s.chars().count() == 1 && s.chars().all(|x| x.is_ascii_alphabetic());
            assert_eq!(single_ascii, lookalike(c).is_some(), "U+{u:04X}");
        }
    }

    #[test]
    fn t2s_known_and_idempotent() {
        let fold = |s: &str| s.chars().map(t2s).collect::<String>();
        assert_eq!(fold("這個政府說謊"), "这个政府说谎");
        assert_eq!(fold("臺灣國際機場"), "台湾国际机场");
        assert_eq!(fold("abc"), "abc");
        let folded = (0u32..0x3_2000)
            .filter_map(char::from_u32)
            .filter(|&c| t2s(c) != c)
            .count();
        assert_eq!(folded, T2S_LEN);
        assert!(folded > 3000, "{folded}");
        for u in 0u32..0x3_2000 {
            let Some(c) = char::from_u32(u) else { continue };
            assert_eq!(t2s(t2s(c)), t2s(c), "U+{u:04X}");
        }
    }

    #[test]
    fn code_point_fold_agrees_with_char_fold() {
        // `t2s_u32` reads the bitmap first; it must give what `t2s` gives everywhere.
        for u in 0u32..0x1_0000 {
            let Some(c) = char::from_u32(u) else { continue };
            assert_eq!(t2s_u32(u), t2s(c) as u32, "U+{u:04X}");
        }
    }
}
