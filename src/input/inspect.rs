//! Looking at an input before reading it: which fields it has, and which known export
//! layout ([`Preset`]) names its parts.

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::IgnoredAny;

use super::{FieldNames, InputFormat, InputOptions, PostReader, RawRecord};
use crate::error::Result;

/// How many JSONL records [`inspect`] looks at.
pub const INSPECT_RECORDS: usize = 1_000;

/// What the start of an input holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The format, resolved.
    pub format: InputFormat,
    /// The field names: a CSV file's header cells in order, or the keys of the JSON objects
    /// among the first [`INSPECT_RECORDS`] JSONL records, sorted; empty for text.
    pub fields: Vec<String>,
}

impl Inspection {
    /// Whether the input has a field called `name` (always true for text input, whose
    /// lines have no fields to miss).
    pub fn has(&self, name: &str) -> bool {
        self.format == InputFormat::Text || self.fields.iter().any(|f| f == name)
    }
}

/// Reads the start of the file at `path` (decompressed as [`PostReader::open`] does): the
/// CSV header, or the keys of the first [`INSPECT_RECORDS`] JSONL records.
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) if the file cannot be opened or read;
/// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for bad `opts` (see
/// [`PostReader::open`]).
pub fn inspect(path: &Path, opts: &InputOptions) -> Result<Inspection> {
    let mut reader = PostReader::open_for_inspection(path, opts)?;
    let format = reader.format();
    let fields = match format {
        InputFormat::Csv => reader.columns().map(<[String]>::to_vec).unwrap_or_default(),
        InputFormat::Text => Vec::new(),
        InputFormat::Jsonl | InputFormat::Auto => {
            let mut keys = BTreeSet::new();
            let mut recs: Vec<RawRecord> = Vec::new();
            while recs.len() < INSPECT_RECORDS
                && reader.read_batch(INSPECT_RECORDS - recs.len(), &mut recs)?
            {}
            for rec in &recs {
                type Keys = std::collections::BTreeMap<String, IgnoredAny>;
                if let Ok(k) = serde_json::from_slice::<Keys>(rec.as_bytes()) {
                    keys.extend(k.into_keys());
                }
            }
            keys.into_iter().collect()
        }
    };
    Ok(Inspection { format, fields })
}

/// The field names of a known export layout: for each part of a post, the names it may
/// have, tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The preset's name (`twitter-io`).
    pub name: &'static str,
    /// What it is for.
    pub about: &'static str,
    /// Names of the id field.
    pub id: &'static [&'static str],
    /// Names of the text field (one must be present for the preset to apply).
    pub text: &'static [&'static str],
    /// Names of the account field.
    pub account: &'static [&'static str],
    /// Names of the platform field.
    pub platform: &'static [&'static str],
    /// Names of the time field.
    pub ts: &'static [&'static str],
}

/// The known export layouts, in the order they are tried.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "twitter-io",
        about: "Twitter/X information-operations archive (tweetid, userid, tweet_text, tweet_time)",
        id: &["tweetid"],
        text: &["tweet_text"],
        account: &["userid", "user_screen_name"],
        platform: &[],
        ts: &["tweet_time"],
    },
    Preset {
        name: "posts",
        about: "the usual post exports (post_id, message or content, author, created_at)",
        id: &["post_id", "id", "message_id"],
        text: &["message", "content", "body", "text"],
        account: &["author", "author_id", "username", "user", "account"],
        platform: &["platform", "source"],
        ts: &["created_at", "timestamp", "date", "time", "ts"],
    },
];

/// The preset called `name` (ASCII case ignored).
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

impl Preset {
    /// The field names this preset gives an input with `inspection`'s fields: for each
    /// part, the first of its names that the input has, else `base`'s name; `None` if the
    /// input has none of the text names.
    pub fn resolve(&self, inspection: &Inspection, base: &FieldNames) -> Option<FieldNames> {
        let pick = |names: &[&str], default: &str| {
            names
                .iter()
                .find(|n| inspection.fields.iter().any(|f| f == *n))
                .map_or_else(|| default.to_owned(), |n| (*n).to_owned())
        };
        let text = self
            .text
            .iter()
            .find(|n| inspection.fields.iter().any(|f| f == *n))?;
        Some(FieldNames {
            id: pick(self.id, &base.id),
            text: (*text).to_owned(),
            account: pick(self.account, &base.account),
            platform: pick(self.platform, &base.platform),
            ts: pick(self.ts, &base.ts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, data: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(data))
            .expect("writes");
        (dir, path)
    }

    #[test]
    fn inspects_csv_jsonl_and_text() {
        let (_d, p) = file(
            "io.csv",
            b"tweetid,userid,tweet_text,tweet_time\n1,u,hi,2019-08-19 14:03\n",
        );
        let i = inspect(&p, &InputOptions::default()).expect("inspects");
        assert_eq!(i.format, InputFormat::Csv);
        assert_eq!(i.fields, ["tweetid", "userid", "tweet_text", "tweet_time"]);
        let names = PRESETS[0]
            .resolve(&i, &FieldNames::default())
            .expect("applies");
        assert_eq!(
            (
                names.id.as_str(),
                names.text.as_str(),
                names.account.as_str(),
                names.ts.as_str()
            ),
            ("tweetid", "tweet_text", "userid", "tweet_time")
        );
        assert_eq!(names.platform, "platform");
        assert!(PRESETS[1].resolve(&i, &FieldNames::default()).is_none());

        // JSONL: the keys of the first records, a bad line ignored.
        let mut data = b"{\"post_id\":1,\"message\":\"a\"}\nnot json\n".to_vec();
        data.extend_from_slice(b"{\"post_id\":2,\"message\":\"b\",\"author\":\"x\"}\n");
        let (_d, p) = file("p.jsonl", &data);
        let i = inspect(&p, &InputOptions::default()).expect("inspects");
        assert_eq!(i.fields, ["author", "message", "post_id"]);
        let names = preset("POSTS")
            .expect("known")
            .resolve(&i, &FieldNames::default());
        let names = names.expect("applies");
        assert_eq!(
            (names.id.as_str(), names.text.as_str()),
            ("post_id", "message")
        );
        assert_eq!(
            (names.account.as_str(), names.ts.as_str()),
            ("author", "ts")
        );

        // Keys past the first records are not seen.
        let mut data = Vec::new();
        for i in 0..INSPECT_RECORDS {
            writeln!(data, "{{\"id\":{i},\"text\":\"t\"}}").expect("writes");
        }
        data.extend_from_slice(b"{\"id\":0,\"text\":\"t\",\"late\":1}\n");
        let (_d, p) = file("late.jsonl.gz", &{
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).expect("compresses");
            e.finish().expect("compresses")
        });
        let i = inspect(&p, &InputOptions::default()).expect("inspects");
        assert_eq!(i.fields, ["id", "text"]);

        let (_d, p) = file("t.txt", b"just text\n");
        let i = inspect(&p, &InputOptions::default()).expect("inspects");
        assert!(i.fields.is_empty() && i.has("anything"));
    }
}
