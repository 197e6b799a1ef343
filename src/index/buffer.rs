//! The segment being filled in memory, and what feeds it: posts fingerprinted in parallel
//! ([`prepare`]), interned accounts and platforms, and a Bloom filter over the ids of
//! segments already written (for exact duplicate-id detection).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use super::options::NewPost;
use super::segment::{prefetch_item, NO_TS};
use crate::fingerprint::{Fingerprinter, Scratch};
use crate::minhash::to_bbit;

/// Band tables a flush builds at once (in parallel). A constant, not the thread count: the
/// memory a flush needs decides where segments end, and that must not depend on threads.
pub(crate) const BAND_TABLES_AT_ONCE: usize = 4;

/// Contents per block of the buffer's band-key columns ([`Buffer::keys`]).
pub(crate) const KEY_BLOCK: usize = 4096;

/// A hasher for keys that already are uniformly distributed hashes (content and id hashes):
/// it keeps the low 64 bits instead of hashing again.
#[derive(Default, Clone, Copy)]
pub(crate) struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; fold them in.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

pub(crate) type PreHashedMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<PreHashed>>;

/// A post fingerprinted in parallel, waiting for in-order insertion: its content hash and
/// the hashes the insertion looks its id, account and platform up by.
pub(crate) struct Prepared {
    pub(crate) content_hash: u128,
    pub(crate) empty: bool,
    pub(crate) hashes: PostHashes,
}

/// The xxh3-64 hashes of a post's id, account and platform, computed in parallel so that
/// the in-order insertion does not hash them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PostHashes {
    pub(crate) id: u64,
    pub(crate) account: u64,
    pub(crate) platform: u64,
}

impl PostHashes {
    pub(crate) fn of(post: &NewPost<'_>) -> PostHashes {
        PostHashes {
            id: xxh3_64(post.id.as_bytes()),
            account: xxh3_64(post.account.as_bytes()),
            platform: xxh3_64(post.platform.as_bytes()),
        }
    }
}

/// The fingerprints of a batch of posts, waiting for [`IndexBuilder::add_prepared`]: per
/// chunk of posts, their outcomes and flat 8-bit signature and band-key buffers.
pub(crate) struct PreparedBatch {
    pub(crate) chunks: Vec<(Vec<Prepared>, Vec<u8>, Vec<u64>)>,
}

/// Fingerprints `posts` in parallel (rayon) for [`IndexBuilder::add_prepared`].
pub(crate) fn prepare(fp: &Fingerprinter, posts: &[NewPost<'_>]) -> PreparedBatch {
    let k = fp.params().num_perm as usize;
    let bands = fp.params().lsh.bands as usize;
    let chunks = posts
        .par_chunks(256)
        .map_init(
            || (Scratch::new(), Vec::new()),
            |(scratch, keys), chunk| {
                let mut prepared = Vec::with_capacity(chunk.len());
                let mut sigs = Vec::with_capacity(chunk.len() * k);
                let mut all_keys = Vec::with_capacity(chunk.len() * bands);
                for post in chunk {
                    let hashes = PostHashes::of(post);
                    match fp.fingerprint_with(post.text, scratch) {
                        Some(f) => {
                            let start = sigs.len();
                            sigs.resize(start + k, 0);
                            to_bbit(f.signature, &mut sigs[start..]);
                            let hash = f.content_hash;
                            fp.band_keys(f.signature, keys);
                            all_keys.extend_from_slice(keys);
                            prepared.push(Prepared {
                                content_hash: hash,
                                empty: false,
                                hashes,
                            });
                        }
                        None => prepared.push(Prepared {
                            content_hash: 0,
                            empty: true,
                            hashes,
                        }),
                    }
                }
                (prepared, sigs, all_keys)
            },
        )
        .collect();
    PreparedBatch { chunks }
}

/// The segment being buffered in memory.
#[derive(Default)]
pub(crate) struct Buffer {
    pub(crate) contents: PreHashedMap<u128, u32>,
    /// b-bit signatures, `k` bytes per content.
    pub(crate) sigs: Vec<u8>,
    /// Content hashes, in content order.
    pub(crate) hashes: Vec<u128>,
    /// The top 32 bits of each content's band keys (all a segment's band tables use), in
    /// blocks of [`KEY_BLOCK`] contents, column by column within a block: content `c`'s key
    /// of band `j` is at `(c / KEY_BLOCK) * bands * KEY_BLOCK + j * KEY_BLOCK + c %
    /// KEY_BLOCK`. A band table reads its column as a few long runs, with no pass over the
    /// other bands' keys ([`key_column`](Self::key_column)).
    pub(crate) keys: Vec<u32>,
    /// Per post: content, ts, account, platform, id range, text range.
    pub(crate) post_content: Vec<u32>,
    pub(crate) post_ts: Vec<i64>,
    pub(crate) post_account: Vec<u32>,
    pub(crate) post_platform: Vec<u32>,
    pub(crate) id_ends: Vec<u64>,
    pub(crate) ids: Vec<u8>,
    pub(crate) text_ends: Vec<u64>,
    pub(crate) texts: Vec<u8>,
    pub(crate) id_hashes: PreHashedMap<u64, u32>,
    pub(crate) accounts: Dict,
    pub(crate) platforms: Dict,
    /// The capacities the vectors above would have grown to from empty: what they hold
    /// beyond that was recycled from the last segment ([`retained`](Self::retained)).
    grown: Grown,
}

/// What each of a [`Buffer`]'s vectors would hold, in elements, had it grown from empty
/// since the segment began: `Vec`'s amortized growth (twice the capacity or what is
/// needed, whichever is more, and at least 8 bytes' or 4 elements' worth). A recycled
/// vector keeps the last segment's capacity (its pages stay with the process instead of
/// being handed back and zeroed by the kernel again); what it holds beyond this one is
/// counted as retained, and given back when the budget needs it.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Grown {
    sigs: usize,
    hashes: usize,
    keys: usize,
    post_content: usize,
    post_ts: usize,
    post_account: usize,
    post_platform: usize,
    id_ends: usize,
    ids: usize,
    text_ends: usize,
    texts: usize,
}

