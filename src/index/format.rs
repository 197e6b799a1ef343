//! The one module that encodes and decodes index bytes.
//!
//! Every binary index file is an *envelope*:
//!
//! ```text
//! 0   magic            [u8; 8]   names the file kind ("TRBANDS\0", "TRSIGS\0\0", ...)
//! 8   format_version   u32 LE    FORMAT_VERSION
//! 12  section_count    u32 LE
//! 16  table_checksum   u64 LE    xxh3-64 of bytes 0..16 and of the section table
//! 24  section table    section_count x { kind u32, reserved u32, offset u64, len u64, xxh3 u64 }
//! ... sections, each at an 8-byte aligned offset
//! ```
//!
//! Section 0 is always `meta`: fixed little-endian counts for the file kind. Everything is
//! little-endian. Decoding never slices before proving bounds, uses checked arithmetic and
//! returns [`Error::Corrupt`] for any impossible value: no input byte can cause a panic.

use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::durable::{ChunkWriter, Pieces};
use crate::error::{Error, Result};

/// The format version this build writes (binary files and manifests).
pub const FORMAT_VERSION: u32 = 7;
/// The oldest format version this build reads.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// The format versions this build reads, for messages.
pub const SUPPORTED_VERSIONS: &str = "1 to 7";

/// Hands `xs` to `sink` as little-endian bytes, 2^16 values at a time (one buffer, reused):
/// the one encoder of number arrays for envelope sections, reserved sections and spill
/// files.
pub(crate) fn le_chunks<T: Copy, const N: usize>(
    xs: &[T],
    le: impl Fn(T) -> [u8; N],
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(xs.len().min(1 << 16) * N);
    for chunk in xs.chunks(1 << 16) {
        buf.clear();
        chunk.iter().for_each(|&x| buf.extend_from_slice(&le(x)));
        sink(&buf)?;
    }
    Ok(())
}

/// Whether this build reads format version `v`.
pub fn is_supported_version(v: u32) -> bool {
    (MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&v)
}

const HEADER_LEN: usize = 24;
const ENTRY_LEN: usize = 32;
/// The most sections a file may declare (a sanity bound against garbage headers).
const MAX_SECTIONS: u32 = 64;

/// One section of a parsed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section kind (its position's meaning is fixed per file kind).
    pub kind: u32,
    /// Byte range within the file.
    pub range: Range<usize>,
    /// xxh3-64 of the section's bytes.
    pub checksum: u64,
}

/// A validated envelope: the section table of a file whose bounds are all proven.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The file's format version (one of the supported versions).
    pub version: u32,
    /// The sections, in table order.
    pub sections: Vec<Section>,
}

