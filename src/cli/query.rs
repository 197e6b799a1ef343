//! `textreuse query`: look texts up in an index.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use textreuse::index::{Access, Hit, Index, OpenOptions, QueryOptions, QueryResult};
use textreuse::input::{InputFormat, InputTally, PostReader, RawRecord, RecordParser};
use textreuse::text::align::Passage;
use textreuse::Scratch;

use super::inputs::{self, InputArgs};
use super::util::{format_ts, one_line, parse_time};

/// Arguments of `textreuse query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Texts to look up.
    texts: Vec<String>,
    /// Look up every record of FILE (`-` for stdin; .gz/.zst read as by `build`): JSONL
    /// (`text`, optional `id`; a line that is not an object is a text), CSV or plain text,
    /// with the same format and field flags as `build`.
    #[arg(long, short)]
    input: Option<PathBuf>,
    #[command(flatten)]
    fields: InputArgs,
    /// Look up the neighbours of indexed posts by id (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// One JSON object per query, in input order.
    #[arg(long)]
    json: bool,
    /// Most hits per query, best first (0 = all); a post looked up by id is not counted.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Least similarity of a hit, from 0 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = parse_similarity)]
    min_similarity: f64,
    /// Keep the signatures' estimate for every hit, even near --min-similarity (by default
    /// hits whose estimate is too close to call are settled by exact Jaccard similarity,
    /// computed from the stored text).
    #[arg(long)]
    estimate_only: bool,
    /// Keep only hits on this platform (repeatable; case is ignored).
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
    /// Width of the table in characters (default: the terminal's, else 120).
    #[arg(long)]
    width: Option<usize>,
    /// Read-ahead every page a query touches before probing (faster on a cold page cache).
    #[arg(long)]
    prefetch: bool,
    /// Read the index into memory instead of memory-mapping it (huge pages on Linux: warm
    /// lookups about a fifth faster; open reads every file but the stored texts, which stay
    /// mapped).
    #[arg(long)]
    in_memory: bool,
    /// Worker threads for --input (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
}

/// A similarity: a number from 0 to 1.
fn parse_similarity(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not a similarity: use a number from 0 to 1")),
        Err(_) => Err(format!("{s:?} is not a number: use a number from 0 to 1")),
    }
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
    /// More hits than --limit were found (only the first are shown).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    limited: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Candidates near the threshold settled from their stored texts (omitted when none).
    #[serde(skip_serializing_if = "is_zero")]
    settled: usize,
    hits: &'a [Hit],
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One query: its label and text (or the id of an indexed post), or the error that made
/// its input record unreadable.
pub(crate) struct Q {
    pub(crate) label: String,
    pub(crate) text: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) error: Option<String>,
}

/// How to show answers.
struct Show {
    json: bool,
    limit: usize,
    width: usize,
}

/// The records of --input read per batch.
const BATCH: usize = 4096;

