//! The bytes of an index do not depend on the thread count.

use std::process::{Command, Stdio};

use textreuse::input::RawPost;
use textreuse::Index;

use crate::util;

#[test]
fn thread_count_does_not_change_a_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 1200 sample posts, with one post whose 8 MiB account name fills a 16 MiB buffer, so
    // the index has two segments (the flush point must not depend on threads either).
    let mut posts = util::sample_posts();
    posts.truncate(1200);
    posts.insert(
        600,
        RawPost {
            id: "ballast".into(),
            text: "a post with a very long account name".into(),
            account: "b".repeat(8 << 20),
            platform: "test".into(),
            ts: Some(1_700_000_000),
            line: 0,
        },
    );
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts);
    let index = same_bytes_with_1_2_and_3_threads(tmp.path(), &input);
    assert_eq!(
        index.segments().len(),
        2,
        "the ballast post should close a segment"
    );
}

/// Where a segment ends must not depend on threads either when many contents fill the
/// budget (the memory a flush needs grows with them).
#[test]
fn segment_boundaries_do_not_depend_on_threads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let posts: Vec<RawPost> = util::WordPosts::new(400, 14, 97, 7).take(100_000).collect();
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts);
    let index = same_bytes_with_1_2_and_3_threads(tmp.path(), &input);
    assert!(index.segments().len() >= 3, "{}", index.segments().len());
}

