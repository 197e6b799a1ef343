//! `textreuse clusters`: campaign discovery over a whole index.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use textreuse::cluster::{Cluster, ClusterOptions};
use textreuse::Index;

use super::util::{format_ts, one_line, parse_time, progress_bar};

/// Arguments of `textreuse clusters`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Least similarity of a link between two texts.
    #[arg(long, default_value_t = 0.5)]
    min_similarity: f64,
    /// Chaining guard: least structural similarity of a link's two ends (shared neighbours;
    /// 0 = off). 0.7-0.8 splits clusters glued together by a few bridging posts.
    #[arg(long, default_value_t = 0.0)]
    min_edge_support: f64,
    /// A text with no link at --min-similarity joins the cluster of its most similar text
    /// when their similarity reaches this (a cut-down or padded copy; it never joins two
    /// clusters). Default: 0.6 x --min-similarity; 0 = off.
    #[arg(long, value_name = "S")]
    attach_similarity: Option<f64>,
    /// A text still alone after that joins the cluster of a text it overlaps by at least
    /// this share (0 < C <= 1) of the smaller shingle set: a snippet of a member, or a
    /// member padded with other sentences. Settled exactly from the stored texts (needed).
    #[arg(long, value_name = "C")]
    containment: Option<f64>,
    /// Leave out each cluster's core text (the passage most of its posts share; finding it
    /// aligns up to 16 texts per cluster).
    #[arg(long)]
    no_core_text: bool,
    /// Least posts in a reported cluster.
    #[arg(long, default_value_t = 2)]
    min_size: usize,
    /// Least distinct accounts in a reported cluster.
    #[arg(long, default_value_t = 1)]
    min_accounts: usize,
    /// Count only posts on this platform (repeatable).
    #[arg(long)]
    platform: Vec<String>,
    /// Count only posts at or after this time (unix seconds or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Count only posts at or before this time.
    #[arg(long)]
    until: Option<String>,
    /// One JSON object per cluster and line.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// One CSV row per post: cluster, id, account, platform, ts.
    #[arg(long)]
    csv: bool,
    /// Write the account coordination network (accounts as nodes, shared clusters as weighted
    /// edges) as GraphML to FILE.
    #[arg(long, value_name = "FILE")]
    graph: Option<PathBuf>,
    /// Save the cluster assignment into the index (lookups then report each hit's cluster).
    #[arg(long)]
    save: bool,
    /// Clusters shown in the readable report (0 = all).
    #[arg(long, default_value_t = 30)]
    top: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
}

/// Accounts per cluster above which the coordination graph skips the cluster's pairs.
const GRAPH_MAX_ACCOUNTS: usize = 1000;

