//! Tests of the aksara integration-test harness against real PostgreSQL servers.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use support::{Auth, Cluster, ClusterConfig, Shared, shared};

fn tcp_options(cluster: &Cluster) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(cluster.port)
        .username(&cluster.superuser)
        .password(&cluster.password)
        .database("postgres")
}

async fn connect(opts: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(opts))
        .await
        .expect("connect timed out")
}

async fn select_one(opts: &PgConnectOptions) -> i32 {
    let mut conn = connect(opts).await.expect("connect");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("SELECT 1");
    conn.close().await.expect("close");
    one
}

fn sqlstate(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("expected a database error, got {other:?}"),
    }
}

/// Running, and not a zombie waiting for whoever inherited it to reap it.
fn process_alive(pid: &str) -> bool {
    Command::new("ps")
        .args(["-o", "stat=", "-p", pid])
        .output()
        .is_ok_and(|out| {
            let stat = String::from_utf8_lossy(&out.stdout);
            out.status.success() && !stat.trim().is_empty() && !stat.trim().starts_with('Z')
        })
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn finds_the_real_binaries_not_debians_wrappers() {
    let bins = support::bins();
    assert!(bins.major >= 10, "{bins:?}");
    for program in [&bins.initdb, &bins.pg_ctl, &bins.postgres, &bins.psql] {
        let head = std::fs::read(program).expect("read program");
        assert_ne!(&head[..2], b"#!", "{} is a script", program.display());
    }
    let out = Command::new(&bins.pg_ctl)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("PostgreSQL"));
}

#[tokio::test]
async fn sqlx_connects_over_tcp_with_scram() {
    let cluster = shared(Shared::Scram);
    assert_eq!(select_one(&tcp_options(cluster)).await, 1);
    let hba = cluster.psql("postgres", "select auth_method from pg_hba_file_rules");
    assert!(hba.lines().all(|m| m == "scram-sha-256"), "{hba}");
}

#[tokio::test]
async fn sqlx_connects_over_the_unix_socket() {
    let cluster = shared(Shared::Scram);
    let opts = tcp_options(cluster)
        .socket(&cluster.socket_dir)
        .ssl_mode(PgSslMode::Disable);
    assert_eq!(select_one(&opts).await, 1);
    assert!(
        cluster
            .socket_dir
            .join(format!(".s.PGSQL.{}", cluster.port))
            .exists()
    );
}

#[tokio::test]
async fn sqlx_requires_tls_and_the_server_reports_it() {
    let cluster = shared(Shared::Ssl);
    let opts = tcp_options(cluster).ssl_mode(PgSslMode::Require);
    let mut conn = connect(&opts).await.expect("connect with sslmode=require");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl);
}

