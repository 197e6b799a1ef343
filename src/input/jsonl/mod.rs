//! JSONL: one JSON object a line, read with a serde visitor that keeps the five known
//! fields and skips the rest unparsed, after a fast path for flat lines ([`fast`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod fast;

pub use fast::{flat_post, FlatPost};

use super::time::{float_seconds, int_seconds};
use super::{excerpt, short_float, utf8, FieldNames, RawPost, RecordParser};

impl RecordParser {
    pub(super) fn parse_json(&self, bytes: &[u8], line: u64) -> Result<Option<RawPost>, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let s = utf8(bytes).map_err(|at| format!("invalid UTF-8 at byte {at}"))?;
        let names = &self.inner.fields;
        let fields = match fast::fields(s, names) {
            Some(f) => f,
            None => serde_fields(s, names)?,
        };
        let mut fields = fields;
        if !self.inner.require_id && matches!(fields.id, None | Some(Scalar::Null)) {
            fields.id = Some(Scalar::Str(Cow::Owned(self.line_id(line))));
        }
        let (mut post, ts) = post_from_fields(fields, names, line)?;
        post.ts = self.json_time(ts, line);
        Ok(Some(post))
    }

    /// The time of a post from its JSON `ts` value: unix seconds or milliseconds, or a
    /// string (see [`TimeParser`](super::TimeParser)); missing, `null` or `""` is none. An
    /// unreadable time is counted and read as none.
    fn json_time(&self, v: Option<Scalar<'_>>, line: u64) -> Option<i64> {
        let t = match &v {
            None | Some(Scalar::Null) => return None,
            Some(Scalar::Str(s)) => return self.time_str(s, line),
            Some(Scalar::I64(n)) => int_seconds(*n),
            Some(Scalar::U64(n)) => i64::try_from(*n).ok().and_then(int_seconds),
            Some(Scalar::F64(f)) => float_seconds(*f),
            Some(_) => None,
        };
        if t.is_none() {
            if let Some(v) = &v {
                self.unreadable_time(line, || v.kind());
            }
        }
        t
    }
}

/// The five known fields of a JSON line, read by serde_json.
fn serde_fields<'a>(s: &'a str, names: &FieldNames) -> Result<JsonFields<'a>, String> {
    let mut de = serde_json::Deserializer::from_str(s);
    let fields = PostSeed { names }
        .deserialize(&mut de)
        .map_err(json_reason)?;
    de.end().map_err(json_reason)?;
    Ok(fields)
}

