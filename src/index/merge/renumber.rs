//! Step 1 of a merge: the new numbering of the live contents and posts.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::index::buffer::PreHashedMap;
use crate::index::segment::Segment;

/// Where the live posts and contents of one source go.
pub(super) struct Remap {
    /// Old content -> new content (`u32::MAX`: no live post).
    pub(super) content: Vec<u32>,
    /// Old post -> new post (`u32::MAX`: deleted).
    pub(super) post: Vec<u32>,
}

/// The new numbering of a merge's live contents and posts.
pub(super) struct Renumbering {
    /// Per source, where its contents and posts go.
    pub(super) remaps: Vec<Remap>,
    /// Per new content, the `(source, content)` it is read from.
    pub(super) content_src: Vec<(u32, u32)>,
    /// Start of each new content's posts (one more entry than contents).
    pub(super) content_posts: Vec<u32>,
    /// Per new post, the `(source, post)` it is read from: posts grouped by content, each
    /// content's posts by time (unknown last), then id.
    pub(super) order: Vec<(u32, u32)>,
}

impl Renumbering {
    /// Contents.
    pub(super) fn n_contents(&self) -> u64 {
        self.content_src.len() as u64
    }

    /// Posts.
    pub(super) fn n_posts(&self) -> u64 {
        self.order.len() as u64
    }

    /// Renumbers the contents: content `c` becomes `rank[c]` (a permutation, from the band
    /// merge's key groups: `order.rs`), its posts moving with it in the same order.
    pub(super) fn reorder(&mut self, rank: &[u32]) -> Result<()> {
        let nc = self.content_src.len();
        if rank.len() != nc {
            return Err(Error::InvalidParameter(format!(
                "a content order of {} for {nc} contents",
                rank.len()
            )));
        }
        let perm = crate::index::order::invert(rank);
        let mut content_posts = Vec::with_capacity(nc + 1);
        let mut order = Vec::with_capacity(self.order.len());
        content_posts.push(0u32);
        for &c in &perm {
            let (lo, hi) = (
                self.content_posts[c as usize] as usize,
                self.content_posts[c as usize + 1] as usize,
            );
            for &(si, p) in &self.order[lo..hi] {
                self.remaps[si as usize].post[p as usize] = order.len() as u32;
                order.push((si, p));
            }
            content_posts.push(order.len() as u32);
        }
        for r in &mut self.remaps {
            for c in r.content.iter_mut().filter(|c| **c != u32::MAX) {
                *c = rank[*c as usize];
            }
        }
        self.content_src = perm.iter().map(|&c| self.content_src[c as usize]).collect();
        self.content_posts = content_posts;
        self.order = order;
        Ok(())
    }
}

/// The hash of content `c` of source `s`.
pub(super) fn content_hash(s: &Segment, c: u32) -> Result<u128> {
    s.content_hash(c)
        .ok_or_else(|| Error::corrupt(s.dir().join("sigs"), format!("content {c} has no hash")))
}

/// Numbers the live contents and posts of `sources` (`None` if no post is live). Live
/// contents get new ids in order of first appearance (until [`Renumbering::reorder`] gives
/// them their final order), and an exact duplicate (equal content hash) in a later source
/// joins the earlier content, so exact duplicates that arrived in different segments become
/// one group again.
pub(super) fn renumber(sources: &[Segment]) -> Result<Option<Renumbering>> {
    let Contents {
        mut remaps,
        content_src,
        counts,
    } = number_contents(sources)?;
    let nc = content_src.len() as u64;
    let mut content_posts: Vec<u32> = Vec::with_capacity(counts.len() + 1);
    content_posts.push(0);
    for &n in &counts {
        let last = content_posts[content_posts.len() - 1];
        content_posts.push(last + n);
    }
    drop(counts);
    let np = content_posts[content_posts.len() - 1] as u64;
    if np == 0 {
        return Ok(None);
    }
    if nc > u32::MAX as u64 / 2 {
        return Err(Error::InvalidParameter(
            "a merged segment would hold more than 2^31 unique texts; merge fewer segments".into(),
        ));
    }
    sources.iter().for_each(Segment::release_pages);
    let order = order_posts(sources, &mut remaps, &content_posts, np)?;
    Ok(Some(Renumbering {
        remaps,
        content_src,
        content_posts,
        order,
    }))
}

