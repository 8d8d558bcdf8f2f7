//! Through a real PgBouncer (Debian's 1.18) in session, transaction and statement mode: aksara
//! connects, `aksara::pooler` tells the pooler and its mode from what the login shows plus one
//! probe, and each of PgBouncer's own refusals is recognised with its code and fix.

use std::time::Duration;

use aksara::connect::{self, Connected, FailureKind};
use aksara::dsn::ConnConfig;
use aksara::pooler::{self, FirstLook, ModeVerdict, PoolMode, PoolerError, PoolerKind};
use sqlx::Row as _;

use crate::config;
use crate::runtime;
use crate::support::{
    self, Cluster, ClusterConfig, PgBouncer, PgBouncerConfig, Shared, shared_pgbouncer,
};
use crate::{aksara, project, run};

const BOUND: Duration = Duration::from_secs(5);

fn ours(mode: support::PoolMode) -> PoolMode {
    match mode {
        support::PoolMode::Session => PoolMode::Session,
        support::PoolMode::Transaction => PoolMode::Transaction,
        support::PoolMode::Statement => PoolMode::Statement,
    }
}

async fn login(cfg: &ConnConfig) -> Result<Connected, FailureKind> {
    connect::connect(cfg, BOUND)
        .await
        .map_err(|f| f.last().failure.clone())
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::raw_sql("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
        .get(0)
}

/// The first look and the identification as doctor would run them, on one login.
async fn look_and_identify(url: &str) -> (FirstLook, Option<pooler::PoolerReport>) {
    let cfg = config(url);
    let mut c = login(&cfg).await.expect("login");
    let signals = pooler::LoginSignals::of(&c.conn);
    let pid = backend_pid(&mut c.conn).await;
    let look = pooler::first_look(&signals, pid, &c.endpoint.host);
    let port: i32 = sqlx::raw_sql("SELECT current_setting('port')::int")
        .fetch_one(&mut c.conn)
        .await
        .unwrap()
        .get(0);
    let report = pooler::detect(&mut c, &cfg, pid, Some(port), BOUND).await;
    connect::close(c.conn).await;
    (look, report)
}

#[test]
fn a_direct_login_shows_no_pooler_and_costs_no_second_connection() {
    let cluster =
        support::Cluster::start(support::ClusterConfig::default().set("log_connections", "on"));
    let (look, report) = runtime().block_on(look_and_identify(&cluster.admin_url()));
    assert_eq!(look, FirstLook::Direct);
    assert!(report.is_none());
    let logins = cluster
        .log_contents()
        .matches("connection authorized")
        .count();
    assert_eq!(logins, 1, "{}", cluster.log_contents());
}

#[test]
fn pgbouncer_and_its_mode_are_told_in_each_mode() {
    let cluster = support::shared(Shared::Scram);
    for mode in support::PoolMode::ALL {
        let bouncer = shared_pgbouncer(mode);
        let (look, report) = runtime().block_on(look_and_identify(&bouncer.admin_url(cluster)));
        assert!(
            matches!(
                look,
                FirstLook::Pooler {
                    evidence: pooler::Evidence::PidMismatch { .. },
                    ..
                }
            ),
            "{mode:?}: {look:?}"
        );
        let report = report.unwrap();
        // `postgres` is not in admin_users: the console says "not allowed", the probe finds the mode.
        assert_eq!(report.kind, PoolerKind::PgBouncer, "{mode:?}: {report:?}");
        assert_eq!(report.mode.mode(), Some(ours(mode)), "{mode:?}: {report:?}");
        assert!(
            report.evidence.iter().any(|e| e.contains("not allowed")),
            "{report:?}"
        );
    }
}

#[test]
fn the_admin_console_gives_mode_and_version_when_the_user_may_read_it() {
    // Its own PgBouncer with an explicit [databases] line: the shared ones forward through
    // `*`, whose automatic entries PgBouncer does not always list in SHOW DATABASES (seen
    // under parallel tests), and then aksara rightly reports no server behind it.
    let bouncer = PgBouncer::start(
        support::shared(Shared::Scram),
        PgBouncerConfig::new(support::PoolMode::Transaction).databases(&["postgres = {server}"]),
    );
    let url = bouncer.url(
        support::ADMIN_USER,
        Some(&bouncer.admin_password),
        "postgres",
    );
    let cfg = config(&url);
    let endpoint = cfg.endpoints[0].clone();
    // The console user exists only in PgBouncer: no server login, so ask identify directly
    // with a stand-in first connection (the superuser's).
    let cluster = support::shared(Shared::Scram);
    let first_cfg = config(&bouncer.admin_url(cluster));
    let report = runtime().block_on(async {
        let mut c = login(&first_cfg).await.unwrap();
        let look = FirstLook::Pooler {
            kind: PoolerKind::Unidentified,
            evidence: pooler::Evidence::PidMismatch {
                announced: 0,
                backend: 0,
            },
        };
        let report = pooler::identify(&mut c.conn, &cfg, &endpoint, c.tls_mode, &look, BOUND).await;
        connect::close(c.conn).await;
        report
    });
    assert_eq!(report.kind, PoolerKind::PgBouncer);
    assert_eq!(
        report.version.as_deref(),
        Some("PgBouncer 1.18.0"),
        "{report:?}"
    );
    assert!(
        matches!(&report.mode, ModeVerdict::Known { mode: PoolMode::Transaction, how } if how.contains("admin console")),
        "{report:?}"
    );
    // 1.18 has no max_prepared_statements.
    assert_eq!(report.tracks_prepared_statements, Some(false));
    // Where the server is, for a direct admin URL (the `*` line forwards to the socket).
    let server = report.server.clone().unwrap_or_else(|| {
        panic!(
            "SHOW DATABASES names no server for postgres: {report:?}\n{:?}",
            bouncer.console("SHOW DATABASES")
        )
    });
    assert_eq!(server.host, cluster.socket_dir.display().to_string());
    assert_eq!(server.port, cluster.port);
    assert_eq!(server.database, "postgres");
    // The derived direct config reaches the server itself: no pooler in the first look.
    let direct = server.direct_config(&first_cfg);
    let look = runtime().block_on(async {
        let mut c = login(&direct).await.unwrap();
        let pid = backend_pid(&mut c.conn).await;
        let look = pooler::first_look(&pooler::LoginSignals::of(&c.conn), pid, &c.endpoint.host);
        connect::close(c.conn).await;
        look
    });
    assert_eq!(look, FirstLook::Direct);
}

#[test]
fn doctor_passes_through_pgbouncer_in_every_mode() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    for mode in support::PoolMode::ALL {
        let bouncer = shared_pgbouncer(mode);
        let out = run(aksara(dir.path()).args(["doctor", "--url", &bouncer.admin_url(cluster)]));
        assert_eq!(out.code, 0, "{mode:?}: {out:?}");
        assert!(!out.all().contains("extra_float_digits"), "{out:?}");
    }
}