pub fn run(args: Args) -> Result<i32> {
    super::init_threads(args.threads)?;
    let index = Index::open(&args.index)
        .with_context(|| format!("{}: failed to open index", args.index.display()))?;
    let opts = ClusterOptions {
        min_similarity: args.min_similarity,
        min_edge_support: args.min_edge_support,
        attach_similarity: args.attach_similarity,
        min_size: args.min_size,
        min_accounts: args.min_accounts,
        platforms: args.platform.clone(),
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
        containment: args.containment,
        core_texts: !args.no_core_text,
        ..ClusterOptions::default()
    };
    opts.validate()?;
    let pb = progress_bar(
        Some(index.manifest().params.lsh.bands as u64),
        "clustering {wide_bar} band {pos}/{len} ETA {eta}",
    );
    let t = std::time::Instant::now();
    let report = index
        .clusters_with_progress(&opts, &|done, _| pb.set_position(done as u64))
        .with_context(|| format!("{}: clustering failed", args.index.display()))?;
    pb.finish_and_clear();
    eprintln!(
        "textreuse: {} clusters from {} candidate pairs ({} links kept, {} lone texts attached, {} by containment) in {:.2} s",
        report.clusters.len(),
        report.candidate_pairs,
        report.edges,
        report.attached,
        report.contained,
        t.elapsed().as_secs_f64()
    );
    if args.save {
        let m = index
            .save_clusters(&report, &opts)
            .with_context(|| format!("{}: failed to save clusters", args.index.display()))?;
        eprintln!(
            "textreuse: saved {} clusters (generation {})",
            report.clusters.len(),
            m.generation
        );
    }
    if let Some(path) = &args.graph {
        write_graphml(&index, &report.clusters, path)
            .with_context(|| format!("{}: failed to write graph", path.display()))?;
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.json {
        for c in &report.clusters {
            serde_json::to_writer(&mut out, c)?;
            writeln!(out)?;
        }
    } else if args.csv {
        writeln!(out, "cluster,id,account,platform,ts")?;
        for c in &report.clusters {
            for &addr in &c.addrs {
                let p = index.post_at(addr)?;
                writeln!(
                    out,
                    "{},{},{},{},{}",
                    c.cluster,
                    csv_field(&p.id),
                    csv_field(&p.account),
                    csv_field(&p.platform),
                    p.ts.map(|t| t.to_string()).unwrap_or_default()
                )?;
            }
        }
    } else {
        let shown = if args.top == 0 {
            report.clusters.len()
        } else {
            args.top.min(report.clusters.len())
        };
        for c in &report.clusters[..shown] {
            print_cluster(c, &mut out)?;
        }
        if shown < report.clusters.len() {
            writeln!(
                out,
                "... and {} smaller clusters (--top 0 shows all, --json lists them)",
                report.clusters.len() - shown
            )?;
        }
    }
    out.flush()?;
    Ok(if report.clusters.is_empty() { 1 } else { 0 })
}

fn print_cluster(c: &Cluster, out: &mut impl Write) -> Result<()> {
    let platforms: Vec<String> = c
        .platforms
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    let span = match (c.first_ts, c.last_ts) {
        (Some(f), Some(l)) => format!(
            "{} .. {} ({:.1} days)",
            format_ts(f),
            format_ts(l),
            (l - f) as f64 / 86_400.0
        ),
        _ => "no times".into(),
    };
    writeln!(
        out,
        "#{:<4} {} posts, {} texts, {} accounts; {}; {}; weakest link {:.2}, {} links ({} attached); first post {}",
        c.cluster,
        c.size,
        c.texts,
        c.accounts,
        platforms.join(", "),
        span,
        c.weakest_link,
        c.edges,
        c.attached,
        c.earliest_post
    )?;
    writeln!(out, "      {}", one_line(&c.representative, 100))?;
    if let Some(core) = &c.core_text {
        writeln!(
            out,
            "      core ({} of {} posts sampled, chars {}..{}): {}",
            core.posts,
            core.sampled,
            core.start,
            core.end,
            one_line(&core.text, 80)
        )?;
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
    s.chars()
        .filter(|&c| c == '\t' || c == '\n' || c >= ' ')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Accounts as nodes (with their post and cluster counts), an edge between two accounts for
/// every cluster both posted in (weight = shared clusters).
fn write_graphml(index: &Index, clusters: &[Cluster], path: &std::path::Path) -> Result<()> {
    let mut nodes: HashMap<String, (usize, usize)> = HashMap::new();
    let mut edges: HashMap<(u32, u32), u32> = HashMap::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut skipped = 0;
    for c in clusters {
        let mut accs: Vec<u32> = Vec::new();
        for &addr in &c.addrs {
            let p = index.post_at(addr)?;
            let n = nodes.entry(p.account.clone()).or_insert((0, 0));
            n.0 += 1;
            let id = *ids.entry(p.account.clone()).or_insert_with(|| {
                names.push(p.account.clone());
                names.len() as u32 - 1
            });
            accs.push(id);
        }
        accs.sort_unstable();
        accs.dedup();
        for &a in &accs {
            if let Some(n) = nodes.get_mut(&names[a as usize]) {
                n.1 += 1;
            }
        }
        if accs.len() > GRAPH_MAX_ACCOUNTS {
            skipped += 1;
            continue;
        }
        for (i, &a) in accs.iter().enumerate() {
            for &b in &accs[i + 1..] {
                *edges.entry((a, b)).or_insert(0) += 1;
            }
        }
    }
    let mut w = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">"#
    )?;
    writeln!(
        w,
        r#"  <key id="label" for="node" attr.name="label" attr.type="string"/>"#
    )?;
    writeln!(
        w,
        r#"  <key id="posts" for="node" attr.name="posts" attr.type="int"/>"#
    )?;
    writeln!(
        w,
        r#"  <key id="clusters" for="node" attr.name="clusters" attr.type="int"/>"#
    )?;
    writeln!(
        w,
        r#"  <key id="weight" for="edge" attr.name="weight" attr.type="double"/>"#
    )?;
    writeln!(w, r#"  <graph id="coordination" edgedefault="undirected">"#)?;
    for (i, name) in names.iter().enumerate() {
        let (posts, clusters) = nodes.get(name).copied().unwrap_or((0, 0));
        writeln!(
            w,
            r#"    <node id="a{i}"><data key="posts">{posts}</data><data key="clusters">{clusters}</data><data key="label">{}</data></node>"#,
            xml_escape(name)
        )?;
    }
    let mut sorted: Vec<_> = edges.into_iter().collect();
    sorted.sort_unstable();
    for ((a, b), n) in sorted {
        writeln!(
            w,
            r#"    <edge source="a{a}" target="a{b}"><data key="weight">{n}</data></edge>"#
        )?;
    }
    writeln!(w, "  </graph>\n</graphml>")?;
    w.flush()?;
    if skipped > 0 {
        eprintln!("textreuse: graph: {skipped} clusters with more than {GRAPH_MAX_ACCOUNTS} accounts add nodes but no edges");
    }
    Ok(())
}
