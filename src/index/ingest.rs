//! The bulk job: read post dumps, report bad records, build an index.
//!
//! Records are read sequentially in batches, parsed and fingerprinted in parallel, and
//! inserted in input order; a batch is inserted while the next one is parsed and
//! fingerprinted and the one after it is read. A bad record (malformed, missing text, invalid UTF-8, duplicate id) is
//! reported to the [`BuildObserver`] with its file, line and reason, in input order,
//! counted and skipped — or, with `strict`, the first one ends the build with that error
//! before anything is published.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::buffer::{prepare, PreparedBatch};
use super::build::IndexBuilder;
use super::options::{BuildOptions, BuildStats, Existing, NewPost, PostOutcome, StageTimes};
#[cfg(doc)]
use super::IndexWriter;
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
    /// Whether a generation was published. A build that is not an append and indexed no
    /// post publishes nothing: a new index is not created and an index it would have
    /// replaced (`Existing::Replace`) is left as it was.
    pub published: bool,
    /// Where the time went, stage by stage (reading, parsing and fingerprinting overlap
    /// insertion; see [`StageTimes`]).
    pub stages: StageTimes,
}

/// Builds an index in `dir` from `inputs` (`-` is standard input).
///
/// Two batches are in flight: while one is inserted (in input order, on a helper thread),
/// the next is parsed and fingerprinted (and the raw records of the one after it are read,
/// on another helper thread), so the serial insertion overlaps the parallel
/// work. Results are reported in input order, and the index does not depend on the overlap.
/// If no helper thread can be started, batches are inserted on the calling thread.
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
        .clamp(1, (build.memory_budget / (96 << 10)).max(1024));
    let existing = build.existing;
    let mut build = build;
    // Two batches are in flight, and the process needs about 24 MiB whatever the budget
    // (the dictionary's training, compression contexts, threads). A fifth of the rest is
    // left to the allocator (fragmentation, per-thread arenas), the memory maps of segments
    // already written and what a flush holds beside the buffer.
    build.memory_budget = (build
        .memory_budget
        .saturating_sub(2 * batch * 1536 + PROCESS_BYTES)
        / 5
        * 4)
    .max(16 << 20);
    let mut builder = IndexBuilder::create(dir, build)?;
    let fp = builder.fingerprinter().clone();
    let mut summary = IngestSummary::default();
    let mut stages = StageTimes::default();
    std::thread::scope(|scope| {
        let mut inserter = Inserter::start(scope, &mut builder);
        for path in inputs {
            let mut reader = if path.as_os_str() == "-" {
                PostReader::from_reader("-", Box::new(std::io::stdin()), &ingest.input)?
            } else {
                PostReader::open(path, &ingest.input)?
            };
            let size = if path.as_os_str() == "-" {
                None
            } else {
                // A named pipe or device has no size to show progress against.
                std::fs::metadata(path)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
            };
            // The previous file's last batch is reported before this file starts.
            if let Some(done) = inserter.finished()? {
                report(done, ingest.strict, &mut summary, obs)?;
            }
            obs.file_started(reader.name(), size);
            summary.files += 1;
            let name: Arc<str> = reader.name().into();
            let parser = reader.parser();
            // The next batch, read on a helper thread while this one is parsed and
            // fingerprinted (its read error, if any, surfaces when it is its turn).
            let mut ahead: Option<ReadAhead> = None;
            loop {
                let (records, more, bytes_read) = match ahead.take() {
                    Some(r) => {
                        stages.read += r.seconds;
                        (r.records, r.more?, r.bytes_read)
                    }
                    None => {
                        let t = Instant::now();
                        let mut records = Vec::with_capacity(batch);
                        let more = reader.read_batch(batch, &mut records)?;
                        stages.read += t.elapsed().as_secs_f64();
                        (records, more, reader.bytes_read())
                    }
                };
                if records.is_empty() && !more {
                    break;
                }
                std::thread::scope(|s| -> Result<()> {
                    let reading = if more {
                        let reader = &mut reader;
                        std::thread::Builder::new()
                            .name("textreuse-read".into())
                            .spawn_scoped(s, move || {
                                let t = Instant::now();
                                let mut records = Vec::with_capacity(batch);
                                let more = reader.read_batch(batch, &mut records);
                                ReadAhead {
                                    records,
                                    more,
                                    seconds: t.elapsed().as_secs_f64(),
                                    bytes_read: reader.bytes_read(),
                                }
                            })
                            // Without a thread, the next batch is read when its turn comes.
                            .ok()
                    } else {
                        None
                    };
                    let t = Instant::now();
                    let parsed: Vec<Result<Option<RawPost>>> =
                        records.par_iter().map(|r| parser.parse(r)).collect();
                    // The raw records are not needed once parsed: a long one is not held
                    // while its post is fingerprinted.
                    drop(records);
                    let mut posts = Vec::with_capacity(parsed.len());
                    let mut bad = Vec::new();
                    for r in parsed {
                        match r {
                            Ok(Some(p)) => posts.push(p),
                            Ok(None) => {}
                            Err(e) => bad.push(e),
                        }
                    }
                    stages.parse += t.elapsed().as_secs_f64();
                    // A long record costs several times its length while it is
                    // fingerprinted (see `RECORD_OVERHEAD`), which the batch allowance does
                    // not cover: the builder makes room for it first, by writing out what
                    // it holds if the budget could not take both.
                    let room = room_for(&posts);
                    if room > 0 {
                        if let Some(done) = inserter.finished()? {
                            report(done, ingest.strict, &mut summary, obs)?;
                        }
                        inserter.make_room(room)?;
                    }
                    // Fingerprinted while the previous batch is inserted.
                    let t = Instant::now();
                    let views: Vec<NewPost<'_>> = posts.iter().map(NewPost::from).collect();
                    let prepared = prepare(&fp, &views);
                    drop(views);
                    stages.fingerprint += t.elapsed().as_secs_f64();
                    if let Some(done) = inserter.finished()? {
                        report(done, ingest.strict, &mut summary, obs)?;
                    }
                    inserter.insert(Batch {
                        file: Arc::clone(&name),
                        posts,
                        bad,
                        prepared,
                        bytes_read,
                    })?;
                    if let Some(h) = reading {
                        ahead = Some(h.join().map_err(|_| {
                            Error::InvalidParameter(
                                "the reading thread stopped unexpectedly".into(),
                            )
                        })?);
                    }
                    Ok(())
                })?;
                if !more {
                    break;
                }
            }
        }
        if let Some(done) = inserter.finished()? {
            report(done, ingest.strict, &mut summary, obs)?;
        }
        Ok(())
    })?;
    let writer_times = if existing != Existing::Append && builder.stats().indexed == 0 {
        // Nothing to publish: dropping the builder releases the lock and writes nothing.
        summary.stats = builder.stats().clone();
        builder.writer_mut().stage_times().clone()
    } else {
        let (stats, times) = builder.finish_timed()?;
        summary.stats = stats;
        summary.published = true;
        times
    };
    // The writer timed insertion, segment writing and publishing; this job, the rest.
    summary.stages = StageTimes {
        read: stages.read,
        parse: stages.parse,
        fingerprint: stages.fingerprint,
        ..writer_times
    };
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}

