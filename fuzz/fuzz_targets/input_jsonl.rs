//! Arbitrary bytes through the JSONL reader and parser: no panic, whatever the input
//! (compressed or not, format sniffed or not, any record length limit). Every post parsed is written back as a
//! JSON line and must parse to the same post.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use textreuse::input::{InputFormat, InputOptions, PostReader, RawPost};

/// Reads every record of `data` and parses it; returns the posts.
fn read_all(name: &str, data: &[u8], opts: &InputOptions) -> Vec<RawPost> {
    let mut posts = Vec::new();
    let Ok(mut reader) = PostReader::from_reader(name, Box::new(Cursor::new(data.to_vec())), opts)
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

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, data)) = data.split_first() else {
        return;
    };
    let opts = InputOptions {
        // Either JSONL by name, or a nameless input whose format is sniffed (JSONL or text).
        format: if knobs & 1 == 0 {
            InputFormat::Jsonl
        } else {
            InputFormat::Auto
        },
        // Small limits exercise the too-long path; 0x80 keeps the default (64 MiB).
        max_record_bytes: if knobs & 0x80 == 0 {
            (knobs >> 1) as usize
        } else {
            64 << 20
        },
        ..InputOptions::default()
    };
    let name = if knobs & 1 == 0 { "fuzz.jsonl" } else { "fuzz" };
    for p in read_all(name, data, &opts) {
        let line = serde_json::json!({
            "id": p.id, "text": p.text, "account": p.account, "platform": p.platform, "ts": p.ts,
        })
        .to_string();
        let again = read_all(
            "again.jsonl",
            line.as_bytes(),
            &InputOptions {
                format: InputFormat::Jsonl,
                ..InputOptions::default()
            },
        );
        assert_eq!(again.len(), 1, "{line}");
        let q = &again[0];
        assert_eq!(
            (&q.id, &q.text, &q.account, &q.platform, q.ts),
            (&p.id, &p.text, &p.account, &p.platform, p.ts),
            "{line}"
        );
    }
});
