//! Zero-copy reads of pyarrow arrays: the values of a `string` / `large_string` array and of
//! an `int64` array are borrowed straight from the array's buffers (`Array.buffers()`, each
//! a `pyarrow.Buffer` with an `address` and a `size`), never turned into Python objects.
//!
//! Every length is checked against the buffers' sizes and every offset against the data
//! before a value is read, so a malformed array (one made with `Array.from_buffers`) raises
//! instead of reading out of bounds; a null where a value is needed and a string that is not
//! valid UTF-8 raise `InvalidInput` naming the row and the column.

use pyo3::intern;
use pyo3::prelude::*;

use crate::invalid;

/// One buffer of an array: its bytes, kept alive by the `pyarrow.Buffer` object held with it.
struct Buf<'py> {
    _owner: Bound<'py, PyAny>,
    ptr: *const u8,
    len: usize,
}

impl Buf<'_> {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` and `len` are the `address` and `size` of a CPU-resident
        // pyarrow Buffer that `_owner` keeps alive (pyarrow buffers are immutable while
        // referenced); the slice borrows `self`, so it cannot outlive the owner.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The buffer at `i` of `buffers` (None for an absent validity bitmap).
fn buf<'py>(buffers: &Bound<'py, PyAny>, i: usize, column: &str) -> PyResult<Option<Buf<'py>>> {
    let py = buffers.py();
    let b = buffers.get_item(i)?;
    if b.is_none() {
        return Ok(None);
    }
    if let Ok(cpu) = b.getattr(intern!(py, "is_cpu")) {
        if !cpu.is_truthy()? {
            return Err(invalid(format!(
                "column {column}: the Arrow array is not in main memory (copy it to the CPU first)"
            )));
        }
    }
    let address: usize = b.getattr(intern!(py, "address"))?.extract()?;
    let len: usize = b.getattr(intern!(py, "size"))?.extract()?;
    if address == 0 && len > 0 {
        return Err(invalid(format!(
            "column {column}: an Arrow buffer has no address"
        )));
    }
    Ok(Some(Buf {
        _owner: b,
        ptr: address as *const u8,
        len,
    }))
}

/// The Arrow type of `arr` as pyarrow names it (`"string"`, `"large_string"`, `"int64"` ...).
pub fn arrow_type(arr: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = arr.py();
    Ok(arr
        .getattr(intern!(py, "type"))?
        .str()?
        .to_cow()?
        .into_owned())
}

/// An array's shape: (offset into its buffers, length, validity bitmap).
struct Shape<'py> {
    offset: usize,
    len: usize,
    validity: Option<Buf<'py>>,
}

impl Shape<'_> {
    fn read<'py>(
        arr: &Bound<'py, PyAny>,
        column: &str,
    ) -> PyResult<(Shape<'py>, Bound<'py, PyAny>)> {
        let py = arr.py();
        let offset: usize = arr.getattr(intern!(py, "offset"))?.extract()?;
        let len: usize = arr.len()?;
        let buffers = arr.call_method0(intern!(py, "buffers"))?;
        let validity = buf(&buffers, 0, column)?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| invalid(format!("column {column}: impossible Arrow length")))?;
        if let Some(v) = &validity {
            if v.len < end.div_ceil(8) {
                return Err(invalid(format!(
                    "column {column}: the Arrow validity bitmap is shorter than the array"
                )));
            }
        }
        Ok((
            Shape {
                offset,
                len,
                validity,
            },
            buffers,
        ))
    }

    /// Whether value `i` (0-based, from the array's start) is null.
    fn is_null(&self, i: usize) -> bool {
        match &self.validity {
            None => false,
            Some(v) => {
                let j = self.offset + i;
                v.bytes()[j / 8] & (1 << (j % 8)) == 0
            }
        }
    }
}

/// A pyarrow `string` or `large_string` array, borrowed.
pub struct StrArray<'py> {
    shape: Shape<'py>,
    offsets: Buf<'py>,
    /// 4 (`string`) or 8 (`large_string`) bytes per offset.
    width: usize,
    data: Buf<'py>,
    column: String,
}

