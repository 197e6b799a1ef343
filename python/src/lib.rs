//! `textreuse._native`: the Python bindings of the `textreuse` library (PyO3, abi3).
//!
//! Everything here wraps the Rust library: normalization, hashing, the index format and
//! clustering are never re-implemented. Calls that take time release the GIL
//! (`Python::detach`) and run on the library's rayon pool. The Python package
//! (`textreuse/__init__.py`) re-exports these classes and adds pandas/pyarrow conveniences.

use std::path::PathBuf;
use std::sync::Mutex;

mod arrow;
mod table;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyModule, PyString};
use pyo3::{create_exception, intern};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use textreuse::cluster::ClusterOptions;
use textreuse::index::staged::{publish as publish_staged, PublishOptions, StagedBuilder};
use textreuse::index::{merge as merge_index, merge_within_budget, MergeOptions};
use textreuse::index::{
    Access, BuildOptions, BuildStats, Existing, Hit, HitRef, IndexBuilder, IndexReader, NewPost,
    OnExistingId, OpenOptions, PostOutcome, QueryOptions, TextCache,
};
use textreuse::input::{parse_timestamp, RawPost};
use textreuse::text::Hashtags;
use textreuse::{FingerprintParams, LshParams, Scratch};

create_exception!(
    textreuse,
    Error,
    PyException,
    "Base class of every error textreuse raises."
);
create_exception!(
    textreuse,
    InvalidInput,
    Error,
    "A post, argument or parameter is invalid (None or bytes where a str is needed, a string \
     that is not valid UTF-8, a NaN time, a missing column, an out-of-range parameter)."
);
create_exception!(
    textreuse,
    IndexLocked,
    Error,
    "Another writer holds the index's lock; wait for it to finish."
);
create_exception!(
    textreuse,
    IndexNotFound,
    Error,
    "The directory holds no index (no CURRENT file)."
);
create_exception!(
    textreuse,
    IndexExists,
    Error,
    "The directory already holds an index (choose mode=\"replace\" or \"append\")."
);
create_exception!(
    textreuse,
    CorruptIndex,
    Error,
    "An index file is damaged (bad magic, impossible lengths, checksum mismatch, bad manifest)."
);
create_exception!(
    textreuse,
    UnsupportedVersion,
    Error,
    "An index file was written by a format version this build cannot read."
);
create_exception!(
    textreuse,
    IoError,
    Error,
    "An operating-system error on an index or input file."
);

/// Converts a library error into the matching Python exception.
fn to_py(e: textreuse::Error) -> PyErr {
    use textreuse::Error as E;
    let msg = e.to_string();
    match &e {
        E::InvalidInput { .. } | E::InvalidParameter(_) => InvalidInput::new_err(msg),
        E::Locked { .. } => IndexLocked::new_err(msg),
        E::NoIndex { .. } => IndexNotFound::new_err(msg),
        E::IndexExists { .. } => IndexExists::new_err(msg),
        E::Damaged { .. } => CorruptIndex::new_err(msg),
        E::IndexState { what, .. } if what.contains("LOCK") => IndexLocked::new_err(msg),
        E::IndexState { what, .. } if what.starts_with("holds no index") => {
            IndexNotFound::new_err(msg)
        }
        E::IndexState { what, .. } if what.starts_with("already holds") => {
            IndexExists::new_err(msg)
        }
        E::BadMagic { .. }
        | E::Corrupt { .. }
        | E::ChecksumMismatch { .. }
        | E::Manifest { .. } => CorruptIndex::new_err(msg),
        E::UnsupportedVersion { .. } => UnsupportedVersion::new_err(msg),
        E::Io { .. } => IoError::new_err(msg),
        _ => Error::new_err(msg),
    }
}

fn invalid(msg: impl Into<String>) -> PyErr {
    InvalidInput::new_err(msg.into())
}

/// Where a value came from, for messages: `"text"` or `"row 12: text"`.
fn place(what: &str, row: Option<usize>) -> String {
    match row {
        Some(r) => format!("row {r}: {what}"),
        None => what.to_string(),
    }
}

/// A required string argument: `str` only (not None, not bytes), valid UTF-8.
fn req_str(obj: &Bound<'_, PyAny>, what: &str, row: Option<usize>) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return match s.to_cow() {
            Ok(c) => Ok(c.into_owned()),
            Err(_) => Err(surrogate(what, row)),
        };
    }
    Err(not_str(obj, what, row))
}

/// The error for a str that cannot be encoded as UTF-8.
fn surrogate(what: &str, row: Option<usize>) -> PyErr {
    invalid(format!(
        "{} is not valid UTF-8 (it holds a lone surrogate); fix or drop the record",
        place(what, row)
    ))
}

/// The error for a required string argument that is not a str.
fn not_str(obj: &Bound<'_, PyAny>, what: &str, row: Option<usize>) -> PyErr {
    if obj.is_none() {
        return invalid(format!("{} is None; a str is needed", place(what, row)));
    }
    if obj.cast::<PyBytes>().is_ok() {
        return invalid(format!(
            "{} is bytes; decode it to str first (texts must be valid UTF-8)",
            place(what, row)
        ));
    }
    invalid(format!(
        "{} must be str, not {}",
        place(what, row),
        type_name(obj)
    ))
}

/// An optional string: None gives `""`.
fn opt_str(obj: Option<&Bound<'_, PyAny>>, what: &str, row: Option<usize>) -> PyResult<String> {
    match obj {
        None => Ok(String::new()),
        Some(o) if o.is_none() => Ok(String::new()),
        Some(o) => req_str(o, what, row),
    }
}

/// A post id: `str`, or an `int` (written in decimal, as the JSONL reader does).
fn id_arg(obj: &Bound<'_, PyAny>, row: Option<usize>) -> PyResult<String> {
    if obj.cast::<pyo3::types::PyBool>().is_err() {
        if let Ok(i) = obj.cast::<pyo3::types::PyInt>() {
            return Ok(i.to_string());
        }
    }
    let id = req_str(obj, "id", row)?;
    if id.is_empty() {
        return Err(invalid(format!("{} is empty", place("id", row))));
    }
    Ok(id)
}

/// A time: None, unix seconds (int, or a finite float), an RFC 3339 string, or an object
/// with a `timestamp()` method (datetime, pandas Timestamp).
fn ts_arg(obj: Option<&Bound<'_, PyAny>>, what: &str, row: Option<usize>) -> PyResult<Option<i64>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if obj.cast::<pyo3::types::PyBool>().is_ok() {
        return Err(invalid(format!(
            "{} must be a time, not bool",
            place(what, row)
        )));
    }
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(Some(i));
    }
    if let Ok(f) = obj.cast::<pyo3::types::PyFloat>() {
        let f = f.value();
        if f.is_nan() {
            return Err(invalid(format!(
                "{} is NaN; use None for an unknown time",
                place(what, row)
            )));
        }
        if !f.is_finite() || f.abs() > 9.2e18 {
            return Err(invalid(format!(
                "{} is out of range ({f})",
                place(what, row)
            )));
        }
        return Ok(Some(f.floor() as i64));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s
            .to_cow()
            .map_err(|_| invalid(format!("{} is not valid UTF-8", place(what, row))))?;
        return parse_timestamp(&s).map(Some).ok_or_else(|| {
            invalid(format!(
                "{} {s:?} is not unix seconds or an RFC 3339 time",
                place(what, row)
            ))
        });
    }
    if obj.hasattr(intern!(obj.py(), "timestamp"))? {
        let v = obj
            .call_method0(intern!(obj.py(), "timestamp"))
            .map_err(|e| {
                invalid(format!(
                    "{} has no time ({}); use None for an unknown time",
                    place(what, row),
                    e
                ))
            })?;
        return ts_arg(Some(&v), what, row);
    }
    Err(invalid(format!(
        "{} must be unix seconds, an RFC 3339 string, a datetime or None, not {}",
        place(what, row),
        type_name(obj)
    )))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// One string or a list of strings (filters).
fn str_list(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<String>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if obj.is_none() {
        return Ok(Vec::new());
    }
    if obj.cast::<PyString>().is_ok() {
        return Ok(vec![req_str(obj, what, None)?]);
    }
    let mut out = Vec::new();
    for item in obj
        .try_iter()
        .map_err(|_| invalid(format!("{what} must be a str or a list of str")))?
    {
        out.push(req_str(&item?, what, None)?);
    }
    Ok(out)
}

/// A memory size: bytes as an int, or a string such as `"512M"` or `"2G"`.
fn size_arg(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(n) = obj.extract::<usize>() {
        return Ok(n);
    }
    let s = req_str(obj, "memory", None)?;
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => {
                    return Err(invalid(format!(
                        "invalid size {s:?}: use a number with K, M, G or T"
                    )))
                }
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| {
        invalid(format!(
            "invalid size {s:?}: use a number with K, M, G or T"
        ))
    })?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(invalid(format!("invalid size {s:?}")));
    }
    Ok((n * mult as f64) as usize)
}

