//! Lookup latency through the library: open time, warm and cold (page cache dropped)
//! text-in, hits-out queries, p50/p99.
//!
//! `TEXTREUSE_BENCH_INDEX=DIR TEXTREUSE_BENCH_QUERIES=FILE.jsonl cargo bench --bench latency`
//! measures an existing index (queries: JSONL with a `text` field, and `platform` and `ts`
//! for the filtered rows); without them it builds a small index of `data/sample.jsonl` in a
//! temporary directory and queries its own posts.
//! Cold queries drop the index files from the page cache with `posix_fadvise(DONTNEED)`
//! before each query; the index is reopened (untimed) so that no page stays mapped.
//! `TEXTREUSE_BENCH_IN_MEMORY=1` adds warm rows with the index read into memory.
//! `TEXTREUSE_BENCH_TAIL=1` adds where the warm tail comes from: each limit-10 lookup's
//! least time over 7 runs (each followed by another lookup), by its number of candidates.

#![warn(clippy::undocumented_unsafe_blocks)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use textreuse::index::ingest::{build_index, IngestOptions, Quiet};
use textreuse::index::{Access, BuildOptions, Index, OpenOptions, QueryOptions};
use textreuse::Scratch;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("index dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn drop_cache(paths: &[PathBuf]) {
    use std::os::fd::AsRawFd;
    for p in paths {
        if let Ok(f) = std::fs::File::open(p) {
            // SAFETY: a plain system call on an open descriptor; no memory is passed.
            unsafe {
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs every query once to warm up, then times each in a second pass (the result is
/// dropped after the clock stops): the times in µs and the hits counted in the warm-up.
/// A query post's platform and time, when its line has them.
type Labels = (Option<String>, Option<i64>);

/// The posts of JSONL `lines` with a `text`: the text, platform and time of each.
fn query_posts<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, Labels)> {
    lines
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let text = v["text"].as_str()?.to_string();
            let platform = v["platform"].as_str().map(str::to_string);
            Some((text, (platform, v["ts"].as_i64())))
        })
        .collect()
}

/// Prints a warm row: `label`, p50 and p99 of `t_us`, and the mean of `hits` over `n`
/// queries.
fn warm_row(label: &str, t_us: &mut [f64], hits: usize, n: usize) {
    println!(
        "warm, {label}: p50 {:.1} us, p99 {:.1} us, mean hits {:.1}",
        pct(t_us, 0.5),
        pct(t_us, 0.99),
        hits as f64 / n as f64
    );
}

fn warm<R>(
    queries: &[String],
    mut query: impl FnMut(&str) -> R,
    hits: impl Fn(&R) -> usize,
) -> (Vec<f64>, usize) {
    let n = queries.iter().map(|q| hits(&query(q))).sum();
    let t_us = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let r = query(q);
            let us = t.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(r);
            us
        })
        .collect();
    (t_us, n)
}

/// Prints the warm row of borrowed hits (`query_refs`, no texts) at `limit`; `label` goes
/// after "warm, ".
fn borrowed_row(index: &Index, queries: &[String], limit: usize, label: &str) {
    let opts = QueryOptions {
        limit,
        ..QueryOptions::default()
    };
    let mut s = Scratch::new();
    let (mut t_us, _) = warm(
        queries,
        |q| index.query_refs(q, &opts, &mut s).expect("query"),
        |r| r.hits.len(),
    );
    println!(
        "warm, {label}borrowed hits (query_refs), limit {limit}: p50 {:.1} us, p99 {:.1} us",
        pct(&mut t_us, 0.5),
        pct(&mut t_us, 0.99)
    );
}

/// Where the warm tail comes from: each limit-10 lookup's least time over 7 runs (each run
/// followed by another lookup, so its lines are warm but not all in L1), the slowest
/// lookups with their candidates, and the mean time per tenth of the lookups ordered by
/// candidates verified.
fn tail(dir: &Path, queries: &[String]) {
    let index = Index::open(dir).expect("open");
    let opts = QueryOptions {
        limit: 10,
        ..QueryOptions::default()
    };
    let mut s = Scratch::new();
    let n = queries.len();
    if n == 0 {
        return;
    }
    let mut rows: Vec<(f64, usize, usize, usize)> = (0..n)
        .map(|i| {
            let (mut best, mut cands, mut hits) = (f64::MAX, 0, 0);
            for _ in 0..7 {
                let t = Instant::now();
                let r = index.query_refs(&queries[i], &opts, &mut s).expect("query");
                best = best.min(t.elapsed().as_secs_f64() * 1e6);
                (cands, hits) = (r.candidates, r.hits.len());
                std::hint::black_box(r);
                let other = &queries[(i * 7919 + 13) % n];
                std::hint::black_box(index.query_refs(other, &opts, &mut s).expect("query"));
            }
            (best, cands, hits, i)
        })
        .collect();
    let mut t: Vec<f64> = rows.iter().map(|r| r.0).collect();
    println!(
        "tail, limit 10, least of 7: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        pct(&mut t, 0.5),
        pct(&mut t, 0.9),
        pct(&mut t, 0.99),
        pct(&mut t, 1.0)
    );
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for r in rows.iter().take(10) {
        println!(
            "  slowest: {:.1} us, {} candidates, {} hits (query {})",
            r.0, r.1, r.2, r.3
        );
    }
    rows.sort_by_key(|r| r.1);
    for part in rows.chunks(n.div_ceil(10).max(1)) {
        let mean = part.iter().map(|r| r.0).sum::<f64>() / part.len() as f64;
        println!(
            "  candidates {}..={}: mean {:.1} us",
            part[0].1,
            part[part.len() - 1].1,
            mean
        );
    }
}

