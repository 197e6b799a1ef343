//! Text normalization and tokenization (normalizer version 1).
//!
//! A [`Normalizer`] turns a post into its *normalized text* and its *tokens* in two passes
//! over reused buffers:
//!
//! 1. **Map** each character: NFKC (with a fast path, see [`nfkc`]), Greek/Cyrillic
//!    lookalikes folded to Latin (UTS #39), full lowercasing, Traditional -> Simplified
//!    Chinese (OpenCC table).
//! 2. **Clean and split**: URLs (`http://`, `https://`, `www.`), `@mentions` and hashtags
//!    (`#tag` and Weibo `#话题#`) are removed; digits, emoji and format characters (Cf) are
//!    deleted without splitting the word around them; punctuation, symbols and whitespace
//!    separate tokens. Each Han, Hiragana and Katakana character is a token; any other run of
//!    letters (and combining marks) is one word token.
//!
//! The normalized text is the tokens joined by single spaces, except that no space is put
//! between two tokens that were adjacent in the text (so Chinese reads as written). Its
//! tokens can always be recovered from it, and equal normalized texts mean equal tokens.
//!
//! Invariants: deterministic, no global state, never panics, linear time in the input.
//! Any change to what this module outputs must bump [`NORMALIZER_VERSION`].

pub mod align;
mod ascii;
mod clean;
mod map;
pub mod nfkc;
pub mod tables;

use serde::{Deserialize, Serialize};

use ascii::Finders;
use map::map_chars;

/// A mapped-text buffer larger than this is freed after each use.
const KEEP_MAPPED_BYTES: usize = 1 << 20;

/// The version of the normalization and tokenization rules. Stored in every index manifest.
pub const NORMALIZER_VERSION: u32 = 1;

/// What to do with hashtags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hashtags {
    /// Remove the hashtag and its word (`#Taiwan` vanishes). The default: campaigns sprinkle
    /// changing hashtags over the same text.
    #[default]
    Remove,
    /// Keep the word, drop the `#` (`#Taiwan` -> `taiwan`).
    KeepWords,
}

/// Normalizer options. Part of the fingerprint parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NormalizerOptions {
    /// What to do with hashtags.
    #[serde(default)]
    pub hashtags: Hashtags,
    /// Fold Traditional Chinese to Simplified (default true). Turn it off only to compare
    /// with a reference that keeps the scripts apart.
    #[serde(default = "yes")]
    pub t2s: bool,
}

fn yes() -> bool {
    true
}

impl Default for NormalizerOptions {
    fn default() -> NormalizerOptions {
        NormalizerOptions {
            hashtags: Hashtags::Remove,
            t2s: true,
        }
    }
}

/// A token: a byte range of the normalized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// Start byte offset.
    pub start: u32,
    /// End byte offset (exclusive).
    pub end: u32,
}

/// Reusable buffers for [`Normalizer::normalize`]. Keep one per thread.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    mapped: String,
    text: String,
    tokens: Vec<Span>,
    /// SIMD searchers for `http` and `www.`, built on first use (building one per search
    /// would cost more than the search in a short post).
    finders: Option<Finders>,
}

impl Normalized {
    /// A new, empty buffer.
    pub fn new() -> Normalized {
        Normalized::default()
    }

    /// The normalized text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The token spans, in order.
    pub fn spans(&self) -> &[Span] {
        &self.tokens
    }

    /// The tokens, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens
            .iter()
            .map(|s| &self.text[s.start as usize..s.end as usize])
    }

    /// Whether no token is left after normalization.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The normalizer. Cheap to copy; `Send + Sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Normalizer {
    opts: NormalizerOptions,
}

impl Normalizer {
    /// A normalizer with these options.
    pub fn new(opts: NormalizerOptions) -> Normalizer {
        Normalizer { opts }
    }

    /// The options.
    pub fn options(&self) -> NormalizerOptions {
        self.opts
    }

