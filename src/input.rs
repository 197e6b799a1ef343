//! Input readers: posts from JSONL, CSV and plain-text dumps, optionally gzip- or
//! zstd-compressed, from files or standard input.
//!
//! Reading is split in two so that parsing can run in parallel:
//!
//! - [`PostReader`] reads a file sequentially and cuts it into undecoded [`RawRecord`]s
//!   ([`PostReader::read_batch`]). Only fatal I/O problems are errors there.
//! - [`RecordParser`] (from [`PostReader::parser`]) turns one [`RawRecord`] into a
//!   [`RawPost`]. It is pure, cheap to clone and `Send + Sync`, so batches can be parsed on
//!   many threads. A bad record is an [`Error::InvalidInput`] naming the file, the line and
//!   the reason; the caller reports it and goes on with the next record.
//!
//! Invariants:
//!
//! - Line numbers are 1-based and count every physical line of the decompressed input
//!   (blank lines too, and the lines inside multi-line CSV fields). A record's line is the
//!   line it starts on. A last line without a trailing newline still counts.
//! - Records are cut at `\n`; a `\r` right before it is dropped. A UTF-8 byte order mark at
//!   the very start of the input is dropped.
//! - No record is buffered beyond [`InputOptions::max_record_bytes`] (plus one byte): a
//!   longer one is read through in chunks, discarded, and reported by the parser as
//!   `record longer than N bytes`.
//! - No input, however malformed, makes this module panic.
//!
//! Format rules (field names are those of [`FieldNames`]):
//!
//! - **JSONL**: one JSON object a line; other keys are skipped unparsed. `id` is a string or
//!   an integer, `text` a string (`""` is valid), `account` and `platform` strings or numbers
//!   (missing or `null` means `""`), `ts` unix seconds (integer, float truncated toward zero,
//!   or a string holding a number) or an RFC 3339 date (see [`parse_timestamp`]); missing,
//!   `null` or `""` means no time. When a key occurs twice in one object, the last value
//!   wins. Blank lines are ignored (the parser returns `Ok(None)`).
//! - **CSV**: RFC 4180 with a required header row; columns are found by header name (first
//!   match, surrounding ASCII spaces ignored). Rows may have more or fewer cells than the
//!   header; a row that lacks a needed cell is a bad record. Without an `id` column, a post's
//!   id is `<file>:<line>`. Blank lines are not records. An empty `ts` cell means no time.
//!   Quoting follows the `csv` crate's reading (checked against it by a property test): `""`
//!   inside quotes is a quote, a quote inside an unquoted field is literal, text after a
//!   closing quote joins the field, an unclosed quote runs to the end of the input. Unlike
//!   the `csv` crate, a lone `\r` (not before `\n`) is data, not a record end.
//! - **Text**: each non-blank line is a post's text, with id `<file>:<line>`.
//!
//! ```
//! use textreuse::input::{InputOptions, PostReader};
//!
//! let data = "{\"id\":1,\"text\":\"hello\",\"ts\":\"2023-05-01T12:34:56+08:00\"}\n\
//!             {\"id\":2}\n";
//! let mut reader =
//!     PostReader::from_reader("posts.jsonl", Box::new(data.as_bytes()), &InputOptions::default())?;
//! let parser = reader.parser(); // Send + Sync: parse batches on a thread pool
//! let mut batch = Vec::new();
//! let (mut posts, mut bad) = (Vec::new(), Vec::new());
//! while reader.read_batch(4096, &mut batch)? {
//!     for record in batch.drain(..) {
//!         match parser.parse(&record) {
//!             Ok(Some(post)) => posts.push(post),
//!             Ok(None) => {} // a blank line
//!             Err(e) => bad.push(e.to_string()),
//!         }
//!     }
//! }
//! assert_eq!(posts[0].ts, Some(1_682_915_696));
//! assert_eq!(bad, ["posts.jsonl:2: missing text field"]);
//! # Ok::<(), textreuse::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};

/// Capacity of the buffer between the (decompressed) input and the record scanner.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// How far into the input the format sniffer looks for a first non-blank byte.
const SNIFF_LIMIT_BYTES: usize = 64 << 10;

/// A record buffer grown past this is handed over instead of copied, so that the reader
/// does not keep a huge scratch buffer after one long line.
const KEEP_SCRATCH_BYTES: usize = 1 << 20;

/// The longest excerpt of a bad value quoted in an error message, in bytes.
const EXCERPT_BYTES: usize = 40;

/// The UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The layout of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputFormat {
    /// Decide from the file name, else from the content (see [`PostReader::open`]).
    #[default]
    Auto,
    /// One JSON object a line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// One post text a line.
    Text,
}

impl InputFormat {
    /// The lowercase name of the format: `auto`, `jsonl`, `csv` or `text`.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Auto => "auto",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Csv => "csv",
            InputFormat::Text => "text",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InputFormat {
    type Err = Error;

    /// Parses `auto`, `jsonl` (or `ndjson`, `json`), `csv`, `text` (or `txt`), in any case.
    fn from_str(s: &str) -> Result<InputFormat> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(InputFormat::Auto),
            "jsonl" | "ndjson" | "json" => Ok(InputFormat::Jsonl),
            "csv" => Ok(InputFormat::Csv),
            "text" | "txt" => Ok(InputFormat::Text),
            _ => Err(Error::InvalidParameter(format!(
                "unknown input format {s:?}: use auto, jsonl, csv or text"
            ))),
        }
    }
}

/// The names of the fields (JSON keys or CSV header cells) that hold each part of a post.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldNames {
    /// The post's id. Default `"id"`.
    pub id: String,
    /// The post's text. Default `"text"`.
    pub text: String,
    /// The posting account. Default `"account"`.
    pub account: String,
    /// The platform the post was made on. Default `"platform"`.
    pub platform: String,
    /// The post's time. Default `"ts"`.
    pub ts: String,
}

impl Default for FieldNames {
    fn default() -> FieldNames {
        FieldNames {
            id: "id".to_owned(),
            text: "text".to_owned(),
            account: "account".to_owned(),
            platform: "platform".to_owned(),
            ts: "ts".to_owned(),
        }
    }
}

impl FieldNames {
    /// The five names in a fixed order: id, text, account, platform, ts.
    fn all(&self) -> [&str; 5] {
        [
            &self.id,
            &self.text,
            &self.account,
            &self.platform,
            &self.ts,
        ]
    }

    /// Checks that no two roles share a name.
    fn validate(&self) -> Result<()> {
        let all = self.all();
        for (i, a) in all.iter().enumerate() {
            if all[i + 1..].contains(a) {
                return Err(Error::InvalidParameter(format!(
                    "input field names must be distinct, but {a:?} is used twice"
                )));
            }
        }
        Ok(())
    }
}

/// How to read input files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InputOptions {
    /// The format; [`InputFormat::Auto`] (the default) decides per file.
    pub format: InputFormat,
    /// Which fields hold the parts of a post.
    pub fields: FieldNames,
    /// Records longer than this many bytes (without the line terminator) are rejected
    /// without being buffered whole. Default 64 MiB.
    pub max_record_bytes: usize,
}

impl Default for InputOptions {
    fn default() -> InputOptions {
        InputOptions {
            format: InputFormat::Auto,
            fields: FieldNames::default(),
            max_record_bytes: 64 << 20,
        }
    }
}

/// One parsed post, as found in the input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RawPost {
    /// The post's id as text (integer ids in their decimal form).
    pub id: String,
    /// The post's text, unnormalized.
    pub text: String,
    /// The posting account, `""` when absent.
    pub account: String,
    /// The platform, `""` when absent.
    pub platform: String,
    /// The post's time in unix seconds, if given.
    pub ts: Option<i64>,
    /// The 1-based line the record starts on.
    pub line: u64,
}

/// One undecoded record (a JSONL or text line, or a CSV row) and the line it starts on.
///
/// Produced by [`PostReader::read_batch`], decoded by [`RecordParser::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawRecord {
    line: u64,
    body: Body,
}

/// What a [`RawRecord`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Body {
    /// The record's bytes, without the line terminator.
    Bytes(Vec<u8>),
    /// The record was longer than the limit and was discarded.
    TooLong,
}

impl RawRecord {
    /// A record holding `bytes` (without line terminator), starting on `line`.
    ///
    /// Readers make records; this is for callers that cut their input themselves.
    pub fn new(line: u64, bytes: Vec<u8>) -> RawRecord {
        RawRecord {
            line,
            body: Body::Bytes(bytes),
        }
    }

    /// The 1-based line the record starts on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The record's bytes, without the line terminator; empty for a record that was too
    /// long to keep.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(b) => b,
            Body::TooLong => &[],
        }
    }
}

/// Counts the bytes read through it into a shared counter.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What a file name says: its compression and its format, if its extensions tell.
fn classify_name(name: &str) -> (Compression, Option<InputFormat>) {
    let file_name = Path::new(name)
        .file_name()
        .map(|f| f.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (stem, compression) = if let Some(s) = file_name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = file_name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (file_name.as_str(), Compression::None)
    };
    let format = match stem.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jsonl" | "ndjson" | "json") => Some(InputFormat::Jsonl),
        Some("csv") => Some(InputFormat::Csv),
        Some("txt" | "text") => Some(InputFormat::Text),
        _ => None,
    };
    (compression, format)
}

/// Reads from `r` until `buf` holds at least `min_len` bytes or the input ends.
/// Returns `false` at end of input.
fn fill_to(r: &mut dyn Read, buf: &mut Vec<u8>, min_len: usize) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    while buf.len() < min_len {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Finds the first `\n` in `hay`, 32 bytes at a time.
fn find_newline(hay: &[u8]) -> Option<usize> {
    let mut rest = hay;
    let mut offset = 0;
    while let Some((block, tail)) = rest.split_first_chunk::<32>() {
        if block.iter().fold(false, |acc, &b| acc | (b == b'\n')) {
            return block.iter().position(|&b| b == b'\n').map(|i| offset + i);
        }
        offset += 32;
        rest = tail;
    }
    rest.iter().position(|&b| b == b'\n').map(|i| offset + i)
}

/// Where the CSV record scanner is, inside a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvState {
    /// At the start of a field.
    FieldStart,
    /// In a field that did not start with a quote.
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Just after a quote inside quotes: either an escaped `""` or the closing quote.
    QuoteInQuoted,
}

