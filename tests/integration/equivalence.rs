//! The index against oracles.
//!
//! - The same queries over a memory-mapped and an in-memory index (with and without
//!   prefetching, one by one and batched) give identical answers.
//! - Every hit is exactly what the LSH rule promises: a post whose text shares a band bucket
//!   and fingerprint with the query in at least one band, whose 8-bit similarity (recomputed
//!   from `Fingerprinter` signatures) is at least `min_similarity`; and no such post is
//!   missing.
//! - Against brute-force exact Jaccard over shingle sets, candidate recall meets the
//!   S-curve `LshParams::probability(J)` and hit recall meets the S-curve times the chance
//!   that the 8-bit estimate clears the threshold.
//! - Filters and limits equal filtering the unfiltered answer.
//! - An index written as several segments answers like one written as a single segment.
//!
//! The corpus is 1500 sample posts plus perturbed copies of 200 of them (words or characters
//! dropped, replaced, a sentence appended, noise that normalizes away), so there are many
//! true pairs with J in [0.5, 1]. It is built once and shared by the tests of this module
//! (and `concurrency`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use textreuse::index::{Access, BuildOptions, Index, OpenOptions, PostOutcome};
use textreuse::input::RawPost;
use textreuse::minhash::{bbit_similarity, estimate_margin, to_bbit};
use textreuse::shingle::shingle_hashes;
use textreuse::{Fingerprinter, QueryOptions, QueryResult, Scratch};

use crate::envelope::{read_u32, Envelope, BANDS_MAGIC};
use crate::util::{self, Rng};

/// The corpus, its index and the queries, built once for the tests of this module.
pub struct Fixture {
    pub dir: PathBuf,
    pub posts: Vec<RawPost>,
    pub queries: Vec<String>,
    _tmp: tempfile::TempDir,
}

/// Words and short sentences to append or substitute.
const EXTRA: &[&str] = &[
    "please share this with everyone you know",
    "the truth will come out soon enough",
    "wake up people",
    "this is what they do not want you to see",
    "大家一定要转发出去",
    "真相很快就会大白",
];

fn is_cjk(c: char) -> bool {
    ('\u{3400}'..='\u{9FFF}').contains(&c) || ('\u{3040}'..='\u{30FF}').contains(&c)
}

/// A near-copy of `text`: one or two edits that keep most shingles.
fn perturb(text: &str, other: &str, rng: &mut Rng) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let cjk = text.chars().filter(|&c| is_cjk(c)).count() > text.chars().count() / 3;
    let kind = rng.below(6);
    if kind == 5 {
        // Noise that normalization removes: an exact duplicate after normalization.
        return format!(
            "{text} https://t.co/{:x} #{} 【{}】",
            rng.next_u64(),
            "tag",
            rng.below(9999)
        );
    }
    if cjk {
        let mut chars: Vec<char> = text.chars().collect();
        match kind {
            0 | 1 => {
                // Drop 1-3 characters.
                for _ in 0..1 + rng.below(3) {
                    if chars.len() > 4 {
                        let i = rng.below(chars.len());
                        chars.remove(i);
                    }
                }
            }
            2 => {
                // Replace one character.
                let i = rng.below(chars.len());
                chars[i] = '嗯';
            }
            3 => chars.extend(EXTRA[4 + rng.below(2)].chars()),
            _ => {
                let o: Vec<char> = other.chars().filter(|&c| is_cjk(c)).take(6).collect();
                chars.extend(o);
            }
        }
        return chars.into_iter().collect();
    }
    let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    match kind {
        0 | 1 => {
            for _ in 0..1 + rng.below(2) {
                if w.len() > 4 {
                    let i = rng.below(w.len());
                    w.remove(i);
                }
            }
        }
        2 => {
            let i = rng.below(w.len());
            w[i] = "banana".into();
        }
        3 => w.push(EXTRA[rng.below(4)].into()),
        _ => {
            w.insert(0, "RT".into());
            w.insert(1, format!("@user{}:", rng.below(100)));
        }
    }
    w.join(" ")
}

fn token_count(fp: &Fingerprinter, text: &str) -> usize {
    let mut s = Scratch::new();
    fp.normalize(text, &mut s).tokens().count()
}

