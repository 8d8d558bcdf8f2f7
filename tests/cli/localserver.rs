//! The project's own PostgreSQL: `dbsetup --start-server local` creates a real cluster in
//! `.aksara/postgres` from the installed server programs (as root, run by the `postgres`
//! user), the written URL works with psql, `dbserver stop|start|status` keep its data and tell
//! the truth, `doctor` points at `aksara dbserver start`, and the superuser password stays in
//! its 0600 file. The Docker path runs against a stand-in `docker` script: no Docker engine can
//! run on these machines.
//!
//! Every test picks its own first port (`--server-port`) from a free one, so these clusters
//! never sit on 5432 where other suites (and developers' servers) look.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use expectrl::{Eof, Regex, Session};

use crate::secrets::{all_cmdlines, files_containing};
use crate::support::{self, Shared};
use crate::{Run, aksara, env_value, psql_url, run};

/// Stops the project's cluster when the test ends, panicking or not, with `pg_ctl stop -m
/// immediate` run directly (as the server user when root), so cleanup does not depend on
/// aksara working. Declared after the project's TempDir, so it runs before the folder goes.
pub(crate) struct StopOnDrop {
    data_dir: PathBuf,
}

impl StopOnDrop {
    pub(crate) fn new(project: &Path) -> StopOnDrop {
        StopOnDrop {
            data_dir: project.join(".aksara/postgres"),
        }
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.data_dir.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = Command::new(&support::bins().pg_ctl);
        support::clear_pg_env(&mut cmd);
        cmd.args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&self.data_dir)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(user) = support::server_user() {
            cmd.uid(user.uid).gid(user.gid);
        }
        let _ = cmd.status();
    }
}

/// A project folder the server can live in: as root the server runs as `postgres`, which must
/// pass through it (as through a normal user's project), whatever the umask.
pub(crate) fn server_project() -> tempfile::TempDir {
    let dir = crate::project();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

const APP_CANARY: &str = "AppCanary-local-3e9d";

fn git_init(dir: &Path) {
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .expect("run git");
    assert!(status.success());
}

fn start_local(dir: &Path, port: u16, db: &str) -> Command {
    let mut cmd = aksara(dir);
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "local",
        "--server-port",
        &port.to_string(),
        "--db-name",
        db,
    ]);
    cmd
}

pub(crate) fn superuser_password(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".aksara/postgres-password"))
        .expect("the password file exists")
        .trim()
        .to_string()
}

fn record(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(".aksara/server.json")).expect("server.json");
    serde_json::from_str(&text).expect("server.json parses")
}

fn dbserver(dir: &Path, action: &str) -> Run {
    run(aksara(dir).args(["dbserver", action]))
}

/// A run in `project` as the user read it: the project folder, the given values (ports,
/// names), and what differs between runs and machines masked: the postmaster's pid, the
/// cluster's system identifier, the installed server programs' folder.
fn local_transcript(
    command: &str,
    out: &Run,
    project: &Path,
    values: &[(String, &'static str)],
) -> String {
    let project = project.display().to_string();
    let mask = |stream: &str| {
        let mut text = stream.to_string();
        for (pattern, placeholder) in [
            (r"pid \d+", "pid [PID]"),
            (r"system identifier \d+", "system identifier [ID]"),
            (r"/usr/lib/postgresql/\d+/bin", "[PG BIN]"),
        ] {
            text = regex::Regex::new(pattern)
                .unwrap()
                .replace_all(&text, placeholder)
                .into_owned();
        }
        text
    };
    let masked = Run {
        code: out.code,
        stdout: mask(&out.stdout),
        stderr: mask(&out.stderr),
    };
    let mut pairs: Vec<(&str, &str)> = vec![(&project, "[PROJECT]")];
    pairs.extend(values.iter().map(|(v, n)| (v.as_str(), *n)));
    crate::transcript(command, &masked, &pairs)
}

/// Whether a server answers where discovery looks (localhost 5432/5433, the usual socket
/// folders): then dbsetup finds it instead of offering to start one. The socket folders do not
/// count where the tests hide them (`support::hide_machine_sockets`): other tests' distribution
/// clusters come and go there while these run.
pub(crate) fn a_server_answers_where_dbsetup_looks() -> bool {
    let tcp = [5432u16, 5433].iter().any(|p| {
        TcpStream::connect_timeout(&([127, 0, 0, 1], *p).into(), Duration::from_millis(300)).is_ok()
    });
    if support::can_hide_machine_sockets() {
        return tcp;
    }
    let sockets = [
        "/var/run/postgresql",
        "/run/postgresql",
        "/tmp",
        "/private/tmp",
    ]
    .iter()
    .filter_map(|d| std::fs::read_dir(d).ok())
    .flatten()
    .flatten()
    .any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with(".s.PGSQL.") && !name.ends_with(".lock")
    });
    tcp || sockets
}

