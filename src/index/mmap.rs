//! File bytes: memory-mapped or owned, opened only as regular files.
//!
//! An index may come from someone else, so every file of it is opened the same careful way
//! ([`open_regular`]): `O_NOFOLLOW` (a symbolic link in the index is refused, not followed to
//! `/dev/zero` or a file elsewhere), `O_NONBLOCK` (a FIFO or device in a file's place cannot
//! block the open) and then `fstat`, which must show a regular file. Small files that are
//! read whole (`CURRENT`, manifests) are read with a size cap ([`read_capped`]).
//!
//! With the prefetch hint in `segment`, this module holds the crate's `unsafe` code.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::{Advice, Mmap};

use super::Access;
use crate::error::{Error, Result};

/// The bytes of one index file.
#[derive(Debug)]
pub enum Data {
    /// A read-only memory map.
    Mmap(Mmap),
    /// Bytes read into memory.
    Owned(Vec<u8>),
    /// Bytes read into anonymous memory asked to be backed by huge pages (a large file read
    /// into memory on Linux, [`Data::read`]). Like `Owned`, not a view of the file.
    Anon(Mmap),
}

/// Opens `path` for reading if, and only if, it is a regular file, and returns it with its
/// length. The file's last path component must not be a symbolic link (`O_NOFOLLOW`); the
/// open never blocks (`O_NONBLOCK`, which has no effect on regular files' reads); `fstat`
/// then refuses FIFOs, sockets, devices and directories.
///
/// # Errors
/// [`Error::Corrupt`] for a symbolic link or a file that is not regular; [`Error::Io`]
/// otherwise (a missing file keeps its `NotFound` kind).
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::corrupt(
                path,
                "is a symbolic link; an index holds only regular files",
            ))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::corrupt(
            path,
            "is not a regular file (a FIFO, device, socket or directory); an index holds only \
             regular files",
        ));
    }
    Ok((file, meta.len()))
}

/// Reads the regular file `path` whole if it holds at most `cap` bytes (checked before
/// reading, and again while reading, in case it grows).
///
/// # Errors
/// As [`open_regular`], and [`Error::Corrupt`] for a file over `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path)?;
    let too_long = || Error::corrupt(path, format!("is longer than the {cap} bytes it may hold"));
    if len > cap {
        return Err(too_long());
    }
    let mut out = Vec::with_capacity(len as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > cap {
        return Err(too_long());
    }
    Ok(out)
}

/// Files at least this long are read into huge-page memory ([`Data::read`]): two huge pages.
pub const HUGE_READ_MIN: u64 = 4 << 20;

impl Data {
    /// Opens `path` the way `access` says: memory-mapped or read into memory.
    pub fn open(path: &Path, access: Access) -> Result<Data> {
        match access {
            Access::Mmap => Data::map(path),
            Access::InMemory => Data::read(path),
        }
    }