/// Fingerprint parameters from keyword arguments, as the CLI's `build` flags.
#[allow(clippy::too_many_arguments)]
fn params_from(
    shingle: u32,
    num_perm: u32,
    keep_hashtags: bool,
    t2s: bool,
    bands: Option<u32>,
    rows: Option<u32>,
    threshold: Option<f64>,
    seed: Option<u64>,
) -> PyResult<FingerprintParams> {
    let mut p = FingerprintParams {
        shingle,
        num_perm,
        ..FingerprintParams::default()
    };
    if keep_hashtags {
        p.normalizer.hashtags = Hashtags::KeepWords;
    }
    p.normalizer.t2s = t2s;
    if let Some(seed) = seed {
        p.seed = seed;
    }
    match (bands, rows, threshold) {
        (Some(b), Some(r), None) => p.lsh = LshParams { bands: b, rows: r },
        (None, None, Some(t)) => {
            p.lsh = LshParams::optimal(t, num_perm as usize, 0.5, 0.5).map_err(to_py)?
        }
        (None, None, None) => {}
        _ => {
            return Err(invalid(
                "give bands and rows together, or threshold, or neither",
            ))
        }
    }
    p.validate().map_err(to_py)?;
    Ok(p)
}

fn to_json_obj<T: serde::Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let s = serde_json::to_string(v).map_err(|e| Error::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (s,))?.unbind())
}

fn hex32(h: u128) -> String {
    format!("{h:032x}")
}

// ---------------------------------------------------------------- Fingerprinter

/// What the engine sees of a text: normalization, tokens, content hash, MinHash signature
/// and LSH band keys, with the same rules as every index built with these parameters.
///
/// Args:
///     shingle: tokens per shingle (3).
///     num_perm: MinHash permutations (128).
///     keep_hashtags: keep hashtag words (``#Taiwan`` -> ``taiwan``) instead of removing them.
///     t2s: fold Traditional Chinese to Simplified (True).
///     bands, rows: LSH bands x rows (default 32 x 4); give both or neither.
///     threshold: choose bands and rows for this similarity threshold instead.
///     seed: permutation seed (the library's default when None).
#[pyclass(module = "textreuse", frozen, subclass)]
struct Fingerprinter {
    fp: textreuse::Fingerprinter,
}

#[pymethods]
impl Fingerprinter {
    #[new]
    #[pyo3(signature = (shingle=3, num_perm=128, keep_hashtags=false, t2s=true, bands=None, rows=None, threshold=None, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        shingle: u32,
        num_perm: u32,
        keep_hashtags: bool,
        t2s: bool,
        bands: Option<u32>,
        rows: Option<u32>,
        threshold: Option<f64>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let p = params_from(
            shingle,
            num_perm,
            keep_hashtags,
            t2s,
            bands,
            rows,
            threshold,
            seed,
        )?;
        Ok(Fingerprinter {
            fp: textreuse::Fingerprinter::new(p).map_err(to_py)?,
        })
    }

    /// The parameters, as stored in an index's manifest (a dict).
    #[getter]
    fn params(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_json_obj(py, self.fp.params())
    }

    /// The normalized text: NFKC, lowercase, Traditional -> Simplified, lookalikes folded,
    /// URLs, mentions, hashtags, emoji, digits and punctuation removed; tokens joined by
    /// single spaces.
    fn normalize(&self, text: &Bound<'_, PyAny>) -> PyResult<String> {
        let t = req_str(text, "text", None)?;
        let mut s = Scratch::new();
        Ok(self.fp.normalize(&t, &mut s).text().to_string())
    }

    /// The tokens of the normalized text (one per Han/kana character, one per other word).
    fn tokens(&self, text: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let t = req_str(text, "text", None)?;
        let mut s = Scratch::new();
        Ok(self
            .fp
            .normalize(&t, &mut s)
            .tokens()
            .map(str::to_string)
            .collect())
    }

    /// Fingerprints one text. Returns None when no token is left after normalization,
    /// else a dict: ``content_hash`` (32 hex digits, as ``textreuse fingerprint``),
    /// ``signature`` (the MinHash minima: little-endian uint32 bytes, or a numpy uint32
    /// array with ``numpy=True``), ``band_keys`` (list of int, one per band) and
    /// ``shingles`` (count).
    #[pyo3(signature = (text, numpy=false))]
    fn fingerprint(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        numpy: bool,
    ) -> PyResult<Py<PyAny>> {
        let t = req_str(text, "text", None)?;
        let Some(f) = self.fp.fingerprint(&t) else {
            return Ok(py.None());
        };
        let mut keys = Vec::new();
        self.fp.band_keys(&f.signature, &mut keys);
        let d = PyDict::new(py);
        d.set_item("content_hash", hex32(f.content_hash))?;
        let sig: Vec<u8> = f.signature.iter().flat_map(|x| x.to_le_bytes()).collect();
        let sig = PyBytes::new(py, &sig);
        if numpy {
            let np = py.import("numpy")?;
            d.set_item("signature", np.call_method1("frombuffer", (sig, "<u4"))?)?;
        } else {
            d.set_item("signature", sig)?;
        }
        d.set_item("band_keys", keys)?;
        d.set_item("shingles", f.shingles)?;
        Ok(d.into_any().unbind())
    }

    /// Fingerprints many texts in parallel, with the GIL released. ``texts``: a list (or
    /// iterable) of str, or a pyarrow ``string``/``large_string`` Array (or ChunkedArray)
    /// read in place.
    /// Returns a dict of numpy arrays, one row per text: ``content_hash`` (str, "" for an
    /// empty text), ``signature`` (uint32, n x num_perm), ``band_keys`` (uint64, n x bands)
    /// and ``empty`` (bool: no token left; its signature and keys are zeros). A null in an
    /// Arrow array raises InvalidInput, or counts as an empty text with
    /// ``null_as_empty=True``.
    #[pyo3(signature = (texts, null_as_empty=false))]
    fn fingerprint_many(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        null_as_empty: bool,
    ) -> PyResult<Py<PyAny>> {
        let texts = &one_array(texts)?;
        if is_arrow_array(texts)? {
            let col = arrow::StrArray::new(texts, "text")?;
            let strs = if null_as_empty {
                col.optional(0)?
            } else {
                col.required(0)?
            };
            return self.fingerprint_strs(py, &strs);
        }
        let encoded = texts_arg(texts)?;
        let owned = as_strs(py, &encoded)?;
        self.fingerprint_strs(py, &owned)
    }

    fn __repr__(&self) -> String {
        let p = self.fp.params();
        format!(
            "Fingerprinter(shingle={}, num_perm={}, bands={}, rows={}, keep_hashtags={}, t2s={})",
            p.shingle,
            p.num_perm,
            p.lsh.bands,
            p.lsh.rows,
            p.normalizer.hashtags == Hashtags::KeepWords,
            p.normalizer.t2s
        )
    }
}

/// A pyarrow ChunkedArray (a Table's column) as one Array; anything else as it is.
fn one_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if obj.hasattr(intern!(py, "combine_chunks"))? {
        obj.call_method0(intern!(py, "combine_chunks"))
    } else {
        Ok(obj.clone())
    }
}

/// Whether `obj` is a pyarrow Array (it has `buffers()` and a `type`).
fn is_arrow_array(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    Ok(obj.hasattr(intern!(py, "buffers"))? && obj.hasattr(intern!(py, "type"))?)
}

impl Fingerprinter {
    /// [`fingerprint_many`](Fingerprinter::fingerprint_many) of borrowed texts.
    fn fingerprint_strs(&self, py: Python<'_>, owned: &[&str]) -> PyResult<Py<PyAny>> {
        let k = self.fp.params().num_perm as usize;
        let bands = self.fp.params().lsh.bands as usize;
        let n = owned.len();
        let fp = &self.fp;
        let (hex, sigs, keys, empty) = py.detach(|| {
            let mut hex = vec![0u8; n * 32];
            let mut sigs = vec![0u8; n * k * 4];
            let mut keys = vec![0u8; n * bands * 8];
            let mut empty = vec![0u8; n];
            const CHUNK: usize = 256;
            hex.par_chunks_mut(CHUNK * 32)
                .zip(sigs.par_chunks_mut(CHUNK * k * 4))
                .zip(keys.par_chunks_mut(CHUNK * bands * 8))
                .zip(empty.par_chunks_mut(CHUNK))
                .zip(owned.par_chunks(CHUNK))
                .for_each_init(
                    || (Scratch::new(), Vec::new()),
                    |(scratch, kbuf), ((((hx, sg), ky), em), ts)| {
                        for (i, t) in ts.iter().enumerate() {
                            match fp.fingerprint_with(t, scratch) {
                                Some(f) => {
                                    let h = hex32(f.content_hash);
                                    hx[i * 32..(i + 1) * 32].copy_from_slice(h.as_bytes());
                                    for (j, m) in f.signature.iter().enumerate() {
                                        let o = (i * k + j) * 4;
                                        sg[o..o + 4].copy_from_slice(&m.to_le_bytes());
                                    }
                                    fp.band_keys(f.signature, kbuf);
                                    for (j, key) in kbuf.iter().enumerate() {
                                        let o = (i * bands + j) * 8;
                                        ky[o..o + 8].copy_from_slice(&key.to_le_bytes());
                                    }
                                }
                                None => em[i] = 1,
                            }
                        }
                    },
                );
            (hex, sigs, keys, empty)
        });
        let np = py.import("numpy")?;
        let arr = |bytes: Vec<u8>, dtype: &str, cols: usize| -> PyResult<Bound<'_, PyAny>> {
            let b = PyBytes::new(py, &bytes);
            let a = np.call_method1("frombuffer", (b, dtype))?;
            if cols > 0 {
                a.call_method1("reshape", (n, cols))
            } else {
                Ok(a)
            }
        };
        let d = PyDict::new(py);
        let hx = arr(hex, "S32", 0)?.call_method1("astype", ("U32",))?;
        d.set_item("content_hash", hx)?;
        d.set_item("signature", arr(sigs, "<u4", k)?)?;
        d.set_item("band_keys", arr(keys, "<u8", bands)?)?;
        d.set_item("empty", arr(empty, "?", 0)?)?;
        Ok(d.into_any().unbind())
    }
}