#[test]
fn start_server_local_creates_a_cluster_whose_url_psql_can_use_and_keeps_the_password_secret() {
    let dir = server_project();
    let _stop = StopOnDrop::new(dir.path());
    git_init(dir.path());
    let port = support::free_port();

    // Watch every process's argv while dbsetup creates and starts the cluster.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                seen.extend(all_cmdlines());
            }
            seen
        })
    };
    let out = run(start_local(dir.path(), port, "shop").env("AKSARA_DB_PASSWORD", APP_CANARY));
    done.store(true, Ordering::Relaxed);
    let cmdlines = watcher.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");

    // The URL works with libpq: create a table, as the application would.
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert!(
        url.starts_with("postgresql://shop:") && url.ends_with(&format!("@127.0.0.1:{port}/shop")),
        "{url}"
    );
    assert_eq!(
        psql_url(
            &url,
            "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1); SELECT count(*) FROM orders"
        )
        .unwrap(),
        "1"
    );
    insta::assert_snapshot!(
        "dbsetup_start_server_local_creates_the_projects_cluster",
        local_transcript(
            "AKSARA_DB_PASSWORD=[APP PASSWORD] aksara dbsetup --non-interactive --start-server local --server-port [PORT] --db-name shop",
            &out,
            dir.path(),
            &[
                (port.to_string(), "[PORT]"),
                (APP_CANARY.to_string(), "[APP PASSWORD]")
            ]
        )
    );

    // The record says where it runs; the superuser's password is in a 0600 file and works.
    let rec = record(dir.path());
    assert_eq!(rec["kind"], "local");
    assert_eq!(rec["port"], port);
    let password_file = dir.path().join(".aksara/postgres-password");
    assert_eq!(
        std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let password = superuser_password(dir.path());
    assert!(password.len() >= 24);
    let admin = format!("postgresql://postgres:{password}@127.0.0.1:{port}/postgres");
    assert_eq!(
        psql_url(
            &admin,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        .unwrap(),
        "t"
    );
    // Password login is required: without one, the server says no.
    assert!(
        psql_url(
            &format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            "SELECT 1"
        )
        .is_err()
    );

    // The secret reached no command line, no output, no log, and no file but its own.
    assert!(
        cmdlines.iter().any(|c| c.contains("initdb")),
        "the watcher never saw initdb run; it cannot vouch for anything: {} cmdlines",
        cmdlines.len()
    );
    let leaked: Vec<_> = cmdlines.iter().filter(|c| c.contains(&password)).collect();
    assert!(
        leaked.is_empty(),
        "the superuser password was in argv: {leaked:?}"
    );
    assert!(!out.all().contains(&password), "{out:?}");
    let log = std::fs::read_to_string(dir.path().join(".aksara/postgres.log")).unwrap();
    assert!(
        !log.contains(&password),
        "the password is in the server log"
    );
    assert_eq!(
        files_containing(dir.path(), &password),
        vec![password_file.display().to_string()]
    );
    // The server does not inherit aksara's environment, so no password sits in its environ.
    let pid = std::fs::read_to_string(dir.path().join(".aksara/postgres/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains(APP_CANARY),
        "the postmaster's environment: {environ}"
    );
    assert!(!environ.contains(&password));
    assert!(
        url.contains(APP_CANARY),
        "AKSARA_DB_PASSWORD was not used: {url}"
    );

    // .aksara/ is ignored by git (it holds the password and the data).
    let ignored = Command::new("git")
        .args(["check-ignore", "-q", ".aksara/postgres-password"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(ignored.success(), ".aksara/ is not git-ignored");

    // Run again from a subfolder: the project's own server (recorded above) and its `.env`
    // are used, nothing is created or changed, and no second `.aksara/` or `.env` appears.
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let before = std::fs::read(dir.path().join(".env")).unwrap();
    let again = run(aksara(&app).args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        "shop",
        "--format",
        "json",
    ]));
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again
            .stderr
            .contains("This project has its own PostgreSQL (.aksara/server.json"),
        "{again:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["env_file"], "../.env", "{json:#}");
    assert_eq!(json["env_change"], "unchanged", "{json:#}");
    assert_eq!(std::fs::read(dir.path().join(".env")).unwrap(), before);
    assert!(!app.join(".env").exists() && !app.join(".aksara").exists());
}

#[test]
fn dbserver_stop_and_start_keep_the_data_and_status_and_doctor_tell_the_truth() {
    let dir = server_project();
    let _stop = StopOnDrop::new(dir.path());
    // The first port is taken: the cluster moves to the next free one and says so.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let out = run(&mut start_local(dir.path(), taken, "keep"));
    assert_eq!(out.code, 0, "{out:?}");
    let port = record(dir.path())["port"].as_u64().unwrap() as u16;
    assert!(port > taken, "port {port} after taken {taken}");
    let ports = [
        (taken.to_string(), "[TAKEN PORT]"),
        (port.to_string(), "[PORT]"),
    ];
    let shown = |command: &str, out: &Run| local_transcript(command, out, dir.path(), &ports);
    insta::assert_snapshot!(
        "dbsetup_start_server_local_moves_past_a_taken_port",
        shown(
            "aksara dbsetup --non-interactive --start-server local --server-port [TAKEN PORT] --db-name keep",
            &out
        )
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    psql_url(
        &url,
        "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')",
    )
    .unwrap();

    let status = dbserver(dir.path(), "status");
    assert_eq!(status.code, 0, "{status:?}");
    let socket_dir = dir.path().join(".aksara/postgres");
    insta::assert_snapshot!(
        "dbserver_status_running",
        shown("aksara dbserver status", &status)
    );
    // The socket it names works too (as root, psql may enter the postgres-owned folder).
    let password = superuser_password(dir.path());
    let via_socket = format!(
        "postgresql://postgres:{password}@/postgres?host={}&port={port}",
        socket_dir.display()
    );
    assert_eq!(psql_url(&via_socket, "SELECT 1").unwrap(), "1");

    let stop = dbserver(dir.path(), "stop");
    assert_eq!(stop.code, 0, "{stop:?}");
    insta::assert_snapshot!("dbserver_stop", shown("aksara dbserver stop", &stop));
    let status = dbserver(dir.path(), "status");
    assert_eq!(status.code, 3, "{status:?}");
    insta::assert_snapshot!(
        "dbserver_status_stopped",
        shown("aksara dbserver status", &status)
    );
    assert!(
        psql_url(&url, "SELECT 1").is_err(),
        "still answers after stop"
    );

    // doctor recognises the stopped project server and names the command that brings it back.
    let doctor = run(aksara(dir.path()).arg("doctor"));
    assert_eq!(doctor.code, 1, "{doctor:?}");
    // The transcript keeps the start command: normalize would mask any other.
    assert!(
        doctor.all().contains(
            "start this project's own server (.aksara/server.json): `aksara dbserver start`"
        ),
        "{doctor:?}"
    );
    insta::assert_snapshot!(
        "doctor_a_stopped_project_server",
        shown("aksara doctor", &doctor)
    );
    // Stopping twice is fine.
    let again = dbserver(dir.path(), "stop");
    assert_eq!(again.code, 0, "{again:?}");
    insta::assert_snapshot!(
        "dbserver_stop_when_already_stopped",
        shown("aksara dbserver stop", &again)
    );

    // As after a reboot: start brings it back with its data, on the recorded port.
    let start = dbserver(dir.path(), "start");
    assert_eq!(start.code, 0, "{start:?}");
    insta::assert_snapshot!(
        "dbserver_start_on_the_recorded_port",
        shown("aksara dbserver start", &start)
    );
    assert_eq!(
        psql_url(&url, "SELECT note FROM kept").unwrap(),
        "still here"
    );
    let status = run(aksara(dir.path()).args(["dbserver", "status", "--format", "json"]));
    assert_eq!(status.code, 0, "{status:?}");
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["running"], true);
    assert_eq!(json["port"], port);
    assert!(!status.all().contains(&password));

    // dbserver works from a subfolder, and a later dbsetup finds the project's server itself.
    let sub = dir.path().join("src");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(dbserver(&sub, "status").code, 0);
    let rerun = run(aksara(dir.path()).args(["dbsetup", "--non-interactive", "--db-name", "keep"]));
    assert_eq!(rerun.code, 0, "{rerun:?}");
    insta::assert_snapshot!(
        "dbsetup_finds_the_projects_own_server",
        shown("aksara dbsetup --non-interactive --db-name keep", &rerun)
    );
    drop(held);
}

#[test]
fn admin_url_and_start_server_together_are_a_usage_error() {
    let dir = server_project();
    let out = run(aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        "x",
        "--admin-url",
        "postgresql://postgres@127.0.0.1:1/postgres",
        "--start-server",
        "local",
    ]));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_admin_url_and_start_server_together",
        local_transcript(
            "aksara dbsetup --non-interactive --db-name x --admin-url postgresql://postgres@127.0.0.1:1/postgres --start-server local",
            &out,
            dir.path(),
            &[]
        )
    );
    assert!(!dir.path().join(".aksara").exists());
}

