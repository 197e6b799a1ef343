//! The [`Fingerprinter`]: text in, content hash and MinHash signature out.
//!
//! A fingerprinter is fully described by its [`FingerprintParams`] (normalizer version and
//! options, shingle width, number of permutations, seed, LSH bands and rows). Indexes store
//! the parameters in their manifest, so a query is always fingerprinted exactly like the
//! posts it is matched against. A text with no token left after normalization has **no**
//! fingerprint (`None`), never a shared "empty" signature.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::lsh::LshParams;
use crate::minhash::MinHasher;
use crate::shingle::{shingle_hashes_of, shingle_hashes_of_range, MAX_SHINGLE};
use crate::text::{Normalized, Normalizer, NormalizerOptions, NORMALIZER_VERSION};

/// Every parameter of a fingerprint. Serialized into index manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FingerprintParams {
    /// The normalization rules' version ([`NORMALIZER_VERSION`]).
    pub normalizer_version: u32,
    /// Normalizer options.
    #[serde(default)]
    pub normalizer: NormalizerOptions,
    /// Tokens per shingle (default 3).
    pub shingle: u32,
    /// Number of MinHash permutations (default 128).
    pub num_perm: u32,
    /// Seed of the permutation coefficients (SplitMix64).
    pub seed: u64,
    /// LSH banding.
    pub lsh: LshParams,
}

impl Default for FingerprintParams {
    fn default() -> FingerprintParams {
        FingerprintParams {
            normalizer_version: NORMALIZER_VERSION,
            normalizer: NormalizerOptions::default(),
            shingle: 3,
            num_perm: 128,
            seed: 0x7465_7874_7265_7573, // "textreus"
            lsh: LshParams::default(),
        }
    }
}

impl FingerprintParams {
    /// Checks that the parameters are usable by this build.
    pub fn validate(&self) -> Result<()> {
        if self.normalizer_version != NORMALIZER_VERSION {
            return Err(Error::InvalidParameter(format!(
                "normalizer version {} is not supported by this build (it has version {NORMALIZER_VERSION})",
                self.normalizer_version
            )));
        }
        if self.shingle == 0 || self.shingle as usize > MAX_SHINGLE {
            return Err(Error::InvalidParameter(format!(
                "shingle width must be in 1..={MAX_SHINGLE}"
            )));
        }
        if self.num_perm == 0 || self.num_perm > 1024 {
            return Err(Error::InvalidParameter(
                "num_perm must be in 1..=1024".into(),
            ));
        }
        self.lsh.validate(self.num_perm as usize)
    }
}

/// Texts with more tokens than this are shingled and MinHashed this many tokens at a time
/// (the signature is the minimum over the ranges' signatures, the same as over the whole),
/// so that the token and shingle hashes of a text of tens of megabytes (16 bytes a token)
/// are never held at once.
const STREAM_TOKENS: usize = 1 << 16;

/// Reusable buffers for [`Fingerprinter::fingerprint_with`]. Keep one per thread. Lookups
/// through [`Index::query_with`](crate::Index::query_with) keep their buffers here too, and
/// the shingle sets of contents they settled exactly more than once (at most 8 MiB).
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    normalized: Normalized,
    token_hashes: Vec<u64>,
    shingles: Vec<u64>,
    signature: Vec<u32>,
    /// One range's signature (long texts).
    part: Vec<u32>,
    /// `shingles` holds only the last range's shingles (a long text).
    partial: bool,
    /// A lookup's own buffers (band keys, candidates, matches), kept for the next lookup.
    pub(crate) lookup: crate::index::LookupBuffers,
}

impl Scratch {
    /// New, empty buffers.
    pub fn new() -> Scratch {
        Scratch::default()
    }

    /// The shingle hashes of the last [`Fingerprinter::fingerprint_with`] (with shingles of
    /// `width` tokens), made a sorted set.
    pub(crate) fn shingle_set(&mut self, width: u32) -> &[u64] {
        if std::mem::take(&mut self.partial) {
            // A long text was shingled a range at a time: the whole set, now.
            self.shingles.clear();
            all_shingles(
                &self.normalized,
                width as usize,
                &mut self.token_hashes,
                &mut self.shingles,
            );
        }
        self.shingles.sort_unstable();
        self.shingles.dedup();
        &self.shingles
    }
}

/// Calls `f` with each range of tokens of a text of `n` tokens that a long text is shingled
/// by: [`STREAM_TOKENS`] windows of `width` tokens each, with the `width - 1` tokens after
/// them (for `n > STREAM_TOKENS >= width` every range holds a whole window).
fn for_each_range(n: usize, width: usize, mut f: impl FnMut(std::ops::Range<usize>)) {
    let mut start = 0;
    while start + width <= n {
        f(start..(start + STREAM_TOKENS + width - 1).min(n));
        start += STREAM_TOKENS;
    }
}

/// [`shingle_hashes_of`] (appended to `out`), a range of tokens at a time for a long text,
/// so that the token hashes are never held for the whole text.
fn all_shingles(
    normalized: &Normalized,
    width: usize,
    token_hashes: &mut Vec<u64>,
    out: &mut Vec<u64>,
) {
    let n = normalized.spans().len();
    if n <= STREAM_TOKENS {
        shingle_hashes_of(normalized, width, token_hashes, out);
    } else {
        for_each_range(n, width, |r| {
            shingle_hashes_of_range(normalized, r, width, token_hashes, out)
        });
    }
}

/// A fingerprint borrowed from a [`Scratch`].
#[derive(Debug, Clone, Copy)]
pub struct FingerprintRef<'a> {
    /// 128-bit xxh3 of the normalized text: equal for exact duplicates after normalization.
    pub content_hash: u128,
    /// The MinHash signature (`num_perm` minima).
    pub signature: &'a [u32],
    /// The number of shingles (windows, duplicates included).
    pub shingles: usize,
    /// The normalized text and tokens.
    pub normalized: &'a Normalized,
}

