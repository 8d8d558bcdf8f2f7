//! Real PgBouncer in front of a harness cluster, in session, transaction or statement mode.
//!
//! Each PgBouncer gets a free port on 127.0.0.1, a private folder for its config, log, pid file
//! and unix socket, and a watchdog (see `cleanup`) that stops it and removes the folder however
//! the test process ends. As root it runs as the `postgres` user (PgBouncer refuses root too).
//!
//! Authentication works with the harness's SCRAM users without knowing their passwords: the
//! `auth_file` holds the superuser's SCRAM secret (read from `pg_authid`), `auth_user` is the
//! superuser, and every other role is looked up with PgBouncer's default `auth_query`. PgBouncer
//! ≥ 1.14 logs in to the server with the client's SCRAM proof when it has a secret, not a
//! password. The admin console (`dbname=pgbouncer`) accepts [`ADMIN_USER`] with its own
//! password, listed in `admin_users`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::cleanup::{Watchdog, scratch_root};
use super::cluster::{Cluster, clear_pg_env, free_port};
use super::privileges::{give_to_server_user, run_as_server_user};
use super::{Shared, bins, shared};

/// The admin console's user; it exists only in PgBouncer's `auth_file`.
pub const ADMIN_USER: &str = "pgb_admin";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// PgBouncer's `pool_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
    Statement,
}

impl PoolMode {
    pub const ALL: [PoolMode; 3] = [
        PoolMode::Session,
        PoolMode::Transaction,
        PoolMode::Statement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PgBouncerConfig {
    pub mode: PoolMode,
    /// Lines of `[databases]`; `None` is one `*` line forwarding every database to the cluster.
    /// `{server}` in a line becomes `host=<socket dir> port=<port>` of the cluster.
    pub databases: Option<Vec<String>>,
    /// More `[pgbouncer]` settings, after the harness's own (later lines win).
    pub settings: Vec<(String, String)>,
    /// TLS for its clients (`client_tls_sslmode = allow`) with the harness's server
    /// certificate; to the cluster it goes over the socket, without TLS.
    pub client_tls: bool,
    /// The superuser's auth_file line as this plaintext password (what md5 to clients needs, or
    /// a stale one), not the SCRAM secret `pg_authid` holds.
    pub auth_file_password: Option<String>,
}

impl PgBouncerConfig {
    pub fn new(mode: PoolMode) -> PgBouncerConfig {
        PgBouncerConfig {
            mode,
            databases: None,
            settings: Vec::new(),
            client_tls: false,
            auth_file_password: None,
        }
    }

    pub fn auth_file_password(mut self, password: &str) -> Self {
        self.auth_file_password = Some(password.to_owned());
        self
    }

    pub fn client_tls(mut self) -> Self {
        self.client_tls = true;
        self
    }

    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn databases(mut self, lines: &[&str]) -> Self {
        self.databases = Some(lines.iter().map(|l| (*l).to_owned()).collect());
        self
    }
}

/// A running PgBouncer; dropping it stops it and removes its folder.
#[derive(Debug)]
pub struct PgBouncer {
    pub port: u16,
    pub mode: PoolMode,
    pub dir: PathBuf,
    pub log_file: PathBuf,
    pub admin_password: String,
    child: Mutex<Option<Child>>,
    watchdog: Option<Watchdog>,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `cluster`; panics with its log if it does not come up.
    pub fn start(cluster: &Cluster, cfg: PgBouncerConfig) -> PgBouncer {
        let dir = tempfile::Builder::new()
            .prefix("aksara-pgb-")
            .tempdir_in(scratch_root())
            .expect("create a PgBouncer directory")
            .keep();
        let pid_file = dir.join("pgbouncer.pid");
        let watchdog = Watchdog::arm_with_pid_file(&dir, &pid_file);
        give_to_server_user(&dir, 0o755);
        let socket_dir = dir.join("sock");
        fs::create_dir(&socket_dir).expect("create PgBouncer's socket directory");
        give_to_server_user(&socket_dir, 0o755);
        let log_file = dir.join("pgbouncer.log");
        let admin_password = format!("adm{}", cluster.password);
        let secret = if let Some(password) = &cfg.auth_file_password {
            password.clone()
        } else {
            cluster.psql(
                "postgres",
                "select rolpassword from pg_authid where rolname = 'postgres'",
            )
        };
        let users = format!(
            "\"{}\" \"{secret}\"\n\"{ADMIN_USER}\" \"{admin_password}\"\n",
            cluster.superuser
        );
        write_private(&dir.join("users.txt"), &users);
        let mut cfg = cfg;
        if cfg.client_tls {
            let certs = super::tls::test_certs();
            for (name, from) in [("cert", &certs.server_cert), ("key", &certs.server_key)] {
                let to = dir.join(format!("client-tls.{name}"));
                let pem = fs::read_to_string(from).expect("read the harness's server certificate");
                write_private(&to, &pem);
                cfg = cfg.set(
                    &format!("client_tls_{name}_file"),
                    &to.display().to_string(),
                );
            }
            cfg = cfg.set("client_tls_sslmode", "allow");
        }

        let mut bouncer = PgBouncer {
            port: 0,
            mode: cfg.mode,
            dir,
            log_file,
            admin_password,
            child: Mutex::new(None),
            watchdog: Some(watchdog),
        };
        let mut last_log = String::new();
        for _ in 0..3 {
            bouncer.port = free_port();
            let ini = bouncer.ini(cluster, &cfg, &socket_dir, &pid_file);
            let ini_path = bouncer.dir.join("pgbouncer.ini");
            write_private(&ini_path, &ini);
            match bouncer.launch(&ini_path) {
                Ok(()) => return bouncer,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("PgBouncer did not start:\n{log}"),
            }
        }
        panic!("PgBouncer could not bind a free port in 3 tries:\n{last_log}")
    }

    fn ini(&self, cluster: &Cluster, cfg: &PgBouncerConfig, sock: &Path, pid: &Path) -> String {
        let server = format!(
            "host={} port={}",
            cluster.socket_dir.display(),
            cluster.port
        );
        let databases = cfg
            .databases
            .clone()
            .unwrap_or_else(|| vec!["* = {server}".to_owned()]);
        let mut ini = String::from("# Written by the aksara test harness.\n[databases]\n");
        for line in databases {
            ini.push_str(&line.replace("{server}", &server));
            ini.push('\n');
        }
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addr".into(), "127.0.0.1".into()),
            ("listen_port".into(), self.port.to_string()),
            ("unix_socket_dir".into(), sock.display().to_string()),
            ("pool_mode".into(), cfg.mode.as_str().into()),
            ("auth_type".into(), "scram-sha-256".into()),
            (
                "auth_file".into(),
                self.dir.join("users.txt").display().to_string(),
            ),
            ("auth_user".into(), cluster.superuser.clone()),
            ("admin_users".into(), ADMIN_USER.into()),
            ("logfile".into(), self.log_file.display().to_string()),
            ("pidfile".into(), pid.display().to_string()),
            // Tests start and stop servers behind it: retry a failed server login quickly.
            ("server_login_retry".into(), "1".into()),
        ];
        settings.extend(cfg.settings.iter().cloned());
        ini.push_str("[pgbouncer]\n");
        for (name, value) in settings {
            ini.push_str(&format!("{name} = {value}\n"));
        }
        ini
    }

    /// Runs it in the foreground (the watchdog and `Drop` stop it) and waits until it accepts
    /// connections on its port.
    fn launch(&self, ini: &Path) -> Result<(), String> {
        let mut cmd = Command::new(pgbouncer_binary());
        cmd.arg(ini)
            .env_clear()
            .env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        run_as_server_user(&mut cmd);
        let child = cmd.spawn().expect("spawn pgbouncer");
        let port = self.port;
        super::cleanup::wait_until_up(
            child,
            "pgbouncer",
            &self.log_file,
            START_TIMEOUT,
            &self.child,
            |log| log.contains("process up") && TcpStream::connect(("127.0.0.1", port)).is_ok(),
        )
    }

    /// A TCP URL through this PgBouncer, every part percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        super::cluster::loopback_url(self.port, user, password, db)
    }

