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

pub mod nfkc;
pub mod tables;

use serde::{Deserialize, Serialize};
use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

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

/// The substring searchers of [`Normalizer::clean_ascii`].
#[derive(Debug, Clone)]
struct Finders {
    http: memchr::memmem::Finder<'static>,
    www: memchr::memmem::Finder<'static>,
}

impl Finders {
    fn new() -> Finders {
        Finders {
            http: memchr::memmem::Finder::new(b"http"),
            www: memchr::memmem::Finder::new(b"www."),
        }
    }
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

/// How the cleaning pass treats a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Part of a word token.
    Word,
    /// A token by itself (Han, kana).
    CharToken,
    /// Removed without splitting (digits, emoji, format characters).
    Delete,
    /// Splits tokens (punctuation, symbols, whitespace, controls).
    Separator,
}

#[inline]
fn classify(c: char) -> Class {
    let u = c as u32;
    if u < 0x80 {
        return if c.is_ascii_alphabetic() {
            Class::Word
        } else if c.is_ascii_digit() {
            Class::Delete
        } else {
            Class::Separator
        };
    }
    if tables::is_char_token(c) {
        return Class::CharToken;
    }
    if tables::is_emoji(c) {
        return Class::Delete;
    }
    if matches!(u, 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F) {
        return Class::Separator;
    }
    match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter
        | Gc::NonspacingMark
        | Gc::SpacingMark
        | Gc::EnclosingMark => Class::Word,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber | Gc::Format => Class::Delete,
        Gc::Surrogate => Class::Delete,
        _ => Class::Separator,
    }
}

