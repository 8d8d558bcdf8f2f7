//! The PostgreSQL clusters installed on this machine, running or not, and the command that
//! starts each one the way this machine does it. A configured-but-down cluster (Debian's
//! `15/main` after a reboot without systemd, say) is a better answer than a new server, and a
//! port such a cluster is configured for is one the project's own server must never take.
//!
//! Four sources, each read from files and tool output by pure functions (unit-tested with
//! fixtures), with a thin layer of I/O around them:
//! - postgresql-common (Debian, Ubuntu): `/etc/postgresql/<version>/<name>/postgresql.conf`
//!   with its includes (`conf.d`), and `pg_lsclusters` for the status when it is installed.
//!   Started with `pg_ctlcluster <version> <name> start`, or `systemctl start
//!   postgresql@<version>-<name>` where systemd runs.
//! - Homebrew: data folders `<prefix>/var/postgresql@<major>` (and the old unversioned
//!   `postgres`), started with `brew services start postgresql@<major>`.
//! - Postgres.app: `~/Library/Application Support/Postgres/var-<major>`, started with the
//!   app's own `pg_ctl`.
//! - systemd units that are not postgresql-common's (`postgresql.service` on Fedora/RHEL,
//!   `postgresql-16.service` from the PGDG packages), only where systemd runs
//!   (`/run/systemd/system` exists): their `PGDATA` names the data folder.
//!
//! `sudo` is put before a command only when aksara is not root, the command needs root, and
//! `sudo` exists; otherwise the command is shown as it must be run (as root or the owner).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::dsn::{Endpoint, Host};
use crate::probe::{self, Answer};

/// PostgreSQL's default port and Debian's default socket folder.
pub const DEFAULT_PORT: u16 = 5432;
const DEBIAN_SOCKET_DIR: &str = "/var/run/postgresql";
/// Homebrew's and Postgres.app's socket folder (the compiled-in default on macOS).
const MACOS_SOCKET_DIR: &str = "/tmp";
/// How deep `include` directives are followed (PostgreSQL's own limit is 10).
const MAX_INCLUDE_DEPTH: usize = 10;

/// Where a cluster was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    PostgresqlCommon,
    Homebrew,
    PostgresApp,
    Systemd,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::PostgresqlCommon => "postgresql-common",
            Source::Homebrew => "Homebrew",
            Source::PostgresApp => "Postgres.app",
            Source::Systemd => "systemd",
        })
    }
}

/// Whether the cluster runs, as far as the machine's own tools tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Online,
    Down,
    /// No tool said (no `pg_lsclusters`, an unreadable data folder).
    Unknown,
}

/// One installed cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub source: Source,
    /// The major version (`15`), as the packaging names it.
    pub version: String,
    /// postgresql-common's cluster name (`main`), Homebrew's formula, the systemd unit.
    pub name: String,
    pub port: u16,
    pub state: State,
    /// The OS user the server runs as, when known.
    pub owner: Option<String>,
    pub data_dir: PathBuf,
    /// The first of `unix_socket_directories`.
    pub socket_dir: Option<PathBuf>,
    /// The `postgresql.conf` its port was read from (where `listen_addresses` is set too).
    pub config_file: PathBuf,
    /// Its `external_pid_file`, when its configuration names one.
    pub pid_file: Option<PathBuf>,
    pub start: StartCommand,
}

impl Installed {
    /// `15/main (postgresql-common, port 5432, down)`
    pub fn describe(&self) -> String {
        let state = match self.state {
            State::Online => "running",
            State::Down => "down",
            State::Unknown => "state unknown",
        };
        format!(
            "PostgreSQL cluster {} ({}, port {}, {state})",
            self.name_label(),
            self.source,
            self.port
        )
    }

    /// `PostgreSQL cluster 15/main`, without a state that may have changed since.
    pub fn label(&self) -> String {
        format!("PostgreSQL cluster {}", self.name_label())
    }

    fn name_label(&self) -> String {
        match self.source {
            Source::PostgresqlCommon => format!("{}/{}", self.version, self.name),
            _ => self.name.clone(),
        }
    }
}

/// A command line, run without a shell; shown with spaces between its words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StartCommand {
    pub argv: Vec<String>,
    /// It must run as root (or the cluster's owner) and aksara is neither, and there is no
    /// `sudo` to put before it.
    pub needs_root: bool,
}

