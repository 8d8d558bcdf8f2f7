//! Against a real streaming standby (`pg_basebackup -R`): roles, lag in bytes and seconds, a
//! paused replay, misdirected keys, and `target_session_attrs` over a standby + primary pair.

use std::time::Duration;

use aksara::connect::{self, SkipReason, TargetSessionAttrs};
use aksara::replica::{self, Role};

use crate::config;
use crate::runtime;
use crate::support::{Cluster, PgBouncer, PgBouncerConfig, PoolMode, StandbyPair, shared_pair};

const BOUND: Duration = Duration::from_secs(5);

/// The role from the login and from the query, and the lag, of one server.
fn role_of(cluster: &Cluster) -> (Option<Role>, replica::ServerRole) {
    runtime().block_on(async {
        let mut c = connect::connect(&config(&cluster.admin_url()), BOUND)
            .await
            .unwrap();
        let from_login = replica::role_from_login(&c.conn);
        let inspected = replica::inspect(&mut c.conn, BOUND).await.unwrap();
        connect::close(c.conn).await;
        (from_login, inspected)
    })
}

#[test]
fn primary_and_standby_are_told_apart_from_the_login_and_the_query() {
    let pair = shared_pair();
    let (login, inspected) = role_of(&pair.primary);
    assert_eq!(login, Some(Role::Primary));
    assert_eq!(inspected.role, Role::Primary);
    assert!(inspected.lag.is_none());

    let (login, inspected) = role_of(&pair.standby);
    assert_eq!(login, Some(Role::Standby));
    assert_eq!(inspected.role, Role::Standby);
    let lag = inspected.lag.expect("a standby has a lag");
    assert!(!lag.replay_paused);
    assert!(lag.receive_lsn.is_some(), "it streams: {lag:?}");
}

#[test]
fn misdirected_keys_are_named() {
    let pair = shared_pair();
    let (_, primary) = role_of(&pair.primary);
    let (_, standby) = role_of(&pair.standby);
    let m = replica::check_role("DATABASE_REPLICA_URL", primary.role).unwrap();
    assert_eq!(m.code(), "replica-key-at-primary");
    let m = replica::check_role("DATABASE_URL", standby.role).unwrap();
    assert_eq!(m.code(), "primary-key-at-standby");
    assert!(m.hint().contains("target_session_attrs=read-write"));
    assert!(replica::check_role("DATABASE_URL", primary.role).is_none());
    assert!(replica::check_role("DATABASE_REPLICA_URL", standby.role).is_none());
}

#[test]
fn a_paused_replay_shows_lag_in_bytes_and_seconds() {
    let pair = StandbyPair::start();
    // A replayed transaction first, so the standby has a replay timestamp to age from.
    pair.primary
        .psql("postgres", "create table before_pause (id int)");
    pair.wait_caught_up();
    let (_, caught_up) = role_of(&pair.standby);
    let lag = caught_up.lag.unwrap();
    assert_eq!(lag.bytes, Some(0), "{lag:?}");
    assert_eq!(lag.seconds, Some(0.0), "{lag:?}");
    assert!(replica::lag_warnings(&lag, Duration::ZERO).is_empty());

    pair.pause_replay();
    pair.make_lag(300_000);
    let (_, paused) = role_of(&pair.standby);
    let lag = paused.lag.unwrap();
    assert!(lag.replay_paused, "{lag:?}");
    assert!(lag.bytes.unwrap() >= 300_000, "{lag:?}");
    assert!(lag.seconds.is_some_and(|s| s > 0.0), "{lag:?}");
    let codes: Vec<&str> = replica::lag_warnings(&lag, Duration::ZERO)
        .iter()
        .map(|w| w.code())
        .collect();
    assert_eq!(codes, ["replica-replay-paused", "replica-lag"]);
    // A threshold above the lag warns only about the pause.
    let codes: Vec<&str> = replica::lag_warnings(&lag, Duration::from_secs(3600))
        .iter()
        .map(|w| w.code())
        .collect();
    assert_eq!(codes, ["replica-replay-paused"]);

    pair.resume_replay();
    pair.wait_caught_up();
    let (_, resumed) = role_of(&pair.standby);
    let lag = resumed.lag.unwrap();
    assert!(!lag.replay_paused);
    assert_eq!(lag.bytes, Some(0), "{lag:?}");
}