/// Calls `$each!(field)` for each vector a segment fills and the next one recycles: the
/// fields of [`Grown`], named alike in [`Buffer`].
macro_rules! recycled_vectors {
    ($each:ident) => {
        $each!(sigs);
        $each!(hashes);
        $each!(keys);
        $each!(post_content);
        $each!(post_ts);
        $each!(post_account);
        $each!(post_platform);
        $each!(id_ends);
        $each!(ids);
        $each!(text_ends);
        $each!(texts);
    };
}

/// The size in bytes of one element of `v`.
fn element_size<T>(_: &Vec<T>) -> usize {
    std::mem::size_of::<T>()
}

/// The capacity `cap` becomes when a vector of `T` grows to hold `len` elements.
fn grow<T>(cap: usize, len: usize) -> usize {
    if len <= cap {
        return cap;
    }
    let min = match std::mem::size_of::<T>() {
        1 => 8,
        2..=1024 => 4,
        _ => 1,
    };
    (cap * 2).max(len).max(min)
}

/// Interned strings in first-seen order.
#[derive(Default)]
pub(crate) struct Dict {
    /// String number by the xxh3-64 hash of the string (the first string with that hash).
    index: PreHashedMap<u64, u32>,
    /// Strings whose hash an earlier, different string has.
    collided: HashMap<String, u32, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
    pub(crate) ends: Vec<u64>,
    pub(crate) bytes: Vec<u8>,
}

impl Dict {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        self.intern_hashed(s, xxh3_64(s.as_bytes()))
    }

    /// [`intern`](Self::intern) with `h = xxh3_64(s)` already computed.
    pub(crate) fn intern_hashed(&mut self, s: &str, h: u64) -> u32 {
        let n = self.ends.len() as u32;
        match self.index.entry(h) {
            Entry::Occupied(e) => {
                let i = *e.get();
                if self.get(i) == s.as_bytes() {
                    return i;
                }
                if let Some(&j) = self.collided.get(s) {
                    return j;
                }
                self.collided.insert(s.to_string(), n);
            }
            Entry::Vacant(e) => {
                e.insert(n);
            }
        }
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len() as u64);
        n
    }

    /// String number `i`'s bytes.
    fn get(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let s = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[s..self.ends[i] as usize]
    }

    /// Counted as a map holding its own copy of each string (what it was before strings
    /// were looked up by hash), so that segments end where they did.
    fn memory(&self) -> usize {
        self.bytes.capacity() * 2
            + (self.index.capacity() + self.collided.capacity()) * 40
            + self.ends.capacity() * 8
    }
}