impl fmt::Display for StartCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// The facts about this machine that decide how a cluster is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub root: bool,
    pub sudo: bool,
    /// systemd is the running init (`/run/systemd/system` exists), not merely installed.
    pub systemd: bool,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine {
            // SAFETY: geteuid has no preconditions and cannot fail.
            root: unsafe { libc::geteuid() } == 0,
            sudo: which::which("sudo").is_ok(),
            systemd: Path::new("/run/systemd/system").is_dir(),
        }
    }

    /// `argv` as this machine must run it when it needs root: as is for root, behind `sudo`
    /// when there is one.
    fn privileged(&self, argv: Vec<String>) -> StartCommand {
        if self.root {
            StartCommand {
                argv,
                needs_root: false,
            }
        } else if self.sudo {
            let mut with_sudo = vec!["sudo".to_string()];
            with_sudo.extend(argv);
            StartCommand {
                argv: with_sudo,
                needs_root: false,
            }
        } else {
            StartCommand {
                argv,
                needs_root: true,
            }
        }
    }
}

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// postgresql-common's start command: its systemd unit where systemd runs, else
/// `pg_ctlcluster` (which needs root or the cluster's owner).
pub fn postgresql_common_start(
    machine: &Machine,
    version: &str,
    name: &str,
    owner_is_me: bool,
) -> StartCommand {
    let argv = if machine.systemd {
        words(&[
            "systemctl",
            "start",
            &format!("postgresql@{version}-{name}"),
        ])
    } else {
        words(&["pg_ctlcluster", version, name, "start"])
    };
    if owner_is_me && !machine.systemd {
        StartCommand {
            argv,
            needs_root: false,
        }
    } else {
        machine.privileged(argv)
    }
}

/// The settings of a `postgresql.conf` that aksara needs, after its includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub port: Option<u16>,
    pub data_directory: Option<PathBuf>,
    pub unix_socket_directories: Option<String>,
    /// Where the server writes its pid for other programs (postgresql-common sets
    /// `/var/run/postgresql/<version>-<name>.pid`, readable by every user).
    pub external_pid_file: Option<PathBuf>,
}

impl Settings {
    /// The first socket folder, relative ones resolved against the data folder (as the server
    /// does).
    pub fn socket_dir(&self, default: &str, data_dir: &Path) -> PathBuf {
        let list = self.unix_socket_directories.as_deref().unwrap_or(default);
        let first = list.split(',').map(str::trim).find(|d| !d.is_empty());
        match first {
            Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
            Some(dir) => data_dir.join(dir),
            None => PathBuf::from(default),
        }
    }
}

/// One `name = value` line of a configuration file: the name lowercased, the value unquoted
/// (`''` and `\'` inside quotes are a quote), a trailing `#` comment dropped. The `=` is
/// optional, as in PostgreSQL.
pub fn parse_conf_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    let name = line[..name_end].to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    let rest = line[name_end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let value = if let Some(quoted) = rest.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                }
                _ => value.push(c),
            }
        }
        value
    } else {
        rest.split('#').next().unwrap_or("").trim().to_string()
    };
    Some((name, value))
}

/// Read a configuration file and what it includes, in order, later settings winning.
/// Missing or unreadable files are skipped (`include_if_exists` semantics everywhere: aksara
/// only reads, and a file it cannot read cannot be judged).
pub fn read_settings(file: &Path) -> Settings {
    let mut settings = Settings::default();
    apply_file(file, &mut settings, 0);
    settings
}

fn apply_file(file: &Path, settings: &mut Settings, depth: usize) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    let Ok(text) = fs::read_to_string(file) else {
        return;
    };
    let base = file.parent().unwrap_or(Path::new("/"));
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    for (name, value) in text.lines().filter_map(parse_conf_line) {
        match name.as_str() {
            "include" | "include_if_exists" => apply_file(&resolve(&value), settings, depth + 1),
            "include_dir" => {
                let dir = resolve(&value);
                let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "conf")
                            && !p
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect();
                // PostgreSQL reads them in C-locale order of their names.
                files.sort();
                for f in files {
                    apply_file(&f, settings, depth + 1);
                }
            }
            "port" => settings.port = value.parse().ok().or(settings.port),
            "data_directory" => settings.data_directory = Some(PathBuf::from(value)),
            "unix_socket_directories" => settings.unix_socket_directories = Some(value),
            "external_pid_file" => {
                settings.external_pid_file =
                    Some(value).filter(|v| !v.is_empty()).map(PathBuf::from);
            }
            _ => {}
        }
    }
}

