//! Opening a `.env` that may be hostile: a FIFO (whose `open` would wait for a writer forever),
//! a device, or a file of gigabytes. Every read of the file goes through [`read_bounded`]:
//! `O_NONBLOCK` so `open` returns at once whatever the file is, a type check on the open
//! descriptor (no race with a rename), and a size bound checked before and while reading.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use super::*;

/// The most aksara reads from a `.env`. Hand-written files are a few KiB; certificates pasted
/// into one stay far below this.
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;

/// What identifies one version of a file: the same inode with the same size and modification
/// time. (Not ctime: a rename changes it without changing the content.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    pub(super) fn same_inode(&self, other: &Identity) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    pub(super) fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// One read of the file: its bytes and the version they came from (`None`: no file).
#[derive(Clone)]
pub(super) struct Snapshot {
    pub(super) bytes: Vec<u8>,
    pub(super) meta: Option<Metadata>,
}

impl Snapshot {
    pub(super) fn identity(&self) -> Option<Identity> {
        self.meta.as_ref().map(Identity::of)
    }

    /// Whether `other` is the same version with the same bytes.
    pub(super) fn same_as(&self, other: &Snapshot) -> bool {
        self.identity() == other.identity() && self.bytes == other.bytes
    }
}

/// `open` flags that never wait: a FIFO opens at once (and reads nothing), a terminal is not
/// adopted as the controlling one.
pub(super) const NO_WAIT: i32 = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Read `target` (errors name `shown`, the path the user gave) without waiting and without
/// holding more than [`MAX_ENV_FILE_BYTES`]. A missing file is an empty snapshot.
pub(super) fn read_bounded(target: &Path, shown: &Path) -> Result<Snapshot, EnvFileError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(NO_WAIT)
        .open(target)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Snapshot {
                bytes: Vec::new(),
                meta: None,
            });
        }
        Err(e) => return Err(open_error(e, shown, IoAction::Read)),
    };
    let meta = file
        .metadata()
        .map_err(|e| open_error(e, shown, IoAction::Read))?;
    check_type(&meta, shown)?;
    let too_large = |size| EnvFileError::TooLarge {
        path: shown.to_path_buf(),
        size,
        limit: MAX_ENV_FILE_BYTES,
    };
    if meta.len() > MAX_ENV_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    // The file may grow between the fstat and the read: read one byte past the limit to know.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_ENV_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| open_error(e, shown, IoAction::Read))?;
    if bytes.len() as u64 > MAX_ENV_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Snapshot {
        bytes,
        meta: Some(meta),
    })
}

/// A directory or anything but a regular file is refused by its type.
pub(super) fn check_type(meta: &Metadata, shown: &Path) -> Result<(), EnvFileError> {
    if meta.is_dir() {
        Err(EnvFileError::IsADirectory {
            path: shown.to_path_buf(),
        })
    } else if !meta.is_file() {
        Err(EnvFileError::NotAFile {
            path: shown.to_path_buf(),
        })
    } else {
        Ok(())
    }
}

/// The error for a failed `open`/read, by kind: a socket's `open` fails with ENXIO, as does a
/// FIFO opened for writing without a reader.
pub(super) fn open_error(e: io::Error, shown: &Path, action: IoAction) -> EnvFileError {
    let path = shown.to_path_buf();
    match e.raw_os_error() {
        Some(libc::ENXIO) | Some(libc::ENODEV) => return EnvFileError::NotAFile { path },
        Some(libc::ELOOP) => return EnvFileError::SymlinkLoop { path },
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::NotFound => EnvFileError::NotFound { path },
        io::ErrorKind::IsADirectory => EnvFileError::IsADirectory { path },
        io::ErrorKind::ReadOnlyFilesystem if action == IoAction::Write => {
            EnvFileError::ReadOnlyFilesystem { path }
        }
        io::ErrorKind::PermissionDenied if action == IoAction::Write => {
            EnvFileError::FileNotWritable { path }
        }
        _ => EnvFileError::Io {
            action,
            path,
            source: e,
        },
    }
}
