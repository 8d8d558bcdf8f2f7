//! Reliability under faults: whatever happens mid-setup (the server dies, a connection drops,
//! the user presses Ctrl-C, the server stops answering, the .env cannot be written, another
//! process holds a lock, CI jobs race), `dbsetup` leaves the server and the .env either as
//! they were or fully set up, says which, never hangs, and a rerun finishes the job.
//!
//! The faults are injected at known points, never by timing: a psql session holds the lock
//! dbsetup is about to wait for (the setup lock, or `pg_database` so that CREATE DATABASE waits
//! after CREATE ROLE succeeded), the test watches `pg_stat_activity` until dbsetup's backend
//! is waiting there, and only then stops the server, terminates the backend or signals the
//! process.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Cluster, ClusterConfig, Shared};
use crate::{Run, aksara, assert_url_works, dbsetup, env_value, project, psql_url, run};

/// The key dbsetup holds on the server while it sets up (src/commands/dbsetup.rs).
pub(crate) const SETUP_LOCK_KEY: i64 = 0x616b_7361_7261;
/// How long anything here may take before the test calls it a hang.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// A dbsetup run against `cluster` in `project` as the user read it: the command line as
/// the user would type it (`extra` after the admin URL, the admin password in PGPASSWORD),
/// the cluster's port and password, the project folder and the given names masked.
fn fault_transcript(
    extra: &str,
    out: &Run,
    cluster: &Cluster,
    project: &Path,
    names: &[(&str, &'static str)],
) -> String {
    let command = format!(
        "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres {extra}"
    );
    let port = cluster.port.to_string();
    let project = project.display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        (&port, "[PORT]"),
        (&cluster.password, "[ADMIN PASSWORD]"),
        (&project, "[PROJECT]"),
    ];
    pairs.extend_from_slice(names);
    crate::transcript(&command, out, &pairs)
}

/// Whether a role and a database of these names exist: `(role, database)`.
fn exists(cluster: &Cluster, role: &str, db: &str) -> (bool, bool) {
    let out = cluster.psql(
        "postgres",
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{}'), \
                    EXISTS (SELECT 1 FROM pg_database WHERE datname = '{}')",
            role.replace('\'', "''"),
            db.replace('\'', "''")
        ),
    );
    (out == "t|t" || out == "t|f", out == "t|t" || out == "f|t")
}

