//! A damaged index never makes the reader panic: the `index_open` harness.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/index_open.rs` (nightly) and the stable
//! driver `tests/integration/fuzz_replay.rs`, which replays `regressions/index_open` and
//! generated mutations in CI.
//!
//! A small valid index (400 posts of `data/sample.jsonl` with duplicates and near-copies, 4 of
//! them deleted, stored texts, a saved cluster assignment) is built once into a temporary
//! directory. Each input damages one of its files (the deletion bitmap among them) in a
//! working copy, then the index is opened memory-mapped and in memory, and both are queried
//! (plain, unfiltered and with cluster expansion), looked up by id, clustered (when the input
//! asks), counted and verified. Nothing may panic, both must give identical answers, and
//! damage the manifest does not know about must make `verify` fail.
//!
//! Input: `[file, flags, payload...]`.
//! - `file` (mod the number of files) picks `CURRENT`, the manifest, the clusters file or a
//!   segment file.
//! - `flags` bit 0: the payload replaces the file; else it is a list of 5-byte patches
//!   `(offset u32 LE, byte)`, offsets taken modulo the file's length.
//! - bit 1: recompute the envelope header checksum afterwards (so damage to the section
//!   table reaches the bounds checks behind it).
//! - bit 2: vouch for the damage in the manifest: write the file's new length and xxh3 into
//!   its entry, or, for a damaged manifest that still parses, recompute the manifest's own
//!   checksum, so damage gets past the checks at open (and `verify` cannot be expected to
//!   see it). Not for `ids.fst` unless `FUZZ_FST` is set: the `fst` crate panics on crafted
//!   maps, which only the checksums keep out.
//! - bit 3: also run the clustering self-join (three quarters of the time of a run).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use textreuse::cluster::ClusterOptions;
use textreuse::index::{Access, BuildOptions, IndexBuilder, IndexWriter, Manifest, OpenOptions};
use textreuse::input::RawPost;
use textreuse::{Index, QueryOptions};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

const SAMPLE: &str = include_str!("../../data/sample.jsonl");
const SEGMENT: &str = "seg-000001/";

struct Fixture {
    /// Every file of the pristine index, by path relative to the index directory.
    pristine: Vec<(String, Vec<u8>)>,
    /// The working copy that inputs damage.
    work: PathBuf,
    /// Files of the working copy that differ from the pristine ones.
    dirty: Vec<usize>,
    /// The position of the manifest in `pristine`.
    manifest: usize,
    queries: Vec<String>,
    ids: Vec<String>,
}

/// The working directory of this process. libFuzzer ends with `exit`, which runs no
/// destructor, so a `TempDir` would stay behind: instead each process works in a directory
/// named after its pid and removes those of processes that are gone.
fn work_dir() -> PathBuf {
    const PREFIX: &str = "textreuse-fuzz-index_open-";
    let tmp = std::env::temp_dir();
    if let Ok(entries) = fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(PREFIX) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn sample_posts() -> Vec<RawPost> {
    let mut posts: Vec<RawPost> = SAMPLE
        .lines()
        .take(240)
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).expect("sample is JSONL");
            let s = |k: &str| match &v[k] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            RawPost {
                id: s("id"),
                text: s("text"),
                account: if i == 7 { String::new() } else { s("account") },
                platform: s("platform"),
                ts: if i == 9 { None } else { v["ts"].as_i64() },
                line: i as u64 + 1,
            }
        })
        .collect();
    for i in 0..80 {
        let p = &posts[i];
        posts.push(RawPost {
            id: format!("{}-dup", p.id),
            text: format!("{} #dup{i}", p.text),
            ..p.clone()
        });
    }
    for i in 80..160 {
        let p = &posts[i];
        let mut text = p.text.clone();
        text.pop();
        posts.push(RawPost {
            id: format!("{}-near", p.id),
            text,
            ..p.clone()
        });
    }
    posts
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in fs::read_dir(dir).expect("read index dir") {
        let path = e.expect("dir entry").path();
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.file_name().is_some_and(|n| n != "LOCK") {
            let rel = path.strip_prefix(root).expect("inside root");
            out.push((
                rel.to_string_lossy().into_owned(),
                fs::read(&path).expect("read"),
            ));
        }
    }
}