impl Envelope {
    /// Parses and bounds-checks the header of `bytes`, a file of kind `magic`.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        magic: &[u8; 8],
        kind: &'static str,
    ) -> Result<Envelope> {
        let corrupt = |what: String| Error::corrupt(path, what);
        if bytes.len() < HEADER_LEN {
            if bytes.len() >= 8 && &bytes[..8] != magic {
                return Err(Error::BadMagic {
                    path: path.into(),
                    expected: kind,
                });
            }
            return Err(corrupt(format!(
                "file is {} bytes, shorter than a header",
                bytes.len()
            )));
        }
        if &bytes[..8] != magic {
            return Err(Error::BadMagic {
                path: path.into(),
                expected: kind,
            });
        }
        let version = read_u32(bytes, 8);
        if !is_supported_version(version) {
            return Err(Error::UnsupportedVersion {
                path: path.into(),
                found: version,
                supported: SUPPORTED_VERSIONS,
            });
        }
        let count = read_u32(bytes, 12);
        if count == 0 || count > MAX_SECTIONS {
            return Err(corrupt(format!("impossible section count {count}")));
        }
        let table_end = HEADER_LEN + count as usize * ENTRY_LEN;
        if bytes.len() < table_end {
            return Err(corrupt(
                "section table runs past the end of the file".into(),
            ));
        }
        let mut h = Xxh3::new();
        h.update(&bytes[..16]);
        h.update(&bytes[HEADER_LEN..table_end]);
        if h.digest() != read_u64(bytes, 16) {
            return Err(Error::ChecksumMismatch {
                path: path.into(),
                section: "header".into(),
            });
        }
        let mut sections = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let e = HEADER_LEN + i * ENTRY_LEN;
            let kind = read_u32(bytes, e);
            let off = read_u64(bytes, e + 8);
            let len = read_u64(bytes, e + 16);
            let checksum = read_u64(bytes, e + 24);
            let end = off
                .checked_add(len)
                .filter(|&end| end <= bytes.len() as u64);
            let Some(end) = end else {
                return Err(corrupt(format!(
                    "section {i} ({off}+{len}) runs past the end of the file"
                )));
            };
            if off < table_end as u64 || !off.is_multiple_of(8) {
                return Err(corrupt(format!("section {i} has a bad offset {off}")));
            }
            sections.push(Section {
                kind,
                range: off as usize..end as usize,
                checksum,
            });
        }
        Ok(Envelope { version, sections })
    }

    /// The section at position `i`, whose kind must be `kind`.
    pub fn section(&self, path: &Path, i: usize, kind: u32) -> Result<Range<usize>> {
        match self.sections.get(i) {
            Some(s) if s.kind == kind => Ok(s.range.clone()),
            Some(s) => Err(Error::corrupt(
                path,
                format!("section {i} has kind {} where {kind} was expected", s.kind),
            )),
            None => Err(Error::corrupt(path, format!("section {i} is missing"))),
        }
    }

    /// Checks every section's checksum (a full read of the file).
    pub fn verify(&self, path: &Path, bytes: &[u8], names: &[&str]) -> Result<()> {
        for (i, s) in self.sections.iter().enumerate() {
            let data = bytes
                .get(s.range.clone())
                .ok_or_else(|| Error::corrupt(path, "section out of bounds"))?;
            if xxh3_64(data) != s.checksum {
                return Err(section_mismatch(path, names, i));
            }
        }
        Ok(())
    }
}

/// Reads a little-endian `u32` at `off`; callers have proven `off + 4 <= bytes.len()`.
#[inline]
pub fn read_u32(bytes: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[off..off + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian `u64` at `off`; callers have proven `off + 8 <= bytes.len()`.
#[inline]
pub fn read_u64(bytes: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[off..off + 8]);
    u64::from_le_bytes(b)
}

/// A little-endian array view over a section whose length is proven to be `len * W` bytes.
#[derive(Debug, Clone, Copy)]
pub struct LeArray<'a, const W: usize> {
    bytes: &'a [u8],
}

impl<'a, const W: usize> LeArray<'a, W> {
    /// A view over `bytes`, which must hold exactly `count` elements.
    pub fn new(path: &Path, what: &str, bytes: &'a [u8], count: u64) -> Result<LeArray<'a, W>> {
        let want = count.checked_mul(W as u64);
        if want != Some(bytes.len() as u64) {
            return Err(Error::corrupt(
                path,
                format!("{what} is {} bytes, expected {count} x {W}", bytes.len()),
            ));
        }
        Ok(LeArray { bytes })
    }

    /// A view over a section whose length was already proven (a trailing partial element,
    /// impossible after [`new`](Self::new) succeeded once, is ignored).
    #[inline]
    pub fn proven(bytes: &'a [u8]) -> LeArray<'a, W> {
        LeArray {
            bytes: &bytes[..bytes.len() / W * W],
        }
    }

    /// The number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len() / W
    }
}

impl LeArray<'_, 2> {
    /// Element `i`, or `None` out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> Option<u16> {
        let b = self.bytes.get(i * 2..i * 2 + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
}

impl LeArray<'_, 4> {
    /// Element `i`, or `None` out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> Option<u32> {
        let b = self.bytes.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl LeArray<'_, 8> {
    /// Element `i`, or `None` out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> Option<u64> {
        let b = self.bytes.get(i * 8..i * 8 + 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}

/// A view over a bit-packed array of fixed-width records (format 5's band entries): record
/// `i` starts at bit `i * stride` of a little-endian bit stream (bit `b` is bit `b % 8` of
/// byte `b / 8`), and fields of up to 32 bits are read with one unaligned little-endian `u64`
/// load and a shift. The section holds at least 8 bytes after the byte of the last field's
/// first bit ([`packed_len`]), so every load of a field inside the stream is in bounds.
#[derive(Debug, Clone, Copy)]
pub struct PackedBits<'a> {
    bytes: &'a [u8],
}

