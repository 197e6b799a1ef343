//! The on-disk index: immutable, memory-mapped segments named by a manifest.
//!
//! - [`format`]: the byte envelope every file shares (the only encoder/decoder of bytes).
//! - [`manifest`]: `CURRENT` and `MANIFEST-<gen>.json`, published atomically.
//! - [`segment`]: reading one segment with every access bounds-checked.
//! - [`build`]: bulk building with bounded memory.
//! - [`ingest`]: the bulk job: input files in, index out, bad records reported.
//!
//! [`Index`] is the reader: open once, then query from many threads (`Send + Sync`, queries
//! take `&self`). See `FORMAT.md` for the byte layout.

pub mod build;
pub mod clusters_file;
pub mod format;
pub mod ingest;
pub mod manifest;
pub mod merge;
pub mod mmap;
pub mod segment;
pub mod staged;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fingerprint::{Fingerprinter, Scratch};
use crate::minhash::{bbit_estimate, equal_bytes, estimate_margin, jaccard, to_bbit};
pub use build::{
    BuildOptions, BuildStats, Existing, IndexBuilder, IndexWriter, OnExistingId, PostOutcome,
};
pub use manifest::Manifest;
pub use merge::{merge, MergeOptions, MergeStats};
use segment::Segment;
pub use segment::TextCache;

/// How an index's files are accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Memory-map every file (the default): open is instant whatever the size.
    #[default]
    Mmap,
    /// Read every file into memory.
    InMemory,
}

/// Options for [`Index::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Memory-map or read into memory.
    pub access: Access,
    /// Before probing, ask the kernel to read in every page a query will touch, so cold
    /// reads overlap. Helps when the index is not in the page cache; costs a few system
    /// calls per query when it is.
    pub prefetch: bool,
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
    /// Most hits returned, best first (0 = all).
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
    /// this many reads, not 100,000. Default 1,000.
    pub max_bucket: usize,
    /// Return stored texts with hits (default true).
    pub with_text: bool,
    /// Also return every member of the saved clusters the direct hits belong to (marked
    /// `expanded`, with their estimated similarity to the query). Default false.
    pub expand: bool,
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
        }
    }
}

/// Where a post lives in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PostAddr {
    /// Segment id.
    pub segment: u64,
    /// Post index within the segment.
    pub post: u32,
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
}

/// A post's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Post {
    /// External id.
    pub id: String,
    /// Account.
    pub account: String,
    /// Platform.
    pub platform: String,
    /// Unix seconds, if known.
    pub ts: Option<i64>,
    /// Text, if stored.
    pub text: Option<String>,
    /// Where it lives.
    pub addr: PostAddr,
}

/// An open index. `Send + Sync`: share it (e.g. in an `Arc`) and query from many threads.
#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    fp: Fingerprinter,
    segments: Vec<Segment>,
    clusters: Option<clusters_file::ClustersFile>,
    opts: OpenOptions,
}

/// Statistics of an open index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStats {
    /// Live posts.
    pub posts: u64,
    /// Deleted posts still held by segments (gone after a merge).
    pub deleted: u64,
    /// Unique texts (summed over segments).
    pub unique_texts: u64,
    /// Segments.
    pub segments: usize,
    /// Manifest generation.
    pub generation: u64,
    /// Fingerprint parameters.
    pub params: crate::FingerprintParams,
    /// Bytes per file name, summed over segments.
    pub bytes_by_file: std::collections::BTreeMap<String, u64>,
    /// All index bytes.
    pub bytes: u64,
    /// Bytes per post.
    pub bytes_per_post: f64,
    /// Bytes per unique text, without stored texts.
    pub bytes_per_unique_text_without_text: f64,
}

impl Index {
    /// Opens the index in `dir` with memory maps. Validates every file's header, version and
    /// section lengths (O(1) per file); use [`verify`](Self::verify) for a checksum pass.
    ///
    /// # Errors
    /// [`Error::IndexState`] if `dir` holds no index; [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`], [`Error::Corrupt`] or [`Error::ChecksumMismatch`] for a
    /// damaged one; [`Error::Io`] otherwise.
    pub fn open(dir: impl AsRef<Path>) -> Result<Index> {
        Index::open_with(dir, OpenOptions::default())
    }

