//! Grouping accounts joined by edges: connected components, or communities by label
//! propagation.

use super::IntMap;

/// Connected components: each node's representative (the smallest node of its component).
pub(crate) fn components(n: usize, edges: &[(usize, usize, u32)]) -> Vec<usize> {
    let mut uf: Vec<usize> = (0..n).collect();
    fn find(uf: &mut [usize], mut x: usize) -> usize {
        while uf[x] != x {
            uf[x] = uf[uf[x]];
            x = uf[x];
        }
        x
    }
    for &(a, b, _) in edges {
        let (ra, rb) = (find(&mut uf, a), find(&mut uf, b));
        if ra != rb {
            uf[ra.max(rb)] = ra.min(rb);
        }
    }
    (0..n).map(|x| find(&mut uf, x)).collect()
}

/// Rounds of label propagation at most.
const LPA_ROUNDS: usize = 30;

/// Communities by weighted label propagation (Raghavan et al. 2007), deterministic: nodes
/// in order take the label of the heaviest total edge weight among their neighbours
/// (ties: the current label if it is among the heaviest, else the smallest), until no label
/// changes or [`LPA_ROUNDS`] rounds. Returns each node's label (a node number). A prolific
/// account that co-posts with many campaigns joins one of them instead of gluing them into
/// one component.
pub(crate) fn communities(n: usize, edges: &[(usize, usize, u32)]) -> Vec<usize> {
    // Adjacency in compressed rows.
    let mut deg = vec![0usize; n + 1];
    for &(a, b, _) in edges {
        deg[a] += 1;
        deg[b] += 1;
    }
    let mut start = vec![0usize; n + 1];
    for i in 0..n {
        start[i + 1] = start[i] + deg[i];
    }
    let mut fill = start.clone();
    let mut adj = vec![(0usize, 0u32); start[n]];
    for &(a, b, w) in edges {
        adj[fill[a]] = (b, w);
        fill[a] += 1;
        adj[fill[b]] = (a, w);
        fill[b] += 1;
    }
    let mut label: Vec<usize> = (0..n).collect();
    let mut weight: IntMap<usize, u64> = IntMap::default();
    for _ in 0..LPA_ROUNDS {
        let mut changed = false;
        for x in 0..n {
            weight.clear();
            for &(y, w) in &adj[start[x]..start[x + 1]] {
                *weight.entry(label[y]).or_default() += w as u64;
            }
            let Some(best) = weight.values().copied().max() else {
                continue;
            };
            let cur = label[x];
            if weight.get(&cur) == Some(&best) {
                continue;
            }
            let pick = weight
                .iter()
                .filter(|(_, &w)| w == best)
                .map(|(&l, _)| l)
                .min()
                .unwrap_or(cur);
            if pick != cur {
                label[x] = pick;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    label
}
