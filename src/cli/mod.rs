//! Command-line parsing (clap derive) and dispatch to one module per subcommand.

mod accounts;
mod build;
mod clusters;
mod delete;
mod demo;
mod fingerprint;
mod inputs;
mod merge;
mod publish;
mod query;
mod report;
mod stats;
pub(crate) mod util;

use clap::{Parser, Subcommand};

/// Find reused text (copy-paste campaigns) in multilingual post dumps.
#[derive(Debug, Parser)]
#[command(name = "textreuse", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline on the bundled sample: build an index, look up a Chinese post,
    /// its Traditional-script copy and an English post.
    Demo(demo::Args),
    /// Show what the engine sees of a text: normalized text, tokens, shingles, content hash.
    Fingerprint(fingerprint::Args),
    /// Build an index from post dumps (JSONL, CSV, plain text; .gz/.zst), or add them to
    /// one (--append).
    Build(build::Args),
    /// Mark posts deleted by id: they never appear in hits or clusters again.
    Delete(delete::Args),
    /// Merge segments (fewer segments, faster lookups) and drop deleted posts for good.
    Merge(merge::Args),
    /// Publish staged segments (`build --segment-only`, Spark tasks) as one generation.
    Publish(publish::Args),
    /// Look texts (or indexed posts by id) up in an index.
    Query(query::Args),
    /// Find campaigns: clusters of posts that reuse a text, with who, where and when.
    Clusters(clusters::Args),
    /// Find accounts that post the same campaign text within a time window of each other,
    /// and their coordinated groups.
    Accounts(accounts::Args),
    /// Write a self-contained HTML report of the campaigns: texts and variants, timelines,
    /// hours, accounts, coordinated groups.
    Report(report::Args),
    /// Show an index's counts, parameters and sizes.
    Stats(stats::StatsArgs),
    /// Check every checksum of an index.
    Verify(stats::VerifyArgs),
}

/// Parses the command line and runs it; returns the exit code.
pub fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Fingerprint(args) => fingerprint::run(args),
        Command::Build(args) => build::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Query(args) => query::run(args),
        Command::Clusters(args) => clusters::run(args),
        Command::Accounts(args) => accounts::run(args),
        Command::Report(args) => report::run(args),
        Command::Stats(args) => stats::stats(args),
        Command::Verify(args) => stats::verify(args),
    }
}

/// The most worker threads `-j` accepts.
const MAX_THREADS: usize = 512;

/// Configures the global rayon pool (0 = one thread per core).
pub(crate) fn init_threads(threads: usize) -> anyhow::Result<()> {
    if threads > MAX_THREADS {
        anyhow::bail!("-j {threads}: at most {MAX_THREADS} threads (0 = one per core)");
    }
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| anyhow::anyhow!("failed to start {threads} threads: {e}"))?;
    }
    Ok(())
}
