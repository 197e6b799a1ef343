//! `textreuse query`: look texts up in an index.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use textreuse::index::{Access, Hit, Index, OpenOptions, QueryOptions, QueryResult};
use textreuse::text::align::Passage;
use textreuse::Scratch;

use super::util::{format_ts, one_line, parse_time};

/// Arguments of `textreuse query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Texts to look up.
    texts: Vec<String>,
    /// Look up every line of FILE (`-` for stdin): JSONL with `text` (and optional `id`), or plain text.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Look up the neighbours of indexed posts by id (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// One JSON object per query, in input order.
    #[arg(long)]
    json: bool,
    /// Most hits per query, best first (0 = all).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Least similarity of a hit.
    #[arg(long, default_value_t = 0.5)]
    min_similarity: f64,
    /// Keep the signatures' estimate for every hit, even near --min-similarity (by default
    /// hits whose estimate is too close to call are settled by exact Jaccard similarity,
    /// computed from the stored text).
    #[arg(long)]
    estimate_only: bool,
    /// Keep only hits on this platform (repeatable).
    #[arg(long)]
    platform: Vec<String>,
    /// Keep only hits by this account (repeatable).
    #[arg(long)]
    account: Vec<String>,
    /// Keep only hits at or after this time (unix seconds or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Keep only hits at or before this time.
    #[arg(long)]
    until: Option<String>,
    /// Do not return stored texts.
    #[arg(long)]
    no_text: bool,
    /// Also return every member of the saved clusters the hits belong to (see `clusters --save`).
    #[arg(long)]
    expand: bool,
    /// Give each hit the passages it shares with the query (`evidence` in JSON: char offsets
    /// into both original texts); the table marks them in the hit's text. Needs stored texts.
    #[arg(long)]
    evidence: bool,
    /// Containment lookup: the posts that contain at least this share (0 < C <= 1) of the
    /// query's shingles (the query is a snippet of them), whatever their similarity; each
    /// hit carries `containment`. Needs stored texts.
    #[arg(long, value_name = "C")]
    containment: Option<f64>,
    /// The posts at least this share (0 < C <= 1) of whose shingles lie inside the query.
    #[arg(long, value_name = "C", conflicts_with = "containment")]
    contained_in: Option<f64>,
    /// Read-ahead every page a query touches before probing (faster on a cold page cache).
    #[arg(long)]
    prefetch: bool,
    /// Read the whole index into memory instead of memory-mapping it.
    #[arg(long)]
    in_memory: bool,
    /// Worker threads for --input (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    query: &'a str,
    took_us: u64,
    candidates: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    empty: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    hits: &'a [Hit],
}

#[derive(Deserialize)]
struct JsonQuery<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    id: Option<serde_json::Value>,
}

/// One query: its label and text.
pub(crate) struct Q {
    pub(crate) label: String,
    pub(crate) text: Option<String>,
    pub(crate) id: Option<String>,
}

