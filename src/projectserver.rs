//! The project's own PostgreSQL: the server aksara started for this project when none was
//! running, either a cluster in `.aksara/postgres/` or the `aksara-postgres` Docker container.
//! This module knows where its files live, keeps the record that says which kind it is and on
//! which port (`.aksara/server.json`), and owns the superuser password file
//! (`.aksara/postgres-password`, `0600`: besides `.env`, the only file a password is written
//! to). `dbsetup`, `dbserver` and `doctor` all read the record, so the server is found again
//! after a reboot, and a refused connection to it is diagnosed with `aksara dbserver start`.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dsn::{ConnString, Endpoint, Host, HostSpec, Password};

/// The folder in the project that holds everything aksara keeps for it.
pub const DIR_NAME: &str = ".aksara";
/// The superuser of a server aksara starts (the Docker image's default, and initdb's `-U`).
pub const SUPERUSER: &str = "postgres";
/// What `.gitignore` gets, anchored at the repository root when the project is the root.
pub const GITIGNORE_PATTERN: &str = ".aksara/";
/// The longest socket path clients can use: `sun_path` holds 108 bytes with the NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Which kind of server the project has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A cluster in `.aksara/postgres/`, run with the installed server binaries.
    Local,
    /// The `aksara-postgres` container.
    Docker,
}

/// `.aksara/server.json`: what `dbserver` and `doctor` need to find the server again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub kind: Kind,
    /// The TCP port on 127.0.0.1 (local) or the host port mapped to the container's 5432.
    pub port: u16,
    /// Local: the folder of the server binaries that created the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindir: Option<PathBuf>,
    /// Local: `postgres --version`'s number, e.g. `15.14`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Docker: the container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Local: who the server is, so that another server on the same port is never taken for
    /// it (see `localserver::status`). Absent in records written before aksara kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

/// What makes the project's cluster itself: its data folder, the `system_identifier` initdb
/// gave it (`pg_controldata`, `pg_control_system()`), and the postmaster's pid when it was
/// last started by aksara (a hint for messages; the live pid is read from postmaster.pid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub data_dir: PathBuf,
    /// A u64, kept as text: JSON readers in other languages lose precision past 2^53.
    pub system_identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Something went wrong with a file under `.aksara/`.
#[derive(Debug)]
pub enum ProjectError {
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// `server.json` does not parse (edited by hand, or cut short).
    BadRecord { path: PathBuf, message: String },
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            ProjectError::BadRecord { path, message } => {
                write!(f, "{} is not a valid record: {message}", path.display())
            }
        }
    }
}

impl ProjectError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ProjectError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("run aksara as the user who owns the project folder".into())
            }
            ProjectError::Io { .. } => None,
            ProjectError::BadRecord { path, .. } => Some(format!(
                "it is written by `aksara dbsetup --start-server local|docker`; remove {} and run that again (the data folder is kept and reused)",
                path.display()
            )),
        }
    }
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ProjectError + 'a {
    move |source| ProjectError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where the project's server keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The project folder (the one holding `.aksara/`), absolute.
    pub project: PathBuf,
}

impl Layout {
    /// The layout for a project folder (made absolute, so socket paths work from anywhere).
    pub fn in_project(project: &Path) -> Layout {
        let project = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
        Layout { project }
    }

    /// The nearest project at or above `dir` that has a server record, as git finds `.git`.
    pub fn find_from(dir: &Path) -> Option<Layout> {
        let start = std::path::absolute(dir).ok()?;
        start
            .ancestors()
            .map(Layout::in_project)
            .find(|layout| layout.record_file().is_file())
    }

    /// `.aksara/`
    pub fn root(&self) -> PathBuf {
        self.project.join(DIR_NAME)
    }

