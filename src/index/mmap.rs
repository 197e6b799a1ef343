//! File bytes: memory-mapped or owned. The crate's only `unsafe` code lives here.

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
}

impl Data {
    /// Opens `path` the way `access` says: memory-mapped or read into memory.
    pub fn open(path: &Path, access: Access) -> Result<Data> {
        match access {
            Access::Mmap => Data::map(path),
            Access::InMemory => Data::read(path),
        }
    }

    /// Memory-maps `path` read-only, with random-access advice.
    pub fn map(path: &Path) -> Result<Data> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
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

    /// Reads `path` into memory.
    pub fn read(path: &Path) -> Result<Data> {
        std::fs::read(path)
            .map(Data::Owned)
            .map_err(|e| Error::io(path, e))
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
    /// Drops this process's mapping of the file's pages (memory maps only): the resident
    /// set shrinks at once, the kernel's page cache keeps them, and a later access reads
    /// them in again. Long sequential passes (merges) call it so that the pages they have
    /// read do not count against their memory.
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
        }
    }
}

impl AsRef<[u8]> for Data {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}
