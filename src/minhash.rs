//! Classic MinHash with multiply-add-shift permutations, and b-bit signatures.
//!
//! A [`MinHasher`] holds `k` pairs `(a_i, b_i)` of 64-bit numbers drawn from a seed with
//! SplitMix64 (`a_i` odd). A 64-bit shingle hash is folded to a 32-bit key
//! `x = (h >> 32) ^ (h mod 2^32)`, which maps to `h_i(x) = ((a_i·x + b_i) mod 2^64) >> 32`:
//! Dietzfelbinger's multiply-add-shift scheme, strongly universal from 32 to 32 bits. The
//! signature keeps the minimum of each `h_i` over the post's shingles, as a `u32`. For two
//! sets, `P[sig_i(A) = sig_i(B)] ≈ J(A, B)`.
//!
//! Indexes store only the lowest 8 bits of each minimum ([`to_bbit`]), 128 bytes a text at
//! k = 128. Two unrelated minima then still agree with probability 1/256, which
//! [`bbit_similarity`] corrects for.

/// SplitMix64: the seed expander for permutation coefficients.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The MinHash permutations for one parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    /// `k` permutations drawn from `seed`.
    pub fn new(k: usize, seed: u64) -> MinHasher {
        let mut rng = SplitMix64(seed);
        let mut a = Vec::with_capacity(k);
        let mut b = Vec::with_capacity(k);
        for _ in 0..k {
            a.push(rng.next_u64() | 1);
            b.push(rng.next_u64());
        }
        MinHasher { a, b }
    }

    /// The number of permutations.
    pub fn k(&self) -> usize {
        self.a.len()
    }

    /// Writes the signature of `shingles` into `sig` (`sig.len()` must equal [`k`](Self::k)).
    /// With no shingles every minimum is `u32::MAX`; callers treat such a post as having no
    /// fingerprint at all.
    pub fn signature(&self, shingles: &[u64], sig: &mut [u32]) {
        let k = self.a.len().min(sig.len());
        let (a, b, sig) = (&self.a[..k], &self.b[..k], &mut sig[..k]);
        // Sixty-four 64-bit minima fill 16 of AVX-512's 32 vector registers; with AVX2's 16,
        // blocks of 32 keep the minima and coefficients in registers.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return signature_kernel::<64>(a, b, shingles, sig);
        }
        signature_kernel::<32>(a, b, shingles, sig);
    }
}

/// Folds a 64-bit shingle hash to the 32-bit key the permutations take.
#[inline(always)]
fn key(h: u64) -> u64 {
    ((h >> 32) ^ h) & 0xFFFF_FFFF
}

/// The MinHash inner loop: for blocks of `BLOCK` permutations, the minima stay in registers while
/// every shingle streams through. `multiversion` compiles it for AVX-512 and AVX2 and picks
/// the best the CPU has at run time (the same results on every path: integer arithmetic).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2",
    "aarch64+neon"
))]
fn signature_kernel<const BLOCK: usize>(a: &[u64], b: &[u64], shingles: &[u64], sig: &mut [u32]) {
    sig.fill(u32::MAX);
    let mut start = 0;
    while start < sig.len() {
        let end = (start + BLOCK).min(sig.len());
        let (a, b, s) = (&a[start..end], &b[start..end], &mut sig[start..end]);
        if let (Ok(a), Ok(b)) = (<&[u64; BLOCK]>::try_from(a), <&[u64; BLOCK]>::try_from(b)) {
            // The minima are kept as full 64-bit values and shifted once at the end: a shift
            // right is monotone, so the top half of the least `a·x + b` is the least top
            // half. That takes the shift (and any narrowing) out of the loop.
            let mut m = [u64::MAX; BLOCK];
            for &h in shingles {
                let x = key(h);
                for i in 0..BLOCK {
                    m[i] = m[i].min(a[i].wrapping_mul(x).wrapping_add(b[i]));
                }
            }
            for (o, &v) in s.iter_mut().zip(&m) {
                *o = (v >> 32) as u32;
            }
        } else {
            for &h in shingles {
                let x = key(h);
                for i in 0..s.len() {
                    let v = (a[i].wrapping_mul(x).wrapping_add(b[i]) >> 32) as u32;
                    s[i] = s[i].min(v);
                }
            }
        }
        start = end;
    }
}

/// The 8-bit (b-bit) form of a signature: the lowest byte of each minimum.
pub fn to_bbit(sig: &[u32], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(sig) {
        *o = s as u8;
    }
}

