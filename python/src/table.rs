//! `Index.query_arrow`: the hits of many lookups as one pyarrow Table, one row per hit.
//!
//! The lookups and the columns' bytes are made on the library's pool with the GIL released,
//! a chunk of queries per task; the calling thread then wraps each chunk's buffers in a
//! few pyarrow objects (a dozen per chunk, whatever the number of hits). With dicts
//! (`query_many`) every hit costs the calling thread five Python objects, made one after
//! another under the GIL.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rayon::prelude::*;
use textreuse::index::{HitRef, QueryOptions, TextCache};
use textreuse::Scratch;

use crate::{look, surrogate, to_py, HitText};

/// Queries one pool task looks up into one record batch: small enough that the last
/// tasks of a call leave no core idle for long, large enough that a batch's dozen pyarrow
/// objects are few next to its rows.
const CHUNK: usize = 64;

/// A `large_string` column: `i64` offsets (from 0) and the UTF-8 bytes.
struct Strs {
    offsets: Vec<u8>,
    data: Vec<u8>,
}

impl Strs {
    fn new() -> Self {
        Strs {
            offsets: 0i64.to_le_bytes().to_vec(),
            data: Vec::new(),
        }
    }

    fn push(&mut self, s: &str) {
        self.data.extend_from_slice(s.as_bytes());
        self.offsets
            .extend_from_slice(&(self.data.len() as i64).to_le_bytes());
    }
}

/// An Arrow bitmap (validity, or a `bool` column's values): bit `i % 8` of byte `i / 8`.
struct Bits {
    bytes: Vec<u8>,
    len: usize,
    set: usize,
}

impl Bits {
    fn new() -> Self {
        Bits {
            bytes: Vec::new(),
            len: 0,
            set: 0,
        }
    }

    fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if bit {
            self.bytes[self.len / 8] |= 1 << (self.len % 8);
            self.set += 1;
        }
        self.len += 1;
    }
}

/// One chunk's columns, as Arrow buffers.
pub(crate) struct Columns {
    rows: usize,
    query: Vec<u8>,
    id: Strs,
    similarity: Vec<u8>,
    account: Strs,
    platform: Strs,
    ts: Vec<u8>,
    ts_valid: Bits,
    text: Option<(Strs, Bits)>,
    cluster: Vec<u8>,
    cluster_valid: Bits,
    expanded: Bits,
}

impl Columns {
    fn new(with_text: bool) -> Self {
        Columns {
            rows: 0,
            query: Vec::new(),
            id: Strs::new(),
            similarity: Vec::new(),
            account: Strs::new(),
            platform: Strs::new(),
            ts: Vec::new(),
            ts_valid: Bits::new(),
            text: with_text.then(|| (Strs::new(), Bits::new())),
            cluster: Vec::new(),
            cluster_valid: Bits::new(),
            expanded: Bits::new(),
        }
    }

    fn push(&mut self, query: usize, h: &HitRef<'_>, text: Option<&str>) {
        self.rows += 1;
        self.query.extend_from_slice(&(query as i64).to_le_bytes());
        self.id.push(h.id);
        self.similarity
            .extend_from_slice(&h.similarity.to_le_bytes());
        self.account.push(h.account);
        self.platform.push(h.platform);
        self.ts.extend_from_slice(&h.ts.unwrap_or(0).to_le_bytes());
        self.ts_valid.push(h.ts.is_some());
        if let Some((col, valid)) = &mut self.text {
            col.push(text.unwrap_or(""));
            valid.push(text.is_some());
        }
        self.cluster
            .extend_from_slice(&h.cluster.map_or(0, i64::from).to_le_bytes());
        self.cluster_valid.push(h.cluster.is_some());
        self.expanded.push(h.expanded);
    }
}

/// Looks up `texts[first..]` (one chunk) into columns.
fn chunk_columns(
    index: &textreuse::index::Index,
    first: usize,
    texts: &[&[u8]],
    opts: &QueryOptions,
    scratch: &mut Scratch,
    cache: &mut TextCache,
) -> PyResult<Columns> {
    let mut cols = Columns::new(opts.with_text);
    for (k, t) in texts.iter().enumerate() {
        let i = first + k;
        let t = std::str::from_utf8(t).map_err(|_| surrogate("text", Some(i)))?;
        let found = look(index, t, opts, scratch, cache).map_err(to_py)?;
        for (h, span) in found.hits.iter().zip(&found.spans) {
            let text = match span {
                Some(HitText::Buffer(r)) => found.texts.get(r.clone()),
                Some(HitText::Query) => Some(t),
                None => None,
            };
            cols.push(i, h, text);
        }
    }
    Ok(cols)
}