#[test]
fn after_a_crash_start_brings_the_server_back_with_its_data() {
    let dir = server_project();
    let _stop = StopOnDrop::new(dir.path());
    let port = support::free_port();
    let out = run(&mut start_local(dir.path(), port, "crash"));
    assert_eq!(out.code, 0, "{out:?}");
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    psql_url(
        &url,
        "CREATE TABLE survived (n int); INSERT INTO survived VALUES (7)",
    )
    .unwrap();

    // A power cut: every server process dies at once (the postmaster leads its own process
    // group), leaving postmaster.pid behind.
    let pid_file = dir.path().join(".aksara/postgres/postmaster.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.lines().next().unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while psql_url(&url, "SELECT 1").is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server outlived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pid_file.exists(),
        "the crash left no postmaster.pid to test with"
    );

    let status = dbserver(dir.path(), "status");
    assert_eq!(status.code, 3, "{status:?}");
    // No warning about the pid file the crash left: the whole output is the stopped status.
    insta::assert_snapshot!(
        "dbserver_status_after_a_crash",
        local_transcript(
            "aksara dbserver status",
            &status,
            dir.path(),
            &[(port.to_string(), "[PORT]")]
        )
    );
    let start = dbserver(dir.path(), "start");
    assert_eq!(start.code, 0, "{start:?}");
    assert_eq!(psql_url(&url, "SELECT n FROM survived").unwrap(), "7");
    assert_eq!(dbserver(dir.path(), "status").code, 0);
}