/// An owned fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 128-bit xxh3 of the normalized text.
    pub content_hash: u128,
    /// The MinHash signature.
    pub signature: Vec<u32>,
    /// The number of shingles.
    pub shingles: usize,
}

/// Turns texts into fingerprints. `Send + Sync`, cheap to share; all state is in the
/// parameters and the permutation coefficients they imply.
#[derive(Debug, Clone)]
pub struct Fingerprinter {
    params: FingerprintParams,
    normalizer: Normalizer,
    minhash: MinHasher,
}

impl Fingerprinter {
    /// A fingerprinter for `params`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the parameters are out of range or were made by another
    /// normalizer version.
    pub fn new(params: FingerprintParams) -> Result<Fingerprinter> {
        params.validate()?;
        Ok(Fingerprinter {
            params,
            normalizer: Normalizer::new(params.normalizer),
            minhash: MinHasher::new(params.num_perm as usize, params.seed),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &FingerprintParams {
        &self.params
    }

    /// The normalizer.
    pub fn normalizer(&self) -> &Normalizer {
        &self.normalizer
    }

    /// Normalizes `text` only (into `scratch`) and returns the normalized form.
    pub fn normalize<'s>(&self, text: &str, scratch: &'s mut Scratch) -> &'s Normalized {
        self.normalizer.normalize(text, &mut scratch.normalized);
        &scratch.normalized
    }

    /// Fingerprints `text` using `scratch`; `None` if no token is left after normalization.
    pub fn fingerprint_with<'s>(
        &self,
        text: &str,
        scratch: &'s mut Scratch,
    ) -> Option<FingerprintRef<'s>> {
        self.normalizer.normalize(text, &mut scratch.normalized);
        scratch.shingles.clear();
        scratch.partial = false;
        if scratch.normalized.is_empty() {
            return None;
        }
        let width = self.params.shingle as usize;
        let n = scratch.normalized.spans().len();
        scratch.signature.resize(self.params.num_perm as usize, 0);
        let shingles = if n <= STREAM_TOKENS {
            shingle_hashes_of(
                &scratch.normalized,
                width,
                &mut scratch.token_hashes,
                &mut scratch.shingles,
            );
            self.minhash
                .signature(&scratch.shingles, &mut scratch.signature);
            scratch.shingles.len()
        } else {
            scratch.partial = true;
            scratch.signature.fill(u32::MAX);
            scratch.part.resize(scratch.signature.len(), 0);
            let mut count = 0;
            let Scratch {
                normalized,
                token_hashes,
                shingles,
                signature,
                part,
                ..
            } = &mut *scratch;
            for_each_range(n, width, |r| {
                shingles.clear();
                shingle_hashes_of_range(normalized, r, width, token_hashes, shingles);
                count += shingles.len();
                self.minhash.signature(shingles, part);
                for (s, &p) in signature.iter_mut().zip(part.iter()) {
                    *s = (*s).min(p);
                }
            });
            count
        };
        Some(FingerprintRef {
            content_hash: xxh3_128(scratch.normalized.text().as_bytes()),
            signature: &scratch.signature,
            shingles,
            normalized: &scratch.normalized,
        })
    }

    /// The distinct shingle hashes of `text`, sorted (empty if no token is left): the set
    /// whose Jaccard similarity the signatures estimate (see [`crate::minhash::jaccard`]).
    pub fn shingle_set<'s>(&self, text: &str, scratch: &'s mut Scratch) -> &'s [u64] {
        self.all_shingles(text, scratch);
        scratch.shingles.sort_unstable();
        scratch.shingles.dedup();
        &scratch.shingles
    }

    /// Every shingle hash of `text` into `scratch.shingles`, in text order, repeats kept
    /// (none if no token is left).
    fn all_shingles(&self, text: &str, scratch: &mut Scratch) {
        self.normalizer.normalize(text, &mut scratch.normalized);
        scratch.shingles.clear();
        scratch.partial = false;
        if !scratch.normalized.is_empty() {
            all_shingles(
                &scratch.normalized,
                self.params.shingle as usize,
                &mut scratch.token_hashes,
                &mut scratch.shingles,
            );
        }
    }

    /// The exact Jaccard similarity of `text`'s shingle set and `set` (a query's, hashed),
    /// as [`jaccard`](crate::minhash::jaccard) of the sorted sets gives, without sorting
    /// `text`'s shingles; `seen` is a work table.
    pub fn jaccard_to(
        &self,
        text: &str,
        set: &crate::minhash::HashSet64,
        seen: &mut crate::minhash::HashSet64,
        scratch: &mut Scratch,
    ) -> f64 {
        self.all_shingles(text, scratch);
        set.jaccard_of(&scratch.shingles, seen)
    }

    /// Fingerprints `text`, allocating; `None` if no token is left after normalization.
    pub fn fingerprint(&self, text: &str) -> Option<Fingerprint> {
        let mut scratch = Scratch::new();
        self.fingerprint_with(text, &mut scratch)
            .map(|f| Fingerprint {
                content_hash: f.content_hash,
                signature: f.signature.to_vec(),
                shingles: f.shingles,
            })
    }

    /// The LSH band keys of a signature, one per band, into `keys`.
    pub fn band_keys(&self, signature: &[u32], keys: &mut Vec<u64>) {
        keys.resize(self.params.lsh.bands as usize, 0);
        self.params.lsh.band_keys(signature, keys);
    }
}

#[cfg(test)]
mod tests;