/// Connects with two hosts in the given order; the chosen port and the skipped hosts.
fn choose(
    first: &Cluster,
    second: &Cluster,
    attrs: &str,
) -> Result<(u16, Vec<connect::SkippedHost>), connect::ConnectFailure> {
    let url = format!(
        "postgresql://postgres:{}@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs={attrs}",
        first.password, first.port, second.port
    );
    runtime().block_on(async {
        let c = connect::connect(&config(&url), BOUND).await?;
        let chosen = (c.endpoint.port, c.skipped.clone());
        connect::close(c.conn).await;
        Ok(chosen)
    })
}

#[test]
fn target_session_attrs_chooses_as_libpq_does_and_says_why_it_skipped() {
    let pair = shared_pair();
    let (primary, standby) = (&pair.primary, &pair.standby);

    let (port, skipped) = choose(standby, primary, "read-write").unwrap();
    assert_eq!(port, primary.port);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].endpoint.port, standby.port);
    assert_eq!(skipped[0].reason, SkipReason::ReadOnly);
    assert_eq!(skipped[0].reason.to_string(), "session is read-only");

    let (port, skipped) = choose(standby, primary, "primary").unwrap();
    assert_eq!(port, primary.port);
    assert_eq!(skipped[0].reason, SkipReason::HotStandby);

    let (port, skipped) = choose(primary, standby, "standby").unwrap();
    assert_eq!(port, standby.port);
    assert_eq!(skipped[0].reason, SkipReason::NotHotStandby);

    let (port, skipped) = choose(primary, standby, "read-only").unwrap();
    assert_eq!(port, standby.port);
    assert_eq!(skipped[0].reason, SkipReason::NotReadOnly);

    let (port, skipped) = choose(primary, standby, "prefer-standby").unwrap();
    assert_eq!(port, standby.port);
    assert_eq!(skipped.len(), 1);

    let (port, skipped) = choose(primary, standby, "any").unwrap();
    assert_eq!(port, primary.port);
    assert!(skipped.is_empty());

    // No standby among the hosts: prefer-standby's second pass takes the first that answers.
    let (port, skipped) = choose(primary, primary, "prefer-standby").unwrap();
    assert_eq!(port, primary.port);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .all(|s| s.wanted == TargetSessionAttrs::PreferStandby)
    );

    // None acceptable: a failure that keeps every reason, in libpq's words.
    let failure = choose(standby, standby, "read-write").unwrap_err();
    assert_eq!(failure.skipped.len(), 2);
    assert_eq!(failure.last().failure.to_string(), "session is read-only");
}

#[test]
fn a_standby_behind_pgbouncer_is_still_told_from_the_login() {
    let pair = shared_pair();
    let bouncer = PgBouncer::start(&pair.standby, PgBouncerConfig::new(PoolMode::Transaction));
    let url = bouncer.admin_url(&pair.standby);
    let (login, inspected) = runtime().block_on(async {
        let mut c = connect::connect(&config(&url), BOUND).await.unwrap();
        let login = replica::role_from_login(&c.conn);
        let inspected = replica::inspect(&mut c.conn, BOUND).await.unwrap();
        connect::close(c.conn).await;
        (login, inspected)
    });
    // PgBouncer replays the server's ParameterStatus messages to its clients.
    assert_eq!(login, Some(Role::Standby));
    assert_eq!(inspected.role, Role::Standby);
}

/// Doctor on a `.env` with both keys, judged for libpq (the URLs are the harness's).
fn doctor_env(env: &str) -> (crate::Run, serde_json::Value) {
    let dir = crate::project();
    std::fs::write(dir.path().join(".env"), env).unwrap();
    // As dbsetup writes it, so the file checks have nothing to say.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.path().join(".env"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = crate::run(
        crate::aksara(dir.path()).args(["doctor", "--driver", "libpq", "--format", "json"]),
    );
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out, json)
}