/// `aksara doctor --url URL --driver libpq` and `extra` from a fresh project, which must exit
/// with `code`; its whole output.
fn doctor_libpq(url: &str, extra: &[&str], code: i32) -> String {
    let out = run(aksara(project().path())
        .args(["doctor", "--url", url, "--driver", "libpq"])
        .args(extra));
    assert_eq!(out.code, code, "{out:?}");
    out.all()
}

/// PgBouncer without TLS for its clients, asked for it: nothing at that port is a postmaster
/// whose command line aksara can read, so the hint names PgBouncer's own settings beside
/// PostgreSQL's.
#[test]
fn a_pgbouncer_without_client_tls_is_told_its_own_settings() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = shared_pgbouncer(support::PoolMode::Session);
    let url = format!("{}?sslmode=require", bouncer.admin_url(cluster));
    let text = doctor_libpq(&url, &[], 1);
    assert!(text.contains("[ssl-unsupported]"), "{text}");
    assert!(
        text.contains("if it is a pooler (PgBouncer), its TLS to clients is `client_tls_sslmode` with `client_tls_key_file` and `client_tls_cert_file` in pgbouncer.ini, then a reload"),
        "{text}"
    );
}

/// PgBouncer with TLS for its clients, in front of a server with TLS on that it reaches over
/// its socket, so without TLS: the TLS line is this connection's own, and the server's row
/// for the session is said as the pooler's leg. Read from the server alone, it had said "not
/// used" for a `sslmode=require` URL served over TLS.
#[test]
fn tls_to_pgbouncer_is_told_apart_from_pgbouncers_own_connection_to_the_server() {
    let cluster = support::shared(Shared::Ssl);
    let bouncer = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Session).client_tls(),
    );
    let line = |text: &str, check: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("[ok] {check:<12}")))
            .unwrap_or_else(|| panic!("no passed {check} line:\n{text}"))
            .to_owned()
    };
    let address = format!("127.0.0.1:{}", bouncer.port);
    for (sslmode, reach, tls) in [
        (
            "require",
            format!("[ok] Reach       PostgreSQL answers at {address} (offers TLS)"),
            "[ok] TLS         in use (sslmode=require) to the pooler or proxy that answered; from it to the server: not used (pg_stat_activity.ssl of this session)",
        ),
        (
            "disable",
            format!("[ok] Reach       PostgreSQL answers at {address}"),
            "[ok] TLS         not used (sslmode=disable) to the pooler or proxy that answered; from it to the server: not used (pg_stat_activity.ssl of this session)",
        ),
    ] {
        let url = format!("{}?sslmode={sslmode}", bouncer.admin_url(cluster));
        let text = doctor_libpq(&url, &[], 0);
        assert_eq!(line(&text, "Reach"), reach, "{text}");
        assert_eq!(line(&text, "TLS"), tls, "{text}");
    }
    // The same cluster reached directly: the client and the server's row agree.
    let direct = format!("{}?sslmode=require", cluster.admin_url());
    assert_eq!(
        line(&doctor_libpq(&direct, &[], 0), "TLS"),
        "[ok] TLS         in use (sslmode=require)"
    );
}

/// PgBouncer authenticating its clients with md5: the method is its own `auth_type`, so the
/// hint names that, not the server's pg_hba.conf (which the login never met). The setting it
/// names, with the same plaintext auth_file, gives a SCRAM login and no warning.
#[test]
fn md5_from_pgbouncer_names_its_auth_type_not_pg_hba() {
    let cluster = support::shared(Shared::Scram);
    let md5 = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Session)
            .auth_file_password(&cluster.password)
            .set("auth_type", "md5"),
    );
    let doctor = |bouncer: &PgBouncer| doctor_libpq(&bouncer.admin_url(cluster), &[], 0);
    let text = doctor(&md5);
    let login = text
        .lines()
        .find(|l| l.contains("] Login"))
        .expect("a Login line");
    assert!(
        login.starts_with("[!!] Login")
            && login.contains("(md5); the pooler or proxy that answered authenticated with md5")
            && login.contains("[auth-method-deprecated]"),
        "{text}"
    );
    assert_eq!(
        hint_after(&text, "] Login"),
        "hint: switch to SCRAM: the login was the pooler's or proxy's own, not the server's pg_hba.conf: for PgBouncer `auth_type = scram-sha-256` in pgbouncer.ini (its auth_file holding SCRAM secrets, as `SELECT rolpassword FROM pg_authid` gives them, or plaintext passwords; or auth_query), then a reload; for pgpool-II `scram-sha-256` in pool_hba.conf",
        "{text}"
    );
    drop(md5);
    let scram = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Session)
            .auth_file_password(&cluster.password)
            .set("auth_type", "scram-sha-256"),
    );
    let text = doctor(&scram);
    assert!(
        text.lines()
            .any(|l| l.starts_with("[ok] Login") && l.contains("(scram-sha-256)")),
        "{text}"
    );
}

