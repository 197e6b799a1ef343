//! `textreuse fingerprint`: what the engine sees of a text.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use textreuse::input::{flat_post, open_decoded, FieldNames, InputOptions};
use textreuse::text::Hashtags;
use textreuse::{FingerprintParams, Fingerprinter, Scratch};

/// Arguments of `textreuse fingerprint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Texts to fingerprint.
    texts: Vec<String>,
    /// Read one post per line from FILE (`-` for stdin): plain text, or JSONL with a `text` field.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Print one JSON object per post.
    #[arg(long)]
    json: bool,
    /// Keep hashtag words (`#Taiwan` -> `taiwan`) instead of removing hashtags.
    #[arg(long)]
    keep_hashtags: bool,
    /// Tokens per shingle.
    #[arg(long, default_value_t = 3)]
    shingle: u32,
    /// Worker threads (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a serde_json::Value>,
    normalized: &'a str,
    tokens: Vec<&'a str>,
    shingles: usize,
    content_hash: Option<&'a str>,
    empty: bool,
}

#[derive(Deserialize)]
struct JsonPost<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    id: Option<serde_json::Value>,
}

pub fn run(args: Args) -> Result<i32> {
    super::init_threads(args.threads)?;
    let mut params = FingerprintParams {
        shingle: args.shingle,
        ..FingerprintParams::default()
    };
    if args.keep_hashtags {
        params.normalizer.hashtags = Hashtags::KeepWords;
    }
    let fp = Fingerprinter::new(params)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut scratch = Scratch::new();
    let mut buf = Vec::new();
    for text in &args.texts {
        buf.clear();
        render(
            &fp,
            &mut scratch,
            text,
            None,
            args.json,
            !args.json,
            &mut buf,
        );
        out.write_all(&buf)?;
    }
    if let Some(path) = &args.input {
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        // Decompressed (.gz, .zst) as `build` reads it.
        let reader = open_decoded(path).context("failed to open the input (--input)")?;
        stream(&fp, &name, reader, args.json, &mut out)?;
    }
    out.flush()?;
    Ok(0)
}

/// The input buffer: a batch reads this many bytes at once (the buffer grows to hold a
/// longer line).
const BLOCK: usize = 4 << 20;

/// The most lines in a batch.
const BATCH: usize = 16_384;

/// The input read so far and not yet fingerprinted: `buf[..filled]`. The buffer is
/// allocated (and zeroed) once and reused by every batch.
struct Block {
    buf: Vec<u8>,
    filled: usize,
}

impl Block {
    /// Reads from `r` until the buffer is full and holds a line end (it doubles when one
    /// line is longer than it, up to `limit` bytes and a newline), or the input ends.
    /// Returns whether it ended; when it did not, the buffer holds a line end unless its
    /// first line is longer than `limit`.
    fn fill(&mut self, r: &mut impl Read, name: &str, limit: usize) -> Result<bool> {
        loop {
            while self.filled < self.buf.len() {
                let n = read_some(r, &mut self.buf[self.filled..], name)?;
                if n == 0 {
                    return Ok(true);
                }
                self.filled += n;
            }
            if memchr::memchr(b'\n', &self.buf[..self.filled]).is_some() || self.buf.len() > limit {
                return Ok(false);
            }
            let len = self.buf.len();
            self.buf
                .resize((2 * len).min(limit.saturating_add(1)).max(len + 1), 0);
        }
    }

    /// Drops the buffered start of an overlong line and reads on to the end of it.
    /// Returns whether the input ended.
    fn skip_line(&mut self, r: &mut impl Read, name: &str) -> Result<bool> {
        self.filled = 0;
        loop {
            let n = read_some(r, &mut self.buf, name)?;
            if n == 0 {
                return Ok(true);
            }
            if let Some(p) = memchr::memchr(b'\n', &self.buf[..n]) {
                self.buf.copy_within(p + 1..n, 0);
                self.filled = n - p - 1;
                return Ok(false);
            }
        }
    }

    /// Drops the first `n` bytes (the lines just fingerprinted), keeping the rest.
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

/// Reads some bytes (retrying on interruption).
fn read_some(r: &mut impl Read, buf: &mut [u8], name: &str) -> Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("{name}: read failed")),
        }
    }
}