impl<'a> PackedBits<'a> {
    /// A view over `bytes` (any length: a field whose load would end past it is `None`).
    #[inline]
    pub fn new(bytes: &'a [u8]) -> PackedBits<'a> {
        PackedBits { bytes }
    }

    /// The bits of `mask` (the low bits of a field of at most 57 bits: `u64::MAX >> (64 -
    /// width)`, or 0 for a field of none) of the `u64` loaded at the byte of bit `bit`,
    /// shifted down to it; `None` if the load is out of bounds. A field of a record whose
    /// widths are fixed, its mask computed once.
    #[inline]
    pub fn field(&self, bit: u64, mask: u64) -> Option<u64> {
        let at = usize::try_from(bit / 8).ok()?;
        let b = self.bytes.get(at..at.checked_add(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some((u64::from_le_bytes(a) >> (bit % 8)) & mask)
    }

    /// The `width` bits (0 to 64) from bit `bit` on (0 when `width` is 0, without a load), or
    /// `None` if a load is out of bounds. Up to 57 bits take one `u64` load, like
    /// [`field`](Self::field); a wider field whose bits run past that load takes the byte after
    /// it too (format 6's post rows: a time offset can need up to 64 bits).
    #[inline]
    pub fn get_wide(&self, bit: u64, width: u32) -> Option<u64> {
        if width == 0 {
            return Some(0);
        }
        let at = usize::try_from(bit / 8).ok()?;
        let b = self.bytes.get(at..at.checked_add(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        let shift = (bit % 8) as u32;
        let mut v = u64::from_le_bytes(a) >> shift;
        if shift + width.min(64) > 64 {
            // The field's top bits are in the next byte.
            v |= u64::from(*self.bytes.get(at + 8)?) << (64 - shift);
        }
        Some(v & (u64::MAX >> (64 - width.min(64))))
    }
}

/// The fewest bits that hold `x` (0 for 0): the width of a packed field whose largest value
/// is `x`.
#[inline]
pub fn bits_for(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The length in bytes of a packed section of `records` records of `stride` bits: whole
/// little-endian `u64` words for the bits, then one zero word, so that a field's 8-byte load
/// never ends past the section. `None` on overflow.
pub fn packed_len(records: u64, stride: u32) -> Option<u64> {
    let bits = records.checked_mul(u64::from(stride))?;
    bits.div_ceil(64).checked_add(1)?.checked_mul(8)
}

/// Packs fixed-width records into little-endian `u64` words (the writer of [`PackedBits`]):
/// each record is `fields` of the given widths, low bits first.
#[derive(Debug, Default)]
pub(crate) struct BitPacker {
    acc: u64,
    /// Bits held in `acc`.
    used: u32,
    /// The bit of the first word the stream started at.
    start: u32,
    /// Finished words.
    pub(crate) words: Vec<u64>,
}

impl BitPacker {
    /// Appends the low `width` bits (0 to 64) of `v`; higher bits of `v` must be zero.
    #[inline]
    pub(crate) fn push(&mut self, v: u64, width: u32) {
        if width == 0 {
            return;
        }
        self.acc |= v << self.used;
        let room = 64 - self.used;
        if width >= room {
            self.words.push(self.acc);
            self.acc = if room == 64 { 0 } else { v >> room };
            self.used = width - room;
        } else {
            self.used += width;
        }
    }

    /// A packer whose stream starts at bit `used` (below 64) of its first word, the bits
    /// before it zero: a piece of a longer stream packed on its own, to be
    /// [`append`](Self::append)ed to the packer of the stream before it.
    pub(crate) fn starting_at(used: u32) -> BitPacker {
        BitPacker {
            acc: 0,
            used: used % 64,
            start: used % 64,
            words: Vec::new(),
        }
    }

    /// Appends a piece packed by [`starting_at`](Self::starting_at) the bit this packer's partial word has reached: the
    /// same words as pushing its values here would give. `false` (nothing appended) if
    /// it starts at another bit.
    pub(crate) fn append(&mut self, piece: BitPacker) -> bool {
        let BitPacker {
            acc,
            used,
            start,
            words,
        } = piece;
        if start != self.used {
            return false;
        }
        match words.split_first() {
            Some((&first, rest)) => {
                self.words.push(self.acc | first);
                self.words.extend_from_slice(rest);
                self.acc = acc;
            }
            None => self.acc |= acc,
        }
        self.used = used;
        true
    }

    /// Ends the stream: the partial word (zero-filled), if any, joins the finished ones.
    pub(crate) fn flush(&mut self) {
        if self.used > 0 {
            self.words.push(self.acc);
            self.acc = 0;
            self.used = 0;
        }
    }
}

/// Writes an envelope file atomically: sections stream into `<name>.tmp` with their
/// checksums, the header is patched in at the end, the file is fsynced and renamed.
pub struct EnvelopeWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: ChunkWriter,
    hasher: Xxh3,
    pos: u64,
    entries: Vec<(u32, u64, u64, u64)>,
    current: Option<(u32, u64)>,
    magic: [u8; 8],
    capacity: usize,
    /// Reserved sections not yet closed ([`reserve`](Self::reserve)).
    open_reserved: usize,
}

/// A section whose length is known before its bytes: [`EnvelopeWriter::reserve`] leaves
/// room for it, [`EnvelopeWriter::fill`] writes its bytes in order (while later sections
/// stream on), [`EnvelopeWriter::close`] records its checksum.
pub struct Reserved {
    /// Its entry in the section table.
    entry: usize,
    start: u64,
    len: u64,
    /// Bytes filled so far.
    at: u64,
    hasher: Xxh3,
}

impl std::fmt::Debug for EnvelopeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeWriter")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish()
    }
}

impl std::fmt::Debug for Reserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserved")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("at", &self.at)
            .finish()
    }
}

impl EnvelopeWriter {
    /// Starts `path` (written as `path.tmp` until [`finish`](Self::finish)) with room for
    /// `sections` sections.
    pub fn create(path: &Path, magic: &[u8; 8], sections: usize) -> Result<EnvelopeWriter> {
        EnvelopeWriter::create_in(path, magic, sections, Pieces::Huge)
    }

