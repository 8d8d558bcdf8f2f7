//! What the user sees, as the user sees it: the help texts, a healthy doctor and the dbsetup
//! summary as whole-output snapshots (insta, in tests/cli/snapshots/; the doctor's failure
//! classes are snapshotted next to their JSON tests in doctor.rs), colours and `--quiet`,
//! spinners on a terminal, every exit code the help promises, and no output that bypasses
//! the printer.
//!
//! A changed snapshot fails the test and leaves a `.snap.new` beside the old one; review it
//! and accept it with `cargo insta review`, or rerun with `INSTA_UPDATE=always`.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Session};

use crate::support::{self, Cluster, Shared};
use crate::{aksara, dbsetup, project, run, transcript};

const ESC: &str = "\u{1b}[";

#[test]
fn help_texts() {
    let dir = project();
    for (name, args) in [
        ("help_aksara", &["--help"][..]),
        ("help_dbsetup", &["dbsetup", "--help"]),
        ("help_doctor", &["doctor", "--help"]),
        ("help_completions", &["completions", "--help"]),
    ] {
        let out = run(aksara(dir.path()).args(args));
        assert_eq!(out.code, 0, "{out:?}");
        insta::assert_snapshot!(
            name,
            transcript(&format!("aksara {}", args.join(" ")), &out, &[])
        );
    }
}

#[test]
fn a_healthy_doctor_in_text() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let out = run(aksara(dir.path()).args(["doctor", "--url", &cluster.admin_url()]));
    assert_eq!(out.code, 0, "{out:?}");
    let port = cluster.port.to_string();
    insta::assert_snapshot!(
        "doctor_healthy",
        transcript(
            "aksara doctor --url postgresql://postgres:[PASSWORD]@127.0.0.1:[PORT]/postgres",
            &out,
            &[(&port, "[PORT]")]
        )
    );
}

#[test]
fn the_dbsetup_summary_in_text() {
    // Its own server: on a shared one, another test's dbsetup may hold the setup lock and add
    // a "waiting for another `aksara dbsetup`" line to the output.
    let cluster = &Cluster::start(support::ClusterConfig::default());
    let dir = project();
    let db = support::unique_name("snap");
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    let port = cluster.port.to_string();
    insta::assert_snapshot!(
        "dbsetup_summary",
        transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres --db-name [DB]",
            &out,
            &[(&port, "[PORT]"), (&db, "[DB]")]
        )
    );
}

/// A URL nothing listens on: a fast failure with output on stdout (the checklist).
fn refused_url() -> String {
    format!("postgresql://app:pw@127.0.0.1:{}/app", support::free_port())
}

#[test]
fn color_always_colours_a_pipe_and_beats_no_color() {
    let dir = project();
    // The checklist goes to stdout, errors to stderr: both are pipes here, NO_COLOR is set.
    let out =
        run(aksara(dir.path()).args(["--color", "always", "doctor", "--url", &refused_url()]));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(ESC), "no colour on stdout: {out:?}");
    assert!(out.stdout.contains('✖'), "no Unicode mark: {out:?}");
    let out = run(aksara(dir.path()).args(["--color", "always", "dbsetup", "--non-interactive"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!("{ESC}1m{ESC}31merror:"))
            || out.stderr.starts_with(&format!("{ESC}31m{ESC}1merror:")),
        "error: is not bold red: {out:?}"
    );
}

#[test]
fn colours_are_off_for_no_color_never_and_a_pipe() {
    let dir = project();
    let url = refused_url();
    let mut no_color = aksara(dir.path());
    no_color.args(["doctor", "--url", &url]);
    let mut never = aksara(dir.path());
    never
        .env_remove("NO_COLOR")
        .args(["--color", "never", "doctor", "--url", &url]);
    let mut piped = aksara(dir.path());
    piped.env_remove("NO_COLOR").args(["doctor", "--url", &url]);
    for (name, cmd) in [
        ("NO_COLOR", &mut no_color),
        ("--color never", &mut never),
        ("a pipe", &mut piped),
    ] {
        let out = run(cmd);
        assert_eq!(out.code, 1, "{name}: {out:?}");
        assert!(!out.all().contains(ESC), "{name}: colours: {out:?}");
        // ASCII marks: a pipe may end up in a log that is not UTF-8 aware.
        assert!(out.stdout.contains("[xx] Reach"), "{name}: {out:?}");
    }
}

