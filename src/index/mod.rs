//! The on-disk index: immutable, memory-mapped segments named by a manifest.
//!
//! What a service needs is re-exported here: [`Index`] (open a generation, query it from
//! many threads: `Send + Sync`, queries take `&self`), [`IndexReader`] (a snapshot swapped by
//! `reload`), [`IndexWriter`] (the one writer: add, delete, commit, merge, save clusters),
//! [`IndexBuilder`] (a bulk build) and [`ingest`] (input files in, index out, bad records
//! reported). The byte format, the manifest's publication, the segment reader's internals
//! and the encoders are private to the crate. See `FORMAT.md` for the byte layout and `ARCHITECTURE.md` for the map.

mod buffer;
mod build;
pub(crate) mod clusters_file;
mod durable;
mod encode;
pub(crate) mod format;
pub mod ingest;
pub(crate) mod manifest;
mod merge;
pub(crate) mod mmap;
mod options;
mod order;
mod query;
mod reader;
pub(crate) mod segment;
pub mod staged;
mod txn;
mod writer;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprinter;
use crate::minhash::bbit_estimate;
pub use build::IndexBuilder;
pub use clusters_file::ClusterAssignment;
pub use manifest::{ClustersEntry, DeletedEntry, FileEntry, Manifest, SegmentEntry};
pub use merge::{memory_need as merge_memory_need, plan, plan_within};
pub use merge::{MergeOptions, MergeStats, MergeSteps};
pub use options::{
    BuildOptions, BuildStats, Existing, NewPost, OnExistingId, PostOutcome, StageTimes,
};
pub(crate) use query::LookupBuffers;
pub use query::{Hit, HitRef, QueryOptions, QueryRefs, QueryResult};
pub use reader::IndexReader;
pub use segment::{Segment, TextCache};
pub use writer::{merge, merge_with_progress, merge_within_budget, IndexWriter};

/// How an index's files are accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Memory-map every file (the default): open is instant whatever the size.
    #[default]
    Mmap,
    /// Read every file but the stored texts into memory (on Linux, files of 4 MiB or more
    /// into memory asked to be backed by huge pages: warm lookups then miss the TLB less
    /// often). The texts stay mapped: a hit reads one small frame of them.
    InMemory,
}

/// Options for [`Index::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Memory-map or read into memory.
    pub access: Access,
    /// Before probing, ask the kernel to read in every page a query will touch, so cold
    /// reads overlap. Helps when the index is not in the page cache; costs a few system
    /// calls per query when it is.
    pub prefetch: bool,
}

/// Where a post lives in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PostAddr {
    /// Segment id.
    pub segment: u64,
    /// Post index within the segment.
    pub post: u32,
}

/// A post's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Post {
    /// External id.
    pub id: String,
    /// Account.
    pub account: String,
    /// Platform.
    pub platform: String,
    /// Unix seconds, if known.
    pub ts: Option<i64>,
    /// Text, if stored.
    pub text: Option<String>,
    /// Where it lives.
    pub addr: PostAddr,
}

/// An open index. `Send + Sync`: share it (e.g. in an `Arc`) and query from many threads.
#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    fp: Fingerprinter,
    segments: Vec<Segment>,
    clusters: Option<clusters_file::ClustersFile>,
    opts: OpenOptions,
    /// Text caches (a zstd context and the last block) for lookups made through
    /// `query_with`, taken for one lookup and given back: a context per lookup cost about a
    /// quarter of a lookup with texts. Per index, so a cached block always names this
    /// index's files.
    text_caches: std::sync::Mutex<Vec<TextCache>>,
    /// The similarity estimate of each count of equal signature bytes (0 to `num_perm`),
    /// computed once: a lookup verifying a thousand candidates looks them up instead of
    /// dividing twice for each.
    estimates: Box<[f64]>,
}

/// Statistics of an open index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStats {
    /// Live posts.
    pub posts: u64,
    /// Deleted posts still held by segments (gone after a merge).
    pub deleted: u64,
    /// Unique texts (summed over segments).
    pub unique_texts: u64,
    /// Segments.
    pub segments: usize,
    /// Manifest generation.
    pub generation: u64,
    /// Fingerprint parameters.
    pub params: crate::FingerprintParams,
    /// Bytes per file name, summed over segments.
    pub bytes_by_file: std::collections::BTreeMap<String, u64>,
    /// All index bytes.
    pub bytes: u64,
    /// Bytes per post.
    pub bytes_per_post: f64,
    /// Bytes per unique text, without stored texts.
    pub bytes_per_unique_text_without_text: f64,
}

