//! Evidence: the passages two texts share, as offsets into the two *original* texts.
//!
//! [`Tokenized`] runs the normalizer while remembering where each normalized token came
//! from: pass 1 (mapping) is redone chunk by chunk, a chunk being a stable NFKC boundary
//! character and the non-boundary characters after it (exactly the pieces
//! `map_chars` normalizes separately), and pass 2 (cleaning) is the
//! normalizer's own loop with source tracking turned on. The tokens are the ones
//! [`Normalizer::normalize`] gives (a property test checks it); each carries the span of
//! original characters (Unicode scalar values, end-exclusive) of the chunks it came from.
//!
//! [`align`] then finds the maximal runs of equal tokens in the two sequences (every pair of
//! equal tokens is visited once, so a tweet pair costs a few microseconds), and picks them
//! longest first so that no token of either text is in two passages. Because the tokens are
//! compared after normalization, a Traditional-script copy, a copy with lookalike letters or
//! with a serial number still aligns. A run's ends are trimmed where a token shares an
//! original character with the token outside the run (one character such as `㍿` can give
//! several tokens), so that each reported span normalizes to exactly the run's tokens.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use xxhash_rust::xxh3::xxh3_64;

use super::clean::Track;
use super::map::map_one;
use super::{nfkc, Normalized, Normalizer};

/// One passage two texts share: end-exclusive offsets in Unicode scalar values (chars) of
/// the two original texts, and the passage as it reads in the hit's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passage {
    /// First char of the passage in the query text.
    pub query_start: u32,
    /// One past the last char of the passage in the query text.
    pub query_end: u32,
    /// First char of the passage in the hit's text.
    pub hit_start: u32,
    /// One past the last char of the passage in the hit's text.
    pub hit_end: u32,
    /// The hit's text from `hit_start` to `hit_end`.
    pub text: String,
}

/// A text's normalized tokens with the original char span of each. Reusable: keep one per
/// thread and call [`Tokenized::tokenize`] again.
#[derive(Debug, Default, Clone)]
pub struct Tokenized {
    norm: Normalized,
    /// Per byte of the mapped text: the original char span of the chunk it came from.
    origin: Vec<(u32, u32)>,
    /// Per token: its source byte range in the mapped text, then its original char span.
    src: Vec<(u32, u32)>,
    spans: Vec<(u32, u32)>,
    /// Per token: xxh3-64 of its bytes.
    hashes: Vec<u64>,
    /// Byte offset of each char of the original text, and the text's length in bytes.
    char_bytes: Vec<u32>,
}

struct Collect<'a>(&'a mut Vec<(u32, u32)>);

impl Track for Collect<'_> {
    const ON: bool = true;
    #[inline]
    fn token(&mut self, start: usize, end: usize) {
        self.0.push((start as u32, end as u32));
    }
}

impl Tokenized {
    /// A new, empty buffer.
    pub fn new() -> Tokenized {
        Tokenized::default()
    }

    /// Normalizes `text` with `normalizer`, keeping each token's original span. Texts over
    /// 4 GiB are not supported (offsets are `u32`); such a text gives no tokens.
    pub fn tokenize(&mut self, normalizer: &Normalizer, text: &str) {
        let Tokenized {
            norm,
            origin,
            src,
            spans,
            hashes,
            char_bytes,
        } = self;
        norm.mapped.clear();
        norm.text.clear();
        norm.tokens.clear();
        origin.clear();
        src.clear();
        spans.clear();
        hashes.clear();
        char_bytes.clear();
        if u32::try_from(text.len()).is_err() {
            return;
        }
        char_bytes.extend(text.char_indices().map(|(b, _)| b as u32));
        char_bytes.push(text.len() as u32);
        map_with_origins(text, normalizer.options().t2s, &mut norm.mapped, origin);
        normalizer.clean_tracked(
            &norm.mapped,
            &mut norm.text,
            &mut norm.tokens,
            &mut Collect(src),
        );
        spans.extend(src.iter().map(|&(s, e)| {
            let first = origin.get(s as usize).map_or(0, |o| o.0);
            let last = origin
                .get((e as usize).saturating_sub(1))
                .map_or(first, |o| o.1);
            (first, last.max(first))
        }));
        hashes.extend(norm.tokens().map(|t| xxh3_64(t.as_bytes())));
    }