    /// The superuser's URL through this PgBouncer to database `postgres`.
    pub fn admin_url(&self, cluster: &Cluster) -> String {
        self.url(&cluster.superuser, Some(&cluster.password), "postgres")
    }

    /// Runs one admin console command (`SHOW POOLS`, `RELOAD`) with the real psql.
    pub fn console(&self, command: &str) -> Result<String, String> {
        // The password in the environment, not in psql's argv.
        let url = self.url(ADMIN_USER, None, "pgbouncer");
        let mut cmd = Command::new(&bins().psql);
        clear_pg_env(&mut cmd);
        let out = cmd
            .args(["-X", "-q", "-A", "-t", "-c", command])
            .arg(url)
            .env("PGPASSWORD", &self.admin_password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(|e| format!("could not run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn log_contents(&self) -> String {
        super::cleanup::read_log(&self.log_file)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        super::cleanup::stop_child(&self.child, "-TERM");
        // Removes the folder.
        drop(self.watchdog.take());
    }
}

/// One PgBouncer per mode per test process, in front of the shared SCRAM cluster, for tests
/// that only read.
pub fn shared_pgbouncer(mode: PoolMode) -> &'static PgBouncer {
    static BOUNCERS: [OnceLock<PgBouncer>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = PoolMode::ALL
        .iter()
        .position(|m| *m == mode)
        .expect("a pool mode");
    BOUNCERS[slot]
        .get_or_init(|| PgBouncer::start(shared(Shared::Scram), PgBouncerConfig::new(mode)))
}

/// Debian installs it in /usr/sbin, which is not on every PATH.
fn pgbouncer_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let path = Path::new(dir).join("pgbouncer");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "the tests need PgBouncer and it is not installed\n\nhelp: `apt-get install pgbouncer` \
         (.ci/run installs it)"
    )
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    give_to_server_user(path, 0o600);
}