/// The line after the first line containing `marker`.
fn hint_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let mut lines = text.lines().skip_while(|l| !l.contains(marker));
    lines.next();
    lines.next().map_or("", str::trim)
}

/// Pools through PgBouncer are its clients: `--pool-max` × `--instances` is held against its
/// max_client_conn when its console tells it, never against the server's max_connections
/// (which bounds PgBouncer's own connections), and said as unknown when nothing tells it.
#[test]
fn pool_sizes_through_pgbouncer_meet_its_client_limit_not_max_connections() {
    let cluster = support::shared(Shared::Scram);
    let doctor = |bouncer: &PgBouncer, pool_max: &str, instances: &str| {
        let extra = ["--pool-max", pool_max, "--instances", instances];
        doctor_libpq(&bouncer.admin_url(cluster), &extra, 0)
    };
    let pool_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("] Pool size"))
            .map(str::to_owned)
            .collect()
    };
    let readable = |limit: &str| {
        PgBouncer::start(
            cluster,
            PgBouncerConfig::new(support::PoolMode::Session)
                .set("stats_users", &cluster.superuser)
                .set("max_client_conn", limit),
        )
    };
    let small = readable("30");
    let text = doctor(&small, "20", "2");
    assert_eq!(
        pool_lines(&text),
        ["[!!] Pool size   2 instance(s) × pool_max_size 20 = 40 connections to PgBouncer, but its max_client_conn is 30 [pool-exceeds-connections]".to_string()],
        "{text}"
    );
    assert!(
        text.contains("hint: keep instances × pool_max_size ≤ 30, or raise max_client_conn in PgBouncer's configuration; the server's "),
        "{text}"
    );
    drop(small);
    // More than any test cluster's max_connections, less than PgBouncer's limit: no warning.
    let large = readable("2000");
    let text = doctor(&large, "500", "2");
    assert!(pool_lines(&text).is_empty(), "{text}");
    drop(large);
    // Its console closed to this user: unknown, and said so, with no code of a known excess.
    let closed = shared_pgbouncer(support::PoolMode::Session);
    let text = doctor(closed, "500", "2");
    let lines = pool_lines(&text);
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("[!!] Pool size   2 instance(s) × pool_max_size 500 = 1000 connections to PgBouncer: more than the server's ")
            && lines[0].ends_with("which through a pooler is not the limit; PgBouncer's own client limit could not be read"),
        "{text}"
    );
}

/// PgBouncer refusing the password by its own auth_file (a stale copy of it), in both of its
/// wordings: told as PgBouncer's own check, with its auth_file in the hint, not as a server
/// error aksara has no diagnosis for (what it said before) nor as the server's pg_hba.
#[test]
fn a_password_pgbouncer_rejects_itself_points_at_its_auth_file() {
    let cluster = support::shared(Shared::Scram);
    for (auth_type, method, said) in [
        (
            "scram-sha-256",
            "scram-sha-256",
            "SASL authentication failed",
        ),
        ("md5", "md5 or plain", "password authentication failed"),
    ] {
        let bouncer = PgBouncer::start(
            cluster,
            PgBouncerConfig::new(support::PoolMode::Session)
                .auth_file_password("an-old-password")
                .set("auth_type", auth_type),
        );
        let text = doctor_libpq(&bouncer.admin_url(cluster), &[], 1);
        let login = format!(
            "[xx] Login       the connection pooler at 127.0.0.1:{} refused: PgBouncer rejected the password ({method}, PgBouncer's own check: \"{said}\") [auth-failed]",
            bouncer.port
        );
        assert!(text.lines().any(|l| l.starts_with(&login)), "{text}");
        let rejected = PoolerError::PgBouncerPasswordRejected { method, said };
        assert_eq!(
            hint_after(&text, "] Login"),
            format!("hint: {}", rejected.hint()),
            "{text}"
        );
    }
}

/// This machine's address toward the outside (the source of its default route), when it has
/// one that is not a loopback address: UDP `connect` picks it and sends nothing.
fn outward_ipv4() -> Option<std::net::Ipv4Addr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    match socket.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// PgBouncer's own connection to the server is the server's row for the session: over the
/// socket it is local and nothing is said; to a server at a non-loopback address without TLS
/// it is the `ssl-not-used-remote` warning, with PgBouncer's server_tls_sslmode in the hint.
/// The second half needs a non-loopback address on this machine (these machines have one);
/// without one only the first half runs, and the test says so on its output.
#[test]
fn pgbouncers_own_leg_to_a_remote_server_without_tls_is_warned_about() {
    let cluster = support::shared(Shared::Scram);
    let local = shared_pgbouncer(support::PoolMode::Session);
    let text = doctor_libpq(&local.admin_url(cluster), &[], 0);
    assert!(!text.contains("TLS remote"), "{text}");
    let Some(ip) = outward_ipv4() else {
        println!("no non-loopback IPv4 address here: the remote half did not run");
        return;
    };
    let server = Cluster::start(
        ClusterConfig {
            hba: Some(vec![
                "local all all scram-sha-256".into(),
                "host all all 127.0.0.1/32 scram-sha-256".into(),
                format!("host all all {ip}/32 scram-sha-256"),
            ]),
            ..ClusterConfig::default()
        }
        .set("listen_addresses", &format!("127.0.0.1,{ip}")),
    );
    let bouncer = PgBouncer::start(
        &server,
        PgBouncerConfig::new(support::PoolMode::Session)
            .databases(&[&format!("* = host={ip} port={}", server.port)])
            .set("stats_users", &server.superuser)
            .set("server_tls_sslmode", "disable"),
    );
    let text = doctor_libpq(&bouncer.admin_url(&server), &[], 0);
    let warning = format!(
        "[!!] TLS remote  PgBouncer's own connection to the server at {ip}:{} does not use TLS (the server's pg_stat_activity row for this session): unless {ip} is PgBouncer's own machine, passwords and data cross the network between them in the clear [ssl-not-used-remote]",
        server.port
    );
    assert!(text.lines().any(|l| l == warning), "{text}");
    assert_eq!(
        hint_after(&text, "TLS remote"),
        "hint: set `server_tls_sslmode = require` (or `verify-full` with `server_tls_ca_file`) in pgbouncer.ini, then a reload; the server must have `ssl = on`",
        "{text}"
    );
}

