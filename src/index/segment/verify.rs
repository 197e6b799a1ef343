//! Full verification of a segment: every section checksum and every file's whole-file
//! checksum against the manifest, and the deletion bitmap's count of set bits. (A deletion
//! bitmap the manifest should name and does not is found by [`Segment::open`], which
//! `verify` needs first; the directory is not listed again, since a held snapshot's may
//! have been removed since.)

use super::{
    Segment, BANDS_SECTIONS, DELETED_SECTIONS, POSTS_SECTIONS, SIGS_SECTIONS, TEXT_SECTIONS,
};
use crate::error::{Error, Result};

impl Segment {
    /// Checks every checksum of the segment's files (a full read).
    pub(crate) fn verify(&self) -> Result<()> {
        self.bands.file.env.verify(
            &self.bands.file.path,
            &self.bands.file.data,
            &BANDS_SECTIONS,
        )?;
        self.sigs
            .env
            .verify(&self.sigs.path, &self.sigs.data, &SIGS_SECTIONS)?;
        self.posts.file.env.verify(
            &self.posts.file.path,
            &self.posts.file.data,
            &POSTS_SECTIONS,
        )?;
        if let Some(t) = &self.texts {
            t.file
                .env
                .verify(&t.file.path, &t.file.data, &TEXT_SECTIONS)?;
        }
        let files: [(&str, &[u8]); 4] = [
            ("bands", &self.bands.file.data),
            ("sigs", &self.sigs.data),
            ("posts", &self.posts.file.data),
            ("ids.fst", &self.ids),
        ];
        for (name, bytes) in files
            .into_iter()
            .chain(self.texts.as_ref().map(|t| ("text", &t.file.data[..])))
        {
            let want = self
                .entry
                .files
                .get(name)
                .map(|f| f.xxh3.as_str())
                .unwrap_or("");
            let got = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes));
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
        self.find_id("").map(|_| ())
    }
}
