//! The content order (FORMAT.md, "Content order"), read from the files with the spec alone:
//! near-copies get adjacent content ids, the entries of one band key stay in first-seen
//! order, and neither changes an answer (an index merged from two segments answers like one
//! built in one go, lookups capped at a few entries per key included).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use textreuse::index::{BuildOptions, OnExistingId};
use textreuse::input::RawPost;
use textreuse::{Index, QueryOptions};

use crate::envelope::{read_u32, Envelope, BANDS_MAGIC, POSTS_MAGIC, SIGS_MAGIC};
use crate::living::{append, merge_all, words};
use crate::util::{self, Rng};

/// Families of near-copies of a template (each copy with one word of its own), their posts
/// interleaved in input order with each other and with sample posts; returns the posts and
/// the templates.
fn corpus() -> (Vec<RawPost>, Vec<String>) {
    let mut rng = Rng::new(18);
    let templates: Vec<String> = (0..12).map(|_| words(&mut rng, 24).join(" ")).collect();
    let sample = util::sample_posts();
    let mut posts = Vec::new();
    for round in 0..40 {
        for (f, t) in templates.iter().enumerate() {
            let text = format!("{t} {}", words(&mut rng, 1)[0]);
            posts.push(RawPost {
                id: format!("f{f}-{round}"),
                text,
                account: format!("a{}", rng.below(50)),
                platform: "x".into(),
                ts: Some(1_700_000_000 + rng.below(100_000) as i64),
                line: 0,
            });
        }
        posts.extend(sample[round * 20..round * 20 + 20].iter().cloned());
    }
    (posts, templates)
}

/// The content ids of a one-segment index's posts, by external id, and each content's
/// first-seen rank (the input position of its first post).
struct Files {
    content_of: HashMap<String, u32>,
    first_seen: Vec<usize>,
    bands: Vec<u8>,
    band_env: Envelope,
}

fn read(dir: &Path, input: &[RawPost]) -> Files {
    let index = Index::open(dir).expect("opens");
    assert_eq!(index.segments().len(), 1, "one segment");
    let seg = index.segments()[0].dir().to_path_buf();
    let posts = fs::read(seg.join("posts")).expect("posts");
    let env = Envelope::parse(&seg.join("posts"), &posts, POSTS_MAGIC);
    let s = |i: usize| &posts[env.sections[i].clone()];
    // Format 6: each post's id start is the last field of its row (FORMAT.md, `posts`).
    let (meta, cp, rows, ids) = (s(0), s(1), s(2), s(3));
    let np = u64::from_le_bytes(meta[..8].try_into().unwrap()) as usize;
    let w: Vec<usize> = (0..4)
        .map(|i| read_u32(meta, 40 + 4 * i) as usize)
        .collect();
    let stride: usize = w.iter().sum();
    let bits = |from: usize, width: usize| -> u64 {
        (0..width).fold(0, |v, k| {
            v | u64::from(rows[(from + k) / 8] >> ((from + k) % 8) & 1) << k
        })
    };
    let id_start = |p: usize| -> u64 {
        if p == np {
            ids.len() as u64
        } else {
            bits(p * stride + w[0] + w[1] + w[2], w[3])
        }
    };
    let nc = cp.len() / 4 - 1;
    let position: HashMap<&str, usize> = input
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut content_of = HashMap::new();
    let mut first_seen = vec![usize::MAX; nc];
    for (c, first) in first_seen.iter_mut().enumerate() {
        for p in read_u32(cp, c * 4)..read_u32(cp, c * 4 + 4) {
            let (a, b) = (id_start(p as usize), id_start(p as usize + 1));
            let id = std::str::from_utf8(&ids[a as usize..b as usize]).expect("utf-8 id");
            content_of.insert(id.to_string(), c as u32);
            *first = (*first).min(position[id]);
        }
    }
    let bands = fs::read(seg.join("bands")).expect("bands");
    let band_env = Envelope::parse(&seg.join("bands"), &bands, BANDS_MAGIC);
    Files {
        content_of,
        first_seen,
        bands,
        band_env,
    }
}

