//! Writing the edit to disk: symlinks followed, the folder locked, an atomic replace.

use super::*;

/// Set `key` to `value` in the file at `path` (see [`upsert`] for what changes in the bytes).
///
/// - A missing file is created with mode 0600; an existing one keeps its mode, and its owner
///   when running as root. A file its owner made read-only is refused.
/// - A symlink is written through: the file it finally points to is replaced and the link
///   kept; a dangling link gets its target created.
/// - The write is atomic (temporary file in the same folder, fsync, rename, fsync of the
///   folder): the original is never truncated, and a failure leaves it as it was. The rename
///   does break hard links to the old file.
/// - The whole read-modify-write holds an exclusive lock on the folder, so parallel runs
///   setting different keys lose nothing; the lock is waited for up to [`DEFAULT_LOCK_WAIT`].
/// - An unchanged value leaves the file untouched (not even rewritten).
pub fn write_key(
    path: &Path,
    key: &str,
    value: &str,
    on_conflict: OnConflict,
) -> Result<Change, EnvFileError> {
    write_key_with(path, key, value, on_conflict, DEFAULT_LOCK_WAIT)
}

/// [`write_key`] with the time to wait for another process editing the same folder.
pub fn write_key_with(
    path: &Path,
    key: &str,
    value: &str,
    on_conflict: OnConflict,
    lock_wait: Duration,
) -> Result<Change, EnvFileError> {
    validate_key(key)?;
    replace_file(path, NEW_ENV_FILE_MODE, lock_wait, |original| match upsert(
        original,
        key,
        value,
        on_conflict,
    ) {
        Ok((_, Change::Unchanged)) => Ok((None, Change::Unchanged)),
        Ok((bytes, change)) => Ok((Some(bytes), change)),
        Err(EnvFileError::KeyConflict { key, line, .. }) => Err(EnvFileError::KeyConflict {
            path: Some(path.to_path_buf()),
            key,
            line,
        }),
        Err(EnvFileError::UnclosedQuote { line, .. }) => Err(EnvFileError::UnclosedQuote {
            path: Some(path.to_path_buf()),
            line,
        }),
        Err(e) => Err(e),
    })
}

pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Follow `path` through any chain of symlinks to the file that holds the bytes, so the rename
/// replaces that file and the links keep pointing at it. A dangling link resolves to the
/// missing file it names, which is then created.
pub(super) fn resolve_target(path: &Path) -> Result<PathBuf, EnvFileError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let dest = fs::read_link(&current).map_err(|source| EnvFileError::Io {
                    action: IoAction::Read,
                    path: current.clone(),
                    source,
                })?;
                current = parent_dir(&current).join(dest);
            }
            Ok(meta) if meta.is_dir() => {
                return Err(EnvFileError::IsADirectory {
                    path: path.to_path_buf(),
                });
            }
            // A rename over `/dev/null` or a FIFO would replace it with a regular file.
            Ok(meta) if !meta.is_file() => {
                return Err(EnvFileError::NotAFile {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(EnvFileError::ParentMissing {
                    path: path.to_path_buf(),
                    dir: parent_dir(&current),
                });
            }
            Err(source) => {
                return Err(EnvFileError::Io {
                    action: IoAction::Read,
                    path: current,
                    source,
                });
            }
        }
    }
    Err(EnvFileError::SymlinkLoop {
        path: path.to_path_buf(),
    })
}

