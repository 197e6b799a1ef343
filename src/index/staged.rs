//! Segments written apart and published together: the distributed build.
//!
//! A *staged* directory is a complete one-generation index (one segment, or a few when its
//! memory budget was reached) written by [`StagedBuilder`] with nobody else's lock, for
//! example by one Spark task on storage that every executor shares, plus a `STAGED` marker
//! that says it is meant to be published. [`publish`] then takes the index's writer lock
//! and publishes the segments of many staged directories as **one** new generation of an
//! index:
//!
//! - every staged directory must carry the marker and the same fingerprint parameters
//!   (and, when appending, the index's own);
//! - ids are checked across all of them (and the live posts of the index appended to) by
//!   one streaming union of their `ids.fst` maps: the first occurrence, in the order the
//!   directories are given, is kept and every later one is marked deleted and reported as a
//!   [`DuplicateId`], as `textreuse build` skips a repeated id;
//! - segment files are hard-linked into the index (copied when the staging area is on
//!   another file system) under fresh segment ids, then one manifest names them. Nothing is
//!   visible before that manifest is published, and an interrupted publish leaves only
//!   unnamed segment directories, which the next writer removes. The staged directories are
//!   untouched until the new generation is durable; [`PublishOptions::remove_staged`] then
//!   deletes them.

use std::fs;
use std::path::{Path, PathBuf};

use super::encode::{write_deleted, TEXT_DICT_SAMPLES, TEXT_DICT_SHARE_SAMPLES};
use super::manifest::{segment_dir_name, Manifest, SegmentEntry};
use super::segment::Segment;
use super::txn::{Create, Txn};
use super::{Access, BuildOptions, BuildStats, Existing, IndexBuilder, NewPost, PostOutcome};
use crate::error::{Error, Result};
use crate::fingerprint::{FingerprintParams, Fingerprinter};

/// The marker file of a staged directory.
pub const STAGED_FILE: &str = "STAGED";

/// What the marker file holds.
const STAGED_MARK: &str = "textreuse staged segments: publish with `textreuse publish`\n";

/// Writes the posts of one share of a distributed build (a Spark partition, one input
/// file) into a staged directory of their own, to be published with [`publish`].
///
/// The directory must not hold an index yet. Memory is bounded as for
/// [`IndexBuilder`]: a share larger than the budget becomes several segments, all published
/// together.
#[derive(Debug)]
pub struct StagedBuilder {
    dir: PathBuf,
    inner: IndexBuilder,
}

impl StagedBuilder {
    /// Starts a staged directory `dir` (created if missing). `opts.existing` is ignored: a
    /// staged directory is always new.
    ///
    /// # Errors
    /// [`Error::IndexState`] if `dir` already holds an index or a staged build; invalid
    /// parameters; I/O errors.
    pub fn create(dir: impl AsRef<Path>, opts: BuildOptions) -> Result<StagedBuilder> {
        let dir = dir.as_ref().to_path_buf();
        if dir.join(STAGED_FILE).exists() {
            return Err(Error::IndexState {
                path: dir,
                what: "already holds a staged build; stage into a new directory".into(),
            });
        }
        let opts = BuildOptions {
            existing: Existing::Refuse,
            ..opts
        };
        let inner = IndexBuilder::create(&dir, opts)?;
        Ok(StagedBuilder { dir, inner })
    }

    /// Makes this build one of `shares` shares of one distributed build (a Spark job's
    /// partitions): each of its segments trains its text dictionary on a `shares`-th of the
    /// sample a whole build trains on (at least 1,000 texts), so that all shares together
    /// train about as much as one build. Each segment still carries its own dictionary;
    /// answers do not change, only how well texts compress.
    pub fn share_of(mut self, shares: usize) -> StagedBuilder {
        let samples = (TEXT_DICT_SAMPLES / shares.max(1)).max(TEXT_DICT_SHARE_SAMPLES);
        self.inner.set_dict_samples(samples.min(TEXT_DICT_SAMPLES));
        self
    }

    /// The fingerprinter posts are fingerprinted with.
    pub fn fingerprinter(&self) -> &Fingerprinter {
        self.inner.fingerprinter()
    }

    /// Adds posts, in order (see [`IndexBuilder::add`]): [`NewPost`]s or `RawPost`s.
    pub fn add<'p, P>(&mut self, posts: &'p [P]) -> Result<Vec<PostOutcome>>
    where
        &'p P: Into<NewPost<'p>>,
    {
        self.inner.add(posts)
    }

    /// Counts so far.
    pub fn stats(&self) -> &BuildStats {
        self.inner.stats()
    }

    /// Writes what is buffered, publishes the staged directory's own manifest and marks it
    /// staged.
    pub fn finish(self) -> Result<BuildStats> {
        let stats = self.inner.finish()?;
        mark_staged(&self.dir)?;
        Ok(stats)
    }
}

