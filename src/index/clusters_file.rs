//! The saved cluster assignment: `CLUSTERS-<generation>.bin`.
//!
//! Envelope magic `TRCLUST\0`. Posts are numbered globally in manifest segment order
//! (`seg_base[i] + post`). Sections:
//!
//! | # | name | type |
//! |---|------|------|
//! | 0 | meta | `n_posts u64, n_clusters u64, n_segments u64` |
//! | 1 | seg_ids | `u64[n_segments]` |
//! | 2 | seg_base | `u64[n_segments + 1]` |
//! | 3 | cluster_of | `u32[n_posts]`, `u32::MAX` = in no cluster |
//! | 4 | cluster_offsets | `u64[n_clusters + 1]` |
//! | 5 | members | `u64[..]` global post numbers, by time within a cluster |

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::format::{read_u64, Envelope, EnvelopeWriter, LeArray};
use super::manifest::{ClustersEntry, Manifest};
use super::mmap::Data;
use super::Access;
use super::PostAddr;
use crate::error::{Error, Result};

/// Magic bytes of the clusters file.
pub const CLUSTERS_MAGIC: &[u8; 8] = b"TRCLUST\0";
const SECTIONS: [&str; 6] = [
    "meta",
    "seg_ids",
    "seg_base",
    "cluster_of",
    "cluster_offsets",
    "members",
];

/// An open clusters file.
#[derive(Debug)]
pub struct ClustersFile {
    path: PathBuf,
    data: Data,
    env: Envelope,
    seg_ids: Vec<u64>,
    seg_base: Vec<u64>,
    n_clusters: u64,
    cluster_of: Range<usize>,
    offsets: Range<usize>,
    members: Range<usize>,
}

impl ClustersFile {
    /// Opens and validates the clusters file named by `entry` against the manifest.
    pub fn open(
        dir: &Path,
        entry: &ClustersEntry,
        manifest: &Manifest,
        access: Access,
    ) -> Result<ClustersFile> {
        let valid = entry.file.starts_with("CLUSTERS-") && !entry.file.contains(['/', '\\']);
        let path = dir.join(&entry.file);
        if !valid {
            return Err(Error::corrupt(
                &path,
                "the manifest names an invalid clusters file",
            ));
        }
        let data = Data::open(&path, access)?;
        if data.len() as u64 != entry.len {
            return Err(Error::corrupt(
                &path,
                format!("is {} bytes, the manifest says {}", data.len(), entry.len),
            ));
        }
        let env = Envelope::parse(&path, &data, CLUSTERS_MAGIC, "clusters")?;
        let m = env.section(&path, 0, 0)?;
        if m.len() < 24 {
            return Err(Error::corrupt(&path, "meta section is too short"));
        }
        let meta = &data[m];
        let (n_posts, n_clusters, n_segs) =
            (read_u64(meta, 0), read_u64(meta, 8), read_u64(meta, 16));
        // The saved segments are the manifest's first ones: segments appended after the
        // clusters were saved have no cluster until they are saved again.
        if n_segs > manifest.segments.len() as u64 || n_clusters > n_posts {
            return Err(Error::corrupt(&path, "meta disagrees with the manifest"));
        }
        let arr = |i: usize, count: u64, w: u64| -> Result<Range<usize>> {
            let r = env.section(&path, i, i as u32)?;
            if Some(r.len() as u64) != count.checked_mul(w) {
                return Err(Error::corrupt(
                    &path,
                    format!("section {} has a wrong length", SECTIONS[i]),
                ));
            }
            Ok(r)
        };
        let ids_r = arr(1, n_segs, 8)?;
        let base_r = arr(2, n_segs + 1, 8)?;
        let seg_ids: Vec<u64> = (0..n_segs as usize)
            .map(|i| read_u64(&data[ids_r.clone()], i * 8))
            .collect();
        let seg_base: Vec<u64> = (0..=n_segs as usize)
            .map(|i| read_u64(&data[base_r.clone()], i * 8))
            .collect();
        let mut expect = 0;
        for (i, s) in manifest.segments.iter().take(n_segs as usize).enumerate() {
            if seg_ids[i] != s.id || seg_base[i] != expect {
                return Err(Error::corrupt(&path, "segments disagree with the manifest"));
            }
            expect += s.posts;
        }
        if seg_base[n_segs as usize] != expect || n_posts != expect {
            return Err(Error::corrupt(&path, "segments disagree with the manifest"));
        }
        let cluster_of = arr(3, n_posts, 4)?;
        let offsets = arr(4, n_clusters + 1, 8)?;
        let members = env.section(&path, 5, 5)?;
        if members.len() % 8 != 0 {
            return Err(Error::corrupt(&path, "members section has a wrong length"));
        }
        Ok(ClustersFile {
            path,
            data,
            env,
            seg_ids,
            seg_base,
            n_clusters,
            cluster_of,
            offsets,
            members,
        })
    }