#[test]
fn dbsetup_through_session_pooling_sets_up_a_working_url() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = shared_pgbouncer(support::PoolMode::Session);
    let dir = project();
    let db = support::unique_name("pgb_app");
    let out = run(aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--admin-url",
        &bouncer.admin_url(cluster),
        "--db-name",
        &db,
        "--db-user",
        &db,
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL="))
        .expect("DATABASE_URL in .env")
        .trim_matches(['"', '\'']);
    // The URL it wrote works (here it goes through the same PgBouncer: `*` forwards every database).
    assert_eq!(
        crate::psql_url(url, "select current_database()").as_deref(),
        Ok(db.as_str())
    );
}

fn failure_of(url: &str) -> FailureKind {
    match runtime().block_on(login(&config(url))) {
        Ok(_) => panic!("{url}: logged in"),
        Err(f) => f,
    }
}

#[test]
fn a_database_missing_from_databases_is_named() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Session).databases(&["postgres = {server}"]),
    );
    let failure = failure_of(&bouncer.url(&cluster.superuser, Some(&cluster.password), "appdb"));
    assert_eq!(failure.sqlstate(), Some("08P01"), "{failure:?}");
    let error = PoolerError::from_failure(&failure).expect("a pooler error");
    assert_eq!(
        error,
        PoolerError::UnknownDatabase {
            database: "appdb".into()
        }
    );
    assert_eq!(error.code(), "pooler-unknown-database");
    assert!(error.hint().contains("[databases]"));
}

#[test]
fn a_startup_parameter_pgbouncer_refuses_is_named() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = shared_pgbouncer(support::PoolMode::Transaction);
    let url = format!(
        "{}?options=-c%20search_path%3Dapp",
        bouncer.admin_url(cluster)
    );
    let failure = failure_of(&url);
    let error = PoolerError::from_failure(&failure).expect("a pooler error");
    assert_eq!(
        error,
        PoolerError::UnsupportedStartupParameter {
            parameter: "options".into()
        }
    );
    assert!(error.hint().contains("ignore_startup_parameters"));
}

#[test]
fn a_full_pool_and_a_full_client_list_are_named() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Session)
            .databases(&["postgres = {server} pool_size=1"])
            .set("query_wait_timeout", "1")
            .set("max_client_conn", "2"),
    );
    let url = bouncer.admin_url(cluster);
    let cfg = config(&url);
    runtime().block_on(async {
        // Client 1 holds the only server connection (session mode: for as long as it stays).
        let mut held = login(&cfg).await.unwrap();
        backend_pid(&mut held.conn).await;
        // Client 2 logs in (PgBouncer answers the login itself) and waits for a server.
        let mut waiting = login(&cfg).await.unwrap();
        let error = sqlx::raw_sql("SELECT 1")
            .execute(&mut waiting.conn)
            .await
            .unwrap_err();
        let failure = connect::classify(error);
        assert_eq!(
            PoolerError::from_failure(&failure),
            Some(PoolerError::QueryWaitTimeout),
            "{failure:?}"
        );
        // Two clients connected (the waiting one is gone now, so take its place again): a third is refused.
        let _second = login(&cfg).await.unwrap();
        let failure = login(&cfg)
            .await
            .err()
            .expect("the third client is refused");
        let error = PoolerError::from_failure(&failure).expect("a pooler error");
        assert_eq!(error, PoolerError::PoolFull, "{failure:?}");
        assert!(error.hint().contains("max_client_conn"));
        connect::close(held.conn).await;
    });
}

#[test]
fn statement_mode_refuses_transactions_with_its_own_text() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = shared_pgbouncer(support::PoolMode::Statement);
    let cfg = config(&bouncer.admin_url(cluster));
    let failure = runtime().block_on(async {
        let mut c = login(&cfg).await.unwrap();
        let e = sqlx::raw_sql("BEGIN")
            .execute(&mut c.conn)
            .await
            .unwrap_err();
        connect::classify(e)
    });
    assert_eq!(
        PoolerError::from_failure(&failure),
        Some(PoolerError::TransactionInStatementMode),
        "{failure:?}"
    );
}

#[test]
fn driver_advice_applies_only_to_transaction_and_statement_pooling() {
    use pooler::driver_advice;
    let kind = PoolerKind::PgBouncer;
    assert!(driver_advice(kind, PoolMode::Session, None, "asyncpg").is_empty());
    let advice = driver_advice(kind, PoolMode::Transaction, Some(false), "asyncpg");
    assert!(
        advice
            .iter()
            .any(|a| a.fix.contains("statement_cache_size=0")),
        "{advice:?}"
    );
    let advice = driver_advice(
        kind,
        PoolMode::Transaction,
        Some(false),
        "sqlalchemy+asyncpg",
    );
    assert!(
        advice
            .iter()
            .any(|a| a.fix.contains("prepared_statement_cache_size")
                && a.fix.contains("prepared_statement_name_func"))
    );
    // A pooler that keeps prepared statements per client needs no cache change.
    let advice = driver_advice(kind, PoolMode::Transaction, Some(true), "asyncpg");
    assert!(
        advice
            .iter()
            .all(|a| a.code != "pooler-prepared-statements"),
        "{advice:?}"
    );
    assert!(advice.iter().any(|a| a.code == "pooler-session-state"));
    let advice = driver_advice(kind, PoolMode::Statement, None, "psycopg");
    assert!(advice.iter().any(|a| a.code == "pooler-statement-mode"));
}

