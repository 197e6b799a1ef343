//! `textreuse accounts` and `textreuse report` through the real binary: a crafted corpus
//! whose co-posts are known, saved vs computed clusters, bad input, and the HTML report in
//! a headless browser (Debian's chromium; `.ci/run` installs it and sets
//! `TEXTREUSE_REQUIRE_BROWSER=1`, elsewhere the browser test is skipped when none is found).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use textreuse::input::RawPost;

use super::util::{self, textreuse, Rng};

const T1: &str = "The harbour authority has quietly approved the new toll scheme without any \
                  public consultation, share this before it is deleted by the council";
const T2: &str = "Independent auditors found that the water board spent twice its budget on \
                  outside consultants last year, ask your councillor why nobody was told";
const HOSTILE: &str = "<script>alert('pwned')</script> Breaking news: the mayor's office \
                       shredded every flood report before the public inquiry began this week";

const T0: i64 = 1_700_000_000;

fn post(id: usize, text: &str, account: &str, ts: Option<i64>) -> RawPost {
    RawPost {
        id: format!("p{id}"),
        text: text.to_string(),
        account: account.to_string(),
        platform: if id.is_multiple_of(2) {
            "twitter"
        } else {
            "weibo"
        }
        .to_string(),
        ts,
        line: id as u64 + 1,
    }
}

/// Three accounts post two campaign texts within minutes (two co-posts per pair); two
/// accounts post the first text three days later; two post a hostile text; plus posts
/// without account or time, and unrelated background.
fn corpus() -> Vec<RawPost> {
    let mut v = Vec::new();
    let t1 = T0 + 3 * 86_400;
    let t2 = T0 + 6 * 86_400;
    let mut add = |text: &str, account: &str, ts: Option<i64>| {
        let n = v.len();
        v.push(post(n, text, account, ts));
    };
    add(T1, "a1", Some(T0));
    add(&format!("{T1} #share"), "a2", Some(T0 + 60));
    add(T1, "a3", Some(T0 + 120));
    add(T1, "", Some(T0 + 30)); // no account
    add(T1, "a4", None); // no time
    add(T2, "a1", Some(T0 + 7200));
    add(T2, "a2", Some(T0 + 7230));
    add(&format!("{T2} #why"), "a3", Some(T0 + 7500));
    add(T1, "b1", Some(t1));
    add(T1, "b2", Some(t1 + 100));
    add(HOSTILE, "c1", Some(t2));
    add(HOSTILE, "c2", Some(t2 + 10));
    let mut rng = Rng::new(21);
    let syll = [
        "ka", "lo", "mi", "ne", "pu", "ra", "si", "to", "ve", "zu", "bel", "dor", "fin", "gat",
    ];
    for i in 0..200 {
        let words: Vec<String> = (0..14)
            .map(|_| {
                (0..3)
                    .map(|_| syll[rng.below(syll.len())])
                    .collect::<String>()
            })
            .collect();
        let n = v.len();
        v.push(post(
            n,
            &words.join(" "),
            &format!("bg{}", i % 37),
            Some(T0 + i as i64 * 977),
        ));
    }
    v
}

struct Fixture {
    _dir: tempfile::TempDir,
    index: PathBuf,
}

fn fixture(save: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    util::write_jsonl(&input, &corpus());
    let index = dir.path().join("idx");
    util::cli_build(&input, &index, &[]);
    if save {
        let r = textreuse(["clusters", "--index", s(&index), "--save", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    Fixture { _dir: dir, index }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn accounts(index: &Path, extra: &[&str]) -> util::Run {
    let mut args = vec!["accounts", "--index", s(index)];
    args.extend_from_slice(extra);
    textreuse(args)
}

/// CSV rows after the header, as (a, b, coposts, clusters, median_gap_s).
fn rows(csv: &str) -> BTreeSet<(String, String, u32, u32, String)> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("account_a,account_b,coposts,clusters,median_gap_s")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 5, "{l}");
            let (a, b) = if f[0] < f[1] {
                (f[0], f[1])
            } else {
                (f[1], f[0])
            };
            (
                a.to_string(),
                b.to_string(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].to_string(),
            )
        })
        .collect()
}

