//! Time-window coordination of accounts: who posts the same campaign text within minutes of
//! whom, over and over.
//!
//! Two accounts are linked when they posted texts of the same cluster (an [`Assignment`]:
//! the saved one of `textreuse clusters --save`, one computed on the fly, or identical texts)
//! within [`CoordinationOptions::window`] seconds of each other. An [`Edge`] carries the
//! number of such co-posts (pairs of posts), the distinct clusters they fell in and the
//! median time gap. Accounts joined by the edges that pass the filters form coordinated
//! [`Group`]s (connected components).
//!
//! # How it stays near-linear
//! Posts of each cluster are sorted by time and swept once: each post is paired with the
//! posts before it inside the window, nearest first, and at most
//! [`CoordinationOptions::max_partners`] of them. The work is `O(n log n + n × max_partners)`
//! for `n` posts, whatever the shape: 10,000 accounts posting one text in one minute give
//! 10,000 × `max_partners` co-posts rather than 50 million. In a burst denser than the cap,
//! each post still links to its nearest posts in time, so the burst's accounts stay one
//! group; [`Coordination::capped_posts`] says how many posts met the cap. Without the cap
//! (a window that never holds more than `max_partners` earlier posts) the result equals the
//! all-pairs definition (a unit test checks it against a naive oracle).
//!
//! Posts without an account (`""`) or without a time are counted
//! ([`Coordination::without_account`], [`Coordination::without_time`]) and left out of the
//! windows. Everything is computed in memory from the index's post metadata; nothing is
//! printed.
//!
//! ```
//! use textreuse::coordination::{coordination, Assignment, CoordinationOptions};
//! use textreuse::index::{BuildOptions, IndexBuilder};
//! use textreuse::input::RawPost;
//! use textreuse::Index;
//!
//! let dir = std::env::temp_dir().join(format!("textreuse-coord-doc-{}", std::process::id()));
//! let _ = std::fs::remove_dir_all(&dir);
//! let mut builder = IndexBuilder::create(&dir, BuildOptions::default())?;
//! let text = "The harbour toll scheme was approved in secret, share before it is deleted";
//! let post = |id: &str, account: &str, ts: i64| RawPost {
//!     id: id.into(), text: text.into(), account: account.into(), ts: Some(ts),
//!     ..RawPost::default()
//! };
//! builder.add(&[post("1", "a", 1000), post("2", "b", 1090), post("3", "c", 90_000)])?;
//! builder.finish()?;
//!
//! let index = Index::open(&dir)?;
//! let clusters = Assignment::same_text(&index)?; // or Assignment::clusters(&index, &opts)
//! let opts = CoordinationOptions { window: 600, ..CoordinationOptions::default() };
//! let c = coordination(&index, &clusters, &opts)?;
//! assert_eq!(c.edges.len(), 1); // a and b, 90 s apart; c posted a day later
//! let e = &c.edges[0];
//! assert_eq!((c.accounts[e.a].name.as_str(), c.accounts[e.b].name.as_str()), ("a", "b"));
//! assert_eq!(e.median_gap_s, 90.0);
//!
//! let html = textreuse::report::render_to_string(&index, &clusters, &Default::default())?.0;
//! assert_eq!(html.matches("<section class=\"campaign\"").count(), 1);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), textreuse::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::cluster::ClusterOptions;
use crate::error::{Error, Result};
use crate::index::clusters_file::ClustersFile;
use crate::index::{Index, PostAddr};

#[cfg(test)]
mod tests;

/// Marks a post in no cluster.
const NONE: u32 = u32::MAX;

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
    source: Source,
    /// Per segment (manifest order), per post: the cluster, or [`NONE`].
    of: Vec<Vec<u32>>,
    segment_ids: Vec<u64>,
    n_clusters: u32,
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