pub fn run(args: Args) -> Result<i32> {
    super::init_threads(args.threads)?;
    let access = if args.in_memory {
        Access::InMemory
    } else {
        Access::Mmap
    };
    let tally = InputTally::new();
    // The input is checked before the index is opened: a typo fails fast.
    let input_opts = match &args.input {
        Some(path) => {
            let Some(mut o) = inputs::resolve(&args.fields, std::slice::from_ref(path), &tally)?
            else {
                return Ok(0); // --preset list
            };
            o.require_id = false;
            Some(o)
        }
        None => None,
    };
    let index = Index::open_with(
        &args.index,
        OpenOptions {
            access,
            prefetch: args.prefetch,
        },
    )
    .with_context(|| format!("{}: failed to open index (--index)", args.index.display()))?;
    let platforms = platform_filter(&index, &args.platform)?;
    if args.expand && index.manifest().clusters.is_none() {
        eprintln!(
            "textreuse: --expand: {} has no saved clusters, so no hit is expanded \
             (run `textreuse clusters --save --index {}` first)",
            args.index.display(),
            args.index.display()
        );
    }
    let opts = QueryOptions {
        min_similarity: args.min_similarity,
        exact_near_threshold: !args.estimate_only,
        // Two more than shown: a post looked up by id drops itself, and one more tells
        // whether the limit cut the hits.
        limit: if args.limit == 0 {
            0
        } else {
            args.limit.saturating_add(2)
        },
        platforms,
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
    let show = Show {
        json: args.json,
        limit: args.limit,
        width: args.width.unwrap_or_else(terminal_width),
    };
    let mut queries: Vec<Q> = Vec::new();
    for (i, t) in args.texts.iter().enumerate() {
        queries.push(Q {
            label: i.to_string(),
            text: Some(t.clone()),
            id: None,
            error: None,
        });
    }
    for id in &args.ids {
        queries.push(Q {
            label: id.clone(),
            text: None,
            id: Some(id.clone()),
            error: None,
        });
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut any, mut failed) = answer(&index, &queries, &opts, &show, &mut out)?;
    if let (Some(path), Some(iopts)) = (&args.input, &input_opts) {
        let mut reader = if path.as_os_str() == "-" {
            PostReader::from_reader("-", Box::new(io::stdin()), iopts)?
        } else {
            PostReader::open(path, iopts)?
        };
        let parser = reader.parser();
        // In JSONL and text files, a line that starts with `{` is a JSON query, any other
        // a text (unless --format text says every line is a text).
        let json_parser = match reader.format() {
            InputFormat::Jsonl => Some(parser.clone()),
            InputFormat::Text if args.fields.format == InputFormat::Auto => {
                let o = textreuse::input::InputOptions {
                    format: InputFormat::Jsonl,
                    ..iopts.clone()
                };
                Some(PostReader::from_reader(reader.name(), Box::new(io::empty()), &o)?.parser())
            }
            _ => None,
        };
        let mut recs: Vec<RawRecord> = Vec::with_capacity(BATCH);
        loop {
            recs.clear();
            let more = reader.read_batch(BATCH, &mut recs)?;
            if recs.is_empty() && !more {
                break;
            }
            let batch: Vec<Q> = recs
                .par_iter()
                .filter_map(|rec| record_query(&parser, json_parser.as_ref(), rec))
                .collect();
            // Parsed: a long raw record is not held while its text is looked up.
            recs.clear();
            let (a, f) = answer(&index, &batch, &opts, &show, &mut out)?;
            any |= a;
            failed |= f;
        }
        inputs::report_times(&tally);
    }
    out.flush()?;
    // A query that failed (unknown id, bad input record, damaged index, ...) makes the run
    // an error.
    Ok(if failed {
        2
    } else if any {
        0
    } else {
        1
    })
}

/// The query of one --input record; `None` for a blank line. Labels: the record's id, else
/// its 0-based line number.
fn record_query(
    parser: &RecordParser,
    json_parser: Option<&RecordParser>,
    rec: &RawRecord,
) -> Option<Q> {
    let name = parser.name();
    let line_label = rec.line().saturating_sub(1).to_string();
    let bytes = rec.as_bytes();
    let plain = |text: String| Q {
        label: line_label.clone(),
        text: Some(text),
        id: None,
        error: None,
    };
    let mut parser = parser;
    if let Some(json) = json_parser {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            Some(b'{') => parser = json,
            Some(_) => return Some(plain(String::from_utf8_lossy(bytes).into_owned())),
            None => return None,
        }
    }
    match parser.parse(rec) {
        Ok(None) => None,
        Ok(Some(p)) if parser.format() == InputFormat::Text => Some(plain(p.text)),
        Ok(Some(p)) => {
            let label =
                if p.id == format!("{name}:{}", p.line) && parser.format() != InputFormat::Csv {
                    line_label
                } else {
                    p.id
                };
            Some(Q {
                label,
                text: Some(p.text),
                id: None,
                error: None,
            })
        }
        Err(e) => Some(Q {
            label: line_label,
            text: None,
            id: None,
            error: Some(e.to_string()),
        }),
    }
}

/// The terminal's width, else 120.
fn terminal_width() -> usize {
    terminal_size::terminal_size()
        .map(|(w, _)| usize::from(w.0))
        .filter(|&w| w >= 40)
        .unwrap_or(120)
}

/// The platform filter, with each name given replaced by the index's spelling of it (case
/// is ignored). A name the index does not hold is an error listing those it holds.
fn platform_filter(index: &Index, given: &[String]) -> Result<Vec<String>> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let held = index.platforms();
    let mut out = Vec::new();
    for g in given {
        let same: Vec<&String> = held
            .iter()
            .filter(|h| h.to_lowercase() == g.to_lowercase())
            .collect();
        if same.is_empty() {
            let list: Vec<String> = held
                .iter()
                .map(|h| {
                    if h.is_empty() {
                        "(none)".to_owned()
                    } else {
                        h.clone()
                    }
                })
                .collect();
            bail!(
                "--platform {g}: the index holds no post on {g:?} (its platforms: {})",
                list.join(", ")
            );
        }
        out.extend(same.into_iter().cloned());
    }
    Ok(out)
}

