//! Bad input through the real CLI: every bad record is reported with its file and line,
//! counted exactly, and skipped; every good post is indexed and findable; `--strict`
//! stops at the first bad record without publishing anything.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};
use std::ffi::OsStr;

use textreuse::input::RawPost;
use textreuse::{Fingerprinter, Index};

use crate::util;

/// What a line of the input is.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A post that must be indexed: id, text, account, platform, ts.
    Indexed(String, String, String, String, Option<i64>),
    /// Rejected as invalid.
    Invalid,
    /// Valid, but no token is left after normalization.
    Empty(String),
    /// Valid, but its id is already indexed.
    Duplicate(String),
    /// Blank: not a record at all.
    Blank,
}

struct Input {
    lines: Vec<(Vec<u8>, Kind)>,
}

impl Input {
    fn push(&mut self, bytes: impl Into<Vec<u8>>, kind: Kind) {
        self.lines.push((bytes.into(), kind));
    }

    fn post(&mut self, id: Value, text: &str, account: &str, platform: &str, ts: Option<i64>) {
        let mut o = json!({"id": id, "text": text, "account": account, "platform": platform});
        if let Some(t) = ts {
            o["ts"] = json!(t);
        }
        let id = match id {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.push(
            o.to_string(),
            Kind::Indexed(id, text.into(), account.into(), platform.into(), ts),
        );
    }

    fn write(&self, path: &Path) {
        let mut bytes = Vec::new();
        for (l, _) in &self.lines {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        fs::write(path, bytes).expect("writes the input");
    }

    fn count(&self, f: impl Fn(&Kind) -> bool) -> usize {
        self.lines.iter().filter(|(_, k)| f(k)).count()
    }

    /// 1-based line numbers of lines of a kind.
    fn lines_where(&self, f: impl Fn(&Kind) -> bool) -> Vec<usize> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, (_, k))| f(k))
            .map(|(i, _)| i + 1)
            .collect()
    }
}

const HUGE_BYTES: usize = 10 << 20;

