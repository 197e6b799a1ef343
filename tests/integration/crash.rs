//! Crash safety: a rebuild killed at any moment leaves the previous index answering exactly
//! as before, and the next build cleans up after it. A reader that has the old index open
//! keeps its answers while a rebuild replaces it.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use textreuse::index::Access;
use textreuse::index::OpenOptions;
use textreuse::{Index, QueryOptions, QueryResult};

use crate::util;

/// When to kill the rebuild.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// After this long.
    After(Duration),
    /// As soon as a segment directory the live manifest does not name appears.
    NewSegmentDir,
    /// As soon as that directory holds a file called this (finished or temporary).
    NewSegmentFile(&'static str),
    /// As soon as a manifest other than the live one appears.
    NewManifest,
}

/// Everything observable about an index, to compare before and after.
#[derive(Debug, PartialEq)]
struct Answers {
    manifest: String,
    posts: u64,
    results: Vec<QueryResult>,
    lookups: Vec<Option<textreuse::index::Post>>,
}

fn answers(dir: &Path, queries: &[String], ids: &[String]) -> Answers {
    let index = Index::open(dir).expect("the index opens");
    index.verify().expect("the index verifies");
    let opts = QueryOptions {
        min_similarity: 0.3,
        ..QueryOptions::default()
    };
    Answers {
        manifest: fs::read_to_string(dir.join("CURRENT")).expect("reads CURRENT"),
        posts: index.num_posts(),
        results: queries
            .iter()
            .map(|q| index.query(q, &opts).expect("query"))
            .collect(),
        lookups: ids.iter().map(|id| index.post(id).expect("post")).collect(),
    }
}

/// `Answers` without addresses, which change when the same input is rebuilt.
fn views(
    a: &Answers,
) -> (
    u64,
    Vec<impl PartialEq + std::fmt::Debug>,
    Vec<impl PartialEq + std::fmt::Debug>,
) {
    (
        a.posts,
        a.results.iter().map(util::result_view).collect::<Vec<_>>(),
        a.lookups
            .iter()
            .map(|p| {
                p.as_ref().map(|p| {
                    (
                        p.id.clone(),
                        p.account.clone(),
                        p.platform.clone(),
                        p.ts,
                        p.text.clone(),
                    )
                })
            })
            .collect::<Vec<_>>(),
    )
}

/// The names a clean index directory holds: `CURRENT`, `LOCK`, the live manifest and the
/// live segment directories.
fn expected_entries(dir: &Path) -> BTreeSet<String> {
    let index = Index::open(dir).expect("opens");
    let mut want: BTreeSet<String> = ["CURRENT", "LOCK"].iter().map(|s| s.to_string()).collect();
    want.insert(
        fs::read_to_string(dir.join("CURRENT"))
            .expect("reads CURRENT")
            .trim()
            .to_string(),
    );
    for s in index.segments() {
        want.insert(s.entry().dir_name());
    }
    want
}

fn live_segments(dir: &Path) -> BTreeSet<String> {
    Index::open(dir)
        .expect("opens")
        .segments()
        .iter()
        .map(|s| s.entry().dir_name())
        .collect()
}