/// `aksara ARGS` in a pseudo-terminal, all its output, and its exit code.
fn in_a_terminal(dir: &Path, args: &str, no_color: bool) -> (String, i32) {
    let script = format!(
        "'{}' {args}; echo \"CODE=$?\"",
        env!("CARGO_BIN_EXE_aksara")
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    support::hermetic_env(&mut cmd);
    if !no_color {
        cmd.env_remove("NO_COLOR");
    }
    cmd.current_dir(dir).env("TERM", "xterm");
    let mut session = Session::spawn(cmd).expect("spawn a PTY");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    let all = session.expect(Eof).expect("the command ends");
    let text = String::from_utf8_lossy(all.as_bytes()).into_owned();
    let code = text
        .rsplit_once("CODE=")
        .and_then(|(_, c)| c.trim().parse().ok())
        .unwrap_or(-1);
    (text, code)
}

#[test]
fn a_terminal_gets_colours_unless_no_color_and_a_spinner_while_waiting() {
    let dir = project();
    // Accepts TCP connections (the kernel completes the handshake) and never answers, so the
    // reach step waits its full bound: a spinner must say what is being waited for.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let args = format!("doctor --url 'postgresql://app@127.0.0.1:{port}/app?connect_timeout=2'");
    let (text, code) = in_a_terminal(dir.path(), &args, false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(ESC), "no colours on a terminal: {text}");
    assert!(text.contains('✖'), "no Unicode marks on a terminal: {text}");
    assert!(
        text.contains("Reaching the server"),
        "no spinner during a 2 s wait: {text}"
    );
    assert!(text.contains("[connection-timeout]"), "{text}");
    drop(listener);

    let (text, code) = in_a_terminal(dir.path(), &format!("doctor --url {}", refused_url()), true);
    assert_eq!(code, 1, "{text}");
    let ansi_sgr = regex::Regex::new("\u{1b}\\[[0-9;]*m").unwrap();
    assert!(
        !ansi_sgr.is_match(&text),
        "colours despite NO_COLOR: {text}"
    );
    assert!(text.contains("[xx] Reach"), "{text}");
}

#[test]
fn quiet_prints_only_errors_and_the_result() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();

    // doctor: a healthy run is its summary line, nothing else.
    let out = run(aksara(dir.path()).args(["-q", "doctor", "--url", &cluster.admin_url()]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "[ok] all checks passed\n", "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");

    // doctor: a failure is the failed check, its hint, and the summary.
    let out = run(aksara(dir.path()).args(["-q", "doctor", "--url", &refused_url()]));
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("[xx] Reach"), "{out:?}");
    assert!(lines[1].trim_start().starts_with("hint:"), "{out:?}");
    assert_eq!(lines[2], "[xx] failed: connection-refused", "{out:?}");

    // dbsetup: no progress on stderr, the summary on stdout without the advice.
    let db = support::unique_name("quiet");
    let out = run(&mut dbsetup(cluster, dir.path(), &["-q", "--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("[ok] Database \"{db}\" is ready\n")),
        "{out:?}"
    );
    assert!(!out.stdout.contains("Next steps"), "{out:?}");

    // dbsetup: an error still shows, with its hint.
    let out = run(aksara(dir.path()).args(["-q", "dbsetup", "--non-interactive"]));
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.starts_with("error: --db-name"), "{out:?}");
    assert!(out.stderr.contains("\nhint: "), "{out:?}");
}