/// 1500 sample posts plus near-copies of 200 of them (one to three each).
pub fn corpus() -> (Vec<RawPost>, Vec<String>) {
    let mut sample = util::sample_posts();
    sample.truncate(1500);
    let fp = Fingerprinter::new(Default::default()).expect("default parameters are valid");
    let mut rng = Rng::new(0x5eed);
    let mut posts = sample.clone();
    let mut queries = Vec::new();
    let platforms = ["twitter", "weibo", "telegram"];
    let mut used = BTreeSet::new();
    let mut i = 0;
    while used.len() < 200 {
        i = (i + 7 + rng.below(5)) % sample.len();
        let base = &sample[i];
        if token_count(&fp, &base.text) < 10 || !used.insert(i) {
            continue;
        }
        queries.push(base.text.clone());
        for j in 0..1 + rng.below(3) {
            let other = &sample[rng.below(sample.len())];
            let mut text = perturb(&base.text, &other.text, &mut rng);
            if rng.chance(0.3) {
                text = perturb(&text, &other.text, &mut rng);
            }
            posts.push(RawPost {
                id: format!("v{}-{j}", base.id),
                text,
                account: format!("bot{:03}", rng.below(40)),
                platform: platforms[rng.below(3)].into(),
                ts: base
                    .ts
                    .map(|t| t + 60 * (j as i64 + 1))
                    .filter(|_| rng.chance(0.9)),
                line: 0,
            });
        }
    }
    // Some plain sample posts, a perturbed text that is not in the corpus, and edge cases.
    for _ in 0..40 {
        queries.push(sample[rng.below(sample.len())].text.clone());
    }
    let a = &sample[11].text;
    queries.push(perturb(a, "", &mut rng));
    queries.push("😀 #tag 123".into());
    queries.push("zzyzx qwv".into());
    (posts, queries)
}

/// A directory for the shared fixture. A `static` is never dropped, so the directory
/// outlives the test run; it lives under Cargo's target tmp dir, and directories left by
/// runs over an hour old are removed here.
fn fixture_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if old && e.file_name().to_string_lossy().starts_with("textreuse-it-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    tempfile::Builder::new()
        .prefix("textreuse-it-")
        .tempdir_in(root)
        .expect("creates a temporary directory")
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = fixture_dir();
        let dir = tmp.path().join("index");
        let (posts, queries) = corpus();
        let (stats, outcomes) = util::build_lib(&dir, &posts, BuildOptions::default(), 5000);
        assert_eq!(stats.segments, 1);
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == PostOutcome::DuplicateId)
                .count(),
            0
        );
        Fixture {
            dir,
            posts,
            queries,
            _tmp: tmp,
        }
    })
}

fn open(dir: &Path, access: Access, prefetch: bool) -> Index {
    Index::open_with(dir, OpenOptions { access, prefetch }).expect("opens the index")
}

fn all_opts() -> Vec<QueryOptions> {
    vec![
        QueryOptions::default(),
        QueryOptions {
            min_similarity: 0.0,
            max_bucket: usize::MAX,
            ..QueryOptions::default()
        },
        QueryOptions {
            min_similarity: 0.8,
            with_text: false,
            limit: 3,
            ..QueryOptions::default()
        },
        QueryOptions {
            min_similarity: 0.3,
            max_bucket: 2,
            ..QueryOptions::default()
        },
    ]
}

