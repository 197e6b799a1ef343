//! Lookups: a text (or an indexed post) in, the similar posts out, best first.
//!
//! A query is fingerprinted with the index's parameters, its band keys are probed in every
//! segment, candidates are verified on their 8-bit signatures (and settled by exact
//! Jaccard similarity near the threshold), then filtered, ordered and cut to the limit.

use rayon::prelude::*;
use serde::Serialize;

use super::segment::{Run, Segment, TextCache};

mod rank;
use super::{Index, PostAddr};
use crate::error::{Error, Result};
use crate::fingerprint::{FingerprintParams, Scratch};
use crate::minhash::{
    bbit_estimate, equal_bytes, estimate_margin, intersection_len, jaccard, to_bbit, HashSet64,
};
use crate::text::align::{align, Passage, Tokenized};
use rank::{rank, LabelFilter, Matched, RankBuffers};

/// The buffers of one lookup, reused by the next through the caller's [`Scratch`]: a
/// lookup then allocates only for the hits it returns.
#[derive(Debug, Default, Clone)]
pub(crate) struct LookupBuffers {
    keys: Vec<u64>,
    sig: Vec<u8>,
    cands: Vec<u32>,
    seen: Vec<u32>,
    /// One byte per id of a dense candidate list's span ([`dedup`]).
    marks: Vec<u8>,
    /// Each candidate's signature bytes equal to the query's.
    equal: Vec<u32>,
    /// Each segment's band runs ([`super::Segment::probe_runs`]), and the shortest.
    runs: Vec<Vec<Run>>,
    picked: Vec<Run>,
    verified: Vec<(u32, f64, Option<f64>)>,
    /// Each verified candidate's place among its segment's candidates.
    verified_at: Vec<u32>,
    /// Candidates whose estimate is too close to the threshold to tell, settled (or not:
    /// [`Index::cut_filled_at_one`]) once every segment is verified: (segment, place among
    /// its candidates, content, estimate).
    pending: Vec<(usize, u32, u32, f64)>,
    matched: Vec<Matched>,
    /// Each matched content's (segment, place among its candidates), which orders
    /// `matched` as verifying the candidates one after another would.
    matched_at: Vec<u64>,
    /// The query's shingle set hashed, and a work table, for settling candidates.
    query_set: HashSet64,
    seen_set: HashSet64,
    rank: RankBuffers,
    /// Candidates per count of equal signature bytes ([`Index::cut_floor`]).
    counts: Vec<u32>,
    /// The shingle sets of contents settled exactly by earlier lookups.
    memo: ShingleMemo,
}

/// The shingle hashes a [`ShingleMemo`] holds at most (8 MiB), and the most one content may
/// add (a longer text is not kept).
const MEMO_HASHES: usize = 1 << 20;
const MEMO_ENTRY_HASHES: usize = 1 << 14;

/// Bits of the [`ShingleMemo`]'s record of contents settled once (128 KiB).
const MEMO_ONCE_BITS: usize = 1 << 20;

/// The distinct shingle hashes of the contents that earlier lookups through the same
/// [`Scratch`] settled exactly more than once, by segment (the checksum of its `sigs`
/// file, which holds every content's hash in content order) and content. A campaign's
/// lookups settle the same near-threshold variants again and again; the memo spares each
/// repeat decoding, normalizing and shingling its text, and gives the same similarity to
/// the bit. A content settled for the first time is only marked in a bit set: keeping
/// every set made lookups that settle ever new contents slower (the memo's writes evict
/// the index's lines). Emptied when full or when the fingerprint parameters change.
#[derive(Debug, Default, Clone)]
struct ShingleMemo {
    params: Option<FingerprintParams>,
    at: std::collections::HashMap<u128, (u32, u32), std::hash::BuildHasherDefault<MemoKey>>,
    hashes: Vec<u64>,
    /// A bit per hashed key: set when a content is settled and not kept (false positives
    /// only keep a set early).
    once: Vec<u64>,
}

/// The memo's hasher: its keys hold a checksum and a content number, spread by a multiply.
#[derive(Debug, Default, Clone, Copy)]
struct MemoKey(u64);

impl std::hash::Hasher for MemoKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, k: u128) {
        let x = (k as u64) ^ ((k >> 64) as u64).rotate_left(29);
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (x >> 31);
    }
}

/// The memo key of content `c` of `seg`, if its `sigs` checksum is on record.
fn memo_key(seg: &Segment, c: u32) -> Option<u128> {
    Some((u128::from(seg.sigs_sum()?) << 64) | u128::from(c))
}

impl ShingleMemo {
    /// Readies the memo for lookups with `params` (emptied if it holds other parameters').
    fn for_params(&mut self, params: &FingerprintParams) {
        if self.params.as_ref() != Some(params) {
            self.empty();
            self.params = Some(*params);
        }
    }

    /// Forgets every content, held or marked settled.
    fn empty(&mut self) {
        self.at.clear();
        self.hashes.clear();
        self.once.fill(0);
    }

    /// The distinct shingle hashes of the content keyed `h`, if held.
    fn get(&self, h: u128) -> Option<&[u64]> {
        let &(start, n) = self.at.get(&h)?;
        self.hashes.get(start as usize..start as usize + n as usize)
    }

    /// Whether the content keyed `h` was settled before (since the memo was last emptied);
    /// marks it settled.
    fn again(&mut self, h: u128) -> bool {
        use std::hash::Hasher;
        if self.once.is_empty() {
            self.once = vec![0; MEMO_ONCE_BITS / 64];
        }
        let mut k = MemoKey::default();
        k.write_u128(h);
        let bit = (k.finish() >> 8) as usize % MEMO_ONCE_BITS;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let before = self.once[word] & mask != 0;
        self.once[word] |= mask;
        before
    }

    /// Holds `values`, the distinct shingle hashes of the content keyed `h`.
    fn put(&mut self, h: u128, values: impl Iterator<Item = u64>) {
        if self.hashes.len() >= MEMO_HASHES - MEMO_ENTRY_HASHES {
            self.empty();
        }
        let start = self.hashes.len();
        self.hashes.extend(values.take(MEMO_ENTRY_HASHES + 1));
        let n = self.hashes.len() - start;
        if n > MEMO_ENTRY_HASHES {
            self.hashes.truncate(start);
            return;
        }
        self.at.insert(h, (start as u32, n as u32));
    }
}