/// How accounts joined by edges are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupMethod {
    /// Connected components of the reported edges (the default).
    #[default]
    Components,
    /// Communities by weighted label propagation (edge weight = co-posts): a component
    /// glued together by a few prolific accounts splits up. On the eval kit's dev_1m (window
    /// 1h) it raised group purity from 0.853 to 0.873 but lowered completeness from 0.998
    /// to 0.978; `min_coposts` 2 does more for purity (0.995), see ARCHITECTURE.md.
    Communities,
}

/// Options of [`coordination`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationOptions {
    /// Two posts co-post when their times differ by at most this many seconds (> 0; default
    /// 3600).
    pub window: i64,
    /// Least co-posts of a reported edge (default 1).
    pub min_coposts: u32,
    /// Least distinct clusters of a reported edge (default 1).
    pub min_clusters: u32,
    /// Count only posts on these platforms (empty = all).
    pub platforms: Vec<String>,
    /// Count only posts at or after this time.
    pub since: Option<i64>,
    /// Count only posts at or before this time.
    pub until: Option<i64>,
    /// Earlier posts of its cluster a post is compared with at most, nearest in time first
    /// (default 50). Bounds the work of dense bursts; see the module docs.
    pub max_partners: usize,
    /// How accounts are grouped.
    pub groups: GroupMethod,
}

impl Default for CoordinationOptions {
    fn default() -> CoordinationOptions {
        CoordinationOptions {
            window: 3600,
            min_coposts: 1,
            min_clusters: 1,
            platforms: Vec::new(),
            since: None,
            until: None,
            max_partners: 50,
            groups: GroupMethod::default(),
        }
    }
}

/// An account and its activity (over the posts the filters keep).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    /// The account name.
    pub name: String,
    /// Its posts.
    pub posts: u64,
    /// Distinct clusters it posted in.
    pub clusters: u32,
    /// Its posts per platform.
    pub platforms: BTreeMap<String, u64>,
    /// Its first post's time.
    pub first_ts: Option<i64>,
    /// Its last post's time.
    pub last_ts: Option<i64>,
    /// Its posts with a time per hour of day (UTC).
    pub hours: [u32; 24],
    /// Its coordinated group (an index into [`Coordination::groups`]).
    pub group: usize,
}

/// Two accounts that co-posted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    /// One account (an index into [`Coordination::accounts`]).
    pub a: usize,
    /// The other (`a < b`).
    pub b: usize,
    /// Pairs of their posts in one cluster within the window.
    pub coposts: u32,
    /// Distinct clusters of those co-posts.
    pub clusters: u32,
    /// Median gap between the two posts of a co-post, in seconds.
    pub median_gap_s: f64,
}

/// Accounts joined by the reported edges (a connected component or a community, see
/// [`GroupMethod`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Its accounts (indexes into [`Coordination::accounts`]), most active first.
    pub accounts: Vec<usize>,
    /// The clusters its co-posts fell in, by number.
    pub clusters: Vec<u32>,
    /// Its co-posted posts per platform.
    pub platforms: BTreeMap<String, u64>,
    /// Its co-posted posts per hour of day (UTC).
    pub hours: [u32; 24],
    /// Its co-posted posts (each post once).
    pub posts: u64,
}

/// The result of [`coordination`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coordination {
    /// The window in seconds.
    pub window: i64,
    /// Where the clusters came from.
    pub source: Source,
    /// Live posts read.
    pub posts: u64,
    /// Posts the platform and time filters left out.
    pub filtered_out: u64,
    /// Posts without an account (left out of the windows).
    pub without_account: u64,
    /// Posts without a time (left out of the windows).
    pub without_time: u64,
    /// Posts that entered the windows (with account and time, in a cluster).
    pub windowed_posts: u64,
    /// Posts whose window held more earlier posts than `max_partners` (compared with the
    /// nearest ones only).
    pub capped_posts: u64,
    /// Account pairs that co-posted, before the edge filters.
    pub pairs: u64,
    /// The accounts of the reported edges.
    pub accounts: Vec<Account>,
    /// The reported edges, most co-posts first.
    pub edges: Vec<Edge>,
    /// Coordinated groups, largest first.
    pub groups: Vec<Group>,
}