    /// Opens the index in `dir` with options.
    ///
    /// A writer may publish a new generation and remove the old one's files while this runs;
    /// a file that disappears that way makes the open start over on the new generation.
    pub fn open_with(dir: impl AsRef<Path>, opts: OpenOptions) -> Result<Index> {
        let dir = dir.as_ref().to_path_buf();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (manifest, path) = match Manifest::load_current(&dir) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    return Err(Error::IndexState {
                        path: dir,
                        what: "holds no index (no CURRENT file)".into(),
                    })
                }
                // CURRENT named a manifest that a writer has just replaced and removed.
                Err(e) if is_not_found(&e) && attempts < 100 => continue,
                Err(e) => return Err(e),
            };
            match Index::open_manifest(&dir, manifest, opts) {
                Err(e) if is_not_found(&e) && attempts < 100 => {
                    // A writer published a new generation and removed this one's files:
                    // start over on the new one. Otherwise the file is really missing.
                    let moved_on = match Manifest::load_current(&dir) {
                        Ok(Some((_, p))) => p != path,
                        // Its manifest was removed too: yet another generation is out.
                        Err(e) => is_not_found(&e),
                        Ok(None) => false,
                    };
                    if !moved_on {
                        return Err(e);
                    }
                    if attempts > 4 {
                        // A writer is publishing generation after generation: let it run.
                        std::thread::yield_now();
                    }
                }
                r => return r,
            }
        }
    }

    fn open_manifest(dir: &Path, manifest: Manifest, opts: OpenOptions) -> Result<Index> {
        let fp = Fingerprinter::new(manifest.params)?;
        let mmap = opts.access == Access::Mmap;
        let segments = manifest
            .segments
            .iter()
            .map(|s| Segment::open(dir, s, &manifest.params, mmap))
            .collect::<Result<Vec<_>>>()?;
        let clusters = match &manifest.clusters {
            Some(c) => Some(clusters_file::ClustersFile::open(dir, c, &manifest, mmap)?),
            None => None,
        };
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            fp,
            segments,
            clusters,
            opts,
        })
    }

    /// The newest generation of this index, if a writer has published one since this index
    /// was opened (`Ok(None)` otherwise). This index is not changed: it keeps answering from
    /// its own generation (a snapshot) for as long as it lives, so queries in flight never
    /// pause or see a mix. [`IndexReader`] swaps generations for many threads.
    pub fn reload(&self) -> Result<Option<Index>> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Manifest::load_current(&self.dir) {
                Ok(Some((m, _))) if m.generation == self.manifest.generation => return Ok(None),
                Ok(_) => return Index::open_with(&self.dir, self.opts).map(Some),
                // `CURRENT` named a manifest that a writer has just replaced and removed.
                Err(e) if is_not_found(&e) && attempts < 100 => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest this index was opened from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The fingerprinter queries are fingerprinted with (the index's parameters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fp
    }

    /// The open segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Live posts (deleted posts not counted).
    pub fn num_posts(&self) -> u64 {
        self.manifest.live_posts()
    }

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
        let mut res = QueryResult::default();
        let found = self.find_text(text, opts, scratch, &mut res)?;
        self.owned_hits(found, opts, &mut res)?;
        Ok(res)
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
        let mut res = QueryResult::default();
        let found = self.find_text(text, opts, scratch, &mut res)?;
        Ok(QueryRefs {
            hits: found.iter().map(|f| self.hit_ref(f)).collect(),
            candidates: res.candidates,
            truncated: res.truncated,
            empty: res.empty,
        })
    }

    /// The posts `text` finds (none, with `res.empty` set, when it has no fingerprint).
    fn find_text<'a>(
        &'a self,
        text: &str,
        opts: &QueryOptions,
        scratch: &mut Scratch,
        res: &mut QueryResult,
    ) -> Result<Vec<Found<'a>>> {
        let Some(f) = self.fp.fingerprint_with(text, scratch) else {
            res.empty = true;
            return Ok(Vec::new());
        };
        let mut keys = Vec::with_capacity(self.manifest.params.lsh.bands as usize);
        self.fp.band_keys(f.signature, &mut keys);
        let mut sig = vec![0u8; f.signature.len()];
        to_bbit(f.signature, &mut sig);
        let set = opts.exact_near_threshold.then(|| scratch.shingle_set());
        self.find(&keys, &sig, set, opts, res)
    }

    /// The position of segment `id` among the open segments.
    pub(crate) fn segment_index(&self, id: u64) -> Result<usize> {
        self.segments
            .iter()
            .position(|s| s.entry().id == id)
            .ok_or_else(|| Error::InvalidParameter(format!("no segment {id}")))
    }

    /// The stored text of the post at `addr` (`None` if the index stores no texts).
    pub fn text_at(&self, addr: PostAddr, cache: &mut TextCache) -> Result<Option<String>> {
        self.segments[self.segment_index(addr.segment)?].text(addr.post, cache)
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

    /// The post with external id `id`, if indexed.
    pub fn post(&self, id: &str) -> Result<Option<Post>> {
        // Later segments win (they can only hold an id earlier ones do not, in a bulk build).
        for seg in self.segments.iter().rev() {
            if let Some(p) = seg.find_id(id)? {
                if seg.is_deleted(p) {
                    continue;
                }
                return self
                    .post_at(PostAddr {
                        segment: seg.entry().id,
                        post: p,
                    })
                    .map(Some);
            }
        }
        Ok(None)
    }

    /// The post at `addr`.
    pub fn post_at(&self, addr: PostAddr) -> Result<Post> {
        let seg = &self.segments[self.segment_index(addr.segment)?];
        let m = seg.post(addr.post)?;
        let text = seg.text(addr.post, &mut TextCache::default())?;
        Ok(Post {
            id: m.id.into(),
            account: m.account.into(),
            platform: m.platform.into(),
            ts: m.ts,
            text,
            addr,
        })
    }

    /// Copies found posts out of the index into `res.hits`, with their texts when asked.
    fn owned_hits(
        &self,
        found: Vec<Found<'_>>,
        opts: &QueryOptions,
        res: &mut QueryResult,
    ) -> Result<()> {
        // Texts are decoded in storage order, so hits sharing a compressed block share one
        // decompression.
        let mut texts: Vec<Option<String>> = vec![None; found.len()];
        if opts.with_text {
            let mut order: Vec<usize> = (0..found.len()).collect();
            order.sort_unstable_by_key(|&i| (found[i].seg, found[i].post));
            let mut cache = TextCache::default();
            for i in order {
                texts[i] = self.segments[found[i].seg].text(found[i].post, &mut cache)?;
            }
        }
        res.hits.reserve(found.len());
        for (f, text) in found.into_iter().zip(texts) {
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
                addr: h.addr,
            });
        }
        Ok(())
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
            addr,
        }
    }

    /// The posts a query with band keys `keys` and 8-bit signature `sig` finds, ordered and
    /// cut to `opts.limit`; `set` (the query's sorted shingle hashes) settles the estimates
    /// near the threshold. Fills `res`'s counters.
    fn find<'a>(
        &'a self,
        keys: &[u64],
        sig: &[u8],
        set: Option<&[u64]>,
        opts: &QueryOptions,
        res: &mut QueryResult,
    ) -> Result<Vec<Found<'a>>> {
        let margin = estimate_margin(opts.min_similarity, sig.len());
        // Buffers for the exact checks, made on the first one.
        let mut exact: Option<(Scratch, TextCache)> = None;
        let mut cands: Vec<u32> = Vec::with_capacity(64);
        let mut seen: Vec<u32> = Vec::new();
        let mut found: Vec<Found<'_>> = Vec::new();
        for (si, seg) in self.segments.iter().enumerate() {
            if self.opts.prefetch {
                seg.prefetch_dirs(keys);
                seg.prefetch_buckets(keys);
            }
            cands.clear();
            res.truncated |= seg.probe_all(keys, opts.max_bucket, &mut cands)?;
            sort_dedup(&mut cands, &mut seen);
            res.candidates += cands.len();
            if self.opts.prefetch {
                cands.iter().for_each(|&c| seg.prefetch_signature(c));
            }
            cands.iter().for_each(|&c| seg.touch_signature(c));
            let mut verified: Vec<(u32, f64)> = Vec::with_capacity(cands.len());
            for &c in &cands {
                let s = seg.signature(c)?;
                let eq = equal_bytes(s, sig);
                let mut sim = bbit_estimate(eq, sig.len());
                if let Some(q) = set.filter(|_| seg.has_text()) {
                    if (sim - opts.min_similarity).abs() <= margin {
                        let (scratch, cache) = exact.get_or_insert_with(Default::default);
                        // Every post of a content has the same normalized text.
                        if let Some(p) = seg.content_posts(c)?.next() {
                            if let Some(text) = seg.text(p, cache)? {
                                sim = jaccard(q, self.fp.shingle_set(&text, scratch));
                            }
                        }
                    }
                }
                if sim >= opts.min_similarity {
                    verified.push((c, sim));
                }
            }
            if self.opts.prefetch {
                // Two more rounds of overlapped reads: content ranges, then post metadata.
                verified.iter().for_each(|&(c, _)| seg.prefetch_content(c));
                for &(c, _) in &verified {
                    seg.prefetch_posts(seg.content_posts(c)?);
                }
            }
            verified.iter().for_each(|&(c, _)| seg.touch_content(c));
            // Each verified content's posts, read once for the rounds below.
            let groups: Vec<(std::ops::Range<u32>, f64)> = verified
                .iter()
                .map(|&(c, sim)| Ok((seg.content_posts(c)?, sim)))
                .collect::<Result<_>>()?;
            let each_post =
                |f: &dyn Fn(u32)| groups.iter().for_each(|(r, _)| r.clone().for_each(f));
            each_post(&|p| seg.touch_post(p));
            each_post(&|p| seg.touch_post_strings(p));
            each_post(&|p| seg.touch_post_account(p));
            for (posts, sim) in &groups {
                let sim = *sim;
                for p in posts.clone() {
                    if seg.is_deleted(p) {
                        continue;
                    }
                    let m = seg.post(p)?;
                    if !opts.platforms.is_empty() && !opts.platforms.iter().any(|x| x == m.platform)
                    {
                        continue;
                    }
                    if !opts.accounts.is_empty() && !opts.accounts.iter().any(|x| x == m.account) {
                        continue;
                    }
                    if opts.since.is_some() || opts.until.is_some() {
                        let Some(ts) = m.ts else { continue };
                        if opts.since.is_some_and(|s| ts < s) || opts.until.is_some_and(|u| ts > u)
                        {
                            continue;
                        }
                    }
                    found.push(Found {
                        sim,
                        ts: m.ts,
                        id: m.id,
                        account: m.account,
                        platform: m.platform,
                        seg: si,
                        post: p,
                        expanded: false,
                    });
                }
            }
        }
        if opts.expand {
            self.expand_clusters(&mut found, sig)?;
        }
        // Order and cut first; only the hits returned are copied out of the index.
        found.sort_by(|a, b| {
            a.expanded
                .cmp(&b.expanded)
                .then_with(|| b.sim.total_cmp(&a.sim))
                .then_with(|| a.ts.unwrap_or(i64::MAX).cmp(&b.ts.unwrap_or(i64::MAX)))
                .then_with(|| a.id.cmp(b.id))
        });
        if opts.limit > 0 {
            found.truncate(opts.limit);
        }
        Ok(found)
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
                let eq = equal_bytes(s, sig);
                found.push(Found {
                    sim: bbit_estimate(eq, sig.len()),
                    ts: m.ts,
                    id: m.id,
                    account: m.account,
                    platform: m.platform,
                    seg: si,
                    post: addr.post,
                    expanded: true,
                });
            }
        }
        Ok(())
    }

    /// Checks every checksum of every file (a full read of the index).
    pub fn verify(&self) -> Result<()> {
        self.segments.iter().try_for_each(Segment::verify)?;
        if let (Some(cf), Some(entry)) = (&self.clusters, &self.manifest.clusters) {
            cf.verify()?;
            let path = self.dir.join(&entry.file);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)) != entry.xxh3 {
                return Err(Error::ChecksumMismatch {
                    path,
                    section: "whole file".into(),
                });
            }
        }
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> IndexStats {
        let mut by_file = std::collections::BTreeMap::new();
        for s in &self.manifest.segments {
            let deleted = s.deleted.iter().map(|d| ("deleted".to_string(), d.len));
            for (name, len) in s
                .files
                .iter()
                .map(|(n, f)| (n.clone(), f.len))
                .chain(deleted)
            {
                let e = by_file.entry(name).or_insert(0u64);
                *e = e.saturating_add(len);
            }
        }
        let bytes: u64 = by_file.values().fold(0u64, |a, &b| a.saturating_add(b));
        let posts = self.manifest.live_posts();
        let unique = self.manifest.contents();
        let no_text = bytes.saturating_sub(by_file.get("text").copied().unwrap_or(0));
        IndexStats {
            posts,
            deleted: self.manifest.deleted(),
            unique_texts: unique,
            segments: self.segments.len(),
            generation: self.manifest.generation,
            params: self.manifest.params,
            bytes_by_file: by_file,
            bytes,
            bytes_per_post: bytes as f64 / posts.max(1) as f64,
            bytes_per_unique_text_without_text: no_text as f64 / unique.max(1) as f64,
        }
    }
}