/// A sequence of texts, checked and copied out of Python (a str alone is refused).
/// The texts of a list (or iterable) of str, encoded once into UTF-8 `bytes` objects: their
/// contents are borrowed as `&str` ([`as_strs`]) with the GIL released, never copied into
/// Rust strings.
fn texts_arg<'py>(texts: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    Ok(texts_arg_kept(texts)?.1)
}

/// [`texts_arg`], also returning the `str` objects themselves.
#[allow(clippy::type_complexity)]
fn texts_arg_kept<'py>(
    texts: &Bound<'py, PyAny>,
) -> PyResult<(Vec<Bound<'py, PyString>>, Vec<Bound<'py, PyBytes>>)> {
    if texts.cast::<PyString>().is_ok() {
        return Err(invalid("texts must be a list of str, not one str"));
    }
    let it = texts.try_iter().map_err(|_| {
        invalid(format!(
            "texts must be a list of str, not {}",
            type_name(texts)
        ))
    })?;
    let n = texts.len().unwrap_or(0);
    let (mut strs, mut out) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, t) in it.enumerate() {
        let t = t?;
        let s = t
            .cast_into::<PyString>()
            .map_err(|e| not_str(e.into_inner().as_any(), "text", Some(i)))?;
        out.push(s.encode_utf8().map_err(|_| surrogate("text", Some(i)))?);
        strs.push(s);
    }
    Ok((strs, out))
}

/// The texts [`texts_arg`] encoded, borrowed.
/// (Checked in parallel with the GIL released: on one thread it was a sixth of what
/// `query_many` does besides the lookups.)
fn as_strs<'a>(py: Python<'_>, texts: &'a [Bound<'_, PyBytes>]) -> PyResult<Vec<&'a str>> {
    let bytes: Vec<&'a [u8]> = texts.iter().map(|b| b.as_bytes()).collect();
    py.detach(|| {
        bytes
            .par_iter()
            .enumerate()
            .map(|(i, b)| std::str::from_utf8(b).map_err(|_| i))
            .collect::<Result<Vec<_>, usize>>()
    })
    .map_err(|i| surrogate("text", Some(i)))
}

// ---------------------------------------------------------------- Index

/// An open index (memory-mapped; opening is instant whatever its size). Share one object
/// between threads: queries release the GIL and run concurrently. ``reload()`` picks up a
/// newer generation (after an append, delete or merge) without disturbing queries in flight.
#[pyclass(module = "textreuse", frozen, subclass)]
struct Index {
    reader: IndexReader,
    path: PathBuf,
    /// Scratch buffers kept for the next single lookup (`query`): a lookup's fingerprint
    /// and candidate buffers are then reused, not allocated anew each call.
    scratches: Mutex<Vec<Scratch>>,
}

/// Scratch buffers an `Index` keeps for reuse (more threads than this at once make their
/// own).
const MAX_POOLED_SCRATCHES: usize = 64;

/// Longest query text (bytes) whose lookup uses a pooled scratch: a scratch's buffers grow
/// with the text it last took, and a pooled one would keep a long text's for good.
const MAX_POOLED_TEXT_BYTES: usize = 64 << 10;

impl Index {
    /// A pooled scratch, or a new one when all are in use.
    fn take_scratch(&self) -> Scratch {
        self.scratches
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }

    /// Gives a scratch back to the pool.
    fn give_scratch(&self, scratch: Scratch) {
        if let Ok(mut v) = self.scratches.lock() {
            if v.len() < MAX_POOLED_SCRATCHES {
                v.push(scratch);
            }
        }
    }
}

/// The query options of one call.
struct Q {
    opts: QueryOptions,
}

#[allow(clippy::too_many_arguments)]
fn query_opts(
    limit: usize,
    min_similarity: f64,
    platform: Option<&Bound<'_, PyAny>>,
    account: Option<&Bound<'_, PyAny>>,
    since: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
    exact: bool,
    with_text: bool,
    expand: bool,
) -> PyResult<Q> {
    if !(0.0..=1.0).contains(&min_similarity) {
        return Err(invalid(format!(
            "min_similarity must be between 0 and 1, not {min_similarity}"
        )));
    }
    Ok(Q {
        opts: QueryOptions {
            min_similarity,
            exact_near_threshold: exact,
            limit,
            platforms: str_list(platform, "platform")?,
            accounts: str_list(account, "account")?,
            since: ts_arg(since, "since", None)?,
            until: ts_arg(until, "until", None)?,
            with_text,
            expand,
            ..QueryOptions::default()
        },
    })
}

/// Python strings made once per call for the values many hits share (platforms): a
/// platform is compared with the few seen before instead of being decoded again.
struct StrCache<'py> {
    seen: Vec<(String, Bound<'py, PyString>)>,
}

/// Distinct similarity values a call remembers ([`HitDicts::similarity`]); past them,
/// each hit gets its own `float`.
const MAX_CACHED_SIMS: usize = 4096;

/// Distinct platforms a call remembers ([`StrCache`]); a call with more makes the others
/// anew each time.
const MAX_CACHED_STRS: usize = 16;

impl<'py> StrCache<'py> {
    fn new() -> Self {
        StrCache { seen: Vec::new() }
    }

    fn get(&mut self, py: Python<'py>, s: &str) -> Bound<'py, PyString> {
        if let Some((_, o)) = self.seen.iter().find(|(k, _)| *k == s) {
            return o.clone();
        }
        let o = PyString::new(py, s);
        if self.seen.len() < MAX_CACHED_STRS {
            self.seen.push((s.to_string(), o.clone()));
        }
        o
    }
}

/// The values of one hit's dict ([`HitDicts::dict`]), from an owned or a borrowed hit.
struct HitFields<'a, 'py> {
    id: &'a str,
    similarity: f64,
    account: Bound<'py, PyString>,
    platform: Bound<'py, PyString>,
    ts: Option<i64>,
    text: Option<Text<'a, 'py>>,
    cluster: Option<u32>,
    expanded: bool,
}

/// A hit's text: to be made into a `str`, or one that exists already (the query's).
#[derive(Clone, Copy)]
enum Text<'a, 'py> {
    Str(&'a str),
    Py(&'a Bound<'py, PyString>),
}

/// Makes the hit dicts of one call: each a copy of a template dict that holds the keys of
/// a hit in their order (a copy clones the key table: no hashing, no resizing as keys are
/// added), with platform strings shared through a [`StrCache`].
struct HitDicts<'py> {
    template: Bound<'py, PyDict>,
    strs: StrCache<'py>,
    /// Names borrowed from the index, by address and length ([`HitDicts::named`]).
    names: FxHashMap<(usize, usize), Bound<'py, PyString>>,
    /// Similarity `float`s by their bits ([`HitDicts::similarity`]).
    sims: FxHashMap<u64, Bound<'py, PyFloat>>,
}

impl<'py> HitDicts<'py> {
    fn new(py: Python<'py>) -> PyResult<Self> {
        let template = PyDict::new(py);
        for k in ["id", "similarity", "account", "platform", "ts", "text"] {
            template.set_item(PyString::intern(py, k), py.None())?;
        }
        Ok(HitDicts {
            template,
            strs: StrCache::new(),
            names: FxHashMap::default(),
            sims: FxHashMap::default(),
        })
    }