/// Valid posts interleaved with every kind of bad line.
fn bad_corpus() -> Input {
    let fp = Fingerprinter::new(Default::default()).expect("valid parameters");
    let sample: Vec<_> = util::sample_posts()
        .into_iter()
        .filter(|p| fp.fingerprint(&p.text).is_some())
        .take(60)
        .collect();
    let mut input = Input { lines: Vec::new() };
    let mut valid = sample.iter();
    fn next_valid<'a>(input: &mut Input, valid: &mut impl Iterator<Item = &'a RawPost>, n: usize) {
        for _ in 0..n {
            let p = valid.next().expect("enough sample posts");
            input.post(json!(p.id), &p.text, &p.account, &p.platform, p.ts);
        }
    }
    next_valid(&mut input, &mut valid, 5);
    input.push(
        r#"{"id": 9001, "text": "unterminated string"#,
        Kind::Invalid,
    );
    input.push("this is not json at all", Kind::Invalid);
    next_valid(&mut input, &mut valid, 3);
    input.push(r#"{"id": 9002, "text": "trailing comma",}"#, Kind::Invalid);
    input.push("[1, 2, 3]", Kind::Invalid);
    input.push("null", Kind::Invalid);
    input.push(r#"{"id": 9003, "text": 12345}"#, Kind::Invalid);
    input.push(
        r#"{"id": {"a": 1}, "text": "an object as the id of this post"}"#,
        Kind::Invalid,
    );
    input.push(r#"{"id": 9004, "text": ["an", "array"]}"#, Kind::Invalid);
    input.push(r#"{"id": 9005}"#, Kind::Invalid);
    input.push(
        r#"{"text": "a post without any id field at all"}"#,
        Kind::Invalid,
    );
    input.push(
        r#"{"id": 1.5, "text": "a fractional id is not an id"}"#,
        Kind::Invalid,
    );
    input.push(
        r#"{"id": 9006, "text": "a post", "account": {"nested": true}}"#,
        Kind::Invalid,
    );
    // An unreadable time: indexed without a time, and counted (issue 17).
    input.push(
        r#"{"id": 9007, "text": "a post with a bad time", "ts": "yesterday"}"#,
        Kind::Indexed(
            "9007".into(),
            "a post with a bad time".into(),
            String::new(),
            String::new(),
            None,
        ),
    );
    input.push(
        r#"{"id": "", "text": "a post with an empty id"}"#,
        Kind::Invalid,
    );
    input.push(
        &b"{\"id\": 9008, \"text\": \"caf\xff\xfe invalid utf-8 inside\"}"[..],
        Kind::Invalid,
    );
    next_valid(&mut input, &mut valid, 3);
    input.push("", Kind::Blank);
    input.push("   ", Kind::Blank);
    input.push("\t", Kind::Blank);
    input.push(r#"{"id": 9010, "text": ""}"#, Kind::Empty("9010".into()));
    input.push(
        r#"{"id": 9011, "text": "😀 #tag 123"}"#,
        Kind::Empty("9011".into()),
    );
    input.push(
        r#"{"id": 9012, "text": "https://t.co/abc @someone 🎉🎉 #话题#"}"#,
        Kind::Empty("9012".into()),
    );
    next_valid(&mut input, &mut valid, 3);
    // A 10 MB post (mostly spaces, cheap to fingerprint in a debug build).
    let mut huge = String::from("the one enormous post of this corpus starts here ");
    huge.push_str(&" ".repeat(HUGE_BYTES - huge.len() - 20));
    huge.push_str("and ends right here");
    input.post(json!("huge"), &huge, "big", "forum", Some(1_700_000_000));
    // Duplicate ids: a string id repeated; an integer id repeated as a string.
    let first = sample[0].clone();
    input.push(
        json!({"id": first.id, "text": "another text under an id already indexed"}).to_string(),
        Kind::Duplicate(first.id.clone()),
    );
    input.post(
        json!(777),
        "seven hundred seventy seven is my number",
        "a7",
        "x",
        None,
    );
    input.push(
        r#"{"id": "777", "text": "the string form of an integer id is the same id"}"#,
        Kind::Duplicate("777".into()),
    );
    // An id whose first post was empty (so not indexed) is free for a later post.
    input.push(
        r##"{"id": "e1", "text": "#only #hashtags 42"}"##,
        Kind::Empty("e1".into()),
    );
    input.post(
        json!("e1"),
        "now the id e1 comes with real words",
        "",
        "",
        None,
    );
    // A CRLF line ending.
    let p = valid.next().expect("enough posts");
    let line = json!({"id": p.id, "text": p.text, "account": p.account, "platform": p.platform, "ts": p.ts});
    input.push(
        format!("{line}\r"),
        Kind::Indexed(
            p.id.clone(),
            p.text.clone(),
            p.account.clone(),
            p.platform.clone(),
            p.ts,
        ),
    );
    next_valid(&mut input, &mut valid, 20);
    input
}

/// Parses `textreuse: indexed X of Y posts ... skipped A invalid, B duplicate ids, C empty`.
fn summary_counts(stderr: &str) -> [u64; 5] {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("textreuse: indexed "))
        .unwrap_or_else(|| panic!("no summary line in stderr:\n{stderr}"));
    let num_after = |key: &str| -> u64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("{key:?} not in {line:?}"))
            + key.len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
    };
    let num_before = |key: &str| -> u64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("{key:?} not in {line:?}"));
        line[..at]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before {key:?} in {line:?}"))
    };
    [
        num_after("indexed "),
        num_after(" of "),
        num_before(" invalid"),
        num_before(" duplicate ids"),
        num_before(" empty"),
    ]
}

