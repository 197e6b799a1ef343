//! The command-line contract: outputs, JSON shapes and exit codes (0 = found / success,
//! 1 = nothing found, 2 = error).

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use textreuse::input::RawPost;
use textreuse::{Index, QueryOptions};

use crate::envelope::{Envelope, SIGS_MAGIC, TEXT_MAGIC};
use crate::util;

fn run(args: &[&OsStr]) -> util::Run {
    util::textreuse(args)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Every JSON line of stdout.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

struct Small {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    posts: Vec<RawPost>,
    work: PathBuf,
}

/// Runs `textreuse query --json [flags] --index DIR --input FILE`.
fn query_file(dir: &Path, input: &Path, flags: &[&str]) -> util::Run {
    let mut args = vec![os("query"), os("--json")];
    args.extend(flags.iter().map(|f| os(f)));
    args.extend([
        os("--index"),
        dir.as_os_str(),
        os("--input"),
        input.as_os_str(),
    ]);
    run(&args)
}

/// A CLI-built index of 300 sample posts plus near-copies under known ids.
fn small_index(extra: &[&str]) -> Small {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut posts = util::sample_posts()[..300].to_vec();
    let base = posts[10].clone();
    for (i, text) in [
        format!("RT @someone: {}", base.text),
        format!("{} #copy https://t.co/xyz", base.text),
    ]
    .into_iter()
    .enumerate()
    {
        posts.push(RawPost {
            id: format!("copy-{i}"),
            text,
            account: format!("copier{i}"),
            platform: "telegram".into(),
            ts: Some(1_690_000_000 + i as i64),
            line: 0,
        });
    }
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts);
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &[&["-q"], extra].concat());
    Small {
        work: tmp.path().to_path_buf(),
        _tmp: tmp,
        dir,
        posts,
    }
}

/// A hit as the library reports it, in the CLI's JSON shape.
fn lib_hits(index: &Index, text: &str, opts: &QueryOptions) -> Value {
    let r = index.query(text, opts).expect("query");
    Value::Array(
        r.hits
            .iter()
            .map(|h| {
                let mut o = json!({
                    "id": h.id, "similarity": h.similarity, "account": h.account,
                    "platform": h.platform, "ts": h.ts,
                });
                if let Some(t) = &h.text {
                    o["text"] = json!(t);
                }
                o
            })
            .collect(),
    )
}

/// Equal hit lists; similarities within 1e-12 (serde_json's default float parsing may be off
/// by one unit in the last place).
fn assert_same_hits(got: &Value, want: &Value, what: &str) {
    let strip = |v: &Value| -> (Vec<Value>, Vec<f64>) {
        let hits = v.as_array().expect("an array");
        let sims = hits
            .iter()
            .map(|h| h["similarity"].as_f64().expect("similarity"))
            .collect();
        let rest = hits
            .iter()
            .map(|h| {
                let mut h = h.clone();
                h.as_object_mut().expect("object").remove("similarity");
                h
            })
            .collect();
        (rest, sims)
    };
    let ((gr, gs), (wr, ws)) = (strip(got), strip(want));
    assert_eq!(gr, wr, "hits of {what:?}");
    assert_eq!(gs.len(), ws.len());
    for (g, w) in gs.iter().zip(&ws) {
        assert!((g - w).abs() < 1e-12, "similarity {g} vs {w} for {what:?}");
    }
}

