//! `query --evidence`: shared passages as char offsets into both original texts.

use serde_json::Value;
use textreuse::index::{Index, QueryOptions};
use textreuse::input::RawPost;
use textreuse::text::{Normalized, Normalizer};

use crate::util;

fn post(id: &str, text: &str) -> RawPost {
    RawPost {
        id: id.into(),
        text: text.into(),
        account: format!("acct-{id}"),
        platform: "weibo".into(),
        ts: Some(1_700_000_000),
        line: 0,
    }
}

const SEED: &str = "這個政府一直在說謊，大家要知道真相，請轉發給你的朋友們看看吧";

fn posts() -> Vec<RawPost> {
    let mut posts = util::sample_posts()[..200].to_vec();
    posts.push(post(
        "simplified",
        "转发：这个政府一直在说谎，大家要知道真相，请转发给你的朋友们看看吧 #0457",
    ));
    posts.push(post(
        "english",
        "№ 12 Wake up pеople, the vaccine is a lie and they know it, share before they delete this",
    ));
    posts
}

fn chars(s: &str, a: u64, b: u64) -> String {
    s.chars().skip(a as usize).take((b - a) as usize).collect()
}

fn tokens(s: &str) -> Vec<String> {
    let mut n = Normalized::new();
    Normalizer::default().normalize(s, &mut n);
    n.tokens().map(str::to_string).collect()
}

#[test]
fn evidence_offsets_point_into_both_original_texts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts());
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &["-q"]);
    let query = format!("{SEED} http://t.cn/abc");
    let r = util::textreuse([
        "query",
        "--json",
        "--evidence",
        "--index",
        dir.to_str().expect("utf-8 path"),
        &query,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(r.stdout.lines().next().expect("a line")).expect("JSON");
    let hits = v["hits"].as_array().expect("hits");
    let hit = hits
        .iter()
        .find(|h| h["id"] == "simplified")
        .expect("the simplified copy is found");
    let text = hit["text"].as_str().expect("text");
    let ev = hit["evidence"].as_array().expect("evidence");
    assert_eq!(ev.len(), 1, "{ev:?}");
    let n = |k: &str| ev[0][k].as_u64().expect("offset");
    assert_eq!(
        (n("query_start"), n("query_end")),
        (0, SEED.chars().count() as u64)
    );
    let in_query = chars(&query, n("query_start"), n("query_end"));
    let in_hit = chars(text, n("hit_start"), n("hit_end"));
    assert_eq!(in_query, SEED);
    assert_eq!(
        in_hit,
        "这个政府一直在说谎，大家要知道真相，请转发给你的朋友们看看吧"
    );
    assert_eq!(ev[0]["text"], Value::from(in_hit.clone()));
    assert_eq!(tokens(&in_query), tokens(&in_hit));

    // The table marks the passage with brackets when stdout is not a terminal.
    let q = "wake up people the vaccine is a lie";
    let r = util::textreuse([
        "query",
        "--evidence",
        "--min-similarity",
        "0.3",
        "--index",
        dir.to_str().expect("utf-8 path"),
        q,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("№ 12 [Wake up pеople, the vaccine is a lie] and they"),
        "{}",
        r.stdout
    );
}

#[test]
fn evidence_through_the_library_without_texts_in_the_hits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    util::build_lib(&dir, &posts(), Default::default(), 1000);
    let index = Index::open(&dir).expect("opens");
    let opts = QueryOptions {
        evidence: true,
        with_text: false,
        min_similarity: 0.3,
        ..QueryOptions::default()
    };
    let q = "Wake up people, the vaccine is a lie";
    let r = index.query(q, &opts).expect("query");
    let hit = r.hits.iter().find(|h| h.id == "english").expect("found");
    assert_eq!(hit.text, None);
    let ev = hit.evidence.as_ref().expect("evidence");
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].query_start, ev[0].query_end), (0, 36));
    assert_eq!(ev[0].text, "Wake up pеople, the vaccine is a lie");
    // Off by default.
    let r = index.query(q, &QueryOptions::default()).expect("query");
    assert!(r.hits.iter().all(|h| h.evidence.is_none()));
    // A query with no token left: a documented empty answer.
    let r = index.query("123 !!! 😀", &opts).expect("query");
    assert!(r.empty && r.hits.is_empty());
}

#[test]
fn evidence_without_stored_texts_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts());
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &["-q", "--no-store-text"]);
    let r = util::textreuse([
        "query",
        "--evidence",
        "--index",
        dir.to_str().expect("utf-8 path"),
        SEED,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("evidence needs stored texts") && r.stderr.contains("--no-store-text"),
        "{r:?}"
    );
    let index = Index::open(&dir).expect("opens");
    let opts = QueryOptions {
        evidence: true,
        ..QueryOptions::default()
    };
    assert!(index.query(SEED, &opts).is_err());
}
