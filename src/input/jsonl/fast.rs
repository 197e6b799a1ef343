//! The JSONL fast path: one flat object whose values are strings (with the short escapes
//! `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`), integers, `true`, `false` or `null`.
//!
//! [`members`] walks such a line's members, or gives up (`None`) and the caller hands the
//! line to serde_json. It accepts only lines serde_json accepts and reads them the same way,
//! so what a reader returns does not depend on which path read a line; property tests check
//! this against serde_json, for [`flat_post`] and for the reader's [`RawPost`](super::super::RawPost)s.
//! It gives up on anything it does not need to handle to be fast: `\u` escapes, escapes in
//! keys, fractions and exponents, integers of more than 18 digits, nested values, and every
//! syntax error (so serde_json writes the error message).

use std::borrow::Cow;

use super::super::FieldNames;
use super::{JsonFields, Scalar};

/// The text (unescaped) and the raw id (its JSON source, `None` if absent or `null`) of a
/// flat JSONL line, as read by [`flat_post`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatPost<'a> {
    /// The text field's value, unescaped.
    pub text: Cow<'a, str>,
    /// The id field's value as written in the line (`12`, `"x-1"`), `None` if absent or
    /// `null`.
    pub id: Option<&'a str>,
}

/// Reads the text and raw id of a flat JSONL line without serde_json, or `None`.
///
/// `None` unless `line` is one flat object whose values are strings with short escapes
/// only, integers of at most 18 digits, `true`, `false` or `null`, with a string text field
/// (named by `fields.text`) and neither the text nor the id field repeated. Where it
/// answers, serde_json reads the same text and id (checked by property tests); elsewhere,
/// read the line with serde_json. Other fields are not looked at beyond their syntax.
///
/// ```
/// use textreuse::input::{flat_post, FieldNames};
///
/// let post = flat_post(r#"{"id": 7, "text": "say \"hi\"", "ts": null}"#, &FieldNames::default()).unwrap();
/// assert_eq!((&*post.text, post.id), ("say \"hi\"", Some("7")));
/// assert!(flat_post(r#"{"text": "\u00e9"}"#, &FieldNames::default()).is_none()); // serde_json's
/// ```
#[must_use]
pub fn flat_post<'a>(line: &'a str, fields: &FieldNames) -> Option<FlatPost<'a>> {
    let (mut text, mut id) = (None, None);
    members(line, |key, raw, escaped| {
        if key == fields.text {
            if text.is_some() {
                return None;
            }
            text = Some(string_value(raw, escaped)?);
        } else if key == fields.id {
            if id.is_some() {
                return None;
            }
            id = Some(raw);
        }
        Some(())
    })?;
    Some(FlatPost {
        text: text?,
        // `"id": null` is no id to serde_json's `Option` too.
        id: id.filter(|&r| r != "null"),
    })
}

/// The five known fields of a flat JSONL line, as the serde path would find them; `None`
/// where the serde path must read the line (see the module docs), or where a known field
/// is repeated.
pub(super) fn fields<'a>(line: &'a str, names: &FieldNames) -> Option<JsonFields<'a>> {
    let mut out = JsonFields::default();
    members(line, |key, raw, escaped| {
        let slot = if key == names.text {
            &mut out.text
        } else if key == names.id {
            &mut out.id
        } else if key == names.account {
            &mut out.account
        } else if key == names.platform {
            &mut out.platform
        } else if key == names.ts {
            &mut out.ts
        } else {
            return Some(());
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(scalar(raw, escaped)?);
        Some(())
    })?;
    Some(out)
}

/// The value of a raw string value (quotes included); `None` if it is not a string.
fn string_value(raw: &str, escaped: bool) -> Option<Cow<'_, str>> {
    let body = raw.strip_prefix('"')?.strip_suffix('"')?;
    Some(if escaped {
        Cow::Owned(unescape(body)?)
    } else {
        Cow::Borrowed(body)
    })
}

