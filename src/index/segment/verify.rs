//! Full verification of a segment: every section checksum and every file's whole-file
//! checksum against the manifest, and the deletion bitmap's count of set bits. (A deletion
//! bitmap the manifest should name and does not is found by [`Segment::open`], which
//! `verify` needs first; the directory is not listed again, since a held snapshot's may
//! have been removed since.)

use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use super::{
    EntryLayout, PostLayout, Segment, BANDS_SECTIONS, BANDS_SECTIONS_V5, DELETED_SECTIONS,
    POSTS_SECTIONS, POSTS_SECTIONS_V6, SIGS_SECTIONS, TEXT_SECTIONS,
};
use crate::error::{Error, Result};
use crate::index::format::{section_mismatch, Envelope};
use crate::index::mmap::Data;

/// A file's checksums from one pass: each section's and the whole file's xxh3-64.
struct Sums {
    sections: Vec<u64>,
    whole: u64,
}

impl Sums {
    /// Bytes hashed between read-ahead requests and page releases.
    const CHUNK: usize = 8 << 20;

    /// Hashes `data` front to back: the sections of `env`, if given, and the whole file.
    fn of(data: &Data, env: Option<&Envelope>) -> Sums {
        let bytes: &[u8] = data;
        let sections = env.map_or(&[][..], |e| &e.sections[..]);
        let mut hashers: Vec<Xxh3> = sections.iter().map(|_| Xxh3::new()).collect();
        let mut whole = Xxh3::new();
        data.prefetch(0, Self::CHUNK);
        let mut off = 0;
        while off < bytes.len() {
            let end = (off + Self::CHUNK).min(bytes.len());
            data.prefetch(end, Self::CHUNK);
            whole.update(&bytes[off..end]);
            for (s, h) in sections.iter().zip(&mut hashers) {
                let (lo, hi) = (s.range.start.max(off), s.range.end.min(end));
                if lo < hi {
                    h.update(&bytes[lo..hi]);
                }
            }
            data.release_range(off, end - off);
            off = end;
        }
        Sums {
            sections: hashers.iter().map(Xxh3::digest).collect(),
            whole: whole.digest(),
        }
    }

    /// The first section whose checksum differs from `env`'s, as [`Envelope::verify`]
    /// reports it.
    fn check_sections(&self, path: &Path, env: &Envelope, names: &[&str]) -> Result<()> {
        for (i, (s, &got)) in env.sections.iter().zip(&self.sections).enumerate() {
            if got != s.checksum {
                return Err(section_mismatch(path, names, i));
            }
        }
        Ok(())
    }
}

impl Segment {
    /// Checks every checksum of the segment's files (a full read). Each file is read once,
    /// front to back, with read-ahead, hashing its sections and the whole file together;
    /// the pages read are dropped behind the pass, so verifying a large segment does not
    /// make it resident.
    pub(crate) fn verify(&self) -> Result<()> {
        let bands = Sums::of(&self.bands.file.data, Some(&self.bands.file.env));
        let sigs = Sums::of(&self.sigs.data, Some(&self.sigs.env));
        let posts = Sums::of(&self.posts.file.data, Some(&self.posts.file.env));
        let text = self
            .texts
            .as_ref()
            .map(|t| Sums::of(&t.file.data, Some(&t.file.env)));
        let ids = Sums::of(&self.ids, None);
        // Sections first, then whole files, in the order of a check file by file.
        let band_names: &[&str] = match self.bands.entries {
            EntryLayout::Packed { .. } => &BANDS_SECTIONS_V5,
            EntryLayout::Columns { .. } => &BANDS_SECTIONS,
        };
        bands.check_sections(&self.bands.file.path, &self.bands.file.env, band_names)?;
        sigs.check_sections(&self.sigs.path, &self.sigs.env, &SIGS_SECTIONS)?;
        let post_names: &[&str] = match self.posts.rows {
            PostLayout::Rows { .. } => &POSTS_SECTIONS_V6,
            PostLayout::Columns { .. } => &POSTS_SECTIONS,
        };
        posts.check_sections(&self.posts.file.path, &self.posts.file.env, post_names)?;
        if let (Some(t), Some(sums)) = (&self.texts, &text) {
            sums.check_sections(&t.file.path, &t.file.env, &TEXT_SECTIONS)?;
        }
        let files = [
            ("bands", &bands),
            ("sigs", &sigs),
            ("posts", &posts),
            ("ids.fst", &ids),
        ];
        for (name, sums) in files.into_iter().chain(text.as_ref().map(|t| ("text", t))) {
            let want = self
                .entry
                .files
                .get(name)
                .map(|f| f.xxh3.as_str())
                .unwrap_or("");
            let got = format!("{:016x}", sums.whole);
            if got != want {
                return Err(Error::ChecksumMismatch {
                    path: self.dir.join(name),
                    section: "whole file".into(),
                });
            }
        }
        if let (Some(d), Some(e)) = (&self.deleted, &self.entry.deleted) {
            d.env.verify(&d.path, &d.data, &DELETED_SECTIONS)?;
            if format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&d.data)) != e.xxh3 {
                return Err(Error::ChecksumMismatch {
                    path: d.path.clone(),
                    section: "whole file".into(),
                });
            }
            let set: u64 = self
                .deleted_words()
                .unwrap_or_default()
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum();
            if set != e.count {
                return Err(Error::corrupt(
                    &d.path,
                    format!("has {set} bits set, the manifest says {}", e.count),
                ));
            }
        }
        self.find_id("").map(|_| ())?;
        self.check_time_order()
    }

    /// Format 7: each content's posts are in time order (unknown last), then id order; a
    /// limited lookup relies on it. (Checksums cannot tell a writer that broke it.)
    fn check_time_order(&self) -> Result<()> {
        if !self.posts_by_time() {
            return Ok(());
        }
        for c in 0..self.n_contents as u32 {
            let r = self.content_posts(c)?;
            let mut last: Option<(i64, &str)> = None;
            for p in r {
                let key = (self.post_ts(p)?.unwrap_or(i64::MAX), self.post_id(p)?);
                if last.is_some_and(|l| l >= key) {
                    return Err(Error::corrupt(
                        &self.posts.file.path,
                        format!("post {p} of content {c} is out of time and id order"),
                    ));
                }
                last = Some(key);
            }
        }
        Ok(())
    }
}
