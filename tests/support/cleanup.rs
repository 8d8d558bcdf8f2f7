//! Scratch directories, and the watchdogs that remove them and stop their servers however the
//! test process ends.
//!
//! `Drop` covers a test that finishes, but shared clusters live in statics that are never
//! dropped, and a test process can be killed. So every directory the harness creates gets a
//! watchdog first: a detached `sh` whose stdin is a pipe held open by the test process. When the
//! process ends, in any way including SIGKILL, the kernel closes that pipe, the watchdog's `read`
//! returns, and it stops the server (SIGQUIT, PostgreSQL's immediate shutdown, as
//! `pg_ctl stop -m immediate` sends) and removes the directory. It runs in its own process group
//! so a Ctrl-C aimed at the test run does not kill it before it has cleaned up.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use super::privileges::server_user;

const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT
read -r _ || :
data=$2
if [ -n "$data" ] && [ -f "$data/postmaster.pid" ]; then
  pid=$(sed -n 1p "$data/postmaster.pid")
  if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
    # The postmaster removes its pid file as it exits; `kill -0` would also see it as a zombie
    # until whoever inherited it reaps it.
    i=0
    while [ -f "$data/postmaster.pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    [ -f "$data/postmaster.pid" ] && kill -KILL "$pid" 2>/dev/null
  fi
fi
# A process that writes a pid file (PgBouncer): SIGTERM is its immediate shutdown.
pidfile=$3
if [ -n "$pidfile" ] && [ -f "$pidfile" ]; then
  pid=$(sed -n 1p "$pidfile")
  if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
"#;

/// Cleans up `dir` (and the server whose data directory is `data_dir`) when dropped or when the
/// test process ends.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    lifeline: Option<ChildStdin>,
}

impl Watchdog {
    pub fn arm(dir: &Path, data_dir: Option<&Path>) -> Watchdog {
        Watchdog::arm_all(dir, data_dir, None)
    }

    /// Like [`Watchdog::arm`] for a process that is not a postmaster: it is sent SIGTERM by the
    /// pid in `pid_file` (which it writes itself, as PgBouncer does), then `dir` is removed.
    pub fn arm_with_pid_file(dir: &Path, pid_file: &Path) -> Watchdog {
        Watchdog::arm_all(dir, None, Some(pid_file))
    }

    fn arm_all(dir: &Path, data_dir: Option<&Path>, pid_file: Option<&Path>) -> Watchdog {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("aksara-test-watchdog")
            .arg(dir)
            .arg(data_dir.unwrap_or(Path::new("")))
            .arg(pid_file.unwrap_or(Path::new("")))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not spawn the cleanup watchdog (`sh`): {e}"));
        let lifeline = child.stdin.take();
        Watchdog { child, lifeline }
    }
}

impl Drop for Watchdog {
    /// Runs the cleanup now (idempotent after `Cluster::drop` has done it) and reaps the shell.
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.child.wait();
    }
}

/// A project folder for one test, inside the test process's scratch directory (so on tmpfs when
/// there is room, and removed by the watchdog however the process ends). Not `/tmp`: the root
/// filesystem of the CI machines is ext4 without a journal, and there ext4 skips every inode
/// freed in the last 60 s (360 s when its inode table block is dirty) each time it allocates
/// one. The project servers' `CREATE DATABASE`s write ~300 files each, so with the suite's
/// churn that scan was a sixth of all CPU time (bench/NOTES.md section 19).
pub fn project_folder(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(process_dir())
        .expect("create a project folder in the test process's scratch directory")
}

/// Overrides where the harness puts its clusters.
pub const SCRATCH_ENV: &str = "AKSARA_TEST_SCRATCH_DIR";

/// Where scratch directories go. `/dev/shm` (tmpfs on Linux) when it has room: copying the
/// template there takes 20 ms where ext4 took 250 ms, and `initdb` runs twice as fast. Otherwise
/// `/tmp` when the server runs as another user (it must traverse every parent) or when `TMPDIR`
/// is long (socket paths are limited to about 100 bytes), else `TMPDIR`.
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(dir) = std::env::var_os(SCRATCH_ENV) {
            return PathBuf::from(dir);
        }
        if roomy(Path::new("/dev/shm")) {
            return PathBuf::from("/dev/shm");
        }
        let tmp = std::env::temp_dir();
        if server_user().is_some() || tmp.as_os_str().len() > 40 {
            PathBuf::from("/tmp")
        } else {
            tmp
        }
    })
}

/// A writable, world-traversable directory with at least 2 GiB free, per `df -Pk`.
fn roomy(dir: &Path) -> bool {
    let writable = std::fs::metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o1777 == 0o1777);
    if !writable {
        return false;
    }
    let Ok(out) = Command::new("df").arg("-Pk").arg(dir).output() else {
        return false;
    };
    // "Filesystem 1024-blocks Used Available Capacity Mounted on", then one line of values.
    let text = String::from_utf8_lossy(&out.stdout);
    let available_kib = text
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|field| field.parse::<u64>().ok());
    out.status.success() && available_kib.is_some_and(|kib| kib >= 2 * 1024 * 1024)
}

/// A directory for this test process (template cluster, certificates, HOME), removed by a
/// watchdog when the process ends.
pub fn process_dir() -> &'static Path {
    static DIR: OnceLock<(PathBuf, Watchdog)> = OnceLock::new();
    let (dir, _) = DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix(&format!("aksara-test-{}-", std::process::id()))
            .tempdir_in(scratch_root())
            .expect("create the test process's scratch directory")
            .keep();
        let watchdog = Watchdog::arm(&dir, None);
        // The server user must traverse it to reach the template inside.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test process's scratch directory");
        (dir, watchdog)
    });
    dir
}

/// Stops the child in `slot`, if one was started, with `signal` (`-TERM`, `-INT`) and waits
/// for it: the servers' and poolers' starters end their process this way on drop.
pub fn stop_child(slot: &std::sync::Mutex<Option<std::process::Child>>, signal: &str) {
    if let Some(mut child) = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        let _ = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = child.wait();
    }
}

/// A log file's text so far; empty when it is not there yet.
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits, at most `timeout`, for a started pooler (`name`: `pgbouncer`, `pgpool`) to be up,
/// as `up` tells; then puts it in `slot`. On exit or timeout the error holds its log, and a
/// child that is still running is killed.
pub fn wait_until_up(
    mut child: std::process::Child,
    name: &str,
    log: &Path,
    timeout: std::time::Duration,
    slot: &std::sync::Mutex<Option<std::process::Child>>,
    up: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{name} exited ({status}); its log:\n{}",
                read_log(log)
            ));
        }
        if up(&read_log(log)) {
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child);
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "not up after {timeout:?}; its log:\n{}",
                read_log(log)
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
