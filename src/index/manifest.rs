//! The manifest: the JSON document that says which segments make up an index.
//!
//! `CURRENT` holds the file name of the live manifest (`MANIFEST-<generation>.json`). A new
//! manifest is written to a temporary name, fsynced and renamed, then `CURRENT` is replaced
//! the same way and the directory fsynced: a reader sees either the old or the new index,
//! never a mix. Manifests carry their own `format_version`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::durable::{atomic_write, sync_dir};
use super::format::{is_supported_version, SUPPORTED_VERSIONS};
use super::mmap::read_capped;
use crate::error::{Error, Result};
use crate::fingerprint::FingerprintParams;

/// The most bytes `CURRENT` may hold (it holds one file name); a larger one is refused
/// unread.
pub const MAX_CURRENT_BYTES: u64 = 4096;
/// The most bytes a manifest may hold (about 25,000 segments); a larger one is refused
/// unread.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// One file of a segment, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub len: u64,
    /// xxh3-64 of the whole file, 16 hex digits.
    pub xxh3: String,
}

/// One segment, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// The segment id; its directory is `seg-<id as 6 digits>`.
    pub id: u64,
    /// Posts in the segment.
    pub posts: u64,
    /// Unique texts (contents) in the segment.
    pub contents: u64,
    /// Whether the segment stores post texts.
    pub has_text: bool,
    /// Its files by name.
    pub files: BTreeMap<String, FileEntry>,
    /// Its deleted posts, if any (format version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<DeletedEntry>,
}

/// A segment's deletion bitmap, as recorded in the manifest. Deleting more posts writes a
/// new bitmap file (files are never modified in place) named by a new manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedEntry {
    /// File name inside the segment directory (`deleted-<generation>`).
    pub file: String,
    /// Deleted posts (set bits).
    pub count: u64,
    /// Length in bytes.
    pub len: u64,
    /// xxh3-64 of the whole file, 16 hex digits.
    pub xxh3: String,
}

impl SegmentEntry {
    /// The segment's directory name.
    pub fn dir_name(&self) -> String {
        segment_dir_name(self.id)
    }
}

/// The directory name of segment `id`.
pub fn segment_dir_name(id: u64) -> String {
    format!("seg-{id:06}")
}

/// A saved cluster assignment (`textreuse clusters --save`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClustersEntry {
    /// The file name in the index directory (`CLUSTERS-<generation>.bin`).
    pub file: String,
    /// Length in bytes.
    pub len: u64,
    /// xxh3-64 of the whole file, 16 hex digits.
    pub xxh3: String,
    /// The edge similarity the clusters were made with.
    pub min_similarity: f64,
    /// The structural edge support they were made with (0 = none).
    pub min_edge_support: f64,
    /// Number of clusters saved.
    pub clusters: u64,
}

/// The manifest of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The index format version (FORMAT.md; this build writes 5 and reads 1 to 5).
    pub format_version: u32,
    /// Increases by one with every published change.
    pub generation: u64,
    /// How every text in the index was fingerprinted.
    pub params: FingerprintParams,
    /// The live segments.
    pub segments: Vec<SegmentEntry>,
    /// The next unused segment id.
    pub next_segment_id: u64,
    /// The saved cluster assignment, if any (optional in format version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClustersEntry>,
    /// xxh3-64 (16 hex digits) of this manifest serialized with `checksum` empty. Set by
    /// the writer that publishes the manifest, checked by [`load_current`](Manifest::load_current).
    #[serde(default)]
    pub checksum: String,
}

impl Manifest {
    /// The file name of generation `generation`'s manifest.
    pub fn file_name(generation: u64) -> String {
        format!("MANIFEST-{generation:06}.json")
    }

