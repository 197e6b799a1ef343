//! A fast path for the common JSONL line of `textreuse fingerprint --input`: one flat
//! object whose values are plain strings, integers, `true`, `false` or `null`.
//!
//! [`simple_post`] either reads such a line's `text` and raw `id` or gives up (`None`), and
//! the caller then hands the line to serde_json. It accepts only lines serde_json accepts
//! and reads them the same way, so what the command prints does not depend on which path
//! read a line; a property test checks this against serde_json. It gives up on anything
//! it does not need to handle to be fast: escapes, fractions and exponents, nested values,
//! a missing or non-string `text`, a repeated `text` or `id` key, and every syntax error
//! (so serde_json writes the error message).

/// The `text` and the raw `id` (its JSON source, `None` if absent) of a simple JSONL line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SimplePost<'a> {
    pub text: &'a str,
    pub id: Option<&'a str>,
}

/// Reads `line` if it is a simple flat object with a string `text` (see the module docs).
pub(crate) fn simple_post(line: &str) -> Option<SimplePost<'_>> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let (mut text, mut id) = (None, None);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, after) = string(line, i)?;
            i = skip_ws(b, after);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let start = i;
            let is_string = b.get(i) == Some(&b'"');
            i = value(line, i)?;
            let raw = &line[start..i];
            match key {
                "text" if text.is_some() => return None,
                "text" if is_string => text = Some(&raw[1..raw.len() - 1]),
                "text" => return None,
                "id" if id.is_some() => return None,
                "id" => id = Some(raw),
                _ => {}
            }
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
    if skip_ws(b, i) != b.len() {
        return None;
    }
    Some(SimplePost {
        text: text?,
        // `"id": null` is no id to serde_json's `Option` too.
        id: id.filter(|&r| r != "null"),
    })
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The contents of the string starting at byte `i` of `line` and the index after it, if
/// it is a string with no escape and no control character.
#[inline]
fn string(line: &str, i: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let rest = b.get(i + 1..)?;
    let len = string_end(rest)?;
    if rest[len] != b'"' {
        return None;
    }
    // The quotes are ASCII, so the body is whole characters of the `str`.
    Some((line.get(i + 1..i + 1 + len)?, i + 1 + len + 1))
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

/// The index after the value starting at `b[i]`: a simple string, an integer of at most
/// 18 digits, `true`, `false` or `null`.
fn value(line: &str, i: usize) -> Option<usize> {
    let b = line.as_bytes();
    match b.get(i)? {
        b'"' => string(line, i).map(|(_, end)| end),
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
                Some(b'.' | b'e' | b'E') => None,
                _ => Some(end),
            }
        }
        b't' => b[i..].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        _ => None,
    }
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

    /// The fast path, where it answers, agrees with serde_json.
    fn agrees(line: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = simple_post(line) {
            let slow: Post = match serde_json::from_str(line) {
                Ok(p) => p,
                Err(e) => return Err(TestCaseError::fail(format!("serde rejects {line:?}: {e}"))),
            };
            prop_assert_eq!(slow.text.as_deref(), Some(fast.text), "{:?}", line);
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
        assert_eq!(
            simple_post(line),
            Some(SimplePost {
                text: "這個 text",
                id: Some("12")
            })
        );
        assert_eq!(
            simple_post(r#" {"text":"a","id":null} "#),
            Some(SimplePost {
                text: "a",
                id: None
            })
        );
        assert_eq!(
            simple_post(r#"{"text":"", "id": "x-1"}"#),
            Some(SimplePost {
                text: "",
                id: Some("\"x-1\"")
            })
        );
    }

    #[test]
    fn leaves_the_rest_to_serde() {
        for line in [
            r#"{"text": "a\"b"}"#,
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
            assert_eq!(simple_post(line), None, "{line}");
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
            vec!["\"text\"", "\"id\"", "\"account\"", "\"ts\""],
            vec!["\"te\\u0078t\"", "\"\"", "text", "\"tëxt\""],
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
            ],
            vec![
                "\"a\\\"b\"",
                "\"a\\nb\"",
                "\"\\ud800\"",
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn agrees_with_serde_on_built_lines(line in lines()) {
            agrees(&line)?;
        }

        #[test]
        fn agrees_with_serde_on_any_text(line in "\\{[ -~\u{4e2d}\u{3000}]{0,40}\\}?") {
            agrees(&line)?;
        }
    }

    #[test]
    fn many_built_lines_take_the_fast_path() {
        // The property tests above would prove little if no built line were simple.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = lines();
        let (mut fast, n) = (0, 5_000);
        for _ in 0..n {
            let line = strategy.new_tree(&mut runner).unwrap().current();
            agrees(&line).unwrap();
            fast += usize::from(simple_post(&line).is_some());
        }
        assert!(fast * 50 > n, "only {fast} of {n} built lines were simple");
    }
}
