//! A PostgreSQL cluster of the project's own, for the machine where the server programs are
//! installed but no server runs: `initdb` into `.aksara/postgres/`, started with `pg_ctl` on
//! 127.0.0.1 at a free port (5432 when free) and on a socket inside the data folder, so it
//! touches no system service and no other project. Every login needs the superuser's password
//! (scram-sha-256 for `local` and `host`), which initdb reads from a `0600` file that is
//! deleted right after: it is never on a command line.
//!
//! PostgreSQL refuses to run as root, so when aksara runs as root the server runs as the
//! `postgres` system user, the folders it writes are handed to that user, and every folder
//! above the data is checked first: if that user cannot enter one, the error names it and the
//! fix before anything is created.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::holder::Holder;
use crate::probe::{self, Answer};
use crate::projectserver::{Identity, Kind, Layout, ProjectError, Record, SUPERUSER};
use crate::ui::{Mark, Printer};

/// The system user the server runs as when aksara runs as root (what the distributions use).
pub const SERVER_USER: &str = "postgres";
/// How many ports past the first one are tried for a free one.
const PORT_SEARCH: u16 = 100;
/// The file in the data folder that holds aksara's settings; postgresql.conf includes it.
const CONF_FILE: &str = "aksara.conf";

/// The server programs of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub bindir: PathBuf,
    /// `15.14`
    pub version: String,
    pub major: u32,
}

impl Binaries {
    pub fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }
    pub fn pg_ctl(&self) -> PathBuf {
        self.bindir.join("pg_ctl")
    }

    /// The installation in `dir`, if it holds real `initdb`, `pg_ctl` and `postgres` programs.
    pub fn in_dir(dir: &Path) -> Option<Binaries> {
        if !["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| is_real_binary(&dir.join(p)))
        {
            return None;
        }
        let out = std::process::Command::new(dir.join("postgres"))
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let (version, major) = parse_version(&String::from_utf8_lossy(&out.stdout))?;
        Some(Binaries {
            bindir: dir.to_path_buf(),
            version,
            major,
        })
    }
}

/// `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → (`15.14`, 15).
pub fn parse_version(text: &str) -> Option<(String, u32)> {
    let version = text.split(") ").nth(1)?.split_whitespace().next()?;
    let major = version.split(['.', 'b', 'r']).next()?.parse::<u32>().ok()?;
    Some((version.to_string(), major))
}

/// Where the server programs live, in the order people install them: on PATH (followed through
/// symlinks: Debian links /usr/local/bin/initdb to /usr/lib/postgresql/15/bin), `pg_config
/// --bindir`, Debian/Ubuntu's versioned folders (highest first), source builds, Homebrew on
/// both architectures, Postgres.app.
pub fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for program in ["initdb", "pg_ctl", "postgres"] {
        if let Ok(found) = which::which(program)
            && let Ok(real) = fs::canonicalize(found)
            && let Some(dir) = real.parent()
        {
            dirs.push(dir.to_path_buf());
        }
    }
    if let Ok(pg_config) = which::which("pg_config")
        && let Ok(out) = std::process::Command::new(pg_config)
            .arg("--bindir")
            .stdin(Stdio::null())
            .output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs.extend(versioned_dirs(Path::new("/usr/lib/postgresql"), ""));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.extend(versioned_dirs(
        Path::new("/opt/homebrew/opt"),
        "postgresql@",
    ));
    dirs.extend(versioned_dirs(Path::new("/usr/local/opt"), "postgresql@"));
    dirs.push(PathBuf::from(
        "/Applications/Postgres.app/Contents/Versions/latest/bin",
    ));
    let mut unique = Vec::new();
    for dir in dirs {
        if !unique.contains(&dir) {
            unique.push(dir);
        }
    }
    unique
}

/// The first complete installation, or every place searched.
pub fn find_binaries() -> Result<Binaries, LocalError> {
    let dirs = candidate_dirs();
    dirs.iter()
        .find_map(|d| Binaries::in_dir(d))
        .ok_or(LocalError::NoBinaries { searched: dirs })
}

/// The binaries that can run a data folder of `major`: the recorded ones first.
fn binaries_for(major: u32, recorded: Option<&Path>) -> Result<Binaries, LocalError> {
    let mut dirs: Vec<PathBuf> = recorded.map(Path::to_path_buf).into_iter().collect();
    dirs.extend(candidate_dirs());
    let mut installed = Vec::new();
    for dir in &dirs {
        if let Some(b) = Binaries::in_dir(dir) {
            if b.major == major {
                return Ok(b);
            }
            installed.push(format!("{} in {}", b.version, b.bindir.display()));
        }
    }
    Err(LocalError::VersionMismatch { major, installed })
}

/// `<parent>/<prefix><version>/bin`, highest version first.
fn versioned_dirs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let key = name
                .strip_prefix(prefix)?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// An executable that is not a script: Debian's `/usr/bin/pg_ctl`-style Perl wrappers pick a
/// system cluster, not ours.
fn is_real_binary(path: &Path) -> bool {
    let executable =
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let mut magic = [0u8; 2];
    executable
        && fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok_and(|()| &magic != b"#!")
}

/// The unprivileged user the server runs as when aksara is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// None when aksara is not root (the server runs as the current user); the `postgres` user
/// when it is; an error when it is root and there is no such user.
pub fn server_user() -> Result<Option<ServerUser>, LocalError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user(SERVER_USER)
        .map(Some)
        .ok_or(LocalError::NoServerUser)
}

