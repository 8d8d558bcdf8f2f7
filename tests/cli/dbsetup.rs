//! `aksara dbsetup --non-interactive` against real servers: the written URL works with psql
//! (libpq) and can create tables, reruns are idempotent, secrets stay out of output and the
//! server log, the .env keeps every other byte, and refusals change nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{self, Auth, Cluster, ClusterConfig, Shared};
use crate::{
    Run, aksara, assert_url_works, dbsetup, env_value, project, psql_url, run, transcript,
};

/// `crate::dbsetup`'s command line as the user would type it, the admin password in
/// PGPASSWORD, for a transcript: `extra` follows the admin URL.
fn setup_command(extra: &str) -> String {
    format!(
        "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres {extra}"
    )
}

/// A dbsetup run against `cluster` as the user read it: its port and the given names masked.
fn setup_transcript(
    command: &str,
    out: &Run,
    cluster: &Cluster,
    names: &[(&str, &'static str)],
) -> String {
    let port = cluster.port.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![(&port, "[PORT]"), (&cluster.password, "[PASSWORD]")];
    pairs.extend_from_slice(names);
    transcript(command, out, &pairs)
}

#[test]
fn creates_database_and_user_and_writes_a_working_url() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("shop");
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    let env = dir.path().join(".env");
    let url = env_value(&env, "DATABASE_URL").expect("DATABASE_URL written");
    assert!(url.starts_with(&format!("postgresql://{db}:")), "{url}");
    assert_url_works(&url);
    // A new .env is private to its owner.
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The database belongs to the application user (PG15: it can create in public).
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'")
        ),
        db
    );
    // The generated password is never printed.
    let password = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    assert!(password.len() >= 24, "{password}");
    assert!(!out.all().contains(&password), "password printed: {out:?}");
    // The URL is shown masked; no framework CLI here, so only the doctor is suggested.
    insta::assert_snapshot!(
        "dbsetup_creates_the_database_and_user",
        setup_transcript(
            &setup_command("--db-name [DB]"),
            &out,
            cluster,
            &[(&db, "[DB]")]
        )
    );
}

#[test]
fn a_rerun_is_idempotent_and_keeps_the_working_password() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("again");
    let first = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(first.code, 0, "{first:?}");
    let env = dir.path().join(".env");
    let before = std::fs::read(&env).unwrap();
    let second = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--format", "json"],
    ));
    assert_eq!(second.code, 0, "{second:?}");
    let json: Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(json["database"]["created"], false);
    assert_eq!(json["role"]["created"], false);
    assert_eq!(json["role"]["password"], "kept");
    assert_eq!(json["env_change"], "unchanged");
    assert_eq!(std::fs::read(&env).unwrap(), before, "a rerun rewrote .env");
    assert_url_works(&env_value(&env, "DATABASE_URL").unwrap());
}

#[test]
fn a_typed_password_with_every_special_character_works_with_psql() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("typed");
    let password = "p@ss:w/rd?#%'\"\\ ünï€ode";
    let out =
        run(dbsetup(cluster, dir.path(), &["--db-name", &db]).env("AKSARA_DB_PASSWORD", password));
    assert_eq!(out.code, 0, "{out:?}");
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    assert_url_works(&url);
    assert!(!out.all().contains(password));
}

#[test]
fn the_password_can_come_from_stdin() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("stdin");
    let mut cmd = dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--db-password-stdin"],
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin-Secret1\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    assert!(url.contains(":from-stdin-Secret1@"), "{url}");
    assert_url_works(&url);
}

#[test]
fn names_that_need_quoting_and_hostile_names_are_harmless() {
    let cluster = support::shared(Shared::Scram);
    for name in [
        format!("My-App.db {}", std::process::id()),
        format!("x\"; DROP DATABASE postgres; -- {}", std::process::id()),
    ] {
        let dir = project();
        let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &name]));
        assert_eq!(out.code, 0, "{out:?}");
        assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
        let escaped = name.replace('\'', "''");
        assert_eq!(
            cluster.psql(
                "postgres",
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{escaped}'")
            ),
            "1"
        );
    }
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'postgres'"
        ),
        "1"
    );
}