/// One row of `pg_lsclusters --no-header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsRow {
    pub version: String,
    pub name: String,
    pub port: u16,
    /// `online`, `down`, `online,recovery`
    pub status: String,
    pub owner: String,
    pub data_dir: PathBuf,
}

/// `15 main 5432 down postgres /var/lib/postgresql/15/main /var/log/...` per line; lines that
/// do not parse (a header, a warning) are skipped.
pub fn parse_lsclusters(text: &str) -> Vec<LsRow> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let version = f.next()?.to_string();
            version.chars().next().filter(char::is_ascii_digit)?;
            let name = f.next()?.to_string();
            let port = f.next()?.parse().ok()?;
            let status = f.next()?.to_string();
            let owner = f.next()?.to_string();
            let data_dir = PathBuf::from(f.next()?);
            Some(LsRow {
                version,
                name,
                port,
                status,
                owner,
                data_dir,
            })
        })
        .collect()
}

/// Where the sources keep their files; the real machine's, or a fixture tree in tests.
#[derive(Debug, Clone)]
pub struct Roots {
    /// `/etc/postgresql`
    pub etc_postgresql: PathBuf,
    /// Homebrew's `var` folders (`/opt/homebrew/var`, `/usr/local/var`).
    pub homebrew_var: Vec<PathBuf>,
    /// `~/Library/Application Support/Postgres`
    pub postgres_app: Option<PathBuf>,
}

impl Roots {
    pub fn of_this_machine() -> Roots {
        Roots {
            etc_postgresql: PathBuf::from("/etc/postgresql"),
            homebrew_var: vec![
                PathBuf::from("/opt/homebrew/var"),
                PathBuf::from("/usr/local/var"),
            ],
            postgres_app: std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join("Library/Application Support/Postgres")),
        }
    }
}

/// The clusters postgresql-common knows: every `/etc/postgresql/<version>/<name>/` with a
/// `postgresql.conf`, its status from `pg_lsclusters` output when given.
pub fn postgresql_common(
    etc: &Path,
    lsclusters: Option<&str>,
    machine: &Machine,
    me: Option<&str>,
) -> Vec<Installed> {
    let rows = lsclusters.map(parse_lsclusters).unwrap_or_default();
    let mut found = Vec::new();
    for version_dir in sorted_dirs(etc) {
        let version = file_name(&version_dir);
        for cluster_dir in sorted_dirs(&version_dir) {
            let conf = cluster_dir.join("postgresql.conf");
            if !conf.is_file() {
                continue;
            }
            let name = file_name(&cluster_dir);
            let settings = read_settings(&conf);
            let row = rows.iter().find(|r| r.version == version && r.name == name);
            let data_dir = settings
                .data_directory
                .clone()
                .or_else(|| row.map(|r| r.data_dir.clone()))
                .unwrap_or_else(|| PathBuf::from(format!("/var/lib/postgresql/{version}/{name}")));
            // pg_lsclusters' owner column is the data folder's owner: asked of the folder when
            // it printed nothing (one broken cluster anywhere makes it print nothing at all).
            let owner = row
                .map(|r| r.owner.clone())
                .or_else(|| folder_owner(&data_dir));
            let state = match row {
                Some(r) if r.status.starts_with("online") => State::Online,
                Some(_) => State::Down,
                None => State::Unknown,
            };
            let owner_is_me = owner.is_some() && owner.as_deref() == me;
            found.push(Installed {
                source: Source::PostgresqlCommon,
                start: postgresql_common_start(machine, &version, &name, owner_is_me),
                port: settings.port.unwrap_or(DEFAULT_PORT),
                socket_dir: Some(settings.socket_dir(DEBIAN_SOCKET_DIR, &data_dir)),
                pid_file: settings.external_pid_file.clone(),
                config_file: conf,
                version: version.clone(),
                name,
                state,
                owner,
                data_dir,
            });
        }
    }
    found
}

/// The name of the user who owns `folder`, when it exists and the owner has a name.
fn folder_owner(folder: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = fs::metadata(folder).ok()?.uid();
    crate::localserver::user_name_of(uid)
}

