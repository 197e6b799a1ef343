//! The library's one error type.
//!
//! Every fallible function in `textreuse` returns [`Result<T>`](Result), whose error is
//! [`Error`]. Messages are lowercase, carry no trailing period and say what went wrong and,
//! where it helps, what to do. The enum is `#[non_exhaustive]`: match the variants you
//! care about and keep a catch-all arm.

use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `textreuse`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file does not start with the magic bytes of the file kind expected.
    #[error("{}: not a textreuse {expected} file (bad magic bytes)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Which kind of file was expected.
        expected: &'static str,
    },
    /// A file or manifest was written by a format version this reader does not know.
    #[error(
        "{}: format version {found} is not supported (this build reads versions {supported}); \
         upgrade textreuse or rebuild the index",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The versions this build accepts, for the message (for example `"1"` or `"1-2"`).
        supported: &'static str,
    },
    /// A file is structurally damaged: a length, offset or count is impossible.
    #[error("{}: index file is corrupt: {what}; run `textreuse verify` and rebuild if it fails", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        what: String,
    },
    /// A section's checksum does not match its bytes.
    #[error("{}: checksum mismatch in section {section}: the file is damaged; rebuild the index", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The section whose bytes do not match.
        section: String,
    },
    /// A record of an input file is invalid.
    #[error("{file}:{line}: {reason}")]
    InvalidInput {
        /// The input file (`-` for standard input).
        file: String,
        /// The 1-based line (or CSV record) number.
        line: u64,
        /// Why the record was rejected.
        reason: String,
    },
    /// A parameter or option is out of range or inconsistent.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The index directory is in a state the operation cannot work on (other than the
    /// states with their own variant below).
    #[error("{}: {what}", path.display())]
    IndexState {
        /// The index directory.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The directory holds no index (no `CURRENT` file and no index files).
    #[error("{}: holds no index (no CURRENT file)", path.display())]
    NoIndex {
        /// The directory.
        path: PathBuf,
    },
    /// The directory already holds an index and the operation would create one.
    #[error(
        "{}: already holds an index; choose another directory, delete it, replace it (--force) or add to it (--append)",
        path.display()
    )]
    IndexExists {
        /// The index directory.
        path: PathBuf,
    },
    /// The directory is not empty and holds no index: a build would mix its files with
    /// the index's.
    #[error(
        "{}: is not empty and holds no index; choose an empty or new directory (or pass --force to build beside its files)",
        path.display()
    )]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// Another writer holds the index's lock. Retryable: try again when it is done.
    #[error("{}: another writer is working on this index (LOCK is held); wait for it to finish", path.display())]
    Locked {
        /// The index directory.
        path: PathBuf,
    },
    /// The index changed (a newer generation was published) since the data handed to a
    /// writer was read from it.
    #[error(
        "{}: changed since it was opened (generation {opened}, now {current}); run the clustering again",
        path.display()
    )]
    StaleGeneration {
        /// The index directory.
        path: PathBuf,
        /// The generation the data was read from.
        opened: u64,
        /// The live generation.
        current: u64,
    },
    /// The directory holds index files but no readable `CURRENT`: a damaged index, never
    /// treated as an empty directory.
    #[error("{}: the index is damaged: {what}", path.display())]
    Damaged {
        /// The index directory.
        path: PathBuf,
        /// What is wrong and how to recover.
        what: String,
    },
    /// A manifest could not be parsed.
    #[error("{}: invalid manifest: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the operation later may succeed ([`Error::Locked`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }

    /// Builds an [`Error::Corrupt`] for `path`.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }
}
