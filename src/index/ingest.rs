//! The bulk job: read post dumps, report bad records, build an index.
//!
//! Records are read sequentially in batches, parsed and fingerprinted in parallel, and
//! inserted in input order. A bad record (malformed, missing text, invalid UTF-8, duplicate
//! id) is reported to the [`BuildObserver`] with its file, line and reason, counted and
//! skipped — or, with `strict`, ends the build with that error before anything is published.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::build::{BuildOptions, BuildStats, IndexBuilder, PostOutcome};
use crate::error::{Error, Result};
use crate::input::{InputOptions, PostReader, RawPost, RawRecord};

/// Receives what happens during a build. Every method has a do-nothing default.
pub trait BuildObserver {
    /// An input file is about to be read; `size` is its length in bytes when known.
    fn file_started(&mut self, _name: &str, _size: Option<u64>) {}
    /// A record was rejected (an [`Error::InvalidInput`] naming file, line and reason).
    fn bad_record(&mut self, _err: &Error) {}
    /// A post was not indexed because no token was left after normalization.
    fn empty_post(&mut self, _file: &str, _line: u64) {}
    /// Progress: posts read so far and bytes of the current file consumed.
    fn progress(&mut self, _posts: u64, _file_bytes: u64) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;
impl BuildObserver for Quiet {}

/// Options of the bulk job.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// How to read inputs.
    pub input: InputOptions,
    /// Stop at the first bad record.
    pub strict: bool,
    /// Records per batch.
    pub batch: usize,
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions {
            input: InputOptions::default(),
            strict: false,
            batch: 32_768,
        }
    }
}

/// The outcome of a bulk build.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    /// Builder counts.
    #[serde(flatten)]
    pub stats: BuildStats,
    /// Records rejected as invalid (malformed, missing or mistyped fields, invalid UTF-8),
    /// not counting duplicate ids.
    pub invalid: u64,
    /// Input files read.
    pub files: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Builds an index in `dir` from `inputs` (`-` is standard input).
pub fn build_index(
    dir: &Path,
    inputs: &[PathBuf],
    ingest: &IngestOptions,
    build: BuildOptions,
    obs: &mut dyn BuildObserver,
) -> Result<IngestSummary> {
    let t0 = Instant::now();
    // A batch in flight (raw records, parsed posts, fingerprints) costs about 1.5 KB a post:
    // size batches to a small share of the budget and give the builder the rest.
    let batch = ingest
        .batch
        .clamp(1, (build.memory_budget / (48 << 10)).max(1024));
    let mut build = build;
    // A fifth of the rest is left to the allocator (fragmentation, per-thread arenas) and the
    // memory maps of segments already written.
    build.memory_budget = (build.memory_budget.saturating_sub(batch * 1536) / 5 * 4).max(16 << 20);
    let mut builder = IndexBuilder::create(dir, build)?;
    let mut summary = IngestSummary::default();
    let mut records: Vec<RawRecord> = Vec::with_capacity(batch);
    for path in inputs {
        let mut reader = if path.as_os_str() == "-" {
            PostReader::from_reader("-", Box::new(std::io::stdin()), &ingest.input)?
        } else {
            PostReader::open(path, &ingest.input)?
        };
        let size = if path.as_os_str() == "-" {
            None
        } else {
            std::fs::metadata(path).ok().map(|m| m.len())
        };
        obs.file_started(reader.name(), size);
        summary.files += 1;
        let parser = reader.parser();
        loop {
            records.clear();
            let more = reader.read_batch(batch, &mut records)?;
            if records.is_empty() && !more {
                break;
            }
            let parsed: Vec<Result<Option<RawPost>>> =
                records.par_iter().map(|r| parser.parse(r)).collect();
            let mut posts = Vec::with_capacity(parsed.len());
            for r in parsed {
                match r {
                    Ok(Some(p)) => posts.push(p),
                    Ok(None) => {}
                    Err(e) => {
                        if ingest.strict {
                            return Err(e);
                        }
                        summary.invalid += 1;
                        obs.bad_record(&e);
                    }
                }
            }
            let outcomes = builder.add(&posts)?;
            for (post, outcome) in posts.iter().zip(outcomes) {
                match outcome {
                    PostOutcome::Indexed | PostOutcome::Replaced => {}
                    PostOutcome::Empty => obs.empty_post(reader.name(), post.line),
                    PostOutcome::DuplicateId => {
                        let e = Error::InvalidInput {
                            file: reader.name().to_string(),
                            line: post.line,
                            reason: format!(
                                "duplicate id {:?}: an earlier post has it; skipped",
                                post.id
                            ),
                        };
                        if ingest.strict {
                            return Err(e);
                        }
                        obs.bad_record(&e);
                    }
                }
            }
            obs.progress(builder.stats().posts + summary.invalid, reader.bytes_read());
            if !more {
                break;
            }
        }
    }
    summary.stats = builder.finish()?;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}
