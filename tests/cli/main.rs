//! The integration suite: one binary, so the shared PostgreSQL clusters of `support` are
//! started once per run. Every test talks to a real server started by the harness.

#[path = "../support/mod.rs"]
mod support;

mod dbsetup;
mod doctor;
mod foundation;
mod interactive;
mod reliability;
mod secrets;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The aksara binary with a hermetic environment (no PG* variables, NO_COLOR, a temp HOME).
pub fn aksara(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aksara"));
    support::hermetic_env(&mut cmd);
    cmd.current_dir(dir).stdin(Stdio::null());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run aksara");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A fresh project folder.
pub fn project() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp project dir")
}

/// Run psql (libpq) with a connection string and SQL; Ok(stdout) or Err(stderr).
pub fn psql_url(url: &str, sql: &str) -> Result<String, String> {
    let bins = support::bins();
    let mut cmd = Command::new(&bins.psql);
    support::clear_pg_env(&mut cmd);
    let out = cmd
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("HOME", support::hermetic_home())
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The value of a key in a .env file, as dotenvy reads it.
pub fn env_value(path: &Path, key: &str) -> Option<String> {
    dotenvy::from_path_iter(path)
        .ok()?
        .filter_map(Result::ok)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}