#[test]
fn bad_records_are_reported_counted_and_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("posts.jsonl");
    let dir = tmp.path().join("index");
    let input = bad_corpus();
    input.write(&path);
    let r = util::cli_build(&path, &dir, &["--json"]);

    let indexed = input.count(|k| matches!(k, Kind::Indexed(..)));
    let invalid = input.count(|k| *k == Kind::Invalid);
    let dups = input.count(|k| matches!(k, Kind::Duplicate(_)));
    let empty = input.count(|k| matches!(k, Kind::Empty(_)));
    let records = indexed + invalid + dups + empty;
    assert!(invalid >= 12 && dups == 2 && empty == 4 && indexed > 30);
    assert_eq!(
        summary_counts(&r.stderr),
        [indexed, records, invalid, dups, empty].map(|n| n as u64),
        "summary line: {}",
        r.stderr
            .lines()
            .find(|l| l.starts_with("textreuse: indexed"))
            .unwrap_or("")
    );

    // Every bad line is reported with file:line; good and blank lines are not.
    let name = path.display().to_string();
    for line in input.lines_where(|k| !matches!(k, Kind::Indexed(..) | Kind::Blank)) {
        assert!(
            r.stderr.contains(&format!("{name}:{line}: ")),
            "line {line} ({:?}) is not reported:\n{}",
            input.lines[line - 1].1,
            r.stderr
        );
    }
    for line in input.lines_where(|k| matches!(k, Kind::Indexed(..) | Kind::Blank)) {
        assert!(
            !r.stderr
                .lines()
                .any(|l| l.contains(&format!("{name}:{line}: ")) && !l.contains("readable time")),
            "good line {line} is reported:\n{}",
            r.stderr
        );
    }
    for line in input.lines_where(|k| matches!(k, Kind::Duplicate(_))) {
        let msg = r
            .stderr
            .lines()
            .find(|l| l.contains(&format!("{name}:{line}: ")))
            .expect("reported");
        assert!(msg.contains("duplicate id"), "{msg}");
    }

    // The JSON summary.
    let s: Value =
        serde_json::from_str(r.stdout.trim()).expect("build --json prints one JSON object");
    let field = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}"));
    assert_eq!(field("indexed"), indexed as u64);
    assert_eq!(field("invalid"), invalid as u64);
    assert_eq!(field("duplicate_ids"), dups as u64);
    assert_eq!(field("empty"), empty as u64);
    // `posts` counts the records handed to the builder (invalid ones never are).
    assert_eq!(field("posts"), (indexed + dups + empty) as u64);
    assert_eq!((field("segments"), field("index_segments")), (1, 1));

    // Every good post is findable, as written; nothing else is.
    let index = Index::open(&dir).expect("opens");
    assert_eq!(index.num_posts(), indexed as u64);
    for (_, kind) in &input.lines {
        match kind {
            Kind::Indexed(id, text, account, platform, ts) => {
                let p = index
                    .post(id)
                    .expect("post")
                    .unwrap_or_else(|| panic!("post {id} is not findable"));
                assert_eq!(p.text.as_deref(), Some(text.as_str()), "post {id}");
                assert_eq!(
                    (&p.account, &p.platform, p.ts),
                    (account, platform, *ts),
                    "post {id}"
                );
            }
            Kind::Empty(id) if id != "e1" => {
                assert_eq!(index.post(id).expect("post"), None, "empty post {id}")
            }
            _ => {}
        }
    }
    assert!(
        r.stderr.contains("1 post without a readable time"),
        "{}",
        r.stderr
    );
    for id in ["9001", "9003", "9005", "9008"] {
        assert_eq!(index.post(id).expect("post"), None, "invalid post {id}");
    }
    index.verify().expect("verifies");

    // Through the CLI too.
    for id in ["huge", "777", "e1"] {
        let q = query_id(&dir, id);
        assert!(q.code == 0 || q.code == 1, "query --id {id}: {q:?}");
        let v: Value = serde_json::from_str(q.stdout.trim()).expect("one JSON line");
        assert_eq!(v["query"], json!(id));
        assert!(v.get("error").is_none(), "post {id} should be found: {v}");
    }
    let q = query_id(&dir, "9010");
    let v: Value = serde_json::from_str(q.stdout.trim()).expect("one JSON line");
    assert!(v["error"].is_string(), "an empty post is not indexed: {v}");
}

/// `textreuse query --json --index DIR --id ID`.
fn query_id(dir: &Path, id: &str) -> util::Run {
    let args: [&OsStr; 6] = [
        "query".as_ref(),
        "--json".as_ref(),
        "--index".as_ref(),
        dir.as_os_str(),
        "--id".as_ref(),
        id.as_ref(),
    ];
    util::textreuse(args)
}

/// Writes `lines` and runs a strict build; returns the run.
fn strict_build(
    tmp: &Path,
    name: &str,
    lines: &[&[u8]],
) -> (util::Run, std::path::PathBuf, String) {
    let path = tmp.join(name);
    let dir = tmp.join(format!("{name}.index"));
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    fs::write(&path, bytes).expect("writes");
    let args: [&OsStr; 6] = [
        "build".as_ref(),
        "--strict".as_ref(),
        "--input".as_ref(),
        path.as_os_str(),
        "--index".as_ref(),
        dir.as_os_str(),
    ];
    let r = util::textreuse(args);
    (r, dir, path.display().to_string())
}