#[test]
fn query_json_contract() {
    let s = small_index(&[]);
    let index = Index::open(&s.dir).expect("opens");
    let base = &s.posts[10].text;
    let near = format!("{base} and one more thing");
    let queries = [
        base.clone(),
        json!({"id": "q-near", "text": near}).to_string(),
        "zzyzx qwv plugh xyzzy".to_string(),
        "😀 #tag 123".to_string(),
        json!({"text": s.posts[200].text}).to_string(),
        json!({"id": 17, "text": s.posts[17].text}).to_string(),
    ];
    let qfile = s.work.join("queries.jsonl");
    fs::write(&qfile, queries.join("\n") + "\n").expect("writes queries");
    let r = query_file(&s.dir, &qfile, &[]);
    assert_eq!(r.code, 0, "something matched: {r:?}");
    let out = json_lines(&r.stdout);
    assert_eq!(
        out.len(),
        queries.len(),
        "one object per input line: {}",
        r.stdout
    );
    let labels: Vec<&str> = out
        .iter()
        .map(|o| o["query"].as_str().expect("query is a string"))
        .collect();
    assert_eq!(
        labels,
        ["0", "q-near", "2", "3", "4", "17"],
        "labels, in input order"
    );
    let texts = [
        base.as_str(),
        near.as_str(),
        "zzyzx qwv plugh xyzzy",
        "😀 #tag 123",
        &s.posts[200].text,
        &s.posts[17].text,
    ];
    // The CLI settles near-threshold estimates exactly unless --estimate-only.
    let opts = QueryOptions {
        limit: 20,
        exact_near_threshold: true,
        ..QueryOptions::default()
    };
    for (o, text) in out.iter().zip(texts) {
        assert!(o["took_us"].is_u64(), "took_us: {o}");
        let hits = o["hits"].as_array().expect("hits is an array");
        for h in hits {
            for k in ["id", "similarity", "account", "platform", "ts", "text"] {
                assert!(h.get(k).is_some(), "hit without {k}: {h}");
            }
        }
        assert_same_hits(&o["hits"], &lib_hits(&index, text, &opts), text);
    }
    // The base post and its two copies, best first.
    let ids: Vec<&str> = out[0]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["id"].as_str().expect("id"))
        .collect();
    assert!(
        ids.contains(&"10") && ids.contains(&"copy-0") && ids.contains(&"copy-1"),
        "{ids:?}"
    );
    assert_eq!(out[2]["hits"], json!([]));
    assert_eq!(
        out[3]["empty"],
        json!(true),
        "a text with no tokens is flagged: {}",
        out[3]
    );

    // Texts as arguments; options.
    let r = run(&[
        os("query"),
        os("--json"),
        os("--no-text"),
        os("--limit"),
        os("2"),
        os("--index"),
        s.dir.as_os_str(),
        os(base),
        os("zzyzx qwv plugh xyzzy"),
    ]);
    assert_eq!(r.code, 0);
    let out = json_lines(&r.stdout);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["query"], json!("0"));
    assert_eq!(out[1]["query"], json!("1"));
    let hits = out[0]["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 2, "--limit 2");
    assert!(hits.iter().all(|h| h.get("text").is_none()), "--no-text");
    let r = run(&[
        os("query"),
        os("--json"),
        os("--platform"),
        os("telegram"),
        os("--index"),
        s.dir.as_os_str(),
        os(base),
    ]);
    let out = json_lines(&r.stdout);
    let platforms: Vec<&str> = out[0]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["platform"].as_str().expect("platform"))
        .collect();
    assert_eq!(platforms, ["telegram", "telegram"], "--platform");

    // Memory-mapped, in memory and prefetched: the same answers.
    let strip = |stdout: &str| -> Vec<Value> {
        json_lines(stdout)
            .into_iter()
            .map(|mut o| {
                o.as_object_mut().expect("object").remove("took_us");
                o
            })
            .collect()
    };
    let mmap = query_file(&s.dir, &qfile, &[]);
    for flag in ["--in-memory", "--prefetch"] {
        let other = query_file(&s.dir, &qfile, &[flag]);
        assert_eq!(strip(&other.stdout), strip(&mmap.stdout), "{flag}");
    }

    // By id: the neighbours, without the post itself.
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        s.dir.as_os_str(),
        os("--id"),
        os("copy-0"),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = json_lines(&r.stdout);
    let ids: Vec<&str> = out[0]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["id"].as_str().expect("id"))
        .collect();
    assert!(
        !ids.contains(&"copy-0") && ids.contains(&"10") && ids.contains(&"copy-1"),
        "{ids:?}"
    );
}

#[test]
fn query_exit_codes() {
    let s = small_index(&[]);
    let base = s.posts[10].text.clone();
    let r = run(&[os("query"), os("--index"), s.dir.as_os_str(), os(&base)]);
    assert_eq!(r.code, 0, "found: {r:?}");
    assert!(
        r.stdout.contains("copy-0"),
        "the table shows hits: {}",
        r.stdout
    );
    let r = run(&[
        os("query"),
        os("--index"),
        s.dir.as_os_str(),
        os("zzyzx qwv plugh xyzzy"),
    ]);
    assert_eq!(r.code, 1, "nothing found: {r:?}");
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        s.dir.as_os_str(),
        os("zzyzx qwv plugh xyzzy"),
        os("😀"),
    ]);
    assert_eq!(r.code, 1, "nothing found: {r:?}");
    assert_eq!(json_lines(&r.stdout).len(), 2);
    let missing = s.work.join("no-such-index");
    let r = run(&[os("query"), os("--index"), missing.as_os_str(), os(&base)]);
    assert_eq!(r.code, 2, "missing index: {r:?}");
    assert!(
        r.stderr.contains(&missing.display().to_string()),
        "names the path: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    let r = run(&[
        os("query"),
        os("--index"),
        s.dir.as_os_str(),
        os("--input"),
        missing.as_os_str(),
    ]);
    assert_eq!(r.code, 2, "missing query file: {r:?}");
    let r = run(&[
        os("query"),
        os("--index"),
        s.dir.as_os_str(),
        os("--since"),
        os("last tuesday"),
        os(&base),
    ]);
    assert_eq!(r.code, 2, "bad time: {r:?}");
    let r = run(&[os("stats"), os("--index"), missing.as_os_str()]);
    assert_eq!(r.code, 2, "stats of a missing index: {r:?}");
    let r = run(&[os("verify"), os("--index"), missing.as_os_str()]);
    assert_eq!(r.code, 2, "verify of a missing index: {r:?}");
    let r = run(&[
        os("build"),
        os("--input"),
        missing.as_os_str(),
        os("--index"),
        s.work.join("x").as_os_str(),
    ]);
    assert_eq!(r.code, 2, "build from a missing file: {r:?}");
    assert!(
        r.stderr.contains(&missing.display().to_string()),
        "{}",
        r.stderr
    );
}

