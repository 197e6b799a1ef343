//! A self-contained HTML report of campaigns: one file, inline CSS and SVG, no scripts and
//! nothing fetched from the network, readable on a laptop and printable.
//!
//! Per campaign (cluster), largest first: the core text (the passage most of its posts hold
//! whole, [`crate::text::align::core_passage`]), the most posted text and its variants with
//! the differences marked, a timeline of posts stacked by platform, an hour-of-day histogram in
//! UTC and in a chosen [`Zone`], the first poster and earliest post, the accounts and the
//! coordinated groups of [`coordination`](crate::coordination) that posted in it, and links
//! to the campaigns that share accounts with it.
//!
//! Posts are hostile input: every text, account, platform and id goes through
//! [`escape`] before it reaches the page, in element content and in attributes alike.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;

use crate::coordination::{active_hours_label, coordination, Assignment, CoordinationOptions};
use crate::error::{Error, Result};
use crate::index::segment::TextCache;
use crate::index::{Index, PostAddr};
use crate::text::align::{core_passage_with, CoreScratch, CoreText};

mod diff;
mod svg;
mod zone;

pub use diff::{diff_and_share, diff_html, units};
pub use zone::{format_rfc3339, format_time, Zone};

/// Options of [`render`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Only these clusters (empty = the largest ones, see `top`).
    pub clusters: Vec<u32>,
    /// Campaigns shown, largest first (0 = all; default 50).
    pub top: usize,
    /// Least posts of a campaign shown (default 2).
    pub min_size: usize,
    /// The analyst's time zone (besides UTC).
    pub zone: Zone,
    /// How accounts are linked in time (the coordinated groups shown).
    pub coordination: CoordinationOptions,
    /// Variants shown per campaign (default 8).
    pub variants: usize,
    /// Accounts listed per campaign (default 15).
    pub accounts: usize,
    /// The page title.
    pub title: String,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            clusters: Vec::new(),
            top: 50,
            min_size: 2,
            zone: Zone::utc(),
            coordination: CoordinationOptions::default(),
            variants: 8,
            accounts: 15,
            title: "textreuse campaign report".into(),
        }
    }
}

/// What [`render`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// Campaign sections.
    pub campaigns: usize,
    /// Their posts.
    pub posts: u64,
    /// Campaigns left out by `top` or `min_size`.
    pub left_out: usize,
}

/// HTML-escapes `s` for element content and quoted attributes (`& < > " '`); control
/// characters other than tab and newline are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_into(&mut out, s);
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

/// One post of a campaign, read from the index.
struct P {
    id: String,
    account: String,
    platform: String,
    ts: Option<i64>,
    text: Option<String>,
}

/// A campaign section's data.
struct Campaign {
    cluster: u32,
    posts: Vec<P>,
}

/// Characters of a text shown (longer texts are cut).
const MAX_TEXT_CHARS: usize = 3000;
/// Reported campaigns an account may be in and still count for the links between them (an
/// account in more, such as a prolific background poster, links nothing).
const MAX_LINK_CAMPAIGNS: usize = 100;
/// Variants keeping less than this share of the most posted text are shown without marks.
const MIN_MARKED_SHARE: f64 = 0.35;
/// Links to other campaigns listed per campaign.
const MAX_LINKS: usize = 12;

fn write_err(e: std::io::Error) -> Error {
    Error::io("report output", e)
}

/// Renders the report of the campaigns of `assignment` to `out`.
///
/// # Errors
/// [`Error::InvalidParameter`] for a cluster that does not exist or bad coordination
/// options; errors of a damaged index or of writing to `out`.
pub fn render(
    index: &Index,
    assignment: &Assignment,
    opts: &ReportOptions,
    out: &mut dyn Write,
) -> Result<ReportSummary> {
    let html = render_to_string(index, assignment, opts)?;
    let (html, summary) = html;
    out.write_all(html.as_bytes()).map_err(write_err)?;
    out.flush().map_err(write_err)?;
    Ok(summary)
}