/// The post a JSON line's known fields describe, without its time, and its `ts` value.
fn post_from_fields<'a>(
    fields: JsonFields<'a>,
    names: &FieldNames,
    line: u64,
) -> Result<(RawPost, Option<Scalar<'a>>), String> {
    {
        let id = match fields.id {
            None => return Err(format!("missing {} field", names.id)),
            Some(Scalar::Str(s)) if s.is_empty() => return Err(format!("{} is empty", names.id)),
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
        Ok((
            RawPost {
                id,
                text,
                account,
                platform,
                ts: None,
                line,
            },
            fields.ts,
        ))
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

/// A JSON value of one of the five known fields, decoded without committing to a type.
#[derive(Debug, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::testutil::*;
    use crate::input::{InputFormat, InputOptions, RawRecord};
    use crate::Error;
    use proptest::prelude::*;

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
        assert_eq!(bad(r#"{"id":"","text":"t"}"#), "id is empty");
        // Without require_id, a missing or null id is <file>:<line>.
        let opts = InputOptions {
            require_id: false,
            ..InputOptions::default()
        };
        let parser = crate::input::testutil::reader_with("q.jsonl", b"", &opts)
            .expect("opens")
            .parser();
        for (line, want) in [
            (r#"{"text":"t"}"#, "q.jsonl:4"),
            (r#"{"id":null,"text":"t"}"#, "q.jsonl:4"),
            (r#"{"id":5,"text":"t"}"#, "5"),
        ] {
            let p = parser.parse(&RawRecord::new(4, line.as_bytes().to_vec()));
            assert_eq!(p.expect("valid").expect("a post").id, want, "{line}");
        }
        // A time that cannot be read keeps the post, without a time, and is counted.
        let tally = crate::input::InputTally::new();
        let opts = InputOptions {
            tally: Some(tally.clone()),
            ..InputOptions::default()
        };
        let parser = crate::input::testutil::reader_with("t.jsonl", b"", &opts)
            .expect("opens")
            .parser();
        let long = format!(r#"{{"id":1,"text":"t","ts":"{}"}}"#, "é".repeat(50));
        for (i, line) in [
            r#"{"id":1,"text":"t","ts":false}"#,
            r#"{"id":1,"text":"t","ts":{"s":1}}"#,
            r#"{"id":1,"text":"t","ts":"yesterday"}"#,
            r#"{"id":1,"text":"t","ts":1e300}"#,
            r#"{"id":1,"text":"t","ts":18446744073709551615}"#,
            r#"{"id":1,"text":"t","ts":"9999-12-31T23:59:60Z"}"#,
            &long,
        ]
        .iter()
        .enumerate()
        {
            let rec = RawRecord::new(i as u64 + 1, line.as_bytes().to_vec());
            let post = parser.parse(&rec).expect("kept").expect("a post");
            assert_eq!((post.id.as_str(), post.ts), ("1", None), "{line}");
        }
        assert_eq!(tally.unreadable_times(), 7);
        let ex = tally.examples();
        assert_eq!(ex[0], "t.jsonl:1: ts false");
        assert_eq!(ex[1], "t.jsonl:2: ts an object");
        assert_eq!(ex[2], r#"t.jsonl:3: ts "yesterday""#);
        assert_eq!(ex[3], "t.jsonl:4: ts 1e300");
        assert!(ex[6].ends_with("...") && ex[6].len() < 100, "{}", ex[6]);
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
        // Milliseconds, as numbers and strings.
        assert_eq!(ts("1682915696123"), Some(1682915696));
        assert_eq!(ts(r#""1682915696999""#), Some(1682915696));
        assert_eq!(ts("1682915696123.5"), Some(1682915696));
        assert_eq!(ts(r#""2019-08-19 14:03""#), Some(1566223380));
        assert_eq!(post(r#"{"id":1,"text":"t"}"#).ts, None);
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
            // Lines 11 and 12 have unreadable times: kept without one.
            assert_eq!(out.ok_lines(), vec![1, 7, 8, 11, 12, 14]);
            assert_eq!(out.bad_lines(), vec![3, 4, 5, 6, 10, 13]);
            assert_eq!(out.ignored, vec![2, 9]);
            assert_eq!(out.ok[1].text, "");
            assert_eq!(out.ok[2].text.len(), 10 << 20);
            assert_eq!(out.ok[3].ts, None);
            assert_eq!(out.ok[5].text, "last");
            assert_eq!(out.bad[2].1, "invalid UTF-8 at byte 23");
            assert_eq!(out.bad[3].1, "missing text field");
        };
        check(read_all("mixed.jsonl", &data, &InputOptions::default()));
        let r = trickle("mixed", &data, 4093, &InputOptions::default()).expect("opens");
        assert_eq!(r.format(), InputFormat::Jsonl);
        check(drain(r, 100));
    }

    proptest! {
        #[test]
        fn json_round_trip(
            id in prop_oneof![any::<i64>().prop_map(serde_json::Value::from), ".+".prop_map(serde_json::Value::from)],
            text in ".*", account in ".*",
            // Seconds: from year 0000 up to 10^11 (milliseconds from there).
            ts in proptest::option::of(crate::input::MIN_TS..100_000_000_000),
        ) {
            let v = serde_json::json!({"extra": [1, {"a": "b"}], "id": id, "text": text, "account": account, "ts": ts});
            let line = serde_json::to_string(&v).expect("serializes");
            let p = json_parser(FieldNames::default()).parse(&RawRecord::new(1, line.into_bytes()));
            let p = p.expect("valid").expect("not blank");
            let want_id = match &id { serde_json::Value::String(s) => s.clone(), other => other.to_string() };
            prop_assert_eq!(p, RawPost { id: want_id, text, account, platform: String::new(), ts, line: 1 });
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

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
}
