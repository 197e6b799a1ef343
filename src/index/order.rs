//! Content order: the ids a segment's writer (a build's flush, a merge) gives its contents,
//! so that near-duplicates sit together.
//!
//! A lookup into a campaign verifies thousands of candidate contents: their signatures
//! (128 bytes each) and post ranges are read from a few adjacent pages and cache lines when
//! the contents are neighbours, instead of one page each. The writer first numbers contents
//! as they come (first seen), builds the band tables on those numbers, and feeds each group
//! of contents sharing a band key (one band after another, in key order) to
//! [`ContentOrder::add_group`]. A group's contents that belong to no earlier group join the
//! earliest group among the others', or found a new one: groups never merge, so a chain of
//! loosely similar texts cannot sweep the segment into one giant group, and a content's
//! place depends only on the bands before the first that pairs it. Contents are then
//! ordered by group (founded by first-seen content), first seen first within a group.
//!
//! The order is deterministic (band and key order, first-seen numbers) and costs one pass
//! over the band tables the writer builds anyway. Readers do not rely on it (FORMAT.md): it
//! changes which contents sit together, never what a lookup returns.

/// No group yet.
const NONE: u32 = u32::MAX;

/// The groups of contents sharing band keys, collected band after band; see the module doc.
pub(crate) struct ContentOrder {
    /// Per content (first-seen number), the first-seen number naming its group.
    group: Vec<u32>,
}

impl ContentOrder {
    /// An order for `n` contents, no group yet.
    pub(crate) fn new(n: usize) -> ContentOrder {
        ContentOrder {
            group: vec![NONE; n],
        }
    }

    /// Contents (first-seen numbers) that share one band key. Members out of range are
    /// ignored (the caller checked them; the order never decides correctness).
    pub(crate) fn add_group(&mut self, members: &[u32]) {
        if members.len() < 2 {
            return;
        }
        let mut g = NONE;
        let mut first = NONE;
        for &m in members {
            if let Some(&x) = self.group.get(m as usize) {
                g = g.min(x);
                first = first.min(m);
            }
        }
        if g == NONE {
            g = first;
        }
        for &m in members {
            if let Some(x) = self.group.get_mut(m as usize) {
                if *x == NONE {
                    *x = g;
                }
            }
        }
    }

    /// The groups of one band's table as the build lays it out: per bucket (`dirs`), runs
    /// of equal tags share a key; `cids` are first-seen numbers.
    pub(crate) fn add_table(&mut self, dirs: &[u32], tags: &[u32], cids: &[u32]) {
        for w in dirs.windows(2) {
            let (lo, hi) = (w[0] as usize, (w[1] as usize).min(tags.len()));
            let mut i = lo;
            while i < hi {
                let mut j = i + 1;
                while j < hi && tags[j] == tags[i] {
                    j += 1;
                }
                self.add_group(&cids[i..j]);
                i = j;
            }
        }
    }

    /// The final ids: `rank[c]` is the id of the content first seen as `c`. Contents are
    /// ordered by group (a group by the first-seen number naming it; a content in no group
    /// is its own), then first seen first.
    pub(crate) fn finish(self) -> Vec<u32> {
        let n = self.group.len();
        let label = |c: usize| match self.group[c] {
            NONE => c,
            g => g as usize,
        };
        let mut start = vec![0u32; n + 1];
        for c in 0..n {
            start[label(c) + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut rank = vec![0u32; n];
        for (c, r) in rank.iter_mut().enumerate() {
            let l = label(c);
            *r = start[l];
            start[l] += 1;
        }
        rank
    }
}

/// The inverse of a permutation: `perm[rank[c]] = c`.
pub(crate) fn invert(rank: &[u32]) -> Vec<u32> {
    let mut perm = vec![0u32; rank.len()];
    for (c, &r) in rank.iter().enumerate() {
        perm[r as usize] = c as u32;
    }
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_permutation(rank: &[u32]) -> bool {
        let mut seen = vec![false; rank.len()];
        rank.iter()
            .all(|&r| (r as usize) < rank.len() && !std::mem::replace(&mut seen[r as usize], true))
    }

    #[test]
    fn contents_sharing_keys_become_neighbours_and_the_rest_keep_first_seen_order() {
        // Ten contents; 1, 4 and 8 share a key in band 0; 8 and 9 in band 1; 2 and 6 in band 1.
        let mut o = ContentOrder::new(10);
        o.add_group(&[1, 4, 8]);
        o.add_group(&[3]);
        o.add_group(&[8, 9]);
        o.add_group(&[6, 2]);
        let rank = o.finish();
        assert!(is_permutation(&rank));
        let perm = invert(&rank);
        assert_eq!(perm, vec![0, 1, 4, 8, 9, 2, 6, 3, 5, 7]);
        for (c, &r) in rank.iter().enumerate() {
            assert_eq!(perm[r as usize], c as u32);
        }
    }

    #[test]
    fn groups_never_merge_so_chains_stay_bounded() {
        // Two groups founded in band 0, then a key shared across them: members keep their
        // groups, and a newcomer joins the earlier one.
        let mut o = ContentOrder::new(6);
        o.add_group(&[0, 1]);
        o.add_group(&[2, 3]);
        o.add_group(&[3, 1, 5]);
        let perm = invert(&o.finish());
        assert_eq!(perm, vec![0, 1, 5, 2, 3, 4]);
    }

    #[test]
    fn a_table_s_runs_of_equal_tags_are_its_groups() {
        // Two buckets: [tags 5 5 7] and [tags 5 9 9]; the 5 of the second bucket is
        // another key than the 5 of the first.
        let dirs = [0, 3, 6];
        let tags = [5, 5, 7, 5, 9, 9];
        let cids = [4, 6, 0, 1, 2, 5];
        let mut o = ContentOrder::new(7);
        o.add_table(&dirs, &tags, &cids);
        let perm = invert(&o.finish());
        assert_eq!(perm, vec![0, 1, 2, 5, 3, 4, 6]);
        // The same order whatever the input, and nothing out of range panics.
        let mut o = ContentOrder::new(3);
        o.add_group(&[0, 7, 2]);
        assert_eq!(invert(&o.finish()), vec![0, 2, 1]);
    }
}