#[test]
fn stats_json_contract() {
    let s = small_index(&["--bands", "16", "--rows", "8"]);
    let r = run(&[os("stats"), os("--json"), os("--index"), s.dir.as_os_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).expect("stats --json is JSON");
    let index = Index::open(&s.dir).expect("opens");
    assert_eq!(v["posts"], json!(s.posts.len()), "{v}");
    assert_eq!(v["posts"], json!(index.num_posts()));
    // Post 10 and its "#copy" variant normalize alike: one text fewer than posts (at least).
    let unique = v["unique_texts"].as_u64().expect("unique_texts");
    assert!(unique < s.posts.len() as u64 && unique > 250, "{unique}");
    assert_eq!(v["segments"], json!(1));
    assert_eq!(v["params"]["lsh"], json!({"bands": 16, "rows": 8}), "{v}");
    assert_eq!(v["params"]["num_perm"], json!(128));
    assert_eq!(v["params"]["shingle"], json!(3));
    let by_file = v["bytes_by_file"].as_object().expect("bytes_by_file");
    let mut names: Vec<&str> = by_file.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["bands", "ids.fst", "posts", "sigs", "text"]);
    let seg = index.segments()[0].dir().to_path_buf();
    for (name, bytes) in by_file {
        let on_disk = fs::metadata(seg.join(name)).expect("file exists").len();
        assert_eq!(bytes.as_u64(), Some(on_disk), "{name}");
    }
    // The human form names the same numbers.
    let r = run(&[os("stats"), os("--index"), s.dir.as_os_str()]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains(&format!("{}", s.posts.len())) && r.stdout.contains("16 bands x 8 rows"),
        "{}",
        r.stdout
    );
}

/// Flips the middle byte of section `section` of `path`, returning the original bytes.
fn flip_in_section(path: &Path, magic: &[u8; 8], section: usize) -> Vec<u8> {
    let bytes = fs::read(path).expect("reads");
    let env = Envelope::parse(path, &bytes, magic);
    let r = env.sections[section].clone();
    assert!(!r.is_empty());
    let mut d = bytes.clone();
    d[r.start + r.len() / 2] ^= 0x20;
    fs::write(path, d).expect("writes");
    bytes
}

#[test]
fn verify_names_the_damaged_file() {
    let s = small_index(&[]);
    let r = run(&[os("verify"), os("--index"), s.dir.as_os_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ok"), "{}", r.stdout);
    let seg = Index::open(&s.dir).expect("opens").segments()[0]
        .dir()
        .to_path_buf();
    for (name, magic, section) in [("sigs", SIGS_MAGIC, 1), ("text", TEXT_MAGIC, 2)] {
        let path = seg.join(name);
        let original = flip_in_section(&path, magic, section);
        let r = run(&[os("verify"), os("--index"), s.dir.as_os_str()]);
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(
            r.stderr.contains(&path.display().to_string()),
            "{name}: the message names the file: {}",
            r.stderr
        );
        // A damaged signature section does not stop the index from opening: queries still
        // run (the damage is only certain to be found by verify).
        let q = run(&[
            os("query"),
            os("--json"),
            os("--index"),
            s.dir.as_os_str(),
            os(&s.posts[5].text),
        ]);
        assert_ne!(q.code, 101, "no panic: {q:?}");
        fs::write(&path, original).expect("restores");
    }
    let r = run(&[os("verify"), os("--index"), s.dir.as_os_str()]);
    assert_eq!(r.code, 0, "restored: {r:?}");
}

#[test]
fn build_refuses_an_existing_index_without_force() {
    let s = small_index(&[]);
    let before = util::read_tree(&s.dir);
    let input = s.work.join("other.jsonl");
    util::write_jsonl(&input, &util::sample_posts()[1000..1100]);
    let args = [
        os("build"),
        os("-q"),
        os("--input"),
        input.as_os_str(),
        os("--index"),
        s.dir.as_os_str(),
    ];
    let r = run(&args);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--force"),
        "says how to replace it: {}",
        r.stderr
    );
    assert_eq!(util::read_tree(&s.dir), before, "the index is untouched");
    let r = run(&[&args[..], &[os("--force")]].concat());
    assert_eq!(r.code, 0, "{r:?}");
    let index = Index::open(&s.dir).expect("opens");
    assert_eq!(index.num_posts(), 100);
    assert!(index.post("1000").expect("post").is_some());
    assert!(
        index.post("10").expect("post").is_none(),
        "the old posts are gone"
    );
    let names = util::entries(&s.dir);
    assert_eq!(
        names.iter().filter(|n| n.starts_with("seg-")).count(),
        1,
        "old segments removed: {names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("MANIFEST-")).count(),
        1,
        "old manifest removed: {names:?}"
    );
}

#[test]
fn traditional_query_finds_the_simplified_post() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("zh.jsonl");
    let lines = [
        json!({"id": "zh-1", "text": "这个政府说谎，大家都知道这件事情", "account": "a", "platform": "weibo", "ts": 1_700_000_000}),
        json!({"id": "zh-2", "text": "今天天气很好，我们去公园散步吧", "account": "b", "platform": "weibo"}),
        json!({"id": "en-1", "text": "the government is lying and everyone knows it", "account": "c", "platform": "x"}),
    ];
    fs::write(
        &input,
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .expect("writes");
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &["-q"]);
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        dir.as_os_str(),
        os("這個政府說謊，大家都知道這件事情"),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = json_lines(&r.stdout);
    let hits = out[0]["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["id"], json!("zh-1"));
    assert_eq!(hits[0]["similarity"], json!(1.0));
    assert_eq!(hits[0]["text"], json!("这个政府说谎，大家都知道这件事情"));
    assert_eq!(hits[0]["ts"], json!(1_700_000_000));
}

#[test]
fn an_index_without_texts() {
    let s = small_index(&["--no-store-text"]);
    let r = run(&[os("stats"), os("--json"), os("--index"), s.dir.as_os_str()]);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(
        v["bytes_by_file"].get("text").is_none(),
        "no text file: {v}"
    );
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        s.dir.as_os_str(),
        os(&s.posts[10].text),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = json_lines(&r.stdout);
    let hits = out[0]["hits"].as_array().expect("hits");
    assert!(
        hits.len() >= 3 && hits.iter().all(|h| h.get("text").is_none()),
        "{hits:?}"
    );
    let index = Index::open(&s.dir).expect("opens");
    assert_eq!(index.post("10").expect("post").expect("indexed").text, None);
    assert!(
        index.query_post("10", &QueryOptions::default()).is_err(),
        "needs stored texts"
    );
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        s.dir.as_os_str(),
        os("--id"),
        os("10"),
    ]);
    let out = json_lines(&r.stdout);
    assert!(
        out[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("--no-store-text")),
        "{}",
        r.stdout
    );
}