    /// Reads the live manifest of the index in `dir`, or `None` if `dir` holds no index
    /// (no `CURRENT`).
    pub fn load_current(dir: &Path) -> Result<Option<(Manifest, PathBuf)>> {
        let current = dir.join("CURRENT");
        let bytes = match read_capped(&current, MAX_CURRENT_BYTES) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let name = String::from_utf8(bytes)
            .map_err(|_| Error::corrupt(&current, "is not UTF-8 (it names the live manifest)"))?;
        let name = name.trim();
        let valid =
            name.starts_with("MANIFEST-") && name.ends_with(".json") && !name.contains(['/', '\\']);
        if !valid {
            return Err(Error::corrupt(
                &current,
                format!("names {name:?}, which is not a manifest file"),
            ));
        }
        let m = Manifest::load_named(dir, name)?;
        Ok(Some((m, dir.join(name))))
    }

    /// Reads and checks the manifest file `name` in `dir` (whether or not it is live).
    pub(crate) fn load_named(dir: &Path, name: &str) -> Result<Manifest> {
        let path = dir.join(name);
        let bytes = read_capped(&path, MAX_MANIFEST_BYTES)?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|source| Error::Manifest {
            path: path.clone(),
            source,
        })?;
        if !is_supported_version(m.format_version) {
            return Err(Error::UnsupportedVersion {
                path,
                found: m.format_version,
                supported: SUPPORTED_VERSIONS,
            });
        }
        if m.compute_checksum()? != m.checksum {
            return Err(Error::ChecksumMismatch {
                path,
                section: "manifest".into(),
            });
        }
        if Manifest::file_name(m.generation) != name {
            return Err(Error::corrupt(
                &path,
                format!(
                    "holds generation {}, which its file name does not say",
                    m.generation
                ),
            ));
        }
        m.check(&path)?;
        Ok(m)
    }

    /// Checks what a checksum cannot: that the manifest (even one whose checksum was
    /// recomputed by hand) names each segment once.
    fn check(&self, path: &Path) -> Result<()> {
        let mut ids: Vec<u64> = self.segments.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::corrupt(
                path,
                format!("lists segment {} more than once", w[0]),
            ));
        }
        Ok(())
    }

    /// The checksum of this manifest's contents (its `checksum` field left out).
    fn compute_checksum(&self) -> Result<String> {
        let unsummed = Manifest {
            checksum: String::new(),
            ..self.clone()
        };
        let json = serde_json::to_vec(&unsummed).map_err(|source| Error::Manifest {
            path: PathBuf::new(),
            source,
        })?;
        Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json)))
    }

    /// Publishes this manifest in `dir`: writes it (with its checksum), then points
    /// `CURRENT` at it. Other manifests in `dir` are removed afterwards.
    pub(crate) fn publish(&self, dir: &Path) -> Result<()> {
        let name = Manifest::file_name(self.generation);
        let summed = Manifest {
            checksum: self.compute_checksum()?,
            ..self.clone()
        };
        let json = serde_json::to_vec_pretty(&summed).map_err(|source| Error::Manifest {
            path: dir.join(&name),
            source,
        })?;
        atomic_write(&dir.join(&name), &json)?;
        sync_dir(dir)?;
        atomic_write(&dir.join("CURRENT"), format!("{name}\n").as_bytes())?;
        sync_dir(dir)?;
        remove_stale_manifests(dir, &name);
        Ok(())
    }

    /// Total posts, deleted ones included.
    pub fn posts(&self) -> u64 {
        self.segments.iter().map(|s| s.posts).sum()
    }

    /// Deleted posts (not yet merged away).
    pub fn deleted(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| s.deleted.as_ref().map(|d| d.count))
            .sum()
    }

    /// Live posts: total minus deleted.
    pub fn live_posts(&self) -> u64 {
        self.posts().saturating_sub(self.deleted())
    }

    /// Total unique texts (summed over segments).
    pub fn contents(&self) -> u64 {
        self.segments.iter().map(|s| s.contents).sum()
    }
}

/// Removes every `MANIFEST-*.json` in `dir` but `keep` (best effort: a stale manifest is
/// harmless, `CURRENT` names the live one).
pub fn remove_stale_manifests(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("MANIFEST-") && name.ends_with(".json") && name != keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
