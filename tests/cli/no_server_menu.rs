//! The menu interactive `aksara dbsetup` shows when no server answers, every branch answered
//! by a prompt script (`AKSARA_PROMPT_SCRIPT`): the project-local server (real initdb), Docker
//! (a stand-in `docker` CLI: no Docker engine can run on these machines; everything after
//! `docker start` runs against a real PostgreSQL), and "None of these". The PTY tests in
//! `localserver.rs` keep what only a terminal shows (the arrow keys).
//!
//! Discovery also looks where the machine's own servers listen (localhost 5432/5433, the
//! usual socket folders); where one answers, the menu is not due and these tests say so and
//! stop (CI machines run none).

use std::path::Path;
use std::process::Command;

use crate::localserver::{
    FakeDocker, PS_CALL, StopOnDrop, a_server_answers_where_dbsetup_looks, server_project,
    superuser_password, write_password_file,
};
use crate::support::{self, Shared};
use crate::{Run, env_value, psql_url, run};

const MENU: &str = "? Start a PostgreSQL server? [";

/// `cmd` answered from `answers` (question text it contains, then the answer).
fn scripted(cmd: &mut Command, dir: &Path, answers: &[(&str, &str)]) -> Run {
    let script = dir.join("answers");
    let text: String = answers.iter().map(|(q, a)| format!("{q}\t{a}\n")).collect();
    std::fs::write(&script, text).unwrap();
    // Other tests' distribution clusters keep sockets where discovery looks: hidden here.
    run(&mut crate::support::hide_machine_sockets(
        cmd.env("AKSARA_PROMPT_SCRIPT", &script),
    ))
}

/// The menu line as the user saw it, its offers in order.
fn menu(out: &Run) -> String {
    out.stderr
        .lines()
        .find(|l| l.starts_with(MENU))
        .unwrap_or_else(|| panic!("no menu: {out:?}"))
        .to_string()
}

