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
//! - **Times**: `ts` is unix seconds or milliseconds (an integer, a float truncated toward
//!   zero, or a string holding a number) or a date and time in one of the common layouts
//!   (see [`parse_timestamp`]; [`InputOptions::ts_format`] adds a strftime layout and
//!   [`InputOptions::tz`] sets the zone of naive times). Missing, `null` or blank means no
//!   time. A time that cannot be read (or falls outside years 0000 to 9999) does not make the
//!   record bad: the post is kept without a time and counted in [`InputOptions::tally`].
//! - **JSONL**: one JSON object a line; other keys are skipped unparsed. `id` is a non-empty
//!   string or an integer, `text` a string (`""` is valid), `account` and `platform` strings
//!   or numbers (missing or `null` means `""`). When a key occurs twice in one object, the
//!   last value wins. Blank lines are ignored (the parser returns `Ok(None)`).
//! - **CSV**: RFC 4180 with a required header row; columns are found by header name (first
//!   match, surrounding ASCII spaces ignored). Rows may have more or fewer cells than the
//!   header; a row that lacks a needed cell, or has an empty id, is a bad record. Without an
//!   `id` column, a post's id is `<file>:<line>`. Blank lines are not records.
//!   Quoting follows the `csv` crate's reading (checked against it by a property test): `""`
//!   inside quotes is a quote, a quote inside an unquoted field is literal, text after a
//!   closing quote joins the field. Unlike the `csv` crate, a quote never closed is a bad
//!   record (the one it starts, whose message counts the lines it swallowed to the end of
//!   the input), and a lone `\r` (not before `\n`) is data, not a record end.
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

mod csv;
mod inspect;
mod jsonl;
mod read;
mod source;
#[cfg(test)]
mod testutil;
mod time;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

pub use inspect::{inspect, preset, Inspection, Preset, INSPECT_RECORDS, PRESETS};
pub use jsonl::{flat_post, FlatPost};
pub use read::PostReader;
pub use source::open_decoded;
pub use time::{parse_timestamp, TimeParser, MAX_TS, MIN_TS};

use self::csv::CsvColumns;

/// The longest excerpt of a bad value quoted in an error message, in bytes.
const EXCERPT_BYTES: usize = 40;

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
    /// A strftime layout for times given as strings (see [`TimeParser::new`]); `None`:
    /// the common layouts of [`parse_timestamp`].
    pub ts_format: Option<String>,
    /// The time zone of times without an offset (see [`TimeParser::new`]); `None` is UTC.
    pub tz: Option<String>,
    /// Whether a JSONL record needs an id (the default). When `false`, a record without
    /// one (or with a `null` one) gets `<file>:<line>`, as CSV rows do without an id column.
    pub require_id: bool,
    /// Where the parsers count what they let through with a warning (posts whose time
    /// could not be read); shared by every file read with these options.
    pub tally: Option<Arc<InputTally>>,
}

/// What the parsers of a job let through with a warning, counted across threads.
///
/// A post whose time cannot be read is kept, without a time, and counted here.
#[derive(Debug, Default)]
pub struct InputTally {
    unreadable_times: AtomicU64,
    examples: Mutex<Vec<String>>,
}

/// How many examples an [`InputTally`] keeps.
const TALLY_EXAMPLES: usize = 10;

impl InputTally {
    /// A new, empty tally to share.
    pub fn new() -> Arc<InputTally> {
        Arc::new(InputTally::default())
    }

    /// Posts kept without a time because their time could not be read.
    pub fn unreadable_times(&self) -> u64 {
        self.unreadable_times.load(Ordering::Relaxed)
    }

    /// The first few unreadable times, each `file:line: field "value"`.
    pub fn examples(&self) -> Vec<String> {
        self.examples.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn unreadable_time(&self, example: impl FnOnce() -> String) {
        let n = self.unreadable_times.fetch_add(1, Ordering::Relaxed);
        if n < TALLY_EXAMPLES as u64 {
            if let Ok(mut e) = self.examples.lock() {
                if e.len() < TALLY_EXAMPLES {
                    e.push(example());
                }
            }
        }
    }
}

// Options compare and hash a tally by identity: two options are equal when they count
// into the same tally.
impl PartialEq for InputTally {
    fn eq(&self, other: &InputTally) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for InputTally {}

impl std::hash::Hash for InputTally {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self, state);
    }
}

impl Default for InputOptions {
    fn default() -> InputOptions {
        InputOptions {
            format: InputFormat::Auto,
            fields: FieldNames::default(),
            max_record_bytes: 64 << 20,
            ts_format: None,
            tz: None,
            require_id: true,
            tally: None,
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
    /// A CSV record whose quote is never closed: it ran to the end of the input over
    /// `lines` lines.
    Unterminated { bytes: Vec<u8>, lines: u64 },
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
            Body::Bytes(b) | Body::Unterminated { bytes: b, .. } => b,
            Body::TooLong => &[],
        }
    }
}

/// Everything a [`RecordParser`] needs, shared between its clones.
#[derive(Debug)]
struct ParserInner {
    name: String,
    format: InputFormat,
    fields: FieldNames,
    csv: Option<CsvColumns>,
    max_record_bytes: usize,
    require_id: bool,
    time: TimeParser,
    tally: Option<Arc<InputTally>>,
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
            Body::Unterminated { lines, .. } => {
                return Err(self.invalid(
                    rec.line,
                    format!(
                        "unterminated quote: the field opened here runs to the end of the \
                         input, so its {lines} line(s) are not read as posts"
                    ),
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

    /// The time of a post from its `ts` value as a string (blank: none); an unreadable time
    /// is counted in the tally and read as none.
    fn time_str(&self, s: &str, line: u64) -> Option<i64> {
        if s.trim().is_empty() {
            return None;
        }
        let t = self.inner.time.parse(s);
        if t.is_none() {
            self.unreadable_time(line, || excerpt(s));
        }
        t
    }

    /// Counts an unreadable time (`value` describes it).
    fn unreadable_time(&self, line: u64, value: impl FnOnce() -> String) {
        if let Some(t) = &self.inner.tally {
            t.unreadable_time(|| {
                format!(
                    "{}:{line}: {} {}",
                    self.inner.name,
                    self.inner.fields.ts,
                    value()
                )
            });
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
}

/// Validates UTF-8; on failure returns the 1-based position of the first bad byte.
fn utf8(bytes: &[u8]) -> Result<&str, usize> {
    // SIMD validation (the same answers as `std::str::from_utf8`, several times faster on
    // non-ASCII text).
    simdutf8::compat::from_utf8(bytes).map_err(|e| e.valid_up_to().saturating_add(1))
}

/// A float for an error message, in exponent form when very large or small.
fn short_float(f: f64) -> String {
    if f != 0.0 && !(1e-6..1e16).contains(&f.abs()) {
        format!("{f:e}")
    } else {
        f.to_string()
    }
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
