//! `textreuse build`: the bulk job.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use textreuse::index::ingest::{build_index, BuildObserver, IngestOptions};
use textreuse::index::OnExistingId;
use textreuse::index::{merge, merge_memory_need, merge_within_budget, Manifest, MergeOptions};
use textreuse::index::{BuildOptions, Existing};
use textreuse::input::InputTally;
use textreuse::text::Hashtags;
use textreuse::{Error, FingerprintParams, LshParams};

use super::inputs::{self, InputArgs};
use super::util::{parse_size, progress_bar, ErrorDigest};

/// Arguments of `textreuse build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input files: JSONL, CSV (with a header row) or plain text, optionally .gz or .zst;
    /// `-` reads standard input.
    #[arg(long, short, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// The index directory to create.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    fields: InputArgs,
    /// Stop at the first bad record (exit code 2) instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Memory budget for buffering and sorting (e.g. 512M, 2G).
    #[arg(long, default_value = "2G")]
    memory: String,
    /// Worker threads (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
    /// Store post texts (zstd) so hits and reports show them (the default).
    #[arg(long, overrides_with = "no_store_text")]
    store_text: bool,
    /// Do not store post texts (smaller index, for billion-post builds).
    #[arg(long)]
    no_store_text: bool,
    /// Replace an index that already exists in the directory (atomically, when done).
    #[arg(long, conflicts_with = "append")]
    force: bool,
    /// Add the posts to the index in the directory as a new segment (created if missing).
    /// The index's own fingerprint parameters are used; ids it already holds are reported
    /// as duplicates and skipped (see --replace).
    #[arg(long)]
    append: bool,
    /// With --append: a post whose id the index already holds supersedes the old post
    /// (which is marked deleted) instead of being skipped.
    #[arg(long, requires = "append")]
    replace: bool,
    /// With --append: afterwards, merge segments until at most this many remain (see
    /// `textreuse merge`).
    #[arg(long, requires = "append")]
    max_segments: Option<usize>,
    /// Keep the segments a build larger than --memory writes (by default they are merged
    /// into one when the build ends: lookups in one segment cost about half as much as in
    /// five; see ARCHITECTURE.md).
    #[arg(long, conflicts_with_all = ["append", "segment_only"])]
    keep_segments: bool,
    /// Also print where the time went, stage by stage (read, parse, fingerprint, insert,
    /// segment writing by file, publish).
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Write a staged build into a new directory, to be published into an index with
    /// others (`textreuse publish --index DIR STAGED...`).
    #[arg(long, conflicts_with_all = ["append", "force"])]
    segment_only: bool,
    /// Keep hashtag words (`#Taiwan` -> `taiwan`) instead of removing hashtags.
    #[arg(long)]
    keep_hashtags: bool,
    /// Do not fold Traditional Chinese to Simplified (only for comparing with a reference
    /// that keeps the scripts apart).
    #[arg(long)]
    no_t2s: bool,
    /// Tokens per shingle.
    #[arg(long, default_value_t = 3)]
    shingle: u32,
    /// MinHash permutations.
    #[arg(long, default_value_t = 128)]
    num_perm: u32,
    /// LSH bands (with --rows); default 32 x 4.
    #[arg(long, requires = "rows")]
    bands: Option<u32>,
    /// LSH rows per band.
    #[arg(long, requires = "bands")]
    rows: Option<u32>,
    /// Choose bands and rows for this similarity threshold instead (S-curve error minimum).
    #[arg(long, conflicts_with = "bands")]
    threshold: Option<f64>,
    /// Print the summary as JSON on stdout: the builder's counts (`segments` is those it
    /// wrote), `invalid`, `files`, `seconds`, `published`, `stages`, and `index_segments`,
    /// the index's segments after the closing merge (null for --segment-only or when
    /// nothing was published; before an --append's --max-segments merge).
    #[arg(long)]
    json: bool,
    /// Do not report each bad record on stderr (the summary still counts them).
    #[arg(long, short)]
    quiet: bool,
}

struct Observer {
    pb: indicatif::ProgressBar,
    quiet: bool,
    empty_shown: u64,
    files: usize,
    digest: ErrorDigest,
}

impl BuildObserver for Observer {
    fn file_started(&mut self, name: &str, size: Option<u64>) {
        self.files += 1;
        self.pb.set_position(0);
        if let Some(n) = size {
            self.pb.set_length(n);
        }
        self.pb.set_message(name.to_string());
    }