#[test]
fn mmap_and_in_memory_answer_alike() {
    let f = fixture();
    let reference = open(&f.dir, Access::InMemory, false);
    let others = [
        open(&f.dir, Access::Mmap, false),
        open(&f.dir, Access::Mmap, true),
        open(&f.dir, Access::InMemory, true),
    ];
    let mut total_hits = 0;
    for opts in all_opts() {
        let want: Vec<QueryResult> = f
            .queries
            .iter()
            .map(|q| reference.query(q, &opts).expect("query"))
            .collect();
        total_hits += want.iter().map(|r| r.hits.len()).sum::<usize>();
        // One by one on the first two, batched (rayon) on the third.
        for idx in &others[..2] {
            for (q, w) in f.queries.iter().zip(&want) {
                assert_eq!(
                    &idx.query(q, &opts).expect("query"),
                    w,
                    "query {q:?}, {opts:?}"
                );
            }
        }
        let batch = others[2].query_batch(&f.queries, &opts);
        assert_eq!(batch.len(), want.len());
        for (b, w) in batch.into_iter().zip(&want) {
            assert_eq!(&b.expect("batched query"), w);
        }
    }
    assert!(
        total_hits > 1000,
        "the corpus should produce many hits, got {total_hits}"
    );
    // Lookups by id.
    let opts = QueryOptions::default();
    for p in f
        .posts
        .iter()
        .step_by(17)
        .chain(f.posts.iter().rev().take(5))
    {
        let want = reference.post(&p.id).expect("post");
        let want_q = reference.query_post(&p.id, &opts).expect("query_post");
        for idx in &others {
            assert_eq!(idx.post(&p.id).expect("post"), want);
            assert_eq!(idx.query_post(&p.id, &opts).expect("query_post"), want_q);
        }
    }
    for idx in &others {
        assert_eq!(idx.post("no such id").expect("post"), None);
        assert_eq!(
            idx.query_post("no such id", &opts).expect("query_post"),
            None
        );
        assert_eq!(
            serde_json::to_value(idx.stats()).expect("serializes"),
            serde_json::to_value(reference.stats()).expect("serializes")
        );
        idx.verify().expect("verifies");
    }
}

/// Every post of the corpus as the index should see it.
pub struct Oracle {
    fp: Fingerprinter,
    /// Per post: its fingerprint as the oracle computes it (None when it has none).
    prints: Vec<Option<QueryPrint>>,
    /// Shingle -> posts holding it.
    inverted: HashMap<u64, Vec<u32>>,
    by_id: HashMap<String, usize>,
}

/// What the oracle knows of one text.
pub struct QueryPrint {
    content: u128,
    /// Sorted, deduplicated shingle hashes over the normalized tokens.
    shingles: Vec<u64>,
    /// 8-bit signature.
    sig: Vec<u8>,
    /// Band keys.
    keys: Vec<u64>,
}

impl Oracle {
    fn new(posts: &[RawPost]) -> Oracle {
        let fp = Fingerprinter::new(Default::default()).expect("valid parameters");
        let mut o = Oracle {
            prints: Vec::with_capacity(posts.len()),
            inverted: HashMap::new(),
            by_id: HashMap::new(),
            fp,
        };
        for (i, p) in posts.iter().enumerate() {
            let q = o.print(&p.text);
            for &s in q.iter().flat_map(|q| &q.shingles) {
                o.inverted.entry(s).or_default().push(i as u32);
            }
            o.prints.push(q);
            o.by_id.insert(p.id.clone(), i);
        }
        o
    }

    fn print(&self, text: &str) -> Option<QueryPrint> {
        let mut scratch = Scratch::new();
        let f = self.fp.fingerprint_with(text, &mut scratch)?;
        let (mut th, mut shingles) = (Vec::new(), Vec::new());
        shingle_hashes(
            f.normalized.tokens(),
            self.fp.params().shingle as usize,
            &mut th,
            &mut shingles,
        );
        shingles.sort_unstable();
        shingles.dedup();
        let mut sig = vec![0u8; f.signature.len()];
        to_bbit(f.signature, &mut sig);
        let mut keys = Vec::new();
        self.fp.band_keys(f.signature, &mut keys);
        Some(QueryPrint {
            content: f.content_hash,
            shingles,
            sig,
            keys,
        })
    }

    /// Exact Jaccard of the query's shingle set with every post sharing a shingle.
    fn jaccard(&self, q: &QueryPrint) -> HashMap<usize, f64> {
        let mut inter: HashMap<usize, usize> = HashMap::new();
        for s in &q.shingles {
            for &p in self.inverted.get(s).map(Vec::as_slice).unwrap_or(&[]) {
                *inter.entry(p as usize).or_default() += 1;
            }
        }
        inter
            .into_iter()
            .map(|(p, i)| {
                let theirs = self.prints[p].as_ref().map_or(0, |x| x.shingles.len());
                let union = q.shingles.len() + theirs - i;
                (p, i as f64 / union as f64)
            })
            .collect()
    }
}

fn oracle() -> &'static Oracle {
    static O: OnceLock<Oracle> = OnceLock::new();
    O.get_or_init(|| Oracle::new(&fixture().posts))
}

