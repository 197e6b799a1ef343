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

use crate::coordination::{coordination, Assignment, CoordinationOptions};
use crate::error::{Error, Result};
use crate::index::segment::TextCache;
use crate::index::{Index, PostAddr};
use crate::text::align::{core_passage_with, CoreScratch, CoreText};

mod diff;
mod section;
mod svg;
mod zone;

pub use diff::{diff_and_share, diff_html, units};
use section::{core_text, section};
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
            let t = section::texts(c);
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
