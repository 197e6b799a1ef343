//! `query --containment C` / `--contained-in C`: posts that hold a snippet, or lie inside
//! the query, settled exactly from stored texts.

use serde_json::Value;
use textreuse::cluster::{Cluster, ClusterOptions, ClusterReport};
use textreuse::index::{Index, QueryOptions};
use textreuse::input::RawPost;
use textreuse::minhash::intersection_len;
use textreuse::{FingerprintParams, Fingerprinter, Scratch};

use crate::util;

const SNIPPET: &str = "The committee met on Tuesday and decided that the new bridge over the \
river will be closed for repairs during the whole of next summer, starting in June";

fn posts() -> Vec<RawPost> {
    let mut posts = util::sample_posts()[..300].to_vec();
    let pads = [
        "Breaking news from the city council tonight.",
        "Residents have been complaining about traffic for years, and many of them say the \
         detour through the old town will add an hour to every trip across the water. Local \
         shops fear losing customers all summer long. The mayor promised a ferry service.",
        "Read more below. Share widely!",
    ];
    for (i, pad) in pads.iter().enumerate() {
        posts.push(RawPost {
            id: format!("long-{i}"),
            text: format!("{pad} {SNIPPET}. {}", pads[(i + 1) % 3]),
            account: format!("a{i}"),
            platform: "web".into(),
            ts: Some(1_700_000_000 + i as i64),
            line: 0,
        });
    }
    posts
}

fn set(fp: &Fingerprinter, text: &str) -> Vec<u64> {
    fp.shingle_set(text, &mut Scratch::new()).to_vec()
}

#[test]
fn containment_hits_are_exact_and_find_the_long_posts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    let posts = posts();
    util::build_lib(&dir, &posts, Default::default(), 1000);
    let index = Index::open(&dir).expect("opens");
    let fp = Fingerprinter::new(FingerprintParams::default()).expect("params");
    let q = set(&fp, SNIPPET);
    // The plain lookup misses the longest post: its similarity to the snippet is low.
    let plain = index
        .query(SNIPPET, &QueryOptions::default())
        .expect("query");
    assert!(plain.hits.iter().all(|h| h.id != "long-1"), "{plain:?}");
    for c in [0.5, 0.8, 1.0] {
        let opts = QueryOptions {
            containment: Some(c),
            ..QueryOptions::default()
        };
        let r = index.query(SNIPPET, &opts).expect("query");
        // Oracle: every indexed post's exact containment of the snippet.
        let mut want: Vec<&str> = posts
            .iter()
            .filter(|p| {
                let s = set(&fp, &p.text);
                let both = intersection_len(&q, &s);
                both > 0 && both as f64 / q.len() as f64 >= c
            })
            .map(|p| p.id.as_str())
            .collect();
        want.sort_unstable();
        let mut got: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, want, "containment {c}");
        assert!(want.len() >= 3, "the three long posts hold the snippet");
        for h in &r.hits {
            let s = set(&fp, h.text.as_deref().expect("text"));
            let both = intersection_len(&q, &s) as f64;
            assert_eq!(h.containment, Some(both / q.len() as f64));
            assert!((h.similarity - textreuse::minhash::jaccard(&q, &s)).abs() < 1e-12);
        }
    }
    // The other way round: the snippet lies wholly inside each long post.
    let long = &posts[posts.len() - 1].text;
    let opts = QueryOptions {
        contained_in: Some(0.9),
        ..QueryOptions::default()
    };
    let r = index.query(SNIPPET, &opts).expect("query");
    assert!(r.hits.is_empty(), "no post lies inside the snippet: {r:?}");
    let r = index.query(long, &opts).expect("query");
    assert!(r.hits.iter().any(|h| h.id == "long-2"), "{r:?}");
    let s = set(&fp, long);
    for h in &r.hits {
        let p = set(&fp, h.text.as_deref().expect("text"));
        let x = intersection_len(&s, &p) as f64 / p.len() as f64;
        assert_eq!(h.containment, Some(x));
        assert!(x >= 0.9);
    }
}

