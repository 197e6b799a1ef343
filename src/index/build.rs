//! Building an index in bulk: [`IndexBuilder`], the bulk path of [`IndexWriter`] (one
//! build, one commit).
//!
//! The builder's memory is bounded: buffered posts are written out as a segment whenever
//! they reach their share of the budget, and the segments become visible together, through
//! one new manifest, at [`IndexBuilder::finish`].

use std::path::Path;

use super::options::{BuildOptions, BuildStats, Existing, NewPost, PostOutcome, StageTimes};
use super::txn::Create;
use super::writer::IndexWriter;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprinter;

/// Builds an index from posts, with bounded memory: an [`IndexWriter`] used for one bulk
/// build ([`create`](Self::create), [`add`](Self::add)..., [`finish`](Self::finish)).
#[derive(Debug)]
pub struct IndexBuilder {
    writer: IndexWriter,
}

impl IndexBuilder {
    /// Starts a build into `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::IndexExists`] if `dir` already holds an index and `opts.existing` is
    /// [`Existing::Refuse`]; [`Error::NotEmpty`] if it holds other files and no index
    /// (unless [`Existing::Replace`]); [`Error::Damaged`] if it holds index files but no
    /// `CURRENT`; [`Error::Locked`] if another writer holds the lock; invalid parameters;
    /// I/O errors.
    pub fn create(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<IndexBuilder> {
        let dir = dir.as_ref();
        let existing = opts.existing;
        let (create, replace) = match opts.existing {
            Existing::Refuse | Existing::Append => (Create::IfEmpty, false),
            Existing::Replace => (Create::Beside, true),
        };
        if opts.existing == Existing::Refuse {
            // Checked before anything is created or opened.
            Fingerprinter::new(opts.params)?;
            if super::manifest::Manifest::load_current(dir)?.is_some() {
                return Err(Error::IndexExists {
                    path: dir.to_path_buf(),
                });
            }
        }
        let writer = IndexWriter::begin(dir, opts, create, replace)?;
        if existing == Existing::Refuse && writer.manifest().is_some() {
            // Published between the check above and the lock.
            return Err(Error::IndexExists {
                path: dir.to_path_buf(),
            });
        }
        Ok(IndexBuilder { writer })
    }

    /// The fingerprinter posts are fingerprinted with.
    pub fn fingerprinter(&self) -> &Fingerprinter {
        self.writer.fingerprinter()
    }

    /// Counts so far.
    pub fn stats(&self) -> &BuildStats {
        self.writer.stats()
    }

    /// Adds posts, in order; fingerprints them in parallel. Returns each post's outcome.
    /// Takes [`NewPost`]s or the input readers' `RawPost`s.
    pub fn add<'p, P>(&mut self, posts: &'p [P]) -> Result<Vec<PostOutcome>>
    where
        &'p P: Into<NewPost<'p>>,
    {
        self.writer.add(posts)
    }

    /// Deletes the live posts with these ids; returns the ids no live post has.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<Vec<String>> {
        self.writer.delete(ids)
    }

    /// The writer underneath (for the ingest job's overlapped insertion).
    pub(crate) fn writer_mut(&mut self) -> &mut IndexWriter {
        &mut self.writer
    }

    /// See [`IndexWriter::set_dict_samples`].
    pub(crate) fn set_dict_samples(&mut self, samples: usize) {
        self.writer.set_dict_samples(samples);
    }

    /// Flushes what is buffered and publishes the index: one new manifest names every segment
    /// written (replacing the previous generation's, with [`Existing::Replace`]).
    pub fn finish(self) -> Result<BuildStats> {
        self.writer.commit_last().map(|(stats, _)| stats)
    }

    /// [`finish`](Self::finish), also returning where the writer's time went.
    pub(crate) fn finish_timed(self) -> Result<(BuildStats, StageTimes)> {
        self.writer.commit_last()
    }
}
