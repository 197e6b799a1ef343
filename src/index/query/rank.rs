//! Which posts a lookup returns once its candidates are verified: every one (all hits, or
//! a lookup that expands clusters), or the best `limit` without reading every post of a
//! large campaign.

use super::{Found, QueryOptions};
use crate::error::{Error, Result};
use crate::index::segment::{PostRef, Segment};
use crate::index::Index;

impl Index {
    /// Every post of the matched contents (in segment order) that passes the filters (for a
    /// lookup of all hits, or one that expands clusters).
    pub(super) fn every_hit<'a>(
        &'a self,
        matched: &[Matched],
        opts: &QueryOptions,
    ) -> Result<Vec<Found<'a>>> {
        let mut found = Vec::new();
        // `matched` is in segment order (as `find` pushed it).
        for groups in matched.chunk_by(|a, b| a.seg == b.seg) {
            let si = groups[0].seg;
            let seg = &self.segments[si];
            if self.opts.prefetch {
                groups
                    .iter()
                    .for_each(|m| seg.prefetch_posts(m.posts.clone()));
            }
            let each_post =
                |f: &dyn Fn(u32)| groups.iter().for_each(|m| m.posts.clone().for_each(f));
            each_post(&|p| seg.touch_post(p));
            each_post(&|p| seg.touch_post_strings(p));
            each_post(&|p| seg.touch_post_account(p));
            for m in groups {
                for p in m.posts.clone() {
                    if seg.is_deleted(p) {
                        continue;
                    }
                    let post = seg.post(p)?;
                    if !keeps(opts, &post) {
                        continue;
                    }
                    found.push(Found {
                        sim: m.sim,
                        ts: post.ts,
                        id: post.id,
                        account: post.account,
                        platform: post.platform,
                        seg: si,
                        post: p,
                        expanded: false,
                        containment: m.containment,
                    });
                }
            }
        }
        Ok(found)
    }

    /// The best `opts.limit` posts of the matched contents, without reading every post of a
    /// large campaign: contents are taken best first, a tier of equally similar contents at a
    /// time, until the tiers taken hold `limit` posts that pass the filters; only their times
    /// are read (and ids where times tie at the cut), and only the hits kept are read whole.
    /// The answer is the one [`every_hit`](Self::every_hit) sorted and cut gives.
    ///
    /// Standings are compared as integer keys ([`rank_key`]); the contents of the first
    /// tiers are selected (not sorted) out of all, and the cut is a selection on `(tier,
    /// time)`: a campaign lookup has a thousand matched contents and thousands of posts,
    /// and ordering them with float comparisons through closures took a fifth of such a
    /// lookup.
    pub(super) fn top_hits<'a>(
        &'a self,
        matched: &[Matched],
        opts: &QueryOptions,
        bufs: &mut RankBuffers,
    ) -> Result<Vec<Found<'a>>> {
        let limit = opts.limit;
        let RankBuffers {
            rest,
            ahead,
            taken,
            tier_members,
            labels,
        } = bufs;
        // (standing, matched index) of the contents not taken yet, and of those selected to
        // be taken next (ascending: the best at the end).
        rest.clear();
        rest.extend(
            matched
                .iter()
                .enumerate()
                .map(|(i, m)| (rank_key(m.containment, m.sim), i as u32)),
        );
        ahead.clear();
        let filtered = opts.filters_posts();
        // (tier, time or i64::MAX, matched index, post) of the posts of the tiers taken.
        taken.clear();
        let mut tier = 0u32;
        // Contents selected at the last selection: each one after takes at least twice as
        // many, so a lookup whose filter drops most posts selects a few times, not once per
        // tier.
        let mut batch = 0usize;
        labels.start();
        while taken.len() < limit {
            if ahead.is_empty() {
                if rest.is_empty() {
                    break;
                }
                // The best `limit - taken` contents (enough unless posts are deleted or
                // filtered out; twice the last batch after one fell short) and every content
                // tied with the last of them, in order.
                batch = (limit - taken.len()).max(batch.saturating_mul(2));
                let n = batch.min(rest.len());
                rest.select_nth_unstable_by(n - 1, |a, b| b.0.cmp(&a.0));
                let edge = rest[n - 1].0;
                let mut i = 0;
                while i < rest.len() {
                    if rest[i].0 >= edge {
                        ahead.push(rest.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                ahead.sort_unstable_by_key(|a| a.0);
            }
            // The next tier: the contents of the best standing left.
            let Some(&(best, _)) = ahead.last() else {
                break;
            };
            tier_members.clear();
            while let Some(&(_, i)) = ahead.last().filter(|a| a.0 == best) {
                tier_members.push(i as usize);
                ahead.pop();
            }
            // Where a content's posts are in time order (format 7), only its first `limit`
            // live posts that pass the filters can make the cut: a campaign text posted
            // 10,000 times costs `limit` reads, not 10,000.
            let per_content = |seg: &Segment| {
                if seg.posts_by_time() {
                    limit
                } else {
                    usize::MAX
                }
            };
            let ahead_of = |m: &Matched, n: usize| {
                m.posts.start..m.posts.end.min(m.posts.start.saturating_add(n as u32))
            };
            if self.opts.prefetch {
                for &i in tier_members.iter() {
                    let m = &matched[i];
                    let seg = &self.segments[m.seg];
                    seg.prefetch_posts(ahead_of(m, per_content(seg)));
                }
            }
            // The tier's times (or whole metadata, to filter), fetched together.
            for &i in tier_members.iter() {
                let m = &matched[i];
                let seg = &self.segments[m.seg];
                if filtered {
                    ahead_of(m, TOUCH_POSTS).for_each(|p| seg.touch_post(p));
                } else {
                    seg.touch_post_times(ahead_of(m, per_content(seg)));
                }
            }
            for &i in tier_members.iter() {
                let m = &matched[i];
                let seg = &self.segments[m.seg];
                let k = i as u32;
                let most = per_content(seg);
                let mut n = 0;
                if !filtered {
                    seg.live_post_times(m.posts.clone(), |p, ts| {
                        taken.push((tier, ts.unwrap_or(i64::MAX), k, p));
                        n += 1;
                        n < most
                    })?;
                    continue;
                }
                // Posts in time order (format 7) outside the time filter are not read.
                for p in seg.posts_in_time(m.posts.clone(), opts.since, opts.until)? {
                    if seg.is_deleted(p) {
                        continue;
                    }
                    if let Some(ts) = labels.keeps(opts, m.seg, seg, p)? {
                        taken.push((tier, ts.unwrap_or(i64::MAX), k, p));
                        n += 1;
                        if n == most {
                            break;
                        }
                    }
                }
            }
            tier += 1;
        }
        // Order by (tier, time, id); ids are read only where tier and time tie at the cut.
        let id_of =
            |t: &(u32, i64, u32, u32)| self.segments[matched[t.2 as usize].seg].post_id(t.3);
        let mut failed: Option<Error> = None;
        let mut by_id =
            |a: &(u32, i64, u32, u32), b: &(u32, i64, u32, u32)| match (id_of(a), id_of(b)) {
                (Ok(x), Ok(y)) => x.cmp(y).then_with(|| (a.2, a.3).cmp(&(b.2, b.3))),
                (Err(e), _) | (_, Err(e)) => {
                    failed.get_or_insert(e);
                    std::cmp::Ordering::Equal
                }
            };
        if taken.len() > limit {
            taken.select_nth_unstable_by_key(limit - 1, |t| (t.0, t.1));
            let edge = (taken[limit - 1].0, taken[limit - 1].1);
            // Everything before the cut is at most the edge and everything after at least:
            // the posts at the edge itself (on both sides) are settled by id.
            let mut keep: Vec<_> = taken[..limit]
                .iter()
                .copied()
                .filter(|t| (t.0, t.1) < edge)
                .collect();
            let mut ties: Vec<_> = taken
                .iter()
                .copied()
                .filter(|t| (t.0, t.1) == edge)
                .collect();
            let room = limit - keep.len();
            if ties.len() > room {
                ties.select_nth_unstable_by(room - 1, &mut by_id);
                ties.truncate(room);
            }
            keep.extend(ties);
            *taken = keep;
        }
        taken.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| by_id(a, b)));
        if let Some(e) = failed {
            return Err(e);
        }
        // The hits' metadata in three rounds of overlapped reads (each needs the one before:
        // offsets, then the bytes they point at), then read.
        let touch = |f: fn(&Segment, u32)| {
            for &(_, _, k, p) in taken.iter() {
                f(&self.segments[matched[k as usize].seg], p);
            }
        };
        touch(Segment::touch_post);
        touch(Segment::touch_post_strings);
        touch(Segment::touch_post_account);
        taken
            .iter()
            .map(|&(_, _, k, p)| {
                let m = &matched[k as usize];
                let post = self.segments[m.seg].post(p)?;
                Ok(Found {
                    sim: m.sim,
                    ts: post.ts,
                    id: post.id,
                    account: post.account,
                    platform: post.platform,
                    seg: m.seg,
                    post: p,
                    expanded: false,
                    containment: m.containment,
                })
            })
            .collect()
    }
}