/// A shared, reloadable view of an index for services: every query takes the current
/// snapshot ([`searcher`](Self::searcher), an `Arc<Index>`), and [`reload`](Self::reload)
/// swaps in the newest generation without pausing queries in flight (they finish on the
/// snapshot they took; its files stay readable until the last `Arc` is dropped).
#[derive(Debug)]
pub struct IndexReader {
    current: std::sync::RwLock<std::sync::Arc<Index>>,
}

impl IndexReader {
    /// Opens the index in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<IndexReader> {
        IndexReader::open_with(dir, OpenOptions::default())
    }

    /// Opens the index in `dir` with options.
    pub fn open_with(dir: impl AsRef<Path>, opts: OpenOptions) -> Result<IndexReader> {
        Ok(IndexReader {
            current: std::sync::RwLock::new(std::sync::Arc::new(Index::open_with(dir, opts)?)),
        })
    }

    /// The current snapshot.
    pub fn searcher(&self) -> std::sync::Arc<Index> {
        match self.current.read() {
            Ok(g) => std::sync::Arc::clone(&g),
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Picks up the newest generation if there is one; returns whether it did. The new
    /// generation is opened before the swap, so queries never wait for an open.
    pub fn reload(&self) -> Result<bool> {
        let Some(new) = self.searcher().reload()? else {
            return Ok(false);
        };
        let new = std::sync::Arc::new(new);
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Another thread may have reloaded meanwhile: never go back a generation.
        if new.manifest.generation > g.manifest.generation {
            *g = new;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// The writer lock of an index directory: an advisory lock on `LOCK`, released when dropped
/// (or when the process dies).
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of `dir`, or fails if another writer holds it (after waiting up to
    /// 100 ms for a lock held only for a moment).
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        let path = dir.join("LOCK");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // A lock held for a moment only is waited for (up to 100 ms): a process that forks
        // (to run a command, say) holds its parent's open files, and so the lock, until it
        // execs.
        for attempt in 0..=10 {
            match file.try_lock() {
                Ok(()) => return Ok(WriterLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if attempt < 10 => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => break,
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::IndexState {
            path: dir.to_path_buf(),
            what: "another writer is working on this index (LOCK is held); wait for it to finish"
                .into(),
        })
    }
}

/// Whether `e` says a file does not exist (a writer may have removed an old generation's).
fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Microseconds since `t`.
pub fn micros_since(t: Instant) -> u64 {
    t.elapsed().as_micros() as u64
}

/// Sorts `v` and removes repeated values. A similar text shares several band keys with the
/// query, so its content id comes back from several probes: the repeats are dropped through
/// a small open-addressing set (`table`, reused) before the sort, which then orders only the
/// distinct ids. The result is what `sort_unstable` and `dedup` give.
fn sort_dedup(v: &mut Vec<u32>, table: &mut Vec<u32>) {
    if v.len() <= 32 {
        v.sort_unstable();
        v.dedup();
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
    v.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sort_dedup` gives what `sort_unstable` + `dedup` give, for lists short and long,
    /// with few or many repeats, and with `u32::MAX` (the free-slot marker) among the values.
    #[test]
    fn sort_dedup_equals_sort_then_dedup() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut table = Vec::new();
        for len in [0usize, 1, 2, 31, 32, 33, 64, 250, 1000, 5000] {
            for range in [3u64, 100, 1 << 20, 1 << 32] {
                let mut v: Vec<u32> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if range == 1 << 32 && x.is_multiple_of(17) {
                            u32::MAX
                        } else {
                            (x % range) as u32
                        }
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_unstable();
                want.dedup();
                super::sort_dedup(&mut v, &mut table);
                assert_eq!(v, want, "len {len}, range {range}");
            }
        }
    }

    fn fixture(version: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(version)
    }

    /// Opens a fixture's index with `access` (no prefetching) and checks every checksum.
    fn open_fixture(dir: &Path, access: Access) -> Index {
        let index = Index::open_with(
            dir.join("index"),
            OpenOptions {
                access,
                prefetch: false,
            },
        )
        .unwrap();
        index.verify().unwrap();
        index
    }

    /// Indexes written by every supported format version keep opening and answering exactly
    /// as when they were written (tantivy's compat tests). The expected answers were
    /// recorded by the build that wrote the fixture.
    #[test]
    fn format_v1_fixture_opens_and_answers_as_recorded() {
        let dir = fixture("v1");
        for access in [Access::Mmap, Access::InMemory] {
            let index = Index::open_with(
                dir.join("index"),
                OpenOptions {
                    access,
                    prefetch: true,
                },
            )
            .unwrap();
            index.verify().unwrap();
            let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
            let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
            let opts = QueryOptions {
                with_text: false,
                ..QueryOptions::default()
            };
            let mut n = 0;
            for (post, want) in posts.lines().zip(expected.lines()) {
                let post: serde_json::Value = serde_json::from_str(post).unwrap();
                let want: serde_json::Value = serde_json::from_str(want).unwrap();
                let got = index.query(post["text"].as_str().unwrap(), &opts).unwrap();
                let got: Vec<(String, f64)> = got
                    .hits
                    .iter()
                    .map(|h| (h.id.clone(), h.similarity))
                    .collect();
                let want: Vec<(String, f64)> = want["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_f64().unwrap()))
                    .collect();
                assert_eq!(got.len(), want.len(), "query {post}");
                for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                    assert_eq!(gi, wi);
                    assert!((gs - ws).abs() < 1e-5);
                }
                n += 1;
            }
            assert_eq!(n, 50);
            let p = index.post("0").unwrap().unwrap();
            assert_eq!(p.platform, "reddit");
            assert!(p.text.is_some());
        }
    }

    /// `(query, [(id, similarity, cluster)])` per query.
    type Answers = Vec<(String, Vec<(String, f64, Option<u32>)>)>;

    /// Answers of an index to the fixture's posts as `(query, [(id, similarity, cluster)])`.
    fn fixture_answers(index: &Index, posts: &str) -> Answers {
        // The fixtures recorded the signatures' estimates: they pin the stored bytes, not
        // the lookup's policy near the threshold.
        let opts = QueryOptions {
            with_text: false,
            min_similarity: 0.3,
            exact_near_threshold: false,
            ..QueryOptions::default()
        };
        posts
            .lines()
            .map(|line| {
                let post: serde_json::Value = serde_json::from_str(line).unwrap();
                let got = index.query(post["text"].as_str().unwrap(), &opts).unwrap();
                let hits = got
                    .hits
                    .iter()
                    .map(|h| (h.id.clone(), h.similarity, h.cluster))
                    .collect();
                // Ids quoted whether the fixture's are JSON numbers or strings, as in
                // expected.jsonl's answers.
                let id = post["id"].to_string();
                (format!("\"{}\"", id.trim_matches('"')), hits)
            })
            .collect()
    }

    fn same_answers(got: &Answers, want: &Answers, with_clusters: bool) {
        assert_eq!(got.len(), want.len());
        for ((q, g), (_, w)) in got.iter().zip(want) {
            assert_eq!(g.len(), w.len(), "query {q}: {g:?} vs {w:?}");
            for (gh, wh) in g.iter().zip(w) {
                assert_eq!(gh.0, wh.0, "query {q}");
                assert!((gh.1 - wh.1).abs() < 1e-5, "query {q}");
                if with_clusters {
                    assert_eq!(gh.2, wh.2, "query {q}");
                }
            }
        }
    }

    /// Reads a fixture's `expected.jsonl` into answers.
    fn expected_answers(dir: &Path) -> Answers {
        std::fs::read_to_string(dir.join("expected.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let hits = v["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_string(),
                            h[1].as_f64().unwrap(),
                            h[2].as_u64().map(|c| c as u32),
                        )
                    })
                    .collect();
                (format!("\"{}\"", v["query"].as_str().unwrap()), hits)
            })
            .collect()
    }

    /// The format-3 fixture (one segment whose text file carries a trained zstd dictionary;
    /// made by `tests/fixtures/make_v3.sh`) keeps answering as recorded, and every post's
    /// stored text reads back as it was posted.
    #[test]
    fn format_v3_fixture_opens_answers_as_recorded_and_reads_texts() {
        let dir = fixture("v3");
        let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
        let expected = expected_answers(&dir);
        let text_file = dir.join("index/seg-000001/text");
        let bytes = std::fs::read(&text_file).unwrap();
        let env = format::Envelope::parse(&text_file, &bytes, segment::TEXT_MAGIC, "text").unwrap();
        assert_eq!(env.version, 3);
        assert!(
            !env.sections[3].range.is_empty(),
            "no dictionary was trained"
        );
        for access in [Access::Mmap, Access::InMemory] {
            let index = open_fixture(&dir, access);
            let got = fixture_answers(&index, &posts);
            same_answers(&got, &expected, true);
            let mut cache = segment::TextCache::default();
            for line in posts.lines() {
                let post: serde_json::Value = serde_json::from_str(line).unwrap();
                let id = post["id"].to_string();
                let id = id.trim_matches('"');
                let p = index.post(id).unwrap().unwrap();
                assert_eq!(p.text.as_deref(), post["text"].as_str(), "post {id}");
                let seg = &index.segments()[0];
                let again = seg.text(p.addr.post, &mut cache).unwrap();
                assert_eq!(again, p.text, "post {id} through a shared cache");
            }
        }
    }

    /// The format-2 fixture (two segments, deleted posts, saved clusters; made by
    /// `tests/fixtures/make_v2.sh`) keeps answering as recorded, and merging a copy of it
    /// answers the same.
    #[test]
    fn format_v2_fixture_opens_answers_as_recorded_and_merges() {
        let dir = fixture("v2");
        let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
        let expected = expected_answers(&dir);
        let deleted: Vec<String> = std::fs::read_to_string(dir.join("deleted.txt"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(deleted.len(), 12);
        for access in [Access::Mmap, Access::InMemory] {
            let index = open_fixture(&dir, access);
            assert_eq!(index.segments().len(), 2);
            assert_eq!(index.stats().deleted, 12);
            assert_eq!(index.num_posts(), 107 - 12);
            let got = fixture_answers(&index, &posts);
            same_answers(&got, &expected, true);
            for id in &deleted {
                assert!(index.post(id).unwrap().is_none(), "deleted post {id}");
                assert!(got.iter().all(|(_, h)| h.iter().all(|x| &x.0 != id)));
            }
            assert!(got.iter().any(|(_, h)| h.iter().any(|x| x.2.is_some())));
        }
        // Merging a copy: one segment, no deleted posts left, the same answers (the saved
        // clusters covered the merged segments and are dropped).
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("index");
        std::fs::create_dir_all(&copy).unwrap();
        for e in walk(&dir.join("index")) {
            let rel = e.strip_prefix(dir.join("index")).unwrap();
            let to = copy.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&e, &to).unwrap();
        }
        let stats = merge::merge(&copy, &merge::MergeOptions::default()).unwrap();
        assert_eq!((stats.segments_before, stats.segments_after), (2, 1));
        assert_eq!(stats.posts_out, 95);
        assert!(stats.clusters_dropped);
        let index = Index::open(&copy).unwrap();
        index.verify().unwrap();
        assert_eq!(index.stats().deleted, 0);
        let got = fixture_answers(&index, &posts);
        same_answers(&got, &expected, false);
        // Texts survive the merge (read from format-2 blocks, rewritten as format 3).
        for line in posts.lines() {
            let post: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = post["id"].to_string();
            let id = id.trim_matches('"');
            if let Some(p) = index.post(id).unwrap() {
                assert_eq!(p.text.as_deref(), post["text"].as_str(), "post {id}");
            } else {
                assert!(
                    deleted.iter().any(|d| d == id),
                    "post {id} lost in the merge"
                );
            }
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Index>();
    }
}