/// A lookup that fails is an error: exit code 2, as for a missing index.
#[test]
fn a_failed_lookup_exits_2() {
    let s = small_index(&["--no-store-text"]);
    let r = run(&[
        os("query"),
        os("--index"),
        s.dir.as_os_str(),
        os("--id"),
        os("10"),
    ]);
    assert!(r.stderr.contains("--no-store-text"), "{r:?}");
    assert_eq!(r.code, 2, "{r:?}");
}

/// Timestamps come back as they went in, at the ends of the range (years 0000 to 9999)
/// too; a time outside it (i64::MIN, the index's "no time" marker, or i64::MAX) is not
/// silently turned into another: the post is kept without a time, and counted.
#[test]
fn extreme_timestamps_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("min.jsonl");
    fs::write(
        &bad,
        json!({"id": "m", "text": "a post from the start of time", "ts": i64::MIN}).to_string()
            + "\n"
            + &json!({"id": "x", "text": "a post from the end of time", "ts": i64::MAX}).to_string()
            + "\n"
            + &json!({"id": "y", "text": "a leap second at the very end", "ts": "9999-12-31T23:59:60Z"}).to_string()
            + "\n",
    )
    .expect("writes");
    let bad_dir = tmp.path().join("bad-index");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_textreuse"))
        .args(["build", "--strict", "-q", "--input"])
        .arg(&bad)
        .arg("--index")
        .arg(&bad_dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("3 posts without a readable time"),
        "{stderr}"
    );
    let index = Index::open(&bad_dir).expect("opens");
    for id in ["m", "x", "y"] {
        assert_eq!(
            index.post(id).expect("post").expect("kept").ts,
            None,
            "{id}"
        );
    }
    let input = tmp.path().join("ts.jsonl");
    // Integers from 10^11 up are milliseconds: 99,999,999,999 is the last second.
    let cases = [textreuse::input::MIN_TS, -5, 0, 1, 99_999_999_999];
    let lines: String = cases
        .iter()
        .enumerate()
        .map(|(i, ts)| json!({"id": format!("p{i}"), "text": format!("post number {} about time", ["one", "two", "three", "four", "five"][i]), "ts": ts}).to_string() + "\n")
        .collect();
    fs::write(&input, lines).expect("writes");
    let dir = tmp.path().join("index");
    util::cli_build(&input, &dir, &["-q", "--strict"]);
    let index = Index::open(&dir).expect("opens");
    for (i, ts) in cases.iter().enumerate() {
        let p = index
            .post(&format!("p{i}"))
            .expect("post")
            .expect("indexed");
        assert_eq!(p.ts, Some(*ts), "post p{i}");
    }
}

#[test]
fn query_input_keeps_order_across_batches() {
    // More lines than one parallel batch (4096); matching queries on both sides of the
    // batch boundary.
    let s = small_index(&[]);
    let n = 5000;
    let matching = [0usize, 4095, 4096, 4999];
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(k) = matching.iter().position(|&m| m == i) {
            lines.push(json!({"id": format!("m{k}"), "text": s.posts[20 + k].text}).to_string());
        } else if i % 3 == 0 {
            lines.push(format!(
                "zq{}",
                i.to_string()
                    .bytes()
                    .map(|b| (b'a' + b - b'0') as char)
                    .collect::<String>()
            ));
        } else {
            lines.push("🙂".to_string());
        }
    }
    let qfile = s.work.join("many.txt");
    fs::write(&qfile, lines.join("\n") + "\n").expect("writes");
    let r = query_file(&s.dir, &qfile, &["--no-text"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = json_lines(&r.stdout);
    assert_eq!(out.len(), n);
    for (i, o) in out.iter().enumerate() {
        let hits = o["hits"].as_array().expect("hits");
        match matching.iter().position(|&m| m == i) {
            Some(k) => {
                assert_eq!(o["query"], json!(format!("m{k}")), "line {i}");
                assert_eq!(
                    hits.first().map(|h| &h["id"]),
                    Some(&json!(s.posts[20 + k].id)),
                    "line {i}"
                );
            }
            None => {
                assert_eq!(o["query"], json!(i.to_string()), "line {i}");
                assert!(hits.is_empty(), "line {i}: {o}");
            }
        }
    }
    // A malformed JSON query line is an error naming the file and line.
    fs::write(&qfile, "first query text\n{\"text\": \n").expect("writes");
    let r = query_file(&s.dir, &qfile, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!("{}:2", qfile.display())),
        "{}",
        r.stderr
    );
}