#[tokio::test]
async fn the_certificate_is_for_localhost_only() {
    let cluster = shared(Shared::Ssl);
    let ca = cluster.ssl_ca.as_ref().expect("ssl cluster has a CA");
    let verify_full = |host: &str, ca: &Path| {
        tcp_options(cluster)
            .host(host)
            .ssl_mode(PgSslMode::VerifyFull)
            .ssl_root_cert(ca)
    };
    assert_eq!(select_one(&verify_full("localhost", ca)).await, 1);

    let err = connect(&verify_full("127.0.0.1", ca)).await.unwrap_err();
    assert!(format!("{err}").contains("not valid for name"), "{err}");

    let untrusted = &support::test_certs().untrusted_ca_cert;
    let err = connect(&verify_full("localhost", untrusted))
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn a_wrong_password_is_28p01() {
    let cluster = shared(Shared::Scram);
    let err = connect(&tcp_options(cluster).password("wrong"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "28P01", "{err}");
}

#[tokio::test]
async fn urls_encode_every_part() {
    let cluster = shared(Shared::Scram);
    let role = support::unique_name("url");
    let password = "p@ss:w/rd#%+ x'";
    cluster.psql(
        "postgres",
        &format!("create role {role} login password 'p@ss:w/rd#%+ x'''"),
    );
    let opts = PgConnectOptions::from_str(&cluster.url(&role, Some(password), "postgres")).unwrap();
    let mut conn = connect(&opts)
        .await
        .expect("connect with an encoded password");
    let user: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(user, role);

    let opts = PgConnectOptions::from_str(&cluster.admin_url()).unwrap();
    assert_eq!(select_one(&opts).await, 1);

    // libpq reads the socket URL the same way.
    let out = Command::new(&support::bins().psql)
        .args(["-X", "-A", "-t", "-c", "select current_user"])
        .arg(cluster.socket_url(&cluster.superuser, "postgres"))
        .env("PGPASSWORD", &cluster.password)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");
}

#[test]
fn psql_runs_statements_one_by_one_and_reports_errors() {
    let cluster = shared(Shared::Scram);
    let db = support::unique_name("db");
    let role = support::unique_name("role");
    cluster.psql(
        "postgres",
        &format!("create role {role} login; create database {db} owner {role};"),
    );
    assert_eq!(
        cluster.psql(&db, "select current_database(), 1 + 1"),
        format!("{db}|2")
    );
    assert_eq!(cluster.psql(&db, "select 1 union all select 2"), "1\n2");

    let err = cluster
        .try_psql(
            "postgres",
            "select 1; select * from no_such_table; select 3",
        )
        .unwrap_err();
    assert!(
        err.contains(r#"relation "no_such_table" does not exist"#),
        "{err}"
    );
    assert!(cluster.try_psql("no_such_db", "select 1").is_err());
}

#[tokio::test]
async fn a_custom_cluster_applies_its_settings() {
    let cluster = Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        ..ClusterConfig::default().set("max_connections", "5")
    });
    assert_eq!(cluster.psql("postgres", "show max_connections"), "5");
    // Trust: any password works.
    assert_eq!(
        select_one(&tcp_options(&cluster).password("anything")).await,
        1
    );
}

#[tokio::test]
async fn held_connections_exhaust_the_slots_until_dropped() {
    let cluster = Cluster::start(ClusterConfig::default().set("max_connections", "5"));
    let role = support::unique_name("app");
    cluster.psql(
        "postgres",
        &format!("create role {role} login password 'pw'"),
    );
    let app = tcp_options(&cluster).username(&role).password("pw");

    let held = cluster.hold_connections(2);
    assert_eq!(held.len(), 2);
    let err = connect(&app).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300", "{err}");
    assert!(
        err.to_string()
            .contains("remaining connection slots are reserved"),
        "{err}"
    );
    drop(held);
    assert_eq!(select_one(&app).await, 1);

    let held = cluster.hold_connections(5);
    let err = connect(&tcp_options(&cluster)).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300", "{err}");
    assert!(
        err.to_string().contains("sorry, too many clients already"),
        "{err}"
    );
    drop(held);
    assert_eq!(select_one(&tcp_options(&cluster)).await, 1);
}

#[tokio::test]
async fn a_hostssl_only_cluster_rejects_plaintext_with_28000() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        hba: Some(vec![
            "local all postgres scram-sha-256".to_owned(),
            "hostssl all all 127.0.0.1/32 scram-sha-256".to_owned(),
        ]),
        ..ClusterConfig::default()
    });
    let err = connect(&tcp_options(&cluster).ssl_mode(PgSslMode::Disable))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "28000", "{err}");
    assert!(err.to_string().contains("no encryption"), "{err}");
    let tls = tcp_options(&cluster).ssl_mode(PgSslMode::Require);
    assert_eq!(select_one(&tls).await, 1);
    assert_eq!(cluster.psql("postgres", "select 1"), "1");
}

#[tokio::test]
async fn stop_immediate_and_start_again_keep_the_port() {
    let cluster = Cluster::start(ClusterConfig::default());
    let opts = tcp_options(&cluster);
    assert_eq!(select_one(&opts).await, 1);

    cluster.stop_immediate();
    assert!(!cluster.is_running());
    let err = connect(&opts).await.unwrap_err();
    match &err {
        sqlx::Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected connection refused, got {other:?}"),
    }

    cluster.start_again();
    assert!(cluster.is_running());
    assert_eq!(select_one(&opts).await, 1);
    assert!(
        cluster
            .log_contents()
            .contains("received immediate shutdown request")
    );
}

#[test]
fn the_log_shows_statements_with_log_statement_all() {
    let cluster = Cluster::start(ClusterConfig::default().set("log_statement", "all"));
    let marker = support::unique_name("marker");
    cluster.psql("postgres", &format!("select '{marker}'"));
    let log = cluster.log_contents();
    assert!(
        log.contains(&format!("statement: select '{marker}'")),
        "{log}"
    );
    assert!(!log.contains(&cluster.password));
}

#[test]
fn a_fresh_cluster_starts_fast() {
    support::bins();
    drop(Cluster::start(ClusterConfig::default())); // the template, once per process
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let cluster = Cluster::start(ClusterConfig::default());
        let start = started.elapsed();
        let stopping = Instant::now();
        drop(cluster);
        times.push((start, stopping.elapsed()));
    }
    for (start, stop) in &times {
        println!("cluster start: {start:?}, stop and remove: {stop:?}");
    }
    let slowest = times.iter().map(|t| t.0).max().unwrap();
    assert!(
        slowest < Duration::from_secs(2),
        "slowest start {slowest:?}"
    );
}

