//! `textreuse accounts`: accounts that post the same campaign text within a time window of
//! each other.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use textreuse::cluster::ClusterOptions;
use textreuse::coordination::{
    active_hours_label, coordination, Account, Assignment, Coordination, CoordinationOptions,
    GroupMethod,
};
use textreuse::Index;

use super::util::{format_ts, parse_time};

/// Arguments of `textreuse accounts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Two posts co-post when at most this far apart: 90s, 10m, 1h, 2d, 1h30m (plain
    /// numbers are seconds).
    #[arg(long, default_value = "1h", allow_hyphen_values = true)]
    window: String,
    /// Link posts of the same text (identical after normalization) instead of the same
    /// cluster.
    #[arg(long)]
    same_text: bool,
    /// Least co-posts of a reported pair of accounts.
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_coposts: u32,
    /// Least distinct clusters of a reported pair's co-posts.
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_clusters: u32,
    /// Count only posts on this platform (repeatable).
    #[arg(long)]
    platform: Vec<String>,
    /// Count only posts at or after this time (unix seconds or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Count only posts at or before this time.
    #[arg(long)]
    until: Option<String>,
    /// Earlier posts of its cluster each post is compared with at most, nearest first
    /// (bounds the work of bursts with thousands of accounts).
    #[arg(long, default_value_t = 50, value_name = "N")]
    max_partners: usize,
    /// How accounts are grouped: components (connected components of the reported edges)
    /// or communities (label propagation weighted by co-posts).
    #[arg(long, value_enum, default_value = "components")]
    groups: Groups,
    /// The edge list as CSV: account_a,account_b,coposts,clusters,median_gap_s.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Counts, edges and groups as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the coordination network as GraphML (Gephi, networkx) to FILE.
    #[arg(long, value_name = "FILE")]
    graph: Option<PathBuf>,
    /// Groups and edges shown in the readable summary (0 = all).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Worker threads for clustering when none are saved (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
}

/// `--groups`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Groups {
    /// Connected components.
    Components,
    /// Weighted label propagation.
    Communities,
}

/// Parses a duration: `90`, `90s`, `10m`, `1h`, `2d`, `1w`, `1h30m`. Returns seconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let t = s.trim();
    let bad = || anyhow::anyhow!("invalid window {s:?}: use a duration such as 30s, 10m, 1h or 2d");
    if let Some(rest) = t.strip_prefix('-') {
        if parse_duration(rest).is_ok() || rest.chars().all(|c| c.is_ascii_digit()) {
            bail!("invalid window {s:?}: it must be positive (such as 10m)");
        }
        return Err(bad());
    }
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| bad())?;
        if n == 0 {
            bail!("invalid window {s:?}: it must be positive (such as 10m)");
        }
        return Ok(n);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        if num.is_empty() {
            return Err(bad());
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    if total == 0 {
        bail!("invalid window {s:?}: it must be positive (such as 10m)");
    }
    Ok(total)
}

