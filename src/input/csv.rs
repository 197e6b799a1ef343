//! CSV: the record scanner (where a row ends, quotes included), the cell splitter, and the
//! parsing of a row into a [`RawPost`].

use std::borrow::Cow;

use super::{utf8, RawPost, RecordParser};

/// Where the CSV record scanner is, inside a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CsvState {
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
pub(super) fn scan_csv(chunk: &[u8], state: &mut CsvState, embedded: &mut u64) -> Option<usize> {
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
pub(super) fn split_csv<'a>(rec: &'a [u8], mut each: impl FnMut(usize, Cow<'a, [u8]>) -> bool) {
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
pub(super) struct CsvColumns {
    pub(super) id: Option<usize>,
    pub(super) text: usize,
    pub(super) account: Option<usize>,
    pub(super) platform: Option<usize>,
    pub(super) ts: Option<usize>,
}

impl RecordParser {
    pub(super) fn parse_csv(&self, bytes: &[u8], line: u64) -> Result<RawPost, String> {
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
            (Some(_), Some(c)) if c.is_empty() => return Err(format!("{} is empty", names.id)),
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
                self.time_str(s, line)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::read::find_newline;
    use crate::input::testutil::*;
    use crate::input::InputOptions;
    use crate::Error;
    use proptest::prelude::*;

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
                // An unreadable time: the post is kept without one.
                p("6", "x", "", "", None, 9),
                p("7", "", "", "", None, 10),
                p("8", "y", "z", "w", Some(1), 11),
            ]
        );
        assert_eq!(out.bad, vec![(6, "missing text field".to_owned())]);
        assert!(out.ignored.is_empty());
    }

    #[test]
    fn unterminated_quote_is_a_bad_record() {
        // Row 3 opens a quote that never closes: the rest of the file is one bad record.
        let data = b"id,text\n1,ok\n2,\"never closed\n3,lost\n4,lost too\n";
        for step in [1, 3, 4096] {
            let r = trickle("q.csv", data, step, &InputOptions::default()).expect("opens");
            let out = drain(r, 2);
            assert_eq!(out.ok_lines(), vec![2]);
            assert_eq!(out.bad_lines(), vec![3]);
            assert!(
                out.bad[0].1.starts_with("unterminated quote")
                    && out.bad[0].1.contains("its 3 line(s)"),
                "{}",
                out.bad[0].1
            );
        }
        let out = read_all("q.csv", b"id,text\n2,\"a\nb", &InputOptions::default());
        assert!(out.bad[0].1.contains("its 2 line(s)"), "{}", out.bad[0].1);
        // A closed quote at the very end is fine.
        let out = read_all("q.csv", b"id,text\n1,\"a\nb\"", &InputOptions::default());
        assert_eq!((out.ok_lines(), out.bad.len()), (vec![2], 0));
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
                    reason.contains("\"text\"") && reason.contains("\"id\", \"body\""),
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
}