impl Buffer {
    /// Adds a post with content hash `hash`, id, account and platform hashes `hashes`,
    /// 8-bit signature `sig` and band keys `keys` (texts are kept only with `store_text`). An exact duplicate of a buffered text
    /// shares its content.
    pub(crate) fn insert(
        &mut self,
        post: &NewPost<'_>,
        hash: u128,
        hashes: &PostHashes,
        sig: &[u8],
        keys: &[u64],
        store_text: bool,
    ) {
        let b = self;
        let n = b.contents.len() as u32;
        let cid = match b.contents.entry(hash) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                e.insert(n);
                b.hashes.push(hash);
                b.sigs.extend_from_slice(sig);
                let block = keys.len() * KEY_BLOCK;
                let at = n as usize % KEY_BLOCK;
                if at == 0 {
                    b.keys.resize(b.keys.len() + block, 0);
                }
                // The last block is this content's (it starts one every KEY_BLOCK).
                let start = b.keys.len().saturating_sub(block) + at;
                let column = b.keys.get_mut(start..).unwrap_or_default();
                for (slot, &k) in column.iter_mut().step_by(KEY_BLOCK).zip(keys) {
                    *slot = (k >> 32) as u32;
                }
                let g = &mut b.grown;
                g.hashes = grow::<u128>(g.hashes, b.hashes.len());
                g.sigs = grow::<u8>(g.sigs, b.sigs.len());
                g.keys = grow::<u32>(g.keys, b.keys.len());
                n
            }
        };
        let p = b.posts() as u32;
        b.post_content.push(cid);
        b.post_ts.push(post.ts.unwrap_or(NO_TS));
        let a = b.accounts.intern_hashed(post.account, hashes.account);
        b.post_account.push(a);
        let pl = b.platforms.intern_hashed(post.platform, hashes.platform);
        b.post_platform.push(pl);
        b.ids.extend_from_slice(post.id.as_bytes());
        b.id_ends.push(b.ids.len() as u64);
        if store_text {
            b.texts.extend_from_slice(post.text.as_bytes());
        }
        b.text_ends.push(b.texts.len() as u64);
        let g = &mut b.grown;
        let posts = b.post_content.len();
        g.post_content = grow::<u32>(g.post_content, posts);
        g.post_ts = grow::<i64>(g.post_ts, posts);
        g.post_account = grow::<u32>(g.post_account, posts);
        g.post_platform = grow::<u32>(g.post_platform, posts);
        g.id_ends = grow::<u64>(g.id_ends, posts);
        g.text_ends = grow::<u64>(g.text_ends, posts);
        g.ids = grow::<u8>(g.ids, b.ids.len());
        g.texts = grow::<u8>(g.texts, b.texts.len());
        // A 64-bit hash collision between two different ids keeps the first in the map; the
        // second is then only checked against flushed segments (probability ~2^-64 per pair).
        b.id_hashes.entry(hashes.id).or_insert(p);
    }

    pub(crate) fn posts(&self) -> usize {
        self.post_content.len()
    }

    /// The top 32 bits of every content's key of band `band` (of `bands`), in content
    /// order.
    pub(crate) fn key_column(&self, band: usize, bands: usize) -> impl Iterator<Item = u32> + '_ {
        let n = self.contents.len();
        self.keys
            .chunks((bands * KEY_BLOCK).max(1))
            .enumerate()
            .flat_map(move |(i, block)| {
                let len = n.saturating_sub(i * KEY_BLOCK).min(KEY_BLOCK);
                let from = (band * KEY_BLOCK).min(block.len());
                block[from..(from + len).min(block.len())].iter().copied()
            })
    }

    pub(crate) fn id(&self, p: usize) -> &[u8] {
        let s = if p == 0 {
            0
        } else {
            self.id_ends[p - 1] as usize
        };
        &self.ids[s..self.id_ends[p] as usize]
    }

    pub(crate) fn text(&self, p: usize) -> &[u8] {
        let s = if p == 0 {
            0
        } else {
            self.text_ends[p - 1] as usize
        };
        &self.texts[s..self.text_ends[p] as usize]
    }

    /// Starts loading post `p`'s text (up to its first 256 bytes) into the CPU cache, and
    /// the end offset of post `later`'s, so a pass in another order than input order waits
    /// on neither (a hint).
    pub(crate) fn prefetch_text(&self, p: usize, later: Option<usize>) {
        if let Some(q) = later {
            prefetch_item(&self.text_ends, q);
        }
        if p < self.text_ends.len() {
            let t = self.text(p);
            for i in (0..t.len().min(256)).step_by(64) {
                prefetch_item(t, i);
            }
        }
    }

    /// Approximate bytes held, plus what a flush needs on top: the band tables being built
    /// in parallel and the post permutation arrays.
    ///
    /// The vectors are counted at their lengths: the bytes they have touched. Capacity a
    /// vector grew into but has not filled is not resident (and glibc grows a large block
    /// with `mremap`, without holding two copies), and what a recycled one still holds is
    /// [`retained`](Self::retained). Maps are counted at their capacity: a growing map
    /// holds its old and new tables at once.
    pub(crate) fn memory(&self) -> usize {
        let map = |cap: usize, entry: usize| cap * (entry + 1) * 8 / 7;
        let held = self.sigs.len()
            + self.hashes.len() * 16
            + self.keys.len() * 4
            + map(self.contents.capacity(), 20)
            + map(self.id_hashes.capacity(), 12)
            + (self.post_content.len() + self.post_account.len() + self.post_platform.len()) * 4
            + (self.post_ts.len() + self.id_ends.len() + self.text_ends.len()) * 8
            + self.ids.len()
            + self.texts.len()
            + self.accounts.memory()
            + self.platforms.memory();
        let n = self.contents.len();
        let flush = BAND_TABLES_AT_ONCE * n * 16 + self.posts() * 12;
        held + flush
    }

    /// Bytes the recycled vectors hold beyond what [`memory`](Self::memory) counts: a
    /// vector that still has more of the last segment's capacity than it would have grown
    /// to in this one holds it all, touched (resident), past its length.
    pub(crate) fn retained(&self) -> usize {
        let mut bytes = 0;
        macro_rules! over {
            ($f:ident) => {
                if self.$f.capacity() > self.grown.$f {
                    bytes += (self.$f.capacity() - self.$f.len()) * element_size(&self.$f);
                }
            };
        }
        recycled_vectors!(over);
        bytes
    }

    /// Empties the buffer for the next segment. The vectors keep their memory (their pages
    /// stay with the process, already zeroed and mapped: a 10M build's six segments asked
    /// the kernel for ~1 GB each); the maps and dictionaries start afresh, as they did.
    /// Capacity the last segment grew into but never used (a vector that doubled in its
    /// last chunk of posts) is given back: its pages were never touched.
    pub(crate) fn recycle(&mut self) {
        fn empty<T>(v: &mut Vec<T>) {
            let used = v.len();
            v.clear();
            v.shrink_to(used);
        }
        macro_rules! empty {
            ($f:ident) => {
                empty(&mut self.$f)
            };
        }
        recycled_vectors!(empty);
        self.contents = PreHashedMap::default();
        self.id_hashes = PreHashedMap::default();
        self.accounts = Dict::default();
        self.platforms = Dict::default();
        self.grown = Grown::default();
    }

    /// Gives back what the recycled vectors hold beyond what this segment has grown into
    /// (when the mix changes and the last segment's vectors would overrun the budget).
    pub(crate) fn release_retained(&mut self) {
        macro_rules! release {
            ($f:ident) => {
                self.$f.shrink_to(self.grown.$f)
            };
        }
        recycled_vectors!(release);
    }
}