    /// Normalizes `text` without keeping spans: enough to align it as the other text of
    /// [`core_passage_with`], whose passages are offsets into the representative only
    /// (faster: the normalizer's own loop). [`spans`](Self::spans) is then empty.
    fn tokenize_tokens_only(&mut self, normalizer: &Normalizer, text: &str) {
        self.origin.clear();
        self.src.clear();
        self.spans.clear();
        self.hashes.clear();
        self.char_bytes.clear();
        normalizer.normalize(text, &mut self.norm);
        let Tokenized { norm, hashes, .. } = self;
        hashes.extend(norm.tokens().map(|t| xxh3_64(t.as_bytes())));
    }

    /// The normalized text and tokens (the same as [`Normalizer::normalize`] gives).
    pub fn normalized(&self) -> &Normalized {
        &self.norm
    }

    /// The original char span (start, end exclusive) of each token, in token order.
    pub fn spans(&self) -> &[(u32, u32)] {
        &self.spans
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether no token is left.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn token(&self, i: usize) -> &[u8] {
        let s = self.norm.tokens[i];
        self.norm
            .text
            .as_bytes()
            .get(s.start as usize..s.end as usize)
            .unwrap_or(&[])
    }

    /// The byte range of the original text for the char span `(start, end)`.
    fn byte_range(&self, (start, end): (u32, u32)) -> Option<std::ops::Range<usize>> {
        let s = *self.char_bytes.get(start as usize)? as usize;
        let e = *self.char_bytes.get(end as usize)? as usize;
        (s <= e).then_some(s..e)
    }
}

/// Pass 1 of the normalizer, chunk by chunk, recording for each output byte the original
/// char span of its chunk. Gives the same mapped text as `map_chars` (a property test).
fn map_with_origins(text: &str, t2s: bool, out: &mut String, origin: &mut Vec<(u32, u32)>) {
    out.reserve(text.len());
    origin.reserve(text.len());
    let mut it = text.char_indices().peekable();
    let mut ci = 0u32;
    while let Some((start, c)) = it.next() {
        let first = ci;
        ci += 1;
        let mut end = start + c.len_utf8();
        // The non-boundary characters after `c` are normalized together with it.
        while let Some(&(b, d)) = it.peek() {
            if nfkc::fast_map(d).is_some() {
                break;
            }
            end = b + d.len_utf8();
            ci += 1;
            it.next();
        }
        let before = out.len();
        match nfkc::fast_map(c) {
            Some(m) if end == start + c.len_utf8() => map_one(m, out, t2s),
            _ => text
                .get(start..end)
                .unwrap_or("")
                .nfkc()
                .for_each(|m| map_one(m, out, t2s)),
        }
        origin.resize(origin.len() + (out.len() - before), (first, ci));
    }
}

/// The passages `query` and `hit` share, longest first (then by position in the query):
/// maximal runs of at least `min_tokens` equal tokens, no token in two passages. Offsets
/// are chars of the original texts; `hit_text` must be the text `hit` was made from (a
/// mismatch gives wrong or no passages, never a panic).
pub fn align(
    query: &Tokenized,
    hit: &Tokenized,
    hit_text: &str,
    min_tokens: usize,
) -> Vec<Passage> {
    align_counted(query, hit, hit_text, min_tokens)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// [`align`] with each passage's length in aligned tokens (what "longest" is measured in:
/// a passage's text tokenized on its own can differ at its ends, where a URL or mention
/// start depends on the characters around it).
pub(crate) fn align_counted(
    query: &Tokenized,
    hit: &Tokenized,
    hit_text: &str,
    min_tokens: usize,
) -> Vec<(usize, Passage)> {
    let mut out: Vec<(usize, Passage)> = Vec::new();
    let mut bufs = AlignBufs::default();
    aligned_runs(query, hit, min_tokens, &mut bufs);
    for &(qs, qe, hs, he) in &bufs.out {
        let q = (query.spans[qs].0, query.spans[qe - 1].1);
        let h = (hit.spans[hs].0, hit.spans[he - 1].1);
        let Some(text) = hit.byte_range(h).and_then(|r| hit_text.get(r)) else {
            continue;
        };
        out.push((
            qe - qs,
            Passage {
                query_start: q.0,
                query_end: q.1,
                hit_start: h.0,
                hit_end: h.1,
                text: text.to_string(),
            },
        ));
    }
    out.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.query_start.cmp(&y.1.query_start)));
    out
}

