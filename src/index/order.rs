//! Content order: the ids a segment's writer (a build's flush, a merge) gives its contents,
//! so that near-duplicates sit together.
//!
//! A lookup into a campaign verifies thousands of candidate contents: their signatures
//! (128 bytes each) and post ranges are read from a few adjacent pages and cache lines when
//! the contents are neighbours, instead of one page each. The writer first numbers contents
//! as they come (first seen), builds the band tables on those numbers, and feeds each group
//! of contents sharing a band key (one band after another, in key order) to
//! [`ContentOrder::add_group`]. Each content joins the group of the largest key group it is
//! in (the first such on ties): the group of that key group's least first-seen member, or
//! that member itself when it has none yet. Contents are then ordered by group (named by a
//! first-seen number), first seen first within a group.
//!
//! Why the largest: a campaign's copies carry edits (a serial number, a hashtag, a changed
//! word) in different bands, so each band splits them into one big key group (the copies
//! its edits missed) and small ones (copies sharing one edit). Every big key group has the
//! same least member, the campaign's first copy, so the campaign becomes one group. The
//! earlier rule (join the earliest group among the others' or found one; groups never
//! merge) let the small key groups of the first bands found groups of their own: at dev
//! 10M a limit-10 campaign lookup's 1,766 candidates lay in 356 separate runs of ids.
//! A content's group comes from one key group, so a chain of loosely similar texts moves
//! a content only into a larger key group than any it was in.
//!
//! The order is deterministic (band and key order, first-seen numbers) and costs one pass
//! over the band tables the writer builds anyway. Readers do not rely on it (FORMAT.md): it
//! changes which contents sit together, never what a lookup returns.

/// No group yet.
const NONE: u32 = u32::MAX;

/// The groups of contents sharing band keys, collected band after band; see the module doc.
pub(crate) struct ContentOrder {
    /// Per content (first-seen number), the members of the largest key group it is in so
    /// far (0: none yet).
    size: Vec<u32>,
    /// Per content, its group's name (a first-seen number; `NONE` while in no key group).
    group: Vec<u32>,
}

impl ContentOrder {
    /// An order for `n` contents, no group yet.
    pub(crate) fn new(n: usize) -> ContentOrder {
        ContentOrder {
            size: vec![0; n],
            group: vec![NONE; n],
        }
    }

    /// Contents (first-seen numbers) that share one band key. Members out of range are
    /// ignored (the caller checked them; the order never decides correctness).
    pub(crate) fn add_group(&mut self, members: &[u32]) {
        if members.len() < 2 {
            return;
        }
        let n = self.group.len();
        let Some(first) = members.iter().copied().filter(|&m| (m as usize) < n).min() else {
            return;
        };
        // The group is named by its least member's group when that member has one (so
        // contents follow it), else by that member.
        let name = match self.group[first as usize] {
            NONE => first,
            g => g,
        };
        let size = u32::try_from(members.len()).unwrap_or(u32::MAX);
        for &m in members {
            let m = m as usize;
            if m < n && size > self.size[m] {
                self.size[m] = size;
                self.group[m] = name;
            }
        }
    }

    /// The groups of one band's table as the build lays it out: per bucket (`dirs`), runs
    /// of equal tags share a key; `cids` are first-seen numbers.
    #[cfg(test)]
    pub(crate) fn add_table(&mut self, dirs: &[u32], tags: &[u32], cids: &[u32]) {
        self.add_groups(&KeyGroups::of_table(dirs, tags, cids));
    }