#[test]
fn the_password_never_reaches_the_server_log() {
    let cluster = Cluster::start(ClusterConfig::default().set("log_statement", "all"));
    let dir = project();
    let password = "Canary-7f3a9-never-logged";
    let out =
        run(dbsetup(&cluster, dir.path(), &["--db-name", "logged"])
            .env("AKSARA_DB_PASSWORD", password));
    assert_eq!(out.code, 0, "{out:?}");
    let log = cluster.log_contents();
    assert!(
        log.contains("CREATE ROLE"),
        "log_statement=all did not log the setup: {log}"
    );
    assert!(
        log.contains("SCRAM-SHA-256$4096:"),
        "the role was not created from a verifier: {log}"
    );
    assert!(
        !log.contains(password),
        "the password reached the server log"
    );
    assert!(!out.all().contains(password));
}

#[test]
fn names_over_63_bytes_are_refused_before_anything_changes() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let name = "é".repeat(32);
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &name]));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_name_over_63_bytes",
        setup_transcript(
            &setup_command(&format!("--db-name {name}")),
            &out,
            cluster,
            &[]
        )
    );
    assert!(!dir.path().join(".env").exists());
    let out = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", "fine", "--db-user", "pg_evil"],
    ));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_reserved_pg_user_name",
        setup_transcript(
            &setup_command("--db-name fine --db-user pg_evil"),
            &out,
            cluster,
            &[]
        )
    );
    assert!(!dir.path().join(".env").exists());
}

#[test]
fn ci_mode_names_missing_flags() {
    let dir = project();
    let out = run(aksara(dir.path()).args(["dbsetup", "--non-interactive"]));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_in_ci_mode_names_the_missing_flags",
        transcript("aksara dbsetup --non-interactive", &out, &[])
    );
    // Without a terminal and without --non-interactive: fail at once, naming the flag.
    let out = run(aksara(dir.path()).arg("dbsetup"));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_without_a_terminal_asks_for_non_interactive",
        transcript("aksara dbsetup", &out, &[])
    );
}

#[test]
fn an_admin_without_createdb_is_told_which_privilege_is_missing() {
    let cluster = support::shared(Shared::Scram);
    let creator = support::unique_name("creator");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {creator} LOGIN CREATEROLE PASSWORD 'creator-pw'"),
    );
    let dir = project();
    let db = support::unique_name("denied");
    let out = run(aksara(dir.path())
        .args(["dbsetup", "--non-interactive", "--db-name", &db])
        .args([
            "--admin-url",
            &format!("postgresql://{creator}@127.0.0.1:{}/postgres", cluster.port),
        ])
        .env("PGPASSWORD", "creator-pw"));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_names_the_missing_createdb_privilege",
        setup_transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --db-name [DB] --admin-url postgresql://[ADMIN]@127.0.0.1:[PORT]/postgres",
            &out,
            cluster,
            &[(&db, "[DB]"), (&creator, "[ADMIN]")]
        )
    );
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{db}'")
        ),
        "0"
    );
    assert!(!dir.path().join(".env").exists());
}

#[test]
fn a_createdb_createrole_admin_can_set_up() {
    let cluster = support::shared(Shared::Scram);
    let creator = support::unique_name("manager");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {creator} LOGIN CREATEDB CREATEROLE PASSWORD 'manager-pw'"),
    );
    let dir = project();
    let db = support::unique_name("managed");
    let out = run(aksara(dir.path())
        .args(["dbsetup", "--non-interactive", "--db-name", &db])
        .args([
            "--admin-url",
            &format!("postgresql://{creator}@127.0.0.1:{}/postgres", cluster.port),
        ])
        .env("PGPASSWORD", "manager-pw"));
    assert_eq!(out.code, 0, "{out:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[test]
fn a_different_existing_value_needs_force_and_is_kept_as_a_comment() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let env = dir.path().join(".env");
    let original = "# settings\r\nexport SECRET_KEY='abc'\r\nDATABASE_URL=postgresql://old@elsewhere/old\r\nDEBUG=1";
    std::fs::write(&env, original).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).unwrap();
    let db = support::unique_name("force");
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_needs_force_to_replace_a_different_url",
        setup_transcript(
            &setup_command("--db-name [DB]"),
            &out,
            cluster,
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        original,
        ".env changed without --force"
    );
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")
        ),
        "0",
        "the server changed although setup was refused"
    );

    let out = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--force"],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.starts_with("# settings\r\nexport SECRET_KEY='abc'\r\n"),
        "{text:?}"
    );
    assert!(
        text.contains("# replaced by aksara: DATABASE_URL=postgresql://old@elsewhere/old"),
        "{text:?}"
    );
    assert!(text.contains("\r\nDEBUG=1"), "{text:?}");
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o640,
        "mode not kept"
    );
    assert_url_works(&env_value(&env, "DATABASE_URL").unwrap());
}