impl<'py> StrArray<'py> {
    /// Reads `arr` (a pyarrow `string` or `large_string` Array) as column `column`.
    pub fn new(arr: &Bound<'py, PyAny>, column: &str) -> PyResult<StrArray<'py>> {
        let ty = arrow_type(arr)?;
        let width = match ty.as_str() {
            "string" => 4,
            "large_string" => 8,
            t => {
                return Err(invalid(format!(
                    "column {column} must be an Arrow string array, not {t}"
                )))
            }
        };
        let (shape, buffers) = Shape::read(arr, column)?;
        let missing = || invalid(format!("column {column}: the Arrow array lacks a buffer"));
        let offsets = buf(&buffers, 1, column)?.ok_or_else(missing)?;
        let data = match buf(&buffers, 2, column)? {
            Some(d) => d,
            None => Buf {
                _owner: arr.clone(),
                ptr: std::ptr::null(),
                len: 0,
            },
        };
        let need = (shape.offset + shape.len + 1) * width;
        if shape.len > 0 && offsets.len < need {
            return Err(invalid(format!(
                "column {column}: the Arrow offsets buffer is shorter than the array"
            )));
        }
        Ok(StrArray {
            shape,
            offsets,
            width,
            data,
            column: column.to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.shape.len
    }

    fn offset_at(&self, i: usize) -> Option<usize> {
        let b = self.offsets.bytes();
        let at = (self.shape.offset + i) * self.width;
        if self.width == 4 {
            let v = i32::from_ne_bytes(b[at..at + 4].try_into().ok()?);
            usize::try_from(v).ok()
        } else {
            let v = i64::from_ne_bytes(b[at..at + 8].try_into().ok()?);
            usize::try_from(v).ok()
        }
    }

    /// Value `i`: None for a null, else the string. `row` numbers it in messages.
    pub fn get(&self, i: usize, row: usize) -> PyResult<Option<&str>> {
        if self.shape.is_null(i) {
            return Ok(None);
        }
        let bad = || {
            invalid(format!(
                "row {row}: {}: the Arrow offsets are out of order or past the data",
                self.column
            ))
        };
        let (start, end) = (
            self.offset_at(i).ok_or_else(bad)?,
            self.offset_at(i + 1).ok_or_else(bad)?,
        );
        let bytes = self.data.bytes().get(start..end).ok_or_else(bad)?;
        std::str::from_utf8(bytes).map(Some).map_err(|_| {
            invalid(format!(
                "row {row}: {} is not valid UTF-8; fix or drop the record",
                self.column
            ))
        })
    }

    /// Every value, where a null is an error (`row0` + 1 is the first value's row).
    pub fn required(&self, row0: usize) -> PyResult<Vec<&str>> {
        (0..self.len())
            .map(|i| {
                self.get(i, row0 + i + 1)?.ok_or_else(|| {
                    invalid(format!(
                        "row {}: {} is null (None); a str is needed",
                        row0 + i + 1,
                        self.column
                    ))
                })
            })
            .collect()
    }

    /// Every value, a null read as `""`.
    pub fn optional(&self, row0: usize) -> PyResult<Vec<&str>> {
        (0..self.len())
            .map(|i| Ok(self.get(i, row0 + i + 1)?.unwrap_or("")))
            .collect()
    }
}

/// The values of a pyarrow `int64` array (nulls as None), copied out.
pub fn int64_values(arr: &Bound<'_, PyAny>, column: &str) -> PyResult<Vec<Option<i64>>> {
    let ty = arrow_type(arr)?;
    if ty != "int64" {
        return Err(invalid(format!(
            "column {column} must be an Arrow int64 array here, not {ty}"
        )));
    }
    let (shape, buffers) = Shape::read(arr, column)?;
    if shape.len == 0 {
        return Ok(Vec::new());
    }
    let values = buf(&buffers, 1, column)?
        .ok_or_else(|| invalid(format!("column {column}: the Arrow array lacks a buffer")))?;
    let b = values.bytes();
    if b.len() < (shape.offset + shape.len) * 8 {
        return Err(invalid(format!(
            "column {column}: the Arrow values buffer is shorter than the array"
        )));
    }
    Ok((0..shape.len)
        .map(|i| {
            if shape.is_null(i) {
                return None;
            }
            let at = (shape.offset + i) * 8;
            b[at..at + 8].try_into().ok().map(i64::from_ne_bytes)
        })
        .collect())
}