/// The fraction of equal minima: an unbiased estimate of Jaccard similarity.
pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    let k = a.len().min(b.len());
    if k == 0 {
        return 0.0;
    }
    let eq = a.iter().zip(b).filter(|(x, y)| x == y).count();
    eq as f64 / k as f64
}

/// Jaccard estimate from two 8-bit signatures, corrected for chance agreement (1/256).
pub fn bbit_similarity(a: &[u8], b: &[u8]) -> f64 {
    let k = a.len().min(b.len());
    if k == 0 {
        return 0.0;
    }
    bbit_estimate(equal_bytes(a, b), k)
}

/// How many positions hold equal bytes in `a` and `b` (over the shorter length).
///
/// With AVX-512BW, 64 bytes at a time: one compare into a bit mask and one popcount.
/// Otherwise sixteen bytes at a time into sixteen byte counters (at most 255 rounds between
/// sums, so they cannot overflow): the compiler turns the inner loop into one vector compare
/// and subtract per 16 bytes on every x86-64 (SSE2). This is the verification step of every
/// lookup and of the clustering self-join: 6.5 ns for 128 bytes with SSE2, where the
/// previous 8-bytes-at-a-time bit trick took 15.5 ns and the obvious iterator form longer
/// still.
#[inline]
pub fn equal_bytes(a: &[u8], b: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has AVX-512BW and POPCNT (checked just above).
        return unsafe { equal_bytes_avx512(a, b) };
    }
    equal_bytes_portable(a, b)
}

/// [`equal_bytes`] of `q` with each of the `k`-byte signatures `sigs[id * k..][..k]` of
/// `ids`, in order, into `out` (cleared first): the CPU is asked once which kernel it runs
/// and that kernel is compiled into the loop, where [`equal_bytes`] pays a call and a check
/// per signature (a campaign lookup compares thousands). `ahead` is called with the id
/// [`EQUAL_AHEAD`] places ahead of the one compared (and first with the first ones), to ask
/// the CPU for its signature early.
///
/// # Errors
/// The first id whose signature lies outside `sigs`; `out` then holds the counts before it.
pub fn equal_bytes_each(
    sigs: &[u8],
    k: usize,
    ids: &[u32],
    q: &[u8],
    out: &mut Vec<u32>,
    ahead: impl FnMut(u32),
) -> std::result::Result<(), u32> {
    out.clear();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has AVX-512BW and POPCNT (checked just above).
        return unsafe { equal_bytes_each_avx512((sigs, k, ids, q), out, ahead) };
    }
    equal_bytes_each_with((sigs, k, ids, q), out, ahead, equal_bytes_portable)
}

/// How many ids ahead of the one compared [`equal_bytes_each`] asks for signatures: enough
/// to overlap the misses of a cold campaign's, few enough not to overflow the CPU's
/// outstanding misses (two lines a signature).
pub const EQUAL_AHEAD: usize = 16;

/// [`equal_bytes_each`]'s signatures, their width, the ids and the query.
type EqualBatch<'a> = (&'a [u8], usize, &'a [u32], &'a [u8]);

/// [`equal_bytes_each`] with the AVX-512 kernel inlined.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,popcnt")]
fn equal_bytes_each_avx512(
    batch: EqualBatch<'_>,
    out: &mut Vec<u32>,
    ahead: impl FnMut(u32),
) -> std::result::Result<(), u32> {
    equal_bytes_each_with(batch, out, ahead, |a, b| equal_bytes_avx512(a, b))
}

/// The loop of [`equal_bytes_each`] around one kernel.
#[inline(always)]
fn equal_bytes_each_with(
    (sigs, k, ids, q): EqualBatch<'_>,
    out: &mut Vec<u32>,
    mut ahead: impl FnMut(u32),
    kernel: impl Fn(&[u8], &[u8]) -> usize,
) -> std::result::Result<(), u32> {
    out.reserve(ids.len());
    ids.iter().take(EQUAL_AHEAD).for_each(|&c| ahead(c));
    for (i, &c) in ids.iter().enumerate() {
        if let Some(&next) = ids.get(i + EQUAL_AHEAD) {
            ahead(next);
        }
        let s = (c as usize)
            .checked_mul(k)
            .and_then(|at| sigs.get(at..at.checked_add(k)?))
            .ok_or(c)?;
        out.push(kernel(s, q) as u32);
    }
    Ok(())
}