    /// The hits of one lookup as a list of dicts with the fields of `query --json`.
    fn list(&mut self, py: Python<'py>, hits: &[Hit]) -> PyResult<Bound<'py, PyList>> {
        let dicts = hits
            .iter()
            .map(|h| {
                let platform = self.strs.get(py, &h.platform);
                self.dict(
                    py,
                    &HitFields {
                        id: &h.id,
                        similarity: h.similarity,
                        account: PyString::new(py, &h.account),
                        platform,
                        ts: h.ts,
                        text: h.text.as_deref().map(Text::Str),
                        cluster: h.cluster,
                        expanded: h.expanded,
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, dicts)
    }

    /// The hits of one [`stream_lookups`] lookup as dicts, like [`list`](Self::list).
    /// Accounts and platforms are made once per call: their strings live in the index's
    /// name tables, so a string's address identifies it.
    fn list_refs(
        &mut self,
        py: Python<'py>,
        found: &Looked<'_>,
        query: Option<&Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let dicts = found
            .hits
            .iter()
            .zip(&found.spans)
            .map(|(h, span)| {
                let (account, platform) = (self.named(py, h.account), self.named(py, h.platform));
                self.dict(
                    py,
                    &HitFields {
                        id: h.id,
                        similarity: h.similarity,
                        account,
                        platform,
                        ts: h.ts,
                        text: match span {
                            Some(HitText::Buffer(r)) => found.texts.get(r.clone()).map(Text::Str),
                            Some(HitText::Query) => query.map(Text::Py),
                            None => None,
                        },
                        cluster: h.cluster,
                        expanded: h.expanded,
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, dicts)
    }

    /// One hit's dict: a copy of the template with the hit's values.
    fn dict(&mut self, py: Python<'py>, h: &HitFields<'_, 'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = self.template.copy()?;
        d.set_item(intern!(py, "id"), h.id)?;
        d.set_item(intern!(py, "similarity"), self.similarity(py, h.similarity))?;
        d.set_item(intern!(py, "account"), &h.account)?;
        d.set_item(intern!(py, "platform"), &h.platform)?;
        d.set_item(intern!(py, "ts"), h.ts)?;
        match h.text {
            Some(Text::Str(t)) => d.set_item(intern!(py, "text"), t)?,
            Some(Text::Py(t)) => d.set_item(intern!(py, "text"), t)?,
            None => d.del_item(intern!(py, "text"))?,
        }
        if let Some(c) = h.cluster {
            d.set_item(intern!(py, "cluster"), c)?;
        }
        if h.expanded {
            d.set_item(intern!(py, "expanded"), true)?;
        }
        Ok(d)
    }

    /// A similarity as a Python `float`, made once per call for each value: similarities
    /// are fractions of signature positions, so a call's hits share a few hundred values.
    fn similarity(&mut self, py: Python<'py>, x: f64) -> Bound<'py, PyFloat> {
        if self.sims.len() >= MAX_CACHED_SIMS {
            return PyFloat::new(py, x);
        }
        self.sims
            .entry(x.to_bits())
            .or_insert_with(|| PyFloat::new(py, x))
            .clone()
    }

    /// The Python string of a name borrowed from the index (an account or platform),
    /// made once per call.
    fn named(&mut self, py: Python<'py>, s: &str) -> Bound<'py, PyString> {
        self.names
            .entry((s.as_ptr() as usize, s.len()))
            .or_insert_with(|| PyString::new(py, s))
            .clone()
    }
}

/// One lookup of [`stream_lookups`] as the pool hands it to the Python thread: hits
/// borrowed from the index (no string copied out) and their texts in one buffer.
struct Looked<'a> {
    hits: Vec<HitRef<'a>>,
    texts: String,
    /// Each hit's text, if stored and asked for.
    spans: Vec<Option<HitText>>,
}

/// Where a hit's text is ([`Looked`]).
#[derive(Clone)]
enum HitText {
    /// In the lookup's buffer.
    Buffer(std::ops::Range<usize>),
    /// The same as the query text: the query's own `str` is reused (a lookup into a
    /// campaign of copies finds the query's text again and again; the post itself, when
    /// the query is an indexed post).
    Query,
}

/// Looks `text` up for [`stream_lookups`]: [`Index::query_refs_cached`], then the hits'
/// texts (when `opts.with_text`) decoded in storage order through the same cache, so the
/// exact checks and hits sharing a compressed block share one decompression, as the
/// library's owned lookup does.
fn look<'a>(
    index: &'a textreuse::index::Index,
    text: &str,
    opts: &QueryOptions,
    scratch: &mut Scratch,
    cache: &mut TextCache,
) -> textreuse::Result<Looked<'a>> {
    let r = index.query_refs_cached(text, opts, scratch, cache)?;
    let mut spans = vec![None; r.hits.len()];
    let mut texts = String::new();
    if opts.with_text {
        let mut order: Vec<usize> = (0..r.hits.len()).collect();
        order.sort_unstable_by_key(|&i| (r.hits[i].addr.segment, r.hits[i].addr.post));
        for i in order {
            let start = texts.len();
            if index.text_at_into(r.hits[i].addr, cache, &mut texts)? {
                spans[i] = Some(if texts[start..] == *text {
                    texts.truncate(start);
                    HitText::Query
                } else {
                    HitText::Buffer(start..texts.len())
                });
            }
        }
    }
    Ok(Looked {
        hits: r.hits,
        texts,
        spans,
    })
}

/// Python's cyclic garbage collector held off while this thread makes one chunk of hit
/// dicts, without releasing the GIL in between, so no other Python code runs while it is
/// off. The collector counts every dict and list made, tracked or not, and ran a
/// generation-0 pass every 700 of them (about 3 ms of a 5,000-query call, and passes over
/// the whole heap as the dicts aged); held off, it runs once when turned back on. Left as
/// the caller had it when it was off already.
struct GcPause<'a, 'py> {
    gc: Option<&'a Bound<'py, PyModule>>,
}

impl<'a, 'py> GcPause<'a, 'py> {
    fn new(py: Python<'py>, gc: &'a Bound<'py, PyModule>) -> PyResult<Self> {
        let on = gc.call_method0(intern!(py, "isenabled"))?.is_truthy()?;
        if on {
            gc.call_method0(intern!(py, "disable"))?;
        }
        Ok(GcPause {
            gc: on.then_some(gc),
        })
    }

    /// Turns the collector back on (if this pause turned it off).
    fn end(mut self) -> PyResult<()> {
        match self.gc.take() {
            Some(gc) => gc.call_method0(intern!(gc.py(), "enable")).map(drop),
            None => Ok(()),
        }
    }
}

impl Drop for GcPause<'_, '_> {
    /// On an early return (an error) the collector is turned back on all the same.
    fn drop(&mut self) {
        if let Some(gc) = self.gc.take() {
            let _ = gc.call_method0(intern!(gc.py(), "enable"));
        }
    }
}

/// Finished lookups handed from the pool to the Python thread ([`stream_lookups`]).
struct Handoff<'a> {
    /// A lookup's hits, or its error (a panic, which the library never should, is one).
    ready: Vec<(usize, PyResult<Looked<'a>>)>,
    /// Lookups finished or skipped so far.
    done: usize,
}

/// Lookups the Python thread takes at a time from the pool: waking it for each lookup
/// cost more than its dicts (a GIL hand-over and a thread wake-up per lookup).
const HANDOFF_CHUNK: usize = 128;

/// The hit lists of `texts`' lookups, in input order. The pool looks the texts up with
/// the GIL released while this thread turns finished lookups into dicts, a chunk at a
/// time: the dicts of one lookup cost about a fifth of the lookup, and this way they are
/// made while the other lookups run instead of after all of them.
fn stream_lookups<'py>(
    py: Python<'py>,
    index: &textreuse::index::Index,
    originals: &[Bound<'py, PyString>],
    texts: &[&[u8]],
    opts: &QueryOptions,
) -> PyResult<Vec<Bound<'py, PyList>>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Condvar, Mutex};
    let n = texts.len();
    let stop = AtomicBool::new(false);
    let shared = Mutex::new(Handoff {
        ready: Vec::new(),
        done: 0,
    });
    let wake = Condvar::new();
    let mut lists: Vec<Option<Bound<'py, PyList>>> = vec![None; n];
    std::thread::scope(|scope| -> PyResult<()> {
        let (stop, shared, wake) = (&stop, &shared, &wake);
        scope.spawn(move || {
            texts.par_iter().enumerate().for_each_init(
                || (Scratch::new(), TextCache::default()),
                |(s, c), (i, t)| {
                    let found = (!stop.load(Ordering::Relaxed)).then(|| {
                        // A panic must not leave this thread waiting for a lookup forever.
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let t =
                                std::str::from_utf8(t).map_err(|_| surrogate("text", Some(i)))?;
                            look(index, t, opts, s, c).map_err(to_py)
                        }))
                        .unwrap_or_else(|_| Err(PyException::new_err("a lookup panicked")))
                    });
                    let Ok(mut h) = shared.lock() else { return };
                    h.done += 1;
                    if let Some(f) = found {
                        h.ready.push((i, f));
                    }
                    if h.ready.len() >= HANDOFF_CHUNK || h.done == n {
                        wake.notify_one();
                    }
                },
            );
        });
        let mut make = || -> PyResult<()> {
            let mut dicts = HitDicts::new(py)?;
            let gc_mod = py.import("gc")?;
            let mut taken = 0;
            while taken < n {
                let want = HANDOFF_CHUNK.min(n - taken);
                // Wait, with the GIL released, for a chunk (or the last lookups).
                let batch = py.detach(|| {
                    let mut h = shared.lock().map_err(|_| ())?;
                    while h.ready.len() < want && h.done < n {
                        h = wake.wait(h).map_err(|_| ())?;
                    }
                    Ok::<_, ()>(std::mem::take(&mut h.ready))
                });
                let batch = batch.map_err(|()| PyException::new_err("a lookup thread panicked"))?;
                if batch.is_empty() {
                    return Err(PyException::new_err("a lookup gave no answer"));
                }
                taken += batch.len();
                let gc = GcPause::new(py, &gc_mod)?;
                for (i, found) in batch {
                    lists[i] = Some(dicts.list_refs(py, &found?, originals.get(i))?);
                }
                gc.end()?;
            }
            Ok(())
        };
        let r = make();
        if r.is_err() {
            // The remaining lookups are skipped; the scope then waits for those in flight.
            stop.store(true, Ordering::Relaxed);
        }
        r
    })?;
    lists
        .into_iter()
        .map(|l| l.ok_or_else(|| PyException::new_err("a lookup gave no answer")))
        .collect()
}

#[pymethods]
impl Index {
    #[new]
    #[pyo3(signature = (path, in_memory=false, prefetch=false))]
    fn new(py: Python<'_>, path: PathBuf, in_memory: bool, prefetch: bool) -> PyResult<Self> {
        let opts = OpenOptions {
            access: if in_memory {
                Access::InMemory
            } else {
                Access::Mmap
            },
            prefetch,
        };
        let reader = py
            .detach(|| IndexReader::open_with(&path, opts))
            .map_err(to_py)?;
        Ok(Index {
            reader,
            path,
            scratches: Mutex::new(Vec::new()),
        })
    }

    /// Opens the index in directory ``path``: memory-mapped, or with ``in_memory`` read into
    /// memory (huge pages on Linux; warm lookups about a fifth faster, and open reads every
    /// file but the stored texts). ``prefetch`` asks the kernel to read in each lookup's
    /// pages together before probing (for an index mostly not in the page cache).
    #[staticmethod]
    #[pyo3(signature = (path, in_memory=false, prefetch=false))]
    fn open(py: Python<'_>, path: PathBuf, in_memory: bool, prefetch: bool) -> PyResult<Self> {
        Index::new(py, path, in_memory, prefetch)
    }

    /// The index directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The manifest generation this object answers from.
    #[getter]
    fn generation(&self) -> u64 {
        self.reader.searcher().manifest().generation
    }

    /// The fingerprinter of the index's parameters (queries are fingerprinted with it).
    #[getter]
    fn fingerprinter(&self) -> Fingerprinter {
        Fingerprinter {
            fp: self.reader.searcher().fingerprinter().clone(),
        }
    }

    /// Live posts.
    fn __len__(&self) -> usize {
        self.reader.searcher().num_posts() as usize
    }

    /// Looks a text up. Returns the hits, best first (by similarity, then time, then id), as
    /// dicts with the fields of ``textreuse query --json``: ``id``, ``similarity``,
    /// ``account``, ``platform``, ``ts`` (unix seconds or None), ``text`` (when stored and
    /// ``with_text``), and ``cluster``/``expanded`` when saved clusters apply.
    ///
    /// Args:
    ///     limit: most hits (0 = all).
    ///     min_similarity: least Jaccard similarity.
    ///     platform, account: keep only these (a str or a list of str).
    ///     since, until: time range (unix seconds, RFC 3339 string or datetime).
    ///     exact: settle hits whose estimate is too close to ``min_similarity`` by the exact
    ///         Jaccard of the stored texts, as the CLI does (``--estimate-only`` = False).
    ///     with_text: return stored texts.
    ///     expand: also return every member of the saved clusters of the direct hits.
    #[pyo3(signature = (text, limit=10, min_similarity=0.5, platform=None, account=None, since=None, until=None, exact=true, with_text=true, expand=false))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        limit: usize,
        min_similarity: f64,
        platform: Option<&Bound<'py, PyAny>>,
        account: Option<&Bound<'py, PyAny>>,
        since: Option<&Bound<'py, PyAny>>,
        until: Option<&Bound<'py, PyAny>>,
        exact: bool,
        with_text: bool,
        expand: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let t = req_str(text, "text", None)?;
        let q = query_opts(
            limit,
            min_similarity,
            platform,
            account,
            since,
            until,
            exact,
            with_text,
            expand,
        )?;
        let index = self.reader.searcher();
        let r = py
            .detach(|| {
                if t.len() > MAX_POOLED_TEXT_BYTES {
                    return index.query_with(&t, &q.opts, &mut Scratch::new());
                }
                let mut scratch = self.take_scratch();
                let r = index.query_with(&t, &q.opts, &mut scratch);
                self.give_scratch(scratch);
                r
            })
            .map_err(to_py)?;
        HitDicts::new(py)?.list(py, &r.hits)
    }

    /// Looks many texts up in parallel; returns one list of hits per text, in input order
    /// (arguments as for :meth:`query`). The lookups run on the library's thread pool
    /// without the GIL while the calling thread makes the hit dicts of those that finished
    /// (it releases the GIL whenever it waits for more).
    #[pyo3(signature = (texts, limit=10, min_similarity=0.5, platform=None, account=None, since=None, until=None, exact=true, with_text=true, expand=false))]
    #[allow(clippy::too_many_arguments)]
    fn query_many<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        limit: usize,
        min_similarity: f64,
        platform: Option<&Bound<'py, PyAny>>,
        account: Option<&Bound<'py, PyAny>>,
        since: Option<&Bound<'py, PyAny>>,
        until: Option<&Bound<'py, PyAny>>,
        exact: bool,
        with_text: bool,
        expand: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let (originals, encoded) = texts_arg_kept(texts)?;
        // Checked as UTF-8 by the lookups themselves, in parallel.
        let bytes: Vec<&[u8]> = encoded.iter().map(|b| b.as_bytes()).collect();
        let q = query_opts(
            limit,
            min_similarity,
            platform,
            account,
            since,
            until,
            exact,
            with_text,
            expand,
        )?;
        let index = self.reader.searcher();
        let lists = stream_lookups(py, &index, &originals, &bytes, &q.opts)?;
        PyList::new(py, lists)
    }

