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
use textreuse::index::{Access, BuildOptions, Index, OpenOptions};
use textreuse::input::RawPost;
use textreuse::QueryOptions;

use crate::envelope::{Envelope, BANDS_MAGIC, POSTS_MAGIC, SIGS_MAGIC, TEXT_MAGIC};
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
fn magic(name: &str) -> Option<&'static [u8; 8]> {
    match name.rsplit('/').next()? {
        "bands" => Some(BANDS_MAGIC),
        "sigs" => Some(SIGS_MAGIC),
        "posts" => Some(POSTS_MAGIC),
        "text" => Some(TEXT_MAGIC),
        _ => None,
    }
}

/// Byte ranges of an envelope: the header and table, then each section.
struct Layout {
    table_end: usize,
    sections: Vec<std::ops::Range<usize>>,
}

fn layout(name: &str, bytes: &[u8]) -> Option<Layout> {
    let env = Envelope::parse(Path::new(name), bytes, magic(name)?);
    Some(Layout {
        table_end: env.table_end(),
        sections: env.sections,
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
    let env = Envelope::parse(Path::new(name), bytes, TEXT_MAGIC);
    assert!(
        env.sections.get(3).is_some_and(|s| !s.is_empty()),
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

    use textreuse::index::{BuildOptions, Index, Manifest};
    use textreuse::{Error, QueryOptions};

    use crate::envelope::{self, Envelope, BANDS_MAGIC, DELETED_MAGIC, POSTS_MAGIC, TEXT_MAGIC};
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
        envelope::publish(dir, &m);
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
        let env = Envelope::parse(&path, &pristine, DELETED_MAGIC);
        let bits = env.sections[1].clone();
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
        let env = Envelope::parse(&path, &pristine, POSTS_MAGIC);
        // Formats 6 and 7: sections 4 (account_offsets) and 6 (platform_offsets), last u64 (the
        // ids' bounds are in the rows: see `a_damaged_posts_rows_file_is_an_error`).
        assert_eq!(
            envelope::read_u32(&pristine, 8),
            7,
            "this build writes format 7 (its posts file has format 6's layout)"
        );
        for (section, what) in [(4, "account_offsets"), (6, "platform_offsets")] {
            let r = env.sections[section].clone();
            let mut bad = pristine.clone();
            bad[r.end - 8] ^= 0x01;
            replace_consistently(&dir, "posts", &bad);
            let e = open_err(&dir);
            assert!(e.contains(what), "{what}: {e}");
            replace_consistently(&dir, "posts", &pristine);
            Index::open(&dir).expect("the restored index opens");
        }
    }

    /// Format 5's band file (issue 18): entry widths other than the counts imply, a packed
    /// section of another length, and content ids past the segment's inside a consistent
    /// file are errors at open or at the first read of them, never a panic or a read out of
    /// bounds.
    #[test]
    fn a_damaged_packed_band_file_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = small_index(tmp.path(), 200, BuildOptions::default());
        let path = seg_file(&dir, "bands");
        let pristine = fs::read(&path).expect("reads");
        let env = Envelope::parse(&path, &pristine, BANDS_MAGIC);
        assert_eq!(
            envelope::read_u32(&pristine, 8),
            7,
            "this build writes format 7 (its band file is format 5's)"
        );
        assert_eq!(env.sections.len(), 3);
        let (meta, dirs, entries) = (
            pristine[env.sections[0].clone()].to_vec(),
            pristine[env.sections[1].clone()].to_vec(),
            pristine[env.sections[2].clone()].to_vec(),
        );
        let n = u64::from_le_bytes(meta[..8].try_into().unwrap());
        let (tag_bits, id_bits) = (
            envelope::read_u32(&meta, 24) as usize,
            envelope::read_u32(&meta, 28) as usize,
        );
        assert!((129..=256).contains(&n), "{n} contents: 8-bit ids");
        assert_eq!(id_bits, 8);
        let write = |meta: &[u8], entries: &[u8]| {
            let bad = tmp.path().join("bands");
            envelope::write_version(&bad, BANDS_MAGIC, 6, &[meta, &dirs, entries]);
            replace_consistently(&dir, "bands", &fs::read(&bad).expect("reads"));
        };
        // Widths other than the counts imply.
        for (at, delta) in [(24, 1u32), (24, u32::MAX), (28, 1), (28, 25)] {
            let mut m = meta.clone();
            let v = envelope::read_u32(&m, at).wrapping_add(delta);
            m[at..at + 4].copy_from_slice(&v.to_le_bytes());
            write(&m, &entries);
            let e = open_err(&dir);
            assert!(e.contains("tag bits"), "{at} {delta}: {e}");
        }
        // A packed section a word short, a word long, or without its padding.
        for len in [entries.len() - 8, entries.len() + 8, entries.len() - 1] {
            let mut p = entries.clone();
            p.resize(len, 0);
            write(&meta, &p);
            let e = open_err(&dir);
            assert!(e.contains("entries is"), "{len}: {e}");
        }
        // Every content id set to all ones (255, past the segment's contents), tags kept:
        // the file opens (its lengths are right) and `verify` passes (its checksums were
        // rewritten), but lookups, the self-join of clustering and a merge refuse it.
        let mut p = entries.clone();
        let e = tag_bits + id_bits;
        for i in 0..32 * n as usize {
            for bit in i * e + tag_bits..(i + 1) * e {
                p[bit / 8] |= 1 << (bit % 8);
            }
        }
        write(&meta, &p);
        let index = Index::open(&dir).expect("opens");
        index.verify().expect("checksums match");
        let text = &util::sample_posts()[3].text;
        match index.query(text, &QueryOptions::default()) {
            Err(Error::Corrupt { what, .. }) => assert!(what.contains("content id"), "{what}"),
            other => panic!("{other:?}"),
        }
        drop(index);
        let s = dir.to_str().expect("utf-8");
        let id = util::sample_posts()[0].id.clone();
        let r = util::textreuse(["delete", "--index", s, "--id", &id]);
        assert_eq!(r.code, 0, "a merge then rewrites the segment: {r:?}");
        for args in [vec!["clusters", "--index", s], vec!["merge", "--index", s]] {
            let r = util::textreuse(&args);
            assert_eq!(r.code, 2, "{args:?}: {r:?}");
            assert!(r.stderr.contains("out of range"), "{args:?}: {}", r.stderr);
        }
        fs::write(seg_file(&dir, "bands"), &pristine).expect("restores");
        republish(&dir, |m| {
            let f = m.segments[0].files.get_mut("bands").expect("bands");
            f.len = pristine.len() as u64;
            f.xxh3 = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&pristine));
        });
        let index = Index::open(&dir).expect("the restored file opens");
        index
            .query(text, &QueryOptions::default())
            .expect("answers");
    }

    /// Format 6's posts file (issue 18): row widths other than the counts imply, a rows
    /// section of another length and a first id not at 0 fail open; times past the range of
    /// `i64`, accounts past the dictionary and id starts past the ids inside a consistent file
    /// open and verify, then are errors where they are read (lookups, clustering, merge),
    /// never a panic or a read out of bounds.
    #[test]
    fn a_damaged_posts_rows_file_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // 200 posts and exact copies of the first 40 under other ids (clusters to describe).
        let dir = tmp.path().join("index");
        let mut posts = util::sample_posts()[..200].to_vec();
        for i in 0..40 {
            let p = posts[i].clone();
            posts.push(textreuse::input::RawPost {
                id: format!("{}-copy", p.id),
                ..p
            });
        }
        util::build_lib(&dir, &posts, BuildOptions::default(), 1000);
        let s = dir.to_str().expect("utf-8");
        let id = util::sample_posts()[100].id.clone();
        let r = util::textreuse(["delete", "--index", s, "--id", &id]);
        assert_eq!(r.code, 0, "a merge then rewrites the segment: {r:?}");
        let path = seg_file(&dir, "posts");
        let pristine = fs::read(&path).expect("reads");
        let env = Envelope::parse(&path, &pristine, POSTS_MAGIC);
        assert_eq!(
            envelope::read_u32(&pristine, 8),
            7,
            "this build writes format 7 (its posts file has format 6's layout)"
        );
        assert_eq!(env.sections.len(), 8);
        let sections: Vec<Vec<u8>> = env
            .sections
            .iter()
            .map(|r| pristine[r.clone()].to_vec())
            .collect();
        let meta = &sections[0];
        assert_eq!(meta.len(), 56);
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let (np, na) = (u64_at(meta, 0) as usize, u64_at(meta, 16));
        let w: Vec<usize> = (0..4)
            .map(|i| envelope::read_u32(meta, 40 + 4 * i) as usize)
            .collect();
        let stride: usize = w.iter().sum();
        assert_eq!(np, 240);
        assert!(na > 1 && na < 1 << w[1], "{na} accounts in {} bits", w[1]);
        assert_eq!(
            w[3],
            64 - (sections[3].len() as u64).leading_zeros() as usize
        );
        let write = |meta: &[u8], rows: &[u8]| {
            let bad = tmp.path().join("posts");
            let mut all: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
            all[0] = meta;
            all[2] = rows;
            envelope::write_version(&bad, POSTS_MAGIC, 6, &all);
            replace_consistently(&dir, "posts", &fs::read(&bad).expect("reads"));
        };
        // Widths other than the counts imply (a time of more than 64 bits).
        for (at, delta) in [
            (40, 65u32),
            (44, 1),
            (44, u32::MAX),
            (48, 1),
            (52, 1),
            (52, 40),
        ] {
            let mut m = meta.clone();
            let v = envelope::read_u32(&m, at).wrapping_add(delta);
            let v = if at == 40 { delta } else { v };
            m[at..at + 4].copy_from_slice(&v.to_le_bytes());
            write(&m, &sections[2]);
            let e = open_err(&dir);
            assert!(e.contains("rows of widths"), "{at} {delta}: {e}");
        }
        // A rows section a word short, a word long, or without its padding.
        let rows = &sections[2];
        for len in [rows.len() - 8, rows.len() + 8, rows.len() - 1] {
            let mut r = rows.clone();
            r.resize(len, 0);
            write(meta, &r);
            let e = open_err(&dir);
            assert!(e.contains("rows is"), "{len}: {e}");
        }
        // Field `f` of every row (of rows `from..`) set to all ones.
        let ones = |f: usize, from: usize| {
            let mut r = rows.clone();
            let skip: usize = w[..f].iter().sum();
            for i in from..np {
                for bit in i * stride + skip..i * stride + skip + w[f] {
                    r[bit / 8] |= 1 << (bit % 8);
                }
            }
            r
        };
        write(meta, &ones(3, 0));
        let e = open_err(&dir);
        assert!(e.contains("first id starts"), "{e}");
        // Consistent files with impossible values: times past i64::MAX (the base moved up),
        // accounts past the dictionary, ids starting past the end of the ids.
        let mut late = meta.clone();
        late[32..40].copy_from_slice(&(i64::MAX - 3).to_le_bytes());
        let damaged: [(&str, Vec<u8>, Vec<u8>); 3] = [
            ("time", late, rows.clone()),
            ("account", meta.clone(), ones(1, 0)),
            ("id", meta.clone(), ones(3, 1)),
        ];
        for (what, m, r) in damaged {
            write(&m, &r);
            let index = Index::open(&dir).expect("opens");
            index.verify().expect("checksums match");
            let text = &util::sample_posts()[3].text;
            match index.query(text, &QueryOptions::default()) {
                Err(Error::Corrupt { what: w, .. }) => assert!(w.contains(what), "{what}: {w}"),
                other => panic!("{what}: {other:?}"),
            }
            let limited = QueryOptions {
                limit: 1,
                ..QueryOptions::default()
            };
            assert!(index.query(text, &limited).is_err(), "{what}: limit 1");
            drop(index);
            for args in [
                vec!["clusters", "--index", s, "--json"],
                vec!["merge", "--index", s],
            ] {
                let r = util::textreuse(&args);
                assert_eq!(r.code, 2, "{what} {args:?}: {r:?}");
                assert!(r.stderr.contains("range"), "{what} {args:?}: {}", r.stderr);
            }
        }
        write(meta, rows);
        let index = Index::open(&dir).expect("the restored file opens");
        index.verify().expect("verifies");
        index
            .query(&util::sample_posts()[3].text, &QueryOptions::default())
            .expect("answers");
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
        let mut meta = (texts.len() as u64).to_le_bytes().to_vec();
        meta.extend_from_slice(&1u32.to_le_bytes());
        meta.extend_from_slice(&1u32.to_le_bytes());
        let mut at = 0u64;
        let mut offs = 0u64.to_le_bytes().to_vec();
        for f in &frames {
            at += f.len() as u64;
            offs.extend_from_slice(&at.to_le_bytes());
        }
        let blocks = frames.concat();
        envelope::write(path, TEXT_MAGIC, &[&meta, &offs, &blocks, &[]]);
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
        let limit = envelope::MAX_TEXT_BYTES;
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
            (dir.join("CURRENT"), envelope::MAX_CURRENT_BYTES),
            (dir.join(&mname), envelope::MAX_MANIFEST_BYTES),
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