/// Scans CSV bytes from `state` for the `\n` that ends the record (one outside quotes).
/// Counts into `embedded` the `\n`s inside quotes before it.
fn scan_csv(chunk: &[u8], state: &mut CsvState, embedded: &mut u64) -> Option<usize> {
    for (i, &b) in chunk.iter().enumerate() {
        *state = match (*state, b) {
            (CsvState::Quoted, b'\n') => {
                *embedded += 1;
                CsvState::Quoted
            }
            (_, b'\n') => return Some(i),
            (CsvState::Quoted, b'"') => CsvState::QuoteInQuoted,
            (CsvState::Quoted, _) => CsvState::Quoted,
            (CsvState::QuoteInQuoted, b'"') => CsvState::Quoted,
            (CsvState::FieldStart, b'"') => CsvState::Quoted,
            (_, b',') => CsvState::FieldStart,
            (_, _) => CsvState::Unquoted,
        };
    }
    None
}

/// Splits one CSV record (without its terminator) into fields, calling `each(index, cell)`
/// until it returns `false`. Follows the `csv` crate's reading of malformed input: a quote
/// inside an unquoted field is literal, bytes after a closing quote are appended to the
/// field, an unclosed quote runs to the end of the record.
fn split_csv<'a>(rec: &'a [u8], mut each: impl FnMut(usize, Cow<'a, [u8]>) -> bool) {
    let mut pos = 0;
    let mut index = 0;
    loop {
        let rest = &rec[pos..];
        let (cell, used): (Cow<'a, [u8]>, usize) = if rest.first() == Some(&b'"') {
            let mut owned: Option<Vec<u8>> = None;
            let mut start = 1;
            let mut cell = None;
            while let Some(q) = rest[start..].iter().position(|&b| b == b'"') {
                let q = start + q;
                if rest.get(q + 1) == Some(&b'"') {
                    owned
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&rest[start..=q]);
                    start = q + 2;
                    continue;
                }
                // The closing quote; what follows up to the next comma is appended.
                let after = q + 1;
                let tail_len = rest[after..].iter().position(|&b| b == b',');
                let tail_end = tail_len.map_or(rest.len(), |t| after + t);
                let content: Cow<'a, [u8]> = match owned.take() {
                    None if tail_end == after => Cow::Borrowed(&rest[start..q]),
                    o => {
                        let mut v = o.unwrap_or_default();
                        v.extend_from_slice(&rest[start..q]);
                        v.extend_from_slice(&rest[after..tail_end]);
                        Cow::Owned(v)
                    }
                };
                cell = Some((content, tail_end));
                break;
            }
            match cell {
                Some(c) => c,
                None => {
                    // Unclosed quote: the field runs to the end of the record.
                    let content = match owned {
                        None => Cow::Borrowed(&rest[start..]),
                        Some(mut v) => {
                            v.extend_from_slice(&rest[start..]);
                            Cow::Owned(v)
                        }
                    };
                    (content, rest.len())
                }
            }
        } else {
            let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            (Cow::Borrowed(&rest[..end]), end)
        };
        if !each(index, cell) {
            return;
        }
        // `used` points at the comma ending the field, or at the end of the record.
        if used >= rest.len() {
            return;
        }
        pos += used + 1;
        index += 1;
    }
}

/// The column of each post part in a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CsvColumns {
    id: Option<usize>,
    text: usize,
    account: Option<usize>,
    platform: Option<usize>,
    ts: Option<usize>,
}

/// Everything a [`RecordParser`] needs, shared between its clones.
#[derive(Debug)]
struct ParserInner {
    name: String,
    format: InputFormat,
    fields: FieldNames,
    csv: Option<CsvColumns>,
    max_record_bytes: usize,
}

/// Decodes the [`RawRecord`]s of one file into [`RawPost`]s.
///
/// Cheap to clone (one reference count) and `Send + Sync`: parse batches on many threads.
#[derive(Clone, Debug)]
pub struct RecordParser {
    inner: Arc<ParserInner>,
}

impl RecordParser {
    /// The name of the file the parser is bound to (`-` for standard input).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file's format (never [`InputFormat::Auto`]).
    pub fn format(&self) -> InputFormat {
        self.inner.format
    }

    /// Decodes one record.
    ///
    /// Returns `Ok(None)` for a blank or whitespace-only line of a JSONL or text file: blank
    /// lines are not posts and not errors.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] with the file, the record's line and the reason when the
    /// record is not a valid post. The record should be reported and skipped.
    pub fn parse(&self, rec: &RawRecord) -> Result<Option<RawPost>> {
        let p = &*self.inner;
        let bytes = match &rec.body {
            Body::Bytes(b) => b.as_slice(),
            Body::TooLong => {
                return Err(self.invalid(
                    rec.line,
                    format!("record longer than {} bytes", p.max_record_bytes),
                ))
            }
        };
        let result = match p.format {
            InputFormat::Jsonl | InputFormat::Auto => self.parse_json(bytes, rec.line),
            InputFormat::Csv => self.parse_csv(bytes, rec.line).map(Some),
            InputFormat::Text => self.parse_text(bytes, rec.line),
        };
        match result {
            // i64::MIN is the index's "no time" marker; no real post is from 292 billion BC.
            Ok(Some(post)) if post.ts == Some(i64::MIN) => Err(self.invalid(
                rec.line,
                format!("{} out of range: {}", p.fields.ts, i64::MIN),
            )),
            r => r.map_err(|reason| self.invalid(rec.line, reason)),
        }
    }

    /// Builds the error for a bad record.
    fn invalid(&self, line: u64, reason: String) -> Error {
        Error::InvalidInput {
            file: self.inner.name.clone(),
            line,
            reason,
        }
    }

    /// The id of a post whose input has none: `<file>:<line>`.
    fn line_id(&self, line: u64) -> String {
        format!("{}:{}", self.inner.name, line)
    }

    fn parse_text(&self, bytes: &[u8], line: u64) -> Result<Option<RawPost>, String> {
        let text = utf8(bytes).map_err(|at| format!("invalid UTF-8 at byte {at}"))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(RawPost {
            id: self.line_id(line),
            text: text.to_owned(),
            line,
            ..RawPost::default()
        }))
    }

    fn parse_json(&self, bytes: &[u8], line: u64) -> Result<Option<RawPost>, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let s = utf8(bytes).map_err(|at| format!("invalid UTF-8 at byte {at}"))?;
        let names = &self.inner.fields;
        let mut de = serde_json::Deserializer::from_str(s);
        let fields = PostSeed { names }
            .deserialize(&mut de)
            .map_err(json_reason)?;
        de.end().map_err(json_reason)?;
        let id = match fields.id {
            None => return Err(format!("missing {} field", names.id)),
            Some(Scalar::Str(s)) => s.into_owned(),
            Some(Scalar::I64(n)) => n.to_string(),
            Some(Scalar::U64(n)) => n.to_string(),
            Some(_) => return Err(format!("{} must be a string or an integer", names.id)),
        };
        let text = match fields.text {
            None => return Err(format!("missing {} field", names.text)),
            Some(Scalar::Str(s)) => s.into_owned(),
            Some(_) => return Err(format!("{} field must be a string", names.text)),
        };
        let account = json_label(fields.account, &names.account)?;
        let platform = json_label(fields.platform, &names.platform)?;
        let ts = match fields.ts {
            None | Some(Scalar::Null) => None,
            Some(Scalar::I64(n)) => Some(n),
            Some(Scalar::U64(n)) => {
                Some(i64::try_from(n).map_err(|_| format!("{} out of range: {n}", names.ts))?)
            }
            Some(Scalar::F64(f)) => Some(
                float_seconds(f)
                    .ok_or_else(|| format!("{} out of range: {}", names.ts, short_float(f)))?,
            ),
            Some(Scalar::Str(s)) => timestamp_field(&s, &names.ts)?,
            Some(other) => {
                return Err(format!(
                    "{} must be unix seconds or an RFC 3339 date, not {}",
                    names.ts,
                    other.kind()
                ))
            }
        };
        Ok(Some(RawPost {
            id,
            text,
            account,
            platform,
            ts,
            line,
        }))
    }

    fn parse_csv(&self, bytes: &[u8], line: u64) -> Result<RawPost, String> {
        let p = &*self.inner;
        let Some(cols) = p.csv else {
            return Err("the CSV file has no header row".to_owned());
        };
        let wanted = [
            cols.id,
            Some(cols.text),
            cols.account,
            cols.platform,
            cols.ts,
        ];
        let last = wanted.iter().flatten().copied().max().unwrap_or(0);
        let mut cells: [Option<Cow<'_, [u8]>>; 5] = Default::default();
        split_csv(bytes, |index, cell| {
            let mut cell = Some(cell);
            for (slot, col) in cells.iter_mut().zip(wanted) {
                if col == Some(index) {
                    *slot = cell.take();
                    break;
                }
            }
            index < last
        });
        let [id_cell, text_cell, account_cell, platform_cell, ts_cell] = cells;
        let names = &p.fields;
        let id = match (cols.id, id_cell) {
            (None, _) => self.line_id(line),
            (Some(_), None) => return Err(format!("missing {} field", names.id)),
            (Some(_), Some(c)) => csv_string(c, &names.id)?,
        };
        let text = match text_cell {
            None => return Err(format!("missing {} field", names.text)),
            Some(c) => csv_string(c, &names.text)?,
        };
        let account = account_cell.map_or(Ok(String::new()), |c| csv_string(c, &names.account))?;
        let platform =
            platform_cell.map_or(Ok(String::new()), |c| csv_string(c, &names.platform))?;
        let ts = match ts_cell {
            None => None,
            Some(c) => {
                let s = utf8(&c)
                    .map_err(|at| format!("invalid UTF-8 in {} field at byte {at}", names.ts))?;
                timestamp_field(s, &names.ts)?
            }
        };
        Ok(RawPost {
            id,
            text,
            account,
            platform,
            ts,
            line,
        })
    }
}