/// `(bucket, 16-bit fingerprint)` of a band key for a directory of `d` bits: the top `d`
/// bits choose the bucket, the next 16 are the fingerprint.
/// The format-2 band table rule: an entry holds its key's top 32 bits, and the bucket is the
/// top `d` of them; a probe matches the entries of its bucket with equal top 32 bits.
fn split(key: u64, d: u32) -> (u64, u32) {
    let bucket = if d == 0 { 0 } else { key >> (64 - d) };
    (bucket, (key >> 32) as u32)
}

/// The directory bits of each segment's band file, read from its meta section.
fn dir_bits(index: &Index) -> BTreeMap<u64, u32> {
    index
        .segments()
        .iter()
        .map(|s| {
            let path = s.dir().join("bands");
            let bytes = std::fs::read(&path).expect("reads bands");
            let env = Envelope::parse(&path, &bytes, BANDS_MAGIC);
            let meta = env.sections[0].clone();
            (s.entry().id, read_u32(&bytes[meta], 12))
        })
        .collect()
}

#[test]
fn hits_are_exactly_the_lsh_candidates_above_the_threshold() {
    let f = fixture();
    let oracle = oracle();
    let index = open(&f.dir, Access::Mmap, false);
    let d = dir_bits(&index);
    assert_eq!(d.len(), 1, "the fixture is one segment");
    let d = d.values().copied().next().unwrap_or(0);
    // Per band: (bucket, key prefix) -> posts.
    let bands = index.manifest().params.lsh.bands as usize;
    let mut tables: Vec<HashMap<(u64, u32), Vec<usize>>> = vec![HashMap::new(); bands];
    for (i, p) in oracle.prints.iter().enumerate() {
        for (b, &k) in p.iter().flat_map(|p| p.keys.iter().enumerate()) {
            tables[b].entry(split(k, d)).or_default().push(i);
        }
    }
    let mut checked = 0;
    let mut settled = 0;
    for (min, exact) in [0.0, 0.5, 0.75]
        .into_iter()
        .flat_map(|m| [(m, false), (m, true)])
    {
        let opts = QueryOptions {
            min_similarity: min,
            max_bucket: usize::MAX,
            exact_near_threshold: exact,
            ..QueryOptions::default()
        };
        let margin = estimate_margin(min, index.manifest().params.num_perm as usize);
        for q in &f.queries {
            let res = index.query(q, &opts).expect("query");
            let Some(qp) = oracle.print(q) else {
                assert!(
                    res.empty && res.hits.is_empty(),
                    "a text with no fingerprint matches nothing"
                );
                continue;
            };
            assert!(!res.empty);
            util::assert_hit_order(&res.hits);
            // The oracle: posts sharing (bucket, key prefix) with the query in some band,
            // whose 8-bit similarity is at least `min`; with `exact`, an estimate within the
            // margin of `min` is replaced by the exact Jaccard of the shingle sets.
            let mut want = BTreeMap::new();
            for (b, &k) in qp.keys.iter().enumerate() {
                for &i in tables[b]
                    .get(&split(k, d))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let print = oracle.prints[i].as_ref().expect("indexed");
                    let mut sim = bbit_similarity(&qp.sig, &print.sig);
                    if exact && (sim - min).abs() <= margin {
                        let a: BTreeSet<u64> = qp.shingles.iter().copied().collect();
                        let b: BTreeSet<u64> = print.shingles.iter().copied().collect();
                        sim = a.intersection(&b).count() as f64 / a.union(&b).count() as f64;
                        settled += 1;
                    }
                    if sim >= min {
                        want.insert(f.posts[i].id.clone(), sim);
                    }
                }
            }
            let got: BTreeMap<String, f64> = res
                .hits
                .iter()
                .map(|h| (h.id.clone(), h.similarity))
                .collect();
            assert_eq!(got.len(), res.hits.len(), "a post is hit twice for {q:?}");
            assert_eq!(
                got, want,
                "hits differ from the LSH rule for {q:?} at min {min}"
            );
            for h in &res.hits {
                let p = &f.posts[oracle.by_id[&h.id]];
                assert_eq!(h.text.as_deref(), Some(p.text.as_str()));
                assert_eq!(
                    (&h.account, &h.platform, h.ts),
                    (&p.account, &p.platform, p.ts)
                );
            }
            checked += res.hits.len();
        }
    }
    assert!(checked > 1000, "too few hits checked: {checked}");
    assert!(settled > 20, "too few estimates settled exactly: {settled}");
}

