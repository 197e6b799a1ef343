//! `textreuse publish`: staged segments (written apart, e.g. by Spark tasks or by
//! `build --segment-only`) become one generation of an index.

use std::path::PathBuf;

use anyhow::{Context, Result};
use textreuse::index::staged::{publish, PublishOptions};
use textreuse::index::Existing;

/// Arguments of `textreuse publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory to publish into.
    #[arg(long)]
    index: PathBuf,
    /// Staged directories (`build --segment-only`), in order: where two posts share an id,
    /// the one in the earlier directory is kept.
    #[arg(required = true, num_args = 1..)]
    staged: Vec<PathBuf>,
    /// Add the staged segments to the index in the directory (its live posts come first).
    #[arg(long, conflicts_with = "force")]
    append: bool,
    /// Replace an index that already exists in the directory (atomically).
    #[arg(long)]
    force: bool,
    /// Keep the staged directories after publishing (they are deleted by default).
    #[arg(long)]
    keep_staged: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Do not report each duplicate id on stderr (the summary still counts them).
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<i32> {
    let opts = PublishOptions {
        existing: if args.append {
            Existing::Append
        } else if args.force {
            Existing::Replace
        } else {
            Existing::Refuse
        },
        remove_staged: !args.keep_staged,
    };
    let report = publish(&args.index, &args.staged, &opts)
        .with_context(|| format!("{}: publish failed", args.index.display()))?;
    if !args.quiet {
        for d in &report.duplicate_ids {
            eprintln!("textreuse: skipped {d}");
        }
    }
    eprintln!(
        "textreuse: published {} segment(s) from {} staged director{} as generation {}: {} posts, {} duplicate ids skipped, {} live posts in the index",
        report.segments,
        report.staged,
        if report.staged == 1 { "y" } else { "ies" },
        report.generation,
        report.posts,
        report.duplicate_ids.len(),
        report.live_posts
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(0)
}