/// Asserts that within every run of equal tags of every bucket, contents are in first-seen
/// order; returns the number of runs of two entries or more.
fn assert_runs_first_seen(f: &Files) -> usize {
    let meta = &f.bands[f.band_env.sections[0].clone()];
    let n = u64::from_le_bytes(meta[..8].try_into().unwrap()) as usize;
    let (bands, d) = (read_u32(meta, 8) as usize, read_u32(meta, 12));
    // Format 5: entry `i` is `tag_bits` of tag then `id_bits` of content id from bit
    // `i * (tag_bits + id_bits)` of one little-endian bit stream.
    assert_eq!(
        f.band_env.sections.len(),
        3,
        "format 5: meta, dirs, entries"
    );
    let (tag_bits, id_bits) = (read_u32(meta, 24) as usize, read_u32(meta, 28) as usize);
    assert_eq!(tag_bits, 32 - d as usize);
    assert!(
        n <= 1 << id_bits && n > 1 << (id_bits - 1),
        "{n} contents, {id_bits} bits"
    );
    let (dirs, packed) = (
        &f.bands[f.band_env.sections[1].clone()],
        &f.bands[f.band_env.sections[2].clone()],
    );
    let bits = |at: usize, width: usize| -> u32 {
        (0..width)
            .map(|k| u32::from((packed[(at + k) / 8] >> ((at + k) % 8)) & 1) << k)
            .sum()
    };
    let tag = |i: usize| bits(i * (tag_bits + id_bits), tag_bits);
    let cid = |i: usize| bits(i * (tag_bits + id_bits) + tag_bits, id_bits);
    let nb = (1usize << d) + 1;
    let mut runs = 0;
    for band in 0..bands {
        for b in 0..nb - 1 {
            let lo = read_u32(dirs, (band * nb + b) * 4) as usize;
            let hi = read_u32(dirs, (band * nb + b + 1) * 4) as usize;
            let base = band * n;
            let mut i = lo;
            while i < hi {
                let mut j = i + 1;
                while j < hi && tag(base + j) == tag(base + i) {
                    let (x, y) = (cid(base + j - 1), cid(base + j));
                    assert!(
                        f.first_seen[x as usize] < f.first_seen[y as usize],
                        "band {band} bucket {b}: content {x} before {y} against first-seen order"
                    );
                    j += 1;
                }
                runs += usize::from(j - i >= 2);
                i = j;
            }
        }
    }
    runs
}

/// Asserts that each family's contents have adjacent ids (though its posts were spread
/// over the input).
fn assert_families_adjacent(f: &Files, families: usize) {
    for fam in 0..families {
        let mut cs: Vec<u32> = (0..40)
            .map(|r| f.content_of[&format!("f{fam}-{r}")])
            .collect();
        cs.sort_unstable();
        cs.dedup();
        assert!(cs.len() > 30, "family {fam}: {} distinct texts", cs.len());
        assert_eq!(
            (cs[cs.len() - 1] - cs[0]) as usize + 1,
            cs.len(),
            "family {fam}: contents {cs:?} are not adjacent"
        );
    }
}

/// Asserts that a one-segment index's signatures start on a cache line (FORMAT.md, `sigs`).
fn assert_sigs_line_aligned(dir: &Path) {
    let index = Index::open(dir).expect("opens");
    let path = index.segments()[0].dir().join("sigs");
    let bytes = fs::read(&path).expect("sigs");
    let env = Envelope::parse(&path, &bytes, SIGS_MAGIC);
    let start = env.sections[1].start;
    assert_eq!(start % 64, 0, "sigs section at {start}");
}

#[test]
fn near_copies_get_adjacent_ids_and_keys_keep_first_seen_order_after_build_and_merge() {
    let (posts, templates) = corpus();
    let one = tempfile::tempdir().expect("tempdir");
    util::build_lib(one.path(), &posts, BuildOptions::default(), 1000);
    // Half built, half appended, then merged into one segment.
    let two = tempfile::tempdir().expect("tempdir");
    let half = posts.len() / 2;
    util::build_lib(two.path(), &posts[..half], BuildOptions::default(), 1000);
    append(two.path(), &posts[half..], OnExistingId::Skip);
    merge_all(two.path());
    for dir in [one.path(), two.path()] {
        let f = read(dir, &posts);
        assert_families_adjacent(&f, templates.len());
        assert_sigs_line_aligned(dir);
        assert!(
            assert_runs_first_seen(&f) > 100,
            "runs of shared keys exist"
        );
    }
    // The same answers from both, capped lookups (the first `max_bucket` entries of a key)
    // included.
    let (a, b) = (
        Index::open(one.path()).expect("opens"),
        Index::open(two.path()).expect("opens"),
    );
    let queries: Vec<&str> = templates
        .iter()
        .map(String::as_str)
        .chain(posts.iter().step_by(7).map(|p| p.text.as_str()))
        .collect();
    let mut capped = 0;
    for max_bucket in [1, 3, 1000] {
        for limit in [0, 5] {
            let opts = QueryOptions {
                max_bucket,
                limit,
                min_similarity: 0.3,
                ..QueryOptions::default()
            };
            for q in &queries {
                let (x, y) = (
                    a.query(q, &opts).expect("query"),
                    b.query(q, &opts).expect("query"),
                );
                assert_eq!(
                    util::result_view(&x),
                    util::result_view(&y),
                    "{q:?} {opts:?}"
                );
                capped += usize::from(x.truncated);
            }
        }
    }
    assert!(capped > 20, "some lookups were capped: {capped}");
}
