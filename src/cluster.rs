//! Campaign discovery: groups of posts that reuse one text, over a whole index.
//!
//! 1. **Candidate pairs** come from a self-join of the band tables: per band, the entries of
//!    every segment are merged in key order and entries that share a key prefix form a
//!    group. Groups of up to `max_group` contents are joined all-pairs; larger groups (a
//!    template posted with many small variants) are joined as a star on their first member
//!    plus a chain, so the cost stays linear in the index size, never all-pairs.
//! 2. **Verification**: a pair becomes an edge when its 8-bit signature similarity is at
//!    least `min_similarity`.
//! 3. **Chaining guard** (optional, `min_edge_support`): an edge from a small group is kept
//!    only if the structural similarity of its ends, `|N[u] ∩ N[v]| / sqrt(|N[u]|·|N[v]|)`
//!    over closed neighbourhoods (as in SCAN clustering), reaches the threshold: a post that
//!    bridges two unrelated campaigns shares few neighbours with either and is cut loose.
//! 4. **Union-find** over contents. With the guard, all edges are collected and taken
//!    strongest first (Kruskal), which gives each cluster's weakest link exactly (the least
//!    similarity on the strongest paths holding it together). Without it, bands are verified
//!    a few at a time in parallel, skipping pairs already connected when the round began, and
//!    the links found are joined in band order against one union-find, so work and memory
//!    follow the clusters; the weakest link is then the least similarity among the links
//!    that joined the cluster.
//! 5. **Attachment** (`attach_similarity`, by default 0.6 × `min_similarity`): a text left
//!    alone by step 4 (no link at `min_similarity`) joins the cluster of its most similar
//!    text when that similarity reaches `attach_similarity`. A member cut down to half the
//!    original, or padded with unrelated sentences, is often less than `min_similarity` from
//!    every other member, though it is plainly the same text. Candidates come from a second
//!    set of bands over the stored 8-bit signatures, 3 bytes each (a 24-bit key, 42 bands
//!    for k = 128), which finds pairs at similarity 0.3–0.5 that the index's 4-row bands
//!    mostly miss; only pairs with a lone text are verified. Only texts alone after step 4
//!    (exact duplicates that arrived in different segments count as one text) attach, each
//!    to one partner (ties go to the partner whose signature's first bytes are least), so
//!    an attachment never joins two clusters: every cluster holds at most one group linked
//!    at `min_similarity`, plus the lone texts attached to it. Contents then expand to their
//!    posts.
//!
//! Output is deterministic: clusters are numbered by size (largest first), then by earliest
//! post, whatever the thread count.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::segment::{prefetch_item, Segment, TextCache};
use crate::index::{Index, PostAddr};
use crate::minhash::{bbit_estimate, equal_bytes, intersection_len};

/// Options of [`Index::clusters`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Least similarity of an edge (default 0.5).
    pub min_similarity: f64,
    /// Least structural similarity of an edge's ends (0 = off, the default; 0.7–0.8 splits
    /// clusters glued together by a few bridging posts).
    pub min_edge_support: f64,
    /// Least similarity at which a text with no link at `min_similarity` joins the cluster
    /// of its most similar text (`None`, the default: [`ATTACH_RATIO`] × `min_similarity`;
    /// 0 or less: off).
    pub attach_similarity: Option<f64>,
    /// Least posts in a reported cluster (default 2).
    pub min_size: usize,
    /// Least distinct accounts in a reported cluster (default 1).
    pub min_accounts: usize,
    /// Count only posts on these platforms (empty = all).
    pub platforms: Vec<String>,
    /// Count only posts at or after this time.
    pub since: Option<i64>,
    /// Count only posts at or before this time.
    pub until: Option<i64>,
    /// Groups of contents sharing a band key larger than this are joined as a star and a
    /// chain instead of all pairs (default 64).
    pub max_group: usize,
    /// List every post id of each cluster (default true).
    pub with_posts: bool,
}

impl ClusterOptions {
    /// The attachment similarity in effect (`None` when attachment is off).
    pub fn attach(&self) -> Option<f64> {
        let a = self
            .attach_similarity
            .unwrap_or(ATTACH_RATIO * self.min_similarity);
        (a > 0.0 && a < self.min_similarity).then_some(a)
    }
}

/// The default [`ClusterOptions::attach_similarity`] as a share of `min_similarity`.
pub const ATTACH_RATIO: f64 = 0.6;

/// Bytes of the 8-bit signature per attachment band (a 24-bit key).
const ATTACH_ROWS: usize = 3;

/// Links `(a, b, similarity)` between global contents.
type Links = Vec<(u32, u32, f32)>;

/// How a cluster's texts hold together.
struct Bonds {
    /// The least similarity of the links that hold it together.
    weakest: f64,
    /// Links at `min_similarity`.
    edges: usize,
    /// Texts attached.
    attached: usize,
}

/// Bands verified together (in parallel) against one snapshot of the union-find.
const LINK_ROUND: usize = 4;

/// Attachment bands taken together before lone texts that found a partner stop searching.
const ATTACH_ROUND: usize = 4;

/// Pairs a lone text may verify in the attachment bands (a text in a dense region of
/// near-misses, such as posts sharing one stock sentence with thousands of others, gives up
/// after this many instead of costing thousands of reads).
const ATTACH_BUDGET: u8 = 32;

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            min_similarity: 0.5,
            min_edge_support: 0.0,
            attach_similarity: None,
            min_size: 2,
            min_accounts: 1,
            platforms: Vec::new(),
            since: None,
            until: None,
            max_group: 64,
            with_posts: true,
        }
    }
}

/// Posts per hour or per day, from the cluster's first post on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeProfile {
    /// `"hour"` or `"day"`: hours for clusters spanning up to a week.
    pub unit: &'static str,
    /// Unix seconds at the start of the first bucket.
    pub start: i64,
    /// Posts per bucket (at most 1,000 buckets; later posts go to the last one).
    pub counts: Vec<u32>,
}

/// One cluster of posts that reuse a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// Cluster number (0 = largest).
    pub cluster: u32,
    /// Posts.
    pub size: usize,
    /// Distinct texts (after normalization).
    pub texts: usize,
    /// Distinct accounts.
    pub accounts: usize,
    /// Posts per platform.
    pub platforms: BTreeMap<String, usize>,
    /// Earliest timestamp.
    pub first_ts: Option<i64>,
    /// Latest timestamp.
    pub last_ts: Option<i64>,
    /// The earliest post's id (a likely source).
    pub earliest_post: String,
    /// The most frequent variant's text (its earliest post's stored text; empty without
    /// stored texts).
    pub representative: String,
    /// The id of the post the representative text is from.
    pub representative_id: String,
    /// The least similarity on the strongest paths holding the cluster together (1.0 for a
    /// group of exact duplicates).
    pub weakest_link: f64,
    /// Verified edges between the cluster's texts.
    pub edges: usize,
    /// Texts that joined by attachment (no link at `min_similarity`, see
    /// [`ClusterOptions::attach_similarity`]).
    pub attached: usize,
    /// Posts over time.
    pub time_profile: Option<TimeProfile>,
    /// Post ids, by time.
    pub posts: Vec<String>,
    /// Post addresses, by time (not serialized).
    #[serde(skip)]
    pub addrs: Vec<PostAddr>,
}

