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
//! 6. **Containment** (`containment`, off by default): a lone text that found no partner
//!    by similarity joins the cluster of the candidate (from the same attachment bands, with
//!    an estimated similarity of at least 0.1) that it overlaps most, when the shingles the
//!    two share are at least the share C of the smaller set: a snippet of a member (its
//!    shingles lie inside it) or a member padded with other sentences (it holds the
//!    member's). The overlap is exact, from the stored texts, and at least 8 shingles; the
//!    link's similarity is the pair's exact Jaccard similarity. Like step 5 it never joins
//!    two clusters.
//!
//! Each cluster then names its **core text** (`core_texts`, on by default): its
//! representative is aligned ([`crate::text::align::core_passage`]) with the
//! [`CORE_SAMPLE`] − 1 next most posted texts, and the core text is the longest passage of
//! the representative that more than half of those texts' posts hold whole.
//!
//! Output is deterministic: clusters are numbered by size (largest first), then by earliest
//! post (time, then id), whatever the thread count; and it does not depend on how a writer
//! numbered contents (FORMAT.md, "Content order"): within a band key the self-join takes
//! contents in first-seen order, attachment orders a key's contents by their signatures,
//! and ties between variants and posts go to the earlier post (time, then id).

mod attach;
mod describe;
mod join;

use attach::*;
use describe::Described;
use join::*;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::segment::{prefetch_item, Segment, TextCache};
use crate::index::{ClusterAssignment, Index, IndexWriter, Manifest, PostAddr};
use crate::minhash::{bbit_estimate, equal_bytes, intersection_len};
use crate::text::align::{core_passage_with, CoreScratch, CoreText};

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
    /// Containment attachment (0 < C <= 1; `None`, the default: off): a text still alone
    /// after attachment by similarity joins the cluster of a text it overlaps by at least
    /// this share of the smaller of the two shingle sets (it holds at least C of the other's
    /// shingles, or at least C of its own lie inside the other), settled exactly from the
    /// stored texts. Needs stored texts. See step 6 in the module docs.
    pub containment: Option<f64>,
    /// Find each cluster's core text ([`Cluster::core_text`]; default true). It costs one
    /// alignment per sampled text (on dev_100k it doubled the time of the pass, see
    /// ARCHITECTURE.md); callers that need only the membership turn it off.
    pub core_texts: bool,
}

impl ClusterOptions {
    /// The attachment similarity in effect (`None` when attachment is off).
    pub fn attach(&self) -> Option<f64> {
        let a = self
            .attach_similarity
            .unwrap_or(ATTACH_RATIO * self.min_similarity);
        (a > 0.0 && a < self.min_similarity).then_some(a)
    }

    /// Checks the options that have a range.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `containment` is outside (0, 1].
    pub fn validate(&self) -> Result<()> {
        if let Some(c) = self.containment {
            if !(c > 0.0 && c <= 1.0) {
                return Err(Error::InvalidParameter(format!(
                    "containment must be in (0, 1], got {c}"
                )));
            }
        }
        Ok(())
    }
}

/// The default [`ClusterOptions::attach_similarity`] as a share of `min_similarity`.
pub const ATTACH_RATIO: f64 = 0.6;

/// Bytes of the 8-bit signature per attachment band (a 24-bit key).
const ATTACH_ROWS: usize = 3;

/// Least estimated similarity of a pair whose containment is settled from the stored texts
/// (step 6): a pair sharing a band key by chance estimates below it.
const CONTAIN_FLOOR: f64 = 0.1;

/// Least shingles two texts share for a containment attachment: a stock phrase of a few
/// words inside a long post does not make it a copy.
const CONTAIN_MIN_SHARED: usize = 8;