/// Marks the finished index in `dir` as staged segments, so that [`publish`] accepts it
/// (`textreuse build --segment-only` builds, then calls this).
///
/// # Errors
/// [`Error::IndexState`] if `dir` holds no index; I/O errors.
pub fn mark_staged(dir: &Path) -> Result<()> {
    if Manifest::load_current(dir)?.is_none() {
        return Err(Error::IndexState {
            path: dir.to_path_buf(),
            what: "holds no finished build to mark as staged".into(),
        });
    }
    super::durable::atomic_write(&dir.join(STAGED_FILE), STAGED_MARK.as_bytes())?;
    super::durable::sync_dir(dir)
}

/// Options of [`publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions {
    /// What to do if the index directory already holds an index: refuse (the default),
    /// replace it, or add the staged segments to it (its live ids then come first).
    pub existing: Existing,
    /// Delete the staged directories once the new generation is published (default true).
    pub remove_staged: bool,
}

impl Default for PublishOptions {
    fn default() -> PublishOptions {
        PublishOptions {
            existing: Existing::Refuse,
            remove_staged: true,
        }
    }
}

/// A post whose id an earlier post already had: marked deleted at publishing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DuplicateId {
    /// The id.
    pub id: String,
    /// The staged directory of the post that was dropped.
    pub staged: PathBuf,
    /// Where the kept post came from: a staged directory, or the index appended to.
    pub first: PathBuf,
}

impl std::fmt::Display for DuplicateId {
    /// The report `textreuse build` gives for a repeated id, with the staged directory in
    /// place of the input file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: duplicate id {:?}: an earlier post has it (in {}); skipped",
            self.staged.display(),
            self.id,
            self.first.display()
        )
    }
}

/// What [`publish`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PublishReport {
    /// The generation published.
    pub generation: u64,
    /// Staged directories published.
    pub staged: usize,
    /// Segments added to the index.
    pub segments: usize,
    /// Posts of the staged segments, duplicates included.
    pub posts: u64,
    /// Live posts of the index afterwards.
    pub live_posts: u64,
    /// Posts dropped because an earlier post had their id.
    pub duplicate_ids: Vec<DuplicateId>,
    /// Bytes of the segment files added.
    pub bytes: u64,
}

/// One segment taking part in the duplicate check.
struct Source {
    /// Index in the final segment list.
    slot: usize,
    /// Where its posts came from, for reports.
    origin: PathBuf,
    seg: Segment,
}

