//! Editing a project's `.env`: set one key (usually `DATABASE_URL`) without disturbing a single
//! other byte, and without losing the file to a crash, a full disk or a second aksara running at
//! the same time. It exists because `.env` files are hand-written: comments, `export` prefixes,
//! CRLF endings, odd quoting and even stray non-UTF-8 bytes must all survive our edit.
//!
//! The parser mirrors dotenvy 0.15, the loader most Rust projects (sqlx-cli among them) read
//! `.env` with: the same logical lines (a quoted value may span lines), the same comments, the
//! same escapes. Whatever [`upsert`] writes, dotenvy reads back exactly; the tests check it.
//!
//! A key assigned more than once is ambiguous between loaders: dotenvy's `dotenv()` and
//! `from_path()` keep the *first* assignment, while `dotenv_override()`, shells (`set -a; .
//! .env`), docker compose and python-dotenv keep the *last*. Rewriting only one of them would
//! leave some program on the old value, so [`upsert`] rewrites every assignment that differs.

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dsn::Password;

/// How long [`write_key`] waits for another process editing the same folder.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);
const LOCK_POLL: Duration = Duration::from_millis(20);
/// A new `.env` is likely to hold a password: nobody but its owner reads it.
const NEW_ENV_FILE_MODE: u32 = 0o600;
/// Linux's own limit (`MAXSYMLINKS`), so a loop fails here the way it would in the kernel.
const MAX_SYMLINKS: usize = 40;
const BOM: &[u8] = b"\xEF\xBB\xBF";
const REPLACED_PREFIX: &str = "# replaced by aksara: ";

/// The `.env` the commands use when `--env-file` is not given: the working folder's when it has
/// one, else the one a folder above it in the same project has ([`nearest_above`]), the file
/// the app's loader finds from here; `.env` (to be created here) when there is none.
pub fn default_path() -> PathBuf {
    let here = PathBuf::from(".env");
    if here.exists() {
        return here;
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| nearest_above(&cwd))
        .unwrap_or(here)
}

/// What marks a project's root folder: its repository, or its Python project (the framework's).
const PROJECT_ROOT_MARKERS: [&str; 2] = [".git", "pyproject.toml"];

/// Whether `folder` or one above it is a project's root ([`PROJECT_ROOT_MARKERS`]).
pub fn in_project(folder: &Path) -> bool {
    folder.ancestors().any(is_project_root)
}

fn is_project_root(folder: &Path) -> bool {
    PROJECT_ROOT_MARKERS.iter().any(|m| folder.join(m).exists())
}

/// The `.env` of the nearest folder above `cwd` that has one, as a relative path (`../.env`),
/// looking no higher than the project's root (the nearest folder with `.git` or
/// `pyproject.toml`): python-dotenv's `find_dotenv` (from a script in this folder) and
/// dotenvy's `dotenv()` look up there too, and further, but a setup run in a new folder must
/// not write into a `.env` of the home folder. None when `cwd` is the root itself or in no
/// project.
pub fn nearest_above(cwd: &Path) -> Option<PathBuf> {
    if is_project_root(cwd) {
        return None;
    }
    let mut up = PathBuf::new();
    for folder in cwd.ancestors().skip(1) {
        up.push("..");
        if folder.join(".env").is_file() {
            // Only inside a project: a root must be here or further up.
            return in_project(folder).then(|| up.join(".env"));
        }
        if is_project_root(folder) {
            return None;
        }
    }
    None
}

mod edit;
mod error;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod loader_tests;
mod loaders;
mod open;
mod parse;
mod replace;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use edit::append_line;
pub use edit::{upsert, upsert_template, validate_key};
pub use error::{EnvFileError, IoAction};
pub use loaders::{
    Loaded, Loader, PythonDotenvTemplate, app_gets, py_references, python_dotenv_template,
    python_dotenv_value, what_the_app_gets,
};
pub use open::MAX_ENV_FILE_BYTES;
pub use parse::{parse_entries, read_entries, read_file};
pub(crate) use replace::replace_file;
pub(crate) use write::parent_dir;
pub use write::{
    Outside, Preflight, WriteOptions, check_writable, preflight, readable_by_others, write_key,
    write_key_opts, write_key_with, write_keys_opts,
};

// Kept here while callers still name them `envfile::…`; the module is `crate::gitignore`.
pub use crate::gitignore::{
    GitIgnoreStatus, PendingGitStatus, add_to_gitignore, git_ignore_status,
};

/// One `KEY=VALUE` assignment found in a `.env`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub key: String,
    /// The value as dotenvy would load it, except that `$NAME` references are kept as written
    /// (see `expands`). Bytes that are not UTF-8 are shown as U+FFFD.
    pub value: String,
    /// 1-based line the assignment starts on (a quoted value may continue on later lines).
    pub line: usize,
    /// The value holds a `$NAME` or `${NAME}` reference that dotenvy expands from the
    /// environment when it loads the file, so `value` is not what a program will see.
    pub expands: bool,
}

// Values are often passwords: a stray `{:?}` in a log must not print them.
impl fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvEntry")
            .field("key", &self.key)
            .field("value", &"****")
            .field("line", &self.line)
            .field("expands", &self.expands)
            .finish()
    }
}

/// What [`upsert`] or [`write_key`] did to the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    /// `previous` is the old value of the first assignment that differed (as written when
    /// dotenvy could not parse it). It may be a password, so it has the redacting type.
    Replaced {
        previous: Password,
    },
    Unchanged,
}

/// What to do when the key already holds a different value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    Fail,
    Replace,
    /// Replace, and keep the old assignment right above as `# replaced by aksara: <old line>`,
    /// so a password overwritten by mistake can still be recovered by hand.
    ReplaceKeepingOldAsComment,
}