/// Polls `sql` until it returns a non-empty answer; panics after [`HANG`].
pub(crate) fn wait_for_row(cluster: &Cluster, sql: &str, what: &str) -> String {
    let deadline = Instant::now() + HANG;
    loop {
        let out = cluster.psql("postgres", sql);
        if !out.is_empty() {
            return out;
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The pid of a backend of dbsetup's that is waiting for a lock while running `query_like`.
pub(crate) fn waiting_backend(cluster: &Cluster, query_like: &str) -> String {
    wait_for_row(
        cluster,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND wait_event_type = 'Lock' \
             AND query LIKE '{query_like}' AND pid <> pg_backend_pid() LIMIT 1"
        ),
        &format!("a backend waiting in `{query_like}`"),
    )
}

pub(crate) fn signal(pid: impl std::fmt::Display, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// A psql session that stays open, to hold locks while dbsetup runs.
pub(crate) struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    pub(crate) fn open(cluster: &Cluster, db: &str) -> Session {
        let mut cmd = Command::new(&support::bins().psql);
        support::clear_pg_env(&mut cmd);
        let mut child = cmd
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&cluster.socket_dir)
            .args(["-p", &cluster.port.to_string(), "-U", "postgres", "-d", db])
            .env("PGPASSWORD", &cluster.password)
            .env("PGAPPNAME", "aksara-test-holder")
            .env("HOME", support::hermetic_home())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn psql");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("psql stdout"));
        Session {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs SQL and returns once psql has answered it.
    pub(crate) fn run(&mut self, sql: &str) {
        let stdin = self.stdin.as_mut().expect("session open");
        writeln!(stdin, "{sql}\n\\echo aksara-test-done").expect("write to psql");
        stdin.flush().expect("flush psql");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read psql");
            assert!(n > 0, "psql ended before answering `{sql}`");
            if line.trim() == "aksara-test-done" {
                return;
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// aksara running in the background, its output collected as it comes.
pub(crate) struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Running {
    pub(crate) fn spawn(cmd: &mut Command) -> Running {
        // The signals these tests send act as they do on a terminal's foreground job, even when
        // the suite was started where they are ignored (a `cmd &` in a non-interactive shell
        // ignores SIGINT and SIGQUIT, and an exec'd child inherits that).
        // SAFETY: signal() is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn aksara");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for (pipe, buf) in [(out, stdout.clone()), (err, stderr.clone())] {
            readers.push(thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    buf.lock().unwrap().push_str(&line);
                    line.clear();
                }
            }));
        }
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until stderr contains `needle`.
    pub(crate) fn wait_for_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + HANG;
        while !self.stderr.lock().unwrap().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "aksara exited ({status}) before printing `{needle}`:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aksara did not print `{needle}`:\n{}",
                self.stderr.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit, at most `within` (a bound that proves "does not hang", not a
    /// performance claim); returns the run (a signal's death as 128 + its number) and how
    /// long it took from `since`.
    pub(crate) fn finish(mut self, within: Duration, since: Instant) -> (Run, Duration) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for aksara") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "aksara still running after {within:?}:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let took = since.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        // Killed by a signal: 128 + its number, as a shell reports it.
        let code = status
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s))
            .unwrap_or(-1);
        let run = Run {
            code,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        };
        (run, took)
    }
}

// ---------------------------------------------------------------------------------------------
// Faults mid-setup.

#[test]
fn the_server_stopping_while_dbsetup_waits_for_the_setup_lock_changes_nothing() {
    let cluster = Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = "stopped_early";
    let mut holder = Session::open(&cluster, "postgres");
    holder.run(&format!("SELECT pg_advisory_lock({SETUP_LOCK_KEY});"));

    let running = Running::spawn(&mut dbsetup(&cluster, dir.path(), &["--db-name", db]));
    waiting_backend(&cluster, "%pg_advisory_lock%");
    cluster.stop_immediate();
    let (out, _) = running.finish(HANG, Instant::now());
    drop(holder);

    assert_eq!(out.code, 1, "{out:?}");
    // The connection was lost: not "another dbsetup held the lock for 60 s".
    insta::assert_snapshot!(
        "dbsetup_the_server_stopping_during_the_setup_lock_wait",
        fault_transcript(&format!("--db-name {db}"), &out, &cluster, dir.path(), &[])
    );
    assert!(!dir.path().join(".env").exists());

    cluster.start_again();
    assert_eq!(exists(&cluster, db, db), (false, false));
    let rerun = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", db, "--force", "password"],
    ));
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

/// Holding SHARE on pg_database lets dbsetup create its role, then makes its CREATE DATABASE
/// wait: a fault can be injected exactly between the two statements.
fn hold_create_database(cluster: &Cluster) -> Session {
    let mut holder = Session::open(cluster, "postgres");
    holder.run("BEGIN; LOCK TABLE pg_database IN SHARE MODE;");
    holder
}