    /// As [`create`](Self::create), handing the file to the kernel in `pieces`.
    pub(crate) fn create_in(
        path: &Path,
        magic: &[u8; 8],
        sections: usize,
        pieces: Pieces,
    ) -> Result<EnvelopeWriter> {
        let tmp = super::durable::tmp_path(path);
        // Never through a link, never over another file, mode 0644 (see `txn`).
        let file = super::durable::create_file(&tmp)?;
        let out = ChunkWriter::new(file, pieces).map_err(|e| Error::io(&tmp, e))?;
        let mut w = EnvelopeWriter {
            path: path.to_path_buf(),
            tmp,
            out,
            hasher: Xxh3::new(),
            pos: 0,
            entries: Vec::with_capacity(sections),
            current: None,
            magic: *magic,
            capacity: sections,
            open_reserved: 0,
        };
        // Reserve the header and table; they are written last.
        let reserved = vec![0u8; HEADER_LEN + sections * ENTRY_LEN];
        w.raw(&reserved)?;
        Ok(w)
    }

    fn raw(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(|e| Error::io(&self.tmp, e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Begins a section of kind `kind` (8-byte aligned).
    pub fn begin(&mut self, kind: u32) -> Result<()> {
        self.begin_aligned(kind, 8)
    }

    /// Begins a section of kind `kind` at an offset that is a multiple of `align` (8 or 64;
    /// other values count as 8), so that records of `align` bytes each fill whole cache
    /// lines of a mapping (which starts on a page).
    pub fn begin_aligned(&mut self, kind: u32, align: u64) -> Result<()> {
        self.end()?;
        let align = if align == 64 { 64 } else { 8 };
        let pad = (align - self.pos % align) % align;
        self.raw(&[0u8; 64][..pad as usize])?;
        self.hasher = Xxh3::new();
        self.current = Some((kind, self.pos));
        Ok(())
    }

    /// Appends bytes to the current section.
    pub fn write(&mut self, b: &[u8]) -> Result<()> {
        self.hasher.update(b);
        self.raw(b)
    }

    /// Appends numbers as little-endian bytes, in chunks.
    fn write_le<T: Copy, const N: usize>(
        &mut self,
        xs: &[T],
        le: impl Fn(T) -> [u8; N],
    ) -> Result<()> {
        le_chunks(xs, le, |b| self.write(b))
    }

    /// Appends little-endian `u32`s.
    pub fn write_u32s(&mut self, xs: &[u32]) -> Result<()> {
        self.write_le(xs, u32::to_le_bytes)
    }

    /// Appends little-endian `u128`s.
    pub fn write_u128s(&mut self, xs: &[u128]) -> Result<()> {
        self.write_le(xs, u128::to_le_bytes)
    }

    /// Appends little-endian `u64`s.
    pub fn write_u64s(&mut self, xs: &[u64]) -> Result<()> {
        self.write_le(xs, u64::to_le_bytes)
    }

    /// Leaves room for a section of kind `kind` and `len` bytes, to be filled in order
    /// with [`fill`](Self::fill) and closed with [`close`](Self::close) before
    /// [`finish`](Self::finish); the sections begun after it follow it in the file.
    pub fn reserve(&mut self, kind: u32, len: u64) -> Result<Reserved> {
        use std::io::{Seek, SeekFrom};
        self.begin(kind)?;
        self.current = None;
        let start = self.pos;
        self.pos = start + len;
        self.out
            .seek(SeekFrom::Start(self.pos))
            .map_err(|e| Error::io(&self.tmp, e))?;
        self.entries.push((kind, start, len, 0));
        self.open_reserved += 1;
        Ok(Reserved {
            entry: self.entries.len() - 1,
            start,
            len,
            at: 0,
            hasher: Xxh3::new(),
        })
    }

    /// Writes the next bytes of the reserved section `r`.
    pub fn fill(&mut self, r: &mut Reserved, b: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        if r.at + b.len() as u64 > r.len {
            return Err(Error::InvalidParameter(format!(
                "{}: {} bytes for a reserved section of {} with {} filled",
                self.path.display(),
                b.len(),
                r.len,
                r.at
            )));
        }
        let io = |e| Error::io(&self.tmp, e);
        self.out.seek(SeekFrom::Start(r.start + r.at)).map_err(io)?;
        self.out.write_all(b).map_err(io)?;
        self.out.seek(SeekFrom::Start(self.pos)).map_err(io)?;
        r.hasher.update(b);
        r.at += b.len() as u64;
        Ok(())
    }

    /// Ends the reserved section `r`, which must be filled, recording its checksum.
    pub fn close(&mut self, r: Reserved) -> Result<()> {
        if r.at != r.len {
            return Err(Error::InvalidParameter(format!(
                "{}: a reserved section of {} bytes closed with {} filled",
                self.path.display(),
                r.len,
                r.at
            )));
        }
        if let Some(e) = self.entries.get_mut(r.entry) {
            e.3 = r.hasher.digest();
        }
        self.open_reserved -= 1;
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if let Some((kind, start)) = self.current.take() {
            let digest = std::mem::replace(&mut self.hasher, Xxh3::new()).digest();
            self.entries.push((kind, start, self.pos - start, digest));
        }
        Ok(())
    }

    /// Writes the header, fsyncs, renames into place. Returns the file's length.
    pub fn finish(mut self) -> Result<u64> {
        self.end()?;
        if self.open_reserved != 0 {
            return Err(Error::InvalidParameter(format!(
                "{}: {} reserved section(s) not closed",
                self.path.display(),
                self.open_reserved
            )));
        }
        if self.entries.len() != self.capacity {
            return Err(Error::InvalidParameter(format!(
                "{}: wrote {} sections, declared {}",
                self.path.display(),
                self.entries.len(),
                self.capacity
            )));
        }
        let mut head = Vec::with_capacity(HEADER_LEN + self.entries.len() * ENTRY_LEN);
        head.extend_from_slice(&self.magic);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        head.extend_from_slice(&[0u8; 8]);
        for &(kind, off, len, sum) in &self.entries {
            head.extend_from_slice(&kind.to_le_bytes());
            head.extend_from_slice(&0u32.to_le_bytes());
            head.extend_from_slice(&off.to_le_bytes());
            head.extend_from_slice(&len.to_le_bytes());
            head.extend_from_slice(&sum.to_le_bytes());
        }
        let mut h = Xxh3::new();
        h.update(&head[..16]);
        h.update(&head[HEADER_LEN..]);
        let sum = h.digest();
        head[16..24].copy_from_slice(&sum.to_le_bytes());
        let len = self.pos;
        let tmp = self.tmp.clone();
        let mut file = self.out.into_inner().map_err(|e| Error::io(&tmp, e))?;
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&head).map_err(|e| Error::io(&tmp, e))?;
        file.sync_data().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(len)
    }
}

/// The error for section `i` (named by `names`, else `#i`) of `path` failing its checksum.
pub(crate) fn section_mismatch(path: &Path, names: &[&str], i: usize) -> Error {
    let section = names
        .get(i)
        .map_or_else(|| format!("#{i}"), |n| n.to_string());
    Error::ChecksumMismatch {
        path: path.into(),
        section,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream packed in pieces apart (each started at the bit where the one before it
    /// ends) and appended gives the words of the stream packed at once; a piece started
    /// at another bit is refused.
    #[test]
    fn pieces_packed_apart_append_to_the_stream_packed_at_once() {
        for (tw, cw) in [(13u32, 20u32), (32, 32), (1, 1), (18, 23)] {
            let e = u64::from(tw + cw);
            let values: Vec<(u64, u64)> = (0..1000u64)
                .map(|i| {
                    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    (
                        x & (u64::MAX >> (64 - tw)),
                        (x >> 32) & (u64::MAX >> (64 - cw)),
                    )
                })
                .collect();
            let mut whole = BitPacker::default();
            for &(t, c) in &values {
                whole.push(t, tw);
                whole.push(c, cw);
            }
            whole.flush();
            // Pieces of 0, 1, 3, 64, 100 ... entries.
            let mut joined = BitPacker::default();
            let mut at = 0usize;
            for len in [0usize, 1, 3, 64, 100, 1, 500]
                .into_iter()
                .chain([usize::MAX])
            {
                let hi = at.saturating_add(len).min(values.len());
                let mut piece = BitPacker::starting_at((at as u64 * e % 64) as u32);
                for &(t, c) in &values[at..hi] {
                    piece.push(t, tw);
                    piece.push(c, cw);
                }
                assert!(joined.append(piece));
                at = hi;
            }
            joined.flush();
            assert_eq!(joined.words, whole.words, "{tw} {cw}");
            let mut p = BitPacker::default();
            p.push(1, 3);
            assert!(!p.append(BitPacker::starting_at(5)));
        }
    }

    /// Records packed by `BitPacker` read back through `PackedBits` for every pair of field
    /// widths a band entry can have (a tag of 1 to 32 bits, an id of 1 to 32 bits), and a
    /// load past the section is `None`, never a panic.
    #[test]
    fn packed_records_read_back_at_every_width() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for tw in [1u32, 2, 5, 14, 16, 17, 30, 31, 32] {
            for cw in [1u32, 3, 7, 20, 23, 31, 32] {
                let n = 301u64;
                let mut want = Vec::new();
                let mut p = BitPacker::default();
                for _ in 0..n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let t = (x as u32) & (u32::MAX >> (32 - tw));
                    let c = ((x >> 32) as u32) & (u32::MAX >> (32 - cw));
                    p.push(u64::from(t), tw);
                    p.push(u64::from(c), cw);
                    want.push((t, c));
                }
                p.flush();
                p.words.push(0);
                let bytes: Vec<u8> = p.words.iter().flat_map(|w| w.to_le_bytes()).collect();
                assert_eq!(Some(bytes.len() as u64), packed_len(n, tw + cw));
                let r = PackedBits::new(&bytes);
                let get = |bit: u64, w: u32| r.field(bit, u64::MAX >> (64 - w)).map(|v| v as u32);
                let e = u64::from(tw + cw);
                for (i, &(t, c)) in want.iter().enumerate() {
                    let at = i as u64 * e;
                    assert_eq!(get(at, tw), Some(t), "{tw} {cw} {i}");
                    assert_eq!(get(at + u64::from(tw), cw), Some(c), "{tw} {cw} {i}");
                }
                assert_eq!(get((bytes.len() as u64 - 7) * 8, 1), None);
                assert_eq!(get(u64::MAX, 32), None);
            }
        }
    }

    #[test]
    fn a_reserved_section_filled_later_gives_the_bytes_of_one_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, reserve: bool| {
            let p = dir.path().join(name);
            let mut w = EnvelopeWriter::create(&p, b"TRTEST\0\0", 3).unwrap();
            w.begin(0).unwrap();
            w.write(b"abc").unwrap();
            if reserve {
                let mut r = w.reserve(1, 12).unwrap();
                w.begin(2).unwrap();
                w.write(b"streamed on").unwrap();
                w.fill(&mut r, b"filled").unwrap();
                w.fill(&mut r, b" later").unwrap();
                assert!(w.fill(&mut r, b"!").is_err(), "past the reserved length");
                w.close(r).unwrap();
            } else {
                w.begin(1).unwrap();
                w.write(b"filled later").unwrap();
                w.begin(2).unwrap();
                w.write(b"streamed on").unwrap();
            }
            w.finish().unwrap();
            fs::read(&p).unwrap()
        };
        let (a, b) = (write("a", true), write("b", false));
        assert_eq!(a, b);
        Envelope::parse(Path::new("a"), &a, b"TRTEST\0\0", "test")
            .unwrap()
            .verify(Path::new("a"), &a, &[])
            .unwrap();
        // A reserved section left short, or not closed, is an error.
        let p = dir.path().join("c");
        let mut w = EnvelopeWriter::create(&p, b"TRTEST\0\0", 1).unwrap();
        let mut r = w.reserve(0, 4).unwrap();
        w.fill(&mut r, b"ab").unwrap();
        assert!(w.close(r).is_err());
        assert!(w.finish().is_err());
    }

    #[test]
    fn an_aligned_section_starts_on_a_line_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        let mut w = EnvelopeWriter::create(&p, b"TRTEST\0\0", 3).unwrap();
        w.begin(0).unwrap();
        w.write(&[7u8; 32]).unwrap();
        w.begin_aligned(1, 64).unwrap();
        w.write(&[9u8; 128]).unwrap();
        w.begin(2).unwrap();
        w.write(b"x").unwrap();
        w.finish().unwrap();
        let b = fs::read(&p).unwrap();
        let env = Envelope::parse(&p, &b, b"TRTEST\0\0", "test").unwrap();
        env.verify(&p, &b, &[]).unwrap();
        let r = env.section(&p, 1, 1).unwrap();
        assert_eq!(r.start % 64, 0, "section 1 at {}", r.start);
        assert_eq!(&b[r], &[9u8; 128][..]);
        // Padding follows the meta (which starts at 120, after a 3-section table).
        assert_eq!(env.section(&p, 0, 0).unwrap(), 120..152);
        assert!(b[152..192].iter().all(|&x| x == 0));
    }

