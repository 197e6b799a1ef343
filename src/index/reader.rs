//! [`IndexReader`]: a shared, reloadable view of an index for services.

use std::path::Path;

use super::{Index, OpenOptions};
use crate::error::Result;

/// A shared, reloadable view of an index for services: every query takes the current
/// snapshot ([`searcher`](Self::searcher), an `Arc<Index>`), and [`reload`](Self::reload)
/// swaps in the newest generation without pausing queries in flight (they finish on the
/// snapshot they took; its files stay readable until the last `Arc` is dropped).
#[derive(Debug)]
pub struct IndexReader {
    current: std::sync::RwLock<std::sync::Arc<Index>>,
}

impl IndexReader {
    /// Opens the index in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<IndexReader> {
        IndexReader::open_with(dir, OpenOptions::default())
    }

    /// Opens the index in `dir` with options.
    pub fn open_with(dir: impl AsRef<Path>, opts: OpenOptions) -> Result<IndexReader> {
        Ok(IndexReader {
            current: std::sync::RwLock::new(std::sync::Arc::new(Index::open_with(dir, opts)?)),
        })
    }

    /// The current snapshot.
    pub fn searcher(&self) -> std::sync::Arc<Index> {
        match self.current.read() {
            Ok(g) => std::sync::Arc::clone(&g),
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Picks up the newest generation if there is one; returns whether it did. The new
    /// generation is opened before the swap, so queries never wait for an open.
    pub fn reload(&self) -> Result<bool> {
        let Some(new) = self.searcher().reload()? else {
            return Ok(false);
        };
        let new = std::sync::Arc::new(new);
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Another thread may have reloaded meanwhile: never go back a generation.
        if new.manifest.generation > g.manifest.generation {
            *g = new;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}
