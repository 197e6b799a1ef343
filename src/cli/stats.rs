//! `textreuse stats` and `textreuse verify`.

use std::path::PathBuf;

use std::fmt::Write as _;

use anyhow::{Context, Result};
use textreuse::text::Hashtags;
use textreuse::Index;

use super::util::print_out;

/// Arguments of `textreuse stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `textreuse verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
}

pub fn stats(args: StatsArgs) -> Result<i32> {
    let index = Index::open(&args.index)
        .with_context(|| format!("{}: failed to open index", args.index.display()))?;
    let s = index.stats();
    if args.json {
        print_out(&(serde_json::to_string_pretty(&s)? + "\n"))?;
        return Ok(0);
    }
    let p = &s.params;
    let mut o = String::new();
    let hashtags = match p.normalizer.hashtags {
        Hashtags::Remove => "removed",
        Hashtags::KeepWords => "kept as words",
    };
    writeln!(o, "index         {}", args.index.display())?;
    writeln!(o, "posts         {}", s.posts)?;
    if s.deleted > 0 {
        writeln!(o, "deleted       {} (dropped by the next merge)", s.deleted)?;
    }
    writeln!(o, "unique texts  {}", s.unique_texts)?;
    writeln!(
        o,
        "segments      {} (generation {})",
        s.segments, s.generation
    )?;
    writeln!(
        o,
        "parameters    normalizer v{}, hashtags {}, shingle {}, {} permutations, {} bands x {} rows, seed {:#x}",
        p.normalizer_version, hashtags, p.shingle, p.num_perm, p.lsh.bands, p.lsh.rows, p.seed
    )?;
    writeln!(
        o,
        "bytes         {} ({:.1} per post, {:.1} per unique text without stored text)",
        s.bytes, s.bytes_per_post, s.bytes_per_unique_text_without_text
    )?;
    for (name, b) in &s.bytes_by_file {
        writeln!(
            o,
            "  {name:<10}  {b:>14}  {:>8.1} B/post",
            *b as f64 / s.posts.max(1) as f64
        )?;
    }
    print_out(&o)?;
    Ok(0)
}

pub fn verify(args: VerifyArgs) -> Result<i32> {
    let index = Index::open(&args.index)
        .with_context(|| format!("{}: failed to open index", args.index.display()))?;
    index
        .verify()
        .with_context(|| format!("{}: verification failed", args.index.display()))?;
    let s = index.stats();
    print_out(&format!(
        "{}: ok ({} posts, {} {}, {} bytes checked)\n",
        args.index.display(),
        s.posts,
        s.segments,
        if s.segments == 1 {
            "segment"
        } else {
            "segments"
        },
        s.bytes
    ))?;
    Ok(0)
}