/// Formats seconds as a short duration (`1h`, `10m`, `1h30m`, `45s`).
pub fn format_duration(s: i64) -> String {
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// The options shared with `textreuse report`.
pub fn options(
    window: &str,
    args_platform: &[String],
    since: Option<&str>,
    until: Option<&str>,
) -> Result<CoordinationOptions> {
    Ok(CoordinationOptions {
        window: parse_duration(window)?,
        platforms: args_platform.to_vec(),
        since: since.map(parse_time).transpose()?,
        until: until.map(parse_time).transpose()?,
        ..CoordinationOptions::default()
    })
}

/// The cluster assignment: identical texts, the saved clusters, or clusters computed now.
pub fn assignment(index: &Index, dir: &Path, same_text: bool) -> Result<Assignment> {
    let a = if same_text {
        Assignment::same_text(index)
    } else {
        if index.manifest().clusters.is_none() {
            eprintln!("textreuse: no saved clusters (`textreuse clusters --save`): clustering now");
        }
        Assignment::clusters(index, &ClusterOptions::default())
    };
    a.with_context(|| format!("{}: failed to group posts", dir.display()))
}

pub fn run(args: Args) -> Result<i32> {
    let mut opts = options(
        &args.window,
        &args.platform,
        args.since.as_deref(),
        args.until.as_deref(),
    )?;
    opts.min_coposts = args.min_coposts;
    opts.min_clusters = args.min_clusters;
    if args.max_partners == 0 {
        bail!("invalid --max-partners 0: it must be at least 1");
    }
    opts.max_partners = args.max_partners;
    opts.groups = match args.groups {
        Groups::Communities => GroupMethod::Communities,
        Groups::Components => GroupMethod::Components,
    };
    super::init_threads(args.threads)?;
    let index = Index::open(&args.index)
        .with_context(|| format!("{}: failed to open index", args.index.display()))?;
    let t = std::time::Instant::now();
    let a = assignment(&index, &args.index, args.same_text)?;
    let c = coordination(&index, &a, &opts)
        .with_context(|| format!("{}: coordination failed", args.index.display()))?;
    eprintln!(
        "textreuse: {} posts ({} without account, {} without time, {} left out by filters); \
         {} in windows of {}; {} account pairs co-posted, {} edges kept; {} posts met the \
         --max-partners cap; {:.2} s",
        c.posts,
        c.without_account,
        c.without_time,
        c.filtered_out,
        c.windowed_posts,
        format_duration(c.window),
        c.pairs,
        c.edges.len(),
        c.capped_posts,
        t.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.graph {
        write_graphml(&c, path)
            .with_context(|| format!("{}: failed to write graph", path.display()))?;
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.csv {
        writeln!(out, "account_a,account_b,coposts,clusters,median_gap_s")?;
        for e in &c.edges {
            writeln!(
                out,
                "{},{},{},{},{}",
                csv_field(&c.accounts[e.a].name),
                csv_field(&c.accounts[e.b].name),
                e.coposts,
                e.clusters,
                e.median_gap_s
            )?;
        }
    } else if args.json {
        serde_json::to_writer(&mut out, &json(&c))?;
        writeln!(out)?;
    } else {
        summary(&c, args.top, &mut out)?;
    }
    out.flush()?;
    Ok(if c.edges.is_empty() { 1 } else { 0 })
}

/// The JSON document: counts, accounts by name in edges, groups with their accounts' names.
fn json(c: &Coordination) -> serde_json::Value {
    let name = |i: usize| c.accounts[i].name.as_str();
    serde_json::json!({
        "window_s": c.window,
        "source": c.source,
        "posts": c.posts,
        "filtered_out": c.filtered_out,
        "without_account": c.without_account,
        "without_time": c.without_time,
        "windowed_posts": c.windowed_posts,
        "capped_posts": c.capped_posts,
        "pairs": c.pairs,
        "edges": c.edges.iter().map(|e| serde_json::json!({
            "account_a": name(e.a),
            "account_b": name(e.b),
            "coposts": e.coposts,
            "clusters": e.clusters,
            "median_gap_s": e.median_gap_s,
        })).collect::<Vec<_>>(),
        "groups": c.groups.iter().enumerate().map(|(i, g)| serde_json::json!({
            "group": i,
            "size": g.accounts.len(),
            "accounts": g.accounts.iter().map(|&a| name(a)).collect::<Vec<_>>(),
            "clusters": g.clusters,
            "platforms": g.platforms,
            "posts": g.posts,
            "hours_utc": g.hours,
            "active_hours_utc": active_hours_label(&g.hours),
        })).collect::<Vec<_>>(),
        "accounts": c.accounts,
    })
}

fn summary(c: &Coordination, top: usize, out: &mut impl Write) -> Result<()> {
    let lim = |n: usize| if top == 0 { n } else { top.min(n) };
    writeln!(
        out,
        "{} coordinated groups, {} accounts, {} edges (window {}, clusters: {})",
        c.groups.len(),
        c.accounts.len(),
        c.edges.len(),
        format_duration(c.window),
        match c.source {
            textreuse::coordination::Source::Saved => "saved",
            textreuse::coordination::Source::Computed => "computed",
            textreuse::coordination::Source::SameText => "same text",
        }
    )?;
    if c.without_account + c.without_time > 0 {
        writeln!(
            out,
            "left out of the windows: {} posts without account, {} without time",
            c.without_account, c.without_time
        )?;
    }
    for (i, g) in c.groups.iter().take(lim(c.groups.len())).enumerate() {
        let names: Vec<&str> = g
            .accounts
            .iter()
            .take(8)
            .map(|&a| c.accounts[a].name.as_str())
            .collect();
        let more = g.accounts.len().saturating_sub(names.len());
        let platforms: Vec<String> = g
            .platforms
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        let clusters: Vec<String> = g
            .clusters
            .iter()
            .take(10)
            .map(|c| format!("#{c}"))
            .collect();
        writeln!(
            out,
            "\ngroup {i}: {} accounts, {} clusters ({}{}), {} co-posted posts; {}; active {} UTC",
            g.accounts.len(),
            g.clusters.len(),
            clusters.join(" "),
            if g.clusters.len() > 10 { " ..." } else { "" },
            g.posts,
            platforms.join(", "),
            active_hours_label(&g.hours)
        )?;
        writeln!(
            out,
            "  {}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )?;
    }
    if lim(c.groups.len()) < c.groups.len() {
        writeln!(
            out,
            "\n... and {} smaller groups (--top 0 shows all)",
            c.groups.len() - lim(c.groups.len())
        )?;
    }
    if !c.edges.is_empty() {
        writeln!(out, "\nstrongest edges (co-posts, clusters, median gap):")?;
        for e in c.edges.iter().take(lim(c.edges.len())) {
            writeln!(
                out,
                "  {} -- {}: {} co-posts, {} clusters, {}",
                c.accounts[e.a].name,
                c.accounts[e.b].name,
                e.coposts,
                e.clusters,
                format_duration(e.median_gap_s.round() as i64)
            )?;
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn platforms_attr(a: &Account) -> String {
    a.platforms.keys().cloned().collect::<Vec<_>>().join(";")
}

/// GraphML: accounts with their activity as nodes, co-posting pairs as weighted edges.
fn write_graphml(c: &Coordination, path: &Path) -> Result<()> {
    let mut w = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">"#
    )?;
    let node_keys: [(&str, &str); 8] = [
        ("label", "string"),
        ("posts", "long"),
        ("clusters", "int"),
        ("platforms", "string"),
        ("first_post", "string"),
        ("last_post", "string"),
        ("group", "int"),
        ("active_hours_utc", "string"),
    ];
    for (k, t) in node_keys {
        writeln!(
            w,
            r#"  <key id="{k}" for="node" attr.name="{k}" attr.type="{t}"/>"#
        )?;
    }
    for h in 0..24 {
        writeln!(
            w,
            r#"  <key id="h{h:02}" for="node" attr.name="share_hour_{h:02}_utc" attr.type="double"/>"#
        )?;
    }
    for (k, t) in [
        ("weight", "double"),
        ("coposts", "int"),
        ("clusters", "int"),
        ("median_gap_s", "double"),
    ] {
        writeln!(
            w,
            r#"  <key id="e_{k}" for="edge" attr.name="{k}" attr.type="{t}"/>"#
        )?;
    }
    writeln!(w, r#"  <graph id="coordination" edgedefault="undirected">"#)?;
    for (i, a) in c.accounts.iter().enumerate() {
        write!(
            w,
            r#"    <node id="a{i}"><data key="label">{}</data><data key="posts">{}</data><data key="clusters">{}</data><data key="platforms">{}</data>"#,
            xml_escape(&a.name),
            a.posts,
            a.clusters,
            xml_escape(&platforms_attr(a))
        )?;
        if let (Some(f), Some(l)) = (a.first_ts, a.last_ts) {
            write!(
                w,
                r#"<data key="first_post">{}</data><data key="last_post">{}</data>"#,
                format_ts(f),
                format_ts(l)
            )?;
        }
        write!(
            w,
            r#"<data key="group">{}</data><data key="active_hours_utc">{}</data>"#,
            a.group,
            active_hours_label(&a.hours)
        )?;
        let timed: u64 = a.hours.iter().map(|&h| h as u64).sum();
        for (h, &n) in a.hours.iter().enumerate() {
            let share = if timed == 0 {
                0.0
            } else {
                n as f64 / timed as f64
            };
            write!(w, r#"<data key="h{h:02}">{share:.4}</data>"#)?;
        }
        writeln!(w, "</node>")?;
    }
    for e in &c.edges {
        writeln!(
            w,
            r#"    <edge source="a{}" target="a{}"><data key="e_weight">{}</data><data key="e_coposts">{}</data><data key="e_clusters">{}</data><data key="e_median_gap_s">{}</data></edge>"#,
            e.a, e.b, e.coposts, e.coposts, e.clusters, e.median_gap_s
        )?;
    }
    writeln!(w, "  </graph>\n</graphml>")?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), 600);
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("45s").unwrap(), 45);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        for bad in ["0", "0s", "-5m", "-1", "", "m", "10x", "1.5h", "10m5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(format!("{:#}", parse_duration("-5m").unwrap_err()).contains("positive"));
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(0), "0s");
    }
}