/// The Python the asyncpg test runs: the suite's driver venv (`.ci/run` makes it), or
/// `AKSARA_TEST_PYTHON`.
pub fn asyncpg_python() -> String {
    let python = std::env::var("AKSARA_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/drivers/.venv/bin/python"
        )
        .to_string()
    });
    let ok = std::process::Command::new(&python)
        .args(["-c", "import asyncpg"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{python} cannot import asyncpg (pip install asyncpg)");
    python
}

/// One app process: asyncpg connects, runs one parameterised query (asyncpg prepares it as
/// `__asyncpg_stmt_1__`) and exits; prints `ok` or the error's class and text.
const ASYNCPG_APP: &str = r#"
import asyncio, os, sys, asyncpg
async def main():
    kwargs = {} if sys.argv[1] == "default" else {"statement_cache_size": 0}
    conn = await asyncpg.connect(os.environ["APP_DATABASE_URL"], **kwargs)
    try:
        await conn.fetchval("select $1::int + 1", 41)
        print("ok")
    except Exception as e:
        print(type(e).__name__, e)
    finally:
        await conn.close()
asyncio.run(main())
"#;

fn asyncpg_app(python: &str, url: &str, cache: &str) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", ASYNCPG_APP, cache])
        // In the environment, not argv: the URL holds the password.
        .env("APP_DATABASE_URL", url)
        .env_remove("PGPASSWORD")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn asyncpg_fails_through_transaction_pooling_unless_its_statement_cache_is_off() {
    let python = asyncpg_python();
    let cluster = support::shared(Shared::Scram);
    // Its own PgBouncers: the statements asyncpg leaves on pooled server connections must not
    // meet other tests.
    let transaction = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Transaction),
    );
    let url = transaction.admin_url(cluster);
    // Two app processes, one after the other: the second gets the server connection the first
    // left its prepared statement on (transaction mode resets nothing between clients).
    assert_eq!(asyncpg_app(&python, &url, "default"), "ok");
    let second = asyncpg_app(&python, &url, "default");
    assert!(
        second.contains("DuplicatePreparedStatementError")
            && second.contains("prepared statement \"__asyncpg_stmt_1__\" already exists"),
        "{second}"
    );
    // The advice's fix works.
    let advice = pooler::driver_advice(
        PoolerKind::PgBouncer,
        PoolMode::Transaction,
        Some(false),
        "asyncpg",
    );
    assert!(
        advice
            .iter()
            .any(|a| a.fix.contains("statement_cache_size=0"))
    );
    let fresh = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Transaction),
    );
    let url = fresh.admin_url(cluster);
    for _ in 0..2 {
        assert_eq!(asyncpg_app(&python, &url, "off"), "ok");
    }
    // Session mode needs no advice, and two processes pass (the server is reset between clients).
    assert!(
        pooler::driver_advice(
            PoolerKind::PgBouncer,
            PoolMode::Session,
            Some(false),
            "asyncpg"
        )
        .is_empty()
    );
    let session = PgBouncer::start(cluster, PgBouncerConfig::new(support::PoolMode::Session));
    let url = session.admin_url(cluster);
    for _ in 0..2 {
        assert_eq!(asyncpg_app(&python, &url, "default"), "ok");
    }
}

#[test]
fn pgbouncer_refuses_at_once_while_its_server_logins_fail() {
    // Its own server, stopped under PgBouncer after a first login filled the pool's cached
    // login answer: later clients still log in (PgBouncer answers that itself), their queries
    // wait for a server that cannot be reached, and once a server login has failed PgBouncer
    // refuses the next client's query at once instead of letting it wait.
    let cluster = support::Cluster::start(support::ClusterConfig::default());
    let bouncer = PgBouncer::start(
        &cluster,
        PgBouncerConfig::new(support::PoolMode::Session)
            .set("query_wait_timeout", "1")
            .set("server_login_retry", "60"),
    );
    let cfg = config(&bouncer.admin_url(&cluster));
    runtime().block_on(async {
        let mut first = login(&cfg).await.unwrap();
        backend_pid(&mut first.conn).await;
        connect::close(first.conn).await;
        cluster.stop_immediate();

        let mut waiting = login(&cfg)
            .await
            .expect("PgBouncer answers the login itself");
        let e = sqlx::raw_sql("SELECT 1")
            .execute(&mut waiting.conn)
            .await
            .unwrap_err();
        let failure = connect::classify(e);
        assert_eq!(
            PoolerError::from_failure(&failure),
            Some(PoolerError::QueryWaitTimeout),
            "{failure:?}"
        );

        let mut refused = login(&cfg).await.unwrap();
        let e = sqlx::raw_sql("SELECT 1")
            .execute(&mut refused.conn)
            .await
            .unwrap_err();
        let failure = connect::classify(e);
        let error = PoolerError::from_failure(&failure).expect("a pooler error");
        assert!(
            matches!(error, PoolerError::ServerLoginRetry { .. }),
            "{failure:?}"
        );
        assert_eq!(error.code(), "pooler-server-login-failing");
        assert!(error.hint().contains("server_login_retry"));
    });
}

/// Two sqlx connections in a row through transaction pooling, each running one query with
/// `bind` (a prepared statement) the way `persistent` says; the second connection's result.
async fn sqlx_second_client(url: &str, cache: usize, persistent: bool) -> Result<i32, String> {
    use sqlx::ConnectOptions as _;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options
        .extra_float_digits(None)
        .statement_cache_capacity(cache);
    let mut result = Err("not run".to_owned());
    for _ in 0..2 {
        let mut conn = options.connect().await.unwrap();
        result = sqlx::query_scalar::<_, i32>("select $1::int + 1")
            .bind(41)
            .persistent(persistent)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string());
        sqlx::Connection::close(conn).await.unwrap();
    }
    result
}