/// One post in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Event {
    /// Cluster.
    pub key: u32,
    /// Unix seconds.
    pub ts: i64,
    /// Account number.
    pub acc: u32,
    /// Platform number.
    pub platform: u32,
}

/// Per-account totals while reading.
#[derive(Clone)]
struct Tally {
    posts: u64,
    clusters: u32,
    last_key: u32,
    first: i64,
    last: i64,
    hours: [u32; 24],
    platforms: Vec<(u32, u64)>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            posts: 0,
            clusters: 0,
            last_key: NONE,
            first: i64::MAX,
            last: i64::MIN,
            hours: [0; 24],
            platforms: Vec::new(),
        }
    }
}

/// The hour of day (UTC) of unix seconds `ts`.
pub fn hour_of_day(ts: i64) -> usize {
    (ts.rem_euclid(86_400) / 3600) as usize
}

fn pair_key(a: u32, b: u32) -> u64 {
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    ((a as u64) << 32) | b as u64
}

/// Calls `f(i, j, gap)` for every co-post of `events` (sorted by key, then time): `j < i`,
/// same key, different accounts, `ts[i] - ts[j] <= window`, `j` among the `cap` posts just
/// before `i` in its key. Returns the posts that met the cap.
pub(crate) fn sweep(
    events: &[Event],
    window: i64,
    cap: usize,
    mut f: impl FnMut(usize, usize, i64),
) -> u64 {
    let mut capped = 0;
    let mut start = 0; // first event of the current key
    for i in 0..events.len() {
        let e = events[i];
        if events[start].key != e.key {
            start = i;
        }
        let mut seen = 0;
        let mut j = i;
        while j > start {
            j -= 1;
            let gap = e.ts - events[j].ts;
            if gap > window {
                break;
            }
            if seen == cap {
                capped += 1;
                break;
            }
            seen += 1;
            if events[j].acc != e.acc {
                f(i, j, gap);
            }
        }
    }
    capped
}

/// Hashes integer keys with the murmur3 finalizer (std's SipHash costs more than the rest
/// of the sweep; the keys are not chosen by an adversary who could aim at collisions more
/// than any other input could).
#[derive(Default, Clone, Copy)]
pub(crate) struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
            ^ n;
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map with integer keys hashed by [`MixHasher`].
pub(crate) type IntMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<MixHasher>>;

/// Interns strings to dense numbers.
#[derive(Default)]
struct Names<'a> {
    ids: HashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Names<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(s, i);
        self.names.push(s);
        i
    }
}

