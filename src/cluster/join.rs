//! The band self-join: union-find, candidate pairs from band groups, verification and
//! the structural (SCAN) chaining guard.

use super::*;

/// Union-find with path halving and union by size.
pub(super) struct UnionFind {
    pub(super) parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub(super) fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub(super) fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// Points every element straight at its root, so that [`root`](Self::root) takes one
    /// read until the next union.
    pub(super) fn flatten(&mut self) {
        for x in 0..self.parent.len() as u32 {
            let r = self.find(x);
            self.parent[x as usize] = r;
        }
    }

    /// The root of `x`, without compressing paths (for shared readers).
    pub(super) fn root(&self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }

    pub(super) fn union(&mut self, a: u32, b: u32) -> bool {
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

/// Joins the groups of `x` and `y` by a link of similarity `sim`, keeping each root's
/// weakest link and link count. Whether they were apart.
pub(super) fn join(
    uf: &mut UnionFind,
    weak: &mut [f32],
    links: &mut [u32],
    x: u32,
    y: u32,
    sim: f32,
) -> bool {
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
pub(super) fn seg_of(base: &[u64], c: u32) -> usize {
    base.partition_point(|&b| b <= c as u64).saturating_sub(1)
}

/// One band's entries over all segments as `(key prefix, global content)`, sorted. Key
/// prefixes are compared on the bits every segment has (32 in format 2). Contents whose
/// posts are all deleted are left out, so they join nothing.
pub(super) fn band_entries(segs: &[Segment], base: &[u64], band: usize) -> Result<Vec<(u64, u32)>> {
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
        // Each segment's entries are already in prefix order: a stable sort finds those
        // runs and merges them, equal prefixes keeping segment order and, within a segment,
        // file order (first seen first: FORMAT.md), as one merged segment would hold them.
        entries.sort_by_key(|e| e.0);
    }
    Ok(entries)
}

/// Calls `f(x, y, large)` for the candidate pairs of sorted entries: all pairs within a
/// group of equal prefixes of up to `max_group` contents, a star plus a chain in a larger one.
/// `touch(c)` is called a few groups ahead of the pairs that read content `c`, so that the
/// signatures' cache misses overlap.
pub(super) fn for_each_pair(
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
pub(super) fn for_each_group_ahead(
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
pub(super) fn touch(segs: &[Segment], base: &[u64], c: u32) {
    let s = seg_of(base, c);
    segs[s].touch_signature(c - base[s] as u32);
}

/// The 8-bit signature of global content `c`.
pub(super) fn global_signature<'a>(segs: &'a [Segment], base: &[u64], c: u32) -> Result<&'a [u8]> {
    let s = seg_of(base, c);
    segs[s].signature(c - base[s] as u32)
}

/// The estimated similarity of two global contents.
pub(super) fn pair_similarity(segs: &[Segment], base: &[u64], x: u32, y: u32) -> Result<f64> {
    Ok(signature_similarity(
        global_signature(segs, base, x)?,
        global_signature(segs, base, y)?,
    ))
}

/// The estimated similarity of two 8-bit signatures.
pub(super) fn signature_similarity(a: &[u8], b: &[u8]) -> f64 {
    bbit_estimate(equal_bytes(a, b), a.len())
}

/// The verified edges among a band's candidate pairs, and the number of pairs checked.
pub(super) fn group_edges(
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
pub(super) fn structural_filter(edges: Vec<Edge>, n: usize, eps: f64) -> Vec<Edge> {
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
