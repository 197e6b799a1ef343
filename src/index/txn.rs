//! The write transaction every writer shares ([`Txn`]): take the writer lock, load the live
//! generation, refuse a damaged or foreign directory, remove a dead writer's leftovers;
//! later publish a new generation and remove what only the old one used.
//!
//! Writers create files and directories through [`durable`](super::durable).

use std::fs::{self, File};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::durable::link_error;
use super::manifest::{Manifest, SegmentEntry};
use crate::error::{Error, Result};

/// The writer lock of an index directory: an advisory lock on `LOCK`, released when dropped
/// (or when the process dies).
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of `dir`, or fails with [`Error::Locked`] if another writer holds it
    /// (after waiting up to one second for a lock held only for a moment). `LOCK` is never
    /// followed if it is a symbolic link.
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        let path = dir.join("LOCK");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| link_error(&path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
        if !meta.is_file() {
            return Err(Error::corrupt(&path, "is not a regular file"));
        }
        // A lock held for a moment only is waited for (up to one second): a process that
        // forks (to run a command, say) holds its parent's open files, and so the lock,
        // until it execs, and on a loaded machine that took more than 100 ms (a test that
        // reopened a writer 120 times while other tests spawned the CLI failed once).
        for attempt in 0..=50 {
            match file.try_lock() {
                Ok(()) => return Ok(WriterLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if attempt < 50 => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => break,
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Locked {
            path: dir.to_path_buf(),
        })
    }
}

/// Whether `name` is one a writer gives a temporary file (`<index file>.tmp`, or a spill
/// file inside a segment directory).
fn is_writer_tmp(name: &str, in_segment: bool) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    if in_segment {
        is_segment_file(stem) || stem.ends_with(".spill")
    } else {
        stem == "CURRENT" || is_manifest_name(stem) || is_clusters_name(stem)
    }
}