fn fixture() -> &'static Mutex<Fixture> {
    static F: OnceLock<Mutex<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let pristine_dir = tmp.path().join("pristine");
        let opts = BuildOptions {
            memory_budget: 16 << 20,
            ..BuildOptions::default()
        };
        let posts = sample_posts();
        let mut b = IndexBuilder::create(&pristine_dir, opts).expect("create");
        b.add(&posts).expect("add");
        b.finish().expect("finish");
        // Some posts deleted, so the deletion bitmap is damaged too.
        let mut w = IndexWriter::open_with(&pristine_dir, BuildOptions::default()).expect("writer");
        let dead: Vec<String> = [10, 50, 123, 301]
            .iter()
            .map(|&i| posts[i].id.clone())
            .collect();
        assert!(w.delete(&dead).expect("delete").is_empty());
        w.commit().expect("commit deletions");
        drop(w); // The writer holds the lock until dropped.
        let ix = Index::open(&pristine_dir).expect("open pristine index");
        let copts = ClusterOptions::default();
        let report = ix.clusters(&copts).expect("cluster pristine index");
        ix.save_clusters(&report, &copts).expect("save clusters");
        drop(ix);
        let mut pristine = Vec::new();
        read_tree(&pristine_dir, &pristine_dir, &mut pristine);
        pristine.sort();
        drop(tmp);
        let work = work_dir();
        for (rel, bytes) in &pristine {
            let p = work.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, bytes).expect("write");
        }
        let queries = [0, 85, 200, 300]
            .iter()
            .map(|&i| posts[i].text.clone())
            .chain(["🎉 123 #tag".to_owned()])
            .collect();
        let ids = vec![
            posts[3].id.clone(),
            posts[390].id.clone(),
            "no such id".to_owned(),
        ];
        let current = pristine
            .iter()
            .find(|(r, _)| r == "CURRENT")
            .map(|(_, b)| String::from_utf8_lossy(b).trim().to_owned())
            .expect("CURRENT");
        let manifest = pristine
            .iter()
            .position(|(r, _)| *r == current)
            .expect("the manifest CURRENT names");
        assert!(pristine.iter().any(|(r, _)| r.starts_with("CLUSTERS-")));
        assert!(pristine.iter().any(|(r, _)| r.contains("/deleted-")));
        Mutex::new(Fixture {
            pristine,
            work,
            dirty: Vec::new(),
            manifest,
            queries,
            ids,
        })
    })
}

/// The fixture's files (path relative to the index directory, length), in the order the
/// input's first byte picks them.
pub fn files() -> Vec<(String, usize)> {
    let f = fixture().lock().unwrap_or_else(|e| e.into_inner());
    f.pristine
        .iter()
        .map(|(r, b)| (r.clone(), b.len()))
        .collect()
}

/// Makes the envelope's header checksum match its (damaged) header and section table.
fn fix_envelope(bytes: &mut [u8]) {
    if bytes.len() < 24 {
        return;
    }
    let count = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let Some(end) = count.checked_mul(32).and_then(|n| n.checked_add(24)) else {
        return;
    };
    if end > bytes.len() {
        return;
    }
    let mut h = Xxh3::new();
    h.update(&bytes[..16]);
    h.update(&bytes[24..end]);
    bytes[16..24].copy_from_slice(&h.digest().to_le_bytes());
}

/// Sets `m.checksum` as a writer publishing a manifest does: xxh3-64 of the compact JSON of the
/// manifest with an empty checksum.
fn resum(m: &mut Manifest) {
    m.checksum.clear();
    let json = serde_json::to_vec(&*m).expect("serialize manifest");
    m.checksum = format!("{:016x}", xxh3_64(&json));
}

/// The pristine manifest with the entry of file `rel` describing `bytes`, re-checksummed.
fn vouch(manifest: &[u8], rel: &str, bytes: &[u8]) -> Vec<u8> {
    let mut m: Manifest = serde_json::from_slice(manifest).expect("pristine manifest");
    let (len, xxh3) = (bytes.len() as u64, format!("{:016x}", xxh3_64(bytes)));
    if let Some(d) = m.segments[0]
        .deleted
        .as_mut()
        .filter(|d| rel.strip_prefix(SEGMENT) == Some(d.file.as_str()))
    {
        (d.len, d.xxh3) = (len, xxh3);
    } else if let Some(name) = rel.strip_prefix(SEGMENT) {
        let e = m.segments[0].files.get_mut(name).expect("listed file");
        (e.len, e.xxh3) = (len, xxh3);
    } else if let Some(c) = m.clusters.as_mut().filter(|c| c.file == rel) {
        (c.len, c.xxh3) = (len, xxh3);
    }
    resum(&mut m);
    serde_json::to_vec_pretty(&m).expect("serialize manifest")
}