/// P(X >= m) for X ~ Binomial(n, p).
fn binomial_tail(n: usize, p: f64, m: usize) -> f64 {
    let mut total = 0.0;
    for x in m..=n {
        let ln = ln_choose(n, x)
            + x as f64 * p.max(1e-300).ln()
            + (n - x) as f64 * (1.0 - p).max(1e-300).ln();
        total += ln.exp();
    }
    total.min(1.0)
}

fn ln_choose(n: usize, k: usize) -> f64 {
    (1..=k)
        .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
        .sum()
}

/// The chance that the 8-bit estimate of a pair at exact Jaccard `j` is at least `min`.
fn estimate_clears(j: f64, min: f64, k: usize) -> f64 {
    // Each byte agrees when the minima agree (probability j) or by chance (1/256).
    let p = j + (1.0 - j) / 256.0;
    // Smallest count of equal bytes whose estimate is at least min.
    let c = 1.0 / 256.0;
    let need = (0..=k)
        .find(|&eq| ((eq as f64 / k as f64 - c) / (1.0 - c)).clamp(0.0, 1.0) >= min)
        .unwrap_or(k + 1);
    if need > k {
        0.0
    } else {
        binomial_tail(k, p, need)
    }
}

#[test]
fn recall_meets_the_s_curve() {
    let f = fixture();
    let oracle = oracle();
    let index = open(&f.dir, Access::Mmap, false);
    let lsh = index.manifest().params.lsh;
    let k = index.manifest().params.num_perm as usize;
    // Recall is measured on the pairs the corpus was built from: each base post and its own
    // near-copies. They are independent of one another, so the binomial variance holds.
    // (The sample also holds natural clusters of near-copies; their pairs are strongly
    // correlated, so they are checked by the exact rule above, not statistically.)
    #[derive(Default, Debug)]
    struct Tally {
        pairs: usize,
        found: f64,
        expected: f64,
        variance: f64,
    }
    let base_ids: HashMap<&str, &str> = f
        .posts
        .iter()
        .map(|p| (p.text.as_str(), p.id.as_str()))
        .rev()
        .collect();
    for min in [0.0, 0.5] {
        let opts = QueryOptions {
            min_similarity: min,
            max_bucket: usize::MAX,
            with_text: false,
            ..QueryOptions::default()
        };
        let mut by_decile: BTreeMap<u32, Tally> = BTreeMap::new();
        let mut all = Tally::default();
        let mut far_below = Vec::new();
        let mut seen = BTreeSet::new();
        for q in &f.queries {
            let Some(qp) = oracle.print(q) else { continue };
            let res = index.query(q, &opts).expect("query");
            let hit: BTreeSet<&str> = res.hits.iter().map(|h| h.id.as_str()).collect();
            let js = oracle.jaccard(&qp);
            // Precision at the threshold: a hit at min 0.5 whose exact J is below 0.2 would
            // take an estimate more than six standard deviations off.
            if min > 0.0 {
                for h in &res.hits {
                    let j = js.get(&oracle.by_id[&h.id]).copied().unwrap_or(0.0);
                    if j < 0.2 {
                        far_below.push((q.clone(), h.id.clone(), j, h.similarity));
                    }
                }
            }
            let Some(prefix) = base_ids.get(q.as_str()).map(|id| format!("v{id}-")) else {
                continue;
            };
            for (&p, &j) in &js {
                let post = &f.posts[p];
                let content = oracle.prints[p].as_ref().expect("has shingles").content;
                if j < 0.5 || !post.id.starts_with(&prefix) || !seen.insert((qp.content, content)) {
                    continue;
                }
                let mut pr = lsh.probability(j);
                if min > 0.0 {
                    pr *= estimate_clears(j, min, k);
                }
                let found = f64::from(u8::from(hit.contains(post.id.as_str())));
                for t in [
                    by_decile.entry((j * 10.0).floor() as u32).or_default(),
                    &mut all,
                ] {
                    t.pairs += 1;
                    t.found += found;
                    t.expected += pr;
                    t.variance += pr * (1.0 - pr);
                }
            }
        }
        assert!(
            far_below.is_empty(),
            "hits far below the threshold: {far_below:?}"
        );
        assert!(all.pairs > 200, "too few true pairs: {all:?}");
        // At least the promise, less three standard deviations and one pair.
        let short = |t: &Tally| t.found < t.expected - 3.0 * t.variance.sqrt() - 1.0;
        assert!(
            !short(&all),
            "recall at min_similarity {min} below the S-curve: {all:?}; by J decile: {by_decile:?}"
        );
        for (d, t) in &by_decile {
            assert!(
                t.pairs < 15 || !short(t),
                "recall for J in [{}, {}) at min_similarity {min} below the S-curve: {t:?}",
                *d as f64 / 10.0,
                (*d + 1) as f64 / 10.0
            );
        }
    }
}

