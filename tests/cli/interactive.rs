//! The interactive flow, typed through a real pseudo-terminal (expectrl), against a real
//! server found by discovery: the written URL works with psql, and Ctrl-C at a prompt exits
//! 130 with the terminal restored and nothing written.

use std::time::Duration;

use expectrl::{ControlCode, Eof, Regex, Session};

use crate::support::{self, Cluster, Shared};
use crate::{env_value, project, psql_url};

fn spawn_dbsetup(cluster: &Cluster, dir: &std::path::Path) -> Session {
    crate::dbsetup_in_pty(cluster, dir, "postgres", &cluster.password)
}

/// Discovery may also find servers the machine runs; ours (from PGHOST) is listed first.
fn pass_discovery(p: &mut Session) {
    let found = p.expect(Regex("Found PostgreSQL|which one")).unwrap();
    if String::from_utf8_lossy(found.as_bytes()).contains("which one") {
        p.send("\r").unwrap();
    }
}

fn output_until_eof(p: &mut Session) -> String {
    let rest = p.expect(Eof).unwrap();
    String::from_utf8_lossy(rest.as_bytes()).into_owned()
}

#[test]
fn the_whole_interactive_flow_with_a_typed_password() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("pty");
    let password = "Typed p@ss:w/rd?#%'\"\\ é";
    let mut p = spawn_dbsetup(cluster, dir.path());
    pass_discovery(&mut p);
    p.expect("Logged in as \"postgres\"").unwrap();
    p.expect("Database name").unwrap();
    p.send_line(&db).unwrap();
    p.expect("Application user").unwrap();
    p.send("\r").unwrap();
    p.expect("Password for the application user").unwrap();
    // Down to "Type my own".
    p.send("\x1b[B").unwrap();
    p.send("\r").unwrap();
    p.expect(format!("Password for \"{db}\"")).unwrap();
    crate::wait_for_hidden_prompt(&p);
    p.send_line(password).unwrap();
    p.expect("Repeat it").unwrap();
    crate::wait_for_hidden_prompt(&p);
    p.send_line(password).unwrap();
    p.expect("CREATE ROLE").unwrap();
    p.expect("Go ahead?").unwrap();
    p.send("y").unwrap();
    p.expect("is ready").unwrap();
    let tail = output_until_eof(&mut p);
    assert!(tail.contains("CODE=0"), "{tail}");
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_eq!(
        psql_url(
            &url,
            "CREATE TABLE t (id int); DROP TABLE t; SELECT current_user"
        )
        .unwrap(),
        db
    );
}

#[test]
fn ctrl_c_at_a_password_prompt_exits_130_restores_the_terminal_and_writes_nothing() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let mut p = spawn_dbsetup(cluster, dir.path());
    pass_discovery(&mut p);
    p.expect("Database name").unwrap();
    p.send_line(support::unique_name("intr")).unwrap();
    p.expect("Application user").unwrap();
    p.send("\r").unwrap();
    p.expect("Password for the application user").unwrap();
    p.send("\x1b[B").unwrap();
    p.send("\r").unwrap();
    // Echo is off at a hidden prompt: the interrupt must turn it back on.
    p.expect("Password for").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    p.send(ControlCode::EndOfText).unwrap();
    let tail = output_until_eof(&mut p);
    assert!(tail.contains("CODE=130"), "{tail}");
    // `stty -a` after aksara exited: echo is on again (not `-echo`).
    assert!(
        tail.contains(" echo ") && !tail.contains("-echo "),
        "terminal left without echo: {tail}"
    );
    assert!(
        !dir.path().join(".env").exists(),
        ".env written despite the interrupt"
    );
}

#[test]
fn ctrl_c_at_the_first_question_writes_nothing() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let mut p = spawn_dbsetup(cluster, dir.path());
    pass_discovery(&mut p);
    p.expect("Database name").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    p.send(ControlCode::EndOfText).unwrap();
    let tail = output_until_eof(&mut p);
    assert!(tail.contains("CODE=130"), "{tail}");
    assert!(!dir.path().join(".env").exists());
    let _ = psql_url;
}