/// Memory a build holds whatever its budget (see [`build_index`]).
const PROCESS_BYTES: usize = 24 << 20;

/// Posts at least this long are counted against the memory budget on their own (a record
/// of ordinary length is covered by the batch allowance).
const LONG_RECORD_BYTES: usize = 1 << 20;

/// Peak bytes a post costs while it is parsed and fingerprinted, per byte of its text: the
/// post's text, the mapped and normalized texts and the token spans (8 bytes a token, a
/// token per 3 bytes of Chinese), measured at 4.9 on a 50 MB line (ARCHITECTURE.md).
const RECORD_OVERHEAD: usize = 5;

/// The memory the long posts of a batch need while they are fingerprinted.
fn room_for(posts: &[RawPost]) -> usize {
    posts
        .iter()
        .map(|p| p.text.len())
        .filter(|&n| n >= LONG_RECORD_BYTES)
        .map(|n| n.saturating_mul(RECORD_OVERHEAD))
        .fold(0, usize::saturating_add)
}

/// A batch of records read ahead, and what reading it took.
struct ReadAhead {
    records: Vec<RawRecord>,
    /// Whether more records follow, or the read's error.
    more: Result<bool>,
    seconds: f64,
    bytes_read: u64,
}

/// What the insertion thread is asked to do.
enum Job {
    /// Insert a batch.
    Insert(Batch),
    /// Make room for `bytes` outside the builder's buffer ([`IndexWriter::make_room`]).
    Room(usize),
}