/// A project that ships its URL (`.env` copied from `.env.example`, the same password in a
/// compose file): the user it names for this database does not exist yet, so it is the one
/// created (no `--db-user` needed), with the password the URL holds, and `.env` stays byte for
/// byte as it was, with no `--force`. A user named after the database and a generated password
/// would have made the setup rewrite `.env` and break every other copy of that URL.
#[test]
fn a_new_user_gets_the_password_the_env_files_url_names_it_with() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("shipped");
    let role = format!("{db}_team");
    let team_password = "team-pw-7Qx";
    let env = dir.path().join(".env");
    let original = format!(
        "DATABASE_URL={}\nDEBUG=1\n",
        cluster.url(&role, Some(team_password), &db)
    );
    std::fs::write(&env, &original).unwrap();
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_a_new_user_gets_the_env_files_password",
        setup_transcript(
            &setup_command("--db-name [DB]"),
            &out,
            cluster,
            &[(&role, "[ROLE]"), (&db, "[DB]")]
        )
    );
    assert_eq!(std::fs::read_to_string(&env).unwrap(), original);
    assert!(
        !out.all().contains(team_password),
        "password printed: {out:?}"
    );
    assert_url_works(&env_value(&env, "DATABASE_URL").unwrap());

    // A password given wins over the URL's: the setup then rewrites the URL, as for any
    // other different value (here refused without --force, nothing created).
    let other = support::unique_name("shipped");
    let original = format!(
        "DATABASE_URL={}\n",
        cluster.url(&other, Some(team_password), &other)
    );
    std::fs::write(&env, &original).unwrap();
    let out = run(dbsetup(cluster, dir.path(), &["--db-name", &other])
        .env("AKSARA_DB_PASSWORD", "given-pw-3Zr"));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already sets DATABASE_URL"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), original);
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{other}'")
        ),
        "0"
    );
}

/// The same with the password in a variable the URL refers to (`${DB_PASSWORD}`, expanded by
/// python-dotenv, the framework's loader): the user gets the expanded password and the URL's
/// line keeps its reference.
#[test]
fn a_new_user_gets_the_password_of_a_reference_in_the_env_files_url() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("shipref");
    let env = dir.path().join(".env");
    let original = format!(
        "DB_PASSWORD=team-pw-9Ha\nDATABASE_URL=postgresql://{db}:${{DB_PASSWORD}}@127.0.0.1:{}/{db}\n",
        cluster.port
    );
    std::fs::write(&env, &original).unwrap();
    let out = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), original);
    assert!(
        !out.all().contains("team-pw-9Ha"),
        "password printed: {out:?}"
    );
    assert_url_works(&cluster.url(&db, Some("team-pw-9Ha"), &db));
}

#[test]
fn another_key_can_be_written_and_every_other_byte_stays() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let env = dir.path().join(".env");
    let original = "# comment\n\nexport A=1\nDATABASE_URL=\"postgresql://keep@me/db\"\n";
    std::fs::write(&env, original).unwrap();
    let db = support::unique_name("replica");
    let out = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--env-key", "REPLICA_DATABASE_URL"],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(text.starts_with(original), "{text:?}");
    assert_url_works(&env_value(&env, "REPLICA_DATABASE_URL").unwrap());
}

