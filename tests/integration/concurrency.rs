//! `Index` is `Send + Sync`, and many threads querying one index get the answers one
//! thread gets.

use std::sync::{Arc, Barrier};

use textreuse::index::{Access, OpenOptions};
use textreuse::{Index, QueryOptions, QueryResult};

use crate::equivalence::fixture;

/// Compile-time: an `Index` can be shared between threads (and so can its parts).
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Index>();
    shareable::<Arc<Index>>();
    shareable::<textreuse::Fingerprinter>();
    shareable::<QueryResult>();
};

#[test]
fn four_threads_get_the_single_threaded_answers() {
    let f = fixture();
    for access in [Access::Mmap, Access::InMemory] {
        let index = Arc::new(
            Index::open_with(
                &f.dir,
                OpenOptions {
                    access,
                    prefetch: access == Access::Mmap,
                },
            )
            .expect("opens"),
        );
        let opts = [
            QueryOptions::default(),
            QueryOptions {
                min_similarity: 0.2,
                limit: 5,
                ..QueryOptions::default()
            },
        ];
        let queries: Vec<&str> = f.queries.iter().step_by(2).map(String::as_str).collect();
        let ids: Vec<&str> = f.posts.iter().step_by(41).map(|p| p.id.as_str()).collect();
        let want: Vec<Vec<QueryResult>> = opts
            .iter()
            .map(|o| {
                queries
                    .iter()
                    .map(|q| index.query(q, o).expect("query"))
                    .collect()
            })
            .collect();
        let want_posts: Vec<_> = ids.iter().map(|id| index.post(id).expect("post")).collect();
        let want_near: Vec<_> = ids
            .iter()
            .map(|id| index.query_post(id, &opts[0]).expect("query_post"))
            .collect();
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let (index, barrier) = (Arc::clone(&index), &barrier);
                let (queries, ids, opts) = (&queries, &ids, &opts);
                let (want, want_posts, want_near) = (&want, &want_posts, &want_near);
                s.spawn(move || {
                    barrier.wait();
                    // Each thread walks the queries from its own starting point, so different
                    // threads touch different parts of the index at the same time.
                    let n = queries.len();
                    for k in 0..n {
                        let i = (k * (t + 1) + t * n / 4) % n;
                        let o = (i + t) % opts.len();
                        let got = index.query(queries[i], &opts[o]).expect("query");
                        assert_eq!(got, want[o][i], "thread {t}, query {i}, {access:?}");
                        if k % 8 == 0 {
                            let j = (k / 8 + t) % ids.len();
                            assert_eq!(index.post(ids[j]).expect("post"), want_posts[j]);
                            assert_eq!(
                                index.query_post(ids[j], &opts[0]).expect("query_post"),
                                want_near[j]
                            );
                        }
                    }
                    // And a batch (rayon) from inside a thread.
                    let batch = index.query_batch(queries, &opts[0]);
                    for (b, w) in batch.into_iter().zip(&want[0]) {
                        assert_eq!(&b.expect("batched"), w);
                    }
                });
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Readers and the writer lock of a living index (moved from `living`).
// ---------------------------------------------------------------------------------------

/// Readers and the writer lock of a living index (moved from `living`).
mod living_readers {
    use std::collections::{BTreeMap, BTreeSet};

    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use textreuse::index::{
        merge, BuildOptions, Existing, IndexBuilder, MergeOptions, OnExistingId, PostOutcome,
    };
    use textreuse::input::RawPost;
    use textreuse::{Error, Index, IndexReader, IndexWriter};

    use crate::living::*;
    use crate::util::{self};

    // ---------------------------------------------------------------------------------------
    // 4. Readers across appends, deletes and merges.
    // ---------------------------------------------------------------------------------------

    /// Sets the flag when dropped (also while unwinding).
    struct StopOnDrop<'a>(&'a AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn readers_see_whole_generations_while_a_writer_works() {
        let (posts, base_queries) = corpus();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("index");
        util::build_lib(&dir, &posts[..800], BuildOptions::default(), 5000);
        // Queries whose answers change with every step below.
        let deleted_a: Vec<String> = posts[..800]
            .iter()
            .step_by(50)
            .map(|p| p.id.clone())
            .collect();
        let deleted_b: Vec<String> = posts[800..1500]
            .iter()
            .step_by(50)
            .map(|p| p.id.clone())
            .collect();
        let replaced: Vec<&RawPost> = posts[5..800].iter().step_by(97).collect();
        let mut queries: Vec<String> = base_queries.iter().step_by(12).cloned().collect();
        queries.extend(posts.iter().step_by(150).map(|p| p.text.clone()));
        queries.extend(replaced.iter().map(|p| p.text.clone()));
        let new_texts: Vec<String> = replaced
            .iter()
            .map(|p| format!("{} now edited with several brand new words", p.text))
            .collect();
        queries.extend(new_texts.iter().cloned());
        let mut ids: Vec<String> = deleted_a.iter().step_by(3).cloned().collect();
        ids.extend(posts.iter().step_by(211).map(|p| p.id.clone()));

        // Expected answers of each published generation, and what the readers saw.
        let expected: Arc<Mutex<BTreeMap<u64, Views>>> = Arc::default();
        let seen: Arc<Mutex<BTreeMap<u64, Vec<Views>>>> = Arc::default();
        let newest_seen = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let first = open(&dir);
        let gen0 = first.manifest().generation;
        expected
            .lock()
            .unwrap()
            .insert(gen0, views(&first, &queries, &ids));

        let record = |seen: &Mutex<BTreeMap<u64, Vec<Views>>>, g: u64, v: Views| {
            let mut s = seen.lock().unwrap();
            let e = s.entry(g).or_default();
            if !e.contains(&v) {
                e.push(v);
            }
        };
        std::thread::scope(|scope| {
            // Whatever happens (a failed assertion below), the readers are told to stop, so
            // the scope can join them and report the failure instead of hanging.
            let _stop = StopOnDrop(&stop);
            // Reader 1: IndexReader, reloading every iteration.
            let r1 = scope.spawn(|| {
                let reader = IndexReader::open(&dir).expect("opens the reader");
                let held = reader.searcher();
                let mut iterations = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    reader.reload().expect("reload never fails");
                    let s = reader.searcher();
                    let g = s.manifest().generation;
                    let v = views(&s, &queries, &ids);
                    record(&seen, g, v);
                    newest_seen[0].fetch_max(g, Ordering::SeqCst);
                    iterations += 1;
                }
                // The first snapshot still answers (its files were removed by the merges).
                record(
                    &seen,
                    held.manifest().generation,
                    views(&held, &queries, &ids),
                );
                held.verify().expect("the held snapshot's files are whole");
                iterations
            });
            // Reader 2: Index::reload.
            let r2 = scope.spawn(|| {
                let mut index = open(&dir);
                let mut iterations = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    if let Some(n) = index.reload().expect("reload never fails") {
                        assert!(n.manifest().generation > index.manifest().generation);
                        index = n;
                    }
                    let g = index.manifest().generation;
                    let v = views(&index, &queries, &ids);
                    record(&seen, g, v);
                    newest_seen[1].fetch_max(g, Ordering::SeqCst);
                    iterations += 1;
                }
                iterations
            });

            let publish = |what: &str| {
                let index = open(&dir);
                let g = index.manifest().generation;
                let v = views(&index, &queries, &ids);
                expected.lock().unwrap().insert(g, v);
                // Wait until both readers have answered from this generation.
                let t0 = Instant::now();
                while newest_seen.iter().any(|n| n.load(Ordering::SeqCst) < g) {
                    assert!(
                        !r1.is_finished() && !r2.is_finished(),
                        "{what}: a reader failed (see its panic above)"
                    );
                    assert!(
                        t0.elapsed() < Duration::from_secs(30),
                        "{what}: the readers never picked up generation {g}"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            };
            append(&dir, &posts[800..1500], OnExistingId::Skip);
            publish("append");
            assert!(delete(&dir, &deleted_a).is_empty());
            publish("delete");
            let batch: Vec<RawPost> = replaced
                .iter()
                .zip(&new_texts)
                .map(|(p, t)| RawPost {
                    text: t.clone(),
                    ..(*p).clone()
                })
                .collect();
            append(&dir, &batch, OnExistingId::Replace);
            publish("replace");
            merge_all(&dir);
            publish("merge");
            append(&dir, &posts[1500..], OnExistingId::Skip);
            publish("second append");
            let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).expect("writer");
            assert!(w.delete(&deleted_b).expect("delete").is_empty());
            // Ids already live (skipped) and one new post.
            let mut more: Vec<RawPost> = posts[1..10].to_vec();
            more.push(post(
                "fresh",
                &new_texts[0].replace("edited", "fresh"),
                "f",
                None,
            ));
            w.add(&more).expect("add");
            w.commit().expect("commit");
            drop(w);
            publish("delete and add");
            let two = MergeOptions {
                max_segments: 2,
                ..MergeOptions::default()
            };
            let m = merge(&dir, &two).expect("merges");
            assert_eq!((m.segments_before, m.segments_after), (3, 2), "{m:?}");
            publish("merge to two segments");
            let m = merge(&dir, &two).expect("merges");
            assert_eq!((m.merged.len(), m.segments_after), (1, 2), "{m:?}");
            publish("merge of the deletions");
            stop.store(true, Ordering::SeqCst);
            let (n1, n2) = (r1.join().expect("reader 1"), r2.join().expect("reader 2"));
            eprintln!("reader iterations: {n1}, {n2}");
        });

        let expected = expected.lock().unwrap();
        let seen = seen.lock().unwrap();
        let steps = [
            "append",
            "delete",
            "replace",
            "merge",
            "second append",
            "delete and add",
            "merge to two segments",
            "merge of the deletions",
        ];
        assert_eq!(expected.len(), steps.len() + 1, "generations published");
        for (g, answers) in seen.iter() {
            let want = expected
                .get(g)
                .unwrap_or_else(|| panic!("readers saw generation {g}, which was never published"));
            for a in answers {
                assert_views_eq(
                    a,
                    want,
                    &queries,
                    &ids,
                    &format!("a reader at generation {g}"),
                );
            }
        }
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "the readers saw every generation"
        );
        // The generations really differ as the writer's steps say.
        let gens: Vec<&Views> = expected.values().collect();
        let dead_a: BTreeSet<String> = deleted_a.iter().cloned().collect();
        for (i, v) in gens.iter().enumerate() {
            let dead_hits = v
                .results
                .iter()
                .flat_map(|r| r.0.iter())
                .filter(|h| dead_a.contains(&h.0))
                .count();
            if i >= 2 {
                assert_eq!(dead_hits, 0, "generation #{i}: deleted posts in hits");
            } else {
                assert!(
                    dead_hits > 0,
                    "generation #{i}: the posts to delete are hits"
                );
            }
        }
        for (i, step) in steps.iter().enumerate() {
            if step.starts_with("merge") {
                // Merges change nothing but addresses.
                assert_eq!(gens[i], gens[i + 1], "{step} changed an answer");
            } else {
                assert_ne!(
                    gens[i].results,
                    gens[i + 1].results,
                    "{step} changed no answer"
                );
            }
        }
    }

    /// Reloading races a writer that publishes generation after generation (and removes the
    /// previous manifest each time): `reload` must never fail, whichever moment it reads
    /// `CURRENT` and the manifest at.
    #[test]
    fn reload_never_fails_while_generations_are_published() {
        let sample = util::sample_posts();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("index");
        util::build_lib(&dir, &sample[..400], BuildOptions::default(), 5000);
        let publishes = 120;
        let stop = AtomicBool::new(false);
        let errors: Mutex<Vec<String>> = Mutex::default();
        let reloads = AtomicU64::new(0);
        std::thread::scope(|scope| {
            let _stop = StopOnDrop(&stop);
            for t in 0..3 {
                let (stop, errors, reloads, dir) = (&stop, &errors, &reloads, &dir);
                scope.spawn(move || {
                    let reader = IndexReader::open(dir).expect("opens the reader");
                    let mut index = open(dir);
                    while !stop.load(Ordering::SeqCst) {
                        let r = if t == 0 {
                            reader.reload().map(|_| ())
                        } else if t == 2 {
                            Index::open(dir).map(|_| ())
                        } else {
                            index.reload().map(|n| {
                                if let Some(n) = n {
                                    index = n;
                                }
                            })
                        };
                        reloads.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = r {
                            errors.lock().unwrap().push(format!(
                                "{}: {e}",
                                ["IndexReader::reload", "Index::reload", "Index::open"][t]
                            ));
                        }
                    }
                });
            }
            for post in sample.iter().take(publishes) {
                let id = post.id.clone();
                let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).expect("writer");
                w.delete(&[id]).expect("deletes");
                w.commit().expect("commits");
            }
            stop.store(true, Ordering::SeqCst);
        });
        let errors = errors.into_inner().unwrap();
        eprintln!(
            "{} reloads across {publishes} publishes, {} errors",
            reloads.load(Ordering::Relaxed),
            errors.len()
        );
        assert!(
            errors.is_empty(),
            "{} reloads failed while a writer published, e.g.:\n{}",
            errors.len(),
            errors[..errors.len().min(5)].join("\n")
        );
        let index = open(&dir);
        index.verify().expect("verifies");
        assert_eq!(index.stats().deleted, publishes as u64);
    }

    // ---------------------------------------------------------------------------------------
    // 6. One writer at a time.
    // ---------------------------------------------------------------------------------------

    fn assert_lock_error<T: std::fmt::Debug>(r: textreuse::Result<T>, what: &str) {
        match r {
            Err(e @ Error::Locked { .. }) => {
                assert!(e.is_retryable(), "{what}: a held lock is retryable");
                let msg = e.to_string();
                assert!(
                    msg.contains("LOCK") || msg.contains("another writer"),
                    "{what}: the error must name the lock: {msg}"
                );
            }
            other => panic!("{what}: expected a lock error (Error::Locked), got {other:?}"),
        }
    }

    fn assert_cli_refused(r: &util::Run, what: &str) {
        assert_eq!(r.code, 2, "{what}: a second writer must exit 2: {r:?}");
        assert!(
            r.stderr.contains("LOCK") || r.stderr.contains("another writer"),
            "{what}: the message must name the lock: {}",
            r.stderr
        );
    }

    #[test]
    fn a_second_writer_is_refused_until_the_first_commits() {
        let sample = util::sample_posts();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("index");
        util::build_lib(&dir, &sample[..300], BuildOptions::default(), 5000);
        let input = tmp.path().join("more.jsonl");
        util::write_jsonl(&input, &sample[300..350]);
        let gen = open(&dir).manifest().generation;
        let n0 = open(&dir).num_posts();

        let mut first =
            IndexWriter::open_with(&dir, BuildOptions::default()).expect("first writer");
        let added = first
            .add(&sample[400..450])
            .expect("adds")
            .iter()
            .filter(|o| **o == PostOutcome::Indexed)
            .count() as u64;
        assert!(added >= 45, "{added}");
        assert!(first.delete(&["7"]).expect("deletes").is_empty());
        let tree = util::read_tree(&dir);

        assert_lock_error(
            IndexWriter::open_with(&dir, BuildOptions::default()),
            "IndexWriter::open",
        );
        assert_lock_error(merge(&dir, &MergeOptions::default()), "merge");
        assert_lock_error(
            IndexBuilder::create(
                &dir,
                BuildOptions {
                    existing: Existing::Replace,
                    ..BuildOptions::default()
                },
            ),
            "IndexBuilder::create (replace)",
        );
        assert_cli_refused(
            &cli(&["delete", "--index", p(&dir), "--id", "3"]),
            "textreuse delete",
        );
        assert_cli_refused(
            &cli(&[
                "build",
                "--append",
                "-q",
                "--index",
                p(&dir),
                "--input",
                p(&input),
            ]),
            "textreuse build --append",
        );
        assert_cli_refused(&cli(&["merge", "--index", p(&dir)]), "textreuse merge");
        assert_eq!(
            util::read_tree(&dir),
            tree,
            "refused writers must not touch the index"
        );
        // Readers are not blocked, and see the last published generation.
        let index = open(&dir);
        assert_eq!(index.manifest().generation, gen);
        assert!(index.post("7").expect("post").is_some());
        assert!(index.post(&sample[400].id).expect("post").is_none());

        first.commit().expect("the first writer commits");
        let index = open(&dir);
        assert_eq!(index.manifest().generation, gen + 1);
        assert!(index.post("7").expect("post").is_none());
        assert!(index.post(&sample[400].id).expect("post").is_some());
        // A committed writer stays usable, and keeps the lock until it is dropped.
        assert_lock_error(merge(&dir, &MergeOptions::default()), "merge");
        assert!(first.delete(&["12"]).expect("deletes").is_empty());
        first.commit().expect("the first writer commits again");
        assert_eq!(open(&dir).manifest().generation, gen + 2);
        assert!(open(&dir).post("12").expect("post").is_none());
        drop(first);

        // Now every second writer gets through.
        let mut second =
            IndexWriter::open_with(&dir, BuildOptions::default()).expect("second writer");
        assert!(second.delete(&["8"]).expect("deletes").is_empty());
        second.commit().expect("commits");
        drop(second);
        let r = cli(&["delete", "--index", p(&dir), "--id", "3"]);
        assert_eq!(r.code, 0, "{r:?}");
        let r = util::cli_build(&input, &dir, &["-q", "--append", "--json"]);
        let s: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
        let appended = s["indexed"].as_u64().expect("indexed");
        assert!(appended >= 45, "{}", r.stdout);
        let r = cli(&["merge", "--index", p(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        let index = open(&dir);
        index.verify().expect("verifies");
        assert_eq!(index.segments().len(), 1);
        assert_eq!(index.num_posts(), n0 + added + appended - 4);
        for id in ["3", "7", "8", "12"] {
            assert!(index.post(id).expect("post").is_none(), "{id}");
        }

        // A writer dropped without committing publishes nothing; what it wrote is removed by
        // the next writer.
        let gen = index.manifest().generation;
        let mut dropped = IndexWriter::open_with(&dir, BuildOptions::default()).expect("writer");
        dropped
            .add(&[post(
                "ghost",
                "a post that is never published at all",
                "g",
                None,
            )])
            .expect("adds");
        // Deleting a post added by this writer writes its segment out.
        assert!(dropped.delete(&["ghost", "9"]).expect("deletes").is_empty());
        drop(dropped);
        let index = open(&dir);
        assert_eq!(index.manifest().generation, gen);
        assert!(index.post("9").expect("post").is_some());
        assert!(index.post("ghost").expect("post").is_none());
        append(
            &dir,
            &[post(
                "after",
                "the next writer after a dropped one",
                "g",
                None,
            )],
            OnExistingId::Skip,
        );
        assert_clean(&dir, "after a dropped writer");
        assert!(open(&dir).post("after").expect("post").is_some());
    }
}