/// Distinct texts of a cluster (the most posted) aligned with its representative to find
/// its core text.
pub const CORE_SAMPLE: usize = 16;

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
    /// Of those, texts attached by containment.
    contained: usize,
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
            containment: None,
            core_texts: true,
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
    /// [`ClusterOptions::attach_similarity`]), by similarity or by containment.
    pub attached: usize,
    /// Of the texts attached, those that joined by containment
    /// ([`ClusterOptions::containment`]).
    pub contained: usize,
    /// The passage most of the cluster's posts share ([`core_passage`](crate::text::align::core_passage)), as offsets into
    /// the representative text; `None` without stored texts, with
    /// [`ClusterOptions::core_texts`] off, or when no passage of a
    /// shingle's width is shared by more than half of the posts sampled (the
    /// [`CORE_SAMPLE`] most posted distinct texts).
    pub core_text: Option<CoreText>,
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
    /// Of those, texts attached by containment.
    pub contained: u64,
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
        opts.validate()?;
        let segs = self.segments();
        if opts.containment.is_some() && segs.iter().any(|s| !s.has_text()) {
            return Err(Error::InvalidParameter(
                "clusters with containment need stored texts; this index was built with --no-store-text".into(),
            ));
        }
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
        let attach_bands = if opts.attach().is_some() || opts.containment.is_some() {
            self.manifest().params.num_perm as usize / ATTACH_ROWS
        } else {
            0
        };
        let by = AttachBy {
            similarity: opts.attach().unwrap_or(f64::INFINITY),
            containment: opts.containment.map(|c| (c, self.fingerprinter())),
            max_group: opts.max_group,
            n_bands: attach_bands,
        };
        let attach = (attach_bands > 0).then_some(&by);
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
        let mut contained = vec![
            false;
            if opts.containment.is_some() {
                total as usize
            } else {
                0
            }
        ];
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
            // 5-6. Attachment: the attached texts' links are weaker than every edge, so they
            // come last in Kruskal's order.
            if let Some(by) = attach {
                let (links, pairs) = attach_lone(segs, &base, &mut uf, by, &tick)?;
                candidate_pairs += pairs;
                for (x, y, sim, by_containment) in links {
                    uf.union(x, y);
                    attached[x as usize] = true;
                    if by_containment {
                        contained[x as usize] = true;
                    }
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
            // 5-6. Attachment.
            if let Some(by) = attach {
                let (found, pairs) = attach_lone(segs, &base, &mut uf, by, &tick)?;
                candidate_pairs += pairs;
                for (x, y, sim, by_containment) in found {
                    attached[x as usize] = true;
                    if by_containment {
                        contained[x as usize] = true;
                    }
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
        let built: Vec<Result<Option<Described>>> = members
            .into_par_iter()
            .map(|(root, group)| {
                let contents: Vec<u32> = group.iter().map(|g| g.1).collect();
                let (weak, n_edges) = weakest.get(&root).copied().unwrap_or((1.0, 0));
                let count = |flags: &[bool]| {
                    if flags.is_empty() {
                        0
                    } else {
                        contents.iter().filter(|&&c| flags[c as usize]).count()
                    }
                };
                let bonds = Bonds {
                    weakest: weak as f64,
                    edges: n_edges,
                    attached: count(&attached),
                    contained: count(&contained),
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
        let mut clusters = self.representative_texts(described, opts.core_texts)?;
        clusters.sort_by(|a, b| {
            b.size
                .cmp(&a.size)
                .then(
                    a.first_ts
                        .unwrap_or(i64::MAX)
                        .cmp(&b.first_ts.unwrap_or(i64::MAX)),
                )
                .then_with(|| a.earliest_post.cmp(&b.earliest_post))
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
            contained: contained.iter().filter(|&&a| a).count() as u64,
        })
    }
}

impl ClusterReport {
    /// The assignment to save into an index ([`IndexWriter::save_clusters`]), for clusters
    /// computed on generation `generation` with `opts`.
    pub fn assignment(&self, generation: u64, opts: &ClusterOptions) -> ClusterAssignment<'_> {
        ClusterAssignment {
            generation,
            clusters: self
                .clusters
                .iter()
                .map(|c| (c.cluster, c.addrs.as_slice()))
                .collect(),
            min_similarity: opts.min_similarity,
            min_edge_support: opts.min_edge_support,
        }
    }
}

impl Index {
    /// Saves a cluster assignment computed on this index into it: a new `CLUSTERS-<gen>.bin`
    /// published atomically through a new manifest generation (by an [`IndexWriter`]).
    /// Lookups of an index opened afterwards carry each hit's cluster and can expand hits
    /// to whole clusters. This index keeps its own generation (see [`Index::reload`]).
    ///
    /// # Errors
    /// [`Error::Locked`] if another writer holds the index's lock,
    /// [`Error::StaleGeneration`] if the index changed since it was opened, damage (every
    /// segment is checksummed first) and I/O errors.
    pub fn save_clusters(&self, report: &ClusterReport, opts: &ClusterOptions) -> Result<Manifest> {
        IndexWriter::open(self.dir())?
            .save_clusters(&report.assignment(self.manifest().generation, opts))
    }
}