/// Validates UTF-8; on failure returns the 1-based position of the first bad byte.
fn utf8(bytes: &[u8]) -> Result<&str, usize> {
    // SIMD validation (the same answers as `std::str::from_utf8`, several times faster on
    // non-ASCII text).
    simdutf8::compat::from_utf8(bytes).map_err(|e| e.valid_up_to().saturating_add(1))
}

/// A CSV cell as an owned string.
fn csv_string(cell: Cow<'_, [u8]>, field: &str) -> Result<String, String> {
    let bad = |at: usize| format!("invalid UTF-8 in {field} field at byte {at}");
    match cell {
        Cow::Borrowed(b) => utf8(b).map(str::to_owned).map_err(bad),
        Cow::Owned(v) => {
            String::from_utf8(v).map_err(|e| bad(e.utf8_error().valid_up_to().saturating_add(1)))
        }
    }
}

/// The reason for a JSON syntax error: serde_json's message and the column.
fn json_reason(e: serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    match e.column() {
        0 => format!("invalid JSON: {msg}"),
        column => format!("invalid JSON at column {column}: {msg}"),
    }
}

/// `account` or `platform`: a string, or a number as its decimal text; null or missing is `""`.
fn json_label(value: Option<Scalar<'_>>, field: &str) -> Result<String, String> {
    match value {
        None | Some(Scalar::Null) => Ok(String::new()),
        Some(Scalar::Str(s)) => Ok(s.into_owned()),
        Some(Scalar::I64(n)) => Ok(n.to_string()),
        Some(Scalar::U64(n)) => Ok(n.to_string()),
        Some(Scalar::F64(f)) => Ok(f.to_string()),
        Some(other) => Err(format!(
            "{field} must be a string or a number, not {}",
            other.kind()
        )),
    }
}

/// Unix seconds from a float, truncated toward zero; `None` when out of `i64` range.
fn float_seconds(f: f64) -> Option<i64> {
    let t = f.trunc();
    // 2^63 is exactly representable; every float in [-2^63, 2^63) fits in an i64.
    if t.is_finite() && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
        Some(t as i64)
    } else {
        None
    }
}

/// A float for an error message, in exponent form when very large or small.
fn short_float(f: f64) -> String {
    if f != 0.0 && !(1e-6..1e16).contains(&f.abs()) {
        format!("{f:e}")
    } else {
        f.to_string()
    }
}

/// A timestamp given as a string: blank means none; see [`parse_timestamp`].
fn timestamp_field(s: &str, field: &str) -> Result<Option<i64>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_timestamp(s).map(Some).ok_or_else(|| {
        format!(
            "{field} is not unix seconds or an RFC 3339 date: {}",
            excerpt(s)
        )
    })
}

/// A short quoted excerpt of `s` for an error message.
fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT_BYTES {
        return format!("{s:?}");
    }
    let mut end = EXCERPT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &s[..end])
}

/// Parses a timestamp string into unix seconds.
///
/// Accepted, after trimming surrounding whitespace:
/// - a decimal number of seconds, `-?[0-9]+(\.[0-9]*)?` (`+` allowed), truncated toward zero;
/// - an RFC 3339 date-time `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, where `T` may also be `t`
///   or a space, `Z` may be `z`, the offset may be written `±HHMM`, and a missing offset
///   means UTC; fractional seconds are dropped (the time is floored to its second); a leap
///   second `:60` counts as the first second of the next minute;
/// - a bare date `YYYY-MM-DD`, meaning midnight UTC.
///
/// Years run from 0000 to 9999; months, days (leap years included), hours, minutes and
/// offsets are range-checked.
///
/// Returns `None` when `s` is none of these, or out of `i64` range.
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    match parse_seconds(b) {
        Some(n) => n,
        None => parse_rfc3339(b),
    }
}

/// A decimal number of seconds. `None` if `b` is not one; `Some(None)` if out of range.
fn parse_seconds(b: &[u8]) -> Option<Option<i64>> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    let int_len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 {
        return None;
    }
    match &digits[int_len..] {
        [] => {}
        [b'.', frac @ ..] if frac.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &d in &digits[..int_len] {
        let d = i64::from(d - b'0');
        let next = n.checked_mul(10).and_then(|n| {
            if negative {
                n.checked_sub(d)
            } else {
                n.checked_add(d)
            }
        });
        match next {
            Some(v) => n = v,
            None => return Some(None),
        }
    }
    Some(Some(n))
}

/// The value of the ASCII digits `b`, if all are digits.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The number of days in `month` of `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap {
                29
            } else {
                28
            }
        }
    }
}

/// An RFC 3339 date-time or a bare date, as unix seconds.
fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    let field = |range: std::ops::Range<usize>| b.get(range).and_then(digits);
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    let year = field(0..4)?;
    let month = field(5..7)?;
    let day = field(8..10)?;
    if !sep(4, b'-') || !sep(7, b'-') || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * 86_400);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = field(11..13)?;
    let minute = field(14..16)?;
    let second = field(17..19)?;
    if !sep(13, b':') || !sep(16, b':') || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut pos = 19;
    if sep(pos, b'.') {
        let frac = b[pos + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if frac == 0 {
            return None;
        }
        pos += 1 + frac;
    }
    let offset = match &b[pos..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// A JSON value of one of the five known fields, decoded without committing to a type.
#[derive(Debug)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Null,
    Array,
    Object,
}

impl Scalar<'_> {
    /// The JSON type or value, for error messages.
    fn kind(&self) -> String {
        match self {
            Scalar::Str(s) => format!("the string {}", excerpt(s)),
            Scalar::I64(n) => n.to_string(),
            Scalar::U64(n) => n.to_string(),
            Scalar::F64(f) => short_float(*f),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".to_owned(),
            Scalar::Array => "an array".to_owned(),
            Scalar::Object => "an object".to_owned(),
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Which known field a JSON key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Text,
    Account,
    Platform,
    Ts,
    Other,
}

/// Deserializes a JSON key into a [`Key`] without allocating (unless it has escapes).
struct KeySeed<'n> {
    names: &'n FieldNames,
}

impl KeySeed<'_> {
    fn classify(&self, k: &str) -> Key {
        let n = self.names;
        if k == n.text {
            Key::Text
        } else if k == n.id {
            Key::Id
        } else if k == n.account {
            Key::Account
        } else if k == n.platform {
            Key::Platform
        } else if k == n.ts {
            Key::Ts
        } else {
            Key::Other
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(self.classify(v))
    }
}

/// The five known fields of one JSON object, as found.
#[derive(Debug, Default)]
struct JsonFields<'a> {
    id: Option<Scalar<'a>>,
    text: Option<Scalar<'a>>,
    account: Option<Scalar<'a>>,
    platform: Option<Scalar<'a>>,
    ts: Option<Scalar<'a>>,
}

/// Deserializes one JSON object, keeping the five known fields and skipping the rest.
struct PostSeed<'n> {
    names: &'n FieldNames,
}

impl<'de> DeserializeSeed<'de> for PostSeed<'_> {
    type Value = JsonFields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JsonFields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PostSeed<'_> {
    type Value = JsonFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonFields<'de>, A::Error> {
        let mut out = JsonFields::default();
        while let Some(key) = map.next_key_seed(KeySeed { names: self.names })? {
            let slot = match key {
                Key::Id => &mut out.id,
                Key::Text => &mut out.text,
                Key::Account => &mut out.account,
                Key::Platform => &mut out.platform,
                Key::Ts => &mut out.ts,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            // A repeated key: the last value wins.
            *slot = Some(map.next_value::<Scalar<'de>>()?);
        }
        Ok(out)
    }
}

/// Reads the records of one input file sequentially.
///
/// Decompresses `.gz` (all members) and `.zst` input, finds the format, and cuts the input
/// into [`RawRecord`]s; decode them with the [`RecordParser`] from [`PostReader::parser`].
pub struct PostReader {
    name: String,
    format: InputFormat,
    src: BufReader<Box<dyn Read + Send>>,
    counter: Arc<AtomicU64>,
    parser: RecordParser,
    max_record_bytes: usize,
    /// The line the next record starts on.
    next_line: u64,
    /// Scratch for records that span several buffer fills.
    scratch: Vec<u8>,
    /// The input has ended (or failed).
    done: bool,
}