/// Eight runs at once with the same names from eight folders, serialised by the setup lock:
/// the first creates the user; the others find it with no URL for it in their `.env` and are
/// refused before changing anything (a new password would break the first one's URL). With
/// `--force password` each sets a new one in turn and all succeed: only the last one's URL
/// works then.
#[test]
fn parallel_runs_with_the_same_names_keep_the_first_ones_password() {
    let cluster = support::shared(Shared::Scram);
    let race = |db: &str, extra: &[&str]| -> Vec<(bool, Option<String>, String)> {
        let dirs: Vec<_> = (0..8).map(|_| project()).collect();
        let children: Vec<_> = dirs
            .iter()
            .map(|d| {
                let mut args = vec!["--db-name", db];
                args.extend_from_slice(extra);
                dbsetup(cluster, d.path(), &args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let results = children
            .into_iter()
            .zip(&dirs)
            .map(|(child, dir)| {
                let out = child.wait_with_output().unwrap();
                let url = env_value(&dir.path().join(".env"), "DATABASE_URL");
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                (out.status.success(), url, stderr)
            })
            .collect();
        assert_eq!(
            cluster.psql(
                "postgres",
                &format!(
                    "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = '{db}') || '|' || \
                            (SELECT count(*) FROM pg_database WHERE datname = '{db}')"
                )
            ),
            "1|1"
        );
        results
    };
    let works = |url: &Option<String>| {
        url.as_ref()
            .is_some_and(|u| psql_url(u, "SELECT 1").is_ok())
    };

    let db = support::unique_name("race");
    let results = race(&db, &[]);
    let succeeded: Vec<_> = results.iter().filter(|(ok, ..)| *ok).collect();
    assert_eq!(succeeded.len(), 1, "{results:?}");
    assert!(works(&succeeded[0].1), "the first run's URL works");
    for (ok, url, stderr) in results.iter().filter(|(ok, ..)| !*ok) {
        assert!(!ok && url.is_none(), "a refused run wrote .env: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: user \"{db}\" already exists, and .env holds no URL that logs in as it"
            )) && stderr.contains("nothing was changed"),
            "{stderr}"
        );
    }

    let db = support::unique_name("race");
    let results = race(&db, &["--force", "password"]);
    assert!(results.iter().all(|(ok, ..)| *ok), "{results:?}");
    let working = results.iter().filter(|(_, url, _)| works(url)).count();
    assert_eq!(working, 1, "the role's password is the last run's");
}

#[test]
fn parallel_runs_into_one_env_file_lose_no_key() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::write(dir.path().join(".env"), "KEEP=me\n").unwrap();
    let names: Vec<String> = (0..8)
        .map(|i| support::unique_name(&format!("multi{i}")))
        .collect();
    let children: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            dbsetup(
                cluster,
                dir.path(),
                &["--db-name", n, "--env-key", &format!("DB{i}_DATABASE_URL")],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let env = dir.path().join(".env");
    assert_eq!(env_value(&env, "KEEP").as_deref(), Some("me"));
    for i in 0..8 {
        let url = env_value(&env, &format!("DB{i}_DATABASE_URL"))
            .unwrap_or_else(|| panic!("DB{i} lost: {}", std::fs::read_to_string(&env).unwrap()));
        assert_url_works(&url);
    }
}

#[test]
fn setup_over_a_trust_socket_writes_a_url_that_works() {
    // Discovery from PGHOST: the socket, trust auth, no password typed.
    let cluster = Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        ..ClusterConfig::default()
    });
    let dir = project();
    let db = support::unique_name("sock");
    let out = run(aksara(dir.path())
        .args(["dbsetup", "--non-interactive", "--db-name", &db])
        .env("PGHOST", &cluster.socket_dir)
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "postgres"));
    assert_eq!(out.code, 0, "{out:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

#[allow(dead_code)]
fn debug(out: &Run) {
    eprintln!("{out:?}");
}

/// A server whose own configuration sets a search_path naming no schema that exists: the new
/// user logs in, but its tables have nowhere to go. The verification says so, with where the
/// setting comes from and the fix, and the setup is undone (no role, no database, no `.env`).
#[test]
fn a_server_wide_search_path_with_no_schema_fails_the_verification_and_is_undone() {
    let cluster = Cluster::start(ClusterConfig::default().set("search_path", "nowhere"));
    let dir = project();
    let out = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", "homeless"],
    ));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_a_search_path_with_no_schema_is_undone",
        setup_transcript(&setup_command("--db-name homeless"), &out, &cluster, &[])
    );
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'homeless'"
        ),
        "0"
    );
    assert!(!dir.path().join(".env").exists(), ".env written");
}

