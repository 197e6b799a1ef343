//! FORMAT.md's binary envelope and manifest publication, read and written from the spec
//! alone (the crate's byte module is private): the tests find sections to damage, craft
//! files, and republish hand-edited manifests with these.

use std::fs;
use std::ops::Range;
use std::path::Path;

use textreuse::index::Manifest;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// Magic numbers of the segment files (FORMAT.md, "Binary envelope").
pub const BANDS_MAGIC: &[u8; 8] = b"TRBANDS\0";
pub const SIGS_MAGIC: &[u8; 8] = b"TRSIGS\0\0";
pub const POSTS_MAGIC: &[u8; 8] = b"TRPOSTS\0";
pub const TEXT_MAGIC: &[u8; 8] = b"TRTEXT\0\0";
pub const DELETED_MAGIC: &[u8; 8] = b"TRDEL\0\0\0";

/// Caps of FORMAT.md, "Reading an index that someone else made": `CURRENT` bytes, manifest
/// bytes, and the decompressed bytes one stored text may declare.
pub const MAX_CURRENT_BYTES: u64 = 4096;
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// Bytes of the header, and of one section table entry.
const HEADER_LEN: usize = 24;
const ENTRY_LEN: usize = 32;

/// A little-endian `u32` at `off`.
pub fn read_u32(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off..off + 8].try_into().expect("8 bytes"))
}

/// The section table of a sound envelope.
#[derive(Debug)]
pub struct Envelope {
    /// Each section's byte range, in table order.
    pub sections: Vec<Range<usize>>,
}

impl Envelope {
    /// Reads the header of `bytes` (a file `what`), checking its magic, its table checksum
    /// and every section's bounds and checksum; panics on a file that is not sound.
    pub fn parse(what: &Path, bytes: &[u8], magic: &[u8; 8]) -> Envelope {
        let what = what.display();
        assert!(bytes.len() >= HEADER_LEN, "{what}: shorter than a header");
        assert_eq!(&bytes[..8], magic, "{what}: magic");
        let count = read_u32(bytes, 12) as usize;
        let table_end = HEADER_LEN + count * ENTRY_LEN;
        let mut h = Xxh3::new();
        h.update(&bytes[..16]);
        h.update(&bytes[HEADER_LEN..table_end]);
        assert_eq!(h.digest(), read_u64(bytes, 16), "{what}: table checksum");
        let sections = (0..count)
            .map(|i| {
                let e = HEADER_LEN + i * ENTRY_LEN;
                assert_eq!(read_u32(bytes, e) as usize, i, "{what}: section {i} kind");
                let (off, len) = (read_u64(bytes, e + 8) as usize, read_u64(bytes, e + 16));
                let r = off..off + len as usize;
                assert!(off >= table_end && off % 8 == 0 && r.end <= bytes.len());
                assert_eq!(
                    xxh3_64(&bytes[r.clone()]),
                    read_u64(bytes, e + 24),
                    "{what}"
                );
                r
            })
            .collect();
        Envelope { sections }
    }

    /// Where the section table ends.
    pub fn table_end(&self) -> usize {
        HEADER_LEN + self.sections.len() * ENTRY_LEN
    }
}

/// Writes an envelope of kind `magic` (format version 4) holding `sections` to `path`.
pub fn write(path: &Path, magic: &[u8; 8], sections: &[&[u8]]) {
    write_version(path, magic, 4, sections)
}

/// Writes an envelope of kind `magic` and format `version` holding `sections` to `path`.
pub fn write_version(path: &Path, magic: &[u8; 8], version: u32, sections: &[&[u8]]) {
    let table_end = HEADER_LEN + sections.len() * ENTRY_LEN;
    let mut head = Vec::with_capacity(table_end);
    head.extend_from_slice(magic);
    head.extend_from_slice(&version.to_le_bytes());
    head.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    head.extend_from_slice(&[0u8; 8]);
    let mut body = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        body.resize(body.len().next_multiple_of(8), 0);
        let off = (table_end + body.len()) as u64;
        body.extend_from_slice(s);
        head.extend_from_slice(&(i as u32).to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&off.to_le_bytes());
        head.extend_from_slice(&(s.len() as u64).to_le_bytes());
        head.extend_from_slice(&xxh3_64(s).to_le_bytes());
    }
    let mut h = Xxh3::new();
    h.update(&head[..16]);
    h.update(&head[HEADER_LEN..]);
    head[16..24].copy_from_slice(&h.digest().to_le_bytes());
    head.extend_from_slice(&body);
    fs::write(path, head).expect("writes the envelope");
}

/// Publishes `m` in `dir` as FORMAT.md says a writer does: the manifest file with its
/// checksum (xxh3-64 of the compact JSON with an empty checksum), then `CURRENT` naming
/// it; other manifests are removed. What someone who edits a manifest by hand and
/// recomputes its checksum gets.
pub fn publish(dir: &Path, m: &Manifest) {
    let mut m = m.clone();
    m.checksum.clear();
    let json = serde_json::to_vec(&m).expect("serializes");
    m.checksum = format!("{:016x}", xxh3_64(&json));
    let name = Manifest::file_name(m.generation);
    let pretty = serde_json::to_vec_pretty(&m).expect("serializes");
    fs::write(dir.join(&name), pretty).expect("writes the manifest");
    fs::write(dir.join("CURRENT"), format!("{name}\n")).expect("writes CURRENT");
    for e in fs::read_dir(dir).expect("lists the index") {
        let n = e.expect("entry").file_name().to_string_lossy().into_owned();
        if n.starts_with("MANIFEST-") && n.ends_with(".json") && n != name {
            fs::remove_file(dir.join(n)).expect("removes an old manifest");
        }
    }
}
