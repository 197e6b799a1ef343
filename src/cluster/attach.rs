//! Steps 5 and 6, attachment: a lone text joins the cluster of its most similar text, or
//! failing that of a text it overlaps by containment, found through bands over the stored
//! 8-bit signatures.

use std::collections::HashMap;

use super::join::*;
use super::*;
use crate::fingerprint::{Fingerprinter, Scratch};

/// What a lone text may attach by.
pub(super) struct AttachBy<'a> {
    /// Least estimated similarity (`f64::INFINITY`: attachment by similarity is off).
    pub(super) similarity: f64,
    /// Least containment (step 6), settled exactly with this fingerprinter's shingles.
    pub(super) containment: Option<(f64, &'a Fingerprinter)>,
    /// As [`ClusterOptions::max_group`].
    pub(super) max_group: usize,
    /// Attachment bands.
    pub(super) n_bands: usize,
}

/// Attachments `(lone, partner, similarity, by containment)`.
pub(super) type Attachments = Vec<(u32, u32, f32, bool)>;

/// Steps 5 and 6: for every live content alone in `uf`, its most similar other content
/// among the candidates of the attachment bands, when at least `by.similarity`; else, with
/// `by.containment`, the candidate it overlaps most by containment, when at least that.
/// Returns the attachments in content order and the number of pairs verified.
pub(super) fn attach_lone(
    segs: &[Segment],
    base: &[u64],
    uf: &mut UnionFind,
    by: &AttachBy<'_>,
    tick: &(dyn Fn() + Sync),
) -> Result<(Attachments, u64)> {
    let n_bands = by.n_bands;
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
                let r = attach_band(segs, base, &roots, &budget, band, by);
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
        .map(|(x, p)| (x as u32, p.content, p.sim, p.contained))
        .collect();
    Ok((links, pairs))
}