#[test]
fn the_server_stopping_between_create_role_and_create_database_is_reported_and_a_rerun_finishes() {
    let cluster = Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = "stopped_halfway";
    let holder = hold_create_database(&cluster);
    let running = Running::spawn(&mut dbsetup(&cluster, dir.path(), &["--db-name", db]));
    waiting_backend(&cluster, "CREATE DATABASE%");
    assert_eq!(exists(&cluster, db, db), (true, false));
    // The harness runs with synchronous_commit=off: make the committed role durable, as it
    // is on a real server, before the crash.
    cluster.psql("postgres", "CHECKPOINT");
    cluster.stop_immediate();
    let (out, _) = running.finish(HANG, Instant::now());
    drop(holder);

    assert_eq!(out.code, 1, "{out:?}");
    // What exists now, exactly: the role this run created could not be dropped. Why the
    // undo could not connect depends on how far the server's shutdown got (reset, or
    // "shutting down"): masked.
    let shown = fault_transcript(&format!("--db-name {db}"), &out, &cluster, dir.path(), &[]);
    let shown = regex::Regex::new(r"could not undo: the server cannot be reached \(.*\)\); ")
        .unwrap()
        .replace(
            &shown,
            "could not undo: the server cannot be reached ([WHY])); ",
        );
    insta::assert_snapshot!(
        "dbsetup_the_server_stopping_between_create_role_and_create_database",
        shown
    );
    assert!(!dir.path().join(".env").exists());

    cluster.start_again();
    assert_eq!(exists(&cluster, db, db), (true, false));
    // The user this run created has a password no URL holds: the hint's `--force password`.
    let rerun = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", db, "--format", "json", "--force", "password"],
    ));
    assert_eq!(rerun.code, 0, "{rerun:?}");
    let json: Value = serde_json::from_str(&rerun.stdout).unwrap();
    assert_eq!(json["role"]["created"], false, "{json}");
    assert_eq!(json["database"]["created"], true, "{json}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[test]
fn the_connection_dropping_during_verification_undoes_this_runs_objects() {
    let cluster = Cluster::start(ClusterConfig::default());
    // Every database created from template1 gets an event trigger that holds DDL while the
    // role `gate` exists: verification's CREATE TABLE waits there, as the application user.
    cluster.psql(
        "template1",
        "CREATE FUNCTION gate() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN \
           WHILE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gate') LOOP \
             PERFORM pg_sleep(0.02); \
           END LOOP; \
         END $$; \
         CREATE EVENT TRIGGER gate ON ddl_command_start EXECUTE FUNCTION gate();",
    );
    cluster.psql("postgres", "CREATE ROLE gate");
    let dir = project();
    let db = "dropped_in_verify";
    let running = Running::spawn(&mut dbsetup(&cluster, dir.path(), &["--db-name", db]));
    let pid = wait_for_row(
        &cluster,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE usename = '{db}' AND state = 'active' \
             AND query LIKE '%aksara_privilege_probe%'"
        ),
        "verification's CREATE TABLE",
    );
    cluster.psql("postgres", &format!("SELECT pg_terminate_backend({pid})"));
    let (out, _) = running.finish(HANG, Instant::now());

    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_the_connection_dropping_during_verification",
        fault_transcript(&format!("--db-name {db}"), &out, &cluster, dir.path(), &[])
    );
    assert!(!dir.path().join(".env").exists());
    assert_eq!(exists(&cluster, db, db), (false, false));

    cluster.psql("postgres", "DROP ROLE gate");
    let rerun = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", db, "--force", "password"],
    ));
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[test]
fn ctrl_c_while_create_database_waits_undoes_the_role_and_leaves_no_statement_running() {
    let cluster = Cluster::start(ClusterConfig::default());
    let dir = project();
    std::fs::write(dir.path().join(".env"), "KEEP=1\n").unwrap();
    let db = "interrupted";
    let holder = hold_create_database(&cluster);
    let running = Running::spawn(&mut dbsetup(&cluster, dir.path(), &["--db-name", db]));
    waiting_backend(&cluster, "CREATE DATABASE%");
    assert_eq!(exists(&cluster, db, db), (true, false));
    let sent = Instant::now();
    signal(running.pid(), "INT");
    let (out, took) = running.finish(HANG, sent);

    assert_eq!(out.code, 130, "{out:?}");
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    insta::assert_snapshot!(
        "dbsetup_ctrl_c_while_create_database_waits",
        fault_transcript(&format!("--db-name {db}"), &out, &cluster, dir.path(), &[])
    );
    // The CREATE DATABASE that was waiting is gone too: it cannot finish behind our back
    // once the lock is released.
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE%' \
             AND pid <> pg_backend_pid()"
        ),
        "0"
    );
    drop(holder);
    assert_eq!(exists(&cluster, db, db), (false, false));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        "KEEP=1\n"
    );

    let rerun = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", db, "--force", "password"],
    ));
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[test]
fn ctrl_c_while_waiting_for_the_setup_lock_exits_130_and_changes_nothing() {
    // Its own server: holding the setup lock on a shared one would stall other tests' runs.
    let cluster = &Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = support::unique_name("waiting");
    let mut holder = Session::open(cluster, "postgres");
    holder.run(&format!("SELECT pg_advisory_lock({SETUP_LOCK_KEY});"));
    let mut running = Running::spawn(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    running.wait_for_stderr("Waiting for another `aksara dbsetup`");
    let backend = waiting_backend(cluster, "%pg_advisory_lock%");
    let sent = Instant::now();
    signal(running.pid(), "INT");
    let (out, took) = running.finish(HANG, sent);
    drop(holder);

    assert_eq!(out.code, 130, "{out:?}");
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    insta::assert_snapshot!(
        "dbsetup_ctrl_c_while_waiting_for_the_setup_lock",
        fault_transcript(
            "--db-name [DB]",
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    assert!(!dir.path().join(".env").exists());
    // Its backend does not linger in the lock queue.
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {backend}")
        ),
        "0"
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));
}

/// The promise for a server that stops answering: the run ends within `--timeout` +
/// `--connect-timeout` of the stop (plus this much for process start and exit).
const SILENT_SLACK: Duration = Duration::from_millis(1500);