// ---------------------------------------------------------------------------------------
// Write side (issue 16): no data lost, no damage laundered, no link followed.
// ---------------------------------------------------------------------------------------

mod write_side {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use textreuse::index::{DeletedEntry, Manifest};
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
        crate::envelope::publish(dir, &m);
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
        fs::write(dir.join("seg-000001/entries.spill.tmp"), "partial").expect("writes");
        fs::write(dir.join("MANIFEST-000001.json.tmp"), "{").expect("writes");
        let r = run(&["build", "-q", "--input", s(&input), "--index", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        let names = util::entries(&dir);
        assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
        assert!(!dir.join("seg-000001/entries.spill.tmp").exists());
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

    /// A merge that needs more memory than its budget is refused before any source file is
    /// read: it used to checksum every file first (a bulk build under a small budget read
    /// its whole index, only to leave its segments as they were). Over a damaged source
    /// the refusal is the budget's; with room, the damage's.
    #[test]
    fn a_merge_over_its_budget_is_refused_before_reading_its_sources() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 200);
        util::cli_build(&new, &dir, &["-q", "--append"]);
        flip_middle(&dir.join("seg-000001").join("sigs"));
        let before = snapshot(&dir);
        let r = run(&["merge", "--index", s(&dir), "--memory", "16M"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains("more than the memory budget"),
            "{}",
            r.stderr
        );
        assert_eq!(snapshot(&dir), before, "a refused merge wrote");
        let r = run(&["merge", "--index", s(&dir)]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(!r.stderr.contains("memory budget"), "{}", r.stderr);
        assert_eq!(snapshot(&dir), before, "a merge over damage wrote");
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
        // An append that deletes nothing either refuses too (opening the segments checks
        // their bitmaps' set bits) or carries the bitmap as it is (its checksum still names
        // the damage), so that `verify` keeps failing.
        let r = run(&[
            "build",
            "-q",
            "--append",
            "--input",
            s(&new),
            "--index",
            s(&dir),
        ]);
        if r.code == 0 {
            let r = run(&["verify", "--index", s(&dir)]);
            assert_ne!(r.code, 0, "verify must still see the damaged bitmap: {r:?}");
        } else {
            assert_eq!(r.code, 2, "{r:?}");
            assert_eq!(snapshot(&dir), before, "a refused append wrote");
        }
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

    /// 16.5: dropping a segment's `deleted` entry from the manifest (checksum recomputed)
    /// brought deleted posts back and passed `verify`. The bitmap left in the segment's
    /// directory proves the drop: open, queries and `verify` fail naming it, and every
    /// writer refuses without writing. Superseded and not-yet-published bitmaps are not
    /// evidence.
    #[test]
    fn a_dropped_deletion_entry_is_detected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, new) = index(tmp.path(), 200);
        let posts = util::sample_posts();
        let gone = &posts[3];
        let seg = dir.join("seg-000001");
        let r = run(&["delete", "--index", s(&dir), "--id", &gone.id]);
        assert_eq!(r.code, 0, "{r:?}");
        let first = fs::read(seg.join("deleted-000002")).expect("generation 2's bitmap");
        let r = run(&["delete", "--index", s(&dir), "--id", &posts[40].id]);
        assert_eq!(r.code, 0, "{r:?}");
        // Generation 3 names deleted-000003 (both posts); deleted-000002 was removed.
        let named = |d: &Path| {
            let (m, _) = Manifest::load_current(d).expect("loads").expect("has one");
            m.segments[0].deleted.clone().expect("deleted").file
        };
        assert_eq!(named(&dir), "deleted-000003");
        assert!(!seg.join("deleted-000002").exists());
        let hidden = |d: &Path| {
            let index = textreuse::Index::open(d).expect("opens");
            index.post(&gone.id).expect("reads").is_none()
        };
        assert!(hidden(&dir), "the post is deleted");
        let pristine = util::read_tree(&dir);
        let restore = || {
            fs::remove_dir_all(&dir).expect("removes");
            for (name, bytes) in &pristine {
                let path = dir.join(name);
                fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                fs::write(path, bytes).expect("restores");
            }
        };

        // A leftover of a superseded generation (a writer died after publishing generation
        // 3, before removing deleted-000002) and a writer's unpublished bitmap for
        // generation 4 are not evidence: the index opens, verifies, and takes writes.
        fs::write(seg.join("deleted-000002"), &first).expect("writes");
        fs::write(seg.join("deleted-000004"), &first).expect("writes");
        assert!(hidden(&dir));
        let r = run(&["verify", "--index", s(&dir)]);
        assert_eq!(r.code, 0, "superseded and unpublished bitmaps: {r:?}");
        let r = run(&["delete", "--index", s(&dir), "--id", &posts[50].id]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            !seg.join("deleted-000002").exists(),
            "the leftover is removed"
        );
        assert_eq!(named(&dir), "deleted-000004");
        let r = run(&["verify", "--index", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        restore();

        type Edit = Box<dyn Fn(&mut Manifest)>;
        let first_entry = DeletedEntry {
            file: "deleted-000002".into(),
            count: 1,
            len: first.len() as u64,
            xxh3: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&first)),
        };
        let edits: Vec<(&str, Edit)> = vec![
            (
                "the entry dropped",
                Box::new(|m| m.segments[0].deleted = None),
            ),
            (
                "the entry pointed at a superseded bitmap",
                Box::new(move |m| m.segments[0].deleted = Some(first_entry.clone())),
            ),
        ];
        for (what, edit) in edits {
            // The superseded bitmap is there too (as after a crash before cleanup), so
            // that the edited entry describes a file that exists.
            fs::write(seg.join("deleted-000002"), &first).expect("writes");
            edit_manifest(&dir, edit);
            let err = textreuse::Index::open(&dir).expect_err(what).to_string();
            assert!(
                err.contains("deleted-000003") && err.contains("dropped"),
                "{what}: {err}"
            );
            let before = snapshot(&dir);
            for cmd in [
                vec!["verify", "--index", s(&dir)],
                vec!["query", "--index", s(&dir), &gone.text],
                vec!["query", "--index", s(&dir), "--id", &gone.id],
                vec!["clusters", "--index", s(&dir)],
            ] {
                let r = run(&cmd);
                assert_eq!(r.code, 2, "{what}: {cmd:?}: {r:?}");
                assert!(
                    r.stderr.contains("deleted-000003"),
                    "{what}: {cmd:?}: {r:?}"
                );
            }
            for cmd in [
                vec!["delete", "--index", s(&dir), "--id", &posts[7].id],
                vec![
                    "build",
                    "-q",
                    "--append",
                    "--input",
                    s(&new),
                    "--index",
                    s(&dir),
                ],
                vec!["merge", "--index", s(&dir)],
                vec!["clusters", "--save", "--index", s(&dir)],
            ] {
                let r = run(&cmd);
                assert_eq!(r.code, 2, "{what}: {cmd:?}: {r:?}");
                assert_eq!(snapshot(&dir), before, "{what}: {cmd:?} wrote");
            }
            restore();
            assert!(hidden(&dir), "{what}: restored");
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