/// A menu run in `project` as the user read it: the project folder and the given values
/// masked, the installed server programs' folder masked, and the offers to start the
/// machine's installed clusters that are down (listed first, and machine.rs creates such
/// clusters while these tests run) left out.
fn menu_transcript(
    command: &str,
    out: &Run,
    project: &Path,
    values: &[(String, &'static str)],
) -> String {
    let installed = regex::Regex::new(r"Start PostgreSQL cluster [^|\]]* \| ").unwrap();
    let bin = regex::Regex::new(r"/usr/lib/postgresql/\d+/bin").unwrap();
    let stderr = installed.replace_all(&out.stderr, "");
    let masked = Run {
        code: out.code,
        stdout: out.stdout.clone(),
        stderr: bin.replace_all(&stderr, "[PG BIN]").into_owned(),
    };
    let project = project.display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![(&project, "[PROJECT]")];
    pairs.extend(values.iter().map(|(v, n)| (v.as_str(), *n)));
    crate::transcript(command, &masked, &pairs)
}

fn nothing_answers_here() -> bool {
    if a_server_answers_where_dbsetup_looks() {
        eprintln!(
            "a PostgreSQL server answers where dbsetup looks on this machine: the no-server menu is not due"
        );
        return false;
    }
    true
}

#[test]
fn none_of_these_stops_with_the_install_advice_and_changes_nothing() {
    if !nothing_answers_here() {
        return;
    }
    let docker = FakeDocker::new();
    let dir = server_project();
    let out = scripted(
        docker.aksara(dir.path()).arg("dbsetup"),
        dir.path(),
        &[("Start a PostgreSQL server?", "None of these")],
    );
    assert_eq!(out.code, 1, "{out:?}");
    // The machine's installed cluster that is down, when there is one, comes first (the
    // transcript leaves such offers out).
    let menu = menu(&out);
    if let Some(installed) = menu.find("Start PostgreSQL cluster") {
        let local = menu.find("for this project (data in .aksara/postgres");
        assert!(Some(installed) < local, "{menu}");
    }
    insta::assert_snapshot!(
        "dbsetup_no_server_menu_none_of_these",
        menu_transcript(
            "AKSARA_PROMPT_SCRIPT=[SCRIPT] aksara dbsetup",
            &out,
            dir.path(),
            &[(docker.dir.path().display().to_string(), "[STAND-IN DOCKER]")]
        )
    );
    assert!(!dir.path().join(".aksara").exists());
    assert!(!dir.path().join(".env").exists());
    assert_eq!(docker.calls(), vec!["info".to_string()]);
}

#[test]
fn docker_from_the_menu_starts_the_stopped_container_and_the_setup_completes() {
    if !nothing_answers_here() {
        return;
    }
    // The stand-in reports an exited aksara-postgres whose 5432 is published on a real
    // server's port, so everything after `docker start` runs against real PostgreSQL.
    let cluster = support::shared(Shared::Scram);
    let docker =
        FakeDocker::new().with_container("aksara-postgres\tExited (0) 2 hours ago", cluster.port);
    let dir = server_project();
    write_password_file(dir.path(), &cluster.password);
    let db = support::unique_name("menudock");
    let out = scripted(
        docker.aksara(dir.path()).arg("dbsetup"),
        dir.path(),
        &[
            ("Start a PostgreSQL server?", "in Docker"),
            ("Database name", &db),
            ("Application user", ""),
            ("Password for the application user", "Generate"),
            ("Go ahead?", "y"),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_no_server_menu_docker",
        menu_transcript(
            "AKSARA_PROMPT_SCRIPT=[SCRIPT] aksara dbsetup",
            &out,
            dir.path(),
            &[
                (docker.dir.path().display().to_string(), "[STAND-IN DOCKER]"),
                (cluster.port.to_string(), "[PORT]"),
                (db.clone(), "[DB]"),
            ]
        )
    );
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
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert!(
        url.ends_with(&format!("@localhost:{}/{db}", cluster.port)),
        "{url}"
    );
    assert_eq!(psql_url(&url, "SELECT current_user").unwrap(), db);
    assert!(!out.all().contains(&cluster.password), "{out:?}");
}

#[test]
fn the_project_server_from_the_menu_is_created_and_the_setup_completes() {
    if !nothing_answers_here() {
        return;
    }
    let dir = server_project();
    let _stop = StopOnDrop::new(dir.path());
    let port = support::free_port();
    let out = scripted(
        crate::aksara(dir.path()).args(["dbsetup", "--server-port", &port.to_string()]),
        dir.path(),
        &[
            ("Start a PostgreSQL server?", "for this project"),
            ("Database name", "menushop"),
            ("Application user", ""),
            ("Password for the application user", "Generate"),
            ("Go ahead?", "y"),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    // No stand-in here: whether Docker is offered depends on the machine's own docker CLI.
    let docker_offer = regex::Regex::new(r"Start PostgreSQL in Docker [^|\]]* \| ").unwrap();
    let out = Run {
        code: out.code,
        stdout: out.stdout,
        stderr: docker_offer.replace_all(&out.stderr, "").into_owned(),
    };
    insta::assert_snapshot!(
        "dbsetup_no_server_menu_the_project_server",
        menu_transcript(
            "AKSARA_PROMPT_SCRIPT=[SCRIPT] aksara dbsetup --server-port [PORT]",
            &out,
            dir.path(),
            &[(port.to_string(), "[PORT]")]
        )
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert!(
        url.ends_with(&format!("@127.0.0.1:{port}/menushop")),
        "{url}"
    );
    assert_eq!(
        psql_url(
            &url,
            "CREATE TABLE t (id int); DROP TABLE t; SELECT current_user"
        )
        .unwrap(),
        "menushop"
    );
    // The superuser password stays in the project's 0600 file, out of the output.
    assert!(
        !out.all().contains(&superuser_password(dir.path())),
        "{out:?}"
    );
}
