//! Living indexes: append, delete, merge and hot reload.
//!
//! Every check compares real outputs: an index grown by appends (and shrunk by deletes,
//! then merged) must answer exactly like an index built in one go from the posts that are
//! live; readers see whole generations only; a writer killed at any moment leaves the
//! previous generation answering; one writer at a time; clusters do not depend on how the
//! posts are split into segments; damaged deletion bitmaps are errors, never panics.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use textreuse::cluster::ClusterOptions;
use textreuse::index::{
    merge, Access, BuildOptions, Existing, IndexBuilder, MergeOptions, OnExistingId, OpenOptions,
    Post, PostOutcome,
};
use textreuse::input::RawPost;
use textreuse::{Error, Index, IndexReader, IndexWriter, QueryOptions, QueryResult};

use crate::util::{self, Rng};

// ---------------------------------------------------------------------------------------
// Shared corpus, queries and views.
// ---------------------------------------------------------------------------------------

/// The `equivalence` corpus (1500 sample posts, then ~400 near and exact copies of 200 of
/// them) and its queries, computed once.
fn corpus() -> &'static (Vec<RawPost>, Vec<String>) {
    static C: OnceLock<(Vec<RawPost>, Vec<String>)> = OnceLock::new();
    C.get_or_init(crate::equivalence::corpus)
}

fn is_cjk(c: char) -> bool {
    ('\u{3400}'..='\u{9FFF}').contains(&c) || ('\u{3040}'..='\u{30FF}').contains(&c)
}

/// An edited copy of `text`: a word (or character) dropped and a phrase appended.
fn edit(text: &str, rng: &mut Rng) -> String {
    let cjk = text.chars().filter(|&c| is_cjk(c)).count() > text.chars().count() / 3;
    if cjk {
        let mut chars: Vec<char> = text.chars().collect();
        if chars.len() > 4 {
            chars.remove(rng.below(chars.len()));
        }
        let mut s: String = chars.into_iter().collect();
        s.push_str("真相很快就会大白");
        s
    } else {
        let mut w: Vec<&str> = text.split_whitespace().collect();
        if w.len() > 4 {
            w.remove(rng.below(w.len()));
        }
        w.push("wake up people");
        w.join(" ")
    }
}

/// A pseudo-word of letters only (digits are removed by normalization).
fn word(rng: &mut Rng) -> String {
    let n = 4 + rng.below(5);
    (0..n)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

fn words(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| word(rng)).collect()
}

/// Letters for a number.
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

fn post(id: &str, text: &str, account: &str, ts: Option<i64>) -> RawPost {
    RawPost {
        id: id.to_string(),
        text: text.to_string(),
        account: account.to_string(),
        platform: "test".to_string(),
        ts,
        line: 0,
    }
}

/// About 140 query texts: corpus queries (sample posts, some with copies), texts of the
/// posts from `split` on (the appended part), and edited copies of posts from both parts.
fn query_set(posts: &[RawPost], base: &[String], split: usize) -> Vec<String> {
    let mut q: Vec<String> = base.iter().step_by(3).cloned().collect();
    q.extend(posts[split..].iter().step_by(25).map(|p| p.text.clone()));
    let mut rng = Rng::new(0x11e);
    q.extend(posts.iter().step_by(97).map(|p| edit(&p.text, &mut rng)));
    q
}

/// The options answers are compared under: near copies (0.3) and the default (0.5).
fn compare_opts() -> [QueryOptions; 2] {
    [
        QueryOptions {
            min_similarity: 0.3,
            ..QueryOptions::default()
        },
        QueryOptions::default(),
    ]
}

type View = (Vec<util::HitView>, bool, bool);
type PostView = (String, String, String, Option<i64>, Option<String>);

fn post_view(p: &Post) -> PostView {
    (
        p.id.clone(),
        p.account.clone(),
        p.platform.clone(),
        p.ts,
        p.text.clone(),
    )
}

/// What an index says, without addresses (which change with segmentation).
#[derive(Debug, PartialEq, Clone)]
struct Views {
    posts: u64,
    results: Vec<View>,
    lookups: Vec<Option<PostView>>,
    neighbours: Vec<Option<View>>,
}

fn views(index: &Index, queries: &[String], ids: &[String]) -> Views {
    let mut results = Vec::new();
    for o in compare_opts() {
        for q in queries {
            results.push(util::result_view(&index.query(q, &o).expect("query")));
        }
    }
    let near = &compare_opts()[0];
    Views {
        posts: index.num_posts(),
        results,
        lookups: ids
            .iter()
            .map(|id| index.post(id).expect("post").as_ref().map(post_view))
            .collect(),
        neighbours: ids
            .iter()
            .map(|id| {
                index
                    .query_post(id, near)
                    .expect("query_post")
                    .as_ref()
                    .map(util::result_view)
            })
            .collect(),
    }
}

/// Asserts two `Views` are equal, reporting the first differing query.
fn assert_views_eq(got: &Views, want: &Views, queries: &[String], ids: &[String], what: &str) {
    assert_eq!(got.posts, want.posts, "{what}: live posts");
    let nq = queries.len();
    for (i, (g, w)) in got.results.iter().zip(&want.results).enumerate() {
        assert_eq!(
            g,
            w,
            "{what}: query {:?} (min_similarity {})",
            queries[i % nq],
            compare_opts()[i / nq].min_similarity
        );
    }
    assert_eq!(
        got.results.len(),
        want.results.len(),
        "{what}: result count"
    );
    for (i, (g, w)) in got.lookups.iter().zip(&want.lookups).enumerate() {
        assert_eq!(g, w, "{what}: post({:?})", ids[i]);
    }
    for (i, (g, w)) in got.neighbours.iter().zip(&want.neighbours).enumerate() {
        assert_eq!(g, w, "{what}: query_post({:?})", ids[i]);
    }
}