/// Most posts of one content whose metadata a lookup with a limit fetches ahead of reading
/// it (the rest of a large campaign streams in order behind them).
const TOUCH_POSTS: usize = 64;

/// The buffers of [`Index::top_hits`], reused from one lookup to the next.
#[derive(Debug, Default, Clone)]
pub(super) struct RankBuffers {
    /// (standing, matched index) of the contents not taken yet.
    rest: Vec<((i64, i64), u32)>,
    /// Those selected to be taken next (ascending: the best at the end).
    ahead: Vec<((i64, i64), u32)>,
    /// (tier, time or i64::MAX, matched index, post) of the posts of the tiers taken.
    taken: Vec<(u32, i64, u32, u32)>,
    /// The matched indexes of the tier being taken.
    tier_members: Vec<usize>,
    /// Which account and platform numbers pass the filters.
    pub(super) labels: LabelFilter,
}

/// A lookup's platform and account filters by dictionary number, learnt as posts are
/// tested: each number's string is read and compared once per lookup and segment, and a
/// post then costs its row's numbers and time, not its strings (a filter that drops most of
/// a campaign's posts tests thousands).
#[derive(Debug, Default, Clone)]
pub(crate) struct LabelFilter {
    /// Per segment, what is known of its numbers.
    segments: Vec<SegmentLabels>,
    /// How many of `segments` this lookup uses (the rest are left from earlier ones).
    used: usize,
}