/// Publishes the segments of the staged directories `staged` (in this order) as one new
/// generation of the index in `dir`. See the [module docs](self).
///
/// # Errors
/// [`Error::IndexState`] if a directory is not a finished staged build, if `dir` already
/// holds an index and `opts.existing` is [`Existing::Refuse`], or if another writer holds its
/// lock; [`Error::InvalidParameter`] if the fingerprint parameters differ, naming the
/// directory; corrupt staged files; I/O errors. On error nothing is published.
pub fn publish(
    dir: impl AsRef<Path>,
    staged: &[impl AsRef<Path>],
    opts: &PublishOptions,
) -> Result<PublishReport> {
    let dir = dir.as_ref();
    let staged: Vec<PathBuf> = staged.iter().map(|p| p.as_ref().to_path_buf()).collect();
    // Read and check every staged manifest before touching the index.
    let mut manifests = Vec::with_capacity(staged.len());
    for s in &staged {
        if !s.join(STAGED_FILE).is_file() {
            return Err(Error::IndexState {
                path: s.clone(),
                what: "is not a staged build (no STAGED marker); stage with `textreuse build --segment-only`".into(),
            });
        }
        let Some((m, _)) = Manifest::load_current(s)? else {
            return Err(Error::IndexState {
                path: s.clone(),
                what: "holds no finished staged build (no CURRENT)".into(),
            });
        };
        manifests.push(m);
    }
    let create = match opts.existing {
        Existing::Replace => Create::Beside,
        Existing::Refuse | Existing::Append => Create::IfEmpty,
    };
    let mut txn = Txn::begin(dir, create)?;
    let previous = txn.base().cloned();
    if previous.is_some() && opts.existing == Existing::Refuse {
        return Err(Error::IndexExists {
            path: dir.to_path_buf(),
        });
    }
    let appending = opts.existing == Existing::Append && previous.is_some();
    let params: FingerprintParams = match (&previous, manifests.first()) {
        (Some(p), _) if appending => p.params,
        (_, Some(m)) => m.params,
        (Some(p), None) => p.params,
        (None, None) => {
            return Err(Error::InvalidParameter(
                "nothing to publish: no staged directory given".into(),
            ))
        }
    };
    for (s, m) in staged.iter().zip(&manifests) {
        if m.params != params {
            return Err(Error::InvalidParameter(format!(
                "{}: built with other fingerprint parameters ({:?}) than {} ({:?}); stage every share with the same parameters",
                s.display(),
                m.params,
                if appending { "the index" } else { "the first staged directory" },
                params
            )));
        }
    }
    txn.remove_leftovers()?;
    let generation = txn.next_generation();

    // The segment list of the new generation, and every segment's id map in order.
    let mut segments: Vec<SegmentEntry> = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    if appending {
        if let Some(p) = &previous {
            for e in &p.segments {
                sources.push(Source {
                    slot: segments.len(),
                    origin: dir.to_path_buf(),
                    seg: Segment::open(dir, e, p.generation, &params, Access::Mmap)?,
                });
                segments.push(e.clone());
            }
        }
    }
    let first_new = segments.len();
    let mut report = PublishReport {
        generation,
        staged: staged.len(),
        ..PublishReport::default()
    };
    for (s, m) in staged.iter().zip(&manifests) {
        for e in &m.segments {
            sources.push(Source {
                slot: segments.len(),
                origin: s.clone(),
                seg: Segment::open(s, e, m.generation, &params, Access::Mmap)?,
            });
            report.posts += e.posts;
            report.bytes += e.files.values().map(|f| f.len).sum::<u64>();
            segments.push(e.clone());
        }
    }
    // Duplicate ids: one streaming union of every id map; the first live post of an id
    // (in segment order) stays, later ones are marked deleted.
    let mut deletes: Vec<Option<Vec<u64>>> = vec![None; segments.len()];
    {
        let maps = sources
            .iter()
            .map(|s| s.seg.id_map())
            .collect::<Result<Vec<_>>>()?;
        let mut op = fst::map::OpBuilder::new();
        for m in &maps {
            op = op.add(m.stream());
        }
        let mut union = op.union();
        let mut hits: Vec<(usize, u32)> = Vec::new();
        while let Some((key, values)) = fst::Streamer::next(&mut union) {
            if values.len() < 2 {
                continue;
            }
            hits.clear();
            for v in values {
                let src = &sources[v.index];
                let p = u32::try_from(v.value)
                    .ok()
                    .filter(|&p| u64::from(p) < src.seg.n_posts())
                    .ok_or_else(|| {
                        Error::corrupt(
                            src.seg.dir().join("ids.fst"),
                            format!("id maps to post {}, out of range", v.value),
                        )
                    })?;
                if !src.seg.is_deleted(p) {
                    hits.push((v.index, p));
                }
            }
            hits.sort_unstable();
            let Some(&(keep, _)) = hits.first() else {
                continue;
            };
            for &(i, p) in &hits[1..] {
                let src = &sources[i];
                let words = deletes[src.slot].get_or_insert_with(|| {
                    src.seg
                        .deleted_words()
                        .unwrap_or_else(|| vec![0u64; src.seg.n_posts().div_ceil(64) as usize])
                });
                words[p as usize / 64] |= 1 << (p % 64);
                report.duplicate_ids.push(DuplicateId {
                    id: String::from_utf8_lossy(key).into_owned(),
                    staged: src.origin.clone(),
                    first: sources[keep].origin.clone(),
                });
            }
        }
    }
    // A staged segment's own deletions are written again for this generation (its bitmap
    // is named for a generation of the staging directory, not of this index).
    for src in sources.iter().filter(|s| s.slot >= first_new) {
        if deletes[src.slot].is_none() {
            deletes[src.slot] = src.seg.deleted_words();
        }
    }
    drop(sources);
    // Bring the staged segments in under fresh ids.
    for (slot, entry) in segments.iter_mut().enumerate().skip(first_new) {
        let from =
            staged_dir_of(&staged, &manifests, slot - first_new).join(segment_dir_name(entry.id));
        entry.id = txn.new_segment_id();
        entry.deleted = None;
        link_segment(&from, &dir.join(entry.dir_name()), entry)?;
    }
    for (entry, words) in segments.iter_mut().zip(&deletes) {
        if let Some(words) = words {
            let d = write_deleted(&dir.join(entry.dir_name()), generation, entry.posts, words)?;
            entry.deleted = Some(d);
        }
    }
    report.segments = segments.len() - first_new;
    let manifest = Manifest {
        format_version: super::format::FORMAT_VERSION,
        generation,
        params,
        segments,
        next_segment_id: txn.next_segment_id(),
        clusters: if appending {
            previous.as_ref().and_then(|m| m.clusters.clone())
        } else {
            None
        },
        checksum: String::new(),
    };
    report.live_posts = manifest.live_posts();
    txn.publish(manifest)?;
    if opts.remove_staged {
        // Best effort: the generation is published whatever happens to the staging area.
        for s in &staged {
            let _ = fs::remove_dir_all(s);
        }
    }
    Ok(report)
}