/// Word characters for `@mentions` and `#tags`: letters, marks, digits and `_`.
#[inline]
fn is_tag_char(c: char) -> bool {
    c == '_' || matches!(classify(c), Class::Word | Class::CharToken) || c.is_numeric()
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
        map_chars(text, &mut out.mapped, self.opts.t2s);
        self.clean(out);
    }

    /// Pass 2: remove URLs, mentions and hashtags; delete, split and collect tokens.
    fn clean(&self, out: &mut Normalized) {
        let Normalized {
            mapped,
            text,
            tokens,
            finders,
        } = out;
        if mapped.is_ascii() {
            let finders = finders.get_or_insert_with(Finders::new);
            self.clean_ascii(mapped, text, tokens, finders);
        } else {
            self.clean_general(mapped, text, tokens);
        }
    }

    /// [`clean`](Self::clean) for an ASCII text (most English posts), with the same result
    /// as [`clean_general`](Self::clean_general) (a property test says so). The places
    /// where a URL, mention or hashtag may start (`http`, `www.`, `@`, `#`) are found with
    /// SIMD searches first; the bytes between them go through a loop with no branch on the
    /// bytes' classes (branches on where words end would be mispredicted once a word).
    fn clean_ascii(&self, src: &str, text: &mut String, tokens: &mut Vec<Span>, finders: &Finders) {
        let bytes = src.as_bytes();
        let n = bytes.len();
        // Room for the worst cases: a space before every letter, a token per letter.
        let mut buf = std::mem::take(text).into_bytes();
        buf.clear();
        buf.resize(2 * n + 1 + COPY, 0);
        tokens.clear();
        tokens.resize(n + 1, Span { start: 0, end: 0 });
        let mut st = AsciiWords::default();
        let mut triggers = Triggers::new(bytes, finders);
        let mut i = 0;
        while i < n {
            let t = triggers.next(i);
            st.plain(&bytes[i..t], &mut buf, tokens);
            if t >= n {
                break;
            }
            let skip = self.special_len(src, t);
            if skip > 0 {
                st.end_word(tokens);
                st.gap = true;
                i = t + skip;
            } else {
                st.plain(&bytes[t..t + 1], &mut buf, tokens);
                i = t + 1;
            }
        }
        st.end_word(tokens);
        buf.truncate(st.pos);
        tokens.truncate(st.tokens);
        // Only ASCII bytes were written.
        *text = String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    }

    /// Pass 2 for any text: a loop over characters.
    fn clean_general(&self, src: &str, text: &mut String, tokens: &mut Vec<Span>) {
        let bytes = src.as_bytes();
        // Whether a separator was seen since the last token (a space is due before the next).
        let mut gap = false;
        // Start of the word token being built, if any.
        let mut word_start: Option<usize> = None;
        let mut i = 0;
        macro_rules! end_word {
            () => {
                if let Some(s) = word_start.take() {
                    tokens.push(Span {
                        start: s as u32,
                        end: text.len() as u32,
                    });
                }
            };
        }
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                // ASCII fast path: no decoding, a table lookup per byte.
                let special = match b {
                    b'h' => bytes[i..].starts_with(b"http"),
                    b'w' => bytes[i..].starts_with(b"www."),
                    b'@' | b'#' => true,
                    _ => false,
                };
                if special {
                    // URLs, mentions, hashtags.
                    let skip = self.special_len(src, i);
                    if skip > 0 {
                        end_word!();
                        gap = true;
                        i += skip;
                        continue;
                    }
                }
                if b.is_ascii_alphabetic() {
                    if word_start.is_none() {
                        if gap && !text.is_empty() {
                            text.push(' ');
                        }
                        gap = false;
                        word_start = Some(text.len());
                    }
                    // The letter and the rest of its run in one copy. An 'h' ends the run:
                    // it may start a URL, which the loop checks.
                    let run = 1 + bytes[i + 1..]
                        .iter()
                        .take_while(|&&c| c.is_ascii_alphabetic() && c != b'h')
                        .count();
                    text.push_str(&src[i..i + run]);
                    i += run;
                    continue;
                } else if !b.is_ascii_digit() {
                    end_word!();
                    gap = true;
                }
                i += 1;
                continue;
            }
            // Three-byte sequences (U+0800..U+FFFF, which holds all common CJK) are decoded by
            // hand; the input is a `str`, so the continuation bytes are valid.
            let (c, len) = if (0xE0..0xF0).contains(&b) && i + 2 < bytes.len() {
                let u = nfkc::decode3(bytes, i);
                match char::from_u32(u) {
                    Some(c) => (c, 3),
                    None => break,
                }
            } else {
                match src[i..].chars().next() {
                    Some(c) => (c, c.len_utf8()),
                    None => break,
                }
            };
            if (0x4E00..=0x9FFF).contains(&(c as u32)) {
                // Common Han ideographs: a token each, copied as bytes, the whole run at once.
                end_word!();
                if gap && !text.is_empty() {
                    text.push(' ');
                }
                gap = false;
                let mut end = i + 3;
                while nfkc::han_at(bytes, end) {
                    end += 3;
                }
                let s = text.len() as u32;
                text.push_str(&src[i..end]);
                tokens.extend((0..(end - i) as u32 / 3).map(|k| Span {
                    start: s + 3 * k,
                    end: s + 3 * k + 3,
                }));
                i = end;
                continue;
            }
            match classify(c) {
                Class::Word => {
                    if word_start.is_none() {
                        if gap && !text.is_empty() {
                            text.push(' ');
                        }
                        gap = false;
                        word_start = Some(text.len());
                    }
                    text.push(c);
                }
                Class::CharToken => {
                    end_word!();
                    if gap && !text.is_empty() {
                        text.push(' ');
                    }
                    gap = false;
                    let s = text.len();
                    text.push(c);
                    tokens.push(Span {
                        start: s as u32,
                        end: text.len() as u32,
                    });
                }
                Class::Delete => {}
                Class::Separator => {
                    end_word!();
                    gap = true;
                }
            }
            i += len;
        }
        end_word!();
    }

    /// The bytes to remove at `i`, where `src` has `h`, `w`, `@` or `#`: a URL (`http://`,
    /// `https://`, or `www.` not inside a word), a mention or a hashtag; 0 if none starts there.
    #[inline]
    fn special_len(&self, src: &str, i: usize) -> usize {
        match src.as_bytes().get(i) {
            Some(b'h') => url_len(src, i),
            Some(b'w') if i == 0 || !matches!(classify_prev(src, i), Class::Word) => {
                url_len(src, i)
            }
            Some(b'@') => tag_len(src, i + 1).map_or(0, |n| n + 1),
            Some(b'#') => self.hashtag(src, i),
            _ => 0,
        }
    }

    /// Handles a `#` at `i`. Returns the bytes to skip (0: not a hashtag). With
    /// [`Hashtags::KeepWords`], returns 1 (the `#` alone is skipped) so the words stay.
    fn hashtag(&self, src: &str, i: usize) -> usize {
        // Weibo form: #话题# — up to 64 characters, no whitespace and no '#', then '#'.
        let rest = &src[i + 1..];
        let mut n = 0;
        for (j, c) in rest.char_indices() {
            if c == '#' {
                if n > 0 {
                    return match self.opts.hashtags {
                        Hashtags::Remove => 1 + j + 1,
                        // Drop the opening '#'; the closing one is a separator.
                        Hashtags::KeepWords => 1,
                    };
                }
                break;
            }
            n += 1;
            if c.is_whitespace() || n > 64 {
                break;
            }
        }
        match tag_len(src, i + 1) {
            Some(len) => match self.opts.hashtags {
                Hashtags::Remove => 1 + len,
                Hashtags::KeepWords => 1,
            },
            None => 0,
        }
    }
}

