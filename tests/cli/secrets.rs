//! Secrets stay secret: every command is run with canary passwords (succeeding, failing,
//! refused, interrupted, interactive in a terminal), and no process's command line, no output
//! or error, no server statement log (log_statement=all), no file of the server's and no file
//! but the .env that setup wrote ever holds them.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use expectrl::{Eof, Regex, Session as Pty};

use crate::reliability::{HANG, Running, SETUP_LOCK_KEY, Session, signal, waiting_backend};
use crate::support::{self, Cluster, ClusterConfig};
use crate::{Run, aksara, project, run};

/// The application password: given through the environment, stdin and the terminal.
const APP_CANARY: &str = "AppCanary-5b1e-d0nt-leak";
/// The admin password: PGPASSWORD only.
const ADMIN_CANARY: &str = "AdminCanary-9c2f-d0nt-leak";
/// A password already in a .env that setup must not overwrite or show.
const OLD_CANARY: &str = "OldCanary-77aa-d0nt-leak";
/// A wrong password in a .env that doctor checks.
const WRONG_CANARY: &str = "WrongCanary-31c0-d0nt-leak";
const CANARIES: [&str; 4] = [APP_CANARY, ADMIN_CANARY, OLD_CANARY, WRONG_CANARY];

/// Every process's argv, read from /proc.
pub fn all_cmdlines() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .collect()
}

/// Files under `dir` whose bytes contain `needle` (binary files included: the server's data
/// files and WAL are searched too).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    files_containing_any(dir, &[needle])
}

/// Files under `dir` that contain any of the needles, binary files included (`grep -r`
/// searches the server's tens of megabytes in a blink, where a debug-built loop would not).
fn files_containing_any(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("grep");
    cmd.args(["-r", "-l", "-a", "-F"]);
    for n in needles {
        cmd.arg("-e").arg(n);
    }
    let out = cmd.arg(dir).output().expect("run grep");
    // 0: found, 1: not found, 2: trouble (an unreadable file, say).
    assert!(
        out.status.code() != Some(2),
        "grep failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut hits: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    hits.sort();
    hits
}

/// Watches every process's argv until dropped; `stop` returns what held a canary.
struct ArgvWatch {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<String>, usize)>,
}

impl ArgvWatch {
    fn start() -> ArgvWatch {
        ArgvWatch::start_for(&CANARIES)
    }