#[test]
fn clusters_start_in_parallel_without_clashing() {
    let clusters: Vec<Cluster> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Cluster::start(ClusterConfig::default())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, a) in clusters.iter().enumerate() {
        assert_eq!(a.psql("postgres", "select 1"), "1");
        for b in &clusters[i + 1..] {
            assert_ne!(a.port, b.port);
            assert_ne!(a.data_dir, b.data_dir);
            assert_ne!(a.socket_dir, b.socket_dir);
        }
    }
}

#[test]
fn drop_stops_the_server_and_removes_its_files() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        ..ClusterConfig::default()
    });
    let pid_file = cluster.data_dir.join("postmaster.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.lines().next().unwrap().to_owned();
    let base = cluster.data_dir.parent().unwrap().to_owned();
    assert!(process_alive(&pid));
    drop(cluster);
    assert!(!process_alive(&pid), "postmaster {pid} survived drop");
    assert!(!base.exists(), "{} survived drop", base.display());
}

#[test]
fn unique_names_differ_across_threads() {
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| support::unique_name("t")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

const CHILD_MODE: &str = "HARNESS_TEST_CHILD_MODE";

/// Runs one `#[ignore]`d helper test of this binary in a child process.
fn spawn_helper(test: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_MODE, "1")
    .stdout(Stdio::piped());
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.spawn().unwrap()
}

/// Helper for `servers_do_not_outlive_a_killed_test_process`: starts a private and a shared
/// cluster, reports them, then waits to be killed.
#[test]
#[ignore = "run by servers_do_not_outlive_a_killed_test_process"]
fn helper_start_clusters_and_wait() {
    if std::env::var_os(CHILD_MODE).is_none() {
        return;
    }
    let own = Cluster::start(ClusterConfig::default());
    let shared = shared(Shared::Trust);
    for cluster in [&own, shared] {
        let pid = std::fs::read_to_string(cluster.data_dir.join("postmaster.pid")).unwrap();
        println!(
            "CLUSTER {} {}",
            pid.lines().next().unwrap(),
            cluster.data_dir.parent().unwrap().display()
        );
    }
    println!("READY");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn servers_do_not_outlive_a_killed_test_process() {
    let mut child = spawn_helper("helper_start_clusters_and_wait", &[]);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut clusters = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest may print "test <name> ... " on the same line first.
        if let Some((_, rest)) = line.split_once("CLUSTER ") {
            let (pid, dir) = rest.split_once(' ').unwrap();
            clusters.push((pid.to_owned(), dir.to_owned()));
        }
        if line.ends_with("READY") {
            break;
        }
    }
    assert_eq!(clusters.len(), 2);
    for (pid, _) in &clusters {
        assert!(process_alive(pid));
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    for (pid, dir) in &clusters {
        wait_until(
            &format!("postmaster {pid} is gone"),
            Duration::from_secs(10),
            || !process_alive(pid),
        );
        wait_until(
            &format!("{dir} is removed"),
            Duration::from_secs(10),
            || !Path::new(dir).exists(),
        );
    }
}

/// Helper for `hermetic_env_removes_the_developers_settings`: prints the environment a command
/// gets after `hermetic_env`.
#[test]
#[ignore = "run by hermetic_env_removes_the_developers_settings"]
fn helper_print_hermetic_env() {
    if std::env::var_os(CHILD_MODE).is_none() {
        return;
    }
    let mut cmd = Command::new("env");
    support::hermetic_env(&mut cmd);
    let out = cmd.output().unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn hermetic_env_removes_the_developers_settings() {
    let child = spawn_helper(
        "helper_print_hermetic_env",
        &[
            ("PGHOST", "/nowhere"),
            ("PGPASSWORD", "leak"),
            ("DATABASE_URL", "postgres://x"),
            ("AKSARA_ENV_FILE", "x"),
            ("CLICOLOR_FORCE", "1"),
        ],
    );
    let out = child.wait_with_output().unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    for gone in [
        "PGHOST=",
        "PGPASSWORD=",
        "DATABASE_URL=",
        "AKSARA_",
        "CLICOLOR_FORCE=",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(gone)),
            "{gone} leaked:\n{env}"
        );
    }
    for kept in ["NO_COLOR=1", "COLUMNS=100"] {
        assert!(env.lines().any(|l| l == kept), "{kept} missing:\n{env}");
    }
    let home = env
        .lines()
        .find_map(|l| l.strip_prefix("HOME="))
        .expect("HOME set");
    assert!(home.contains("aksara-test-"), "{home}");
}