/// The state of [`Normalizer::clean_ascii`]'s word loop: what `clean_general` keeps in
/// `text.len()`, `word_start` and `gap`.
#[derive(Debug, Default)]
struct AsciiWords {
    /// Bytes written.
    pos: usize,
    /// Tokens written.
    tokens: usize,
    /// Whether a word is open, and where it started.
    in_word: bool,
    start: usize,
    /// Whether a separator was seen since the last word.
    gap: bool,
}

impl AsciiWords {
    /// Letters extend or open a word (opening one after a separator writes a space first),
    /// digits are dropped, anything else closes the open word. `buf` has room for two
    /// bytes per input byte plus [`COPY`] and `tokens` for one per input byte.
    ///
    /// Sixty-four bytes at a time: a bit mask of the block's letters gives its runs of
    /// letters, each copied at once, so the work is per word rather than per byte. A block
    /// holding a digit (dropped, but a word goes on across it) takes the byte loop.
    #[inline]
    fn plain(&mut self, seg: &[u8], buf: &mut [u8], tokens: &mut [Span]) {
        for (k, block) in seg.chunks(64).enumerate() {
            let base = 64 * k;
            let (letters, digits) = letter_digit_masks(block);
            if digits != 0 {
                self.plain_bytes(block, buf, tokens);
                continue;
            }
            let len = block.len();
            // Each run of letters: the bytes before it (if any) are separators.
            let mut at = 0;
            let mut rest = letters;
            while rest != 0 {
                let s = rest.trailing_zeros() as usize;
                let run = (!(rest >> s)).trailing_zeros() as usize;
                if s > at || !self.in_word {
                    // Separators before the run (or no word open): a new word starts,
                    // after a space unless it is the first.
                    self.end_word(tokens);
                    if self.pos > 0 {
                        if let Some(o) = buf.get_mut(self.pos) {
                            *o = b' ';
                        }
                        self.pos += 1;
                    }
                    self.gap = false;
                    self.in_word = true;
                    self.start = self.pos;
                }
                copy_run(seg, base + s, run, buf, self.pos);
                self.pos += run;
                at = s + run;
                rest = if at >= 64 { 0 } else { rest & (u64::MAX << at) };
            }
            if at < len {
                // Separators end the block.
                self.end_word(tokens);
                self.gap = true;
            }
        }
    }