/// dbsetup with `args`; once its admin backend waits in a query like `query_like`, that backend
/// is stopped (SIGSTOP) until the run ends. The run's output, and how long it took after the
/// stop.
fn stop_the_backend_waiting_in(
    cluster: &Cluster,
    dir: &Path,
    args: &[&str],
    query_like: &str,
) -> (Run, Duration) {
    let running = Running::spawn(&mut dbsetup(cluster, dir, args));
    let backend = waiting_backend(cluster, query_like);
    let stopped = Instant::now();
    signal(&backend, "STOP");
    let finished = running.finish(HANG, stopped);
    signal(&backend, "CONT");
    finished
}

#[test]
fn a_server_that_stops_answering_does_not_hang_dbsetup() {
    let cluster = Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = "frozen";
    let mut holder = Session::open(&cluster, "postgres");
    holder.run(&format!("SELECT pg_advisory_lock({SETUP_LOCK_KEY});"));
    // A stopped backend answers nothing, and its own lock_timeout cannot fire either.
    let (out, took) = stop_the_backend_waiting_in(
        &cluster,
        dir.path(),
        &["--db-name", db, "--timeout", "2", "--connect-timeout", "3"],
        "%pg_advisory_lock%",
    );
    drop(holder);

    assert!(
        took < Duration::from_secs(2 + 3) + SILENT_SLACK,
        "took {took:?} after the stop: {out:?}"
    );
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_a_server_that_stops_answering",
        fault_transcript(
            &format!("--db-name {db} --timeout 2 --connect-timeout 3"),
            &out,
            &cluster,
            dir.path(),
            &[]
        )
    );
    assert!(!dir.path().join(".env").exists());
    assert_eq!(exists(&cluster, db, db), (false, false));
}

/// Issue 16: the admin backend stops after the run created its user, in the middle of CREATE
/// DATABASE. The cleanup cannot undo (the stopped backend ignores pg_terminate_backend and keeps
/// the setup lock), so the run says exactly what may exist, within the bound, and a plain rerun
/// finishes the setup.
#[test]
fn a_backend_stopped_mid_setup_ends_the_run_within_the_bound_and_says_what_exists() {
    let cluster = Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = "frozen_mid";
    // CREATE DATABASE needs ROW EXCLUSIVE on pg_database: it waits here, after CREATE ROLE.
    let mut holder = Session::open(&cluster, "postgres");
    holder.run("BEGIN; LOCK TABLE pg_database IN EXCLUSIVE MODE;");
    let (out, took) = stop_the_backend_waiting_in(
        &cluster,
        dir.path(),
        &["--db-name", db, "--timeout", "3", "--connect-timeout", "3"],
        "CREATE DATABASE%",
    );
    holder.run("COMMIT;");
    drop(holder);

    assert!(
        took < Duration::from_secs(3 + 3) + SILENT_SLACK,
        "took {took:?} after the stop: {out:?}"
    );
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_a_backend_stopped_mid_setup",
        fault_transcript(
            &format!("--db-name {db} --timeout 3 --connect-timeout 3"),
            &out,
            &cluster,
            dir.path(),
            &[]
        )
    );
    assert!(!dir.path().join(".env").exists());
    // What the report says exists does.
    assert!(exists(&cluster, db, db).0);

    let rerun = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", db, "--force", "password"],
    ));
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[test]
fn the_setup_lock_wait_is_bounded_by_timeout() {
    let cluster = &Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = support::unique_name("locked_out");
    let mut holder = Session::open(cluster, "postgres");
    holder.run(&format!("SELECT pg_advisory_lock({SETUP_LOCK_KEY});"));
    let out = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--timeout", "1"],
    ));
    drop(holder);
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_the_setup_lock_wait_is_bounded_by_timeout",
        fault_transcript(
            "--db-name [DB] --timeout 1",
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));
}

// ---------------------------------------------------------------------------------------------
// File-system faults.

/// Runs `cmd` as `nobody` when the tests are root (permission bits do not stop root).
fn as_unprivileged(cmd: &Command, dir: &Path) -> Command {
    let is_root = support::server_user().is_some();
    if !is_root {
        let mut same = Command::new(cmd.get_program());
        same.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => same.env(k, v),
                None => same.env_remove(k),
            };
        }
        same.current_dir(dir).stdin(Stdio::null());
        return same;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    // nobody cannot read root's temporary HOME.
    wrapped
        .env("HOME", dir)
        .current_dir(dir)
        .stdin(Stdio::null());
    wrapped
}