impl fmt::Debug for PostReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostReader")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("next_line", &self.next_line)
            .field("bytes_read", &self.bytes_read())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl PostReader {
    /// Opens `path` (`-` is standard input).
    ///
    /// Compression: a name ending in `.gz` is gzip (all members are read), `.zst` is zstd;
    /// other input is still decompressed when it starts with the gzip or zstd magic bytes
    /// (neither can start valid UTF-8 text).
    ///
    /// Format: `opts.format` unless it is [`InputFormat::Auto`]; else the extension left after
    /// removing `.gz`/`.zst` (`.jsonl`, `.ndjson`, `.json`: JSONL; `.csv`: CSV; `.txt`,
    /// `.text`: text); else the content: JSONL if the first non-blank byte is `{`, else text.
    ///
    /// A CSV file's header row is read here.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be opened or read; [`Error::InvalidParameter`] if two
    /// of `opts.fields` share a name; [`Error::InvalidInput`] if a CSV header lacks the text
    /// column or is too long.
    pub fn open(path: &Path, opts: &InputOptions) -> Result<PostReader> {
        if path.as_os_str() == "-" {
            return PostReader::from_reader("-", Box::new(io::stdin()), opts);
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let name = path.display().to_string();
        PostReader::build(name, path.to_path_buf(), Box::new(file), opts)
    }

    /// Reads from `reader`, calling it `name` in messages and record ids.
    ///
    /// `name` is used like a path in [`PostReader::open`] to find the compression and the
    /// format.
    ///
    /// # Errors
    ///
    /// As [`PostReader::open`].
    pub fn from_reader(
        name: &str,
        reader: Box<dyn Read + Send>,
        opts: &InputOptions,
    ) -> Result<PostReader> {
        PostReader::build(name.to_owned(), PathBuf::from(name), reader, opts)
    }

    fn build(
        name: String,
        path: PathBuf,
        reader: Box<dyn Read + Send>,
        opts: &InputOptions,
    ) -> Result<PostReader> {
        opts.fields.validate()?;
        let io_err = |e| Error::io(&path, e);
        let (mut compression, name_format) = classify_name(&name);
        let counter = Arc::new(AtomicU64::new(0));
        let mut raw = CountingReader {
            inner: reader,
            count: Arc::clone(&counter),
        };

        let mut magic = Vec::with_capacity(4);
        fill_to(&mut raw, &mut magic, 4).map_err(io_err)?;
        if compression == Compression::None {
            if magic.starts_with(&[0x1F, 0x8B]) {
                compression = Compression::Gzip;
            } else if magic.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
                compression = Compression::Zstd;
            }
        }
        let raw = io::Cursor::new(magic).chain(raw);
        let mut decoded: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw).map_err(io_err)?),
        };

        // Look at the start of the content: drop a byte order mark, sniff the format.
        let mut format = match opts.format {
            InputFormat::Auto => name_format,
            f => Some(f),
        };
        let mut head = Vec::new();
        let mut more = fill_to(&mut decoded, &mut head, UTF8_BOM.len()).map_err(io_err)?;
        if head.starts_with(UTF8_BOM) {
            head.drain(..UTF8_BOM.len());
        }
        while format.is_none() {
            match head.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(&b) => {
                    format = Some(if b == b'{' {
                        InputFormat::Jsonl
                    } else {
                        InputFormat::Text
                    })
                }
                None if !more || head.len() >= SNIFF_LIMIT_BYTES => {
                    format = Some(InputFormat::Text)
                }
                None => {
                    let want = head.len() + 1;
                    more = fill_to(&mut decoded, &mut head, want).map_err(io_err)?
                }
            }
        }
        let format = format.unwrap_or(InputFormat::Text);
        let src: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(decoded));

        let mut reader = PostReader {
            parser: RecordParser {
                inner: Arc::new(ParserInner {
                    name: name.clone(),
                    format,
                    fields: opts.fields.clone(),
                    csv: None,
                    max_record_bytes: opts.max_record_bytes,
                }),
            },
            name,
            format,
            src: BufReader::with_capacity(READ_BUFFER_BYTES, src),
            counter,
            max_record_bytes: opts.max_record_bytes,
            next_line: 1,
            scratch: Vec::new(),
            done: false,
        };
        if format == InputFormat::Csv {
            reader.read_csv_header(&opts.fields)?;
        }
        Ok(reader)
    }

    /// Reads the CSV header row and binds the parser to its columns.
    fn read_csv_header(&mut self, fields: &FieldNames) -> Result<()> {
        let (line, body) = loop {
            match self.next_record()? {
                // An empty file: no header, but no rows to read either.
                None => return Ok(()),
                Some((_, Body::Bytes(b))) if b.is_empty() => continue,
                Some(r) => break r,
            }
        };
        let Body::Bytes(header) = body else {
            return Err(Error::InvalidInput {
                file: self.name.clone(),
                line,
                reason: format!("CSV header row longer than {} bytes", self.max_record_bytes),
            });
        };
        let mut found: [Option<usize>; 5] = [None; 5];
        let mut columns = Vec::new();
        let names = fields.all();
        split_csv(&header, |index, cell| {
            let cell = cell.trim_ascii();
            for (slot, name) in found.iter_mut().zip(names) {
                if slot.is_none() && cell == name.as_bytes() {
                    *slot = Some(index);
                }
            }
            if columns.len() < 20 {
                columns.push(String::from_utf8_lossy(cell).into_owned());
            }
            true
        });
        let [id, text, account, platform, ts] = found;
        let Some(text) = text else {
            return Err(Error::InvalidInput {
                file: self.name.clone(),
                line,
                reason: format!(
                    "the CSV header has no {:?} column (it has: {}); \
                     name the text column with the text field option",
                    fields.text,
                    columns.join(", ")
                ),
            });
        };
        let inner = ParserInner {
            name: self.name.clone(),
            format: InputFormat::Csv,
            fields: fields.clone(),
            csv: Some(CsvColumns {
                id,
                text,
                account,
                platform,
                ts,
            }),
            max_record_bytes: self.max_record_bytes,
        };
        self.parser = RecordParser {
            inner: Arc::new(inner),
        };
        Ok(())
    }

    /// The input's name, as given (`-` for standard input).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The input's format, resolved (never [`InputFormat::Auto`]).
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// Appends up to `max` records to `out` (a `max` of 0 counts as 1).
    ///
    /// Returns `Ok(true)` when at least one record was appended, `Ok(false)` when the input
    /// has ended and nothing was appended. Blank JSONL and text lines are returned as records
    /// (the parser ignores them); blank CSV lines are skipped here. Records too long to keep
    /// are returned as records whose parse fails.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file for a failure to read or decompress. The records
    /// appended before the failure stay in `out`; the reader then counts as ended.
    pub fn read_batch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<bool> {
        let mut appended = 0;
        while appended < max.max(1) {
            let next = match self.next_record() {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            let Some((line, body)) = next else { break };
            if self.format == InputFormat::Csv && body == Body::Bytes(Vec::new()) {
                continue;
            }
            out.push(RawRecord { line, body });
            appended += 1;
        }
        Ok(appended > 0)
    }

    /// A parser for this file's records.
    pub fn parser(&self) -> RecordParser {
        self.parser.clone()
    }

    /// Bytes read so far from the underlying, possibly compressed, input; it runs ahead of
    /// the records returned by up to the read buffer's size. For a progress bar.
    pub fn bytes_read(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    /// Reads the next record: its first line and its body.
    fn next_record(&mut self) -> Result<Option<(u64, Body)>> {
        if self.done {
            return Ok(None);
        }
        let r = self.scan();
        if matches!(r, Ok(None)) {
            self.done = true;
        }
        r.map_err(|e| Error::io(&self.name, e))
    }

    /// Cuts the next record out of the input, chunk by chunk, keeping at most
    /// `max_record_bytes + 1` bytes of it.
    fn scan(&mut self) -> io::Result<Option<(u64, Body)>> {
        let csv = self.format == InputFormat::Csv;
        let keep = self.max_record_bytes.saturating_add(1);
        let start_line = self.next_line;
        let mut state = CsvState::FieldStart;
        let mut any = false;
        let mut too_long = false;
        self.scratch.clear();
        loop {
            let chunk = match self.src.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                self.next_line = self.next_line.saturating_add(1);
                break;
            }
            any = true;
            let mut embedded = 0;
            let end = if csv {
                scan_csv(chunk, &mut state, &mut embedded)
            } else {
                find_newline(chunk)
            };
            let take = end.unwrap_or(chunk.len());
            if !too_long {
                if self.scratch.len().saturating_add(take) > keep {
                    too_long = true;
                    self.scratch = Vec::new();
                } else if end.is_some() && self.scratch.is_empty() {
                    // The whole record is in the buffer: copy it out once.
                    let body = trim_cr(&chunk[..take], state);
                    let body = if body.len() > self.max_record_bytes {
                        Body::TooLong
                    } else {
                        Body::Bytes(body.to_vec())
                    };
                    self.src.consume(take + 1);
                    self.next_line = self.next_line.saturating_add(embedded).saturating_add(1);
                    return Ok(Some((start_line, body)));
                } else {
                    self.scratch.extend_from_slice(&chunk[..take]);
                }
            }
            let used = if end.is_some() { take + 1 } else { take };
            self.src.consume(used);
            self.next_line = self.next_line.saturating_add(embedded);
            if end.is_some() {
                self.next_line = self.next_line.saturating_add(1);
                break;
            }
        }
        if too_long {
            return Ok(Some((start_line, Body::TooLong)));
        }
        let len = trim_cr(&self.scratch, state).len();
        self.scratch.truncate(len);
        if len > self.max_record_bytes {
            return Ok(Some((start_line, Body::TooLong)));
        }
        let bytes = if self.scratch.capacity() > KEEP_SCRATCH_BYTES {
            std::mem::take(&mut self.scratch)
        } else {
            self.scratch.clone()
        };
        Ok(Some((start_line, Body::Bytes(bytes))))
    }
}