    /// [`plain`](Self::plain) a byte at a time, for blocks with digits. No branch depends
    /// on the bytes: every write happens, and what counts is how far `pos` and `tokens`
    /// advance.
    #[inline]
    fn plain_bytes(&mut self, seg: &[u8], buf: &mut [u8], tokens: &mut [Span]) {
        let (mut pos, mut nt, mut in_word, mut start, mut gap) =
            (self.pos, self.tokens, self.in_word, self.start, self.gap);
        for &b in seg {
            let letter = (b | 0x20).wrapping_sub(b'a') < 26;
            let digit = b.wrapping_sub(b'0') < 10;
            let sep = !letter & !digit;
            let begin = letter & !in_word;
            if let Some(o) = buf.get_mut(pos) {
                *o = b' ';
            }
            pos += usize::from(begin & gap & (pos > 0));
            start = if begin { pos } else { start };
            if let Some(o) = buf.get_mut(pos) {
                *o = b;
            }
            pos += usize::from(letter);
            if let Some(t) = tokens.get_mut(nt) {
                *t = Span {
                    start: start as u32,
                    end: pos as u32,
                };
            }
            nt += usize::from(sep & in_word);
            in_word = letter | (in_word & !sep);
            gap = sep | (gap & !begin);
        }
        (self.pos, self.tokens, self.in_word, self.start, self.gap) =
            (pos, nt, in_word, start, gap);
    }

    /// Closes the open word, if any.
    #[inline]
    fn end_word(&mut self, tokens: &mut [Span]) {
        if self.in_word {
            if let Some(t) = tokens.get_mut(self.tokens) {
                *t = Span {
                    start: self.start as u32,
                    end: self.pos as u32,
                };
            }
            self.tokens += 1;
            self.in_word = false;
        }
    }
}

/// Bit masks of the letters and of the digits of `block` (at most 64 ASCII bytes): bit `j`
/// stands for byte `j`. Eight bytes at a time, in a `u64` (SWAR).
#[inline]
fn letter_digit_masks(block: &[u8]) -> (u64, u64) {
    let (mut letters, mut digits) = (0, 0);
    let words = block.chunks_exact(8);
    let tail = words.remainder();
    let mut k = 0;
    for w in words {
        let (l, d) = letter_digit_bytes(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        letters |= l << k;
        digits |= d << k;
        k += 8;
    }
    if !tail.is_empty() && k < 64 {
        // Zero bytes are neither letters nor digits.
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        let (l, d) = letter_digit_bytes(u64::from_le_bytes(w));
        letters |= l << k;
        digits |= d << k;
    }
    (letters, digits)
}

/// For eight ASCII bytes in `x` (little-endian), the masks of letters and digits, a bit a
/// byte. Each test adds a constant to every byte and reads its high bit; bytes below 0x80
/// plus at most 0x50 cannot carry into the next byte.
#[inline(always)]
fn letter_digit_bytes(x: u64) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let lower = x | (0x20 * ONES);
    let letters = lower.wrapping_add((0x80 - u64::from(b'a')) * ONES)
        & !lower.wrapping_add((0x80 - u64::from(b'z') - 1) * ONES)
        & HIGH;
    let digits = x.wrapping_add((0x80 - u64::from(b'0')) * ONES)
        & !x.wrapping_add((0x80 - u64::from(b'9') - 1) * ONES)
        & HIGH;
    (gather_high_bits(letters), gather_high_bits(digits))
}

/// The high bit of each byte of `v` (its only bits set) as an 8-bit mask, byte `i` to bit
/// `i`: the multiply moves byte `i`'s bit to bit `56 + i`, with no two partial products on
/// the same bit.
#[inline(always)]
fn gather_high_bits(v: u64) -> u64 {
    v.wrapping_mul(0x0002_0408_1020_4081) >> 56
}