/// Which hits a filter keeps.
type HitFilter<'a> = Box<dyn Fn(&textreuse::Hit) -> bool + 'a>;

#[test]
fn filters_and_limits_equal_filtering_the_answer() {
    let f = fixture();
    let index = open(&f.dir, Access::Mmap, false);
    let base = QueryOptions {
        min_similarity: 0.3,
        ..QueryOptions::default()
    };
    let mut nonempty = 0;
    for (n, q) in f.queries.iter().enumerate().step_by(3) {
        let all = index.query(q, &base).expect("query").hits;
        let Some(h0) = all.get(n % all.len().max(1)) else {
            continue;
        };
        let t0 = h0.ts.unwrap_or(1_680_000_000);
        let cases: Vec<(QueryOptions, HitFilter)> = vec![
            (
                QueryOptions {
                    platforms: vec![h0.platform.clone()],
                    ..base.clone()
                },
                Box::new(|h| h.platform == h0.platform),
            ),
            (
                QueryOptions {
                    platforms: vec!["weibo".into(), "twitter".into()],
                    ..base.clone()
                },
                Box::new(|h| h.platform == "weibo" || h.platform == "twitter"),
            ),
            (
                QueryOptions {
                    accounts: vec![h0.account.clone(), "nobody".into()],
                    ..base.clone()
                },
                Box::new(|h| h.account == h0.account),
            ),
            (
                QueryOptions {
                    since: Some(t0),
                    ..base.clone()
                },
                Box::new(move |h| h.ts.is_some_and(|t| t >= t0)),
            ),
            (
                QueryOptions {
                    until: Some(t0),
                    ..base.clone()
                },
                Box::new(move |h| h.ts.is_some_and(|t| t <= t0)),
            ),
            (
                QueryOptions {
                    since: Some(t0),
                    until: Some(t0),
                    ..base.clone()
                },
                Box::new(move |h| h.ts == Some(t0)),
            ),
        ];
        for (opts, keep) in cases {
            let want: Vec<_> = all.iter().filter(|h| keep(h)).cloned().collect();
            let got = index.query(q, &opts).expect("query").hits;
            nonempty += usize::from(!got.is_empty());
            assert_eq!(got, want, "{opts:?}");
        }
        for limit in [1, 2, 5] {
            let got = index
                .query(
                    q,
                    &QueryOptions {
                        limit,
                        ..base.clone()
                    },
                )
                .expect("query")
                .hits;
            assert_eq!(got, all[..all.len().min(limit)], "limit {limit}");
        }
    }
    assert!(
        nonempty > 50,
        "filters matched too rarely to mean anything: {nonempty}"
    );
}

