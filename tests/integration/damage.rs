//! Damaged indexes: no damage may cause a panic, and checksums catch every flipped byte.
//!
//! A small index is built once. Then, for every file it holds (each segment file, the
//! manifest and `CURRENT`), the file is truncated at many offsets and bytes are flipped in
//! its header, section table and every section; after each damage, `Index::open`, lookups
//! and `verify` must return (any `Ok` or `Err`) without panicking, and a flipped byte in a
//! segment file must make `open` or `verify` fail. The file is restored between cases.
//!
//! Two modes: *raw* damage (the manifest still records the original lengths and checksums,
//! as after bit rot or a torn copy), and *consistent* damage (the manifest is rewritten to
//! the damaged file's length and whole-file checksum, so the reader's own decoding and the
//! per-section checksums are what stand between the bytes and a panic).

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde_json::Value;
use textreuse::index::format::Envelope;
use textreuse::index::segment::{BANDS_MAGIC, POSTS_MAGIC, SIGS_MAGIC, TEXT_MAGIC};
use textreuse::index::{Access, BuildOptions, Index, OpenOptions};
use textreuse::input::RawPost;
use textreuse::QueryOptions;

use crate::util;

/// A pristine index and what to ask it.
struct Pristine {
    _tmp: tempfile::TempDir,
    /// The working copy that cases damage and restore.
    work: PathBuf,
    /// Every file of the index (relative path) and its pristine bytes.
    files: Vec<(String, Vec<u8>)>,
    manifest_name: String,
    queries: Vec<String>,
    ids: Vec<String>,
}

fn pristine() -> Pristine {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("index");
    let sample = util::sample_posts();
    // Over 1,000 posts, so the text file carries a trained dictionary to damage.
    let mut posts: Vec<RawPost> = sample[..1000].to_vec();
    // Exact duplicates under other ids, so contents hold several posts.
    for (i, p) in sample[..50].iter().enumerate() {
        posts.push(RawPost {
            id: format!("dup-{i}"),
            ..p.clone()
        });
    }
    util::build_lib(&work, &posts, BuildOptions::default(), 1000);
    let files: Vec<(String, Vec<u8>)> = util::read_tree(&work)
        .into_iter()
        .filter(|(name, _)| name != "LOCK")
        .collect();
    let manifest_name = fs::read_to_string(work.join("CURRENT"))
        .expect("reads CURRENT")
        .trim()
        .to_string();
    Pristine {
        _tmp: tmp,
        work,
        files,
        manifest_name,
        queries: vec![
            sample[3].text.clone(),
            sample[40].text.clone(),
            sample[940].text.clone(),
        ],
        ids: vec!["dup-7".into(), "999".into(), "no-such-id".into()],
    }
}

/// What a damaged index did.
#[derive(Debug)]
enum Outcome {
    /// `Index::open` failed.
    OpenFailed,
    /// It opened; `verify` failed or not.
    Opened { verify_failed: bool },
    /// Something panicked.
    Panicked(String),
}