/// The lookups of `texts`, in chunks, on the pool (call with the GIL released).
pub(crate) fn lookups(
    index: &textreuse::index::Index,
    texts: &[&[u8]],
    opts: &QueryOptions,
) -> PyResult<Vec<Columns>> {
    texts
        .par_chunks(CHUNK)
        .enumerate()
        .map_init(
            || (Scratch::new(), TextCache::default()),
            |(s, c), (ci, chunk)| chunk_columns(index, ci * CHUNK, chunk, opts, s, c),
        )
        .collect()
}

/// The pyarrow objects one call needs.
struct Arrow<'py> {
    pa: Bound<'py, PyModule>,
    schema: Bound<'py, PyAny>,
    types: Vec<Bound<'py, PyAny>>,
}

/// Column names, in order, and their Arrow types' pyarrow factory names.
const FIELDS: [(&str, &str); 9] = [
    ("query", "int64"),
    ("id", "large_string"),
    ("similarity", "float64"),
    ("account", "large_string"),
    ("platform", "large_string"),
    ("ts", "int64"),
    ("text", "large_string"),
    ("cluster", "int64"),
    ("expanded", "bool_"),
];

impl<'py> Arrow<'py> {
    fn new(py: Python<'py>, with_text: bool) -> PyResult<Self> {
        let pa = py.import("pyarrow")?;
        let mut fields = Vec::new();
        let mut types = Vec::new();
        for (name, ty) in FIELDS {
            if name == "text" && !with_text {
                continue;
            }
            let t = pa.call_method0(ty)?;
            let nullable = matches!(name, "ts" | "text" | "cluster");
            fields.push(pa.call_method1("field", (name, &t, nullable))?);
            types.push(t);
        }
        let schema = pa.call_method1("schema", (fields,))?;
        Ok(Arrow { pa, schema, types })
    }

    fn buffer(&self, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let py = self.pa.py();
        self.pa
            .call_method1("py_buffer", (PyBytes::new(py, bytes),))
    }

    /// An array of `rows` values from its data buffers, with `valid` as its validity
    /// bitmap when some value is null.
    fn array(
        &self,
        col: usize,
        rows: usize,
        valid: Option<&Bits>,
        data: &[&[u8]],
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.pa.py();
        let (validity, nulls) = match valid {
            Some(v) if v.set < rows => (Some(self.buffer(&v.bytes)?), rows - v.set),
            _ => (None, 0),
        };
        let mut buffers = vec![validity.unwrap_or_else(|| py.None().into_bound(py))];
        for d in data {
            buffers.push(self.buffer(d)?);
        }
        self.pa
            .getattr("Array")?
            .call_method1("from_buffers", (&self.types[col], rows, buffers, nulls))
    }

    fn batch(&self, c: &Columns) -> PyResult<Bound<'py, PyAny>> {
        let n = c.rows;
        let mut arrays = vec![
            self.array(0, n, None, &[&c.query])?,
            self.array(1, n, None, &[&c.id.offsets, &c.id.data])?,
            self.array(2, n, None, &[&c.similarity])?,
            self.array(3, n, None, &[&c.account.offsets, &c.account.data])?,
            self.array(4, n, None, &[&c.platform.offsets, &c.platform.data])?,
            self.array(5, n, Some(&c.ts_valid), &[&c.ts])?,
        ];
        if let Some((t, valid)) = &c.text {
            arrays.push(self.array(6, n, Some(valid), &[&t.offsets, &t.data])?);
        }
        let k = arrays.len();
        arrays.push(self.array(k, n, Some(&c.cluster_valid), &[&c.cluster])?);
        arrays.push(self.array(k + 1, n, None, &[&c.expanded.bytes])?);
        let kwargs = pyo3::types::PyDict::new(self.pa.py());
        kwargs.set_item("schema", &self.schema)?;
        self.pa
            .getattr("RecordBatch")?
            .call_method("from_arrays", (arrays,), Some(&kwargs))
    }
}

/// The table of `chunks` (in order): one record batch per chunk that has hits.
pub(crate) fn table<'py>(
    py: Python<'py>,
    chunks: &[Columns],
    with_text: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let arrow = Arrow::new(py, with_text)?;
    let batches = chunks
        .iter()
        .filter(|c| c.rows > 0)
        .map(|c| arrow.batch(c))
        .collect::<PyResult<Vec<_>>>()?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("schema", &arrow.schema)?;
    arrow.pa.getattr("Table")?.call_method(
        "from_batches",
        (PyList::new(py, batches)?,),
        Some(&kwargs),
    )
}
