//! Generates the Traditional -> Simplified character table from OpenCC's
//! `data/TSCharacters.txt` (Apache-2.0, see `data/README.md`).
//!
//! Output (`$OUT_DIR/t2s_table.rs`):
//! - `T2S_BMP_BASE`, `T2S_BMP`: a dense `[u16]` over U+3400..=U+9FFF; 0 means "no mapping",
//!   1 means "see `T2S_OTHER`" (the target is outside the BMP); any other value is the
//!   simplified code point.
//! - `T2S_OTHER`: sorted `(source, target)` pairs for every other source code point.
//! - `NFKC_STABLE_BITS`, `MAP_SAME_BITS`: per-character bit sets over planes 0 and 1 that
//!   let the normalizer skip full NFKC and full lowercasing (see `write_char_bits`).
//!
//! The first candidate of each line is taken, and chains are resolved to a fixed point
//! (if A -> B and B -> C, A maps to C), so folding is idempotent: fold(fold(s)) == fold(s).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

const BMP_LO: u32 = 0x3400;
const BMP_HI: u32 = 0x9FFF;
/// The code points the per-character bit sets cover: planes 0 and 1.
const PLANES_0_1: u32 = 0x2_0000;

fn main() {
    let src = PathBuf::from("data/TSCharacters.txt");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(&src).expect("data/TSCharacters.txt is missing");
    let mut map: BTreeMap<u32, u32> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('\t');
        let key = parts.next().unwrap_or("");
        let vals = parts.next().unwrap_or("");
        let mut kc = key.chars();
        let (Some(k), None) = (kc.next(), kc.next()) else {
            panic!("TSCharacters.txt:{}: key is not one character", i + 1)
        };
        let Some(first) = vals.split(' ').find(|v| !v.is_empty()) else {
            continue;
        };
        let mut vc = first.chars();
        let (Some(v), None) = (vc.next(), vc.next()) else {
            panic!("TSCharacters.txt:{}: value is not one character", i + 1)
        };
        if k != v {
            map.insert(k as u32, v as u32);
        }
    }
    // Resolve chains to a fixed point so that folding is idempotent.
    let keys: Vec<u32> = map.keys().copied().collect();
    for k in keys {
        let mut v = map[&k];
        let mut steps = 0;
        while let Some(&next) = map.get(&v) {
            if next == k || steps > 8 {
                break;
            }
            v = next;
            steps += 1;
        }
        map.insert(k, v);
    }
    map.retain(|k, v| k != v);

    let mut dense = vec![0u16; (BMP_HI - BMP_LO + 1) as usize];
    let mut other = Vec::new();
    for (&k, &v) in &map {
        if (BMP_LO..=BMP_HI).contains(&k) {
            if v <= 0xFFFF && v > 1 {
                dense[(k - BMP_LO) as usize] = v as u16;
            } else {
                // Marker: look the character up in T2S_OTHER.
                dense[(k - BMP_LO) as usize] = 1;
                other.push((k, v));
            }
        } else {
            other.push((k, v));
        }
    }
    let mut out = String::new();
    writeln!(
        out,
        "/// Number of Traditional characters with a Simplified fold."
    )
    .unwrap();
    writeln!(out, "pub const T2S_LEN: usize = {};", map.len()).unwrap();
    writeln!(out, "/// First code point covered by [`T2S_BMP`].").unwrap();
    writeln!(out, "pub const T2S_BMP_BASE: u32 = {BMP_LO:#X};").unwrap();
    writeln!(
        out,
        "/// Dense fold table over U+3400..=U+9FFF (0 = no mapping, 1 = see T2S_OTHER)."
    )
    .unwrap();
    write_array(
        &mut out,
        "T2S_BMP",
        "u16",
        dense.iter().map(|v| v.to_string()),
        32,
    );
    writeln!(
        out,
        "/// Sorted (source, target) pairs outside the dense range."
    )
    .unwrap();
    write!(
        out,
        "pub static T2S_OTHER: [(u32, u32); {}] = [",
        other.len()
    )
    .unwrap();
    for (k, v) in &other {
        write!(out, "({k:#X},{v:#X}),").unwrap();
    }
    out.push_str("];\n");
    write_char_bits(&mut out, &map);
    let dst = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("t2s_table.rs");
    std::fs::write(dst, out).unwrap();
}

/// Writes the two per-character bit sets over planes 0 and 1 (U+0000..=U+1FFFF), one bit
/// per code point (bit `u % 64` of word `u / 64`):
/// - `NFKC_STABLE_BITS`: NFKC quick check Yes and canonical combining class 0. Such a
///   character is its own NFKC form and starts a normalization boundary.
/// - `MAP_SAME_BITS`: full lowercasing leaves the character as it is and it has no T2S fold.
fn write_char_bits(out: &mut String, t2s: &BTreeMap<u32, u32>) {
    use unicode_normalization::char::canonical_combining_class;
    use unicode_normalization::{is_nfkc_quick, IsNormalized};
    let mut stable = vec![0u64; (PLANES_0_1 / 64) as usize];
    let mut same = vec![0u64; (PLANES_0_1 / 64) as usize];
    for u in 0..PLANES_0_1 {
        let Some(c) = char::from_u32(u) else {
            continue;
        };
        let (w, bit) = ((u / 64) as usize, 1u64 << (u % 64));
        if canonical_combining_class(c) == 0
            && is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
        {
            stable[w] |= bit;
        }
        let mut lower = c.to_lowercase();
        if lower.next() == Some(c) && lower.next().is_none() && !t2s.contains_key(&u) {
            same[w] |= bit;
        }
    }
    let hex = |v: &u64| format!("{v:#x}");
    writeln!(
        out,
        "/// NFKC quick check Yes and combining class 0, U+0000..=U+1FFFF (bit u % 64 of word u / 64)."
    )
    .unwrap();
    write_array(out, "NFKC_STABLE_BITS", "u64", stable.iter().map(hex), 8);
    writeln!(
        out,
        "/// Lowercasing keeps the character and it has no T2S fold, U+0000..=U+1FFFF."
    )
    .unwrap();
    write_array(out, "MAP_SAME_BITS", "u64", same.iter().map(hex), 8);
}

/// Writes `pub static NAME: [TY; N] = [...];` with `per_line` items a line.
fn write_array(
    out: &mut String,
    name: &str,
    ty: &str,
    items: impl ExactSizeIterator<Item = String>,
    per_line: usize,
) {
    write!(out, "pub static {name}: [{ty}; {}] = [", items.len()).unwrap();
    for (i, v) in items.enumerate() {
        if i % per_line == 0 {
            out.push('\n');
        }
        write!(out, "{v},").unwrap();
    }
    out.push_str("\n];\n");
}