/// Reusable buffers of [`aligned_runs`].
#[derive(Debug, Default, Clone)]
struct AlignBufs {
    by_hash: Vec<(u64, u32)>,
    heap: std::collections::BinaryHeap<(u32, std::cmp::Reverse<(u32, u32)>)>,
    qused: Vec<bool>,
    hused: Vec<bool>,
    chosen: Vec<(usize, usize, usize)>,
    /// The runs found.
    out: Vec<(usize, usize, usize, usize)>,
}

/// The token runs [`align`] reports, into `bufs.out`, as `(query start, query end, hit
/// start, hit end)` token indices (end-exclusive, equal lengths), each at least
/// `min_tokens` long, trimmed so that no end token shares an original character with the
/// token outside the run; no token of either text is in two runs. In no particular order.
fn aligned_runs(query: &Tokenized, hit: &Tokenized, min_tokens: usize, bufs: &mut AlignBufs) {
    let AlignBufs {
        by_hash,
        heap,
        qused,
        hused,
        chosen,
        out,
    } = bufs;
    out.clear();
    let min_tokens = min_tokens.max(1);
    let (n, m) = (query.hashes.len(), hit.hashes.len());
    if n < min_tokens || m < min_tokens {
        return;
    }
    // The hit's tokens by hash, for the pairs of equal tokens.
    by_hash.clear();
    by_hash.extend(hit.hashes.iter().enumerate().map(|(j, &h)| (h, j as u32)));
    by_hash.sort_unstable();
    let eq =
        |i: usize, j: usize| query.hashes[i] == hit.hashes[j] && query.token(i) == hit.token(j);
    // Maximal runs: start at each equal pair whose predecessors differ, extend forward.
    // Longest first; a run that overlaps a chosen one is cut to its longest free part
    // and put back.
    heap.clear();
    for i in 0..n {
        let h = query.hashes[i];
        let from = by_hash.partition_point(|&(x, _)| x < h);
        for &(x, j) in &by_hash[from..] {
            if x != h {
                break;
            }
            let j = j as usize;
            if !eq(i, j) || (i > 0 && j > 0 && eq(i - 1, j - 1)) {
                continue;
            }
            let mut len = 1;
            while i + len < n && j + len < m && eq(i + len, j + len) {
                len += 1;
            }
            if len >= min_tokens {
                heap.push((len as u32, std::cmp::Reverse((i as u32, j as u32))));
            }
        }
    }
    qused.clear();
    qused.resize(n, false);
    hused.clear();
    hused.resize(m, false);
    chosen.clear();
    while let Some((len, std::cmp::Reverse((i, j)))) = heap.pop() {
        let (len, i, j) = (len as usize, i as usize, j as usize);
        let free = |k: usize| !qused[i + k] && !hused[j + k];
        if (0..len).all(free) {
            (i..i + len).for_each(|k| qused[k] = true);
            (j..j + len).for_each(|k| hused[k] = true);
            chosen.push((len, i, j));
            continue;
        }
        // The longest free part.
        let (mut best, mut at, mut cur) = (0, 0, 0);
        for k in 0..len {
            if free(k) {
                cur += 1;
                if cur > best {
                    best = cur;
                    at = k + 1 - cur;
                }
            } else {
                cur = 0;
            }
        }
        if best >= min_tokens {
            heap.push((
                best as u32,
                std::cmp::Reverse(((i + at) as u32, (j + at) as u32)),
            ));
        }
    }
    for &(len, i, j) in chosen.iter() {
        // Trim tokens that share an original character with the token outside the run.
        let (mut a, mut b) = (0, len);
        // (A text tokenized without spans is not trimmed.)
        let shares = |t: &Tokenized, x: usize, y: usize| {
            t.spans
                .get(y)
                .zip(t.spans.get(x))
                .is_some_and(|(y, x)| y.0 < x.1)
        };
        while a < b
            && ((i + a > 0 && shares(query, i + a - 1, i + a))
                || (j + a > 0 && shares(hit, j + a - 1, j + a)))
        {
            a += 1;
        }
        while a < b
            && ((i + b < n && shares(query, i + b - 1, i + b))
                || (j + b < m && shares(hit, j + b - 1, j + b)))
        {
            b -= 1;
        }
        if b - a < min_tokens {
            continue;
        }
        out.push((i + a, i + b, j + a, j + b));
    }
}