impl Index {
    /// Opens the index in `dir` with memory maps. Validates every file's header, version and
    /// section lengths (O(1) per file); use [`verify`](Self::verify) for a checksum pass.
    ///
    /// # Errors
    /// [`Error::NoIndex`] if `dir` holds no index, [`Error::Damaged`] if it holds manifests
    /// but no `CURRENT`; [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`], [`Error::Corrupt`] or [`Error::ChecksumMismatch`] for a
    /// damaged one; [`Error::Io`] otherwise.
    pub fn open(dir: impl AsRef<Path>) -> Result<Index> {
        Index::open_with(dir, OpenOptions::default())
    }

    /// Opens the index in `dir` with options.
    ///
    /// A writer may publish a new generation and remove the old one's files while this runs;
    /// a file that disappears that way makes the open start over on the new generation.
    pub fn open_with(dir: impl AsRef<Path>, opts: OpenOptions) -> Result<Index> {
        let dir = dir.as_ref().to_path_buf();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (manifest, path) = match Manifest::load_current(&dir) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    // Manifests without `CURRENT`: a damaged index, not an empty directory.
                    let u = txn::Unpublished::scan(&dir)?;
                    if !u.index_files.is_empty() {
                        return Err(u.damaged(&dir));
                    }
                    return Err(Error::NoIndex { path: dir });
                }
                // CURRENT named a manifest that a writer has just replaced and removed.
                Err(e) if is_not_found(&e) && attempts < 100 => continue,
                Err(e) => return Err(e),
            };
            match Index::open_manifest(&dir, manifest, opts) {
                Err(e) if is_not_found(&e) && attempts < 100 => {
                    // A writer published a new generation and removed this one's files:
                    // start over on the new one. Otherwise the file is really missing.
                    let moved_on = match Manifest::load_current(&dir) {
                        Ok(Some((_, p))) => p != path,
                        // Its manifest was removed too: yet another generation is out.
                        Err(e) => is_not_found(&e),
                        Ok(None) => false,
                    };
                    if !moved_on {
                        return Err(e);
                    }
                    if attempts > 4 {
                        // A writer is publishing generation after generation: let it run.
                        std::thread::yield_now();
                    }
                }
                r => return r,
            }
        }
    }

    fn open_manifest(dir: &Path, manifest: Manifest, opts: OpenOptions) -> Result<Index> {
        let fp = Fingerprinter::new(manifest.params)?;
        let k = manifest.params.num_perm as usize;
        let estimates = (0..=k).map(|eq| bbit_estimate(eq, k)).collect();
        let segments = manifest
            .segments
            .iter()
            .map(|s| Segment::open(dir, s, manifest.generation, &manifest.params, opts.access))
            .collect::<Result<Vec<_>>>()?;
        let clusters = match &manifest.clusters {
            Some(c) => Some(clusters_file::ClustersFile::open(
                dir,
                c,
                &manifest,
                opts.access,
            )?),
            None => None,
        };
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            fp,
            segments,
            clusters,
            opts,
            text_caches: std::sync::Mutex::new(Vec::new()),
            estimates,
        })
    }

    /// The newest generation of this index, if a writer has published one since this index
    /// was opened (`Ok(None)` otherwise). This index is not changed: it keeps answering from
    /// its own generation (a snapshot) for as long as it lives, so queries in flight never
    /// pause or see a mix. [`IndexReader`] swaps generations for many threads.
    pub fn reload(&self) -> Result<Option<Index>> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Manifest::load_current(&self.dir) {
                Ok(Some((m, _))) if m.generation == self.manifest.generation => return Ok(None),
                Ok(_) => return Index::open_with(&self.dir, self.opts).map(Some),
                // `CURRENT` named a manifest that a writer has just replaced and removed.
                Err(e) if is_not_found(&e) && attempts < 100 => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest this index was opened from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The fingerprinter queries are fingerprinted with (the index's parameters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fp
    }

    /// The open segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Live posts (deleted posts not counted).
    pub fn num_posts(&self) -> u64 {
        self.manifest.live_posts()
    }

    /// The position of segment `id` among the open segments.
    pub(crate) fn segment_index(&self, id: u64) -> Result<usize> {
        self.segments
            .iter()
            .position(|s| s.entry().id == id)
            .ok_or_else(|| Error::InvalidParameter(format!("no segment {id}")))
    }

    /// The stored text of the post at `addr` (`None` if the index stores no texts).
    pub fn text_at(&self, addr: PostAddr, cache: &mut TextCache) -> Result<Option<String>> {
        self.segments[self.segment_index(addr.segment)?].text(addr.post, cache)
    }

    /// Appends the stored text of the post at `addr` to `out`, without an allocation per
    /// text; `false` (nothing appended) if the index stores no texts. For callers that
    /// gather many texts into one buffer (the Python package's `query_many`).
    pub fn text_at_into(
        &self,
        addr: PostAddr,
        cache: &mut TextCache,
        out: &mut String,
    ) -> Result<bool> {
        self.segments[self.segment_index(addr.segment)?].text_into(addr.post, cache, out)
    }

    /// The post with external id `id`, if indexed.
    pub fn post(&self, id: &str) -> Result<Option<Post>> {
        // Later segments win (they can only hold an id earlier ones do not, in a bulk build).
        for seg in self.segments.iter().rev() {
            if let Some(p) = seg.find_id(id)? {
                if seg.is_deleted(p) {
                    continue;
                }
                return self
                    .post_at(PostAddr {
                        segment: seg.entry().id,
                        post: p,
                    })
                    .map(Some);
            }
        }
        Ok(None)
    }

    /// The post at `addr`.
    pub fn post_at(&self, addr: PostAddr) -> Result<Post> {
        let seg = &self.segments[self.segment_index(addr.segment)?];
        let m = seg.post(addr.post)?;
        let text = seg.text(addr.post, &mut TextCache::default())?;
        Ok(Post {
            id: m.id.into(),
            account: m.account.into(),
            platform: m.platform.into(),
            ts: m.ts,
            text,
            addr,
        })
    }

    /// The platform names the segments' posts carry (deleted posts included until a merge
    /// drops them), in sorted order. A post whose metadata does not read is passed over.
    pub fn platforms(&self) -> std::collections::BTreeSet<String> {
        let mut held = std::collections::BTreeSet::new();
        for seg in &self.segments {
            for p in 0..u32::try_from(seg.n_posts()).unwrap_or(u32::MAX) {
                if let Ok(post) = seg.post(p) {
                    if !held.contains(post.platform) {
                        held.insert(post.platform.to_owned());
                    }
                }
            }
        }
        held
    }

    /// Checks every checksum of every file (a full read of the index).
    pub fn verify(&self) -> Result<()> {
        self.segments.iter().try_for_each(Segment::verify)?;
        if let (Some(cf), Some(entry)) = (&self.clusters, &self.manifest.clusters) {
            cf.verify()?;
            let path = self.dir.join(&entry.file);
            let bytes = mmap::Data::read(&path)?;
            if format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)) != entry.xxh3 {
                return Err(Error::ChecksumMismatch {
                    path,
                    section: "whole file".into(),
                });
            }
        }
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> IndexStats {
        let mut by_file = std::collections::BTreeMap::new();
        for s in &self.manifest.segments {
            let deleted = s.deleted.iter().map(|d| ("deleted".to_string(), d.len));
            for (name, len) in s
                .files
                .iter()
                .map(|(n, f)| (n.clone(), f.len))
                .chain(deleted)
            {
                let e = by_file.entry(name).or_insert(0u64);
                *e = e.saturating_add(len);
            }
        }
        let bytes: u64 = by_file.values().fold(0u64, |a, &b| a.saturating_add(b));
        let posts = self.manifest.live_posts();
        let unique = self.manifest.contents();
        let no_text = bytes.saturating_sub(by_file.get("text").copied().unwrap_or(0));
        IndexStats {
            posts,
            deleted: self.manifest.deleted(),
            unique_texts: unique,
            segments: self.segments.len(),
            generation: self.manifest.generation,
            params: self.manifest.params,
            bytes_by_file: by_file,
            bytes,
            bytes_per_post: bytes as f64 / posts.max(1) as f64,
            bytes_per_unique_text_without_text: no_text as f64 / unique.max(1) as f64,
        }
    }
}

