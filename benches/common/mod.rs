//! Corpora shared by the benches: `data/sample.jsonl` (3,000 posts, about half Chinese),
//! read with the crate's own JSONL reader and split by script.
//!
//! Each bench binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use textreuse::input::{InputOptions, PostReader, RawPost};

/// The sample corpus.
pub fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.jsonl")
}

/// Every post of `data/sample.jsonl`, in file order. Panics on a bad record: the sample is
/// part of the repository and must stay valid.
pub fn load_sample() -> Vec<RawPost> {
    let path = sample_path();
    let mut reader = PostReader::open(&path, &InputOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parser = reader.parser();
    let mut records = Vec::new();
    let mut posts = Vec::new();
    while reader.read_batch(1024, &mut records).expect("read sample") {
        for r in records.drain(..) {
            if let Some(p) = parser.parse(&r).expect("parse sample record") {
                posts.push(p);
            }
        }
    }
    assert!(posts.len() >= 1000, "sample has only {} posts", posts.len());
    posts
}

/// Whether `s` holds a Han character (CJK Unified Ideographs, extensions, compatibility).
pub fn has_han(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c as u32,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3134F)
    })
}

/// A named set of post texts.
pub struct Corpus {
    /// `zh`, `en` or `mixed`.
    pub name: &'static str,
    /// The texts.
    pub texts: Vec<String>,
}

impl Corpus {
    /// Total UTF-8 bytes of the texts.
    pub fn bytes(&self) -> u64 {
        self.texts.iter().map(|t| t.len() as u64).sum()
    }

    /// Number of posts.
    pub fn posts(&self) -> u64 {
        self.texts.len() as u64
    }
}

/// The sample split three ways: posts with Han characters (`zh`), the others (`en`), and
/// all of them in file order (`mixed`).
pub fn corpora(posts: &[RawPost]) -> [Corpus; 3] {
    let (zh, en): (Vec<&RawPost>, Vec<&RawPost>) = posts.iter().partition(|p| has_han(&p.text));
    let texts = |v: Vec<&RawPost>| v.into_iter().map(|p| p.text.clone()).collect();
    [
        Corpus {
            name: "zh",
            texts: texts(zh),
        },
        Corpus {
            name: "en",
            texts: texts(en),
        },
        Corpus {
            name: "mixed",
            texts: posts.iter().map(|p| p.text.clone()).collect(),
        },
    ]
}

/// SplitMix64: a tiny deterministic generator so benches need no `rand`.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Words a perturbation may insert: what reposting accounts add to a template.
const FILLERS: &[&str] = &[
    " really",
    " wow",
    " share this",
    " RT",
    " 转发",
    " 真的",
    "！！",
    " 大家看看",
    " please",
    " 震惊",
];

/// A light perturbation of `text`, as a copy-paste campaign makes them: one of appending
/// a hashtag and a link (gone after normalization: an exact duplicate), deleting a
/// character, replacing a character by another of the same text, or inserting a filler
/// word. Most results are near-duplicates with their own content.
pub fn perturb(text: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 4 {
        return format!("{text} #{}", rng.below(1000));
    }
    let at = rng.below(chars.len());
    let mut out: String;
    match rng.below(4) {
        0 => {
            out = text.to_owned();
            out.push_str(&format!(
                " #tag{} https://t.co/{:x}",
                rng.below(100),
                rng.next_u64()
            ));
        }
        1 => {
            out = chars
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != at)
                .map(|(_, c)| c)
                .collect();
        }
        2 => {
            let with = chars[rng.below(chars.len())];
            out = chars
                .iter()
                .enumerate()
                .map(|(i, &c)| if i == at { with } else { c })
                .collect();
        }
        _ => {
            out = chars[..at].iter().collect();
            out.push_str(FILLERS[rng.below(FILLERS.len())]);
            out.extend(&chars[at..]);
        }
    }
    out
}
