//! Evidence cost per hit: tokenizing a hit's text with source tracking and aligning it with
//! the query ([`textreuse::text::align`]), on tweet-length pairs (sample posts of 100 to
//! 280 chars, each against a light perturbation of itself, `common::perturb`, and against
//! an unrelated post).
//!
//! - `evidence/hit`: what each hit of a lookup costs (the query is tokenized once per
//!   lookup, outside the loop); criterion reports the time per hit (one element).
//! - `evidence/pair`: both texts tokenized, then aligned.
//!
//! `cargo bench --bench evidence`. The bar: < 50 µs per hit of tweet length.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use textreuse::text::align::{align, Tokenized};
use textreuse::text::Normalizer;

use common::Rng;

fn pairs() -> Vec<(String, String)> {
    let posts = common::load_sample();
    let tweets: Vec<&str> = posts
        .iter()
        .map(|p| p.text.as_str())
        .filter(|t| (100..=280).contains(&t.chars().count()))
        .collect();
    assert!(
        tweets.len() >= 100,
        "only {} tweet-length posts",
        tweets.len()
    );
    let mut rng = Rng(7);
    let mut out = Vec::new();
    for (i, t) in tweets.iter().take(500).enumerate() {
        out.push((t.to_string(), common::perturb(t, &mut rng)));
        // One unrelated pair in five, as a lookup's weaker hits.
        if i % 4 == 0 {
            out.push((
                t.to_string(),
                tweets[(i * 7 + 3) % tweets.len()].to_string(),
            ));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let pairs = pairs();
    let normalizer = Normalizer::default();
    let queries: Vec<Tokenized> = pairs
        .iter()
        .map(|(q, _)| {
            let mut t = Tokenized::new();
            t.tokenize(&normalizer, q);
            t
        })
        .collect();
    let mut g = c.benchmark_group("evidence");
    g.throughput(Throughput::Elements(pairs.len() as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("hit", |b| {
        let mut h = Tokenized::new();
        b.iter(|| {
            let mut n = 0usize;
            for (q, (_, hit)) in queries.iter().zip(&pairs) {
                h.tokenize(&normalizer, hit);
                n += align(q, &h, hit, 3).len();
            }
            black_box(n)
        })
    });
    g.bench_function("pair", |b| {
        let (mut q, mut h) = (Tokenized::new(), Tokenized::new());
        b.iter(|| {
            let mut n = 0usize;
            for (query, hit) in &pairs {
                q.tokenize(&normalizer, query);
                h.tokenize(&normalizer, hit);
                n += align(&q, &h, hit, 3).len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