/// The result of [`Index::clusters`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterReport {
    /// Clusters, largest first.
    pub clusters: Vec<Cluster>,
    /// Candidate pairs verified.
    pub candidate_pairs: u64,
    /// Verified edges kept.
    pub edges: u64,
    /// Lone texts attached to a cluster.
    pub attached: u64,
}

/// Union-find with path halving and union by size.
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// Points every element straight at its root, so that [`root`](Self::root) takes one
    /// read until the next union.
    fn flatten(&mut self) {
        for x in 0..self.parent.len() as u32 {
            let r = self.find(x);
            self.parent[x as usize] = r;
        }
    }

    /// The root of `x`, without compressing paths (for shared readers).
    fn root(&self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) -> bool {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        if self.size[a as usize] < self.size[b as usize]
            || (self.size[a as usize] == self.size[b as usize] && a > b)
        {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
        true
    }
}

/// A verified edge between two global content ids (`a < b`), and whether it came from a
/// large group (exempt from the structural guard).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Edge {
    a: u32,
    b: u32,
    sim: f32,
    large: bool,
}

impl Index {
    /// Finds clusters of posts that reuse the same text (transitively similar contents).
    pub fn clusters(&self, opts: &ClusterOptions) -> Result<ClusterReport> {
        self.clusters_with_progress(opts, &|_, _| {})
    }

