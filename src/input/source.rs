//! Opening an input: decompression (gzip, zstd) by name or magic bytes, the byte order
//! mark, and the format, from the name or sniffed from the content.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::InputFormat;
use crate::error::{Error, Result};

/// How far into the input the format sniffer looks for a first non-blank byte.
const SNIFF_LIMIT_BYTES: usize = 64 << 10;
/// The UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

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

/// Opens the file at `path` (`-` is standard input) and decompresses it as
/// [`PostReader::open`](super::PostReader::open) does (gzip or zstd, by name or magic
/// bytes); a UTF-8 byte order mark at the start is dropped. For callers that cut records
/// themselves.
///
/// # Errors
///
/// [`Error::Io`] naming the file if it cannot be opened or its start read.
pub fn open_decoded(path: &Path) -> Result<Box<dyn Read + Send>> {
    let (name, reader): (String, Box<dyn Read + Send>) = if path.as_os_str() == "-" {
        ("-".to_owned(), Box::new(io::stdin()))
    } else {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        (path.display().to_string(), Box::new(f))
    };
    // The format is not needed: any but Auto skips sniffing.
    Ok(open_source(&name, path, reader, InputFormat::Text)?.read)
}

/// An opened input: its decompressed content (byte order mark dropped), its format and a
/// counter of the raw bytes read.
pub(super) struct Source {
    /// The decompressed content.
    pub(super) read: Box<dyn Read + Send>,
    /// The format: `format` if given, else from the name, else sniffed.
    pub(super) format: InputFormat,
    /// Bytes read from the underlying (possibly compressed) input.
    pub(super) counter: Arc<AtomicU64>,
}

/// Opens `reader` (called `name`; `path` names it in errors): decompresses it as its name or
/// magic bytes say, drops a byte order mark and resolves `format` (see
/// [`PostReader::open`](super::PostReader::open)).
pub(super) fn open_source(
    name: &str,
    path: &Path,
    reader: Box<dyn Read + Send>,
    format: InputFormat,
) -> Result<Source> {
    let io_err = |e| Error::io(path, e);
    let (mut compression, name_format) = classify_name(name);
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
    let mut format = match format {
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
            None if !more || head.len() >= SNIFF_LIMIT_BYTES => format = Some(InputFormat::Text),
            None => {
                let want = head.len() + 1;
                more = fill_to(&mut decoded, &mut head, want).map_err(io_err)?
            }
        }
    }
    Ok(Source {
        read: Box::new(io::Cursor::new(head).chain(decoded)),
        format: format.unwrap_or(InputFormat::Text),
        counter,
    })
}

#[cfg(test)]
mod tests {
    use crate::input::testutil::*;
    use crate::input::{InputFormat, InputOptions, PostReader, RawPost};
    use crate::Error;
    use std::io::Write;

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
}
