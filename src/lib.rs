//! # textreuse
//!
//! Text-reuse fingerprinting for finding copy-paste campaigns in multilingual posts.
//!
//! The pipeline: a post's text is normalized ([`text`]: NFKC, case, Traditional ->
//! Simplified Chinese, lookalike letters, URLs, mentions, hashtags, emoji, digits), cut into
//! tokens and shingles ([`shingle`]), MinHashed ([`minhash`]) and banded for locality-
//! sensitive hashing ([`lsh`]). The [`Fingerprinter`] ties these together under one set of
//! recorded [`FingerprintParams`].
//!
//! ```
//! use textreuse::{Fingerprinter, FingerprintParams};
//!
//! let fp = Fingerprinter::new(FingerprintParams::default())?;
//! let a = fp.fingerprint("「這個政府說謊」#127 https://t.co/x").unwrap();
//! let b = fp.fingerprint("这个政府说谎 【0457】").unwrap();
//! assert_eq!(a.content_hash, b.content_hash);
//! assert!(fp.fingerprint("🎉🎉 #tag 123").is_none()); // nothing left: no fingerprint
//! # Ok::<(), textreuse::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod cluster;
pub mod coordination;
pub mod error;
pub mod fingerprint;
pub mod index;
pub mod input;
pub mod lsh;
pub mod minhash;
pub mod report;
pub mod shingle;
pub mod text;

pub use error::{Error, Result};
pub use fingerprint::{Fingerprint, FingerprintParams, FingerprintRef, Fingerprinter, Scratch};
pub use index::{Hit, Index, IndexReader, IndexWriter, QueryOptions, QueryResult};
pub use lsh::LshParams;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