/// The passage most of a group of texts share ([`core_passage`]): end-exclusive offsets in
/// Unicode scalar values (chars) of the representative text, the passage as it reads there,
/// and how many of the texts' posts share it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreText {
    /// First char of the passage in the representative text.
    pub start: u32,
    /// One past the last char of the passage in the representative text.
    pub end: u32,
    /// The representative text from `start` to `end`.
    pub text: String,
    /// Posts (of those sampled) whose text holds the whole passage.
    pub posts: usize,
    /// Posts sampled: the representative's and the other texts' weights.
    pub sampled: usize,
}

/// The core text of a group of texts: the longest passage of `rep` that more than half of
/// the group's posts share whole. `rep` stands for `rep_posts` posts, each of `others` for
/// its weight in posts. Each other text is aligned with `rep` ([`align`]'s runs of at least
/// `min_tokens` equal normalized tokens); a text shares a passage when one of its runs
/// covers all of the passage's tokens. `None` when no passage of `min_tokens` tokens is
/// shared by more than half of the posts (or `rep` has fewer tokens).
///
/// For each start token the passage's end is the furthest point that a majority of the
/// posts' runs reach from there; the longest such passage wins (ties: the earliest). Cost:
/// one alignment per other text, plus tokens × texts.
pub fn core_passage(
    normalizer: &Normalizer,
    rep: &str,
    rep_posts: usize,
    others: &[(&str, usize)],
    min_tokens: usize,
) -> Option<CoreText> {
    core_passage_with(
        &mut CoreScratch::default(),
        normalizer,
        rep,
        rep_posts,
        others,
        min_tokens,
    )
}

/// Reusable buffers of [`core_passage_with`]: keep one per thread.
#[derive(Debug, Default, Clone)]
pub struct CoreScratch {
    rep: Tokenized,
    other: Tokenized,
    /// Per other text and token of the representative: where the run covering it ends
    /// (0: none).
    ends: Vec<u32>,
    at: Vec<(u32, usize)>,
    check: Normalized,
    align: AlignBufs,
}