/// Options of a lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOptions {
    /// Least Jaccard similarity of a hit (default 0.5).
    pub min_similarity: f64,
    /// Settle the candidates whose estimate is too close to `min_similarity` to tell (within
    /// three standard deviations, [`crate::minhash::estimate_margin`]) by the exact Jaccard
    /// similarity of the shingle sets, computed from the stored text; such a hit's
    /// `similarity` is then exact. Indexes built without stored texts keep the estimate.
    ///
    /// Default false: each check decodes and re-shingles one stored text (a few
    /// microseconds), and a query inside a large campaign has many candidates near the
    /// threshold (at 10M posts it made the median lookup three to six times slower). The CLI's
    /// `query` turns it on (`--estimate-only` turns it off): on the dev corpus it raised
    /// pair recall from 0.974 to 0.989 and precision from 0.970 to 0.977.
    pub exact_near_threshold: bool,
    /// Most hits returned, best first (0 = all). A limited lookup answers the first `limit`
    /// hits of the lookup of all of them; when posts at an estimated similarity of 1 fill
    /// the cut it verifies only the candidates that can be at 1, and may then (rarely: a
    /// full MinHash row differing where its 8-bit byte does not, in two bands at once) leave
    /// out a post at an estimated 1 whose true similarity is below 1.
    pub limit: usize,
    /// Keep only posts on these platforms (empty = all).
    pub platforms: Vec<String>,
    /// Keep only posts by these accounts (empty = all).
    pub accounts: Vec<String>,
    /// Keep only posts at or after this time (unix seconds). Posts without a time are dropped
    /// when a time range is given.
    pub since: Option<i64>,
    /// Keep only posts at or before this time (unix seconds).
    pub until: Option<i64>,
    /// Most candidates taken from one band probe: a template posted 100,000 times costs
    /// this many reads, not 100,000. Default 1,000. The cap applies to each segment's
    /// probe, so an index of several segments can return more near-copies of such a
    /// template than the same posts merged into one; either way the result's `truncated`
    /// says a cap was reached.
    pub max_bucket: usize,
    /// Return stored texts with hits (default true).
    pub with_text: bool,
    /// Also return every member of the saved clusters the direct hits belong to (marked
    /// `expanded`, with their estimated similarity to the query). Default false.
    pub expand: bool,
    /// Give each hit the passages it shares with the query ([`Hit::evidence`]), found by
    /// aligning the two token sequences ([`crate::text::align`]). Needs stored texts (an
    /// error otherwise); texts are read for it even when `with_text` is false. Default false.
    /// [`Index::query_refs`] ignores it (its hits carry no text or evidence).
    pub evidence: bool,
    /// Containment lookup: return the posts that contain at least this share (0 < C <= 1) of
    /// the query's distinct shingles (the query is a snippet of them), whatever their
    /// similarity; each hit carries [`Hit::containment`]. The candidates are the band probes'
    /// (every one, not only those estimated above `min_similarity`), each settled exactly
    /// from its stored text, so it needs stored texts. Hits are ordered by containment.
    /// Default `None`.
    pub containment: Option<f64>,
    /// Like `containment`, the other way round: the posts at least this share of whose
    /// shingles lie inside the query. At most one of the two may be set.
    pub contained_in: Option<f64>,
}

/// Which containment a lookup asks for (from [`QueryOptions`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Containment {
    /// |Q & P| / |Q| >= threshold.
    Contains(f64),
    /// |Q & P| / |P| >= threshold.
    ContainedIn(f64),
}

impl QueryOptions {
    /// Checks the options that have a range.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `containment` or `contained_in` is outside (0, 1] or
    /// both are set.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("containment", self.containment),
            ("contained-in", self.contained_in),
        ] {
            if let Some(c) = v {
                if !(c > 0.0 && c <= 1.0) {
                    return Err(Error::InvalidParameter(format!(
                        "{name} must be in (0, 1], got {c}"
                    )));
                }
            }
        }
        if self.containment.is_some() && self.contained_in.is_some() {
            return Err(Error::InvalidParameter(
                "give containment or contained-in, not both".into(),
            ));
        }
        Ok(())
    }

    /// Whether a post must pass a platform, account or time filter to be a hit.
    fn filters_posts(&self) -> bool {
        !self.platforms.is_empty()
            || !self.accounts.is_empty()
            || self.since.is_some()
            || self.until.is_some()
    }

    fn containment_mode(&self) -> Option<Containment> {
        self.containment
            .map(Containment::Contains)
            .or(self.contained_in.map(Containment::ContainedIn))
    }
}

impl Default for QueryOptions {
    fn default() -> QueryOptions {
        QueryOptions {
            min_similarity: 0.5,
            exact_near_threshold: false,
            limit: 0,
            platforms: Vec::new(),
            accounts: Vec::new(),
            since: None,
            until: None,
            max_bucket: 1000,
            with_text: true,
            expand: false,
            evidence: false,
            containment: None,
            contained_in: None,
        }
    }
}

/// One hit of a lookup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The post's external id.
    pub id: String,
    /// Jaccard similarity to the query: estimated from the 8-bit signatures, or exact when
    /// the estimate was near the threshold and `exact_near_threshold` settled it.
    pub similarity: f64,
    /// Account.
    pub account: String,
    /// Platform.
    pub platform: String,
    /// Unix seconds, if known.
    pub ts: Option<i64>,
    /// The post's text, if stored and asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The saved cluster the post belongs to (`textreuse clusters --save`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u32>,
    /// Whether the post was added by cluster expansion rather than matched directly.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expanded: bool,
    /// The passages the post shares with the query, longest first, when
    /// [`QueryOptions::evidence`] is on: runs of at least the shingle width of equal
    /// normalized tokens, as char offsets of the two original texts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Vec<Passage>>,
    /// For a containment lookup ([`QueryOptions::containment`] or `contained_in`): the
    /// exact share of the query's shingles inside the post (or of the post's inside the
    /// query). `similarity` is then the exact Jaccard similarity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containment: Option<f64>,
    /// Where the post lives.
    #[serde(skip)]
    pub addr: PostAddr,
}

/// One hit of a lookup, borrowed from the index: no allocation per hit
/// ([`Index::query_refs`]). The text, when stored, is at [`Index::text_at`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HitRef<'a> {
    /// The post's external id.
    pub id: &'a str,
    /// Jaccard similarity to the query, as for [`Hit::similarity`].
    pub similarity: f64,
    /// Account.
    pub account: &'a str,
    /// Platform.
    pub platform: &'a str,
    /// Unix seconds, if known.
    pub ts: Option<i64>,
    /// The saved cluster the post belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u32>,
    /// Whether the post was added by cluster expansion rather than matched directly.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expanded: bool,
    /// As for [`Hit::containment`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containment: Option<f64>,
    /// Where the post lives.
    #[serde(skip)]
    pub addr: PostAddr,
}