/// How many bytes [`copy_run`] may write past a run (and `buf` must have room for).
const COPY: usize = 16;

/// Copies `src[start..start + len]` into `buf` at `pos`: a run of up to sixteen bytes as one
/// fixed-size copy where `src` and `buf` have sixteen bytes there (the bytes past the run are
/// overwritten later or cut off), else exactly.
#[inline]
fn copy_run(src: &[u8], start: usize, len: usize, buf: &mut [u8], pos: usize) {
    if len <= COPY {
        if let (Some(from), Some(to)) = (src.get(start..start + COPY), buf.get_mut(pos..pos + COPY))
        {
            to.copy_from_slice(from);
            return;
        }
    }
    if let (Some(from), Some(to)) = (src.get(start..start + len), buf.get_mut(pos..pos + len)) {
        to.copy_from_slice(from);
    }
}

/// The next places in an ASCII text where a URL (`http`, `www.`), mention (`@`) or hashtag
/// (`#`) may start, each kind found with a SIMD search and searched again only once passed.
struct Triggers<'a> {
    bytes: &'a [u8],
    finders: &'a Finders,
    tag: usize,
    http: usize,
    www: usize,
}

impl<'a> Triggers<'a> {
    fn new(bytes: &'a [u8], finders: &'a Finders) -> Triggers<'a> {
        let mut t = Triggers {
            bytes,
            finders,
            tag: 0,
            http: 0,
            www: 0,
        };
        t.tag = t.find_tag(0);
        t.http = t.find(0, &finders.http);
        t.www = t.find(0, &finders.www);
        t
    }

    fn find_tag(&self, from: usize) -> usize {
        let rest = self.bytes.get(from..).unwrap_or_default();
        memchr::memchr2(b'@', b'#', rest).map_or(self.bytes.len(), |j| from + j)
    }

    fn find(&self, from: usize, finder: &memchr::memmem::Finder<'_>) -> usize {
        let rest = self.bytes.get(from..).unwrap_or_default();
        finder.find(rest).map_or(self.bytes.len(), |j| from + j)
    }

    /// The first place at or after `i` (the text's length if none).
    fn next(&mut self, i: usize) -> usize {
        if self.tag < i {
            self.tag = self.find_tag(i);
        }
        if self.http < i {
            self.http = self.find(i, &self.finders.http);
        }
        if self.www < i {
            self.www = self.find(i, &self.finders.www);
        }
        self.tag.min(self.http).min(self.www)
    }
}

/// The class of the character ending at byte `i` of `s`.
fn classify_prev(s: &str, i: usize) -> Class {
    s[..i]
        .chars()
        .next_back()
        .map_or(Class::Separator, classify)
}

/// Length in bytes of a URL starting at `i`, or 0. A URL runs to whitespace or the first
/// non-ASCII character (Chinese text is often glued to a link).
fn url_len(s: &str, i: usize) -> usize {
    let b = &s.as_bytes()[i..];
    let prefix = if b.starts_with(b"https://") {
        8
    } else if b.starts_with(b"http://") {
        7
    } else if b.starts_with(b"www.") {
        4
    } else {
        return 0;
    };
    let tail = b[prefix..]
        .iter()
        .take_while(|&&x| x.is_ascii() && !x.is_ascii_whitespace())
        .count();
    prefix + tail
}

/// Length in bytes of the tag word (letters, digits, `_`, and `.` inside) starting at `i`,
/// or `None` if there is none.
fn tag_len(s: &str, i: usize) -> Option<usize> {
    let rest = s.get(i..)?;
    let mut end = 0;
    for (j, c) in rest.char_indices() {
        if is_tag_char(c) {
            end = j + c.len_utf8();
        } else if c == '.' && end == j && end > 0 {
            // A dot inside a handle (`@john.doe`) is kept; a trailing one is not.
            continue;
        } else {
            break;
        }
    }
    (end > 0).then_some(end)
}