#[test]
fn query_settles_near_threshold_hits_exactly_unless_estimate_only() {
    let s = small_index(&[]);
    let index = Index::open(&s.dir).expect("opens");
    let estimate = QueryOptions {
        limit: 20,
        ..QueryOptions::default()
    };
    let exact = QueryOptions {
        exact_near_threshold: true,
        ..estimate.clone()
    };
    // Cuts of indexed posts padded with unrelated words land near J = 0.5 to their source;
    // keep the ones where settling exactly changes the answer.
    let mut queries = Vec::new();
    for p in s.posts.iter().take(120) {
        let words: Vec<&str> = p.text.split_whitespace().collect();
        if words.len() < 12 {
            continue;
        }
        let q = format!(
            "{} lorem ipsum dolor sit amet consectetur adipiscing elit",
            words[..words.len() * 3 / 4].join(" ")
        );
        if lib_hits(&index, &q, &exact) != lib_hits(&index, &q, &estimate) {
            queries.push(q);
        }
    }
    assert!(
        !queries.is_empty(),
        "no query where the exact check changes the hits"
    );
    let qfile = s.work.join("near.txt");
    fs::write(&qfile, queries.join("\n") + "\n").expect("writes queries");
    for (flag, opts) in [(None, &exact), (Some("--estimate-only"), &estimate)] {
        let r = query_file(&s.dir, &qfile, flag.as_slice());
        assert_eq!(r.code, 0, "{r:?}");
        let out = json_lines(&r.stdout);
        assert_eq!(out.len(), queries.len());
        for (o, q) in out.iter().zip(&queries) {
            assert_same_hits(&o["hits"], &lib_hits(&index, q, opts), q);
            // Settling changed these answers, so something was settled, and the JSON says
            // how much (nothing is, and the field is left out, with --estimate-only).
            let settled = index.query(q, opts).expect("query").settled;
            if flag.is_none() {
                assert!(settled > 0, "library settled nothing for {q}");
                assert!(
                    o["settled"].as_u64().is_some_and(|n| n > 0),
                    "settled in {o}"
                );
            } else {
                assert_eq!(settled, 0, "{q}");
                assert!(o.get("settled").is_none(), "{o}");
            }
        }
    }
}

