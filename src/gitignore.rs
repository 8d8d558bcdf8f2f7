//! Whether git would commit a file (`.env` holds a password), and adding a pattern to the
//! repository's `.gitignore`. Asked of git itself, so nested repositories, global excludes and
//! `.git/info/exclude` all count.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::envfile::{EnvFileError, Outside, WriteOptions, append_line, parent_dir, replace_file};

/// `.gitignore` holds no secret and is meant to be shared.
const NEW_GITIGNORE_MODE: u32 = 0o644;

/// Whether git would commit the `.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitIgnoreStatus {
    /// Not inside a git work tree, git is not installed, or git could not tell.
    NotInRepo,
    Ignored,
    NotIgnored {
        repo_root: PathBuf,
    },
    /// Already tracked: ignore rules no longer apply, the next commit includes the new value.
    /// The fix is `git rm --cached <file>`, not a `.gitignore` line.
    Tracked {
        repo_root: PathBuf,
    },
}

/// `git ARGS [-- PATH]` in `dir`, started (not waited for), its stdout captured.
fn git(
    dir: &Path,
    args: &[&str],
    path_arg: Option<&std::ffi::OsStr>,
) -> Option<std::process::Child> {
    let mut cmd = Command::new("git");
    cmd.args(args);
    if let Some(p) = path_arg {
        cmd.arg("--").arg(p);
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn finished(child: Option<std::process::Child>) -> Option<std::process::Output> {
    child?.wait_with_output().ok()
}

/// Whether git would commit the file at `path`, asked of git itself in the file's folder (so
/// nested repositories, global excludes and `.git/info/exclude` all count).
pub fn git_ignore_status(path: &Path) -> GitIgnoreStatus {
    // The file, and even its folder (`.aksara/` before the first run), may not exist yet: ask
    // from the nearest folder that does, about the path relative to it.
    let mut dir = parent_dir(path);
    let Some(mut name) = path.file_name().map(PathBuf::from) else {
        return GitIgnoreStatus::NotInRepo;
    };
    while !dir.is_dir() {
        let (Some(parent), Some(last)) = (dir.parent(), dir.file_name()) else {
            return GitIgnoreStatus::NotInRepo;
        };
        name = Path::new(last).join(name);
        dir = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        };
    }
    let name = name.as_os_str();
    // The three questions at once (each is a git start-up, 2–4 ms): the answers are read in
    // order, and a folder outside any repository makes the last two fail too.
    let top = git(&dir, &["rev-parse", "--show-toplevel"], None);
    let tracked = git(&dir, &["ls-files", "--error-unmatch"], Some(name));
    let ignored = git(&dir, &["check-ignore", "-q"], Some(name));
    let (top, tracked, ignored) = (finished(top), finished(tracked), finished(ignored));
    let Some(top) = top else {
        return GitIgnoreStatus::NotInRepo;
    };
    if !top.status.success() {
        return GitIgnoreStatus::NotInRepo;
    }
    let mut root = top.stdout;
    while root.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        root.pop();
    }
    let repo_root = PathBuf::from(OsString::from_vec(root));
    if tracked.is_some_and(|o| o.status.success()) {
        return GitIgnoreStatus::Tracked { repo_root };
    }
    match ignored.and_then(|o| o.status.code()) {
        Some(0) => GitIgnoreStatus::Ignored,
        Some(1) => GitIgnoreStatus::NotIgnored { repo_root },
        // 128: git could not answer (the path is outside the work tree, say).
        _ => GitIgnoreStatus::NotInRepo,
    }
}

/// [`git_ignore_status`] asked on a thread of its own, started early: its git processes (three at
/// once, 2–4 ms each) then run while the server answers the connection, instead of after it.
pub struct PendingGitStatus(
    Option<std::thread::JoinHandle<(GitIgnoreStatus, std::time::Duration)>>,
);

impl PendingGitStatus {
    pub fn start(path: Option<&Path>) -> PendingGitStatus {
        PendingGitStatus(path.map(|p| {
            let p = p.to_path_buf();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                (git_ignore_status(&p), started.elapsed())
            })
        }))
    }

    /// The answer, and how long git took to give it; None when no file was asked about.
    pub fn wait(self) -> Option<(GitIgnoreStatus, std::time::Duration)> {
        let handle = self.0?;
        Some(
            handle
                .join()
                .unwrap_or((GitIgnoreStatus::NotInRepo, std::time::Duration::ZERO)),
        )
    }
}