/// A run against a standby pair as the user read it: both ports and the passwords masked.
fn pair_transcript(
    command: &str,
    out: &crate::Run,
    pair: &StandbyPair,
    names: &[(&str, &'static str)],
) -> String {
    let primary = pair.primary.port.to_string();
    let standby = pair.standby.port.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        (&primary, "[PRIMARY PORT]"),
        (&standby, "[STANDBY PORT]"),
        (&pair.primary.password, "[PASSWORD]"),
        (&pair.standby.password, "[PASSWORD]"),
    ];
    pairs.extend_from_slice(names);
    let text = crate::transcript(command, out, &pairs);
    // How far the standby is behind depends on the moment of the run.
    regex::Regex::new(r"\d+ bytes and \d+(\.\d+)? s behind")
        .unwrap()
        .replace_all(&text, "[N] bytes and [N] s behind")
        .into_owned()
}

fn target<'a>(json: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"].as_str().unwrap().contains(&format!("({key},")))
        .unwrap_or_else(|| panic!("no target for {key}: {json:#}"))
}

fn codes(target: &serde_json::Value) -> Vec<String> {
    target["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect()
}

/// End to end through doctor: the primary key passes, the replica key is reported as a
/// standby with its lag, a paused replay is a warning, and keys pointed the wrong way fail.
#[test]
fn doctor_tells_the_primary_and_the_replica_keys_apart() {
    let pair = StandbyPair::start();
    let good = format!(
        "DATABASE_URL={}\nDATABASE_REPLICA_URL={}\n",
        pair.primary.admin_url(),
        pair.standby.admin_url()
    );
    let (out, json) = doctor_env(&good);
    assert_eq!(out.code, 0, "{out:?}");
    let replica = target(&json, "DATABASE_REPLICA_URL");
    let line = replica["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "replica")
        .expect("a replica line");
    assert!(
        line["message"].as_str().unwrap().contains("is a standby"),
        "{line}"
    );
    assert!(codes(target(&json, "DATABASE_URL")).is_empty(), "{json:#}");
    assert!(
        !codes(replica).contains(&"cannot-create-tables".to_string()),
        "{json:#}"
    );

    pair.pause_replay();
    let (out, json) = doctor_env(&good);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        codes(target(&json, "DATABASE_REPLICA_URL")).contains(&"replica-replay-paused".to_string()),
        "{json:#}"
    );
    pair.resume_replay();

    let swapped = format!(
        "DATABASE_URL={}\nDATABASE_REPLICA_URL={}\n",
        pair.standby.admin_url(),
        pair.primary.admin_url()
    );
    let (out, json) = doctor_env(&swapped);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        codes(target(&json, "DATABASE_URL")).contains(&"primary-key-at-standby".to_string()),
        "{json:#}"
    );
    assert!(
        codes(target(&json, "DATABASE_REPLICA_URL"))
            .contains(&"replica-key-at-primary".to_string()),
        "{json:#}"
    );
}