/// A project folder `nobody` may enter (and, with `writable`, write) when the tests are root.
fn shared_project(writable: bool) -> tempfile::TempDir {
    let dir = project();
    let mode = if writable { 0o777 } else { 0o555 };
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

#[test]
fn an_unwritable_env_folder_is_found_before_the_server_changes() {
    let cluster = support::shared(Shared::Scram);
    let dir = shared_project(false);
    let db = support::unique_name("rofolder");
    let out = run(&mut as_unprivileged(
        &dbsetup(cluster, dir.path(), &["--db-name", &db]),
        dir.path(),
    ));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_an_unwritable_env_folder",
        fault_transcript(
            "--db-name [DB]",
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));
    assert!(!dir.path().join(".env").exists());
}

#[test]
fn a_read_only_env_file_is_found_before_the_server_changes() {
    let cluster = support::shared(Shared::Scram);
    let dir = shared_project(true);
    let env = dir.path().join(".env");
    std::fs::write(&env, "KEEP=1\n").unwrap();
    if let Some(_root) = support::server_user() {
        std::os::unix::fs::chown(&env, Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o444)).unwrap();
    let db = support::unique_name("rofile");
    let out = run(&mut as_unprivileged(
        &dbsetup(cluster, dir.path(), &["--db-name", &db]),
        dir.path(),
    ));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_a_read_only_env_file",
        fault_transcript(
            "--db-name [DB]",
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));
    assert_eq!(std::fs::read_to_string(&env).unwrap(), "KEEP=1\n");
}

#[test]
fn an_env_path_that_cannot_be_a_file_is_refused_before_the_server_changes() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("badpath");
    // A directory, a folder that does not exist, a name no shell could use.
    let dir = project();
    std::fs::create_dir(dir.path().join(".env")).unwrap();
    let cases: [(&[&str], i32, &str); 3] = [
        (&[], 1, ""),
        (
            &["--env-file", "missing/.env"],
            1,
            "--env-file missing/.env",
        ),
        (&["--env-key", "NOT VALID"], 2, "--env-key 'NOT VALID'"),
    ];
    let mut shown = String::new();
    for (extra, code, typed) in cases {
        let mut cmd = dbsetup(cluster, dir.path(), &["--db-name", &db]);
        cmd.args(extra);
        let out = run(&mut cmd);
        assert_eq!(out.code, code, "{extra:?}: {out:?}");
        shown.push_str(&fault_transcript(
            format!("--db-name [DB] {typed}").trim_end(),
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")],
        ));
        assert_eq!(exists(cluster, &db, &db), (false, false), "{extra:?}");
    }
    insta::assert_snapshot!("dbsetup_env_paths_that_cannot_be_a_file", shown);
    assert!(dir.path().join(".env").is_dir());
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_symlinked_env_is_written_through_and_the_link_kept() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/app.env"), "# shared\nA=1\n").unwrap();
    std::os::unix::fs::symlink("config/app.env", dir.path().join(".env")).unwrap();
    let db = support::unique_name("linked");
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    let link = dir.path().join(".env");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let text = std::fs::read_to_string(dir.path().join("config/app.env")).unwrap();
    assert!(text.starts_with("# shared\nA=1\nDATABASE_URL="), "{text:?}");
    assert_url_works(&env_value(&link, "DATABASE_URL").unwrap());
}

#[test]
fn an_env_without_a_final_newline_and_with_invalid_utf8_keeps_every_byte() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let env = dir.path().join(".env");
    let original: &[u8] = b"# caf\xe9\r\nA=\xff\xfe\r\nB='x y'";
    std::fs::write(&env, original).unwrap();
    let db = support::unique_name("bytes");
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    let after = std::fs::read(&env).unwrap();
    let mut expected_start = original.to_vec();
    expected_start.extend_from_slice(b"\r\nDATABASE_URL=");
    assert!(
        after.starts_with(&expected_start),
        "{:?}",
        String::from_utf8_lossy(&after)
    );
    assert!(after.ends_with(b"\r\n"));
    let tail = &after[expected_start.len() - b"DATABASE_URL=".len()..];
    let line = String::from_utf8(tail.strip_suffix(b"\r\n").unwrap().to_vec()).unwrap();
    assert_url_works(line.strip_prefix("DATABASE_URL=").unwrap());
}