/// Every exit code the help texts and the README promise, from every kind of path that
/// produces it. 130 (Ctrl-C) needs a terminal: see interactive.rs.
#[test]
fn exit_codes_match_the_documentation() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let dead = support::free_port();
    let dead_admin = format!("postgresql://postgres@127.0.0.1:{dead}/postgres");
    let wrong_admin = cluster.url("postgres", Some("wrong"), "postgres");
    let long_name = "x".repeat(64);
    let cases: &[(i32, &[&str])] = &[
        // 0: success.
        (0, &["--help"]),
        (0, &["--version"]),
        (0, &["dbsetup", "--help"]),
        (0, &["completions", "zsh"]),
        (0, &["doctor", "--url", &cluster.admin_url()]),
        (
            0,
            &["doctor", "--url", &cluster.admin_url(), "--pool-max", "500"],
        ), // a warning
        // 1: failure.
        (1, &["doctor", "--url", &refused_url()]),
        (
            1,
            &["doctor", "--url", "postgresql://app@localhost:notaport/db"],
        ),
        (1, &["doctor", "--format", "json", "--url", &refused_url()]),
        (
            1,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--admin-url",
                &dead_admin,
            ],
        ),
        (
            1,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--admin-url",
                &wrong_admin,
            ],
        ),
        // 2: usage errors, from clap and from aksara's own checks.
        (2, &[]),
        (2, &["frobnicate"]),
        (2, &["doctor", "--no-such-flag"]),
        (2, &["doctor", "--url"]),
        (2, &["--color", "sometimes", "doctor"]),
        (2, &["-q", "-v", "doctor"]),
        (2, &["doctor", "--format", "yaml"]),
        (2, &["completions", "tcsh"]),
        (2, &["doctor"]),  // no URL anywhere
        (2, &["dbsetup"]), // no terminal, no --non-interactive
        (2, &["dbsetup", "--non-interactive"]),
        (
            2,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--sslmode",
                "sometimes",
            ],
        ),
        (
            2,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--env-key",
                "NOT A KEY",
            ],
        ),
        (
            2,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--admin-url",
                "postgresql://h:port/db",
            ],
        ),
        (
            2,
            &["dbsetup", "--non-interactive", "--db-name", &long_name],
        ),
        (
            2,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--db-user",
                "pg_app",
            ],
        ),
        (
            2,
            &[
                "dbsetup",
                "--non-interactive",
                "--db-name",
                "x",
                "--db-password-stdin",
            ],
        ),
    ];
    for (expected, args) in cases {
        let out = run(aksara(dir.path()).args(*args));
        assert_eq!(
            out.code,
            *expected,
            "aksara {}: expected exit {expected}: {out:?}",
            args.join(" ")
        );
        let out_all = out.all();
        match expected {
            // Every failure says what happened; aksara's own errors also say how to fix it.
            1 | 2 if args.first() == Some(&"dbsetup") || *args == ["doctor"] => {
                assert!(out.stderr.contains("error: "), "{args:?}: {out:?}");
                assert!(out.stderr.contains("hint: "), "{args:?}: {out:?}");
            }
            2 => assert!(out.stderr.contains("error"), "{args:?}: {out_all}"),
            _ => {}
        }
    }
}

/// The lints in lib.rs and main.rs keep print macros out of every module but ui.rs when
/// clippy runs; this keeps them out when only the tests run (CI).
#[test]
fn nothing_prints_past_the_printer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = regex::Regex::new(r"\b(e?print(ln)?!|dbg!|process::exit\b)").unwrap();
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("ui.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests may print what they like.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                let trimmed = line.trim_start();
                if !trimmed.starts_with("//") && forbidden.is_match(line) {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "print past ui::Printer (use printer.result/status/warn/error):\n{}",
        offenders.join("\n")
    );
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(lib.contains("#![warn(clippy::print_stdout, clippy::print_stderr)]"));
}