#[test]
fn strict_stops_at_the_first_bad_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good: [&[u8]; 3] = [
        br#"{"id": 1, "text": "the first good post of the file"}"#,
        br#"{"id": 2, "text": "the second good post of the file"}"#,
        br#"{"id": 3, "text": ""}"#,
    ];
    // An invalid record on line 5 (after a blank line), another on line 6.
    let (r, dir, name) = strict_build(
        tmp.path(),
        "invalid.jsonl",
        &[
            good[0],
            good[1],
            good[2],
            b"",
            br#"{"id": 4, "text": 4}"#,
            b"not json",
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!("{name}:5:")),
        "names the first bad line: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(&format!("{name}:6:")),
        "stops at the first: {}",
        r.stderr
    );
    assert!(Index::open(&dir).is_err(), "nothing is published");

    // A duplicate id is a bad record too.
    let (r, dir, name) = strict_build(
        tmp.path(),
        "dup.jsonl",
        &[
            good[0],
            good[1],
            br#"{"id": "1", "text": "the same id again, as a string"}"#,
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&format!("{name}:3:")), "{}", r.stderr);
    assert!(Index::open(&dir).is_err(), "nothing is published");

    // An empty text is not a bad record.
    let (r, dir, _) = strict_build(tmp.path(), "empty.jsonl", &good);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(Index::open(&dir).expect("published").num_posts(), 2);
}

/// Records what a build reports, in order.
#[derive(Default)]
struct Recorder {
    events: Vec<(u64, String)>,
}

impl textreuse::index::ingest::BuildObserver for Recorder {
    fn bad_record(&mut self, err: &textreuse::Error) {
        match err {
            textreuse::Error::InvalidInput { line, reason, .. } => {
                self.events.push((*line, format!("bad: {reason}")))
            }
            other => self.events.push((0, format!("other: {other}"))),
        }
    }
    fn empty_post(&mut self, _file: &str, line: u64) {
        self.events.push((line, "empty".into()));
    }
}

