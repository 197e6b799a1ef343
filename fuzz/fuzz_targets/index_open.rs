//! cargo-fuzz target over the `index_open` harness (`../harness/index_open.rs`, which says
//! what it checks and how its input is read). The same harness runs on stable in CI:
//! `tests/integration/fuzz_replay.rs`.
#![no_main]

#[path = "../harness/index_open.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