#[test]
fn dbserver_without_a_project_server_exits_4_and_says_how_to_make_one() {
    let dir = server_project();
    let mut shown = String::new();
    for action in ["status", "start", "stop"] {
        let out = dbserver(dir.path(), action);
        assert_eq!(out.code, 4, "{action}: {out:?}");
        shown.push_str(&local_transcript(
            &format!("aksara dbserver {action}"),
            &out,
            dir.path(),
            &[],
        ));
    }
    insta::assert_snapshot!("dbserver_without_a_project_server", shown);
}

#[test]
fn a_folder_the_server_user_cannot_enter_is_named_with_the_fix_and_nothing_is_created() {
    // A 0700 folder, as /root is.
    let dir = crate::project();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let _stop = StopOnDrop::new(dir.path());
    let port = support::free_port();
    let out = run(&mut start_local(dir.path(), port, "blocked"));
    if support::server_user().is_some() {
        // Root: the server must run as postgres, which cannot enter the folder.
        assert_eq!(out.code, 1, "{out:?}");
        insta::assert_snapshot!(
            "dbsetup_start_server_local_in_a_folder_postgres_cannot_enter",
            local_transcript(
                "aksara dbsetup --non-interactive --start-server local --server-port [PORT] --db-name blocked",
                &out,
                dir.path(),
                &[(port.to_string(), "[PORT]")]
            )
        );
        assert!(
            !dir.path().join(".aksara").exists(),
            "something was created"
        );
        assert!(!dir.path().join(".env").exists());
    } else {
        // Not root: the server runs as this user, who owns the folder: it just works.
        assert_eq!(out.code, 0, "{out:?}");
        let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
        assert_eq!(psql_url(&url, "SELECT 1").unwrap(), "1");
    }
}