/// Wait up to `wait` for an exclusive lock on the folder.
///
/// The folder is locked, not the file: the rename that makes the write atomic swaps the file's
/// inode, so a lock on the old file would guard nothing for the next writer, while the folder's
/// inode stays put. A sibling `.env.lock` would work too, but it is one more file to leave in
/// the user's project (and to gitignore), and deleting it while held breaks the exclusion.
/// The lock is `flock` on Linux, so it also excludes other threads of this process, which open
/// their own descriptions of the folder.
pub(super) fn lock_folder(folder: &File, path: &Path, wait: Duration) -> Result<(), EnvFileError> {
    let start = Instant::now();
    loop {
        match folder.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(EnvFileError::LockTimeout {
                        path: path.to_path_buf(),
                        waited: wait,
                    });
                }
                std::thread::sleep(LOCK_POLL.min(wait - waited));
            }
            // A file system without locks: going on unlocked beats refusing to work there.
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                return Ok(());
            }
            Err(TryLockError::Error(source)) => {
                return Err(EnvFileError::Io {
                    action: IoAction::Lock,
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Makes `replace_file` fail after the temporary file is written, before the rename.
    pub(super) static FAIL_BEFORE_RENAME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The folder (canonical) and the file in it that a write to `path` replaces, following
/// symlinks; errors name `path` as the user gave it.
pub(super) fn locate(path: &Path) -> Result<(PathBuf, PathBuf), EnvFileError> {
    let target = resolve_target(path)?;
    let Some(name) = target.file_name() else {
        return Err(EnvFileError::IsADirectory {
            path: path.to_path_buf(),
        });
    };
    let dir = match fs::canonicalize(parent_dir(&target)) {
        Ok(dir) => dir,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(EnvFileError::ParentMissing {
                path: path.to_path_buf(),
                dir: parent_dir(&target),
            });
        }
        Err(source) => {
            return Err(EnvFileError::Io {
                action: IoAction::Read,
                path: parent_dir(&target),
                source,
            });
        }
    };
    let target = dir.join(name);
    Ok((dir, target))
}

/// Whether [`write_key`] could write `path` now, found out without changing it: the same
/// checks it makes before editing (a directory, a device, a missing folder, a file its owner
/// made read-only), and a temporary file created and removed in the folder, which proves the
/// rename would be allowed (also on a read-only file system, and whatever root's exemptions
/// from permission bits are). For callers that must know before they change something else,
/// such as a database server. The lock is not taken: it is waited for at write time.
pub fn check_writable(path: &Path) -> Result<(), EnvFileError> {
    let (dir, target) = locate(path)?;
    match fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return Err(EnvFileError::IsADirectory {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => {
            if let Err(e) = OpenOptions::new().write(true).open(&target) {
                return Err(match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        EnvFileError::FileNotWritable {
                            path: path.to_path_buf(),
                        }
                    }
                    _ => EnvFileError::Io {
                        action: IoAction::Write,
                        path: path.to_path_buf(),
                        source: e,
                    },
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(EnvFileError::Io {
                action: IoAction::Read,
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let probe = tempfile::Builder::new()
        .prefix(".aksara-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                EnvFileError::DirNotWritable {
                    path: path.to_path_buf(),
                    dir: dir.clone(),
                }
            }
            _ => EnvFileError::Io {
                action: IoAction::Write,
                path: path.to_path_buf(),
                source: e,
            },
        })?;
    drop(probe);
    Ok(())
}

/// Read-modify-write `path` under the folder lock. `edit` gets the current bytes (empty when the
/// file does not exist) and returns the new bytes, or `None` to leave the file untouched.
///
/// The new bytes go to a temporary file in the same folder (a rename is only atomic within one
/// file system), which is flushed to disk, given the old file's mode and owner, and renamed over
/// the old file; the folder is then flushed so the rename itself survives a crash. At no point
/// is the original truncated: a failure anywhere leaves it as it was.
pub(crate) fn replace_file<T>(
    path: &Path,
    new_file_mode: u32,
    lock_wait: Duration,
    edit: impl FnOnce(&[u8]) -> Result<(Option<Vec<u8>>, T), EnvFileError>,
) -> Result<T, EnvFileError> {
    let (dir, target) = locate(path)?;
    let folder = File::open(&dir).map_err(|source| EnvFileError::Io {
        action: IoAction::Read,
        path: dir.clone(),
        source,
    })?;
    lock_folder(&folder, path, lock_wait)?;

    let io_err = |action, source| EnvFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let (original, existing) = match fs::read(&target) {
        Ok(bytes) => {
            let meta = fs::metadata(&target).map_err(|e| io_err(IoAction::Read, e))?;
            // The rename needs only the folder to be writable; a file its owner made read-only
            // is still refused, as an editor would.
            if let Err(e) = OpenOptions::new().write(true).open(&target) {
                return Err(match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        EnvFileError::FileNotWritable {
                            path: path.to_path_buf(),
                        }
                    }
                    _ => io_err(IoAction::Write, e),
                });
            }
            (bytes, Some(meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
            return Err(EnvFileError::IsADirectory {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(IoAction::Read, e)),
    };

    let (bytes, result) = edit(&original)?;
    let Some(bytes) = bytes else {
        return Ok(result);
    };

    let not_writable = |e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            EnvFileError::DirNotWritable {
                path: path.to_path_buf(),
                dir: dir.clone(),
            }
        }
        _ => io_err(IoAction::Write, e),
    };
    // Created 0600, so the secret is never readable by others, even for an instant.
    let mut temp = tempfile::Builder::new()
        .prefix(".aksara-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(not_writable)?;
    let mode = existing
        .as_ref()
        .map_or(new_file_mode, |m| m.mode() & 0o7777);
    temp.write_all(&bytes)
        .map_err(|e| io_err(IoAction::Write, e))?;
    if let Some(meta) = &existing {
        // Only root can give a file away; anyone else keeps their own ownership, which is
        // also what an editor does, so a failure here is not an error. (Before the chmod: a
        // chown clears setuid/setgid bits.)
        let _ = std::os::unix::fs::fchown(temp.as_file(), Some(meta.uid()), Some(meta.gid()));
    }
    temp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|e| io_err(IoAction::Write, e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| io_err(IoAction::Write, e))?;

    #[cfg(test)]
    if FAIL_BEFORE_RENAME.with(|f| f.get()) {
        return Err(io_err(
            IoAction::Write,
            io::Error::other("injected failure"),
        ));
    }

    temp.persist(&target).map_err(|e| not_writable(e.error))?;
    // The new content is in place once the rename returns; failing the command because the
    // folder could not be flushed would make the caller think the value was not written.
    let _ = folder.sync_all();
    Ok(result)
}

/// Whether the group or others may read the file (`mode & 0o044 != 0`), following symlinks:
/// for a warning when a production password sits in a world-readable file.
pub fn readable_by_others(path: &Path) -> io::Result<bool> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o044 != 0)
}
