//! Lookups against a warm index, and opening one.
//!
//! The index is built once, in a temporary directory, from `data/sample.jsonl` replicated
//! with light perturbations (see `common::perturb`) to about 51,000 posts: every sample
//! post then has about 17 near-copies, the shape of a copy-paste campaign, and the band
//! tables are large enough for their directories to matter.
//!
//! - `query/without_text/{zh,en,mixed}`: [`Index::query`] with `with_text: false`, over a
//!   rotating set of query texts (sample posts and fresh perturbations of them);
//! - `query/with_text/mixed`: the same with stored texts decompressed into the hits;
//! - `open/{mmap,in_memory}`: [`Index::open_with`] (manifest, every header, no full read).
//!
//! `cargo bench --bench query`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use textreuse::index::{Access, BuildOptions, IndexBuilder, OpenOptions};
use textreuse::input::RawPost;
use textreuse::{Index, QueryOptions};

use common::Rng;

/// Copies of the sample in the index (the originals included).
const REPLICAS: usize = 17;
/// Query texts per rotating set.
const QUERIES: usize = 256;

/// The sample and its perturbed replicas, with distinct ids and times.
fn replicated(sample: &[RawPost]) -> Vec<RawPost> {
    let mut rng = Rng(0x5EED);
    let mut out = Vec::with_capacity(sample.len() * REPLICAS);
    out.extend(sample.iter().cloned());
    for r in 1..REPLICAS {
        for p in sample {
            out.push(RawPost {
                id: format!("{}-r{r}", p.id),
                text: common::perturb(&p.text, &mut rng),
                account: format!("r{}", rng.below(5000)),
                platform: p.platform.clone(),
                ts: p.ts.map(|t| t + 3600 * r as i64),
                line: 0,
            });
        }
    }
    out
}

/// `QUERIES` texts taken from `pool` with a fixed stride: every other one as found in the
/// sample, the rest freshly perturbed (not in the index, but close to 17 posts that are).
fn query_set(pool: &[&str], seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let step = (pool.len() / QUERIES).max(1);
    pool.iter()
        .step_by(step)
        .take(QUERIES)
        .enumerate()
        .map(|(i, t)| {
            if i % 2 == 0 {
                (*t).to_owned()
            } else {
                common::perturb(t, &mut rng)
            }
        })
        .collect()
}

fn query(c: &mut Criterion) {
    let sample = common::load_sample();
    let posts = replicated(&sample);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("index");
    let opts = BuildOptions {
        memory_budget: 512 << 20,
        ..BuildOptions::default()
    };
    let mut builder = IndexBuilder::create(&dir, opts).expect("create index");
    for chunk in posts.chunks(8192) {
        builder.add(chunk).expect("add posts");
    }
    let stats = builder.finish().expect("finish index");
    eprintln!(
        "index: {} posts, {} indexed, {} unique texts, {} segment(s), {} bytes",
        stats.posts, stats.indexed, stats.unique_texts, stats.segments, stats.bytes
    );

    let index = Index::open(&dir).expect("open index");
    let texts = |zh: Option<bool>| -> Vec<&str> {
        sample
            .iter()
            .map(|p| p.text.as_str())
            .filter(|t| match zh {
                Some(zh) => common::has_han(t) == zh,
                None => true,
            })
            .collect()
    };
    let sets = [
        ("zh", query_set(&texts(Some(true)), 1)),
        ("en", query_set(&texts(Some(false)), 2)),
        ("mixed", query_set(&texts(None), 3)),
    ];
    let without_text = QueryOptions {
        with_text: false,
        ..QueryOptions::default()
    };
    let with_text = QueryOptions::default();

    // What a lookup returns, for reading the figures.
    for (name, set) in &sets {
        let (mut hits, mut cands, mut empty) = (0, 0, 0);
        for t in set {
            let r = index.query(t, &without_text).expect("query");
            hits += r.hits.len();
            cands += r.candidates;
            empty += usize::from(r.empty);
        }
        eprintln!(
            "queries {name}: {} texts, {:.1} hits and {:.1} candidates per query, {empty} empty",
            set.len(),
            hits as f64 / set.len() as f64,
            cands as f64 / set.len() as f64,
        );
    }

    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(1));
    let runs = [
        ("without_text", &without_text, "zh"),
        ("without_text", &without_text, "en"),
        ("without_text", &without_text, "mixed"),
        ("with_text", &with_text, "mixed"),
    ];
    for (label, opts, corpus) in runs {
        let set = &sets
            .iter()
            .find(|(n, _)| *n == corpus)
            .expect("query set")
            .1;
        let mut i = 0;
        group.bench_function(format!("{label}/{corpus}"), |b| {
            b.iter(|| {
                let t = &set[i % set.len()];
                i += 1;
                black_box(index.query(black_box(t), opts).expect("query"))
            })
        });
    }
    group.finish();
    drop(index);

    let mut group = c.benchmark_group("open");
    for (name, access) in [("mmap", Access::Mmap), ("in_memory", Access::InMemory)] {
        let opts = OpenOptions {
            access,
            ..OpenOptions::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| black_box(Index::open_with(&dir, opts).expect("open index")))
        });
    }
    group.finish();
}

/// Short runs, as in the fingerprint bench.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = query
}
criterion_main!(benches);
