//! Real pgpool-II (Debian's 4.3) in front of harness clusters, in streaming replication mode.
//!
//! Each pgpool gets a free port on 127.0.0.1, a private folder for its config, log, pid file,
//! status file and unix sockets, and a watchdog (see `cleanup`) that stops it and removes the
//! folder however the test process ends. As root it runs as the `postgres` user. It runs in the
//! foreground (`-n`), its log on stderr into `pgpool.log`; `Drop` sends SIGINT (its fast
//! shutdown).
//!
//! Authentication: the harness's clusters use SCRAM, and pgpool logs in to them with the
//! client's password, which it must know: `pool_passwd` holds each user pgpool serves as
//! `user:TEXTpassword` (the superuser's always; more with [`PgPoolConfig::user`]). Health and
//! replication checks are off (the tests start and stop servers under it and must not see a
//! failover), and so is pgpool's query cache (its shared memory is then 1.3 MB, not 134 MB).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::cleanup::{Watchdog, scratch_root};
use super::cluster::{Cluster, free_port};
use super::privileges::{give_to_server_user, run_as_server_user};
use super::{Shared, shared, shared_pair};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One backend: a cluster and its load-balance weight.
#[derive(Clone, Copy)]
pub struct Backend<'a> {
    pub cluster: &'a Cluster,
    pub weight: u32,
}

#[derive(Clone, Debug, Default)]
pub struct PgPoolConfig {
    /// More pgpool.conf settings, after the harness's own (later lines win).
    pub settings: Vec<(String, String)>,
    /// More `pool_passwd` users (name, password) besides the superuser.
    pub users: Vec<(String, String)>,
}

impl PgPoolConfig {
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }
}

/// A running pgpool-II; dropping it stops it and removes its folder.
#[derive(Debug)]
pub struct PgPool {
    pub port: u16,
    pub dir: PathBuf,
    pub log_file: PathBuf,
    child: Mutex<Option<Child>>,
    watchdog: Option<Watchdog>,
}