/// What a [`LabelFilter`] knows of one segment's numbers.
#[derive(Debug, Default, Clone)]
struct SegmentLabels {
    /// Per platform number: 0 not yet known, 1 kept, 2 dropped.
    platforms: Vec<u8>,
    /// Per account number seen so far: kept or not.
    accounts: std::collections::HashMap<u32, bool, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
}

impl LabelFilter {
    /// Forgets what an earlier lookup learnt.
    pub(super) fn start(&mut self) {
        for s in &mut self.segments[..self.used] {
            s.platforms.clear();
            s.accounts.clear();
        }
        self.used = 0;
    }

    /// Whether post `p` of segment `seg` (number `si`) passes the lookup's filters: its
    /// time if so. What [`keeps`] answers of the post read whole.
    pub(super) fn keeps(
        &mut self,
        opts: &QueryOptions,
        si: usize,
        seg: &Segment,
        p: u32,
    ) -> Result<Option<Option<i64>>> {
        if self.segments.len() <= si {
            self.segments.resize_with(si + 1, SegmentLabels::default);
        }
        self.used = self.used.max(si + 1);
        let known = &mut self.segments[si];
        let (a, pl, ts) = seg.post_label_ids(p)?;
        if !in_window(opts, ts) {
            return Ok(None);
        }
        if !opts.platforms.is_empty() {
            let at = pl as usize;
            if known.platforms.len() <= at {
                known.platforms.resize(at + 1, 0);
            }
            if known.platforms[at] == 0 {
                let name = seg.platform(pl)?;
                known.platforms[at] = if listed(&opts.platforms, name) { 1 } else { 2 };
            }
            if known.platforms[at] == 2 {
                return Ok(None);
            }
        }
        if !opts.accounts.is_empty() {
            let kept = match known.accounts.get(&a) {
                Some(&k) => k,
                None => {
                    let name = seg.account(a)?;
                    let k = listed(&opts.accounts, name);
                    known.accounts.insert(a, k);
                    k
                }
            };
            if !kept {
                return Ok(None);
            }
        }
        Ok(Some(ts))
    }
}

/// A verified content: where its posts are and how well it matched.
#[derive(Debug, Clone)]
pub(super) struct Matched {
    pub(super) seg: usize,
    pub(super) posts: std::ops::Range<u32>,
    pub(super) sim: f64,
    pub(super) containment: Option<f64>,
}

/// The order of two matches' standing, `a` against `b` (containment, then similarity):
/// `Less` when `a` ranks below `b`. Callers pass the better-first operands swapped.
pub(super) fn rank(
    a_cont: Option<f64>,
    a_sim: f64,
    b_cont: Option<f64>,
    b_sim: f64,
) -> std::cmp::Ordering {
    a_cont
        .unwrap_or(-1.0)
        .total_cmp(&b_cont.unwrap_or(-1.0))
        .then_with(|| a_sim.total_cmp(&b_sim))
}

/// A match's standing as integers ordered as [`rank`] orders the floats (greater is
/// better): `f64::total_cmp`'s key of the containment (-1 without), then of the similarity.
fn rank_key(containment: Option<f64>, sim: f64) -> (i64, i64) {
    let key = |x: f64| {
        let b = x.to_bits() as i64;
        b ^ (((b >> 63) as u64) >> 1) as i64
    };
    (key(containment.unwrap_or(-1.0)), key(sim))
}

/// Whether a post passes the lookup's platform, account and time filters.
fn keeps(opts: &QueryOptions, m: &PostRef<'_>) -> bool {
    listed(&opts.platforms, m.platform)
        && listed(&opts.accounts, m.account)
        && in_window(opts, m.ts)
}

/// Whether `name` passes a platform or account filter `list` (an empty one keeps all).
fn listed(list: &[String], name: &str) -> bool {
    list.is_empty() || list.iter().any(|x| x == name)
}

/// Whether a post of time `ts` passes the lookup's time filter: with a bound set, its time
/// is known and within `since..=until`.
fn in_window(opts: &QueryOptions, ts: Option<i64>) -> bool {
    if opts.since.is_none() && opts.until.is_none() {
        return true;
    }
    ts.is_some_and(|t| opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t <= u))
}