    /// Memory-maps the regular file `path` ([`open_regular`]) read-only, with random-access
    /// advice.
    pub fn map(path: &Path) -> Result<Data> {
        let (file, len) = open_regular(path)?;
        if len == 0 {
            return Ok(Data::Owned(Vec::new()));
        }
        // SAFETY: mapping a file is only unsound if the file is modified or truncated while
        // the map is alive. textreuse never modifies an index file in place: every file is
        // written under a temporary name and renamed, and later changes write new files.
        // A truncation by another program would raise SIGBUS, not undefined behaviour in our
        // code; the index format's documentation (FORMAT.md) says files are immutable.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        {
            // Advice is a hint; failing to give it is harmless.
            let _ = map.advise(Advice::Random);
        }
        Ok(Data::Mmap(map))
    }

    /// Reads the regular file `path` ([`open_regular`]) into memory. On Linux a file of at
    /// least [`HUGE_READ_MIN`] bytes goes into an anonymous map advised to use huge pages
    /// (`MADV_HUGEPAGE`; the kernel falls back to small pages when it has none): a lookup's
    /// random reads then miss the TLB far less often (ARCHITECTURE.md, "Lookups").
    pub fn read(path: &Path) -> Result<Data> {
        #[cfg(target_os = "linux")]
        {
            use std::io::Read;
            let (mut file, len) = open_regular(path)?;
            if len >= HUGE_READ_MIN {
                let len = usize::try_from(len)
                    .map_err(|_| Error::corrupt(path, "is too large to read into memory"))?;
                let mut map = memmap2::MmapMut::map_anon(len).map_err(|e| Error::io(path, e))?;
                // Advice is a hint; failing to give it is harmless.
                let _ = map.advise(Advice::HugePage);
                file.read_exact(&mut map).map_err(|e| Error::io(path, e))?;
                let map = map.make_read_only().map_err(|e| Error::io(path, e))?;
                return Ok(Data::Anon(map));
            }
            let mut out = Vec::with_capacity(len as usize);
            file.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
            Ok(Data::Owned(out))
        }
        #[cfg(not(target_os = "linux"))]
        read_capped(path, u64::MAX).map(Data::Owned)
    }

    /// Tells the kernel this map is about to be read once from start to end (memory maps
    /// only; a hint): read-ahead and fault-around instead of the random-access advice
    /// [`map`](Self::map) gives.
    pub fn advise_sequential(&self) {
        #[cfg(unix)]
        if let Data::Mmap(m) = self {
            // Advice is a hint; failing to give it is harmless.
            let _ = m.advise(Advice::Sequential);
        }
    }

    /// Asks the kernel to start reading `range` in (memory maps only; a hint).
    #[inline]
    pub fn prefetch(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        if let Data::Mmap(m) = self {
            if offset < m.len() && len > 0 {
                let len = len.min(m.len() - offset);
                let _ = m.advise_range(Advice::WillNeed, offset, len);
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }
}

impl Data {
    /// Drops this process's mapping of the pages of bytes `offset..offset + len` (memory
    /// maps only; rounded out to whole pages): the resident set shrinks at once, the kernel's page cache keeps them, and a later access reads
    /// them in again. Long sequential passes (merges) call it so that the pages they have
    /// read do not count against their memory.
    pub fn release_range(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        if let Data::Mmap(m) = self {
            if offset < m.len() && len > 0 {
                let len = len.min(m.len() - offset);
                // SAFETY: as in `release`: the pages of a shared, read-only file mapping
                // fault back in with the same bytes.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// Drops this process's mapping of every page of the file (see
    /// [`release_range`](Self::release_range)).
    pub fn release(&self) {
        #[cfg(unix)]
        if let Data::Mmap(m) = self {
            if !m.is_empty() {
                // SAFETY: MADV_DONTNEED on a shared, read-only file mapping only discards
                // this process's page table entries: the addresses stay mapped and a later
                // read faults the same bytes back in from the file, which is never modified
                // (see `map`). No page is written through the map, so nothing is lost and
                // borrowed slices keep reading identical bytes.
                let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            }
        }
    }
}

impl Deref for Data {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Data::Mmap(m) => m,
            Data::Owned(v) => v,
            Data::Anon(m) => m,
        }
    }
}

impl AsRef<[u8]> for Data {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read into memory holds the file's bytes, small or large (a large one in
    /// huge-page memory on Linux), and the page hints for maps leave them untouched: a
    /// `release` that discarded anonymous pages would read back zeros.
    #[test]
    fn read_into_memory_keeps_the_bytes_whatever_the_size() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            1,
            4095,
            HUGE_READ_MIN as usize - 1,
            HUGE_READ_MIN as usize + 12_345,
        ] {
            let path = dir.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            let data = Data::read(&path).unwrap();
            #[cfg(target_os = "linux")]
            assert_eq!(
                matches!(data, Data::Anon(_)),
                len as u64 >= HUGE_READ_MIN,
                "len {len}"
            );
            data.prefetch(0, len);
            data.release_range(0, len);
            data.release();
            assert!(data[..] == bytes[..], "len {len}");
            assert!(Data::open(&path, Access::InMemory).unwrap()[..] == bytes[..]);
        }
    }
}