    /// Watches for `canaries` only (a test's own, so a concurrent test's are not counted).
    fn start_for(canaries: &'static [&'static str]) -> ArgvWatch {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !flag.load(Ordering::Relaxed) {
                for cmdline in all_cmdlines() {
                    if canaries.iter().any(|c| cmdline.contains(c)) {
                        seen.push(cmdline);
                    }
                }
                scans += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (seen, scans)
        });
        ArgvWatch { done, thread }
    }

    fn stop(self) -> (Vec<String>, usize) {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// dbsetup as the canary admin, over TCP.
fn dbsetup(cluster: &Cluster, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = aksara(dir);
    cmd.args(["dbsetup", "--non-interactive"])
        .args([
            "--admin-url",
            &format!(
                "postgresql://canary_admin@127.0.0.1:{}/postgres",
                cluster.port
            ),
        ])
        .args(extra)
        .env("PGPASSWORD", ADMIN_CANARY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Interactive dbsetup in a pseudo-terminal, typing the canary at the hidden prompts; returns
/// everything the terminal showed.
fn interactive_dbsetup(cluster: &Cluster, dir: &Path, db: &str) -> String {
    let mut p = crate::dbsetup_in_pty(cluster, dir, "canary_admin", ADMIN_CANARY);
    let mut shown = Vec::new();
    let mut expect = |p: &mut Pty, needle: &str| {
        let found = p.expect(Regex(needle)).unwrap_or_else(|e| {
            panic!(
                "{e:?} waiting for {needle:?}; the terminal showed so far:\n{}",
                String::from_utf8_lossy(&shown)
            )
        });
        shown.extend_from_slice(found.as_bytes());
        String::from_utf8_lossy(found.as_bytes()).into_owned()
    };
    if expect(&mut p, "Found PostgreSQL|which one").contains("which one") {
        p.send("\r").unwrap();
    }
    expect(&mut p, "Database name");
    p.send_line(db).unwrap();
    expect(&mut p, "Application user");
    p.send("\r").unwrap();
    expect(&mut p, "Password for the application user");
    p.send("\x1b[B").unwrap();
    p.send("\r").unwrap();
    expect(&mut p, "Password for \"");
    crate::wait_for_hidden_prompt(&p);
    p.send_line(APP_CANARY).unwrap();
    expect(&mut p, "Repeat it");
    crate::wait_for_hidden_prompt(&p);
    p.send_line(APP_CANARY).unwrap();
    expect(&mut p, "Go ahead");
    p.send("y").unwrap();
    let rest = p.expect(Eof).unwrap();
    shown.extend_from_slice(rest.as_bytes());
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(shown.contains("CODE=0"), "{shown}");
    shown
}

fn with_stdin(cmd: &mut Command, input: &str) -> Run {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn passwords_reach_no_argv_output_server_log_or_other_file() {
    let cluster = Cluster::start(ClusterConfig::default().set("log_statement", "all"));
    // An admin whose password only the server's verifier knows (the test's own SQL is logged).
    let verifier = aksara::provision::scram_verifier(ADMIN_CANARY);
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE canary_admin SUPERUSER LOGIN PASSWORD '{verifier}'"),
    );
    let dirs: Vec<_> = (0..7).map(|_| project()).collect();
    let d = |i: usize| dirs[i].path();
    let mut outputs: Vec<(&str, String)> = Vec::new();
    let watch = ArgvWatch::start();

    // dbsetup in CI: the password from the environment, JSON out; then a verbose rerun, which
    // prints the SQL it would run and keeps the password.
    let out = run(
        dbsetup(&cluster, d(0), &["--db-name", "canary", "--format", "json"])
            .env("AKSARA_DB_PASSWORD", APP_CANARY),
    );
    assert_eq!(out.code, 0, "{out:?}");
    outputs.push(("dbsetup --format json", out.all()));
    let out = run(dbsetup(&cluster, d(0), &["-v", "--db-name", "canary"])
        .env("AKSARA_DB_PASSWORD", APP_CANARY));
    assert_eq!(out.code, 0, "{out:?}");
    outputs.push(("dbsetup -v rerun", out.all()));

    // The password from stdin, verbose: the plan's CREATE ROLE shows `****`.
    let out = with_stdin(
        &mut dbsetup(
            &cluster,
            d(1),
            &["-v", "--db-name", "canary_stdin", "--db-password-stdin"],
        ),
        &format!("{APP_CANARY}\n"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("PASSWORD '****'"), "{out:?}");
    outputs.push(("dbsetup --db-password-stdin -v", out.all()));

    // Failing after the role and database were created: verification with sslmode=require
    // against a server without TLS; both are undone.
    let out = run(dbsetup(
        &cluster,
        d(2),
        &["--db-name", "canary_fail", "--sslmode", "require"],
    )
    .env("AKSARA_DB_PASSWORD", APP_CANARY));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("undone: DROP ROLE"), "{out:?}");
    outputs.push(("dbsetup failing verification", out.all()));

    // Refused: the .env already holds another URL, with its own password.
    let old = format!("DATABASE_URL=postgresql://old:{OLD_CANARY}@127.0.0.1:1/old\n");
    std::fs::write(d(3).join(".env"), &old).unwrap();
    let out = run(dbsetup(&cluster, d(3), &["--db-name", "canary_refused"])
        .env("AKSARA_DB_PASSWORD", APP_CANARY));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    outputs.push(("dbsetup refused", out.all()));
    assert_eq!(std::fs::read_to_string(d(3).join(".env")).unwrap(), old);

    // Interrupted while it waits for the setup lock.
    let mut holder = Session::open(&cluster, "postgres");
    holder.run(&format!("SELECT pg_advisory_lock({SETUP_LOCK_KEY});"));
    let mut cmd = dbsetup(&cluster, d(4), &["--db-name", "canary_intr"]);
    cmd.env("AKSARA_DB_PASSWORD", APP_CANARY);
    let mut running = Running::spawn(&mut cmd);
    running.wait_for_stderr("Waiting for another");
    waiting_backend(&cluster, "%pg_advisory_lock%");
    signal(running.pid(), "INT");
    let (out, _) = running.finish(HANG, Instant::now());
    drop(holder);
    assert_eq!(out.code, 130, "{out:?}");
    outputs.push(("dbsetup interrupted", out.all()));

    // Interactive, typed at a hidden prompt in a terminal.
    outputs.push((
        "interactive dbsetup",
        interactive_dbsetup(&cluster, d(5), "canary_typed"),
    ));

    // doctor on the written .env (JSON, and verbose text), on a URL given in argv (the
    // user's choice: that argv is allowed to hold it), and on a .env with a wrong password.
    let doctor = run(aksara(d(0)).args(["doctor", "--format", "json"]));
    assert_eq!(doctor.code, 0, "{doctor:?}");
    outputs.push(("doctor --format json", doctor.all()));
    let doctor = run(aksara(d(0)).args(["-v", "doctor"]));
    assert_eq!(doctor.code, 0, "{doctor:?}");
    outputs.push(("doctor -v", doctor.all()));
    let doctor = run(aksara(d(0)).args([
        "doctor",
        "--url",
        &format!(
            "postgresql://canary:{APP_CANARY}@127.0.0.1:{}/nosuchdb",
            cluster.port
        ),
    ]));
    assert_eq!(doctor.code, 1, "{doctor:?}");
    outputs.push(("doctor --url (failing)", doctor.all()));
    std::fs::write(
        d(6).join(".env"),
        format!(
            "DATABASE_URL=postgresql://canary:{WRONG_CANARY}@127.0.0.1:{}/canary\n",
            cluster.port
        ),
    )
    .unwrap();
    for format in ["text", "json"] {
        let doctor = run(aksara(d(6)).args(["doctor", "--format", format]));
        assert_eq!(doctor.code, 1, "{doctor:?}");
        assert!(doctor.all().contains("auth-failed"), "{doctor:?}");
        outputs.push(("doctor with a wrong password", doctor.all()));
    }

    let (seen, scans) = watch.stop();
    assert!(scans > 0);
    // Only the doctor given `--url` on purpose had a password in its argv.
    assert!(
        seen.iter()
            .all(|c| c.contains("doctor --url") && c.contains(APP_CANARY)),
        "a password was in some process's argv: {seen:?}"
    );
    for (name, shown) in &outputs {
        for canary in CANARIES {
            assert!(!shown.contains(canary), "{name} showed {canary}: {shown}");
        }
    }
    let log = cluster.log_contents();
    assert!(
        log.contains("CREATE ROLE"),
        "the server did not log statements"
    );
    for canary in CANARIES {
        assert!(!log.contains(canary), "{canary} reached the server log");
    }
    // Nor anything else the server keeps: data files, WAL, the log.
    let server_files = cluster.data_dir.parent().unwrap();
    assert_eq!(
        files_containing_any(server_files, &CANARIES),
        Vec::<String>::new(),
        "a password is in the server's files"
    );

    // The application password is in the .env of each setup that finished, and nowhere else.
    for (i, dir) in dirs.iter().enumerate() {
        let expected: Vec<String> = if [0, 1, 5].contains(&i) {
            vec![dir.path().join(".env").display().to_string()]
        } else {
            Vec::new()
        };
        assert_eq!(
            files_containing(dir.path(), APP_CANARY),
            expected,
            "dir {i}"
        );
        assert!(files_containing(dir.path(), ADMIN_CANARY).is_empty());
    }
    assert!(files_containing(support::hermetic_home(), APP_CANARY).is_empty());
    assert!(files_containing(support::hermetic_home(), ADMIN_CANARY).is_empty());
}

/// One command of the sweep below: a name for the failure message, what runs, and the exit
/// code it must end with (so a sweep entry that stopped testing its path is noticed).
struct Case {
    name: &'static str,
    expect: i32,
    /// Text the output must hold: proof that the case took the path it is named after.
    shows: &'static str,
    cmd: std::process::Command,
    stdin: Option<&'static str>,
}

/// Every command and output path, with canary passwords in every place a password can come
/// from (the URL, PGPASSWORD, AKSARA_DB_PASSWORD, stdin, the .env): no output, stdout or
/// stderr, text or JSON, success or failure, ever holds one.
#[test]
fn no_output_path_prints_a_password() {
    use crate::support::{self, Shared};
    const APP: &str = "AppCanary-71d3-d0nt-print";
    const ADMIN: &str = "AdminCanary-2e8a-d0nt-print";
    const OLD: &str = "OldCanary-0f4c-d0nt-print";
    let scram = support::shared(Shared::Scram);
    let trust = support::shared(Shared::Trust);
    let ssl = support::shared(Shared::Ssl);
    let admin = support::unique_name("canary_admin");
    let weak = support::unique_name("canary_weak");
    let app = support::unique_name("canary_app");
    for (role, rights) in [(&admin, "SUPERUSER"), (&weak, "NOCREATEDB NOCREATEROLE")] {
        scram.psql(
            "postgres",
            &format!(
                "CREATE ROLE {role} {rights} LOGIN PASSWORD '{}'",
                aksara::provision::scram_verifier(ADMIN)
            ),
        );
    }
    let port = scram.port;
    let admin_url = format!("postgresql://{admin}@127.0.0.1:{port}/postgres");
    let admin_url_with_password = format!("postgresql://{admin}:{ADMIN}@127.0.0.1:{port}/postgres");
    let app_url = format!("postgresql://{app}:{APP}@127.0.0.1:{port}/{app}");
    let dead = support::free_port();
    let dir = project();
    let other = project();
    std::fs::write(
        other.path().join(".env"),
        format!("DATABASE_URL=postgresql://someone:{OLD}@127.0.0.1:{port}/elsewhere\n"),
    )
    .unwrap();

    let dbsetup_db = |dir: &Path, db: &str, extra: &[&str]| {
        let mut cmd = aksara(dir);
        cmd.args(["dbsetup", "--non-interactive", "--db-name", db])
            .args(extra)
            .env("PGPASSWORD", ADMIN)
            .env("AKSARA_DB_PASSWORD", APP);
        cmd
    };
    let dbsetup = |dir: &Path, extra: &[&str]| dbsetup_db(dir, &app, extra);
    let doctor = |args: &[&str]| {
        let mut cmd = aksara(dir.path());
        cmd.arg("doctor").args(args);
        cmd
    };
    let with_url = |url: String, extra: &[&str]| {
        let mut cmd = aksara(dir.path());
        cmd.args(["doctor", "--url", &url]).args(extra);
        cmd
    };
    let mut cases = vec![
        // dbsetup: success in text, verbose (the SQL), JSON; a rerun that keeps the password.
        Case {
            name: "dbsetup -v",
            expect: 0,
            shows: "CREATE ROLE",
            cmd: {
                let mut c = dbsetup(dir.path(), &["--admin-url", &admin_url]);
                c.arg("-v");
                c
            },
            stdin: None,
        },
        Case {
            name: "dbsetup rerun --format json",
            expect: 0,
            shows: "\"password\": \"kept\"",
            cmd: dbsetup(dir.path(), &["--admin-url", &admin_url, "--format", "json"]),
            stdin: None,
        },
        Case {
            name: "dbsetup --db-password-stdin",
            expect: 0,
            shows: "is ready",
            cmd: {
                let mut c = dbsetup(
                    dir.path(),
                    &["--admin-url", &admin_url, "--db-password-stdin"],
                );
                c.env_remove("AKSARA_DB_PASSWORD");
                c
            },
            stdin: Some(APP),
        },
        // dbsetup failures.
        Case {
            name: "dbsetup, a different value in .env",
            expect: 1,
            shows: "already sets DATABASE_URL (line 1) to a different value",
            cmd: dbsetup(other.path(), &["--admin-url", &admin_url]),
            stdin: None,
        },
        Case {
            name: "dbsetup, password in --admin-url, wrong",
            expect: 1,
            shows: "password authentication failed",
            cmd: {
                let mut c = dbsetup(
                    dir.path(),
                    &[
                        "--admin-url",
                        &admin_url_with_password.replace(&admin, "postgres"),
                    ],
                );
                c.env_remove("PGPASSWORD");
                c
            },
            stdin: None,
        },
        Case {
            name: "dbsetup, no server",
            expect: 1,
            shows: "connection refused",
            cmd: dbsetup(
                dir.path(),
                &[
                    "--admin-url",
                    &format!("postgresql://{admin}:{ADMIN}@127.0.0.1:{dead}/postgres"),
                ],
            ),
            stdin: None,
        },
        Case {
            name: "dbsetup, invalid --admin-url",
            expect: 2,
            shows: "invalid --admin-url",
            cmd: dbsetup(
                dir.path(),
                &[
                    "--admin-url",
                    &format!("postgresql://{admin}:{ADMIN}@127.0.0.1:notaport/postgres"),
                ],
            ),
            stdin: None,
        },
        Case {
            name: "dbsetup, admin lacks privileges",
            expect: 1,
            shows: "lacks the CREATEDB",
            cmd: {
                dbsetup_db(
                    dir.path(),
                    &support::unique_name("canary_new"),
                    &[
                        "--admin-url",
                        &format!("postgresql://{weak}@127.0.0.1:{port}/postgres"),
                    ],
                )
            },
            stdin: None,
        },
        Case {
            name: "dbsetup --force",
            expect: 0,
            shows: "(replaced)",
            cmd: {
                let mut c = dbsetup(other.path(), &["--admin-url", &admin_url, "--force"]);
                c.arg("-v");
                c
            },
            stdin: None,
        },
        // doctor: success from --url, .env and the environment, text, verbose and JSON.
        Case {
            name: "doctor --url",
            expect: 0,
            shows: "all checks passed",
            cmd: with_url(app_url.clone(), &[]),
            stdin: None,
        },
        Case {
            name: "doctor --url --format json",
            expect: 0,
            shows: "\"ok\": true",
            cmd: with_url(app_url.clone(), &["--format", "json"]),
            stdin: None,
        },
        Case {
            name: "doctor -v (.env)",
            expect: 0,
            shows: "Installed tools",
            cmd: {
                let mut c = doctor(&[]);
                c.arg("-v");
                c
            },
            stdin: None,
        },
        Case {
            name: "doctor (DATABASE_URL)",
            expect: 0,
            shows: "the environment variable DATABASE_URL",
            cmd: {
                let mut c = aksara(other.path());
                c.args(["doctor", "--env-file", "missing.env"])
                    .env("DATABASE_URL", &app_url);
                c
            },
            stdin: None,
        },
        Case {
            name: "doctor, the shell shadows .env",
            expect: 1,
            shows: "the shell also sets DATABASE_URL",
            cmd: {
                let mut c = doctor(&[]);
                c.env(
                    "DATABASE_URL",
                    format!("postgresql://x:{OLD}@127.0.0.1:{dead}/y"),
                );
                c
            },
            stdin: None,
        },
        // doctor: every failure class a shared server can show, in text and JSON.
        Case {
            name: "invalid-url",
            expect: 1,
            shows: "[invalid-url]",
            cmd: with_url(format!("postgresql://app:{APP}@localhost:notaport/db"), &[]),
            stdin: None,
        },
        Case {
            name: "invalid-url json",
            expect: 1,
            shows: "\"invalid-url\"",
            cmd: with_url(
                format!("postgresql://app:{APP}@localhost:notaport/db"),
                &["--format", "json"],
            ),
            stdin: None,
        },
        Case {
            name: "invalid-url, keyword/value",
            expect: 1,
            shows: "[invalid-url]",
            cmd: with_url(format!("host=localhost password={APP} port=x"), &[]),
            stdin: None,
        },
        Case {
            name: "unencoded @ in the password",
            expect: 1,
            shows: "unencoded \"@\"",
            cmd: with_url(format!("postgresql://app:{APP}@x@127.0.0.1:{dead}/db"), &[]),
            stdin: None,
        },
        Case {
            name: "dns-failure",
            expect: 1,
            shows: "[dns-failure]",
            cmd: with_url(
                format!("postgresql://app:{APP}@no-such-host.invalid/db"),
                &[],
            ),
            stdin: None,
        },
        Case {
            name: "connection-refused",
            expect: 1,
            shows: "\"connection-refused\"",
            cmd: with_url(
                format!("postgresql://app:{APP}@127.0.0.1:{dead}/db"),
                &["--format", "json"],
            ),
            stdin: None,
        },
        Case {
            name: "ssl-unsupported",
            expect: 1,
            shows: "[ssl-unsupported]",
            cmd: with_url(format!("{app_url}?sslmode=require"), &[]),
            stdin: None,
        },
        Case {
            name: "ssl-certificate",
            expect: 1,
            shows: "[ssl-certificate]",
            cmd: with_url(
                format!(
                    "postgresql://postgres:{APP}@127.0.0.1:{}/postgres?sslmode=verify-ca",
                    ssl.port
                ),
                &[],
            ),
            stdin: None,
        },
        Case {
            name: "auth-failed",
            expect: 1,
            shows: "[auth-failed]",
            cmd: with_url(
                format!("postgresql://{app}:{OLD}@127.0.0.1:{port}/{app}"),
                &[],
            ),
            stdin: None,
        },
        Case {
            name: "auth-failed json",
            expect: 1,
            shows: "\"auth-failed\"",
            cmd: with_url(
                format!("postgresql://{app}:{OLD}@127.0.0.1:{port}/{app}"),
                &["--format", "json"],
            ),
            stdin: None,
        },
        Case {
            name: "role-missing",
            expect: 1,
            shows: "[role-missing]",
            cmd: with_url(
                format!("postgresql://ghost:{APP}@127.0.0.1:{}/postgres", trust.port),
                &[],
            ),
            stdin: None,
        },
        Case {
            name: "database-missing",
            expect: 1,
            shows: "[database-missing]",
            cmd: with_url(
                format!("postgresql://{app}:{APP}@127.0.0.1:{port}/nosuchdb"),
                &["-v"],
            ),
            stdin: None,
        },
        Case {
            name: "doctor --wait, wrong password",
            expect: 1,
            shows: "[auth-failed]",
            cmd: with_url(
                format!("postgresql://{app}:{OLD}@127.0.0.1:{port}/{app}"),
                &["--wait", "5"],
            ),
            stdin: None,
        },
        // Help and completions hold nothing secret, and stay so.
        Case {
            name: "--help",
            expect: 0,
            shows: "Exit codes:",
            cmd: {
                let mut c = aksara(dir.path());
                c.arg("--help").env("PGPASSWORD", ADMIN);
                c
            },
            stdin: None,
        },
        Case {
            name: "completions bash",
            expect: 0,
            shows: "_aksara()",
            cmd: {
                let mut c = aksara(dir.path());
                c.args(["completions", "bash"]).env("PGPASSWORD", ADMIN);
                c
            },
            stdin: None,
        },
    ];
    for case in &mut cases {
        let out = match case.stdin {
            None => run(&mut case.cmd),
            Some(input) => {
                use std::io::Write;
                let mut child = case
                    .cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                let o = child.wait_with_output().unwrap();
                crate::Run {
                    code: o.status.code().unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                }
            }
        };
        assert_eq!(out.code, case.expect, "{}: {out:?}", case.name);
        assert!(
            out.all().contains(case.shows),
            "{}: expected {:?} in {out:?}",
            case.name,
            case.shows
        );
        for canary in [APP, ADMIN, OLD] {
            assert!(
                !out.all().contains(canary),
                "{} printed a password ({canary}): {out:?}",
                case.name
            );
        }
    }
}

/// `doctor --fix`'s own canaries: the app's password in the .env, the admin's in PGPASSWORD.
const FIX_APP_CANARY: &str = "FixAppCanary-4d2a-d0nt-leak";
const FIX_ADMIN_CANARY: &str = "FixAdminCanary-8e61-d0nt-leak";
const FIX_CANARIES: [&str; 2] = [FIX_APP_CANARY, FIX_ADMIN_CANARY];

/// `doctor --fix` rewrites the .env's URL and creates the database as an admin: neither
/// password reaches any argv, any output (text or JSON), or the server's statement log, and
/// the comment kept above the rewritten key holds no password.
#[test]
fn doctor_fix_keeps_passwords_out_of_argv_output_and_the_server_log() {
    let cluster = Cluster::start(ClusterConfig::default().set("log_statement", "all"));
    for (role, canary, attributes) in [
        ("fix_canary_admin", FIX_ADMIN_CANARY, "SUPERUSER LOGIN"),
        ("fix_canary_app", FIX_APP_CANARY, "LOGIN"),
    ] {
        let verifier = aksara::provision::scram_verifier(canary);
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {role} {attributes} PASSWORD '{verifier}'"),
        );
    }
    let watch = ArgvWatch::start_for(&FIX_CANARIES);
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let dir = project();
        let env_file = dir.path().join(".env");
        std::fs::write(
            &env_file,
            format!(
                "DATABASE_URL=postgresql+asyncpg://fix_canary_app:{FIX_APP_CANARY}@127.0.0.1:{}/fix_canary_{format}\n",
                cluster.port
            ),
        )
        .unwrap();
        // The first run rewrites the URL for asyncpg, and in its second round creates the
        // database; the second run finds nothing left to fix.
        for expect in [0, 0] {
            let out = run(aksara(dir.path())
                .args(["doctor", "--fix", "--yes", "--format", format])
                .env("PGHOST", &cluster.socket_dir)
                .env("PGPORT", cluster.port.to_string())
                .env("PGUSER", "fix_canary_admin")
                .env("PGPASSWORD", FIX_ADMIN_CANARY));
            assert_eq!(out.code, expect, "{out:?}");
            outputs.push(out.all());
        }
        let env = std::fs::read_to_string(&env_file).unwrap();
        assert_eq!(env.matches(FIX_APP_CANARY).count(), 1, "{env}");
        assert!(env.contains("# aksara doctor --fix replaced: DATABASE_URL=postgresql+asyncpg://fix_canary_app:****@"), "{env}");
    }
    let (seen, scans) = watch.stop();
    assert!(scans > 0);
    assert_eq!(
        seen,
        Vec::<String>::new(),
        "a password was in some process's argv"
    );
    for shown in &outputs {
        for canary in FIX_CANARIES {
            assert!(!shown.contains(canary), "{canary} was shown: {shown}");
        }
    }
    let log = cluster.log_contents();
    assert!(
        log.contains("CREATE DATABASE \"fix_canary_text\""),
        "the server did not log the fix"
    );
    for canary in FIX_CANARIES {
        assert!(!log.contains(canary), "{canary} reached the server log");
    }
}
