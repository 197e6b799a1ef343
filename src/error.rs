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
    /// The index directory already holds an index, or holds none.
    #[error("{}: {what}", path.display())]
    IndexState {
        /// The index directory.
        path: PathBuf,
        /// What is wrong with it.
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

    /// Builds an [`Error::Corrupt`] for `path`.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }
}