    fn global(&self, addr: PostAddr) -> Option<u64> {
        let i = self.seg_ids.iter().position(|&s| s == addr.segment)?;
        Some(self.seg_base[i] + addr.post as u64)
    }

    fn addr(&self, g: u64) -> Result<PostAddr> {
        let i = self.seg_base.partition_point(|&b| b <= g).saturating_sub(1);
        match (self.seg_ids.get(i), self.seg_base.get(i + 1)) {
            (Some(&segment), Some(&end)) if g < end => Ok(PostAddr {
                segment,
                post: (g - self.seg_base[i]) as u32,
            }),
            _ => Err(Error::corrupt(
                &self.path,
                format!("member {g} out of range"),
            )),
        }
    }

    /// The ids of the segments the assignment covers (the manifest's first ones).
    pub fn segment_ids(&self) -> &[u64] {
        &self.seg_ids
    }

    /// The cluster of a post, if it is in one.
    pub fn cluster_of(&self, addr: PostAddr) -> Option<u32> {
        let g = self.global(addr)?;
        let c = LeArray::<4>::proven(&self.data[self.cluster_of.clone()]).get(g as usize)?;
        (c != u32::MAX && (c as u64) < self.n_clusters).then_some(c)
    }

    /// The posts of cluster `c`, by time.
    pub fn members(&self, c: u32) -> Result<Vec<PostAddr>> {
        let offs = LeArray::<8>::proven(&self.data[self.offsets.clone()]);
        let mem = LeArray::<8>::proven(&self.data[self.members.clone()]);
        let (Some(s), Some(e)) = (offs.get(c as usize), offs.get(c as usize + 1)) else {
            return Err(Error::corrupt(
                &self.path,
                format!("cluster {c} out of range"),
            ));
        };
        if s > e || e as usize > mem.len() {
            return Err(Error::corrupt(
                &self.path,
                format!("cluster {c} has members {s}..{e}"),
            ));
        }
        (s..e)
            .map(|i| self.addr(mem.get(i as usize).unwrap_or(u64::MAX)))
            .collect()
    }

    /// Checks every section checksum.
    pub fn verify(&self) -> Result<()> {
        self.env.verify(&self.path, &self.data, &SECTIONS)
    }
}

/// A cluster assignment to save into an index ([`Index::save_clusters`](crate::Index::save_clusters)):
/// each cluster's number and posts (in the order to store), and the thresholds it was
/// made with.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterAssignment<'a> {
    /// The generation of the index the clusters were computed on (saving refuses any
    /// other).
    pub generation: u64,
    /// Each cluster's number and its posts.
    pub clusters: Vec<(u32, &'a [PostAddr])>,
    /// The edge similarity the clusters were made with.
    pub min_similarity: f64,
    /// The structural edge support they were made with (0 = none).
    pub min_edge_support: f64,
}

/// Writes the clusters file of generation `generation` for the segments of `m`, and returns
/// its manifest entry. The file is not named by any manifest yet.
pub(crate) fn write_clusters_file(
    dir: &Path,
    m: &Manifest,
    generation: u64,
    a: &ClusterAssignment<'_>,
) -> Result<ClustersEntry> {
    let mut seg_base = vec![0u64];
    for s in &m.segments {
        seg_base.push(seg_base[seg_base.len() - 1] + s.posts);
    }
    let n_posts = m.posts();
    let global = |a: PostAddr| -> u64 {
        let i = m
            .segments
            .iter()
            .position(|s| s.id == a.segment)
            .unwrap_or(0);
        seg_base[i] + a.post as u64
    };
    let mut cluster_of = vec![u32::MAX; n_posts as usize];
    let mut offsets = vec![0u64];
    let mut members = Vec::new();
    for &(c, addrs) in &a.clusters {
        for &addr in addrs {
            let g = global(addr);
            if let Some(slot) = cluster_of.get_mut(g as usize) {
                *slot = c;
            }
            members.push(g);
        }
        offsets.push(members.len() as u64);
    }
    let name = format!("CLUSTERS-{generation:06}.bin");
    let path = dir.join(&name);
    let mut w = EnvelopeWriter::create(&path, CLUSTERS_MAGIC, SECTIONS.len())?;
    w.begin(0)?;
    w.write_u64s(&[n_posts, a.clusters.len() as u64, m.segments.len() as u64])?;
    w.begin(1)?;
    w.write_u64s(&m.segments.iter().map(|s| s.id).collect::<Vec<_>>())?;
    w.begin(2)?;
    w.write_u64s(&seg_base)?;
    w.begin(3)?;
    w.write_u32s(&cluster_of)?;
    w.begin(4)?;
    w.write_u64s(&offsets)?;
    w.begin(5)?;
    w.write_u64s(&members)?;
    let len = w.finish()?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(ClustersEntry {
        file: name,
        len,
        xxh3: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)),
        min_similarity: a.min_similarity,
        min_edge_support: a.min_edge_support,
        clusters: a.clusters.len() as u64,
    })
}