    /// Looks many texts up in parallel, like :meth:`query_many`, and returns the hits as one
    /// ``pyarrow.Table``, one row per hit: ``query`` (the text's position in ``texts``), then
    /// the fields of a hit dict: ``id``, ``similarity``, ``account``, ``platform``, ``ts``
    /// (null when unknown), ``text`` (only when ``with_text``; null when not stored),
    /// ``cluster`` (null when none) and ``expanded``. Rows are in input order, each text's
    /// hits best first. The lookups and the columns are made without the GIL; no Python
    /// object is made per hit, so it is the faster way to many hits (``.to_pandas()``).
    /// ``texts`` may also be a pyarrow string array or a Table's column, read in place (a
    /// null raises InvalidInput naming its row).
    #[pyo3(signature = (texts, limit=10, min_similarity=0.5, platform=None, account=None, since=None, until=None, exact=true, with_text=true, expand=false))]
    #[allow(clippy::too_many_arguments)]
    fn query_arrow<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        limit: usize,
        min_similarity: f64,
        platform: Option<&Bound<'py, PyAny>>,
        account: Option<&Bound<'py, PyAny>>,
        since: Option<&Bound<'py, PyAny>>,
        until: Option<&Bound<'py, PyAny>>,
        exact: bool,
        with_text: bool,
        expand: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        // An Arrow string array (or a Table's column) is read in place, as by
        // `fingerprint_many`; anything else must be a sequence of str.
        let texts = &one_array(texts)?;
        let (arrow_col, encoded);
        let bytes: Vec<&[u8]> = if is_arrow_array(texts)? {
            arrow_col = arrow::StrArray::new(texts, "text")?;
            // Rows named by their position, as the `query` column and a list's errors name them.
            (0..arrow_col.len())
                .map(|i| {
                    arrow_col.get(i, i)?.map(str::as_bytes).ok_or_else(|| {
                        invalid(format!("row {i}: text is null (None); a str is needed"))
                    })
                })
                .collect::<PyResult<_>>()?
        } else {
            encoded = texts_arg(texts)?;
            encoded.iter().map(|b| b.as_bytes()).collect()
        };
        let q = query_opts(
            limit,
            min_similarity,
            platform,
            account,
            since,
            until,
            exact,
            with_text,
            expand,
        )?;
        let index = self.reader.searcher();
        let chunks = py.detach(|| table::lookups(&index, &bytes, &q.opts))?;
        table::table(py, &chunks, with_text)
    }

    /// Times the library's own ``Index.query_batch`` on these texts (no Python objects made
    /// for the hits): seconds taken and hits found. For comparing with :meth:`query_many`.
    #[pyo3(signature = (texts, limit=10, min_similarity=0.5, exact=true, with_text=true))]
    fn _time_query_batch(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        limit: usize,
        min_similarity: f64,
        exact: bool,
        with_text: bool,
    ) -> PyResult<(f64, usize)> {
        let encoded = texts_arg(texts)?;
        let owned = as_strs(py, &encoded)?;
        let q = query_opts(
            limit,
            min_similarity,
            None,
            None,
            None,
            None,
            exact,
            with_text,
            false,
        )?;
        let index = self.reader.searcher();
        py.detach(|| {
            let t = std::time::Instant::now();
            let results = index.query_batch(&owned, &q.opts);
            let secs = t.elapsed().as_secs_f64();
            let mut hits = 0;
            for r in results {
                hits += r.map_err(to_py)?.hits.len();
            }
            Ok((secs, hits))
        })
    }

