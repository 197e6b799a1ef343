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
        for q in &p.queries {
            let _ = index.query(q, &wide);
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
// Issue 16, items 4-8 (read side): damage that used to open and answer wrongly, and
// indexes crafted by a third party. Each test is the reproducer, made small.
// ---------------------------------------------------------------------------------------

mod untrusted {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use textreuse::index::format::Envelope;
    use textreuse::index::manifest::Manifest;
    use textreuse::index::segment::{DELETED_MAGIC, POSTS_MAGIC, TEXT_MAGIC};
    use textreuse::index::{BuildOptions, Index};
    use textreuse::{Error, QueryOptions};

    use crate::util;

    /// A small index of the first `n` sample posts, with texts; its directory.
    fn small_index(tmp: &Path, n: usize, opts: BuildOptions) -> PathBuf {
        let dir = tmp.join("index");
        util::build_lib(&dir, &util::sample_posts()[..n], opts, 1000);
        dir
    }

    /// The live manifest.
    fn manifest(dir: &Path) -> Manifest {
        Manifest::load_current(dir)
            .expect("loads the manifest")
            .expect("an index")
            .0
    }

    /// Publishes `m` edited by `edit` as the next generation, with a correct checksum: what
    /// someone who edits a manifest by hand and recomputes its checksum gets.
    fn republish(dir: &Path, edit: impl FnOnce(&mut Manifest)) {
        let mut m = manifest(dir);
        edit(&mut m);
        m.generation += 1;
        m.publish(dir).expect("publishes");
    }

    /// The path of segment 0's file `name`.
    fn seg_file(dir: &Path, name: &str) -> PathBuf {
        dir.join(manifest(dir).segments[0].dir_name()).join(name)
    }

    /// Rewrites segment 0's file `name` to `bytes` and records its new length and checksum in
    /// a new manifest generation ("consistent" damage: only the reader's own checks remain).
    fn replace_consistently(dir: &Path, name: &str, bytes: &[u8]) {
        let path = seg_file(dir, name);
        fs::write(&path, bytes).expect("writes");
        let (len, xxh3) = (
            bytes.len() as u64,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes)),
        );
        republish(dir, |m| {
            let s = &mut m.segments[0];
            if let Some(f) = s.files.get_mut(name) {
                f.len = len;
                f.xxh3 = xxh3;
            } else if let Some(d) = s.deleted.as_mut().filter(|d| d.file == name) {
                d.len = len;
                d.xxh3 = xxh3;
            } else {
                panic!("segment 0 has no file {name}");
            }
        });
    }

    fn open_err(dir: &Path) -> String {
        match Index::open(dir) {
            Ok(_) => panic!("{} opened", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    /// Item 4: a damaged deletion bitmap used to open (only `verify` counted its bits) and
    /// hide the wrong posts. Open now checks its set bits against the manifest's count and
    /// its whole-file checksum: a flipped bit (raw, or with the manifest's length and
    /// checksum rewritten to match) and a moved bit are errors.
    #[test]
    fn a_damaged_deletion_bitmap_fails_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = small_index(tmp.path(), 300, BuildOptions::default());
        let r = util::textreuse([
            "delete",
            "--index",
            dir.to_str().expect("utf-8"),
            "--id",
            "10",
            "--id",
            "20",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        let name = manifest(&dir).segments[0]
            .deleted
            .clone()
            .expect("a bitmap")
            .file;
        let path = seg_file(&dir, &name);
        let pristine = fs::read(&path).expect("reads");
        let env = Envelope::parse(&path, &pristine, DELETED_MAGIC, "bitmap").expect("parses");
        let bits = env.sections[1].range.clone();
        assert_eq!(Index::open(&dir).expect("opens").stats().deleted, 2);
        // One more bit set (post 11 would vanish from every answer).
        let mut flipped = pristine.clone();
        flipped[bits.start + 1] ^= 0x08;
        fs::write(&path, &flipped).expect("writes");
        let e = open_err(&dir);
        assert!(e.contains("bits set") || e.contains("checksum"), "{e}");
        // The same, with the manifest's length and checksum made to match the damage.
        fs::write(&path, &pristine).expect("restores");
        replace_consistently(&dir, &name, &flipped);
        let e = open_err(&dir);
        assert!(e.contains("3 bits set, the manifest says 2"), "{e}");
        // A moved bit (same count): only the checksum can tell.
        let mut moved = pristine.clone();
        let word = u64::from_le_bytes(moved[bits.start..bits.start + 8].try_into().unwrap());
        let w2 = (word & !(1 << 10)) | (1 << 11);
        assert_ne!(word, w2, "post 10 is deleted in word 0");
        moved[bits.start..bits.start + 8].copy_from_slice(&w2.to_le_bytes());
        fs::write(&path, &moved).expect("writes");
        let e = open_err(&dir);
        assert!(e.contains("checksum") || e.contains("whole file"), "{e}");
    }

    /// Item 4: the posts file's offset arrays must span exactly their bytes sections; a
    /// damaged end offset (with the whole-file checksum rewritten) used to open and fail, or
    /// answer wrongly, only on the posts it touched.
    #[test]
    fn posts_offsets_that_do_not_span_their_bytes_fail_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = small_index(tmp.path(), 200, BuildOptions::default());
        let path = seg_file(&dir, "posts");
        let pristine = fs::read(&path).expect("reads");
        let env = Envelope::parse(&path, &pristine, POSTS_MAGIC, "posts").expect("parses");
        // Sections 3 (id_offsets), 6 (account_offsets), 9 (platform_offsets): last u64.
        for (section, what) in [
            (3, "id_offsets"),
            (6, "account_offsets"),
            (9, "platform_offsets"),
        ] {
            let r = env.sections[section].range.clone();
            let mut bad = pristine.clone();
            bad[r.end - 8] ^= 0x01;
            replace_consistently(&dir, "posts", &bad);
            let e = open_err(&dir);
            assert!(e.contains(what), "{what}: {e}");
            replace_consistently(&dir, "posts", &pristine);
            Index::open(&dir).expect("the restored index opens");
        }
    }

    /// Item 5: fingerprint parameters edited in the manifest with its checksum recomputed
    /// (seed, shingle, t2s, hashtags, normalizer version, has_text) gave wrong answers that
    /// `verify` passed. Each segment's signature file now records a digest of the parameters
    /// and has_text, checked at open.
    #[test]
    fn parameters_edited_with_a_recomputed_checksum_fail_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = small_index(tmp.path(), 200, BuildOptions::default());
        let q = util::sample_posts()[3].text.clone();
        let before = Index::open(&dir)
            .expect("opens")
            .query(&q, &QueryOptions::default())
            .expect("query")
            .hits
            .len();
        assert!(before > 0);
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("seed", Box::new(|m| m.params.seed ^= 1)),
            ("shingle", Box::new(|m| m.params.shingle = 2)),
            ("t2s", Box::new(|m| m.params.normalizer.t2s = false)),
            (
                "hashtags",
                Box::new(|m| m.params.normalizer.hashtags = textreuse::text::Hashtags::KeepWords),
            ),
            ("has_text", Box::new(|m| m.segments[0].has_text = false)),
        ];
        for (what, edit) in edits {
            let saved = manifest(&dir);
            republish(&dir, edit);
            let e = open_err(&dir);
            assert!(
                e.contains("other parameters") || e.contains("has_text"),
                "{what}: {e}"
            );
            republish(&dir, |m| {
                *m = Manifest {
                    generation: m.generation,
                    ..saved.clone()
                }
            });
            assert_eq!(
                Index::open(&dir)
                    .expect("the restored index opens")
                    .query(&q, &QueryOptions::default())
                    .expect("query")
                    .hits
                    .len(),
                before,
                "{what}"
            );
        }
    }

    /// Writes a text file for `texts` (one post per block, codec 1, no dictionary) whose
    /// frame for post `bomb` declares `bomb_len` decompressed bytes of zeros.
    fn text_file_with_bomb(path: &Path, texts: &[String], bomb: usize, bomb_len: u64) {
        use std::io::Write;
        use textreuse::index::format::EnvelopeWriter;
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).expect("encoder");
            enc.include_contentsize(true).expect("content size");
            if i == bomb {
                enc.set_pledged_src_size(Some(bomb_len)).expect("pledge");
                let zeros = vec![0u8; 1 << 20];
                let mut left = bomb_len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    enc.write_all(&zeros[..n]).expect("writes");
                    left -= n as u64;
                }
            } else {
                let mut raw = Vec::new();
                raw.extend_from_slice(&0u32.to_le_bytes());
                raw.extend_from_slice(&(t.len() as u32).to_le_bytes());
                raw.extend_from_slice(t.as_bytes());
                enc.set_pledged_src_size(Some(raw.len() as u64))
                    .expect("pledge");
                enc.write_all(&raw).expect("writes");
            }
            frames.push(enc.finish().expect("finishes"));
        }
        let mut w = EnvelopeWriter::create(path, TEXT_MAGIC, 4).expect("creates");
        w.begin(0).expect("meta");
        let mut meta = (texts.len() as u64).to_le_bytes().to_vec();
        meta.extend_from_slice(&1u32.to_le_bytes());
        meta.extend_from_slice(&1u32.to_le_bytes());
        w.write(&meta).expect("meta");
        w.begin(1).expect("offsets");
        let mut at = 0u64;
        let mut offs = vec![0u64];
        for f in &frames {
            at += f.len() as u64;
            offs.push(at);
        }
        w.write_u64s(&offs).expect("offsets");
        w.begin(2).expect("blocks");
        for f in &frames {
            w.write(f).expect("frame");
        }
        w.begin(3).expect("dictionary");
        w.finish().expect("finishes");
    }

    /// Item 6: a crafted text frame that declares far more than a text may hold (the
    /// build's record limit, 64 MiB) is refused as corruption before anything is allocated;
    /// before, anything up to 1 GiB was decompressed (a 6 MB index took 2 GB for one query).
    #[test]
    fn a_text_frame_over_the_record_limit_is_corrupt() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Fewer than 1,000 posts: no dictionary.
        let posts = &util::sample_posts()[..100];
        let dir = small_index(tmp.path(), posts.len(), BuildOptions::default());
        let index = Index::open(&dir).expect("opens");
        let seg = manifest(&dir).segments[0].id;
        // The posts in stored (content) order.
        let texts: Vec<String> = (0..posts.len() as u32)
            .map(|p| {
                let addr = textreuse::index::PostAddr {
                    segment: seg,
                    post: p,
                };
                index
                    .text_at(addr, &mut Default::default())
                    .expect("reads")
                    .expect("stored")
            })
            .collect();
        drop(index);
        let limit = textreuse::index::segment::MAX_TEXT_BYTES;
        let tmpf = tmp.path().join("text.new");
        text_file_with_bomb(&tmpf, &texts, 5, limit + 4096);
        let bytes = fs::read(&tmpf).expect("reads");
        assert!(bytes.len() < 1 << 20, "the bomb is small on disk");
        replace_consistently(&dir, "text", &bytes);
        let index = Index::open(&dir).expect("opens: texts are read lazily");
        let addr = |post| textreuse::index::PostAddr { segment: seg, post };
        let e = index.text_at(addr(5), &mut Default::default());
        assert!(matches!(e, Err(Error::Corrupt { .. })), "{e:?}");
        let e = e.expect_err("refused").to_string();
        assert!(e.contains("declares"), "{e}");
        // Other posts still read.
        assert_eq!(
            index
                .text_at(addr(6), &mut Default::default())
                .expect("reads"),
            Some(texts[6].clone())
        );
    }

    /// Runs `f` on a thread and fails if it takes more than 20 s (a blocking open).
    fn within_20s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}: blocked"))
    }

    fn mkfifo(path: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("runs mkfifo");
        assert!(st.success());
    }

    /// Item 7: only regular files are opened. Symbolic links inside the index (`CURRENT`, a
    /// manifest, a segment file, a segment directory) are refused, not followed (to
    /// `/dev/zero`, or a file elsewhere); a FIFO in place of `CURRENT`, a manifest or a
    /// segment file is refused without blocking; `CURRENT` and manifests over their size
    /// caps (a 2 GiB sparse file) are refused unread.
    #[test]
    fn only_regular_files_are_opened_and_small_files_are_capped() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = small_index(tmp.path(), 100, BuildOptions::default());
        let m = manifest(&dir);
        let mname = Manifest::file_name(m.generation);
        let seg = dir.join(m.segments[0].dir_name());
        let keep = tmp.path().join("keep");
        fs::create_dir(&keep).expect("mkdir");
        let cases: Vec<(&str, PathBuf)> = vec![
            ("CURRENT", dir.join("CURRENT")),
            ("manifest", dir.join(&mname)),
            ("sigs", seg.join("sigs")),
            ("ids.fst", seg.join("ids.fst")),
            ("text", seg.join("text")),
        ];
        for (what, path) in &cases {
            let saved = keep.join(what);
            fs::rename(path, &saved).expect("moves the file aside");
            // A symlink to the very same bytes: still refused.
            symlink(&saved, path).expect("symlink");
            let d = dir.clone();
            let e = within_20s(what, move || Index::open(&d).err().map(|e| e.to_string()));
            let e = e.unwrap_or_else(|| panic!("{what}: opened through a symlink"));
            assert!(e.contains("symbolic link"), "{what}: {e}");
            fs::remove_file(path).expect("rm");
            symlink("/dev/zero", path).expect("symlink");
            let d = dir.clone();
            assert!(within_20s(what, move || Index::open(&d).is_err()), "{what}");
            fs::remove_file(path).expect("rm");
            mkfifo(path);
            let d = dir.clone();
            let e = within_20s(what, move || Index::open(&d).err().map(|e| e.to_string()));
            let e = e.unwrap_or_else(|| panic!("{what}: opened a FIFO"));
            assert!(e.contains("not a regular file"), "{what}: {e}");
            fs::remove_file(path).expect("rm");
            fs::rename(&saved, path).expect("restores");
            Index::open(&dir).expect("the restored index opens");
        }
        // A symlinked segment directory.
        let seg_saved = keep.join("seg");
        fs::rename(&seg, &seg_saved).expect("moves the segment aside");
        symlink(&seg_saved, &seg).expect("symlink");
        let e = open_err(&dir);
        assert!(e.contains("not a directory"), "{e}");
        fs::remove_file(&seg).expect("rm");
        fs::rename(&seg_saved, &seg).expect("restores");
        // Oversized CURRENT and manifest (sparse: no disk used), refused without reading.
        for (path, cap) in [
            (
                dir.join("CURRENT"),
                textreuse::index::manifest::MAX_CURRENT_BYTES,
            ),
            (
                dir.join(&mname),
                textreuse::index::manifest::MAX_MANIFEST_BYTES,
            ),
        ] {
            let saved = fs::read(&path).expect("reads");
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("opens");
            f.set_len(2 << 30).expect("a sparse 2 GiB file");
            drop(f);
            let e = open_err(&dir);
            assert!(e.contains(&format!("longer than the {cap} bytes")), "{e}");
            fs::write(&path, saved).expect("restores");
        }
        Index::open(&dir).expect("the restored index opens");
    }

    /// Item 8: a manifest that lists the same segment twice (with a correct checksum) is
    /// refused; before, every hit came back twice and 300 copies made `clusters` take 10 s.
    #[test]
    fn a_segment_listed_twice_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = small_index(tmp.path(), 100, BuildOptions::default());
        republish(&dir, |m| {
            let s = m.segments[0].clone();
            m.segments.push(s);
        });
        let e = open_err(&dir);
        assert!(e.contains("lists segment 1 more than once"), "{e}");
        let r = util::textreuse(["clusters", "--index", dir.to_str().expect("utf-8")]);
        assert_eq!(r.code, 2, "{r:?}");
    }
}
