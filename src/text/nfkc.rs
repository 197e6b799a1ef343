//! NFKC with a fast path.
//!
//! [`nfkc_for_each`] feeds the NFKC form of a string, char by char, to a callback. Runs of
//! "fast" characters (ASCII, the common CJK ideographs and CJK punctuation, full-width ASCII
//! forms and the ideographic space) are mapped directly; everything between them goes
//! through `unicode-normalization`'s full NFKC. The result is byte-identical to full NFKC
//! (a property test says so) because every fast character is a *stable boundary*: it has
//! canonical combining class 0, it never composes with a preceding character, and its NFKC
//! image is a single character of the same kind. A slow run is therefore normalized
//! together with the fast character just before it (which a following combining mark can
//! compose with), and a boundary always exists right before any fast character.

use unicode_normalization::UnicodeNormalization;

/// The code point of the three-byte UTF-8 sequence at `bytes[i..i + 3]` (the caller has
/// checked the lead byte and that the sequence is inside a `str`).
#[inline(always)]
pub(crate) fn decode3(bytes: &[u8], i: usize) -> u32 {
    (u32::from(bytes[i] & 0x0F) << 12)
        | (u32::from(bytes[i + 1] & 0x3F) << 6)
        | u32::from(bytes[i + 2] & 0x3F)
}

/// Whether a CJK Unified Ideograph (U+4E00..=U+9FFF) starts at byte `i` of the UTF-8
/// text `bytes` (`i` on a character boundary).
#[inline(always)]
pub(crate) fn han_at(bytes: &[u8], i: usize) -> bool {
    // Lead bytes E4..E9 begin U+4000..U+9FFF: three bytes, all inside a `str`.
    i + 2 < bytes.len() && (0xE4..=0xE9).contains(&bytes[i]) && decode3(bytes, i) >= 0x4E00
}

/// The NFKC image of a fast character, or `None` if `c` needs full normalization.
#[inline(always)]
pub(crate) fn fast_map(c: char) -> Option<char> {
    let u = c as u32;
    if u < 0x80 {
        return Some(c);
    }
    match u {
        // CJK Unified Ideographs and Extension A: no decompositions, ccc 0.
        0x4E00..=0x9FFF | 0x3400..=0x4DBF => Some(c),
        // Ideographic space -> space.
        0x3000 => Some(' '),
        // CJK punctuation without decompositions: 、。〃 〈〉《》「」『』【】 〔〕〖〗〘〙〚〛〜〝〞〟
        0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F => Some(c),
        // Full-width ASCII forms -> ASCII.
        0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0),
        _ => None,
    }
}

/// Calls `f` with each character of the NFKC normalization of `s`, in order.
pub fn nfkc_for_each(s: &str, mut f: impl FnMut(char)) {
    // Byte offset where the pending slow run starts, if any.
    let mut slow_start: Option<usize> = None;
    // The last fast character seen and its byte offset, not yet emitted. It is held back
    // one step because a following combining mark may compose with it.
    let mut held: Option<(usize, char)> = None;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Decode by hand: ASCII and three-byte sequences (all common CJK) are the hot cases.
        let b = bytes[i];
        let (c, len) = if b < 0x80 {
            (b as char, 1)
        } else if (0xE0..0xF0).contains(&b) && i + 2 < bytes.len() {
            let u = decode3(bytes, i);
            match char::from_u32(u) {
                Some(c) => (c, 3),
                None => break,
            }
        } else {
            match s[i..].chars().next() {
                Some(c) => (c, c.len_utf8()),
                None => break,
            }
        };
        let at = i;
        i += len;
        let i = at;
        match fast_map(c) {
            Some(m) => {
                if let Some(start) = slow_start.take() {
                    s[start..i].nfkc().for_each(&mut f);
                } else if let Some((_, h)) = held {
                    f(h);
                }
                held = Some((i, m));
            }
            None => {
                if slow_start.is_none() {
                    // Start the slow run at the held fast character, which it may compose with.
                    slow_start = Some(match held.take() {
                        Some((j, _)) => j,
                        None => i,
                    });
                }
            }
        }
    }
    if let Some(start) = slow_start {
        s[start..].nfkc().for_each(&mut f);
    } else if let Some((_, h)) = held {
        f(h);
    }
}

/// The NFKC normalization of `s`, appended to `out`.
pub fn nfkc_into(s: &str, out: &mut String) {
    nfkc_for_each(s, |c| out.push(c));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fast(s: &str) -> String {
        let mut out = String::new();
        nfkc_into(s, &mut out);
        out
    }

    fn full(s: &str) -> String {
        s.nfkc().collect()
    }

    #[test]
    fn fast_map_agrees_with_full_nfkc_per_char() {
        for u in 0u32..0x11_0000 {
            let Some(c) = char::from_u32(u) else { continue };
            if let Some(m) = fast_map(c) {
                assert_eq!(full(&c.to_string()), m.to_string(), "U+{u:04X}");
            }
        }
    }

    #[test]
    fn known_cases() {
        assert_eq!(fast("ＡＢＣ，１２３！"), "ABC,123!");
        assert_eq!(fast("a\u{3000}b"), "a b");
        assert_eq!(fast("e\u{301}"), "\u{e9}");
        assert_eq!(fast("Ａ\u{301}"), "\u{c1}");
        assert_eq!(fast("ﬁ"), "fi");
        assert_eq!(fast("這個政府說謊"), "這個政府說謊");
        assert_eq!(fast("\u{FA10}"), full("\u{FA10}"));
        assert_eq!(fast("か\u{3099}"), "が");
        assert_eq!(fast(""), "");
    }

    /// Strings drawn from the characters that stress the fast/slow boundary.
    fn tricky() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "Z",
            " ",
            ",",
            "e",
            "\u{301}",
            "\u{308}",
            "\u{327}",
            "\u{3099}",
            "\u{309A}",
            "か",
            "ｶ",
            "ﾞ",
            "Ａ",
            "，",
            "\u{3000}",
            "中",
            "國",
            "\u{FA10}",
            "ﬁ",
            "①",
            "ᄀ",
            "ᅡ",
            "ᆨ",
            "가",
            "\u{0B47}",
            "\u{0B3E}",
            "\u{1100}",
            "Å",
            "Ω",
            "\u{212B}",
            "\u{2126}",
            "、",
            "「",
            "\u{200B}",
            "😀",
            "\u{FE0F}",
            "¼",
            "\u{0345}",
            "\u{0F73}",
            "\u{1D15E}",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn fast_path_equals_full_nfkc_arbitrary(s in any::<String>()) {
            prop_assert_eq!(fast(&s), full(&s));
        }

        #[test]
        fn fast_path_equals_full_nfkc_tricky(s in tricky()) {
            prop_assert_eq!(fast(&s), full(&s));
        }
    }
}