/// [`core_passage`] with caller-owned buffers.
pub fn core_passage_with(
    scratch: &mut CoreScratch,
    normalizer: &Normalizer,
    rep: &str,
    rep_posts: usize,
    others: &[(&str, usize)],
    min_tokens: usize,
) -> Option<CoreText> {
    let min_tokens = min_tokens.max(1);
    let CoreScratch {
        rep: r,
        other: t,
        ends,
        at,
        check,
        align,
    } = scratch;
    r.tokenize(normalizer, rep);
    let n = r.len();
    if n < min_tokens {
        return None;
    }
    let total: usize = rep_posts + others.iter().map(|o| o.1).sum::<usize>();
    let aligned = others;
    ends.clear();
    ends.resize(n * aligned.len(), 0);
    for (k, &(text, _)) in aligned.iter().enumerate() {
        t.tokenize_tokens_only(normalizer, text);
        let row = &mut ends[k * n..(k + 1) * n];
        aligned_runs(r, t, min_tokens, align);
        for &(qs, qe, _, _) in &align.out {
            row[qs..qe].iter_mut().for_each(|e| *e = qe as u32);
        }
    }
    let reach = |k: usize, s: usize| ends[k * n + s] as usize;
    let mut best: Option<(usize, usize)> = None;
    for s in 0..n {
        at.clear();
        at.push((n as u32, rep_posts));
        at.extend(
            (0..aligned.len())
                .filter(|&k| reach(k, s) > s)
                .map(|k| (reach(k, s) as u32, aligned[k].1)),
        );
        at.sort_unstable_by_key(|a| std::cmp::Reverse(a.0));
        let mut w = 0usize;
        for &(e, weight) in at.iter() {
            w += weight;
            if 2 * w > total {
                let e = e as usize;
                if best.is_none_or(|(bs, be)| e - s > be - bs) {
                    best = Some((s, e));
                }
                break;
            }
        }
    }
    let (mut s, mut e) = best?;
    // Trim tokens that share an original character with the token outside the passage.
    let shares = |x: usize, y: usize| r.spans[y].0 < r.spans[x].1;
    while s < e && s > 0 && shares(s - 1, s) {
        s += 1;
    }
    while s < e && e < n && shares(e - 1, e) {
        e -= 1;
    }
    // The passage's text read on its own must give exactly the run's tokens: where the
    // characters around it decide a token (a URL's start, a character normalized together
    // with the one before it), an end token is dropped until it does.
    let text = loop {
        if e - s < min_tokens {
            return None;
        }
        let span = (r.spans[s].0, r.spans[e - 1].1);
        let text = r.byte_range(span).and_then(|b| rep.get(b))?;
        normalizer.normalize(text, check);
        let mut got = check.tokens();
        if (s..e).all(|k| got.next().map(str::as_bytes) == Some(r.token(k))) && got.next().is_none()
        {
            break text;
        }
        if check.tokens().next().map(str::as_bytes) != Some(r.token(s)) {
            s += 1;
        } else {
            e -= 1;
        }
    };
    let posts = rep_posts
        + (0..aligned.len())
            .filter(|&k| reach(k, s) >= e)
            .map(|k| aligned[k].1)
            .sum::<usize>();
    Some(CoreText {
        start: r.spans[s].0,
        end: r.spans[e - 1].1,
        text: text.to_string(),
        posts,
        sampled: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::NormalizerOptions;
    use proptest::prelude::*;

    fn tok(s: &str) -> Tokenized {
        let mut t = Tokenized::new();
        t.tokenize(&Normalizer::default(), s);
        t
    }

    fn substr(s: &str, a: u32, b: u32) -> String {
        s.chars().skip(a as usize).take((b - a) as usize).collect()
    }

    fn tokens_of(s: &str) -> Vec<String> {
        let mut n = Normalized::new();
        Normalizer::default().normalize(s, &mut n);
        n.tokens().map(str::to_string).collect()
    }

    /// Checks the two evidence properties for one pair and returns the passages.
    fn check(q: &str, h: &str, min: usize) -> Vec<Passage> {
        let (tq, th) = (tok(q), tok(h));
        let counted = align_counted(&tq, &th, h, min);
        for w in counted.windows(2) {
            assert!(w[0].0 >= w[1].0, "longest first: {counted:?}");
        }
        let ps: Vec<Passage> = counted.into_iter().map(|(_, p)| p).collect();
        let (nq, nh) = (q.chars().count() as u32, h.chars().count() as u32);
        for p in &ps {
            assert!(p.query_start < p.query_end && p.query_end <= nq, "{p:?}");
            assert!(p.hit_start < p.hit_end && p.hit_end <= nh, "{p:?}");
            let a = tokens_of(&substr(q, p.query_start, p.query_end));
            let b = tokens_of(&substr(h, p.hit_start, p.hit_end));
            assert_eq!(a, b, "{q:?} / {h:?}: {p:?}");
            assert!(a.len() >= min);
            assert_eq!(p.text, substr(h, p.hit_start, p.hit_end));
        }
        ps
    }

    #[test]
    fn traditional_lookalike_and_serial_copies_align() {
        let q = "這個政府一直在說謊，大家要知道真相！";
        let h = "转发：这个政府一直在说谎，大家要知道真相 #0457";
        let ps = check(q, h, 3);
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].query_start, 0);
        assert_eq!(ps[0].query_end, 17);
        assert_eq!(ps[0].text, "这个政府一直在说谎，大家要知道真相");
        // Cyrillic 'а', 'е', 'о' in the copy; a serial number glued to a word.
        let q = "Wake up people, the vaccine is a lie and they know it";
        let h = "No. 33: wаke up pеople, the vaccine is a lie, they knоw it2023";
        let ps = check(q, h, 3);
        assert_eq!(ps.len(), 2, "{ps:?}");
        assert_eq!(ps[0].text, "wаke up pеople, the vaccine is a lie");
        assert_eq!((ps[0].query_start, ps[0].query_end), (0, 36));
        // The digits glued after the last letter belong to no token.
        assert_eq!(ps[1].text, "they knоw it");
    }

    #[test]
    fn offsets_are_chars_of_the_original() {
        // Emoji (deleted), a URL and full-width letters before the passage.
        let q = "😀😀 https://t.co/x ＨＥＬＬＯ big world out there";
        let h = "hello big world out";
        let ps = check(q, h, 2);
        assert_eq!(ps.len(), 1);
        assert_eq!(
            substr(q, ps[0].query_start, ps[0].query_end),
            "ＨＥＬＬＯ big world out"
        );
        assert_eq!((ps[0].hit_start, ps[0].hit_end), (0, 19));
    }

    #[test]
    fn no_passage_below_the_minimum_or_in_empty_texts() {
        assert!(check("a b c", "a b x", 3).is_empty());
        assert!(check("", "a b c", 1).is_empty());
        assert!(check("123 !!!", "a b c", 1).is_empty());
        // A text the tokens were not made from: no panic.
        let (q, h) = (tok("one two three four"), tok("one two three four"));
        let _ = align(&q, &h, "", 2);
        let _ = align(&q, &h, "ü", 2);
    }

    #[test]
    fn a_char_giving_several_tokens_is_trimmed_at_the_ends() {
        // '㍿' is 株式会社 (four tokens from one char).
        let ps = check("株式甲乙丙丁", "㍿甲乙丙丁", 2);
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].text, "甲乙丙丁");
        let ps = check("株式会社甲乙", "㍿甲乙", 2);
        assert_eq!(ps[0].text, "㍿甲乙");
    }

    /// A case proptest found: a passage that starts at `www` tokenizes on its own into a
    /// different count than it aligned with; passages stay ordered by aligned tokens.
    #[test]
    fn passages_cut_inside_url_context_stay_ordered() {
        let shared = "https://t\u{20000}co/x www a\u{b}b ";
        let q = format!("{shared} https://t\u{2e00}co/x www\u{323b0}a[b www\0a\u{a1}b ");
        let h = format!("https://t\u{20f1}co/x www:a\0b www\u{3400}aab {shared}");
        check(&q, &h, 1);
        check(&h, &q, 1);
    }

    #[test]
    fn core_passage_is_the_longest_passage_most_posts_share() {
        let nz = Normalizer::default();
        let rep = "A b c d e f g h";
        let others = [("x a b c d e y", 1), ("a b c d e f z", 1), ("q r s", 1)];
        let c = core_passage(&nz, rep, 1, &others, 3).expect("a core");
        assert_eq!((c.start, c.end, c.text.as_str()), (0, 9, "A b c d e"));
        assert_eq!((c.posts, c.sampled), (3, 4));
        // The representative's weight alone is a majority: its whole text.
        let c = core_passage(&nz, rep, 5, &others, 3).expect("a core");
        assert_eq!(c.text, rep);
        assert_eq!((c.posts, c.sampled), (5, 8));
        // Nothing shared by a majority, or too few tokens.
        assert_eq!(core_passage(&nz, rep, 1, &[("q r s", 2)], 3), None);
        assert_eq!(core_passage(&nz, "a b", 1, &[], 3), None);
        assert_eq!(core_passage(&nz, "", 1, &[("", 1)], 1), None);
        // Traditional script and lookalike letters still share the passage.
        let c = core_passage(
            &nz,
            "转发：这个政府一直在说谎 #1",
            1,
            &[("這個政府一直在說謊！", 1), ("这个政府一直在", 1)],
            3,
        )
        .expect("a core");
        assert_eq!(c.text, "这个政府一直在说谎");
        assert_eq!((c.posts, c.sampled), (2, 3));
        // A passage is cut where the text around it decides a token: 't' belongs to the URL
        // in the whole text, but is a word of its own in "t𠀀co" read alone.
        let c = core_passage(&nz, "https://t𠀀co/x and more words", 1, &[], 1).expect("a core");
        assert_eq!(tokens_of(&c.text), ["co", "x", "and", "more", "words"]);
    }

    /// The longest common run of tokens, by brute force.
    fn naive_longest(a: &[String], b: &[String]) -> usize {
        let mut best = 0;
        for i in 0..a.len() {
            for j in 0..b.len() {
                let mut k = 0;
                while i + k < a.len() && j + k < b.len() && a[i + k] == b[j + k] {
                    k += 1;
                }
                best = best.max(k);
            }
        }
        best
    }

    const ALPHABET: &str = "(\\PC|[a-dA-D中國這个這個說谎說謊 ,.!#@\u{301}\u{3099}ＡＢ，\u{3000}ﬁ①㍿㏂Ωаеο0-9😀]|https://t.co/x |www.a.b )";

    fn texts(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("{ALPHABET}{{0,{max}}}")).expect("valid regex")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Tokenized gives the normalizer's tokens, and spans lie inside the text, in order.
        #[test]
        fn tokens_equal_the_normalizer_and_spans_are_inside(
            s in texts(40),
            t2s in proptest::bool::ANY,
            keep in proptest::bool::ANY,
        ) {
            let opts = NormalizerOptions {
                t2s,
                hashtags: if keep { crate::text::Hashtags::KeepWords } else { crate::text::Hashtags::Remove },
            };
            let nz = Normalizer::new(opts);
            let mut n = Normalized::new();
            nz.normalize(&s, &mut n);
            let mut t = Tokenized::new();
            t.tokenize(&nz, &s);
            prop_assert_eq!(t.normalized().text(), n.text());
            prop_assert_eq!(t.normalized().spans(), n.spans());
            let chars = s.chars().count() as u32;
            for w in t.spans().windows(2) {
                prop_assert!(w[0].0 <= w[1].0);
            }
            for &(a, b) in t.spans() {
                prop_assert!(a < b && b <= chars);
            }
        }

        /// Every passage's two spans normalize to the same tokens; spans lie inside the texts.
        #[test]
        fn passages_normalize_to_the_same_tokens(
            a in texts(30),
            shared in texts(30),
            b in texts(30),
            c in texts(30),
            min in 1usize..5,
        ) {
            let q = format!("{a}{shared}{b}");
            let h = format!("{c}{shared}");
            check(&q, &h, min);
            check(&h, &q, min);
        }

        /// A core passage lies inside the representative on char boundaries and its tokens
        /// are a run of the tokens of more than half of the posts.
        #[test]
        fn core_passage_is_shared_by_most_posts(
            rep in texts(30),
            parts in proptest::collection::vec((texts(20), texts(20), 1usize..4, proptest::bool::ANY), 0..6),
            rep_posts in 1usize..4,
            min in 1usize..4,
        ) {
            let nz = Normalizer::default();
            let made: Vec<(String, usize)> = parts
                .iter()
                .map(|(a, b, w, keep)| {
                    let mid = if *keep { rep.clone() } else { String::new() };
                    (format!("{a}{mid}{b}"), *w)
                })
                .collect();
            let others: Vec<(&str, usize)> = made.iter().map(|(t, w)| (t.as_str(), *w)).collect();
            let Some(c) = core_passage(&nz, &rep, rep_posts, &others, min) else {
                return Ok(());
            };
            let chars = rep.chars().count() as u32;
            prop_assert!(c.start < c.end && c.end <= chars);
            prop_assert_eq!(&c.text, &substr(&rep, c.start, c.end));
            let core = tokens_of(&c.text);
            prop_assert!(core.len() >= min);
            let holds = |t: &str| {
                let toks = tokens_of(t);
                toks.windows(core.len()).any(|w| w == core.as_slice())
            };
            let mut w = if holds(&rep) { rep_posts } else { 0 };
            w += others.iter().filter(|o| holds(o.0)).map(|o| o.1).sum::<usize>();
            prop_assert!(2 * w > c.sampled, "{:?} held by {} of {}", c, w, c.sampled);
            prop_assert!(w >= c.posts);
        }

        /// On plain words the longest passage is the longest common run of tokens.
        #[test]
        fn longest_passage_is_the_longest_common_run(
            q in proptest::collection::vec("[abc]", 0..40),
            h in proptest::collection::vec("[abc]", 0..40),
        ) {
            let (qs, hs) = (q.join(" "), h.join(" "));
            let ps = check(&qs, &hs, 1);
            let want = naive_longest(&q, &h);
            let got = ps.first().map_or(0, |p| tokens_of(&p.text).len());
            prop_assert_eq!(got, want);
            // No token of either text is in two passages.
            let total: usize = ps.iter().map(|p| tokens_of(&p.text).len()).sum();
            prop_assert!(total <= q.len().min(h.len()));
        }
    }
}