/// Append `pattern` as a line of `<repo_root>/.gitignore` unless a line already says exactly
/// that. Returns whether it was added. The file is edited like a `.env`: every other byte kept,
/// a missing final newline added first, written atomically under the folder lock.
pub fn add_to_gitignore(repo_root: &Path, pattern: &str) -> Result<bool, EnvFileError> {
    let path = repo_root.join(".gitignore");
    let wanted = pattern.trim();
    let present = |bytes: &[u8]| {
        // git ignores trailing blanks in patterns; `\r` is what a CRLF file leaves behind.
        bytes
            .split(|&b| b == b'\n')
            .any(|line| line.trim_ascii_end() == wanted.as_bytes())
    };
    // A `.gitignore` symlinked out of the repository is the user's own arrangement.
    let options = WriteOptions {
        outside: Outside::Allow,
        ..WriteOptions::default()
    };
    replace_file(
        &path,
        NEW_GITIGNORE_MODE,
        &options,
        |original| {
            if present(original) {
                Ok((None, false))
            } else {
                Ok((Some(append_line(original, wanted.as_bytes())), true))
            }
        },
        present,
    )
}

/// The `.gitignore` pattern for `path`, anchored at the repository root (`/sub/.env`), or the
/// bare file name when it lies outside the repository.
pub fn relative_pattern(path: &Path, repo_root: &Path) -> String {
    let abs: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let root = std::fs::canonicalize(repo_root).unwrap_or_else(|_| repo_root.to_path_buf());
    match abs.strip_prefix(&root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| ".env".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn git_in(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    /// A fresh repository that ignores the machine's global excludes, which often list `.env`.
    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git_in(dir.path(), &["init", "-q"]);
        let none = dir.path().join(".git").join("no-global-excludes");
        git_in(
            dir.path(),
            &["config", "core.excludesFile", none.to_str().unwrap()],
        );
        dir
    }

    #[test]
    fn git_ignore_status_tells_ignored_from_not() {
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(
            git_ignore_status(&outside.path().join(".env")),
            GitIgnoreStatus::NotInRepo
        );

        let repo = repo();
        let root = fs::canonicalize(repo.path()).unwrap();
        let sub = repo.path().join("backend");
        fs::create_dir(&sub).unwrap();
        let env = sub.join(".env");
        assert_eq!(
            git_ignore_status(&env),
            GitIgnoreStatus::NotIgnored {
                repo_root: root.clone()
            }
        );

        assert!(add_to_gitignore(&root, ".env").unwrap());
        assert_eq!(git_ignore_status(&env), GitIgnoreStatus::Ignored);
        assert!(!add_to_gitignore(&root, ".env").unwrap());
        assert_eq!(fs::read(root.join(".gitignore")).unwrap(), b".env\n");
        assert_eq!(mode_of(&root.join(".gitignore")), 0o644);

        let tracked = repo.path().join("committed.env");
        fs::write(&tracked, b"A=1\n").unwrap();
        git_in(repo.path(), &["add", "committed.env"]);
        assert_eq!(
            git_ignore_status(&tracked),
            GitIgnoreStatus::Tracked { repo_root: root }
        );
    }

    #[test]
    fn add_to_gitignore_keeps_the_file_as_it_was() {
        let repo = repo();
        let gitignore = repo.path().join(".gitignore");
        fs::write(&gitignore, b"target\r\n/node_modules").unwrap();
        assert!(add_to_gitignore(repo.path(), ".aksara/").unwrap());
        assert_eq!(
            fs::read(&gitignore).unwrap(),
            b"target\r\n/node_modules\r\n.aksara/\r\n"
        );
        assert!(!add_to_gitignore(repo.path(), ".aksara/").unwrap());
        assert!(!add_to_gitignore(repo.path(), "target").unwrap());
        assert!(add_to_gitignore(repo.path(), ".env").unwrap());
        assert_eq!(
            fs::read(&gitignore).unwrap(),
            b"target\r\n/node_modules\r\n.aksara/\r\n.env\r\n"
        );
        assert_eq!(
            git_ignore_status(&repo.path().join(".aksara/x")),
            GitIgnoreStatus::Ignored
        );
    }
}