/// Whether `e` says a file does not exist (a writer may have removed an old generation's).
fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(version: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(version)
    }

    /// Opens a fixture's index with `access` (no prefetching) and checks every checksum.
    fn open_fixture(dir: &Path, access: Access) -> Index {
        let index = Index::open_with(
            dir.join("index"),
            OpenOptions {
                access,
                prefetch: false,
            },
        )
        .unwrap();
        index.verify().unwrap();
        index
    }

    /// Indexes written by every supported format version keep opening and answering exactly
    /// as when they were written (tantivy's compat tests). The expected answers were
    /// recorded by the build that wrote the fixture.
    #[test]
    fn format_v1_fixture_opens_and_answers_as_recorded() {
        let dir = fixture("v1");
        for access in [Access::Mmap, Access::InMemory] {
            let index = Index::open_with(
                dir.join("index"),
                OpenOptions {
                    access,
                    prefetch: true,
                },
            )
            .unwrap();
            index.verify().unwrap();
            let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
            let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
            let opts = QueryOptions {
                with_text: false,
                ..QueryOptions::default()
            };
            let mut n = 0;
            for (post, want) in posts.lines().zip(expected.lines()) {
                let post: serde_json::Value = serde_json::from_str(post).unwrap();
                let want: serde_json::Value = serde_json::from_str(want).unwrap();
                let got = index.query(post["text"].as_str().unwrap(), &opts).unwrap();
                let got: Vec<(String, f64)> = got
                    .hits
                    .iter()
                    .map(|h| (h.id.clone(), h.similarity))
                    .collect();
                let want: Vec<(String, f64)> = want["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_f64().unwrap()))
                    .collect();
                assert_eq!(got.len(), want.len(), "query {post}");
                for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                    assert_eq!(gi, wi);
                    assert!((gs - ws).abs() < 1e-5);
                }
                n += 1;
            }
            assert_eq!(n, 50);
            let p = index.post("0").unwrap().unwrap();
            assert_eq!(p.platform, "reddit");
            assert!(p.text.is_some());
        }
    }

    /// `(query, [(id, similarity, cluster)])` per query.
    type Answers = Vec<(String, Vec<(String, f64, Option<u32>)>)>;

    /// Answers of an index to the fixture's posts as `(query, [(id, similarity, cluster)])`.
    fn fixture_answers(index: &Index, posts: &str) -> Answers {
        // The fixtures recorded the signatures' estimates: they pin the stored bytes, not
        // the lookup's policy near the threshold.
        let opts = QueryOptions {
            with_text: false,
            min_similarity: 0.3,
            exact_near_threshold: false,
            ..QueryOptions::default()
        };
        posts
            .lines()
            .map(|line| {
                let post: serde_json::Value = serde_json::from_str(line).unwrap();
                let got = index.query(post["text"].as_str().unwrap(), &opts).unwrap();
                let hits = got
                    .hits
                    .iter()
                    .map(|h| (h.id.clone(), h.similarity, h.cluster))
                    .collect();
                // Ids quoted whether the fixture's are JSON numbers or strings, as in
                // expected.jsonl's answers.
                let id = post["id"].to_string();
                (format!("\"{}\"", id.trim_matches('"')), hits)
            })
            .collect()
    }

    fn same_answers(got: &Answers, want: &Answers, with_clusters: bool) {
        assert_eq!(got.len(), want.len());
        for ((q, g), (_, w)) in got.iter().zip(want) {
            assert_eq!(g.len(), w.len(), "query {q}: {g:?} vs {w:?}");
            for (gh, wh) in g.iter().zip(w) {
                assert_eq!(gh.0, wh.0, "query {q}");
                assert!((gh.1 - wh.1).abs() < 1e-5, "query {q}");
                if with_clusters {
                    assert_eq!(gh.2, wh.2, "query {q}");
                }
            }
        }
    }

    /// Reads a fixture's `expected.jsonl` into answers.
    fn expected_answers(dir: &Path) -> Answers {
        std::fs::read_to_string(dir.join("expected.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let hits = v["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_string(),
                            h[1].as_f64().unwrap(),
                            h[2].as_u64().map(|c| c as u32),
                        )
                    })
                    .collect();
                (format!("\"{}\"", v["query"].as_str().unwrap()), hits)
            })
            .collect()
    }

    /// The format-3 fixture (one segment whose text file carries a trained zstd dictionary;
    /// made by `tests/fixtures/make_v3.sh`) keeps answering as recorded, and every post's
    /// stored text reads back as it was posted.
    #[test]
    fn format_v3_fixture_opens_answers_as_recorded_and_reads_texts() {
        let dir = fixture("v3");
        let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
        let expected = expected_answers(&dir);
        let text_file = dir.join("index/seg-000001/text");
        let bytes = std::fs::read(&text_file).unwrap();
        let env = format::Envelope::parse(&text_file, &bytes, segment::TEXT_MAGIC, "text").unwrap();
        assert_eq!(env.version, 3);
        assert!(
            !env.sections[3].range.is_empty(),
            "no dictionary was trained"
        );
        for access in [Access::Mmap, Access::InMemory] {
            let index = open_fixture(&dir, access);
            let got = fixture_answers(&index, &posts);
            same_answers(&got, &expected, true);
            let mut cache = segment::TextCache::default();
            for line in posts.lines() {
                let post: serde_json::Value = serde_json::from_str(line).unwrap();
                let id = post["id"].to_string();
                let id = id.trim_matches('"');
                let p = index.post(id).unwrap().unwrap();
                assert_eq!(p.text.as_deref(), post["text"].as_str(), "post {id}");
                let seg = &index.segments()[0];
                let again = seg.text(p.addr.post, &mut cache).unwrap();
                assert_eq!(again, p.text, "post {id} through a shared cache");
            }
        }
    }

    /// The format-2 fixture (two segments, deleted posts, saved clusters; made by
    /// `tests/fixtures/make_v2.sh`) keeps answering as recorded, and merging a copy of it
    /// answers the same.
    #[test]
    fn format_v2_fixture_opens_answers_as_recorded_and_merges() {
        let dir = fixture("v2");
        let posts = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
        let expected = expected_answers(&dir);
        let deleted: Vec<String> = std::fs::read_to_string(dir.join("deleted.txt"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(deleted.len(), 12);
        for access in [Access::Mmap, Access::InMemory] {
            let index = open_fixture(&dir, access);
            assert_eq!(index.segments().len(), 2);
            assert_eq!(index.stats().deleted, 12);
            assert_eq!(index.num_posts(), 107 - 12);
            let got = fixture_answers(&index, &posts);
            same_answers(&got, &expected, true);
            for id in &deleted {
                assert!(index.post(id).unwrap().is_none(), "deleted post {id}");
                assert!(got.iter().all(|(_, h)| h.iter().all(|x| &x.0 != id)));
            }
            assert!(got.iter().any(|(_, h)| h.iter().any(|x| x.2.is_some())));
        }
        // Merging a copy: one segment, no deleted posts left, the same answers (the saved
        // clusters covered the merged segments and are dropped).
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("index");
        std::fs::create_dir_all(&copy).unwrap();
        for e in walk(&dir.join("index")) {
            let rel = e.strip_prefix(dir.join("index")).unwrap();
            let to = copy.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&e, &to).unwrap();
        }
        let stats = merge(&copy, &MergeOptions::default()).unwrap();
        assert_eq!((stats.segments_before, stats.segments_after), (2, 1));
        assert_eq!(stats.posts_out, 95);
        assert!(stats.clusters_dropped);
        let index = Index::open(&copy).unwrap();
        index.verify().unwrap();
        assert_eq!(index.stats().deleted, 0);
        let got = fixture_answers(&index, &posts);
        same_answers(&got, &expected, false);
        // Texts survive the merge (read from format-2 blocks, rewritten as format 3).
        for line in posts.lines() {
            let post: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = post["id"].to_string();
            let id = id.trim_matches('"');
            if let Some(p) = index.post(id).unwrap() {
                assert_eq!(p.text.as_deref(), post["text"].as_str(), "post {id}");
            } else {
                assert!(
                    deleted.iter().any(|d| d == id),
                    "post {id} lost in the merge"
                );
            }
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Index>();
    }
}
