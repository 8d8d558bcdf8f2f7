//! Real PostgreSQL clusters for the integration tests, each with its own port, socket
//! directory, data directory and log.
//!
//! Speed comes from running `initdb` once per test process into a template and copying it
//! (`cp -a`, about 0.1 s) for each cluster, then starting `postgres` directly and watching the
//! status line of `postmaster.pid` (what `pg_ctl -w` watches) rather than polling with clients.
//! Stopping is SIGQUIT, PostgreSQL's immediate shutdown, which is what
//! `pg_ctl stop -m immediate` sends. Settings go into `harness.conf`, which the template's
//! `postgresql.conf` includes, so a restart keeps them.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::bins::bins;
use super::cleanup::{Watchdog, process_dir, scratch_root};
use super::privileges::{give_to_server_user, run_as_server_user};
use super::tls::test_certs;

/// How long a start may take before the harness gives up and shows the server log.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);
const SUPERUSER: &str = "postgres";

/// How clients authenticate, for every `local` and `host` line of the generated `pg_hba.conf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Trust,
    Scram,
}

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub auth: Auth,
    /// Replaces every line of `pg_hba.conf` when `Some`; `auth` is then unused. Include a
    /// `local` line for the superuser if the test uses [`Cluster::psql`].
    pub hba: Option<Vec<String>>,
    /// `ssl=on` with the test certificate (see [`Cluster::ssl_ca`]).
    pub ssl: bool,
    /// Server settings, applied after the harness's own (so they win), e.g.
    /// `("max_connections", "5")` or `("log_statement", "all")`.
    pub settings: Vec<(String, String)>,
    /// Environment variables for the postmaster (it starts with an empty environment), e.g.
    /// `OPENSSL_CONF` for the TLS verdict tests' server.
    pub server_env: Vec<(String, String)>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            auth: Auth::Scram,
            hba: None,
            ssl: false,
            settings: Vec::new(),
            server_env: Vec::new(),
        }
    }
}

impl ClusterConfig {
    /// Adds one server setting: `ClusterConfig::default().set("max_connections", "5")`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running PostgreSQL server owned by one test (or shared, see `support::shared`).
///
/// Dropping it stops the server and removes every file it had. If the test process dies
/// first, a watchdog does the same within moments.
#[derive(Debug)]
pub struct Cluster {
    /// TCP port on 127.0.0.1; also the suffix of the socket file in `socket_dir`.
    pub port: u16,
    pub socket_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The server log (stderr of the postmaster; `logging_collector` is off).
    pub log_file: PathBuf,
    /// Always `postgres`.
    pub superuser: String,
    /// The superuser's password: the same for every cluster of a test process, URL-safe.
    pub password: String,
    /// The CA certificate (PEM) that signed the server certificate, when `ssl` is on.
    pub ssl_ca: Option<PathBuf>,
    postmaster: Mutex<Option<Child>>,
    server_env: Vec<(String, String)>,
    watchdog: Option<Watchdog>,
    base: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts a new cluster from the process's template. Panics with the server log if it does
    /// not come up within 30 s.
    pub fn start(cfg: ClusterConfig) -> Cluster {
        let template = template();
        Cluster::start_with_data(cfg, |data_dir| copy_dir(&template.data_dir, data_dir))
    }

    /// Like [`Cluster::start`], with the data directory made by `fill` (which must create it,
    /// owned by the server user) instead of copied from the template: a standby's
    /// `pg_basebackup`. The harness's `pg_hba.conf` and `harness.conf` are written over what
    /// `fill` left, and `harness.conf` must be included by its `postgresql.conf`.
    pub fn start_with_data(cfg: ClusterConfig, fill: impl FnOnce(&Path)) -> Cluster {
        let template = template();
        let base = tempfile::Builder::new()
            .prefix("aksara-pg-")
            .tempdir_in(scratch_root())
            .expect("create a cluster directory");
        let data_dir = base.path().join("data");
        let watchdog = Watchdog::arm(base.path(), Some(&data_dir));
        give_to_server_user(base.path(), 0o755);

        fill(&data_dir);
        let socket_dir = base.path().join("sock");
        fs::create_dir(&socket_dir).expect("create the socket directory");
        give_to_server_user(&socket_dir, 0o755);
        let log_file = base.path().join("server.log");
        File::create(&log_file).expect("create the server log");
        give_to_server_user(&log_file, 0o644);

        let ssl_ca = cfg.ssl.then(|| install_certs(&base.path().join("ssl")));
        write_server_file(&data_dir.join("pg_hba.conf"), &hba_conf(&cfg));

        let mut cluster = Cluster {
            port: 0,
            socket_dir,
            data_dir,
            log_file,
            superuser: SUPERUSER.to_owned(),
            password: template.password.clone(),
            ssl_ca,
            postmaster: Mutex::new(None),
            server_env: cfg.server_env.clone(),
            watchdog: Some(watchdog),
            base: Some(base),
        };
        let mut last_error = String::new();
        for _ in 0..3 {
            cluster.port = free_port();
            write_server_file(
                &cluster.data_dir.join("harness.conf"),
                &cluster.server_conf(&cfg),
            );
            match cluster.launch() {
                Ok(()) => return cluster,
                Err(Launch::PortTaken(log)) => last_error = log,
                Err(Launch::Failed(log)) => {
                    panic!("PostgreSQL did not start:\n{log}")
                }
            }
        }
        panic!("PostgreSQL could not bind a free port in 3 tries:\n{last_error}")
    }

