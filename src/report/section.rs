//! One campaign's section of the report: its core text and variants, timeline, hours,
//! first poster, accounts, coordinated groups and links to related campaigns.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::{
    diff_and_share, escape, excerpt, format_time, svg, window_label, Campaign, ReportOptions,
    MAX_LINKS, MAX_TEXT_CHARS, MIN_MARKED_SHARE, P,
};
use crate::coordination::active_hours_label;
use crate::text::align::CoreText;

pub(super) fn cut(s: &str) -> (&str, bool) {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// The distinct texts of a campaign (spacing collapsed: a changed line break is not a
/// variant worth reading), most posted first (ties: earliest first).
pub(super) fn texts(c: &Campaign) -> Vec<(String, usize)> {
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

pub(super) fn core_text(c: &Campaign) -> Option<String> {
    texts(c).into_iter().next().map(|x| x.0)
}

/// An account's posts, posts per platform and first time in one campaign.
type AccountTally<'a> = (usize, BTreeMap<&'a str, usize>, Option<i64>);

#[allow(clippy::too_many_arguments)]
pub(super) fn section(
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
