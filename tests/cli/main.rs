//! The integration suite: one binary, so the shared PostgreSQL clusters of `support` are
//! started once per run. Every test talks to a real server started by the harness.

#[path = "../support/mod.rs"]
mod support;

mod app_url;
mod client_cert;
mod dbsetup;
mod docs;
mod doctor;
mod driver_key;
mod drivers;
mod fix;
mod forward;
mod foundation;
mod hostile;
mod hostile_env;
mod install;
mod interactive;
mod lazy_openssl;
mod localserver;
mod machine;
mod map_repro;
mod no_server_menu;
mod output;
mod peer_setup;
mod pgpool;
mod pooler;
mod prompts;
mod psql_compare;
mod refusals;
mod reliability;
mod replica;
mod secrets;
mod style;
mod tls_verdict;

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
    } = output_of(cmd);
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `cmd.output()`, again while exec says "text file busy": a test that runs a copy of the
/// binary has just written it, and another test thread's fork in that moment holds the copy's
/// write descriptor until its own exec closes it (seen once in a full run).
fn output_of(cmd: &mut Command) -> Output {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result.expect("run aksara"),
        }
    }
}

/// A single-threaded runtime for tests that call the library's async functions directly.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `url` resolved as the library would with no PG* variable and no `.pgpass`.
pub fn config(url: &str) -> aksara::dsn::ConnConfig {
    aksara::dsn::ConnString::parse(url)
        .unwrap()
        .resolve(&foundation::EmptyEnv)
        .unwrap()
}

/// A fresh project folder.
/// The checks a doctor JSON report (or one target of it) marks failed, in order.
pub fn failed_checks(report: &serde_json::Value) -> Vec<&serde_json::Value> {
    report["checks"]
        .as_array()
        .expect("a report's checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect()
}

pub fn project() -> tempfile::TempDir {
    support::project_folder(".tmp")
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

/// A run as a user would read it, for snapshots: the command (as the test spells it, with
/// placeholders), the exit code, stdout and stderr, normalised with [`normalize`].
pub fn transcript(command: &str, out: &Run, replacements: &[(&str, &str)]) -> String {
    let mut text = format!("$ {command}\nexit: {}\n", out.code);
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if !stream.is_empty() {
            text.push_str(&format!("--- {name}\n{stream}"));
            if !stream.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    normalize(&text, replacements)
}

/// Replace what differs from run to run or machine to machine with placeholders: the given
/// values first (ports, paths, generated names; longest first, so a path wins over its
/// prefix), then timings, the server's exact version, connection counts, and the parts of a
/// hint that depend on what this machine has installed or running.
pub fn normalize(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = replacements
        .iter()
        .copied()
        .filter(|(value, _)| !value.is_empty())
        .collect();
    pairs.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    let mut text = text.to_string();
    for (value, placeholder) in pairs {
        text = text.replace(value, placeholder);
    }
    let home = support::hermetic_home().display().to_string();
    text = text.replace(&home, "[HOME]");
    let rules: &[(&str, &str)] = &[
        (r"\b\d+ ms\b", "[N] ms"),
        (r"PostgreSQL \d+(\.\d+)+", "PostgreSQL [VERSION]"),
        (
            r"\(\d+ of (\d+) connections in use\)",
            "([N] of $1 connections in use)",
        ),
        // What answers nearby and how a server starts depend on the machine.
        (
            r"but PostgreSQL answers at .*?: point the URL there, or ",
            "",
        ),
        (
            r"; PostgreSQL also answers at .*?: not the server this URL names",
            "",
        ),
        (
            r"start the server(: `[^`]*`)?;",
            "start the server: `[START COMMAND]`;",
        ),
        // The install line depends on root, sudo and a running systemd (unit-tested in
        // diagnose::advice).
        (
            r"Install and start PostgreSQL: .*?; or with Docker:",
            "Install and start PostgreSQL: [INSTALL COMMANDS]; or with Docker:",
        ),
        // localhost is ::1 first on some machines, 127.0.0.1 on others.
        (
            r"localhost resolves to \S+",
            "localhost resolves to [ADDRESS]",
        ),
        // The resolver's wording differs between C libraries and networks.
        (
            r"does not resolve \([^)]*\)",
            "does not resolve ([RESOLVER MESSAGE])",
        ),
    ];
    for (pattern, replacement) in rules {
        text = regex::Regex::new(pattern)
            .expect("a valid pattern")
            .replace_all(&text, *replacement)
            .into_owned();
    }
    // Lines that depend on what else runs: discovery lists every server this machine runs
    // (the chosen one is the test's), and a run on a shared cluster may wait for another
    // test's setup lock.
    regex::Regex::new(
        r"(?m)^(\? Several PostgreSQL servers answer; which one\? |Waiting for another `aksara dbsetup`)[^\n]*\n",
    )
    .expect("a valid pattern")
    .replace_all(&text, "")
    .into_owned()
}

/// `aksara dbsetup --non-interactive` against a harness cluster, as its superuser, with the
/// admin password in PGPASSWORD (never in argv).
pub fn dbsetup(cluster: &support::Cluster, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = aksara(dir);
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--admin-url",
        &format!("postgresql://postgres@127.0.0.1:{}/postgres", cluster.port),
    ])
    .args(extra)
    .env("PGPASSWORD", &cluster.password);
    cmd
}

/// psql (libpq) can log in with `url` and create a table.
pub fn assert_url_works(url: &str) {
    let out = psql_url(
        url,
        "CREATE TABLE aksara_test_t (id int); DROP TABLE aksara_test_t; SELECT 'ok'",
    )
    .unwrap_or_else(|e| panic!("psql could not use {url}: {e}"));
    assert_eq!(out, "ok");
}

/// Waits until the program behind the PTY has turned echo off, i.e. a hidden prompt is reading.
/// The prompt prints its question first and then switches the terminal with TCSAFLUSH, which
/// throws away keys that arrived in between: typing before this point loses them.
pub fn wait_for_hidden_prompt(p: &expectrl::Session) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while p.get_process().get_echo().unwrap_or(false) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hidden prompt never turned echo off"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `aksara dbsetup` in a pseudo-terminal, finding the cluster through PGHOST/PGPORT and logging
/// in as `user`. Wrapped in sh (ignoring SIGINT itself) with echo on, as a user's terminal has
/// it, so that after aksara exits its exit code (`CODE=n`) and the terminal's state (`stty -a`)
/// are printed where the test can read them.
pub fn dbsetup_in_pty(
    cluster: &support::Cluster,
    dir: &Path,
    user: &str,
    password: &str,
) -> expectrl::Session {
    let script = format!(
        "trap true INT; stty echo; '{}' dbsetup; echo \"CODE=$?\"; stty -a",
        env!("CARGO_BIN_EXE_aksara")
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    support::hermetic_env(&mut cmd);
    cmd.current_dir(dir)
        .env("PGHOST", &cluster.socket_dir)
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", user)
        .env("PGPASSWORD", password)
        .env("TERM", "xterm");
    let mut session = expectrl::Session::spawn(cmd).expect("spawn a PTY");
    session.set_expect_timeout(Some(std::time::Duration::from_secs(20)));
    session
}