/// The new contents of a merge, before its posts are numbered.
struct Contents {
    /// Per source, its content remap (posts not yet numbered).
    remaps: Vec<Remap>,
    /// Per new content, the `(source, content)` it is read from.
    content_src: Vec<(u32, u32)>,
    /// Per new content, its live posts.
    counts: Vec<u32>,
}

/// The content half of [`renumber`].
fn number_contents(sources: &[Segment]) -> Result<Contents> {
    let total_contents: u64 = sources.iter().map(Segment::n_contents).sum();
    let mut remaps = Vec::with_capacity(sources.len());
    // Contents by the low 64 bits of their hash (the full hash is checked on a match; the
    // rare 64-bit collision of different texts goes to a second map).
    let mut by_hash: PreHashedMap<u64, u32> = PreHashedMap::default();
    by_hash.reserve(total_contents as usize);
    let mut collided: HashMap<u128, u32> = HashMap::new();
    let mut content_src: Vec<(u32, u32)> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    for (si, s) in sources.iter().enumerate() {
        let mut r = Remap {
            content: vec![u32::MAX; s.n_contents() as usize],
            post: vec![u32::MAX; s.n_posts() as usize],
        };
        let live = s.live_contents();
        for c in 0..s.n_contents() as u32 {
            if live.is_some_and(|l| !l[c as usize]) {
                continue;
            }
            let hash = content_hash(s, c)?;
            let next = content_src.len() as u32;
            let mut new = *by_hash.entry(hash as u64).or_insert(next);
            if new != next {
                let (fs, fc) = content_src[new as usize];
                if sources[fs as usize].content_hash(fc) != Some(hash) {
                    new = *collided.entry(hash).or_insert(next);
                }
            }
            if new == next {
                content_src.push((si as u32, c));
                counts.push(0);
            }
            r.content[c as usize] = new;
            let n = s.content_posts(c)?.filter(|&p| !s.is_deleted(p)).count();
            counts[new as usize] += n as u32;
        }
        s.release_pages();
        remaps.push(r);
    }
    Ok(Contents {
        remaps,
        content_src,
        counts,
    })
}

/// The post half of [`renumber`]: the `np` live posts grouped by content (each content's
/// posts by time, then id), recording each post's new number in `remaps`.
fn order_posts(
    sources: &[Segment],
    remaps: &mut [Remap],
    content_posts: &[u32],
    np: u64,
) -> Result<Vec<(u32, u32)>> {
    let mut order: Vec<(u32, u32)> = vec![(0, 0); np as usize];
    let mut next: Vec<u32> = content_posts[..content_posts.len() - 1].to_vec();
    for (si, (s, r)) in sources.iter().zip(remaps.iter_mut()).enumerate() {
        for c in 0..s.n_contents() as u32 {
            let new = r.content[c as usize];
            if new == u32::MAX {
                continue;
            }
            for p in s.content_posts(c)? {
                if s.is_deleted(p) {
                    continue;
                }
                let at = next[new as usize];
                next[new as usize] += 1;
                order[at as usize] = (si as u32, p);
                r.post[p as usize] = at;
            }
        }
        s.release_pages();
    }
    order_by_time(sources, remaps, content_posts, &mut order)?;
    Ok(order)
}