    /// The live post with this id as a dict (``id``, ``account``, ``platform``, ``ts``,
    /// ``text``), or None.
    fn post(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let id = id_arg(id, None)?;
        let index = self.reader.searcher();
        let p = py.detach(|| index.post(&id)).map_err(to_py)?;
        let Some(p) = p else { return Ok(py.None()) };
        let d = PyDict::new(py);
        d.set_item("id", p.id)?;
        d.set_item("account", p.account)?;
        d.set_item("platform", p.platform)?;
        d.set_item("ts", p.ts)?;
        d.set_item("text", p.text)?;
        Ok(d.into_any().unbind())
    }

    /// Counts, parameters and sizes (the fields of ``textreuse stats --json``).
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_json_obj(py, &self.reader.searcher().stats())
    }

    /// Switches to the newest generation if there is one; returns whether it did.
    fn reload(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.reader.reload()).map_err(to_py)
    }

    /// Checks every checksum of every file (a full read); raises CorruptIndex on damage.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        let index = self.reader.searcher();
        py.detach(|| index.verify()).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        let i = self.reader.searcher();
        format!(
            "Index({:?}, posts={}, segments={}, generation={})",
            self.path.display().to_string(),
            i.num_posts(),
            i.segments().len(),
            i.manifest().generation
        )
    }
}

// ---------------------------------------------------------------- IndexBuilder

enum Writer {
    Build(IndexBuilder),
    Staged(StagedBuilder),
}

impl Writer {
    fn add<'p, P>(&mut self, posts: &'p [P]) -> textreuse::Result<Vec<PostOutcome>>
    where
        &'p P: Into<NewPost<'p>>,
    {
        match self {
            Writer::Build(b) => b.add(posts),
            Writer::Staged(b) => b.add(posts),
        }
    }
    fn stats(&self) -> &BuildStats {
        match self {
            Writer::Build(b) => b.stats(),
            Writer::Staged(b) => b.stats(),
        }
    }
}

/// Posts buffered before they are handed to the library (fingerprinted in parallel).
const BATCH: usize = 16_384;
/// Skipped posts remembered for :attr:`IndexBuilder.skipped`.
const MAX_SKIPPED: usize = 1_000;

struct BuilderState {
    writer: Option<Writer>,
    pending: Vec<RawPost>,
    /// Row number (1-based, over every add) of each pending post.
    pending_rows: Vec<u64>,
    rows: u64,
    skipped: Vec<(u64, String, &'static str)>,
    /// The counts of the finished build.
    finished: Option<BuildStats>,
    /// The builder's own worker threads (`threads=`), else None: the shared pool.
    pool: Option<rayon::ThreadPool>,
}

impl BuilderState {
    /// Runs `f` (a library call) on the builder's threads.
    fn run<R: Send>(pool: &Option<rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
        match pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}

/// Builds an index (or adds to one) from posts, with bounded memory. Posts are
/// fingerprinted in parallel with the GIL released and published atomically by
/// :meth:`finish` (nothing is visible before).
///
/// Args:
///     path: the index directory.
///     memory: memory budget (``"2G"``, ``"512M"`` or bytes).
///     mode: ``"create"`` (refuse an existing index), ``"replace"`` (replace it when done)
///         or ``"append"`` (add a segment; the index's own parameters are used).
///     on_existing_id: when appending, ``"skip"`` a post whose id is indexed (reported in
///         :attr:`skipped`) or ``"replace"`` the old post.
///     store_text: store texts (zstd) so hits carry them.
///     segment_only: write a staged build for :func:`textreuse.publish` (what each Spark
///         task does) instead of an index.
///     share_of: with segment_only, this build is one of that many shares of one
///         distributed build: its text dictionaries train on that share of the usual
///         sample (at least 1,000 texts), so all shares train about one build's worth.
///     threads: worker threads of this builder's own (None: the shared pool, one per
///         core). A Spark task uses ``spark.task.cpus`` of them, so that concurrent tasks
///         do not each start one thread per core.
///     shingle, num_perm, keep_hashtags, t2s, bands, rows, threshold, seed: fingerprint
///         parameters, as for :class:`Fingerprinter` (ignored when appending).
#[pyclass(module = "textreuse", subclass)]
struct IndexBuilderNative {
    state: Mutex<BuilderState>,
    path: PathBuf,
}

/// The builder's state, or an error while another thread uses it. Never blocks: a thread
/// waiting here would hold the GIL that the busy thread needs to come back from the library
/// (a deadlock), and a builder is meant for one thread at a time anyway.
fn lock(m: &Mutex<BuilderState>) -> PyResult<std::sync::MutexGuard<'_, BuilderState>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Err(Error::new_err(
            "this IndexBuilder is busy in another thread; use a builder from one thread at a time",
        )),
    }
}

impl BuilderState {
    fn writer(&mut self) -> PyResult<&mut Writer> {
        self.writer.as_mut().ok_or_else(finished_err)
    }

    /// Hands the pending posts to the library (GIL released).
    fn flush(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let posts = std::mem::take(&mut self.pending);
        let rows = std::mem::take(&mut self.pending_rows);
        let pool = &self.pool;
        let w = self.writer.as_mut().ok_or_else(finished_err)?;
        let outcomes = py
            .detach(|| BuilderState::run(pool, || w.add(&posts)))
            .map_err(to_py)?;
        self.note_skipped(&outcomes, |i| (rows[i], posts[i].id.as_str()));
        Ok(())
    }

    /// Remembers the posts `outcomes` did not index; `post(i)` gives the row and id of the
    /// `i`-th.
    fn note_skipped<'a>(
        &mut self,
        outcomes: &[PostOutcome],
        post: impl Fn(usize) -> (u64, &'a str),
    ) {
        for (i, o) in outcomes.iter().enumerate() {
            let why = match o {
                PostOutcome::DuplicateId => "duplicate id: an earlier post has it; skipped",
                PostOutcome::Empty => "no text left after normalization; not indexed",
                _ => continue,
            };
            if self.skipped.len() < MAX_SKIPPED {
                let (row, id) = post(i);
                self.skipped.push((row, id.to_string(), why));
            }
        }
    }

    fn push(&mut self, py: Python<'_>, post: RawPost) -> PyResult<()> {
        self.rows += 1;
        self.pending.push(post);
        self.pending_rows.push(self.rows);
        if self.pending.len() >= BATCH {
            self.flush(py)?;
        }
        Ok(())
    }
}

fn finished_err() -> PyErr {
    Error::new_err("this builder is finished; start a new IndexBuilder")
}

/// The values of a column (any iterable but a str).
fn column<'py>(o: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if o.cast::<PyString>().is_ok() {
        return Err(invalid(format!(
            "column {name} must be a sequence, not a str"
        )));
    }
    o.try_iter()
        .map_err(|_| {
            invalid(format!(
                "column {name} must be a sequence, not {}",
                type_name(o)
            ))
        })?
        .collect()
}

fn stats_dict(py: Python<'_>, s: &BuildStats) -> PyResult<Py<PyAny>> {
    to_json_obj(py, s)
}

