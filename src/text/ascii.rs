//! Pass 2 of normalization for an ASCII text (most English posts): SIMD searches find where
//! a URL, mention or hashtag may start, and the bytes between them go through a word loop
//! with no branch on the bytes' classes. Same result as [`clean`](super::clean) (a property
//! test says so).

use super::{Normalizer, Span};

/// The substring searchers of [`Normalizer::clean_ascii`].
#[derive(Debug, Clone)]
pub(super) struct Finders {
    http: memchr::memmem::Finder<'static>,
    www: memchr::memmem::Finder<'static>,
}

impl Finders {
    pub(super) fn new() -> Finders {
        Finders {
            http: memchr::memmem::Finder::new(b"http"),
            www: memchr::memmem::Finder::new(b"www."),
        }
    }
}

impl Normalizer {
    /// [`clean`](Self::clean) for an ASCII text (most English posts), with the same result
    /// as [`clean_general`](Self::clean_general) (a property test says so). The places
    /// where a URL, mention or hashtag may start (`http`, `www.`, `@`, `#`) are found with
    /// SIMD searches first; the bytes between them go through a loop with no branch on the
    /// bytes' classes (branches on where words end would be mispredicted once a word).
    pub(super) fn clean_ascii(
        &self,
        src: &str,
        text: &mut String,
        tokens: &mut Vec<Span>,
        finders: &Finders,
    ) {
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
}

/// The state of [`Normalizer::clean_ascii`]'s word loop: what `clean_general` keeps in
/// `text.len()`, `word_start` and `gap`.
#[derive(Debug, Default)]
pub(super) struct AsciiWords {
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
    pub(super) fn plain(&mut self, seg: &[u8], buf: &mut [u8], tokens: &mut [Span]) {
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
    pub(super) fn plain_bytes(&mut self, seg: &[u8], buf: &mut [u8], tokens: &mut [Span]) {
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
    pub(super) fn end_word(&mut self, tokens: &mut [Span]) {
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
pub(super) fn letter_digit_masks(block: &[u8]) -> (u64, u64) {
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
pub(super) fn letter_digit_bytes(x: u64) -> (u64, u64) {
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
pub(super) fn gather_high_bits(v: u64) -> u64 {
    v.wrapping_mul(0x0002_0408_1020_4081) >> 56
}

/// How many bytes [`copy_run`] may write past a run (and `buf` must have room for).
pub(super) const COPY: usize = 16;

/// Copies `src[start..start + len]` into `buf` at `pos`: a run of up to sixteen bytes as one
/// fixed-size copy where `src` and `buf` have sixteen bytes there (the bytes past the run are
/// overwritten later or cut off), else exactly.
#[inline]
pub(super) fn copy_run(src: &[u8], start: usize, len: usize, buf: &mut [u8], pos: usize) {
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
pub(super) struct Triggers<'a> {
    bytes: &'a [u8],
    finders: &'a Finders,
    tag: usize,
    http: usize,
    www: usize,
}

impl<'a> Triggers<'a> {
    pub(super) fn new(bytes: &'a [u8], finders: &'a Finders) -> Triggers<'a> {
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

    pub(super) fn find_tag(&self, from: usize) -> usize {
        let rest = self.bytes.get(from..).unwrap_or_default();
        memchr::memchr2(b'@', b'#', rest).map_or(self.bytes.len(), |j| from + j)
    }

    pub(super) fn find(&self, from: usize, finder: &memchr::memmem::Finder<'_>) -> usize {
        let rest = self.bytes.get(from..).unwrap_or_default();
        finder.find(rest).map_or(self.bytes.len(), |j| from + j)
    }

    /// The first place at or after `i` (the text's length if none).
    pub(super) fn next(&mut self, i: usize) -> usize {
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