/// `fingerprint --input` reads in blocks and batches: lines past a batch, a line longer
/// than a block, malformed lines with their line numbers, CRLF, no final newline, and
/// stdin, against fingerprints made one text at a time.
#[test]
fn fingerprint_input_lines_across_blocks_and_batches() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    use textreuse::{FingerprintParams, Fingerprinter};

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lines.txt");
    // 20,000 lines (more than one batch); a 5 MB line (more than one read block).
    let long = "word ".repeat(1_000_000);
    let mut lines: Vec<String> = (0..20_000)
        .map(|i| {
            json!({"id": i, "text": format!("post {i} 這個政府說謊 text number {i}")}).to_string()
        })
        .collect();
    lines[7] = long.clone();
    lines[19_990] = "{\"text\": broken".into();
    lines[19_991] = "{\"id\": 3}".into();
    lines[19_992] = "plain text line\r".into();
    let input = lines.join("\n"); // no final newline
    fs::write(&path, &input).unwrap();

    let fp = Fingerprinter::new(FingerprintParams::default()).unwrap();
    let want: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| ![19_990, 19_991].contains(i))
        .map(|(_, l)| {
            let text = match serde_json::from_str::<Value>(l) {
                Ok(v) => v["text"].as_str().unwrap().to_string(),
                Err(_) => l.trim_end_matches('\r').to_string(),
            };
            fp.fingerprint(&text)
                .map(|f| format!("{:032x}", f.content_hash))
                .unwrap()
        })
        .collect();

    let r = run(&[os("fingerprint"), os("--input"), path.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got: Vec<String> = r
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "content hashes differ from one-at-a-time fingerprints"
    );
    assert_eq!(
        r.stdout.lines().nth(7).unwrap().split('\t').nth(1),
        Some("999998"),
        "the 5 MB line has 1,000,000 tokens"
    );
    let name = path.display().to_string();
    assert!(
        r.stderr.contains(&format!("{name}:19991: invalid JSON")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("{name}:19992: missing text field")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);

    // The same lines through stdin.
    let mut child = Command::new(util::bin())
        .args(["fingerprint", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout) == r.stdout,
        "stdin and file outputs differ"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("<stdin>:19991: invalid JSON"));
}

#[test]
fn query_input_goes_on_after_a_bad_line_and_reads_compressed_csv() {
    // Issue 16 item 12 and issue 17 point 9.
    let s = small_index(&[]);
    let qfile = s.work.join("q.jsonl");
    let lines = [
        json!({"id": "a", "text": s.posts[20].text}).to_string(),
        "{\"text\": ".to_owned(),
        json!({"id": "", "text": "an empty id"}).to_string(),
        json!({"id": "b", "text": s.posts[21].text}).to_string(),
    ];
    fs::write(&qfile, lines.join("\n") + "\n").expect("writes");
    let r = query_file(&s.dir, &qfile, &["--no-text"]);
    assert_eq!(r.code, 2, "a bad line makes the run an error: {r:?}");
    let out = json_lines(&r.stdout);
    assert_eq!(out.len(), 4, "{}", r.stdout);
    assert_eq!(out[0]["query"], json!("a"));
    assert_eq!(out[0]["hits"][0]["id"], json!(s.posts[20].id));
    assert!(out[1]["error"]
        .as_str()
        .is_some_and(|e| e.contains("q.jsonl:2: invalid JSON")));
    assert!(out[2]["error"]
        .as_str()
        .is_some_and(|e| e.contains("id is empty")));
    assert_eq!(out[3]["hits"][0]["id"], json!(s.posts[21].id));
    // The same queries as a gzip-compressed CSV with renamed columns, and as zstd.
    let csv = format!(
        "post,body\na,\"{}\"\nb,\"{}\"\n",
        s.posts[20].text.replace('"', "\"\""),
        s.posts[21].text.replace('"', "\"\"")
    );
    let gz = s.work.join("q.csv.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, csv.as_bytes()).expect("compresses");
    fs::write(&gz, e.finish().expect("compresses")).expect("writes");
    let zst = s.work.join("q.csv.zst");
    fs::write(
        &zst,
        zstd::encode_all(csv.as_bytes(), 1).expect("compresses"),
    )
    .expect("writes");
    for f in [&gz, &zst] {
        let r = query_file(
            &s.dir,
            f,
            &["--no-text", "--id-field", "post", "--text-field", "body"],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let out = json_lines(&r.stdout);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (&out[0]["query"], &out[1]["query"]),
            (&json!("a"), &json!("b"))
        );
        assert_eq!(out[1]["hits"][0]["id"], json!(s.posts[21].id));
    }
    // fingerprint --input reads compressed input too.
    let plain = run(&[
        os("fingerprint"),
        os("--json"),
        os("--input"),
        qfile.as_os_str(),
    ]);
    let fz = s.work.join("q.jsonl.zst");
    fs::write(
        &fz,
        zstd::encode_all(fs::read(&qfile).expect("reads").as_slice(), 1).expect("compresses"),
    )
    .expect("writes");
    let packed = run(&[
        os("fingerprint"),
        os("--json"),
        os("--input"),
        fz.as_os_str(),
    ]);
    assert_eq!(plain.stdout, packed.stdout);
    assert!(plain.stdout.lines().count() >= 3, "{}", plain.stdout);
}

#[test]
fn query_options_are_checked() {
    // Issue 17 points 4-6, issue 16 item 14.
    let s = small_index(&[]);
    let dir = s.dir.as_os_str();
    for bad in ["1.5", "-0.1", "NaN", "inf", "x"] {
        let flag = format!("--min-similarity={bad}");
        let r = run(&[os("query"), os("--index"), dir, os(&flag), os("a")]);
        assert_eq!(r.code, 2, "--min-similarity {bad}: {r:?}");
        assert!(r.stderr.contains("--min-similarity"), "{}", r.stderr);
    }
    let r = run(&[
        os("query"),
        os("--index"),
        dir,
        os("-j"),
        os("100000"),
        os("a"),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("-j 100000"), "{}", r.stderr);
    // Platforms: case is ignored; one the index does not hold is named.
    let base = s.posts[10].text.clone();
    let q = |platform: &str| {
        run(&[
            os("query"),
            os("--json"),
            os("--index"),
            dir,
            os("--platform"),
            os(platform),
            os(&base),
        ])
    };
    let lower = q("telegram");
    let upper = q("TELEGRAM");
    assert_eq!(lower.code, 0, "{lower:?}");
    let hits = |r: &util::Run| {
        json_lines(&r.stdout)[0]["hits"]
            .as_array()
            .expect("hits")
            .len()
    };
    assert_eq!(hits(&lower), hits(&upper));
    assert!(hits(&lower) >= 2);
    let r = q("Myspace");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("--platform Myspace: the index holds no post on")
            && r.stderr.contains("telegram"),
        "{}",
        r.stderr
    );
    // --id X --limit N: N other posts.
    let with_copies = s.posts[10].id.clone();
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        dir,
        os("--id"),
        os(&with_copies),
        os("--limit"),
        os("2"),
    ]);
    let o = &json_lines(&r.stdout)[0];
    let ids: Vec<&str> = o["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{o}");
    assert!(!ids.contains(&with_copies.as_str()), "{o}");
    let r = run(&[
        os("query"),
        os("--json"),
        os("--index"),
        dir,
        os("--id"),
        os(&with_copies),
        os("--limit"),
        os("1"),
    ]);
    assert_eq!(json_lines(&r.stdout)[0]["limited"], json!(true));
    // --expand without saved clusters says so.
    let r = run(&[os("query"), os("--index"), dir, os("--expand"), os(&base)]);
    assert!(r.stderr.contains("no saved clusters"), "{}", r.stderr);
    // Ids are never cut in the table; --width sets the text's room.
    let long = s.work.join("long.jsonl");
    let long_id = "1163475215648837632116347521564883763";
    fs::write(
        &long,
        json!({"id": long_id, "text": base}).to_string() + "\n",
    )
    .expect("writes");
    let d2 = s.work.join("long-idx");
    util::cli_build(&long, &d2, &[]);
    for width in ["60", "200"] {
        let r = run(&[
            os("query"),
            os("--index"),
            d2.as_os_str(),
            os("--width"),
            os(width),
            os(&base),
        ]);
        let row = r
            .stdout
            .lines()
            .find(|l| l.contains(long_id))
            .unwrap_or_else(|| panic!("{}", r.stdout));
        let w: usize = width.parse().expect("number");
        assert!(row.chars().count() <= w.max(long_id.len() + 80), "{row}");
    }
}