fn open(dir: &Path) -> Index {
    Index::open(dir).unwrap_or_else(|e| panic!("{}: the index opens: {e}", dir.display()))
}

/// Hit ids of a query result.
fn hit_ids(r: &QueryResult) -> Vec<String> {
    r.hits.iter().map(|h| h.id.clone()).collect()
}

/// `views` with the hits of these ids removed and their lookups gone: what deleting them
/// must leave.
fn without(v: &Views, dead: &BTreeSet<String>, ids: &[String]) -> Views {
    let strip = |r: &View| -> View {
        (
            r.0.iter()
                .filter(|h| !dead.contains(&h.0))
                .cloned()
                .collect(),
            r.1,
            r.2,
        )
    };
    Views {
        posts: v.posts - dead.len() as u64,
        results: v.results.iter().map(strip).collect(),
        lookups: v
            .lookups
            .iter()
            .zip(ids)
            .map(|(l, id)| if dead.contains(id) { None } else { l.clone() })
            .collect(),
        neighbours: v
            .neighbours
            .iter()
            .zip(ids)
            .map(|(n, id)| {
                if dead.contains(id) {
                    None
                } else {
                    n.as_ref().map(strip)
                }
            })
            .collect(),
    }
}

/// Runs the CLI with string arguments.
fn cli(args: &[&str]) -> util::Run {
    util::textreuse(args.iter().map(OsString::from).collect::<Vec<_>>())
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// Sum of the sizes of every file in the index's segment directories.
fn segment_disk_bytes(dir: &Path) -> u64 {
    util::read_tree(dir)
        .iter()
        .filter(|(n, _)| n.starts_with("seg-"))
        .map(|(_, b)| b.len() as u64)
        .sum()
}

/// Asserts the directory holds exactly what the live manifest names: `CURRENT`, `LOCK`, the
/// manifest, the segment directories, and in each only its files and its deletion bitmap.
fn assert_clean(dir: &Path, what: &str) {
    let index = open(dir);
    let mut want: BTreeSet<String> = ["CURRENT", "LOCK"].iter().map(|s| s.to_string()).collect();
    want.insert(
        fs::read_to_string(dir.join("CURRENT"))
            .expect("reads CURRENT")
            .trim()
            .to_string(),
    );
    if let Some(c) = &index.manifest().clusters {
        want.insert(c.file.clone());
    }
    for s in index.segments() {
        want.insert(s.entry().dir_name());
        let mut files: BTreeSet<String> = s.entry().files.keys().cloned().collect();
        if let Some(d) = &s.entry().deleted {
            files.insert(d.file.clone());
        }
        let have: BTreeSet<String> = util::entries(&dir.join(s.entry().dir_name()))
            .into_iter()
            .collect();
        assert_eq!(
            have,
            files,
            "{what}: files of {} are not what the manifest names",
            s.entry().dir_name()
        );
    }
    let have: BTreeSet<String> = util::entries(dir).into_iter().collect();
    assert_eq!(have, want, "{what}: leftovers in the index directory");
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in util::read_tree(from) {
        let path = to.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, bytes).expect("copies a file");
    }
}

fn merge_all(dir: &Path) -> textreuse::index::MergeStats {
    merge(
        dir,
        &MergeOptions {
            max_segments: 1,
            ..MergeOptions::default()
        },
    )
    .expect("merges")
}

/// Appends posts through `IndexWriter` and commits.
fn append(dir: &Path, posts: &[RawPost], on_existing_id: OnExistingId) -> Vec<PostOutcome> {
    let mut w = IndexWriter::open(
        dir,
        BuildOptions {
            on_existing_id,
            ..BuildOptions::default()
        },
    )
    .expect("opens the writer");
    let out = w.add(posts).expect("adds");
    w.commit().expect("commits");
    out
}

/// Deletes through `IndexWriter` and commits; returns the ids not found.
fn delete(dir: &Path, ids: &[String]) -> Vec<String> {
    let mut w = IndexWriter::open(dir, BuildOptions::default()).expect("opens the writer");
    let missing = w.delete(ids).expect("deletes");
    w.commit().expect("commits");
    missing
}

fn segment_ids(index: &Index) -> Vec<u64> {
    index.segments().iter().map(|s| s.entry().id).collect()
}

// ---------------------------------------------------------------------------------------
// 1. Append equals building in one go; merge keeps the answers.
// ---------------------------------------------------------------------------------------