    /// `.aksara/postgres/`: the cluster's data folder, which also holds its socket.
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("postgres")
    }

    /// The socket folder: the data folder (`unix_socket_directories = '.'`), so the socket
    /// moves with the project and no other server's socket folder is touched.
    pub fn socket_dir(&self) -> PathBuf {
        self.data_dir()
    }

    pub fn log_file(&self) -> PathBuf {
        self.root().join("postgres.log")
    }

    pub fn password_file(&self) -> PathBuf {
        self.root().join("postgres-password")
    }

    pub fn record_file(&self) -> PathBuf {
        self.root().join("server.json")
    }

    /// The record, or None when the project has no server of its own.
    pub fn read_record(&self) -> Result<Option<Record>, ProjectError> {
        let path = self.record_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ProjectError::BadRecord {
                path,
                message: e.to_string(),
            })
    }

    /// Write the record atomically (temporary file, then rename): a crash leaves the old one.
    pub fn write_record(&self, record: &Record) -> Result<(), ProjectError> {
        let path = self.record_file();
        let mut text = serde_json::to_string_pretty(record).expect("the record serialises");
        text.push('\n');
        let tmp = self.root().join(".server.json.tmp");
        fs::write(&tmp, text).map_err(io_error("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("write", &path))
    }

    pub fn remove_record(&self) -> Result<(), ProjectError> {
        let path = self.record_file();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Create `.aksara/` (mode 0755: a server running as another user must pass through it;
    /// the secrets inside are 0600). Returns whether it was created now.
    pub fn create_root(&self) -> Result<bool, ProjectError> {
        let root = self.root();
        match fs::create_dir(&root) {
            Ok(()) => {
                fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
                    .map_err(io_error("set the mode of", &root))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && root.is_dir() => Ok(false),
            Err(e) => Err(io_error("create", &root)(e)),
        }
    }

    /// The superuser password, if the file exists.
    pub fn read_password(&self) -> Result<Option<String>, ProjectError> {
        let path = self.password_file();
        match fs::read_to_string(&path) {
            Ok(text) => {
                Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()).filter(|p| !p.is_empty()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// The superuser password: the file's, or a new one from the OS's secure random source,
    /// written to a file created `0600` (never widened, never replaced). The bool says whether
    /// the file was created now.
    pub fn ensure_password(&self) -> Result<(String, bool), ProjectError> {
        if let Some(existing) = self.read_password()? {
            return Ok((existing, false));
        }
        let path = self.password_file();
        let password = crate::provision::generate_password();
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error("create", &path))?;
        file.write_all(format!("{password}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error("write", &path))?;
        Ok((password, true))
    }

    /// Where clients reach the server: its socket (local kind, when the path fits in a socket
    /// address) and TCP. The socket comes first: it needs no network.
    pub fn endpoints(&self, record: &Record) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if record.kind == Kind::Local {
            let socket = Endpoint {
                host: Host::Socket(self.socket_dir()),
                port: record.port,
            };
            if socket_path_fits(&socket) {
                out.push(socket);
            }
        }
        out.push(self.tcp_endpoint(record));
        out
    }

    /// The TCP address: 127.0.0.1 for the local cluster (its only listen address), localhost
    /// for Docker (which publishes on every interface, IPv4 and IPv6).
    pub fn tcp_endpoint(&self, record: &Record) -> Endpoint {
        Endpoint {
            host: Host::Tcp(match record.kind {
                Kind::Local => "127.0.0.1".into(),
                Kind::Docker => "localhost".into(),
            }),
            port: record.port,
        }
    }

    /// A superuser connection string over TCP, the password held in memory only.
    pub fn admin_conn_string(&self, record: &Record, password: &str) -> ConnString {
        let ep = self.tcp_endpoint(record);
        ConnString {
            hosts: vec![HostSpec {
                host: Some(ep.host.to_string()),
                port: Some(ep.port),
            }],
            user: Some(SUPERUSER.into()),
            password: Some(Password::new(password.to_string())),
            dbname: Some("postgres".into()),
            ..ConnString::default()
        }
    }

    /// Whether `endpoint` is where this project's server listens.
    pub fn serves(&self, record: &Record, endpoint: &Endpoint) -> bool {
        if endpoint.port != record.port {
            return false;
        }
        match &endpoint.host {
            Host::Socket(dir) => record.kind == Kind::Local && same_dir(dir, &self.socket_dir()),
            Host::Tcp(_) => endpoint.is_local(),
        }
    }

    /// The path relative to the project, for messages (`.aksara/postgres`).
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.project)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string())
    }
}

/// Whether a socket endpoint's path fits in `sun_path`; a longer one cannot be connected to.
pub fn socket_path_fits(endpoint: &Endpoint) -> bool {
    endpoint
        .socket_path()
        .is_some_and(|p| p.as_os_str().len() <= MAX_SOCKET_PATH)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// Who is at the project server's address, for doctor and dbsetup: another server on the same
/// port must never be taken for the project's own (its `auth-failed` is not about
/// `.aksara/postgres-password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtProjectPort {
    /// The project's own server listens there (or nothing does on its socket: it is down).
    Ours { running: bool },
    /// Another server holds the project server's port.
    Stranger(crate::holder::Holder),
}

/// What is at `endpoint` when the project at or above `dir` has its server there; None when
/// the endpoint is not the project server's address. Reads `/proc` and the installed clusters'
/// files; it makes no connection.
pub fn at_project_port(endpoint: &Endpoint, dir: &Path) -> Option<(Layout, Record, AtProjectPort)> {
    let layout = Layout::find_from(dir)?;
    let record = layout.read_record().ok()??;
    if !layout.serves(&record, endpoint) {
        return None;
    }
    let own = match record.kind {
        Kind::Local => crate::localserver::own_postmaster(&layout),
        // The container's port is published by Docker's proxy: its holder says nothing.
        Kind::Docker => return Some((layout, record, AtProjectPort::Ours { running: true })),
    };
    let at = match (&endpoint.host, own) {
        (Host::Socket(_), own) => AtProjectPort::Ours {
            running: own.is_some(),
        },
        (Host::Tcp(_), own) => {
            let holder = crate::holder::holder_unless(record.port, own);
            match holder {
                crate::holder::Holder::Nobody => AtProjectPort::Ours { running: false },
                crate::holder::Holder::Process { pid, .. } if Some(pid) == own => {
                    AtProjectPort::Ours { running: true }
                }
                crate::holder::Holder::Unknown if own.is_some() => {
                    AtProjectPort::Ours { running: true }
                }
                other => AtProjectPort::Stranger(other),
            }
        }
    };
    Some((layout, record, at))
}

/// The command that brings back the project server listening at `endpoint`, when the project
/// at or above `dir` has one there and no other server holds its port: for a refused
/// connection, this beats the OS's service.
pub fn start_command_for(endpoint: &Endpoint, dir: &Path) -> Option<String> {
    match at_project_port(endpoint, dir)?.2 {
        AtProjectPort::Ours { .. } => Some("aksara dbserver start".to_string()),
        AtProjectPort::Stranger(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(port: u16) -> Record {
        Record {
            kind: Kind::Local,
            port,
            bindir: Some("/usr/lib/postgresql/15/bin".into()),
            version: Some("15.14".into()),
            container: None,
            identity: None,
        }
    }

    #[test]
    fn the_record_round_trips_and_leaves_out_what_its_kind_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::in_project(dir.path());
        assert_eq!(layout.read_record().unwrap(), None);
        layout.create_root().unwrap();
        layout.write_record(&local(5433)).unwrap();
        assert_eq!(layout.read_record().unwrap(), Some(local(5433)));
        let docker = Record {
            kind: Kind::Docker,
            port: 5432,
            bindir: None,
            version: None,
            container: Some("aksara-postgres".into()),
            identity: None,
        };
        layout.write_record(&docker).unwrap();
        let text = fs::read_to_string(layout.record_file()).unwrap();
        assert!(!text.contains("bindir"), "{text}");
        assert_eq!(layout.read_record().unwrap(), Some(docker));
    }

    #[test]
    fn a_broken_record_is_an_error_that_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::in_project(dir.path());
        layout.create_root().unwrap();
        fs::write(layout.record_file(), "{\"kind\": \"lo").unwrap();
        let err = layout.read_record().unwrap_err();
        assert!(err.to_string().contains("server.json"), "{err}");
        assert!(err.hint().unwrap().contains("--start-server"));
    }

    #[test]
    fn the_password_file_is_created_0600_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::in_project(dir.path());
        assert!(layout.create_root().unwrap());
        assert!(!layout.create_root().unwrap());
        let (first, created) = layout.ensure_password().unwrap();
        assert!(created);
        assert_eq!(first.len(), 32);
        let mode = fs::metadata(layout.password_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, created) = layout.ensure_password().unwrap();
        assert!(!created);
        assert_eq!(first, second);
    }

    #[test]
    fn the_record_is_found_from_a_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::in_project(dir.path());
        layout.create_root().unwrap();
        layout.write_record(&local(5432)).unwrap();
        let sub = dir.path().join("src/app");
        fs::create_dir_all(&sub).unwrap();
        assert_eq!(Layout::find_from(&sub), Some(layout.clone()));
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(Layout::find_from(elsewhere.path()), None);
    }

    #[test]
    fn serves_matches_the_port_on_loopback_and_the_project_socket_only() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::in_project(dir.path());
        let record = local(5440);
        let tcp = |host: &str, port| Endpoint {
            host: Host::Tcp(host.into()),
            port,
        };
        assert!(layout.serves(&record, &tcp("localhost", 5440)));
        assert!(layout.serves(&record, &tcp("127.0.0.1", 5440)));
        assert!(!layout.serves(&record, &tcp("localhost", 5432)));
        assert!(!layout.serves(&record, &tcp("db.example.com", 5440)));
        let socket = |dir: PathBuf| Endpoint {
            host: Host::Socket(dir),
            port: 5440,
        };
        assert!(layout.serves(&record, &socket(layout.socket_dir())));
        assert!(!layout.serves(&record, &socket("/var/run/postgresql".into())));
    }

    #[test]
    fn a_socket_path_too_long_for_sun_path_is_left_out() {
        let layout = Layout::in_project(&PathBuf::from(format!("/{}", "p".repeat(100))));
        let eps = layout.endpoints(&local(5432));
        assert_eq!(eps.len(), 1);
        assert!(matches!(eps[0].host, Host::Tcp(_)));
        let short = Layout::in_project(Path::new("/srv/app"));
        let eps = short.endpoints(&local(5432));
        assert_eq!(eps.len(), 2);
        assert_eq!(
            eps[0].to_string(),
            "/srv/app/.aksara/postgres/.s.PGSQL.5432"
        );
        assert_eq!(eps[1].to_string(), "127.0.0.1:5432");
    }
}