pub fn run(args: Args) -> Result<i32> {
    super::init_threads(args.threads)?;
    let access = if args.in_memory {
        Access::InMemory
    } else {
        Access::Mmap
    };
    let index = Index::open_with(
        &args.index,
        OpenOptions {
            access,
            prefetch: args.prefetch,
        },
    )
    .with_context(|| format!("{}: failed to open index", args.index.display()))?;
    let opts = QueryOptions {
        min_similarity: args.min_similarity,
        exact_near_threshold: !args.estimate_only,
        limit: args.limit,
        platforms: args.platform.clone(),
        accounts: args.account.clone(),
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
        with_text: !args.no_text,
        expand: args.expand,
        evidence: args.evidence,
        containment: args.containment,
        contained_in: args.contained_in,
        ..QueryOptions::default()
    };
    opts.validate()?;
    let mut queries: Vec<Q> = Vec::new();
    for (i, t) in args.texts.iter().enumerate() {
        queries.push(Q {
            label: i.to_string(),
            text: Some(t.clone()),
            id: None,
        });
    }
    for id in &args.ids {
        queries.push(Q {
            label: id.clone(),
            text: None,
            id: Some(id.clone()),
        });
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut any, mut failed) = answer(&index, &queries, &opts, args.json, &mut out)?;
    if let Some(path) = &args.input {
        let reader: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(
                std::fs::File::open(path)
                    .with_context(|| format!("{}: failed to open", path.display()))?,
            )
        };
        let mut r = BufReader::with_capacity(1 << 20, reader);
        let mut line = 0usize;
        loop {
            let mut batch = Vec::new();
            let mut buf = Vec::new();
            while batch.len() < 4096 {
                buf.clear();
                if r.read_until(b'\n', &mut buf)
                    .with_context(|| format!("{}: read failed", path.display()))?
                    == 0
                {
                    break;
                }
                let s = String::from_utf8_lossy(&buf);
                let s = s.trim_end_matches(['\n', '\r']);
                let q = if s.trim_start().starts_with('{') {
                    let jq: JsonQuery = serde_json::from_str(s).with_context(|| {
                        format!("{}:{}: invalid JSON query", path.display(), line + 1)
                    })?;
                    let label = match jq.id {
                        Some(serde_json::Value::String(s)) => s,
                        Some(v) => v.to_string(),
                        None => line.to_string(),
                    };
                    Q {
                        label,
                        text: Some(jq.text.into_owned()),
                        id: None,
                    }
                } else {
                    Q {
                        label: line.to_string(),
                        text: Some(s.to_string()),
                        id: None,
                    }
                };
                batch.push(q);
                line += 1;
            }
            if batch.is_empty() {
                break;
            }
            let (a, f) = answer(&index, &batch, &opts, args.json, &mut out)?;
            any |= a;
            failed |= f;
        }
    }
    out.flush()?;
    // A query that failed (unknown id, damaged index, ...) makes the run an error.
    Ok(if failed {
        2
    } else if any {
        0
    } else {
        1
    })
}

/// Answers a batch in parallel and prints the answers in order. Returns whether any query
/// had a hit and whether any failed.
fn answer(
    index: &Index,
    qs: &[Q],
    opts: &QueryOptions,
    json: bool,
    out: &mut impl Write,
) -> Result<(bool, bool)> {
    let results: Vec<(u64, textreuse::Result<Option<QueryResult>>)> = qs
        .par_iter()
        .map_init(Scratch::new, |scratch, q| {
            let t = Instant::now();
            let r = match (&q.text, &q.id) {
                (Some(text), _) => index.query_with(text, opts, scratch).map(Some),
                (None, Some(id)) => index.query_post(id, opts),
                (None, None) => Ok(None),
            };
            (t.elapsed().as_micros() as u64, r)
        })
        .collect();
    let (mut any, mut failed) = (false, false);
    for (q, (took, r)) in qs.iter().zip(results) {
        let (res, error) = match r {
            Ok(Some(res)) => (res, None),
            Ok(None) => (
                QueryResult::default(),
                Some(format!("no post has id {:?}", q.label)),
            ),
            Err(e) => (QueryResult::default(), Some(e.to_string())),
        };
        failed |= error.is_some();
        if let (Some(e), false) = (&error, json) {
            eprintln!("textreuse: query {}: {e}", q.label);
        }
        any |= !res.hits.is_empty();
        if json {
            let o = JsonOut {
                query: &q.label,
                took_us: took,
                candidates: res.candidates,
                empty: res.empty,
                truncated: res.truncated,
                error,
                hits: &res.hits,
            };
            serde_json::to_writer(&mut *out, &o)?;
            writeln!(out)?;
        } else {
            print_table(q, &res, took, out)?;
        }
    }
    Ok((any, failed))
}