#[test]
fn without_start_server_ci_mode_never_starts_a_server_unasked() {
    let dir = server_project();
    let out = run(&mut support::hide_machine_sockets(
        aksara(dir.path()).args(["dbsetup", "--non-interactive", "--db-name", "x"]),
    ));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        !dir.path().join(".aksara").exists(),
        "a server was started unasked"
    );
    // No snapshot: the hint lists where this machine installed psql, postgres and docker and
    // every installed cluster that is down (machine.rs creates such clusters meanwhile).
    if a_server_answers_where_dbsetup_looks() {
        // This machine runs a server where discovery looks; without credentials it fails.
        assert!(out.stderr.contains("error:"), "{out:?}");
    } else {
        assert!(
            out.stderr.contains("no PostgreSQL server answers"),
            "{out:?}"
        );
        assert!(
            out.stderr.contains("`--start-server local` starts"),
            "{out:?}"
        );
        // An installed cluster that is only down is named with its own start command first.
        for cluster in aksara::clusters::down(&aksara::clusters::discover()) {
            assert!(
                out.stderr.contains(&format!("`{}`", cluster.start)),
                "{out:?}"
            );
        }
    }
}

/// `aksara dbsetup` in a PTY, wrapped in sh to print its exit code.
fn spawn_in_pty(dir: &Path, args: &str) -> Session {
    let mut cmd = Command::new("sh");
    support::hermetic_env(&mut cmd);
    pty_session(cmd, dir, args)
}

fn pty_session(mut cmd: Command, dir: &Path, args: &str) -> Session {
    let script = format!(
        "'{}' dbsetup {args}; echo \"CODE=$?\"",
        env!("CARGO_BIN_EXE_aksara")
    );
    cmd.args(["-c", &support::hiding_machine_sockets(&script)]);
    cmd.current_dir(dir).env("TERM", "xterm");
    let mut session = Session::spawn(cmd).expect("spawn a PTY");
    session.set_expect_timeout(Some(Duration::from_secs(60)));
    session
}

#[test]
fn interactively_choosing_the_local_cluster_ends_with_a_working_url() {
    let dir = server_project();
    let _stop = StopOnDrop::new(dir.path());
    let port = support::free_port();
    // Where nothing answers (these machines), dbsetup offers to start a server and the test
    // picks the first offer; where a server already answers, the same path is asked for with
    // the flag, since discovery would otherwise (rightly) use that server.
    let offered = !a_server_answers_where_dbsetup_looks();
    let args = if offered {
        format!("--server-port {port}")
    } else {
        format!("--server-port {port} --start-server local")
    };
    let mut p = spawn_in_pty(dir.path(), &args);
    if offered {
        p.expect("No PostgreSQL server answers").unwrap();
        p.expect("Start a PostgreSQL server?").unwrap();
        let shown = p
            .expect(Regex("Start PostgreSQL 15[^\n]*for this project"))
            .unwrap();
        // The machine's own installed clusters that are down come first in the menu (this
        // machine has Debian's 15/main, and machine.rs makes more meanwhile): move down past
        // the ones this menu shows, never start one from a test.
        let installed_first = String::from_utf8_lossy(shown.before())
            .matches("Start PostgreSQL cluster")
            .count();
        for _ in 0..installed_first {
            p.send("\x1b[B").unwrap();
        }
        p.send("\r").unwrap();
    }
    p.expect("Created a PostgreSQL 15").unwrap();
    p.expect(format!("Started it on 127.0.0.1:{port}")).unwrap();
    p.expect("Logged in as \"postgres\"").unwrap();
    p.expect("Database name").unwrap();
    p.send_line("ptyshop").unwrap();
    p.expect("Application user").unwrap();
    p.send("\r").unwrap();
    p.expect("Password for the application user").unwrap();
    p.send("\r").unwrap();
    p.expect("Go ahead?").unwrap();
    p.send("y").unwrap();
    p.expect("is ready").unwrap();
    let rest = p.expect(Eof).unwrap();
    let tail = String::from_utf8_lossy(rest.as_bytes()).into_owned();
    assert!(tail.contains("CODE=0"), "{tail}");
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert!(
        url.ends_with(&format!("@127.0.0.1:{port}/ptyshop")),
        "{url}"
    );
    assert_eq!(
        psql_url(
            &url,
            "CREATE TABLE t (id int); DROP TABLE t; SELECT current_user"
        )
        .unwrap(),
        "ptyshop"
    );
    assert_eq!(dbserver(dir.path(), "status").code, 0);
}

// --- Docker, through a stand-in -------------------------------------------------------------

