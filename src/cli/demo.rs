//! `textreuse demo`: the whole pipeline on the bundled sample, in one command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use textreuse::index::ingest::{build_index, IngestOptions, Quiet};
use textreuse::index::{BuildOptions, Existing, Index, QueryOptions};
use textreuse::input::{InputOptions, PostReader, RawPost};
use textreuse::text::tables::{is_char_token, t2s};

use super::query::{print_table, Q};
use super::util::print_out;

/// Arguments of `textreuse demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sample posts (JSONL).
    #[arg(long, default_value = "data/sample.jsonl")]
    data: PathBuf,
    /// Where to build the demo index (replaced if it exists) [default: demo-index under
    /// $CARGO_TARGET_DIR if set, else under the system's temporary directory].
    #[arg(long)]
    index: Option<PathBuf>,
}

/// Where the demo index goes by default: `$CARGO_TARGET_DIR/demo-index`, else
/// `<temporary directory>/textreuse-demo-index`.
fn default_index() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => PathBuf::from(t).join("demo-index"),
        _ => std::env::temp_dir().join("textreuse-demo-index"),
    }
}

pub fn run(args: Args) -> Result<i32> {
    let index_dir = args.index.clone().unwrap_or_else(default_index);
    let data = if args.data.exists() {
        args.data.clone()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(&args.data)
    };
    print_out(&format!(
        "== building an index of {} into {}\n",
        data.display(),
        index_dir.display()
    ))?;
    let build = BuildOptions {
        existing: Existing::Replace,
        ..BuildOptions::default()
    };
    let summary = build_index(
        &index_dir,
        std::slice::from_ref(&data),
        &IngestOptions::default(),
        build,
        &mut Quiet,
    )
    .with_context(|| format!("{}: demo build failed", index_dir.display()))?;
    let s = &summary.stats;
    print_out(&format!(
        "   {} posts indexed ({} unique texts, {} empty, {} invalid) in {:.2} s\n\n",
        s.indexed, s.unique_texts, s.empty, summary.invalid, summary.seconds
    ))?;
    let index = Index::open(&index_dir)?;
    let opts = QueryOptions {
        limit: 8,
        ..QueryOptions::default()
    };

    // Pick a Chinese and an English post that were reposted by several accounts.
    let posts = read_posts(&data)?;
    let reposted = |p: &RawPost| -> bool {
        index.query(&p.text, &opts).is_ok_and(|r| {
            let mut accounts: Vec<&str> = r.hits.iter().map(|h| h.account.as_str()).collect();
            accounts.sort_unstable();
            accounts.dedup();
            r.hits.len() >= 4 && accounts.len() >= 3
        })
    };
    let han = |p: &RawPost| p.text.chars().filter(|&c| is_char_token(c)).count();
    let Some(zh) = posts
        .iter()
        .find(|p| han(p) >= 30 && p.text.chars().all(|c| t2s(c) == c) && reposted(p))
    else {
        bail!("the sample has no reposted Chinese post")
    };
    let Some(en) = posts
        .iter()
        .find(|p| han(p) == 0 && p.text.len() >= 60 && reposted(p))
    else {
        bail!("the sample has no reposted English post")
    };
    let queries = [
        ("a Chinese post", zh.text.clone()),
        (
            "the same post in Traditional script (converted here, character by character)",
            traditional(&zh.text),
        ),
        ("an English post", en.text.clone()),
    ];
    for (i, (what, text)) in queries.into_iter().enumerate() {
        let mut out = format!("== {what}\n").into_bytes();
        let t = std::time::Instant::now();
        let r = index.query(&text, &opts)?;
        let q = Q {
            label: i.to_string(),
            text: Some(text),
            id: None,
            error: None,
        };
        print_table(&q, &r, t.elapsed().as_micros() as u64, None, 120, &mut out)?;
        print_out(&String::from_utf8_lossy(&out))?;
    }
    print_out(&format!(
        "Try it yourself (`cargo install --path .` puts textreuse on your PATH; or run it as \
         `cargo run --release --`):\n  textreuse query --index {} \"<text>\"\n  \
         textreuse stats --index {}\n",
        index_dir.display(),
        index_dir.display()
    ))?;
    Ok(0)
}

fn read_posts(path: &Path) -> Result<Vec<RawPost>> {
    let mut reader = PostReader::open(path, &InputOptions::default())?;
    let parser = reader.parser();
    let mut recs = Vec::new();
    let mut posts = Vec::new();
    while reader.read_batch(4096, &mut recs)? {
        posts.extend(
            recs.drain(..)
                .filter_map(|r| parser.parse(&r).ok().flatten()),
        );
    }
    Ok(posts)
}

/// A Simplified -> Traditional conversion for the demo: the inverse of the index's fold
/// table (the first Traditional form of each Simplified character).
fn traditional(text: &str) -> String {
    let mut inverse: HashMap<char, char> = HashMap::new();
    for u in 0x3400u32..=0x9FFF {
        if let Some(c) = char::from_u32(u) {
            let s = t2s(c);
            if s != c {
                inverse.entry(s).or_insert(c);
            }
        }
    }
    text.chars()
        .map(|c| inverse.get(&c).copied().unwrap_or(c))
        .collect()
}