#[test]
fn sqlx_needs_unnamed_statements_through_transaction_pooling() {
    let cluster = support::shared(Shared::Scram);
    let rt = runtime();
    // A fresh PgBouncer per case: the statements left on its server connections are the point.
    let fresh = || {
        PgBouncer::start(
            cluster,
            PgBouncerConfig::new(support::PoolMode::Transaction),
        )
    };
    let bouncer = fresh();
    let second = rt.block_on(sqlx_second_client(&bouncer.admin_url(cluster), 100, true));
    assert!(
        second
            .as_ref()
            .is_err_and(|e| e.contains("prepared statement \"sqlx_s_1\" already exists")),
        "{second:?}"
    );
    // Without a cache sqlx still names the statement, and leaves it behind.
    let bouncer = fresh();
    let second = rt.block_on(sqlx_second_client(&bouncer.admin_url(cluster), 0, true));
    assert!(
        second.as_ref().is_err_and(|e| e.contains("already exists")),
        "{second:?}"
    );
    // An unnamed statement is parsed each time and left nowhere: the advice's fix.
    let bouncer = fresh();
    assert_eq!(
        rt.block_on(sqlx_second_client(&bouncer.admin_url(cluster), 100, false)),
        Ok(42)
    );
    let advice = pooler::driver_advice(
        PoolerKind::PgBouncer,
        PoolMode::Transaction,
        Some(false),
        "sqlx",
    );
    assert!(
        advice.iter().any(|a| a.fix.contains(".persistent(false)")),
        "{advice:?}"
    );
}

/// Client 1 takes a session advisory lock through `bouncer` and disconnects; then client 2
/// asks whether its own server session holds an advisory lock: it does when client 1's session
/// state leaked to it. (No waiting: in session mode PgBouncer resets a server connection with
/// DISCARD ALL before it gives it to anyone else.)
fn the_next_client_inherits_a_lock(
    bouncer: &PgBouncer,
    cluster: &support::Cluster,
    key: i64,
) -> bool {
    let cfg = config(&bouncer.admin_url(cluster));
    runtime().block_on(async {
        let mut first = login(&cfg).await.unwrap();
        // A try-lock: a lock leaked by an earlier case must not make this one wait.
        let sql = format!("SELECT pg_try_advisory_lock({key})");
        let got: bool = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut first.conn)
            .await
            .unwrap()
            .get(0);
        assert!(got, "lock {key} is taken");
        connect::close(first.conn).await;
        let mut next = login(&cfg).await.unwrap();
        let held: i64 = sqlx::raw_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        )
        .fetch_one(&mut next.conn)
        .await
        .unwrap()
        .get(0);
        connect::close(next.conn).await;
        held > 0
    })
}

#[test]
fn session_state_leaks_through_transaction_pooling_and_not_through_session_pooling() {
    let cluster = support::Cluster::start(support::ClusterConfig::default());
    let transaction = PgBouncer::start(
        &cluster,
        PgBouncerConfig::new(support::PoolMode::Transaction),
    );
    assert!(the_next_client_inherits_a_lock(
        &transaction,
        &cluster,
        4242
    ));
    let session = PgBouncer::start(&cluster, PgBouncerConfig::new(support::PoolMode::Session));
    assert!(!the_next_client_inherits_a_lock(&session, &cluster, 4243));
    let advice = pooler::driver_advice(
        PoolerKind::PgBouncer,
        PoolMode::Transaction,
        None,
        "psycopg",
    );
    assert!(
        advice
            .iter()
            .any(|a| a.code == "pooler-session-state" && a.problem.contains("advisory locks"))
    );
}

#[test]
fn transaction_pooling_is_told_with_round_robin_servers_too() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Transaction).set("server_round_robin", "1"),
    );
    let (_, report) = runtime().block_on(look_and_identify(&bouncer.admin_url(cluster)));
    let report = report.expect("a pooler");
    assert_eq!(
        report.mode.mode(),
        Some(PoolMode::Transaction),
        "{report:?}"
    );
}

/// Doctor's JSON through `url`, judged for asyncpg (the framework's driver).
pub fn doctor_json(url: &str) -> (crate::Run, serde_json::Value) {
    let dir = project();
    let out = run(aksara(dir.path()).args([
        "doctor", "--driver", "asyncpg", "--format", "json", "--url", url,
    ]));
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out, json)
}

pub fn checks_with<'a>(json: &'a serde_json::Value, id: &str) -> Vec<&'a serde_json::Value> {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .collect()
}

/// End to end: doctor names PgBouncer and its mode, and gives asyncpg's prepared-statement
/// advice only where it applies (transaction and statement pooling), none in session mode and
/// no pooler line at all on a direct connection.
#[test]
fn doctor_names_the_pooler_and_its_mode_and_advises_only_where_it_applies() {
    let cluster = support::shared(Shared::Scram);
    let (out, direct) = doctor_json(&cluster.admin_url());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(checks_with(&direct, "pooler").is_empty(), "{direct:#}");
    for mode in support::PoolMode::ALL {
        // Its own PgBouncers: the mode probe holds transactions, which must not disturb the
        // tests that read the shared ones' admin consoles.
        let bouncer = PgBouncer::start(cluster, PgBouncerConfig::new(mode));
        let (out, json) = doctor_json(&bouncer.admin_url(cluster));
        assert_eq!(out.code, 0, "{mode:?}: {out:?}");
        let lines = checks_with(&json, "pooler");
        let named = lines[0]["message"].as_str().unwrap();
        assert!(named.starts_with("PgBouncer in"), "{mode:?}: {named}");
        assert!(
            named.contains(&format!("{} mode", mode.as_str())),
            "{mode:?}: {named}"
        );
        let advice: Vec<&str> = lines.iter().filter_map(|c| c["code"].as_str()).collect();
        match mode {
            support::PoolMode::Session => assert!(advice.is_empty(), "{json:#}"),
            _ => {
                assert!(
                    advice.contains(&"pooler-prepared-statements"),
                    "{mode:?}: {json:#}"
                );
                let hint = lines
                    .iter()
                    .find(|c| c["code"] == "pooler-prepared-statements")
                    .unwrap()["hint"]
                    .as_str()
                    .unwrap();
                assert!(hint.contains("statement_cache_size=0"), "{hint}");
            }
        }
    }
}

