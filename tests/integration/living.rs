//! Living indexes: append, delete, replace and merge.
//!
//! Every check compares real outputs: an index grown by appends (and shrunk by deletes,
//! then merged) must answer exactly like an index built in one go from the posts that are
//! live. The helpers here are shared with the other living-index tests: readers and the
//! lock (`concurrency`), SIGKILLed writers (`crash`), clusters (`clusters`) and damaged
//! deletion bitmaps (`damage`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;
use textreuse::index::{merge, BuildOptions, MergeOptions, OnExistingId, Post, PostOutcome};
use textreuse::input::RawPost;
use textreuse::{Index, IndexWriter, QueryOptions, QueryResult};

use crate::envelope::{Envelope, TEXT_MAGIC};
use crate::util::{self, Rng};

// ---------------------------------------------------------------------------------------
// Shared corpus, queries and views.
// ---------------------------------------------------------------------------------------

/// The `equivalence` corpus (1500 sample posts, then ~400 near and exact copies of 200 of
/// them) and its queries, computed once.
pub(crate) fn corpus() -> &'static (Vec<RawPost>, Vec<String>) {
    static C: OnceLock<(Vec<RawPost>, Vec<String>)> = OnceLock::new();
    C.get_or_init(crate::equivalence::corpus)
}

pub(crate) fn is_cjk(c: char) -> bool {
    ('\u{3400}'..='\u{9FFF}').contains(&c) || ('\u{3040}'..='\u{30FF}').contains(&c)
}