#[test]
fn a_failed_create_database_undoes_the_role_this_run_created() {
    let cluster = Cluster::start(ClusterConfig::default());
    // A session in template1 makes CREATE DATABASE fail (after ~5 s of waiting) with
    // "source database "template1" is being accessed by other users".
    let bins = support::bins();
    let mut holder = Command::new(&bins.psql);
    support::clear_pg_env(&mut holder);
    let mut holder = holder
        .args(["-X", "-q", "-h"])
        .arg(&cluster.socket_dir)
        .args([
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "template1",
        ])
        .env("PGPASSWORD", &cluster.password)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cluster.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'template1'",
    ) != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the template1 session did not appear"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let dir = project();
    let out = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", "halfway"],
    ));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_undoes_the_role_when_create_database_fails",
        setup_transcript(&setup_command("--db-name halfway"), &out, &cluster, &[])
    );
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'halfway'"
        ),
        "0"
    );
    assert!(
        !dir.path().join(".env").exists(),
        ".env written after a failed setup"
    );

    drop(holder.stdin.take());
    holder.wait().unwrap();
    let out = run(&mut dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", "halfway"],
    ));
    assert_eq!(out.code, 0, "the rerun did not finish the job: {out:?}");
    assert_url_works(&env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap());
}

/// An admin URL that requires TLS makes the app's URL require it too, and the drivers one URL
/// cannot serve that way are named with their own form (tests/cli/drivers.rs proves the forms
/// with the real drivers).
#[test]
fn an_admin_urls_sslmode_is_carried_and_the_drivers_that_need_another_form_are_named() {
    let cluster = support::shared(Shared::Ssl);
    let dir = project();
    let db = support::unique_name("tlscarry");
    let out = run(aksara(dir.path())
        .args([
            "dbsetup",
            "--non-interactive",
            "--db-name",
            &db,
            "--admin-url",
            &format!(
                "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=require",
                cluster.port
            ),
        ])
        .env("PGPASSWORD", &cluster.password));
    assert_eq!(out.code, 0, "{out:?}");
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    assert!(url.ends_with("?sslmode=require"), "{url}");
    assert_eq!(
        psql_url(
            &url,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .unwrap(),
        "t"
    );
    assert!(!out.all().contains(&cluster.password));
    insta::assert_snapshot!(
        "dbsetup_carries_sslmode_and_names_the_drivers_needing_another_form",
        setup_transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --db-name [DB] --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres?sslmode=require",
            &out,
            cluster,
            &[(&db, "[DB]")]
        )
    );
}

/// "Next steps" lists only commands that run here: the framework's `makemigrations` and
/// `migrate` when its CLI is found (a stand-in `aksara-migrate` on PATH here: the framework
/// cannot be installed on these machines), and the doctor always.
#[test]
fn next_steps_list_only_commands_that_run_here() {
    let cluster = support::shared(Shared::Scram);
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("aksara-migrate");
    std::fs::write(&script, "#!/bin/sh\necho stand-in migrate \"$@\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let dir = project();
    let db = support::unique_name("nextsteps");
    let out = run(dbsetup(cluster, dir.path(), &["--db-name", &db]).env("PATH", &path));
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_next_steps_include_the_frameworks_migrate_when_found",
        setup_transcript(
            &format!(
                "PATH=[STAND-IN BIN]:$PATH {}",
                setup_command("--db-name [DB]")
            ),
            &out,
            cluster,
            &[(&db, "[DB]")]
        )
    );
    // And the listed command runs: aksara forwards it.
    let forwarded = run(aksara(dir.path())
        .args(["migrate", "--check"])
        .env("PATH", &path));
    assert_eq!(forwarded.code, 0, "{forwarded:?}");
    assert_eq!(forwarded.stdout.trim(), "stand-in migrate --check");
}

