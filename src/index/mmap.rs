//! File bytes: memory-mapped or owned. The crate's only `unsafe` code lives here.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::{Advice, Mmap};

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