/// Opens the index and runs every kind of lookup, then `verify`, catching panics.
fn exercise(p: &Pristine, access: Access) -> Outcome {
    let run = AssertUnwindSafe(|| {
        let index = match Index::open_with(
            &p.work,
            OpenOptions {
                access,
                prefetch: true,
            },
        ) {
            Ok(i) => i,
            Err(_) => return Outcome::OpenFailed,
        };
        let wide = QueryOptions {
            min_similarity: 0.0,
            max_bucket: usize::MAX,
            ..QueryOptions::default()
        };
        let _ = index.query(&p.queries[0], &QueryOptions::default());
        let evidence = QueryOptions {
            evidence: true,
            ..wide.clone()
        };
        let containment = QueryOptions {
            containment: Some(0.5),
            ..QueryOptions::default()
        };
        for q in &p.queries {
            let _ = index.query(q, &wide);
            let _ = index.query(q, &evidence);
            let _ = index.query(q, &containment);
        }
        for id in &p.ids {
            let _ = index.post(id);
            let _ = index.query_post(id, &wide);
        }
        let _ = index.stats();
        Outcome::Opened {
            verify_failed: index.verify().is_err(),
        }
    });
    match catch_unwind(run) {
        Ok(o) => o,
        Err(e) => Outcome::Panicked(
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// The magic of an envelope file, by name.
fn magic(name: &str) -> Option<(&'static [u8; 8], &'static str)> {
    match name.rsplit('/').next()? {
        "bands" => Some((BANDS_MAGIC, "band table")),
        "sigs" => Some((SIGS_MAGIC, "signature")),
        "posts" => Some((POSTS_MAGIC, "posts")),
        "text" => Some((TEXT_MAGIC, "text")),
        _ => None,
    }
}

/// Byte ranges of an envelope: the header and table, then each section.
struct Layout {
    table_end: usize,
    sections: Vec<std::ops::Range<usize>>,
}

fn layout(name: &str, bytes: &[u8]) -> Option<Layout> {
    let (m, kind) = magic(name)?;
    let env = Envelope::parse(Path::new(name), bytes, m, kind).expect("pristine files parse");
    Some(Layout {
        table_end: 24 + 32 * env.sections.len(),
        sections: env.sections.iter().map(|s| s.range.clone()).collect(),
    })
}

/// Truncation offsets for a file of `len` bytes.
fn cut_points(len: usize, lay: Option<&Layout>) -> Vec<usize> {
    let mut v = vec![0, 1, 7, 8, 12, 16, 23, 24, len / 2, len.saturating_sub(1)];
    if let Some(l) = lay {
        v.extend([l.table_end - 1, l.table_end]);
        for s in &l.sections {
            v.extend([s.start, s.start + s.len() / 2, s.end.saturating_sub(1)]);
        }
    }
    v.retain(|&o| o < len);
    v.sort_unstable();
    v.dedup();
    v
}

/// Positions to flip, and whether each lies in a checksummed region (header, table or a
/// section; padding between sections is covered only by the whole-file checksum).
fn flip_points(len: usize, lay: Option<&Layout>) -> Vec<(usize, bool)> {
    let mut v = Vec::new();
    match lay {
        Some(l) => {
            // Every byte of the header; in each table entry, the kind, the reserved word,
            // the lowest and highest bytes of the offset and length, and the checksum.
            v.extend((0..24).map(|i| (i, true)));
            for e in (24..l.table_end).step_by(32) {
                for o in [0, 4, 8, 9, 15, 16, 17, 23, 24, 31] {
                    v.push((e + o, true));
                }
            }
            for s in &l.sections {
                if !s.is_empty() {
                    for o in [
                        s.start,
                        s.start + s.len() / 3,
                        s.start + s.len() / 2,
                        s.end - 1,
                    ] {
                        v.push((o, true));
                    }
                }
            }
            // Padding before each section.
            let mut prev = l.table_end;
            for s in &l.sections {
                v.extend((prev..s.start).map(|i| (i, false)));
                prev = s.end;
            }
        }
        None => {
            let step = (len / 48).max(1);
            v.extend((0..len).step_by(step).map(|i| (i, true)));
            v.extend((len.saturating_sub(8)..len).map(|i| (i, true)));
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Rewrites the manifest so that segment file `name` has `bytes`' length and checksum.
fn patched_manifest(p: &Pristine, name: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let (seg, file) = name.split_once('/')?;
    let pristine = &p.files.iter().find(|(n, _)| *n == p.manifest_name)?.1;
    let mut m: Value = serde_json::from_slice(pristine).expect("the manifest is JSON");
    for s in m["segments"].as_array_mut().expect("segments") {
        let id = s["id"].as_u64().expect("id");
        if format!("seg-{id:06}") == seg {
            let f = &mut s["files"][file];
            f["len"] = Value::from(bytes.len() as u64);
            f["xxh3"] = Value::from(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes)));
        }
    }
    Some(serde_json::to_vec_pretty(&m).expect("serializes"))
}

/// Applies one damage, exercises the index, restores the files.
struct Runner<'a> {
    p: &'a Pristine,
    cases: usize,
    /// Cases whose index opened (so lookups ran over damaged bytes).
    opened: usize,
    failures: Vec<String>,
}

impl Runner<'_> {
    fn case(
        &mut self,
        name: &str,
        damaged: &[u8],
        consistent: bool,
        must_detect: bool,
        what: &str,
    ) {
        let p = self.p;
        let path = p.work.join(name);
        fs::write(&path, damaged).expect("writes the damaged file");
        let mut manifest = None;
        if consistent {
            if let Some(m) = patched_manifest(p, name, damaged) {
                let mp = p.work.join(&p.manifest_name);
                fs::write(&mp, m).expect("writes the manifest");
                manifest = Some(mp);
            }
        }
        let access = if self.cases.is_multiple_of(2) {
            Access::Mmap
        } else {
            Access::InMemory
        };
        self.cases += 1;
        let mode = if consistent { "consistent" } else { "raw" };
        let outcome = exercise(p, access);
        self.opened += usize::from(matches!(outcome, Outcome::Opened { .. }));
        match outcome {
            Outcome::Panicked(msg) => self
                .failures
                .push(format!("{name}: {what} ({mode}, {access:?}): PANIC {msg}")),
            Outcome::Opened {
                verify_failed: false,
            } if must_detect => self.failures.push(format!(
                "{name}: {what} ({mode}, {access:?}): opened and verified without error"
            )),
            _ => {}
        }
        // Restore.
        let original = &p
            .files
            .iter()
            .find(|(n, _)| n == name)
            .expect("known file")
            .1;
        fs::write(&path, original).expect("restores the file");
        if let Some(mp) = manifest {
            let m = &p
                .files
                .iter()
                .find(|(n, _)| *n == p.manifest_name)
                .expect("manifest")
                .1;
            fs::write(mp, m).expect("restores the manifest");
        }
    }

    fn finish(self, what: &str) {
        assert!(self.cases > 0);
        eprintln!(
            "{what}: {} cases, {} opened and were queried",
            self.cases, self.opened
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} {what} cases failed:\n{}",
            self.failures.len(),
            self.cases,
            self.failures
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn is_segment_file(name: &str) -> bool {
    name.starts_with("seg-")
}

#[test]
fn pristine_index_is_sound() {
    let p = pristine();
    for access in [Access::Mmap, Access::InMemory] {
        match exercise(&p, access) {
            Outcome::Opened {
                verify_failed: false,
            } => {}
            other => panic!("the pristine index must open and verify: {other:?}"),
        }
    }
    let names: Vec<&str> = p.files.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["CURRENT", "bands", "sigs", "posts", "ids.fst", "text"] {
        assert!(
            names.iter().any(|n| n.rsplit('/').next() == Some(want)),
            "the index should hold a {want} file: {names:?}"
        );
    }
    // The text file's dictionary (section 3) is there to be damaged.
    let (name, bytes) = p
        .files
        .iter()
        .find(|(n, _)| n.ends_with("/text"))
        .expect("a text file");
    let env = Envelope::parse(Path::new(name), bytes, TEXT_MAGIC, "text").expect("parses");
    assert!(
        env.sections.get(3).is_some_and(|s| !s.range.is_empty()),
        "the text file should carry a dictionary"
    );
}

#[test]
fn truncated_files_never_panic() {
    let p = pristine();
    let mut r = Runner {
        p: &p,
        cases: 0,
        opened: 0,
        failures: Vec::new(),
    };
    for (name, bytes) in &p.files {
        let lay = layout(name, bytes);
        for cut in cut_points(bytes.len(), lay.as_ref()) {
            let what = format!("truncated to {cut} of {} bytes", bytes.len());
            // Raw: the manifest's lengths disagree; a segment file must be refused.
            r.case(name, &bytes[..cut], false, is_segment_file(name), &what);
            if is_segment_file(name) && !name.ends_with("ids.fst") {
                // Consistent: the manifest agrees with the truncated file.
                r.case(name, &bytes[..cut], true, false, &what);
            }
        }
    }
    r.finish("truncation");
}

#[test]
fn flipped_bytes_never_panic_and_are_detected() {
    let p = pristine();
    let mut r = Runner {
        p: &p,
        cases: 0,
        opened: 0,
        failures: Vec::new(),
    };
    for (name, bytes) in &p.files {
        let lay = layout(name, bytes);
        for (at, checksummed) in flip_points(bytes.len(), lay.as_ref()) {
            for mask in [0x01u8, 0x80] {
                let mut d = bytes.clone();
                d[at] ^= mask;
                let what = format!("byte {at} of {} xor {mask:#04x}", bytes.len());
                // Raw: every segment file byte is covered by the manifest's whole-file
                // checksum, which `verify` checks.
                r.case(name, &d, false, is_segment_file(name), &what);
                // Consistent: the header, table and sections carry their own checksums.
                if is_segment_file(name) && !name.ends_with("ids.fst") {
                    let detect = checksummed && lay.is_some();
                    r.case(name, &d, true, detect, &what);
                }
            }
        }
    }
    r.finish("byte flip");
}

#[test]
fn swapped_and_missing_files_never_panic() {
    let p = pristine();
    let mut r = Runner {
        p: &p,
        cases: 0,
        opened: 0,
        failures: Vec::new(),
    };
    let segment_files: Vec<&(String, Vec<u8>)> =
        p.files.iter().filter(|(n, _)| is_segment_file(n)).collect();
    for (a, _) in &segment_files {
        for (b, bytes) in &segment_files {
            if a != b {
                let what = format!("replaced by {b}");
                r.case(a, bytes, false, true, &what);
                r.case(a, bytes, true, true, &what);
            }
        }
    }
    r.finish("swap");
    // Missing files.
    for (name, bytes) in &p.files {
        let path = p.work.join(name);
        fs::remove_file(&path).expect("removes");
        match exercise(&p, Access::Mmap) {
            Outcome::OpenFailed => {}
            Outcome::Opened {
                verify_failed: true,
            } if name.ends_with("ids.fst") => {}
            other => panic!("{name} missing: {other:?}"),
        }
        fs::write(&path, bytes).expect("restores");
    }
}

/// Every scalar in the manifest, replaced by surprising values.
#[test]
fn edited_manifest_values_never_panic() {
    let p = pristine();
    let manifest = &p
        .files
        .iter()
        .find(|(n, _)| *n == p.manifest_name)
        .expect("manifest")
        .1;
    let original: Value = serde_json::from_slice(manifest).expect("JSON");
    // Paths to every scalar.
    fn scalars(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    path.push(k.clone());
                    scalars(x, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(i.to_string());
                    scalars(x, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut paths = Vec::new();
    scalars(&original, &mut Vec::new(), &mut paths);
    assert!(
        paths.len() > 20,
        "the manifest should have many fields: {paths:?}"
    );
    let replacements = [
        Value::from(0u64),
        Value::from(1u64),
        Value::from(u32::MAX as u64),
        Value::from(u32::MAX as u64 + 1),
        Value::from(u64::MAX),
        Value::from(-1i64),
        Value::from(""),
        Value::from("0000000000000000"),
        Value::Null,
        Value::from(true),
    ];
    let mut r = Runner {
        p: &p,
        cases: 0,
        opened: 0,
        failures: Vec::new(),
    };
    for path in &paths {
        let at = path.iter().fold(String::new(), |s, k| s + "/" + k);
        let current = original.pointer(&at).cloned();
        let mut values: Vec<Value> = replacements.to_vec();
        if let Some(n) = current.as_ref().and_then(Value::as_u64) {
            values.extend([
                Value::from(n + 1),
                Value::from(n.saturating_sub(1)),
                Value::from(n * 2),
            ]);
        }
        for v in values {
            let mut m = original.clone();
            *m.pointer_mut(&at).expect("path exists") = v.clone();
            let bytes = serde_json::to_vec_pretty(&m).expect("serializes");
            r.case(
                &p.manifest_name,
                &bytes,
                false,
                false,
                &format!("{at} = {v}"),
            );
        }
    }
    r.finish("manifest edit");
}

/// `ids.fst` is guarded only by the manifest's whole-file checksum (the `fst` crate trusts
/// its input). When the manifest agrees with a damaged `ids.fst` (say, a tool rewrote it),
/// lookups by id reach `fst` with corrupt bytes.
#[test]
fn consistently_damaged_ids_fst_never_panics() {
    let p = pristine();
    let mut r = Runner {
        p: &p,
        cases: 0,
        opened: 0,
        failures: Vec::new(),
    };
    let (name, bytes) = p
        .files
        .iter()
        .find(|(n, _)| n.ends_with("ids.fst"))
        .expect("an ids.fst");
    for cut in cut_points(bytes.len(), None) {
        r.case(
            name,
            &bytes[..cut],
            true,
            false,
            &format!("truncated to {cut}"),
        );
    }
    for (at, _) in flip_points(bytes.len(), None) {
        for mask in [0x01u8, 0x80] {
            let mut d = bytes.clone();
            d[at] ^= mask;
            r.case(name, &d, true, false, &format!("byte {at} xor {mask:#04x}"));
        }
    }
    r.finish("consistent ids.fst damage");
}

/// The manifest carries the fingerprint parameters but no checksum of its own, and the
/// segment files do not record the parameters they were built with (the band file records
/// `rows`, which open does not compare). One changed digit in the manifest then makes every
/// lookup miss while `verify` reports the index sound.
#[test]
fn a_changed_manifest_parameter_is_detected() {
    let p = pristine();
    let manifest = p.work.join(&p.manifest_name);
    let original = fs::read_to_string(&manifest).expect("reads");
    let m: Value = serde_json::from_str(&original).expect("JSON");
    let seed = m["params"]["seed"].as_u64().expect("seed");
    let edits: Vec<(&str, Value)> = vec![
        ("/params/seed", Value::from(seed ^ 1)),
        ("/params/lsh/rows", Value::from(2)),
        ("/params/shingle", Value::from(2)),
    ];
    let mut undetected = Vec::new();
    for (at, v) in edits {
        let mut e = m.clone();
        *e.pointer_mut(at).expect("field") = v.clone();
        fs::write(&manifest, serde_json::to_vec_pretty(&e).expect("JSON")).expect("writes");
        if let Ok(index) = Index::open(&p.work) {
            if index.verify().is_ok() {
                let hits = index
                    .query(&p.queries[0], &QueryOptions::default())
                    .expect("query")
                    .hits
                    .len();
                undetected.push(format!(
                    "{at} = {v}: opens, verifies, query finds {hits} hits"
                ));
            }
        }
    }
    fs::write(&manifest, original).expect("restores");
    assert!(undetected.is_empty(), "{undetected:#?}");
}

// ---------------------------------------------------------------------------------------
// Write side (issue 16): no data lost, no damage laundered, no link followed.
// ---------------------------------------------------------------------------------------

mod write_side {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use textreuse::index::Manifest;
    use textreuse::input::RawPost;

    use crate::util;

    /// Every file under `dir` but `LOCK`, with its length and checksum.
    fn snapshot(dir: &Path) -> Vec<(String, usize, u64)> {
        util::read_tree(dir)
            .into_iter()
            .filter(|(n, _)| n != "LOCK")
            .map(|(n, b)| (n, b.len(), xxhash_rust::xxh3::xxh3_64(&b)))
            .collect()
    }

    /// An index of `n` sample posts built by the CLI in `tmp/index`, and a JSONL file of
    /// the next 20 posts (for appends) in `tmp/new.jsonl`.
    fn index(tmp: &Path, n: usize) -> (PathBuf, PathBuf) {
        let posts = util::sample_posts();
        let old = tmp.join("old.jsonl");
        util::write_jsonl(&old, &posts[..n]);
        let new = tmp.join("new.jsonl");
        util::write_jsonl(&new, &posts[n..n + 20]);
        let dir = tmp.join("index");
        util::cli_build(&old, &dir, &["-q"]);
        (dir, new)
    }

    fn run(args: &[&str]) -> util::Run {
        util::textreuse(args)
    }

    fn s(p: &Path) -> &str {
        p.to_str().expect("utf-8 path")
    }

    /// Flips one byte in the middle of `path` (in a section's payload).
    fn flip_middle(path: &Path) {
        let mut b = fs::read(path).expect("reads");
        let at = b.len() / 2;
        b[at] ^= 0x20;
        fs::write(path, b).expect("writes");
    }

    /// Edits the live manifest with `f` and publishes it under the same generation (with a
    /// recomputed checksum), as a third party could.
    fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Manifest)) {
        let (mut m, _) = Manifest::load_current(dir)
            .expect("loads")
            .expect("has one");
        f(&mut m);
        m.publish(dir).expect("publishes");
    }

    /// 16.1: with `CURRENT` gone, `build --append` and `build` used to delete the index and
    /// exit 0. Both must refuse (exit 2), change nothing, and say how to recover; following
    /// the advice gives the index back.
    #[test]
    fn a_lost_current_is_damage_not_an_empty_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 200);
        let r = run(&["delete", "--index", s(&dir), "--id", "5"]);
        assert_eq!(r.code, 0, "{r:?}");
        fs::remove_file(dir.join("CURRENT")).expect("removes CURRENT");
        let before = snapshot(&dir);
        for extra in [&["--append"][..], &[][..]] {
            let mut args = vec!["build", "-q", "--input", s(&new), "--index", s(&dir)];
            args.extend_from_slice(extra);
            let r = run(&args);
            assert_eq!(r.code, 2, "build {extra:?} must refuse: {r:?}");
            assert!(r.stderr.contains("damaged"), "{}", r.stderr);
            assert!(r.stderr.contains("MANIFEST-000002.json"), "{}", r.stderr);
            assert_eq!(snapshot(&dir), before, "build {extra:?} changed the files");
        }
        for cmd in [
            vec!["delete", "--index", s(&dir), "--id", "7"],
            vec!["merge", "--index", s(&dir)],
        ] {
            let r = run(&cmd);
            assert_eq!(r.code, 2, "{cmd:?}: {r:?}");
            assert_eq!(snapshot(&dir), before, "{cmd:?} changed the files");
        }
        // The recovery the message gives.
        fs::write(dir.join("CURRENT"), "MANIFEST-000002.json\n").expect("writes");
        let r = run(&["verify", "--index", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        let index = textreuse::Index::open(&dir).expect("opens");
        assert_eq!(index.num_posts(), 199);
    }

    /// 16.2: `build` into a directory that holds no index deleted `seg-<digits>/` folders,
    /// `*.tmp`, `MANIFEST-*.json` and `CLUSTERS-*.bin` of the user's. Without `--force` a
    /// non-empty directory is refused; with it, the index is built beside the user's files,
    /// which stay as they were.
    #[test]
    fn a_directory_that_is_not_an_index_keeps_its_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let posts = util::sample_posts();
        let input = tmp.path().join("in.jsonl");
        util::write_jsonl(&input, &posts[..100]);
        let dir = tmp.path().join("mine");
        fs::create_dir_all(dir.join("seg-000001")).expect("mkdir");
        fs::write(dir.join("seg-000001/thesis.txt"), "chapter one").expect("writes");
        fs::write(dir.join("notes.tmp"), "draft").expect("writes");
        fs::write(dir.join("CLUSTERS-draft.bin"), "mine").expect("writes");
        let before = snapshot(&dir);
        let r = run(&["build", "-q", "--input", s(&input), "--index", s(&dir)]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("not empty"), "{}", r.stderr);
        assert_eq!(snapshot(&dir), before);
        let r = run(&[
            "build",
            "-q",
            "--append",
            "--input",
            s(&input),
            "--index",
            s(&dir),
        ]);
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(snapshot(&dir), before);
        let r = run(&[
            "build",
            "-q",
            "--force",
            "--input",
            s(&input),
            "--index",
            s(&dir),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        let after = snapshot(&dir);
        for f in &before {
            assert!(after.contains(f), "{} was changed or removed", f.0);
        }
        let index = textreuse::Index::open(&dir).expect("opens");
        assert_eq!(index.num_posts(), 100);
        assert!(index.segments().iter().all(|s| s.entry().id != 1));
        // A later writer still leaves them alone.
        let r = run(&["delete", "--index", s(&dir), "--id", "3"]);
        assert_eq!(r.code, 0, "{r:?}");
        let after = snapshot(&dir);
        for f in &before {
            assert!(after.contains(f), "{} was changed or removed", f.0);
        }
    }

    /// What a first build killed before it published leaves (segment files, temporary
    /// files) is its own and is removed by the next build, which is not refused for it.
    #[test]
    fn a_dead_first_build_is_cleaned_up_not_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let posts = util::sample_posts();
        let input = tmp.path().join("in.jsonl");
        util::write_jsonl(&input, &posts[..50]);
        let dir = tmp.path().join("index");
        fs::create_dir_all(dir.join("seg-000001")).expect("mkdir");
        fs::write(dir.join("seg-000001/bands"), "partial").expect("writes");
        fs::write(dir.join("seg-000001/fps.spill.tmp"), "partial").expect("writes");
        fs::write(dir.join("MANIFEST-000001.json.tmp"), "{").expect("writes");
        let r = run(&["build", "-q", "--input", s(&input), "--index", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        let names = util::entries(&dir);
        assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
        assert!(!dir.join("seg-000001/fps.spill.tmp").exists());
        assert_eq!(textreuse::Index::open(&dir).expect("opens").num_posts(), 50);
    }

    /// 16.3: `merge` read damaged files without checking them and wrote their contents
    /// under fresh checksums (a flipped byte in `posts` became permanent; `verify` passed).
    /// It must refuse, change nothing, and `verify` must still see the damage.
    #[test]
    fn merge_refuses_damaged_input_instead_of_laundering_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 200);
        util::cli_build(&new, &dir, &["-q", "--append"]);
        for file in ["posts", "sigs", "bands", "text", "ids.fst"] {
            let path = dir.join("seg-000001").join(file);
            let pristine = fs::read(&path).expect("reads");
            flip_middle(&path);
            let before = snapshot(&dir);
            let r = run(&["merge", "--index", s(&dir)]);
            assert_eq!(r.code, 2, "merge over a damaged {file}: {r:?}");
            assert_eq!(snapshot(&dir), before, "merge over a damaged {file} wrote");
            let r = run(&["verify", "--index", s(&dir)]);
            assert_ne!(r.code, 0, "verify must still see the damaged {file}");
            fs::write(&path, pristine).expect("restores");
        }
        let r = run(&["merge", "--index", s(&dir)]);
        assert_eq!(r.code, 0, "the restored index merges: {r:?}");
    }

    /// 16.3: a damaged deletion bitmap made `delete --id 10` delete 11 posts (its bits were
    /// copied into the new bitmap). Deleting more must check the old bitmap first.
    #[test]
    fn delete_refuses_a_damaged_deletion_bitmap() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 200);
        let r = run(&["delete", "--index", s(&dir), "--id", "3"]);
        assert_eq!(r.code, 0, "{r:?}");
        let bitmap = fs::read_dir(dir.join("seg-000001"))
            .expect("lists")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("deleted-"))
            })
            .expect("a deletion bitmap");
        // The last word of the bits section (posts 192..199): set them all.
        let mut b = fs::read(&bitmap).expect("reads");
        let n = b.len();
        b[n - 1] = 0xff;
        fs::write(&bitmap, b).expect("writes");
        // Posts whose ids the index holds: `--replace` deletes the old ones.
        let again = tmp.path().join("again.jsonl");
        let mut posts: Vec<RawPost> = util::sample_posts()[10..15].to_vec();
        for p in &mut posts {
            p.text.push_str(" edited");
        }
        util::write_jsonl(&again, &posts);
        let before = snapshot(&dir);
        for cmd in [
            vec!["delete", "--index", s(&dir), "--id", "10"],
            vec![
                "build",
                "-q",
                "--append",
                "--replace",
                "--input",
                s(&again),
                "--index",
                s(&dir),
            ],
        ] {
            let r = run(&cmd);
            assert_eq!(r.code, 2, "{cmd:?}: {r:?}");
            assert_eq!(snapshot(&dir), before, "{cmd:?} wrote");
        }
        // An append that deletes nothing carries the bitmap as it is (its checksum still
        // names the damage): `verify` keeps failing.
        let r = run(&[
            "build",
            "-q",
            "--append",
            "--input",
            s(&new),
            "--index",
            s(&dir),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        let r = run(&["verify", "--index", s(&dir)]);
        assert_ne!(r.code, 0, "verify must still see the damaged bitmap: {r:?}");
    }

    /// 16.3: `clusters --save` must not publish clusters computed from damaged files.
    #[test]
    fn clusters_save_refuses_a_damaged_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, _) = index(tmp.path(), 300);
        flip_middle(&dir.join("seg-000001/text"));
        let before = snapshot(&dir);
        let r = run(&["clusters", "--save", "--index", s(&dir)]);
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(snapshot(&dir), before);
    }

    /// 16.14: `append` and `delete` carried a bad `clusters.file` or `normalizer_version`
    /// into the next generation.
    #[test]
    fn append_and_delete_do_not_carry_bad_manifest_values() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 300);
        let r = run(&["clusters", "--save", "--index", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        let pristine: Vec<(String, Vec<u8>)> = util::read_tree(&dir).into_iter().collect();
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "clusters.file outside the index",
                Box::new(|m| m.clusters.as_mut().expect("saved").file = "../x".into()),
            ),
            (
                "clusters.file naming a missing file",
                Box::new(|m| {
                    m.clusters.as_mut().expect("saved").file = "CLUSTERS-000099.bin".into()
                }),
            ),
            (
                "unknown normalizer_version",
                Box::new(|m| m.params.normalizer_version = 99),
            ),
        ];
        for (what, edit) in edits {
            edit_manifest(&dir, edit);
            let before = snapshot(&dir);
            for cmd in [
                vec![
                    "build",
                    "-q",
                    "--append",
                    "--input",
                    s(&new),
                    "--index",
                    s(&dir),
                ],
                vec!["delete", "--index", s(&dir), "--id", "4"],
                vec!["merge", "--index", s(&dir)],
            ] {
                let r = run(&cmd);
                assert_eq!(r.code, 2, "{what}: {cmd:?}: {r:?}");
                assert_eq!(snapshot(&dir), before, "{what}: {cmd:?} wrote");
            }
            for (name, bytes) in &pristine {
                fs::write(dir.join(name), bytes).expect("restores");
            }
        }
    }

    /// 16.14: `merge` exited 0 on an index that every reader refuses (nothing to merge, so
    /// nothing was opened).
    #[test]
    fn merge_fails_on_an_index_readers_refuse() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, _) = index(tmp.path(), 100);
        let bands = dir.join("seg-000001/bands");
        let mut b = fs::read(&bands).expect("reads");
        b[0] ^= 0xff;
        fs::write(&bands, b).expect("writes");
        assert!(textreuse::Index::open(&dir).is_err());
        let r = run(&["merge", "--index", s(&dir)]);
        assert_eq!(r.code, 2, "{r:?}");
    }

    /// 16.9: a `LOCK` symlink made any writer create a file at its target, and `delete`
    /// wrote through a symlinked segment directory. Writers refuse links inside the index.
    #[test]
    fn writers_do_not_follow_links_inside_the_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 100);
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        fs::remove_file(dir.join("LOCK")).expect("removes LOCK");
        std::os::unix::fs::symlink(outside.join("owned"), dir.join("LOCK")).expect("links");
        for cmd in [
            vec![
                "build",
                "-q",
                "--append",
                "--input",
                s(&new),
                "--index",
                s(&dir),
            ],
            vec!["delete", "--index", s(&dir), "--id", "4"],
            vec!["merge", "--index", s(&dir)],
        ] {
            let r = run(&cmd);
            assert_eq!(r.code, 2, "{cmd:?}: {r:?}");
            assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
            assert!(
                !outside.join("owned").exists(),
                "{cmd:?} created the link's target"
            );
        }
        fs::remove_file(dir.join("LOCK")).expect("removes the link");
        // A segment directory moved out and linked back.
        let moved = outside.join("seg");
        fs::rename(dir.join("seg-000001"), &moved).expect("moves");
        std::os::unix::fs::symlink(&moved, dir.join("seg-000001")).expect("links");
        let before: Vec<String> = util::entries(&moved);
        let r = run(&["delete", "--index", s(&dir), "--id", "4"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(
            util::entries(&moved),
            before,
            "delete wrote through the link"
        );
    }

    /// 16.9: files 0644 and directories 0755, not 0666/0777 under umask 000.
    #[test]
    fn modes_do_not_depend_on_the_umask() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let posts: Vec<RawPost> = util::sample_posts()[..50].to_vec();
        let input = tmp.path().join("in.jsonl");
        util::write_jsonl(&input, &posts);
        let dir = tmp.path().join("index");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 000; exec '{}' build -q --input '{}' --index '{}'",
                util::bin(),
                s(&input),
                s(&dir)
            ))
            .output()
            .expect("runs sh");
        assert!(out.status.success(), "{out:?}");
        let mut checked = 0;
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let mode = fs::metadata(&d).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", d.display());
            for e in fs::read_dir(&d).expect("lists") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let mode = fs::metadata(&p).expect("stat").permissions().mode() & 0o777;
                    assert_eq!(mode, 0o644, "{}", p.display());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 6, "{checked} files checked");
    }
}

// ---------------------------------------------------------------------------------------
// Damaged deletion bitmaps (moved from `living`).
// ---------------------------------------------------------------------------------------

/// Damaged deletion bitmaps (moved from `living`).
mod bitmaps {

    use std::fs;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::PathBuf;

    use textreuse::cluster::ClusterOptions;
    use textreuse::index::{Access, BuildOptions, OnExistingId, OpenOptions};

    use textreuse::{Index, QueryOptions};

    use crate::living::*;
    use crate::util::{self};

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
}