/// A batch of parsed, fingerprinted posts on its way to the builder.
struct Batch {
    file: Arc<str>,
    posts: Vec<RawPost>,
    /// The batch's rejected records, reported with its outcomes in input order.
    bad: Vec<Error>,
    prepared: PreparedBatch,
    /// Bytes of its file read when the batch was complete (for progress).
    bytes_read: u64,
}

/// A batch after insertion: its posts and outcomes, and the builder's post count after it.
struct Inserted {
    file: Arc<str>,
    posts: Vec<RawPost>,
    bad: Vec<Error>,
    outcomes: Vec<PostOutcome>,
    posts_after: u64,
    bytes_read: u64,
}

/// Inserts batches in order, one at a time: on a helper thread when one could be started
/// (the caller prepares the next batch meanwhile), else on the caller's thread.
enum Inserter<'b> {
    Thread {
        jobs: Option<SyncSender<Job>>,
        results: Receiver<Result<Option<Inserted>>>,
        in_flight: bool,
    },
    Inline {
        builder: &'b mut IndexBuilder,
        done: Option<Inserted>,
    },
}

impl<'b> Inserter<'b> {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        builder: &'b mut IndexBuilder,
    ) -> Inserter<'b>
    where
        'b: 'scope,
    {
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (result_tx, results) = sync_channel::<Result<Option<Inserted>>>(1);
        // The builder is handed over only once the thread runs, so that it stays here if
        // the thread cannot be started.
        let (give, take) = sync_channel::<&'b mut IndexBuilder>(1);
        let spawned = std::thread::Builder::new()
            .name("textreuse-insert".into())
            .spawn_scoped(scope, move || {
                let Ok(builder) = take.recv() else { return };
                for job in job_rx {
                    let r = match job {
                        Job::Insert(batch) => insert(builder, batch).map(Some),
                        Job::Room(bytes) => builder.writer_mut().make_room(bytes).map(|()| None),
                    };
                    let failed = r.is_err();
                    if result_tx.send(r).is_err() || failed {
                        break;
                    }
                }
            });
        match spawned {
            Ok(_) => match give.send(builder) {
                Ok(()) => Inserter::Thread {
                    jobs: Some(jobs),
                    results,
                    in_flight: false,
                },
                // Only if the thread ended before taking the builder (it waits for it):
                // the builder comes back, and batches are inserted here.
                Err(back) => Inserter::Inline {
                    builder: back.0,
                    done: None,
                },
            },
            Err(_) => Inserter::Inline {
                builder,
                done: None,
            },
        }
    }

    /// Starts inserting `batch`; the previous batch must have been collected.
    fn insert(&mut self, batch: Batch) -> Result<()> {
        match self {
            Inserter::Thread {
                jobs, in_flight, ..
            } => {
                let sent = jobs
                    .as_ref()
                    .is_some_and(|j| j.send(Job::Insert(batch)).is_ok());
                if !sent {
                    return Err(Error::InvalidParameter(
                        "the insertion thread stopped unexpectedly".into(),
                    ));
                }
                *in_flight = true;
                Ok(())
            }
            Inserter::Inline { builder, done } => {
                *done = Some(insert(builder, batch)?);
                Ok(())
            }
        }
    }

    /// Has the builder make room for `bytes` ([`IndexWriter::make_room`]); the batch
    /// inserted last must have been collected.
    fn make_room(&mut self, bytes: usize) -> Result<()> {
        match self {
            Inserter::Thread { jobs, results, .. } => {
                let sent = jobs
                    .as_ref()
                    .is_some_and(|j| j.send(Job::Room(bytes)).is_ok());
                match results.recv() {
                    Ok(r) if sent => r.map(|_| ()),
                    _ => Err(Error::InvalidParameter(
                        "the insertion thread stopped unexpectedly".into(),
                    )),
                }
            }
            Inserter::Inline { builder, .. } => builder.writer_mut().make_room(bytes),
        }
    }

    /// The batch inserted last, once it is done (`None` if none is pending).
    fn finished(&mut self) -> Result<Option<Inserted>> {
        match self {
            Inserter::Thread {
                results, in_flight, ..
            } => {
                if !std::mem::take(in_flight) {
                    return Ok(None);
                }
                match results.recv() {
                    Ok(r) => r,
                    Err(_) => Err(Error::InvalidParameter(
                        "the insertion thread stopped unexpectedly".into(),
                    )),
                }
            }
            Inserter::Inline { done, .. } => Ok(done.take()),
        }
    }
}