    fn bad_record(&mut self, err: &Error) {
        if !self.quiet {
            self.pb.suspend(|| self.digest.report(err));
        }
    }

    fn empty_post(&mut self, file: &str, line: u64) {
        self.empty_shown += 1;
        if !self.quiet && self.empty_shown <= 10 {
            self.pb.suspend(|| {
                eprintln!("textreuse: {file}:{line}: no text left after normalization; not indexed")
            });
        }
    }

    fn progress(&mut self, posts: u64, file_bytes: u64) {
        self.pb.set_position(file_bytes);
        let secs = self.pb.elapsed().as_secs_f64().max(1e-3);
        self.pb
            .set_prefix(format!("{posts} posts, {:.0}/s", posts as f64 / secs));
    }
}

pub fn run(args: Args) -> Result<i32> {
    super::init_threads(args.threads)?;
    let mut params = FingerprintParams {
        shingle: args.shingle,
        num_perm: args.num_perm,
        ..FingerprintParams::default()
    };
    if args.keep_hashtags {
        params.normalizer.hashtags = Hashtags::KeepWords;
    }
    params.normalizer.t2s = !args.no_t2s;
    if let (Some(bands), Some(rows)) = (args.bands, args.rows) {
        params.lsh = LshParams { bands, rows };
    }
    if let Some(t) = args.threshold {
        params.lsh = LshParams::optimal(t, args.num_perm as usize, 0.5, 0.5)?;
    }
    let build = BuildOptions {
        params,
        memory_budget: parse_size(&args.memory)?,
        store_text: !args.no_store_text,
        existing: if args.force {
            Existing::Replace
        } else if args.append {
            Existing::Append
        } else {
            Existing::Refuse
        },
        on_existing_id: if args.replace {
            OnExistingId::Replace
        } else {
            OnExistingId::Skip
        },
    };
    let memory_budget = build.memory_budget;
    if args.append {
        // Appended posts are fingerprinted with the index's own parameters; refuse flags
        // that ask for others rather than ignore them.
        let asked = args.keep_hashtags
            || args.no_t2s
            || args.shingle != 3
            || args.num_perm != 128
            || args.bands.is_some()
            || args.threshold.is_some();
        if let Some((m, _)) = textreuse::index::Manifest::load_current(&args.index)? {
            if asked && m.params != build.params {
                anyhow::bail!(
                    "{}: the index was built with other fingerprint parameters ({:?}); --append uses the index's own, so leave out --keep-hashtags, --no-t2s, --shingle, --num-perm, --bands/--rows and --threshold",
                    args.index.display(),
                    m.params
                );
            }
        }
    }
    let tally = InputTally::new();
    let Some(input) = inputs::resolve(&args.fields, &args.input, &tally)? else {
        return Ok(0); // --preset list
    };
    // A build that indexes nothing leaves no index behind in a directory it created.
    let created = !args.index.exists();
    let ingest = IngestOptions {
        input,
        strict: args.strict,
        ..IngestOptions::default()
    };
    let pb = progress_bar(
        Some(0),
        "{prefix} {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
    );
    let mut obs = Observer {
        pb,
        quiet: args.quiet,
        empty_shown: 0,
        files: 0,
        digest: ErrorDigest::default(),
    };
    let summary = build_index(&args.index, &args.input, &ingest, build, &mut obs);
    obs.pb.finish_and_clear();
    obs.digest.finish();
    if summary.is_err() && created {
        let _ = std::fs::remove_dir_all(&args.index);
    }
    let summary = summary.with_context(|| format!("{}: build failed", args.index.display()))?;
    if args.segment_only {
        textreuse::index::staged::mark_staged(&args.index)
            .with_context(|| format!("{}: failed to mark as staged", args.index.display()))?;
    }
    let s = &summary.stats;
    eprintln!(
        "textreuse: indexed {} of {} posts ({} unique texts) from {} file(s) in {:.2} s ({:.0} posts/s); \
         skipped {} invalid, {} duplicate ids, {} empty; {} segment(s), {} bytes",
        s.indexed,
        s.posts + summary.invalid,
        s.unique_texts,
        summary.files,
        summary.seconds,
        (s.posts + summary.invalid) as f64 / summary.seconds.max(1e-9),
        summary.invalid,
        s.duplicate_ids,
        s.empty,
        s.segments,
        s.bytes
    );
    if args.verbose {
        let t = &summary.stages;
        eprintln!(
            "textreuse: stages in seconds (read, parse and fingerprint overlap insert): \
             read {:.2}, parse {:.2}, fingerprint {:.2}, insert {:.2}, segment writing {:.2} \
             (bands {:.2}, files {:.2}: band entries {:.2}, signatures {:.2}, posts {:.2}, \
             ids {:.2} beside texts {:.2}), publish {:.2}",
            t.read,
            t.parse,
            t.fingerprint,
            t.insert,
            t.segment_writing(),
            t.bands,
            t.files,
            t.band_entries,
            t.sigs,
            t.posts,
            t.ids,
            t.texts,
            t.publish
        );
    }
    inputs::report_times(&tally);
    if s.indexed == 0 && !args.append {
        if created {
            let _ = std::fs::remove_dir_all(&args.index);
        }
        anyhow::bail!(
            "nothing was indexed (see the messages above){}",
            if created {
                format!("; {} was not created", args.index.display())
            } else if !summary.published {
                format!("; {} was left as it was", args.index.display())
            } else {
                String::new()
            }
        );
    }
    if s.replaced > 0 {
        eprintln!(
            "textreuse: {} post(s) superseded an indexed post with the same id",
            s.replaced
        );
    }
    if !args.append && !args.segment_only && !args.keep_segments && s.segments > 1 {
        // A bulk build ends with one segment: the runs written when the budget filled are
        // merged (the index stays valid, and published, if the merge cannot be done).
        // Each merge must fit the budget: when all of them at once do not, the merges that
        // fit leave as few segments as they can.
        let merged = merge_within_budget(
            &args.index,
            &MergeOptions {
                max_segments: 1,
                memory_budget,
            },
            &mut |_, _| {},
        );
        match merged {
            Ok(m) => {
                if !m.merged.is_empty() {
                    super::merge::report(&m);
                    if args.verbose {
                        super::merge::report_steps(&m);
                    }
                }
                if m.segments_after > 1 {
                    // The index is published: a manifest that cannot be read again here
                    // only leaves the figures out of the warning.
                    let counts =
                        Manifest::load_current(&args.index)
                            .ok()
                            .flatten()
                            .map(|(m, _)| {
                                m.segments
                                    .iter()
                                    .fold((0, 0), |(p, c), s| (p + s.posts, c + s.contents))
                            });
                    let left = if m.merged.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; merges that fit it left {} of them as {}",
                            m.segments_before, m.segments_after
                        )
                    };
                    let (why, memory) = match counts {
                        Some((posts, contents)) => {
                            let need = merge_memory_need(posts, contents) >> 20;
                            (
                                format!("merging {posts} posts needs about {need} MiB, more than"),
                                format!(" --memory {}M", need + 1),
                            )
                        }
                        None => ("merging them needs more than".to_string(), String::new()),
                    };
                    eprintln!(
                        "textreuse: warning: {}: the {} segments were not merged into one \
                         ({why} the memory budget ({} MiB){left}); lookups are slower until \
                         `textreuse merge --index {}{memory}` succeeds",
                        args.index.display(),
                        s.segments,
                        memory_budget >> 20,
                        args.index.display(),
                    );
                }
            }
            Err(e) => eprintln!(
                "textreuse: warning: {}: the {} segments were not merged into one ({e}); \
                 lookups are slower until `textreuse merge --index {}` succeeds",
                args.index.display(),
                s.segments,
                args.index.display()
            ),
        }
    }
    if args.json {
        // `segments` counts the segments this build wrote; `index_segments` the index's own
        // after the closing merge (a published generation only: null when none is).
        let mut v = serde_json::to_value(&summary)?;
        let index_segments = Manifest::load_current(&args.index)
            .ok()
            .flatten()
            .filter(|_| summary.published && !args.segment_only)
            .map(|(m, _)| m.segments.len());
        if let Some(o) = v.as_object_mut() {
            o.insert("index_segments".into(), serde_json::json!(index_segments));
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        out.flush()?;
    }
    if let Some(max_segments) = args.max_segments {
        let m = merge(
            &args.index,
            &MergeOptions {
                max_segments,
                memory_budget,
            },
        )
        .with_context(|| format!("{}: merge failed", args.index.display()))?;
        super::merge::report(&m);
    }
    if args.verbose {
        super::util::report_peak_memory(memory_budget);
    }
    Ok(0)
}