    /// [`clusters`](Self::clusters) reporting `(bands done, bands)` as the self-join runs.
    pub fn clusters_with_progress(
        &self,
        opts: &ClusterOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ClusterReport> {
        // The pass reads every signature at random and every band table in band order. On a
        // cold page cache, faulting those pages in one at a time (the maps are advised for
        // random access) costs minutes; a helper thread asks the kernel for them in large
        // sequential requests, in the order the pass needs them, and stops when it ends.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
        let bands = self.manifest().params.lsh.bands as usize;
        std::thread::scope(|scope| {
            // A hint only: if no thread can be made, the pass runs without it.
            let _ = std::thread::Builder::new().spawn_scoped(scope, || {
                /// Bytes per read-ahead request.
                const CHUNK: usize = 8 << 20;
                for seg in self.segments() {
                    seg.prefetch_signatures(CHUNK, &stopped);
                }
                for band in 0..bands {
                    for seg in self.segments() {
                        if stopped() {
                            return;
                        }
                        seg.prefetch_band(band);
                    }
                }
                for seg in self.segments() {
                    seg.prefetch_metadata(CHUNK, &stopped);
                }
            });
            let report = self.clusters_inner(opts, progress);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            report
        })
    }

    fn clusters_inner(
        &self,
        opts: &ClusterOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ClusterReport> {
        let segs = self.segments();
        let mut base = Vec::with_capacity(segs.len() + 1);
        base.push(0u64);
        for s in segs {
            base.push(base[base.len() - 1] + s.n_contents());
        }
        let total = *base.last().unwrap_or(&0);
        if total > u32::MAX as u64 {
            return Err(Error::InvalidParameter(
                "clustering is limited to 4 billion unique texts".into(),
            ));
        }
        let bands = self.manifest().params.lsh.bands as usize;
        let attach = opts.attach();
        let attach_bands = if attach.is_some() {
            self.manifest().params.num_perm as usize / ATTACH_ROWS
        } else {
            0
        };
        let done = std::sync::atomic::AtomicUsize::new(0);
        let chunk = rayon::current_num_threads().max(1);
        let mut candidate_pairs = 0;
        let tick = || {
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                bands + attach_bands,
            )
        };
        let mut attached = vec![false; if attach.is_some() { total as usize } else { 0 }];
        let (mut uf, weakest, n_edges) = if opts.min_edge_support > 0.0 {
            // 1-2. Candidate pairs and verification, a few bands at a time in parallel; each
            // round's edges are merged into the sorted, deduplicated set, so a pair that
            // collides in many bands is held once. The guard needs every edge.
            let mut edges: Vec<Edge> = Vec::new();
            for first in (0..bands).step_by(chunk) {
                let round: Vec<Result<(Vec<Edge>, u64)>> = (first..(first + chunk).min(bands))
                    .into_par_iter()
                    .map(|band| {
                        let r = band_entries(segs, &base, band)
                            .and_then(|e| group_edges(segs, &base, &e, opts));
                        tick();
                        r
                    })
                    .collect();
                for r in round {
                    let (e, c) = r?;
                    candidate_pairs += c;
                    edges.extend(e);
                }
                edges.par_sort_unstable_by(|x, y| {
                    (x.a, x.b).cmp(&(y.a, y.b)).then(y.large.cmp(&x.large))
                });
                edges.dedup_by(|x, y| x.a == y.a && x.b == y.b);
            }
            // 3. Chaining guard.
            edges = structural_filter(edges, total as usize, opts.min_edge_support);
            // 4. Kruskal: strongest edges first.
            edges.par_sort_unstable_by(|x, y| {
                y.sim.total_cmp(&x.sim).then((x.a, x.b).cmp(&(y.a, y.b)))
            });
            let mut uf = UnionFind::new(total as usize);
            for e in &edges {
                uf.union(e.a, e.b);
            }
            // 5. Attachment: the attached texts' links are weaker than every edge, so they
            // come last in Kruskal's order.
            if let Some(a) = attach {
                let (links, pairs) =
                    attach_lone(segs, &base, &mut uf, a, opts.max_group, attach_bands, &tick)?;
                candidate_pairs += pairs;
                for (x, y, sim) in links {
                    uf.union(x, y);
                    attached[x as usize] = true;
                    edges.push(Edge {
                        a: x.min(y),
                        b: x.max(y),
                        sim,
                        large: false,
                    });
                }
            }
            let mut weakest: BTreeMap<u32, (f32, usize)> = BTreeMap::new();
            let mut uf2 = UnionFind::new(total as usize);
            for e in &edges {
                let root = uf.find(e.a);
                let w = weakest.entry(root).or_insert((1.0, 0));
                w.1 += 1;
                if uf2.union(e.a, e.b) {
                    w.0 = w.0.min(e.sim);
                }
            }
            (uf, weakest, edges.len() as u64)
        } else {
            // Without the guard only connectivity matters: bands are joined in order against
            // one union-find, and a pair already connected is not verified again. Work and
            // memory follow the clusters, not the candidate pairs. A cluster's weakest link
            // is then the least similarity among the links that joined it, and its link
            // count the number of those links.
            let mut uf = UnionFind::new(total as usize);
            let mut weak = vec![1.0f32; total as usize];
            let mut links = vec![0u32; total as usize];
            let mut n_edges = 0u64;
            // Bands are verified in parallel, a fixed number at a time (so the result does
            // not depend on the thread count), skipping the pairs already connected when the
            // round began; the links found are then joined in band order.
            for first in (0..bands).step_by(LINK_ROUND) {
                // The pairs' roots are read at random: one read each once flattened.
                uf.flatten();
                let snapshot = &uf;
                let round: Vec<Result<(Links, u64)>> = (first..(first + LINK_ROUND).min(bands))
                    .into_par_iter()
                    .map(|band| {
                        let entries = band_entries(segs, &base, band)?;
                        let mut found = Vec::new();
                        let mut pairs = 0u64;
                        let touch = |c| {
                            touch(segs, &base, c);
                            prefetch_item(&snapshot.parent, c as usize);
                        };
                        for_each_pair(&entries, opts.max_group, touch, |x, y, _| {
                            pairs += 1;
                            if snapshot.root(x) == snapshot.root(y) {
                                return Ok(());
                            }
                            let sim = pair_similarity(segs, &base, x, y)?;
                            if sim >= opts.min_similarity {
                                found.push((x, y, sim as f32));
                            }
                            Ok(())
                        })?;
                        tick();
                        Ok((found, pairs))
                    })
                    .collect();
                for r in round {
                    let (found, pairs) = r?;
                    candidate_pairs += pairs;
                    for (x, y, sim) in found {
                        n_edges += u64::from(join(&mut uf, &mut weak, &mut links, x, y, sim));
                    }
                }
            }
            // 5. Attachment.
            if let Some(a) = attach {
                let (found, pairs) =
                    attach_lone(segs, &base, &mut uf, a, opts.max_group, attach_bands, &tick)?;
                candidate_pairs += pairs;
                for (x, y, sim) in found {
                    attached[x as usize] = true;
                    n_edges += u64::from(join(&mut uf, &mut weak, &mut links, x, y, sim));
                }
            }
            let mut weakest: BTreeMap<u32, (f32, usize)> = BTreeMap::new();
            for c in 0..total as u32 {
                if uf.find(c) == c && links[c as usize] > 0 {
                    weakest.insert(c, (weak[c as usize], links[c as usize] as usize));
                }
            }
            (uf, weakest, n_edges)
        };
        // Group contents by root.
        let mut linked = vec![false; total as usize];
        for &root in weakest.keys() {
            linked[root as usize] = true;
        }
        let mut by_root: Vec<(u32, u32)> = Vec::new();
        for (si, seg) in segs.iter().enumerate() {
            for local in 0..seg.n_contents() as u32 {
                let c = base[si] as u32 + local;
                let root = uf.find(c);
                let posts = seg.content_posts(local)?;
                let live = if seg.live_contents().is_some() {
                    posts.filter(|&p| !seg.is_deleted(p)).count()
                } else {
                    posts.len()
                };
                if live > 0 && (linked[root as usize] || live > 1) {
                    by_root.push((root, c));
                }
            }
        }
        drop(linked);
        by_root.par_sort_unstable();
        let members: Vec<(u32, &[(u32, u32)])> = by_root
            .chunk_by(|a, b| a.0 == b.0)
            .map(|g| (g[0].0, g))
            .collect();
        let built: Vec<Result<Option<(Cluster, PostAddr)>>> = members
            .into_par_iter()
            .map(|(root, group)| {
                let contents: Vec<u32> = group.iter().map(|g| g.1).collect();
                let (weak, n_edges) = weakest.get(&root).copied().unwrap_or((1.0, 0));
                let n_attached = if attached.is_empty() {
                    0
                } else {
                    contents.iter().filter(|&&c| attached[c as usize]).count()
                };
                let bonds = Bonds {
                    weakest: weak as f64,
                    edges: n_edges,
                    attached: n_attached,
                };
                self.describe(&base, &contents, bonds, opts)
            })
            .collect();
        let mut described = Vec::new();
        for c in built {
            if let Some(c) = c? {
                described.push(c);
            }
        }
        let mut clusters = self.representative_texts(described)?;
        clusters.sort_by(|a, b| {
            b.size
                .cmp(&a.size)
                .then(
                    a.first_ts
                        .unwrap_or(i64::MAX)
                        .cmp(&b.first_ts.unwrap_or(i64::MAX)),
                )
                .then(a.addrs.first().cmp(&b.addrs.first()))
        });
        for (i, c) in clusters.iter_mut().enumerate() {
            c.cluster = i as u32;
        }
        Ok(ClusterReport {
            clusters,
            candidate_pairs,
            edges: n_edges,
            attached: attached.iter().filter(|&&a| a).count() as u64,
        })
    }

    /// Fills in each cluster's representative text (read at the given address). The reads
    /// go in address order, with a helper thread asking the kernel for the blocks ahead, so
    /// that a cold page cache serves them as a few sequential sweeps rather than one
    /// blocking random read per cluster.
    fn representative_texts(
        &self,
        mut described: Vec<(Cluster, PostAddr)>,
    ) -> Result<Vec<Cluster>> {
        let segs = self.segments();
        let mut order: Vec<(usize, u32, usize)> = Vec::with_capacity(described.len());
        for (i, (_, addr)) in described.iter().enumerate() {
            order.push((self.segment_index(addr.segment)?, addr.post, i));
        }
        order.sort_unstable();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let texts: Vec<Result<(usize, Option<String>)>> = std::thread::scope(|scope| {
            // A hint only: if no thread can be made, the texts are read without it.
            let _ = std::thread::Builder::new().spawn_scoped(scope, || {
                for &(s, post, _) in &order {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    segs[s].prefetch_text(post);
                }
            });
            let texts = order
                .par_iter()
                .map_init(TextCache::default, |cache, &(s, post, i)| {
                    Ok((i, segs[s].text(post, cache)?))
                })
                .collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            texts
        });
        for t in texts {
            let (i, text) = t?;
            described[i].0.representative = text.unwrap_or_default();
        }
        Ok(described.into_iter().map(|(c, _)| c).collect())
    }

    /// Expands a set of contents into a cluster description, after the post filters, and
    /// the address of its representative post (whose text is read later).
    fn describe(
        &self,
        base: &[u64],
        contents: &[u32],
        bonds: Bonds,
        opts: &ClusterOptions,
    ) -> Result<Option<(Cluster, PostAddr)>> {
        let segs = self.segments();
        // (time, address, content, id)
        let mut posts: Vec<(Option<i64>, PostAddr, u32, &str)> = Vec::new();
        // Account names, when several segments each intern their own.
        let mut names: Vec<&str> = Vec::new();
        let mut platforms: BTreeMap<&str, usize> = BTreeMap::new();
        let mut accounts: Vec<(u64, u32)> = Vec::new();
        // Distinct texts: exact duplicates in different segments are one text (by content
        // hash; format-1 segments without hashes count their contents).
        let mut variants: BTreeMap<u128, (usize, u32)> = BTreeMap::new(); // key -> (posts, content)
        for &c in contents {
            let s = seg_of(base, c);
            let seg = &segs[s];
            let local = c - base[s] as u32;
            let mut kept = 0;
            for p in seg.content_posts(local)? {
                if seg.is_deleted(p) {
                    continue;
                }
                let m = seg.post(p)?;
                if !opts.platforms.is_empty() && !opts.platforms.iter().any(|x| x == m.platform) {
                    continue;
                }
                if opts.since.is_some() || opts.until.is_some() {
                    let Some(ts) = m.ts else { continue };
                    if opts.since.is_some_and(|x| ts < x) || opts.until.is_some_and(|x| ts > x) {
                        continue;
                    }
                }
                kept += 1;
                *platforms.entry(m.platform).or_insert(0) += 1;
                if segs.len() == 1 {
                    accounts.push((seg.entry().id, seg.account_of(p).unwrap_or(u32::MAX)));
                } else {
                    names.push(m.account);
                }
                posts.push((
                    m.ts,
                    PostAddr {
                        segment: seg.entry().id,
                        post: p,
                    },
                    c,
                    m.id,
                ));
            }
            if kept > 0 {
                let key = seg
                    .content_hash(local)
                    .unwrap_or((1u128 << 127) | u128::from(c));
                variants.entry(key).or_insert((0, c)).0 += kept;
            }
        }
        let texts = variants.len();
        // The most frequent variant (ties: the earliest content).
        let best = variants
            .values()
            .copied()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        if posts.len() < opts.min_size.max(1) {
            return Ok(None);
        }
        // Accounts are interned per segment: compare by name across segments.
        if segs.len() == 1 {
            accounts.sort_unstable();
            accounts.dedup();
        } else {
            names.sort_unstable();
            names.dedup();
        }
        let n_accounts = if segs.len() == 1 {
            accounts.len()
        } else {
            names.len()
        };
        if n_accounts < opts.min_accounts {
            return Ok(None);
        }
        posts.sort_by(|a, b| {
            a.0.unwrap_or(i64::MAX)
                .cmp(&b.0.unwrap_or(i64::MAX))
                .then(a.1.cmp(&b.1))
        });
        let first_ts = posts.iter().filter_map(|p| p.0).min();
        let last_ts = posts.iter().filter_map(|p| p.0).max();
        let earliest_post = posts[0].3.to_string();
        let rep_content = best.map(|b| b.1).unwrap_or(contents[0]);
        let rep_addr = posts
            .iter()
            .find(|p| p.2 == rep_content)
            .map(|p| p.1)
            .unwrap_or(posts[0].1);
        let rep_id = posts
            .iter()
            .find(|p| p.1 == rep_addr)
            .map_or_else(String::new, |p| p.3.to_string());
        let time_profile = first_ts.zip(last_ts).map(|(f, l)| {
            // i128: timestamps may span the whole i64 range.
            let (f, l) = (i128::from(f), i128::from(l));
            let (unit, step) = if l - f <= 7 * 86_400 {
                ("hour", 3600i128)
            } else {
                ("day", 86_400i128)
            };
            let start = f - f.rem_euclid(step);
            let n = ((l - start) / step).clamp(0, 999) as usize + 1;
            let mut counts = vec![0u32; n];
            for ts in posts.iter().filter_map(|p| p.0) {
                let i = ((i128::from(ts) - start) / step).clamp(0, n as i128 - 1) as usize;
                counts[i] += 1;
            }
            let start = start as i64;
            TimeProfile {
                unit,
                start,
                counts,
            }
        });
        let ids = if opts.with_posts {
            posts.iter().map(|p| p.3.to_string()).collect()
        } else {
            Vec::new()
        };
        let cluster = Cluster {
            cluster: 0,
            size: posts.len(),
            texts,
            accounts: n_accounts,
            platforms: platforms
                .into_iter()
                .map(|(p, n)| (p.to_string(), n))
                .collect(),
            first_ts,
            last_ts,
            earliest_post,
            representative: String::new(),
            representative_id: rep_id,
            weakest_link: bonds.weakest,
            edges: bonds.edges,
            attached: bonds.attached,
            time_profile,
            posts: ids,
            addrs: posts.iter().map(|p| p.1).collect(),
        };
        Ok(Some((cluster, rep_addr)))
    }
}

/// Joins the groups of `x` and `y` by a link of similarity `sim`, keeping each root's
/// weakest link and link count. Whether they were apart.
fn join(uf: &mut UnionFind, weak: &mut [f32], links: &mut [u32], x: u32, y: u32, sim: f32) -> bool {
    let (rx, ry) = (uf.find(x), uf.find(y));
    if !uf.union(rx, ry) {
        return false;
    }
    let r = uf.find(rx) as usize;
    weak[r] = weak[rx as usize].min(weak[ry as usize]).min(sim);
    links[r] = links[rx as usize] + links[ry as usize] + 1;
    true
}

/// The segment holding global content `c`.
fn seg_of(base: &[u64], c: u32) -> usize {
    base.partition_point(|&b| b <= c as u64).saturating_sub(1)
}

/// One band's entries over all segments as `(key prefix, global content)`, sorted. Key
/// prefixes are compared on the bits every segment has (32 in format 2). Contents whose
/// posts are all deleted are left out, so they join nothing.
fn band_entries(segs: &[Segment], base: &[u64], band: usize) -> Result<Vec<(u64, u32)>> {
    let min_bits = segs.iter().map(Segment::known_key_bits).min().unwrap_or(0);
    let mut entries: Vec<(u64, u32)> = Vec::new();
    let mut bucket = Vec::new();
    segs.iter().for_each(|s| s.prefetch_band(band));
    for (si, seg) in segs.iter().enumerate() {
        let bits = seg.known_key_bits();
        let live = seg.live_contents();
        for b in 0..seg.buckets_per_band() {
            bucket.clear();
            seg.bucket_entries(band, b, &mut bucket)?;
            for &(prefix, c) in &bucket {
                if live.is_some_and(|l| !l[c as usize]) {
                    continue;
                }
                entries.push((prefix >> (bits - min_bits), base[si] as u32 + c));
            }
        }
    }
    if segs.len() > 1 {
        // Each segment's entries are already in order: a stable sort finds those runs and
        // merges them (equal keys keep ascending global ids).
        entries.sort();
    }
    Ok(entries)
}

/// Calls `f(x, y, large)` for the candidate pairs of sorted entries: all pairs within a
/// group of equal prefixes of up to `max_group` contents, a star plus a chain in a larger one.
/// `touch(c)` is called a few groups ahead of the pairs that read content `c`, so that the
/// signatures' cache misses overlap.
fn for_each_pair(
    entries: &[(u64, u32)],
    max_group: usize,
    touch: impl Fn(u32),
    mut f: impl FnMut(u32, u32, bool) -> Result<()>,
) -> Result<()> {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && entries[j].0 == entries[i].0 {
            j += 1;
        }
        if j - i >= 2 {
            groups.push((i, j));
        }
        i = j;
    }
    for_each_group_ahead(
        &groups,
        |(i, j)| entries[i..j].iter().for_each(|e| touch(e.1)),
        |(i, j)| {
            let group = &entries[i..j];
            if group.len() <= max_group.max(2) {
                for (k, &(_, x)) in group.iter().enumerate() {
                    for &(_, y) in &group[k + 1..] {
                        f(x, y, false)?;
                    }
                }
            } else {
                for k in 1..group.len() {
                    f(group[0].1, group[k].1, true)?;
                    if k > 1 {
                        f(group[k - 1].1, group[k].1, true)?;
                    }
                }
            }
            Ok(())
        },
    )
}