/// [`render`] into a `String`.
///
/// # Errors
/// As [`render`].
pub fn render_to_string(
    index: &Index,
    assignment: &Assignment,
    opts: &ReportOptions,
) -> Result<(String, ReportSummary)> {
    let members = assignment.members(index);
    for &c in &opts.clusters {
        if members.get(c as usize).is_none_or(|m| m.is_empty()) {
            return Err(Error::InvalidParameter(format!(
                "cluster {c} does not exist (the index has clusters 0..{})",
                members.len()
            )));
        }
    }
    let mut order: Vec<u32> = if opts.clusters.is_empty() {
        (0..members.len() as u32)
            .filter(|&c| members[c as usize].len() >= opts.min_size.max(1))
            .collect()
    } else {
        opts.clusters.clone()
    };
    order.sort_by_key(|&c| (std::cmp::Reverse(members[c as usize].len()), c));
    order.dedup();
    let eligible = order.len();
    if opts.clusters.is_empty() && opts.top > 0 {
        order.truncate(opts.top);
    }
    let left_out = eligible - order.len();

    // Read the campaigns' posts, in storage order per segment (shared text blocks).
    let seg_pos: HashMap<u64, usize> = index
        .segments()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.entry().id, i))
        .collect();
    let mut campaigns = Vec::with_capacity(order.len());
    let mut cache = TextCache::default();
    for &c in &order {
        let mut addrs: Vec<PostAddr> = members[c as usize].clone();
        addrs.sort_unstable_by_key(|a| (seg_pos.get(&a.segment).copied(), a.post));
        let mut posts = Vec::with_capacity(addrs.len());
        for a in addrs {
            let Some(&s) = seg_pos.get(&a.segment) else {
                continue;
            };
            let seg = &index.segments()[s];
            let m = seg.post(a.post)?;
            posts.push(P {
                id: m.id.to_string(),
                account: m.account.to_string(),
                platform: m.platform.to_string(),
                ts: m.ts,
                text: seg.text(a.post, &mut cache)?,
            });
        }
        posts.sort_by(|x, y| (x.ts.is_none(), x.ts, &x.id).cmp(&(y.ts.is_none(), y.ts, &y.id)));
        campaigns.push(Campaign { cluster: c, posts });
    }
    drop(members);

    let coord = coordination(index, assignment, &opts.coordination)?;
    // Groups per cluster.
    let mut groups_of: HashMap<u32, Vec<usize>> = HashMap::new();
    for (gi, g) in coord.groups.iter().enumerate() {
        for &c in &g.clusters {
            groups_of.entry(c).or_default().push(gi);
        }
    }

    // Links between reported campaigns that share accounts.
    let mut camps_of_account: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in campaigns.iter().enumerate() {
        for p in &c.posts {
            if p.account.is_empty() {
                continue;
            }
            let v = camps_of_account.entry(p.account.as_str()).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
    }
    let mut shared: HashMap<(usize, usize), u32> = HashMap::new();
    let mut prolific = 0usize;
    for v in camps_of_account.values() {
        if v.len() > MAX_LINK_CAMPAIGNS {
            prolific += 1;
            continue;
        }
        for (k, &a) in v.iter().enumerate() {
            for &b in &v[k + 1..] {
                *shared.entry((a, b)).or_default() += 1;
            }
        }
    }
    let mut links: Vec<Vec<(usize, u32)>> = vec![Vec::new(); campaigns.len()];
    for (&(a, b), &n) in &shared {
        links[a].push((b, n));
        links[b].push((a, n));
    }
    for l in &mut links {
        l.sort_by_key(|&(o, n)| (std::cmp::Reverse(n), o));
    }

    // Platform colours, by how often each platform appears in the report.
    let mut platform_count: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &campaigns {
        for p in &c.posts {
            *platform_count.entry(p.platform.as_str()).or_default() += 1;
        }
    }
    let mut platforms: Vec<(&str, u64)> = platform_count.into_iter().collect();
    platforms.sort_by_key(|&(p, n)| (std::cmp::Reverse(n), p));
    let colour: HashMap<String, &str> = platforms
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.to_string(), svg::colour(i)))
        .collect();

    // Each campaign's core text: the passage most of its posts share, in its most posted
    // text (the sample of the cluster report: its CORE_SAMPLE most posted texts).
    let normalizer = index.fingerprinter().normalizer();
    let min_tokens = index.manifest().params.shingle as usize;
    let mut scratch = CoreScratch::default();
    let cores: Vec<Option<CoreText>> = campaigns
        .iter()
        .map(|c| {
            let t = texts(c);
            let (rep, others) = t.split_first()?;
            let others: Vec<(&str, usize)> = others
                .iter()
                .take(crate::cluster::CORE_SAMPLE - 1)
                .map(|(t, k)| (t.as_str(), *k))
                .collect();
            core_passage_with(&mut scratch, normalizer, &rep.0, rep.1, &others, min_tokens)
        })
        .collect();
    let mut h = String::with_capacity(1 << 20);
    let total_posts: u64 = campaigns.iter().map(|c| c.posts.len() as u64).sum();
    page_head(
        &mut h, opts, index, &coord, &campaigns, eligible, left_out, prolific,
    );
    for (i, c) in campaigns.iter().enumerate() {
        section(
            &mut h,
            opts,
            c,
            &campaigns,
            &links[i],
            groups_of.get(&c.cluster).map(Vec::as_slice).unwrap_or(&[]),
            &coord,
            &colour,
            cores[i].as_ref(),
        );
    }
    h.push_str("</main>\n</body>\n</html>\n");
    Ok((
        h,
        ReportSummary {
            campaigns: campaigns.len(),
            posts: total_posts,
            left_out,
        },
    ))
}