pub fn lookup_user(name: &str) -> Option<ServerUser> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwnam_r writes only into pwd and buf.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then(|| ServerUser {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// The name of the user aksara runs as (its effective uid), when it has one.
pub fn current_user_name() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    user_name_of(uid)
}

/// A user's name, when the user database has one for `uid`.
pub fn user_name_of(uid: u32) -> Option<String> {
    let name = user_name(uid);
    (name != uid.to_string()).then_some(name)
}

/// A user's name for messages, or the number.
fn user_name(uid: u32) -> String {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in lookup_user.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() {
        // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned()
    } else {
        uid.to_string()
    }
}

/// A folder the server user cannot pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub dir: PathBuf,
    pub mode: u32,
    pub owner: String,
}

/// The first existing folder at or above `path` that `user` cannot enter. The server runs
/// with only its primary group (std drops supplementary groups when it changes the uid), so
/// owner, group and other bits tell the whole story, ACLs aside.
pub fn blocked_ancestor(path: &Path, user: &ServerUser) -> Option<Blocked> {
    let mut chain: Vec<&Path> = path.ancestors().collect();
    chain.reverse();
    for dir in chain {
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        if !can_enter(meta.mode(), meta.uid(), meta.gid(), user) {
            return Some(Blocked {
                dir: dir.to_path_buf(),
                mode: meta.mode() & 0o7777,
                owner: user_name(meta.uid()),
            });
        }
    }
    None
}

fn can_enter(mode: u32, uid: u32, gid: u32, user: &ServerUser) -> bool {
    if uid == user.uid {
        mode & 0o100 != 0
    } else if gid == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Whether nothing listens on `port`: both the loopback and the wildcard address can be bound
/// (on macOS a wildcard bind succeeds next to a loopback listener, so both are tried).
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// Why a port is not one for a new server: something listens on it, or an installed cluster
/// is configured for it (down now, it would not start once the project's server holds it).
pub fn port_unavailable(
    port: u16,
    installed: &[crate::clusters::Installed],
    is_free: impl Fn(u16) -> bool,
) -> Option<String> {
    if let Some(cluster) = installed.iter().find(|c| c.port == port) {
        return Some(format!(
            "port {port} is configured for {}",
            cluster.describe()
        ));
    }
    (!is_free(port)).then(|| format!("port {port} is in use"))
}

/// The port for a new server from `first`: free, and no installed cluster configured for it.
/// Returns the port and, when it is not `first`, why `first` was passed over.
pub fn choose_port(
    first: u16,
    installed: &[crate::clusters::Installed],
    is_free: impl Fn(u16) -> bool,
) -> Result<(u16, Option<String>), LocalError> {
    let port = first_free_port(first, |p| {
        port_unavailable(p, installed, &is_free).is_none()
    })
    .ok_or(LocalError::NoFreePort { from: first })?;
    let why = (port != first)
        .then(|| port_unavailable(first, installed, &is_free))
        .flatten();
    Ok((port, why))
}

/// `start` if free, else the next free port, within a hundred.
pub fn first_free_port(start: u16, is_free: impl Fn(u16) -> bool) -> Option<u16> {
    (0..PORT_SEARCH)
        .filter_map(|i| start.checked_add(i))
        .find(|p| is_free(*p))
}

#[derive(Debug)]
pub enum LocalError {
    NoBinaries {
        searched: Vec<PathBuf>,
    },
    NoServerUser,
    Blocked {
        blocked: Blocked,
        data_dir: PathBuf,
    },
    VersionMismatch {
        major: u32,
        installed: Vec<String>,
    },
    /// `.aksara/postgres` exists, but no record says aksara made it (and no marker says an
    /// interrupted aksara did).
    Unrecorded {
        data_dir: PathBuf,
        /// A postgres running in it.
        live_pid: Option<u32>,
    },
    /// Another aksara is creating this project's server right now.
    CreationUnderWay,
    /// The recorded port is held by a server that is not this project's.
    PortHeld {
        port: u16,
        holder: crate::holder::Holder,
    },
    NoFreePort {
        from: u16,
    },
    Project(ProjectError),
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    Initdb {
        output: String,
    },
    Start {
        port: u16,
        log_file: PathBuf,
        log_tail: String,
        port_taken: bool,
    },
    Stop {
        output: String,
    },
}

impl fmt::Display for LocalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalError::NoBinaries { .. } => f.write_str(
                "the PostgreSQL server programs (initdb, pg_ctl, postgres) are not installed",
            ),
            LocalError::NoServerUser => write!(
                f,
                "aksara runs as root and PostgreSQL refuses to run as root, but there is no `{SERVER_USER}` system user to run it as"
            ),
            LocalError::Blocked { blocked, data_dir } => write!(
                f,
                "{} is under {}, which the {SERVER_USER} user cannot enter (mode {:04o}, owner {}); PostgreSQL refuses to run as root, so aksara runs it as {SERVER_USER}",
                data_dir.display(),
                blocked.dir.display(),
                blocked.mode,
                blocked.owner
            ),
            LocalError::VersionMismatch { major, installed } => write!(
                f,
                "the data in .aksara/postgres is for PostgreSQL {major}, and {}",
                if installed.is_empty() {
                    "no PostgreSQL server programs are installed".to_string()
                } else {
                    format!("only PostgreSQL {} is installed", installed.join(", "))
                }
            ),
            LocalError::Unrecorded { data_dir, live_pid } => {
                write!(
                    f,
                    "{} exists, but aksara has no record of creating it (.aksara/server.json is missing)",
                    data_dir.display()
                )?;
                if let Some(pid) = live_pid {
                    write!(f, "; a PostgreSQL server (pid {pid}) runs from it")?;
                }
                Ok(())
            }
            LocalError::CreationUnderWay => f.write_str(
                "another aksara is creating this project's PostgreSQL right now (.aksara/.create.lock is held)",
            ),
            LocalError::PortHeld { port, holder } => write!(
                f,
                "port {port}, this project's server's port, is held by {holder}: that is not this project's server"
            ),
            LocalError::NoFreePort { from } => write!(
                f,
                "no free TCP port in {from}..{}",
                from.saturating_add(PORT_SEARCH - 1)
            ),
            LocalError::Project(e) => e.fmt(f),
            LocalError::Spawn { program, source } => {
                write!(f, "cannot run {}: {source}", program.display())
            }
            LocalError::Initdb { output } => write!(f, "initdb failed:\n{output}"),
            LocalError::Start {
                port,
                log_tail,
                port_taken,
                ..
            } => {
                if *port_taken {
                    write!(
                        f,
                        "PostgreSQL could not listen on port {port}: another program took it; its log says:\n{log_tail}"
                    )
                } else {
                    write!(f, "PostgreSQL did not start; its log says:\n{log_tail}")
                }
            }
            LocalError::Stop { output } => write!(f, "pg_ctl stop failed: {output}"),
        }
    }
}