/// `flock(1)` holding the folder lock the .env write takes, until dropped.
struct FolderLock {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl FolderLock {
    fn hold(dir: &Path) -> FolderLock {
        let mut child = Command::new("flock")
            .arg("--exclusive")
            .arg(dir)
            .args(["sh", "-c", "echo locked; cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock (util-linux)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        let stdin = child.stdin.take();
        FolderLock { child, stdin }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn an_env_folder_locked_by_another_process_is_waited_for() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::write(dir.path().join(".env"), "KEEP=1\n").unwrap();
    let db = support::unique_name("waitlock");
    let lock = FolderLock::hold(dir.path());
    let mut running = Running::spawn(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    running.wait_for_stderr("Waiting for another process editing");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        "KEEP=1\n"
    );
    drop(lock);
    let (out, _) = running.finish(HANG, Instant::now());
    assert_eq!(out.code, 0, "{out:?}");
    let env = dir.path().join(".env");
    assert_eq!(env_value(&env, "KEEP").as_deref(), Some("1"));
    assert_url_works(&env_value(&env, "DATABASE_URL").unwrap());
}

#[test]
fn an_env_write_that_fails_after_setup_undoes_the_setup() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let env = dir.path().join(".env");
    std::fs::write(&env, "KEEP=1\n").unwrap();
    let db = support::unique_name("latefail");
    let lock = FolderLock::hold(dir.path());
    let mut running = Running::spawn(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    running.wait_for_stderr("Waiting for another process editing");
    assert_eq!(exists(cluster, &db, &db), (true, true));
    // While it waits, the file turns into something no write can replace: the one failure
    // the check before the setup cannot foresee.
    std::fs::rename(&env, dir.path().join("saved.env")).unwrap();
    std::fs::create_dir(&env).unwrap();
    drop(lock);
    let (out, _) = running.finish(HANG, Instant::now());
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_an_env_write_that_fails_after_setup",
        fault_transcript(
            "--db-name [DB]",
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("saved.env")).unwrap(),
        "KEEP=1\n"
    );
}

#[test]
fn ctrl_c_while_waiting_for_the_env_lock_undoes_the_setup_promptly() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::write(dir.path().join(".env"), "KEEP=1\n").unwrap();
    let db = support::unique_name("intrlock");
    let lock = FolderLock::hold(dir.path());
    let mut running = Running::spawn(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    running.wait_for_stderr("Waiting for another process editing");
    assert_eq!(exists(cluster, &db, &db), (true, true));
    let sent = Instant::now();
    signal(running.pid(), "INT");
    // Well before the 10 s the lock is waited for.
    let (out, took) = running.finish(HANG, sent);
    drop(lock);
    assert_eq!(out.code, 130, "{out:?}");
    assert!(took < Duration::from_secs(8), "took {took:?} to stop");
    insta::assert_snapshot!(
        "dbsetup_ctrl_c_while_waiting_for_the_env_lock",
        fault_transcript(
            "--db-name [DB]",
            &out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        "KEEP=1\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

/// Spawns every command at once and waits for all of them (each bounded by [`HANG`]).
fn run_all(cmds: Vec<Command>) -> Vec<Run> {
    let running: Vec<Running> = cmds
        .into_iter()
        .map(|mut c| Running::spawn(&mut c))
        .collect();
    let since = Instant::now();
    running
        .into_iter()
        .map(|r| r.finish(HANG, since).0)
        .collect()
}

#[test]
fn parallel_runs_with_the_same_names_into_one_env_file_all_succeed() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let env = dir.path().join(".env");
    std::fs::write(&env, "KEEP=1\n").unwrap();
    let db = support::unique_name("samefile");
    let outs = run_all(
        (0..8)
            .map(|_| dbsetup(cluster, dir.path(), &["--db-name", &db, "--format", "json"]))
            .collect(),
    );
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
        let json: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(json["ok"], true, "{json}");
    }
    // One run created and wrote; every later one found that URL working and kept it.
    let created: Vec<_> = outs
        .iter()
        .map(|o| serde_json::from_str::<Value>(&o.stdout).unwrap())
        .filter(|j| j["env_change"] == "added")
        .collect();
    assert_eq!(created.len(), 1, "{outs:?}");
    let text = std::fs::read_to_string(&env).unwrap();
    assert_eq!(text.matches("DATABASE_URL=").count(), 1, "{text}");
    assert!(text.starts_with("KEEP=1\n"), "{text}");
    assert_url_works(&env_value(&env, "DATABASE_URL").unwrap());
}

#[test]
fn doctor_fifty_times_in_parallel_all_pass_with_valid_json() {
    let cluster = support::shared(Shared::Scram);
    let name = support::unique_name("doc50");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {name} LOGIN PASSWORD 'doc50-pw'; CREATE DATABASE {name} OWNER {name}"
        ),
    );
    let dir = project();
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DATABASE_URL={}\n",
            cluster.url(&name, Some("doc50-pw"), &name)
        ),
    )
    .unwrap();
    let outs = run_all(
        (0..50)
            .map(|_| {
                let mut cmd = aksara(dir.path());
                cmd.args(["doctor", "--format", "json"]);
                cmd
            })
            .collect(),
    );
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
        let json: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {out:?}"));
        assert_eq!(json["ok"], true, "{json}");
        let checks = json["checks"].as_array().unwrap();
        assert!(
            checks
                .iter()
                .any(|c| c["id"] == "privileges" && c["status"] == "pass"),
            "{json}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input through the command line.

#[test]
fn hostile_names_work_end_to_end() {
    let cluster = support::shared(Shared::Scram);
    let pid = std::process::id();
    let cases = [
        // quotes, backslashes, SQL, URL syntax
        (
            format!("it's \"q\" \\b {pid}"),
            format!("o'k\\\" /?#@:% {pid}"),
        ),
        // a newline and a tab in the database, Unicode in both
        (
            format!("two\nlines\t🐘 {pid}"),
            format!("ünï €ode 象 {pid}"),
        ),
        // exactly 63 bytes, made of two-byte characters; `pg_` databases get an `app_` user
        (
            format!("{}{}", "é".repeat(31), pid % 10),
            format!("pg_x{}", "é".repeat(29)),
        ),
    ];
    for (i, (db, user)) in cases.iter().enumerate() {
        let dir = project();
        let mut args = vec!["--db-name", db.as_str(), "--format", "json"];
        if i < 2 {
            args.extend(["--db-user", user.as_str()]);
        }
        let out = run(&mut dbsetup(cluster, dir.path(), &args));
        assert_eq!(out.code, 0, "{db:?} {user:?}: {out:?}");
        let json: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(json["database"]["name"], db.as_str());
        let role = json["role"]["name"].as_str().unwrap().to_string();
        if i < 2 {
            assert_eq!(&role, user);
        }
        assert_eq!(exists(cluster, &role, db), (true, true), "{db:?}");
        let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
        assert_eq!(
            psql_url(&url, "SELECT current_user || '|' || current_database()").unwrap(),
            format!("{role}|{db}")
        );
        assert_url_works(&url);
    }
    // A database named `pg_x` + 29 `é` (62 bytes) gives user `app_pg_x` + 27 `é`: cutting
    // the prefixed name at 63 bytes used to split a character and panic.
    let dir = project();
    let db = format!("pg_x{}", "é".repeat(29));
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[test]
fn names_postgresql_reserves_are_refused_before_anything_changes() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let mut shown = String::new();
    for (extra, typed) in [
        (
            ["--db-name", "fine", "--db-user", "public"],
            "--db-name fine --db-user public",
        ),
        (
            ["--db-name", "fine", "--db-user", "none"],
            "--db-name fine --db-user none",
        ),
        (
            ["--db-name", "", "--db-user", "x"],
            "--db-name '' --db-user x",
        ),
        // sqlx's SCRAM login runs SASLprep on the user name and gives up on these.
        (
            ["--db-name", "fine", "--db-user", "elephant 🐘"],
            "--db-name fine --db-user 'elephant 🐘'",
        ),
        (
            ["--db-name", "two\nlines", "--format", "text"],
            "--db-name $'two\\nlines' --format text",
        ),
    ] {
        let out = run(&mut dbsetup(cluster, dir.path(), &extra));
        assert_eq!(out.code, 2, "{extra:?}: {out:?}");
        shown.push_str(&fault_transcript(typed, &out, cluster, dir.path(), &[]));
    }
    insta::assert_snapshot!("dbsetup_refuses_names_postgresql_reserves", shown);
    assert!(!dir.path().join(".env").exists());
}

/// dbsetup with the application password piped to standard input.
fn with_stdin_password(cmd: &mut Command, password: &[u8]) -> Run {
    cmd.arg("--db-password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(password).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn hostile_passwords_from_stdin_work_or_are_refused_clearly() {
    let cluster = support::shared(Shared::Scram);
    // NUL cannot be in argv or the environment, but it can come down a pipe.
    let dir = project();
    let db = support::unique_name("nul");
    let out = with_stdin_password(
        &mut dbsetup(cluster, dir.path(), &["--db-name", &db]),
        b"before\0after\n",
    );
    assert_eq!(out.code, 2, "{out:?}");
    let shown = |stdin: &str, out: &Run| {
        fault_transcript(
            &format!("--db-name [DB] --db-password-stdin < {stdin}"),
            out,
            cluster,
            dir.path(),
            &[(&db, "[DB]")],
        )
    };
    insta::assert_snapshot!(
        "dbsetup_refuses_a_password_with_a_nul",
        shown("[PASSWORD WITH A NUL]", &out)
    );
    assert!(!out.all().contains("before"), "{out:?}");
    assert_eq!(exists(cluster, &db, &db), (false, false));
    assert!(!dir.path().join(".env").exists());

    // Not UTF-8: refused, nothing changed.
    let out = with_stdin_password(
        &mut dbsetup(cluster, dir.path(), &["--db-name", &db]),
        b"caf\xe9\n",
    );
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_password_that_is_not_utf8",
        shown("[LATIN-1 PASSWORD]", &out)
    );
    assert_eq!(exists(cluster, &db, &db), (false, false));

    // A newline inside: libpq would take it, sqlx's SCRAM login refuses it (SASLprep), so the
    // URL would not work for a Rust application: refused, without showing the password.
    let out = with_stdin_password(
        &mut dbsetup(cluster, dir.path(), &["--db-name", &db]),
        b"line one\nline two\n",
    );
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_password_with_a_newline",
        shown("[PASSWORD WITH A NEWLINE]", &out)
    );
    assert!(!out.all().contains("line one"), "{out:?}");
    assert_eq!(exists(cluster, &db, &db), (false, false));

    // Quotes, backslashes, spaces, a percent sign, Unicode, 200 bytes; the final newline is
    // not part of it.
    let password = format!("a'b\"c\\d e f%20é€象{}", "x".repeat(180));
    let out = with_stdin_password(
        &mut dbsetup(cluster, dir.path(), &["--db-name", &db]),
        format!("{password}\n").as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(&password));
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    assert!(url.contains(&support::encode(&password)), "{url}");
    assert_url_works(&url);
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

#[test]
fn doctor_does_not_hang_when_its_table_check_waits_for_a_lock() {
    let cluster = support::shared(Shared::Scram);
    let name = support::unique_name("doclock");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {name} LOGIN PASSWORD 'lock-pw'; CREATE DATABASE {name} OWNER {name}"
        ),
    );
    // An uncommitted DROP SCHEMA holds the schema's lock: CREATE TABLE in it waits.
    let mut holder = Session::open(cluster, &name);
    holder.run("BEGIN; DROP SCHEMA public;");
    let dir = project();
    let mut cmd = aksara(dir.path());
    cmd.args([
        "doctor",
        "--format",
        "json",
        "--connect-timeout",
        "1",
        "--url",
        &cluster.url(&name, Some("lock-pw"), &name),
    ]);
    let (out, _) = Running::spawn(&mut cmd).finish(HANG, Instant::now());
    holder.run("ROLLBACK;");
    assert_eq!(out.code, 0, "{out:?}");
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let check = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "privileges")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "warn", "{json}");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("waited over 1 s for a lock"),
        "{json}"
    );
    assert!(check["code"].is_null(), "not cannot-create-tables: {json}");
}

