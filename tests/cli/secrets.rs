//! Secrets stay secret: with canary passwords, no process's command line, no output, no
//! server log (log_statement=all) and no file but the .env ever holds them.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::{Cluster, ClusterConfig};
use crate::{aksara, project, run};

const APP_CANARY: &str = "AppCanary-5b1e-d0nt-leak";
const ADMIN_CANARY: &str = "AdminCanary-9c2f-d0nt-leak";

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

pub fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry)
            && String::from_utf8_lossy(&bytes).contains(needle)
        {
            hits.push(entry.display().to_string());
        }
    }
    hits
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
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
    let dir = project();

    // Watch /proc while the command runs.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !done.load(Ordering::Relaxed) {
                for cmdline in all_cmdlines() {
                    if cmdline.contains(APP_CANARY) || cmdline.contains(ADMIN_CANARY) {
                        seen.push(cmdline);
                    }
                }
                scans += 1;
            }
            (seen, scans)
        })
    };
    let mut cmd = aksara(dir.path());
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        "canary",
        "--format",
        "json",
    ])
    .args([
        "--admin-url",
        &format!(
            "postgresql://canary_admin@127.0.0.1:{}/postgres",
            cluster.port
        ),
    ])
    .env("PGPASSWORD", ADMIN_CANARY)
    .env("AKSARA_DB_PASSWORD", APP_CANARY)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run(&mut cmd);
    // doctor on the written .env, and a failing doctor with the canary in the URL.
    let doctor = run(aksara(dir.path()).args(["doctor", "--format", "json"]));
    let failing = run(aksara(dir.path()).args([
        "doctor",
        "--url",
        &format!(
            "postgresql://canary:{APP_CANARY}@127.0.0.1:{}/nosuchdb",
            cluster.port
        ),
    ]));
    let text_doctor = run(aksara(dir.path()).args(["-v", "doctor"]));
    done.store(true, Ordering::Relaxed);
    let (seen, scans) = watcher.join().unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(doctor.code, 0, "{doctor:?}");
    assert_eq!(failing.code, 1, "{failing:?}");
    assert!(scans > 0);
    assert!(
        seen.iter().all(|c| !c.contains("dbsetup")),
        "a password was in aksara's argv: {seen:?}"
    );
    // The failing doctor had the canary in its own argv on purpose (--url); that is the
    // user's choice, not a leak by aksara. Nothing else may hold either canary.
    assert!(
        seen.iter().all(|c| c.contains("--url")),
        "a password was in some process's argv: {seen:?}"
    );

    for (name, o) in [
        ("dbsetup", &out),
        ("doctor", &doctor),
        ("failing doctor", &failing),
        ("doctor -v", &text_doctor),
    ] {
        assert!(
            !o.all().contains(APP_CANARY),
            "{name} printed the application password: {o:?}"
        );
        assert!(
            !o.all().contains(ADMIN_CANARY),
            "{name} printed the admin password: {o:?}"
        );
    }
    let log = cluster.log_contents();
    assert!(
        log.contains("CREATE ROLE"),
        "the server did not log statements"
    );
    assert!(
        !log.contains(APP_CANARY),
        "the application password reached the server log"
    );
    assert!(
        !log.contains(ADMIN_CANARY),
        "the admin password reached the server log"
    );

    let env = dir.path().join(".env");
    assert_eq!(
        files_containing(dir.path(), APP_CANARY),
        vec![env.display().to_string()]
    );
    assert!(files_containing(dir.path(), ADMIN_CANARY).is_empty());
    assert!(files_containing(crate::support::hermetic_home(), APP_CANARY).is_empty());
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
            shows: "already sets DATABASE_URL to a different value",
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
            expect: 0,
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