/// A database PgBouncer does not list comes back as its own refusal, with the [databases] fix,
/// not as a server error or `database-missing`.
#[test]
fn doctor_through_pgbouncer_names_a_database_missing_from_its_list() {
    let cluster = support::shared(Shared::Scram);
    let bouncer = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Session).databases(&["postgres = host=127.0.0.1"]),
    );
    let url = bouncer.url("postgres", Some(&cluster.password), "notlisted");
    let (out, json) = doctor_json(&url);
    assert_eq!(out.code, 1, "{out:?}");
    let failed = crate::failed_checks(&json);
    assert_eq!(failed.len(), 1, "{json:#}");
    assert_eq!(failed[0]["code"], "pooler-unknown-database", "{json:#}");
    assert!(
        failed[0]["hint"].as_str().unwrap().contains("[databases]"),
        "{json:#}"
    );
}

/// dbsetup with a transaction-mode PgBouncer as its admin URL: told before anything changes
/// (its console does not let `postgres` in, so no direct address is known), exit 2, nothing
/// created and no setup lock left on a pooled server connection.
#[test]
fn dbsetup_through_transaction_pooling_is_refused_before_anything_changes() {
    // Its own cluster: the lock count below must not see other tests' setups.
    let own = support::Cluster::start(support::ClusterConfig::default());
    let cluster = &own;
    let bouncer = PgBouncer::start(
        cluster,
        PgBouncerConfig::new(support::PoolMode::Transaction),
    );
    let dir = project();
    let db = support::unique_name("pooled");
    let out = run(aksara(dir.path())
        .args([
            "dbsetup",
            "--non-interactive",
            "--db-name",
            &db,
            "--admin-url",
        ])
        .arg(format!(
            "postgresql://postgres@127.0.0.1:{}/postgres",
            bouncer.port
        ))
        .env("PGPASSWORD", &cluster.password));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("goes through PgBouncer in transaction mode"),
        "{out:?}"
    );
    assert!(out.stderr.contains("nothing was changed"), "{out:?}");
    assert!(!dir.path().join(".env").exists());
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{db}'")
        ),
        "0"
    );
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ),
        "0"
    );
}

/// The same, when the admin may read PgBouncer's console: the server behind it is used for the
/// setup (its own address, from SHOW DATABASES), and the written URL works.
#[test]
fn dbsetup_through_transaction_pooling_uses_the_server_behind_it_when_the_console_says() {
    let own = support::Cluster::start(support::ClusterConfig::default());
    let bouncer = PgBouncer::start(
        &own,
        PgBouncerConfig::new(support::PoolMode::Transaction)
            .databases(&["postgres = {server}"])
            .set("admin_users", "pgb_admin, postgres"),
    );
    let dir = project();
    let db = support::unique_name("behind");
    let out = run(aksara(dir.path())
        .args([
            "dbsetup",
            "--non-interactive",
            "--db-name",
            &db,
            "--admin-url",
        ])
        .arg(format!(
            "postgresql://postgres@127.0.0.1:{}/postgres",
            bouncer.port
        ))
        .env("PGPASSWORD", &own.password));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("setting up over the server's own address"),
        "{out:?}"
    );
    let url = crate::env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_eq!(
        crate::psql_url(&url, "SELECT current_database()").as_deref(),
        Ok(db.as_str())
    );
    assert_eq!(
        own.psql(
            "postgres",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ),
        "0"
    );
}

/// A cluster whose pg_hba trusts `postgres` on its socket and over TCP, for PgBouncer's
/// auth_query (it runs as `postgres` through the same entry, and 1.18 cannot answer SCRAM with
/// a stored secret there), with `local_line` for every other role's socket logins.
fn auth_query_cluster(local_line: &str) -> support::Cluster {
    support::Cluster::start(support::ClusterConfig {
        hba: Some(vec![
            "local all postgres trust".into(),
            local_line.into(),
            "host all postgres 127.0.0.1/32 trust".into(),
            "host all all 127.0.0.1/32 scram-sha-256".into(),
        ]),
        ..support::ClusterConfig::default()
    })
}

/// PgBouncer reaches the server over its socket, where pg_hba says `peer` for the app's role:
/// the server refuses PgBouncer's own login (its OS user is `postgres`, not the role), and
/// PgBouncer relays the server's words under its 08P01. That is the pooler's server login, not
/// the client's: its own code, and the hint names the socket line and `host=127.0.0.1`, which
/// is then shown to let the same URL in.
#[test]
fn a_server_refusing_pgbouncers_own_login_is_named_as_the_poolers_login() {
    let cluster = auth_query_cluster("local all all peer");
    let role = support::unique_name("relayed");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'"),
    );
    let bouncer = PgBouncer::start(
        &cluster,
        PgBouncerConfig::new(support::PoolMode::Session).databases(&["postgres = {server}"]),
    );
    let url = bouncer.url(&role, Some(&format!("pw-{role}")), "postgres");
    let failure = failure_of(&url);
    assert_eq!(
        failure.sqlstate(),
        Some("08P01"),
        "{failure:?}\n{}",
        bouncer.log_contents()
    );
    let (out, json) = doctor_json(&url);
    assert_eq!(out.code, 1, "{out:?}");
    let failed = crate::failed_checks(&json);
    assert_eq!(failed.len(), 1, "{json:#}");
    assert_eq!(failed[0]["code"], "pooler-server-login-failing", "{json:#}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("Peer authentication failed for user \"{role}\"")),
        "{json:#}"
    );
    let hint = failed[0]["hint"].as_str().unwrap();
    assert!(hint.contains("`host=127.0.0.1`"), "{json:#}");
    // The hint holds: the same entry over TCP lets the same URL in.
    let fixed = PgBouncer::start(
        &cluster,
        PgBouncerConfig::new(support::PoolMode::Session)
            .databases(&[&format!("postgres = host=127.0.0.1 port={}", cluster.port)]),
    );
    let (out, json) = doctor_json(&fixed.url(&role, Some(&format!("pw-{role}")), "postgres"));
    assert_eq!(out.code, 0, "{out:?}\n{json:#}");
}