/// A stand-in `docker` on PATH: no Docker engine can run on these machines. It records each
/// call's argv (one line per call, in `calls`) and, separately, the POSTGRES_PASSWORD in its
/// environment (the same line number in `passwords`), and answers `ps -a` and `port` from
/// files the test writes.
pub(crate) struct FakeDocker {
    pub(crate) dir: tempfile::TempDir,
}

const FAKE_DOCKER: &str = r#"#!/bin/sh
# Stand-in for the docker CLI in aksara's tests: no Docker engine can run on these machines.
printf '%s\n' "$*" >> "$FAKE_DOCKER_DIR/calls"
printf '%s\n' "${POSTGRES_PASSWORD-<unset>}" >> "$FAKE_DOCKER_DIR/passwords"
case "$1" in
  info) [ -e "$FAKE_DOCKER_DIR/no-engine" ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
        echo "Server Version: stand-in" ;;
  ps) cat "$FAKE_DOCKER_DIR/ps" 2>/dev/null; exit 0 ;;
  run) echo 4f3c2b1a0e9d8c7b ;;
  start|stop) echo "$2" ;;
  port) cat "$FAKE_DOCKER_DIR/port" ;;
  inspect) cat "$FAKE_DOCKER_DIR/inspect" ;;
  *) echo "stand-in docker: unexpected call: $*" >&2; exit 1 ;;
esac
"#;

impl FakeDocker {
    pub(crate) fn new() -> FakeDocker {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let docker = bin.join("docker");
        std::fs::write(&docker, FAKE_DOCKER).unwrap();
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeDocker { dir }
    }

    pub(crate) fn with_container(self, ps_line: &str, port: u16) -> FakeDocker {
        std::fs::write(self.dir.path().join("ps"), format!("{ps_line}\n")).unwrap();
        std::fs::write(
            self.dir.path().join("port"),
            format!("0.0.0.0:{port}\n[::]:{port}\n"),
        )
        .unwrap();
        self
    }

    fn without_engine(self) -> FakeDocker {
        std::fs::write(self.dir.path().join("no-engine"), "").unwrap();
        self
    }

    /// aksara in `project` with the stand-in first on PATH.
    pub(crate) fn aksara(&self, project: &Path) -> Command {
        let mut cmd = aksara(project);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.dir.path().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap())
            .env("FAKE_DOCKER_DIR", self.dir.path())
            // aksara asks docker only where an engine may answer (its socket, or DOCKER_HOST).
            .env("DOCKER_HOST", "unix:///stand-in/docker.sock");
        cmd
    }

    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.lines("calls")
    }

    pub(crate) fn passwords(&self) -> Vec<String> {
        self.lines("passwords")
    }
}

#[test]
fn the_offers_come_in_order_local_then_docker_then_install_advice() {
    let docker = FakeDocker::new();
    let dir = server_project();
    let _stop = StopOnDrop::new(dir.path());
    let mut cmd = Command::new("sh");
    support::hermetic_env(&mut cmd);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![docker.dir.path().join("bin")];
    dirs.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).unwrap())
        .env("FAKE_DOCKER_DIR", docker.dir.path())
        .env("DOCKER_HOST", "unix:///stand-in/docker.sock");
    let mut p = pty_session(cmd, dir.path(), "");
    if a_server_answers_where_dbsetup_looks() {
        // Discovery finds this machine's server and goes on with it: no offer is due.
        p.expect(Regex("Found PostgreSQL|which one")).unwrap();
        return;
    }
    p.expect("Start a PostgreSQL server?").unwrap();
    let menu = p
        .expect("None of these: show how to install PostgreSQL, and stop")
        .unwrap();
    let menu = String::from_utf8_lossy(menu.before()).into_owned();
    let local = menu.find("for this project (data in .aksara/postgres");
    let in_docker = menu.find("Start PostgreSQL in Docker (container aksara-postgres");
    assert!(
        local.is_some() && in_docker.is_some() && local < in_docker,
        "offers out of order or missing: {menu}"
    );
    // Past the machine's installed clusters that are down (listed first: the ones this menu
    // shows, as machine.rs makes more meanwhile), local and Docker, to "None of these".
    let installed_first = menu.matches("Start PostgreSQL cluster").count();
    if installed_first > 0 {
        let installed = menu.find("Start PostgreSQL cluster");
        assert!(
            installed.is_some() && installed < local,
            "the installed cluster is not first: {menu}"
        );
    }
    for _ in 0..installed_first + 2 {
        p.send("\x1b[B").unwrap();
    }
    p.send("\r").unwrap();
    let rest = p.expect(Eof).unwrap();
    let tail = String::from_utf8_lossy(rest.as_bytes()).into_owned();
    assert!(tail.contains("none was started"), "{tail}");
    assert!(tail.contains("Install and start PostgreSQL"), "{tail}");
    assert!(tail.contains("CODE=1"), "{tail}");
    assert!(!dir.path().join(".aksara").exists());
    assert_eq!(docker.calls(), vec!["info".to_string()]);
}

