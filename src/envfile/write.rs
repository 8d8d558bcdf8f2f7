//! Writing the edit to disk: symlinks followed, the folder locked, an atomic replace.

use super::open::{check_type, open_error, read_bounded};
use super::parse::parse;
use super::replace::{refuse_read_only, replace_file};
use super::*;

/// Set `key` to `value` in the file at `path` (see [`upsert`] for what changes in the bytes).
///
/// - A missing file is created with mode 0600; an existing one keeps its mode, and its owner
///   when running as root. A file its owner made read-only is refused.
/// - A symlink is written through: the file it finally points to is replaced and the link
///   kept; a dangling link gets its target created. A link to a file outside the link's
///   folder is refused ([`write_key_opts`] with [`Outside::Allow`] writes through it).
/// - The file is read without waiting (a FIFO or device is refused) and only up to
///   [`MAX_ENV_FILE_BYTES`].
/// - The original is never truncated, and a failure leaves it as it was: a new line at the end
///   is appended in place (one `write`, then fsync); any other edit goes to an unnamed
///   temporary file (0600) that is fsynced and swapped in by rename, then the folder fsynced.
///   The swap does break hard links to the old file.
/// - Another program writing without the lock loses nothing to the swap: the file is checked
///   to be the version read just before it, the replaced file checked after it, and the edit
///   re-applied on the newer version; the key is read back at the end.
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
    let options = WriteOptions {
        on_conflict,
        lock_wait,
        outside: Outside::Refuse,
    };
    write_key_opts(path, key, value, &options)
}

/// Whether a `.env` that is a symbolic link to a file outside the link's folder is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outside {
    /// Refuse with [`EnvFileError::SymlinkOutside`].
    #[default]
    Refuse,
    /// Write through the link (the user said `--force`).
    Allow,
}

/// Everything a write can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    pub on_conflict: OnConflict,
    /// How long to wait for another aksara editing the same folder.
    pub lock_wait: Duration,
    pub outside: Outside,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            on_conflict: OnConflict::Fail,
            lock_wait: DEFAULT_LOCK_WAIT,
            outside: Outside::Refuse,
        }
    }
}

/// [`write_key`] with all its options. The value is read back after the swap and the edit
/// re-applied if another program's write removed it.
pub fn write_key_opts(
    path: &Path,
    key: &str,
    value: &str,
    options: &WriteOptions,
) -> Result<Change, EnvFileError> {
    let mut changes = write_keys_opts(path, &[(key, value)], options)?;
    Ok(changes.remove(0))
}

/// Several keys in one write (`DATABASE_URL` and a driver's own form of it): one read, every
/// key upserted in order into the same bytes, one swap, so the file ends up holding all of
/// them or, on any error (a conflicting key, a full disk), none of the changes. Returns each
/// key's [`Change`], in order. A key given twice is refused: its second value would win
/// silently.
pub fn write_keys_opts(
    path: &Path,
    pairs: &[(&str, &str)],
    options: &WriteOptions,
) -> Result<Vec<Change>, EnvFileError> {
    for (at, (key, _)) in pairs.iter().enumerate() {
        validate_key(key)?;
        if pairs[..at].iter().any(|(earlier, _)| earlier == key) {
            return Err(EnvFileError::DuplicateKey {
                key: key.to_string(),
            });
        }
    }
    let with_path = |e| match e {
        EnvFileError::KeyConflict { key, line, .. } => EnvFileError::KeyConflict {
            path: Some(path.to_path_buf()),
            key,
            line,
        },
        EnvFileError::UnclosedQuote { line, .. } => EnvFileError::UnclosedQuote {
            path: Some(path.to_path_buf()),
            line,
        },
        e => e,
    };
    let edit = |original: &[u8]| {
        let mut bytes = original.to_vec();
        let mut changes = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let (next, change) =
                upsert(&bytes, key, value, options.on_conflict).map_err(with_path)?;
            bytes = next;
            changes.push(change);
        }
        if changes.iter().all(|c| *c == Change::Unchanged) {
            Ok((None, changes))
        } else {
            Ok((Some(bytes), changes))
        }
    };
    let confirm = |written: &[u8]| pairs.iter().all(|(key, value)| holds(written, key, value));
    replace_file(path, NEW_ENV_FILE_MODE, options, edit, confirm)
}