/// A raw value as serde_json would visit it: positive integers as `u64`, negative ones as
/// `i64`; `None` for `-0` (a float to serde_json).
fn scalar(raw: &str, escaped: bool) -> Option<Scalar<'_>> {
    Some(match raw.as_bytes().first()? {
        b'"' => Scalar::Str(string_value(raw, escaped)?),
        b't' => Scalar::Bool(true),
        b'f' => Scalar::Bool(false),
        b'n' => Scalar::Null,
        b'-' if raw == "-0" => return None,
        b'-' => Scalar::I64(raw.parse().ok()?),
        _ => Scalar::U64(raw.parse().ok()?),
    })
}

/// Calls `each(key, raw value, escaped)` for every member of `line`, a flat object (see the
/// module docs), in order; `None` if `line` is not one or `each` gives up.
#[inline]
pub(super) fn members<'a>(
    line: &'a str,
    mut each: impl FnMut(&'a str, &'a str, bool) -> Option<()>,
) -> Option<()> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, escaped, after) = string(line, i)?;
            if escaped {
                return None;
            }
            i = skip_ws(b, after);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let start = i;
            let (end, escaped) = value(line, i)?;
            i = end;
            each(key, &line[start..i], escaped)?;
            i = skip_ws(b, i);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(())
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The raw contents of the string starting at byte `i` of `line`, whether it has escapes,
/// and the index after it; `None` unless it is a string whose escapes are all short ones
/// (see the module docs) and that has no control character.
#[inline]
fn string(line: &str, i: usize) -> Option<(&str, bool, usize)> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let (start, mut at, mut escaped) = (i + 1, i + 1, false);
    loop {
        at += string_end(b.get(at..)?)?;
        match b[at] {
            b'"' => break,
            b'\\'
                if matches!(
                    b.get(at + 1),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
                ) =>
            {
                escaped = true;
                at += 2;
            }
            _ => return None,
        }
    }
    // The quotes and backslashes are ASCII, so the body is whole characters of the `str`.
    Some((line.get(start..at)?, escaped, at + 1))
}

/// `body` (a string's contents with short escapes only) with its escapes decoded.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(p) = rest.find('\\') {
        out.push_str(&rest[..p]);
        out.push(match rest.as_bytes().get(p + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        });
        rest = rest.get(p + 2..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// The index of the first `"`, `\\` or control character (below 0x20) in `b`: eight bytes
/// at a time, each test flagging the high bit of the bytes that match (the lowest flag is
/// exact: a borrow only runs upward from a match).
#[inline]
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut at = 0;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().unwrap_or_default());
        let hits = zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// The index after the value starting at `b[i]` (a simple string, an integer of at most 18