    /// Normalizes `text` into `out` (its previous contents are replaced).
    pub fn normalize(&self, text: &str, out: &mut Normalized) {
        out.mapped.clear();
        out.text.clear();
        out.tokens.clear();
        if text.len() > KEEP_MAPPED_BYTES {
            // A long text: each buffer is sized once, near its final length, instead of
            // doubling (a grown buffer's old copy can stay resident as allocator slack).
            // The reservation is an upper bound but for rare NFKC expansions; the part a
            // text does not use is never touched.
            out.mapped.reserve(text.len());
        }
        map_chars(text, &mut out.mapped, self.opts.t2s);
        if out.mapped.len() > KEEP_MAPPED_BYTES {
            // At most a token per two bytes of mapped text but for one-byte words between
            // separators; the cleaned text is never longer than the mapped one.
            out.text.reserve(out.mapped.len());
            out.tokens.reserve(out.mapped.len() / 2 + 1);
        }
        self.clean(out);
        // The mapped text is needed by `clean` only: a long one is let go at once rather
        // than held (as large as the text) for as long as the buffers live.
        if out.mapped.capacity() > KEEP_MAPPED_BYTES {
            out.mapped = String::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ascii::letter_digit_masks;
    use super::map::map_one;
    use super::*;

    fn norm_with(opts: NormalizerOptions, s: &str) -> (String, Vec<String>) {
        let mut n = Normalized::new();
        Normalizer::new(opts).normalize(s, &mut n);
        (
            n.text().to_string(),
            n.tokens().map(str::to_string).collect(),
        )
    }

    fn norm(s: &str) -> (String, Vec<String>) {
        norm_with(NormalizerOptions::default(), s)
    }

    #[test]
    fn basic_english() {
        let (t, toks) = norm("Hello, World! It's 2023.");
        assert_eq!(t, "hello world it s");
        assert_eq!(toks, ["hello", "world", "it", "s"]);
    }

    #[test]
    fn chinese_is_one_token_per_char_and_glued() {
        let (t, toks) = norm("「這個政府說謊」，大家要知道！");
        assert_eq!(t, "这个政府说谎 大家要知道");
        assert_eq!(toks.len(), 11);
        assert_eq!(toks[0], "这");
    }

    #[test]
    fn mixed_scripts() {
        let (t, toks) = norm("COVID疫苗vaccine真相");
        assert_eq!(t, "covid疫苗vaccine真相");
        assert_eq!(toks, ["covid", "疫", "苗", "vaccine", "真", "相"]);
    }

    #[test]
    fn removals() {
        assert_eq!(norm("see https://t.co/AbC123 now").0, "see now");
        assert_eq!(norm("see http://x.cn/a?b=1看这里").0, "see 看这里");
        assert_eq!(norm("visit www.example.com/x today").0, "visit today");
        assert_eq!(norm("awww.that is cute").0, "awww that is cute");
        assert_eq!(norm("hi @john.doe and @张三 ok").0, "hi and ok");
        assert_eq!(norm("truth #Taiwan #台湾 matters").0, "truth matters");
        assert_eq!(norm("#台湾加油# 我们支持").0, "我们支持");
        assert_eq!(
            norm("#127 serial 【0457】 No.33 第35期").0,
            "serial no 第期"
        );
        assert_eq!(norm("a😀b 🇺🇸 c\u{200B}d e\u{FE0F}").0, "ab cd e");
        assert_eq!(norm("c# is fine").0, "c is fine");
    }

    #[test]
    fn keep_hashtag_words() {
        let keep = NormalizerOptions {
            hashtags: Hashtags::KeepWords,
            ..NormalizerOptions::default()
        };
        assert_eq!(
            norm_with(keep, "truth #Taiwan matters").0,
            "truth taiwan matters"
        );
        assert_eq!(norm_with(keep, "#台湾加油#我们").0, "台湾加油 我们");
    }

    #[test]
    fn lookalikes_fold() {
        // Cyrillic а and е inside a Latin word; Greek capital Eta.
        assert_eq!(norm("v\u{0430}ccin\u{0435}").0, "vaccine");
        assert_eq!(norm("\u{0397}ELLO").0, "hello");
    }

    /// Cleans the ASCII text `text` (as pass 1 left it) on the ASCII path and on the general
    /// loop, and compares the normalized texts and tokens.
    fn ascii_paths_agree(
        opts: NormalizerOptions,
        text: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let n = Normalizer::new(opts);
        let mut fast = Normalized::new();
        n.clean_ascii(text, &mut fast.text, &mut fast.tokens, &Finders::new());
        let mut general = Normalized::new();
        n.clean_general(text, &mut general.text, &mut general.tokens);
        proptest::prop_assert_eq!(&fast.text, &general.text);
        proptest::prop_assert_eq!(&fast.tokens, &general.tokens);
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn inlined_map_equals_reference(s in "(\\PC|[a-zA-Z中國這個\u{301}\u{3099}ＡＢ，\u{3000}ﬁ①Ω]){0,40}", t2s in proptest::bool::ANY) {
            let mut fast = String::new();
            map_chars(&s, &mut fast, t2s);
            let mut reference = String::new();
            nfkc::nfkc_for_each(&s, |c| map_one(c, &mut reference, t2s));
            proptest::prop_assert_eq!(fast, reference);
        }

        /// The same on long stretches with no URL, mention or hashtag start: words and
        /// digit runs across the 64-byte blocks of the ASCII path.
        #[test]
        fn ascii_clean_equals_general_on_long_plain_text(
            parts in proptest::collection::vec("([a-gA-G]{1,20}|[0-9]{1,3}|[ .,\n]{1,3})", 0..60),
        ) {
            ascii_paths_agree(NormalizerOptions::default(), &parts.concat())?;
        }

        /// The ASCII cleaning path gives exactly what the general loop gives, on ASCII text
        /// dense in URL, mention and hashtag starts, digits and separators.
        #[test]
        fn ascii_clean_equals_general(
            parts in proptest::collection::vec(
                "(https?://[a-z.]{0,6}|www\\.|w{1,4}|h{1,3}|http|@[a-z_.0-9]{0,4}|#[a-z0-9#]{0,5}|[a-z]{1,6}|[A-Z0-9]{1,3}|[ \t\n.,!?:/_-]{1,2}|[\\x00-\\x7f])",
                0..24,
            ),
            keep in proptest::bool::ANY,
        ) {
            let opts = NormalizerOptions {
                hashtags: if keep { Hashtags::KeepWords } else { Hashtags::Remove },
                t2s: true,
            };
            ascii_paths_agree(opts, &parts.concat())?;
        }
    }

    /// `map_one` as it reads without the [`tables::map_same`] shortcut.
    fn map_one_reference(c: char, out: &mut String, t2s: bool) {
        if let Some(l) = tables::lookalike(c) {
            out.push(l);
            return;
        }
        for l in c.to_lowercase() {
            match tables::lookalike(l) {
                Some(m) => out.push(m),
                None => out.push(if t2s { tables::t2s(l) } else { l }),
            }
        }
    }

    #[test]
    fn map_one_equals_reference_on_every_char() {
        let (mut fast, mut reference) = (String::new(), String::new());
        for t2s in [true, false] {
            for u in 0u32..=0x10_FFFF {
                let Some(c) = char::from_u32(u) else { continue };
                fast.clear();
                reference.clear();
                map_one(c, &mut fast, t2s);
                map_one_reference(c, &mut reference, t2s);
                assert_eq!(fast, reference, "U+{u:04X}, t2s {t2s}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The SWAR masks are the per-byte tests, on any ASCII block of up to 64 bytes.
        #[test]
        fn letter_digit_masks_equal_per_byte_tests(
            block in proptest::collection::vec(0u8..0x80, 0..=64),
        ) {
            let (mut letters, mut digits) = (0u64, 0u64);
            for (j, &b) in block.iter().enumerate() {
                letters |= u64::from(b.is_ascii_alphabetic()) << j;
                digits |= u64::from(b.is_ascii_digit()) << j;
            }
            proptest::prop_assert_eq!(letter_digit_masks(&block), (letters, digits));
        }
    }

    #[test]
    fn letter_digit_masks_on_every_byte() {
        for b in 0u8..0x80 {
            for at in [0, 7, 8, 31, 63] {
                let mut block = [b' '; 64];
                block[at] = b;
                let (l, d) = letter_digit_masks(&block);
                assert_eq!(
                    l,
                    u64::from(b.is_ascii_alphabetic()) << at,
                    "{b:#x} at {at}"
                );
                assert_eq!(d, u64::from(b.is_ascii_digit()) << at, "{b:#x} at {at}");
            }
        }
    }

    #[test]
    fn han_at_matches_the_code_point_range() {
        let mut buf = [0u8; 8];
        for u in 0u32..=0x10_FFFF {
            let Some(c) = char::from_u32(u) else { continue };
            let len = c.encode_utf8(&mut buf).len();
            let han = (0x4E00..=0x9FFF).contains(&u);
            // Alone, and followed by more text.
            assert_eq!(nfkc::han_at(&buf[..len], 0), han, "U+{u:04X}");
            buf[len] = b'a';
            assert_eq!(nfkc::han_at(&buf[..len + 1], 0), han, "U+{u:04X}");
        }
        assert!(!nfkc::han_at(b"", 0));
        assert!(!nfkc::han_at("中".as_bytes(), 3));
    }

    #[test]
    fn every_script_is_safe() {
        for s in [
            "مرحبا بالعالم ١٢٣",
            "สวัสดีครับ ประเทศไทย",
            "안녕하세요 세계",
            "Привет, мир!",
            "😀😀🎉",
            "",
            "   ",
            "\u{FFFD}\u{FFFD}",
            "\u{0}\u{1}\u{7F}",
            "ﷺ",
            "\u{10FFFF}",
        ] {
            let _ = norm(s);
        }
        let big = "中文English混合。".repeat(60_000);
        let (_, toks) = norm(&big);
        assert!(toks.len() > 100_000);
        let lossy = String::from_utf8_lossy(b"\xed\xa0\x80abc\xff").into_owned();
        assert_eq!(norm(&lossy).0, "abc");
    }
}
