//! The `index_open` fuzz target's inputs on stable, in bounded time.
//!
//! cargo-fuzz needs a nightly toolchain and `cargo install cargo-fuzz`, which CI does not
//! have; so CI drives the very same harness (`fuzz/harness/index_open.rs`, compiled here
//! with `#[path]`) with the committed crash inputs (`fuzz/regressions/index_open`) and with
//! generated mutations of its real index: byte patches biased to headers and section
//! tables, truncations, with and without the envelope checksum fixed and the damage
//! vouched for in the manifest (so it reaches the checks behind the checksums). Any panic
//! or broken check fails the test and prints the input in hex, ready to save under
//! `fuzz/regressions/index_open/` and replay with cargo-fuzz.
//!
//! Bounds: `TEXTREUSE_FUZZ_CASES` inputs (default 1,500) or `TEXTREUSE_FUZZ_SECS` seconds
//! (default 40), whichever comes first; `TEXTREUSE_FUZZ_SEED` picks another sequence.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::Rng;

#[path = "../../fuzz/harness/index_open.rs"]
#[allow(dead_code, missing_docs)]
mod harness;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs one input; returns the panic message if it failed.
fn run(input: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| harness::run(input)))
        .err()
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
}

/// One generated input: `[file, flags, payload]` as the harness reads it.
fn mutation(rng: &mut Rng, files: &[(String, usize)]) -> Vec<u8> {
    let file = rng.below(files.len());
    let len = files[file].1.max(1);
    // Bits 1 (fix the envelope checksum) and 2 (vouch in the manifest) at random; the
    // clustering pass (bit 3) one time in eight: it is most of a run's time.
    let mut flags = (rng.below(4) as u8) << 1;
    if rng.below(8) == 0 {
        flags |= 8;
    }
    let mut out = vec![file as u8, flags];
    if rng.below(6) == 0 {
        // Whole-file replacement: a truncation of the file, padded by random bytes, or
        // short garbage (bit 0).
        out[1] |= 1;
        let keep = rng.below(len.min(4096) + 1);
        out.extend((0..keep).map(|_| rng.next_u64() as u8));
        return out;
    }
    for _ in 0..1 + rng.below(4) {
        // Half of the patches land in the first 256 bytes (header, section table, meta).
        let off = if rng.chance(0.5) {
            rng.below(len.min(256))
        } else {
            rng.below(len)
        } as u32;
        out.extend_from_slice(&off.to_le_bytes());
        out.push(match rng.below(4) {
            0 => 0,
            1 => 0xff,
            _ => rng.next_u64() as u8,
        });
    }
    out
}

#[test]
fn index_open_regressions_and_mutations_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/index_open");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/regressions/index_open") {
        let path = e.expect("entry").path();
        let input = std::fs::read(&path).expect("reads");
        replayed += 1;
        if let Some(msg) = run(&input) {
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(replayed > 0, "no committed regressions found");
    let files = harness::files();
    let cases = env_u64("TEXTREUSE_FUZZ_CASES", 1500);
    let budget = Duration::from_secs(env_u64("TEXTREUSE_FUZZ_SECS", 40));
    let mut rng = Rng::new(env_u64("TEXTREUSE_FUZZ_SEED", 16));
    let start = Instant::now();
    let mut ran = 0;
    while ran < cases && start.elapsed() < budget {
        let input = mutation(&mut rng, &files);
        ran += 1;
        if let Some(msg) = run(&input) {
            failures.push(format!("input {}: {msg}", hex(&input)));
        }
    }
    eprintln!(
        "index_open: {replayed} regressions and {ran} mutations in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