/// Homebrew's data folders: `<var>/postgresql@16`, `<var>/postgres` (the unversioned formula).
/// Its services run as the user who installed Homebrew: no sudo.
pub fn homebrew(vars: &[PathBuf]) -> Vec<Installed> {
    let mut found = Vec::new();
    for var in vars {
        for data in sorted_dirs(var) {
            let dir_name = file_name(&data);
            let formula = match dir_name.as_str() {
                "postgres" => "postgresql".to_string(),
                n if n.starts_with("postgresql@") => n.to_string(),
                _ => continue,
            };
            let Some(major) = read_pg_version(&data) else {
                continue;
            };
            let settings = read_settings(&data.join("postgresql.conf"));
            found.push(Installed {
                source: Source::Homebrew,
                version: major,
                port: settings.port.unwrap_or(DEFAULT_PORT),
                socket_dir: Some(settings.socket_dir(MACOS_SOCKET_DIR, &data)),
                config_file: data.join("postgresql.conf"),
                pid_file: None,
                state: pid_file_state(&data),
                owner: None,
                start: StartCommand {
                    argv: words(&["brew", "services", "start", &formula]),
                    needs_root: false,
                },
                name: formula,
                data_dir: data,
            });
        }
    }
    found
}

/// Postgres.app's data folders, `var-<major>`, started with that version's `pg_ctl`.
pub fn postgres_app(root: &Path) -> Vec<Installed> {
    let mut found = Vec::new();
    for data in sorted_dirs(root) {
        let Some(major) = file_name(&data).strip_prefix("var-").map(str::to_string) else {
            continue;
        };
        if read_pg_version(&data).is_none() {
            continue;
        }
        let settings = read_settings(&data.join("postgresql.conf"));
        let pg_ctl = format!("/Applications/Postgres.app/Contents/Versions/{major}/bin/pg_ctl");
        let data_text = data.display().to_string();
        let log = data.join("postgresql.log").display().to_string();
        found.push(Installed {
            source: Source::PostgresApp,
            name: format!("Postgres.app {major}"),
            port: settings.port.unwrap_or(DEFAULT_PORT),
            socket_dir: Some(settings.socket_dir(MACOS_SOCKET_DIR, &data)),
            config_file: data.join("postgresql.conf"),
            pid_file: None,
            state: pid_file_state(&data),
            owner: None,
            start: StartCommand {
                argv: words(&[&pg_ctl, "start", "-D", &data_text, "-l", &log]),
                needs_root: false,
            },
            version: major,
            data_dir: data,
        });
    }
    found
}

/// One unit from `systemctl show -p Id,ActiveState,User,Environment <units>` output, blocks
/// separated by blank lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    pub id: String,
    pub active: bool,
    pub user: Option<String>,
    pub pgdata: Option<PathBuf>,
}

pub fn parse_systemctl_show(text: &str) -> Vec<UnitInfo> {
    let mut units = Vec::new();
    for block in text.split("\n\n") {
        let mut unit = UnitInfo {
            id: String::new(),
            active: false,
            user: None,
            pgdata: None,
        };
        for line in block.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "Id" => unit.id = value.to_string(),
                "ActiveState" => unit.active = value == "active",
                "User" if !value.is_empty() => unit.user = Some(value.to_string()),
                "Environment" => {
                    unit.pgdata = value
                        .split_whitespace()
                        .find_map(|kv| kv.strip_prefix("PGDATA="))
                        .map(PathBuf::from);
                }
                _ => {}
            }
        }
        if !unit.id.is_empty() {
            units.push(unit);
        }
    }
    units
}

/// Units that are not postgresql-common's templated ones (those come from /etc/postgresql),
/// with a PGDATA whose configuration can be read.
pub fn systemd_units(units: &[UnitInfo], machine: &Machine) -> Vec<Installed> {
    units
        .iter()
        .filter(|u| !u.id.starts_with("postgresql@"))
        .filter_map(|u| {
            let data = u.pgdata.clone()?;
            let settings = read_settings(&data.join("postgresql.conf"));
            let unit = u.id.trim_end_matches(".service").to_string();
            Some(Installed {
                source: Source::Systemd,
                version: read_pg_version(&data).unwrap_or_default(),
                port: settings.port.unwrap_or(DEFAULT_PORT),
                socket_dir: Some(settings.socket_dir(DEBIAN_SOCKET_DIR, &data)),
                config_file: data.join("postgresql.conf"),
                pid_file: None,
                state: if u.active { State::Online } else { State::Down },
                owner: u.user.clone(),
                start: machine.privileged(words(&["systemctl", "start", &unit])),
                name: unit,
                data_dir: data,
            })
        })
        .collect()
}