/// Calls `f` on each group in order, after calling `touch` on the group [`AHEAD`] places
/// further on (memory-level parallelism for the signature reads of the groups' pairs).
fn for_each_group_ahead(
    groups: &[(usize, usize)],
    touch: impl Fn((usize, usize)),
    mut f: impl FnMut((usize, usize)) -> Result<()>,
) -> Result<()> {
    /// Groups touched ahead of the one being joined.
    const AHEAD: usize = 8;
    groups.iter().take(AHEAD).for_each(|&g| touch(g));
    for (n, &g) in groups.iter().enumerate() {
        if let Some(&next) = groups.get(n + AHEAD) {
            touch(next);
        }
        f(g)?;
    }
    Ok(())
}

/// Asks the CPU to start loading global content `c`'s signature.
fn touch(segs: &[Segment], base: &[u64], c: u32) {
    let s = seg_of(base, c);
    segs[s].touch_signature(c - base[s] as u32);
}

/// The 8-bit signature of global content `c`.
fn global_signature<'a>(segs: &'a [Segment], base: &[u64], c: u32) -> Result<&'a [u8]> {
    let s = seg_of(base, c);
    segs[s].signature(c - base[s] as u32)
}

/// The estimated similarity of two global contents.
fn pair_similarity(segs: &[Segment], base: &[u64], x: u32, y: u32) -> Result<f64> {
    Ok(signature_similarity(
        global_signature(segs, base, x)?,
        global_signature(segs, base, y)?,
    ))
}