    #[test]
    fn envelope_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut w = EnvelopeWriter::create(&p, b"TRTEST\0\0", 2).unwrap();
        w.begin(0).unwrap();
        w.write_u32s(&[1, 2, 3]).unwrap();
        w.begin(7).unwrap();
        w.write(b"hello").unwrap();
        let len = w.finish().unwrap();
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len() as u64, len);
        let env = Envelope::parse(&p, &bytes, b"TRTEST\0\0", "test").unwrap();
        assert_eq!(env.sections.len(), 2);
        let r = env.section(&p, 1, 7).unwrap();
        assert_eq!(&bytes[r], b"hello");
        env.verify(&p, &bytes, &["meta", "text"]).unwrap();
        assert!(matches!(
            Envelope::parse(&p, &bytes, b"TROTHER\0", "other"),
            Err(Error::BadMagic { .. })
        ));
        // Every truncation and every single-byte flip is an error, never a panic.
        for cut in 0..bytes.len() {
            let r = Envelope::parse(&p, &bytes[..cut], b"TRTEST\0\0", "test");
            assert!(r.is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5A;
            let ok = Envelope::parse(&p, &b, b"TRTEST\0\0", "test")
                .and_then(|e| e.verify(&p, &b, &[]))
                .is_ok();
            // Padding bytes between sections are not covered by any checksum.
            let in_padding =
                (HEADER_LEN + 2 * ENTRY_LEN + 12..HEADER_LEN + 2 * ENTRY_LEN + 16).contains(&i);
            assert!(!ok || in_padding, "flip at {i} went unnoticed");
        }
    }
}
