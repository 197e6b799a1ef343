//! The write transaction every writer shares: the writer lock, the removal of a dead
//! writer's leftovers before writing, and the cleanup after a new generation is published.

use std::fs::{self, File};
use std::path::Path;

use super::manifest::{Manifest, SegmentEntry};
use crate::error::{Error, Result};

/// The writer lock of an index directory: an advisory lock on `LOCK`, released when dropped
/// (or when the process dies).
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of `dir`, or fails if another writer holds it (after waiting up to
    /// 100 ms for a lock held only for a moment).
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        let path = dir.join("LOCK");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // A lock held for a moment only is waited for (up to 100 ms): a process that forks
        // (to run a command, say) holds its parent's open files, and so the lock, until it
        // execs.
        for attempt in 0..=10 {
            match file.try_lock() {
                Ok(()) => return Ok(WriterLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if attempt < 10 => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => break,
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::IndexState {
            path: dir.to_path_buf(),
            what: "another writer is working on this index (LOCK is held); wait for it to finish"
                .into(),
        })
    }
}

/// Removes what `old` named and `new` does not: segment directories, deletion bitmaps and
/// the cluster file. Best effort: leftovers are removed by the next writer.
pub(crate) fn cleanup_after_publish(dir: &Path, old: &Manifest, new: &Manifest) {
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

/// Removes the leftovers of a writer that died before publishing: segment directories,
/// deletion bitmaps and cluster files that the live manifest `previous` does not name, and
/// temporary files. The caller holds the writer lock. Returns the least segment id that is
/// safe to use next.
pub(crate) fn remove_leftovers(dir: &Path, previous: Option<&Manifest>) -> Result<u64> {
    // Leftovers of a build that died before publishing: segments, deletion bitmaps and
    // cluster files no manifest names, and temporary files. We hold the writer lock, so
    // nobody else is writing them.
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
        if let Some(n) = name
            .strip_prefix("seg-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            max_seen = max_seen.max(n + 1);
            if !live.contains(&name) {
                fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        } else if name.ends_with(".tmp")
            || (name.starts_with("CLUSTERS-") && !live_clusters.contains(&name))
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
        let stale_deleted = name.starts_with("deleted-")
            && entry.deleted.as_ref().map(|d| d.file.as_str()) != Some(name.as_str());
        if stale_deleted || name.ends_with(".tmp") {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}