/// `bytes` already say `key=value` the way [`upsert`] would leave them.
fn holds(bytes: &[u8], key: &str, value: &str) -> bool {
    matches!(
        upsert(bytes, key, value, OnConflict::Fail),
        Ok((_, Change::Unchanged))
    )
}

/// Refuse a symbolic link at `path` whose file (`target`, canonical) is outside the folder
/// holding the link, unless allowed. A plain path outside the project is the user's explicit
/// choice (`--env-file ../shared/.env`) and is not refused.
pub(super) fn check_inside(
    path: &Path,
    target: &Path,
    outside: Outside,
) -> Result<(), EnvFileError> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if outside == Outside::Allow || !is_link {
        return Ok(());
    }
    let folder = fs::canonicalize(parent_dir(path)).map_err(|source| EnvFileError::Io {
        action: IoAction::Read,
        path: parent_dir(path),
        source,
    })?;
    if target.starts_with(&folder) {
        Ok(())
    } else {
        Err(EnvFileError::SymlinkOutside {
            path: path.to_path_buf(),
            target: target.to_path_buf(),
        })
    }
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
    match fs::symlink_metadata(&target) {
        Ok(meta) => {
            check_type(&meta, path)?;
            refuse_read_only(&target, path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(open_error(e, path, IoAction::Read)),
    }
    let probe = tempfile::Builder::new()
        .prefix(".aksara-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| match e.kind() {
            io::ErrorKind::ReadOnlyFilesystem => EnvFileError::ReadOnlyFilesystem {
                path: path.to_path_buf(),
            },
            io::ErrorKind::PermissionDenied => EnvFileError::DirNotWritable {
                path: path.to_path_buf(),
                dir: dir.clone(),
            },
            _ => EnvFileError::Io {
                action: IoAction::Write,
                path: path.to_path_buf(),
                source: e,
            },
        })?;
    drop(probe);
    Ok(())
}

/// What [`preflight`] found: the file a write would replace, and the key's assignments now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    /// The file the bytes live in (the end of any symlink chain), canonical folder.
    pub target: PathBuf,
    pub exists: bool,
    /// Every assignment of the key, in file order (values redacted from `Debug`).
    pub assignments: Vec<EnvEntry>,
}

/// Every problem that would make a later [`write_key_opts`] of `key` fail, found before
/// anything changes, so a command can refuse at its start (before creating roles or
/// databases): an invalid key; a path that is a directory, FIFO, device, socket, symlink loop
/// or symlink out of its folder (unless `outside` allows it); a missing or read-only folder; a
/// read-only file; a file over [`MAX_ENV_FILE_BYTES`]; a quote left open (the line is named).
/// Nothing waits: a FIFO is recognised without opening it for reading.
pub fn preflight(path: &Path, key: &str, outside: Outside) -> Result<Preflight, EnvFileError> {
    validate_key(key)?;
    let (_, target) = locate(path)?;
    check_inside(path, &target, outside)?;
    check_writable(path)?;
    let read = read_bounded(&target, path)?;
    let doc = parse(&read.bytes);
    if let Some(line) = doc.unclosed_quote {
        return Err(EnvFileError::UnclosedQuote {
            path: Some(path.to_path_buf()),
            line,
        });
    }
    Ok(Preflight {
        target,
        exists: read.meta.is_some(),
        assignments: parse_entries(&read.bytes)
            .into_iter()
            .filter(|e| e.key == key)
            .collect(),
    })
}

/// Whether the group or others may read the file (`mode & 0o044 != 0`), following symlinks:
/// for a warning when a production password sits in a world-readable file.
pub fn readable_by_others(path: &Path) -> io::Result<bool> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o044 != 0)
}
