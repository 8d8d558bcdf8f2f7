//! What can go wrong reading or editing a `.env`, as typed errors carrying their hint.

use super::*;

/// The step that failed, for [`EnvFileError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoAction {
    Read,
    Write,
    Lock,
}

impl fmt::Display for IoAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoAction::Read => "read",
            IoAction::Write => "write",
            IoAction::Lock => "lock the folder of",
        })
    }
}

/// Everything that can go wrong reading or editing a `.env` or `.gitignore`. No variant holds
/// a value from the file: values are secrets.
#[derive(Debug)]
pub enum EnvFileError {
    InvalidKey {
        key: String,
    },
    /// Environment variables cannot hold NUL; `set_var` would panic on it.
    NulInValue {
        key: String,
    },
    /// One write was given the same key twice.
    DuplicateKey {
        key: String,
    },
    NotFound {
        path: PathBuf,
    },
    IsADirectory {
        path: PathBuf,
    },
    /// A device, FIFO or socket: there is no file to replace.
    NotAFile {
        path: PathBuf,
    },
    SymlinkLoop {
        path: PathBuf,
    },
    ParentMissing {
        path: PathBuf,
        dir: PathBuf,
    },
    DirNotWritable {
        path: PathBuf,
        dir: PathBuf,
    },
    FileNotWritable {
        path: PathBuf,
    },
    /// The file system holding it is mounted read-only: no mode change helps.
    ReadOnlyFilesystem {
        path: PathBuf,
    },
    /// `path` is `None` when the error comes from the pure [`upsert`].
    KeyConflict {
        path: Option<PathBuf>,
        key: String,
        line: usize,
    },
    /// dotenvy cannot load a file with a quote left open, and a line appended after it would
    /// become part of the quoted value, so such a file is not edited.
    UnclosedQuote {
        path: Option<PathBuf>,
        line: usize,
    },
    LockTimeout {
        path: PathBuf,
        waited: Duration,
    },
    /// Larger than [`MAX_ENV_FILE_BYTES`]: not a hand-written `.env`, and reading it whole would
    /// cost the memory and time of its size.
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// `path` is a symbolic link whose file lies outside the folder holding the link (a cloned
    /// repository's `.env -> ~/.bashrc`): writing a password through it is refused unless the
    /// caller allows it ([`Outside::Allow`], the `--force` of the command).
    SymlinkOutside {
        path: PathBuf,
        target: PathBuf,
    },
    /// Another program kept rewriting the file while aksara tried to apply its edit.
    Contended {
        path: PathBuf,
        attempts: u32,
    },
    Io {
        action: IoAction,
        path: PathBuf,
        source: io::Error,
    },
}

impl EnvFileError {
    /// The fix, as its own paragraph after the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            EnvFileError::InvalidKey { .. } => Some(
                "use letters, digits and `_`, not starting with a digit, like `DATABASE_URL`"
                    .into(),
            ),
            EnvFileError::NulInValue { .. } => None,
            EnvFileError::DuplicateKey { .. } => Some("give each key once".into()),
            EnvFileError::NotFound { path } => Some(format!(
                "check the path, or pass --env-file with the file to use instead of `{}`",
                path.display()
            )),
            EnvFileError::IsADirectory { path } => Some(format!(
                "pass --env-file with the path of a file, like `{}`",
                path.join(".env").display()
            )),
            EnvFileError::NotAFile { path } => Some(format!(
                "pass --env-file with the path of a regular file instead of `{}`",
                path.display()
            )),
            EnvFileError::SymlinkLoop { path } => Some(format!(
                "see where it points with `ls -l {}`, or pass --env-file with another path",
                path.display()
            )),
            EnvFileError::ParentMissing { dir, .. } => Some(format!(
                "create it with `mkdir -p {}`, or pass --env-file with a path in an existing folder",
                dir.display()
            )),
            EnvFileError::DirNotWritable { dir, .. } => Some(format!(
                "run `chmod u+w {}` or pass --env-file with a writable path",
                dir.display()
            )),
            EnvFileError::FileNotWritable { path } => Some(format!(
                "run `chmod u+w {}` or pass --env-file with a writable path",
                path.display()
            )),
            EnvFileError::ReadOnlyFilesystem { path } => Some(format!(
                "the file system holding `{}` is mounted read-only (`findmnt -T {}` shows it): pass --env-file with a path on a writable one, or remount it read-write",
                path.display(),
                path.display()
            )),
            EnvFileError::KeyConflict { .. } => {
                Some("pass --force to replace it; the old line is kept as a comment".into())
            }
            EnvFileError::UnclosedQuote { path, line } => Some(format!(
                "close the quote on line {line} of `{}`, then run again",
                display_or(path, "the file")
            )),
            EnvFileError::LockTimeout { .. } => Some(
                "another aksara may still be running here; let it finish, then run again".into(),
            ),
            EnvFileError::TooLarge { .. } => Some(
                "a .env holds a few variables: check that --env-file names the right file".into(),
            ),
            EnvFileError::SymlinkOutside { path, target } => Some(format!(
                "replace the link `{}` with a file, or pass --force to write `{}` anyway",
                path.display(),
                target.display()
            )),
            EnvFileError::Contended { .. } => Some(
                "stop the program that keeps rewriting the file, then run again; the file was left as that program wrote it".into(),
            ),
            EnvFileError::Io {
                action,
                path,
                source,
            } => match source.kind() {
                io::ErrorKind::PermissionDenied if *action == IoAction::Read => {
                    Some(format!("run `chmod u+r {}`", path.display()))
                }
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    Some("free some disk space, then run again; the file was left as it was".into())
                }
                _ => None,
            },
        }
    }
}