/// Everything a reader does, as text, for comparing two readers.
fn exercise(ix: &Index, queries: &[String], ids: &[String], cluster: bool) -> Vec<String> {
    let all = QueryOptions {
        min_similarity: 0.0,
        max_bucket: 3,
        with_text: false,
        limit: 5,
        ..QueryOptions::default()
    };
    let expand = QueryOptions {
        expand: true,
        ..QueryOptions::default()
    };
    let mut out = vec![format!("{:?}", ix.stats())];
    for q in queries {
        out.push(format!("{:?}", ix.query(q, &QueryOptions::default())));
        out.push(format!("{:?}", ix.query(q, &all)));
        out.push(format!("{:?}", ix.query(q, &expand)));
    }
    if cluster {
        out.push(format!("{:?}", ix.clusters(&ClusterOptions::default())));
    }
    for id in ids {
        out.push(format!("{:?}", ix.post(id)));
        out.push(format!("{:?}", ix.query_post(id, &QueryOptions::default())));
    }
    out.push(format!("{:?}", ix.verify()));
    out
}

/// Runs one input: damages one file of the working copy, opens and exercises it.
///
/// # Panics
/// When the reader panicked or the checks above do not hold (the point of the harness).
pub fn run(data: &[u8]) {
    let [file, flags, payload @ ..] = data else {
        return;
    };
    let mut guard = fixture().lock().unwrap_or_else(|e| e.into_inner());
    let f = &mut *guard;
    for i in f.dirty.drain(..) {
        let (rel, bytes) = &f.pristine[i];
        fs::write(f.work.join(rel), bytes).expect("restore");
    }
    let target = *file as usize % f.pristine.len();
    let (rel, pristine) = f.pristine[target].clone();
    let mut bytes = if flags & 1 == 1 {
        payload.to_vec()
    } else {
        let mut b = pristine.clone();
        for p in payload.chunks_exact(5) {
            if !b.is_empty() {
                let off = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize % b.len();
                b[off] = p[4];
            }
        }
        b
    };
    let segment_file = rel.strip_prefix(SEGMENT);
    let is_manifest = target == f.manifest;
    let envelope = segment_file.is_some_and(|n| n != "ids.fst") || rel.starts_with("CLUSTERS-");
    if flags & 2 == 2 && envelope {
        fix_envelope(&mut bytes);
    }
    let fst = segment_file == Some("ids.fst") && std::env::var_os("FUZZ_FST").is_none();
    let vouched = flags & 4 == 4 && !fst;
    if vouched && is_manifest {
        if let Ok(mut m) = serde_json::from_slice::<Manifest>(&bytes) {
            resum(&mut m);
            bytes = serde_json::to_vec_pretty(&m).expect("serialize manifest");
        }
    }
    fs::write(f.work.join(&rel), &bytes).expect("write damaged file");
    f.dirty.push(target);
    // A file the manifest lists, damaged behind its back: `verify` must notice.
    let listed = segment_file.is_some() || rel.starts_with("CLUSTERS-");
    if vouched && listed {
        let fixed = vouch(&f.pristine[f.manifest].1, &rel, &bytes);
        fs::write(f.work.join(&f.pristine[f.manifest].0), fixed).expect("write manifest");
        f.dirty.push(f.manifest);
    }

    let mapped = Index::open(&f.work);
    let in_memory = Index::open_with(
        &f.work,
        OpenOptions {
            access: Access::InMemory,
            ..OpenOptions::default()
        },
    );
    match (&mapped, &in_memory) {
        (Ok(a), Ok(b)) => {
            let ra = exercise(a, &f.queries, &f.ids, flags & 8 == 8);
            let rb = exercise(b, &f.queries, &f.ids, flags & 8 == 8);
            assert_eq!(ra, rb, "memory-mapped and in-memory readers disagree");
            if listed && bytes != pristine && !vouched {
                assert!(a.verify().is_err(), "verify missed damage to {rel}");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!(
            "one reader opened, the other did not: {:?} / {:?}",
            mapped.as_ref().err(),
            in_memory.as_ref().err()
        ),
    }
}