    /// Key groups collected apart (on another thread) by [`KeyGroups`], in their order.
    pub(crate) fn add_groups(&mut self, g: &KeyGroups) {
        let mut start = 0;
        for &end in &g.ends {
            self.add_group(g.members.get(start..end as usize).unwrap_or_default());
            start = end as usize;
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

/// The key groups of two or more contents of one band, collected (on the thread that
/// made the band's table) for [`ContentOrder::add_groups`]: the groups of one member,
/// most of them, change no order and are left out.
#[derive(Debug, Default)]
pub(crate) struct KeyGroups {
    /// The groups' members, one group after another.
    pub(crate) members: Vec<u32>,
    /// Where each group ends in `members`.
    pub(crate) ends: Vec<u32>,
}

impl KeyGroups {
    /// Adds a group (one of a single member is left out).
    #[inline]
    pub(crate) fn push(&mut self, group: &[u32]) {
        if group.len() >= 2 {
            self.members.extend_from_slice(group);
            self.ends.push(self.members.len() as u32);
        }
    }

    /// The groups of one band's table as the build lays it out: per bucket (`dirs`), runs
    /// of equal tags (an entry's high 32 bits) share a key; content ids (its low 32 bits)
    /// are first-seen numbers.
    pub(crate) fn of_entries(dirs: &[u32], entries: &[u64]) -> KeyGroups {
        let mut g = KeyGroups::default();
        for w in dirs.windows(2) {
            let (lo, hi) = (w[0] as usize, (w[1] as usize).min(entries.len()));
            let mut i = lo;
            while i < hi {
                let tag = entries[i] >> 32;
                let mut j = i + 1;
                while j < hi && entries[j] >> 32 == tag {
                    j += 1;
                }
                if j - i >= 2 {
                    g.members.extend(entries[i..j].iter().map(|&e| e as u32));
                    g.ends.push(g.members.len() as u32);
                }
                i = j;
            }
        }
        g
    }

    /// The groups of one band's table as tag and content id arrays (`cids` first-seen
    /// numbers): [`of_entries`](Self::of_entries) with the two apart.
    #[cfg(test)]
    pub(crate) fn of_table(dirs: &[u32], tags: &[u32], cids: &[u32]) -> KeyGroups {
        let mut g = KeyGroups::default();
        for w in dirs.windows(2) {
            let (lo, hi) = (
                w[0] as usize,
                (w[1] as usize).min(tags.len()).min(cids.len()),
            );
            let mut i = lo;
            while i < hi {
                let mut j = i + 1;
                while j < hi && tags[j] == tags[i] {
                    j += 1;
                }
                g.push(&cids[i..j]);
                i = j;
            }
        }
        g
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
        // 9 follows 8 into 1's group.
        assert_eq!(perm, vec![0, 1, 4, 8, 9, 2, 6, 3, 5, 7]);
        for (c, &r) in rank.iter().enumerate() {
            assert_eq!(perm[r as usize], c as u32);
        }
    }

    #[test]
    fn a_content_joins_the_largest_key_group_it_is_in() {
        // 3 is first paired with 2, then found in a larger key group with 1 and 5: it moves
        // to the group of 1 (which is 0's); 2 stays alone in its own.
        let mut o = ContentOrder::new(6);
        o.add_group(&[0, 1]);
        o.add_group(&[2, 3]);
        o.add_group(&[3, 1, 5]);
        let perm = invert(&o.finish());
        assert_eq!(perm, vec![0, 1, 3, 5, 2, 4]);
        // A smaller key group later moves nobody.
        let mut o = ContentOrder::new(6);
        o.add_group(&[3, 1, 5]);
        o.add_group(&[2, 3]);
        assert_eq!(invert(&o.finish()), vec![0, 1, 3, 5, 2, 4]);
    }

    /// The groups of a table as one entry array are those of its tag and id arrays.
    #[test]
    fn key_groups_of_entries_match_those_of_tags_and_ids() {
        // Buckets of 0 to 9 entries, tags from a few values (so runs of equal tags), ids
        // ascending within each run of equal tags.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut dirs = vec![0u32];
        let (mut tags, mut cids) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let mut bucket: Vec<(u32, u32)> = (0..next(10))
                .map(|_| (next(4) as u32, next(1000) as u32))
                .collect();
            bucket.sort_unstable();
            bucket.dedup_by_key(|e| e.1);
            for (t, c) in bucket {
                tags.push(t);
                cids.push(c);
            }
            dirs.push(tags.len() as u32);
        }
        let entries: Vec<u64> = tags
            .iter()
            .zip(&cids)
            .map(|(&t, &c)| (u64::from(t) << 32) | u64::from(c))
            .collect();
        let (a, b) = (
            KeyGroups::of_entries(&dirs, &entries),
            KeyGroups::of_table(&dirs, &tags, &cids),
        );
        assert!(b.ends.len() > 20, "{} groups", b.ends.len());
        assert_eq!((a.members, a.ends), (b.members, b.ends));
    }

    #[test]
    fn a_campaign_whose_copies_differ_in_the_first_band_becomes_one_group() {
        // 0 is a campaign's first copy; 2, 4 and 5 are copies; 1, 3 and 6 are unrelated.
        // Band 0: 4 and 5 share an edit, so they share a key apart from 0 and 2. Band 1:
        // every copy shares the campaign's key.
        let mut o = ContentOrder::new(7);
        o.add_group(&[0, 2]);
        o.add_group(&[4, 5]);
        o.add_group(&[0, 2, 4, 5]);
        let perm = invert(&o.finish());
        assert_eq!(perm, vec![0, 2, 4, 5, 1, 3, 6]);
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
