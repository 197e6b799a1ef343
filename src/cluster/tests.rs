//! Cluster tests against small planted campaigns.

use super::*;
use crate::index::{BuildOptions, IndexBuilder};
use crate::input::RawPost;
use crate::minhash::SplitMix64;

const WORDS: [&str; 40] = [
    "river", "stone", "market", "winter", "signal", "garden", "copper", "window", "harbor",
    "lantern", "meadow", "engine", "ticket", "shadow", "butter", "planet", "ladder", "pocket",
    "silver", "candle", "forest", "bridge", "mirror", "saddle", "thunder", "violet", "anchor",
    "barrel", "cotton", "dragon", "falcon", "ginger", "hollow", "island", "jacket", "kettle",
    "lemon", "marble", "needle", "orchid",
];

fn sentence(rng: &mut SplitMix64, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

fn post(id: &str, account: &str, ts: i64, text: &str) -> RawPost {
    RawPost {
        id: id.into(),
        text: text.into(),
        account: account.into(),
        platform: "x".into(),
        ts: Some(ts),
        line: 0,
    }
}

/// A campaign: a seed and `n` members, each with a serial number, a hashtag and one
/// word swapped (all well within J >= 0.5 of the seed).
fn campaign(
    rng: &mut SplitMix64,
    name: &str,
    seed: &str,
    n: usize,
    out: &mut Vec<RawPost>,
) -> Vec<String> {
    let words: Vec<&str> = seed.split(' ').collect();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut w = words.clone();
        let k = (rng.next_u64() % w.len() as u64) as usize;
        w[k] = "zebra";
        let text = format!("#{} {} #tag{i}", 100 + i, w.join(" "));
        let id = format!("{name}{i}");
        out.push(post(
            &id,
            &format!("{name}-acct{}", i % 5),
            1_700_000_000 + i as i64 * 60,
            &text,
        ));
        ids.push(id);
    }
    ids
}

fn build(posts: &[RawPost], ballast_every: Option<usize>) -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let opts = BuildOptions {
        memory_budget: 16 << 20,
        ..BuildOptions::default()
    };
    let mut b = IndexBuilder::create(dir.path(), opts).unwrap();
    for (i, chunk) in posts
        .chunks(ballast_every.unwrap_or(usize::MAX))
        .enumerate()
    {
        b.add(chunk).unwrap();
        if ballast_every.is_some() {
            // A post whose 8 MiB account name fills the buffer: forces a new segment.
            let mut p = post(
                &format!("ballast{i}"),
                &"b".repeat(8 << 20),
                0,
                &format!("ballast number {i} unique words"),
            );
            p.text.push_str(&"q".repeat(i + 1));
            b.add(&[p]).unwrap();
        }
    }
    b.finish().unwrap();
    let index = Index::open(dir.path()).unwrap();
    (dir, index)
}

fn corpus() -> (Vec<RawPost>, Vec<Vec<String>>) {
    let mut rng = SplitMix64(11);
    let mut posts = Vec::new();
    let mut camps = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let seed = sentence(&mut rng, 30);
        let mut members = campaign(&mut rng, name, &seed, 12, &mut posts);
        // A copy cut down to its first 13 words: 11 of the members' 28 shingles, J of
        // about 0.39 to most members, so it joins only by attachment.
        let cut: Vec<&str> = seed.split(' ').take(13).collect();
        let id = format!("{name}-cut");
        posts.push(post(&id, "cutter", 1_700_100_000, &cut.join(" ")));
        members.push(id);
        camps.push(members);
    }
    for i in 0..150 {
        let s = sentence(&mut rng, 25);
        posts.push(post(
            &format!("bg{i}"),
            &format!("bg-acct{i}"),
            1_600_000_000 + i,
            &s,
        ));
    }
    (posts, camps)
}

fn cluster_of(report: &ClusterReport) -> std::collections::HashMap<String, u32> {
    report
        .clusters
        .iter()
        .flat_map(|c| c.posts.iter().map(move |p| (p.clone(), c.cluster)))
        .collect()
}

#[test]
fn campaigns_form_one_cluster_each_and_background_stays_out() {
    let (posts, camps) = corpus();
    let (_d, index) = build(&posts, None);
    let report = index.clusters(&ClusterOptions::default()).unwrap();
    let of = cluster_of(&report);
    let mut seen = Vec::new();
    for members in &camps {
        let c = of[&members[0]];
        assert!(
            members.iter().all(|m| of.get(m) == Some(&c)),
            "campaign split: {members:?}"
        );
        assert!(!seen.contains(&c), "two campaigns merged");
        seen.push(c);
        let cl = &report.clusters[c as usize];
        assert_eq!(
            cl.size,
            members.len(),
            "background joined campaign cluster {cl:?}"
        );
        assert_eq!(cl.accounts, 6);
        assert_eq!(cl.earliest_post, members[0]);
        assert_eq!(cl.platforms.get("x"), Some(&members.len()));
        assert_eq!(cl.attached, 1, "{cl:?}");
        assert!(cl.weakest_link >= 0.3 && cl.weakest_link < 0.5);
        assert!(cl.edges >= cl.texts - 1);
        let profile = cl.time_profile.as_ref().unwrap();
        assert_eq!(profile.unit, "hour");
        assert_eq!(profile.counts.iter().sum::<u32>() as usize, members.len());
    }
    // Without attachment, the cut-down copies stay out.
    let strict = index
        .clusters(&ClusterOptions {
            attach_similarity: Some(0.0),
            ..ClusterOptions::default()
        })
        .unwrap();
    assert_eq!(strict.attached, 0);
    let of = cluster_of(&strict);
    for members in &camps {
        let (cut, rest) = members.split_last().unwrap();
        assert!(rest.iter().all(|m| of.get(m) == Some(&of[&rest[0]])));
        assert!(!of.contains_key(cut), "{cut} joined without attachment");
        let cl = &strict.clusters[of[&rest[0]] as usize];
        assert!(cl.weakest_link >= 0.5 && cl.attached == 0);
    }
    // Sorted by size, numbered in order.
    assert!(report.clusters.windows(2).all(|w| w[0].size >= w[1].size));
    assert!(report
        .clusters
        .iter()
        .enumerate()
        .all(|(i, c)| c.cluster as usize == i));
}