#[test]
fn ctrl_c_ends_doctor_wait_at_once() {
    let dir = project();
    let port = support::free_port();
    let mut cmd = aksara(dir.path());
    cmd.args([
        "doctor",
        "--wait",
        "60",
        "--url",
        &format!("postgresql://app:pw@127.0.0.1:{port}/app"),
    ]);
    let running = Running::spawn(&mut cmd);
    // Nothing listens there: doctor keeps retrying for 60 s unless interrupted.
    thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(running.pid(), "INT");
    let (out, took) = running.finish(HANG, sent);
    assert!(took < Duration::from_secs(5), "took {took:?}: {out:?}");
    // Killed by SIGINT, or exited 130 itself: either way a shell sees 130.
    assert_eq!(out.code, 130, "{out:?}");
}

#[test]
fn sigterm_while_create_database_waits_is_cleaned_up_like_ctrl_c() {
    // SIGTERM is how CI cancels a job.
    let cluster = Cluster::start(ClusterConfig::default());
    let dir = project();
    let db = "terminated";
    let holder = hold_create_database(&cluster);
    let running = Running::spawn(&mut dbsetup(&cluster, dir.path(), &["--db-name", db]));
    waiting_backend(&cluster, "CREATE DATABASE%");
    assert_eq!(exists(&cluster, db, db), (true, false));
    let sent = Instant::now();
    signal(running.pid(), "TERM");
    let (out, _) = running.finish(HANG, sent);
    assert_eq!(out.code, 143, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_sigterm_while_create_database_waits",
        fault_transcript(&format!("--db-name {db}"), &out, &cluster, dir.path(), &[])
    );
    drop(holder);
    assert_eq!(exists(&cluster, db, db), (false, false));
    assert!(!dir.path().join(".env").exists());
}