impl Drop for Inserter<'_> {
    fn drop(&mut self) {
        // Closing the job channel ends the helper thread after its current batch.
        if let Inserter::Thread { jobs, .. } = self {
            jobs.take();
        }
    }
}

/// Inserts one batch.
fn insert(builder: &mut IndexBuilder, batch: Batch) -> Result<Inserted> {
    let Batch {
        file,
        posts,
        bad,
        prepared,
        bytes_read,
    } = batch;
    let views: Vec<NewPost<'_>> = posts.iter().map(NewPost::from).collect();
    let outcomes = builder.writer_mut().add_prepared(&views, prepared)?;
    Ok(Inserted {
        file,
        posts,
        bad,
        outcomes,
        posts_after: builder.stats().posts,
        bytes_read,
    })
}

/// Reports an inserted batch's rejected records and outcomes to `obs`, in input order
/// (with `strict`, the first of them ends the build).
fn report(
    done: Inserted,
    strict: bool,
    summary: &mut IngestSummary,
    obs: &mut dyn BuildObserver,
) -> Result<()> {
    let Inserted {
        file,
        posts,
        bad,
        outcomes,
        posts_after,
        bytes_read,
    } = done;
    let reject = |e: Error, summary: &mut IngestSummary, obs: &mut dyn BuildObserver| {
        if strict {
            return Err(e);
        }
        summary.invalid += 1;
        obs.bad_record(&e);
        Ok(())
    };
    let line_of = |e: &Error| match e {
        Error::InvalidInput { line, .. } => *line,
        _ => 0,
    };
    let mut bad = bad.into_iter().peekable();
    for (post, outcome) in posts.iter().zip(outcomes) {
        while let Some(e) = bad.next_if(|e| line_of(e) < post.line) {
            reject(e, summary, obs)?;
        }
        match outcome {
            PostOutcome::Indexed | PostOutcome::Replaced => {}
            PostOutcome::Empty => obs.empty_post(&file, post.line),
            PostOutcome::DuplicateId => {
                let e = Error::InvalidInput {
                    file: file.to_string(),
                    line: post.line,
                    reason: format!(
                        "duplicate id {:?}: an earlier post has it; skipped",
                        post.id
                    ),
                };
                if strict {
                    return Err(e);
                }
                obs.bad_record(&e);
            }
        }
    }
    for e in bad {
        reject(e, summary, obs)?;
    }
    obs.progress(posts_after + summary.invalid, bytes_read);
    Ok(())
}