/// Accounts coordinated in time: see the module docs.
///
/// # Errors
/// [`Error::InvalidParameter`] for a window of zero or less, or a `max_partners` of zero;
/// errors of a damaged index.
pub fn coordination(
    index: &Index,
    assignment: &Assignment,
    opts: &CoordinationOptions,
) -> Result<Coordination> {
    if opts.window <= 0 {
        return Err(Error::InvalidParameter(format!(
            "window of {} s: it must be positive",
            opts.window
        )));
    }
    if opts.max_partners == 0 {
        return Err(Error::InvalidParameter(
            "max_partners of 0: it must be at least 1".into(),
        ));
    }
    let mut out = Coordination {
        window: opts.window,
        source: assignment.source,
        posts: 0,
        filtered_out: 0,
        without_account: 0,
        without_time: 0,
        windowed_posts: 0,
        capped_posts: 0,
        pairs: 0,
        accounts: Vec::new(),
        edges: Vec::new(),
        groups: Vec::new(),
    };

    // 1. Read every live post: account totals, and the events of the windows.
    let mut accounts = Names::default();
    let mut platforms = Names::default();
    let mut tallies: Vec<Tally> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for (s, seg) in index.segments().iter().enumerate() {
        let of = assignment.of.get(s);
        let mut seg_accounts: Vec<u32> = Vec::new();
        for p in 0..seg.n_posts() as u32 {
            if seg.is_deleted(p) {
                continue;
            }
            out.posts += 1;
            let m = seg.post(p)?;
            let keep = (opts.platforms.is_empty()
                || opts.platforms.iter().any(|x| x == m.platform))
                && opts.since.is_none_or(|t| m.ts.is_some_and(|ts| ts >= t))
                && opts.until.is_none_or(|t| m.ts.is_some_and(|ts| ts <= t));
            if m.account.is_empty() {
                out.without_account += 1;
            }
            if m.ts.is_none() {
                out.without_time += 1;
            }
            if !keep {
                out.filtered_out += 1;
                continue;
            }
            if m.account.is_empty() {
                continue;
            }
            // Account numbers through the segment's own dictionary: one string lookup per
            // account and segment instead of one per post.
            let local = seg.account_of(p).unwrap_or(u32::MAX) as usize;
            if local >= seg_accounts.len() && local != u32::MAX as usize {
                seg_accounts.resize(local + 1, NONE);
            }
            let acc = match seg_accounts.get(local) {
                Some(&a) if a != NONE => a,
                _ => {
                    let a = accounts.id(m.account);
                    if let Some(slot) = seg_accounts.get_mut(local) {
                        *slot = a;
                    }
                    a
                }
            };
            let pl = platforms.id(m.platform);
            if acc as usize == tallies.len() {
                tallies.push(Tally::default());
            }
            let t = &mut tallies[acc as usize];
            t.posts += 1;
            match t.platforms.iter_mut().find(|(q, _)| *q == pl) {
                Some((_, n)) => *n += 1,
                None => t.platforms.push((pl, 1)),
            }
            let Some(ts) = m.ts else { continue };
            t.first = t.first.min(ts);
            t.last = t.last.max(ts);
            t.hours[hour_of_day(ts)] += 1;
            let key = of.and_then(|v| v.get(p as usize)).copied().unwrap_or(NONE);
            if key != NONE {
                events.push(Event {
                    key,
                    ts,
                    acc,
                    platform: pl,
                });
            }
        }
    }
    events.sort_unstable();
    out.windowed_posts = events.len() as u64;
    for e in &events {
        let t = &mut tallies[e.acc as usize];
        if t.last_key != e.key {
            t.last_key = e.key;
            t.clusters += 1;
        }
    }

    // 2-3. Edges between accounts, with their median gaps.
    let stats = edge_stats(&events, opts);
    out.capped_posts = stats.capped;
    out.pairs = stats.pairs;
    let in_copost = stats.in_copost;
    let kept = stats.kept;

    // 4. Nodes: the accounts of kept edges; groups: connected components.
    let mut node_of: IntMap<u32, usize> = IntMap::default();
    let mut node_acc: Vec<u32> = Vec::new();
    let mut node = |acc: u32, node_acc: &mut Vec<u32>| -> usize {
        *node_of.entry(acc).or_insert_with(|| {
            node_acc.push(acc);
            node_acc.len() - 1
        })
    };
    let mut edges = Vec::with_capacity(kept.len());
    for &(k, n, c, median) in &kept {
        let a = node((k >> 32) as u32, &mut node_acc);
        let b = node(k as u32, &mut node_acc);
        edges.push((a, b, n, c, median));
    }
    drop(kept);
    let pairs: Vec<(usize, usize, u32)> = edges.iter().map(|e| (e.0, e.1, e.2)).collect();
    let roots = match opts.groups {
        GroupMethod::Components => components(node_acc.len(), &pairs),
        GroupMethod::Communities => communities(node_acc.len(), &pairs),
    };
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (x, &r) in roots.iter().enumerate() {
        members.entry(r).or_default().push(x);
    }
    let by_posts = |x: &usize| std::cmp::Reverse(tallies[node_acc[*x] as usize].posts);
    let mut groups: Vec<(usize, Vec<usize>)> = members.into_iter().collect();
    for (_, g) in &mut groups {
        g.sort_by_key(|x| (by_posts(x), accounts.names[node_acc[*x] as usize]));
    }
    groups.sort_by(|x, y| {
        y.1.len().cmp(&x.1.len()).then_with(|| {
            accounts.names[node_acc[x.1[0]] as usize].cmp(accounts.names[node_acc[y.1[0]] as usize])
        })
    });
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    for (gi, (r, _)) in groups.iter().enumerate() {
        group_of_root.insert(*r, gi);
    }
    let mut group_clusters: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); groups.len()];
    let mut group_platforms: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); groups.len()];
    let mut group_hours = vec![[0u32; 24]; groups.len()];
    let mut group_posts = vec![0u64; groups.len()];
    for (e, _) in events.iter().zip(&in_copost).filter(|(_, &b)| b) {
        let Some(&x) = node_of.get(&e.acc) else {
            continue;
        };
        let g = group_of_root[&roots[x]];
        group_clusters[g].insert(e.key);
        *group_platforms[g]
            .entry(platforms.names[e.platform as usize].to_string())
            .or_default() += 1;
        group_hours[g][hour_of_day(e.ts)] += 1;
        group_posts[g] += 1;
    }

    // 5. Owned values, accounts numbered in group order.
    let mut renum = vec![0usize; node_acc.len()];
    let mut n = 0;
    for (_, g) in &groups {
        for &x in g {
            renum[x] = n;
            n += 1;
        }
    }
    let mut accs: Vec<(usize, Account)> = Vec::with_capacity(node_acc.len());
    for (x, &acc) in node_acc.iter().enumerate() {
        let t = &tallies[acc as usize];
        let mut pl = BTreeMap::new();
        for &(q, k) in &t.platforms {
            pl.insert(platforms.names[q as usize].to_string(), k);
        }
        accs.push((
            renum[x],
            Account {
                name: accounts.names[acc as usize].to_string(),
                posts: t.posts,
                clusters: t.clusters,
                platforms: pl,
                first_ts: (t.first != i64::MAX).then_some(t.first),
                last_ts: (t.last != i64::MIN).then_some(t.last),
                hours: t.hours,
                group: group_of_root[&roots[x]],
            },
        ));
    }
    accs.sort_unstable_by_key(|(i, _)| *i);
    out.accounts = accs.into_iter().map(|(_, a)| a).collect();
    out.edges = edges
        .into_iter()
        .map(|(a, b, coposts, clusters, median_gap_s)| {
            let (a, b) = (renum[a].min(renum[b]), renum[a].max(renum[b]));
            Edge {
                a,
                b,
                coposts,
                clusters,
                median_gap_s,
            }
        })
        .collect();
    out.edges.sort_by(|x, y| {
        y.coposts
            .cmp(&x.coposts)
            .then(y.clusters.cmp(&x.clusters))
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    out.groups = groups
        .into_iter()
        .enumerate()
        .map(|(gi, (_, g))| Group {
            accounts: g.iter().map(|&x| renum[x]).collect(),
            clusters: group_clusters[gi].iter().copied().collect(),
            platforms: std::mem::take(&mut group_platforms[gi]),
            hours: group_hours[gi],
            posts: group_posts[gi],
        })
        .collect();
    Ok(out)
}

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

/// The account pairs of a sweep.
pub(crate) struct EdgeStats {
    /// `(pair key, co-posts, clusters, median gap)` of the pairs that pass the filters, by
    /// pair key.
    pub kept: Vec<(u64, u32, u32, f64)>,
    /// Per event: whether it is in a co-post of a kept pair.
    pub in_copost: Vec<bool>,
    /// Posts that met the cap.
    pub capped: u64,
    /// Pairs before the filters.
    pub pairs: u64,
}

/// Co-posts, distinct clusters and median gap per account pair of `events` (sorted).
pub(crate) fn edge_stats(events: &[Event], opts: &CoordinationOptions) -> EdgeStats {
    // Co-posts and distinct clusters per pair (keys arrive in order, so a pair's clusters
    // are counted by noticing a change of key).
    let mut pairs: IntMap<u64, (u32, u32, u32)> = IntMap::default();
    let capped = sweep(events, opts.window, opts.max_partners, |i, j, _| {
        let key = events[i].key;
        let v = pairs
            .entry(pair_key(events[i].acc, events[j].acc))
            .or_insert((0, 0, NONE));
        v.0 += 1;
        if v.2 != key {
            v.2 = key;
            v.1 += 1;
        }
    });
    let n_pairs = pairs.len() as u64;
    let mut kept: Vec<(u64, u32, u32)> = pairs
        .into_iter()
        .filter(|(_, (n, c, _))| *n >= opts.min_coposts && *c >= opts.min_clusters)
        .map(|(k, (n, c, _))| (k, n, c))
        .collect();
    kept.sort_unstable_by_key(|&(k, _, _)| k);
    let edge_of: IntMap<u64, u32> = kept
        .iter()
        .enumerate()
        .map(|(i, &(k, _, _))| (k, i as u32))
        .collect();

    // The gaps of the kept pairs (a second sweep, so only they hold memory), and the posts
    // that took part in their co-posts.
    let mut gaps: Vec<(u32, u32)> = Vec::new();
    let mut in_copost = vec![false; events.len()];
    sweep(events, opts.window, opts.max_partners, |i, j, gap| {
        if let Some(&e) = edge_of.get(&pair_key(events[i].acc, events[j].acc)) {
            gaps.push((e, gap.clamp(0, u32::MAX as i64) as u32));
            in_copost[i] = true;
            in_copost[j] = true;
        }
    });
    drop(edge_of);
    gaps.sort_unstable();
    let mut medians = vec![0.0; kept.len()];
    for run in gaps.chunk_by(|x, y| x.0 == y.0) {
        medians[run[0].0 as usize] = median_of_sorted(run.iter().map(|x| x.1));
    }
    EdgeStats {
        kept: kept
            .into_iter()
            .zip(medians)
            .map(|((k, n, c), m)| (k, n, c, m))
            .collect(),
        in_copost,
        capped,
        pairs: n_pairs,
    }
}

/// The median of sorted values (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median_of_sorted(v: impl ExactSizeIterator<Item = u32>) -> f64 {
    let n = v.len();
    let mut mid = v.skip(n.saturating_sub(1) / 2);
    match (n, mid.next(), mid.next()) {
        (0, ..) => 0.0,
        (n, Some(a), Some(b)) if n % 2 == 0 => (a as f64 + b as f64) / 2.0,
        (_, Some(a), _) => a as f64,
        _ => 0.0,
    }
}

