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