#[test]
fn many_segments_answer_like_one() {
    // The builder flushes a segment when its buffer reaches the memory budget (at least
    // 16 MiB). A post whose account name is 8 MiB fills the buffer cheaply (account names
    // are counted twice: bytes and lookup table), so each such "ballast" post closes a
    // segment at the end of its 256-post chunk.
    let f = fixture();
    let posts = &f.posts[..1500];
    let ballast = |n: usize| RawPost {
        id: format!("ballast-{n}"),
        text: format!("ballast {} xqzzy wvvuk", ["alpha", "beta"][n]),
        account: "a".repeat(8 << 20),
        platform: "ballast".into(),
        ts: None,
        line: 0,
    };
    let mut with_ballast = Vec::new();
    for (i, chunk) in posts.chunks(500).enumerate() {
        with_ballast.extend_from_slice(chunk);
        if i < 2 {
            with_ballast.push(ballast(i));
        }
    }
    // A duplicate id across segments: the first post's id again, at the end.
    let mut dup = posts[0].clone();
    dup.text = "a different text under an id that an earlier segment holds".into();
    with_ballast.push(dup.clone());
    let mut plain = posts.to_vec();
    plain.push(dup);

    let tmp = tempfile::tempdir().expect("tempdir");
    let (one, many) = (tmp.path().join("one"), tmp.path().join("many"));
    let (s1, o1) = util::build_lib(&one, &plain, BuildOptions::default(), 256);
    let (s2, o2) = util::build_lib(&many, &with_ballast, util::small_budget(), 256);
    assert_eq!(s1.segments, 1);
    assert_eq!(
        s2.segments, 3,
        "each ballast post should close a segment: {s2:?}"
    );
    let o2: Vec<PostOutcome> = o2
        .into_iter()
        .zip(&with_ballast)
        .filter(|(_, p)| !p.id.starts_with("ballast-"))
        .map(|(o, _)| o)
        .collect();
    assert_eq!(o1, o2, "outcomes do not depend on segmentation");
    assert_eq!(o1.last(), Some(&PostOutcome::DuplicateId));
    assert_eq!(s2.indexed, s1.indexed + 2);
    assert_eq!((s1.empty, s1.duplicate_ids), (s2.empty, s2.duplicate_ids));

    let (a, b) = (
        open(&one, Access::Mmap, false),
        open(&many, Access::InMemory, true),
    );
    assert_eq!(b.segments().len(), 3);
    assert_eq!(a.num_posts() + 2, b.num_posts());
    // At min_similarity 0 the hits include chance collisions of 16-bit fingerprints, which
    // depend on each segment's directory size; compare from 0.3 up.
    for opts in all_opts()
        .into_iter()
        .filter(|o| o.max_bucket > 2 && o.min_similarity >= 0.3)
    {
        for q in f.queries.iter().step_by(2) {
            let (ra, rb) = (
                a.query(q, &opts).expect("query"),
                b.query(q, &opts).expect("query"),
            );
            assert_eq!(
                util::result_view(&ra),
                util::result_view(&rb),
                "query {q:?}, {opts:?}"
            );
        }
    }
    // The segments' rounds of cold reads issued together (prefetch) change no answer, for
    // every option set (the limited lookups' shortcut at similarity 1, and candidates
    // settled from their texts, included).
    let cold = open(&many, Access::Mmap, true);
    let warm = open(&many, Access::Mmap, false);
    let mut limited = all_opts();
    limited.push(QueryOptions {
        limit: 2,
        with_text: false,
        ..QueryOptions::default()
    });
    limited.push(QueryOptions {
        exact_near_threshold: true,
        ..QueryOptions::default()
    });
    for opts in limited {
        for q in f
            .queries
            .iter()
            .chain(posts.iter().step_by(50).map(|p| &p.text))
        {
            assert_eq!(
                warm.query(q, &opts).expect("query"),
                cold.query(q, &opts).expect("query"),
                "query {q:?}, {opts:?}"
            );
        }
    }
    let strip =
        |x: Option<textreuse::index::Post>| x.map(|x| (x.id, x.account, x.platform, x.ts, x.text));
    for p in posts.iter().step_by(7) {
        assert_eq!(
            strip(a.post(&p.id).expect("post")),
            strip(b.post(&p.id).expect("post"))
        );
    }
    let near = QueryOptions {
        min_similarity: 0.3,
        ..QueryOptions::default()
    };
    for p in posts.iter().step_by(23) {
        let (ra, rb) = (
            a.query_post(&p.id, &near).expect("query_post"),
            b.query_post(&p.id, &near).expect("query_post"),
        );
        assert_eq!(
            ra.as_ref().map(util::result_view),
            rb.as_ref().map(util::result_view),
            "neighbours of {}",
            p.id
        );
    }
    let first = b.post(&posts[0].id).expect("post").expect("indexed");
    assert_eq!(
        first.text.as_deref(),
        Some(posts[0].text.as_str()),
        "the first post of an id wins"
    );
    assert_eq!(first.addr.segment, b.segments()[0].entry().id);
    for n in 0..2 {
        let p = b
            .post(&format!("ballast-{n}"))
            .expect("post")
            .expect("indexed");
        assert_eq!(
            p.addr.segment,
            b.segments()[n].entry().id,
            "ballast {n} closes segment {n}"
        );
        assert_eq!(p.account.len(), 8 << 20);
    }
    let r = b
        .query("ballast beta xqzzy wvvuk", &QueryOptions::default())
        .expect("query");
    assert_eq!(r.hits.first().map(|h| h.id.as_str()), Some("ballast-1"));
    b.verify().expect("verifies");
}