impl LocalError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            LocalError::NoBinaries { .. } => crate::diagnose::install_advice(),
            LocalError::NoServerUser => format!(
                "run aksara as a normal user, or create the user: `useradd --system --user-group --home-dir /var/lib/postgresql {SERVER_USER}`"
            ),
            LocalError::Blocked { blocked, .. } => format!(
                "run aksara as a normal user (in a project outside {}), or let {SERVER_USER} pass through (enter only, not list): `chmod o+x {}`",
                blocked.dir.display(),
                blocked.dir.display()
            ),
            LocalError::VersionMismatch { major, .. } => format!(
                "install PostgreSQL {major}'s server (Debian/Ubuntu: `sudo apt-get install postgresql-{major}`; Homebrew: `brew install postgresql@{major}`), or upgrade the data with pg_upgrade"
            ),
            LocalError::Unrecorded { data_dir, live_pid } => match live_pid {
                Some(_) => format!(
                    "if it holds nothing you need, stop its server first (`aksara dbserver stop`, or `pg_ctl stop -D {}`), then remove the folder and run `aksara dbsetup --start-server local` again",
                    data_dir.display()
                ),
                None => format!(
                    "if it holds nothing you need, remove it (`rm -rf {}`) and run `aksara dbsetup --start-server local` again",
                    data_dir.display()
                ),
            },
            LocalError::CreationUnderWay => {
                "wait for it to finish, then run the command again".to_string()
            }
            LocalError::PortHeld { port, .. } => format!(
                "stop that server, or give this project's server another port: change `port` in .aksara/server.json (and in DATABASE_URL), then `aksara dbserver start`; `lsof -i :{port}` shows the holder"
            ),
            LocalError::NoFreePort { .. } => "pass --server-port PORT with a free port".to_string(),
            LocalError::Project(e) => return e.hint(),
            LocalError::Spawn { .. } => "reinstall the PostgreSQL server package".to_string(),
            LocalError::Initdb { .. } => {
                "fix the cause named above; nothing was left behind, so run the command again"
                    .to_string()
            }
            LocalError::Start {
                port,
                log_file,
                port_taken,
                ..
            } => {
                if *port_taken {
                    format!(
                        "stop the program that uses port {port} (`lsof -i :{port}` shows it), then run `aksara dbserver start`"
                    )
                } else {
                    format!("the whole log is in {}", log_file.display())
                }
            }
            LocalError::Stop { .. } => {
                "see .aksara/postgres.log; `aksara dbserver status` shows whether it still runs"
                    .to_string()
            }
        })
    }
}