/// An edited copy of `text`: a word (or character) dropped and a phrase appended.
pub(crate) fn edit(text: &str, rng: &mut Rng) -> String {
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
pub(crate) fn word(rng: &mut Rng) -> String {
    let n = 4 + rng.below(5);
    (0..n)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

pub(crate) fn words(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| word(rng)).collect()
}

/// Letters for a number.
pub(crate) fn letters(mut n: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

pub(crate) fn post(id: &str, text: &str, account: &str, ts: Option<i64>) -> RawPost {
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
pub(crate) fn query_set(posts: &[RawPost], base: &[String], split: usize) -> Vec<String> {
    let mut q: Vec<String> = base.iter().step_by(3).cloned().collect();
    q.extend(posts[split..].iter().step_by(25).map(|p| p.text.clone()));
    let mut rng = Rng::new(0x11e);
    q.extend(posts.iter().step_by(97).map(|p| edit(&p.text, &mut rng)));
    q
}

/// The options answers are compared under: near copies (0.3) and the default (0.5).
pub(crate) fn compare_opts() -> [QueryOptions; 2] {
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

pub(crate) fn post_view(p: &Post) -> PostView {
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
pub(crate) struct Views {
    pub(crate) posts: u64,
    pub(crate) results: Vec<View>,
    pub(crate) lookups: Vec<Option<PostView>>,
    pub(crate) neighbours: Vec<Option<View>>,
}

pub(crate) fn views(index: &Index, queries: &[String], ids: &[String]) -> Views {
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
pub(crate) fn assert_views_eq(
    got: &Views,
    want: &Views,
    queries: &[String],
    ids: &[String],
    what: &str,
) {
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

pub(crate) fn open(dir: &Path) -> Index {
    Index::open(dir).unwrap_or_else(|e| panic!("{}: the index opens: {e}", dir.display()))
}

/// Hit ids of a query result.
pub(crate) fn hit_ids(r: &QueryResult) -> Vec<String> {
    r.hits.iter().map(|h| h.id.clone()).collect()
}

/// `views` with the hits of these ids removed and their lookups gone: what deleting them
/// must leave.
pub(crate) fn without(v: &Views, dead: &BTreeSet<String>, ids: &[String]) -> Views {
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
pub(crate) fn cli(args: &[&str]) -> util::Run {
    util::textreuse(args.iter().map(OsString::from).collect::<Vec<_>>())
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// Sum of the sizes of every file in the index's segment directories.
pub(crate) fn segment_disk_bytes(dir: &Path) -> u64 {
    util::read_tree(dir)
        .iter()
        .filter(|(n, _)| n.starts_with("seg-"))
        .map(|(_, b)| b.len() as u64)
        .sum()
}

/// Asserts the directory holds exactly what the live manifest names: `CURRENT`, `LOCK`, the
/// manifest, the segment directories, and in each only its files and its deletion bitmap.
pub(crate) fn assert_clean(dir: &Path, what: &str) {
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

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in util::read_tree(from) {
        let path = to.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, bytes).expect("copies a file");
    }
}

pub(crate) fn merge_all(dir: &Path) -> textreuse::index::MergeStats {
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
pub(crate) fn append(
    dir: &Path,
    posts: &[RawPost],
    on_existing_id: OnExistingId,
) -> Vec<PostOutcome> {
    let mut w = IndexWriter::open_with(
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
pub(crate) fn delete(dir: &Path, ids: &[String]) -> Vec<String> {
    let mut w = IndexWriter::open_with(dir, BuildOptions::default()).expect("opens the writer");
    let missing = w.delete(ids).expect("deletes");
    w.commit().expect("commits");
    missing
}

pub(crate) fn segment_ids(index: &Index) -> Vec<u64> {
    index.segments().iter().map(|s| s.entry().id).collect()
}

// ---------------------------------------------------------------------------------------
// 1. Append equals building in one go; merge keeps the answers.
// ---------------------------------------------------------------------------------------

#[test]
pub(crate) fn append_then_merge_answers_like_one_build() {
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
    let mut w = IndexWriter::open_with(
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
    // The writer stays open (and holds the lock) after a commit.
    drop(w);
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
pub(crate) fn deleted_posts_are_gone_and_merge_drops_them() {
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
pub(crate) fn replace_supersedes_and_skip_changes_nothing() {
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
// Stored texts across segments: one build, one dictionary; a merge copies or recompresses.
// ---------------------------------------------------------------------------------------

/// The `dictionary` section of each segment's text file, in segment order.
fn text_dicts(index: &Index) -> Vec<Vec<u8>> {
    index
        .segments()
        .iter()
        .map(|s| {
            let path = index.dir().join(s.entry().dir_name()).join("text");
            let bytes = fs::read(&path).expect("reads the text file");
            let env = Envelope::parse(&path, &bytes, TEXT_MAGIC);
            bytes[env.sections[3].clone()].to_vec()
        })
        .collect()
}

/// Asserts that every post of `posts` reads back with its own text.
fn assert_texts(index: &Index, posts: &[RawPost], what: &str) {
    for p in posts {
        let got = index
            .post(&p.id)
            .expect("reads the post")
            .unwrap_or_else(|| panic!("{what}: post {} is missing", p.id));
        assert_eq!(
            got.text.as_deref(),
            Some(p.text.as_str()),
            "{what}: {}",
            p.id
        );
    }
}

#[test]
fn a_builds_segments_share_one_text_dictionary_that_its_merge_keeps() {
    // Three segments of 1,000 posts (enough to train a dictionary): a post whose account
    // name is 8 MiB fills the smallest budget, so the add that ends with it flushes.
    let posts = util::sample_posts();
    assert_eq!(posts.len(), 3000);
    let ballast = |n: usize| RawPost {
        id: format!("ballast-{n}"),
        text: format!("ballast {} xqzzy wvvuk", ["alpha", "beta"][n]),
        account: "a".repeat(8 << 20),
        platform: "ballast".into(),
        ts: None,
        line: 0,
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let many = tmp.path().join("many");
    let mut b = textreuse::index::IndexBuilder::create(&many, util::small_budget())
        .expect("starts the build");
    let mut indexed = Vec::new();
    for (i, chunk) in posts.chunks(1000).enumerate() {
        let mut batch = chunk.to_vec();
        if i < 2 {
            batch.push(ballast(i));
        }
        let out = b.add(&batch).expect("adds posts");
        indexed.extend(
            batch
                .into_iter()
                .zip(out)
                .filter(|(_, o)| *o == PostOutcome::Indexed)
                .map(|(p, _)| p),
        );
    }
    assert_eq!(b.finish().expect("publishes").segments, 3);
    assert!(indexed.len() > 2900, "{} posts indexed", indexed.len());

    let built = open(&many);
    let dicts = text_dicts(&built);
    assert_eq!(dicts.len(), 3);
    assert!(
        !dicts[0].is_empty(),
        "the first segment trains a dictionary"
    );
    assert!(
        dicts.iter().all(|d| *d == dicts[0]),
        "every segment of a build has the first segment's dictionary"
    );
    assert_texts(&built, &indexed, "three segments");
    let queries: Vec<String> = posts.iter().step_by(7).map(|p| p.text.clone()).collect();
    let want = views(&built, &queries, &[]);
    drop(built);

    // The merge copies the frames: same dictionary, same texts, same answers.
    let m = merge_all(&many);
    assert_eq!((m.segments_before, m.segments_after), (3, 1), "{m:?}");
    let merged = open(&many);
    merged.verify().expect("verifies after merge");
    assert_eq!(text_dicts(&merged), vec![dicts[0].clone()]);
    assert_texts(&merged, &indexed, "merged");
    assert_views_eq(
        &views(&merged, &queries, &[]),
        &want,
        &queries,
        &[],
        "merged",
    );
    drop(merged);

    // Appended by another writer, the new segment trains its own dictionary, and the merge
    // recompresses with one trained anew (the texts read back the same).
    let other: Vec<RawPost> = posts
        .iter()
        .take(1500)
        .map(|p| RawPost {
            id: format!("again-{}", p.id),
            ..p.clone()
        })
        .collect();
    let out = append(&many, &other, OnExistingId::Skip);
    let appended: Vec<RawPost> = other
        .into_iter()
        .zip(out)
        .filter(|(_, o)| *o == PostOutcome::Indexed)
        .map(|(p, _)| p)
        .collect();
    let two = open(&many);
    let dicts2 = text_dicts(&two);
    assert_eq!(dicts2.len(), 2);
    assert_eq!(dicts2[0], dicts[0]);
    assert!(
        !dicts2[1].is_empty() && dicts2[1] != dicts[0],
        "an append trains its own dictionary"
    );
    drop(two);
    merge_all(&many);
    let remerged = open(&many);
    remerged.verify().expect("verifies after merge");
    let dicts3 = text_dicts(&remerged);
    assert_eq!(dicts3.len(), 1);
    assert!(
        !dicts3[0].is_empty() && dicts3[0] != dicts[0] && dicts3[0] != dicts2[1],
        "a merge of segments with different dictionaries trains a new one"
    );
    assert_texts(&remerged, &indexed, "remerged");
    assert_texts(&remerged, &appended, "remerged, appended");
}

#[test]
fn segments_too_small_for_a_dictionary_merge_into_one_with_a_dictionary() {
    // Three segments of 600 posts: too few to train a dictionary each, so the merge
    // recompresses them and trains one on their 1,800 posts together.
    let posts = util::sample_posts();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("small");
    let mut b = textreuse::index::IndexBuilder::create(&dir, util::small_budget())
        .expect("starts the build");
    let mut indexed = Vec::new();
    for (i, chunk) in posts[..1800].chunks(600).enumerate() {
        let mut batch = chunk.to_vec();
        if i < 2 {
            batch.push(RawPost {
                id: format!("ballast-{i}"),
                text: format!("ballast {} xqzzy wvvuk", ["alpha", "beta"][i]),
                account: "a".repeat(8 << 20),
                platform: "ballast".into(),
                ts: None,
                line: 0,
            });
        }
        let out = b.add(&batch).expect("adds posts");
        indexed.extend(
            batch
                .into_iter()
                .zip(out)
                .filter(|(_, o)| *o == PostOutcome::Indexed)
                .map(|(p, _)| p),
        );
    }
    assert_eq!(b.finish().expect("publishes").segments, 3);
    let built = open(&dir);
    assert_eq!(text_dicts(&built), vec![Vec::<u8>::new(); 3]);
    drop(built);
    merge_all(&dir);
    let merged = open(&dir);
    merged.verify().expect("verifies after merge");
    let dicts = text_dicts(&merged);
    assert!(
        dicts.len() == 1 && !dicts[0].is_empty(),
        "the merge trains a dictionary on the sources' texts together"
    );
    assert_texts(&merged, &indexed, "merged");
}
