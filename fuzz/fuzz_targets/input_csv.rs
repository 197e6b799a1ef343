//! Arbitrary bytes through the CSV reader and parser: no panic, whatever the input
//! (header or not, compressed or not, any record length limit). Every post parsed is
//! written back as an RFC 4180 row under a full header and must parse to the same post.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use textreuse::input::{InputFormat, InputOptions, PostReader, RawPost};

fn read_all(data: &[u8], opts: &InputOptions) -> Vec<RawPost> {
    let mut posts = Vec::new();
    let Ok(mut reader) =
        PostReader::from_reader("fuzz.csv", Box::new(Cursor::new(data.to_vec())), opts)
    else {
        return posts;
    };
    let parser = reader.parser();
    let mut records = Vec::new();
    loop {
        // Records read before an I/O error stay in `records`: parse them too.
        let more = matches!(reader.read_batch(16, &mut records), Ok(true));
        for r in records.drain(..) {
            if let Ok(Some(p)) = parser.parse(&r) {
                assert_eq!(p.line, r.line());
                posts.push(p);
            }
        }
        if !more {
            break;
        }
    }
    posts
}

/// `s` as a quoted CSV cell.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, data)) = data.split_first() else {
        return;
    };
    let opts = InputOptions {
        format: InputFormat::Csv,
        max_record_bytes: if knobs & 0x80 == 0 {
            knobs as usize
        } else {
            64 << 20
        },
        ..InputOptions::default()
    };
    for p in read_all(data, &opts) {
        let row = format!(
            "id,text,account,platform,ts\n{},{},{},{},{}\n",
            quoted(&p.id),
            quoted(&p.text),
            quoted(&p.account),
            quoted(&p.platform),
            p.ts.map_or(String::new(), |t| t.to_string()),
        );
        let again = read_all(
            row.as_bytes(),
            &InputOptions {
                format: InputFormat::Csv,
                ..InputOptions::default()
            },
        );
        assert_eq!(again.len(), 1, "{row:?}");
        let q = &again[0];
        assert_eq!(
            (&q.id, &q.text, &q.account, &q.platform, q.ts),
            (&p.id, &p.text, &p.account, &p.platform, p.ts),
            "{row:?}"
        );
    }
});