const CSS: &str = r#"
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#fff; --soft:#f5f7fa; --accent:#1f5fbf; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; color:var(--fg); background:var(--bg); }
header.top { padding: 20px 32px 8px; border-bottom: 1px solid var(--line); }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 6px; }
h2 a { color: inherit; text-decoration: none; }
h3 { font-size: 13px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
main { padding: 8px 32px 40px; max-width: 1200px; }
.muted, small { color: var(--muted); }
nav.toc { columns: 3 260px; font-size: 14px; margin: 10px 0 0; padding: 0; }
nav.toc a { display:block; color: var(--accent); text-decoration:none; padding:1px 0; break-inside: avoid; }
section.campaign { border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin: 22px 0; }
.facts { display:flex; flex-wrap:wrap; gap: 6px 22px; font-size:14px; margin: 4px 0 2px; }
.facts b { font-weight: 600; }
blockquote.core { margin: 0; padding: 10px 14px; background: var(--soft); border-left: 4px solid var(--accent); white-space: pre-wrap; overflow-wrap: anywhere; }
ol.variants { margin: 0; padding-left: 0; list-style: none; }
ol.variants li { padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: pre-wrap; overflow-wrap: anywhere; }
ol.variants .n { display:inline-block; min-width: 4.5em; color: var(--muted); font-variant-numeric: tabular-nums; }
ins { background: #d4f5dc; color: #0b5a1f; text-decoration: none; border-radius: 2px; }
del { background: #fde0e0; color: #8a1c1c; text-decoration: line-through; border-radius: 2px; }
.charts { display:grid; grid-template-columns: 1fr 1fr; gap: 10px 28px; }
.chart svg { width: 100%; height: auto; display:block; }
.legend { font-size: 13px; display:flex; flex-wrap:wrap; gap: 4px 14px; margin: 2px 0 4px; }
.legend i { display:inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
table { border-collapse: collapse; font-size: 14px; width: 100%; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.group { margin: 4px 0 10px; font-size: 14px; }
.tag { font-size: 12px; color: var(--muted); border: 1px solid var(--line); border-radius: 3px; padding: 0 4px; }
.links a { color: var(--accent); margin-right: 14px; white-space: nowrap; }
.first { background: var(--soft); padding: 8px 12px; border-radius: 6px; font-size: 14px; }
.first .text { white-space: pre-wrap; overflow-wrap: anywhere; }
@media (max-width: 800px) { .charts { grid-template-columns: 1fr; } main, header.top { padding-left: 14px; padding-right: 14px; } }
@media print {
  body { font-size: 11pt; }
  nav.toc, .noprint { display: none; }
  section.campaign { break-before: page; border: none; padding: 0; margin: 0; }
  section.campaign:first-of-type { break-before: auto; }
  a { color: inherit; text-decoration: none; }
  .chart, table, blockquote { break-inside: avoid; }
}
"#;

#[allow(clippy::too_many_arguments)]
fn page_head(
    h: &mut String,
    opts: &ReportOptions,
    index: &Index,
    coord: &crate::coordination::Coordination,
    campaigns: &[Campaign],
    eligible: usize,
    left_out: usize,
    prolific: usize,
) {
    let title = escape(&opts.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header class=\"top\">\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        h,
        "<div class=\"facts\"><span>Index <b>{}</b></span><span><b>{}</b> posts</span>\
         <span><b>{}</b> campaigns shown of {} with at least {} posts{}</span>\
         <span>co-posting window <b>{}</b></span><span>time zone <b>{}</b></span></div>",
        escape(&index.dir().display().to_string()),
        index.num_posts(),
        campaigns.len(),
        eligible,
        opts.min_size.max(1),
        if left_out > 0 {
            format!(" ({left_out} smaller ones left out)")
        } else {
            String::new()
        },
        escape(&window_label(opts.coordination.window)),
        escape(opts.zone.name()),
    );
    let _ = writeln!(
        h,
        "<p class=\"muted\">Coordinated groups: accounts linked by posting the same campaign's text \
         within the window of each other, at least {} time{} ({} groups, {} accounts, {} links). Posts without an \
         account: {}; without a time: {} (left out of timelines and groups).{}</p>",
        opts.coordination.min_coposts,
        if opts.coordination.min_coposts == 1 { "" } else { "s" },
        coord.groups.len(),
        coord.accounts.len(),
        coord.edges.len(),
        coord.without_account,
        coord.without_time,
        if prolific > 0 {
            format!(
                " {prolific} accounts posting in more than {MAX_LINK_CAMPAIGNS} of these campaigns \
                 are not counted in the links between campaigns."
            )
        } else {
            String::new()
        }
    );
    h.push_str("<nav class=\"toc\">\n");
    for c in campaigns {
        let _ = writeln!(
            h,
            "<a href=\"#c-{}\">#{} · {} posts · {}</a>",
            c.cluster,
            c.cluster,
            c.posts.len(),
            escape(&excerpt(core_text(c).as_deref().unwrap_or(""), 48))
        );
    }
    h.push_str("</nav>\n</header>\n<main>\n");
}

fn window_label(s: i64) -> String {
    let (d, hh, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(d, "d"), (hh, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            let _ = write!(out, "{v}{u}");
        }
    }
    out
}

/// The first `max` characters of `s` on one line.
fn excerpt(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

fn cut(s: &str) -> (&str, bool) {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// The distinct texts of a campaign (spacing collapsed: a changed line break is not a
/// variant worth reading), most posted first (ties: earliest first).
fn texts(c: &Campaign) -> Vec<(String, usize)> {
    let mut count: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, p) in c.posts.iter().enumerate() {
        if let Some(t) = &p.text {
            let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
            count.entry(flat).or_insert((0, i)).0 += 1;
        }
    }
    let mut v: Vec<(String, usize, usize)> =
        count.into_iter().map(|(t, (n, i))| (t, n, i)).collect();
    v.sort_by_key(|&(_, n, i)| (std::cmp::Reverse(n), i));
    v.into_iter().map(|(t, n, _)| (t, n)).collect()
}

fn core_text(c: &Campaign) -> Option<String> {
    texts(c).into_iter().next().map(|x| x.0)
}

/// An account's posts, posts per platform and first time in one campaign.
type AccountTally<'a> = (usize, BTreeMap<&'a str, usize>, Option<i64>);

#[allow(clippy::too_many_arguments)]
fn section(
    h: &mut String,
    opts: &ReportOptions,
    c: &Campaign,
    all: &[Campaign],
    links: &[(usize, u32)],
    groups: &[usize],
    coord: &crate::coordination::Coordination,
    colour: &HashMap<String, &str>,
    core: Option<&CoreText>,
) {
    let n = c.posts.len();
    let mut accounts: HashMap<&str, AccountTally> = HashMap::new();
    let mut platforms: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &c.posts {
        *platforms.entry(p.platform.as_str()).or_default() += 1;
        if p.account.is_empty() {
            continue;
        }
        let a = accounts.entry(p.account.as_str()).or_default();
        a.0 += 1;
        *a.1.entry(p.platform.as_str()).or_default() += 1;
        if a.2.is_none() {
            a.2 = p.ts;
        }
    }
    let texts = texts(c);
    let timed: Vec<&P> = c.posts.iter().filter(|p| p.ts.is_some()).collect();
    let (first_ts, last_ts) = (
        timed.first().and_then(|p| p.ts),
        timed.last().and_then(|p| p.ts),
    );
    let _ = write!(
        h,
        "<section class=\"campaign\" id=\"c-{id}\">\n<h2><a href=\"#c-{id}\">Campaign #{id}</a></h2>\n<div class=\"facts\">\
         <span><b>{n}</b> posts</span><span><b>{}</b> distinct texts</span><span><b>{}</b> accounts</span><span>{}</span>",
        texts.len(),
        accounts.len(),
        platforms
            .iter()
            .map(|(p, k)| format!("{} {k}", escape(p)))
            .collect::<Vec<_>>()
            .join(", "),
        id = c.cluster,
    );
    if let (Some(f), Some(l)) = (first_ts, last_ts) {
        let _ = write!(
            h,
            "<span>{} → {} UTC ({})</span>",
            format_time(f, 0),
            format_time(l, 0),
            span_label(l - f)
        );
    }
    h.push_str("</div>\n");

    // First poster and earliest post.
    if let Some(p) = c.posts.first() {
        let when = match p.ts {
            Some(t) => format!(
                "{} UTC ({} {})",
                format_time(t, 0),
                format_time(t, opts.zone.offset_at(t)),
                escape(opts.zone.name())
            ),
            None => "no time".into(),
        };
        let _ = write!(
            h,
            "<h3>Earliest post</h3>\n<div class=\"first\"><b>{}</b> on {} at {}, post id <code>{}</code><div class=\"text\">{}</div></div>\n",
            if p.account.is_empty() { "(no account)".to_string() } else { escape(&p.account) },
            escape(&p.platform),
            when,
            escape(&p.id),
            escape(&excerpt(p.text.as_deref().unwrap_or("(text not stored)"), 400)),
        );
    }

    // Core text: the passage most posts share.
    if let Some(core) = core {
        let (shown, was_cut) = cut(&core.text);
        let _ = write!(
            h,
            "<h3>Core text <small>(the passage held whole by {} of {} posts sampled; characters {}–{} of the most posted text)</small></h3>\n<blockquote class=\"core\">{}{}</blockquote>\n",
            core.posts,
            core.sampled,
            core.start,
            core.end,
            escape(shown),
            if was_cut { "…" } else { "" }
        );
    }
    // Most posted text and variants.
    if let Some((core, k)) = texts.first() {
        let (shown, was_cut) = cut(core);
        let _ = write!(
            h,
            "<h3>Most posted text <small>({k} of {n} posts; spacing collapsed)</small></h3>\n<blockquote class=\"core\">{}{}</blockquote>\n",
            escape(shown),
            if was_cut { "…" } else { "" }
        );
        if texts.len() > 1 {
            let _ = write!(
                h,
                "<h3>Variants <small>({} distinct; <ins>added</ins> and <del>removed</del> against the most posted text)</small></h3>\n<ol class=\"variants\">\n",
                texts.len() - 1
            );
            for (t, k) in texts.iter().skip(1).take(opts.variants) {
                let (t, _) = cut(t);
                let (marked, share) = diff_and_share(shown, t);
                // A text that keeps little of the core one reads better unmarked.
                let body = if share < MIN_MARKED_SHARE {
                    format!(
                        "<span class=\"tag\">{}% in common</span> {}",
                        (share * 100.0).round(),
                        escape(t)
                    )
                } else {
                    marked
                };
                let _ = writeln!(
                    h,
                    "<li><span class=\"n\">{k} post{}</span>{body}</li>",
                    if *k == 1 { "" } else { "s" },
                );
            }
            if texts.len() - 1 > opts.variants {
                let _ = writeln!(
                    h,
                    "<li class=\"muted\">… and {} more variants</li>",
                    texts.len() - 1 - opts.variants
                );
            }
            h.push_str("</ol>\n");
        }
    } else {
        h.push_str("<p class=\"muted\">Texts are not stored in this index.</p>\n");
    }

    // Charts.
    if let (Some(f), Some(l)) = (first_ts, last_ts) {
        let unit = if l - f <= 4 * 86_400 { 3600 } else { 86_400 };
        let start = f - f.rem_euclid(unit);
        // At least a day of hours or a week of days, so a short burst reads as a burst.
        let bins = (((l - start) / unit + 1) as usize).max(if unit == 3600 { 24 } else { 7 });
        let mut names: Vec<&str> = platforms.keys().copied().collect();
        names.sort_by_key(|p| (std::cmp::Reverse(platforms[p]), *p));
        let mut series = vec![vec![0u32; bins]; names.len()];
        for p in &timed {
            if let Some(t) = p.ts {
                let b = ((t - start) / unit) as usize;
                if let Some(s) = names.iter().position(|x| *x == p.platform) {
                    if let Some(slot) = series[s].get_mut(b) {
                        *slot += 1;
                    }
                }
            }
        }
        let cols: Vec<&str> = names
            .iter()
            .map(|p| colour.get(*p).copied().unwrap_or("#888"))
            .collect();
        let _ = write!(
            h,
            "<h3>Timeline <small>(posts per {}, UTC, stacked by platform)</small></h3>\n<div class=\"legend\">{}</div>\n<div class=\"chart\">{}</div>\n",
            if unit == 3600 { "hour" } else { "day" },
            names
                .iter()
                .zip(&cols)
                .map(|(p, c)| format!("<span><i style=\"background:{c}\"></i>{}</span>", escape(p)))
                .collect::<String>(),
            svg::timeline(start, unit, &series, &cols)
        );
        let mut utc = [0u32; 24];
        let mut local = [0u32; 24];
        for p in &timed {
            if let Some(t) = p.ts {
                utc[crate::coordination::hour_of_day(t)] += 1;
                local[opts.zone.hour(t)] += 1;
            }
        }
        let _ = writeln!(
            h,
            "<div class=\"charts\"><div class=\"chart\"><h3>Hour of day, UTC <small>(active {})</small></h3>{}</div>\
             <div class=\"chart\"><h3>Hour of day, {} <small>(active {})</small></h3>{}</div></div>",
            escape(&active_hours_label(&utc)),
            svg::hours(&utc),
            escape(opts.zone.name()),
            escape(&active_hours_label(&local)),
            svg::hours(&local)
        );
    } else {
        h.push_str("<p class=\"muted\">No post of this campaign has a time.</p>\n");
    }

    // Accounts.
    let mut accs: Vec<(&str, usize, String, Option<i64>)> = accounts
        .iter()
        .map(|(a, (k, pl, first))| {
            (
                *a,
                *k,
                pl.iter()
                    .map(|(p, k)| format!("{p} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                *first,
            )
        })
        .collect();
    accs.sort_by(|x, y| y.1.cmp(&x.1).then(x.3.cmp(&y.3)).then(x.0.cmp(y.0)));
    let _ = write!(
        h,
        "<h3>Accounts <small>({} accounts{})</small></h3>\n<table><thead><tr><th>account</th><th class=\"num\">posts</th><th>platforms</th><th>first post (UTC)</th></tr></thead><tbody>\n",
        accs.len(),
        if accs.len() > opts.accounts {
            format!(", the {} most active", opts.accounts)
        } else {
            String::new()
        }
    );
    for (a, k, pl, first) in accs.iter().take(opts.accounts) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{k}</td><td>{}</td><td>{}</td></tr>",
            escape(a),
            escape(pl),
            first.map(|t| format_time(t, 0)).unwrap_or_default()
        );
    }
    h.push_str("</tbody></table>\n");

    // Coordinated groups.
    let _ = writeln!(
        h,
        "<h3>Coordinated groups <small>(accounts that posted this campaign's text within {} of each other)</small></h3>",
        escape(&window_label(coord.window))
    );
    if groups.is_empty() {
        h.push_str("<p class=\"muted\">None: no two accounts posted it within the window.</p>\n");
    }
    for &gi in groups.iter().take(10) {
        let g = &coord.groups[gi];
        let names: Vec<String> = g
            .accounts
            .iter()
            .take(12)
            .map(|&a| escape(&coord.accounts[a].name))
            .collect();
        let others: Vec<String> = g
            .clusters
            .iter()
            .filter(|&&x| x != c.cluster)
            .take(10)
            .map(|&x| {
                if all.iter().any(|o| o.cluster == x) {
                    format!("<a href=\"#c-{x}\">#{x}</a>")
                } else {
                    format!("#{x}")
                }
            })
            .collect();
        let _ = writeln!(
            h,
            "<div class=\"group\"><b>Group {gi}</b>: {} accounts, {} co-posted posts, {}, active {} UTC{}<br><span class=\"muted\">{}{}</span></div>",
            g.accounts.len(),
            g.posts,
            g.platforms
                .iter()
                .map(|(p, k)| format!("{} {k}", escape(p)))
                .collect::<Vec<_>>()
                .join(", "),
            escape(&active_hours_label(&g.hours)),
            if others.is_empty() {
                String::new()
            } else {
                format!("; also in campaigns {}", others.join(" "))
            },
            names.join(", "),
            if g.accounts.len() > names.len() {
                format!(" and {} more", g.accounts.len() - names.len())
            } else {
                String::new()
            }
        );
    }
    if groups.len() > 10 {
        let _ = writeln!(
            h,
            "<p class=\"muted\">… and {} smaller groups</p>",
            groups.len() - 10
        );
    }

    // Links.
    h.push_str("<h3>Campaigns sharing accounts</h3>\n");
    if links.is_empty() {
        h.push_str("<p class=\"muted\">None among the campaigns of this report.</p>\n");
    } else {
        h.push_str("<p class=\"links\">");
        for &(o, k) in links.iter().take(MAX_LINKS) {
            let _ = write!(
                h,
                "<a href=\"#c-{x}\">#{x}</a> <small>{k} account{}</small> ",
                if k == 1 { "" } else { "s" },
                x = all[o].cluster
            );
        }
        if links.len() > MAX_LINKS {
            let _ = write!(h, "<small>and {} more</small>", links.len() - MAX_LINKS);
        }
        h.push_str("</p>\n");
    }
    h.push_str("</section>\n");
}

fn span_label(s: i64) -> String {
    if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 2 * 86_400 {
        format!("{:.1} h", s as f64 / 3600.0)
    } else {
        format!("{:.1} days", s as f64 / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_hostile() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("a\u{0}b\u{7}c\td"), "abc\td");
    }

    #[test]
    fn zones_and_times() {
        assert_eq!(Zone::parse("+08:00").unwrap().offset_at(0), 8 * 3600);
        assert_eq!(Zone::parse("UTC-5").unwrap().offset_at(0), -5 * 3600);
        assert_eq!(Zone::parse("+0530").unwrap().offset_at(0), 5 * 3600 + 1800);
        assert_eq!(Zone::parse("utc").unwrap().hour(3600 * 25), 1);
        assert_eq!(Zone::parse("+08:00").unwrap().hour(20 * 3600), 4);
        assert!(Zone::parse("Not/AZone").is_err());
        assert!(Zone::parse("+99:00").is_err());
        assert_eq!(format_time(0, 0), "1970-01-01 00:00");
        assert_eq!(format_time(1_682_915_696, 0), "2023-05-01 04:34");
        assert_eq!(format_time(1_682_915_696, 8 * 3600), "2023-05-01 12:34");
        assert_eq!(excerpt("a  b\nc", 2), "a …");
    }
}