/// The shell's `DATABASE_URL` set to another value: an app started from it gets that one
/// (dotenv does not override), so the summary says so; set to the written value, it says
/// nothing.
#[test]
fn the_summary_says_when_the_shell_sets_the_key_to_another_value() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("shadowed");
    let out = run(dbsetup(cluster, dir.path(), &["--db-name", &db])
        .env("DATABASE_URL", "postgresql://someone@elsewhere/other"));
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_notes_the_shells_other_database_url",
        setup_transcript(
            &format!(
                "DATABASE_URL=postgresql://someone@elsewhere/other {}",
                setup_command("--db-name [DB]")
            ),
            &out,
            cluster,
            &[(&db, "[DB]")]
        )
    );
    let written = env_value(&dir.path().join(".env"), "DATABASE_URL").expect("written");
    let json = |shell: &str| -> Value {
        let out = run(
            dbsetup(cluster, dir.path(), &["--db-name", &db, "--format", "json"])
                .env("DATABASE_URL", shell),
        );
        assert_eq!(out.code, 0, "{out:?}");
        serde_json::from_str(&out.stdout).expect("one JSON document")
    };
    assert_eq!(
        json("postgresql://someone@elsewhere/other")["shell_shadows"],
        serde_json::json!(["DATABASE_URL"])
    );
    assert!(json(&written).get("shell_shadows").is_none());
}

/// Run in a subfolder of a project whose root has the `.env`, both commands use that file (the
/// one python-dotenv and dotenvy find from there): a rerun keeps its password and creates no
/// second `.env`, and doctor checks it. In a folder that is no project's, nothing above is used.
#[test]
fn in_a_subfolder_the_projects_env_file_is_used() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let db = support::unique_name("subfolder");
    let first = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(first.code, 0, "{first:?}");
    let env = dir.path().join(".env");
    let before = std::fs::read(&env).unwrap();

    let again = run(&mut dbsetup(
        cluster,
        &app,
        &["--db-name", &db, "--format", "json"],
    ));
    assert_eq!(again.code, 0, "{again:?}");
    let json: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["env_file"], "../.env", "{json:#}");
    assert_eq!(json["env_change"], "unchanged", "{json:#}");
    assert_eq!(json["role"]["password"], "kept", "{json:#}");
    assert_eq!(
        std::fs::read(&env).unwrap(),
        before,
        "the project's .env changed"
    );
    assert!(!app.join(".env").exists(), "a second .env was created");

    let doctor = run(aksara(&app).args(["doctor", "--format", "json"]));
    assert_eq!(doctor.code, 0, "{doctor:?}");
    let report: Value = serde_json::from_str(&doctor.stdout).unwrap();
    assert_eq!(
        report["source"], "../.env (DATABASE_URL, line 1)",
        "{report:#}"
    );

    // Not a project (no `.git`, no `pyproject.toml`): a `.env` above is not the folder's.
    std::fs::remove_dir(dir.path().join(".git")).unwrap();
    let doctor = run(aksara(&app).arg("doctor"));
    assert_eq!(doctor.code, 2, "{doctor:?}");
    assert!(
        doctor
            .stderr
            .contains("no database URL to check: --url was not given, there is no .env here, and"),
        "{doctor:?}"
    );
}

/// A first setup of `db` in `dir`: its `.env`, the URL written there, and that URL's password.
fn set_up(cluster: &Cluster, dir: &Path, db: &str) -> (PathBuf, String, String) {
    let first = run(&mut dbsetup(cluster, dir, &["--db-name", db]));
    assert_eq!(first.code, 0, "{first:?}");
    let env = dir.join(".env");
    let url = env_value(&env, "DATABASE_URL").unwrap();
    let cs = aksara::dsn::ConnString::parse(&url).unwrap();
    let password = cs.password.as_ref().unwrap().expose().to_string();
    (env, url, password)
}