#[test]
fn killed_rebuild_leaves_the_old_index_answering() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    let sample = util::sample_posts();
    let small = tmp.path().join("small.jsonl");
    util::write_jsonl(&small, &sample[..400]);
    let big = tmp.path().join("big.jsonl");
    util::write_jsonl(&big, &sample[..2000]);
    util::cli_build(&small, &dir, &["-q"]);
    let queries: Vec<String> = sample[..400]
        .iter()
        .step_by(40)
        .map(|p| p.text.clone())
        .collect();
    let ids: Vec<String> = ["0", "5", "399", "400", "1999"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let first = answers(&dir, &queries, &ids);
    assert!(first.posts > 390 && first.posts <= 400, "{}", first.posts);
    assert!(
        first.lookups[3].is_none(),
        "post 400 is not in the small input"
    );

    let moments = [
        Moment::After(Duration::from_millis(5)),
        Moment::After(Duration::from_millis(50)),
        Moment::After(Duration::from_millis(200)),
        Moment::After(Duration::from_millis(700)),
        Moment::NewSegmentDir,
        // Files are written in the order bands, sigs, posts, ids.fst, text.
        Moment::NewSegmentFile("posts"),
        Moment::NewManifest,
    ];
    let mut published = 0;
    for moment in moments {
        let before = answers(&dir, &queries, &ids);
        assert_eq!(
            views(&before),
            views(&first),
            "each round starts from the small index"
        );
        let live = live_segments(&dir);
        let current = before.manifest.trim().to_string();
        let mut child = Command::new(util::bin())
            .args(["build", "--force", "-q", "--input"])
            .arg(&big)
            .arg("--index")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts the rebuild");
        let t0 = Instant::now();
        let mut reached = false;
        loop {
            if child.try_wait().expect("polls the child").is_some() {
                break;
            }
            reached = match moment {
                Moment::After(d) => t0.elapsed() >= d,
                Moment::NewSegmentDir | Moment::NewSegmentFile(_) => {
                    let new: Vec<String> = util::entries(&dir)
                        .into_iter()
                        .filter(|n| n.starts_with("seg-") && !live.contains(n))
                        .collect();
                    match moment {
                        Moment::NewSegmentFile(f) => new
                            .iter()
                            .any(|n| util::entries(&dir.join(n)).iter().any(|e| e.starts_with(f))),
                        _ => !new.is_empty(),
                    }
                }
                Moment::NewManifest => util::entries(&dir)
                    .iter()
                    .any(|n| n.starts_with("MANIFEST-") && *n != current),
            };
            if reached {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the rebuild takes too long"
            );
        }
        // Child::kill sends SIGKILL on Unix.
        let _ = child.kill();
        let status = child.wait().expect("reaps the child");
        let left = util::entries(&dir);
        let after = answers(&dir, &queries, &ids);
        eprintln!(
            "killed {moment:?} after {:?} (reached: {reached}, {status}); left: {left:?}",
            t0.elapsed()
        );
        let was_published = after.manifest != before.manifest;
        if !was_published {
            assert_eq!(after, before, "killed {moment:?} (reached: {reached}, {status}): the old index must answer exactly as before");
        } else {
            // The rebuild published before it died: the new index is complete.
            published += 1;
            assert!(
                after.posts > before.posts,
                "{moment:?}: a published rebuild holds the big input"
            );
            assert!(after.lookups[3].is_some() && after.lookups[4].is_some());
        }
        // The next build cleans up whatever the dead one left.
        util::cli_build(&small, &dir, &["--force", "-q"]);
        let restored = answers(&dir, &queries, &ids);
        assert_eq!(
            views(&restored),
            views(&first),
            "{moment:?}: rebuilt from the small input"
        );
        let have: BTreeSet<String> = util::entries(&dir).into_iter().collect();
        assert_eq!(
            have,
            expected_entries(&dir),
            "{moment:?}: leftovers after the next build"
        );
        for seg in live_segments(&dir) {
            let stray: Vec<String> = util::entries(&dir.join(&seg))
                .into_iter()
                .filter(|n| n.ends_with(".tmp"))
                .collect();
            assert!(
                stray.is_empty(),
                "{moment:?}: temporary files in {seg}: {stray:?}"
            );
        }
    }
    assert!(
        published < moments.len(),
        "at least some kills must land before publishing"
    );
}