/// The estimated similarity of two 8-bit signatures.
fn signature_similarity(a: &[u8], b: &[u8]) -> f64 {
    bbit_estimate(equal_bytes(a, b), a.len())
}

/// Step 5: for every live content alone in `uf`, its most similar other content among the
/// candidates of the attachment bands, when at least `attach`. Returns the attachments
/// `(lone, partner, similarity)` in content order and the number of pairs verified.
fn attach_lone(
    segs: &[Segment],
    base: &[u64],
    uf: &mut UnionFind,
    attach: f64,
    max_group: usize,
    n_bands: usize,
    tick: &(dyn Fn() + Sync),
) -> Result<(Links, u64)> {
    let total = uf.parent.len();
    let hash = |c: u32| {
        let s = seg_of(base, c);
        segs[s]
            .content_hash(c - base[s] as u32)
            .unwrap_or(u128::from(c))
    };
    // A text is lone when its group holds no other live text: one content, or exact
    // duplicates that arrived in different segments (one content each, linked at similarity
    // 1). The group's first live content searches for the group (its copies would find the
    // same partners).
    let roots: Vec<u32> = (0..total as u32).map(|c| uf.find(c)).collect();
    let mut first = vec![u32::MAX; total];
    let mut mixed = vec![false; total];
    let mut budget = vec![0u8; total];
    for (si, seg) in segs.iter().enumerate() {
        let live = seg.live_contents();
        for c in 0..seg.n_contents() as u32 {
            if live.is_some_and(|l| !l[c as usize]) {
                continue;
            }
            let g = base[si] as u32 + c;
            let r = roots[g as usize] as usize;
            if first[r] == u32::MAX {
                first[r] = g;
            } else if !mixed[r] && hash(g) != hash(first[r]) {
                mixed[r] = true;
            }
        }
    }
    // Verifications left to each lone text still searching (0: not lone, or done).
    for (r, &f) in first.iter().enumerate() {
        if f != u32::MAX && !mixed[r] {
            budget[f as usize] = ATTACH_BUDGET;
        }
    }
    drop(first);
    drop(mixed);
    if !budget.iter().any(|&b| b > 0) {
        (0..n_bands).for_each(|_| tick());
        return Ok((Vec::new(), 0));
    }
    let mut best: Vec<Partner> = vec![Partner::NONE; total];
    let mut pairs = 0u64;
    // Bands are taken in rounds of a fixed size (whatever the thread count, so the result
    // does not depend on it); a lone text that found partners stops searching after its
    // round. Most attachable texts find theirs in the first round, so the later rounds
    // verify few pairs.
    for first in (0..n_bands).step_by(ATTACH_ROUND) {
        let round: Vec<Result<BandAttach>> = (first..(first + ATTACH_ROUND).min(n_bands))
            .into_par_iter()
            .map(|band| {
                let r = attach_band(segs, base, &roots, &budget, band, attach, max_group);
                tick();
                r
            })
            .collect();
        let mut next = budget.clone();
        for r in round {
            let r = r?;
            pairs += r.pairs;
            for (n, (&b, &left)) in next.iter_mut().zip(budget.iter().zip(&r.left)) {
                *n = n.saturating_sub(b - left);
            }
            for (x, p) in r.found {
                let b = &mut best[x as usize];
                if p.beats(b) {
                    *b = p;
                }
                next[x as usize] = 0;
            }
        }
        budget = next;
    }
    // One partner per lone group (exact duplicates in several segments attach together).
    let mut by_root: Vec<Partner> = vec![Partner::NONE; total];
    for (x, p) in best.iter().enumerate() {
        let b = &mut by_root[roots[x] as usize];
        if p.beats(b) {
            *b = *p;
        }
    }
    let links = by_root
        .iter()
        .enumerate()
        .filter(|(_, p)| p.content != u32::MAX)
        .map(|(x, p)| (x as u32, p.content, p.sim))
        .collect();
    Ok((links, pairs))
}