impl From<ProjectError> for LocalError {
    fn from(e: ProjectError) -> Self {
        LocalError::Project(e)
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> LocalError + 'a {
    move |source| {
        LocalError::Project(ProjectError::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Hand a path the server writes to the server user (when aksara is root) and set its mode.
fn give(path: &Path, mode: u32, user: Option<&ServerUser>) -> Result<(), LocalError> {
    if let Some(u) = user {
        chown(path, Some(u.uid), Some(u.gid)).map_err(io_err("hand over", path))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err("set the mode of", path))
}

/// A server program as the server user, with no PG* variable to redirect it.
fn server_command(
    program: &Path,
    cwd: &Path,
    user: Option<&ServerUser>,
) -> tokio::process::Command {
    let mut cmd = std::process::Command::new(program);
    // A long-lived server has no business with the caller's environment: PG* variables would
    // redirect it, and AKSARA_DB_PASSWORD would sit in its environ. Only what the programs
    // use is passed on: the search path, the locale (initdb's default) and the time zone.
    cmd.env_clear();
    for (key, value) in std::env::vars_os() {
        let name = key.as_encoded_bytes();
        if name == b"PATH" || name == b"LANG" || name == b"TZ" || name.starts_with(b"LC_") {
            cmd.env(key, value);
        }
    }
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    tokio::process::Command::from(cmd)
}

async fn output(
    mut cmd: tokio::process::Command,
    program: &Path,
) -> Result<std::process::Output, LocalError> {
    cmd.output().await.map_err(|source| LocalError::Spawn {
        program: program.to_path_buf(),
        source,
    })
}

fn combined(out: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.trim().to_string()
}

/// The settings aksara owns, in `aksara.conf`: the port, loopback only, and the socket in the
/// data folder (relative: PostgreSQL resolves it from the data folder, so a moved project
/// keeps working, and the path stays short).
pub fn conf_text(port: u16) -> String {
    format!(
        "# Written by aksara for this project's own server (`aksara dbserver --help`).\n\
         # The port is also recorded in ../server.json; change both together.\n\
         port = {port}\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '.'\n"
    )
}

/// The file that says a creation is under way: written before the data folder, removed once
/// the record is written. Found without a record, it means a creation was interrupted (a
/// SIGKILL, a power cut): whatever it left is aksara's own and is cleaned up by the next run.
const CREATING_MARKER: &str = ".creating";
/// Held (flock) while a creation runs, so a second aksara never cleans up a creation that is
/// still going; the kernel lets go of it when the holder dies, however it dies.
const CREATION_LOCK: &str = ".create.lock";
/// Tests only: `<point>:<file>` makes aksara create `<file>` at that point of a creation and
/// then wait forever, for a test to SIGKILL it there. Points: `before-initdb` (the password
/// is in initdb's input), `after-initdb`, `after-start` (the server runs, no record yet).
pub const PAUSE_ENV: &str = "AKSARA_TEST_PAUSE";

fn pause_point(point: &str) {
    let Some(spec) = std::env::var_os(PAUSE_ENV) else {
        return;
    };
    let spec = spec.to_string_lossy();
    if let Some(file) = spec
        .strip_prefix(point)
        .and_then(|rest| rest.strip_prefix(':'))
    {
        let _ = fs::write(file, point);
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The exclusive lock on `.aksara/.create.lock`, released when dropped (or when the process
/// dies).
struct CreationLock {
    _file: fs::File,
}

impl CreationLock {
    fn take(layout: &Layout) -> Result<CreationLock, LocalError> {
        let path = layout.root().join(CREATION_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(CreationLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(LocalError::CreationUnderWay),
            Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
        }
    }
}

/// Undoes a half-made cluster when creation fails or is interrupted: stops a server it
/// started and removes what it created, so the next run starts clean.
struct Creation<'a> {
    layout: &'a Layout,
    user: Option<ServerUser>,
    pg_ctl: PathBuf,
    created_root: bool,
    created_password: bool,
    created_data: bool,
    created_log: bool,
    started: bool,
    done: bool,
}

impl Drop for Creation<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let data = self.layout.data_dir();
        if self.started {
            stop_immediately(&self.pg_ctl, &data, self.user.as_ref());
        }
        if self.created_data {
            let _ = fs::remove_dir_all(&data);
        }
        if self.created_log {
            let _ = fs::remove_file(self.layout.log_file());
        }
        if self.created_password {
            let _ = fs::remove_file(self.layout.password_file());
        }
        let _ = fs::remove_file(self.layout.root().join(CREATING_MARKER));
        if self.created_root {
            let _ = fs::remove_file(self.layout.root().join(CREATION_LOCK));
            let _ = fs::remove_dir(self.layout.root());
        }
    }
}

/// `pg_ctl stop -m immediate -w` on `data`, as the server user; errors ignored (the caller
/// checks what is left).
fn stop_immediately(pg_ctl: &Path, data: &Path, user: Option<&ServerUser>) {
    let mut cmd = std::process::Command::new(pg_ctl);
    cmd.args(["stop", "-m", "immediate", "-w", "-D"])
        .arg(data)
        .current_dir(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    let _ = cmd.status();
}

/// What an interrupted creation left (its marker says it was one): a server it started is
/// stopped (the postmaster.pid's process, when it is a postgres running in that folder), its
/// data folder and any named password file of an older aksara are removed. Runs under the
/// creation lock, so the creation it cleans up is certainly dead.
fn clean_interrupted(
    layout: &Layout,
    bins: &Binaries,
    user: Option<&ServerUser>,
    printer: &Printer,
) -> Result<(), LocalError> {
    sweep_password_folders(layout);
    let marker = layout.root().join(CREATING_MARKER);
    if !marker.exists() || layout.record_file().exists() {
        let _ = fs::remove_file(&marker);
        return Ok(());
    }
    let data = layout.data_dir();
    if let Some(pid) = own_postmaster(layout) {
        stop_immediately(&bins.pg_ctl(), &data, user);
        if own_postmaster(layout).is_some() {
            // pg_ctl could not (a postmaster.pid cut short): PostgreSQL's immediate shutdown.
            // SAFETY: pid is a live postgres whose working folder is this data folder.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGQUIT) };
            wait_gone(pid, Duration::from_secs(10));
        }
        printer.status(&format!(
            "  stopped the server (pid {pid}) an interrupted setup had left running in {}",
            layout.show(&data)
        ));
    }
    if data.exists() {
        fs::remove_dir_all(&data).map_err(io_err("remove", &data))?;
        printer.status(&format!(
            "  removed the half-made cluster an interrupted setup left in {}; creating it again",
            layout.show(&data)
        ));
    }
    fs::remove_file(&marker).map_err(io_err("remove", &marker))
}

/// Named password files of an interrupted initdb (`.aksara/.initdb-*/`, where O_TMPFILE is not
/// available): removed by the next creation, under the creation lock.
fn sweep_password_folders(layout: &Layout) {
    for entry in fs::read_dir(layout.root()).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(".initdb-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Until the postgres `pid` has exited (a zombie counts as exited), at most `bound`. Usually
/// it is gone at the first look, which costs one signal-0 call.
fn wait_gone(pid: u32, bound: Duration) {
    let deadline = std::time::Instant::now() + bound;
    while is_live_postgres(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Create the project's cluster and start it: initdb, settings, a free port from
/// `first_port` that no installed cluster is configured for, `pg_ctl start -w`. Writes the
/// record last, so a record means a cluster that started at least once. On failure nothing
/// is left behind; after a SIGKILL, the next call cleans up what was left.
pub async fn create(
    layout: &Layout,
    bins: &Binaries,
    first_port: u16,
    wait: Duration,
    printer: &Printer,
) -> Result<Record, LocalError> {
    let user = server_user()?;
    let data = layout.data_dir();
    if let Some(u) = &user
        && let Some(blocked) = blocked_ancestor(&layout.project, u)
    {
        return Err(LocalError::Blocked {
            blocked,
            data_dir: layout.show(&data).into(),
        });
    }
    let mut creation = Creation {
        layout,
        user: user.clone(),
        pg_ctl: bins.pg_ctl(),
        created_root: false,
        created_password: false,
        created_data: false,
        created_log: false,
        started: false,
        done: false,
    };
    creation.created_root = layout.create_root()?;
    let _lock = CreationLock::take(layout)?;
    clean_interrupted(layout, bins, user.as_ref(), printer)?;
    if data.exists() {
        return Err(LocalError::Unrecorded {
            data_dir: data.clone(),
            live_pid: own_postmaster(layout),
        });
    }
    let marker = layout.root().join(CREATING_MARKER);
    fs::write(
        &marker,
        "aksara is creating .aksara/postgres; if this file outlives it, the next run cleans up\n",
    )
    .map_err(io_err("write", &marker))?;
    let (password, created) = layout.ensure_password()?;
    creation.created_password = created;

    fs::create_dir(&data).map_err(io_err("create", &data))?;
    creation.created_data = true;
    give(&data, 0o700, user.as_ref())?;
    let log = layout.log_file();
    if !log.exists() {
        fs::File::create(&log).map_err(io_err("create", &log))?;
        creation.created_log = true;
    }
    give(&log, 0o600, user.as_ref())?;

    let spinner = printer.spinner(&format!(
        "Creating a PostgreSQL {} cluster in {}",
        bins.major,
        layout.show(&data)
    ));
    initdb(layout, bins, &password, user.as_ref()).await?;
    drop(spinner);
    pause_point("after-initdb");
    include_aksara_conf(&data)?;
    printer.step(
        Mark::Pass,
        &format!(
            "Created a PostgreSQL {} cluster in {} (superuser \"{SUPERUSER}\", password in {})",
            bins.version,
            layout.show(&data),
            layout.show(&layout.password_file())
        ),
    );
    let port = start_on_a_free_port(layout, bins, first_port, wait, &mut creation, printer).await?;
    pause_point("after-start");
    let record = Record {
        kind: Kind::Local,
        port,
        bindir: Some(bins.bindir.clone()),
        version: Some(bins.version.clone()),
        container: None,
        identity: Some(Identity {
            data_dir: data.clone(),
            system_identifier: system_identifier(bins, &data, user.as_ref())
                .await
                .unwrap_or_default(),
            pid: own_postmaster(layout),
        }),
    };
    layout.write_record(&record)?;
    let _ = fs::remove_file(&marker);
    creation.done = true;
    Ok(record)
}

fn include_aksara_conf(data: &Path) -> Result<(), LocalError> {
    let conf = data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).map_err(io_err("read", &conf))?;
    text.push_str(&format!(
        "\n# Added by aksara: the settings of this project's own server.\ninclude_if_exists = '{CONF_FILE}'\n"
    ));
    fs::write(&conf, text).map_err(io_err("write", &conf))
}

/// Start the new cluster on the first port that is free and that no installed cluster is
/// configured for. Another program may take the port between the check and the bind: then
/// the next one is tried.
async fn start_on_a_free_port(
    layout: &Layout,
    bins: &Binaries,
    first_port: u16,
    wait: Duration,
    creation: &mut Creation<'_>,
    printer: &Printer,
) -> Result<u16, LocalError> {
    let installed = crate::clusters::discover();
    let user = creation.user.clone();
    let mut from = first_port;
    loop {
        let (port, why) = choose_port(from, &installed, port_is_free)?;
        if let Some(why) = why.filter(|_| from == first_port) {
            printer.status(&format!("  {why}; this server takes port {port}"));
        }
        write_conf(layout, port, user.as_ref())?;
        creation.started = true;
        match pg_ctl_start(layout, bins, port, wait, user.as_ref(), printer).await {
            Ok(()) => return Ok(port),
            Err(LocalError::Start {
                port_taken: true, ..
            }) if port < first_port.saturating_add(PORT_SEARCH) => {
                creation.started = false;
                from = port + 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn write_conf(layout: &Layout, port: u16, user: Option<&ServerUser>) -> Result<(), LocalError> {
    let path = layout.data_dir().join(CONF_FILE);
    fs::write(&path, conf_text(port)).map_err(io_err("write", &path))?;
    give(&path, 0o600, user)
}

/// initdb's password file. On Linux it has no name: an `O_TMPFILE` in `.aksara/`, handed to
/// the server user, read by initdb through `/proc/self/fd/N` (the descriptor is inherited):
/// nothing a SIGKILL could leave behind. Elsewhere (or where the filesystem has no
/// O_TMPFILE) a `0600` file in a private folder, removed when initdb is done or, after a
/// SIGKILL, by the next creation.
enum PasswordInput {
    Unnamed(fs::File),
    Named(tempfile::TempDir),
}

impl PasswordInput {
    fn new(root: &Path, password: &str, user: Option<&ServerUser>) -> Result<Self, LocalError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(mut file) = unnamed_file(root) {
            if let Some(u) = user {
                std::os::unix::fs::fchown(&file, Some(u.uid), Some(u.gid))
                    .map_err(io_err("hand over a temporary file in", root))?;
            }
            file.write_all(format!("{password}\n").as_bytes())
                .map_err(io_err("write a temporary file in", root))?;
            return Ok(PasswordInput::Unnamed(file));
        }
        let dir = tempfile::Builder::new()
            .prefix(".initdb-")
            .tempdir_in(root)
            .map_err(io_err("create a temporary folder in", root))?;
        give(dir.path(), 0o700, user)?;
        let pwfile = dir.path().join("pwfile");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pwfile)
            .map_err(io_err("create", &pwfile))?;
        f.write_all(format!("{password}\n").as_bytes())
            .map_err(io_err("write", &pwfile))?;
        give(&pwfile, 0o600, user)?;
        Ok(PasswordInput::Named(dir))
    }

    /// What `--pwfile=` names, and the descriptor the child must inherit.
    fn path_and_fd(&self) -> (PathBuf, Option<i32>) {
        use std::os::fd::AsRawFd as _;
        match self {
            PasswordInput::Unnamed(f) => (
                PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())),
                Some(f.as_raw_fd()),
            ),
            PasswordInput::Named(dir) => (dir.path().join("pwfile"), None),
        }
    }
}

#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> Option<fs::File> {
    use std::os::fd::FromRawFd as _;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let cdir = CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: a valid NUL-terminated path; the returned descriptor is owned by the File.
    let fd = unsafe {
        libc::open(
            cdir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    (fd >= 0).then(|| unsafe { fs::File::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_dir: &Path) -> Option<fs::File> {
    None
}

async fn initdb(
    layout: &Layout,
    bins: &Binaries,
    password: &str,
    user: Option<&ServerUser>,
) -> Result<(), LocalError> {
    let input = PasswordInput::new(&layout.root(), password, user)?;
    let (pwfile, inherit) = input.path_and_fd();
    pause_point("before-initdb");
    let data = layout.data_dir();
    let run = |locale_c: bool| {
        let mut cmd = server_command(&bins.initdb(), &layout.root(), user);
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER])
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--encoding=UTF8"]);
        if locale_c {
            cmd.arg("--locale=C");
        }
        // SAFETY: only async-signal-safe calls between fork and exec: fcntl and prctl.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = inherit {
                    // The child's copy of the password file's descriptor survives exec.
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                // initdb dies with aksara (a SIGKILL included), not finishing a cluster that
                // nobody will record.
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.kill_on_drop(true);
        cmd
    };
    let out = output(run(false), &bins.initdb()).await?;
    let out = if !out.status.success() && combined(&out).contains("locale") {
        // The shell's locale is missing or does not fit UTF8 (LANG=C.UTF-8 where it is not
        // generated, say): C works everywhere. initdb removed what it had made.
        output(run(true), &bins.initdb()).await?
    } else {
        out
    };
    drop(input);
    if !out.status.success() {
        return Err(LocalError::Initdb {
            output: combined(&out),
        });
    }
    Ok(())
}

/// The data folder's `system_identifier`, as `pg_controldata` prints it (C locale).
pub async fn system_identifier(
    bins: &Binaries,
    data: &Path,
    user: Option<&ServerUser>,
) -> Option<String> {
    let program = bins.bindir.join("pg_controldata");
    let mut cmd = server_command(&program, data, user);
    cmd.env("LC_ALL", "C").arg("-D").arg(data);
    let out = output(cmd, &program).await.ok()?;
    parse_system_identifier(&String::from_utf8_lossy(&out.stdout))
}

/// `Database system identifier:           7301234567890123456` → the number.
pub fn parse_system_identifier(controldata: &str) -> Option<String> {
    controldata.lines().find_map(|line| {
        let value = line.strip_prefix("Database system identifier:")?.trim();
        value.parse::<u64>().is_ok().then(|| value.to_string())
    })
}

/// `pg_ctl start -w`: returns once the server accepts connections.
async fn pg_ctl_start(
    layout: &Layout,
    bins: &Binaries,
    port: u16,
    wait: Duration,
    user: Option<&ServerUser>,
    printer: &Printer,
) -> Result<(), LocalError> {
    let data = layout.data_dir();
    let log = layout.log_file();
    let log_start = fs::metadata(&log).map_or(0, |m| m.len());
    let mut cmd = server_command(&bins.pg_ctl(), &data, user);
    cmd.args([
        "start",
        "-w",
        "-t",
        &wait.as_secs().max(1).to_string(),
        "-D",
    ])
    .arg(&data)
    .arg("-l")
    .arg(&log);
    let spinner = printer.spinner(&format!(
        "Starting PostgreSQL {} on port {port}",
        bins.major
    ));
    let out = output(cmd, &bins.pg_ctl()).await?;
    drop(spinner);
    if out.status.success() {
        return Ok(());
    }
    let tail = log_tail(&log, log_start);
    let tail = if tail.is_empty() {
        combined(&out)
    } else {
        tail
    };
    Err(LocalError::Start {
        port,
        log_file: log,
        port_taken: tail.contains("Address already in use"),
        log_tail: tail,
    })
}

/// The last lines the server logged since `offset`.
fn log_tail(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Whether the cluster runs, as its socket, its files and the port's holder tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This project's postmaster: postmaster.pid names a live postgres running in this data
    /// folder.
    pub pid: Option<u32>,
    /// Whether this project's server answers (on its own socket, or on the port when the
    /// port's holder is its postmaster).
    pub accepting: bool,
    /// Who listens on the recorded TCP port (this project's postmaster, or a stranger).
    pub port_holder: Holder,
}

impl Status {
    /// Running means answering: after a hard reset, a stale postmaster.pid may name a process
    /// id some other program has since been given.
    pub fn running(&self) -> bool {
        self.accepting
    }

    /// The server on the recorded port, when it is not this project's.
    pub fn stranger(&self) -> Option<&Holder> {
        match &self.port_holder {
            Holder::Nobody => None,
            Holder::Process { pid, .. } if Some(*pid) == self.pid => None,
            // An invisible holder while this project's postmaster runs: most likely itself
            // (another user's view of it); while it does not, certainly not.
            Holder::Unknown if self.pid.is_some() => None,
            other => Some(other),
        }
    }
}

pub async fn status(layout: &Layout, record: &Record) -> Status {
    let pid = own_postmaster(layout);
    let port_holder = crate::holder::holder_unless(record.port, pid);
    let mut st = Status {
        pid,
        accepting: false,
        port_holder,
    };
    let bound = Duration::from_millis(1000);
    for ep in layout.endpoints(record) {
        // The socket in the data folder is only ever this project's server's; the port may be
        // anybody's.
        let ours = match ep.host {
            crate::dsn::Host::Socket(_) => true,
            crate::dsn::Host::Tcp(_) => pid.is_some() && st.stranger().is_none(),
        };
        if ours && matches!(probe::probe(&ep, bound).await, Answer::Postgres { .. }) {
            st.accepting = true;
            break;
        }
    }
    st
}

/// The live postmaster of this project's data folder: postmaster.pid names a running
/// postgres, and (where the process is visible) that process runs in this folder. After a
/// reboot the pid in a stale file may belong to another cluster's postgres.
pub fn own_postmaster(layout: &Layout) -> Option<u32> {
    let PidFile::Live(pid) = postmaster_pid(layout) else {
        return None;
    };
    match crate::holder::process_cwd(pid) {
        Some(cwd) if !crate::holder::same_path(&cwd, &layout.data_dir()) => None,
        _ => Some(pid),
    }
}

/// The version of a running postgres, read from its own executable (which may be a deleted
/// file after a package upgrade: `/proc/<pid>/exe` still runs it).
pub fn running_version(pid: u32) -> Option<String> {
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let out = std::process::Command::new(&exe)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout)).map(|(v, _)| v)
}

/// The version of the installed programs that would run this data folder.
pub fn installed_version(layout: &Layout, record: &Record) -> Option<String> {
    let major = data_major(layout).ok()?;
    binaries_for(major, record.bindir.as_deref())
        .ok()
        .map(|b| b.version)
}

/// Whether the data folder is still the cluster the record names: its `system_identifier`
/// matches. None when there is nothing to compare (an older record, an unreadable folder).
pub async fn same_cluster(layout: &Layout, record: &Record) -> Option<bool> {
    let recorded = record.identity.as_ref()?;
    if recorded.system_identifier.is_empty() {
        return None;
    }
    let bins = binaries_for(data_major(layout).ok()?, record.bindir.as_deref()).ok()?;
    let user = server_user().ok()?;
    let now = system_identifier(&bins, &layout.data_dir(), user.as_ref()).await?;
    Some(now == recorded.system_identifier)
}

/// What `postmaster.pid` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidFile {
    Missing,
    /// A PostgreSQL process with that id runs.
    Live(u32),
    /// Left behind by a crash or a power cut: the process is gone, a zombie, or another
    /// program that was given the same id after a reboot. PostgreSQL refuses to start while
    /// the id belongs to any live process, so aksara removes such a file itself.
    Stale(u32),
}

fn postmaster_pid(layout: &Layout) -> PidFile {
    let Some(pid) = fs::read_to_string(layout.data_dir().join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
    else {
        return PidFile::Missing;
    };
    if is_live_postgres(pid) {
        PidFile::Live(pid)
    } else {
        PidFile::Stale(pid)
    }
}

/// Whether `pid` is a running (not zombie) process named postgres, as `ps` shows it on Linux
/// and macOS alike. When `ps` cannot tell, the process counts as live: removing the pid file
/// of a running server would let a second one corrupt the data.
fn is_live_postgres(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    let Ok(out) = std::process::Command::new("ps")
        .args(["-o", "stat=", "-o", "comm=", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return true;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(stat), Some(comm)) => !stat.starts_with('Z') && comm.ends_with("postgres"),
        // ps found no such process after all.
        _ if out.status.success() => true,
        _ => false,
    }
}

/// Remove the lock files a crash left behind: `postmaster.pid` and the socket's
/// `.s.PGSQL.<port>.lock` (it lives in the data folder too), when the process they name is not
/// a running PostgreSQL. PostgreSQL removes them itself only when that id belongs to no process
/// at all; after a reboot another program may hold it, and an unreaped zombie holds it too.
fn remove_stale_locks(layout: &Layout, printer: &Printer) -> Result<(), LocalError> {
    let data = layout.data_dir();
    if let PidFile::Stale(pid) = postmaster_pid(layout) {
        let path = data.join("postmaster.pid");
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        printer.status(&format!(
            "  removed a stale postmaster.pid (process {pid} is not a running PostgreSQL: left by a crash or a power cut)"
        ));
    }
    let entries = fs::read_dir(&data).map_err(io_err("read", &data))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(socket) = name
            .strip_prefix(".s.PGSQL.")
            .and_then(|rest| rest.strip_suffix(".lock"))
            .map(|port| data.join(format!(".s.PGSQL.{port}")))
        else {
            continue;
        };
        let holder = fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
        if holder.is_some_and(|pid| !is_live_postgres(pid)) {
            let _ = fs::remove_file(&socket);
            fs::remove_file(entry.path()).map_err(io_err("remove", &entry.path()))?;
        }
    }
    Ok(())
}

/// The data folder's major version (`PG_VERSION`).
fn data_major(layout: &Layout) -> Result<u32, LocalError> {
    let path = layout.data_dir().join("PG_VERSION");
    let text = fs::read_to_string(&path).map_err(io_err("read", &path))?;
    text.trim().parse().map_err(|_| {
        LocalError::Project(ProjectError::BadRecord {
            path,
            message: format!("`{}` is not a version number", text.trim()),
        })
    })
}

/// Start the recorded cluster (after a reboot, say). Returns false when it already ran.
/// Refuses when another server holds the recorded port: starting would fail, and that server
/// must not be taken for this one. Afterwards the record names the new postmaster.
pub async fn start(
    layout: &Layout,
    record: &Record,
    wait: Duration,
    printer: &Printer,
) -> Result<bool, LocalError> {
    let st = status(layout, record).await;
    if st.running() {
        return Ok(false);
    }
    if let Some(holder) = st.stranger() {
        return Err(LocalError::PortHeld {
            port: record.port,
            holder: holder.clone(),
        });
    }
    let user = server_user()?;
    if let Some(u) = &user
        && let Some(blocked) = blocked_ancestor(&layout.project, u)
    {
        return Err(LocalError::Blocked {
            blocked,
            data_dir: layout.show(&layout.data_dir()).into(),
        });
    }
    let bins = binaries_for(data_major(layout)?, record.bindir.as_deref())?;
    remove_stale_locks(layout, printer)?;
    // The record is the source of truth for the port; the server's file follows it.
    write_conf(layout, record.port, user.as_ref())?;
    pg_ctl_start(layout, &bins, record.port, wait, user.as_ref(), printer).await?;
    let data = layout.data_dir();
    let system_identifier = match &record.identity {
        Some(id) if !id.system_identifier.is_empty() => id.system_identifier.clone(),
        _ => system_identifier(&bins, &data, user.as_ref())
            .await
            .unwrap_or_default(),
    };
    let mut updated = record.clone();
    updated.identity = Some(Identity {
        data_dir: data,
        system_identifier,
        pid: own_postmaster(layout),
    });
    layout.write_record(&updated)?;
    let _ = fs::remove_file(layout.root().join(CREATING_MARKER));
    Ok(true)
}

/// Stop the cluster, fast mode (sessions end, data is kept). Returns false when it was not
/// running. Only this project's postmaster is ever stopped (`pg_ctl -D` its data folder).
pub async fn stop(layout: &Layout, record: &Record) -> Result<bool, LocalError> {
    let st = status(layout, record).await;
    // A live postgres that does not answer may be starting or stuck: pg_ctl stops it too.
    if !st.running() && st.pid.is_none() {
        return Ok(false);
    }
    stop_data_dir(layout, record.bindir.as_deref()).await
}

/// A server an interrupted setup left running in `.aksara/postgres` with no record: its pid,
/// when there is one.
pub fn unrecorded_postmaster(layout: &Layout) -> Option<u32> {
    (!layout.record_file().exists())
        .then(|| own_postmaster(layout))
        .flatten()
}

/// How long a stopped postmaster may take to exit after `pg_ctl` said it stopped.
const STOP_EXIT_BOUND: Duration = Duration::from_secs(5);

/// `pg_ctl stop -m fast` on the project's data folder, with the programs of its version.
pub async fn stop_data_dir(layout: &Layout, bindir: Option<&Path>) -> Result<bool, LocalError> {
    let user = server_user()?;
    let bins = binaries_for(data_major(layout)?, bindir)?;
    let data = layout.data_dir();
    // No postmaster.pid: nothing runs there (what pg_ctl itself checks before it says "Is
    // server running?"), told by the file rather than by pg_ctl's words.
    if !data.join("postmaster.pid").exists() {
        return Ok(false);
    }
    let postmaster = own_postmaster(layout);
    let mut cmd = server_command(&bins.pg_ctl(), &data, user.as_ref());
    cmd.args(["stop", "-m", "fast", "-w", "-D"]).arg(&data);
    let out = output(cmd, &bins.pg_ctl()).await?;
    if out.status.success() {
        // `pg_ctl stop -w` returns once postmaster.pid is gone, which the postmaster removes
        // on its way out, a moment before it exits (under load the next command still saw
        // it): "stopped" means the process is gone too.
        if let Some(pid) = postmaster {
            wait_gone(pid, STOP_EXIT_BOUND);
        }
        return Ok(true);
    }
    // It stopped between the check and pg_ctl.
    if !data.join("postmaster.pid").exists() {
        return Ok(false);
    }
    Err(LocalError::Stop {
        output: combined(&out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_postgres_version_output() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n"),
            Some(("15.14".into(), 15))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17.2\n"),
            Some(("17.2".into(), 17))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 18beta1\n"),
            Some(("18beta1".into(), 18))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn the_first_free_port_is_the_start_or_the_next_free_one() {
        assert_eq!(first_free_port(5432, |_| true), Some(5432));
        assert_eq!(first_free_port(5432, |p| p >= 5435), Some(5435));
        assert_eq!(first_free_port(5432, |_| false), None);
        assert_eq!(first_free_port(65535, |p| p == 65535), Some(65535));
        assert_eq!(first_free_port(65535, |_| false), None);
    }

    #[test]
    fn a_port_held_by_a_listener_is_not_free() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(!port_is_free(port));
        assert_ne!(first_free_port(port, port_is_free), Some(port));
    }

    #[test]
    fn entering_a_folder_follows_owner_then_group_then_other() {
        let pg = ServerUser {
            name: "postgres".into(),
            uid: 101,
            gid: 104,
        };
        // /root: 0700 root:root
        assert!(!can_enter(0o40700, 0, 0, &pg));
        // a 0711 home lets anyone pass through
        assert!(can_enter(0o40711, 0, 0, &pg));
        // owned by postgres, 0700
        assert!(can_enter(0o40700, 101, 0, &pg));
        // group postgres, 0750
        assert!(can_enter(0o40750, 0, 104, &pg));
        // other bits do not apply to the group
        assert!(!can_enter(0o40701, 0, 104, &pg));
    }

    #[test]
    fn a_blocked_ancestor_is_named_with_its_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        fs::create_dir_all(&inner).unwrap();
        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o700)).unwrap();
        let me = unsafe { libc::geteuid() };
        let stranger = ServerUser {
            name: "nobody".into(),
            uid: me.wrapping_add(12345),
            gid: u32::MAX - 1,
        };
        let blocked = blocked_ancestor(&inner, &stranger);
        // Everything above the temp folder is enterable by others on any sane machine; the
        // temp folder itself may be 0700 too, so accept either as the first block.
        let blocked = blocked.expect("a 0700 folder blocks a stranger");
        assert!(inner.starts_with(&blocked.dir), "{blocked:?}");
        assert_eq!(blocked.mode & 0o777, 0o700);
        let owner = ServerUser {
            name: "me".into(),
            uid: me,
            gid: 0,
        };
        assert_eq!(blocked_ancestor(&inner, &owner), None);
    }

    #[test]
    fn the_settings_file_names_the_port_and_a_relative_socket_folder() {
        let text = conf_text(5433);
        assert!(text.contains("port = 5433\n"));
        assert!(text.contains("listen_addresses = '127.0.0.1'"));
        assert!(text.contains("unix_socket_directories = '.'"));
    }
}