fn main() {
    let (dir, queries, _tmp) = match std::env::var_os("TEXTREUSE_BENCH_INDEX") {
        Some(d) => {
            let q =
                std::env::var("TEXTREUSE_BENCH_QUERIES").expect("set TEXTREUSE_BENCH_QUERIES too");
            let posts = query_posts(std::fs::read_to_string(q).expect("queries").lines());
            (PathBuf::from(d), posts, None)
        }
        None => {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("index");
            let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.jsonl");
            build_index(
                &dir,
                std::slice::from_ref(&data),
                &IngestOptions::default(),
                BuildOptions::default(),
                &mut Quiet,
            )
            .expect("build");
            let sample = std::fs::read_to_string(&data).expect("sample");
            (dir, query_posts(sample.lines().step_by(3)), Some(tmp))
        }
    };
    let (queries, labels): (Vec<String>, Vec<Labels>) = queries.into_iter().unzip();
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    // Open.
    let mut opens = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let idx = Index::open(&dir).expect("open");
        opens.push(t.elapsed().as_secs_f64() * 1e6);
        drop(idx);
    }
    println!(
        "index {} ({} posts), {} queries",
        dir.display(),
        Index::open(&dir).expect("open").num_posts(),
        queries.len()
    );
    println!(
        "open: p50 {:.0} us, max {:.0} us",
        pct(&mut opens, 0.5),
        pct(&mut opens, 1.0)
    );
    for (label, limit, with_text, exact) in [
        ("limit 10, no text", 10, false, false),
        ("all hits, no text", 0, false, false),
        ("limit 10, with text", 10, true, false),
        ("all hits, with text", 0, true, false),
        // The CLI's and Python's default: texts, and estimates near the threshold settled.
        (
            "limit 10, with text, exact near the threshold",
            10,
            true,
            true,
        ),
        (
            "all hits, with text, exact near the threshold",
            0,
            true,
            true,
        ),
    ] {
        // TEXTREUSE_BENCH_ONLY=text runs only the warm rows whose label contains it.
        if std::env::var("TEXTREUSE_BENCH_ONLY").is_ok_and(|o| !label.contains(&o)) {
            continue;
        }
        let index = Index::open(&dir).expect("open");
        let opts = QueryOptions {
            limit,
            with_text,
            exact_near_threshold: exact,
            ..QueryOptions::default()
        };
        let mut s = Scratch::new();
        let (mut t_us, hits) = warm(
            &queries,
            |q| index.query_with(q, &opts, &mut s).expect("query"),
            |r| r.hits.len(),
        );
        warm_row(label, &mut t_us, hits, queries.len());
        if exact {
            // What the exact rows pay for: candidates settled from their stored texts,
            // counted in a third pass through the same scratch (memo hits included).
            let mut settled: Vec<f64> = queries
                .iter()
                .map(|q| index.query_with(q, &opts, &mut s).expect("query").settled as f64)
                .collect();
            let mean = settled.iter().sum::<f64>() / settled.len().max(1) as f64;
            println!(
                "  settled per lookup: mean {mean:.1}, p50 {:.0}, p99 {:.0}",
                pct(&mut settled, 0.5),
                pct(&mut settled, 0.99)
            );
        }
    }
    // Filtered lookups, each query's filter from its own post: copies on its platform, and
    // copies posted since it (a campaign's filter drops most of its posts).
    for (label, platform, since) in [
        ("limit 10, no text, on the query's platform", true, false),
        ("limit 10, no text, since the query's time", false, true),
    ] {
        if std::env::var("TEXTREUSE_BENCH_ONLY").is_ok_and(|o| !label.contains(&o)) {
            continue;
        }
        let index = Index::open(&dir).expect("open");
        let each: Vec<QueryOptions> = labels
            .iter()
            .map(|(pl, ts)| QueryOptions {
                limit: 10,
                with_text: false,
                platforms: pl.iter().filter(|_| platform).cloned().collect(),
                since: ts.filter(|_| since),
                ..QueryOptions::default()
            })
            .collect();
        let mut s = Scratch::new();
        let mut i = 0;
        let (mut t_us, hits) = warm(
            &queries,
            |q| {
                // `warm` runs the queries in order (twice): query i has options i.
                let opts = &each[i % each.len()];
                i += 1;
                index.query_with(q, opts, &mut s).expect("query")
            },
            |r| r.hits.len(),
        );
        warm_row(label, &mut t_us, hits, queries.len());
    }
    for limit in [10, 0]
        .into_iter()
        .filter(|_| std::env::var_os("TEXTREUSE_BENCH_ONLY").is_none())
    {
        // Borrowed hits (`query_refs`): no per-hit copies, no texts.
        let index = Index::open(&dir).expect("open");
        borrowed_row(&index, &queries, limit, "");
    }
    if std::env::var_os("TEXTREUSE_BENCH_ONLY").is_none() {
        // Where the warm time goes: the query's fingerprint alone, and the whole query run a
        // second time right after the first, when every line it reads is in the CPU's
        // caches (the compute floor; the rest of a warm query is memory latency).
        let index = Index::open(&dir).expect("open");
        let opts = QueryOptions {
            with_text: false,
            ..QueryOptions::default()
        };
        let fp = index.fingerprinter();
        let mut s = Scratch::new();
        let (mut fp_us, _) = warm(
            &queries,
            |q| fp.fingerprint_with(q, &mut s).map(|f| f.shingles),
            |_| 0,
        );
        let mut again = |opts: &QueryOptions| -> Vec<f64> {
            queries
                .iter()
                .map(|q| {
                    std::hint::black_box(index.query_with(q, opts, &mut s).expect("query"));
                    let t = Instant::now();
                    let r = index.query_with(q, opts, &mut s).expect("query");
                    let us = t.elapsed().as_secs_f64() * 1e6;
                    std::hint::black_box(r);
                    us
                })
                .collect()
        };
        let mut again_us = again(&opts);
        let mut again10_us = again(&QueryOptions {
            limit: 10,
            ..opts.clone()
        });
        println!(
            "warm, no text, breakdown: fingerprint alone p50 {:.1} us; the same query again \
             (CPU caches hot) p50 {:.1} us, p99 {:.1} us (all hits); limit 10 p50 {:.1} us, \
             p99 {:.1} us",
            pct(&mut fp_us, 0.5),
            pct(&mut again_us, 0.5),
            pct(&mut again_us, 0.99),
            pct(&mut again10_us, 0.5),
            pct(&mut again10_us, 0.99)
        );
    }
    if std::env::var_os("TEXTREUSE_BENCH_TAIL").is_some() {
        tail(&dir, &queries);
    }
    if std::env::var_os("TEXTREUSE_BENCH_IN_MEMORY").is_some() {
        // The index read into memory (`Access::InMemory`: huge pages on Linux) instead of
        // mapped. Opt-in: it reads every file whole (after the breakdown, whose mapped pages
        // this read may evict).
        let index = Index::open_with(
            &dir,
            OpenOptions {
                access: Access::InMemory,
                prefetch: false,
            },
        )
        .expect("open");
        for limit in [10, 0] {
            let opts = QueryOptions {
                limit,
                with_text: false,
                ..QueryOptions::default()
            };
            let mut s = Scratch::new();
            let (mut t_us, _) = warm(
                &queries,
                |q| index.query_with(q, &opts, &mut s).expect("query"),
                |r| r.hits.len(),
            );
            println!(
                "warm, in memory, limit {limit}, no text: p50 {:.1} us, p99 {:.1} us",
                pct(&mut t_us, 0.5),
                pct(&mut t_us, 0.99)
            );
        }
        // Borrowed hits from memory: the like of a peer's in-memory lookup, which returns
        // its keys and copies no record out.
        borrowed_row(&index, &queries, 10, "in memory, ");
    }
    let cold = std::env::var_os("TEXTREUSE_BENCH_SKIP_COLD").is_none();
    if !cold {
        return;
    }
    let floor = StorageFloor::measure(&paths);
    println!(
        "storage floor: one random 4 KiB read {:.0} us (dependent reads, median), {:.0} reads/s \
         with 32 issued together",
        floor.read_us, floor.reads_per_s
    );
    for (prefetch, limit) in [(false, 10), (true, 10), (true, 0)] {
        let opts = QueryOptions {
            with_text: false,
            limit,
            ..QueryOptions::default()
        };
        let mut s = Scratch::new();
        let n = queries.len().min(300);
        let mut t_us = Vec::with_capacity(n);
        let mut pages = Vec::with_capacity(n);
        for q in &queries[..n] {
            // Pages mapped by a live process are not dropped: unmap, drop, map again.
            drop_cache(&paths);
            let index = Index::open_with(
                &dir,
                OpenOptions {
                    access: Access::Mmap,
                    prefetch,
                },
            )
            .expect("open");
            drop_cache(&paths);
            let t = Instant::now();
            let r = index.query_with(q, &opts, &mut s).expect("query");
            t_us.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(r);
            // Every page of the index files in the page cache now was read by this lookup.
            pages.push(resident_pages(&paths) as f64);
        }
        let (p50, p99) = (pct(&mut t_us, 0.5), pct(&mut t_us, 0.99));
        let (pg50, pg99) = (pct(&mut pages, 0.5), pct(&mut pages, 0.99));
        println!(
            "cold (page cache dropped), no text, limit {limit}, prefetch {prefetch}: p50 {p50:.0} us, \
             p99 {p99:.0} us; pages read p50 {pg50:.0}, p99 {pg99:.0}; floor for the median \
             pages in 3 rounds {:.0} us (p50 / floor {:.2}); on NVMe (80 us a read, 500 K \
             reads/s) {:.0} us",
            floor.cost_us(pg50, 3.0),
            p50 / floor.cost_us(pg50, 3.0),
            3.0 * 80.0 + pg50 / 500_000.0 * 1e6,
        );
    }
}