/// Drops the `\r` of a `\r\n` terminator (unless it is inside CSV quotes).
fn trim_cr(bytes: &[u8], state: CsvState) -> &[u8] {
    match bytes.split_last() {
        Some((b'\r', rest)) if state != CsvState::Quoted => rest,
        _ => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{Cursor, Write};

    /// What reading a whole input gave: posts, bad records (line, reason), ignored lines.
    #[derive(Debug, Default)]
    struct Outcome {
        ok: Vec<RawPost>,
        bad: Vec<(u64, String)>,
        ignored: Vec<u64>,
    }

    impl Outcome {
        fn ok_lines(&self) -> Vec<u64> {
            self.ok.iter().map(|p| p.line).collect()
        }
        fn bad_lines(&self) -> Vec<u64> {
            self.bad.iter().map(|b| b.0).collect()
        }
    }

    fn reader_with(name: &str, data: &[u8], opts: &InputOptions) -> Result<PostReader> {
        PostReader::from_reader(name, Box::new(Cursor::new(data.to_vec())), opts)
    }

    fn drain(mut r: PostReader, batch: usize) -> Outcome {
        let parser = r.parser();
        let mut out = Outcome::default();
        let mut recs = Vec::new();
        while r.read_batch(batch, &mut recs).expect("no I/O error") {
            for rec in recs.drain(..) {
                match parser.parse(&rec) {
                    Ok(Some(p)) => {
                        assert_eq!(p.line, rec.line());
                        out.ok.push(p)
                    }
                    Ok(None) => out.ignored.push(rec.line()),
                    Err(Error::InvalidInput { file, line, reason }) => {
                        assert_eq!(file, r.name());
                        assert_eq!(line, rec.line());
                        out.bad.push((line, reason))
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
        out
    }

    fn read_all(name: &str, data: &[u8], opts: &InputOptions) -> Outcome {
        drain(reader_with(name, data, opts).expect("opens"), 3)
    }

    fn json_parser(fields: FieldNames) -> RecordParser {
        let opts = InputOptions {
            fields,
            ..InputOptions::default()
        };
        reader_with("t.jsonl", b"", &opts).expect("opens").parser()
    }

    fn json(line: &str) -> Result<Option<RawPost>> {
        json_parser(FieldNames::default()).parse(&RawRecord::new(7, line.as_bytes().to_vec()))
    }

    fn post(line: &str) -> RawPost {
        match json(line) {
            Ok(Some(p)) => p,
            other => panic!("{line}: expected a post, got {other:?}"),
        }
    }

    fn reason(r: Result<Option<RawPost>>) -> String {
        match r {
            Err(Error::InvalidInput { reason, .. }) => reason,
            other => panic!("expected an invalid-input error, got {other:?}"),
        }
    }

    fn bad(line: &str) -> String {
        reason(json(line))
    }

    /// Returns its data a few bytes per read, to exercise records split across buffers.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn trickle(name: &str, data: &[u8], step: usize, opts: &InputOptions) -> Result<PostReader> {
        let t = Trickle {
            data: data.to_vec(),
            pos: 0,
            step,
        };
        PostReader::from_reader(name, Box::new(t), opts)
    }

    fn raw_records(r: Result<PostReader>) -> Result<Vec<RawRecord>> {
        let mut r = r?;
        let mut out = Vec::new();
        while r.read_batch(5, &mut out)? {}
        Ok(out)
    }

    #[test]
    fn json_fields() {
        let p =
            post(r#"{"id":"a1","text":"hi \"there\"\n","account":"bob","platform":"x","ts":5}"#);
        assert_eq!(
            p,
            RawPost {
                id: "a1".into(),
                text: "hi \"there\"\n".into(),
                account: "bob".into(),
                platform: "x".into(),
                ts: Some(5),
                line: 7
            }
        );
        assert_eq!(post(r#"{"id":42,"text":"t"}"#).id, "42");
        assert_eq!(post(r#"{"id":-42,"text":"t"}"#).id, "-42");
        assert_eq!(
            post(r#"{"id":18446744073709551615,"text":"t"}"#).id,
            "18446744073709551615"
        );
        assert_eq!(post(r#"{"text":"\u00e9\ud83d\ude00","id":1}"#).text, "é😀");
        let p = post(r#"{"id":1,"text":"t","account":12,"platform":null}"#);
        assert_eq!(
            (p.account.as_str(), p.platform.as_str(), p.ts),
            ("12", "", None)
        );
        assert_eq!(post(r#"{"id":1,"text":"t","account":1.5}"#).account, "1.5");
        assert_eq!(post(r#"{"id":1,"text":""}"#).text, "");
        // Unknown keys of any shape are skipped.
        let p = post(r#"{"x":{"a":[1,{"b":null}]},"id":1,"y":[true,"s"],"text":"t","z":-1.5e3}"#);
        assert_eq!(p.text, "t");
        // The last of repeated keys wins.
        assert_eq!(post(r#"{"id":1,"text":"a","text":"b"}"#).text, "b");
        // Surrounding whitespace and a trailing \r.
        assert_eq!(post(" \t{\"id\":1,\"text\":\"t\"}  \r").text, "t");
    }

    #[test]
    fn json_field_errors() {
        assert_eq!(bad(r#"{"text":"t"}"#), "missing id field");
        assert_eq!(
            bad(r#"{"id":1.5,"text":"t"}"#),
            "id must be a string or an integer"
        );
        assert_eq!(
            bad(r#"{"id":1e3,"text":"t"}"#),
            "id must be a string or an integer"
        );
        assert_eq!(
            bad(r#"{"id":true,"text":"t"}"#),
            "id must be a string or an integer"
        );
        assert_eq!(
            bad(r#"{"id":null,"text":"t"}"#),
            "id must be a string or an integer"
        );
        assert_eq!(
            bad(r#"{"id":[1],"text":"t"}"#),
            "id must be a string or an integer"
        );
        assert_eq!(bad(r#"{"id":1}"#), "missing text field");
        assert_eq!(bad(r#"{"id":1,"text":5}"#), "text field must be a string");
        assert_eq!(
            bad(r#"{"id":1,"text":null}"#),
            "text field must be a string"
        );
        assert_eq!(bad(r#"{"id":1,"text":{}}"#), "text field must be a string");
        assert_eq!(
            bad(r#"{"id":1,"text":"t","account":true}"#),
            "account must be a string or a number, not true"
        );
        assert_eq!(
            bad(r#"{"id":1,"text":"t","platform":[]}"#),
            "platform must be a string or a number, not an array"
        );
        assert_eq!(
            bad(r#"{"id":1,"text":"t","ts":false}"#),
            "ts must be unix seconds or an RFC 3339 date, not false"
        );
        assert_eq!(
            bad(r#"{"id":1,"text":"t","ts":{"s":1}}"#),
            "ts must be unix seconds or an RFC 3339 date, not an object"
        );
        assert_eq!(
            bad(r#"{"id":1,"text":"t","ts":"yesterday"}"#),
            r#"ts is not unix seconds or an RFC 3339 date: "yesterday""#
        );
        assert_eq!(
            bad(r#"{"id":1,"text":"t","ts":1e300}"#),
            "ts out of range: 1e300"
        );
        assert_eq!(
            bad(r#"{"id":1,"text":"t","ts":18446744073709551615}"#),
            "ts out of range: 18446744073709551615"
        );
        let long = format!(r#"{{"id":1,"text":"t","ts":"{}"}}"#, "é".repeat(50));
        let r = bad(&long);
        assert!(r.ends_with("...") && r.len() < 100, "{r}");
    }

    #[test]
    fn json_timestamps() {
        let ts = |v: &str| post(&format!(r#"{{"id":1,"text":"t","ts":{v}}}"#)).ts;
        assert_eq!(ts("1682915696"), Some(1682915696));
        assert_eq!(ts("-86400"), Some(-86400));
        assert_eq!(ts("1.9"), Some(1));
        assert_eq!(ts("-1.9"), Some(-1));
        assert_eq!(ts("1.6829e9"), Some(1682900000));
        assert_eq!(ts("null"), None);
        assert_eq!(ts(r#""""#), None);
        assert_eq!(ts(r#""  ""#), None);
        assert_eq!(ts(r#""1682915696""#), Some(1682915696));
        assert_eq!(ts(r#"" -5 ""#), Some(-5));
        assert_eq!(ts(r#""12.75""#), Some(12));
        assert_eq!(ts(r#""2023-05-01T12:34:56+08:00""#), Some(1682915696));
        assert_eq!(post(r#"{"id":1,"text":"t"}"#).ts, None);
    }

    #[test]
    fn rfc3339_values() {
        let cases: &[(&str, i64)] = &[
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01", 0),
            ("2023-05-01T12:34:56+08:00", 1682915696),
            ("2023-05-01T04:34:56Z", 1682915696),
            ("2023-05-01t04:34:56z", 1682915696),
            ("2023-05-01 04:34:56Z", 1682915696),
            ("2023-05-01 04:34:56", 1682915696),
            ("2023-05-01T04:34:56.999999Z", 1682915696),
            ("2023-05-01T12:34:56.5+0800", 1682915696),
            ("2023-05-01T12:34:56-05:30", 1682964296),
            ("2023-05-01T04:34:56-00:00", 1682915696),
            ("1969-12-31T23:59:59Z", -1),
            ("1969-12-31T23:59:59.5Z", -1),
            ("1969-07-20T20:17:40Z", -14182940),
            ("1900-01-01", -2208988800),
            ("0001-01-01T00:00:00Z", -62135596800),
            ("9999-12-31T23:59:59Z", 253402300799),
            ("2000-02-29T23:59:59-01:00", 951872399),
            ("2024-02-29", 1709164800),
            ("2016-12-31T23:59:60Z", 1483228800),
            ("  2023-05-01T04:34:56Z\t", 1682915696),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        let invalid = [
            "2023-13-01",
            "2023-00-10",
            "2023-02-30",
            "2023-02-29",
            "1900-02-29",
            "2023-04-31",
            "2023-05-00",
            "2023-05-01T24:00:00Z",
            "2023-05-01T12:60:00Z",
            "2023-05-01T12:00:61Z",
            "2023-05-01T12:34Z",
            "2023-05-01T12:34:56.Z",
            "2023-05-01T12:34:56+8:00",
            "2023-05-01T12:34:56+24:00",
            "2023-05-01T12:34:56+08:60",
            "2023-05-01T12:34:56 Z",
            "2023-05-01T12:34:56Zx",
            "2023-5-01",
            "23-05-01",
            "2023/05/01",
            "2023-05-01X12:34:56Z",
            "+2023-05-01",
            "",
            "-",
            "1.2.3",
            "99999999999999999999",
        ];
        for s in invalid {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }

    /// Unix seconds by counting days one by one: the oracle for `parse_rfc3339`.
    fn naive_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, off_min: i64) -> i64 {
        let leap = |y: i64| y % 400 == 0 || (y % 4 == 0 && y % 100 != 0);
        let year_days = |y: i64| if leap(y) { 366 } else { 365 };
        let mut days = 0;
        if y >= 1970 {
            days += (1970..y).map(year_days).sum::<i64>();
        } else {
            days -= (y..1970).map(year_days).sum::<i64>();
        }
        let month_days = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        days += month_days[..(mo - 1) as usize].iter().sum::<i64>() + d - 1;
        days * 86400 + h * 3600 + mi * 60 + s - off_min * 60
    }

    proptest! {
        #[test]
        fn rfc3339_matches_naive(
            y in 0i64..=9999, mo in 1i64..=12, d in 1i64..=31, h in 0i64..24, mi in 0i64..60,
            s in 0i64..60, off in -1439i64..=1439, sep in 0usize..3, frac in 0usize..3,
        ) {
            let dim = days_in_month(y, mo);
            let text = format!(
                "{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{s:02}{}{}",
                ["T", "t", " "][sep],
                ["", ".5", ".123456789"][frac],
                if off == 0 { "Z".to_owned() } else {
                    format!("{}{:02}:{:02}", if off < 0 { '-' } else { '+' }, off.abs() / 60, off.abs() % 60)
                },
            );
            let off = if off == 0 { 0 } else { off.signum() * ((off.abs() / 60) * 60 + off.abs() % 60) };
            if d <= dim {
                prop_assert_eq!(parse_timestamp(&text), Some(naive_seconds(y, mo, d, h, mi, s, off)));
            } else {
                prop_assert_eq!(parse_timestamp(&text), None);
            }
        }

        #[test]
        fn json_round_trip(
            id in prop_oneof![any::<i64>().prop_map(serde_json::Value::from), ".*".prop_map(serde_json::Value::from)],
            text in ".*", account in ".*", ts in proptest::option::of(any::<i64>()),
        ) {
            let v = serde_json::json!({"extra": [1, {"a": "b"}], "id": id, "text": text, "account": account, "ts": ts});
            let line = serde_json::to_string(&v).expect("serializes");
            let p = json_parser(FieldNames::default()).parse(&RawRecord::new(1, line.into_bytes()));
            let p = p.expect("valid").expect("not blank");
            let want_id = match &id { serde_json::Value::String(s) => s.clone(), other => other.to_string() };
            prop_assert_eq!(p, RawPost { id: want_id, text, account, platform: String::new(), ts, line: 1 });
        }
    }

    #[test]
    fn json_syntax_and_utf8_errors() {
        assert_eq!(
            bad(r#"{"id":1,"text":"t""#),
            "invalid JSON at column 18: EOF while parsing an object"
        );
        assert_eq!(
            bad(r#"{"id":1 "text":"t"}"#),
            "invalid JSON at column 9: expected `,` or `}`"
        );
        assert!(bad(r#"{"id":1,"text":"t"} x"#).starts_with("invalid JSON at column 21: trailing"));
        assert_eq!(
            bad("[1,2]"),
            "invalid JSON: invalid type: sequence, expected a JSON object"
        );
        assert!(bad("\"s\"").contains("expected a JSON object"));
        assert!(bad(r#"{"id":1,"text":"a\q"}"#).starts_with("invalid JSON at column 19"));
        // Deep nesting costs no stack, in a skipped value or in a known field.
        let nest = |n: usize| format!("{}1{}", "[{\"a\":".repeat(n), "}]".repeat(n));
        assert_eq!(
            post(&format!(r#"{{"id":1,"text":"t","x":{}}}"#, nest(100_000))).text,
            "t"
        );
        let deep_id = format!(r#"{{"id":{},"text":"t"}}"#, nest(100_000));
        assert_eq!(bad(&deep_id), "id must be a string or an integer");
        assert!(bad(&format!(
            r#"{{"id":1,"text":"t","x":{}"#,
            "[".repeat(100_000)
        ))
        .starts_with("invalid JSON"));
        let parser = json_parser(FieldNames::default());
        let rec = RawRecord::new(3, b"{\"id\":1,\"text\":\"a\xFFb\"}".to_vec());
        assert_eq!(reason(parser.parse(&rec)), "invalid UTF-8 at byte 18");
        let rec = RawRecord::new(3, b"\xC3".to_vec());
        assert_eq!(reason(parser.parse(&rec)), "invalid UTF-8 at byte 1");
        for blank in ["", " ", "\t \r", "\r"] {
            assert_eq!(json(blank).expect("blank is fine"), None);
        }
    }

    #[test]
    fn renamed_fields() {
        let fields = FieldNames {
            id: "post_id".into(),
            text: "body".into(),
            account: "user".into(),
            platform: "site".into(),
            ts: "created_at".into(),
        };
        let parser = json_parser(fields.clone());
        let line = r#"{"post_id":9,"body":"b","text":"ignored","user":"u","site":"s","created_at":"1970-01-02"}"#;
        let p = parser
            .parse(&RawRecord::new(1, line.into()))
            .expect("ok")
            .expect("post");
        assert_eq!(
            (p.id, p.text, p.account, p.platform, p.ts),
            ("9".into(), "b".into(), "u".into(), "s".into(), Some(86400))
        );
        assert_eq!(
            reason(parser.parse(&RawRecord::new(1, br#"{"id":1,"body":"b"}"#.to_vec()))),
            "missing post_id field"
        );
        assert_eq!(
            reason(parser.parse(&RawRecord::new(1, br#"{"post_id":1,"text":"b"}"#.to_vec()))),
            "missing body field"
        );

        let opts = InputOptions {
            fields,
            ..InputOptions::default()
        };
        let csv = b"user,body,post_id\nu1,hello,x1\n";
        let out = read_all("r.csv", csv, &opts);
        assert_eq!(
            out.ok,
            vec![RawPost {
                id: "x1".into(),
                text: "hello".into(),
                account: "u1".into(),
                line: 2,
                ..RawPost::default()
            }]
        );

        let dup = FieldNames {
            ts: "id".into(),
            ..FieldNames::default()
        };
        let opts = InputOptions {
            fields: dup,
            ..InputOptions::default()
        };
        assert!(matches!(
            reader_with("a.jsonl", b"", &opts),
            Err(Error::InvalidParameter(_))
        ));
    }

    /// The mixed bad file of the brief, read whole and through a trickling reader.
    #[test]
    fn mixed_bad_jsonl_file() {
        let big = "x".repeat(10 << 20);
        let mut data = Vec::new();
        data.extend_from_slice(b"{\"id\":1,\"text\":\"ok one\"}\n"); // 1
        data.extend_from_slice(b"\n"); // 2 blank
        data.extend_from_slice(b"{\"id\":2,\"text\":\n"); // 3 malformed
        data.extend_from_slice(b"{\"id\":3,\"text\":5}\n"); // 4 wrong type
        data.extend_from_slice(b"{\"id\":\"4\",\"text\":\"bad \xFF utf8\"}\r\n"); // 5 bad UTF-8
        data.extend_from_slice(b"{\"id\":5}\n"); // 6 missing text
        data.extend_from_slice(b"{\"id\":6,\"text\":\"\"}\n"); // 7 empty text: valid
        data.extend_from_slice(format!("{{\"id\":7,\"text\":\"{big}\"}}\n").as_bytes()); // 8 10 MB
        data.extend_from_slice(b"  \t \r\n"); // 9 whitespace only
        data.extend_from_slice(b"{\"id\":8.5,\"text\":\"x\"}\n"); // 10 float id
        data.extend_from_slice(b"{\"id\":9,\"text\":\"y\",\"ts\":\"2023-02-30\"}\n"); // 11 bad date
        data.extend_from_slice(b"{\"id\":10,\"text\":\"z\",\"ts\":true}\n"); // 12 bad ts type
        data.extend_from_slice(b"[1,2]\n"); // 13 not an object
        data.extend_from_slice(b"{\"id\":11,\"text\":\"last\"}\r"); // 14 no newline

        let check = |out: Outcome| {
            assert_eq!(out.ok_lines(), vec![1, 7, 8, 14]);
            assert_eq!(out.bad_lines(), vec![3, 4, 5, 6, 10, 11, 12, 13]);
            assert_eq!(out.ignored, vec![2, 9]);
            assert_eq!(out.ok[1].text, "");
            assert_eq!(out.ok[2].text.len(), 10 << 20);
            assert_eq!(out.ok[3].text, "last");
            assert_eq!(out.bad[2].1, "invalid UTF-8 at byte 23");
            assert_eq!(out.bad[3].1, "missing text field");
        };
        check(read_all("mixed.jsonl", &data, &InputOptions::default()));
        let r = trickle("mixed", &data, 4093, &InputOptions::default()).expect("opens");
        assert_eq!(r.format(), InputFormat::Jsonl);
        check(drain(r, 100));
    }

    #[test]
    fn record_length_limit() {
        let opts = InputOptions {
            max_record_bytes: 20,
            ..InputOptions::default()
        };
        let exact = br#"{"id":1,"text":"abc"}"#; // 21 bytes
        assert_eq!(exact.len(), 21);
        let fits = br#"{"id":1,"text":"ab"}"#; // 20 bytes
        let mut data = Vec::new();
        for part in [
            &fits[..],
            b"\n",
            exact,
            b"\n",
            fits,
            b"\r\n",
            &[b'{'; 100_000],
            b"\n",
            fits,
            b"\n",
            exact,
        ] {
            data.extend_from_slice(part);
        }
        for step in [1, 7, 1 << 20] {
            let out = drain(trickle("l.jsonl", &data, step, &opts).expect("opens"), 2);
            assert_eq!(out.ok_lines(), vec![1, 3, 5], "step {step}");
            assert_eq!(
                out.bad,
                vec![
                    (2, "record longer than 20 bytes".to_owned()),
                    (4, "record longer than 20 bytes".to_owned()),
                    (6, "record longer than 20 bytes".to_owned())
                ]
            );
        }
        // Too-long records are not kept.
        let recs = raw_records(reader_with("l.jsonl", &data, &opts)).expect("reads");
        assert!(recs.iter().all(|r| r.as_bytes().len() <= 21));
        // A CSV record spanning lines is measured whole and skipped whole.
        let opts = InputOptions {
            max_record_bytes: 30,
            ..InputOptions::default()
        };
        let csv = format!(
            "id,text\n1,\"{}\n{}\"\n2,short\n3,\"unclosed {}",
            "a".repeat(20),
            "b".repeat(20),
            "c\n".repeat(50)
        );
        let out = read_all("l.csv", csv.as_bytes(), &opts);
        assert_eq!(out.ok_lines(), vec![4]);
        assert_eq!(out.bad_lines(), vec![2, 5]);
    }

    #[test]
    fn csv_records() {
        let data = b"id,text,account,platform,ts\r\n\
            1,\"hello, world\",alice,twitter,1682915696\r\n\
            \r\n\
            2,\"multi\r\nline \"\"quoted\"\"\",bob,,2023-05-01\r\n\
            3\r\n\
            4,ok,carol,weibo,\r\n\
            5,\"a\"\"b\",,,\"2023-05-01T12:34:56+08:00\"\r\n\
            6,x,,,not a date\r\n\
            7,,,,\r\n\
            8,y,z,w,1,extra,cells";
        let out = read_all("posts.csv", data, &InputOptions::default());
        let p =
            |id: &str, text: &str, account: &str, platform: &str, ts: Option<i64>, line: u64| {
                RawPost {
                    id: id.into(),
                    text: text.into(),
                    account: account.into(),
                    platform: platform.into(),
                    ts,
                    line,
                }
            };
        assert_eq!(
            out.ok,
            vec![
                p("1", "hello, world", "alice", "twitter", Some(1682915696), 2),
                p(
                    "2",
                    "multi\r\nline \"quoted\"",
                    "bob",
                    "",
                    Some(1682899200),
                    4
                ),
                p("4", "ok", "carol", "weibo", None, 7),
                p("5", "a\"b", "", "", Some(1682915696), 8),
                p("7", "", "", "", None, 10),
                p("8", "y", "z", "w", Some(1), 11),
            ]
        );
        assert_eq!(
            out.bad,
            vec![
                (6, "missing text field".to_owned()),
                (
                    9,
                    "ts is not unix seconds or an RFC 3339 date: \"not a date\"".to_owned()
                )
            ]
        );
        assert!(out.ignored.is_empty());
    }

    #[test]
    fn csv_header_rules() {
        // No id column: ids are <file>:<line>. Header cells are trimmed; a BOM is dropped.
        let out = read_all(
            "d/p.csv",
            b"\xEF\xBB\xBF text , other\n\nhello,1\n\"two\nlines\",2\nworld\n",
            &InputOptions::default(),
        );
        let ids: Vec<_> = out.ok.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["d/p.csv:3", "d/p.csv:4", "d/p.csv:6"]);
        // No text column: fatal at open, on the header's line.
        match reader_with("p.csv", b"id,body\n1,x\n", &InputOptions::default()) {
            Err(Error::InvalidInput {
                file,
                line: 1,
                reason,
            }) => {
                assert_eq!(file, "p.csv");
                assert!(
                    reason.contains("\"text\"") && reason.contains("id, body"),
                    "{reason}"
                );
            }
            other => panic!("expected a fatal header error, got {other:?}"),
        }
        // A missing id cell is an error when the column exists.
        let out = read_all("p.csv", b"text,id\nonly text\n", &InputOptions::default());
        assert_eq!(out.bad, vec![(2, "missing id field".to_owned())]);
        // Empty input or a header alone: no records, no error.
        for data in [&b""[..], b"\n\n", b"id,text\n", b"id,text"] {
            let out = read_all("e.csv", data, &InputOptions::default());
            assert!(out.ok.is_empty() && out.bad.is_empty(), "{data:?}");
        }
        // Invalid UTF-8 in a used cell is an error for that row only; in an unused cell, fine.
        let out = read_all(
            "u.csv",
            b"id,text,junk\n1,a\xFFb,x\n2,ok,\xFF\n",
            &InputOptions::default(),
        );
        assert_eq!(
            out.bad,
            vec![(2, "invalid UTF-8 in text field at byte 2".to_owned())]
        );
        assert_eq!(out.ok_lines(), vec![3]);
        // A header longer than the limit is fatal.
        let opts = InputOptions {
            max_record_bytes: 5,
            ..InputOptions::default()
        };
        assert!(matches!(
            reader_with("h.csv", b"id,text\n1,a\n", &opts),
            Err(Error::InvalidInput { line: 1, .. })
        ));
    }

    #[test]
    fn text_records() {
        let data =
            b"first post\r\n\n   \nsecond \xE3\x80\x80 post\nbad \xC0 byte\n\xE3\x80\x80\nlast";
        let out = read_all("notes.txt", data, &InputOptions::default());
        assert_eq!(
            out.ok,
            vec![
                RawPost {
                    id: "notes.txt:1".into(),
                    text: "first post".into(),
                    line: 1,
                    ..RawPost::default()
                },
                RawPost {
                    id: "notes.txt:4".into(),
                    text: "second \u{3000} post".into(),
                    line: 4,
                    ..RawPost::default()
                },
                RawPost {
                    id: "notes.txt:7".into(),
                    text: "last".into(),
                    line: 7,
                    ..RawPost::default()
                },
            ]
        );
        assert_eq!(out.bad, vec![(5, "invalid UTF-8 at byte 5".to_owned())]);
        assert_eq!(out.ignored, vec![2, 3, 6]);
    }

    #[test]
    fn format_detection() {
        let fmt = |name: &str, data: &[u8], format: InputFormat| {
            let opts = InputOptions {
                format,
                ..InputOptions::default()
            };
            reader_with(name, data, &opts).expect("opens").format()
        };
        use InputFormat::*;
        assert_eq!(fmt("a.jsonl", b"hello", Auto), Jsonl);
        assert_eq!(fmt("a.NDJSON", b"", Auto), Jsonl);
        assert_eq!(fmt("a.json", b"", Auto), Jsonl);
        assert_eq!(fmt("a.csv", b"text\n", Auto), Csv);
        assert_eq!(fmt("dir.v2/a.txt", b"{", Auto), Text);
        assert_eq!(fmt("a.text", b"{", Auto), Text);
        assert_eq!(fmt("-", b"\n \t {\"id\":1}", Auto), Jsonl);
        assert_eq!(fmt("a.dat", b"\xEF\xBB\xBF{", Auto), Jsonl);
        assert_eq!(fmt("a.dat", b"id,text\n", Auto), Text);
        assert_eq!(fmt("a.dat", b"", Auto), Text);
        assert_eq!(fmt("a.dat", b"    ", Auto), Text);
        assert_eq!(fmt("a.jsonl", b"text\n", Csv), Csv);
        assert_eq!(fmt("a", b"{", Text), Text);
        let mut spaced = vec![b' '; 100_000];
        spaced.push(b'{');
        assert_eq!(
            fmt("a", &spaced, Auto),
            Text,
            "the sniffer looks at 64 KiB at most"
        );
        // Sniffing reads little at a time from slow input, and loses nothing.
        let r = trickle(
            "-",
            b"\n\n{\"id\":1,\"text\":\"t\"}\n",
            1,
            &InputOptions::default(),
        )
        .expect("opens");
        assert_eq!(r.format(), Jsonl);
        let out = drain(r, 10);
        assert_eq!((out.ok_lines(), out.ignored), (vec![3], vec![1, 2]));

        assert_eq!("NDJSON".parse::<InputFormat>().expect("known"), Jsonl);
        assert_eq!(Csv.to_string(), "csv");
        assert!(matches!(
            "xml".parse::<InputFormat>(),
            Err(Error::InvalidParameter(_))
        ));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compresses");
        e.finish().expect("compresses")
    }

    #[test]
    fn compressed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jsonl: String = (0..1000)
            .map(|i| format!("{{\"id\":{i},\"text\":\"post number {i}\"}}\n"))
            .collect();
        // Two gzip members, as from `cat a.gz b.gz`.
        let (a, b) = jsonl.split_at(jsonl.len() / 2 + 7);
        let mut gz = gzip(a.as_bytes());
        gz.extend_from_slice(&gzip(b.as_bytes()));
        // Two zstd frames.
        let mut zst = zstd::stream::encode_all(a.as_bytes(), 3).expect("compresses");
        zst.extend_from_slice(&zstd::stream::encode_all(b.as_bytes(), 1).expect("compresses"));
        for (file, bytes) in [
            ("p.jsonl.gz", &gz),
            ("p.jsonl.zst", &zst),
            ("p.JSONL.GZ", &gz),
        ] {
            let path = dir.path().join(file);
            std::fs::write(&path, bytes).expect("writes");
            let r = PostReader::open(&path, &InputOptions::default()).expect("opens");
            assert_eq!(r.format(), InputFormat::Jsonl);
            assert_eq!(r.name(), path.display().to_string());
            let out = drain(r, 64);
            assert!(out.bad.is_empty(), "{file}: {:?}", out.bad);
            assert_eq!(out.ok.len(), 1000, "{file}");
            assert_eq!(
                out.ok[999],
                RawPost {
                    id: "999".into(),
                    text: "post number 999".into(),
                    line: 1000,
                    ..RawPost::default()
                }
            );
        }
        // Compressed input without a telling name is recognized by its magic bytes.
        for bytes in [&gz, &zst] {
            let r = reader_with("-", bytes, &InputOptions::default()).expect("opens");
            assert_eq!(r.format(), InputFormat::Jsonl);
            assert_eq!(drain(r, 64).ok.len(), 1000);
        }
        let csv = gzip(b"id,text\n1,\"a\nb\"\n");
        let out = read_all("x.csv.gz", &csv, &InputOptions::default());
        assert_eq!(
            out.ok,
            vec![RawPost {
                id: "1".into(),
                text: "a\nb".into(),
                line: 2,
                ..RawPost::default()
            }]
        );
        // A damaged stream is a fatal I/O error naming the file.
        let mut broken = gz.clone();
        broken.truncate(gz.len() / 3);
        let err = raw_records(reader_with(
            "cut.jsonl.gz",
            &broken,
            &InputOptions::default(),
        ));
        match err {
            Err(e @ Error::Io { .. }) => {
                assert!(e.to_string().starts_with("cut.jsonl.gz: "), "{e}")
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        assert!(matches!(
            reader_with("not.gz", b"plain", &InputOptions::default()),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn open_files_and_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("posts");
        let data = "{\"id\":1,\"text\":\"a\"}\n{\"id\":2,\"text\":\"b\"}\n";
        std::fs::write(&path, data).expect("writes");
        let mut r = PostReader::open(&path, &InputOptions::default()).expect("opens");
        assert_eq!(r.format(), InputFormat::Jsonl);
        let mut recs = Vec::new();
        assert!(r.read_batch(1, &mut recs).expect("reads"));
        assert_eq!(recs.len(), 1);
        assert!(r.read_batch(0, &mut recs).expect("reads"), "0 counts as 1");
        assert_eq!(recs.iter().map(RawRecord::line).collect::<Vec<_>>(), [1, 2]);
        assert!(!r.read_batch(10, &mut recs).expect("reads"));
        assert!(!r.read_batch(10, &mut recs).expect("reads"));
        assert_eq!(recs.len(), 2);
        assert_eq!(r.bytes_read(), data.len() as u64);
        assert!(format!("{r:?}").contains("PostReader"));

        let missing = dir.path().join("missing.jsonl");
        match PostReader::open(&missing, &InputOptions::default()) {
            Err(Error::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    /// Gives its data, then fails.
    struct Failing(Cursor<Vec<u8>>);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn fatal_io_error_mid_file() {
        let data = b"{\"id\":1,\"text\":\"a\"}\n{\"id\":2,\"te".to_vec();
        let mut r = PostReader::from_reader(
            "f.jsonl",
            Box::new(Failing(Cursor::new(data))),
            &InputOptions::default(),
        )
        .expect("opens");
        let mut recs = Vec::new();
        match r.read_batch(10, &mut recs) {
            Err(e @ Error::Io { .. }) => assert_eq!(e.to_string(), "f.jsonl: disk on fire"),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        assert_eq!(recs.len(), 1, "records before the failure are kept");
        assert!(!r.read_batch(10, &mut recs).expect("ended"));
    }

    #[test]
    fn parser_is_send_sync_and_cheap() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        fn assert_send<T: Send>() {}
        assert_send_sync::<RecordParser>();
        assert_send_sync::<RawRecord>();
        assert_send::<PostReader>();
        let r = reader_with("x.jsonl", b"", &InputOptions::default()).expect("opens");
        let (a, b) = (r.parser(), r.parser());
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert_eq!((a.name(), a.format()), ("x.jsonl", InputFormat::Jsonl));
    }

    /// Records as the `csv` crate splits them (the oracle for the CSV scanner and splitter).
    fn csv_crate_records(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data);
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while rdr.read_byte_record(&mut rec).expect("in-memory") {
            out.push(rec.iter().map(<[u8]>::to_vec).collect());
        }
        out
    }

    fn our_csv_records(data: &[u8], step: usize) -> Vec<Vec<Vec<u8>>> {
        let mut r = trickle("o.csv", data, step, &InputOptions::default()).expect("opens");
        let mut recs = Vec::new();
        while r.read_batch(7, &mut recs).expect("in-memory") {}
        let mut out = vec![vec![b"text".to_vec()]];
        for rec in recs {
            let mut fields = Vec::new();
            split_csv(rec.as_bytes(), |_, f| {
                fields.push(f.into_owned());
                true
            });
            out.push(fields);
        }
        out
    }

    fn csvish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            "a", "bc", ",", "\"", "\"\"", "\n", "\r\n", " ", "é", "\r\n\r\n",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn csv_matches_csv_crate(body in csvish(), step in 1usize..9) {
            let mut data = b"text\n".to_vec();
            data.extend_from_slice(&body);
            prop_assert_eq!(our_csv_records(&data, step), csv_crate_records(&data));
        }

        #[test]
        fn csv_line_numbers(body in csvish()) {
            // A record's line is 1 + the newlines before its first byte.
            let mut data = b"text\n".to_vec();
            data.extend_from_slice(&body);
            let recs = raw_records(reader_with("n.csv", &data, &InputOptions::default())).expect("reads");
            let mut pos = 0;
            for rec in recs {
                let bytes = rec.as_bytes();
                prop_assert!(!bytes.is_empty());
                let at = pos + data[pos..].windows(bytes.len()).position(|w| w == bytes).expect("record in input");
                let newlines = data[..at].iter().filter(|&&b| b == b'\n').count() as u64;
                prop_assert_eq!(rec.line(), newlines + 1);
                pos = at + bytes.len();
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..600),
            step in 1usize..64, max in 0usize..80, format in 0usize..4,
        ) {
            let format = [InputFormat::Auto, InputFormat::Jsonl, InputFormat::Csv, InputFormat::Text][format];
            for max_record_bytes in [max, 1 << 20] {
                let opts = InputOptions { format, max_record_bytes, ..InputOptions::default() };
                let whole = raw_records(reader_with("any", &data, &opts));
                let trickled = raw_records(trickle("any", &data, step, &opts));
                prop_assert_eq!(format!("{whole:?}"), format!("{trickled:?}"));
                let Ok(recs) = whole else { continue };
                let parser = reader_with("any", &data, &opts).expect("opened before").parser();
                let lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                let mut last = 0;
                for rec in &recs {
                    prop_assert!(rec.line() > last && rec.line() <= lines);
                    last = rec.line();
                    if let Err(e) = parser.parse(rec) {
                        let invalid_input = matches!(e, Error::InvalidInput { .. });
                        prop_assert!(invalid_input, "{}", e);
                    }
                }
            }
        }

        #[test]
        fn jsonish_bytes_never_panic(pieces in prop::collection::vec(prop::sample::select(vec![
            "{", "}", "[", "]", "\"id\"", "\"text\"", "\"ts\"", ":", ",", "1", "-1.5e9", "\"2023-05-01T00:00:00Z\"",
            "\"x\\u00e9\"", "null", "true", "\n", "\r\n", " ", "\"", "\\", "\u{FF}",
        ]), 0..60)) {
            let data = pieces.concat();
            let opts = InputOptions { format: InputFormat::Jsonl, ..InputOptions::default() };
            let out = read_all("j", data.as_bytes(), &opts);
            let total = out.ok.len() + out.bad.len() + out.ignored.len();
            let lines = data.split('\n').count() - usize::from(data.is_empty() || data.ends_with('\n'));
            prop_assert_eq!(total, lines);
        }
    }

    #[test]
    fn splitter_edge_cases() {
        let split = |rec: &[u8]| {
            let mut v = Vec::new();
            split_csv(rec, |_, f| {
                v.push(String::from_utf8_lossy(&f).into_owned());
                true
            });
            v
        };
        assert_eq!(split(b"a,b,"), ["a", "b", ""]);
        assert_eq!(split(b""), [""]);
        assert_eq!(split(b"\"\""), [""]);
        assert_eq!(split(b"\"a,b\"c,d"), ["a,bc", "d"]);
        assert_eq!(split(b"a\"b,\"c\"\"\""), ["a\"b", "c\""]);
        assert_eq!(split(b"\"unclosed,x"), ["unclosed,x"]);
        assert_eq!(split(b"\"x\"\"y"), ["x\"y"]);
        assert_eq!(find_newline(&[b'a'; 100]), None);
        for i in 0..100 {
            let mut v = vec![b'a'; 100];
            v[i] = b'\n';
            v[99] = b'\n';
            assert_eq!(find_newline(&v), Some(i));
        }
    }

    #[test]
    fn seconds_strings() {
        assert_eq!(parse_timestamp("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_timestamp("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_timestamp("9223372036854775808"), None);
        assert_eq!(parse_timestamp("+12"), Some(12));
        assert_eq!(parse_timestamp("12."), Some(12));
        assert_eq!(parse_timestamp("-0.5"), Some(0));
        assert_eq!(parse_timestamp(".5"), None);
        assert_eq!(parse_timestamp("1e9"), None);
        assert_eq!(parse_timestamp("0x10"), None);
    }

    /// Not a test: `cargo test --release -- --ignored --nocapture throughput`.
    #[test]
    #[ignore = "a throughput check, not a test: run it with --release"]
    fn throughput() {
        let n = 1_000_000;
        let mut data = Vec::with_capacity(n * 210);
        for i in 0..n {
            writeln!(
                data,
                r#"{{"id":{i},"text":"Some text of a post, number {i}, with a link https://t.co/abc and #tag — 中文也有","account":"user{}","platform":"twitter","ts":{}}}"#,
                i % 5000,
                1_600_000_000 + i
            )
            .expect("writes");
        }
        let t = std::time::Instant::now();
        let out = drain(
            reader_with("bench.jsonl", &data, &InputOptions::default()).expect("opens"),
            4096,
        );
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out.ok.len(), n);
        eprintln!(
            "{n} lines, {} bytes: {:.3} s, {:.0} ns/line",
            data.len(),
            secs,
            secs * 1e9 / n as f64
        );
    }
}
