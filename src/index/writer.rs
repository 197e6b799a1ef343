//! [`IndexWriter`]: the writer of a living index.

use std::path::Path;

use super::build::{BuildOptions, BuildStats, Existing, IndexBuilder, PostOutcome};
use crate::error::Result;
use crate::fingerprint::Fingerprinter;
use crate::input::RawPost;

/// The writer of a living index: adds posts as new segments, deletes posts by id, and
/// publishes both atomically with [`commit`](IndexWriter::commit). Holds the index's writer
/// lock until committed or dropped; a second writer gets [`Error::IndexState`]. Readers
/// keep answering from the generation they opened (see [`Index::reload`](super::Index::reload)).
///
/// Dropping the writer without committing publishes nothing; the segments it had written
/// are removed by the next writer.
#[derive(Debug)]
pub struct IndexWriter {
    inner: IndexBuilder,
}

impl IndexWriter {
    /// Opens the index in `dir` for writing (creating it with `opts.params` if missing).
    /// `opts.existing` is ignored: new posts are always appended.
    pub fn open(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<IndexWriter> {
        let opts = BuildOptions {
            existing: Existing::Append,
            ..opts
        };
        Ok(IndexWriter {
            inner: IndexBuilder::create(dir, opts)?,
        })
    }

    /// Adds posts (fingerprinted in parallel). Ids the index already holds are skipped as
    /// [`PostOutcome::DuplicateId`], or supersede the old post with
    /// [`OnExistingId::Replace`].
    pub fn add(&mut self, posts: &[RawPost]) -> Result<Vec<PostOutcome>> {
        self.inner.add(posts)
    }

    /// Marks the live posts with these ids deleted; returns the ids no live post has.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<Vec<String>> {
        self.inner.delete(ids)
    }

    /// Counts so far.
    pub fn stats(&self) -> &BuildStats {
        self.inner.stats()
    }

    /// The fingerprinter (the index's parameters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        self.inner.fingerprinter()
    }

    /// Writes what is buffered and publishes one new manifest with the new segments and
    /// deletions. Releases the lock.
    pub fn commit(self) -> Result<BuildStats> {
        self.inner.finish()
    }
}
