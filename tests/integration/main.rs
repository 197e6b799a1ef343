//! Integration tests of the on-disk index: the real CLI on real files, and the library
//! against oracles. One test binary (`cargo test --test integration`), one module per
//! concern:
//!
//! - `equivalence`: mmap vs in-memory, hits vs the LSH rule and brute-force Jaccard,
//!   filters, many segments vs one.
//! - `damage`: truncated, flipped, swapped and missing files; edited manifests.
//! - `crash`: a rebuild killed at many moments; readers across a replacing build.
//! - `bad_input`: malformed records through `textreuse build`, `--strict`.
//! - `determinism`: the same bytes whatever the thread count.
//! - `cli`: outputs, JSON shapes and exit codes.
//! - `concurrency`: `Index: Send + Sync`, many threads, one index.

mod util;

mod bad_input;
mod cli;
mod concurrency;
mod containment;
mod crash;
mod damage;
mod determinism;
mod equivalence;
mod evidence;
mod living;