pub(crate) const PS_CALL: &str =
    "ps -a --filter name=aksara-postgres --format {{.Names}}\t{{.Status}}";

pub(crate) fn write_password_file(project: &Path, password: &str) {
    let root = project.join(".aksara");
    std::fs::create_dir(&root).unwrap();
    let file = root.join("postgres-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn docker_runs_the_seed_quickstart_with_the_password_only_in_its_environment() {
    let docker = FakeDocker::new();
    let dir = server_project();
    // The first port is taken: the container publishes on the next free one.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let out = run(docker.aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "docker",
        "--server-port",
        &taken.to_string(),
        "--db-name",
        "shop",
        // The stand-in starts no server: the wait must give up, bounded, with a clear error.
        "--start-timeout",
        "2",
        "--connect-timeout",
        "1",
    ]));
    drop(held);
    assert_eq!(out.code, 1, "{out:?}");
    let calls = docker.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[0], "info");
    assert_eq!(calls[1], PS_CALL);
    let published: u16 = calls[2]
        .split(" -p ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no -p in {}", calls[2]));
    assert!(published > taken, "published {published}, taken {taken}");
    assert_eq!(
        calls[2],
        format!(
            "run -d --name aksara-postgres -e POSTGRES_USER=postgres -e POSTGRES_PASSWORD -e POSTGRES_DB=shop -p {published}:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15"
        )
    );
    let docker_dir = docker.dir.path().display().to_string();
    insta::assert_snapshot!(
        "dbsetup_start_server_docker_gives_up_waiting_for_the_container",
        local_transcript(
            "aksara dbsetup --non-interactive --start-server docker --server-port [TAKEN PORT] --db-name shop --start-timeout 2 --connect-timeout 1",
            &out,
            dir.path(),
            &[
                (taken.to_string(), "[TAKEN PORT]"),
                (published.to_string(), "[PORT]"),
                (docker_dir, "[STAND-IN DOCKER]"),
            ]
        )
    );

    // The password went to `docker run` through its environment only, and it is the one in
    // the project's 0600 file; no other call saw it, no argv and no output holds it.
    let password = superuser_password(dir.path());
    assert_eq!(docker.passwords()[2], password);
    for (i, seen) in docker.passwords().iter().enumerate() {
        if i != 2 {
            assert_eq!(seen, "<unset>", "call {i} ({}) got the password", calls[i]);
        }
    }
    assert!(calls.iter().all(|c| !c.contains(&password)), "{calls:#?}");
    assert!(!out.all().contains(&password), "{out:?}");

    assert!(
        !dir.path().join(".env").exists(),
        ".env written without a server"
    );
    // The record lets `dbserver` find the container later.
    let rec = record(dir.path());
    assert_eq!(rec["kind"], "docker");
    assert_eq!(rec["port"], published);
}

#[test]
fn a_stopped_container_is_started_not_recreated_and_the_setup_completes() {
    // The stand-in reports an exited aksara-postgres whose 5432 is published on a real
    // server's port, so everything after `docker start` runs against real PostgreSQL.
    let cluster = support::shared(Shared::Scram);
    let docker =
        FakeDocker::new().with_container("aksara-postgres\tExited (0) 2 hours ago", cluster.port);
    let dir = server_project();
    write_password_file(dir.path(), &cluster.password);
    let db = support::unique_name("dock");
    let out = run(docker.aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "docker",
        "--db-name",
        &db,
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        docker.calls(),
        vec![
            "info".to_string(),
            PS_CALL.to_string(),
            "start aksara-postgres".to_string(),
            "port aksara-postgres 5432/tcp".to_string(),
        ]
    );
    assert!(docker.passwords().iter().all(|p| p == "<unset>"));
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    assert!(
        url.ends_with(&format!("@localhost:{}/{db}", cluster.port)),
        "{url}"
    );
    assert_eq!(
        psql_url(
            &url,
            "CREATE TABLE t (id int); DROP TABLE t; SELECT current_user"
        )
        .unwrap(),
        db
    );
    assert!(!out.all().contains(&cluster.password), "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_start_server_docker_starts_a_stopped_container",
        local_transcript(
            "aksara dbsetup --non-interactive --start-server docker --db-name [DB]",
            &out,
            dir.path(),
            &[
                (cluster.port.to_string(), "[PORT]"),
                (db.clone(), "[DB]"),
                (docker.dir.path().display().to_string(), "[STAND-IN DOCKER]"),
            ]
        )
    );
}

