//! `textreuse stats` and `textreuse verify`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use textreuse::Index;

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
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    let p = &s.params;
    println!("index         {}", args.index.display());
    println!("posts         {}", s.posts);
    if s.deleted > 0 {
        println!("deleted       {} (dropped by the next merge)", s.deleted);
    }
    println!("unique texts  {}", s.unique_texts);
    println!("segments      {} (generation {})", s.segments, s.generation);
    println!(
        "parameters    normalizer v{}, hashtags {:?}, shingle {}, {} permutations, {} bands x {} rows, seed {:#x}",
        p.normalizer_version, p.normalizer.hashtags, p.shingle, p.num_perm, p.lsh.bands, p.lsh.rows, p.seed
    );
    println!(
        "bytes         {} ({:.1} per post, {:.1} per unique text without stored text)",
        s.bytes, s.bytes_per_post, s.bytes_per_unique_text_without_text
    );
    for (name, b) in &s.bytes_by_file {
        println!(
            "  {name:<10}  {b:>14}  {:>8.1} B/post",
            *b as f64 / s.posts.max(1) as f64
        );
    }
    Ok(0)
}

pub fn verify(args: VerifyArgs) -> Result<i32> {
    let index = Index::open(&args.index)
        .with_context(|| format!("{}: failed to open index", args.index.display()))?;
    index
        .verify()
        .with_context(|| format!("{}: verification failed", args.index.display()))?;
    let s = index.stats();
    println!(
        "{}: ok ({} posts, {} segments, {} bytes checked)",
        args.index.display(),
        s.posts,
        s.segments,
        s.bytes
    );
    Ok(0)
}