    /// `postgresql://postgres:<password>@127.0.0.1:<port>/postgres`
    pub fn admin_url(&self) -> String {
        self.url(&self.superuser, Some(&self.password), "postgres")
    }

    /// A TCP URL to 127.0.0.1, every part percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        let password = password.map_or(String::new(), |pw| format!(":{}", encode(pw)));
        format!(
            "postgresql://{}{password}@127.0.0.1:{}/{}",
            encode(user),
            self.port,
            encode(db)
        )
    }

    /// `postgresql:///<db>?host=<socket_dir>&port=<port>&user=<user>`
    pub fn socket_url(&self, user: &str, db: &str) -> String {
        format!(
            "postgresql:///{}?host={}&port={}&user={}",
            encode(db),
            encode_path(&self.socket_dir),
            self.port,
            encode(user)
        )
    }

    /// Runs SQL with the real `psql` as the superuser over the socket and returns its output,
    /// trimmed (`-X -A -t -q -v ON_ERROR_STOP=1`: one line per row, columns joined by `|`).
    /// Statements run one by one, so `CREATE DATABASE` may follow other statements.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|err| panic!("psql on database `{db}` failed: {err}\nSQL: {sql}"))
    }

    /// Like [`Cluster::psql`], with psql's stderr as the error.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut child = self
            .psql_command(db, "aksara-test-harness")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not run psql: {e}"))?;
        let mut stdin = child.stdin.take().expect("psql stdin");
        let script = sql.to_owned();
        // Written from a thread so a large result cannot deadlock against a large script.
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
            let _ = stdin.write_all(b"\n");
        });
        let out = child.wait_with_output().map_err(|e| format!("psql: {e}"))?;
        let _ = writer.join();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ))
        }
    }

    /// Everything the server has logged so far, across restarts.
    pub fn log_contents(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_file).unwrap_or_default()).into_owned()
    }

    /// Whether the postmaster is running (not stopped by [`Cluster::stop_immediate`] or killed).
    pub fn is_running(&self) -> bool {
        let mut postmaster = self
            .postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match postmaster.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server at once, as `pg_ctl stop -m immediate` does; returns when it has
    /// exited and the port is closed. Does nothing if it is already stopped.
    pub fn stop_immediate(&self) {
        let child = self
            .postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = child {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
    }

    /// Begins a smart shutdown (SIGTERM, what `pg_ctl stop -m smart` sends) and returns at
    /// once: while a client stays connected the server refuses new connections with 57P03
    /// "the database system is shutting down".
    pub fn begin_smart_shutdown(&self) {
        let pid = self
            .postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|child| child.id());
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Starts the server again on the same port after [`Cluster::stop_immediate`].
    pub fn start_again(&self) {
        assert!(!self.is_running(), "start_again: the cluster is running");
        match self.launch() {
            Ok(()) => {}
            Err(Launch::PortTaken(log) | Launch::Failed(log)) => {
                panic!(
                    "PostgreSQL did not start again on port {}:\n{log}",
                    self.port
                )
            }
        }
    }

    /// Opens `n` idle superuser connections (real `psql` processes over the socket) and keeps
    /// them until the guard is dropped, which closes them and waits until the server has let
    /// their slots go. For "too many connections" tests: with `max_connections=5`, holding 2
    /// leaves no slot for ordinary roles (3 are reserved for superusers), holding 5 leaves none
    /// at all.
    pub fn hold_connections(&self, n: usize) -> HeldConnections<'_> {
        let marker = format!("aksara-held-{}", super::unique_name("c"));
        let mut held = HeldConnections {
            cluster: self,
            marker,
            sessions: Vec::with_capacity(n),
        };
        for i in 0..n {
            let mut child = self
                .psql_command("postgres", &held.marker)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn psql to hold a connection");
            let mut stdin = child.stdin.take().expect("psql stdin");
            let mut stdout = BufReader::new(child.stdout.take().expect("psql stdout"));
            // psql flushes after each result, so the answer proves the session is connected.
            let _ = stdin.write_all(b"select 'held';\n");
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            if line.trim() != "held" {
                drop(stdin);
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                panic!(
                    "could not hold connection {} of {n}: {}",
                    i + 1,
                    stderr.trim()
                );
            }
            held.sessions.push(HeldSession {
                child,
                stdin: Some(stdin),
                _stdout: stdout,
            });
        }
        held
    }

    fn psql_command(&self, db: &str, application_name: &str) -> Command {
        let mut cmd = Command::new(&bins().psql);
        clear_pg_env(&mut cmd);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .env("PGHOST", &self.socket_dir)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.superuser)
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", db)
            .env("PGAPPNAME", application_name)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGCLIENTENCODING", "UTF8")
            .env("LC_ALL", "C");
        cmd
    }

    fn server_conf(&self, cfg: &ClusterConfig) -> String {
        let mut settings: Vec<(String, String)> = [
            ("listen_addresses", "127.0.0.1".to_owned()),
            ("port", self.port.to_string()),
            (
                "unix_socket_directories",
                self.socket_dir.display().to_string(),
            ),
            ("logging_collector", "off".to_owned()),
            ("fsync", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("shared_buffers", "16MB".to_owned()),
            // Keeps connection counts exact for the tests that count them.
            ("autovacuum", "off".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        if let Some(ssl_dir) = self.ssl_ca.as_ref().and_then(|ca| ca.parent()) {
            settings.push(("ssl".to_owned(), "on".to_owned()));
            for (name, file) in [
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ] {
                settings.push((name.to_owned(), ssl_dir.join(file).display().to_string()));
            }
        }
        settings.extend(cfg.settings.iter().cloned());
        let mut conf = String::from("# Written by the aksara test harness for this cluster.\n");
        for (name, value) in &settings {
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
                "invalid setting name `{name}`"
            );
            let value = value.replace('\\', "\\\\").replace('\'', "''");
            let _ = writeln!(conf, "{name} = '{value}'");
        }
        conf
    }

    /// Spawns the postmaster and waits until `postmaster.pid` says it is ready.
    fn launch(&self) -> Result<(), Launch> {
        let log_start = fs::metadata(&self.log_file).map_or(0, |m| m.len());
        let log = OpenOptions::new()
            .append(true)
            .open(&self.log_file)
            .expect("open the server log");
        let mut cmd = Command::new(&bins().postgres);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .env_clear()
            .env("LC_ALL", "C")
            .current_dir(self.data_dir.parent().expect("cluster directory"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            // Like pg_ctl: a Ctrl-C aimed at the test run is not the server's business; the
            // watchdog stops it.
            .process_group(0);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(self.server_env.iter().map(|(k, v)| (k, v)));
        run_as_server_user(&mut cmd);
        let mut child = cmd.spawn().expect("spawn postgres");
        let pid = child.id().to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.data_dir.join("postmaster.pid");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.log_since(log_start);
                let log = format!("postgres exited ({status}); its log:\n{log}");
                return Err(if log.contains("Address already in use") {
                    Launch::PortTaken(log)
                } else {
                    Launch::Failed(log)
                });
            }
            // Line 1 is the pid, line 8 the status: "starting", "ready" or "stopping".
            if let Ok(text) = fs::read_to_string(&pid_file) {
                let lines: Vec<&str> = text.lines().collect();
                if lines.first() == Some(&pid.as_str())
                    && lines.get(7).is_some_and(|s| s.trim() == "ready")
                {
                    *self
                        .postmaster
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Launch::Failed(format!(
                    "not ready after {START_TIMEOUT:?}; its log:\n{}",
                    self.log_since(log_start)
                )));
            }
            thread::sleep(POLL);
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let log = fs::read(&self.log_file).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(0).min(log.len());
        let text = String::from_utf8_lossy(&log[start..]);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_immediate();
        if let Some(base) = self.base.take() {
            let _ = base.close();
        }
        // Its cleanup now finds nothing left to do.
        drop(self.watchdog.take());
    }
}

enum Launch {
    PortTaken(String),
    Failed(String),
}

/// Connections held open by [`Cluster::hold_connections`]; dropping closes them.
#[derive(Debug)]
pub struct HeldConnections<'a> {
    cluster: &'a Cluster,
    marker: String,
    sessions: Vec<HeldSession>,
}

#[derive(Debug)]
struct HeldSession {
    child: Child,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
}

impl HeldConnections<'_> {
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

impl Drop for HeldConnections<'_> {
    fn drop(&mut self) {
        for session in &mut self.sessions {
            // End of input makes psql say goodbye to the server and exit.
            drop(session.stdin.take());
        }
        for session in &mut self.sessions {
            let _ = session.child.wait();
        }
        if self.sessions.is_empty() || !self.cluster.is_running() {
            return;
        }
        // Backends exit just after their client; wait so the next connect finds the slots free.
        let sql = format!(
            "select count(*) from pg_stat_activity where application_name = '{}'",
            self.marker
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.cluster.is_running() {
            if self.cluster.try_psql("postgres", &sql).as_deref() == Ok("0") {
                return;
            }
            thread::sleep(POLL);
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed out
/// before (so a stopped cluster's port is not given to another cluster).
pub fn free_port() -> u16 {
    static ISSUED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut issued = ISSUED.lock().unwrap_or_else(PoisonError::into_inner);
    let issued = issued.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        if issued.insert(port) {
            return port;
        }
    }
}

/// `initdb`, once per test process; every cluster starts from a copy.
struct Template {
    data_dir: PathBuf,
    password: String,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = process_dir().join("template");
        fs::create_dir(&dir).expect("create the template directory");
        give_to_server_user(&dir, 0o700);
        let password = random_password();
        let pwfile = dir.join("pwfile");
        fs::write(&pwfile, format!("{password}\n")).expect("write the password file");
        give_to_server_user(&pwfile, 0o600);
        let data_dir = dir.join("data");
        let mut cmd = Command::new(&bins().initdb);
        cmd.arg("-D")
            .arg(&data_dir)
            .args(["-U", SUPERUSER, "--auth=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            // UTF8 with C collation: deterministic, and server messages in English.
            .args(["--locale=C", "--encoding=UTF8", "--no-sync"])
            // 1 MB WAL segments instead of 16 MB: less to copy per cluster.
            .arg("--wal-segsize=1")
            .env_clear()
            .env("LC_ALL", "C")
            .current_dir(&dir);
        run_as_server_user(&mut cmd);
        let out = cmd.output().expect("run initdb");
        let _ = fs::remove_file(&pwfile);
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = data_dir.join("postgresql.conf");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&conf)
            .expect("open the template's postgresql.conf");
        file.write_all(
            b"\n# Per-cluster settings from the aksara test harness.\ninclude = 'harness.conf'\n",
        )
        .expect("extend the template's postgresql.conf");
        Template { data_dir, password }
    })
}

/// 24 alphanumeric characters from /dev/urandom: URL-safe and free of shell or SQL quoting.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 24];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    // `cp -a` keeps the server user's ownership and the 0700 mode the server insists on.
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {} failed",
        from.display(),
        to.display()
    );
}