#[test]
fn a_volume_with_an_older_password_is_explained_with_the_fix() {
    let cluster = support::shared(Shared::Scram);
    let docker =
        FakeDocker::new().with_container("aksara-postgres\tExited (0) 3 days ago", cluster.port);
    let dir = server_project();
    let stale = "NotTheVolumesPassword-7f3a";
    write_password_file(dir.path(), stale);
    let out = run(docker.aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "docker",
        "--db-name",
        "stale",
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_start_server_docker_a_volume_with_an_older_password",
        local_transcript(
            "aksara dbsetup --non-interactive --start-server docker --db-name stale",
            &out,
            dir.path(),
            &[
                (cluster.port.to_string(), "[PORT]"),
                (docker.dir.path().display().to_string(), "[STAND-IN DOCKER]"),
            ]
        )
    );
    assert!(!out.all().contains(stale));
    assert!(!dir.path().join(".env").exists());
}

#[test]
fn docker_without_an_engine_is_refused_and_nothing_is_created() {
    let docker = FakeDocker::new().without_engine();
    let dir = server_project();
    let out = run(docker.aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "docker",
        "--db-name",
        "x",
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_start_server_docker_without_an_engine",
        local_transcript(
            "aksara dbsetup --non-interactive --start-server docker --db-name x",
            &out,
            dir.path(),
            &[(docker.dir.path().display().to_string(), "[STAND-IN DOCKER]")]
        )
    );
    assert_eq!(docker.calls(), vec!["info".to_string()]);
    assert!(!dir.path().join(".aksara").exists());
}

#[test]
fn doctor_hints_docker_start_for_a_stopped_container_that_publishes_the_port() {
    // The stand-in docker (no Docker engine can run here) lists one exited container whose
    // port bindings publish the port the URL points at; nothing listens there.
    let port = support::free_port();
    let docker = FakeDocker::new().with_container("old-postgres", port);
    std::fs::write(
        docker.dir.path().join("inspect"),
        format!(r#"{{"5432/tcp":[{{"HostIp":"","HostPort":"{port}"}}]}}"#),
    )
    .unwrap();
    let dir = crate::project();
    let out = crate::run(docker.aksara(dir.path()).args([
        "doctor",
        "--url",
        &format!("postgresql://app:pw@127.0.0.1:{port}/app"),
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    // The transcript masks the start command (normalize does, for every machine's own).
    assert!(
        out.stdout.contains("`docker start old-postgres`"),
        "{out:?}"
    );
    insta::assert_snapshot!(
        "doctor_hints_docker_start_for_a_stopped_container",
        local_transcript(
            "aksara doctor --url postgresql://app:pw@127.0.0.1:[PORT]/app",
            &out,
            dir.path(),
            &[
                (port.to_string(), "[PORT]"),
                (docker.dir.path().display().to_string(), "[STAND-IN DOCKER]"),
            ]
        )
    );
    assert!(
        docker.calls().iter().any(|c| c.starts_with("inspect")),
        "{:?}",
        docker.calls()
    );
}

#[test]
fn without_an_engine_doctor_does_not_ask_docker() {
    // The stand-in docker is on PATH, but no engine socket exists and DOCKER_HOST is unset: a
    // refused connection is reported without running docker at all.
    let docker = FakeDocker::new();
    let dir = crate::project();
    let port = support::free_port();
    let out = crate::run(docker.aksara(dir.path()).env_remove("DOCKER_HOST").args([
        "doctor",
        "--url",
        &format!("postgresql://app:pw@127.0.0.1:{port}/app"),
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    if !std::path::Path::new("/var/run/docker.sock").exists() {
        assert!(docker.calls().is_empty(), "{:?}", docker.calls());
    }
}