#[test]
fn append_then_merge_answers_like_one_build() {
    let (posts, base_queries) = corpus();
    let split = 1000;
    let queries = query_set(posts, base_queries, split);
    assert!(queries.len() >= 100, "{} queries", queries.len());
    let ids: Vec<String> = posts.iter().step_by(13).map(|p| p.id.clone()).collect();
    let tmp = tempfile::tempdir().expect("tempdir");

    // Library: one build vs build + IndexWriter append.
    let one = tmp.path().join("one");
    let (_, one_out) = util::build_lib(&one, posts, BuildOptions::default(), 5000);
    let want = views(&open(&one), &queries, &ids);
    assert!(
        want.results.iter().filter(|r| r.0.len() > 1).count() > 50,
        "the queries must find near copies"
    );

    let lib = tmp.path().join("lib");
    let (_, mut out) = util::build_lib(&lib, &posts[..split], BuildOptions::default(), 5000);
    let gen1 = open(&lib).manifest().generation;
    // IndexWriter keeps the index's fingerprint parameters (`params` is ignored).
    let mut w = IndexWriter::open(
        &lib,
        BuildOptions {
            params: textreuse::FingerprintParams {
                shingle: 5,
                ..Default::default()
            },
            ..BuildOptions::default()
        },
    )
    .expect("opens the writer");
    assert_eq!(
        w.fingerprinter().params(),
        open(&one).fingerprinter().params()
    );
    out.extend(w.add(&posts[split..]).expect("adds"));
    w.commit().expect("commits");
    assert_eq!(
        out, one_out,
        "outcomes of an append equal those of one build"
    );
    let appended = open(&lib);
    assert_eq!(
        appended.segments().len(),
        2,
        "an append writes a new segment"
    );
    assert_eq!(appended.manifest().generation, gen1 + 1);
    appended.verify().expect("verifies");
    assert_views_eq(
        &views(&appended, &queries, &ids),
        &want,
        &queries,
        &ids,
        "library append",
    );
    let m = merge_all(&lib);
    assert_eq!((m.segments_before, m.segments_after), (2, 1), "{m:?}");
    let merged = open(&lib);
    assert_eq!(merged.segments().len(), 1);
    merged.verify().expect("verifies after merge");
    assert_views_eq(
        &views(&merged, &queries, &ids),
        &want,
        &queries,
        &ids,
        "library append, merged",
    );
    // The old snapshot still answers after the merge removed its files.
    assert_views_eq(
        &views(&appended, &queries, &ids),
        &want,
        &queries,
        &ids,
        "snapshot held across the merge",
    );
    drop((appended, merged));
    assert_clean(&lib, "after merge");

    // IndexWriter on an empty directory creates the index.
    let fresh = tmp.path().join("fresh");
    let out = append(&fresh, posts, OnExistingId::Skip);
    assert_eq!(out, one_out);
    assert_views_eq(
        &views(&open(&fresh), &queries, &ids),
        &want,
        &queries,
        &ids,
        "IndexWriter into an empty directory",
    );

    // CLI: build A, build --append B, merge.
    let (a, b, ab) = (
        tmp.path().join("a.jsonl"),
        tmp.path().join("b.jsonl"),
        tmp.path().join("ab.jsonl"),
    );
    util::write_jsonl(&a, &posts[..split]);
    util::write_jsonl(&b, &posts[split..]);
    util::write_jsonl(&ab, posts);
    let cli_one = tmp.path().join("cli-one");
    util::cli_build(&ab, &cli_one, &["-q"]);
    assert_views_eq(
        &views(&open(&cli_one), &queries, &ids),
        &want,
        &queries,
        &ids,
        "CLI one build vs library one build",
    );
    let cli_app = tmp.path().join("cli-app");
    util::cli_build(&a, &cli_app, &["-q"]);
    // Fingerprint flags that differ from the index's are refused, and change nothing.
    let tree = util::read_tree(&cli_app);
    let r = cli(&[
        "build",
        "--append",
        "-q",
        "--shingle",
        "5",
        "--input",
        p(&b),
        "--index",
        p(&cli_app),
    ]);
    assert_eq!(r.code, 2, "append with other parameters: {r:?}");
    assert!(r.stderr.contains("fingerprint parameters"), "{}", r.stderr);
    assert_eq!(
        util::read_tree(&cli_app),
        tree,
        "a refused append changes nothing"
    );
    let r = util::cli_build(&b, &cli_app, &["-q", "--append", "--json"]);
    let summary: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
    assert_eq!(
        summary["indexed"].as_u64(),
        Some(
            one_out[split..]
                .iter()
                .filter(|o| **o == PostOutcome::Indexed)
                .count() as u64
        ),
        "{}",
        r.stdout
    );
    assert_eq!(open(&cli_app).segments().len(), 2);
    assert_views_eq(
        &views(&open(&cli_app), &queries, &ids),
        &want,
        &queries,
        &ids,
        "CLI build --append",
    );
    let r = cli(&[
        "merge",
        "--index",
        p(&cli_app),
        "--max-segments",
        "1",
        "--json",
    ]);
    assert_eq!(r.code, 0, "merge: {r:?}");
    let ms: Value = serde_json::from_str(r.stdout.trim()).expect("JSON merge summary");
    assert_eq!(ms["segments_after"].as_u64(), Some(1), "{}", r.stdout);
    let merged = open(&cli_app);
    assert_eq!(merged.segments().len(), 1);
    merged.verify().expect("verifies");
    assert_views_eq(
        &views(&merged, &queries, &ids),
        &want,
        &queries,
        &ids,
        "CLI merge",
    );
    // build --append --max-segments 1 merges right away.
    let cli_am = tmp.path().join("cli-append-merge");
    util::cli_build(&a, &cli_am, &["-q"]);
    util::cli_build(&b, &cli_am, &["-q", "--append", "--max-segments", "1"]);
    assert_eq!(open(&cli_am).segments().len(), 1);
    assert_views_eq(
        &views(&open(&cli_am), &queries, &ids),
        &want,
        &queries,
        &ids,
        "CLI build --append --max-segments 1",
    );
}

// ---------------------------------------------------------------------------------------
// 2. Delete, then merge.
// ---------------------------------------------------------------------------------------