/// Fingerprints a stream of lines in parallel batches, printing results in input order.
fn stream(
    fp: &Fingerprinter,
    name: &str,
    mut r: impl Read,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    // A batch's lines sit back to back in one buffer (no allocation per line); `ends` holds
    // where each line ends (after its newline). Each chunk of lines is rendered into its
    // own buffer, reused from batch to batch.
    const CHUNK: usize = 256;
    let mut block = Block {
        buf: vec![0; BLOCK],
        filled: 0,
    };
    let mut ends: Vec<usize> = Vec::with_capacity(BATCH);
    let mut rendered: Vec<Vec<u8>> = Vec::new();
    let mut lineno = 0u64;
    let mut eof = false;
    let fields = FieldNames::default();
    let limit = InputOptions::default().max_record_bytes;
    loop {
        if !eof {
            eof = block.fill(&mut r, name, limit)?;
        }
        if !eof
            && block.filled > limit
            && memchr::memchr(b'\n', &block.buf[..block.filled]).is_none()
        {
            // One line longer than the record limit (the same as `build`'s): skipped
            // without being held whole.
            lineno += 1;
            eprintln!("textreuse: {name}:{lineno}: line longer than {limit} bytes, skipped");
            eof = block.skip_line(&mut r, name)?;
            continue;
        }
        let data = &block.buf[..block.filled];
        ends.clear();
        ends.extend(memchr::memchr_iter(b'\n', data).take(BATCH).map(|p| p + 1));
        let whole = ends.last().copied().unwrap_or(0);
        if eof && ends.len() < BATCH && whole < data.len() {
            // The last line, with no newline.
            ends.push(data.len());
        }
        if ends.is_empty() {
            return Ok(());
        }
        let first = lineno;
        lineno += ends.len() as u64;
        let chunks = ends.len().div_ceil(CHUNK);
        if rendered.len() < chunks {
            rendered.resize_with(chunks, Vec::new);
        }
        ends.par_chunks(CHUNK)
            .zip(rendered[..chunks].par_iter_mut())
            .enumerate()
            .for_each_init(Scratch::new, |scratch, (c, (chunk, buf))| {
                buf.clear();
                for (j, &end) in chunk.iter().enumerate() {
                    let i = c * CHUNK + j;
                    let start = if i == 0 { 0 } else { ends[i - 1] };
                    let raw = &data[start..end];
                    let line = raw.strip_suffix(b"\n").unwrap_or(raw);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let text = match simdutf8::basic::from_utf8(line) {
                        Ok(s) => Cow::Borrowed(s),
                        Err(_) => String::from_utf8_lossy(line),
                    };
                    let lineno = first + i as u64 + 1;
                    if text.trim_start().starts_with('{') {
                        let fast = flat_post(&text, &fields).and_then(|post| {
                            // Only JSON output shows the id. Its raw form is a JSON scalar
                            // the fast path checked; were it unreadable, serde_json would
                            // read the whole line below.
                            let id = match post.id {
                                Some(raw) if json => {
                                    Some(serde_json::from_str::<serde_json::Value>(raw).ok()?)
                                }
                                _ => None,
                            };
                            Some((post.text, id))
                        });
                        if let Some((t, id)) = fast {
                            render(fp, scratch, &t, id.as_ref(), json, false, buf);
                            continue;
                        }
                        match serde_json::from_str::<JsonPost>(&text) {
                            Ok(JsonPost { text: Some(t), id }) => {
                                render(fp, scratch, &t, id.as_ref(), json, false, buf)
                            }
                            Ok(JsonPost { text: None, .. }) => {
                                eprintln!("{name}:{lineno}: missing text field, skipped")
                            }
                            Err(e) => eprintln!("{name}:{lineno}: invalid JSON ({e}), skipped"),
                        }
                    } else {
                        render(fp, scratch, &text, None, json, false, buf);
                    }
                }
            });
        for b in &rendered[..chunks] {
            out.write_all(b)?;
        }
        // Keep the unfinished line (if any) for the next batch.
        block.consume(ends.last().copied().unwrap_or(0));
    }
}

/// Renders one text: JSON, a multi-line human view, or one tab-separated line.
fn render(
    fp: &Fingerprinter,
    scratch: &mut Scratch,
    text: &str,
    id: Option<&serde_json::Value>,
    json: bool,
    verbose: bool,
    buf: &mut Vec<u8>,
) {
    let mut hex = [0u8; 32];
    let (hash, shingles, normalized) = match fp.fingerprint_with(text, scratch) {
        Some(f) => (
            Some(hex32(f.content_hash, &mut hex)),
            f.shingles,
            f.normalized,
        ),
        None => (None, 0, fp.normalize(text, scratch)),
    };
    if json {
        let o = Out {
            id,
            normalized: normalized.text(),
            tokens: normalized.tokens().collect(),
            shingles,
            empty: hash.is_none(),
            content_hash: hash,
        };
        // Serializing plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &o);
        buf.push(b'\n');
    } else if verbose {
        let toks: Vec<&str> = normalized.tokens().collect();
        let _ = writeln!(buf, "text:         {text}");
        let _ = writeln!(buf, "normalized:   {}", normalized.text());
        let _ = writeln!(buf, "tokens ({}):  {}", toks.len(), toks.join(" | "));
        let _ = writeln!(buf, "shingles:     {shingles}");
        let _ = writeln!(
            buf,
            "content_hash: {}\n",
            hash.unwrap_or("(none: no token left, no fingerprint)")
        );
    } else {
        // `HASH\tSHINGLES\tNORMALIZED\n`, without the formatting machinery.
        buf.extend_from_slice(hash.unwrap_or("-").as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(itoa::Buffer::new().format(shingles).as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(normalized.text().as_bytes());
        buf.push(b'\n');
    }
}

/// `h` as 32 lowercase hex digits (what `format!("{h:032x}")` gives), written into `out`.
fn hex32(h: u128, out: &mut [u8; 32]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[((h >> (124 - 4 * i)) & 0xF) as usize];
    }
    // Hex digits are ASCII.
    std::str::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex32_is_zero_padded_lowercase_hex() {
        let mut b = [0u8; 32];
        for h in [
            0u128,
            1,
            0xABCDEF,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(super::hex32(h, &mut b), format!("{h:032x}"));
        }
    }
}