#[pymethods]
impl IndexBuilderNative {
    #[new]
    #[pyo3(signature = (path, memory=None, mode="create", on_existing_id="skip", store_text=true, segment_only=false, share_of=None, threads=None, shingle=3, num_perm=128, keep_hashtags=false, t2s=true, bands=None, rows=None, threshold=None, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        memory: Option<&Bound<'_, PyAny>>,
        mode: &str,
        on_existing_id: &str,
        store_text: bool,
        segment_only: bool,
        share_of: Option<usize>,
        threads: Option<usize>,
        shingle: u32,
        num_perm: u32,
        keep_hashtags: bool,
        t2s: bool,
        bands: Option<u32>,
        rows: Option<u32>,
        threshold: Option<f64>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let existing = match mode {
            "create" => Existing::Refuse,
            "replace" => Existing::Replace,
            "append" => Existing::Append,
            m => {
                return Err(invalid(format!(
                    "mode must be \"create\", \"replace\" or \"append\", not {m:?}"
                )))
            }
        };
        let on_existing_id = match on_existing_id {
            "skip" => OnExistingId::Skip,
            "replace" => OnExistingId::Replace,
            m => {
                return Err(invalid(format!(
                    "on_existing_id must be \"skip\" or \"replace\", not {m:?}"
                )))
            }
        };
        if share_of.is_some() && !segment_only {
            return Err(invalid(
                "share_of is for a staged build: pass segment_only=True too",
            ));
        }
        if share_of == Some(0) {
            return Err(invalid("share_of must be at least 1"));
        }
        if segment_only && existing != Existing::Refuse {
            return Err(invalid(
                "segment_only builds a new staged directory: leave mode at \"create\"",
            ));
        }
        let memory_budget = match memory {
            Some(m) if !m.is_none() => size_arg(m)?,
            _ => BuildOptions::default().memory_budget,
        };
        let opts = BuildOptions {
            params: params_from(
                shingle,
                num_perm,
                keep_hashtags,
                t2s,
                bands,
                rows,
                threshold,
                seed,
            )?,
            memory_budget,
            store_text,
            existing,
            on_existing_id,
        };
        let pool = match threads {
            None => None,
            Some(0) => return Err(invalid("threads must be at least 1 (or None: every core)")),
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::new_err(format!("cannot start {n} threads: {e}")))?,
            ),
        };
        let writer = py
            .detach(|| {
                if segment_only {
                    StagedBuilder::create(&path, opts)
                        .map(|b| match share_of {
                            Some(n) => b.share_of(n),
                            None => b,
                        })
                        .map(Writer::Staged)
                } else {
                    IndexBuilder::create(&path, opts).map(Writer::Build)
                }
            })
            .map_err(to_py)?;
        Ok(IndexBuilderNative {
            state: Mutex::new(BuilderState {
                writer: Some(writer),
                pending: Vec::new(),
                pending_rows: Vec::new(),
                rows: 0,
                skipped: Vec::new(),
                finished: None,
                pool,
            }),
            path,
        })
    }

    /// The index directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Adds one post. ``id``: str or int; ``text``: str; ``account``/``platform``: str or
    /// None; ``ts``: unix seconds, RFC 3339 string, datetime or None.
    #[pyo3(signature = (id, text, account=None, platform=None, ts=None))]
    fn add(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        text: &Bound<'_, PyAny>,
        account: Option<&Bound<'_, PyAny>>,
        platform: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut st = lock(&self.state)?;
        st.writer()?;
        let row = Some(st.rows as usize + 1);
        let post = RawPost {
            id: id_arg(id, row)?,
            text: req_str(text, "text", row)?,
            account: opt_str(account, "account", row)?,
            platform: opt_str(platform, "platform", row)?,
            ts: ts_arg(ts, "ts", row)?,
            ..RawPost::default()
        };
        st.push(py, post)
    }

    /// Adds posts from columns (sequences of equal length; account, platform and ts may be
    /// None). Every row is checked before any is added: a bad value raises InvalidInput
    /// naming its row (1-based, counted over every call) and column.
    #[pyo3(signature = (ids, texts, accounts=None, platforms=None, ts=None))]
    fn add_columns<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
        accounts: Option<&Bound<'py, PyAny>>,
        platforms: Option<&Bound<'py, PyAny>>,
        ts: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let mut st = lock(&self.state)?;
        st.writer()?;
        let ids = column(ids, "id")?;
        let texts = column(texts, "text")?;
        let opt_col = |o: Option<&Bound<'py, PyAny>>,
                       name: &str|
         -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
            match o {
                Some(o) if !o.is_none() => column(o, name).map(Some),
                _ => Ok(None),
            }
        };
        let accounts = opt_col(accounts, "account")?;
        let platforms = opt_col(platforms, "platform")?;
        let ts = opt_col(ts, "ts")?;
        let n = ids.len();
        for (name, len) in [
            ("text", Some(texts.len())),
            ("account", accounts.as_ref().map(Vec::len)),
            ("platform", platforms.as_ref().map(Vec::len)),
            ("ts", ts.as_ref().map(Vec::len)),
        ] {
            if let Some(l) = len {
                if l != n {
                    return Err(invalid(format!("column {name} has {l} values, id has {n}")));
                }
            }
        }
        let base = st.rows as usize;
        let mut posts = Vec::with_capacity(n);
        for i in 0..n {
            let row = Some(base + i + 1);
            posts.push(RawPost {
                id: id_arg(&ids[i], row)?,
                text: req_str(&texts[i], "text", row)?,
                account: opt_str(accounts.as_ref().map(|c| &c[i]), "account", row)?,
                platform: opt_str(platforms.as_ref().map(|c| &c[i]), "platform", row)?,
                ts: ts_arg(ts.as_ref().map(|c| &c[i]), "ts", row)?,
                ..RawPost::default()
            });
        }
        for p in posts {
            st.push(py, p)?;
        }
        Ok(())
    }

    /// Adds posts from the columns of an Arrow record batch, read in place (no Python
    /// object per value): ``ids`` and ``texts`` are pyarrow ``string`` or ``large_string``
    /// arrays; ``accounts`` and ``platforms`` such arrays or None (a null is ``""``);
    /// ``ts`` an ``int64`` array of unix seconds (a null is an unknown time), any sequence
    /// of times as for :meth:`add`, or None. A null id or text, an empty id or a string
    /// that is not valid UTF-8 raises InvalidInput naming its row and column, before any
    /// row is added.
    #[pyo3(signature = (ids, texts, accounts=None, platforms=None, ts=None))]
    fn add_arrow<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
        accounts: Option<&Bound<'py, PyAny>>,
        platforms: Option<&Bound<'py, PyAny>>,
        ts: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let mut st = lock(&self.state)?;
        st.writer()?;
        let base = st.rows as usize;
        let id_col = arrow::StrArray::new(ids, "id")?;
        let text_col = arrow::StrArray::new(texts, "text")?;
        let opt_col = |o: Option<&Bound<'py, PyAny>>, name: &str| match o {
            Some(o) if !o.is_none() => arrow::StrArray::new(o, name).map(Some),
            _ => Ok(None),
        };
        let account_col = opt_col(accounts, "account")?;
        let platform_col = opt_col(platforms, "platform")?;
        let ids = id_col.required(base)?;
        if let Some(i) = ids.iter().position(|id| id.is_empty()) {
            return Err(invalid(format!("row {}: id is empty", base + i + 1)));
        }
        let texts = text_col.required(base)?;
        let accounts = account_col.as_ref().map(|c| c.optional(base)).transpose()?;
        let platforms = platform_col
            .as_ref()
            .map(|c| c.optional(base))
            .transpose()?;
        let ts: Option<Vec<Option<i64>>> = match ts {
            Some(t) if !t.is_none() => Some(if t.hasattr(intern!(py, "buffers"))? {
                arrow::int64_values(t, "ts")?
            } else {
                column(t, "ts")?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ts_arg(Some(v), "ts", Some(base + i + 1)))
                    .collect::<PyResult<_>>()?
            }),
            _ => None,
        };
        let n = ids.len();
        for (name, len) in [
            ("text", Some(texts.len())),
            ("account", accounts.as_ref().map(Vec::len)),
            ("platform", platforms.as_ref().map(Vec::len)),
            ("ts", ts.as_ref().map(Vec::len)),
        ] {
            if let Some(l) = len {
                if l != n {
                    return Err(invalid(format!("column {name} has {l} values, id has {n}")));
                }
            }
        }
        let posts: Vec<NewPost<'_>> = (0..n)
            .map(|i| NewPost {
                id: ids[i],
                text: texts[i],
                account: accounts.as_ref().map_or("", |c| c[i]),
                platform: platforms.as_ref().map_or("", |c| c[i]),
                ts: ts.as_ref().and_then(|c| c[i]),
            })
            .collect();
        // Posts added one by one before come first.
        st.flush(py)?;
        let st = &mut *st;
        let pool = &st.pool;
        let w = st.writer.as_mut().ok_or_else(finished_err)?;
        let outcomes = py
            .detach(|| BuilderState::run(pool, || w.add(&posts)))
            .map_err(to_py)?;
        st.rows += n as u64;
        st.note_skipped(&outcomes, |i| ((base + i + 1) as u64, ids[i]));
        Ok(())
    }

    /// Marks the live posts with these ids deleted (when appending to an index); returns the
    /// ids no live post has. Published by :meth:`finish`.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let mut st = lock(&self.state)?;
        let mut owned = Vec::new();
        for (i, id) in ids
            .try_iter()
            .map_err(|_| invalid("ids must be a list of ids"))?
            .enumerate()
        {
            owned.push(id_arg(&id?, Some(i + 1))?);
        }
        st.flush(py)?;
        match st.writer()? {
            Writer::Build(b) => py.detach(|| b.delete(&owned)).map_err(to_py),
            Writer::Staged(_) => Err(invalid("a staged build (segment_only) cannot delete")),
        }
    }

    /// Counts so far (a dict: posts, indexed, unique_texts, empty, duplicate_ids, ...),
    /// or the finished build's. Posts still buffered for the next batch are not counted
    /// yet.
    #[getter]
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut st = lock(&self.state)?;
        if let (None, Some(done)) = (&st.writer, &st.finished) {
            return stats_dict(py, done);
        }
        let s = st.writer()?.stats().clone();
        stats_dict(py, &s)
    }

    /// Posts not indexed so far (up to 1,000): dicts with ``row`` (1-based, over every add),
    /// ``id`` and ``reason`` (a repeated id, or no text left after normalization), as
    /// ``textreuse build`` reports them.
    #[getter]
    fn skipped(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut st = lock(&self.state)?;
        st.flush(py)?;
        let l = PyList::empty(py);
        for (row, id, why) in &st.skipped {
            let d = PyDict::new(py);
            d.set_item("row", row)?;
            d.set_item("id", id)?;
            d.set_item("reason", why)?;
            l.append(d)?;
        }
        Ok(l.into_any().unbind())
    }

    /// Writes what is buffered and publishes the index (or the staged build) atomically;
    /// returns the build's counts. The builder cannot be used afterwards.
    fn finish(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut st = lock(&self.state)?;
        st.flush(py)?;
        let w = st
            .writer
            .take()
            .ok_or_else(|| Error::new_err("this builder is finished already"))?;
        let pool = &st.pool;
        let stats = py
            .detach(|| {
                BuilderState::run(pool, || match w {
                    Writer::Build(b) => b.finish(),
                    Writer::Staged(b) => b.finish(),
                })
            })
            .map_err(to_py)?;
        st.finished = Some(stats.clone());
        stats_dict(py, &stats)
    }

    /// Abandons the build: nothing is published, the lock is released (what was written
    /// is removed by the next writer).
    fn abort(&self) -> PyResult<()> {
        let mut st = lock(&self.state)?;
        st.writer = None;
        st.pending.clear();
        st.pending_rows.clear();
        Ok(())
    }
}