/// `target_session_attrs=read-write` over a standby alone: every host lets the client in and
/// none can write, which doctor names (libpq refuses the same URL).
#[test]
fn doctor_reports_an_unmet_target_session_attrs() {
    let pair = shared_pair();
    let url = format!(
        "{}?target_session_attrs=read-write",
        pair.standby.admin_url()
    );
    let dir = crate::project();
    let out = crate::run(crate::aksara(dir.path()).args([
        "doctor", "--driver", "libpq", "--format", "json", "--url", &url,
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failed = crate::failed_checks(&json);
    assert_eq!(failed.len(), 1, "{json:#}");
    assert_eq!(failed[0]["code"], "target-session-attrs-unmet", "{json:#}");
    assert!(
        crate::psql_url(&url, "SELECT 1").is_err(),
        "libpq accepted what doctor refused"
    );
}

/// `dbsetup --replica-url`: the app's user logs in on the standby (once replication brought the
/// role), which must be in recovery, and DATABASE_REPLICA_URL is written; doctor then passes
/// both keys with their roles.
#[test]
fn dbsetup_writes_a_verified_replica_url() {
    let pair = StandbyPair::start();
    let dir = crate::project();
    let db = crate::support::unique_name("withreplica");
    let out = crate::run(
        crate::aksara(dir.path())
            .args([
                "dbsetup",
                "--non-interactive",
                "--db-name",
                &db,
                "--admin-url",
            ])
            .arg(format!(
                "postgresql://postgres@127.0.0.1:{}/postgres",
                pair.primary.port
            ))
            .arg("--replica-url")
            .arg(format!("postgresql://127.0.0.1:{}/", pair.standby.port))
            .env("PGPASSWORD", &pair.primary.password),
    );
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_writes_a_verified_replica_url",
        pair_transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --db-name [DB] --admin-url postgresql://postgres@127.0.0.1:[PRIMARY PORT]/postgres --replica-url postgresql://127.0.0.1:[STANDBY PORT]/",
            &out,
            &pair,
            &[(&db, "[DB]")]
        )
    );
    let env = dir.path().join(".env");
    let replica = crate::env_value(&env, "DATABASE_REPLICA_URL").expect("the replica key");
    assert!(
        replica.contains(&format!(":{}/", pair.standby.port)),
        "{replica}"
    );
    assert_eq!(
        crate::psql_url(&replica, "SELECT pg_is_in_recovery()").as_deref(),
        Ok("t")
    );
    let doctor = crate::run(crate::aksara(dir.path()).args(["doctor", "--driver", "libpq"]));
    assert_eq!(doctor.code, 0, "{doctor:?}");
    insta::assert_snapshot!(
        "doctor_passes_the_primary_and_the_replica_key",
        pair_transcript(
            "aksara doctor --driver libpq",
            &doctor,
            &pair,
            &[(&db, "[DB]")]
        )
    );

    // Pointed at the primary, it is refused before .env is written, and the setup is undone.
    let dir = crate::project();
    let refused = crate::support::unique_name("noreplica");
    let out = crate::run(
        crate::aksara(dir.path())
            .args([
                "dbsetup",
                "--non-interactive",
                "--db-name",
                &refused,
                "--admin-url",
            ])
            .arg(format!(
                "postgresql://postgres@127.0.0.1:{}/postgres",
                pair.primary.port
            ))
            .arg("--replica-url")
            .arg(format!("postgresql://127.0.0.1:{}/", pair.primary.port))
            .env("PGPASSWORD", &pair.primary.password),
    );
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_replica_url_at_the_primary",
        pair_transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --db-name [DB] --admin-url postgresql://postgres@127.0.0.1:[PRIMARY PORT]/postgres --replica-url postgresql://127.0.0.1:[PRIMARY PORT]/",
            &out,
            &pair,
            &[(&refused, "[DB]")]
        )
    );
    assert!(!dir.path().join(".env").exists(), "{out:?}");
    assert_eq!(
        pair.primary.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{refused}'")
        ),
        "0",
        "{out:?}"
    );
}

/// A read-only session's hint says which of the two causes it is, from the same session's
/// `pg_is_in_recovery()`: a standby (point the URL at the primary), never the settings' fix.
#[test]
fn a_read_only_session_on_a_standby_is_told_it_is_the_standby() {
    let pair = shared_pair();
    let (_, report) = crate::pooler::doctor_json(&pair.standby.admin_url());
    let checks = crate::pooler::checks_with(&report, "privileges");
    let privileges = checks
        .first()
        .unwrap_or_else(|| panic!("no privileges line: {report:#}"));
    assert_eq!(privileges["status"], "warn", "{privileges}");
    let hint = privileges["hint"].as_str().expect("a hint");
    assert!(
        hint.starts_with("the server is a standby (pg_is_in_recovery() is true"),
        "{hint}"
    );
    assert!(!hint.contains("default_transaction_read_only"), "{hint}");
}