/// The answer to one lookup, borrowed from the index ([`Index::query_refs`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueryRefs<'a> {
    /// Hits, in the order of [`QueryResult::hits`].
    pub hits: Vec<HitRef<'a>>,
    /// Distinct candidate texts verified.
    pub candidates: usize,
    /// Whether a heavy bucket was capped (`max_bucket`); more near-copies may exist.
    pub truncated: bool,
    /// Whether the query text had no fingerprint (no token after normalization).
    pub empty: bool,
    /// Candidates whose estimate was near the threshold, settled by the exact similarity
    /// of their stored text (or of its shingles, kept from an earlier lookup through the
    /// same [`Scratch`]) (`QueryOptions::exact_near_threshold`): what makes an exact
    /// lookup slower than an estimated one.
    pub settled: usize,
}

/// A hit before its strings are copied out of the index: ordering and the limit work on
/// these, so a lookup with many matches copies only the hits it returns.
struct Found<'a> {
    sim: f64,
    ts: Option<i64>,
    id: &'a str,
    account: &'a str,
    platform: &'a str,
    seg: usize,
    post: u32,
    expanded: bool,
    containment: Option<f64>,
}

/// The answer to one lookup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueryResult {
    /// Hits, by similarity (highest first), then time (earliest first), then id.
    pub hits: Vec<Hit>,
    /// Distinct candidate texts verified.
    pub candidates: usize,
    /// Whether a heavy bucket was capped (`max_bucket`); more near-copies may exist.
    pub truncated: bool,
    /// Whether the query text had no fingerprint (no token after normalization).
    pub empty: bool,
    /// Candidates whose estimate was near the threshold, settled by the exact similarity
    /// of their stored text (or of its shingles, kept from an earlier lookup through the
    /// same [`Scratch`]) (`QueryOptions::exact_near_threshold`): what makes an exact
    /// lookup slower than an estimated one.
    pub settled: usize,
}

impl Index {
    /// Looks up `text`: every indexed post whose estimated similarity is at least
    /// `opts.min_similarity`.
    pub fn query(&self, text: &str, opts: &QueryOptions) -> Result<QueryResult> {
        let mut scratch = Scratch::new();
        self.query_with(text, opts, &mut scratch)
    }

    /// [`query`](Self::query) with caller-owned scratch buffers (no allocation per call
    /// beyond the hits).
    pub fn query_with(
        &self,
        text: &str,
        opts: &QueryOptions,
        scratch: &mut Scratch,
    ) -> Result<QueryResult> {
        let mut cache = self.take_text_cache();
        let mut res = QueryResult::default();
        let r = self
            .find_text(text, opts, scratch, &mut cache, &mut res)
            .and_then(|found| self.owned_hits(text, found, opts, &mut cache, &mut res));
        self.give_text_cache(cache);
        r.map(|()| res)
    }

    /// A text cache of this index's pool (a new one when all are in use). Lookups take one
    /// for their stored-text reads and give it back: making a zstd context for every lookup
    /// cost about a quarter of a lookup with texts (ARCHITECTURE.md).
    fn take_text_cache(&self) -> TextCache {
        self.text_caches
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }

    /// Gives a text cache back to the pool (kept up to one per core and a few).
    fn give_text_cache(&self, cache: TextCache) {
        if let Ok(mut v) = self.text_caches.lock() {
            if v.len() < MAX_POOLED_TEXT_CACHES {
                v.push(cache);
            }
        }
    }

