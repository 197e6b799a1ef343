//! `query --containment C` / `--contained-in C`: posts that hold a snippet, or lie inside
//! the query, settled exactly from stored texts.

use serde_json::Value;
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
