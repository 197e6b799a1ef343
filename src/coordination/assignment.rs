//! [`Assignment`]: which cluster each post of an index belongs to (saved, computed or by
//! identical text).

use std::collections::HashMap;

use serde::Serialize;

use super::NONE;
use crate::cluster::ClusterOptions;
use crate::error::Result;
use crate::index::clusters_file::ClustersFile;
use crate::index::{Index, PostAddr};

/// Where an [`Assignment`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The index's saved clusters (`textreuse clusters --save`).
    Saved,
    /// Clusters computed when the assignment was made (none were saved).
    Computed,
    /// Posts grouped by identical (normalized) text.
    SameText,
}

/// Which cluster each post of an index belongs to.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub(super) source: Source,
    /// Per segment (manifest order), per post: the cluster, or [`NONE`].
    pub(super) of: Vec<Vec<u32>>,
    pub(super) segment_ids: Vec<u64>,
    pub(super) n_clusters: u32,
}

impl Assignment {
    /// The index's saved clusters if it has any, otherwise clusters computed with `opts`.
    ///
    /// # Errors
    /// If the saved clusters file is damaged, or the clustering fails.
    pub fn clusters(index: &Index, opts: &ClusterOptions) -> Result<Assignment> {
        match Assignment::saved(index)? {
            Some(a) => Ok(a),
            None => Assignment::computed(index, opts),
        }
    }

    /// The index's saved clusters, or `None` when none are saved (or they do not cover every
    /// segment: the index grew since they were saved).
    ///
    /// # Errors
    /// If the clusters file is damaged.
    pub fn saved(index: &Index) -> Result<Option<Assignment>> {
        let m = index.manifest();
        let Some(entry) = &m.clusters else {
            return Ok(None);
        };
        let file = ClustersFile::open(index.dir(), entry, m, crate::index::Access::Mmap)?;
        if file.segment_ids().len() != index.segments().len() {
            return Ok(None);
        }
        let mut a = Assignment::empty(index, Source::Saved);
        for (s, seg) in index.segments().iter().enumerate() {
            let id = seg.entry().id;
            for (p, slot) in a.of[s].iter_mut().enumerate() {
                let c = file.cluster_of(PostAddr {
                    segment: id,
                    post: p as u32,
                });
                if let Some(c) = c {
                    *slot = c;
                    a.n_clusters = a.n_clusters.max(c.saturating_add(1));
                }
            }
        }
        Ok(Some(a))
    }

    /// Clusters computed now with `opts` (every post id list is left out).
    ///
    /// # Errors
    /// If the clustering fails.
    pub fn computed(index: &Index, opts: &ClusterOptions) -> Result<Assignment> {
        let opts = ClusterOptions {
            with_posts: false,
            core_texts: false,
            ..opts.clone()
        };
        let report = index.clusters(&opts)?;
        let mut a = Assignment::empty(index, Source::Computed);
        for c in &report.clusters {
            for &addr in &c.addrs {
                a.set(addr, c.cluster);
            }
            a.n_clusters = a.n_clusters.max(c.cluster.saturating_add(1));
        }
        Ok(a)
    }

    /// Posts grouped by identical normalized text (the content hash; within a segment
    /// without hashes, its content number). Texts posted once are in no group.
    ///
    /// # Errors
    /// If a segment is damaged.
    pub fn same_text(index: &Index) -> Result<Assignment> {
        let mut a = Assignment::empty(index, Source::SameText);
        let mut ids: HashMap<(u64, u128), u32> = HashMap::new();
        let mut count: Vec<u32> = Vec::new();
        for (s, seg) in index.segments().iter().enumerate() {
            for p in 0..seg.n_posts() as u32 {
                if seg.is_deleted(p) {
                    continue;
                }
                let c = seg.content_of(p)?;
                let key = match seg.content_hash(c) {
                    Some(h) => (u64::MAX, h),
                    None => (seg.entry().id, c as u128),
                };
                let next = ids.len() as u32;
                let g = *ids.entry(key).or_insert(next);
                if g as usize == count.len() {
                    count.push(0);
                }
                count[g as usize] += 1;
                a.of[s][p as usize] = g;
            }
        }
        // Texts posted once cannot co-post: out of every group, and groups renumbered densely.
        let mut renum = vec![NONE; count.len()];
        let mut n = 0u32;
        for (g, &k) in count.iter().enumerate() {
            if k >= 2 {
                renum[g] = n;
                n += 1;
            }
        }
        for seg in &mut a.of {
            for slot in seg.iter_mut() {
                if *slot != NONE {
                    *slot = renum[*slot as usize];
                }
            }
        }
        a.n_clusters = n;
        Ok(a)
    }

    fn empty(index: &Index, source: Source) -> Assignment {
        Assignment {
            source,
            of: index
                .segments()
                .iter()
                .map(|s| vec![NONE; s.n_posts() as usize])
                .collect(),
            segment_ids: index.segments().iter().map(|s| s.entry().id).collect(),
            n_clusters: 0,
        }
    }

    fn set(&mut self, addr: PostAddr, c: u32) {
        if let Some(s) = self.segment_ids.iter().position(|&id| id == addr.segment) {
            if let Some(slot) = self.of[s].get_mut(addr.post as usize) {
                *slot = c;
            }
        }
    }

    /// Where the assignment came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// One more than the largest cluster number.
    pub fn n_clusters(&self) -> u32 {
        self.n_clusters
    }

    /// The cluster of the post at `addr`, if it is in one.
    pub fn cluster_of(&self, addr: PostAddr) -> Option<u32> {
        let s = self.segment_ids.iter().position(|&id| id == addr.segment)?;
        let c = *self.of[s].get(addr.post as usize)?;
        (c != NONE).then_some(c)
    }

    /// The posts of every cluster, indexed by cluster number (live posts only, in index
    /// order).
    pub fn members(&self, index: &Index) -> Vec<Vec<PostAddr>> {
        let mut out = vec![Vec::new(); self.n_clusters as usize];
        for (s, seg) in index.segments().iter().enumerate() {
            let Some(of) = self.of.get(s) else { continue };
            for (p, &c) in of.iter().enumerate() {
                if c != NONE && !seg.is_deleted(p as u32) {
                    if let Some(v) = out.get_mut(c as usize) {
                        v.push(PostAddr {
                            segment: seg.entry().id,
                            post: p as u32,
                        });
                    }
                }
            }
        }
        out
    }
}
