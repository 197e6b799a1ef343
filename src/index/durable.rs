//! Creating index files and directories the way every writer must: never through a
//! symbolic link, never over an existing file, with modes 0644 and 0755 whatever the
//! umask ([`create_file`], [`create_dir`]); whole small files replaced atomically
//! ([`atomic_write`]: temporary file, fsync, rename) and renames made durable
//! ([`sync_dir`]).

use std::fs::{self, File};
use std::io::Write;
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

#[cfg(test)]
mod tests {
    use super::*;

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
