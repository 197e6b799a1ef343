//! [`PostReader`]: opening, decompressing and sniffing an input, and cutting it into
//! [`RawRecord`]s.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::csv::{scan_csv, split_csv, CsvColumns, CsvState};
use super::source::{open_source, Source};
use super::{
    Body, FieldNames, InputFormat, InputOptions, ParserInner, RawRecord, RecordParser, TimeParser,
};
use crate::error::{Error, Result};

/// Capacity of the buffer between the (decompressed) input and the record scanner.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// A record buffer grown past this is handed over instead of copied, so that the reader
/// does not keep a huge scratch buffer after one long line.
const KEEP_SCRATCH_BYTES: usize = 1 << 20;

/// Finds the first `\n` in `hay`, 32 bytes at a time.
pub(super) fn find_newline(hay: &[u8]) -> Option<usize> {
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
    /// A CSV file's header cells.
    columns: Option<Vec<String>>,
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
        PostReader::build(name, path.to_path_buf(), Box::new(file), opts, true)
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
        PostReader::build(name.to_owned(), PathBuf::from(name), reader, opts, true)
    }

    fn build(
        name: String,
        path: PathBuf,
        reader: Box<dyn Read + Send>,
        opts: &InputOptions,
        need_text_column: bool,
    ) -> Result<PostReader> {
        opts.fields.validate()?;
        let time = TimeParser::new(opts.ts_format.as_deref(), opts.tz.as_deref())?;
        let Source {
            read: src,
            format,
            counter,
        } = open_source(&name, &path, reader, opts.format)?;

        let mut reader = PostReader {
            parser: RecordParser {
                inner: Arc::new(ParserInner {
                    name: name.clone(),
                    format,
                    fields: opts.fields.clone(),
                    csv: None,
                    max_record_bytes: opts.max_record_bytes,
                    require_id: opts.require_id,
                    time,
                    tally: opts.tally.clone(),
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
            columns: None,
        };
        if format == InputFormat::Csv {
            reader.read_csv_header(&opts.fields, need_text_column)?;
        }
        Ok(reader)
    }

    /// Opens `path` as [`PostReader::open`] does, but accepts a CSV header without the text
    /// column (for [`inspect`](super::inspect), which parses no record).
    pub(super) fn open_for_inspection(path: &Path, opts: &InputOptions) -> Result<PostReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let name = path.display().to_string();
        PostReader::build(name, path.to_path_buf(), Box::new(file), opts, false)
    }

    /// Reads the CSV header row and binds the parser to its columns.
    fn read_csv_header(&mut self, fields: &FieldNames, need_text_column: bool) -> Result<()> {
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
            columns.push(String::from_utf8_lossy(cell).into_owned());
            true
        });
        let [id, text, account, platform, ts] = found;
        let text = match text {
            Some(t) => Some(t),
            // Inspection only: no record is parsed.
            None if !need_text_column => Some(usize::MAX),
            None => None,
        };
        let Some(text) = text else {
            return Err(Error::InvalidInput {
                file: self.name.clone(),
                line,
                reason: format!(
                    "the CSV header has no {:?} column (it has: {}); \
                     name the text column (the CLI's --text-field)",
                    fields.text,
                    shown(&columns)
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
            require_id: self.parser.inner.require_id,
            time: self.parser.inner.time.clone(),
            tally: self.parser.inner.tally.clone(),
        };
        self.columns = Some(columns);
        self.parser = RecordParser {
            inner: Arc::new(inner),
        };
        Ok(())
    }

    /// A CSV file's header cells, as written (surrounding ASCII spaces removed); `None` for
    /// other formats, and for an empty CSV file.
    pub fn columns(&self) -> Option<&[String]> {
        self.columns.as_deref()
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
        if csv && state == CsvState::Quoted {
            // The input ended inside quotes: the rest of it was swallowed by one field.
            // `next_line` counts a last line after a final newline, which holds nothing.
            let empty_last = self.scratch.last() == Some(&b'\n');
            let lines = self
                .next_line
                .saturating_sub(start_line)
                .saturating_sub(u64::from(empty_last));
            let bytes = if too_long {
                Vec::new()
            } else {
                std::mem::take(&mut self.scratch)
            };
            return Ok(Some((start_line, Body::Unterminated { bytes, lines })));
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

/// Header cells for a message: the first 30, comma-separated.
pub(super) fn shown(columns: &[String]) -> String {
    let mut s = columns
        .iter()
        .take(30)
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if columns.len() > 30 {
        s.push_str(&format!(" and {} more", columns.len() - 30));
    }
    s
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
    use crate::input::testutil::*;
    use crate::input::RawPost;
    use crate::Error;
    use proptest::prelude::*;
    use std::io::{Cursor, Write};

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

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