pub(super) fn display_or(path: &Option<PathBuf>, fallback: &str) -> String {
    path.as_ref()
        .map_or_else(|| fallback.to_string(), |p| p.display().to_string())
}

/// `Permission denied (os error 13)` becomes `permission denied`, cargo style.
pub(super) fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if e.raw_os_error().is_some() => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

pub(super) fn describe_wait(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `1048576` is `1 MiB`, `104857600` is `100 MiB`.
pub(super) fn describe_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvFileError::InvalidKey { key } => {
                write!(f, "`{key}` is not a valid environment variable name")
            }
            EnvFileError::DuplicateKey { key } => {
                write!(f, "`{key}` is given twice for the same write")
            }
            EnvFileError::NulInValue { key } => write!(
                f,
                "the value for `{key}` contains a NUL byte, which environment variables cannot hold"
            ),
            EnvFileError::NotFound { path } => write!(f, "`{}` does not exist", path.display()),
            EnvFileError::IsADirectory { path } => {
                write!(f, "cannot write `{}`: it is a directory", path.display())
            }
            EnvFileError::NotAFile { path } => write!(
                f,
                "`{}` is not a regular file (a FIFO, device or socket); aksara neither reads nor writes it",
                path.display()
            ),
            EnvFileError::SymlinkLoop { path } => write!(
                f,
                "cannot write `{}`: too many levels of symbolic links",
                path.display()
            ),
            EnvFileError::ParentMissing { path, dir } => write!(
                f,
                "cannot write `{}`: folder `{}` does not exist",
                path.display(),
                dir.display()
            ),
            EnvFileError::DirNotWritable { path, dir } => write!(
                f,
                "cannot write `{}`: folder `{}` is not writable",
                path.display(),
                dir.display()
            ),
            EnvFileError::FileNotWritable { path } => {
                write!(f, "cannot write `{}`: permission denied", path.display())
            }
            EnvFileError::ReadOnlyFilesystem { path } => {
                write!(
                    f,
                    "cannot write `{}`: read-only file system",
                    path.display()
                )
            }
            EnvFileError::KeyConflict { path, key, line } => write!(
                f,
                "`{}` already sets `{key}` to a different value (line {line})",
                display_or(path, ".env")
            ),
            EnvFileError::UnclosedQuote { path, line } => write!(
                f,
                "cannot edit `{}`: the quote opened on line {line} is never closed",
                display_or(path, ".env")
            ),
            EnvFileError::LockTimeout { path, waited } => write!(
                f,
                "timed out after {} waiting for another process editing `{}`",
                describe_wait(*waited),
                path.display()
            ),
            EnvFileError::TooLarge { path, size, limit } => write!(
                f,
                "`{}` is {}, more than the {} aksara reads from a .env",
                path.display(),
                describe_size(*size),
                describe_size(*limit)
            ),
            EnvFileError::SymlinkOutside { path, target } => write!(
                f,
                "cannot write `{}`: it is a symbolic link to `{}`, outside the folder it is in",
                path.display(),
                target.display()
            ),
            EnvFileError::Contended { path, attempts } => write!(
                f,
                "cannot write `{}`: another program changed it during each of {attempts} attempts",
                path.display()
            ),
            EnvFileError::Io {
                action,
                path,
                source,
            } => write!(
                f,
                "cannot {action} `{}`: {}",
                path.display(),
                describe_io(source)
            ),
        }
    }
}

impl std::error::Error for EnvFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnvFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