/// Letters for a number (digits are removed by normalization).
fn letters(mut n: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

#[test]
fn heavy_buckets_are_capped() {
    // One template posted 1200 times with one distinct word each: 1200 distinct texts that
    // collide in nearly every band.
    let template = "they do not want you to know the truth about what happened at the \
                    meeting last night so share this before it gets deleted by the censors";
    let posts: Vec<RawPost> = (0..1200)
        .map(|i| RawPost {
            id: format!("t{i}"),
            text: format!("{template} {}", letters(i + 1000)),
            account: format!("acct{}", i % 97),
            platform: "x".into(),
            ts: Some(1_700_000_000 + i as i64),
            line: 0,
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (stats, _) = util::build_lib(tmp.path(), &posts, BuildOptions::default(), 5000);
    assert_eq!(stats.unique_texts, 1200);
    let index = open(tmp.path(), Access::Mmap, false);
    let bands = index.manifest().params.lsh.bands as usize;
    let all = index
        .query(
            template,
            &QueryOptions {
                max_bucket: usize::MAX,
                with_text: false,
                ..QueryOptions::default()
            },
        )
        .expect("query");
    assert!(!all.truncated);
    assert!(
        all.hits.len() > 1100,
        "nearly every copy is a hit: {}",
        all.hits.len()
    );
    let sims: HashMap<&str, f64> = all
        .hits
        .iter()
        .map(|h| (h.id.as_str(), h.similarity))
        .collect();
    for cap in [1, 10, 100, 1000] {
        let r = index
            .query(
                template,
                &QueryOptions {
                    max_bucket: cap,
                    with_text: false,
                    ..QueryOptions::default()
                },
            )
            .expect("query");
        assert!(r.truncated, "cap {cap}: the heavy bucket is reported");
        assert!(
            r.candidates <= bands * cap,
            "cap {cap}: {} candidates",
            r.candidates
        );
        assert!(!r.hits.is_empty());
        for h in &r.hits {
            assert_eq!(
                sims.get(h.id.as_str()),
                Some(&h.similarity),
                "cap {cap}: {} is a true hit",
                h.id
            );
        }
    }
}

#[test]
fn borrowed_hits_are_the_owned_hits() {
    let f = fixture();
    let index = open(&f.dir, Access::Mmap, false);
    let mut scratch = Scratch::new();
    let mut compared = 0;
    for opts in [
        QueryOptions::default(),
        QueryOptions {
            min_similarity: 0.3,
            exact_near_threshold: true,
            limit: 3,
            ..QueryOptions::default()
        },
    ] {
        for q in &f.queries {
            let owned = index.query(q, &opts).expect("query");
            let refs = index.query_refs(q, &opts, &mut scratch).expect("query");
            assert_eq!(
                (refs.candidates, refs.truncated, refs.empty),
                (owned.candidates, owned.truncated, owned.empty)
            );
            assert_eq!(refs.hits.len(), owned.hits.len(), "{q:?}");
            let mut cache = textreuse::index::TextCache::default();
            for (r, o) in refs.hits.iter().zip(&owned.hits) {
                assert_eq!(
                    (
                        r.id,
                        r.similarity,
                        r.account,
                        r.platform,
                        r.ts,
                        r.cluster,
                        r.addr
                    ),
                    (
                        o.id.as_str(),
                        o.similarity,
                        o.account.as_str(),
                        o.platform.as_str(),
                        o.ts,
                        o.cluster,
                        o.addr
                    )
                );
                assert_eq!(index.text_at(r.addr, &mut cache).expect("text"), o.text);
                compared += 1;
            }
        }
    }
    assert!(compared > 500, "too few hits compared: {compared}");
}
