//! `textreuse merge`: fewer segments, deleted posts dropped.

use std::path::PathBuf;

use anyhow::{Context, Result};
use textreuse::index::{
    merge_with_progress, merge_within_budget, plan, Manifest, MergeOptions, MergeStats,
};

use super::util::{parse_size, progress_bar};

/// Arguments of `textreuse merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Merge adjacent segments (the smallest run first) until at most this many remain.
    /// When there are already no more, segments holding deleted posts are rewritten
    /// without them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    max_segments: u64,
    /// Memory budget (e.g. 512M, 2G); the merge refuses to start if its tables need more
    /// (see --within-budget).
    #[arg(long, default_value = "2G")]
    memory: String,
    /// When merging down to --max-segments needs more than --memory, merge what it allows
    /// instead of refusing: adjacent segments in groups whose merges each fit (the fewest
    /// segments such merges leave), with a warning; an error when no two adjacent segments
    /// fit together.
    #[arg(long)]
    within_budget: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Also print where the time went, step by step.
    #[arg(long, short = 'v')]
    verbose: bool,
}

pub fn run(args: Args) -> Result<i32> {
    super::init_threads(args.threads)?;
    let opts = MergeOptions {
        max_segments: args.max_segments as usize,
        memory_budget: parse_size(&args.memory)?,
    };
    // The message `query` gives, rather than the lock file's.
    if !args.index.join("CURRENT").is_file() && !args.index.join("LOCK").exists() {
        anyhow::bail!("{}: holds no index (--index)", args.index.display());
    }
    let pb = progress_bar(Some(0), "merging {wide_bar} band {pos}/{len} ETA {eta}");
    let mut progress = |done: usize, total: usize| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    };
    let stats = if args.within_budget {
        merge_within_budget(&args.index, &opts, &mut progress)
    } else {
        merge_with_progress(&args.index, &opts, &mut progress)
    }
    .with_context(|| format!("{}: merge failed", args.index.display()))?;
    pb.finish_and_clear();
    if args.within_budget && stats.merged.is_empty() {
        // Nothing fitted: an error when the plain merge had something to do.
        let why = if stats.segments_after > opts.max_segments {
            Some(format!(
                "merging any two adjacent segments of its {}",
                stats.segments_after
            ))
        } else {
            Manifest::load_current(&args.index)
                .ok()
                .flatten()
                .filter(|(m, _)| !plan(&m.segments, opts.max_segments).is_empty())
                .map(|_| "rewriting its segments that hold deleted posts".to_string())
        };
        if let Some(why) = why {
            anyhow::bail!(
                "{}: merge failed: {why} needs more than the memory budget ({} MiB); nothing \
                 was merged",
                args.index.display(),
                opts.memory_budget >> 20
            );
        }
    }
    report(&stats);
    if args.within_budget && stats.segments_after > opts.max_segments {
        eprintln!(
            "textreuse: warning: {}: {} segment(s) remain, more than --max-segments {}: \
             merging more of them at once needs more than --memory ({} MiB)",
            args.index.display(),
            stats.segments_after,
            opts.max_segments,
            opts.memory_budget >> 20
        );
    }
    if args.verbose {
        report_steps(&stats);
        super::util::report_peak_memory(opts.memory_budget);
    }
    if args.json {
        super::util::print_out(&(serde_json::to_string(&stats)? + "\n"))?;
    }
    Ok(0)
}

/// Prints where a merge's time went on stderr.
pub fn report_steps(s: &MergeStats) {
    let t = &s.steps;
    eprintln!(
        "textreuse: merge steps in seconds: verify {:.2}, renumber {:.2}, bands {:.2}, \
         signatures {:.2} (signatures {:.2} beside band entries {:.2}), files {:.2} \
         (posts {:.2}, ids {:.2} beside texts {:.2}, their sources' pages released {} \
         time(s))",
        t.verify,
        t.renumber,
        t.bands,
        t.sigs_wall,
        t.sigs,
        t.band_entries,
        t.files,
        t.posts,
        t.ids,
        t.texts,
        s.text_page_releases
    );
}

/// Prints a merge's one-line summary on stderr.
pub fn report(s: &MergeStats) {
    if s.merged.is_empty() {
        eprintln!(
            "textreuse: nothing to merge ({} segment(s), none holding deleted posts)",
            s.segments_before
        );
        return;
    }
    eprintln!(
        "textreuse: merged {} segment(s) into {} in {:.2} s ({:.0} posts/s): {} posts kept, {} deleted dropped, \
         {} unique texts; {} -> {} bytes; {} segment(s) now",
        s.merged.len(),
        s.written.len(),
        s.seconds,
        s.posts_in as f64 / s.seconds.max(1e-9),
        s.posts_out,
        s.posts_in - s.posts_out,
        s.unique_texts_out,
        s.bytes_in,
        s.bytes_out,
        s.segments_after
    );
    if s.clusters_dropped {
        eprintln!("textreuse: the saved clusters covered merged segments and were dropped; run `textreuse clusters --save` again");
    }
    if s.texts_dropped {
        eprintln!(
            "textreuse: some merged segments had no stored texts, so the merged segment has none"
        );
    }
}