/// [`equal_bytes`] 64 bytes at a time: one compare into a mask and a popcount each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,popcnt")]
fn equal_bytes_avx512(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (wa, ta) = a[..n].as_chunks::<64>();
    let (wb, tb) = b[..n].as_chunks::<64>();
    let mut eq = 0usize;
    for (x, y) in wa.iter().zip(wb) {
        use std::arch::x86_64::{_mm512_cmpeq_epi8_mask, _mm512_loadu_si512};
        // SAFETY: each load reads the 64 bytes of one chunk (unaligned loads).
        let m = unsafe {
            _mm512_cmpeq_epi8_mask(
                _mm512_loadu_si512(x.as_ptr().cast()),
                _mm512_loadu_si512(y.as_ptr().cast()),
            )
        };
        eq += m.count_ones() as usize;
    }
    eq + ta.iter().zip(tb).filter(|(x, y)| x == y).count()
}

/// [`equal_bytes`] on any CPU.
#[inline]
fn equal_bytes_portable(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (wa, ta) = a[..n].as_chunks::<16>();
    let (wb, tb) = b[..n].as_chunks::<16>();
    let mut eq = 0usize;
    for (ca, cb) in wa.chunks(255).zip(wb.chunks(255)) {
        let mut acc = [0u8; 16];
        for (x, y) in ca.iter().zip(cb) {
            for i in 0..16 {
                acc[i] += u8::from(x[i] == y[i]);
            }
        }
        eq += acc.iter().map(|&v| usize::from(v)).sum::<usize>();
    }
    eq + ta.iter().zip(tb).filter(|(x, y)| x == y).count()
}

/// The number of elements two sorted, deduplicated slices share.
pub fn intersection_len<T: Ord>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    both
}

/// A set of 64-bit hashes in an open-addressing table (linear probing, at most half full):
/// the exact Jaccard similarity of one set against many others without sorting each
/// ([`HashSet64::jaccard_of`]).
#[derive(Debug, Default, Clone)]
pub struct HashSet64 {
    /// `u64::MAX` marks a free slot (the value itself is tracked in `has_max`).
    slots: Vec<u64>,
    bits: u32,
    has_max: bool,
    len: usize,
}

impl HashSet64 {
    /// Empties the set and sizes it for up to `n` values.
    pub fn reset(&mut self, n: usize) {
        let bits = (n.max(4) * 2).next_power_of_two().trailing_zeros();
        self.bits = bits;
        self.slots.clear();
        self.slots.resize(1 << bits, u64::MAX);
        self.has_max = false;
        self.len = 0;
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        // Shingle hashes are hashes already; the multiply spreads any that are not.
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    /// Adds `h`; whether it was new. Sized by [`reset`](Self::reset), the table grows when
    /// more values come.
    #[inline]
    pub fn insert(&mut self, h: u64) -> bool {
        if h == u64::MAX {
            let new = !self.has_max;
            self.has_max = true;
            self.len += usize::from(new);
            return new;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot(h);
        loop {
            let s = &mut self.slots[at & mask];
            if *s == h {
                return false;
            }
            if *s == u64::MAX {
                *s = h;
                self.len += 1;
                return true;
            }
            at += 1;
        }
    }

    /// Doubles the table (at least its least size), keeping the values.
    #[cold]
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let has_max = self.has_max;
        self.reset(old.len().max(4));
        for h in old.into_iter().filter(|&h| h != u64::MAX) {
            self.insert(h);
        }
        self.has_max = has_max;
        self.len += usize::from(has_max);
    }

    /// Whether `h` is in the set.
    #[inline]
    pub fn contains(&self, h: u64) -> bool {
        if h == u64::MAX {
            return self.has_max;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot(h);
        loop {
            let s = self.slots[at & mask];
            if s == h {
                return true;
            }
            if s == u64::MAX {
                return false;
            }
            at += 1;
        }
    }

    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .copied()
            .filter(|&h| h != u64::MAX)
            .chain(self.has_max.then_some(u64::MAX))
    }

    /// The exact Jaccard similarity of this set and `other`, whose values are distinct:
    /// what [`jaccard_of`](Self::jaccard_of) gives for them, to the bit.
    pub fn jaccard_of_distinct(&self, other: &[u64]) -> f64 {
        let both: usize = other.iter().map(|&h| usize::from(self.contains(h))).sum();
        let union = self.len + other.len() - both;
        if union == 0 {
            0.0
        } else {
            both as f64 / union as f64
        }
    }

    /// The exact Jaccard similarity of this set and the distinct values of `other` (in any
    /// order, repeats allowed), using `seen` for the latter: what [`jaccard`] gives for the
    /// two sets sorted and deduplicated, without sorting.
    pub fn jaccard_of(&self, other: &[u64], seen: &mut HashSet64) -> f64 {
        seen.reset(other.len());
        let mut both = 0usize;
        for &h in other {
            if seen.insert(h) {
                both += usize::from(self.contains(h));
            }
        }
        let union = self.len + seen.len - both;
        if union == 0 {
            0.0
        } else {
            both as f64 / union as f64
        }
    }
}

/// The exact Jaccard similarity of two sorted, deduplicated sets (0 when both are empty).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let both = intersection_len(a, b);
    let union = a.len() + b.len() - both;
    if union == 0 {
        0.0
    } else {
        both as f64 / union as f64
    }
}