/// Orders each content's posts in `order` by time (unknown last), then id (format 7),
/// updating `remaps`. A content whose posts all come from one source written in that order
/// is left as it is; the others are checked and sorted where they need it.
fn order_by_time(
    sources: &[Segment],
    remaps: &mut [Remap],
    content_posts: &[u32],
    order: &mut [(u32, u32)],
) -> Result<()> {
    let key = |&(si, p): &(u32, u32)| -> Result<(i64, &str)> {
        let s = &sources[si as usize];
        Ok((s.post_ts(p)?.unwrap_or(i64::MAX), s.post_id(p)?))
    };
    // ((time, id), (source, post)) of a content being sorted.
    type Keyed<'a> = ((i64, &'a str), (u32, u32));
    let mut keyed: Vec<Keyed<'_>> = Vec::new();
    for w in content_posts.windows(2) {
        let (lo, hi) = (w[0] as usize, w[1] as usize);
        let Some(posts) = order.get_mut(lo..hi).filter(|p| p.len() > 1) else {
            continue;
        };
        let first = posts[0].0;
        if posts.iter().all(|e| e.0 == first) && sources[first as usize].posts_by_time() {
            continue;
        }
        let mut sorted = true;
        let mut last = key(&posts[0])?;
        for e in &posts[1..] {
            let k = key(e)?;
            if k < last {
                sorted = false;
                break;
            }
            last = k;
        }
        if sorted {
            continue;
        }
        keyed.clear();
        for e in posts.iter() {
            keyed.push((key(e)?, *e));
        }
        keyed.sort_unstable();
        for (i, &(_, e)) in keyed.iter().enumerate() {
            posts[i] = e;
            remaps[e.0 as usize].post[e.1 as usize] = (lo + i) as u32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::index::{merge, BuildOptions, Index, IndexWriter, MergeOptions, NewPost};

    /// Checks that every content's posts are in (time, unknown last; id) order and returns
    /// how many contents have more than one post.
    fn in_time_order(index: &Index) -> usize {
        let mut multi = 0;
        for seg in index.segments() {
            assert!(seg.posts_by_time(), "{}", seg.dir().display());
            for c in 0..seg.n_contents() as u32 {
                let keys = seg.time_id_keys(c);
                assert!(
                    keys.windows(2).all(|w| w[0] < w[1]),
                    "content {c}: {keys:?}"
                );
                multi += usize::from(keys.len() > 1);
            }
        }
        multi
    }

    /// Format 7: the copies of a text keep time, then id order within their content in every
    /// segment written (ids and times arrive shuffled, times tie, some are unknown), and
    /// across segments once a merge unifies them.
    #[test]
    fn each_contents_posts_are_in_time_then_id_order_after_writes_and_a_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("index");
        // Five texts of twenty distinct letter words (digits would be normalized away).
        let word = |n: usize| -> String {
            (0..3)
                .map(|i| char::from(b'a' + (n / 26usize.pow(i) % 26) as u8))
                .collect()
        };
        let texts: Vec<String> = (0..5)
            .map(|t| {
                (0..20)
                    .map(|w| word(t * 20 + w + 1000))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).unwrap();
        for seg in 0..3 {
            // Ids a permutation of the input order (7919 is prime to 300), times from four
            // values out of input order, every ninth unknown.
            let ids: Vec<String> = (0..300)
                .map(|i| format!("s{}-{:03}", 2 - seg, (i * 7919) % 300))
                .collect();
            let posts: Vec<NewPost<'_>> = (0..300)
                .map(|i| NewPost {
                    id: &ids[i],
                    text: &texts[i % 5],
                    account: "a",
                    platform: "p",
                    ts: (i % 9 != 4).then_some(1_700_000_000 + 60 * ((i * 31 + seg) % 4) as i64),
                })
                .collect();
            w.add(&posts).unwrap();
            w.commit().unwrap();
        }
        drop(w);
        let index = Index::open(&dir).unwrap();
        assert_eq!(index.segments().len(), 3);
        assert_eq!(in_time_order(&index), 15);
        index.verify().unwrap();
        drop(index);
        merge(&dir, &MergeOptions::default()).unwrap();
        let index = Index::open(&dir).unwrap();
        assert_eq!(index.segments().len(), 1);
        assert_eq!(in_time_order(&index), 5);
        index.verify().unwrap();
    }
}