/// The staged directory that holds the `i`-th staged segment (counting over all of them).
fn staged_dir_of<'a>(staged: &'a [PathBuf], manifests: &[Manifest], mut i: usize) -> &'a Path {
    for (s, m) in staged.iter().zip(manifests) {
        if i < m.segments.len() {
            return s;
        }
        i -= m.segments.len();
    }
    // Unreachable: `i` counts the staged segments.
    &staged[staged.len() - 1]
}

/// Makes `to` a copy of the files of the segment directory `from` that `entry` lists (not
/// its deletion bitmap, which is written again for the index's generation, nor anything
/// else, which could look like a dropped deletion in the index): hard links where the file
/// system allows (the files are immutable), copies otherwise. Fsyncs `to`.
fn link_segment(from: &Path, to: &Path, entry: &SegmentEntry) -> Result<()> {
    fs::create_dir(to).map_err(|e| Error::io(to, e))?;
    for name in entry.files.keys() {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(Error::corrupt(
                from.join(name),
                "is not a segment file name",
            ));
        }
        let (src, dst) = (from.join(name), to.join(name));
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).map_err(|err| Error::io(&dst, err))?;
            fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(|err| Error::io(&dst, err))?;
        }
    }
    super::durable::sync_dir(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Index, QueryOptions};
    use crate::input::RawPost;

    fn post(id: &str, text: &str) -> RawPost {
        RawPost {
            id: id.into(),
            text: text.into(),
            ..RawPost::default()
        }
    }

    fn stage(dir: &Path, posts: &[RawPost]) -> BuildStats {
        let mut b = StagedBuilder::create(dir, BuildOptions::default()).unwrap();
        b.add(posts).unwrap();
        b.finish().unwrap()
    }

    fn texts(n: usize, salt: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    "{salt} post number {} says the {} river is {} wide",
                    i,
                    i * 7,
                    i % 13
                )
            })
            .collect()
    }

    #[test]
    fn published_staged_shares_answer_like_one_build() {
        let tmp = tempfile::tempdir().unwrap();
        let all: Vec<RawPost> = texts(300, "alpha")
            .iter()
            .enumerate()
            .map(|(i, t)| post(&format!("p{i}"), t))
            .collect();
        // One build of everything, with a repeated id at the end that it skips.
        let mut with_dup = all.clone();
        with_dup.push(post(
            "p5",
            "an entirely different text about mountains and lakes",
        ));
        let one = tmp.path().join("one");
        let mut b = IndexBuilder::create(&one, BuildOptions::default()).unwrap();
        b.add(&with_dup).unwrap();
        b.finish().unwrap();
        // Three shares, the repeated id in the last.
        let shares: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("s{i}"))).collect();
        stage(&shares[0], &with_dup[..100]);
        stage(&shares[1], &with_dup[100..200]);
        stage(&shares[2], &with_dup[200..]);
        let idx = tmp.path().join("idx");
        let r = publish(&idx, &shares, &PublishOptions::default()).unwrap();
        assert_eq!(r.segments, 3);
        assert_eq!(r.posts, 301);
        assert_eq!(r.live_posts, 300);
        assert_eq!(r.duplicate_ids.len(), 1);
        assert_eq!(r.duplicate_ids[0].id, "p5");
        assert_eq!(r.duplicate_ids[0].staged, shares[2]);
        assert_eq!(r.duplicate_ids[0].first, shares[0]);
        assert!(shares.iter().all(|s| !s.exists()), "staged dirs removed");
        let (a, b) = (Index::open(&one).unwrap(), Index::open(&idx).unwrap());
        b.verify().unwrap();
        let opts = QueryOptions::default();
        for t in texts(300, "alpha").iter().step_by(7).chain(std::iter::once(
            &"an entirely different text about mountains and lakes".to_string(),
        )) {
            let key = |r: QueryResult| {
                let mut v: Vec<(String, u64)> = r
                    .hits
                    .into_iter()
                    .map(|h| (h.id, h.similarity.to_bits()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(
                key(a.query(t, &opts).unwrap()),
                key(b.query(t, &opts).unwrap())
            );
        }
        assert_eq!(b.post("p5").unwrap().unwrap().text.unwrap(), all[5].text);
    }

    use crate::index::QueryResult;

    #[test]
    fn refuses_unmarked_mismatched_and_existing() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        let mut b = IndexBuilder::create(&plain, BuildOptions::default()).unwrap();
        b.add(&[post("1", "one two three four five")]).unwrap();
        b.finish().unwrap();
        let idx = tmp.path().join("idx");
        let e = publish(&idx, &[&plain], &PublishOptions::default()).unwrap_err();
        assert!(e.to_string().contains("not a staged build"), "{e}");
        assert!(
            plain.join("CURRENT").exists(),
            "an unmarked index is left alone"
        );

        let a = tmp.path().join("a");
        stage(&a, &[post("1", "one two three four five")]);
        let other = tmp.path().join("other");
        let mut opts = BuildOptions::default();
        opts.params.shingle = 2;
        let mut sb = StagedBuilder::create(&other, opts).unwrap();
        sb.add(&[post("2", "six seven eight nine ten")]).unwrap();
        sb.finish().unwrap();
        let e = publish(&idx, &[&a, &other], &PublishOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("other fingerprint parameters"),
            "{e}"
        );
        assert!(
            Manifest::load_current(&idx).unwrap().is_none(),
            "nothing published"
        );
        assert!(a.exists() && other.exists());

        publish(&idx, &[&a], &PublishOptions::default()).unwrap();
        let c = tmp.path().join("c");
        stage(&c, &[post("1", "eleven twelve thirteen fourteen")]);
        let e = publish(&idx, &[&c], &PublishOptions::default()).unwrap_err();
        assert!(e.to_string().contains("already holds an index"), "{e}");
        // Appending: the index's live id comes first.
        let r = publish(
            &idx,
            &[&c],
            &PublishOptions {
                existing: Existing::Append,
                remove_staged: false,
            },
        )
        .unwrap();
        assert_eq!(r.generation, 2);
        assert_eq!(r.duplicate_ids.len(), 1);
        assert_eq!(r.duplicate_ids[0].first, idx);
        assert!(c.exists(), "kept when asked");
        let index = Index::open(&idx).unwrap();
        index.verify().unwrap();
        assert_eq!(index.num_posts(), 1);
        assert_eq!(
            index.post("1").unwrap().unwrap().text.unwrap(),
            "one two three four five"
        );
        assert!(StagedBuilder::create(&c, BuildOptions::default()).is_err());
    }

    #[test]
    fn leftovers_of_an_unpublished_attempt_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        stage(&a, &[post("1", "one two three four five")]);
        let idx = tmp.path().join("idx");
        fs::create_dir_all(idx.join("seg-000007")).unwrap();
        publish(&idx, &[&a], &PublishOptions::default()).unwrap();
        assert!(!idx.join("seg-000007").exists());
        let m = Manifest::load_current(&idx).unwrap().unwrap().0;
        assert_eq!(m.segments.len(), 1);
        assert!(m.segments[0].id >= 8, "fresh ids after what was seen");
    }

    #[test]
    fn a_share_trains_on_its_share_of_the_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let posts: Vec<RawPost> = texts(3_000, "gamma")
            .iter()
            .enumerate()
            .map(|(i, t)| post(&format!("g{i}"), t))
            .collect();
        let (whole, share) = (tmp.path().join("whole"), tmp.path().join("share"));
        stage(&whole, &posts);
        let mut b = StagedBuilder::create(&share, BuildOptions::default())
            .unwrap()
            .share_of(8);
        b.add(&posts).unwrap();
        b.finish().unwrap();
        // The share's dictionary learnt from 1,250 texts, the whole build's from 3,000: the
        // text files differ, the answers and stored texts do not.
        let text_len = |d: &Path| {
            std::fs::metadata(d.join("seg-000001/text"))
                .map(|m| m.len())
                .unwrap()
        };
        assert_ne!(text_len(&whole), text_len(&share));
        let (a, b) = (Index::open(&whole).unwrap(), Index::open(&share).unwrap());
        b.verify().unwrap();
        let opts = QueryOptions::default();
        for (i, t) in texts(3_000, "gamma").iter().enumerate().step_by(97) {
            assert_eq!(a.query(t, &opts).unwrap(), b.query(t, &opts).unwrap());
            let id = format!("g{i}");
            assert_eq!(
                a.post(&id).unwrap().unwrap().text,
                b.post(&id).unwrap().unwrap().text
            );
        }
    }
}