    /// [`query_with`](Self::query_with) returning hits that borrow from the index: the same
    /// hits in the same order, without copying ids, accounts and platforms out or decoding
    /// texts (`opts.with_text` is ignored; see [`text_at`](Self::text_at)). For services
    /// that filter or serialize hits themselves.
    pub fn query_refs<'a>(
        &'a self,
        text: &str,
        opts: &QueryOptions,
        scratch: &mut Scratch,
    ) -> Result<QueryRefs<'a>> {
        let mut cache = self.take_text_cache();
        let r = self.query_refs_cached(text, opts, scratch, &mut cache);
        self.give_text_cache(cache);
        r
    }

    /// [`query_refs`](Self::query_refs) reading stored texts (for the exact checks near the
    /// threshold) through the caller's `cache`: a caller that then reads the hits' texts
    /// with [`text_at_into`](Self::text_at_into) through the same cache decompresses a
    /// block the checks read only once.
    pub fn query_refs_cached<'a>(
        &'a self,
        text: &str,
        opts: &QueryOptions,
        scratch: &mut Scratch,
        cache: &mut TextCache,
    ) -> Result<QueryRefs<'a>> {
        let mut res = QueryResult::default();
        let found = self.find_text(text, opts, scratch, cache, &mut res)?;
        Ok(QueryRefs {
            hits: found.iter().map(|f| self.hit_ref(f)).collect(),
            candidates: res.candidates,
            truncated: res.truncated,
            empty: res.empty,
            settled: res.settled,
        })
    }

    /// The posts `text` finds (none, with `res.empty` set, when it has no fingerprint).
    fn find_text<'a>(
        &'a self,
        text: &str,
        opts: &QueryOptions,
        scratch: &mut Scratch,
        cache: &mut TextCache,
        res: &mut QueryResult,
    ) -> Result<Vec<Found<'a>>> {
        opts.validate()?;
        // Taken out of the scratch while the fingerprint borrows the rest of it.
        let mut bufs = std::mem::take(&mut scratch.lookup);
        let found = self.find_fingerprint(text, opts, scratch, &mut bufs, cache, res);
        scratch.lookup = bufs;
        found
    }

    /// [`find_text`](Self::find_text) with the lookup's buffers out of `scratch`.
    fn find_fingerprint<'a>(
        &'a self,
        text: &str,
        opts: &QueryOptions,
        scratch: &mut Scratch,
        bufs: &mut LookupBuffers,
        cache: &mut TextCache,
        res: &mut QueryResult,
    ) -> Result<Vec<Found<'a>>> {
        let Some(f) = self.fp.fingerprint_with(text, scratch) else {
            res.empty = true;
            return Ok(Vec::new());
        };
        let (mut keys, mut sig) = (
            std::mem::take(&mut bufs.keys),
            std::mem::take(&mut bufs.sig),
        );
        keys.clear();
        self.fp.band_keys(f.signature, &mut keys);
        sig.clear();
        sig.resize(f.signature.len(), 0);
        to_bbit(f.signature, &mut sig);
        let set = (opts.exact_near_threshold || opts.containment_mode().is_some())
            .then(|| scratch.shingle_set(self.manifest.params.shingle));
        let found = self.find(&keys, &sig, set, opts, bufs, cache, res);
        (bufs.keys, bufs.sig) = (keys, sig);
        found
    }

    /// The neighbours of an indexed post, found by its stored text (the post itself is not
    /// among the hits). `Ok(None)` if no post has this id.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the index was built without stored texts.
    pub fn query_post(&self, id: &str, opts: &QueryOptions) -> Result<Option<QueryResult>> {
        let Some(post) = self.post(id)? else {
            return Ok(None);
        };
        let Some(text) = post.text.as_deref() else {
            return Err(Error::InvalidParameter(
                "looking up a post by id needs stored texts; this index was built with --no-store-text".into(),
            ));
        };
        let mut r = self.query(text, opts)?;
        r.hits.retain(|h| h.addr != post.addr);
        Ok(Some(r))
    }

    /// Looks up many texts in parallel (rayon); results in input order.
    pub fn query_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        opts: &QueryOptions,
    ) -> Vec<Result<QueryResult>> {
        texts
            .par_iter()
            .map_init(Scratch::new, |s, t| self.query_with(t.as_ref(), opts, s))
            .collect()
    }

    /// Copies found posts out of the index into `res.hits`, with their texts when asked.
    fn owned_hits(
        &self,
        query: &str,
        found: Vec<Found<'_>>,
        opts: &QueryOptions,
        cache: &mut TextCache,
        res: &mut QueryResult,
    ) -> Result<()> {
        // Texts are decoded in storage order, so hits sharing a compressed block share one
        // decompression.
        // Neither list is made for a lookup without texts (most): one allocation each fewer.
        let mut texts: Vec<Option<String>> = Vec::new();
        if opts.with_text || opts.evidence {
            texts.resize(found.len(), None);
            let mut order: Vec<usize> = (0..found.len()).collect();
            order.sort_unstable_by_key(|&i| (found[i].seg, found[i].post));
            for i in order {
                texts[i] = self.segments[found[i].seg].text(found[i].post, cache)?;
            }
        }
        let mut evidence: Vec<Option<Vec<Passage>>> = Vec::new();
        if opts.evidence && !found.is_empty() {
            evidence.resize(found.len(), None);
            let normalizer = self.fp.normalizer();
            let min_tokens = self.manifest.params.shingle as usize;
            let (mut q, mut h) = (Tokenized::new(), Tokenized::new());
            q.tokenize(normalizer, query);
            for (i, text) in texts.iter().enumerate() {
                let Some(text) = text else {
                    return Err(Error::InvalidParameter(format!(
                        "evidence needs stored texts; post {:?} has none (the index was built with --no-store-text)",
                        found[i].id
                    )));
                };
                h.tokenize(normalizer, text);
                evidence[i] = Some(align(&q, &h, text, min_tokens));
            }
            if !opts.with_text {
                texts.iter_mut().for_each(|t| *t = None);
            }
        }
        res.hits.reserve(found.len());
        let (mut texts, mut evidence) = (texts.into_iter(), evidence.into_iter());
        for f in found {
            let (text, evidence) = (texts.next().flatten(), evidence.next().flatten());
            let h = self.hit_ref(&f);
            res.hits.push(Hit {
                id: h.id.to_string(),
                similarity: h.similarity,
                account: h.account.to_string(),
                platform: h.platform.to_string(),
                ts: h.ts,
                text,
                cluster: h.cluster,
                expanded: h.expanded,
                evidence,
                containment: h.containment,
                addr: h.addr,
            });
        }
        Ok(())
    }

    /// The similarity estimate of `eq` equal bytes of `k`-byte signatures
    /// ([`bbit_estimate`]), from the index's table.
    #[inline]
    fn estimate(&self, eq: usize, k: usize) -> f64 {
        match self.estimates.get(eq) {
            Some(&e) if self.estimates.len() == k + 1 => e,
            _ => bbit_estimate(eq, k),
        }
    }

    /// A found post as a borrowed hit.
    fn hit_ref<'a>(&self, f: &Found<'a>) -> HitRef<'a> {
        let addr = PostAddr {
            segment: self.segments[f.seg].entry().id,
            post: f.post,
        };
        HitRef {
            id: f.id,
            similarity: f.sim,
            account: f.account,
            platform: f.platform,
            ts: f.ts,
            cluster: self.clusters.as_ref().and_then(|c| c.cluster_of(addr)),
            expanded: f.expanded,
            containment: f.containment,
            addr,
        }
    }

    /// The posts a query with band keys `keys` and 8-bit signature `sig` finds, ordered and
    /// cut to `opts.limit`; `set` (the query's sorted shingle hashes) settles the estimates
    /// near the threshold, reading stored texts through `cache`. Fills `res`'s counters.
    #[allow(clippy::too_many_arguments)]
    fn find<'a>(
        &'a self,
        keys: &[u64],
        sig: &[u8],
        set: Option<&[u64]>,
        opts: &QueryOptions,
        bufs: &mut LookupBuffers,
        cache: &mut TextCache,
        res: &mut QueryResult,
    ) -> Result<Vec<Found<'a>>> {
        let margin = estimate_margin(opts.min_similarity, sig.len());
        let cont = opts.containment_mode();
        // Shingling buffers for the exact checks (the query's own set lives in the caller's
        // scratch), made on the first one.
        let mut exact: Option<Scratch> = None;
        let LookupBuffers {
            cands,
            seen,
            marks,
            equal,
            runs,
            picked,
            verified,
            verified_at,
            pending,
            matched,
            matched_at,
            query_set,
            seen_set,
            rank: ranks,
            counts,
            memo,
            ..
        } = bufs;
        matched.clear();
        matched_at.clear();
        pending.clear();
        // A limited lookup whose live posts at similarity 1 fill the cut needs no other
        // candidate verified (`fill_at_one`).
        let at_one = opts.limit > 0
            && !opts.expand
            && cont.is_none()
            && !(set.is_some() && (1.0 - opts.min_similarity).abs() <= margin);
        runs.resize_with(runs.len().max(self.segments.len()), Vec::new);
        // A limited lookup ranks its verified contents and cuts: those that cannot make the
        // cut need no post range and no ranking (`cut_floor`).
        let prunes = opts.limit > 0 && !opts.expand && cont.is_none() && !opts.filters_posts();
        let filled = at_one
            && self.fill_at_one(
                keys,
                sig,
                opts,
                runs,
                picked,
                cands,
                seen,
                marks,
                equal,
                matched,
                &mut ranks.labels,
                res,
            )?;
        if !filled {
            if self.opts.prefetch {
                // Cold reads: every segment's rounds of reads are issued together, not one
                // segment's after another's.
                if !at_one {
                    self.prefetch_probes(keys, runs)?;
                }
                self.prefetch_candidates(runs, opts.max_bucket, cands, seen, marks)?;
            }
            for (si, seg) in self.segments.iter().enumerate() {
                let runs = &mut runs[si];
                if !at_one && !self.opts.prefetch {
                    // Else probed by `fill_at_one` or `prefetch_probes` already.
                    seg.probe_runs(keys, runs)?;
                }
                cands.clear();
                res.truncated |= seg.take_runs(runs, opts.max_bucket, cands)?;
                // Only a containment lookup needs its candidates in order (it searches them);
                // the answer does not depend on the order they are verified in.
                dedup(cands, seen, marks, cont.is_some());
                res.candidates += cands.len();
                verified.clear();
                verified_at.clear();
                if let (Some(mode), Some(q)) = (cont, set) {
                    let scratch = exact.get_or_insert_with(Scratch::new);
                    res.candidates += self
                        .verify_containment(seg, cands, q, mode, opts, scratch, cache, verified)?;
                }
                // A containment lookup settled its candidates above.
                let estimated = if cont.is_some() { &[][..] } else { &cands[..] };
                let settles = set.is_some() && seg.has_text();
                // The CPU fetches signatures a fixed distance ahead of the compare: all at once
                // would overflow its outstanding misses on a campaign's thousands of candidates.
                seg.equal_counts(estimated, sig, equal)?;
                let near = |sim: f64| settles && (sim - opts.min_similarity).abs() <= margin;
                // Candidates estimated below this cannot make a limited lookup's cut.
                let floor = if prunes {
                    self.cut_floor(equal, sig.len(), opts, &near, counts)
                } else {
                    None
                };
                let below = |sim: f64| floor.is_some_and(|f| sim < f);
                for (at, (&c, &eq)) in estimated.iter().zip(equal.iter()).enumerate() {
                    let sim = self.estimate(eq as usize, sig.len());
                    if near(sim) {
                        pending.push((si, at as u32, c, sim));
                    } else if sim >= opts.min_similarity && !below(sim) {
                        verified.push((c, sim, None));
                        verified_at.push(at as u32);
                    }
                }
                if floor.is_some() && !self.fills_cut(seg, verified, opts.limit)? {
                    // Deleted posts left the contents above the floor short of the cut:
                    // every candidate is kept after all, in candidate order.
                    for (at, (&c, &eq)) in estimated.iter().zip(equal.iter()).enumerate() {
                        let sim = self.estimate(eq as usize, sig.len());
                        if !near(sim) && sim >= opts.min_similarity && below(sim) {
                            verified.push((c, sim, None));
                            verified_at.push(at as u32);
                        }
                    }
                    let mut order: Vec<usize> = (0..verified.len()).collect();
                    order.sort_unstable_by_key(|&i| verified_at[i]);
                    *verified = order.iter().map(|&i| verified[i]).collect();
                    *verified_at = order.iter().map(|&i| verified_at[i]).collect();
                }
                if self.opts.prefetch {
                    // One more round of overlapped reads: the verified contents' post ranges.
                    verified
                        .iter()
                        .for_each(|&(c, _, _)| seg.prefetch_content(c));
                }
                verified.iter().for_each(|&(c, _, _)| seg.touch_content(c));
                for (i, &(c, sim, containment)) in verified.iter().enumerate() {
                    matched.push(Matched {
                        seg: si,
                        posts: seg.content_posts(c)?,
                        sim,
                        containment,
                    });
                    let at = verified_at.get(i).copied().unwrap_or(i as u32);
                    matched_at.push(((si as u64) << 32) | u64::from(at));
                }
            }
            if let Some(q) = set.filter(|_| !pending.is_empty()) {
                if !self.cut_filled_at_one(matched, opts) {
                    let scratch = exact.get_or_insert_with(Scratch::new);
                    query_set.reset(q.len());
                    q.iter().for_each(|&h| {
                        query_set.insert(h);
                    });
                    let settled = matched.len();
                    memo.for_params(self.fp.params());
                    for &(si, at, c, estimate) in pending.iter() {
                        let seg = &self.segments[si];
                        let mut sim = estimate;
                        let key = memo_key(seg, c);
                        if let Some(set) = key.and_then(|h| memo.get(h)) {
                            sim = query_set.jaccard_of_distinct(set);
                            res.settled += 1;
                        } else if let Some(p) = seg.content_posts(c)?.next() {
                            // Every post of a content has the same normalized text.
                            if let Some(text) = seg.text_str(p, cache)? {
                                sim = self.fp.jaccard_to(text, query_set, seen_set, scratch);
                                res.settled += 1;
                                if let Some(h) = key.filter(|&h| memo.again(h)) {
                                    memo.put(h, seen_set.values());
                                }
                            }
                        }
                        if sim >= opts.min_similarity {
                            matched.push(Matched {
                                seg: si,
                                posts: seg.content_posts(c)?,
                                sim,
                                containment: None,
                            });
                            matched_at.push(((si as u64) << 32) | u64::from(at));
                        }
                    }
                    if matched.len() > settled {
                        // Back in the order of verifying every candidate in turn.
                        let mut order: Vec<usize> = (0..matched.len()).collect();
                        order.sort_unstable_by_key(|&i| matched_at[i]);
                        *matched = order.iter().map(|&i| matched[i].clone()).collect();
                    }
                }
            }
        }
        let mut found = if opts.limit == 0 || opts.expand {
            self.every_hit(matched, opts)?
        } else {
            self.top_hits(matched, opts, ranks)?
        };
        if opts.expand {
            self.expand_clusters(&mut found, sig)?;
        }
        // Order and cut first; only the hits returned are copied out of the index.
        found.sort_by(|a, b| {
            a.expanded
                .cmp(&b.expanded)
                .then_with(|| rank(b.containment, b.sim, a.containment, a.sim))
                .then_with(|| a.ts.unwrap_or(i64::MAX).cmp(&b.ts.unwrap_or(i64::MAX)))
                .then_with(|| a.id.cmp(b.id))
                .then_with(|| (a.seg, a.post).cmp(&(b.seg, b.post)))
        });
        if opts.limit > 0 {
            found.truncate(opts.limit);
        }
        Ok(found)
    }

    /// Cold lookups (`OpenOptions::prefetch`): asks the kernel for every segment's
    /// directory pages, then, as they come in, for every segment's bucket pages, then
    /// probes every segment (band runs into `runs`). A lookup over several segments then
    /// waits for two rounds of reads in all, not two for each segment.
    fn prefetch_probes(&self, keys: &[u64], runs: &mut [Vec<Run>]) -> Result<()> {
        self.segments.iter().for_each(|seg| seg.prefetch_dirs(keys));
        self.segments
            .iter()
            .for_each(|seg| seg.prefetch_buckets(keys));
        for (seg, runs) in self.segments.iter().zip(runs.iter_mut()) {
            seg.probe_runs(keys, runs)?;
        }
        Ok(())
    }

    /// Cold lookups: asks the kernel for the signatures of every segment's candidates (the
    /// entries of its probed `runs`, at most `cap` a run) before any is compared, so the
    /// segments' signature reads make one round. The candidate lists are taken again, from
    /// pages then in memory, as each segment is verified.
    fn prefetch_candidates(
        &self,
        runs: &[Vec<Run>],
        cap: usize,
        cands: &mut Vec<u32>,
        seen: &mut Vec<u32>,
        marks: &mut Vec<u8>,
    ) -> Result<()> {
        for (seg, runs) in self.segments.iter().zip(runs.iter()) {
            cands.clear();
            seg.take_runs(runs, cap, cands)?;
            dedup(cands, seen, marks, false);
            cands.iter().for_each(|&c| seg.prefetch_signature(c));
        }
        Ok(())
    }

    /// Probes every segment (its band runs into `runs`) and matches the contents at
    /// similarity 1, every signature byte equal to the query's, into `matched`; true if
    /// their live posts (that pass the lookup's filters) fill the cut of a limited lookup
    /// (without cluster expansion or containment, and with 1 not near the threshold: the
    /// caller checks).
    /// Every other candidate differs from the query in some signature byte, so its
    /// similarity, estimated or exact, is below 1 and it ranks after those posts.
    ///
    /// Only the [`AT_ONE_RUNS`] shortest band runs the bucket cap does not cut are taken
    /// and verified (into `picked` and `list`), where the rest of a lookup takes every
    /// band's entries and verifies every distinct candidate (thousands for a query inside a
    /// campaign). A content whose signature bytes all equal the query's has its band keys
    /// (hashes of the full MinHash rows) too, unless a full row differs where its byte does
    /// not (1 in 256 for each such row): it is in every band's run but those rows', so in
    /// one of the runs taken unless that happens in each of their bands. Only then can the
    /// answer differ from the one verifying every candidate, and only by leaving out a
    /// content whose true similarity is below 1 (its MinHash differs) for other posts at
    /// an estimated 1. When the posts do not fill the cut, `matched` is left empty and the
    /// lookup goes on from the runs.
    #[allow(clippy::too_many_arguments)]
    fn fill_at_one(
        &self,
        keys: &[u64],
        sig: &[u8],
        opts: &QueryOptions,
        runs: &mut [Vec<Run>],
        picked: &mut Vec<Run>,
        list: &mut Vec<u32>,
        seen: &mut Vec<u32>,
        marks: &mut Vec<u8>,
        equal: &mut Vec<u32>,
        matched: &mut Vec<Matched>,
        labels: &mut LabelFilter,
        res: &mut QueryResult,
    ) -> Result<bool> {
        let one = self.estimate(sig.len(), sig.len());
        let mut verified = 0;
        let mut live = 0;
        // With filters, each post's metadata is read to count it: a text posted 20,000
        // times on platforms the lookup filters out is given up on (the rest of the lookup
        // then ranks it as before) after this many posts.
        let filtered = opts.filters_posts();
        let budget = if filtered {
            opts.limit.saturating_mul(FILTERED_SCAN_PER_HIT)
        } else {
            usize::MAX
        };
        let mut scanned = 0usize;
        labels.start();
        let mut shortest_everywhere = one >= opts.min_similarity;
        if self.opts.prefetch {
            // Cold reads: every segment's rounds of reads are issued together.
            self.prefetch_probes(keys, runs)?;
            for (seg, runs) in self.segments.iter().zip(runs.iter()) {
                if !Run::shortest_uncut(runs, opts.max_bucket, AT_ONE_RUNS, picked) {
                    break;
                }
                list.clear();
                seg.take_runs(picked, opts.max_bucket, list)?;
                dedup(list, seen, marks, false);
                list.iter().for_each(|&c| seg.prefetch_signature(c));
            }
        }
        for ((si, seg), runs) in self.segments.iter().enumerate().zip(runs.iter_mut()) {
            if !self.opts.prefetch {
                // Every segment is probed all the same, for the rest of the lookup (with
                // prefetching, by `prefetch_probes` above).
                seg.probe_runs(keys, runs)?;
            }
            shortest_everywhere = shortest_everywhere
                && Run::shortest_uncut(runs, opts.max_bucket, AT_ONE_RUNS, picked);
            if !shortest_everywhere {
                continue;
            }
            list.clear();
            seg.take_runs(picked, opts.max_bucket, list)?;
            dedup(list, seen, marks, false);
            // With prefetching, their signatures were asked for above.
            seg.equal_counts(list, sig, equal)?;
            verified += list.len();
            let at_one = || {
                list.iter()
                    .zip(equal.iter())
                    .filter(|(_, &eq)| eq as usize == sig.len())
            };
            if self.opts.prefetch {
                at_one().for_each(|(&c, _)| seg.prefetch_content(c));
            }
            for (&c, _) in at_one() {
                let posts = seg.content_posts(c)?;
                let tested = if filtered {
                    seg.posts_in_time(posts.clone(), opts.since, opts.until)?
                } else {
                    posts.clone()
                };
                for p in tested {
                    if live >= opts.limit || scanned >= budget {
                        break;
                    }
                    scanned += 1;
                    if !seg.is_deleted(p)
                        && (!filtered || labels.keeps(opts, si, seg, p)?.is_some())
                    {
                        live += 1;
                    }
                }
                matched.push(Matched {
                    seg: si,
                    posts,
                    sim: one,
                    containment: None,
                });
            }
        }
        if shortest_everywhere && live >= opts.limit {
            res.candidates += verified;
            res.truncated |= runs[..self.segments.len()]
                .iter()
                .flatten()
                .any(|r| r.len() > opts.max_bucket);
            return Ok(true);
        }
        matched.clear();
        Ok(false)
    }

    /// The least estimate a candidate of a limited lookup (without filters, cluster
    /// expansion or containment) needs to be kept, from its segment's counts of equal
    /// signature bytes `equal` (`k` bytes a signature): the estimate of the `limit`-th best
    /// candidate that is verified outright (neither below the threshold nor `near` it, to
    /// be settled from its text). Each of those `limit` contents has a post, unless posts
    /// are deleted ([`fills_cut`](Self::fills_cut) checks), and every post of a content
    /// estimated lower ranks below all of theirs, so it cannot make the cut, whatever the
    /// candidates near the threshold settle to. `None` (keep every candidate) when there
    /// are few: counting costs more than it saves.
    ///
    /// A campaign lookup verifies thousands of contents and would read the post range of
    /// each and rank them all, for ten hits.
    fn cut_floor(
        &self,
        equal: &[u32],
        k: usize,
        opts: &QueryOptions,
        near: &dyn Fn(f64) -> bool,
        counts: &mut Vec<u32>,
    ) -> Option<f64> {
        if equal.len() <= PRUNE_MIN_PER_HIT.saturating_mul(opts.limit) {
            return None;
        }
        counts.clear();
        counts.resize(k + 1, 0);
        for &eq in equal {
            if let Some(n) = counts.get_mut(eq as usize) {
                *n += 1;
            }
        }
        let mut kept = 0usize;
        for eq in (0..=k).rev() {
            let sim = self.estimate(eq, k);
            if sim < opts.min_similarity {
                break;
            }
            if !near(sim) {
                kept += counts[eq] as usize;
                if kept >= opts.limit {
                    return Some(sim);
                }
            }
        }
        None
    }

    /// Whether the contents `verified` (of segment `seg`) hold `limit` live posts.
    fn fills_cut(
        &self,
        seg: &Segment,
        verified: &[(u32, f64, Option<f64>)],
        limit: usize,
    ) -> Result<bool> {
        let mut live = 0usize;
        for &(c, _, _) in verified {
            for p in seg.content_posts(c)? {
                live += usize::from(!seg.is_deleted(p));
                if live >= limit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Whether the posts of the contents matched at similarity 1 (every signature byte equal
    /// to the query's) already fill a limited lookup's cut, so that no candidate whose
    /// estimate is near the threshold can make it and none needs settling from its stored
    /// text. Such a candidate's signature differs from the query's in some byte (when 1 is
    /// not near the threshold; when it is, nothing is matched at 1 before settling), so its
    /// shingle set differs from the query's: its exact similarity is below 1 and it ranks
    /// after every post at 1. Only for lookups cut to a limit, without filters (which would
    /// need each post's metadata to count) and without cluster expansion (which uses every
    /// hit).
    fn cut_filled_at_one(&self, matched: &[Matched], opts: &QueryOptions) -> bool {
        if opts.limit == 0 || opts.expand || opts.filters_posts() {
            return false;
        }
        let mut n = 0;
        for m in matched
            .iter()
            .filter(|m| m.sim >= 1.0 && m.containment.is_none())
        {
            let seg = &self.segments[m.seg];
            for p in m.posts.clone() {
                if !seg.is_deleted(p) {
                    n += 1;
                    if n >= opts.limit {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Settles a containment lookup's candidates `cands` (sorted, distinct) of `seg` exactly
    /// from their stored texts into `verified`, then probes once more with the band keys of
    /// the posts found (one hop, at most [`CONTAINMENT_HOPS`] of them): a snippet's Jaccard
    /// similarity with a long post is low, so the query's own band keys miss some of the
    /// posts that contain it, but those are near-copies of the ones they find. Returns the
    /// number of extra candidates the hop verified.
    #[allow(clippy::too_many_arguments)]
    fn verify_containment(
        &self,
        seg: &super::segment::Segment,
        cands: &[u32],
        q: &[u64],
        mode: Containment,
        opts: &QueryOptions,
        scratch: &mut Scratch,
        cache: &mut TextCache,
        verified: &mut Vec<(u32, f64, Option<f64>)>,
    ) -> Result<usize> {
        let mut check = |c: u32, verified: &mut Vec<(u32, f64, Option<f64>)>| -> Result<()> {
            let Some(p) = seg.content_posts(c)?.next() else {
                return Ok(());
            };
            let Some(text) = seg.text(p, cache)? else {
                return Err(Error::InvalidParameter(
                    "containment lookups need stored texts; this index was built with --no-store-text".into(),
                ));
            };
            let set = self.fp.shingle_set(&text, scratch);
            let both = intersection_len(q, set);
            let (x, t) = match mode {
                Containment::Contains(t) => (both as f64 / q.len().max(1) as f64, t),
                Containment::ContainedIn(t) => (both as f64 / set.len().max(1) as f64, t),
            };
            if both > 0 && x >= t {
                verified.push((c, jaccard(q, set), Some(x)));
            }
            Ok(())
        };
        for &c in cands {
            check(c, verified)?;
        }
        // One hop from the posts found.
        let mut keys = Vec::new();
        let mut more: Vec<u32> = Vec::new();
        let mut hop_scratch = Scratch::new();
        let mut hop_cache = TextCache::default();
        for &(c, _, _) in verified.iter().take(CONTAINMENT_HOPS) {
            let Some(p) = seg.content_posts(c)?.next() else {
                continue;
            };
            let Some(text) = seg.text(p, &mut hop_cache)? else {
                continue;
            };
            if let Some(f) = self.fp.fingerprint_with(&text, &mut hop_scratch) {
                keys.clear();
                self.fp.band_keys(f.signature, &mut keys);
                seg.probe_all(&keys, opts.max_bucket, &mut more)?;
            }
        }
        more.sort_unstable();
        more.dedup();
        more.retain(|c| cands.binary_search(c).is_err());
        for &c in &more {
            check(c, verified)?;
        }
        Ok(more.len())
    }

    /// Adds the members of the direct hits' saved clusters to `found`.
    fn expand_clusters<'a>(&'a self, found: &mut Vec<Found<'a>>, sig: &[u8]) -> Result<()> {
        let Some(cf) = &self.clusters else {
            return Ok(());
        };
        let addr_of = |f: &Found<'_>| PostAddr {
            segment: self.segments[f.seg].entry().id,
            post: f.post,
        };
        let mut ids: Vec<u32> = found
            .iter()
            .filter_map(|f| cf.cluster_of(addr_of(f)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let seen: std::collections::HashSet<PostAddr> = found.iter().map(addr_of).collect();
        for c in ids {
            for addr in cf.members(c)? {
                if seen.contains(&addr) {
                    continue;
                }
                let Ok(si) = self.segment_index(addr.segment) else {
                    continue;
                };
                let seg = &self.segments[si];
                if seg.is_deleted(addr.post) {
                    continue;
                }
                let m = seg.post(addr.post)?;
                let content = seg.content_of(addr.post)?;
                let s = seg.signature(content)?;
                found.push(Found {
                    sim: self.estimate(equal_bytes(s, sig), sig.len()),
                    ts: m.ts,
                    id: m.id,
                    account: m.account,
                    platform: m.platform,
                    seg: si,
                    post: addr.post,
                    expanded: true,
                    containment: None,
                });
            }
        }
        Ok(())
    }
}

/// How many of each segment's shortest band runs a limited lookup verifies before the
/// rest, for contents at similarity 1 ([`Index::fill_at_one`]).
const AT_ONE_RUNS: usize = 2;

/// Posts of the contents at similarity 1 a filtered limited lookup reads, per hit asked
/// for, to count those that pass its filters before it verifies every candidate instead
/// ([`Index::fill_at_one`]).
const FILTERED_SCAN_PER_HIT: usize = 8;

/// A limited lookup with more candidates in a segment than this many per hit asked for
/// counts them by equal signature bytes to keep only those that can make the cut
/// ([`Index::cut_floor`]).
const PRUNE_MIN_PER_HIT: usize = 4;

/// Most posts a containment lookup hops from, per segment
/// ([`Index::verify_containment`]).
const CONTAINMENT_HOPS: usize = 64;

/// Removes repeated values from `v`, and sorts it if `sorted` (or when that costs nothing).
/// A similar text shares several band keys with the query, so its content id comes back
/// from several probes. When the ids are dense (their span at most 32 per entry, as a
/// campaign's are in the content order), a byte map (`marks`, span at most 4 per entry) or a
/// bitmap (`table`) over their span drops the repeats and gives the order in one pass;
/// otherwise the repeats are dropped through a
/// small open-addressing set (`table`), and with `sorted` the distinct ids are then sorted.
/// With `sorted`, the result is what `sort_unstable` and `dedup` give; without, the same
/// values in some order.
fn dedup(v: &mut Vec<u32>, table: &mut Vec<u32>, marks: &mut Vec<u8>, sorted: bool) {
    if v.len() <= 32 {
        v.sort_unstable();
        v.dedup();
        return;
    }
    let (lo, hi) = min_max(v);
    let span = u64::from(hi - lo) + 1;
    if span <= v.len() as u64 * 4 {
        // Very dense ids (a campaign's candidates sit together in the content order): one
        // byte per id of `lo..=hi`. Marking a byte is a plain store, so marks of ids that
        // share a word do not wait on each other as a bitmap's read-modify-write does
        // (most of a campaign lookup's entries repeat an id a few entries back). Read back
        // 8 bytes at a time, in order, which also sorts them.
        marks.clear();
        marks.resize(span.next_multiple_of(8) as usize, 0);
        // A slice, not the vector: a byte store may alias the vector's own fields, which
        // the compiler would then reload on every mark.
        let m = marks.as_mut_slice();
        for &c in v.iter() {
            m[(c - lo) as usize] = 1;
        }
        let mut n = 0;
        for (w, chunk) in marks.chunks_exact(8).enumerate() {
            let mut bits = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            while bits != 0 {
                v[n] = lo + (w as u32) * 8 + bits.trailing_zeros() / 8;
                n += 1;
                bits &= bits - 1;
            }
        }
        v.truncate(n);
        return;
    }
    if span <= v.len() as u64 * 32 {
        // Dense ids: one bit per id of `lo..=hi` (at most a word per entry), read back in
        // order, which also sorts them.
        table.clear();
        table.resize(span.div_ceil(32) as usize, 0);
        for &c in v.iter() {
            let i = (c - lo) as usize;
            table[i >> 5] |= 1 << (i & 31);
        }
        let mut n = 0;
        for (w, &word) in table.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                v[n] = lo + (w as u32) * 32 + bits.trailing_zeros();
                n += 1;
                bits &= bits - 1;
            }
        }
        v.truncate(n);
        return;
    }
    // At most half full; `u32::MAX` marks a free slot (and is tracked apart as a value).
    let bits = (v.len() * 2).next_power_of_two().trailing_zeros();
    let mask = (1usize << bits) - 1;
    table.clear();
    table.resize(mask + 1, u32::MAX);
    let mut has_max = false;
    let mut n = 0;
    for i in 0..v.len() {
        let c = v[i];
        if c == u32::MAX {
            has_max = true;
            continue;
        }
        let mut at = (u64::from(c).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
        loop {
            let slot = &mut table[at & mask];
            if *slot == u32::MAX {
                *slot = c;
                v[n] = c;
                n += 1;
                break;
            }
            if *slot == c {
                break;
            }
            at += 1;
        }
    }
    v.truncate(n);
    if has_max {
        v.push(u32::MAX);
    }
    if sorted {
        v.sort_unstable();
    }
}

/// The least and the greatest of `v` (`(u32::MAX, 0)` when empty). Compiled for AVX2 too
/// and picked at run time: unsigned 32-bit min and max need SSE4.1 to vectorize, and a
/// campaign lookup takes this over ~13,000 candidates.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn min_max(v: &[u32]) -> (u32, u32) {
    let lo = v.iter().copied().fold(u32::MAX, u32::min);
    let hi = v.iter().copied().fold(0, u32::max);
    (lo, hi)
}

/// Text caches an index keeps for reuse ([`Index::query_with`]).
const MAX_POOLED_TEXT_CACHES: usize = 64;

#[cfg(test)]
mod tests {
    /// `dedup` gives what `sort_unstable` + `dedup` give (sorted, or the same values in
    /// some order), for lists short and long, with few or many repeats, and with `u32::MAX`
    /// (the free-slot marker) among the values.
    #[test]
    fn dedup_equals_sort_then_dedup() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut table = Vec::new();
        let mut marks = Vec::new();
        // (least value, range): dense and sparse ids, from 0, far from 0 and up to u32::MAX.
        let ranges = [
            (0u64, 3u64),
            (0, 100),
            (0, 1 << 20),
            (0, 1 << 32),
            (7_000_000, 5_000),
            (7_000_000, 100_000),
            (u64::from(u32::MAX) - 999, 1_000),
        ];
        for len in [0usize, 1, 2, 31, 32, 33, 64, 250, 1000, 5000] {
            for (base, range) in ranges {
                let mut v: Vec<u32> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if range == 1 << 32 && x.is_multiple_of(17) {
                            u32::MAX
                        } else {
                            (base + x % range) as u32
                        }
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_unstable();
                want.dedup();
                let mut unsorted = v.clone();
                super::dedup(&mut v, &mut table, &mut marks, true);
                assert_eq!(v, want, "len {len}, from {base}, range {range}");
                super::dedup(&mut unsorted, &mut table, &mut marks, false);
                assert_eq!(
                    unsorted.len(),
                    want.len(),
                    "len {len}, from {base}, range {range}"
                );
                unsorted.sort_unstable();
                assert_eq!(unsorted, want, "len {len}, from {base}, range {range}");
            }
        }
    }
}