#[test]
fn containment_outside_the_range_or_without_texts_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts());
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &["-q"]);
    let d = dir.to_str().expect("utf-8 path");
    for bad in [
        vec!["--containment", "0"],
        vec!["--containment", "1.5"],
        vec!["--containment", "-0.2"],
        vec!["--containment", "NaN"],
        vec!["--contained-in", "0"],
        vec!["--containment", "0.8", "--contained-in", "0.8"],
    ] {
        let mut args = vec!["query", "--index", d];
        args.extend(&bad);
        args.push(SNIPPET);
        let r = util::textreuse(&args);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
        assert!(!r.stderr.is_empty(), "{bad:?}");
    }
    let r = util::textreuse(["query", "--index", d, "--containment", "0"]);
    assert!(r.stderr.contains("containment must be in (0, 1]"), "{r:?}");
    let r = util::textreuse([
        "query",
        "--json",
        "--index",
        d,
        "--containment",
        "0.8",
        SNIPPET,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(r.stdout.lines().next().expect("line")).expect("JSON");
    let hits = v["hits"].as_array().expect("hits");
    assert!(hits.len() >= 3 && hits.iter().all(|h| h["containment"].as_f64() >= Some(0.8)));
    let index = Index::open(&dir).expect("opens");
    let opts = QueryOptions {
        containment: Some(2.0),
        ..QueryOptions::default()
    };
    assert!(index.query(SNIPPET, &opts).is_err());
    assert!(
        index.query("", &opts).is_err(),
        "checked before the empty answer"
    );

    let dir = tmp.path().join("bare");
    util::cli_build(&input, &dir, &["-q", "--no-store-text"]);
    let r = util::textreuse([
        "query",
        "--index",
        dir.to_str().expect("utf-8 path"),
        "--containment",
        "0.8",
        SNIPPET,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("need stored texts"), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Clusters with containment.
// ---------------------------------------------------------------------------------------

/// `n` distinct made-up words.
fn vocabulary(rng: &mut util::Rng, n: usize) -> Vec<String> {
    let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyz".chars().collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let len = 4 + rng.below(6);
        let w: String = (0..len).map(|_| letters[rng.below(26)]).collect();
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// The sample posts, a campaign of 30 variants of a 60-word text (each with one word
/// replaced) and a snippet of 12 of its words posted once (`snippet`): its Jaccard
/// similarity with every variant is about 0.17, below the default attachment at 0.3, but
/// its shingles lie wholly inside them.
fn campaign_with_snippet() -> Vec<RawPost> {
    let mut rng = util::Rng::new(0x5eed_c0de);
    let vocab = vocabulary(&mut rng, 200);
    let seed: Vec<String> = (0..60).map(|i| vocab[i].clone()).collect();
    let mut posts = util::sample_posts()[..400].to_vec();
    let mut add = |id: String, text: String, i: usize| {
        posts.push(RawPost {
            id,
            text,
            account: format!("acc{}", i % 7),
            platform: "web".into(),
            ts: Some(1_700_000_000 + i as i64 * 60),
            line: 0,
        })
    };
    for i in 0..30 {
        let mut v = seed.clone();
        v[(i * 2 + 1) % 60] = vocab[100 + i].clone();
        add(format!("member-{i}"), v.join(" "), i);
    }
    add("snippet".into(), seed[20..32].join(" "), 99);
    posts
}

fn cluster_of<'a>(r: &'a ClusterReport, id: &str) -> Option<&'a Cluster> {
    r.clusters.iter().find(|c| c.posts.iter().any(|p| p == id))
}

#[test]
fn a_snippet_joins_its_campaign_only_with_containment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    let posts = campaign_with_snippet();
    util::build_lib(&dir, &posts, Default::default(), 1000);
    let index = Index::open(&dir).expect("opens");
    let fp = Fingerprinter::new(FingerprintParams::default()).expect("params");
    let text = |id: &str| &posts.iter().find(|p| p.id == id).expect("post").text;
    let (snip, member) = (set(&fp, text("snippet")), set(&fp, text("member-0")));
    assert_eq!(intersection_len(&snip, &member), snip.len(), "inside");
    assert!(textreuse::minhash::jaccard(&snip, &member) < 0.2);

    let plain = index
        .clusters(&ClusterOptions::default())
        .expect("clusters");
    let campaign = cluster_of(&plain, "member-0").expect("the campaign is a cluster");
    assert_eq!(campaign.size, 30, "{campaign:?}");
    assert!(
        !campaign.posts.iter().any(|p| p == "snippet"),
        "similarity alone leaves the snippet out"
    );
    assert_eq!((plain.contained, campaign.contained), (0, 0));

    let opts = ClusterOptions {
        containment: Some(0.8),
        ..ClusterOptions::default()
    };
    let with = index.clusters(&opts).expect("clusters");
    let campaign = cluster_of(&with, "member-0").expect("the campaign is a cluster");
    assert!(
        campaign.posts.iter().any(|p| p == "snippet"),
        "{campaign:?}"
    );
    assert_eq!(campaign.size, 31);
    assert!(campaign.contained >= 1 && campaign.attached >= campaign.contained);
    assert!(with.contained >= 1);
    // The link it joined by is its exact similarity, weaker than any variant's.
    assert!(campaign.weakest_link < 0.2, "{}", campaign.weakest_link);
    // Everything else is as without containment, apart from texts joined by containment.
    for c in &plain.clusters {
        if c.posts.iter().any(|p| p.starts_with("member-")) {
            continue;
        }
        let other = cluster_of(&with, &c.posts[0]).expect("still clustered");
        assert!(
            c.posts.iter().all(|p| other.posts.contains(p)),
            "a cluster was split: {c:?}"
        );
    }
    // Wholly inside: it joins at C = 1 as well.
    let strict = ClusterOptions {
        containment: Some(1.0),
        ..ClusterOptions::default()
    };
    let strict = index.clusters(&strict).expect("clusters");
    assert!(cluster_of(&strict, "snippet").is_some(), "wholly inside");
}

#[test]
fn clusters_containment_is_checked_and_needs_stored_texts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &campaign_with_snippet());
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &["-q"]);
    let d = dir.to_str().expect("utf-8 path");
    for bad in ["0", "1.5", "-0.2", "NaN"] {
        let arg = format!("--containment={bad}");
        let r = util::textreuse(["clusters", "--index", d, arg.as_str()]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(r.stderr.contains("containment must be in (0, 1]"), "{r:?}");
    }
    let index = Index::open(&dir).expect("opens");
    let opts = ClusterOptions {
        containment: Some(0.0),
        ..ClusterOptions::default()
    };
    assert!(index.clusters(&opts).is_err());

    let r = util::textreuse(["clusters", "--index", d, "--json", "--containment", "0.8"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let campaign = lines
        .iter()
        .find(|c| {
            c["posts"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == "snippet"))
        })
        .expect("the snippet is clustered");
    assert_eq!(campaign["size"], 31);
    assert!(campaign["contained"].as_u64() >= Some(1), "{campaign}");
    assert!(r.stderr.contains("by containment"), "{r:?}");
    // The table names the core text under the representative.
    let c = &campaign["core_text"];
    let core = c["text"].as_str().expect("a core text");
    let head = format!(
        "core ({} of {} posts sampled, chars {}..{}): ",
        c["posts"], c["sampled"], c["start"], c["end"]
    );
    let r = util::textreuse(["clusters", "--index", d, "--containment", "0.8"]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&head))
        .expect("the campaign's core line");
    let shown = &line.trim_start()[head.len()..];
    assert!(core.starts_with(shown.trim_end_matches('…')), "{line}");

    let bare = tmp.path().join("bare");
    util::cli_build(&input, &bare, &["-q", "--no-store-text"]);
    let b = bare.to_str().expect("utf-8 path");
    let r = util::textreuse(["clusters", "--index", b, "--containment", "0.8"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("need stored texts"), "{r:?}");
    // Without containment it clusters, and has no core texts.
    let r = util::textreuse(["clusters", "--index", b, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for l in r.stdout.lines() {
        let v: Value = serde_json::from_str(l).expect("JSON");
        assert!(v["core_text"].is_null(), "{v}");
    }
}
