//! The window sweep against a naive all-pairs oracle.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

/// Every pair of posts of one cluster by two accounts within the window, per account pair:
/// (co-posts, distinct clusters, median gap).
fn oracle(events: &[Event], window: i64) -> BTreeMap<u64, (u32, u32, f64)> {
    let mut gaps: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut clusters: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for (i, x) in events.iter().enumerate() {
        for y in &events[i + 1..] {
            if x.key == y.key && x.acc != y.acc && (x.ts - y.ts).abs() <= window {
                let k = pair_key(x.acc, y.acc);
                gaps.entry(k)
                    .or_default()
                    .push((x.ts - y.ts).unsigned_abs() as u32);
                clusters.entry(k).or_default().insert(x.key);
            }
        }
    }
    gaps.into_iter()
        .map(|(k, mut g)| {
            g.sort_unstable();
            let n = g.len() as u32;
            (
                k,
                (
                    n,
                    clusters[&k].len() as u32,
                    median_of_sorted(g.into_iter()),
                ),
            )
        })
        .collect()
}

fn events_strategy() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0u32..4, 0i64..200, 0u32..8, 0u32..3), 0..80).prop_map(|v| {
        let mut e: Vec<Event> = v
            .into_iter()
            .map(|(key, ts, acc, platform)| Event {
                key,
                ts,
                acc,
                platform,
            })
            .collect();
        e.sort_unstable();
        e
    })
}

fn opts(
    window: i64,
    max_partners: usize,
    min_coposts: u32,
    min_clusters: u32,
) -> CoordinationOptions {
    CoordinationOptions {
        window,
        max_partners,
        min_coposts,
        min_clusters,
        ..CoordinationOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Uncapped, the sweep finds exactly the oracle's pairs, counts and medians.
    #[test]
    fn sweep_equals_all_pairs(events in events_strategy(), window in 1i64..120,
                              min_coposts in 1u32..3, min_clusters in 1u32..3) {
        let got = edge_stats(&events, &opts(window, events.len().max(1), min_coposts, min_clusters));
        let want: BTreeMap<u64, (u32, u32, f64)> = oracle(&events, window)
            .into_iter()
            .filter(|(_, (n, c, _))| *n >= min_coposts && *c >= min_clusters)
            .collect();
        let got_map: BTreeMap<u64, (u32, u32, f64)> =
            got.kept.iter().map(|&(k, n, c, m)| (k, (n, c, m))).collect();
        prop_assert_eq!(got_map, want.clone());
        prop_assert_eq!(got.capped, 0);
        // A post is marked exactly when it is in a kept co-post.
        for (i, x) in events.iter().enumerate() {
            let in_kept = events.iter().any(|y| {
                x.key == y.key && x.acc != y.acc && (x.ts - y.ts).abs() <= window
                    && want.contains_key(&pair_key(x.acc, y.acc))
            });
            prop_assert_eq!(got.in_copost[i], in_kept, "event {}", i);
        }
    }

    /// Capped, the sweep does at most `cap` comparisons per post and finds a subset of the
    /// oracle's co-posts.
    #[test]
    fn capped_sweep_is_bounded_and_sound(events in events_strategy(), window in 1i64..120,
                                         cap in 1usize..6) {
        let mut calls = 0usize;
        let mut per_post = vec![0usize; events.len()];
        sweep(&events, window, cap, |i, j, gap| {
            calls += 1;
            per_post[i] += 1;
            assert!(j < i && events[i].key == events[j].key && events[i].acc != events[j].acc);
            assert_eq!(gap, events[i].ts - events[j].ts);
            assert!((0..=window).contains(&gap));
        });
        prop_assert!(calls <= events.len() * cap);
        prop_assert!(per_post.iter().all(|&n| n <= cap));
        let want = oracle(&events, window);
        let got = edge_stats(&events, &opts(window, cap, 1, 1));
        for &(k, n, c, _) in &got.kept {
            let w = want.get(&k);
            prop_assert!(w.is_some_and(|w| n <= w.0 && c <= w.1));
        }
    }
}

/// 10,000 accounts posting one text within a minute: work and memory stay linear.
#[test]
fn a_huge_burst_is_linear() {
    let events: Vec<Event> = (0..10_000u32)
        .map(|i| Event {
            key: 0,
            ts: (i / 200) as i64,
            acc: i,
            platform: 0,
        })
        .collect();
    let mut calls = 0u64;
    let capped = sweep(&events, 3600, 50, |_, _, _| calls += 1);
    assert_eq!(calls, 50 * 10_000 - (50 * 51) / 2);
    assert_eq!(capped, 10_000 - 51);
    let stats = edge_stats(&events, &opts(3600, 50, 1, 1));
    assert_eq!(stats.kept.len() as u64, calls);
    assert!(stats.in_copost.iter().all(|&b| b));
}

#[test]
fn medians_and_hours() {
    assert_eq!(median_of_sorted([].into_iter()), 0.0);
    assert_eq!(median_of_sorted([3].into_iter()), 3.0);
    assert_eq!(median_of_sorted([1, 4].into_iter()), 2.5);
    assert_eq!(median_of_sorted([1, 2, 9].into_iter()), 2.0);
    assert_eq!(hour_of_day(0), 0);
    assert_eq!(hour_of_day(-1), 23);
    assert_eq!(hour_of_day(13 * 3600 + 5), 13);
    let mut h = [0u32; 24];
    h[22] = 5;
    h[23] = 5;
    h[0] = 5;
    h[12] = 1;
    assert_eq!(active_hours(&h, 0.8), Some((22, 3)));
    assert_eq!(active_hours_label(&h), "22-01h (93%)");
    assert_eq!(active_hours(&[0; 24], 0.8), None);
}

/// Two cliques joined by one light edge: one component, two communities.
#[test]
fn components_and_communities() {
    let mut edges = Vec::new();
    for a in 0..4 {
        for b in a + 1..4 {
            edges.push((a, b, 3));
            edges.push((a + 4, b + 4, 3));
        }
    }
    edges.push((3, 4, 1));
    let comp = components(8, &edges);
    assert!(comp.iter().all(|&r| r == 0));
    let lab = communities(8, &edges);
    assert!(lab[..4].iter().all(|&l| l == lab[0]));
    assert!(lab[4..].iter().all(|&l| l == lab[4]));
    assert_ne!(lab[0], lab[4]);
    // Components agree with a naive flood fill on random graphs.
    let mut rng = 7u64;
    for _ in 0..200 {
        let n = 12;
        let mut e = Vec::new();
        for _ in 0..10 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (a, b) = ((rng >> 33) as usize % n, (rng >> 45) as usize % n);
            if a != b {
                e.push((a, b, 1));
            }
        }
        let c = components(n, &e);
        for x in 0..n {
            // Flood fill from x.
            let mut seen = vec![false; n];
            let mut stack = vec![x];
            while let Some(v) = stack.pop() {
                if std::mem::replace(&mut seen[v], true) {
                    continue;
                }
                for &(a, b, _) in &e {
                    if a == v {
                        stack.push(b)
                    }
                    if b == v {
                        stack.push(a)
                    }
                }
            }
            for y in 0..n {
                assert_eq!(seen[y], c[x] == c[y]);
            }
            assert_eq!(c[x], (0..n).find(|&y| seen[y]).unwrap());
        }
    }
}