/// Pass 1: NFKC, lookalike folding, lowercasing, Traditional -> Simplified.
fn map_chars(text: &str, out: &mut String, t2s: bool) {
    if text.is_ascii() {
        // ASCII is its own NFKC form, has no lookalikes and no Han: lowercase only.
        out.push_str(text);
        out.make_ascii_lowercase();
        return;
    }
    out.reserve(text.len());
    let bytes = text.as_bytes();
    // The last fast character: its byte range in `text` and the length of `out` before it
    // was mapped, so that a following slow run can take it back (it may compose with a
    // combining mark). This is `nfkc::nfkc_for_each` with the mapping inlined; a property
    // test checks that the two agree.
    let mut last_fast: Option<(usize, usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            // A run of ASCII, copied and lowercased at once.
            let run = bytes[i..].iter().take_while(|c| c.is_ascii()).count();
            let start = out.len();
            out.push_str(&text[i..i + run]);
            if let Some(s) = out.get_mut(start..) {
                s.make_ascii_lowercase();
            }
            last_fast = Some((i + run - 1, i + run, start + run - 1));
            i += run;
            continue;
        }
        if nfkc::han_at(bytes, i) {
            // A run of CJK Unified Ideographs (NFKC-stable, no case, no lookalikes), copied
            // as bytes except where T2S folds a character.
            // `copied`: where the bytes not yet copied start; `last_at`: where the last
            // character folded by T2S landed in `out` (it is `last_fast` if it ends the run).
            let (mut copied, mut j, mut last_at) = (i, i, 0);
            while let Some(&[b0, b1, b2]) = bytes.get(j..j + 3) {
                if !nfkc::han_lead(b0, b1) {
                    break;
                }
                if t2s && tables::han_folds(b0, b1, b2) {
                    let c = char::from_u32(nfkc::decode3(bytes, j))
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    out.push_str(&text[copied..j]);
                    copied = j + 3;
                    last_at = out.len();
                    out.push(tables::t2s(c));
                }
                j += 3;
            }
            out.push_str(&text[copied..j]);
            // The run's last character: copied as it was, or folded.
            let at = if copied < j { out.len() - 3 } else { last_at };
            last_fast = Some((j - 3, j, at));
            i = j;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let len = c.len_utf8();
        if let Some(m) = nfkc::fast_map(c) {
            last_fast = Some((i, i + len, out.len()));
            map_one(m, out, t2s);
            i += len;
            continue;
        }
        // A slow run: from the fast character just before it (if adjacent) to the next fast
        // character, through full NFKC.
        let start = match last_fast.take() {
            Some((s, e, olen)) if e == i => {
                out.truncate(olen);
                s
            }
            _ => i,
        };
        let mut end = i + len;
        while let Some(c) = text[end..].chars().next() {
            if nfkc::fast_map(c).is_some() {
                break;
            }
            end += c.len_utf8();
        }
        for c in text[start..end].nfkc() {
            map_one(c, out, t2s);
        }
        i = end;
    }
}

/// Maps one NFKC character: lookalikes, lowercase, T2S.
#[inline]
fn map_one(c: char, out: &mut String, t2s: bool) {
    let u = c as u32;
    if u < 0x80 {
        out.push(c.to_ascii_lowercase());
    } else if (0x3400..=0x9FFF).contains(&u) {
        // CJK: no case, no lookalikes; only the T2S fold.
        out.push(if t2s { tables::t2s(c) } else { c });
    } else if let Some(l) = tables::lookalike(c) {
        out.push(l);
    } else if tables::map_same(c) {
        // No case mapping and no T2S fold (most punctuation, symbols and emoji).
        out.push(c);
    } else {
        for l in c.to_lowercase() {
            match tables::lookalike(l) {
                Some(m) => out.push(m),
                None => out.push(if t2s { tables::t2s(l) } else { l }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
