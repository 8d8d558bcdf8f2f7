//! Clusters made the distribution's way: postgresql-common's `pg_createcluster`, as Debian and
//! Ubuntu users have them (config in `/etc/postgresql/<version>/<name>/`, the socket in
//! `/var/run/postgresql`, peer authentication on it). The data folder is the one thing moved:
//! `pg_createcluster -d` puts it in the test process's scratch directory (tmpfs when there is
//! room) instead of `/var/lib/postgresql`, whose ext4 (no journal on the CI machines) makes each
//! file created slower the more files were deleted in the last minutes (see
//! `cleanup::project_folder`). aksara reads the folder from `pg_lsclusters`, wherever it is.
//! These change the machine's `/etc/postgresql`, so every one is dropped (`pg_dropcluster
//! --stop`) when its guard goes, on panic too; only a SIGKILL of the test process can leave
//! one behind (named `aksara_<pid>_<n>`, `pg_dropcluster --stop` removes it).
//!
//! They need root and postgresql-common, as CI has them (`.ci/run` installs the `postgresql`
//! package, which brings postgresql-common); a test that uses them says so when they are
//! missing rather than pretending to pass.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::bins::bins;
use super::cluster::free_port;

/// A postgresql-common cluster on a free port; dropped with its guard.
#[derive(Debug)]
pub struct DistCluster {
    pub version: String,
    pub name: String,
    pub port: u16,
    pub socket_dir: PathBuf,
    /// In the test process's scratch directory (see the module's comment).
    pub data_dir: PathBuf,
}

/// Runs a postgresql-common tool, panicking with its output when it fails.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program}: {e}\n\nhelp: these tests need postgresql-common (`apt-get install postgresql`) and root"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

impl DistCluster {
    /// `pg_createcluster <major> aksara_<pid>_<n> -p <free port>` with peer on the socket and
    /// SCRAM on TCP (Debian's defaults, spelled out), not started.
    pub fn create() -> DistCluster {
        DistCluster::create_on(free_port())
    }

    /// [`DistCluster::create`] configured for `port` (which may be another server's).
    pub fn create_on(port: u16) -> DistCluster {
        assert!(
            super::privileges::server_user().is_some(),
            "pg_createcluster tests need root (CI runs the suite as root)"
        );
        let version = bins().major.to_string();
        let name = super::unique_name("aksara");
        let data_dir = super::cleanup::process_dir().join(&name);
        tool(
            "pg_createcluster",
            &[
                &version,
                &name,
                "-p",
                &port.to_string(),
                "-d",
                &data_dir.to_string_lossy(),
                "--",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ],
        );
        DistCluster {
            version,
            name,
            port,
            socket_dir: PathBuf::from("/var/run/postgresql"),
            data_dir,
        }
    }

    pub fn start(&self) {
        tool("pg_ctlcluster", &[&self.version, &self.name, "start"]);
    }

    /// Started with options for the server's own command line (`pg_ctl -o OPTIONS`), as a
    /// script or a container entrypoint starts one.
    pub fn start_with(&self, server_options: &str) {
        tool(
            "pg_ctlcluster",
            &[
                &self.version,
                &self.name,
                "start",
                "--",
                "-o",
                server_options,
            ],
        );
    }

    /// The running postmaster's pid, from postgresql-common's `external_pid_file`.
    pub fn postmaster_pid(&self) -> u32 {
        let file = format!("/var/run/postgresql/{}-{}.pid", self.version, self.name);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        text.lines()
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .expect("a pid")
    }

    pub fn stop(&self) {
        tool("pg_ctlcluster", &[&self.version, &self.name, "stop"]);
    }

    /// `/etc/postgresql/<version>/<name>`
    pub fn conf_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/postgresql/{}/{}", self.version, self.name))
    }

    /// psql as the `postgres` OS user over the socket (peer), `-X -A -t -q`.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&bins().psql)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for DistCluster {
    fn drop(&mut self) {
        // Stopped first and waited for (`pg_dropcluster --stop` may return while the
        // postmaster is still going away), then dropped.
        let _ = Command::new("pg_ctlcluster")
            .args([&self.version, &self.name, "stop", "-m", "immediate"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// An OS user of the test's own, removed (with its home) when the guard goes.
#[derive(Debug)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    pub fn create() -> OsUser {
        let name = super::unique_name("aksu");
        tool("useradd", &["--create-home", "--user-group", &name]);
        let id = |flag: &str| -> u32 {
            tool("id", &[flag, &name])
                .trim()
                .parse()
                .expect("id prints a number")
        };
        OsUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }
}

impl Drop for OsUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