/// One attachment band: the live contents that share 3 bytes of their 8-bit signature (a
/// 24-bit key) with a text still searching are grouped by that key, and within a group each
/// pair of contents at most `max_group` apart (all pairs in a group of up to
/// `max_group + 1`) with a searching end, in different groups of step 4, is verified. Returns each lone content's best partner in each group, and the pairs verified.
fn attach_band(
    segs: &[Segment],
    base: &[u64],
    roots: &[u32],
    budget: &[u8],
    band: usize,
    attach: f64,
    max_group: usize,
) -> Result<BandAttach> {
    let rows = band * ATTACH_ROWS..(band + 1) * ATTACH_ROWS;
    // Each live content's key, and which keys a text still searching has.
    const DEAD: u32 = u32::MAX;
    let mut keys: Vec<u32> = Vec::with_capacity(budget.len());
    let mut wanted = vec![0u64; 1 << (8 * ATTACH_ROWS - 6)];
    for seg in segs {
        let live = seg.live_contents();
        for c in 0..seg.n_contents() as u32 {
            if live.is_some_and(|l| !l[c as usize]) {
                keys.push(DEAD);
                continue;
            }
            let sig = seg.signature(c)?;
            let r = sig.get(rows.clone()).ok_or_else(|| {
                Error::corrupt(seg.dir().join("sigs"), "signature shorter than k")
            })?;
            let key = u32::from(r[0]) | u32::from(r[1]) << 8 | u32::from(r[2]) << 16;
            if budget[keys.len()] > 0 {
                wanted[key as usize / 64] |= 1 << (key % 64);
            }
            keys.push(key);
        }
    }
    // Entries `key << 32 | content` of the contents sharing a key with a searching text,
    // grouped by key: a counting pass on the key's top bits (about 4 entries per bucket, so
    // the counts stay in cache), then a sort within each bucket.
    let entries: Vec<u64> = keys
        .iter()
        .enumerate()
        .filter(|&(_, &key)| key != DEAD && wanted[key as usize / 64] >> (key % 64) & 1 == 1)
        .map(|(c, &key)| u64::from(key) << 32 | c as u64)
        .collect();
    drop(keys);
    drop(wanted);
    const KEY_BITS: u32 = 8 * ATTACH_ROWS as u32;
    let bits = (usize::BITS - entries.len().leading_zeros())
        .saturating_sub(2)
        .clamp(4, KEY_BITS);
    let shift = 32 + KEY_BITS - bits;
    let mut bounds = vec![0u32; (1 << bits) + 1];
    for &e in &entries {
        bounds[(e >> shift) as usize + 1] += 1;
    }
    for i in 1..bounds.len() {
        bounds[i] += bounds[i - 1];
    }
    let mut sorted = vec![0u64; entries.len()];
    let mut next = bounds.clone();
    for &e in &entries {
        let b = &mut next[(e >> shift) as usize];
        sorted[*b as usize] = e;
        *b += 1;
    }
    drop(entries);
    for w in bounds.windows(2) {
        sorted[w[0] as usize..w[1] as usize].sort_unstable();
    }
    drop(bounds);
    drop(next);
    let window = max_group.max(1);
    let mut found = Vec::new();
    let mut local: Vec<Partner> = Vec::new();
    let mut pairs = 0u64;
    let mut left = budget.to_vec();
    // Groups of two or more with a text still searching.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let key = sorted[i] >> 32;
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] >> 32 == key {
            j += 1;
        }
        if j - i >= 2 && sorted[i..j].iter().any(|&e| left[e as u32 as usize] > 0) {
            groups.push((i, j));
        }
        i = j;
    }
    let touch = |(i, j): (usize, usize)| {
        for &e in &sorted[i..j] {
            touch(segs, base, e as u32);
            prefetch_item(roots, e as u32 as usize);
        }
    };
    for_each_group_ahead(&groups, touch, |(i, j)| {
        let g = &sorted[i..j];
        local.clear();
        local.resize(g.len(), Partner::NONE);
        for i in 0..g.len() {
            for j in i + 1..g.len().min(i + 1 + window) {
                let (x, y) = (g[i] as u32, g[j] as u32);
                let (lx, ly) = (left[x as usize] > 0, left[y as usize] > 0);
                if (!lx && !ly) || roots[x as usize] == roots[y as usize] {
                    continue;
                }
                pairs += 1;
                for (z, l) in [(x, lx), (y, ly)] {
                    if l {
                        left[z as usize] -= 1;
                    }
                }
                let (a, b) = (
                    global_signature(segs, base, x)?,
                    global_signature(segs, base, y)?,
                );
                let sim = signature_similarity(a, b);
                if sim < attach {
                    continue;
                }
                let sim = sim as f32;
                if lx {
                    let p = Partner::new(sim, b, y);
                    if p.beats(&local[i]) {
                        local[i] = p;
                    }
                }
                if ly {
                    let p = Partner::new(sim, a, x);
                    if p.beats(&local[j]) {
                        local[j] = p;
                    }
                }
            }
        }
        for (i, p) in local.iter().enumerate() {
            if p.content != u32::MAX {
                found.push((g[i] as u32, *p));
            }
        }
        Ok(())
    })?;
    Ok(BandAttach { found, pairs, left })
}

/// A candidate partner of a lone text.
#[derive(Debug, Clone, Copy)]
struct Partner {
    sim: f32,
    /// The tie-break between partners of equal similarity: the partner's first signature
    /// bytes, which do not depend on how the index is split into segments. (Equal bytes are,
    /// almost surely, copies of one text in different segments, in one group either way.)
    tie: u64,
    /// Global content, `u32::MAX` = none.
    content: u32,
}

impl Partner {
    const NONE: Partner = Partner {
        sim: -1.0,
        tie: u64::MAX,
        content: u32::MAX,
    };

    fn new(sim: f32, sig: &[u8], content: u32) -> Partner {
        let mut b = [0u8; 8];
        let n = sig.len().min(8);
        b[..n].copy_from_slice(&sig[..n]);
        Partner {
            sim,
            tie: u64::from_be_bytes(b),
            content,
        }
    }

    /// Whether this candidate is preferred to `other`.
    fn beats(&self, other: &Partner) -> bool {
        self.content != u32::MAX
            && (other.content == u32::MAX
                || self.sim > other.sim
                || (self.sim == other.sim && self.tie < other.tie))
    }
}