fn row(a: &str, b: &str, n: u32, c: u32, gap: &str) -> (String, String, u32, u32, String) {
    (a.into(), b.into(), n, c, gap.into())
}

#[test]
fn accounts_finds_the_known_coposts() {
    let f = fixture(true);
    let r = accounts(&f.index, &["--window", "10m", "--csv"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want: BTreeSet<_> = [
        row("a1", "a2", 2, 2, "45"),
        row("a1", "a3", 2, 2, "210"),
        row("a2", "a3", 2, 2, "165"),
        row("b1", "b2", 1, 1, "100"),
        row("c1", "c2", 1, 1, "10"),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows(&r.stdout), want);
    // The posts without account or time are counted, not silently dropped.
    assert!(
        r.stderr.contains("1 without account, 1 without time"),
        "{}",
        r.stderr
    );

    // A window of four days also links the later posters to the first three.
    let wide = rows(&accounts(&f.index, &["--window", "4d", "--csv"]).stdout);
    assert!(wide.iter().any(|x| x.0 == "a1" && x.1 == "b1"));
    assert!(wide.iter().all(|x| x.0 != "a4" && x.1 != "a4"));

    // Filters.
    let two = rows(
        &accounts(
            &f.index,
            &["--window", "10m", "--csv", "--min-coposts", "2"],
        )
        .stdout,
    );
    assert_eq!(two.len(), 3);
    let clusters2 = rows(
        &accounts(
            &f.index,
            &["--window", "10m", "--csv", "--min-clusters", "2"],
        )
        .stdout,
    );
    assert_eq!(two, clusters2);
    let late = rows(
        &accounts(
            &f.index,
            &[
                "--window",
                "10m",
                "--csv",
                "--since",
                &(T0 + 86_400).to_string(),
            ],
        )
        .stdout,
    );
    assert_eq!(late.len(), 2, "{late:?}");
    let early = rows(
        &accounts(
            &f.index,
            &[
                "--window",
                "10m",
                "--csv",
                "--until",
                &(T0 + 86_400).to_string(),
            ],
        )
        .stdout,
    );
    assert_eq!(early.len(), 3, "{early:?}");
    // Platforms alternate by post: a1 (p0, twitter) and a3 (p2, twitter) remain.
    let tw = rows(
        &accounts(
            &f.index,
            &["--window", "10m", "--csv", "--platform", "twitter"],
        )
        .stdout,
    );
    assert!(tw.iter().all(|x| x.2 >= 1));
    assert!(tw.contains(&row("a1", "a3", 1, 1, "120")), "{tw:?}");

    // Nothing co-posted: exit 1.
    let none = accounts(&f.index, &["--window", "5s", "--csv"]);
    assert_eq!(none.code, 1, "{none:?}");
    assert_eq!(
        none.stdout,
        "account_a,account_b,coposts,clusters,median_gap_s\n"
    );
}

#[test]
fn accounts_json_graph_and_groups() {
    let f = fixture(true);
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("g.graphml");
    let r = accounts(
        &f.index,
        &["--window", "10m", "--json", "--graph", s(&graph)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["window_s"], 600);
    assert_eq!(v["source"], "saved");
    assert_eq!(v["without_account"], 1);
    assert_eq!(v["without_time"], 1);
    assert_eq!(v["edges"].as_array().unwrap().len(), 5);
    let e0 = &v["edges"][0];
    for k in [
        "account_a",
        "account_b",
        "coposts",
        "clusters",
        "median_gap_s",
    ] {
        assert!(!e0[k].is_null(), "{k}");
    }
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0]["size"], 3);
    assert_eq!(groups[0]["clusters"].as_array().unwrap().len(), 2);
    let names: BTreeSet<&str> = groups[0]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "a2", "a3"].into_iter().collect());
    assert_eq!(groups[0]["posts"], 6);
    let hours: u64 = groups[0]["hours_utc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().unwrap())
        .sum();
    assert_eq!(hours, 6);

    let g = std::fs::read_to_string(&graph).unwrap();
    assert!(g.starts_with("<?xml"));
    assert_eq!(g.matches("<node ").count(), 7);
    assert_eq!(g.matches("<edge ").count(), 5);
    for key in [
        "attr.name=\"posts\"",
        "attr.name=\"clusters\"",
        "attr.name=\"platforms\"",
        "attr.name=\"first_post\"",
        "attr.name=\"last_post\"",
        "attr.name=\"share_hour_00_utc\"",
        "attr.name=\"share_hour_23_utc\"",
    ] {
        assert!(g.contains(key), "{key}");
    }
    // a1 posted twice (T1, T2): its hour shares sum to 1.
    let a1 = g.lines().find(|l| l.contains(">a1<")).unwrap();
    let share: f64 = a1
        .split("<data key=\"h")
        .skip(1)
        .map(|x| {
            x.split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    assert!((share - 1.0).abs() < 1e-3, "{share}");

    let summary = accounts(&f.index, &["--window", "10m"]);
    assert_eq!(summary.code, 0);
    assert!(summary
        .stdout
        .starts_with("3 coordinated groups, 7 accounts, 5 edges"));
    assert!(summary
        .stdout
        .contains("left out of the windows: 1 posts without account, 1 without time"));
}

#[test]
fn saved_and_computed_clusters_agree_and_same_text_works() {
    let f = fixture(false);
    let computed = accounts(&f.index, &["--window", "10m", "--csv"]);
    assert_eq!(computed.code, 0, "{computed:?}");
    assert!(computed.stderr.contains("no saved clusters"));
    let same = accounts(&f.index, &["--window", "10m", "--csv", "--same-text"]);
    assert_eq!(same.code, 0, "{same:?}");
    let r = textreuse(["clusters", "--index", s(&f.index), "--save", "--json"]);
    assert_eq!(r.code, 0);
    let saved = accounts(&f.index, &["--window", "10m", "--csv"]);
    assert_eq!(computed.stdout, saved.stdout);
    // The copies differ only by hashtags, which normalize away: the same edges.
    assert_eq!(rows(&same.stdout), rows(&saved.stdout));
}

#[test]
fn accounts_rejects_bad_windows_and_options() {
    let f = fixture(true);
    for (w, says) in [
        ("0", "positive"),
        ("0s", "positive"),
        ("-5m", "positive"),
        ("-1", "positive"),
        ("soon", "invalid window"),
        ("10x", "invalid window"),
    ] {
        let r = accounts(&f.index, &["--window", w]);
        assert_eq!(r.code, 2, "{w}: {r:?}");
        assert!(r.stderr.contains(says), "{w}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = accounts(&f.index, &["--max-partners", "0"]);
    assert_eq!(r.code, 2);
    let r = accounts(&f.index, &["--since", "yesterday"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid time"));
    let r = textreuse(["accounts", "--index", "/nonexistent/idx"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("failed to open index"));
    let r = accounts(&f.index, &["--csv", "--json"]);
    assert_eq!(r.code, 2);
}

fn report(index: &Path, out: &Path, extra: &[&str]) -> util::Run {
    let mut args = vec!["report", "--index", s(index), "--out", s(out)];
    args.extend_from_slice(extra);
    textreuse(args)
}

/// Clusters with at least two posts, from `clusters --json`.
fn cluster_ids(index: &Path) -> Vec<u64> {
    let r = textreuse(["clusters", "--index", s(index), "--json"]);
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["cluster"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn report_is_one_escaped_page_per_campaign() {
    let f = fixture(true);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let r = report(&f.index, &out, &["--tz", "+08:00", "--window", "10m"]);
    assert_eq!(r.code, 0, "{r:?}");
    let html = std::fs::read_to_string(&out).unwrap();
    let ids = cluster_ids(&f.index);
    assert_eq!(ids.len(), 3);
    assert_eq!(
        html.matches("<section class=\"campaign\"").count(),
        ids.len()
    );
    for id in &ids {
        assert!(html.contains(&format!("id=\"c-{id}\"")));
    }
    // Hostile text shows as text; the page has no script of its own and loads nothing.
    assert!(!html.contains("<script"), "a raw <script> in the page");
    assert!(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.contains("Hour of day, +08:00"));
    assert!(html.contains("<svg"));
    // Largest first: the T1 campaign (7 posts) leads.
    let first = html.find("<section").unwrap();
    assert!(html[first..].find("harbour authority") < html[first..].find("water board"));
    // Earliest post of the T1 campaign is a1's.
    assert!(html.contains("<b>a1</b> on twitter at 2023-11-14 22:13 UTC (2023-11-15 06:13 +08:00)"));

    // One cluster; bad cluster and zone are errors naming the problem.
    let one = dir.path().join("one.html");
    let r = report(&f.index, &one, &["--cluster", &ids[1].to_string()]);
    assert_eq!(r.code, 0, "{r:?}");
    let html = std::fs::read_to_string(&one).unwrap();
    assert_eq!(html.matches("<section class=\"campaign\"").count(), 1);
    let bad = dir.path().join("bad.html");
    let r = report(&f.index, &bad, &["--cluster", "999"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cluster 999 does not exist"),
        "{}",
        r.stderr
    );
    assert!(!bad.exists() && !dir.path().join("bad.html.tmp").exists());
    let r = report(&f.index, &bad, &["--tz", "Mars/Olympus"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown time zone"), "{}", r.stderr);
    let r = report(&f.index, &bad, &["--window", "0"]);
    assert_eq!(r.code, 2);
}

/// The chromium binary: `$TEXTREUSE_CHROMIUM`, or `chromium` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TEXTREUSE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

#[test]
fn report_in_a_headless_browser() {
    let Some(chrome) = chromium() else {
        assert!(
            std::env::var_os("TEXTREUSE_REQUIRE_BROWSER").is_none(),
            "TEXTREUSE_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("report_in_a_headless_browser: no chromium on the PATH, skipped");
        return;
    };
    let f = fixture(true);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let r = report(&f.index, &out, &["--tz", "Asia/Shanghai"]);
    assert_eq!(r.code, 0, "{r:?}");
    let profile = dir.path().join("profile");
    let url = format!("file://{}", out.display());
    let run = Command::new(&chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("runs chromium");
    let dom = String::from_utf8_lossy(&run.stdout);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "chromium failed: {log}");
    // The page's console: any message (an error, a refused load) is logged as CONSOLE.
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let ids = cluster_ids(&f.index);
    assert_eq!(
        dom.matches("<section class=\"campaign\"").count(),
        ids.len(),
        "{dom}"
    );
    // The hostile post is a text node, not an element.
    assert!(!dom.contains("<script"), "a script element in the DOM");
    assert!(
        dom.contains("&lt;script&gt;alert('pwned')&lt;/script&gt;"),
        "{dom}"
    );
    assert_eq!(dom.matches("<svg").count(), 3 * ids.len());
}

#[test]
fn segments_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let posts = corpus();
    let (first, second) = posts.split_at(7);
    let (in1, in2) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
    util::write_jsonl(&in1, first);
    util::write_jsonl(&in2, second);
    let index = dir.path().join("idx");
    util::cli_build(&in1, &index, &[]);
    util::cli_build(&in2, &index, &["--append"]);
    let one = fixture(false);
    let want = accounts(&one.index, &["--window", "10m", "--csv"]);
    let got = accounts(&index, &["--window", "10m", "--csv"]);
    assert_eq!(rows(&got.stdout), rows(&want.stdout));
    // a2's first post (p1) deleted: a2 keeps one co-post with a1 and with a3.
    let r = textreuse(["delete", "--index", s(&index), "--id", "p1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let got = rows(&accounts(&index, &["--window", "10m", "--csv"]).stdout);
    assert!(got.contains(&row("a1", "a2", 1, 1, "30")), "{got:?}");
    assert!(got.contains(&row("a2", "a3", 1, 1, "270")), "{got:?}");
}