/// Copies the process's certificates into `dir`, readable by the tests and owned by the server
/// user; the key is 0600 because the server refuses a key others can read. Returns the CA path.
fn install_certs(dir: &Path) -> PathBuf {
    let certs = test_certs();
    fs::create_dir(dir).expect("create the ssl directory");
    give_to_server_user(dir, 0o755);
    for (from, name, mode) in [
        (&certs.ca_cert, "ca.crt", 0o644),
        (&certs.server_cert, "server.crt", 0o644),
        (&certs.server_key, "server.key", 0o600),
    ] {
        let to = dir.join(name);
        fs::copy(from, &to).expect("copy a certificate");
        give_to_server_user(&to, mode);
    }
    dir.join("ca.crt")
}

fn write_server_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    give_to_server_user(path, 0o600);
}

fn hba_conf(cfg: &ClusterConfig) -> String {
    let lines = cfg.hba.clone().unwrap_or_else(|| {
        let method = match cfg.auth {
            Auth::Trust => "trust",
            Auth::Scram => "scram-sha-256",
        };
        vec![
            format!("local all all {method}"),
            format!("host all all 127.0.0.1/32 {method}"),
            format!("host all all ::1/128 {method}"),
        ]
    });
    let mut conf = lines.join("\n");
    conf.push('\n');
    conf
}

/// Removes every `PG*` variable a developer's shell may have set, so it cannot redirect psql.
pub fn clear_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"PG") {
            cmd.env_remove(key);
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
/// A TCP URL to 127.0.0.1:`port` (a pooler in front of a cluster), every part percent-encoded.
pub fn loopback_url(port: u16, user: &str, password: Option<&str>, db: &str) -> String {
    let password = password.map_or(String::new(), |pw| format!(":{}", encode(pw)));
    format!(
        "postgresql://{}{password}@127.0.0.1:{port}/{}",
        encode(user),
        encode(db)
    )
}

pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn encode_path(path: &Path) -> String {
    path.display()
        .to_string()
        .split('/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/")
}