/// The shortest run of consecutive hours (wrapping past midnight) holding at least `share`
/// of `hours`' posts: `(first hour, length)`, or `None` when there are no posts.
pub fn active_hours(hours: &[u32; 24], share: f64) -> Option<(usize, usize)> {
    let total: u64 = hours.iter().map(|&h| h as u64).sum();
    if total == 0 {
        return None;
    }
    let need = (share * total as f64).ceil() as u64;
    for len in 1..=24 {
        let mut best: Option<(u64, usize)> = None;
        for start in 0..24 {
            let s: u64 = (0..len).map(|k| hours[(start + k) % 24] as u64).sum();
            if s >= need && best.is_none_or(|(b, _)| s > b) {
                best = Some((s, start));
            }
        }
        if let Some((_, start)) = best {
            return Some((start, len));
        }
    }
    Some((0, 24))
}

/// `active_hours` as text: `"08-17h (82%)"`, `"all day"` or `"-"`.
pub fn active_hours_label(hours: &[u32; 24]) -> String {
    let total: u64 = hours.iter().map(|&h| h as u64).sum();
    match active_hours(hours, 0.8) {
        None => "-".into(),
        Some((_, 24)) => "all day".into(),
        Some((start, len)) => {
            let s: u64 = (0..len).map(|k| hours[(start + k) % 24] as u64).sum();
            format!(
                "{:02}-{:02}h ({}%)",
                start,
                (start + len) % 24,
                (100 * s) / total.max(1)
            )
        }
    }
}