/// Runs the CLI with its standard output closed (EPIPE) or on /dev/full (ENOSPC).
fn run_with_stdout(args: &[&OsStr], full: bool) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_textreuse"));
    cmd.args(args).stderr(Stdio::piped());
    if full {
        cmd.stdout(fs::File::create("/dev/full").expect("/dev/full"));
    } else {
        cmd.stdout(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("runs");
    // Close the read end at once: the child's writes fail with EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn closed_or_full_stdout_does_not_panic() {
    // Issue 16 item 10.
    let s = small_index(&[]);
    let dir = s.dir.as_os_str();
    // A query that finds posts, so that its exit code is 0 whether or not its write fails:
    // a query that finds nothing exits 1, and under parallel tests another test's child,
    // forked but not yet exec'd, can hold this pipe's read end for a moment, so the write
    // can succeed (seen once in CI).
    let found = s.posts[10].text.as_str();
    let commands: Vec<Vec<&OsStr>> = vec![
        vec![os("stats"), os("--index"), dir],
        vec![os("stats"), os("--json"), os("--index"), dir],
        vec![os("verify"), os("--index"), dir],
        vec![os("query"), os("--json"), os("--index"), dir, os(found)],
    ];
    for args in &commands {
        let (code, stderr) = run_with_stdout(args, false);
        assert_eq!(code, Some(0), "{args:?} on a closed pipe: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if Path::new("/dev/full").exists() {
            let (code, stderr) = run_with_stdout(args, true);
            assert_eq!(code, Some(2), "{args:?} on a full disk: {stderr}");
            assert!(stderr.contains("No space left"), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    }
}

#[test]
fn errors_name_the_path_once_and_stats_reads_well() {
    // Issue 17 points 7 and 9.
    let s = small_index(&[]);
    let nosuch = s.work.join("nosuch");
    let r = run(&[os("merge"), os("--index"), nosuch.as_os_str()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nosuch: holds no index"), "{}", r.stderr);
    assert!(!nosuch.exists(), "merge leaves nothing behind");
    let r = run(&[os("query"), os("--index"), nosuch.as_os_str(), os("x")]);
    assert!(r.stderr.contains("holds no index"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let typo = s.work.join("typo.jsonl");
    let r = run(&[os("fingerprint"), os("--input"), typo.as_os_str()]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("typo.jsonl") && r.stderr.contains("--input"),
        "{}",
        r.stderr
    );
    let r = run(&[os("stats"), os("--index"), s.dir.as_os_str()]);
    assert!(r.stdout.contains("hashtags removed"), "{}", r.stdout);
    let r = run(&[os("verify"), os("--index"), s.dir.as_os_str()]);
    assert!(r.stdout.contains(" 1 segment,"), "{}", r.stdout);
    let r = run(&[os("build"), os("--help")]);
    assert!(
        r.stdout.contains("--format <auto|jsonl|csv|text>"),
        "{}",
        r.stdout
    );
}

/// `build --verbose` prints where the time went; `build --json` carries the same stages,
/// each a time, and the segment-writing stages are positive when a segment was written
/// with stored texts.
#[test]
fn build_reports_its_stages() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let r = util::cli_build(&util::sample_path(), &index, &["--verbose", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("stages in seconds"))
        .unwrap_or_else(|| panic!("no stage line in {}", r.stderr));
    for stage in [
        "read",
        "parse",
        "fingerprint",
        "insert",
        "bands",
        "texts",
        "publish",
    ] {
        assert!(
            line.contains(&format!("{stage} ")),
            "{stage} missing: {line}"
        );
    }
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    let stages = v["stages"].as_object().expect("stages object");
    for (k, t) in stages {
        let t = t.as_f64().unwrap_or(-1.0);
        assert!((0.0..60.0).contains(&t), "{k}: {t}");
    }
    // The band entries, signature, posts, id and text files are written at once after the
    // band tables: each takes at most the wall time of that step (`files`), and bands then
    // files at most the build's.
    let time = |k: &str| stages[k].as_f64().unwrap();
    for k in ["band_entries", "sigs", "posts", "ids", "texts"] {
        assert!(time(k) <= time("files") + 1e-3, "{k}: {stages:?}");
    }
    let writing = time("bands") + time("files");
    assert!(writing > 0.0 && time("texts") > 0.0, "{stages:?}");
    assert!(writing <= v["seconds"].as_f64().unwrap() + 1e-3);
}

/// A named pipe (or `<(command)`) can be read once: the build must not read its start to
/// inspect its fields (which took the first 1,000 records and left the writer to die on a
/// closed pipe, and the build to index whatever the pipe still held, exiting 0), but read
/// every record once, from the first.
#[cfg(unix)]
#[test]
fn a_build_reads_a_named_pipe_once_from_its_first_record() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("posts.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("runs mkfifo");
    assert!(made.success());
    let posts = util::sample_posts();
    let n = posts.len();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            // Opening blocks until the reader opens the pipe.
            let mut f = std::io::BufWriter::new(fs::OpenOptions::new().write(true).open(&fifo)?);
            for p in &posts {
                writeln!(f, "{}", util::jsonl_line(p))?;
            }
            f.flush()
        })
    };
    let index = tmp.path().join("index");
    let mut child = std::process::Command::new(util::bin())
        .args([os("build"), os("--json"), os("--input"), fifo.as_os_str()])
        .args([os("--index"), index.as_os_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs the textreuse binary");
    // A build that opens the pipe a second time waits for a writer that is gone.
    let start = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().ok();
            // Unblocks a writer still waiting for a reader.
            drop(fs::File::open(&fifo));
            panic!("the build did not finish reading the named pipe in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    writer
        .join()
        .expect("writer thread")
        .expect("every record written to the pipe");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let read = v["posts"].as_u64().expect("posts read");
    assert_eq!(read, n as u64, "{v}");
    let index = Index::open(&index).expect("opens");
    for p in [&util::sample_posts()[0], &util::sample_posts()[n - 1]] {
        assert!(
            index.post(&p.id).expect("reads").is_some(),
            "{} missing",
            p.id
        );
    }
}

#[test]
fn merge_within_budget_merges_the_groups_that_fit_and_refuses_when_none_does() {
    use textreuse::index::{merge_memory_need, plan_within, Manifest};
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("posts.jsonl");
    let posts: Vec<RawPost> = util::WordPosts::new(5_000, 40, 50, 7)
        .take(60_000)
        .collect();
    util::write_jsonl(&input, &posts);
    let idx = tmp.path().join("idx");
    let r = util::cli_build(
        &input,
        &idx,
        &["--memory", "16M", "--keep-segments", "--json"],
    );
    let manifest = || Manifest::load_current(&idx).unwrap().unwrap().0;
    let before = manifest();
    let n = before.segments.len();
    assert!(n >= 3, "{n} segments");
    let summary: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(summary["index_segments"], json!(n), "{summary}");
    assert_eq!(summary["segments"], json!(n), "{summary}");
    // A staged share is no index yet: no index segments.
    let staged = tmp.path().join("staged");
    let r = util::cli_build(&util::sample_path(), &staged, &["--segment-only", "--json"]);
    let summary: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(summary["index_segments"], Value::Null, "{summary}");
    assert_eq!(summary["segments"], json!(1), "{summary}");
    let need = |segs: &[textreuse::index::SegmentEntry]| {
        merge_memory_need(
            segs.iter().map(|s| s.posts).sum(),
            segs.iter().map(|s| s.contents).sum(),
        )
    };
    let merge = |memory: &str, within: bool| {
        let mut args = vec![os("merge"), os("--index"), idx.as_os_str(), os("--memory")];
        args.push(os(memory));
        if within {
            args.push(os("--within-budget"));
        }
        run(&args)
    };
    // Room for no two segments together: an error, and nothing changes.
    let r = merge("16M", true);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("nothing was merged"), "{}", r.stderr);
    assert_eq!(manifest().segments, before.segments);
    // Room for the first two segments but not for all: the plain merge refuses it...
    let budget = need(&before.segments[..2]);
    assert!(budget < need(&before.segments));
    let memory = format!("{budget}B");
    let r = merge(&memory, false);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("memory budget"), "{}", r.stderr);
    assert_eq!(manifest().segments, before.segments);
    // ...and --within-budget merges the groups that fit, with a warning.
    let groups = plan_within(&before.segments, 1, budget);
    let left = n - groups.iter().map(|g| g.len() - 1).sum::<usize>();
    assert!(!groups.is_empty() && 1 < left && left < n, "{groups:?}");
    let r = merge(&memory, true);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!("{left} segment(s) remain")),
        "{}",
        r.stderr
    );
    let after = manifest();
    assert_eq!(after.segments.len(), left);
    let total = |m: &Manifest| m.segments.iter().map(|s| s.posts).sum::<u64>();
    assert_eq!(total(&after), total(&before));
    // With room, down to one, without a warning.
    let r = merge("1G", true);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert_eq!(manifest().segments.len(), 1);
    let q = Index::open(&idx)
        .unwrap()
        .query(&posts[123].text, &QueryOptions::default())
        .unwrap();
    assert!(q.hits.iter().any(|h| h.id == "p123"));
    // A deleted post: its segment's rewrite that does not fit is an error too, not
    // "nothing to merge".
    let ids = tmp.path().join("ids.txt");
    fs::write(&ids, "p7\n").unwrap();
    let r = run(&[
        os("delete"),
        os("--index"),
        idx.as_os_str(),
        os("--ids"),
        ids.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = merge("16M", true);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("deleted posts"), "{}", r.stderr);
    assert!(manifest().segments[0].deleted.is_some());
    let r = merge("1G", true);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(manifest().segments[0].deleted.is_none());
    assert_eq!(total(&manifest()), total(&before) - 1);
}