/// digits, `true`, `false` or `null`) and whether it is a string with escapes.
fn value(line: &str, i: usize) -> Option<(usize, bool)> {
    let b = line.as_bytes();
    let end = match b.get(i)? {
        b'"' => return string(line, i).map(|(_, escaped, end)| (end, escaped)),
        b'-' | b'0'..=b'9' => {
            let digits_at = i + usize::from(b[i] == b'-');
            let n = b
                .get(digits_at..)?
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            // No leading zero (JSON has none), at least one digit, and few enough that
            // serde_json reads it as an integer.
            if n == 0 || n > 18 || (n > 1 && b[digits_at] == b'0') {
                return None;
            }
            let end = digits_at + n;
            // A fraction or an exponent: serde_json's to read.
            match b.get(end) {
                Some(b'.' | b'e' | b'E') => return None,
                _ => end,
            }
        }
        b't' => b[i..].starts_with(b"true").then_some(i + 4)?,
        b'f' => b[i..].starts_with(b"false").then_some(i + 5)?,
        b'n' => b[i..].starts_with(b"null").then_some(i + 4)?,
        _ => return None,
    };
    Some((end, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use serde::Deserialize;
    use serde_json::Value;
    use std::borrow::Cow;

    /// What the command reads with serde_json (the same struct as the CLI's).
    #[derive(Deserialize)]
    struct Post<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
        id: Option<Value>,
    }

    fn sp(line: &str) -> Option<FlatPost<'_>> {
        flat_post(line, &FieldNames::default())
    }

    /// The fast path, where it answers, agrees with serde_json.
    fn agrees(line: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = sp(line) {
            let slow: Post = match serde_json::from_str(line) {
                Ok(p) => p,
                Err(e) => return Err(TestCaseError::fail(format!("serde rejects {line:?}: {e}"))),
            };
            prop_assert_eq!(slow.text.as_deref(), Some(&*fast.text), "{:?}", line);
            let fast_id = fast.id.map(|r| serde_json::from_str::<Value>(r).unwrap());
            prop_assert_eq!(slow.id, fast_id, "{:?}", line);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn string_end_is_the_first_stop_byte(b in prop::collection::vec(
            prop_oneof![4 => 0x20u8..=0xFF, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20],
            0..40,
        )) {
            let want = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(string_end(&b), want);
        }
    }

    #[test]
    fn reads_the_common_line() {
        let line = r#"{"id": 12, "text": "這個 text", "account": "u1", "platform": "x", "ts": 1672531237}"#;
        let post = |text: &'static str, id| FlatPost {
            text: Cow::Borrowed(text),
            id,
        };
        assert_eq!(sp(line), Some(post("這個 text", Some("12"))));
        assert_eq!(sp(r#" {"text":"a","id":null} "#), Some(post("a", None)));
        assert_eq!(
            sp(r#"{"text":"", "id": "x-1"}"#),
            Some(post("", Some("\"x-1\"")))
        );
        assert_eq!(
            sp(r#"{"text": "say \"hi\"\n\tto \\ / \/ \b\f\r", "id": "a\"b"}"#),
            Some(FlatPost {
                text: Cow::Owned("say \"hi\"\n\tto \\ / / \u{8}\u{c}\r".into()),
                id: Some(r#""a\"b""#),
            })
        );
    }

    #[test]
    fn leaves_the_rest_to_serde() {
        for line in [
            r#"{"text": "a\u0041b"}"#,
            r#"{"text": "a\xb"}"#,
            r#"{"text": "a\"}"#,
            r#"{"text": "a", "x": "\u00e9"}"#,
            r#"{"te\"xt": "a"}"#,
            r#"{"text": "tab	inside"}"#,
            r#"{"text": "a", "text": "b"}"#,
            r#"{"id": 1, "id": 2, "text": "a"}"#,
            r#"{"text": null}"#,
            r#"{"text": 5}"#,
            r#"{"id": 1}"#,
            r#"{}"#,
            r#"{"text": "a", "n": 1.5}"#,
            r#"{"text": "a", "n": 1e5}"#,
            r#"{"text": "a", "n": 01}"#,
            r#"{"text": "a", "n": -}"#,
            r#"{"text": "a", "n": 1234567890123456789}"#,
            r#"{"text": "a", "n": [1]}"#,
            r#"{"text": "a", "n": {}}"#,
            r#"{"text": "a", "n": tru}"#,
            r#"{"text": "a",}"#,
            r#"{"text": "a"} x"#,
            r#"{"text": "a""#,
            r#"{"text" "a"}"#,
            "\u{3000}{\"text\": \"a\"}",
            r#"{"te\u0078t": "a"}"#,
        ] {
            assert_eq!(sp(line), None, "{line}");
        }
    }

    /// Picks from `good` most of the time and from `odd` otherwise.
    fn mostly(good: Vec<&'static str>, odd: Vec<&'static str>) -> BoxedStrategy<&'static str> {
        prop_oneof![
            19 => prop::sample::select(good),
            1 => prop::sample::select(odd),
        ]
        .boxed()
    }

    /// Lines built from pieces of JSON, mostly valid, some broken or unusual.
    fn lines() -> impl Strategy<Value = String> {
        let key = mostly(
            vec![
                "\"text\"",
                "\"id\"",
                "\"account\"",
                "\"platform\"",
                "\"ts\"",
            ],
            vec![
                "\"te\\u0078t\"",
                "\"\"",
                "text",
                "\"tëxt\"",
                "\"te\\\"xt\"",
                "\"\\\\\"",
            ],
        );
        let value = mostly(
            vec![
                "\"plain\"",
                "\"中文 words\"",
                "\"\"",
                "0",
                "-0",
                "12",
                "-7",
                "true",
                "false",
                "null",
                "123456789012345678",
                "\"x\u{1F600}\"",
                "\"a\\\"b\"",
                "\"a\\nb\\t\\\\c\"",
                "\"\\/\\b\\f\\r\"",
                "\"\\\\\"",
            ],
            vec![
                "\"\\ud800\"",
                "\"\\u00e9\"",
                "\"a\\xb\"",
                "\"\\\"",
                "\"tab\there\"",
                "007",
                "1.5",
                "1e3",
                "-",
                "12345678901234567890",
                "nul",
                "[]",
                "{}",
                "[1,{\"a\":2}]",
            ],
        );
        let ws = mostly(vec!["", " ", "\t", "  \r"], vec!["\u{3000}", "\u{a0}"]);
        let member = (key, ws.clone(), value, ws.clone())
            .prop_map(|(k, w1, v, w2)| format!("{k}{w1}:{w2}{v}"));
        let sep = mostly(vec![",", ", "], vec![" ,", ",,", ""]);
        (
            ws.clone(),
            prop::collection::vec((member, sep), 0..6),
            ws,
            mostly(vec!["}", "} "], vec!["}x", "", "}}"]),
        )
            .prop_map(|(lead, members, inner, close)| {
                let mut s = format!("{lead}{{{inner}");
                let n = members.len();
                for (j, (m, sep)) in members.into_iter().enumerate() {
                    s.push_str(&m);
                    if j + 1 < n {
                        s.push_str(sep);
                    }
                }
                s.push_str(close);
                s
            })
    }

    /// The reader's fast path, where it answers, gives the post (or the error) of the
    /// serde path.
    fn same_post(line: &str) -> Result<(), TestCaseError> {
        let names = FieldNames::default();
        if let Some(fast) = fields(line, &names) {
            let slow = match super::super::serde_fields(line, &names) {
                Ok(f) => f,
                Err(e) => return Err(TestCaseError::fail(format!("serde rejects {line:?}: {e}"))),
            };
            let fast = super::super::post_from_fields(fast, &names, 3);
            let slow = super::super::post_from_fields(slow, &names, 3);
            prop_assert_eq!(fast, slow, "{:?}", line);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn agrees_with_serde_on_built_lines(line in lines()) {
            agrees(&line)?;
            same_post(&line)?;
        }

        #[test]
        fn agrees_with_serde_on_any_text(line in "\\{[ -~\u{4e2d}\u{3000}]{0,40}\\}?") {
            agrees(&line)?;
            same_post(&line)?;
        }
    }

    #[test]
    fn many_built_lines_take_the_fast_path() {
        // The property tests above would prove little if no built line were simple.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = lines();
        let (mut fast, mut reader_fast, n) = (0, 0, 5_000);
        for _ in 0..n {
            let line = strategy.new_tree(&mut runner).unwrap().current();
            agrees(&line).unwrap();
            same_post(&line).unwrap();
            fast += usize::from(sp(&line).is_some());
            reader_fast += usize::from(fields(&line, &FieldNames::default()).is_some());
        }
        assert!(fast * 50 > n, "only {fast} of {n} built lines were simple");
        assert!(
            reader_fast * 50 > n,
            "only {reader_fast} of {n} built lines were read fast"
        );
    }
}