/// The role's own CONNECTION LIMIT met by PgBouncer's login to the server, relayed under
/// PgBouncer's 08P01: named as the pooler's login with the server's words, and the hint is the
/// limit against PgBouncer's pool sizes, not pg_hba.conf, which the login never got to. Raising
/// the limit as the hint says then lets the same URL in, and the healthy run says that the
/// admin console did not answer, without waiting out the connect timeout for it.
#[test]
fn a_role_limit_met_by_pgbouncers_own_login_names_the_limit_not_pg_hba() {
    let cluster = auth_query_cluster("local all all scram-sha-256");
    let role = support::unique_name("limited");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}' CONNECTION LIMIT 0"),
    );
    let bouncer = PgBouncer::start(&cluster, PgBouncerConfig::new(support::PoolMode::Session));
    let url = bouncer.url(&role, Some(&format!("pw-{role}")), "postgres");
    let (out, json) = doctor_json(&url);
    assert_eq!(out.code, 1, "{out:?}\n{}", bouncer.log_contents());
    let failed = crate::failed_checks(&json);
    assert_eq!(failed.len(), 1, "{json:#}\n{}", bouncer.log_contents());
    assert_eq!(
        failed[0]["code"],
        "pooler-server-login-failing",
        "{json:#}\n{}",
        bouncer.log_contents()
    );
    assert!(
        failed[0]["message"].as_str().unwrap().ends_with(&format!(
            "the server said: too many connections for role \"{role}\""
        )),
        "{json:#}\n{}",
        bouncer.log_contents()
    );
    let hint = failed[0]["hint"].as_str().unwrap();
    assert!(
        hint.starts_with("the role's own CONNECTION LIMIT on the server is reached")
            && hint.contains("`default_pool_size`")
            && !hint.contains("pg_hba"),
        "{json:#}"
    );
    // PgBouncer's default pool is 20 server connections: a limit above it lets the URL in
    // once PgBouncer retries its login (server_login_retry = 1 here).
    cluster.psql(
        "postgres",
        &format!("ALTER ROLE {role} CONNECTION LIMIT 25"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let json = loop {
        let (out, json) = doctor_json(&url);
        if out.code == 0 {
            break json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused after the limit was raised: {json:#}\n{}",
            bouncer.log_contents()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    // The role's password is known to PgBouncer only through auth_query, so PgBouncer 1.18
    // holds a login to its console as this role without ever answering: doctor says so, after
    // a few round trips' worth of waiting rather than the whole connect timeout (5 s).
    let pooler = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "pooler")
        .unwrap_or_else(|| panic!("no pooler check: {json:#}"));
    let message = pooler["message"].as_str().unwrap();
    let waited: u64 = message
        .split("did not answer a login within ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("the console's silence is not said: {json:#}"));
    assert!(waited < 5000, "{json:#}");
}

/// The create-table probe's transaction: on a server that answers doctor directly it is left
/// for the session's end to roll back (doctor sends no ROLLBACK and does not wait for one),
/// and through PgBouncer, in every mode, doctor rolls it back itself before it closes (a
/// pooler would otherwise have to drop its server connection; in statement mode no
/// ReadyForQuery may come inside a transaction, and none does). Either way no table is left
/// and no session stays open.
#[test]
fn the_probe_is_rolled_back_by_the_session_end_only_on_a_direct_server() {
    let cluster =
        support::Cluster::start(support::ClusterConfig::default().set("log_statement", "all"));
    let dir = project();
    let rollbacks = || {
        cluster
            .log_contents()
            .matches("execute <unnamed>: ROLLBACK")
            .count()
    };
    let probes = || {
        cluster
            .log_contents()
            .matches("execute <unnamed>: CREATE TABLE aksara_privilege_probe ()")
            .count()
    };
    // No table, and no session inside a transaction, once the sessions doctor ended are gone
    // (a backend ends its transaction as it exits, a moment after the client left; in
    // statement mode PgBouncer closes the server connection whose BEGIN it refused).
    let nothing_left = || {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = cluster.psql(
                "postgres",
                "SELECT to_regclass('aksara_privilege_probe') IS NOT NULL, \
                 (SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%')",
            );
            if seen == "f|0" || std::time::Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let out = run(aksara(dir.path()).args(["doctor", "--url", &cluster.admin_url()]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("can create tables"), "{out:?}");
    assert_eq!(
        (probes(), rollbacks()),
        (1, 0),
        "{}",
        cluster.log_contents()
    );
    assert_eq!(nothing_left(), "f|0");

    for (n, mode) in support::PoolMode::ALL.into_iter().enumerate() {
        let bouncer = PgBouncer::start(&cluster, PgBouncerConfig::new(mode));
        let out = run(aksara(dir.path()).args(["doctor", "--url", &bouncer.admin_url(&cluster)]));
        assert_eq!(out.code, 0, "{mode:?}: {out:?}");
        assert!(
            out.stdout.contains("can create tables"),
            "{mode:?}: {out:?}"
        );
        assert_eq!(probes(), n + 2, "{mode:?}: {}", cluster.log_contents());
        assert_eq!(rollbacks(), n + 1, "{mode:?}: {}", cluster.log_contents());
        assert_eq!(nothing_left(), "f|0", "{mode:?}");
        assert!(
            !std::fs::read_to_string(&bouncer.log_file)
                .unwrap_or_default()
                .contains("not ready"),
            "{mode:?}: PgBouncer dropped a server connection: {}",
            std::fs::read_to_string(&bouncer.log_file).unwrap_or_default()
        );
    }
}