/// Every file of every segment of the index in `dir`, by relative path.
fn segment_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("index dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            for f in fs::read_dir(&p).expect("segment dir") {
                let f = f.expect("entry").path();
                let rel = f.strip_prefix(dir).expect("inside").display().to_string();
                out.push((rel, fs::read(&f).expect("reads")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn small_batches_report_in_input_order_and_build_the_same_index() {
    use textreuse::index::ingest::{build_index, IngestOptions};
    use textreuse::index::BuildOptions;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut input = Input { lines: Vec::new() };
    for i in 0..60 {
        match i % 7 {
            // A duplicate of an indexed post's id, two batches back.
            3 if i > 7 => input.push(
                format!(
                    r#"{{"id": {}, "text": "a repeated id {i} in a later batch"}}"#,
                    i - 8
                ),
                Kind::Duplicate((i - 8).to_string()),
            ),
            4 => input.push(format!(r#"{{"id": {i}, "text": 5}}"#), Kind::Invalid),
            5 => input.push(
                format!(r#"{{"id": {i}, "text": "12345 !!!"}}"#),
                Kind::Empty(i.to_string()),
            ),
            _ => input.post(
                json!(i),
                &format!("post number {i} says something about the weather today"),
                "acct",
                "web",
                Some(1_700_000_000 + i),
            ),
        }
    }
    let path = tmp.path().join("mixed.jsonl");
    input.write(&path);
    let expected: Vec<u64> = input
        .lines
        .iter()
        .enumerate()
        .filter(|(_, (_, k))| !matches!(k, Kind::Indexed(..) | Kind::Blank))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    let build = |batch: usize, name: &str| {
        let dir = tmp.path().join(name);
        let mut rec = Recorder::default();
        let opts = IngestOptions {
            batch,
            ..IngestOptions::default()
        };
        let summary = build_index(
            &dir,
            std::slice::from_ref(&path),
            &opts,
            BuildOptions::default(),
            &mut rec,
        )
        .expect("builds");
        (dir, rec, summary)
    };
    let (one, rec_one, sum_one) = build(100_000, "one-batch");
    let (many, rec_many, sum_many) = build(3, "batches-of-3");
    // Reported in input order, each bad line once, with batches in flight or not.
    let lines: Vec<u64> = rec_many.events.iter().map(|e| e.0).collect();
    assert_eq!(lines, expected, "{:?}", rec_many.events);
    assert_eq!(rec_many.events, rec_one.events);
    assert_eq!(sum_many.invalid, sum_one.invalid);
    assert_eq!(sum_many.stats.indexed, sum_one.stats.indexed);
    assert_eq!(sum_many.stats.duplicate_ids, sum_one.stats.duplicate_ids);
    assert_eq!(sum_many.stats.empty, sum_one.stats.empty);
    assert!(sum_many.stats.duplicate_ids >= 8 && sum_many.invalid >= 8);
    // The index does not depend on how the input was batched.
    let (a, b) = (segment_files(&one), segment_files(&many));
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn strict_with_small_batches_stops_at_the_first_bad_record_in_input_order() {
    use textreuse::index::ingest::{build_index, IngestOptions, Quiet};
    use textreuse::index::BuildOptions;
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("strict.jsonl");
    // Batches of 3: a duplicate id ends the first batch, an invalid record starts the
    // second, which is read and fingerprinted while the first is inserted.
    fs::write(
        &path,
        concat!(
            r#"{"id": 1, "text": "the first good post of the file"}"#,
            "\n",
            r#"{"id": 2, "text": "the second good post of the file"}"#,
            "\n",
            r#"{"id": 1, "text": "the first id again"}"#,
            "\n",
            "not json\n",
            r#"{"id": 5, "text": "a later good post"}"#,
            "\n",
        ),
    )
    .expect("writes");
    let opts = IngestOptions {
        batch: 3,
        strict: true,
        ..IngestOptions::default()
    };
    let strict = |index: &str| {
        build_index(
            &tmp.path().join(index),
            std::slice::from_ref(&path),
            &opts,
            BuildOptions::default(),
            &mut Quiet,
        )
        .expect_err("strict stops")
    };
    match strict("index") {
        textreuse::Error::InvalidInput { line, reason, .. } => {
            assert_eq!(line, 3, "{reason}");
            assert!(reason.contains("duplicate id"), "{reason}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(
        Index::open(tmp.path().join("index")).is_err(),
        "nothing is published"
    );

    // Within one batch too: a duplicate id (line 2) comes before an invalid record (line 3).
    fs::write(
        &path,
        concat!(
            r#"{"id": 1, "text": "the first good post of the file"}"#,
            "\n",
            r#"{"id": 1, "text": "the first id again"}"#,
            "\n",
            "not json\n",
        ),
    )
    .expect("writes");
    let err = strict("index2");
    assert!(
        matches!(err, textreuse::Error::InvalidInput { line: 2, .. }),
        "{err}"
    );
}

/// `textreuse build --input input --index dir <extra>`, whatever its exit code.
fn try_build(input: &Path, dir: &Path, extra: &[&str]) -> util::Run {
    let mut args: Vec<&OsStr> = vec![
        "build".as_ref(),
        "--input".as_ref(),
        input.as_os_str(),
        "--index".as_ref(),
        dir.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| OsStr::new(*s)));
    util::textreuse(&args)
}

/// `tests/fixtures/input/NAME`.
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/input")
        .join(name)
}

/// The posts of an index by id: (account, ts).
fn posts_of(dir: &Path, ids: &[&str]) -> Vec<(String, Option<i64>)> {
    let index = Index::open(dir).expect("opens");
    ids.iter()
        .map(|id| {
            let p = index
                .post(id)
                .expect("post")
                .unwrap_or_else(|| panic!("post {id} is not indexed"));
            (p.account, p.ts)
        })
        .collect()
}

#[test]
fn twitter_io_csv_needs_no_flags() {
    // Issue 17 points 1 and 3: the Twitter/X IO layout is recognized, its
    // `2019-08-19 14:03` times read, an unreadable time indexed without a time and counted.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("idx");
    let r = util::cli_build(&fixture("twitter_io.csv"), &dir, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("reading it as twitter-io")
            && r.stderr
                .contains("id=tweetid, text=tweet_text, account=userid")
            && r.stderr.contains("ts=tweet_time"),
        "the mapping is printed: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("1 post without a readable time")
            && r.stderr.contains(":6: tweet_time \"n/a\""),
        "{}",
        r.stderr
    );
    let s: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
    assert_eq!(
        (s["indexed"].as_u64(), s["invalid"].as_u64()),
        (Some(6), Some(0))
    );
    let got = posts_of(
        &dir,
        &[
            "1163475215648837632",
            "1163475215648837636",
            "1163475215648837637",
        ],
    );
    assert_eq!(
        got,
        [
            ("a9f3c1".to_owned(), Some(1_566_223_380)),
            ("e1207f".to_owned(), None),
            ("f9c3b5".to_owned(), Some(1_566_223_650)),
        ]
    );
    // The account can be the screen name instead, by flag; --preset forces the layout.
    let dir2 = tmp.path().join("idx2");
    let r = util::cli_build(
        &fixture("twitter_io.csv"),
        &dir2,
        &[
            "--preset",
            "twitter-io",
            "--account-field",
            "user_screen_name",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        posts_of(&dir2, &["1163475215648837633"])[0].0,
        "truthseeker88"
    );
    // A --tz moves naive times, not those with an offset.
    let dir3 = tmp.path().join("idx3");
    let r = util::cli_build(
        &fixture("twitter_io.csv"),
        &dir3,
        &["--tz", "Asia/Hong_Kong"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let got = posts_of(&dir3, &["1163475215648837632", "1163475215648837637"]);
    assert_eq!(got[0].1, Some(1_566_223_380 - 8 * 3600));
    assert_eq!(got[1].1, Some(1_566_223_650));
}

#[test]
fn time_layouts_and_ts_format() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("idx");
    let r = util::cli_build(&fixture("times.csv"), &dir, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let ids = ["d", "m", "s", "f", "o", "u", "ms", "bad"];
    let ts: Vec<Option<i64>> = posts_of(&dir, &ids).into_iter().map(|p| p.1).collect();
    assert_eq!(
        ts,
        [
            Some(1_566_172_800),
            Some(1_566_223_380),
            Some(1_566_223_385),
            Some(1_566_223_385),
            Some(1_566_223_385),
            Some(1_566_223_385),
            Some(1_566_223_385),
            None
        ]
    );
    assert!(
        r.stderr.contains("1 post without a readable time"),
        "{}",
        r.stderr
    );
    // A layout the common ones miss, by --ts-format.
    let dir2 = tmp.path().join("idx2");
    let r = util::cli_build(
        &fixture("us_times.csv"),
        &dir2,
        &["--ts-format", "%m/%d/%Y %I:%M %p", "--tz=-04:00"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("readable time"), "{}", r.stderr);
    let ts: Vec<_> = posts_of(&dir2, &["1", "2"])
        .into_iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(ts, [Some(1_566_266_580), Some(1_566_306_900)]);
    // Without it, both are counted, and still indexed.
    let dir3 = tmp.path().join("idx3");
    let r = util::cli_build(&fixture("us_times.csv"), &dir3, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("2 posts without a readable time"),
        "{}",
        r.stderr
    );
    // Bad --ts-format and --tz values are errors naming the flag, before any index exists.
    for (flag, value) in [("--tz", "Mars/Olympus"), ("--ts-format", "%H:%M")] {
        let dir4 = tmp.path().join("idx4");
        let r = try_build(&fixture("us_times.csv"), &dir4, &[flag, value]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(flag), "{}", r.stderr);
        assert!(!dir4.exists(), "{flag}: no index left behind");
    }
}

#[test]
fn wrong_field_names_are_errors() {
    // Issue 17 point 2.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("idx");
    // JSONL whose text field is misspelled: exit 2 naming the fields that exist.
    let r = try_build(&fixture("misspelled.jsonl"), &dir, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("no \"text\" field")
            && r.stderr.contains("\"acount\", \"id\", \"time\", \"txt\""),
        "{}",
        r.stderr
    );
    assert!(!dir.exists(), "no index is left behind");
    // A named field absent from every record.
    let r = try_build(&util::sample_path(), &dir, &["--text-field", "body"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--text-field body names no field") && r.stderr.contains("\"text\""),
        "{}",
        r.stderr
    );
    assert!(!dir.exists());
    // In CSV, every named field is checked against the header, not only the text.
    for flag in [
        "--id-field",
        "--account-field",
        "--ts-field",
        "--platform-field",
    ] {
        let r = try_build(&fixture("twitter_io.csv"), &dir, &[flag, "tweet_tim"]);
        assert_eq!(r.code, 2, "{flag}: {r:?}");
        assert!(
            r.stderr
                .contains(&format!("{flag} tweet_tim names no field"))
                && r.stderr.contains("\"tweet_time\""),
            "{}",
            r.stderr
        );
        assert!(!dir.exists());
    }
    // Fixed by naming the fields.
    let r = util::cli_build(
        &fixture("misspelled.jsonl"),
        &dir,
        &[
            "--text-field",
            "txt",
            "--account-field",
            "acount",
            "--ts-field",
            "time",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        posts_of(&dir, &["2"])[0],
        ("u2".to_owned(), Some(1_566_223_440))
    );
}

#[test]
fn posts_export_preset_and_listing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("idx");
    let r = util::cli_build(&fixture("posts_export.jsonl"), &dir, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("reading it as posts"), "{}", r.stderr);
    assert_eq!(
        posts_of(&dir, &["p-1", "p-2", "p-3"]),
        [
            ("alice".to_owned(), Some(1_614_848_400)),
            ("bob".to_owned(), Some(1_614_848_700)),
            ("carol".to_owned(), Some(1_614_852_000)),
        ]
    );
    let r = util::textreuse(["build", "--preset", "list", "--input", "x", "--index", "y"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("twitter-io")
            && r.stdout.contains("tweet_text")
            && r.stdout.contains("posts"),
        "{}",
        r.stdout
    );
    let r = try_build(
        &fixture("posts_export.jsonl"),
        &dir,
        &["--preset", "nosuch"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--preset nosuch: no such preset"),
        "{}",
        r.stderr
    );
}

#[test]
fn nothing_indexed_is_an_error_and_leaves_no_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("bad.jsonl");
    let dir = tmp.path().join("idx");
    // 1,000 lines with the same problem: the first 10 are shown, the rest summarized.
    let mut data = String::new();
    for i in 0..1000 {
        data.push_str(&format!("{{\"id\": \"\", \"text\": \"post {i}\"}}\n"));
    }
    fs::write(&path, data).expect("writes");
    let r = try_build(&path, &dir, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.matches("id is empty").count(), 11, "{}", r.stderr);
    assert!(
        r.stderr.contains("and 990 more like it: id is empty"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was indexed"), "{}", r.stderr);
    assert!(!dir.exists(), "no index left behind");
    // A missing input: one message naming the path and the flag, no directory left.
    let r = try_build(&tmp.path().join("typo.jsonl"), &dir, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("typo.jsonl: no such file (--input)")
            && r.stderr.matches("No such file").count() == 0,
        "{}",
        r.stderr
    );
    assert!(!dir.exists(), "no directory or LOCK left behind");
}

#[test]
fn a_forced_build_that_indexes_nothing_keeps_the_old_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good.jsonl");
    let bad = tmp.path().join("bad.jsonl");
    let dir = tmp.path().join("idx");
    fs::write(
        &good,
        "{\"id\": \"1\", \"text\": \"the harbour toll scheme was approved in secret\"}\n",
    )
    .expect("writes");
    fs::write(&bad, "{\"id\": \"\", \"text\": \"no id here\"}\n").expect("writes");
    assert_eq!(try_build(&good, &dir, &[]).code, 0);
    let r = try_build(&bad, &dir, &["--force"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("was left as it was"), "{}", r.stderr);
    let index = textreuse::Index::open(&dir).expect("the old index still opens");
    assert_eq!(index.num_posts(), 1, "the old post is still there");
}

#[test]
fn csv_unterminated_quote_is_reported() {
    // Issue 16 item 11: the row that opens the quote is a bad record, with the lines lost.
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("q.csv");
    let dir = tmp.path().join("idx");
    fs::write(
        &path,
        "id,text\n1,a first post that is fine\n2,\"a quote never closed\n3,lost\n",
    )
    .expect("writes");
    let r = util::cli_build(&path, &dir, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("q.csv:3: unterminated quote") && r.stderr.contains("its 2 line(s)"),
        "{}",
        r.stderr
    );
    let s: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
    assert_eq!(
        (s["indexed"].as_u64(), s["invalid"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn fingerprint_skips_a_line_over_the_record_limit() {
    // Issue 16 item 13: one record limit everywhere (64 MiB, as `build`).
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("big.txt");
    let mut data = b"a short first line\n".to_vec();
    data.resize(data.len() + (64 << 20) + 10, b'x');
    data.extend_from_slice(b"\nthe line after it\n");
    fs::write(&path, &data).expect("writes");
    drop(data);
    let r = util::textreuse([
        OsStr::new("fingerprint"),
        OsStr::new("--input"),
        path.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(":2: line longer than 67108864 bytes, skipped"),
        "{}",
        r.stderr
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[1].ends_with("\tthe line after it"), "{}", lines[1]);
}

/// Runs the CLI with `args` and returns its exit code and peak resident memory in bytes
/// (the child's own `ru_maxrss`, from `wait4`).
fn peak_rss(args: &[&OsStr]) -> (i32, u64) {
    let child = std::process::Command::new(util::bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runs the textreuse binary");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data that zeroed bytes make valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals passed by pointer.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_long_record_costs_a_few_times_its_length() {
    // Issue 16 item 13: a 56 MB record peaked at 412 MB during `build` (7.3x). On this
    // text (mostly Chinese: a token per 3 bytes, 8 bytes of span each) the record of 24 MB
    // peaked at 298 MB (`build`), 253 MB (`fingerprint`) and 249 MB (`query`): over 10x.
    // The token and shingle hashes are now made a range of tokens at a time, the raw
    // record is let go once parsed and long buffers are sized once: 152, 154 and 168 MB.
    // The bounds (7.5x, 8.5x for `query`, plus 32 MB) fail at the old figures.
    let tmp = tempfile::tempdir().expect("tempdir");
    let posts = util::sample_posts();
    let mut text = String::new();
    for p in posts.iter().cycle() {
        if text.len() >= 24 << 20 {
            break;
        }
        // One line: a text file's record ends at a newline.
        text.extend(
            p.text
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
        text.push(' ');
    }
    let len = text.len() as u64;
    let jsonl = tmp.path().join("long.jsonl");
    let mut data = String::new();
    // More posts than a batch (1,024 with `--memory 64M`) before the long record.
    for (i, p) in posts[..1500].iter().enumerate() {
        data.push_str(&json!({"id": format!("a{i}"), "text": p.text}).to_string());
        data.push('\n');
    }
    data.push_str(&json!({"id": "long", "text": text}).to_string());
    data.push('\n');
    fs::write(&jsonl, data).expect("writes");
    let txt = tmp.path().join("long.txt");
    fs::write(&txt, format!("{text}\n")).expect("writes");
    drop(text);
    // Times the record, plus 32 MB for the process itself.
    let bound = |times_10: u64| times_10 * len / 10 + (32 << 20);
    let index = tmp.path().join("index");
    let s = |p: &Path| p.as_os_str().to_owned();
    let runs: Vec<(&str, u64, Vec<std::ffi::OsString>)> = vec![
        (
            "build",
            75,
            vec![
                "build".into(),
                "-q".into(),
                "--input".into(),
                s(&jsonl),
                "--index".into(),
                s(&index),
            ],
        ),
        (
            "fingerprint --input",
            75,
            vec!["fingerprint".into(), "--input".into(), s(&txt)],
        ),
        (
            // The exact similarity check holds the text's shingle set (8 bytes a token).
            "query --input",
            85,
            vec![
                "query".into(),
                "--index".into(),
                s(&index),
                "--input".into(),
                s(&txt),
            ],
        ),
    ];
    for (what, times_10, args) in runs {
        let bound = bound(times_10);
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (code, peak) = peak_rss(&args);
        assert!(code == 0 || code == 1, "{what}: exit {code}");
        eprintln!(
            "{what}: peak {} MB for a {} MB record",
            peak >> 20,
            len >> 20
        );
        assert!(
            peak <= bound,
            "{what}: peak {} MB for a {} MB record (bound {} MB)",
            peak >> 20,
            len >> 20,
            bound >> 20
        );
    }
    // The memory budget counts the long record: with 64 MiB, the builder writes out what
    // it holds before the record is fingerprinted.
    let again = tmp.path().join("again");
    let args: Vec<&OsStr> = vec![
        "build".as_ref(),
        "-q".as_ref(),
        "--memory".as_ref(),
        "64M".as_ref(),
        "--input".as_ref(),
        jsonl.as_os_str(),
        "--index".as_ref(),
        again.as_os_str(),
    ];
    let (code, peak) = peak_rss(&args);
    assert_eq!(code, 0);
    assert!(
        peak <= bound(75),
        "build --memory 64M: peak {} MB",
        peak >> 20
    );
    let segments = Index::open(&again).expect("opens").segments().len();
    assert_eq!(
        segments, 2,
        "the posts before the long record were written out"
    );
    // With the default budget (2 GiB) there is room: one segment.
    assert_eq!(Index::open(&index).expect("opens").segments().len(), 1);
}

/// A build larger than its budget stays within `--memory` + 25% (the issue's bound): the
/// budget counts the buffer's touched bytes, and what it leaves out (a flush's own work,
/// the process) must fit in the slack. 200,000 distinct posts of 80 words under 128 MiB
/// make two segments (`--keep-segments`: the closing merge would need more than the
/// budget); their texts are most of the buffer (left uncounted, the peak is 208 MiB). The
/// peak is the one the build reports (`VmHWM`): a parent's `wait4` would also count the
/// memory this test process held when it started the build.
#[test]
fn a_build_larger_than_its_budget_stays_within_it() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("posts.jsonl");
    let mut out = std::io::BufWriter::new(fs::File::create(&input).expect("creates"));
    for post in util::WordPosts::new(2000, 80, 997, 11).take(200_000) {
        writeln!(out, "{}", util::jsonl_line(&post)).expect("writes");
    }
    out.flush().expect("writes");
    drop(out);
    let index = tmp.path().join("index");
    let r = util::cli_build(
        &input,
        &index,
        &["--memory", "128M", "--keep-segments", "--verbose"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let segments = Index::open(&index).expect("opens").segments().len();
    assert!(
        segments >= 2,
        "the budget was filled: {segments} segment(s)"
    );
    let peak: u64 = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("textreuse: peak memory "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak memory reported: {}", r.stderr));
    assert!(
        peak <= 128 + 128 / 4,
        "peak {peak} MiB with --memory 128M ({segments} segments)"
    );
}
