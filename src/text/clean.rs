//! Pass 2 of normalization for any text: URLs, mentions and hashtags removed, characters
//! classified (word, token by itself, deleted, separator) and tokens collected. ASCII texts
//! take the faster path of [`ascii`](super::ascii), which gives the same result.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

use super::ascii::Finders;
use super::{nfkc, tables, Hashtags, Normalized, Normalizer, Span};

/// Receives the source byte range of each token [`Normalizer::clean_tracked`] pushes.
pub(super) trait Track {
    /// Whether tracking is on (false compiles the bookkeeping away).
    const ON: bool;
    /// The token just pushed came from `src[start..end]`.
    fn token(&mut self, start: usize, end: usize);
}

/// No tracking: the normalizer's own path.
pub(super) struct NoTrack;

impl Track for NoTrack {
    const ON: bool = false;
    #[inline(always)]
    fn token(&mut self, _: usize, _: usize) {}
}

/// How the cleaning pass treats a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
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
pub(super) fn classify(c: char) -> Class {
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
pub(super) fn is_tag_char(c: char) -> bool {
    c == '_' || matches!(classify(c), Class::Word | Class::CharToken) || c.is_numeric()
}

/// The longest text the ASCII cleaning loop takes (bytes); longer ones go to `clean_general`.
const ASCII_LOOP_MAX: usize = 64 << 10;

impl Normalizer {
    /// Pass 2: remove URLs, mentions and hashtags; delete, split and collect tokens.
    pub(super) fn clean(&self, out: &mut Normalized) {
        let Normalized {
            mapped,
            text,
            tokens,
            finders,
        } = out;
        // The ASCII loop sizes its buffers for the worst case (a token per byte, 8 bytes
        // each), which for a record of tens of megabytes is ten times the record: long texts
        // take the general loop, which gives the same result (property tests).
        if mapped.is_ascii() && mapped.len() <= ASCII_LOOP_MAX {
            let finders = finders.get_or_insert_with(Finders::new);
            self.clean_ascii(mapped, text, tokens, finders);
        } else {
            self.clean_general(mapped, text, tokens);
        }
    }

    /// Pass 2 for any text: a loop over characters.
    pub(super) fn clean_general(&self, src: &str, text: &mut String, tokens: &mut Vec<Span>) {
        self.clean_tracked(src, text, tokens, &mut NoTrack);
    }

    /// [`clean_general`](Self::clean_general) that also reports, for each token it pushes,
    /// the byte range of `src` the token came from (for [`align`](super::align)). With
    /// [`NoTrack`] the tracking compiles away.
    pub(super) fn clean_tracked<T: Track>(
        &self,
        src: &str,
        text: &mut String,
        tokens: &mut Vec<Span>,
        track: &mut T,
    ) {
        let bytes = src.as_bytes();
        // The byte range of `src` covered by the word being built (tracking only).
        let (mut word_src_start, mut word_src_end) = (0usize, 0usize);
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
                    if T::ON {
                        track.token(word_src_start, word_src_end);
                    }
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
                        if T::ON {
                            word_src_start = i;
                        }
                    }
                    // The letter and the rest of its run in one copy. An 'h' ends the run:
                    // it may start a URL, which the loop checks.
                    let run = 1 + bytes[i + 1..]
                        .iter()
                        .take_while(|&&c| c.is_ascii_alphabetic() && c != b'h')
                        .count();
                    text.push_str(&src[i..i + run]);
                    if T::ON {
                        word_src_end = i + run;
                    }
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
                if T::ON {
                    (i..end).step_by(3).for_each(|at| track.token(at, at + 3));
                }
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
                        if T::ON {
                            word_src_start = i;
                        }
                    }
                    text.push(c);
                    if T::ON {
                        word_src_end = i + len;
                    }
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
                    if T::ON {
                        track.token(i, i + len);
                    }
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
    pub(super) fn special_len(&self, src: &str, i: usize) -> usize {
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
    pub(super) fn hashtag(&self, src: &str, i: usize) -> usize {
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

/// The class of the character ending at byte `i` of `s`.
pub(super) fn classify_prev(s: &str, i: usize) -> Class {
    s[..i]
        .chars()
        .next_back()
        .map_or(Class::Separator, classify)
}

/// Length in bytes of a URL starting at `i`, or 0. A URL runs to whitespace or the first
/// non-ASCII character (Chinese text is often glued to a link).
pub(super) fn url_len(s: &str, i: usize) -> usize {
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
pub(super) fn tag_len(s: &str, i: usize) -> Option<usize> {
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