/// How far from a threshold `t` an 8-bit estimate over `k` minima may fall when the true
/// similarity is on the other side: three standard deviations of the estimate at `t`
/// (b-bit minima agree by chance 1 time in 256, which widens it slightly).
pub fn estimate_margin(t: f64, k: usize) -> f64 {
    const C: f64 = 1.0 / 256.0;
    let t = t.clamp(0.0, 1.0);
    let p = t + (1.0 - t) * C;
    3.0 * (p * (1.0 - p) / k.max(1) as f64).sqrt() / (1.0 - C)
}

/// Jaccard estimate from `eq` equal bytes out of `k` 8-bit minima.
#[inline]
pub fn bbit_estimate(eq: usize, k: usize) -> f64 {
    const C: f64 = 1.0 / 256.0;
    let p = eq as f64 / k.max(1) as f64;
    ((p - C) / (1.0 - C)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn sig(h: &MinHasher, set: &[u64]) -> Vec<u32> {
        let mut s = vec![0; h.k()];
        h.signature(set, &mut s);
        s
    }

    proptest::proptest! {
        /// The batch form counts what `equal_bytes` counts for each id, asks ahead for every
        /// id once, and stops at the first id out of range with the counts before it.
        #[test]
        fn equal_bytes_each_is_equal_bytes_per_id(
            k in 1usize..200,
            n in 0usize..40,
            seed in proptest::prelude::any::<u64>(),
            ids in proptest::collection::vec(0u32..48, 0..80),
        ) {
            let mut x = seed | 1;
            let mut byte = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Few values, so that many bytes are equal.
                (x % 3) as u8
            };
            let sigs: Vec<u8> = (0..n * k).map(|_| byte()).collect();
            let q: Vec<u8> = (0..k).map(|_| byte()).collect();
            let mut out = vec![7];
            let mut asked = Vec::new();
            let got = equal_bytes_each(&sigs, k, &ids, &q, &mut out, |c| asked.push(c));
            let bad = ids.iter().position(|&c| c as usize >= n);
            let good = &ids[..bad.unwrap_or(ids.len())];
            let want: Vec<u32> = good
                .iter()
                .map(|&c| equal_bytes(&sigs[c as usize * k..][..k], &q) as u32)
                .collect();
            proptest::prop_assert_eq!(&out, &want);
            proptest::prop_assert_eq!(got, bad.map_or(Ok(()), |i| Err(ids[i])));
            if bad.is_none() {
                proptest::prop_assert_eq!(&asked, &ids);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn equal_bytes_counts_equal_positions(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            flips in proptest::collection::vec(proptest::prelude::any::<(usize, u8)>(), 0..64),
            cut in 0usize..16,
        ) {
            let mut b = a.clone();
            for (i, v) in flips {
                if !b.is_empty() {
                    let i = i % b.len();
                    b[i] = v;
                }
            }
            b.truncate(b.len().saturating_sub(cut));
            let naive = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            proptest::prop_assert_eq!(equal_bytes(&a, &b), naive);
            proptest::prop_assert_eq!(equal_bytes(&b, &a), naive);
            // Both kernels, whichever the CPU picks above.
            proptest::prop_assert_eq!(equal_bytes_portable(&a, &b), naive);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                // SAFETY: the CPU has the kernel's features (checked just above).
                proptest::prop_assert_eq!(unsafe { equal_bytes_avx512(&a, &b) }, naive);
            }
        }
    }

    proptest::proptest! {
        /// The hashed Jaccard similarity is the sorted one, for sets with repeats, zero and
        /// `u64::MAX` (the free-slot marker) among the values.
        #[test]
        fn hashed_jaccard_is_the_sorted_one(
            a in proptest::collection::vec(0u64..40, 0..60),
            b in proptest::collection::vec(0u64..40, 0..60),
            extremes in 0u8..4,
        ) {
            let map = |v: &[u64]| -> Vec<u64> {
                v.iter()
                    .map(|&x| match (x, extremes) {
                        (0, 1 | 3) => u64::MAX,
                        (1, 2 | 3) => 0,
                        _ => x.wrapping_mul(0x2545_F491_4F6C_DD1D),
                    })
                    .collect()
            };
            let (a, b) = (map(&a), map(&b));
            let (mut sa, mut sb) = (a.clone(), b.clone());
            sa.sort_unstable();
            sa.dedup();
            sb.sort_unstable();
            sb.dedup();
            let mut table = HashSet64::default();
            table.reset(sa.len());
            for &h in &a {
                table.insert(h);
            }
            proptest::prop_assert_eq!(table.len(), sa.len());
            let mut seen = HashSet64::default();
            let got = table.jaccard_of(&b, &mut seen);
            proptest::prop_assert_eq!(got.to_bits(), jaccard(&sa, &sb).to_bits());
            for &h in &b {
                proptest::prop_assert_eq!(table.contains(h), sa.binary_search(&h).is_ok());
            }
        }
    }

    /// A set never reset, or filled past the size it was reset for, grows (no endless probe).
    #[test]
    fn hash_set_grows_past_its_size() {
        let mut set = HashSet64::default();
        assert!(!set.contains(7));
        set.reset(2);
        for h in 0..1000u64 {
            set.insert(h.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        assert!(set.insert(u64::MAX) && !set.insert(u64::MAX) && !set.insert(0));
        assert_eq!(set.len(), 1001);
        assert!(set.contains(u64::MAX) && set.contains(0));
        assert!((1..1000u64).all(|h| set.contains(h.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
        let mut fresh = HashSet64::default();
        assert!(fresh.insert(3) && !fresh.insert(3) && fresh.len() == 1);
    }

    #[test]
    fn jaccard_of_sorted_sets() {
        assert_eq!(jaccard(&[], &[]), 0.0);
        assert_eq!(jaccard(&[1, 2, 3], &[]), 0.0);
        assert_eq!(jaccard(&[1, 2, 3], &[1, 2, 3]), 1.0);
        assert_eq!(jaccard(&[1, 2, 3, 4], &[3, 4, 5, 6]), 2.0 / 6.0);
        assert_eq!(jaccard(&[5], &[1, 2, 5, 9]), 0.25);
    }

    /// A set's values, handed back as a distinct list, give the similarity `jaccard_of`
    /// gives for the values with repeats (the shingle memo of a lookup relies on it), `MAX`
    /// (kept outside the table) included.
    #[test]
    fn distinct_values_give_the_same_similarity() {
        let mut q = HashSet64::default();
        q.reset(8);
        for h in [1, 2, 3, 40, u64::MAX] {
            q.insert(h);
        }
        let other = [2u64, 3, 3, 99, u64::MAX, 2, 7, 0];
        let mut seen = HashSet64::default();
        let want = q.jaccard_of(&other, &mut seen);
        let mut distinct: Vec<u64> = seen.values().collect();
        distinct.sort_unstable();
        assert_eq!(distinct, [0, 2, 3, 7, 99, u64::MAX]);
        assert_eq!(q.jaccard_of_distinct(&distinct).to_bits(), want.to_bits());
        assert_eq!(want, 3.0 / 8.0);
        assert_eq!(HashSet64::default().jaccard_of_distinct(&[]), 0.0);
    }

    #[test]
    fn estimate_margin_covers_three_sigma() {
        // At t = 0.5 and k = 128, sigma = sqrt(0.25 / 128) = 0.0442.
        let m = estimate_margin(0.5, 128);
        assert!((0.13..0.14).contains(&m), "{m}");
        assert!(estimate_margin(0.9, 128) < m);
        assert!(estimate_margin(0.5, 256) < m);
    }

    #[test]
    fn equal_bytes_on_extremes() {
        assert_eq!(equal_bytes(&[0u8; 128], &[0u8; 128]), 128);
        // Past 255 rounds of 16 bytes, where the byte counters are summed and reset.
        for n in [4079, 4080, 4081, 4096, 5000, 9000] {
            assert_eq!(equal_bytes(&vec![7u8; n], &vec![7u8; n + 3]), n);
            let b: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { 7 } else { 8 }).collect();
            assert_eq!(equal_bytes(&vec![7u8; n], &b), n.div_ceil(3));
        }
        assert_eq!(equal_bytes(&[0u8; 128], &[0xffu8; 128]), 0);
        assert_eq!(equal_bytes(&[0x80u8; 13], &[0x00u8; 13]), 0);
        assert_eq!(equal_bytes(&[0x7fu8; 13], &[0x7fu8; 12]), 12);
        assert_eq!(equal_bytes(&[], &[1, 2]), 0);
        for n in [64, 127, 128, 129, 4096, 5000] {
            let b: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { 7 } else { 8 }).collect();
            assert_eq!(equal_bytes_portable(&vec![7u8; n], &b), n.div_ceil(3));
        }
    }

    #[test]
    fn estimate_within_three_sigma_of_exact_jaccard() {
        let k = 128;
        let h = MinHasher::new(k, 42);
        let mut rng = SplitMix64(7);
        let mut outside = 0;
        let trials = 400;
        for t in 0..trials {
            // Two sets sharing `common` of their elements.
            let n = 20 + (rng.next_u64() % 200) as usize;
            let common = (rng.next_u64() % (n as u64 + 1)) as usize;
            let shared: Vec<u64> = (0..common).map(|_| rng.next_u64()).collect();
            let mut a = shared.clone();
            let mut b = shared;
            a.extend((common..n).map(|_| rng.next_u64()));
            b.extend((common..n).map(|_| rng.next_u64()));
            let (sa, sb): (HashSet<u64>, HashSet<u64>) =
                (a.iter().copied().collect(), b.iter().copied().collect());
            let j = sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64;
            let est = similarity(&sig(&h, &a), &sig(&h, &b));
            let sigma = (j * (1.0 - j) / k as f64).sqrt();
            if (est - j).abs() > 3.0 * sigma + 1e-9 {
                outside += 1;
                eprintln!("trial {t}: J={j:.3} est={est:.3}");
            }
        }
        // 3 sigma covers 99.7%: allow a few, fail on a systematic bias.
        assert!(
            outside <= trials / 100 + 2,
            "{outside} of {trials} outside 3 sigma"
        );
    }

    #[test]
    fn bbit_tracks_full() {
        let h = MinHasher::new(128, 1);
        let a: Vec<u64> = (0..100).collect();
        let b: Vec<u64> = (50..150).collect();
        let (sa, sb) = (sig(&h, &a), sig(&h, &b));
        let (mut ba, mut bb) = ([0u8; 128], [0u8; 128]);
        to_bbit(&sa, &mut ba);
        to_bbit(&sb, &mut bb);
        let j = 50.0 / 150.0;
        assert!((bbit_similarity(&ba, &bb) - j).abs() < 0.15);
        assert_eq!(bbit_similarity(&ba, &ba), 1.0);
        let c: Vec<u64> = (1000..1100).collect();
        let mut bc = [0u8; 128];
        to_bbit(&sig(&h, &c), &mut bc);
        assert!(bbit_similarity(&ba, &bc) < 0.05);
    }

    #[test]
    fn odd_k_and_blocks_agree() {
        let h = MinHasher::new(70, 3);
        let set: Vec<u64> = (0..37).map(|x| x * 7919).collect();
        let s = sig(&h, &set);
        for (i, &got) in s.iter().enumerate() {
            let want = set
                .iter()
                .map(|&x| (h.a[i].wrapping_mul(key(x)).wrapping_add(h.b[i]) >> 32) as u32)
                .min()
                .unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn kernel_block_sizes_agree() {
        // The block size is chosen by CPU; every choice must give the scalar definition's
        // minima, for k below, at and across block boundaries.
        for k in [1, 31, 32, 33, 64, 65, 128, 200] {
            let h = MinHasher::new(k, 11);
            let set: Vec<u64> = (0..53u64)
                .map(|x| x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            let want: Vec<u32> = (0..k)
                .map(|i| {
                    set.iter()
                        .map(|&x| (h.a[i].wrapping_mul(key(x)).wrapping_add(h.b[i]) >> 32) as u32)
                        .min()
                        .unwrap()
                })
                .collect();
            let (mut s32, mut s64) = (vec![0; k], vec![0; k]);
            signature_kernel::<32>(&h.a, &h.b, &set, &mut s32);
            signature_kernel::<64>(&h.a, &h.b, &set, &mut s64);
            assert_eq!(s32, want, "k {k}, blocks of 32");
            assert_eq!(s64, want, "k {k}, blocks of 64");
        }
    }
}