/// The clusters configured on this machine from their files alone (no `pg_lsclusters`, no
/// `systemctl`: their state is `Unknown`): which cluster a port belongs to and how it starts,
/// cheap enough for a refused connection's hint.
pub fn configured() -> Vec<Installed> {
    let machine = Machine::detect();
    let roots = Roots::of_this_machine();
    let me = crate::localserver::current_user_name();
    let mut all = postgresql_common(&roots.etc_postgresql, None, &machine, me.as_deref());
    all.extend(homebrew(&roots.homebrew_var));
    if let Some(app) = &roots.postgres_app {
        all.extend(postgres_app(app));
    }
    all
}

/// Every cluster installed on this machine. Runs `pg_lsclusters` and, where systemd runs,
/// `systemctl`; each bounded by what those tools do (they read files, they do not wait).
pub fn discover() -> Vec<Installed> {
    let machine = Machine::detect();
    let roots = Roots::of_this_machine();
    let lsclusters = run_tool("pg_lsclusters", &["--no-header"]);
    let me = crate::localserver::current_user_name();
    let mut all = postgresql_common(
        &roots.etc_postgresql,
        lsclusters.as_deref(),
        &machine,
        me.as_deref(),
    );
    all.extend(homebrew(&roots.homebrew_var));
    if let Some(app) = &roots.postgres_app {
        all.extend(postgres_app(app));
    }
    if machine.systemd {
        let names = run_tool(
            "systemctl",
            &[
                "list-units",
                "--all",
                "--plain",
                "--no-legend",
                "--type=service",
                "postgresql*",
            ],
        )
        .unwrap_or_default();
        let units: Vec<&str> = names
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        if !units.is_empty() {
            let mut args = vec!["show", "-p", "Id,ActiveState,User,Environment"];
            args.extend(units);
            let shown = run_tool("systemctl", &args).unwrap_or_default();
            all.extend(systemd_units(&parse_systemctl_show(&shown), &machine));
        }
    }
    // `pg_lsclusters` prints nothing at all when one cluster's configuration is broken (a
    // data folder removed by hand: "Error: Invalid data directory for cluster 15 old", exit
    // 1), and then every cluster's state would be unknown and `--start-server installed`
    // would start none. Ask each cluster itself instead.
    for cluster in &mut all {
        if cluster.source == Source::PostgresqlCommon && cluster.state == State::Unknown {
            cluster.state = own_state(cluster);
        }
    }
    all
}

/// A cluster's state without `pg_lsclusters`: its `postmaster.pid` where this user may read
/// the data folder, else whether its socket accepts a connection.
fn own_state(cluster: &Installed) -> State {
    match pid_file_state(&cluster.data_dir) {
        State::Unknown => match &cluster.socket_dir {
            Some(dir) => socket_state(dir, cluster.port),
            None => State::Unknown,
        },
        known => known,
    }
}

/// Running when the socket accepts a connection (closed at once, before any message); down
/// when there is no socket file or nothing listens on it (a crash leaves the file behind).
fn socket_state(dir: &Path, port: u16) -> State {
    match std::os::unix::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))) {
        Ok(_) => State::Online,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            State::Down
        }
        Err(_) => State::Unknown,
    }
}

/// The clusters configured for `port`.
pub fn configured_for(all: &[Installed], port: u16) -> Vec<&Installed> {
    all.iter().filter(|c| c.port == port).collect()
}

/// Start a cluster with its own command; the combined output when it fails.
pub async fn start(cluster: &Installed) -> Result<(), String> {
    let (program, args) = cluster
        .start
        .argv
        .split_first()
        .ok_or_else(|| "no start command".to_string())?;
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(text.trim().to_string())
    }
}

