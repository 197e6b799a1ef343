//! Shared helpers: the sample corpus, a seeded generator, building indexes through the
//! library, running the real CLI, copying and hashing index directories.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use textreuse::index::{BuildOptions, BuildStats, IndexBuilder, PostOutcome};
use textreuse::input::RawPost;
use textreuse::{Hit, QueryResult};

/// The `textreuse` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_textreuse")
}

/// `data/sample.jsonl`: 3000 posts in English and Chinese.
pub fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.jsonl")
}

/// The sample corpus as posts (ids are the decimal form of the integer ids).
pub fn sample_posts() -> Vec<RawPost> {
    let text = fs::read_to_string(sample_path()).expect("data/sample.jsonl is readable");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).expect("sample.jsonl holds valid JSON");
            RawPost {
                id: match &v["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                text: v["text"].as_str().expect("text is a string").to_string(),
                account: v["account"].as_str().unwrap_or("").to_string(),
                platform: v["platform"].as_str().unwrap_or("").to_string(),
                ts: v["ts"].as_i64(),
                line: i as u64 + 1,
            }
        })
        .collect()
}

/// One JSONL line for a post (ids stay strings, so `"7"` and `7` are told apart by callers).
pub fn jsonl_line(p: &RawPost) -> String {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), Value::String(p.id.clone()));
    o.insert("text".into(), Value::String(p.text.clone()));
    o.insert("account".into(), Value::String(p.account.clone()));
    o.insert("platform".into(), Value::String(p.platform.clone()));
    if let Some(ts) = p.ts {
        o.insert("ts".into(), Value::from(ts));
    }
    Value::Object(o).to_string()
}

/// Writes posts as JSONL.
pub fn write_jsonl(path: &Path, posts: &[RawPost]) {
    let mut s = String::new();
    for p in posts {
        s.push_str(&jsonl_line(p));
        s.push('\n');
    }
    fs::write(path, s).expect("writes the JSONL input");
}

/// SplitMix64: a small seeded generator, so every corpus is the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Synthetic posts of random words: post `i` has `len` words drawn from `vocab` words
/// (`w0`, `w1`, ... in hex) by `rng`, account `a{i % accounts}` and time `1_700_000_000 +
/// i`. Nearly every text is distinct, the worst case for a buffer's memory per post.
pub struct WordPosts {
    words: Vec<String>,
    len: usize,
    accounts: i64,
    rng: Rng,
    next: i64,
}

impl WordPosts {
    pub fn new(vocab: usize, len: usize, accounts: i64, seed: u64) -> WordPosts {
        WordPosts {
            words: (0..vocab).map(|i| format!("w{i:x}")).collect(),
            len,
            accounts,
            rng: Rng::new(seed),
            next: 0,
        }
    }
}

impl Iterator for WordPosts {
    type Item = RawPost;

    fn next(&mut self) -> Option<RawPost> {
        let i = self.next;
        self.next += 1;
        let text = (0..self.len)
            .map(|_| self.words[self.rng.below(self.words.len())].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Some(RawPost {
            id: format!("p{i}"),
            text,
            account: format!("a{}", i % self.accounts),
            platform: "test".into(),
            ts: Some(1_700_000_000 + i),
            line: 0,
        })
    }
}

/// Builds an index from `posts` through the library, in one `add` call per chunk of
/// `chunk` posts. Returns the counts and every post's outcome.
pub fn build_lib(
    dir: &Path,
    posts: &[RawPost],
    opts: BuildOptions,
    chunk: usize,
) -> (BuildStats, Vec<PostOutcome>) {
    let mut b = IndexBuilder::create(dir, opts).expect("starts the build");
    let mut outcomes = Vec::with_capacity(posts.len());
    for c in posts.chunks(chunk.max(1)) {
        outcomes.extend(b.add(c).expect("adds posts"));
    }
    let stats = b.finish().expect("publishes the index");
    (stats, outcomes)
}

/// Build options with the smallest memory budget the builder accepts.
pub fn small_budget() -> BuildOptions {
    BuildOptions {
        memory_budget: 16 << 20,
        ..BuildOptions::default()
    }
}

/// The result of a CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `textreuse` with `args` and waits for it.
pub fn textreuse<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("runs the textreuse binary");
    Run::from(out)
}

/// `textreuse build --input input --index index <extra>`; panics unless it exits 0.
pub fn cli_build(input: &Path, index: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        "build".as_ref(),
        "--input".as_ref(),
        input.as_os_str(),
        "--index".as_ref(),
        index.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| OsStr::new(*s)));
    let r = textreuse(&args);
    assert_eq!(r.code, 0, "build failed: {r:?}");
    r
}

/// Every file under `dir` (relative path with `/` separators) and its bytes.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).expect("lists the directory") {
            let e = e.expect("reads an entry");
            let p = e.path();
            if e.file_type().expect("file type").is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, fs::read(&p).expect("reads a file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Names of the entries directly in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("lists the directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What a hit says, without where it lives (segment numbers change between builds).
pub type HitView = (String, u64, String, String, Option<i64>, Option<String>);

pub fn hit_view(h: &Hit) -> HitView {
    (
        h.id.clone(),
        h.similarity.to_bits(),
        h.account.clone(),
        h.platform.clone(),
        h.ts,
        h.text.clone(),
    )
}

/// A query result without addresses, candidate counts or timing.
pub fn result_view(r: &QueryResult) -> (Vec<HitView>, bool, bool) {
    (r.hits.iter().map(hit_view).collect(), r.truncated, r.empty)
}

/// Asserts that hits are in the documented order: similarity descending, then time
/// ascending (no time last), then id.
pub fn assert_hit_order(hits: &[Hit]) {
    for w in hits.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let key = |h: &Hit| {
            (
                std::cmp::Reverse(h.similarity.to_bits()),
                h.ts.unwrap_or(i64::MAX),
                h.id.clone(),
            )
        };
        assert!(
            key(a) <= key(b),
            "hits out of order: {:?} before {:?}",
            (a.similarity, a.ts, &a.id),
            (b.similarity, b.ts, &b.id)
        );
    }
}