#[test]
fn open_reader_survives_a_replacing_build() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    let sample = util::sample_posts();
    let small = tmp.path().join("small.jsonl");
    let other = tmp.path().join("other.jsonl");
    util::write_jsonl(&small, &sample[..300]);
    util::write_jsonl(&other, &sample[300..700]);
    util::cli_build(&small, &dir, &["-q"]);
    let queries: Vec<String> = sample[..700]
        .iter()
        .step_by(35)
        .map(|p| p.text.clone())
        .collect();
    let opts = QueryOptions {
        min_similarity: 0.3,
        ..QueryOptions::default()
    };
    for access in [Access::Mmap, Access::InMemory] {
        let old = Index::open_with(
            &dir,
            OpenOptions {
                access,
                prefetch: false,
            },
        )
        .expect("opens");
        let want: Vec<QueryResult> = queries
            .iter()
            .map(|q| old.query(q, &opts).expect("query"))
            .collect();
        let want_post = old.post("7").expect("post");
        // Replace the index while the reader holds it (twice: the second build deletes the
        // files of the first replacement, which nobody holds).
        util::cli_build(&other, &dir, &["--force", "-q"]);
        let got: Vec<QueryResult> = queries
            .iter()
            .map(|q| old.query(q, &opts).expect("query"))
            .collect();
        assert_eq!(
            got, want,
            "{access:?}: an open reader keeps answering from its generation"
        );
        assert_eq!(old.post("7").expect("post"), want_post);
        old.verify().expect("the old files are still whole");
        let new = Index::open(&dir).expect("opens the new index");
        assert!(
            new.post("7").expect("post").is_none(),
            "post 7 is not in the new input"
        );
        assert!(new.post("307").expect("post").is_some());
        drop(old);
        util::cli_build(&small, &dir, &["--force", "-q"]);
    }
}

/// A build that dies after publishing its manifest but before deleting the previous
/// generation leaves that generation's files behind. The next build removes the stale
/// segment directories, but not the stale manifest.
#[test]
fn leftovers_of_a_crash_after_publishing_are_cleaned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &util::sample_posts()[..100]);
    util::cli_build(&input, &dir, &["-q"]);
    // Keep generation 1's files, publish generation 2, then put them back: the state of a
    // build killed right after it switched CURRENT.
    let gen1 = util::read_tree(&dir);
    util::cli_build(&input, &dir, &["-q", "--force"]);
    for (name, bytes) in &gen1 {
        let path = dir.join(name);
        if !path.exists() {
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, bytes).expect("writes");
        }
    }
    assert!(util::entries(&dir).contains(&"MANIFEST-000001.json".to_string()));
    util::cli_build(&input, &dir, &["-q", "--force"]);
    let have: BTreeSet<String> = util::entries(&dir).into_iter().collect();
    assert_eq!(
        have,
        expected_entries(&dir),
        "stale files of the dead build remain"
    );
}