/// Start a cluster and wait, at most `wait`, until it answers on its socket (`pg_ctlcluster`
/// waits itself; `brew services` and `systemctl` return before the server is ready).
pub async fn start_and_wait(cluster: &Installed, wait: Duration) -> Result<(), String> {
    start(cluster).await?;
    let Some(dir) = &cluster.socket_dir else {
        return Ok(());
    };
    let endpoint = Endpoint {
        host: Host::Socket(dir.clone()),
        port: cluster.port,
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bound = left
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(100));
        if matches!(
            probe::probe(&endpoint, bound).await,
            Answer::Postgres { .. }
        ) {
            return Ok(());
        }
        if left.is_zero() {
            return Err(format!(
                "`{}` ran, but nothing answers on {endpoint} after {} s",
                cluster.start,
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100).min(left)).await;
    }
}

/// The clusters that are installed but not running.
pub fn down(all: &[Installed]) -> Vec<&Installed> {
    all.iter().filter(|c| c.state == State::Down).collect()
}

/// When PostgreSQL is installed but no cluster runs: what to say instead of "install
/// PostgreSQL". One line per down cluster, with the command that starts it on this machine.
pub fn start_advice(all: &[Installed]) -> Option<String> {
    let down = down(all);
    if down.is_empty() {
        return None;
    }
    let lines: Vec<String> = down
        .iter()
        .map(|c| {
            let how = if c.start.needs_root {
                format!("as root (or its owner), `{}`", c.start)
            } else {
                format!("`{}`", c.start)
            };
            format!(
                "{} is installed but not running; start it: {how}",
                c.describe()
            )
        })
        .collect();
    Some(lines.join("\n"))
}

fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    let path = which::which(program).ok()?;
    let out = std::process::Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sorted_dirs(parent: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_pg_version(data: &Path) -> Option<String> {
    let text = fs::read_to_string(data.join("PG_VERSION")).ok()?;
    Some(text.trim().to_string()).filter(|v| !v.is_empty())
}

/// Running when `postmaster.pid` names a live process; down when there is no such file.
fn pid_file_state(data: &Path) -> State {
    match fs::read_to_string(data.join("postmaster.pid")) {
        Ok(text) => match text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        {
            // SAFETY: signal 0 only checks that the process exists.
            Some(pid) if unsafe { libc::kill(pid, 0) } == 0 => State::Online,
            Some(_) => State::Down,
            None => State::Unknown,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::Down,
        Err(_) => State::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_NO_SYSTEMD: Machine = Machine {
        root: true,
        sudo: false,
        systemd: false,
    };

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn conf_lines_are_read_as_postgresql_reads_them() {
        assert_eq!(
            parse_conf_line("port = 5433\t\t\t\t# (change requires restart)"),
            Some(("port".into(), "5433".into()))
        );
        assert_eq!(
            parse_conf_line("unix_socket_directories = '/var/run/postgresql'\t# comma"),
            Some((
                "unix_socket_directories".into(),
                "/var/run/postgresql".into()
            ))
        );
        assert_eq!(
            parse_conf_line("Port 6000"),
            Some(("port".into(), "6000".into()))
        );
        assert_eq!(
            parse_conf_line("data_directory = 'it''s # here'"),
            Some(("data_directory".into(), "it's # here".into()))
        );
        assert_eq!(parse_conf_line("#port = 5432"), None);
        assert_eq!(parse_conf_line("   "), None);
    }

    #[test]
    fn conf_d_overrides_the_main_file_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("postgresql.conf");
        write(
            &conf,
            "port = 5432\nunix_socket_directories = '/var/run/postgresql'\nexternal_pid_file = '/var/run/postgresql/15-main.pid'\ninclude_dir = 'conf.d'\n",
        );
        write(&dir.path().join("conf.d/10-port.conf"), "port = 5440\n");
        write(&dir.path().join("conf.d/20-port.conf"), "port = 5441\n");
        write(&dir.path().join("conf.d/.hidden.conf"), "port = 1\n");
        write(&dir.path().join("conf.d/notes.txt"), "port = 2\n");
        let s = read_settings(&conf);
        assert_eq!(s.port, Some(5441));
        assert_eq!(
            s.external_pid_file.as_deref(),
            Some(Path::new("/var/run/postgresql/15-main.pid"))
        );
        assert_eq!(
            s.socket_dir(DEBIAN_SOCKET_DIR, Path::new("/data")),
            PathBuf::from("/var/run/postgresql")
        );
    }

    #[test]
    fn a_relative_socket_folder_is_under_the_data_folder() {
        let s = Settings {
            unix_socket_directories: Some(" ., /tmp".into()),
            ..Settings::default()
        };
        assert_eq!(
            s.socket_dir("/x", Path::new("/srv/data")),
            PathBuf::from("/srv/data/.")
        );
    }

    #[test]
    fn lsclusters_rows_are_parsed_and_other_lines_skipped() {
        let text = "Ver Cluster Port Status Owner    Data directory              Log file\n\
                    15  main    5432 down   postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n\
                    16  test    5433 online,recovery postgres /srv/16/test /var/log/x.log\n";
        let rows = parse_lsclusters(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "main");
        assert_eq!(rows[0].port, 5432);
        assert_eq!(rows[0].status, "down");
        assert_eq!(rows[1].data_dir, PathBuf::from("/srv/16/test"));
    }

    #[test]
    fn the_start_command_follows_this_machines_rules() {
        let root = ROOT_NO_SYSTEMD;
        assert_eq!(
            postgresql_common_start(&root, "15", "main", false).to_string(),
            "pg_ctlcluster 15 main start"
        );
        let user_with_sudo = Machine {
            root: false,
            sudo: true,
            systemd: false,
        };
        assert_eq!(
            postgresql_common_start(&user_with_sudo, "15", "main", false).to_string(),
            "sudo pg_ctlcluster 15 main start"
        );
        let owner = postgresql_common_start(&user_with_sudo, "15", "main", true);
        assert_eq!(owner.to_string(), "pg_ctlcluster 15 main start");
        let user_no_sudo = Machine {
            root: false,
            sudo: false,
            systemd: false,
        };
        let plain = postgresql_common_start(&user_no_sudo, "15", "main", false);
        assert_eq!(plain.to_string(), "pg_ctlcluster 15 main start");
        assert!(plain.needs_root);
        let systemd = Machine {
            root: false,
            sudo: true,
            systemd: true,
        };
        assert_eq!(
            postgresql_common_start(&systemd, "15", "main", false).to_string(),
            "sudo systemctl start postgresql@15-main"
        );
    }

    #[test]
    fn postgresql_common_clusters_come_from_etc_with_their_status() {
        let etc = tempfile::tempdir().unwrap();
        write(
            &etc.path().join("15/main/postgresql.conf"),
            "data_directory = '/var/lib/postgresql/15/main'\nport = 5432\ninclude_dir = 'conf.d'\n",
        );
        write(
            &etc.path().join("15/main/conf.d/port.conf"),
            "port = 5434\n",
        );
        write(&etc.path().join("16/other/pg_hba.conf"), "");
        let ls = "15 main 5434 down postgres /var/lib/postgresql/15/main /var/log/x.log\n";
        let found = postgresql_common(etc.path(), Some(ls), &ROOT_NO_SYSTEMD, Some("root"));
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!((c.version.as_str(), c.name.as_str()), ("15", "main"));
        assert_eq!(c.port, 5434);
        assert_eq!(c.state, State::Down);
        assert_eq!(c.owner.as_deref(), Some("postgres"));
        assert_eq!(c.socket_dir, Some(PathBuf::from("/var/run/postgresql")));
        assert_eq!(c.start.to_string(), "pg_ctlcluster 15 main start");
        let unknown = postgresql_common(etc.path(), None, &ROOT_NO_SYSTEMD, None);
        assert_eq!(unknown[0].state, State::Unknown);
    }

    /// With no pg_lsclusters row (it prints nothing while any cluster's configuration is
    /// broken) the owner is still the data folder's, as pg_lsclusters itself reports it.
    #[test]
    fn without_pg_lsclusters_the_owner_is_the_data_folders() {
        let etc = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        write(
            &etc.path().join("15/main/postgresql.conf"),
            &format!("data_directory = '{}'\n", data.path().display()),
        );
        let found = postgresql_common(etc.path(), None, &ROOT_NO_SYSTEMD, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].owner.is_some(), "{found:?}");
        assert_eq!(found[0].owner, crate::localserver::current_user_name());
    }

    #[test]
    fn a_clusters_own_socket_says_whether_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            socket_state(dir.path(), 5999),
            State::Down,
            "no socket file"
        );
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join(".s.PGSQL.5999")).unwrap();
        assert_eq!(socket_state(dir.path(), 5999), State::Online);
        // A crashed server leaves its socket file: nothing listens there.
        drop(listener);
        assert_eq!(
            socket_state(dir.path(), 5999),
            State::Down,
            "stale socket file"
        );
    }

    #[test]
    fn advice_names_each_down_cluster_with_its_command() {
        let etc = tempfile::tempdir().unwrap();
        write(&etc.path().join("15/main/postgresql.conf"), "port = 5432\n");
        write(&etc.path().join("16/web/postgresql.conf"), "port = 5433\n");
        let ls = "15 main 5432 down postgres /var/lib/postgresql/15/main x\n16 web 5433 online postgres /var/lib/postgresql/16/web x\n";
        let no_sudo = Machine {
            root: false,
            sudo: false,
            systemd: false,
        };
        let all = postgresql_common(etc.path(), Some(ls), &no_sudo, Some("dev1"));
        assert_eq!(
            start_advice(&all).unwrap(),
            "PostgreSQL cluster 15/main (postgresql-common, port 5432, down) is installed but not running; start it: as root (or its owner), `pg_ctlcluster 15 main start`"
        );
        assert_eq!(start_advice(&all[1..]), None);
    }

    // Homebrew and Postgres.app cannot exist on this Linux machine: these fixture trees are
    // laid out as they are on macOS (data folder with PG_VERSION and postgresql.conf).
    #[test]
    fn homebrew_data_folders_are_found_with_their_formula() {
        let var = tempfile::tempdir().unwrap();
        write(&var.path().join("postgresql@16/PG_VERSION"), "16\n");
        write(
            &var.path().join("postgresql@16/postgresql.conf"),
            "port = 5433\n",
        );
        write(&var.path().join("postgres/PG_VERSION"), "14\n");
        write(&var.path().join("redis/dump.rdb"), "");
        let found = homebrew(&[var.path().to_path_buf()]);
        assert_eq!(found.len(), 2, "{found:?}");
        let v16 = found.iter().find(|c| c.version == "16").unwrap();
        assert_eq!(v16.port, 5433);
        assert_eq!(v16.state, State::Down);
        assert_eq!(v16.socket_dir, Some(PathBuf::from("/tmp")));
        assert_eq!(v16.start.to_string(), "brew services start postgresql@16");
        let old = found.iter().find(|c| c.version == "14").unwrap();
        assert_eq!(old.start.to_string(), "brew services start postgresql");
        assert_eq!(old.port, DEFAULT_PORT);
    }

    #[test]
    fn postgres_app_data_folders_are_found_with_the_apps_pg_ctl() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("var-17/PG_VERSION"), "17\n");
        write(&root.path().join("var-17/postgresql.conf"), "#port = 1\n");
        write(&root.path().join("var-x/notes"), "");
        let found = postgres_app(root.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].port, 5432);
        assert!(
            found[0].start.to_string().starts_with(
                "/Applications/Postgres.app/Contents/Versions/17/bin/pg_ctl start -D "
            ),
            "{}",
            found[0].start
        );
    }

    // systemd does not run on this machine (no /run/systemd/system): `systemctl show` output
    // as Fedora's postgresql.service prints it.
    #[test]
    fn systemd_units_name_their_data_folder_through_pgdata() {
        let data = tempfile::tempdir().unwrap();
        write(&data.path().join("PG_VERSION"), "16\n");
        write(&data.path().join("postgresql.conf"), "port = 5435\n");
        let shown = format!(
            "Id=postgresql.service\nActiveState=inactive\nUser=postgres\nEnvironment=PGDATA={} PGPORT=5432\n\nId=postgresql@15-main.service\nActiveState=active\nUser=\nEnvironment=\n",
            data.path().display()
        );
        let units = parse_systemctl_show(&shown);
        assert_eq!(units.len(), 2);
        let user = Machine {
            root: false,
            sudo: true,
            systemd: true,
        };
        let found = systemd_units(&units, &user);
        assert_eq!(found.len(), 1, "postgresql-common's own unit is left out");
        assert_eq!(found[0].port, 5435);
        assert_eq!(found[0].state, State::Down);
        assert_eq!(
            found[0].start.to_string(),
            "sudo systemctl start postgresql"
        );
    }
}