#[test]
fn deleted_posts_are_gone_and_merge_drops_them() {
    let (posts, base_queries) = corpus();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    // Three segments: [0, 700), [700, 1300), [1300, ..) (the copies are in the last one).
    util::build_lib(&dir, &posts[..700], BuildOptions::default(), 5000);
    append(&dir, &posts[700..1300], OnExistingId::Skip);
    append(&dir, &posts[1300..], OnExistingId::Skip);
    let before_index = open(&dir);
    assert_eq!(before_index.segments().len(), 3);
    let seg_ids = segment_ids(&before_index);

    // Deleted: posts of the first and last segments only (the middle one stays whole),
    // among them originals whose copies stay and copies whose originals stay.
    let mut dead: Vec<String> = posts[..700]
        .iter()
        .step_by(7)
        .map(|p| p.id.clone())
        .collect();
    dead.extend(posts[1300..].iter().step_by(5).map(|p| p.id.clone()));
    let dead_set: BTreeSet<String> = dead.iter().cloned().collect();
    assert_eq!(dead.len(), dead_set.len());
    let mut queries = query_set(posts, base_queries, 1300);
    queries.extend(
        posts
            .iter()
            .filter(|p| dead_set.contains(&p.id))
            .step_by(3)
            .map(|p| p.text.clone()),
    );
    let mut ids: Vec<String> = dead.iter().step_by(2).cloned().collect();
    ids.extend(posts.iter().step_by(11).map(|p| p.id.clone()));
    let before = views(&before_index, &queries, &ids);
    // Some deleted posts must be hits of other queries, or the test proves little.
    let dead_hits = before
        .results
        .iter()
        .flat_map(|r| r.0.iter())
        .filter(|h| dead_set.contains(&h.0))
        .count();
    assert!(dead_hits > 100, "{dead_hits} hits of posts to delete");

    // Half through the library (with unknown ids and a repeat), half through the CLI.
    let (lib_half, cli_half) = dead.split_at(dead.len() / 2);
    let mut asked: Vec<String> = lib_half.to_vec();
    asked.push("no-such-id".into());
    asked.push(lib_half[0].clone());
    asked.push("".into());
    let missing = delete(&dir, &asked);
    assert_eq!(
        missing,
        vec!["no-such-id".to_string(), lib_half[0].clone(), String::new()],
        "delete returns the ids no live post has"
    );
    let ids_file = tmp.path().join("ids.txt");
    let (last, file_ids) = cli_half.split_last().expect("ids");
    fs::write(&ids_file, file_ids.join("\n") + "\n").expect("writes ids");
    let r = cli(&[
        "delete",
        "--index",
        p(&dir),
        "--ids",
        p(&ids_file),
        "--id",
        last,
        "--json",
    ]);
    assert_eq!(r.code, 0, "delete: {r:?}");
    let s: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
    assert_eq!(
        s["deleted"].as_u64(),
        Some(cli_half.len() as u64),
        "{}",
        r.stdout
    );
    assert_eq!(s["not_found"].as_u64(), Some(0), "{}", r.stdout);
    // Nothing left to delete: exit code 1.
    let r = cli(&[
        "delete",
        "--index",
        p(&dir),
        "--id",
        last,
        "--id",
        "no-such-id",
    ]);
    assert_eq!(r.code, 1, "deleting nothing: {r:?}");

    // The snapshot opened before still answers as before.
    assert_views_eq(
        &views(&before_index, &queries, &ids),
        &before,
        &queries,
        &ids,
        "snapshot across deletes",
    );
    drop(before_index);

    let index = open(&dir);
    index.verify().expect("verifies with deletion bitmaps");
    assert_eq!(index.stats().deleted, dead.len() as u64);
    let after = views(&index, &queries, &ids);
    let want = without(&before, &dead_set, &ids);
    assert_views_eq(&after, &want, &queries, &ids, "after delete");
    for id in &dead {
        assert!(
            index.post(id).expect("post").is_none(),
            "post({id}) after delete"
        );
        assert!(
            index
                .query_post(id, &QueryOptions::default())
                .expect("query_post")
                .is_none(),
            "query_post({id}) after delete"
        );
    }
    // A batch lookup never returns them either.
    for r in index.query_batch(&queries, &compare_opts()[0]) {
        let r = r.expect("query");
        assert!(hit_ids(&r).iter().all(|h| !dead_set.contains(h)));
    }
    // The same as building the live posts in one go.
    let live: Vec<RawPost> = posts
        .iter()
        .filter(|p| !dead_set.contains(&p.id))
        .cloned()
        .collect();
    let oracle = tmp.path().join("oracle");
    util::build_lib(&oracle, &live, BuildOptions::default(), 5000);
    let oracle_views = views(&open(&oracle), &queries, &ids);
    assert_views_eq(&after, &oracle_views, &queries, &ids, "delete vs one build");

    // Merge with max_segments = the segment count: the two segments with deletions are
    // rewritten alone, the middle one is kept.
    let bytes_before = index.stats().bytes;
    let disk_before = segment_disk_bytes(&dir);
    drop(index);
    let m = merge(
        &dir,
        &MergeOptions {
            max_segments: 3,
            ..MergeOptions::default()
        },
    )
    .expect("merges");
    assert_eq!(m.merged, vec![seg_ids[0], seg_ids[2]], "{m:?}");
    assert_eq!((m.segments_before, m.segments_after), (3, 3), "{m:?}");
    assert_eq!(m.posts_in - m.posts_out, dead.len() as u64, "{m:?}");
    let index = open(&dir);
    assert_eq!(
        segment_ids(&index)[1],
        seg_ids[1],
        "the middle segment is kept"
    );
    index.verify().expect("verifies after merge");
    let st = index.stats();
    assert_eq!(st.deleted, 0);
    assert_eq!(st.segments, 3);
    assert!(
        st.bytes < bytes_before,
        "index bytes must shrink: {bytes_before} -> {}",
        st.bytes
    );
    let disk = segment_disk_bytes(&dir);
    assert!(
        disk < disk_before,
        "disk bytes must shrink: {disk_before} -> {disk}"
    );
    assert_eq!(disk, st.bytes, "the disk holds exactly the live files");
    assert_views_eq(
        &views(&index, &queries, &ids),
        &want,
        &queries,
        &ids,
        "after merge (max_segments 3)",
    );
    for id in &dead {
        assert!(
            index.post(id).expect("post").is_none(),
            "post({id}) after merge"
        );
    }
    drop(index);
    assert_clean(&dir, "after merge (max_segments 3)");
    // Nothing to do now.
    let m = merge(
        &dir,
        &MergeOptions {
            max_segments: 3,
            ..MergeOptions::default()
        },
    )
    .expect("merges");
    assert!(m.merged.is_empty(), "{m:?}");

    let m = merge_all(&dir);
    assert_eq!(m.segments_after, 1, "{m:?}");
    let index = open(&dir);
    index.verify().expect("verifies");
    assert_eq!(index.stats().deleted, 0);
    assert_views_eq(
        &views(&index, &queries, &ids),
        &want,
        &queries,
        &ids,
        "after merge (max_segments 1)",
    );
    // Deleting a merged-away post finds nothing.
    assert_eq!(delete(&dir, &dead[..1]), dead[..1].to_vec());
    assert_clean(&dir, "after merge (max_segments 1)");
}

