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
    /// are read (and ids where times tie) until the cut, and only the hits kept are read whole.
    /// The answer is the one [`every_hit`](Self::every_hit) sorted and cut gives.
    pub(super) fn top_hits<'a>(
        &'a self,
        matched: &mut [Matched],
        opts: &QueryOptions,
    ) -> Result<Vec<Found<'a>>> {
        let limit = opts.limit;
        let best_first =
            |a: &Matched, b: &Matched| rank(b.containment, b.sim, a.containment, a.sim);
        // `matched[..sorted]` is in order, and nothing after it ranks above its last entry:
        // contents are ordered only as far as the tiers taken reach.
        let mut sorted = 0;
        let sort_to = |n: usize, matched: &mut [Matched], sorted: &mut usize| {
            let rest = &mut matched[*sorted..];
            let k = n.saturating_sub(*sorted).min(rest.len());
            if k == 0 {
                return;
            }
            if k < rest.len() {
                rest.select_nth_unstable_by(k - 1, best_first);
            }
            rest[..k].sort_unstable_by(best_first);
            *sorted += k;
        };
        let filtered = !opts.platforms.is_empty()
            || !opts.accounts.is_empty()
            || opts.since.is_some()
            || opts.until.is_some();
        // (matched index, post, time) of the posts of the tiers taken.
        let mut taken: Vec<(u32, u32, Option<i64>)> = Vec::new();
        let mut i = 0;
        while i < matched.len() && taken.len() < limit {
            sort_to(i + limit, matched, &mut sorted);
            let (x, s) = (matched[i].containment, matched[i].sim);
            let mut j = i + 1;
            loop {
                if j == sorted {
                    sort_to(2 * sorted, matched, &mut sorted);
                }
                if j < matched.len() && rank(matched[j].containment, matched[j].sim, x, s).is_eq() {
                    j += 1;
                } else {
                    break;
                }
            }
            if self.opts.prefetch {
                for m in &matched[i..j] {
                    self.segments[m.seg].prefetch_posts(m.posts.clone());
                }
            }
            // The tier's times (or whole metadata, to filter), fetched together.
            for m in &matched[i..j] {
                let seg = &self.segments[m.seg];
                if filtered {
                    m.posts
                        .clone()
                        .take(TOUCH_POSTS)
                        .for_each(|p| seg.touch_post(p));
                } else {
                    seg.touch_post_times(m.posts.clone());
                }
            }
            for (k, m) in matched.iter().enumerate().take(j).skip(i) {
                let seg = &self.segments[m.seg];
                if !filtered {
                    seg.live_post_times(m.posts.clone(), |p, ts| taken.push((k as u32, p, ts)))?;
                    continue;
                }
                for p in m.posts.clone() {
                    if seg.is_deleted(p) {
                        continue;
                    }
                    let post = seg.post(p)?;
                    if keeps(opts, &post) {
                        taken.push((k as u32, p, post.ts));
                    }
                }
            }
            i = j;
        }
        // Order by (tier, time, id); ids are read only where the rest ties.
        let mut failed: Option<Error> = None;
        let mut cmp = |a: &(u32, u32, Option<i64>), b: &(u32, u32, Option<i64>)| {
            let (ma, mb) = (&matched[a.0 as usize], &matched[b.0 as usize]);
            rank(mb.containment, mb.sim, ma.containment, ma.sim)
                .then_with(|| a.2.unwrap_or(i64::MAX).cmp(&b.2.unwrap_or(i64::MAX)))
                .then_with(|| {
                    let ids = (
                        self.segments[ma.seg].post_id(a.1),
                        self.segments[mb.seg].post_id(b.1),
                    );
                    match ids {
                        (Ok(x), Ok(y)) => x.cmp(y),
                        (Err(e), _) | (_, Err(e)) => {
                            failed.get_or_insert(e);
                            std::cmp::Ordering::Equal
                        }
                    }
                })
        };
        if taken.len() > limit {
            taken.select_nth_unstable_by(limit - 1, &mut cmp);
            taken.truncate(limit);
        }
        taken.sort_by(&mut cmp);
        if let Some(e) = failed {
            return Err(e);
        }
        // The hits' metadata in three rounds of overlapped reads (each needs the one before:
        // offsets, then the bytes they point at), then read.
        let touch = |f: fn(&Segment, u32)| {
            for &(k, p, _) in &taken {
                f(&self.segments[matched[k as usize].seg], p);
            }
        };
        touch(Segment::touch_post);
        touch(Segment::touch_post_strings);
        touch(Segment::touch_post_account);
        taken
            .into_iter()
            .map(|(k, p, _)| {
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

/// A verified content: where its posts are and how well it matched.
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

/// Whether a post passes the lookup's platform, account and time filters.
fn keeps(opts: &QueryOptions, m: &PostRef<'_>) -> bool {
    if !opts.platforms.is_empty() && !opts.platforms.iter().any(|x| x == m.platform) {
        return false;
    }
    if !opts.accounts.is_empty() && !opts.accounts.iter().any(|x| x == m.account) {
        return false;
    }
    if opts.since.is_some() || opts.until.is_some() {
        let Some(ts) = m.ts else { return false };
        if opts.since.is_some_and(|s| ts < s) || opts.until.is_some_and(|u| ts > u) {
            return false;
        }
    }
    true
}
