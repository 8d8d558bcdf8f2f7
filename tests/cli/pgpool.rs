//! Through a real pgpool-II (Debian's 4.3) in streaming replication mode: doctor tells it from
//! what the login and its facts query already show plus pgpool's own `SHOW pool_version`,
//! names its mode, nodes and load balancing, a real asyncpg behaves as doctor says, a plain
//! port forward is not taken for a pooler, and pgpool's own refusals get their codes.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use aksara::connect::{self, Connected, FailureKind};
use aksara::dsn::ConnConfig;
use aksara::pooler::{self, FirstLook, PoolerError, PoolerKind};
use sqlx::Row as _;

use crate::pooler::{checks_with, doctor_json};
use crate::support::{
    self, Backend, PgPool, PgPoolConfig, Shared, shared_pair, shared_pgpool, shared_pgpool_pair,
};
use crate::{aksara, config, project, run, runtime};

const BOUND: Duration = Duration::from_secs(5);

async fn login(cfg: &ConnConfig) -> Result<Connected, FailureKind> {
    connect::connect(cfg, BOUND)
        .await
        .map_err(|f| f.last().failure.clone())
}

fn failed_codes(json: &serde_json::Value) -> Vec<String> {
    crate::failed_checks(json)
        .iter()
        .map(|c| c["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Primary and standby behind pgpool, the primary at weight 0: doctor passes, names pgpool-II,
/// its clustering mode and both nodes with the standby taking this session's reads, warns
/// that reads go to the standby, and gives no transaction-pooling advice (pgpool keeps a
/// session's server connections). The facts query ran on the primary (it calls the volatile
/// `pg_is_in_recovery()`, which pgpool never load-balances): no standby verdict for the key.
#[test]
fn doctor_through_pgpool_names_it_its_nodes_and_where_reads_go() {
    let pair = shared_pair();
    let pool = shared_pgpool_pair();
    let (out, json) = doctor_json(&pool.admin_url(&pair.primary));
    assert_eq!(out.code, 0, "{out:?}\n{}", pool.log_contents());
    assert!(failed_codes(&json).is_empty(), "{json:#}");
    let lines = checks_with(&json, "pooler");
    let named = lines[0]["message"].as_str().unwrap();
    assert!(
        named.starts_with("pgpool-II 4.3") && named.contains("in streaming replication mode"),
        "{named}"
    );
    assert!(named.contains("session pooling"), "{named}");
    assert!(
        named.contains(&format!(
            "node 0 primary {}:{} up",
            pair.primary.socket_dir.display(),
            pair.primary.port
        )) && named.contains(&format!(
            "node 1 standby {}:{} up (this session's reads)",
            pair.standby.socket_dir.display(),
            pair.standby.port
        )),
        "{named}"
    );
    assert!(named.contains("SHOW pool_version"), "{named}");
    let codes: Vec<&str> = lines.iter().filter_map(|c| c["code"].as_str()).collect();
    assert_eq!(codes, ["pooler-load-balancing"], "{json:#}");
    let warning = lines
        .iter()
        .find(|c| c["code"] == "pooler-load-balancing")
        .unwrap();
    assert!(
        warning["hint"]
            .as_str()
            .unwrap()
            .contains("async with conn.transaction()"),
        "{warning:#}"
    );
    assert!(checks_with(&json, "replica").is_empty(), "{json:#}");
}

/// Each app process: asyncpg (default statement cache) prepares a read and runs it, then
/// writes and reads again inside one transaction; prints the backend pid of the write's node
/// and the port each read was answered from.
const ASYNCPG_APP: &str = r#"
import asyncio, os, asyncpg
async def main():
    conn = await asyncpg.connect(os.environ["APP_DATABASE_URL"])
    try:
        read = await conn.fetchval("select current_setting('port')::int")
        async with conn.transaction():
            await conn.execute("create temp table scratch (x int)")
            after_write = await conn.fetchval("select current_setting('port')::int")
            writer = await conn.fetchval("select pg_backend_pid()")
        print("ok", read, after_write, writer)
    except Exception as e:
        print(type(e).__name__, e)
    finally:
        await conn.close()
asyncio.run(main())
"#;

fn asyncpg_app(python: &str, url: &str) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", ASYNCPG_APP])
        // In the environment, not argv: the URL holds the password.
        .env("APP_DATABASE_URL", url)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What doctor said, as a real asyncpg sees it: through a pgpool with one child (so the second
/// process gets the first one's cached server connections), both processes' prepared statements
/// work, the read outside a transaction is answered by the standby, and the read after a write
/// in the same transaction by the primary.
#[test]
fn asyncpg_through_pgpool_keeps_its_statements_and_reads_from_the_standby() {
    let python = crate::pooler::asyncpg_python();
    let pair = shared_pair();
    // Not `postgres`: pgpool caches no connection to it.
    let db = support::unique_name("pgpool_app");
    pair.primary
        .psql("postgres", &format!("create database {db}"));
    pair.wait_caught_up();
    let pool = PgPool::start(
        &[
            Backend {
                cluster: &pair.primary,
                weight: 0,
            },
            Backend {
                cluster: &pair.standby,
                weight: 1,
            },
        ],
        PgPoolConfig::default().set("num_init_children", "1"),
    );
    let url = pool.url(&pair.primary.superuser, Some(&pair.primary.password), &db);
    let first = asyncpg_app(&python, &url);
    let second = asyncpg_app(&python, &url);
    let (standby, primary) = (pair.standby.port, pair.primary.port);
    for out in [&first, &second] {
        assert!(
            out.starts_with(&format!("ok {standby} {primary} ")),
            "{out}\n{}",
            pool.log_contents()
        );
    }
    // The same server process wrote for both: the second reused the first one's connection,
    // its prepared statements reset by pgpool's DISCARD ALL, not left to collide.
    assert_eq!(
        first.rsplit(' ').next(),
        second.rsplit(' ').next(),
        "{first} / {second}"
    );
}

/// One backend, the pid passed through: the login looks direct, only the server's port tells,
/// and pgpool's answer names it. No standby takes reads, so no load-balancing warning.
#[test]
fn a_single_backend_pgpool_is_told_by_the_server_port() {
    let cluster = support::shared(Shared::Scram);
    let pool = shared_pgpool();
    let cfg = config(&pool.admin_url(cluster));
    let (look, moved, report) = runtime().block_on(async {
        let mut c = login(&cfg).await.expect("login through pgpool");
        let row = sqlx::raw_sql("SELECT pg_backend_pid(), current_setting('port')::int")
            .fetch_one(&mut c.conn)
            .await
            .unwrap();
        let (pid, port): (i32, i32) = (row.get(0), row.get(1));
        let look = pooler::first_look(&pooler::LoginSignals::of(&c.conn), pid, &c.endpoint.host);
        let moved = pooler::port_moved(&c.endpoint, port);
        let report = pooler::detect(&mut c, &cfg, pid, Some(port), BOUND).await;
        connect::close(c.conn).await;
        (look, moved, report)
    });
    assert_eq!(look, FirstLook::Direct);
    assert_eq!(
        moved,
        Some(pooler::Evidence::PortMismatch {
            dialled: pool.port,
            server: i32::from(cluster.port)
        })
    );
    let report = report.expect("pgpool named");
    assert_eq!(report.kind, PoolerKind::PgpoolII, "{report:?}");
    assert!(
        report
            .version
            .as_deref()
            .is_some_and(|v| v.starts_with("pgpool-II 4.3")),
        "{report:?}"
    );

    let (out, json) = doctor_json(&pool.admin_url(cluster));
    assert_eq!(out.code, 0, "{out:?}");
    let lines = checks_with(&json, "pooler");
    assert_eq!(lines.len(), 1, "{json:#}");
    let named = lines[0]["message"].as_str().unwrap();
    assert!(
        named.starts_with("pgpool-II 4.3")
            && named.contains(&format!(
                "the server listens on port {}, the URL dials port {}",
                cluster.port, pool.port
            )),
        "{named}"
    );
}

/// A TCP forward to the port (what `docker run -p 5433:5432` or `ssh -L` make): the relay copies
/// bytes both ways, one thread per direction.
struct Forward {
    port: u16,
}

impl Forward {
    fn to(target_port: u16) -> Forward {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a forward");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(client, server));
                std::thread::spawn(move || copy(s2, c2));
            }
        });
        Forward { port }
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The port moves through a forward too, and PostgreSQL refuses `SHOW pool_version`: doctor
/// reports no pooler, and the check still passes.
#[test]
fn a_port_forward_is_not_taken_for_a_pooler() {
    let cluster = support::shared(Shared::Scram);
    let forward = Forward::to(cluster.port);
    let url = cluster.admin_url().replace(
        &format!(":{}/", cluster.port),
        &format!(":{}/", forward.port),
    );
    let (out, json) = doctor_json(&url);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(checks_with(&json, "pooler").is_empty(), "{json:#}");
    assert!(!out.all().contains("pgpool"), "{out:?}");
}

/// pgpool's own refusals, through doctor: a user pgpool has no password for, a wrong password
/// (checked by pgpool itself against pool_passwd), and a missing database (the server's own
/// refusal, relayed: `database-missing`).
#[test]
fn pgpool_refusals_are_named() {
    let cluster = support::shared(Shared::Scram);
    let pool = shared_pgpool();
    let role = support::unique_name("nopasswd");
    cluster.psql(
        "postgres",
        &format!("create role {role} login password 'rolepw'"),
    );
    let cases = [
        (
            pool.url(&role, Some("rolepw"), "postgres"),
            "pgpool-no-password",
            "pool_passwd",
        ),
        (
            pool.url(&cluster.superuser, Some("not-the-password"), "postgres"),
            "auth-failed",
            "pool_passwd",
        ),
        (
            pool.url(&cluster.superuser, Some(&cluster.password), "no_such_db"),
            "database-missing",
            "",
        ),
    ];
    for (url, code, in_hint) in cases {
        let (out, json) = doctor_json(&url);
        assert_eq!(out.code, 1, "{code}: {out:?}");
        assert_eq!(failed_codes(&json), [code], "{json:#}");
        let failed = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "fail")
            .unwrap();
        assert!(
            failed["hint"]
                .as_str()
                .unwrap_or_default()
                .contains(in_hint),
            "{failed:#}"
        );
    }
}

/// With `reserved_connections`, a client past `num_init_children - reserved_connections` is
/// refused with pgpool's own text (without it, it would wait in the listen queue).
#[test]
fn pgpool_refuses_clients_past_its_children_with_its_own_text() {
    let cluster = support::shared(Shared::Scram);
    let pool = PgPool::start(
        &[Backend { cluster, weight: 1 }],
        PgPoolConfig::default()
            .set("num_init_children", "2")
            .set("reserved_connections", "1"),
    );
    let url = pool.admin_url(cluster);
    let cfg = config(&url);
    let (failure, doctor) = runtime().block_on(async {
        let held = login(&cfg)
            .await
            .unwrap_or_else(|f| panic!("the first client: {f:?}\n{}", pool.log_contents()));
        // sslmode=prefer: pgpool answers the SSLRequest with its error, before any startup.
        let failure = login(&cfg).await.err().expect("the second is refused");
        let doctor = doctor_json(&url);
        connect::close(held.conn).await;
        (failure, doctor)
    });
    let error = PoolerError::from_failure(&failure)
        .unwrap_or_else(|| panic!("not pgpool's refusal: {failure:?}"));
    assert_eq!(error, PoolerError::PgpoolChildrenBusy, "{failure:?}");
    assert_eq!(error.code(), "pgpool-children-busy");
    assert!(error.hint().contains("num_init_children"));
    let (out, json) = doctor;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(failed_codes(&json), ["pgpool-children-busy"], "{json:#}");
}

/// A replica key through pgpool-II: doctor's session runs on the primary (pgpool never
/// balances `pg_is_in_recovery()`), but the app's reads are pgpool's to place, so the key is
/// not failed as "at a primary"; it is a warning that says where the choice lies.
#[test]
fn a_replica_key_through_pgpool_is_a_warning_not_a_primary() {
    let pair = shared_pair();
    let pool = shared_pgpool_pair();
    let dir = project();
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_REPLICA_URL={}\n", pool.admin_url(&pair.primary)),
    )
    .unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--driver", "asyncpg", "--format", "json"]));
    let json: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(failed_codes(&json).is_empty(), "{json:#}");
    let replica = checks_with(&json, "replica");
    assert_eq!(replica.len(), 1, "{json:#}");
    assert_eq!(replica[0]["status"], "warn", "{json:#}");
    assert_eq!(replica[0]["code"], "pooler-load-balancing", "{json:#}");
    assert!(
        replica[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("DATABASE_REPLICA_URL goes through pgpool-II"),
        "{json:#}"
    );
}

/// Pools through pgpool-II meet its num_init_children (each child serves one client at a
/// time), which `PGPOOL SHOW ALL` gives: held against that, not the server's max_connections.
#[test]
fn pool_sizes_through_pgpool_meet_its_children() {
    let pair = shared_pair();
    let pool = shared_pgpool_pair();
    let out = run(aksara(project().path()).args([
        "doctor",
        "--url",
        &pool.admin_url(&pair.primary),
        "--driver",
        "libpq",
        "--pool-max",
        "5",
        "--instances",
        "2",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    let text = out.all();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("] Pool size")).collect();
    assert_eq!(
        lines,
        [
            "[!!] Pool size   2 instance(s) × pool_max_size 5 = 10 connections to pgpool-II, but its num_init_children is 8 [pool-exceeds-connections]"
        ],
        "{text}"
    );
}