/// `.env` sets DATABASE_URL twice: a stale URL first, then the working one, which python-dotenv
/// (the framework's loader) gives the app. A rerun judges the app's line: it logs in, so the
/// user keeps its password. Before, dbsetup judged the first line and said `.env` "holds no URL
/// that logs in". The stale line is what would change, so without --force nothing is written
/// and the error names it; with --force it is replaced by the working URL (kept as a comment),
/// and the server's password is untouched.
#[test]
fn a_key_set_twice_is_judged_by_the_line_the_app_gets() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("twice");
    let (env, url, password) = set_up(cluster, dir.path(), &db);
    let stale = url.replace(&password, "stale");
    let text = format!("DATABASE_URL={stale}\nDATABASE_URL={url}\n");
    std::fs::write(&env, &text).unwrap();

    let refused = run(&mut dbsetup(cluster, dir.path(), &["--db-name", &db]));
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "error: .env already sets DATABASE_URL (line 1) to a different value; nothing was changed"
        ),
        "{refused:?}"
    );
    assert!(
        !refused.all().contains("holds no URL that logs in"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_to_string(&env).unwrap(), text);

    let forced = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--force", "--format", "json"],
    ));
    assert_eq!(forced.code, 0, "{forced:?}");
    let json: Value = serde_json::from_str(&forced.stdout).unwrap();
    assert_eq!(json["role"]["password"], "kept", "{json:#}");
    let after = std::fs::read_to_string(&env).unwrap();
    assert_eq!(
        after
            .lines()
            .filter(|l| l.starts_with("DATABASE_URL="))
            .collect::<Vec<_>>(),
        [format!("DATABASE_URL={url}"), format!("DATABASE_URL={url}")],
        "{after}"
    );
    assert!(
        after.starts_with("# replaced by aksara: DATABASE_URL="),
        "{after}"
    );
    assert_url_works(&url);

    // The app's line takes its password from a reference: it is not rewritten as a literal
    // (python-dotenv would no longer expand it), so nothing is written and the stale line is
    // named instead.
    let text = format!(
        "DB_PASSWORD={password}\nDATABASE_URL={stale}\nDATABASE_URL={}\n",
        url.replace(&password, "${DB_PASSWORD}")
    );
    std::fs::write(&env, &text).unwrap();
    let kept = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--format", "json"],
    ));
    assert_eq!(kept.code, 0, "{kept:?}");
    let json: Value = serde_json::from_str(&kept.stdout).unwrap();
    assert_eq!(json["role"]["password"], "kept", "{json:#}");
    assert_eq!(json["env_change"], "unchanged", "{json:#}");
    assert!(
        kept.stderr
            .contains(".env also sets DATABASE_URL on line 2, to a value the app does not get"),
        "{kept:?}"
    );
    assert_eq!(std::fs::read_to_string(&env).unwrap(), text);
}

/// A `.env` whose URL takes its password from another line (`${DB_PASSWORD}`, which
/// python-dotenv expands): a rerun logs in with what the app gets, keeps the password, and
/// leaves the file as written (it had said no URL there logged in).
#[test]
fn a_rerun_keeps_a_url_whose_password_is_a_dotenv_reference() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let db = support::unique_name("reference");
    let (env, url, password) = set_up(cluster, dir.path(), &db);
    let text = format!(
        "DB_PASSWORD={password}\nDATABASE_URL={}\n",
        url.replace(&password, "${DB_PASSWORD}")
    );
    std::fs::write(&env, &text).unwrap();

    let again = run(&mut dbsetup(
        cluster,
        dir.path(),
        &["--db-name", &db, "--format", "json"],
    ));
    assert_eq!(again.code, 0, "{again:?}");
    let json: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["role"]["password"], "kept", "{json:#}");
    assert_eq!(json["env_change"], "unchanged", "{json:#}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), text);
    assert_url_works(&url);
}
