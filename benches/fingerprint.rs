//! Fingerprinting throughput, stage by stage, over `data/sample.jsonl` split into Chinese
//! (`zh`: posts with Han characters), English (`en`: the others) and `mixed` (all).
//!
//! Stages, each over a whole corpus per iteration with reused buffers:
//!
//! - `normalize`: [`Normalizer::normalize`] (NFKC, folding, cleaning, tokenizing);
//! - `shingle`: [`shingle_hashes_of`] over already normalized texts (token and window hashing);
//! - `minhash`: [`MinHasher::signature`] over precomputed shingle hashes;
//! - `fingerprint`: [`Fingerprinter::fingerprint_with`], text to signature end to end.
//!
//! Every stage is measured twice, in a `<stage>/bytes` group (throughput in input text
//! bytes, so stages compare on one scale) and a `<stage>/posts` group (posts per second).
//!
//! `cargo bench --bench fingerprint`; `cargo bench --bench fingerprint -- normalize/` for one
//! stage.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use textreuse::minhash::MinHasher;
use textreuse::shingle::shingle_hashes_of;
use textreuse::text::Normalized;
use textreuse::{FingerprintParams, Fingerprinter, Scratch};

use common::Corpus;

/// How a group reports throughput.
#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Posts,
}

/// Benchmarks `stage` on every corpus, once per throughput unit. `make` prepares the
/// corpus's inputs and returns the routine that processes all of it once (its result is a
/// checksum kept from the optimizer).
fn bench_stage<'c, F, R>(c: &mut Criterion, stage: &str, corpora: &'c [Corpus], make: F)
where
    F: Fn(&'c Corpus) -> R,
    R: FnMut() -> u64,
{
    for unit in [Unit::Bytes, Unit::Posts] {
        let name = match unit {
            Unit::Bytes => "bytes",
            Unit::Posts => "posts",
        };
        let mut group = c.benchmark_group(format!("{stage}/{name}"));
        for corpus in corpora {
            group.throughput(match unit {
                Unit::Bytes => Throughput::Bytes(corpus.bytes()),
                Unit::Posts => Throughput::Elements(corpus.posts()),
            });
            let mut run = make(corpus);
            group.bench_function(corpus.name, |b| b.iter(|| black_box(run())));
        }
        group.finish();
    }
}

fn fingerprint_stages(c: &mut Criterion) {
    let posts = common::load_sample();
    let corpora = common::corpora(&posts);
    for corpus in &corpora {
        eprintln!(
            "corpus {}: {} posts, {} bytes",
            corpus.name,
            corpus.posts(),
            corpus.bytes()
        );
    }
    let params = FingerprintParams::default();
    let fp = Fingerprinter::new(params).expect("default parameters are valid");
    let normalizer = *fp.normalizer();
    let width = params.shingle as usize;
    let minhash = MinHasher::new(params.num_perm as usize, params.seed);

    let normalize_all = |corpus: &Corpus| -> Vec<Normalized> {
        corpus
            .texts
            .iter()
            .map(|t| {
                let mut n = Normalized::new();
                normalizer.normalize(t, &mut n);
                n
            })
            .collect()
    };

    bench_stage(c, "normalize", &corpora, |corpus| {
        let mut out = Normalized::new();
        move || {
            let mut tokens = 0;
            for t in &corpus.texts {
                normalizer.normalize(t, &mut out);
                tokens += out.spans().len() as u64;
            }
            tokens
        }
    });

    bench_stage(c, "shingle", &corpora, |corpus| {
        let normalized = normalize_all(corpus);
        let (mut token_hashes, mut shingles) = (Vec::new(), Vec::new());
        move || {
            let mut acc = 0u64;
            for n in &normalized {
                shingles.clear();
                shingle_hashes_of(n, width, &mut token_hashes, &mut shingles);
                acc = acc.wrapping_add(shingles.first().copied().unwrap_or(0));
            }
            acc
        }
    });

    bench_stage(c, "minhash", &corpora, |corpus| {
        // Posts without tokens have no shingles and get no signature in the pipeline.
        let shingled: Vec<Vec<u64>> = normalize_all(corpus)
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| {
                let (mut th, mut out) = (Vec::new(), Vec::new());
                shingle_hashes_of(n, width, &mut th, &mut out);
                out
            })
            .collect();
        let minhash = &minhash;
        let mut sig = vec![0u32; minhash.k()];
        move || {
            let mut acc = 0u64;
            for s in &shingled {
                minhash.signature(s, &mut sig);
                acc = acc.wrapping_add(u64::from(sig[0]));
            }
            acc
        }
    });

    bench_stage(c, "fingerprint", &corpora, |corpus| {
        let fp = &fp;
        let mut scratch = Scratch::new();
        move || {
            let mut acc = 0u64;
            for t in &corpus.texts {
                if let Some(f) = fp.fingerprint_with(t, &mut scratch) {
                    acc = acc.wrapping_add(u64::from(f.signature[0]));
                }
            }
            acc
        }
    });
}

/// Short runs: 24 benchmarks must finish in a few minutes on two busy cores.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = fingerprint_stages
}
criterion_main!(benches);