/// What one attachment band found.
struct BandAttach {
    /// Each lone text's best partner in each group.
    found: Vec<(u32, Partner)>,
    /// Pairs verified.
    pairs: u64,
    /// The verification budget left to each text after the band.
    left: Vec<u8>,
}

/// The verified edges among a band's candidate pairs, and the number of pairs checked.
fn group_edges(
    segs: &[Segment],
    base: &[u64],
    entries: &[(u64, u32)],
    opts: &ClusterOptions,
) -> Result<(Vec<Edge>, u64)> {
    let mut edges = Vec::new();
    let mut pairs = 0u64;
    for_each_pair(
        entries,
        opts.max_group,
        |c| touch(segs, base, c),
        |x, y, large| {
            pairs += 1;
            let sim = pair_similarity(segs, base, x, y)?;
            if sim >= opts.min_similarity {
                let (a, b) = if x < y { (x, y) } else { (y, x) };
                edges.push(Edge {
                    a,
                    b,
                    sim: sim as f32,
                    large,
                });
            }
            Ok(())
        },
    )?;
    Ok((edges, pairs))
}

/// Keeps the edges whose ends' closed neighbourhoods overlap enough (SCAN's structural
/// similarity). Edges from large groups are kept: they were sampled, not enumerated.
fn structural_filter(edges: Vec<Edge>, n: usize, eps: f64) -> Vec<Edge> {
    // CSR adjacency (edges are sorted by (a, b) and unique).
    let mut deg = vec![0u32; n + 1];
    for e in &edges {
        deg[e.a as usize + 1] += 1;
        deg[e.b as usize + 1] += 1;
    }
    for i in 0..n {
        deg[i + 1] += deg[i];
    }
    let mut adj = vec![0u32; deg[n] as usize];
    let mut pos = deg.clone();
    for e in &edges {
        adj[pos[e.a as usize] as usize] = e.b;
        pos[e.a as usize] += 1;
        adj[pos[e.b as usize] as usize] = e.a;
        pos[e.b as usize] += 1;
    }
    for i in 0..n {
        adj[deg[i] as usize..deg[i + 1] as usize].sort_unstable();
    }
    let nb = |x: u32| &adj[deg[x as usize] as usize..deg[x as usize + 1] as usize];
    edges
        .into_par_iter()
        .filter(|e| {
            if e.large {
                return true;
            }
            let (na, nbb) = (nb(e.a), nb(e.b));
            // |N[a] ∩ N[b]| with closed neighbourhoods: common open neighbours plus a and b
            // themselves (each is in the other's neighbourhood).
            let common = 2 + intersection_len(na, nbb);
            let sigma = common as f64 / (((na.len() + 1) * (nbb.len() + 1)) as f64).sqrt();
            sigma >= eps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{BuildOptions, IndexBuilder};
    use crate::input::RawPost;
    use crate::minhash::SplitMix64;

    const WORDS: [&str; 40] = [
        "river", "stone", "market", "winter", "signal", "garden", "copper", "window", "harbor",
        "lantern", "meadow", "engine", "ticket", "shadow", "butter", "planet", "ladder", "pocket",
        "silver", "candle", "forest", "bridge", "mirror", "saddle", "thunder", "violet", "anchor",
        "barrel", "cotton", "dragon", "falcon", "ginger", "hollow", "island", "jacket", "kettle",
        "lemon", "marble", "needle", "orchid",
    ];

    fn sentence(rng: &mut SplitMix64, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn post(id: &str, account: &str, ts: i64, text: &str) -> RawPost {
        RawPost {
            id: id.into(),
            text: text.into(),
            account: account.into(),
            platform: "x".into(),
            ts: Some(ts),
            line: 0,
        }
    }

    /// A campaign: a seed and `n` members, each with a serial number, a hashtag and one
    /// word swapped (all well within J >= 0.5 of the seed).
    fn campaign(
        rng: &mut SplitMix64,
        name: &str,
        seed: &str,
        n: usize,
        out: &mut Vec<RawPost>,
    ) -> Vec<String> {
        let words: Vec<&str> = seed.split(' ').collect();
        let mut ids = Vec::new();
        for i in 0..n {
            let mut w = words.clone();
            let k = (rng.next_u64() % w.len() as u64) as usize;
            w[k] = "zebra";
            let text = format!("#{} {} #tag{i}", 100 + i, w.join(" "));
            let id = format!("{name}{i}");
            out.push(post(
                &id,
                &format!("{name}-acct{}", i % 5),
                1_700_000_000 + i as i64 * 60,
                &text,
            ));
            ids.push(id);
        }
        ids
    }

    fn build(posts: &[RawPost], ballast_every: Option<usize>) -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions {
            memory_budget: 16 << 20,
            ..BuildOptions::default()
        };
        let mut b = IndexBuilder::create(dir.path(), opts).unwrap();
        for (i, chunk) in posts
            .chunks(ballast_every.unwrap_or(usize::MAX))
            .enumerate()
        {
            b.add(chunk).unwrap();
            if ballast_every.is_some() {
                // A post whose 8 MiB account name fills the buffer: forces a new segment.
                let mut p = post(
                    &format!("ballast{i}"),
                    &"b".repeat(8 << 20),
                    0,
                    &format!("ballast number {i} unique words"),
                );
                p.text.push_str(&"q".repeat(i + 1));
                b.add(&[p]).unwrap();
            }
        }
        b.finish().unwrap();
        let index = Index::open(dir.path()).unwrap();
        (dir, index)
    }

    fn corpus() -> (Vec<RawPost>, Vec<Vec<String>>) {
        let mut rng = SplitMix64(11);
        let mut posts = Vec::new();
        let mut camps = Vec::new();
        for name in ["alpha", "beta", "gamma"] {
            let seed = sentence(&mut rng, 30);
            let mut members = campaign(&mut rng, name, &seed, 12, &mut posts);
            // A copy cut down to its first 13 words: 11 of the members' 28 shingles, J of
            // about 0.39 to most members, so it joins only by attachment.
            let cut: Vec<&str> = seed.split(' ').take(13).collect();
            let id = format!("{name}-cut");
            posts.push(post(&id, "cutter", 1_700_100_000, &cut.join(" ")));
            members.push(id);
            camps.push(members);
        }
        for i in 0..150 {
            let s = sentence(&mut rng, 25);
            posts.push(post(
                &format!("bg{i}"),
                &format!("bg-acct{i}"),
                1_600_000_000 + i,
                &s,
            ));
        }
        (posts, camps)
    }

    fn cluster_of(report: &ClusterReport) -> std::collections::HashMap<String, u32> {
        report
            .clusters
            .iter()
            .flat_map(|c| c.posts.iter().map(move |p| (p.clone(), c.cluster)))
            .collect()
    }

    #[test]
    fn campaigns_form_one_cluster_each_and_background_stays_out() {
        let (posts, camps) = corpus();
        let (_d, index) = build(&posts, None);
        let report = index.clusters(&ClusterOptions::default()).unwrap();
        let of = cluster_of(&report);
        let mut seen = Vec::new();
        for members in &camps {
            let c = of[&members[0]];
            assert!(
                members.iter().all(|m| of.get(m) == Some(&c)),
                "campaign split: {members:?}"
            );
            assert!(!seen.contains(&c), "two campaigns merged");
            seen.push(c);
            let cl = &report.clusters[c as usize];
            assert_eq!(
                cl.size,
                members.len(),
                "background joined campaign cluster {cl:?}"
            );
            assert_eq!(cl.accounts, 6);
            assert_eq!(cl.earliest_post, members[0]);
            assert_eq!(cl.platforms.get("x"), Some(&members.len()));
            assert_eq!(cl.attached, 1, "{cl:?}");
            assert!(cl.weakest_link >= 0.3 && cl.weakest_link < 0.5);
            assert!(cl.edges >= cl.texts - 1);
            let profile = cl.time_profile.as_ref().unwrap();
            assert_eq!(profile.unit, "hour");
            assert_eq!(profile.counts.iter().sum::<u32>() as usize, members.len());
        }
        // Without attachment, the cut-down copies stay out.
        let strict = index
            .clusters(&ClusterOptions {
                attach_similarity: Some(0.0),
                ..ClusterOptions::default()
            })
            .unwrap();
        assert_eq!(strict.attached, 0);
        let of = cluster_of(&strict);
        for members in &camps {
            let (cut, rest) = members.split_last().unwrap();
            assert!(rest.iter().all(|m| of.get(m) == Some(&of[&rest[0]])));
            assert!(!of.contains_key(cut), "{cut} joined without attachment");
            let cl = &strict.clusters[of[&rest[0]] as usize];
            assert!(cl.weakest_link >= 0.5 && cl.attached == 0);
        }
        // Sorted by size, numbered in order.
        assert!(report.clusters.windows(2).all(|w| w[0].size >= w[1].size));
        assert!(report
            .clusters
            .iter()
            .enumerate()
            .all(|(i, c)| c.cluster as usize == i));
    }

    #[test]
    fn chaining_guard_splits_campaigns_bridged_by_one_post() {
        let mut rng = SplitMix64(5);
        let (sa, sb) = (sentence(&mut rng, 20), sentence(&mut rng, 20));
        let mut posts = Vec::new();
        let a = campaign(&mut rng, "a", &sa, 10, &mut posts);
        let b = campaign(&mut rng, "b", &sb, 10, &mut posts);
        // The bridge: both seeds in one post (J of about 0.37 to each side).
        posts.push(post(
            "bridge",
            "mixer",
            1_700_000_000,
            &format!("{sa} {sb}"),
        ));
        let (_d, index) = build(&posts, None);
        // By default (links at 0.5) the bridge is a lone text: it attaches to one campaign
        // and never joins the two.
        let default = index.clusters(&ClusterOptions::default()).unwrap();
        let of = cluster_of(&default);
        assert_ne!(of[&a[0]], of[&b[0]], "attachment bridged two campaigns");
        assert!(of[&"bridge".to_string()] == of[&a[0]] || of[&"bridge".to_string()] == of[&b[0]]);
        assert_eq!(default.attached, 1);
        let loose = index
            .clusters(&ClusterOptions {
                min_similarity: 0.3,
                ..ClusterOptions::default()
            })
            .unwrap();
        let of = cluster_of(&loose);
        assert_eq!(
            of[&a[0]], of[&b[0]],
            "the test needs the bridge to glue the campaigns at 0.3"
        );
        let strict = index
            .clusters(&ClusterOptions {
                min_similarity: 0.3,
                min_edge_support: 0.75,
                ..ClusterOptions::default()
            })
            .unwrap();
        let of = cluster_of(&strict);
        assert_ne!(of[&a[0]], of[&b[0]], "the guard left the bridge in place");
        // Each campaign keeps (nearly) all its members.
        for side in [&a, &b] {
            let main = side.iter().filter_map(|m| of.get(m)).fold(
                std::collections::HashMap::new(),
                |mut h, c| {
                    *h.entry(*c).or_insert(0) += 1;
                    h
                },
            );
            let biggest = main.values().copied().max().unwrap_or(0);
            assert!(biggest >= side.len() - 1, "campaign fragmented: {main:?}");
        }
    }

    #[test]
    fn same_clusters_from_one_or_two_threads_and_one_or_many_segments() {
        let (posts, _) = corpus();
        let (_d1, one) = build(&posts, None);
        let ids = |r: &ClusterReport| -> Vec<Vec<String>> {
            r.clusters
                .iter()
                .filter(|c| !c.posts.iter().any(|p| p.starts_with("ballast")))
                .map(|c| c.posts.clone())
                .collect()
        };
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let r1 = pool(1)
            .install(|| one.clusters(&ClusterOptions::default()))
            .unwrap();
        let r2 = pool(2)
            .install(|| one.clusters(&ClusterOptions::default()))
            .unwrap();
        assert_eq!(r1, r2);
        let (_d2, many) = build(&posts, Some(60));
        assert!(
            many.segments().len() >= 3,
            "{} segments",
            many.segments().len()
        );
        let r3 = many.clusters(&ClusterOptions::default()).unwrap();
        assert_eq!(ids(&r1), ids(&r3));
    }
}

#[cfg(test)]
mod extreme_tests {
    use super::*;
    use crate::index::{BuildOptions, IndexBuilder};
    use crate::input::RawPost;

    #[test]
    fn time_profile_survives_the_whole_timestamp_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = IndexBuilder::create(dir.path(), BuildOptions::default()).unwrap();
        let p = |id: &str, ts| RawPost {
            id: id.into(),
            text: "the same words posted twice".into(),
            ts: Some(ts),
            ..RawPost::default()
        };
        b.add(&[
            p("a", -9_000_000_000_000_000_000),
            p("b", 9_000_000_000_000_000_000),
        ])
        .unwrap();
        b.finish().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let r = index.clusters(&ClusterOptions::default()).unwrap();
        assert_eq!(r.clusters.len(), 1);
        let tp = r.clusters[0].time_profile.as_ref().unwrap();
        assert_eq!(
            (tp.unit, tp.counts.len(), tp.counts.iter().sum::<u32>()),
            ("day", 1000, 2)
        );
    }
}