// ---------------------------------------------------------------------------------------
// 3. Replace and skip.
// ---------------------------------------------------------------------------------------

#[test]
fn replace_supersedes_and_skip_changes_nothing() {
    let (posts, base_queries) = corpus();
    let posts = &posts[..1500];
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    util::build_lib(&dir, &posts[..800], BuildOptions::default(), 5000);
    append(&dir, &posts[800..], OnExistingId::Skip);
    let fp = open(&dir).fingerprinter().clone();
    let tokens = |t: &str| {
        let mut s = textreuse::Scratch::new();
        fp.normalize(t, &mut s).tokens().count()
    };
    // Targets: long posts from both segments.
    let targets: Vec<&RawPost> = [100usize, 500, 900, 1400]
        .iter()
        .map(|&i| {
            posts[i..]
                .iter()
                .find(|p| tokens(&p.text) >= 12)
                .expect("a long post")
        })
        .collect();
    let mut rng = Rng::new(0xfeed);
    let new_text: Vec<String> = targets
        .iter()
        .map(|_| words(&mut rng, 25).join(" "))
        .collect();
    let mut queries: Vec<String> = base_queries.iter().step_by(4).cloned().collect();
    let first_target = queries.len();
    queries.extend(targets.iter().map(|p| p.text.clone()));
    queries.extend(new_text.iter().cloned());
    let ids: Vec<String> = targets
        .iter()
        .map(|p| p.id.clone())
        .chain(posts.iter().step_by(31).map(|p| p.id.clone()))
        .collect();
    let before = views(&open(&dir), &queries, &ids);
    let old_hits = before.results[first_target]
        .0
        .iter()
        .any(|h| h.0 == targets[0].id);
    assert!(old_hits, "the old text finds its post before the replace");

    // Library: the first two targets, and a new post.
    let batch = vec![
        RawPost {
            text: new_text[0].clone(),
            ..targets[0].clone()
        },
        RawPost {
            text: new_text[1].clone(),
            ..targets[1].clone()
        },
        post("brand-new", &words(&mut rng, 20).join(" "), "x", Some(5)),
    ];
    let out = append(&dir, &batch, OnExistingId::Replace);
    assert_eq!(
        out,
        vec![
            PostOutcome::Replaced,
            PostOutcome::Replaced,
            PostOutcome::Indexed
        ]
    );
    // CLI: the other two with --replace.
    let input = tmp.path().join("replace.jsonl");
    util::write_jsonl(
        &input,
        &[
            RawPost {
                text: new_text[2].clone(),
                ..targets[2].clone()
            },
            RawPost {
                text: new_text[3].clone(),
                ..targets[3].clone()
            },
        ],
    );
    let r = util::cli_build(&input, &dir, &["-q", "--append", "--replace", "--json"]);
    let s: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
    assert_eq!(s["replaced"].as_u64(), Some(2), "{}", r.stdout);

    let index = open(&dir);
    index.verify().expect("verifies");
    assert_eq!(index.num_posts(), before.posts + 1);
    assert_eq!(index.stats().deleted, 4);
    let opts = &compare_opts()[0];
    for (t, new) in targets.iter().zip(&new_text) {
        let old = index.query(&t.text, opts).expect("query");
        assert!(
            !hit_ids(&old).contains(&t.id),
            "the old text of {} still finds it: {:?}",
            t.id,
            hit_ids(&old)
        );
        let newr = index.query(new, opts).expect("query");
        let hit = newr.hits.iter().find(|h| h.id == t.id);
        assert_eq!(
            hit.map(|h| (h.similarity, h.text.as_deref())),
            Some((1.0, Some(new.as_str()))),
            "the new text finds {}",
            t.id
        );
        let got = index.post(&t.id).expect("post").expect("still indexed");
        assert_eq!(got.text.as_deref(), Some(new.as_str()));
        assert_eq!((got.account.as_str(), got.ts), (t.account.as_str(), t.ts));
    }
    // The same as building the edited corpus in one go.
    let mut edited: Vec<RawPost> = posts.to_vec();
    for (t, new) in targets.iter().zip(&new_text) {
        let e = edited.iter_mut().find(|p| p.id == t.id).expect("target");
        e.text = new.clone();
    }
    edited.push(batch[2].clone());
    let oracle = tmp.path().join("oracle");
    util::build_lib(&oracle, &edited, BuildOptions::default(), 5000);
    let replaced = views(&index, &queries, &ids);
    assert_views_eq(
        &replaced,
        &views(&open(&oracle), &queries, &ids),
        &queries,
        &ids,
        "replace vs one build of the edited posts",
    );

    // Skip: the same id with yet another text is a duplicate; nothing changes.
    let third = words(&mut rng, 25).join(" ");
    let gen = index.manifest().generation;
    let segments = index.segments().len();
    let out = append(
        &dir,
        &[RawPost {
            text: third.clone(),
            ..targets[0].clone()
        }],
        OnExistingId::Skip,
    );
    assert_eq!(out, vec![PostOutcome::DuplicateId]);
    let r = util::cli_build(&input, &dir, &["-q", "--append", "--json"]);
    let s: Value = serde_json::from_str(r.stdout.trim()).expect("JSON summary");
    assert_eq!(s["duplicate_ids"].as_u64(), Some(2), "{}", r.stdout);
    assert_eq!(s["indexed"].as_u64(), Some(0), "{}", r.stdout);
    let index = open(&dir);
    assert!(index.manifest().generation >= gen);
    assert_eq!(index.stats().deleted, 4);
    assert_eq!(
        index.segments().len(),
        segments,
        "skipped posts write no segment"
    );
    assert_views_eq(
        &views(&index, &queries, &ids),
        &replaced,
        &queries,
        &ids,
        "after skipped duplicates",
    );
    let r = index.query(&third, opts).expect("query");
    assert!(!hit_ids(&r).contains(&targets[0].id), "{:?}", hit_ids(&r));
    // And merged: the same.
    merge_all(&dir);
    assert_views_eq(
        &views(&open(&dir), &queries, &ids),
        &replaced,
        &queries,
        &ids,
        "replaced, merged",
    );
}

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
        let mut w = IndexWriter::open(&dir, BuildOptions::default()).expect("writer");
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
            let mut w = IndexWriter::open(&dir, BuildOptions::default()).expect("writer");
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
            Moment::NewSegmentFile(f) => new_dirs()
                .iter()
                .any(|n| list(dir.join(n)).any(|e| e.file_name().to_string_lossy().starts_with(f))),
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
        let (reached, finished, took) = run_and_kill(&["merge", "--index", p(&dir)], &dir, *moment);
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