/// Builds `input` with 1, 2 and 3 threads under a 16 MiB budget, asserts the three indexes
/// are byte-identical, and opens the first.
fn same_bytes_with_1_2_and_3_threads(tmp: &std::path::Path, input: &std::path::Path) -> Index {
    let threads = ["1", "2", "3"];
    let children: Vec<_> = threads
        .iter()
        .map(|t| {
            Command::new(util::bin())
                .args([
                    "build",
                    "-q",
                    "--memory",
                    "16M",
                    "--keep-segments",
                    "--threads",
                    t,
                ])
                .arg("--input")
                .arg(input)
                .arg("--index")
                .arg(tmp.join(format!("index-{t}")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starts a build")
        })
        .collect();
    for (t, c) in threads.iter().zip(children) {
        let out = c.wait_with_output().expect("waits");
        assert!(
            out.status.success(),
            "--threads {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let trees: Vec<_> = threads
        .iter()
        .map(|t| util::read_tree(&tmp.join(format!("index-{t}"))))
        .collect();
    assert!(trees[0].keys().any(|k| k.ends_with("/bands")));
    for (t, tree) in threads.iter().zip(&trees).skip(1) {
        assert_eq!(
            tree.keys().collect::<Vec<_>>(),
            trees[0].keys().collect::<Vec<_>>(),
            "--threads {t} writes other files"
        );
        for (name, bytes) in tree {
            assert!(
                *bytes == trees[0][name],
                "--threads {t}: {name} differs from --threads 1 ({} vs {} bytes)",
                bytes.len(),
                trees[0][name].len()
            );
        }
    }
    Index::open(tmp.join("index-1")).expect("opens")
}

/// The index bytes do not depend on how the posts arrive: JSONL, CSV, gzip, zstd, standard
/// input, or split over several files.
#[test]
fn input_container_does_not_change_a_byte() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let posts = &util::sample_posts()[..300];
    let jsonl = tmp.path().join("posts.jsonl");
    util::write_jsonl(&jsonl, posts);
    let bytes = std::fs::read(&jsonl).expect("reads");
    // CSV, quoted as needed (texts hold commas, quotes and newlines).
    let csv = tmp.path().join("posts.csv");
    {
        let mut w = csv::Writer::from_path(&csv).expect("creates");
        w.write_record(["id", "text", "account", "platform", "ts"])
            .expect("header");
        for p in posts {
            let ts = p.ts.map(|t| t.to_string()).unwrap_or_default();
            w.write_record([&p.id, &p.text, &p.account, &p.platform, &ts])
                .expect("row");
        }
        w.flush().expect("flushes");
    }
    let gz = tmp.path().join("posts.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&bytes).expect("compresses");
    std::fs::write(&gz, e.finish().expect("finishes")).expect("writes");
    let zst = tmp.path().join("posts.jsonl.zst");
    std::fs::write(
        &zst,
        zstd::stream::encode_all(&bytes[..], 3).expect("compresses"),
    )
    .expect("writes");
    let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    util::write_jsonl(&a, &posts[..123]);
    util::write_jsonl(&b, &posts[123..]);

    let build = |name: &str, inputs: &[&std::path::Path], stdin: Option<&[u8]>| {
        let dir = tmp.path().join(name);
        let mut cmd = Command::new(util::bin());
        cmd.args(["build", "-q", "--strict", "--index"])
            .arg(&dir)
            .arg("--input")
            .args(inputs);
        let out = match stdin {
            None => cmd.output().expect("runs"),
            Some(data) => {
                let mut c = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("runs");
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(data)
                    .expect("feeds stdin");
                c.wait_with_output().expect("waits")
            }
        };
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        util::read_tree(&dir)
    };
    let want = build("jsonl", &[&jsonl], None);
    assert_eq!(
        Index::open(tmp.path().join("jsonl"))
            .expect("opens")
            .num_posts(),
        300
    );
    for (name, got) in [
        ("csv", build("csv", &[&csv], None)),
        ("gz", build("gz", &[&gz], None)),
        ("zst", build("zst", &[&zst], None)),
        ("split", build("split", &[&a, &b], None)),
        (
            "stdin",
            build("stdin", &[std::path::Path::new("-")], Some(&bytes)),
        ),
    ] {
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (file, bytes) in &got {
            assert!(
                *bytes == want[file],
                "{name}: {file} differs from the JSONL build"
            );
        }
    }
}

/// A build larger than its memory budget ends with one segment (the runs it wrote are
/// merged) when the merge fits the budget, else says how to merge; the merged index answers
/// as the one that keeps its segments does.
#[test]
fn a_build_over_budget_ends_with_one_segment_that_answers_alike() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let words: Vec<String> = (0..300).map(|i| format!("w{i:x}")).collect();
    let mut rng = util::Rng::new(11);
    let mut posts: Vec<RawPost> = Vec::new();
    for i in 0..45_000i64 {
        // Every tenth post repeats an earlier one with one word changed: near copies that
        // land in other segments than their originals.
        let text = if i % 10 == 9 {
            let mut w: Vec<&str> = posts[rng.below(posts.len())].text.split(' ').collect();
            let at = rng.below(w.len());
            w[at] = "changed";
            w.join(" ")
        } else {
            (0..14)
                .map(|_| words[rng.below(words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        posts.push(RawPost {
            id: format!("p{i}"),
            text,
            account: format!("a{}", i % 97),
            platform: "test".into(),
            ts: Some(1_700_000_000 + i),
            line: 0,
        });
    }
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts);
    let (one, many) = (tmp.path().join("one"), tmp.path().join("many"));
    // 16 MiB is too little for the closing merge (it asks for 256 MiB and more): the build
    // stands, with a warning that says how to merge; `merge` with room then does it.
    let r = util::cli_build(&input, &one, &["--memory", "16M", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    let written = summary["segments"].as_u64().expect("segments");
    assert!(written >= 2, "{summary}");
    // No merge fitted: the index holds every segment written.
    assert_eq!(
        summary["index_segments"].as_u64(),
        Some(Index::open(&one).unwrap().segments().len() as u64),
        "{summary}"
    );
    assert_eq!(summary["index_segments"].as_u64(), Some(written));
    assert!(
        r.stderr.contains("were not merged into one") && r.stderr.contains("textreuse merge"),
        "{}",
        r.stderr
    );
    assert!(Index::open(&one).unwrap().segments().len() >= 2);
    // The warning names the budget that merges them, and that budget does.
    let memory = r
        .stderr
        .split("--memory ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .unwrap_or_else(|| panic!("no --memory in the warning: {}", r.stderr));
    assert!(memory.ends_with('M'), "{memory}");
    let m = util::textreuse([
        "merge".as_ref(),
        "--index".as_ref(),
        one.as_os_str(),
        "--memory".as_ref(),
        memory.as_ref(),
    ]);
    assert_eq!(m.code, 0, "{}", m.stderr);
    let r = util::cli_build(&input, &many, &["--memory", "16M", "--keep-segments"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (one, many) = (Index::open(&one).unwrap(), Index::open(&many).unwrap());
    assert_eq!(one.segments().len(), 1);
    assert!(many.segments().len() >= 2, "{}", many.segments().len());
    // No bucket cap: the cap applies per segment, so with one capped bucket the merged
    // index would rightly return fewer candidates than the segments it came from (this
    // corpus of 300 words makes buckets of over 1,000 contents).
    let opts = textreuse::QueryOptions {
        with_text: false,
        max_bucket: usize::MAX,
        ..Default::default()
    };
    let view = |i: &Index, q: &str| -> Vec<(String, u64)> {
        i.query(q, &opts)
            .unwrap()
            .hits
            .iter()
            .map(|h| (h.id.clone(), h.similarity.to_bits()))
            .collect()
    };
    let mut found = 0;
    for p in posts.iter().step_by(97) {
        let want = view(&many, &p.text);
        found += want.len();
        assert_eq!(view(&one, &p.text), want, "{}", p.id);
    }
    assert!(found > 300, "{found} hits");
}
