//! The foundation against real servers: our connection model reaches PostgreSQL over TCP
//! with SCRAM, over the unix socket, and with TLS; libpq accepts the URLs we render.

use std::time::Duration;

use aksara::connect::{self, FailureKind};
use aksara::dsn::{ConnString, Environment, Host, Password, Reveal};
use sqlx::Row;

use crate::runtime;
use crate::support::{self, Shared};

/// An environment with nothing in it: tests must not depend on the developer's PG* variables.
pub struct EmptyEnv;

impl Environment for EmptyEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn os_user(&self) -> Option<String> {
        Some("nobody".into())
    }
    fn default_host(&self, _: u16) -> Host {
        Host::Tcp("localhost".into())
    }
    fn pgpass_password(&self, _: &str, _: u16, _: &str, _: &str) -> Option<String> {
        None
    }
}

async fn select_one(url: &str) -> Result<(sqlx::PgConnection, i32), FailureKind> {
    let cfg = crate::config(url);
    let mut c = connect::connect(&cfg, Duration::from_secs(5))
        .await
        .map_err(|f| f.last().failure.clone())?;
    let one: i32 = sqlx::query("SELECT 1")
        .fetch_one(&mut c.conn)
        .await
        .unwrap()
        .get(0);
    Ok((c.conn, one))
}

#[test]
fn connects_over_tcp_with_scram() {
    let cluster = support::shared(Shared::Scram);
    let (_, one) = runtime()
        .block_on(select_one(&cluster.admin_url()))
        .unwrap();
    assert_eq!(one, 1);
}

#[test]
fn connects_over_the_unix_socket() {
    let cluster = support::shared(Shared::Scram);
    let url = format!(
        "postgresql://postgres:{}@/postgres?host={}&port={}",
        support::encode(&cluster.password),
        cluster.socket_dir.display(),
        cluster.port
    );
    runtime().block_on(async {
        let (mut conn, one) = select_one(&url).await.unwrap();
        assert_eq!(one, 1);
        // A socket connection has no client address: proves it did not go over TCP.
        let addr: Option<String> = sqlx::query_scalar("SELECT inet_client_addr()::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(addr, None);
    });
}

#[test]
fn sslmode_require_uses_tls() {
    let cluster = support::shared(Shared::Ssl);
    let url = format!("{}?sslmode=require", cluster.admin_url());
    runtime().block_on(async {
        let (mut conn, _) = select_one(&url).await.unwrap();
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(ssl);
    });
}

#[test]
fn sslmode_require_on_a_socket_is_ignored_as_libpq_does() {
    let cluster = support::shared(Shared::Ssl);
    let url = format!(
        "postgresql://postgres:{}@/postgres?host={}&port={}&sslmode=require",
        support::encode(&cluster.password),
        cluster.socket_dir.display(),
        cluster.port
    );
    let (_, one) = runtime().block_on(select_one(&url)).unwrap();
    assert_eq!(one, 1);
}

#[test]
fn a_wrong_password_is_the_servers_28p01() {
    let cluster = support::shared(Shared::Scram);
    let url = cluster.url("postgres", Some("wrong-password"), "postgres");
    let failure = runtime()
        .block_on(select_one(&url))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(failure.sqlstate(), Some("28P01"), "{failure:?}");
}

#[test]
fn multiple_hosts_are_tried_in_order() {
    let cluster = support::shared(Shared::Scram);
    let dead = support::free_port();
    let url = format!(
        "postgresql://postgres:{}@127.0.0.1:{dead},127.0.0.1:{}/postgres",
        support::encode(&cluster.password),
        cluster.port
    );
    let (_, one) = runtime().block_on(select_one(&url)).unwrap();
    assert_eq!(one, 1);
}

#[test]
fn psql_accepts_a_rendered_url_with_a_hostile_password() {
    let cluster = support::shared(Shared::Scram);
    let role = support::unique_name("hostile");
    let password = "p@ss:w/rd?#%+ 'q\"\\ é漢";
    let verifier = aksara::provision::scram_verifier(password);
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{verifier}'"),
    );
    let mut cs =
        ConnString::parse(&format!("postgresql://127.0.0.1:{}/postgres", cluster.port)).unwrap();
    cs.user = Some(role.clone());
    cs.password = Some(Password::new(password.to_string()));
    let url = cs.to_url(Reveal::Secret);
    assert_eq!(crate::psql_url(&url, "SELECT current_user").unwrap(), role);
    // The keyword/value rendering works too.
    let kv = cs.to_keyword_value(Reveal::Secret);
    assert_eq!(crate::psql_url(&kv, "SELECT current_user").unwrap(), role);
    // And sqlx through our model.
    let (_, one) = runtime().block_on(select_one(&url)).unwrap();
    assert_eq!(one, 1);
}

#[test]
fn version_and_help_work() {
    let dir = crate::project();
    let out = crate::run(crate::aksara(dir.path()).arg("--version"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("aksara "), "{out:?}");
    let help = crate::run(crate::aksara(dir.path()).arg("--help"));
    assert_eq!(help.code, 0);
    for needle in [
        "dbsetup",
        "doctor",
        "--color",
        "--quiet",
        "--verbose",
        "Examples:",
        "Exit codes:",
    ] {
        assert!(
            help.stdout.contains(needle),
            "--help lacks {needle}: {}",
            help.stdout
        );
    }
    let usage = crate::run(crate::aksara(dir.path()).arg("frobnicate"));
    assert_eq!(usage.code, 2, "{usage:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, failure_persistence: None, ..Default::default() })]

    /// Arbitrary passwords (any Unicode but NUL, with URL metacharacters mixed in): the URL we
    /// render is accepted by libpq (psql) against a real server, for the role that has it.
    #[test]
    fn libpq_accepts_rendered_urls_for_arbitrary_passwords(
        core in "[^\u{0}]{0,16}",
        special in proptest::sample::select(vec!["@", ":", "/", "?", "#", "%", "+", "'", "\"", "\\", " ", "&", "="]),
    ) {
        let password = format!("{special}{core}{special}");
        let cluster = support::shared(Shared::Scram);
        let role = support::unique_name("prop");
        let verifier = aksara::provision::scram_verifier(&password);
        cluster.psql("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD '{verifier}'"));
        let mut cs = ConnString::parse(&format!("postgresql://127.0.0.1:{}/postgres", cluster.port)).unwrap();
        cs.user = Some(role.clone());
        cs.password = Some(Password::new(password.clone()));
        let url = cs.to_url(Reveal::Secret);
        proptest::prop_assert_eq!(crate::psql_url(&url, "SELECT current_user").map_err(|e| e.replace(&password, "<pw>")), Ok(role.clone()));
        // It parses back to the same password.
        let back = ConnString::parse(&url).unwrap();
        proptest::prop_assert_eq!(back.password.as_ref().map(|p| p.expose().to_string()), Some(password.clone()));
        cluster.psql("postgres", &format!("DROP ROLE {role}"));
    }
}
