//! Pass 1 of normalization: each character mapped through NFKC (with the fast path of
//! [`nfkc`](super::nfkc)), lookalike folding, lowercasing and Traditional -> Simplified
//! Chinese. The output is the *mapped text* that pass 2 ([`clean`](super::clean)) cleans and splits.

use unicode_normalization::UnicodeNormalization;

use super::{nfkc, tables};

/// Pass 1: NFKC, lookalike folding, lowercasing, Traditional -> Simplified.
pub(super) fn map_chars(text: &str, out: &mut String, t2s: bool) {
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
pub(super) fn map_one(c: char, out: &mut String, t2s: bool) {
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