#[test]
fn a_second_writer_is_refused_while_a_build_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    let small = tmp.path().join("small.jsonl");
    util::write_jsonl(&small, &util::sample_posts()[..50]);
    util::cli_build(&small, &dir, &["-q"]);
    let before = util::read_tree(&dir);
    let mut child = Command::new(util::bin())
        .args(["build", "--force", "-q", "--input"])
        .arg(util::sample_path())
        .arg("--index")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the first build");
    // Wait until the first build holds the writer lock (read from /proc/locks, so that
    // this test never takes the lock itself and races the build for it).
    let t0 = Instant::now();
    let held = loop {
        if lock_held(&dir.join("LOCK")) {
            break true;
        }
        if child.try_wait().expect("polls").is_some() {
            break false;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the build never took the lock"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        held || cfg!(not(target_os = "linux")),
        "the first build should hold the lock for a while"
    );
    if held {
        let r = util::textreuse([
            "build".as_ref(),
            "--force".as_ref(),
            "-q".as_ref(),
            "--input".as_ref(),
            small.as_os_str(),
            "--index".as_ref(),
            dir.as_os_str(),
        ] as [&std::ffi::OsStr; 7]);
        let still_running = child.try_wait().expect("polls").is_none();
        if still_running {
            assert_eq!(r.code, 2, "a second writer must be refused: {r:?}");
            assert!(
                r.stderr.contains("LOCK") || r.stderr.contains("another writer"),
                "{}",
                r.stderr
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Whatever happened, the directory holds a whole index.
    let index = Index::open(&dir).expect("opens");
    index.verify().expect("verifies");
    assert!(
        held || util::read_tree(&dir) != before,
        "the first build either held the lock or finished"
    );
}

/// Whether some process holds an advisory lock on `path` (Linux: `/proc/locks`).
#[cfg(target_os = "linux")]
fn lock_held(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ino = fs::metadata(path).expect("LOCK exists").ino();
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        l.split_whitespace()
            .any(|f| f.rsplit(':').next() == Some(&ino.to_string()) && f.matches(':').count() == 2)
    })
}

/// Elsewhere: assume the build has taken the lock after a moment.
#[cfg(not(target_os = "linux"))]
fn lock_held(_path: &Path) -> bool {
    std::thread::sleep(Duration::from_millis(300));
    true
}

// ---------------------------------------------------------------------------------------
// Appends, deletes and merges killed with SIGKILL (moved from `living`).
// ---------------------------------------------------------------------------------------

/// Appends, deletes and merges killed with SIGKILL (moved from `living`).
mod living_kills {
    use std::collections::BTreeSet;

    use std::fs;

    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use std::time::{Duration, Instant};

    use textreuse::input::RawPost;
    use textreuse::{Index, QueryResult};

    use crate::living::*;
    use crate::util::{self};

    // ---------------------------------------------------------------------------------------
    // 5. Writers killed with SIGKILL.
    // ---------------------------------------------------------------------------------------

    /// When to kill the writer.
    #[derive(Debug, Clone, Copy)]
    enum Moment {
        After(Duration),
        /// A segment directory the live manifest does not name appears.
        NewSegmentDir,
        /// A new segment directory holds a file whose name starts with this.
        NewSegmentFile(&'static str),
        /// A live segment directory holds a deletion bitmap the live manifest does not name.
        NewDeletionBitmap,
        /// A manifest other than the live one appears.
        NewManifest,
    }

    impl Moment {
        fn reached(&self, dir: &Path, t0: Instant, live: &Index) -> bool {
            let current = format!("MANIFEST-{:06}.json", live.manifest().generation);
            let live_dirs: BTreeSet<String> = live
                .segments()
                .iter()
                .map(|s| s.entry().dir_name())
                .collect();
            let new_dirs = || -> Vec<String> {
                util::entries(dir)
                    .into_iter()
                    .filter(|n| n.starts_with("seg-") && !live_dirs.contains(n))
                    .collect()
            };
            let list = |d: PathBuf| fs::read_dir(d).into_iter().flatten().flatten();
            match *self {
                Moment::After(d) => t0.elapsed() >= d,
                Moment::NewSegmentDir => !new_dirs().is_empty(),
                Moment::NewSegmentFile(f) => new_dirs().iter().any(|n| {
                    list(dir.join(n)).any(|e| e.file_name().to_string_lossy().starts_with(f))
                }),
                Moment::NewDeletionBitmap => live.segments().iter().any(|s| {
                    let named = s.entry().deleted.as_ref().map(|d| d.file.clone());
                    list(dir.join(s.entry().dir_name())).any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.starts_with("deleted-") && Some(&n) != named.as_ref()
                    })
                }),
                Moment::NewManifest => util::entries(dir)
                    .iter()
                    .any(|n| n.starts_with("MANIFEST-") && *n != current),
            }
        }
    }

    /// Everything observable, with addresses: equal only if the very same generation answers.
    #[derive(Debug, PartialEq)]
    struct Exact {
        current: String,
        results: Vec<QueryResult>,
        views: Views,
    }

    fn exact(dir: &Path, queries: &[String], ids: &[String]) -> Exact {
        let index = open(dir);
        index.verify().expect("the index verifies");
        Exact {
            current: fs::read_to_string(dir.join("CURRENT")).expect("reads CURRENT"),
            results: queries
                .iter()
                .map(|q| index.query(q, &compare_opts()[0]).expect("query"))
                .collect(),
            views: views(&index, queries, ids),
        }
    }

    /// Starts `textreuse args`, kills it (SIGKILL) at `moment` unless it finished; returns
    /// whether the moment was reached and the time.
    fn run_and_kill(args: &[&str], dir: &Path, moment: Moment) -> (bool, bool, Duration) {
        let live = open(dir);
        let mut child = Command::new(util::bin())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts the writer");
        let t0 = Instant::now();
        let mut reached = false;
        let mut finished = false;
        loop {
            if child.try_wait().expect("polls the child").is_some() {
                finished = true;
                break;
            }
            if moment.reached(dir, t0, &live) {
                reached = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(300));
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the writer takes too long"
            );
        }
        // Child::kill sends SIGKILL on Unix.
        let _ = child.kill();
        let _ = child.wait();
        (reached, finished, t0.elapsed())
    }

    /// `n` posts: the sample again and again under new ids, each round's texts with a word of
    /// its own (so they are new contents, near copies of the sample).
    fn big_posts(n: usize, prefix: &str) -> Vec<RawPost> {
        let sample = util::sample_posts();
        (0..n)
            .map(|i| {
                let s = &sample[i % sample.len()];
                let round = i / sample.len();
                RawPost {
                    id: format!("{prefix}{round}-{}", s.id),
                    text: format!("{} {}", s.text, letters(round + 7)),
                    ..s.clone()
                }
            })
            .collect()
    }

    #[test]
    fn killed_append_and_merge_leave_the_index_answering() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sample = util::sample_posts();
        let queries: Vec<String> = sample
            .iter()
            .step_by(60)
            .map(|p| p.text.clone())
            .chain(
                big_posts(9000, "q")
                    .iter()
                    .skip(7)
                    .step_by(400)
                    .map(|p| p.text.clone()),
            )
            .collect();
        let ids: Vec<String> = [
            "0", "5", "399", "700", "1999", "big0-3", "big1-10", "more-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(sample[..400].iter().step_by(40).map(|p| p.id.clone()))
        .collect();

        // --- Append. The pristine index: 400 posts. The append: 24,000 posts, 60 of which
        // replace indexed posts (so deletion bitmaps are written too).
        let pristine = tmp.path().join("append-pristine");
        let small = tmp.path().join("small.jsonl");
        util::write_jsonl(&small, &sample[..400]);
        util::cli_build(&small, &pristine, &["-q"]);
        let mut big = big_posts(24_000, "big");
        for (i, s) in sample[..400].iter().step_by(7).take(60).enumerate() {
            big[i * 300] = RawPost {
                text: format!("{} and then some replaced words", s.text),
                ..s.clone()
            };
        }
        let big_in = tmp.path().join("big.jsonl");
        util::write_jsonl(&big_in, &big);
        let more_in = tmp.path().join("more.jsonl");
        let more: Vec<RawPost> = (0..5)
            .map(|i| {
                post(
                    &format!("more-{i}"),
                    &format!("a further post number {} about nothing much", letters(i)),
                    "m",
                    None,
                )
            })
            .collect();
        util::write_jsonl(&more_in, &more);
        let before = exact(&pristine, &queries, &ids);
        // What a completed append answers.
        let complete = tmp.path().join("append-complete");
        copy_dir(&pristine, &complete);
        let t0 = Instant::now();
        util::cli_build(&big_in, &complete, &["-q", "--append", "--replace"]);
        let append_time = t0.elapsed();
        let complete_views = exact(&complete, &queries, &ids).views;
        assert_ne!(complete_views, before.views);
        eprintln!("a whole append takes {append_time:?}");

        let moments = [
            Moment::After(Duration::from_millis(5)),
            Moment::After(Duration::from_millis(60)),
            Moment::After(append_time / 2),
            Moment::NewSegmentDir,
            Moment::NewSegmentFile("sigs"),
            Moment::NewSegmentFile("text"),
            Moment::NewDeletionBitmap,
            Moment::NewManifest,
        ];
        let mut killed_before_publish = 0;
        for (round, moment) in moments.iter().enumerate() {
            let dir = tmp.path().join(format!("append-{round}"));
            copy_dir(&pristine, &dir);
            let (reached, finished, took) = run_and_kill(
                &[
                    "build",
                    "--append",
                    "--replace",
                    "-q",
                    "--input",
                    p(&big_in),
                    "--index",
                    p(&dir),
                ],
                &dir,
                *moment,
            );
            let left = util::entries(&dir);
            let after = exact(&dir, &queries, &ids);
            eprintln!(
                "append killed at {moment:?} after {took:?} (reached {reached}, finished {finished}); left {left:?}"
            );
            if after.current == before.current {
                killed_before_publish += 1;
                assert_eq!(
                    after, before,
                    "append killed at {moment:?}: the index must answer exactly as before"
                );
            } else {
                assert_views_eq(
                    &after.views,
                    &complete_views,
                    &queries,
                    &ids,
                    &format!("append killed at {moment:?} after publishing"),
                );
            }
            // The next append succeeds and cleans up.
            util::cli_build(&more_in, &dir, &["-q", "--append"]);
            assert_clean(&dir, &format!("append after a kill at {moment:?}"));
            let index = open(&dir);
            index.verify().expect("verifies");
            assert_eq!(index.num_posts(), after.views.posts + more.len() as u64);
            assert!(index.post("more-3").expect("post").is_some());
            fs::remove_dir_all(&dir).expect("removes the round");
        }
        assert!(
            killed_before_publish >= 3,
            "most kills must land before publishing ({killed_before_publish})"
        );

        // --- Merge. The pristine index: 3 segments (400 + 12,000 + 12,000 posts) with deletions
        // in two of them.
        let pristine = tmp.path().join("merge-pristine");
        copy_dir(&complete, &pristine);
        fs::remove_dir_all(&complete).expect("removes");
        let big2 = tmp.path().join("big2.jsonl");
        util::write_jsonl(&big2, &big_posts(12_000, "second"));
        util::cli_build(&big2, &pristine, &["-q", "--append"]);
        let dead: Vec<String> = sample[..400]
            .iter()
            .step_by(3)
            .map(|p| p.id.clone())
            .chain((0..4).map(|r| format!("second{r}-17")))
            .collect();
        assert!(delete(&pristine, &dead).len() < dead.len() / 10);
        let before = exact(&pristine, &queries, &ids);
        let pristine_index = open(&pristine);
        let segs_before = pristine_index.segments().len();
        assert!(segs_before >= 3, "{segs_before} segments");
        assert!(pristine_index.stats().deleted > 100);
        drop(pristine_index);
        let done = tmp.path().join("merge-complete");
        copy_dir(&pristine, &done);
        let t0 = Instant::now();
        let r = cli(&["merge", "--index", p(&done)]);
        assert_eq!(r.code, 0, "{r:?}");
        let merge_time = t0.elapsed();
        eprintln!("a whole merge takes {merge_time:?}");
        let moments = [
            Moment::After(Duration::from_millis(5)),
            Moment::After(Duration::from_millis(40)),
            Moment::After(merge_time / 2),
            Moment::NewSegmentDir,
            Moment::NewSegmentFile("sigs"),
            Moment::NewSegmentFile("posts"),
            Moment::NewSegmentFile("ids.fst"),
            Moment::NewManifest,
        ];
        let mut killed_before_publish = 0;
        for (round, moment) in moments.iter().enumerate() {
            let dir = tmp.path().join(format!("merge-{round}"));
            copy_dir(&pristine, &dir);
            let (reached, finished, took) =
                run_and_kill(&["merge", "--index", p(&dir)], &dir, *moment);
            let left = util::entries(&dir);
            let after = exact(&dir, &queries, &ids);
            eprintln!(
                "merge killed at {moment:?} after {took:?} (reached {reached}, finished {finished}); left {left:?}"
            );
            if after.current == before.current {
                killed_before_publish += 1;
                assert_eq!(
                    after, before,
                    "merge killed at {moment:?}: the index must answer exactly as before"
                );
            } else {
                assert_views_eq(
                    &after.views,
                    &before.views,
                    &queries,
                    &ids,
                    &format!("merge killed at {moment:?} after publishing"),
                );
            }
            // The next merge succeeds and cleans up.
            let r = cli(&["merge", "--index", p(&dir)]);
            assert_eq!(r.code, 0, "merge after a kill at {moment:?}: {r:?}");
            assert_clean(&dir, &format!("merge after a kill at {moment:?}"));
            let index = open(&dir);
            index.verify().expect("verifies");
            assert_eq!(index.segments().len(), 1);
            assert_eq!(index.stats().deleted, 0);
            drop(index);
            assert_views_eq(
                &exact(&dir, &queries, &ids).views,
                &before.views,
                &queries,
                &ids,
                &format!("merged after a kill at {moment:?}"),
            );
            fs::remove_dir_all(&dir).expect("removes the round");
        }
        assert!(
            killed_before_publish >= 3,
            "most kills must land before publishing ({killed_before_publish})"
        );
    }
}