/// One attachment band: the live contents that share 3 bytes of their 8-bit signature (a
/// 24-bit key) with a text still searching are grouped by that key, and within a group each
/// pair of contents at most `max_group` apart (all pairs in a group of up to
/// `max_group + 1`) with a searching end, in different groups of step 4, is verified: by
/// its estimated similarity, and (step 6) when that is below `by.similarity` but at least
/// [`CONTAIN_FLOOR`], by its exact containment. Returns each lone content's best partner in
/// each group, and the pairs verified.
pub(super) fn attach_band(
    segs: &[Segment],
    base: &[u64],
    roots: &[u32],
    budget: &[u8],
    band: usize,
    by: &AttachBy<'_>,
) -> Result<BandAttach> {
    let (attach, max_group) = (by.similarity, by.max_group);
    let mut sets = ShingleSets::default();
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
    // Entries `key << 96 | tie << 32 | content` of the contents sharing a key with a
    // searching text, grouped by key and, within a key, ordered by the contents' first
    // signature bytes (the tie of [`Partner`]), not by content number, which is a writer's
    // choice (FORMAT.md, "Content order"): which pairs a group's window and each text's
    // budget reach then depends on the texts alone. A counting pass on the key's top bits
    // (about 4 entries per bucket, so the counts stay in cache), then a sort within each
    // bucket.
    let mut entries: Vec<u128> = Vec::new();
    for (c, &key) in keys.iter().enumerate() {
        if key != DEAD && wanted[key as usize / 64] >> (key % 64) & 1 == 1 {
            let tie = Partner::new(0.0, 0.0, false, global_signature(segs, base, c as u32)?, 0).tie;
            entries.push(u128::from(key) << 96 | u128::from(tie) << 32 | c as u128);
        }
    }
    drop(keys);
    drop(wanted);
    const KEY_BITS: u32 = 8 * ATTACH_ROWS as u32;
    let bits = (usize::BITS - entries.len().leading_zeros())
        .saturating_sub(2)
        .clamp(4, KEY_BITS);
    let shift = 96 + KEY_BITS - bits;
    let mut bounds = vec![0u32; (1 << bits) + 1];
    for &e in &entries {
        bounds[(e >> shift) as usize + 1] += 1;
    }
    for i in 1..bounds.len() {
        bounds[i] += bounds[i - 1];
    }
    let mut sorted = vec![0u128; entries.len()];
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
        let key = sorted[i] >> 96;
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] >> 96 == key {
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
                // Each searching end's partner: by similarity, else by its containment.
                let (px, py) = if sim >= attach {
                    let s = sim as f32;
                    (Some((s, s, false)), Some((s, s, false)))
                } else {
                    match by.containment {
                        Some((c, fp)) if sim >= CONTAIN_FLOOR => {
                            match sets.overlap(segs, base, fp, x, y)? {
                                Some((jac, cx, cy)) => {
                                    let end = |own: f64, other: f64| {
                                        let v = contain_rank(own, other);
                                        (v >= c).then_some((jac as f32, v as f32, true))
                                    };
                                    (end(cx, cy), end(cy, cx))
                                }
                                None => continue,
                            }
                        }
                        _ => continue,
                    }
                };
                if let Some((sim, rank, contained)) = px.filter(|_| lx) {
                    let p = Partner::new(sim, rank, contained, b, y);
                    if p.beats(&local[i]) {
                        local[i] = p;
                    }
                }
                if let Some((sim, rank, contained)) = py.filter(|_| ly) {
                    let p = Partner::new(sim, rank, contained, a, x);
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

/// The exact shingle sets of global contents, from their stored texts, kept while a band
/// is joined (a lone text is compared with several partners).
#[derive(Default)]
struct ShingleSets {
    sets: HashMap<u32, Vec<u64>>,
    scratch: Scratch,
    cache: TextCache,
}

impl ShingleSets {
    /// Sets kept before the memo is emptied.
    const MAX: usize = 4096;

    fn get(&mut self, segs: &[Segment], base: &[u64], fp: &Fingerprinter, c: u32) -> Result<()> {
        if self.sets.contains_key(&c) {
            return Ok(());
        }
        if self.sets.len() >= Self::MAX {
            self.sets.clear();
        }
        let s = seg_of(base, c);
        let seg = &segs[s];
        let local = c - base[s] as u32;
        let set = match seg.content_posts(local)?.next() {
            Some(p) => match seg.text(p, &mut self.cache)? {
                Some(text) => fp.shingle_set(&text, &mut self.scratch).to_vec(),
                None => {
                    return Err(Error::InvalidParameter(
                        "clusters with containment need stored texts; this index was built with --no-store-text".into(),
                    ))
                }
            },
            None => Vec::new(),
        };
        self.sets.insert(c, set);
        Ok(())
    }

    /// The exact Jaccard similarity of contents `x` and `y` and the shares of `x`'s and of
    /// `y`'s shingles that the other holds, or `None` when they share fewer than
    /// [`CONTAIN_MIN_SHARED`] shingles.
    fn overlap(
        &mut self,
        segs: &[Segment],
        base: &[u64],
        fp: &Fingerprinter,
        x: u32,
        y: u32,
    ) -> Result<Option<(f64, f64, f64)>> {
        self.get(segs, base, fp, x)?;
        self.get(segs, base, fp, y)?;
        let (Some(a), Some(b)) = (self.sets.get(&x), self.sets.get(&y)) else {
            return Ok(None);
        };
        let both = intersection_len(a, b);
        if both < CONTAIN_MIN_SHARED {
            return Ok(None);
        }
        let union = a.len() + b.len() - both;
        let both = both as f64;
        Ok(Some((
            both / union as f64,
            both / a.len() as f64,
            both / b.len() as f64,
        )))
    }
}

/// The containment a lone text attaches by, from the share of its own shingles inside the
/// partner (`inside`: a snippet) and of the partner's inside it (`holds`: a padded copy):
/// either, the larger. On dev_100k at C = 0.8 either direction alone recovered fewer
/// truncate and affix members (ARCHITECTURE.md, "Containment in clusters").
fn contain_rank(inside: f64, holds: f64) -> f64 {
    inside.max(holds)
}

/// A candidate partner of a lone text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Partner {
    /// The link's similarity: estimated, or exact for a partner by containment.
    sim: f32,
    /// What partners are ranked by: the similarity, or the containment.
    rank: f32,
    /// Whether the partner was found by containment (step 6; a partner by similarity is
    /// preferred).
    contained: bool,
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
        rank: -1.0,
        contained: true,
        tie: u64::MAX,
        content: u32::MAX,
    };

    pub(super) fn new(sim: f32, rank: f32, contained: bool, sig: &[u8], content: u32) -> Partner {
        let mut b = [0u8; 8];
        let n = sig.len().min(8);
        b[..n].copy_from_slice(&sig[..n]);
        Partner {
            sim,
            rank,
            contained,
            tie: u64::from_be_bytes(b),
            content,
        }
    }

    /// Whether this candidate is preferred to `other`: by similarity before by
    /// containment, then the higher rank, then the tie-break.
    pub(super) fn beats(&self, other: &Partner) -> bool {
        self.content != u32::MAX
            && (other.content == u32::MAX
                || (!self.contained && other.contained)
                || (self.contained == other.contained
                    && (self.rank > other.rank
                        || (self.rank == other.rank && self.tie < other.tie))))
    }
}

/// What one attachment band found.
pub(super) struct BandAttach {
    /// Each lone text's best partner in each group.
    found: Vec<(u32, Partner)>,
    /// Pairs verified.
    pairs: u64,
    /// The verification budget left to each text after the band.
    left: Vec<u8>,
}