#[test]
fn chaining_guard_splits_campaigns_bridged_by_one_post() {
    let mut rng = SplitMix64(5);
    let (sa, sb) = (sentence(&mut rng, 20), sentence(&mut rng, 20));
    let mut posts = Vec::new();
    let a = campaign(&mut rng, "a", &sa, 10, &mut posts);
    let b = campaign(&mut rng, "b", &sb, 10, &mut posts);
    // The bridge: both seeds in one post (J of about 0.37 to each side).
    posts.push(post(
        "bridge",
        "mixer",
        1_700_000_000,
        &format!("{sa} {sb}"),
    ));
    let (_d, index) = build(&posts, None);
    // By default (links at 0.5) the bridge is a lone text: it attaches to one campaign
    // and never joins the two.
    let default = index.clusters(&ClusterOptions::default()).unwrap();
    let of = cluster_of(&default);
    assert_ne!(of[&a[0]], of[&b[0]], "attachment bridged two campaigns");
    assert!(of[&"bridge".to_string()] == of[&a[0]] || of[&"bridge".to_string()] == of[&b[0]]);
    assert_eq!(default.attached, 1);
    let loose = index
        .clusters(&ClusterOptions {
            min_similarity: 0.3,
            ..ClusterOptions::default()
        })
        .unwrap();
    let of = cluster_of(&loose);
    assert_eq!(
        of[&a[0]], of[&b[0]],
        "the test needs the bridge to glue the campaigns at 0.3"
    );
    let strict = index
        .clusters(&ClusterOptions {
            min_similarity: 0.3,
            min_edge_support: 0.75,
            ..ClusterOptions::default()
        })
        .unwrap();
    let of = cluster_of(&strict);
    assert_ne!(of[&a[0]], of[&b[0]], "the guard left the bridge in place");
    // Each campaign keeps (nearly) all its members.
    for side in [&a, &b] {
        let main = side.iter().filter_map(|m| of.get(m)).fold(
            std::collections::HashMap::new(),
            |mut h, c| {
                *h.entry(*c).or_insert(0) += 1;
                h
            },
        );
        let biggest = main.values().copied().max().unwrap_or(0);
        assert!(biggest >= side.len() - 1, "campaign fragmented: {main:?}");
    }
}

#[test]
fn same_clusters_from_one_or_two_threads_and_one_or_many_segments() {
    let (posts, _) = corpus();
    let (_d1, one) = build(&posts, None);
    let ids = |r: &ClusterReport| -> Vec<Vec<String>> {
        r.clusters
            .iter()
            .filter(|c| !c.posts.iter().any(|p| p.starts_with("ballast")))
            .map(|c| c.posts.clone())
            .collect()
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let r1 = pool(1)
        .install(|| one.clusters(&ClusterOptions::default()))
        .unwrap();
    let r2 = pool(2)
        .install(|| one.clusters(&ClusterOptions::default()))
        .unwrap();
    assert_eq!(r1, r2);
    let (_d2, many) = build(&posts, Some(60));
    assert!(
        many.segments().len() >= 3,
        "{} segments",
        many.segments().len()
    );
    let r3 = many.clusters(&ClusterOptions::default()).unwrap();
    assert_eq!(ids(&r1), ids(&r3));
}

mod extreme_tests {
    use super::*;
    use crate::index::{BuildOptions, IndexBuilder};
    use crate::input::RawPost;

    #[test]
    fn time_profile_survives_the_whole_timestamp_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = IndexBuilder::create(dir.path(), BuildOptions::default()).unwrap();
        let p = |id: &str, ts| RawPost {
            id: id.into(),
            text: "the same words posted twice".into(),
            ts: Some(ts),
            ..RawPost::default()
        };
        b.add(&[
            p("a", -9_000_000_000_000_000_000),
            p("b", 9_000_000_000_000_000_000),
        ])
        .unwrap();
        b.finish().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let r = index.clusters(&ClusterOptions::default()).unwrap();
        assert_eq!(r.clusters.len(), 1);
        let tp = r.clusters[0].time_profile.as_ref().unwrap();
        assert_eq!(
            (tp.unit, tp.counts.len(), tp.counts.iter().sum::<u32>()),
            ("day", 1000, 2)
        );
    }
}
