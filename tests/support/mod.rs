//! Test support: real PostgreSQL clusters that the test process starts and cleans up itself.
//!
//! The suite never relies on a server somebody else runs. [`bins`] finds PostgreSQL the way a
//! user's machine has it, [`Cluster::start`] starts a private server (its own port, socket
//! directory and data directory, copied from a per-process `initdb` template), and [`shared`]
//! gives read-only tests one server per kind per test process. When the tests run as root the
//! server runs as the `postgres` system user. Watchdogs stop every server and remove its files
//! even when the test process panics, aborts or is killed.
//!
//! Clusters live under `/dev/shm` when it has room (a tmpfs makes copying the template ten times
//! faster), else `/tmp`. Two variables steer the harness itself: `AKSARA_TEST_PG_BINDIR` picks
//! the PostgreSQL installation, `AKSARA_TEST_SCRATCH_DIR` where clusters go.
//!
//! Compiled into every integration test binary, so it uses only std and `tempfile`.

#![allow(dead_code)] // each test binary uses its own part of the harness

mod bins;
mod cleanup;
mod cluster;
mod distcluster;
pub mod drivers;
pub mod hostile;
mod pgbouncer;
mod pgpool;
mod privileges;
mod session;
mod standby;
mod tls;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

// Each test binary uses some of these; the rest would warn.
#[allow(unused_imports)]
pub use bins::{BINDIR_ENV, PgBins, bins};
#[allow(unused_imports)]
pub use cleanup::project_folder;
#[allow(unused_imports)]
pub use cluster::{Auth, Cluster, ClusterConfig, HeldConnections, clear_pg_env, encode, free_port};
#[allow(unused_imports)]
pub use distcluster::{DistCluster, OsUser};
#[allow(unused_imports)]
pub use pgbouncer::{ADMIN_USER, PgBouncer, PgBouncerConfig, PoolMode, shared_pgbouncer};
#[allow(unused_imports)]
pub use pgpool::{Backend, PgPool, PgPoolConfig, shared_pgpool, shared_pgpool_pair};
#[allow(unused_imports)]
pub use privileges::{SERVER_USER, give_to_server_user, server_user};
#[allow(unused_imports)]
pub use session::{Ran, Test};
#[allow(unused_imports)]
pub use standby::{StandbyPair, shared_pair};
#[allow(unused_imports)]
pub use tls::{
    CaseCert, TestCerts, case_cert, case_certs, client_cert, test_certs, weak_server_openssl_conf,
};

/// The kinds of server that tests which only read can share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shared {
    /// SCRAM for every `local` and `host` line, no TLS.
    Scram,
    /// Trust everywhere.
    Trust,
    /// SCRAM, with TLS on (see [`Cluster::ssl_ca`]); plaintext is still allowed.
    Ssl,
}

/// One server per kind per test process, started on first use and stopped by its watchdog when
/// the process ends. Tests that change server state (settings, stops, held connections) start
/// their own [`Cluster`] instead; databases and roles they create should use [`unique_name`].
pub fn shared(kind: Shared) -> &'static Cluster {
    static CLUSTERS: [OnceLock<Cluster>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let (slot, cfg) = match kind {
        Shared::Scram => (0, ClusterConfig::default()),
        Shared::Trust => (
            1,
            ClusterConfig {
                auth: Auth::Trust,
                ..ClusterConfig::default()
            },
        ),
        Shared::Ssl => (
            2,
            ClusterConfig {
                ssl: true,
                ..ClusterConfig::default()
            },
        ),
    };
    CLUSTERS[slot].get_or_init(|| Cluster::start(cfg))
}

/// Makes a command independent of the developer's environment: removes every `PG*` and
/// `AKSARA_*` variable, `DATABASE_URL` and forced-colour switches, and sets `NO_COLOR=1`,
/// `COLUMNS=100` and `HOME` to [`hermetic_home`]. Call it before setting the test's own
/// variables, which it would otherwise remove.
pub fn hermetic_env(cmd: &mut Command) {
    hermetic_env_with_home(cmd, hermetic_home());
}

/// [`hermetic_env`] with a HOME of the test's own, for tests that write `~/.pgpass` and the like.
pub fn hermetic_env_with_home(cmd: &mut Command, home: &Path) {
    for (key, _) in std::env::vars_os() {
        let name = key.as_encoded_bytes();
        if name.starts_with(b"PG")
            || name.starts_with(b"AKSARA_")
            || name == b"DATABASE_URL"
            || name == b"CLICOLOR_FORCE"
            || name == b"FORCE_COLOR"
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("HOME", home);
}

/// An empty HOME shared by the test process, removed when it ends.
pub fn hermetic_home() -> &'static Path {
    static HOME: OnceLock<std::path::PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let home = cleanup::process_dir().join("home");
        std::fs::create_dir(&home).expect("create the hermetic HOME");
        home
    })
}

/// A database or role name no other test in any test process uses: `<prefix>_<pid>_<n>`.
/// Use a lowercase prefix so the name needs no quoting.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    assert!(
        name.len() <= 63,
        "`{name}` is longer than PostgreSQL's 63-byte limit"
    );
    name
}

/// Whether a test can hide the machine's socket folder from aksara: as root, with `unshare`,
/// a private mount namespace gets an empty tmpfs over /run/postgresql. Distribution clusters
/// (this machine's own, and the ones other tests make with `pg_createcluster` meanwhile) keep
/// their sockets there, where dbsetup's discovery looks.
pub fn can_hide_machine_sockets() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        // Tried once: a container without CAP_SYS_ADMIN refuses the namespace or the mount.
        server_user().is_some()
            && Path::new("/run/postgresql").is_dir()
            && Command::new("unshare")
                .args([
                    "-m",
                    "--",
                    "sh",
                    "-c",
                    "mount -t tmpfs -o mode=0775 none /run/postgresql",
                ])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// The shell line that runs `inner` (a shell script) with the machine's socket folder hidden
/// (see [`can_hide_machine_sockets`]); `inner` as it is where it cannot be hidden.
pub fn hiding_machine_sockets(inner: &str) -> String {
    if !can_hide_machine_sockets() {
        return inner.to_string();
    }
    let quoted = format!("'{}'", inner.replace('\'', r"'\''"));
    format!(
        "exec unshare -m -- sh -c 'mount -t tmpfs -o mode=0775 none /run/postgresql && eval \"$0\"' {quoted}"
    )
}

/// `cmd` (program, arguments, environment, folder) run with the machine's socket folder
/// hidden, as a new command; the same command where it cannot be hidden.
pub fn hide_machine_sockets(cmd: &Command) -> Command {
    let mut line = shell_word(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_word(&arg.to_string_lossy()));
    }
    let mut out = Command::new("sh");
    out.args(["-c", &hiding_machine_sockets(&format!("exec {line}"))]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