/// A scalable Bloom filter over 64-bit id hashes (layers double in size). Blocked: an id's
/// 7 bits lie in one 512-bit block, so a lookup costs one cache line per layer.
#[derive(Default)]
pub(crate) struct Bloom {
    layers: Vec<(Vec<[u64; 8]>, u64, u64)>, // (blocks, capacity, count)
}

impl Bloom {
    /// The block of `h` among `n` blocks, and the 7 bit positions in it.
    fn probes(h: u64, n: usize) -> (usize, impl Iterator<Item = usize>) {
        let block = ((u128::from(h) * n as u128) >> 64) as usize;
        let g = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (
            block,
            (0..7).map(move |i| ((g >> (64 - 9 * (i + 1))) & 511) as usize),
        )
    }

    pub(crate) fn contains(&self, h: u64) -> bool {
        self.layers.iter().any(|(blocks, _, _)| {
            let (b, mut bits) = Bloom::probes(h, blocks.len());
            let block = &blocks[b];
            bits.all(|i| block[i / 64] & (1 << (i % 64)) != 0)
        })
    }

    pub(crate) fn insert(&mut self, h: u64) {
        let need = match self.layers.last() {
            Some((_, cap, count)) => count >= cap,
            None => true,
        };
        if need {
            let cap = self.layers.last().map_or(1 << 20, |l| l.1 * 2);
            // ~10 bits per id: about 1% false positives with 7 probes (a little more in
            // blocks); a false positive costs an `ids.fst` lookup, never a wrong answer.
            self.layers
                .push((vec![[0u64; 8]; (cap * 10 / 512 + 1) as usize], cap, 0));
        }
        if let Some((blocks, _, count)) = self.layers.last_mut() {
            let (b, bits) = Bloom::probes(h, blocks.len());
            let block = &mut blocks[b];
            for i in bits {
                block[i / 64] |= 1 << (i % 64);
            }
            *count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut bloom = Bloom::default();
        let n = 300_000u64;
        for i in 0..n {
            bloom.insert(xxh3_64(&i.to_le_bytes()));
        }
        assert!((0..n).all(|i| bloom.contains(xxh3_64(&i.to_le_bytes()))));
        let fp = (n..2 * n)
            .filter(|i| bloom.contains(xxh3_64(&i.to_le_bytes())))
            .count();
        // 300,000 ids in a layer sized for 2^20: far below its 1% at capacity.
        assert!(fp < 300, "{fp} false positives");
    }

    /// Inserts `n` posts numbered from `from` (every third text a repeat, so contents and
    /// posts grow apart; lengths vary) into `b`, calling `after` after each.
    fn fill(b: &mut Buffer, from: usize, n: usize, mut after: impl FnMut(&Buffer)) {
        for i in from..from + n {
            let id = format!("post-{i}");
            let text = "x".repeat(1 + (i * 37) % 301);
            let hash = if i % 3 == 0 { 7 } else { i as u128 };
            let post = NewPost {
                id: &id,
                text: &text,
                account: if i % 2 == 0 { "a" } else { "b" },
                platform: "p",
                ts: Some(i as i64),
            };
            let hashes = PostHashes::of(&post);
            b.insert(&post, hash, &hashes, &[i as u8; 128], &[i as u64; 32], true);
            after(b);
        }
    }

    /// Each band's column gives every content's key top bits in content order, across
    /// blocks and a partial last block; a repeated text adds no content and no keys.
    #[test]
    fn key_columns_give_each_contents_keys_in_order() {
        let mut b = Buffer::default();
        let n = 2 * KEY_BLOCK + 5;
        let key = |c: usize, band: usize| ((c as u64 * 40_503 + band as u64 * 977) << 32) | 0xFFFF;
        for c in 0..n {
            let id = format!("p{c}");
            let post = NewPost {
                id: &id,
                text: "t",
                account: "a",
                platform: "p",
                ts: None,
            };
            let keys: Vec<u64> = (0..32).map(|band| key(c, band)).collect();
            let hashes = PostHashes::of(&post);
            b.insert(&post, c as u128, &hashes, &[0; 128], &keys, false);
            if c == 7 {
                // A second post of content 7: no new keys.
                let post = NewPost {
                    id: "again",
                    ..post
                };
                b.insert(&post, 7, &PostHashes::of(&post), &[0; 128], &[0; 32], false);
            }
        }
        assert_eq!(b.keys.len(), 3 * 32 * KEY_BLOCK);
        for band in [0, 1, 17, 31] {
            let want: Vec<u32> = (0..n).map(|c| (key(c, band) >> 32) as u32).collect();
            assert_eq!(
                b.key_column(band, 32).collect::<Vec<_>>(),
                want,
                "band {band}"
            );
        }
    }

    #[test]
    fn a_recycled_buffer_is_counted_as_a_new_one_and_keeps_its_memory() {
        // Fresh: `grown` is each vector's real capacity, post after post, and nothing is
        // retained.
        let mut fresh = Buffer::default();
        let mut counted = Vec::new();
        fill(&mut fresh, 0, 3_000, |b| {
            let mut real = Grown::default();
            macro_rules! capacity {
                ($f:ident) => {
                    real.$f = b.$f.capacity()
                };
            }
            recycled_vectors!(capacity);
            assert_eq!(b.grown, real, "after {} posts", b.posts());
            assert_eq!(b.retained(), 0);
            counted.push(b.memory());
        });
        // Recycled after a larger segment: counted the same, post after post (segments end
        // where a fresh buffer's would), while its vectors keep the memory they had.
        let mut used = Buffer::default();
        fill(&mut used, 10_000, 5_000, |_| {});
        let texts = used.texts.len();
        used.recycle();
        assert_eq!(used.posts(), 0);
        assert_eq!(used.contents.len(), 0);
        assert_eq!(used.texts.capacity(), texts, "kept as far as it was used");
        assert!(used.retained() >= texts);
        let mut at = 0;
        fill(&mut used, 0, 3_000, |b| {
            assert_eq!(b.memory(), counted[at], "after {} posts", b.posts());
            at += 1;
        });
        // Fewer, shorter posts than the segment before: its texts were not all grown into.
        assert!(used.retained() > 0);
        assert_eq!(used.texts, fresh.texts);
        assert_eq!(used.ids, fresh.ids);
        assert_eq!(used.keys, fresh.keys);
        used.release_retained();
        assert_eq!(used.retained(), 0);
        assert_eq!(used.memory(), fresh.memory());
        assert_eq!(
            used.texts, fresh.texts,
            "released without losing what it holds"
        );
    }
}