/// Whether `name` is the name of one of a segment's files.
fn is_segment_file(name: &str) -> bool {
    matches!(name, "bands" | "sigs" | "posts" | "ids.fst" | "text")
        || name
            .strip_prefix("deleted-")
            .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

fn is_manifest_name(name: &str) -> bool {
    name.strip_prefix("MANIFEST-")
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

fn is_clusters_name(name: &str) -> bool {
    name.strip_prefix("CLUSTERS-")
        .and_then(|n| n.strip_suffix(".bin"))
        .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

/// The id of a segment directory name (`seg-<digits>`).
fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

/// Whether `path` is a real directory (not a link) holding only segment files and a
/// writer's temporary files: what a writer that died before publishing leaves.
fn is_segment_leftover(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    let Ok(rd) = fs::read_dir(path) else {
        return false;
    };
    rd.into_iter().all(|e| {
        e.is_ok_and(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let plain = e.file_type().is_ok_and(|t| t.is_file());
            plain && (is_segment_file(&name) || is_writer_tmp(&name, true))
        })
    })
}

/// What a directory without a `CURRENT` holds.
#[derive(Debug, Default)]
pub(crate) struct Unpublished {
    /// Manifests and clusters files: an index was published here once.
    pub index_files: Vec<String>,
    /// Segment directories and temporary files of a writer that died before its first
    /// publish.
    pub leftovers: Vec<String>,
    /// Everything else (`LOCK` aside).
    pub foreign: Vec<String>,
}

impl Unpublished {
    /// Sorts the entries of `dir`.
    pub(crate) fn scan(dir: &Path) -> Result<Unpublished> {
        let mut u = Unpublished::default();
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(u),
            Err(e) => return Err(Error::io(dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| Error::io(dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "LOCK" {
                continue;
            }
            if is_manifest_name(&name) || is_clusters_name(&name) {
                u.index_files.push(name);
            } else if is_writer_tmp(&name, false)
                || (segment_id(&name).is_some() && is_segment_leftover(&e.path()))
            {
                u.leftovers.push(name);
            } else {
                u.foreign.push(name);
            }
        }
        u.index_files.sort();
        u.leftovers.sort();
        u.foreign.sort();
        Ok(u)
    }

    /// The error for a directory that held an index and lost its `CURRENT`, with the way
    /// back: the newest manifest that loads and whose segment directories are all there.
    pub(crate) fn damaged(&self, dir: &Path) -> Error {
        let newest = self
            .index_files
            .iter()
            .rev()
            .filter(|n| is_manifest_name(n))
            .find(|n| {
                Manifest::load_named(dir, n).is_ok_and(|m| {
                    m.segments.iter().all(|s| {
                        fs::symlink_metadata(dir.join(s.dir_name())).is_ok_and(|m| m.is_dir())
                    })
                })
            });
        let what = match newest {
            Some(name) => format!(
                "it holds index files ({}) but no readable CURRENT. Nothing was changed. The newest complete generation is {name}: to recover it, run `printf '{name}\\n' > {}` and check it with `textreuse verify --index {}`",
                self.index_files.join(", "),
                dir.join("CURRENT").display(),
                dir.display()
            ),
            None => format!(
                "it holds index files ({}) but no readable CURRENT, and no manifest that could be recovered. Nothing was changed; move the directory away and rebuild",
                self.index_files.join(", ")
            ),
        };
        Error::Damaged {
            path: dir.to_path_buf(),
            what,
        }
    }
}

/// How a transaction treats a directory that holds no index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Fail with [`Error::NoIndex`].
    No,
    /// Create the index (and the directory); refuse a directory with other files in it.
    IfEmpty,
    /// Create the index beside whatever other files the directory holds (`--force`).
    Beside,
}

/// One writer's hold on an index: the lock, the live generation, the next segment id.
/// Every write (build, append, delete, merge, saved clusters) goes through one.
#[derive(Debug)]
pub(crate) struct Txn {
    dir: PathBuf,
    base: Option<Manifest>,
    next_segment: u64,
    _lock: WriterLock,
}

impl Txn {
    /// Takes the lock of `dir` and loads its live generation; the caller checks it, then
    /// calls [`remove_leftovers`](Self::remove_leftovers).
    ///
    /// # Errors
    /// [`Error::Locked`] if another writer holds the lock; [`Error::NoIndex`] (with
    /// [`Create::No`]); [`Error::Damaged`] if `dir` holds manifests but no `CURRENT`;
    /// [`Error::NotEmpty`] if it holds other files and no index (with
    /// [`Create::IfEmpty`]); the errors of [`Manifest::load_current`]; I/O errors.
    pub(crate) fn begin(dir: &Path, create: Create) -> Result<Txn> {
        match fs::symlink_metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create != Create::No => {
                fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                    .map_err(|e| Error::io(dir, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoIndex {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let lock = WriterLock::acquire(dir)?;
        let base = Manifest::load_current(dir)?.map(|(m, _)| m);
        if base.is_none() {
            let u = Unpublished::scan(dir)?;
            if !u.index_files.is_empty() && create != Create::Beside {
                return Err(u.damaged(dir));
            }
            if create == Create::No {
                return Err(Error::NoIndex {
                    path: dir.to_path_buf(),
                });
            }
            if !u.foreign.is_empty() && create == Create::IfEmpty {
                return Err(Error::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
        }
        if let Some(m) = &base {
            for s in &m.segments {
                let p = dir.join(s.dir_name());
                let meta = fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
                if !meta.is_dir() {
                    return Err(Error::corrupt(
                        &p,
                        "is not a directory (a symbolic link?); writers do not follow links inside an index",
                    ));
                }
            }
        }
        Ok(Txn {
            dir: dir.to_path_buf(),
            base,
            next_segment: 0,
            _lock: lock,
        })
    }

    /// Removes a dead writer's leftovers (see [`remove_leftovers`]) and sets the next
    /// segment id. Called once the live generation has been checked (opened as a reader
    /// would): a damaged manifest must not decide what is removed.
    pub(crate) fn remove_leftovers(&mut self) -> Result<()> {
        self.next_segment = remove_leftovers(&self.dir, self.base.as_ref())?.max(1);
        Ok(())
    }

    /// The index directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The live generation's manifest (`None` before the first publish).
    pub(crate) fn base(&self) -> Option<&Manifest> {
        self.base.as_ref()
    }

    /// The generation the next publish makes.
    pub(crate) fn next_generation(&self) -> u64 {
        self.base.as_ref().map_or(1, |m| m.generation + 1)
    }

    /// A fresh segment id.
    pub(crate) fn new_segment_id(&mut self) -> u64 {
        let id = self.next_segment;
        self.next_segment += 1;
        id
    }

    /// The next unused segment id (for the manifest).
    pub(crate) fn next_segment_id(&self) -> u64 {
        self.next_segment
    }

    /// Publishes `next` (generation [`next_generation`](Self::next_generation)) and removes
    /// what only the old generation used; `next` becomes the base.
    pub(crate) fn publish(&mut self, next: Manifest) -> Result<&Manifest> {
        if next.generation != self.next_generation() {
            return Err(Error::InvalidParameter(format!(
                "publishing generation {} over generation {}",
                next.generation,
                self.next_generation() - 1
            )));
        }
        next.publish(&self.dir)?;
        // What the old generation alone used is unreachable now; readers that still map its
        // files keep them alive until they close (POSIX unlink semantics).
        if let Some(old) = &self.base {
            cleanup_after_publish(&self.dir, old, &next);
        }
        Ok(self.base.insert(next))
    }
}

/// Removes what `old` named and `new` does not: segment directories, deletion bitmaps and
/// the cluster file. Best effort: leftovers are removed by the next writer.
fn cleanup_after_publish(dir: &Path, old: &Manifest, new: &Manifest) {
    for s in &old.segments {
        match new.segments.iter().find(|n| n.id == s.id) {
            None => {
                let _ = fs::remove_dir_all(dir.join(s.dir_name()));
            }
            Some(n) => {
                if let Some(d) = &s.deleted {
                    if n.deleted.as_ref().map(|x| &x.file) != Some(&d.file) {
                        let _ = fs::remove_file(dir.join(s.dir_name()).join(&d.file));
                    }
                }
            }
        }
    }
    if let Some(c) = &old.clusters {
        if new.clusters.as_ref().map(|x| &x.file) != Some(&c.file) {
            let _ = fs::remove_file(dir.join(&c.file));
        }
    }
}

/// Removes the leftovers of a writer that died before publishing, and of one that died
/// between publishing and cleaning up: segment directories the live manifest `previous`
/// does not name (only if they hold nothing but segment files), deletion bitmaps and
/// clusters files it does not name, and writers' temporary files. Nothing else is touched.
/// The caller holds the writer lock. Returns the least segment id that is safe to use next.
fn remove_leftovers(dir: &Path, previous: Option<&Manifest>) -> Result<u64> {
    let live: Vec<String> = previous
        .iter()
        .flat_map(|m| m.segments.iter().map(|s| s.dir_name()))
        .collect();
    for s in previous.iter().flat_map(|m| m.segments.iter()) {
        remove_stale_segment_files(&dir.join(s.dir_name()), s)?;
    }
    let live_clusters: Vec<String> = previous
        .iter()
        .filter_map(|m| m.clusters.as_ref().map(|c| c.file.clone()))
        .collect();
    let mut max_seen = previous.as_ref().map_or(0, |m| m.next_segment_id);
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let plain_file = e.file_type().is_ok_and(|t| t.is_file());
        if let Some(n) = segment_id(&name) {
            max_seen = max_seen.max(n.saturating_add(1));
            if !live.contains(&name) && is_segment_leftover(&e.path()) {
                fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        } else if plain_file
            && (is_writer_tmp(&name, false)
                || (is_clusters_name(&name) && !live_clusters.contains(&name)))
        {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(max_seen)
}

/// Removes the files in a live segment's directory that its manifest entry does not name
/// (deletion bitmaps of unpublished generations, temporary files).
fn remove_stale_segment_files(seg_dir: &Path, entry: &SegmentEntry) -> Result<()> {
    let Ok(rd) = fs::read_dir(seg_dir) else {
        return Ok(());
    };
    for e in rd {
        let e = e.map_err(|e| Error::io(seg_dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let stale_deleted = is_segment_file(&name)
            && name.starts_with("deleted-")
            && entry.deleted.as_ref().map(|d| d.file.as_str()) != Some(name.as_str());
        if stale_deleted || is_writer_tmp(&name, true) {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_names_are_recognized_and_nothing_else() {
        for n in [
            "bands",
            "sigs",
            "posts",
            "ids.fst",
            "text",
            "deleted-000003",
        ] {
            assert!(is_segment_file(n), "{n}");
        }
        for n in ["deleted-", "deleted-x", "notes.txt", "bands2"] {
            assert!(!is_segment_file(n), "{n}");
        }
        assert!(is_writer_tmp("MANIFEST-000002.json.tmp", false));
        assert!(is_writer_tmp("CURRENT.tmp", false));
        assert!(is_writer_tmp("CLUSTERS-000002.bin.tmp", false));
        assert!(!is_writer_tmp("notes.tmp", false));
        assert!(is_writer_tmp("fps.spill.tmp", true));
        assert!(is_writer_tmp("ids.fst.tmp", true));
        assert!(!is_writer_tmp("thesis.tmp", true));
        assert_eq!(segment_id("seg-000012"), Some(12));
        assert_eq!(segment_id("seg-"), None);
        assert_eq!(segment_id("seg-12a"), None);
    }
}