pub(crate) fn print_table(q: &Q, res: &QueryResult, took: u64, out: &mut impl Write) -> Result<()> {
    let what = match (&q.text, &q.id) {
        (Some(t), _) => one_line(t, 60),
        (None, Some(id)) => format!("post {id}"),
        _ => String::new(),
    };
    let note = if res.empty {
        " (no text left after normalization)"
    } else if res.truncated {
        " (a heavy bucket was capped; more copies may exist)"
    } else {
        ""
    };
    writeln!(
        out,
        "query {}: {what}\n  {} hit(s), {} µs{note}",
        q.label,
        res.hits.len(),
        took
    )?;
    if !res.hits.is_empty() {
        writeln!(
            out,
            "  {:>5}  {:<12} {:<16} {:<10} {:<20} text",
            if res.hits.iter().any(|h| h.containment.is_some()) {
                "cont"
            } else {
                "sim"
            },
            "id",
            "account",
            "platform",
            "time"
        )?;
    }
    let tty = std::io::stdout().is_terminal();
    for h in &res.hits {
        // A containment lookup shows the containment in the first column.
        let score = h.containment.unwrap_or(h.similarity);
        let shown = match (h.text.as_deref(), h.evidence.as_deref()) {
            (Some(t), Some(ev)) => mark_passages(t, ev, tty, 80),
            (Some(t), None) => one_line(t, 50),
            (None, _) => String::new(),
        };
        writeln!(
            out,
            "  {:>5.3}  {:<12} {:<16} {:<10} {:<20} {}",
            score,
            one_line(&h.id, 12),
            one_line(&h.account, 16),
            one_line(&h.platform, 10),
            h.ts.map(format_ts).unwrap_or_default(),
            shown
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// `text` on one line (whitespace runs made one space), at most `max` chars shown, with the
/// passages marked: reverse video on a terminal, `[` `]` otherwise.
fn mark_passages(text: &str, passages: &[Passage], tty: bool, max: usize) -> String {
    let (open, close) = if tty {
        ("\x1b[7m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    let mut spans: Vec<(usize, usize)> = passages
        .iter()
        .map(|p| (p.hit_start as usize, p.hit_end as usize))
        .collect();
    spans.sort_unstable();
    let mut at = 0;
    // `marked`: the passage whose marker is open in `out`.
    let (mut out, mut shown, mut marked, mut space) = (String::new(), 0usize, None, false);
    for (i, c) in text.chars().enumerate() {
        while spans.get(at).is_some_and(|&(_, end)| end <= i) {
            at += 1;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        let inside = spans.get(at).filter(|&&(start, _)| start <= i).map(|_| at);
        if shown == max {
            out.push('…');
            break;
        }
        if space {
            if marked.is_some() && marked != inside {
                out.push_str(close);
                marked = None;
            }
            out.push(' ');
            shown += 1;
            space = false;
        }
        if inside != marked {
            if marked.is_some() {
                out.push_str(close);
            }
            if inside.is_some() {
                out.push_str(open);
            }
            marked = inside;
        }
        out.push(c);
        shown += 1;
    }
    if marked.is_some() {
        out.push_str(close);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(hit_start: u32, hit_end: u32) -> Passage {
        Passage {
            query_start: 0,
            query_end: 0,
            hit_start,
            hit_end,
            text: String::new(),
        }
    }

    #[test]
    fn passages_are_bracketed_and_cut() {
        let t = "abc  def\nghi jkl";
        assert_eq!(
            mark_passages(t, &[p(5, 8), p(0, 3)], false, 80),
            "[abc] [def] ghi jkl"
        );
        assert_eq!(
            mark_passages(t, &[p(13, 16)], false, 80),
            "abc def ghi [jkl]"
        );
        assert_eq!(mark_passages(t, &[p(9, 16)], false, 6), "abc de…");
        assert_eq!(mark_passages(t, &[p(5, 16)], false, 6), "abc [de…]");
        assert_eq!(
            mark_passages(t, &[p(0, 3)], true, 80),
            "\x1b[7mabc\x1b[0m def ghi jkl"
        );
    }
}
