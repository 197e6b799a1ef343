//! Integration tests of the on-disk index: the real CLI on real files, and the library
//! against oracles. One test binary (`cargo test --test integration`), one module per
//! concern:
//!
//! - `equivalence`: mmap vs in-memory, hits vs the LSH rule and brute-force Jaccard,
//!   filters, many segments vs one.
//! - `damage`: truncated, flipped, swapped and missing files; edited manifests; damaged
//!   deletion bitmaps; writers that refuse damage, foreign files and links.
//! - `crash`: a rebuild, append, delete or merge killed at many moments; readers across a
//!   replacing build.
//! - `bad_input`: malformed records through `textreuse build`, `--strict`.
//! - `determinism`: the same bytes whatever the thread count.
//! - `cli`: outputs, JSON shapes and exit codes.
//! - `concurrency`: `Index: Send + Sync`, many threads, one index; readers across a
//!   living index's generations; one writer at a time.
//! - `living`: append, delete, replace and merge answer like one build.
//! - `clusters`: clusters of a living index.
//! - `order`: the content order (near-copies together), read from the files, and that it
//!   changes no answer, capped lookups included.
//! - `coordination`: `accounts` and `report` on a corpus of known co-posts; the report in
//!   a headless browser.
//! - `fuzz_replay`: the `index_open` fuzz harness on stable: its regressions and generated
//!   mutations, in bounded time.

mod envelope;
mod util;

mod bad_input;
mod cli;
mod clusters;
mod concurrency;
mod containment;
mod coordination;
mod crash;
mod damage;
mod determinism;
mod equivalence;
mod evidence;
mod fuzz_replay;
mod limit;
mod living;
mod order;
