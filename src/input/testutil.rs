//! Helpers shared by the input readers' unit tests.

use std::io::{self, Cursor, Read};

use super::{FieldNames, InputOptions, PostReader, RawPost, RawRecord, RecordParser};
use crate::error::{Error, Result};

/// What reading a whole input gave: posts, bad records (line, reason), ignored lines.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) ok: Vec<RawPost>,
    pub(super) bad: Vec<(u64, String)>,
    pub(super) ignored: Vec<u64>,
}

impl Outcome {
    pub(super) fn ok_lines(&self) -> Vec<u64> {
        self.ok.iter().map(|p| p.line).collect()
    }
    pub(super) fn bad_lines(&self) -> Vec<u64> {
        self.bad.iter().map(|b| b.0).collect()
    }
}

pub(super) fn reader_with(name: &str, data: &[u8], opts: &InputOptions) -> Result<PostReader> {
    PostReader::from_reader(name, Box::new(Cursor::new(data.to_vec())), opts)
}

pub(super) fn drain(mut r: PostReader, batch: usize) -> Outcome {
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

pub(super) fn read_all(name: &str, data: &[u8], opts: &InputOptions) -> Outcome {
    drain(reader_with(name, data, opts).expect("opens"), 3)
}

pub(super) fn json_parser(fields: FieldNames) -> RecordParser {
    let opts = InputOptions {
        fields,
        ..InputOptions::default()
    };
    reader_with("t.jsonl", b"", &opts).expect("opens").parser()
}

pub(super) fn json(line: &str) -> Result<Option<RawPost>> {
    json_parser(FieldNames::default()).parse(&RawRecord::new(7, line.as_bytes().to_vec()))
}

pub(super) fn post(line: &str) -> RawPost {
    match json(line) {
        Ok(Some(p)) => p,
        other => panic!("{line}: expected a post, got {other:?}"),
    }
}

pub(super) fn reason(r: Result<Option<RawPost>>) -> String {
    match r {
        Err(Error::InvalidInput { reason, .. }) => reason,
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

pub(super) fn bad(line: &str) -> String {
    reason(json(line))
}

/// Returns its data a few bytes per read, to exercise records split across buffers.
pub(super) struct Trickle {
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

pub(super) fn trickle(
    name: &str,
    data: &[u8],
    step: usize,
    opts: &InputOptions,
) -> Result<PostReader> {
    let t = Trickle {
        data: data.to_vec(),
        pos: 0,
        step,
    };
    PostReader::from_reader(name, Box::new(t), opts)
}

pub(super) fn raw_records(r: Result<PostReader>) -> Result<Vec<RawRecord>> {
    let mut r = r?;
    let mut out = Vec::new();
    while r.read_batch(5, &mut out)? {}
    Ok(out)
}