/// Pages of these files in the page cache (`mincore` over a fresh map of each).
fn resident_pages(paths: &[PathBuf]) -> u64 {
    let page = 4096usize;
    let mut total = 0;
    for p in paths {
        let Ok(f) = std::fs::File::open(p) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
        if len == 0 {
            continue;
        }
        // SAFETY: a read-only private map of a file this process opened; it is only passed
        // to `mincore` (never read) and unmapped before returning.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            continue;
        }
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `map` is a live mapping of `len` bytes and `vec` has one byte per page.
        let ok = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) } == 0;
        if ok {
            total += vec.iter().filter(|&&b| b & 1 == 1).count() as u64;
        }
        // SAFETY: unmaps the mapping made above, which nothing else refers to.
        unsafe {
            libc::munmap(map, len);
        }
    }
    total
}

/// What this machine's storage takes for random 4 KiB reads of the index files: one at a
/// time (each waits for the one before: the latency of a round), and many issued together
/// (the throughput a round's reads share).
struct StorageFloor {
    read_us: f64,
    reads_per_s: f64,
}

impl StorageFloor {
    fn measure(paths: &[PathBuf]) -> StorageFloor {
        use std::os::unix::fs::FileExt;
        let files: Vec<(std::fs::File, u64)> = paths
            .iter()
            .filter_map(|p| std::fs::File::open(p).ok())
            .filter_map(|f| {
                let n = f.metadata().ok()?.len() / 4096;
                (n > 0).then_some((f, n))
            })
            .collect();
        let total: u64 = files.iter().map(|f| f.1).sum();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut offsets = Vec::new();
        for _ in 0..2048 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut at = x % total.max(1);
            for (i, f) in files.iter().enumerate() {
                if at < f.1 {
                    offsets.push((i, at * 4096));
                    break;
                }
                at -= f.1;
            }
        }
        drop_cache(paths);
        let mut buf = [0u8; 4096];
        let mut one: Vec<f64> = offsets[..256]
            .iter()
            .map(|&(i, off)| {
                let t = Instant::now();
                let _ = files[i].0.read_at(&mut buf, off);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        drop_cache(paths);
        let rest = &offsets[256..];
        let t = Instant::now();
        std::thread::scope(|scope| {
            for chunk in rest.chunks(rest.len().div_ceil(32)) {
                let files = &files;
                scope.spawn(move || {
                    let mut buf = [0u8; 4096];
                    for &(i, off) in chunk {
                        let _ = files[i].0.read_at(&mut buf, off);
                    }
                });
            }
        });
        StorageFloor {
            read_us: pct(&mut one, 0.5),
            reads_per_s: rest.len() as f64 / t.elapsed().as_secs_f64(),
        }
    }

    /// Microseconds for `pages` random reads issued in `rounds` dependent rounds.
    fn cost_us(&self, pages: f64, rounds: f64) -> f64 {
        rounds * self.read_us + pages / self.reads_per_s * 1e6
    }
}