// ---------------------------------------------------------------------------------------
// 6. One writer at a time.
// ---------------------------------------------------------------------------------------

fn assert_lock_error<T: std::fmt::Debug>(r: textreuse::Result<T>, what: &str) {
    match r {
        Err(e @ Error::IndexState { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("LOCK") || msg.contains("another writer"),
                "{what}: the error must name the lock: {msg}"
            );
        }
        other => panic!("{what}: expected a lock error (Error::IndexState), got {other:?}"),
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

    let mut first = IndexWriter::open(&dir, BuildOptions::default()).expect("first writer");
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
        IndexWriter::open(&dir, BuildOptions::default()),
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

    // Now every second writer gets through.
    let mut second = IndexWriter::open(&dir, BuildOptions::default()).expect("second writer");
    assert!(second.delete(&["8"]).expect("deletes").is_empty());
    second.commit().expect("commits");
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
    assert_eq!(index.num_posts(), n0 + added + appended - 3);
    for id in ["3", "7", "8"] {
        assert!(index.post(id).expect("post").is_none(), "{id}");
    }

    // A writer dropped without committing publishes nothing; what it wrote is removed by
    // the next writer.
    let gen = index.manifest().generation;
    let mut dropped = IndexWriter::open(&dir, BuildOptions::default()).expect("writer");
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

// ---------------------------------------------------------------------------------------
// 7. Clusters.
// ---------------------------------------------------------------------------------------

/// Clusters as sets of post ids.
fn cluster_sets(index: &Index) -> BTreeSet<BTreeSet<String>> {
    cluster_sets_with(index, &ClusterOptions::default())
}

fn cluster_sets_with(index: &Index, opts: &ClusterOptions) -> BTreeSet<BTreeSet<String>> {
    index
        .clusters(opts)
        .expect("clusters")
        .clusters
        .iter()
        .map(|c| c.posts.iter().cloned().collect())
        .collect()
}

/// A chain: `a` ~ `b` and `b` ~ `c` (Jaccard 0.6 each), `a` !~ `c` (0.33); plus a text
/// posted three times (`dup-*`) and a near copy of it posted twice (`var-*`).
fn cluster_extras() -> Vec<Vec<RawPost>> {
    let mut rng = Rng::new(0xc1a5);
    let w = words(&mut rng, 62);
    let chain = |i: usize| w[i * 10..i * 10 + 42].join(" ");
    let t = words(&mut rng, 30);
    let dup = t.join(" ");
    let var = format!("{} {}", t[..29].join(" "), "different");
    vec![
        vec![
            post("chain-a", &chain(0), "acc1", Some(100)),
            post("dup-0", &dup, "acc1", Some(10)),
        ],
        vec![
            post("chain-b", &chain(1), "acc2", Some(200)),
            post("dup-1", &dup, "acc2", Some(20)),
            post("var-0", &var, "acc2", Some(30)),
            post("var-1", &var, "acc3", Some(40)),
        ],
        vec![
            post("chain-c", &chain(2), "acc3", Some(300)),
            post("dup-2", &dup, "acc4", Some(50)),
        ],
    ]
}

/// The corpus in three parts, with the extras spread over them.
fn cluster_parts() -> Vec<Vec<RawPost>> {
    let posts = &corpus().0;
    let bounds = [0, 700, 1300, posts.len()];
    cluster_extras()
        .into_iter()
        .enumerate()
        .map(|(i, extra)| {
            let mut part = posts[bounds[i]..bounds[i + 1]].to_vec();
            part.extend(extra);
            part
        })
        .collect()
}

#[test]
fn clusters_do_not_depend_on_segments() {
    let parts = cluster_parts();
    let all: Vec<RawPost> = parts.concat();
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = tmp.path().join("one");
    util::build_lib(&one, &all, BuildOptions::default(), 5000);
    let segs = tmp.path().join("segs");
    for part in &parts {
        append(&segs, part, OnExistingId::Skip);
    }
    let want = cluster_sets(&open(&one));
    assert!(want.len() > 100, "{} clusters", want.len());
    let find = |sets: &BTreeSet<BTreeSet<String>>, id: &str| {
        sets.iter()
            .find(|c| c.contains(id))
            .cloned()
            .unwrap_or_default()
    };
    let chain: BTreeSet<String> = ["chain-a", "chain-b", "chain-c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        find(&want, "chain-a"),
        chain,
        "precondition: the chain is one cluster"
    );
    assert_eq!(
        find(&want, "dup-0").len(),
        5,
        "precondition: dup and var are one cluster"
    );

    let index = open(&segs);
    assert_eq!(index.segments().len(), 3);
    let got = cluster_sets(&index);
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(diff.is_empty(), "one build vs 3 segments differ: {diff:?}");
    drop(index);
    merge_all(&segs);
    let index = open(&segs);
    assert_eq!(index.segments().len(), 1);
    let got = cluster_sets(&index);
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(diff.is_empty(), "one build vs merged differ: {diff:?}");
}

/// Exact duplicates in different segments are one text: a cluster's text count and its
/// representative (the most frequent text) do not depend on segmentation, and a query
/// finds every copy at similarity 1.
#[test]
fn exact_duplicates_across_segments_are_one_text() {
    let parts = cluster_parts();
    let all: Vec<RawPost> = parts.concat();
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = tmp.path().join("one");
    util::build_lib(&one, &all, BuildOptions::default(), 5000);
    let segs = tmp.path().join("segs");
    for part in &parts {
        append(&segs, part, OnExistingId::Skip);
    }
    let describe = |index: &Index| {
        let r = index
            .clusters(&ClusterOptions::default())
            .expect("clusters");
        let c = r
            .clusters
            .iter()
            .find(|c| c.posts.iter().any(|p| p == "dup-0"))
            .expect("the dup cluster")
            .clone();
        (
            c.size,
            c.texts,
            c.accounts,
            c.earliest_post.clone(),
            c.representative_id.clone(),
            c.first_ts,
            c.last_ts,
        )
    };
    let want = describe(&open(&one));
    assert_eq!(
        (want.0, want.1, want.4.as_str()),
        (5, 2, "dup-0"),
        "precondition: {want:?}"
    );
    let dup_text = &cluster_extras()[0][1].text;
    let hits = |index: &Index| -> Vec<(String, f64)> {
        index
            .query(dup_text, &QueryOptions::default())
            .expect("query")
            .hits
            .iter()
            .map(|h| (h.id.clone(), h.similarity))
            .collect()
    };
    let want_hits = hits(&open(&one));
    assert_eq!(
        want_hits.iter().filter(|h| h.1 == 1.0).count(),
        3,
        "{want_hits:?}"
    );
    let index = open(&segs);
    assert_eq!(
        hits(&index),
        want_hits,
        "3 segments: hits of the duplicated text"
    );
    assert_eq!(describe(&index), want, "3 segments: the duplicate cluster");
    drop(index);
    merge_all(&segs);
    let index = open(&segs);
    assert_eq!(
        hits(&index),
        want_hits,
        "merged: hits of the duplicated text"
    );
    assert_eq!(describe(&index), want, "merged: the duplicate cluster");
}

#[test]
fn deleted_posts_leave_clusters() {
    let parts = cluster_parts();
    let tmp = tempfile::tempdir().expect("tempdir");
    let segs = tmp.path().join("segs");
    for part in &parts {
        append(&segs, part, OnExistingId::Skip);
    }
    let before = cluster_sets(&open(&segs));
    // Delete: the middle of the chain, a copy of the duplicated text, and one member of
    // many clusters (every third cluster's first post), and all members of some.
    let mut dead: BTreeSet<String> = ["chain-b", "dup-1"].iter().map(|s| s.to_string()).collect();
    for (i, c) in before.iter().enumerate() {
        if i % 3 == 0 {
            dead.insert(c.iter().next().expect("member").clone());
        }
        if i % 17 == 1 {
            dead.extend(c.iter().cloned());
        }
    }
    let dead_list: Vec<String> = dead.iter().cloned().collect();
    assert!(delete(&segs, &dead_list).is_empty());
    // The oracle: the live posts built in one go.
    let live: Vec<RawPost> = parts
        .concat()
        .into_iter()
        .filter(|p| !dead.contains(&p.id))
        .collect();
    let one = tmp.path().join("one");
    util::build_lib(&one, &live, BuildOptions::default(), 5000);
    let want = cluster_sets(&open(&one));
    let no_attach = ClusterOptions {
        attach_similarity: Some(0.0),
        ..ClusterOptions::default()
    };
    assert!(
        cluster_sets_with(&open(&one), &no_attach)
            .iter()
            .all(|c| !c.contains("chain-a") && !c.contains("chain-c")),
        "precondition: without chain-b, chain-a and chain-c are not linked"
    );
    // At 0.33, chain-a and chain-c are within attachment of each other: left alone by the
    // deletion, they pair up.
    assert!(
        want.iter()
            .any(|c| c.len() == 2 && c.contains("chain-a") && c.contains("chain-c")),
        "chain-a and chain-c attach to each other"
    );

    let index = open(&segs);
    let got = cluster_sets(&index);
    let in_clusters: Vec<&String> = got
        .iter()
        .flatten()
        .filter(|id| dead.contains(*id))
        .collect();
    assert!(
        in_clusters.is_empty(),
        "deleted posts in clusters: {in_clusters:?}"
    );
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(
        diff.is_empty(),
        "with deletions (3 segments) vs one build of the live posts: {diff:?}"
    );
    drop(index);
    merge_all(&segs);
    let got = cluster_sets(&open(&segs));
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(
        diff.is_empty(),
        "merged vs one build of the live posts: {diff:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Deletion bitmaps: verify, damage.
// ---------------------------------------------------------------------------------------

#[test]
fn deletion_bitmaps_verify_and_damage_is_an_error() {
    let sample = util::sample_posts();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    util::build_lib(&dir, &sample[..300], BuildOptions::default(), 5000);
    append(&dir, &sample[300..600], OnExistingId::Skip);
    append(&dir, &sample[600..900], OnExistingId::Skip);
    // Two rounds of deletions in every segment: the second writes new bitmaps.
    let first: Vec<String> = sample[..900]
        .iter()
        .step_by(10)
        .map(|p| p.id.clone())
        .collect();
    let second: Vec<String> = sample[5..900]
        .iter()
        .step_by(10)
        .map(|p| p.id.clone())
        .collect();
    assert!(delete(&dir, &first).is_empty());
    let gen_first = open(&dir).manifest().generation;
    assert!(delete(&dir, &second).is_empty());
    let index = open(&dir);
    index.verify().expect("an index with deletions verifies");
    assert_eq!(index.stats().deleted, (first.len() + second.len()) as u64);
    assert_eq!(index.num_posts(), 900 - (first.len() + second.len()) as u64);
    for s in index.segments() {
        let d = s
            .entry()
            .deleted
            .as_ref()
            .expect("every segment has deletions");
        assert_ne!(
            d.file,
            format!("deleted-{gen_first:06}"),
            "the second delete writes a new bitmap"
        );
    }
    let r = cli(&["verify", "--index", p(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    drop(index);
    assert_clean(&dir, "two rounds of deletions");
    // In memory too.
    let mem = Index::open_with(
        &dir,
        OpenOptions {
            access: Access::InMemory,
            prefetch: false,
        },
    )
    .expect("opens in memory");
    mem.verify().expect("verifies in memory");
    drop(mem);

    let bitmaps: Vec<(PathBuf, Vec<u8>)> = util::read_tree(&dir)
        .into_iter()
        .filter(|(n, _)| n.starts_with("seg-") && n.contains("/deleted-"))
        .map(|(n, b)| (dir.join(n), b))
        .collect();
    assert_eq!(bitmaps.len(), 3);
    let queries: Vec<String> = sample[..900]
        .iter()
        .step_by(90)
        .map(|p| p.text.clone())
        .collect();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut try_case = |what: String, access: Access, failures: &mut Vec<String>| {
        cases += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let index = match Index::open_with(
                &dir,
                OpenOptions {
                    access,
                    prefetch: true,
                },
            ) {
                Ok(i) => i,
                Err(_) => return "open failed".to_string(),
            };
            for q in &queries {
                let _ = index.query(q, &QueryOptions::default());
            }
            for id in ["0", "5", "11", "899"] {
                let _ = index.post(id);
                let _ = index.query_post(id, &QueryOptions::default());
            }
            let _ = index.stats();
            let _ = index.clusters(&ClusterOptions::default());
            match index.verify() {
                Ok(()) => "VERIFIED".to_string(),
                Err(_) => "verify failed".to_string(),
            }
        }));
        match outcome {
            Ok(s) if s == "VERIFIED" => {
                failures.push(format!("{what} ({access:?}): opened and verified"))
            }
            Ok(_) => {}
            Err(e) => failures.push(format!(
                "{what} ({access:?}): PANIC {}",
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    };
    for (path, orig) in &bitmaps {
        let name = path
            .strip_prefix(&dir)
            .expect("under dir")
            .display()
            .to_string();
        for off in 0..orig.len() {
            for mask in [0x01u8, 0x80] {
                let mut bad = orig.clone();
                bad[off] ^= mask;
                fs::write(path, &bad).expect("damages");
                let access = if (off + mask as usize).is_multiple_of(2) {
                    Access::Mmap
                } else {
                    Access::InMemory
                };
                try_case(
                    format!("{name}: byte {off} ^ {mask:#04x}"),
                    access,
                    &mut failures,
                );
            }
        }
        for cut in [0, 8, orig.len() / 2, orig.len() - 1] {
            fs::write(path, &orig[..cut]).expect("truncates");
            try_case(format!("{name}: cut at {cut}"), Access::Mmap, &mut failures);
        }
        fs::remove_file(path).expect("removes");
        try_case(format!("{name}: missing"), Access::Mmap, &mut failures);
        fs::write(path, orig).expect("restores");
    }
    // The CLI reports a damaged bitmap as an error.
    let (path, orig) = &bitmaps[1];
    let mut bad = orig.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x10;
    fs::write(path, &bad).expect("damages");
    let r = cli(&["verify", "--index", p(&dir)]);
    assert_eq!(r.code, 2, "verify of a damaged bitmap: {r:?}");
    fs::write(path, orig).expect("restores");
    open(&dir).verify().expect("restored");
    eprintln!("{cases} damaged-bitmap cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}
