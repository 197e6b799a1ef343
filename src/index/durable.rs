//! Creating index files and directories the way every writer must: never through a
//! symbolic link, never over an existing file, with modes 0644 and 0755 whatever the
//! umask ([`create_file`], [`create_dir`]); whole small files replaced atomically
//! ([`atomic_write`]: temporary file, fsync, rename) and renames made durable
//! ([`sync_dir`]); files handed to the kernel in the pieces that suit their use
//! ([`ChunkWriter`], [`Pieces`]).

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An open error, with a symbolic link (ELOOP under `O_NOFOLLOW`) said in words.
pub(crate) fn link_error(path: &Path, e: std::io::Error) -> Error {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        Error::corrupt(
            path,
            "is a symbolic link; writers do not follow links inside an index",
        )
    } else {
        Error::io(path, e)
    }
}

/// Creates `path` as a new regular file for writing (and reading), mode 0644 whatever the
/// umask. Never follows a symbolic link and never opens an existing file: a leftover
/// regular file of the same name (a dead writer's) is removed first; anything else in its
/// place is an error.
pub(crate) fn create_file(path: &Path) -> Result<File> {
    for attempt in 0..2 {
        let opened = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        match opened {
            Ok(f) => {
                f.set_permissions(fs::Permissions::from_mode(0o644))
                    .map_err(|e| Error::io(path, e))?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt == 0 => {
                let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
                if !meta.is_file() {
                    return Err(link_error(path, e));
                }
                fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
            Err(e) => return Err(link_error(path, e)),
        }
    }
    Err(Error::io(
        path,
        std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    ))
}

/// Creates the directory `path` (its parent must exist), mode 0755 whatever the umask.
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(|e| link_error(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(path, e))
}

/// `path` with `.tmp` appended.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = create_file(&tmp)?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_data().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Fsyncs a directory so that renames within it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The piece [`ChunkWriter`] hands the kernel in [`Pieces::Huge`]: a huge page (2 MiB on
/// x86-64 and arm64 with 4 KiB pages).
pub(crate) const CHUNK: usize = 2 << 20;

/// The buffer of [`Pieces::Buffered`], as `BufWriter`'s was.
const BUFFERED: usize = 1 << 20;

/// How a [`ChunkWriter`] hands its file to the kernel; the bytes are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pieces {
    /// Whole writes that start and end on multiples of [`CHUNK`] in the file, but after a
    /// seek and at the end. Linux (6.x, on ext4 and XFS) keeps each in one huge folio of
    /// the page cache, and a read-only mapping of the file maps that folio with one
    /// page-table entry: the random reads of a warm lookup miss the TLB as rarely as in
    /// huge-page memory (ARCHITECTURE.md, "Lookups"). For the files lookups map.
    Huge,
    /// Writes of a 1 MiB buffer wherever they fall, as `BufWriter`'s: the page cache keeps
    /// them in small folios, which cost less to allocate on a VM that hands free memory back
    /// to its host. For the runs of a bulk build (merged, then deleted) and spill files.
    Buffered,
}

/// A buffered writer of a file, in the [`Pieces`] it is given.
pub(crate) struct ChunkWriter<W = File> {
    file: W,
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    pos: u64,
    pieces: Pieces,
}

impl<W: Write + Seek> ChunkWriter<W> {
    /// A writer of `file`, from its current offset.
    pub(crate) fn new(mut file: W, pieces: Pieces) -> std::io::Result<ChunkWriter<W>> {
        let pos = file.stream_position()?;
        let cap = match pieces {
            Pieces::Huge => CHUNK,
            Pieces::Buffered => BUFFERED,
        };
        Ok(ChunkWriter {
            file,
            buf: Vec::with_capacity(cap),
            pos,
            pieces,
        })
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.pos += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is buffered and returns the file.
    pub(crate) fn into_inner(mut self) -> std::io::Result<W> {
        self.flush_buf()?;
        Ok(self.file)
    }
}

impl<W: Write + Seek> Write for ChunkWriter<W> {
    /// Takes all of `b`, as `BufWriter` does (fst's writer checksums every byte it passes,
    /// whatever count comes back).
    fn write(&mut self, mut b: &[u8]) -> std::io::Result<usize> {
        let len = b.len();
        if self.pieces == Pieces::Buffered {
            // `BufWriter`'s writes: the buffer when the bytes would overflow it, and bytes
            // as long as the buffer straight through.
            if self.buf.len() + len > BUFFERED {
                self.flush_buf()?;
            }
            if len >= BUFFERED {
                self.file.write_all(b)?;
                self.pos += len as u64;
            } else {
                self.buf.extend_from_slice(b);
            }
            return Ok(len);
        }
        while !b.is_empty() {
            let end = self.pos + self.buf.len() as u64;
            let to_boundary = CHUNK - (end % CHUNK as u64) as usize;
            if self.buf.is_empty() && to_boundary == CHUNK && b.len() >= CHUNK {
                // Whole pieces straight from the caller's bytes.
                let n = b.len() / CHUNK * CHUNK;
                self.file.write_all(&b[..n])?;
                self.pos += n as u64;
                b = &b[n..];
                continue;
            }
            let n = b.len().min(to_boundary);
            self.buf.extend_from_slice(&b[..n]);
            b = &b[n..];
            if n == to_boundary {
                self.flush_buf()?;
            }
        }
        Ok(len)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_buf()?;
        self.file.flush()
    }
}

impl<W: Write + Seek> Seek for ChunkWriter<W> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.flush_buf()?;
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in memory that records each write it is given (offset and length).
    #[derive(Debug, Default)]
    struct Recorder {
        data: Vec<u8>,
        pos: u64,
        writes: Vec<(u64, usize)>,
    }

    impl Write for Recorder {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let at = self.pos as usize;
            if self.data.len() < at + b.len() {
                self.data.resize(at + b.len(), 0);
            }
            self.data[at..at + b.len()].copy_from_slice(b);
            self.writes.push((self.pos, b.len()));
            self.pos += b.len() as u64;
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Recorder {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.pos = match to {
                SeekFrom::Start(p) => p,
                SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
                SeekFrom::End(d) => (self.data.len() as u64).saturating_add_signed(d),
            };
            Ok(self.pos)
        }
    }

    /// Every write the file is given starts and ends on a chunk boundary, but the first
    /// after a seek (it may start anywhere) and the last before one or the end (it may end
    /// anywhere), whatever the sizes written; and the file holds exactly the bytes written.
    #[test]
    fn chunk_writer_writes_whole_aligned_pieces_and_the_same_bytes() {
        let c = CHUNK as u64;
        let mut w = ChunkWriter::new(Recorder::default(), Pieces::Huge).unwrap();
        // A header first, so the stream starts off a boundary, as an envelope's does.
        w.write_all(&[9u8; 100]).unwrap();
        let mut want = vec![9u8; 100];
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        // Sizes from a byte to several chunks, so both the buffered and the direct path run.
        for i in 0..200 {
            let len = match next(4) {
                0 => next(16) as usize + 1,
                1 => next(70_000) as usize,
                2 => next(c) as usize,
                _ => CHUNK * (1 + next(3) as usize) + next(5_000) as usize,
            };
            let b: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            // One call takes every byte, as `BufWriter`'s does.
            assert_eq!(w.write(&b).unwrap(), b.len());
            want.extend_from_slice(&b);
        }
        let streamed = w.file.writes.clone();
        assert!(streamed.len() > 50, "{} writes", streamed.len());
        assert!(streamed
            .iter()
            .all(|&(at, n)| (at + n as u64).is_multiple_of(c)));
        assert!(streamed[1..].iter().all(|&(at, _)| at.is_multiple_of(c)));
        assert!(
            streamed.iter().any(|&(_, n)| n > CHUNK),
            "the direct path never ran"
        );
        // A seek writes what is buffered; writing over earlier bytes replaces them.
        w.seek(SeekFrom::Start(3)).unwrap();
        w.write_all(b"xyz").unwrap();
        want[3..6].copy_from_slice(b"xyz");
        let end = want.len() as u64;
        assert_eq!(w.seek(SeekFrom::Start(end)).unwrap(), end);
        w.write_all(b"tail").unwrap();
        want.extend_from_slice(b"tail");
        let file = w.into_inner().unwrap();
        assert!(file.data == want, "the file differs from the bytes written");
    }

    /// In `Buffered` pieces the file is given the writes `BufWriter` (1 MiB) gives it.
    #[test]
    fn chunk_writer_buffered_writes_as_bufwriter_did() {
        let mut w = ChunkWriter::new(Recorder::default(), Pieces::Buffered).unwrap();
        let mut b = std::io::BufWriter::with_capacity(BUFFERED, Recorder::default());
        let mut seed = 11u64;
        for i in 0..300 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = match (seed >> 40) % 3 {
                0 => (seed >> 20) as usize % 64,
                1 => (seed >> 20) as usize % (BUFFERED + 1),
                _ => BUFFERED + (seed >> 20) as usize % (3 * BUFFERED),
            };
            let bytes = vec![i as u8; len];
            assert_eq!(w.write(&bytes).unwrap(), len);
            b.write_all(&bytes).unwrap();
        }
        let (w, b) = (w.into_inner().unwrap(), b.into_inner().unwrap());
        assert!(w.writes.len() > 100, "{} writes", w.writes.len());
        assert_eq!(w.writes, b.writes);
        assert!(w.data == b.data);
    }

    #[test]
    fn created_files_and_dirs_ignore_the_umask_and_never_follow_links() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        drop(create_file(&f).unwrap());
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // A leftover regular file is replaced; a link is refused and its target untouched.
        fs::write(&f, b"old").unwrap();
        drop(create_file(&f).unwrap());
        assert_eq!(fs::read(&f).unwrap(), b"");
        let target = d.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = create_file(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        let sub = d.path().join("sub");
        create_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
}