impl PgPool {
    /// Starts pgpool-II in front of `backends` (node 0 first: the primary); panics with its
    /// log if it does not come up.
    pub fn start(backends: &[Backend<'_>], cfg: PgPoolConfig) -> PgPool {
        let first = backends.first().expect("pgpool needs a backend").cluster;
        let dir = tempfile::Builder::new()
            .prefix("aksara-pgpool-")
            .tempdir_in(scratch_root())
            .expect("create a pgpool directory")
            .keep();
        let pid_file = dir.join("pgpool.pid");
        let watchdog = Watchdog::arm_with_pid_file(&dir, &pid_file);
        give_to_server_user(&dir, 0o755);
        let mut users = vec![(first.superuser.clone(), first.password.clone())];
        users.extend(cfg.users.iter().cloned());
        let passwd: String = users
            .iter()
            .map(|(name, password)| {
                assert!(!name.contains(':'), "pool_passwd cannot hold `{name}`");
                format!("{name}:TEXT{password}\n")
            })
            .collect();
        write_private(&dir.join("pool_passwd"), &passwd);
        write_private(&dir.join("pcp.conf"), "");
        let mut pool = PgPool {
            port: 0,
            log_file: dir.join("pgpool.log"),
            dir,
            child: Mutex::new(None),
            watchdog: Some(watchdog),
        };
        let mut last_log = String::new();
        for _ in 0..3 {
            pool.port = free_port();
            let conf = pool.conf(backends, &cfg, &pid_file);
            let conf_path = pool.dir.join("pgpool.conf");
            write_private(&conf_path, &conf);
            match pool.launch(&conf_path) {
                Ok(()) => return pool,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("pgpool did not start:\n{log}"),
            }
        }
        panic!("pgpool could not bind a free port in 3 tries:\n{last_log}")
    }

    fn conf(&self, backends: &[Backend<'_>], cfg: &PgPoolConfig, pid: &Path) -> String {
        let dir = self.dir.display().to_string();
        let superuser = &backends[0].cluster.superuser;
        let mut settings: Vec<(String, String)> = vec![
            (
                "backend_clustering_mode".into(),
                "'streaming_replication'".into(),
            ),
            ("listen_addresses".into(), "'127.0.0.1'".into()),
            ("port".into(), self.port.to_string()),
            ("unix_socket_directories".into(), format!("'{dir}'")),
            ("pcp_listen_addresses".into(), "''".into()),
            ("pcp_socket_dir".into(), format!("'{dir}'")),
            ("wd_ipc_socket_dir".into(), format!("'{dir}'")),
            ("pid_file_name".into(), format!("'{}'", pid.display())),
            ("logdir".into(), format!("'{dir}'")),
            ("log_destination".into(), "'stderr'".into()),
            ("pool_passwd".into(), format!("'{dir}/pool_passwd'")),
            ("enable_pool_hba".into(), "off".into()),
            ("num_init_children".into(), "8".into()),
            ("max_pool".into(), "2".into()),
            ("sr_check_user".into(), format!("'{superuser}'")),
            ("sr_check_password".into(), "''".into()),
            ("sr_check_period".into(), "0".into()),
            ("health_check_period".into(), "0".into()),
            ("failover_on_backend_error".into(), "off".into()),
            ("search_primary_node_timeout".into(), "10".into()),
            ("use_watchdog".into(), "off".into()),
            ("memory_cache_enabled".into(), "off".into()),
            ("memqcache_total_size".into(), "1MB".into()),
            ("memqcache_max_num_cache".into(), "100".into()),
        ];
        for (i, backend) in backends.iter().enumerate() {
            let c = backend.cluster;
            settings.extend([
                (
                    format!("backend_hostname{i}"),
                    format!("'{}'", c.socket_dir.display()),
                ),
                (format!("backend_port{i}"), c.port.to_string()),
                (format!("backend_weight{i}"), backend.weight.to_string()),
                (format!("backend_flag{i}"), "'ALLOW_TO_FAILOVER'".into()),
            ]);
        }
        settings.extend(cfg.settings.iter().cloned());
        let mut conf = String::from("# Written by the aksara test harness.\n");
        for (name, value) in settings {
            conf.push_str(&format!("{name} = {value}\n"));
        }
        conf
    }

    /// Runs it in the foreground and waits until it has found its primary (its socket is
    /// listening by then).
    fn launch(&self, conf: &Path) -> Result<(), String> {
        let log = fs::File::create(&self.log_file).expect("create pgpool's log");
        give_to_server_user(&self.log_file, 0o644);
        let mut cmd = Command::new(pgpool_binary());
        cmd.arg("-n")
            .arg("-f")
            .arg(conf)
            .arg("-F")
            .arg(self.dir.join("pcp.conf"))
            .env_clear()
            .env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        run_as_server_user(&mut cmd);
        let child = cmd.spawn().expect("spawn pgpool");
        // The log alone: it listens before it says so, and a probe connection would hold a
        // child (and count against `reserved_connections`) until the child sees it close.
        super::cleanup::wait_until_up(
            child,
            "pgpool",
            &self.log_file,
            START_TIMEOUT,
            &self.child,
            |log| log.contains("pgpool-II successfully started"),
        )
    }

    /// A TCP URL through this pgpool, every part percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        super::cluster::loopback_url(self.port, user, password, db)
    }

    /// The superuser's URL through this pgpool to database `postgres`.
    pub fn admin_url(&self, cluster: &Cluster) -> String {
        self.url(&cluster.superuser, Some(&cluster.password), "postgres")
    }

    pub fn log_contents(&self) -> String {
        super::cleanup::read_log(&self.log_file)
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (SIGTERM would wait for clients to leave).
        super::cleanup::stop_child(&self.child, "-INT");
        drop(self.watchdog.take());
    }
}

/// One pgpool per test process in front of the shared primary and standby, for tests that
/// only read: the primary has load-balance weight 0, so every session's reads go to the
/// standby (what doctor then reports, and asyncpg shows).
pub fn shared_pgpool_pair() -> &'static PgPool {
    static POOL: OnceLock<PgPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pair = shared_pair();
        PgPool::start(
            &[
                Backend {
                    cluster: &pair.primary,
                    weight: 0,
                },
                Backend {
                    cluster: &pair.standby,
                    weight: 1,
                },
            ],
            PgPoolConfig::default(),
        )
    })
}

/// One pgpool per test process in front of the shared SCRAM cluster alone.
pub fn shared_pgpool() -> &'static PgPool {
    static POOL: OnceLock<PgPool> = OnceLock::new();
    POOL.get_or_init(|| {
        PgPool::start(
            &[Backend {
                cluster: shared(Shared::Scram),
                weight: 1,
            }],
            PgPoolConfig::default(),
        )
    })
}

/// Debian installs it in /usr/sbin, which is not on every PATH.
fn pgpool_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let path = Path::new(dir).join("pgpool");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "the tests need pgpool-II and it is not installed\n\nhelp: `apt-get install pgpool2` \
         (.ci/run installs it)"
    )
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    give_to_server_user(path, 0o600);
}