/// Answers a batch in parallel and prints the answers in order. Returns whether any query
/// had a hit and whether any failed.
fn answer(
    index: &Index,
    qs: &[Q],
    opts: &QueryOptions,
    show: &Show,
    out: &mut impl Write,
) -> Result<(bool, bool)> {
    let results: Vec<(u64, textreuse::Result<Option<QueryResult>>)> = qs
        .par_iter()
        .map_init(Scratch::new, |scratch, q| {
            let t = Instant::now();
            let r = match (&q.text, &q.id) {
                _ if q.error.is_some() => Ok(Some(QueryResult::default())),
                (Some(text), _) => index.query_with(text, opts, scratch).map(Some),
                (None, Some(id)) => index.query_post(id, opts),
                (None, None) => Ok(None),
            };
            (t.elapsed().as_micros() as u64, r)
        })
        .collect();
    let (mut any, mut failed) = (false, false);
    for (q, (took, r)) in qs.iter().zip(results) {
        let (mut res, error) = match r {
            _ if q.error.is_some() => (QueryResult::default(), q.error.clone()),
            Ok(Some(res)) => (res, None),
            Ok(None) => (
                QueryResult::default(),
                Some(format!("no post has id {:?}", q.label)),
            ),
            Err(e) => (QueryResult::default(), Some(e.to_string())),
        };
        let limited = show.limit > 0 && res.hits.len() > show.limit;
        if limited {
            res.hits.truncate(show.limit);
        }
        failed |= error.is_some();
        // A bad input record is reported on stderr in JSON mode too (its object carries
        // the error as well).
        match (&error, q.error.is_some()) {
            (Some(e), true) => eprintln!("textreuse: {e}"),
            (Some(e), false) if !show.json => eprintln!("textreuse: query {}: {e}", q.label),
            _ => {}
        }
        any |= !res.hits.is_empty();
        if show.json {
            let o = JsonOut {
                query: &q.label,
                took_us: took,
                candidates: res.candidates,
                empty: res.empty,
                truncated: res.truncated,
                limited,
                error: error.as_deref(),
                settled: res.settled,
                hits: &res.hits,
            };
            serde_json::to_writer(&mut *out, &o)?;
            writeln!(out)?;
        } else if error.is_none() {
            print_table(
                q,
                &res,
                took,
                limited.then_some(show.limit),
                show.width,
                out,
            )?;
        }
    }
    Ok((any, failed))
}

/// Prints one answer as a table: ids whole, texts cut to fit `width` characters;
/// `limited` is the limit that cut the hits, if one did.
pub(crate) fn print_table(
    q: &Q,
    res: &QueryResult,
    took: u64,
    limited: Option<usize>,
    width: usize,
    out: &mut impl Write,
) -> Result<()> {
    let what = match (&q.text, &q.id) {
        (Some(t), _) => one_line(t, width.saturating_sub(12).max(20)),
        (None, Some(id)) => format!("post {id}"),
        _ => String::new(),
    };
    let mut note = String::new();
    if res.empty {
        note.push_str(" (no text left after normalization)");
    } else if res.truncated {
        note.push_str(" (a heavy bucket was capped; more copies may exist)");
    }
    if let Some(n) = limited {
        note.push_str(&format!(
            " (the best {n} shown; more with --limit 0 or a higher --limit)"
        ));
    }
    let expanded = res.hits.iter().filter(|h| h.expanded).count();
    if expanded > 0 {
        note.push_str(&format!(
            " ({expanded} added by --expand from saved clusters, marked +)"
        ));
    }
    writeln!(
        out,
        "query {}: {what}\n  {} hit(s), {} µs{note}",
        q.label,
        res.hits.len(),
        took
    )?;
    if !res.hits.is_empty() {
        let id_w = res
            .hits
            .iter()
            .map(|h| h.id.chars().count())
            .max()
            .unwrap_or(0)
            .max(2);
        // sim(6) + marker(2) + id + account(17) + platform(11) + time(21) + spaces.
        let fixed = 2 + 6 + 2 + id_w + 1 + 17 + 11 + 21;
        let text_w = width.saturating_sub(fixed).max(20);
        writeln!(
            out,
            "  {:>5}  {:<id_w$} {:<16} {:<10} {:<20} text",
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
        let tty = std::io::stdout().is_terminal();
        for h in &res.hits {
            // A containment lookup shows the containment in the first column.
            let score = h.containment.unwrap_or(h.similarity);
            let shown = match (h.text.as_deref(), h.evidence.as_deref()) {
                (Some(t), Some(ev)) => mark_passages(t, ev, tty, text_w),
                (Some(t), None) => one_line(t, text_w),
                (None, _) => String::new(),
            };
            writeln!(
                out,
                "  {:>5.3}{} {:<id_w$} {:<16} {:<10} {:<20} {}",
                score,
                if h.expanded { "+" } else { " " },
                h.id,
                one_line(&h.account, 16),
                one_line(&h.platform, 10),
                h.ts.map(format_ts).unwrap_or_default(),
                shown
            )?;
        }
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