// ---------------------------------------------------------------- functions

/// Merges adjacent segments until at most ``max_segments`` remain, dropping deleted posts
/// (``textreuse merge``). Returns the merge's counts. With ``within_budget=True``, a merge
/// down to ``max_segments`` that needs more than ``memory`` merges what it allows instead of
/// raising: adjacent segments in groups whose merges each fit (``segments_after`` says how
/// many remain; ``merged`` is empty when no two fit together).
#[pyfunction]
#[pyo3(signature = (path, max_segments=1, memory=None, within_budget=false))]
fn merge(
    py: Python<'_>,
    path: PathBuf,
    max_segments: usize,
    memory: Option<&Bound<'_, PyAny>>,
    within_budget: bool,
) -> PyResult<Py<PyAny>> {
    if max_segments == 0 {
        return Err(invalid("max_segments must be at least 1"));
    }
    let opts = MergeOptions {
        max_segments,
        memory_budget: match memory {
            Some(m) if !m.is_none() => size_arg(m)?,
            _ => 2 << 30,
        },
    };
    let stats = py
        .detach(|| {
            if within_budget {
                merge_within_budget(&path, &opts, &mut |_, _| {})
            } else {
                merge_index(&path, &opts)
            }
        })
        .map_err(to_py)?;
    to_json_obj(py, &stats)
}

/// Publishes staged builds (``IndexBuilder(segment_only=True)``, Spark tasks,
/// ``textreuse build --segment-only``) as one generation of the index in ``path``
/// (``textreuse publish``). Where two posts share an id, the one in the earlier staged
/// directory (or, with ``mode="append"``, the index) is kept and the others are reported in
/// ``duplicate_ids``. Returns a dict: generation, staged, segments, posts, live_posts,
/// duplicate_ids (list of dicts: id, staged, first), bytes.
#[pyfunction]
#[pyo3(signature = (path, staged, mode="create", keep_staged=false))]
fn publish(
    py: Python<'_>,
    path: PathBuf,
    staged: Vec<PathBuf>,
    mode: &str,
    keep_staged: bool,
) -> PyResult<Py<PyAny>> {
    let existing = match mode {
        "create" => Existing::Refuse,
        "replace" => Existing::Replace,
        "append" => Existing::Append,
        m => {
            return Err(invalid(format!(
                "mode must be \"create\", \"replace\" or \"append\", not {m:?}"
            )))
        }
    };
    let opts = PublishOptions {
        existing,
        remove_staged: !keep_staged,
    };
    let r = py
        .detach(|| publish_staged(&path, &staged, &opts))
        .map_err(to_py)?;
    to_json_obj(py, &r)
}

/// Campaign discovery over a whole index (``textreuse clusters``), as columns: returns
/// ``(posts, clusters)``, two dicts of equal-length lists. :func:`textreuse.clusters` turns
/// them into pandas DataFrames.
#[pyfunction]
#[pyo3(signature = (path, min_similarity=0.5, min_edge_support=0.0, attach_similarity=None, containment=None, core_texts=true, min_size=2, min_accounts=1, platform=None, since=None, until=None, save=false))]
#[allow(clippy::too_many_arguments)]
fn clusters_columns(
    py: Python<'_>,
    path: PathBuf,
    min_similarity: f64,
    min_edge_support: f64,
    attach_similarity: Option<f64>,
    containment: Option<f64>,
    core_texts: bool,
    min_size: usize,
    min_accounts: usize,
    platform: Option<&Bound<'_, PyAny>>,
    since: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
    save: bool,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    if !(0.0..=1.0).contains(&min_similarity) {
        return Err(invalid(format!(
            "min_similarity must be between 0 and 1, not {min_similarity}"
        )));
    }
    let opts = ClusterOptions {
        min_similarity,
        min_edge_support,
        attach_similarity,
        min_size,
        min_accounts,
        platforms: str_list(platform, "platform")?,
        since: ts_arg(since, "since", None)?,
        until: ts_arg(until, "until", None)?,
        containment,
        core_texts,
        ..ClusterOptions::default()
    };
    opts.validate().map_err(to_py)?;
    type PostRow = (u32, String, String, String, Option<i64>);
    let (report, posts) = py
        .detach(|| -> textreuse::Result<_> {
            let index = textreuse::Index::open(&path)?;
            let report = index.clusters(&opts)?;
            if save {
                index.save_clusters(&report, &opts)?;
            }
            let mut posts: Vec<PostRow> = Vec::new();
            for c in &report.clusters {
                for &a in &c.addrs {
                    let p = index.post_at(a)?;
                    posts.push((c.cluster, p.id, p.account, p.platform, p.ts));
                }
            }
            Ok((report, posts))
        })
        .map_err(to_py)?;
    let pd = PyDict::new(py);
    pd.set_item("cluster", posts.iter().map(|p| p.0).collect::<Vec<_>>())?;
    pd.set_item("id", posts.iter().map(|p| p.1.as_str()).collect::<Vec<_>>())?;
    pd.set_item(
        "account",
        posts.iter().map(|p| p.2.as_str()).collect::<Vec<_>>(),
    )?;
    pd.set_item(
        "platform",
        posts.iter().map(|p| p.3.as_str()).collect::<Vec<_>>(),
    )?;
    pd.set_item("ts", posts.iter().map(|p| p.4).collect::<Vec<_>>())?;
    let cs = &report.clusters;
    let cd = PyDict::new(py);
    cd.set_item("cluster", cs.iter().map(|c| c.cluster).collect::<Vec<_>>())?;
    cd.set_item("size", cs.iter().map(|c| c.size).collect::<Vec<_>>())?;
    cd.set_item("texts", cs.iter().map(|c| c.texts).collect::<Vec<_>>())?;
    cd.set_item(
        "accounts",
        cs.iter().map(|c| c.accounts).collect::<Vec<_>>(),
    )?;
    let plats = PyList::empty(py);
    for c in cs {
        let d = PyDict::new(py);
        for (k, v) in &c.platforms {
            d.set_item(k, v)?;
        }
        plats.append(d)?;
    }
    cd.set_item("platforms", plats)?;
    cd.set_item(
        "first_ts",
        cs.iter().map(|c| c.first_ts).collect::<Vec<_>>(),
    )?;
    cd.set_item("last_ts", cs.iter().map(|c| c.last_ts).collect::<Vec<_>>())?;
    cd.set_item(
        "earliest_post",
        cs.iter()
            .map(|c| c.earliest_post.as_str())
            .collect::<Vec<_>>(),
    )?;
    cd.set_item(
        "representative_id",
        cs.iter()
            .map(|c| c.representative_id.as_str())
            .collect::<Vec<_>>(),
    )?;
    cd.set_item(
        "representative",
        cs.iter()
            .map(|c| c.representative.as_str())
            .collect::<Vec<_>>(),
    )?;
    cd.set_item(
        "weakest_link",
        cs.iter().map(|c| c.weakest_link).collect::<Vec<_>>(),
    )?;
    cd.set_item("edges", cs.iter().map(|c| c.edges).collect::<Vec<_>>())?;
    cd.set_item(
        "attached",
        cs.iter().map(|c| c.attached).collect::<Vec<_>>(),
    )?;
    cd.set_item(
        "contained",
        cs.iter().map(|c| c.contained).collect::<Vec<_>>(),
    )?;
    // The core text as `textreuse clusters --json` writes it: a dict, or None.
    let cores = PyList::empty(py);
    for c in cs {
        match &c.core_text {
            Some(core) => {
                let d = PyDict::new(py);
                d.set_item("start", core.start)?;
                d.set_item("end", core.end)?;
                d.set_item("text", core.text.as_str())?;
                d.set_item("posts", core.posts)?;
                d.set_item("sampled", core.sampled)?;
                cores.append(d)?;
            }
            None => cores.append(py.None())?,
        }
    }
    cd.set_item("core_text", cores)?;
    Ok((pd.into_any().unbind(), cd.into_any().unbind()))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Fingerprinter>()?;
    m.add_class::<Index>()?;
    m.add_class::<IndexBuilderNative>()?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(publish, m)?)?;
    m.add_function(wrap_pyfunction!(clusters_columns, m)?)?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("IndexLocked", py.get_type::<IndexLocked>())?;
    m.add("IndexNotFound", py.get_type::<IndexNotFound>())?;
    m.add("IndexExists", py.get_type::<IndexExists>())?;
    m.add("CorruptIndex", py.get_type::<CorruptIndex>())?;
    m.add("UnsupportedVersion", py.get_type::<UnsupportedVersion>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
