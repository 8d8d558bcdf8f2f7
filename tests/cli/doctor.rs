//! `aksara doctor` against real servers: a healthy database passes with exit 0, and every
//! failure class of the catalogue is reproduced in the configuration that causes it and
//! named with its code, its hint and exit 1.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Auth, Cluster, ClusterConfig, Shared};
use crate::{Run, aksara, project, run, transcript};

fn doctor_json(url: &str, extra: &[&str]) -> (Run, Value) {
    let dir = project();
    let out = run(aksara(dir.path())
        .args(["doctor", "--format", "json", "--url", url])
        .args(extra));
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {out:?}"));
    (out, json)
}

/// The JSON shape documented in the README: validated on every report the tests see.
fn assert_shape(json: &Value) {
    assert!(json["ok"].is_boolean(), "{json}");
    assert!(json["source"].is_string(), "{json}");
    assert!(json["url"].is_string(), "{json}");
    let checks = json["checks"].as_array().expect("checks is an array");
    assert!(!checks.is_empty());
    for c in checks {
        assert!(c["id"].is_string(), "{c}");
        assert!(
            matches!(
                c["status"].as_str(),
                Some("pass" | "warn" | "fail" | "skip")
            ),
            "{c}"
        );
        assert!(c["code"].is_null() || c["code"].is_string(), "{c}");
        assert!(c["message"].is_string(), "{c}");
        assert!(c["hint"].is_null() || c["hint"].is_string(), "{c}");
        // Measured, or null where the step was proven by another step's round trip or skipped.
        assert!(c["elapsed_ms"].is_u64() || c["elapsed_ms"].is_null(), "{c}");
        if c["status"] == "skip" {
            assert!(c["elapsed_ms"].is_null(), "{c}");
        }
        if let Some(code) = c["code"].as_str() {
            assert!(
                aksara::code::Code::from_id(code).is_some(),
                "code {code} is not in the catalogue"
            );
        }
    }
    assert!(json["server"].is_null() || json["server"].is_object());
}

/// The password in a URL, percent-decoding aside (the harness's passwords are URL-safe).
fn url_password(url: &str) -> Option<&str> {
    let authority = url.split_once("://")?.1.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    // Short test passwords ("wrong", "pw") are words the output may use for other reasons.
    Some(userinfo.split_once(':')?.1).filter(|p| p.len() >= 8)
}

/// Every failure class, in text and JSON, keeps the URL's password to itself.
fn assert_no_password(url: &str, out: &Run) {
    if let Some(password) = url_password(url) {
        assert!(
            !out.all().contains(password),
            "the password leaked: {out:?}"
        );
    }
}

/// The failed check: its code and hint, after checking exit 1 and the shape.
fn expect_failure(url: &str, extra: &[&str], code: &str) -> Value {
    let (out, json) = doctor_json(url, extra);
    assert_no_password(url, &out);
    assert_shape(&json);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(json["ok"], false);
    // The connection's own diagnosis; what each driver makes of the URL is checked in
    // tests/cli/drivers.rs.
    let failed: Vec<&Value> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail" && c["id"] != "driver")
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly one failed connection check expected: {json:#}"
    );
    assert_eq!(failed[0]["code"], code, "{json:#}");
    assert!(
        failed[0]["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{json:#}"
    );
    failed[0].clone()
}

/// The same failure in text, as the user reads it, against a snapshot (the JSON is checked
/// by `expect_failure`). `replacements` turn ports, paths and names into placeholders.
fn text_snapshot(name: &str, url: &str, extra: &[&str], replacements: &[(&str, &str)]) {
    doctor_snapshot(name, url, extra, 1, replacements);
}

/// `aksara doctor --url URL` in text against a snapshot, after checking its exit code and
/// that the URL's password stays out of the output.
fn doctor_snapshot(
    name: &str,
    url: &str,
    extra: &[&str],
    code: i32,
    replacements: &[(&str, &str)],
) {
    let dir = project();
    let out = run(aksara(dir.path())
        .args(["doctor", "--url", url])
        .args(extra));
    assert_eq!(out.code, code, "{out:?}");
    assert_no_password(url, &out);
    let command = format!("aksara doctor --url {url} {}", extra.join(" "));
    insta::assert_snapshot!(name, transcript(command.trim_end(), &out, replacements));
}

/// A doctor run on a shared trust cluster, in text, with its port and the given names masked.
fn trust_snapshot(
    name: &str,
    cluster: &Cluster,
    url: &str,
    extra: &[&str],
    code: i32,
    names: &[(&str, &'static str)],
) {
    let placeholders = cluster_placeholders(cluster);
    let mut pairs = refs(&placeholders);
    pairs.extend_from_slice(names);
    doctor_snapshot(name, url, extra, code, &pairs);
}

/// Placeholders for a harness cluster: its port, socket folder and superuser password.
fn cluster_placeholders(cluster: &Cluster) -> Vec<(String, &'static str)> {
    vec![
        (cluster.port.to_string(), "[PORT]"),
        (cluster.socket_dir.display().to_string(), "[SOCKET_DIR]"),
        (
            support::encode(&cluster.socket_dir.display().to_string()),
            "[SOCKET_DIR]",
        ),
        (cluster.password.clone(), "[PASSWORD]"),
    ]
}

fn refs<'a>(pairs: &'a [(String, &'static str)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(v, p)| (v.as_str(), *p)).collect()
}

#[test]
fn a_healthy_database_passes_every_check() {
    let cluster = support::shared(Shared::Scram);
    let (out, json) = doctor_json(&cluster.admin_url(), &[]);
    assert_shape(&json);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json["ok"], true);
    let ids: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "url",
        "host",
        "reach",
        "tls",
        "login",
        "query",
        "privileges",
    ] {
        assert!(ids.contains(&id), "missing check {id}: {ids:?}");
    }
    assert!(
        json["server"]["version"]
            .as_str()
            .unwrap()
            .starts_with("15"),
        "{json:#}"
    );
    assert!(json["server"]["max_connections"].as_i64().unwrap() > 0);
    assert!(
        !out.all().contains(&cluster.password),
        "the password leaked: {out:?}"
    );
}

#[test]
fn the_text_checklist_reads_like_a_checklist() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let out = run(aksara(dir.path()).args(["doctor", "--url", &cluster.admin_url()]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(&cluster.password));
    // NO_COLOR and no terminal: ASCII marks, the URL with its password masked.
    let placeholders = cluster_placeholders(cluster);
    insta::assert_snapshot!(
        "doctor_a_healthy_url_reads_as_a_checklist",
        transcript(
            &format!("aksara doctor --url {}", cluster.admin_url()),
            &out,
            &refs(&placeholders)
        )
    );
}

#[test]
fn the_url_comes_from_the_env_file() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::write(
        dir.path().join(".env"),
        format!("# app\nDATABASE_URL={}\n", cluster.admin_url()),
    )
    .unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--format", "json"]));
    assert_eq!(out.code, 0, "{out:?}");
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_shape(&json);
    assert!(
        json["source"]
            .as_str()
            .unwrap()
            .contains("DATABASE_URL, line 2"),
        "{json:#}"
    );
}

#[test]
fn no_url_anywhere_is_a_usage_error() {
    let dir = project();
    let out = run(aksara(dir.path()).arg("doctor"));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "doctor_without_a_url_is_a_usage_error",
        transcript("aksara doctor", &out, &[])
    );
}

#[test]
fn invalid_url() {
    let check = expect_failure(
        "postgresql://app:secret@localhost:notaport/db",
        &[],
        "invalid-url",
    );
    assert!(
        check["message"].as_str().unwrap().contains("notaport"),
        "{check}"
    );
    assert!(!check.to_string().contains("secret"));
    text_snapshot(
        "doctor_invalid_url",
        "postgresql://app:secret@localhost:notaport/db",
        &[],
        &[],
    );
}

#[test]
fn dns_failure() {
    let check = expect_failure(
        "postgresql://app:pw@no-such-host.invalid:5432/db",
        &[],
        "dns-failure",
    );
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("no-such-host.invalid"),
        "{check}"
    );
    text_snapshot(
        "doctor_dns_failure",
        "postgresql://app:pw@no-such-host.invalid:5432/db",
        &[],
        &[],
    );
}

#[test]
fn connection_refused_names_nearby_servers() {
    let port = support::free_port();
    let started = Instant::now();
    let check = expect_failure(
        &format!("postgresql://app:pw@127.0.0.1:{port}/db"),
        &[],
        "connection-refused",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused took {:?}",
        started.elapsed()
    );
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains(&port.to_string()),
        "{check}"
    );
    text_snapshot(
        "doctor_connection_refused",
        &format!("postgresql://app:pw@127.0.0.1:{port}/db"),
        &[],
        &[(&port.to_string(), "[PORT]")],
    );
}

#[test]
fn a_missing_socket_is_told_apart_from_a_refused_port() {
    let cluster = support::shared(Shared::Trust);
    let port = support::free_port();
    let url = format!(
        "postgresql:///db?host={}&port={port}&user=app",
        cluster.socket_dir.display()
    );
    let check = expect_failure(&url, &[], "connection-refused");
    let message = check["message"].as_str().unwrap();
    assert!(message.contains("no server socket"), "{check}");
    assert!(message.contains(&format!(".s.PGSQL.{port}")), "{check}");
    let mut places = cluster_placeholders(cluster);
    places.push((port.to_string(), "[PORT]"));
    text_snapshot(
        "doctor_connection_refused_socket",
        &url,
        &[],
        &refs(&places),
    );
}

#[test]
fn a_silent_server_times_out_within_the_bound() {
    // Accepts TCP connections (the kernel completes the handshake) and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let check = expect_failure(
        &format!("postgresql://app:pw@127.0.0.1:{port}/db?connect_timeout=2"),
        &[],
        "connection-timeout",
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(4500),
        "took {elapsed:?}"
    );
    assert!(
        check["message"].as_str().unwrap().contains("2.0 s"),
        "{check}"
    );
    text_snapshot(
        "doctor_connection_timeout",
        &format!("postgresql://app:pw@127.0.0.1:{port}/db?connect_timeout=2"),
        &[],
        &[(&port.to_string(), "[PORT]")],
    );
    drop(listener);
}

#[test]
fn ssl_unsupported() {
    let cluster = support::shared(Shared::Scram);
    let check = expect_failure(
        &format!("{}?sslmode=require", cluster.admin_url()),
        &[],
        "ssl-unsupported",
    );
    assert_eq!(check["id"], "tls");
    text_snapshot(
        "doctor_ssl_unsupported",
        &format!("{}?sslmode=require", cluster.admin_url()),
        &[],
        &refs(&cluster_placeholders(cluster)),
    );
}

#[test]
fn ssl_certificate_name_mismatch_and_unknown_ca() {
    let cluster = support::shared(Shared::Ssl);
    let ca = cluster
        .ssl_ca
        .as_ref()
        .expect("the SSL cluster has a CA")
        .display()
        .to_string();
    // The certificate names localhost, not 127.0.0.1.
    let check = expect_failure(
        &format!(
            "{}?sslmode=verify-full&sslrootcert={ca}",
            cluster.admin_url()
        ),
        &[],
        "ssl-certificate",
    );
    assert!(
        check["hint"].as_str().unwrap().contains("127.0.0.1"),
        "{check}"
    );
    // Without the CA the chain does not verify.
    let check = expect_failure(
        &format!("{}?sslmode=verify-ca", cluster.admin_url()),
        &[],
        "ssl-certificate",
    );
    assert!(
        check["hint"].as_str().unwrap().contains("sslrootcert"),
        "{check}"
    );
    // With the CA and the right name, it passes.
    let url = cluster.admin_url().replace("127.0.0.1", "localhost");
    let (out, _) = doctor_json(&format!("{url}?sslmode=verify-full&sslrootcert={ca}"), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut places = cluster_placeholders(cluster);
    places.push((ca.clone(), "[CA]"));
    text_snapshot(
        "doctor_ssl_certificate",
        &format!(
            "{}?sslmode=verify-full&sslrootcert={ca}",
            cluster.admin_url()
        ),
        &[],
        &refs(&places),
    );
}

#[test]
fn auth_failed_is_fast_and_says_the_role_may_not_exist() {
    let cluster = support::shared(Shared::Scram);
    let started = Instant::now();
    let check = expect_failure(
        &cluster.url("postgres", Some("wrong"), "postgres"),
        &[],
        "auth-failed",
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        check["hint"].as_str().unwrap().contains("does not exist"),
        "{check}"
    );
    text_snapshot(
        "doctor_auth_failed",
        &cluster.url("postgres", Some("wrong"), "postgres"),
        &[],
        &refs(&cluster_placeholders(cluster)),
    );
}

/// A role made by an unquoted `CREATE ROLE ShopApp` is "shopapp"; a URL naming "ShopApp" fails
/// with the server's usual words, and the hint says how the case folds. The folded name works.
#[test]
fn a_role_name_with_capitals_is_told_how_sql_folds_it() {
    let cluster = support::shared(Shared::Scram);
    let typed = format!("Shop{}", support::unique_name("app"));
    let folded = typed.to_lowercase();
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {typed} LOGIN PASSWORD 'case-pw'"),
    );
    let check = expect_failure(
        &cluster.url(&typed, Some("case-pw"), "postgres"),
        &[],
        "auth-failed",
    );
    let hint = check["hint"].as_str().unwrap();
    assert!(
        hint.ends_with(&format!(
            "an unquoted `CREATE ROLE {typed}` makes \"{folded}\": if that is how the role was made, put {folded} in the URL"
        )),
        "{hint}"
    );
    let (out, _) = doctor_json(&cluster.url(&folded, Some("case-pw"), "postgres"), &[]);
    assert_eq!(out.code, 0, "the folded name logs in: {out:?}");
}

#[test]
fn password_required() {
    let cluster = support::shared(Shared::Scram);
    expect_failure(
        &cluster.url("postgres", None, "postgres"),
        &[],
        "password-required",
    );
    text_snapshot(
        "doctor_password_required",
        &cluster.url("postgres", None, "postgres"),
        &[],
        &refs(&cluster_placeholders(cluster)),
    );
}

#[test]
fn role_missing_under_trust() {
    let cluster = support::shared(Shared::Trust);
    let check = expect_failure(&cluster.url("ghost", None, "postgres"), &[], "role-missing");
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains("CREATE ROLE \"ghost\""),
        "{check}"
    );
    text_snapshot(
        "doctor_role_missing",
        &cluster.url("ghost", None, "postgres"),
        &[],
        &refs(&cluster_placeholders(cluster)),
    );
}

#[test]
fn database_missing() {
    let cluster = support::shared(Shared::Scram);
    let check = expect_failure(
        &cluster.url("postgres", Some(&cluster.password), "nosuchdb"),
        &[],
        "database-missing",
    );
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains("CREATE DATABASE \"nosuchdb\" OWNER \"postgres\""),
        "{check}"
    );
    text_snapshot(
        "doctor_database_missing",
        &cluster.url("postgres", Some(&cluster.password), "nosuchdb"),
        &[],
        &refs(&cluster_placeholders(cluster)),
    );
}

#[test]
fn ssl_required_when_pg_hba_only_accepts_tls() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        hba: Some(vec![
            "local all all scram-sha-256".into(),
            "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
        ]),
        ..ClusterConfig::default()
    });
    let check = expect_failure(
        &format!("{}?sslmode=disable", cluster.admin_url()),
        &[],
        "ssl-required",
    );
    assert!(
        check["hint"].as_str().unwrap().contains("sslmode=require"),
        "{check}"
    );
    text_snapshot(
        "doctor_ssl_required",
        &format!("{}?sslmode=disable", cluster.admin_url()),
        &[],
        &refs(&cluster_placeholders(&cluster)),
    );
    // libpq's allow falls back to TLS and gets in; sqlx alone would not.
    let (out, _) = doctor_json(&format!("{}?sslmode=allow", cluster.admin_url()), &[]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn no_hba_entry_when_neither_tls_nor_plaintext_is_let_in() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        hba: Some(vec![
            "local all all scram-sha-256".into(),
            "host all someone_else 127.0.0.1/32 scram-sha-256".into(),
        ]),
        ..ClusterConfig::default()
    });
    let check = expect_failure(&cluster.admin_url(), &[], "no-hba-entry");
    let hint = check["hint"].as_str().unwrap();
    assert!(
        hint.contains("postgres  postgres  127.0.0.1/32  scram-sha-256"),
        "{check}"
    );
    text_snapshot(
        "doctor_no_hba_entry",
        &cluster.admin_url(),
        &[],
        &refs(&cluster_placeholders(&cluster)),
    );
}

/// Its own trust cluster with `max` connection slots and none reserved for superusers.
fn trust_cluster_with_max_connections(max: u32) -> Cluster {
    Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        settings: vec![
            ("max_connections".into(), max.to_string()),
            ("superuser_reserved_connections".into(), "0".into()),
        ],
        ..ClusterConfig::default()
    })
}

#[test]
fn too_many_connections() {
    let cluster = trust_cluster_with_max_connections(3);
    let held = cluster.hold_connections(3);
    assert_eq!(held.len(), 3);
    expect_failure(
        &cluster.url("postgres", None, "postgres"),
        &[],
        "too-many-connections",
    );
    text_snapshot(
        "doctor_too_many_connections",
        &cluster.url("postgres", None, "postgres"),
        &[],
        &refs(&cluster_placeholders(&cluster)),
    );
}

#[test]
fn permission_denied_without_connect_privilege() {
    let cluster = support::shared(Shared::Trust);
    let db = support::unique_name("locked");
    let role = support::unique_name("outsider");
    cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN; REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"),
    );
    let check = expect_failure(&cluster.url(&role, None, &db), &[], "permission-denied");
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("GRANT CONNECT ON DATABASE \"{db}\" TO \"{role}\"")),
        "{check}"
    );
    let mut places = cluster_placeholders(cluster);
    places.push((db.clone(), "[DB]"));
    places.push((role.clone(), "[ROLE]"));
    text_snapshot(
        "doctor_permission_denied",
        &cluster.url(&role, None, &db),
        &[],
        &refs(&places),
    );
}

/// The Privileges check of a doctor's JSON report.
fn privileges_check(json: &Value) -> Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "privileges")
        .cloned()
        .unwrap_or_else(|| panic!("no privileges check: {json:#}"))
}

#[test]
fn a_role_granted_all_on_database_cannot_create_tables_on_pg15() {
    let cluster = support::shared(Shared::Trust);
    let db = support::unique_name("granted");
    let role = support::unique_name("grantee");
    cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN; GRANT ALL PRIVILEGES ON DATABASE {db} TO {role}"),
    );
    let (out, json) = doctor_json(&cluster.url(&role, None, &db), &[]);
    assert_shape(&json);
    let check = privileges_check(&json);
    assert_eq!(check["status"], "warn", "{json:#}");
    assert_eq!(check["code"], "cannot-create-tables");
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("ALTER DATABASE \"{db}\" OWNER TO \"{role}\"")),
        "{check}"
    );
    // A warning: the connection itself works.
    assert_eq!(out.code, 0, "{out:?}");
}

/// The doctor's Privileges line as JSON: (status, code, hint).
fn privileges_line(url: &str) -> (String, String, String) {
    let (out, json) = doctor_json(url, &[]);
    assert_eq!(out.code, 0, "a warning, the connection works: {out:?}");
    let check = privileges_check(&json);
    let text = |k: &str| check[k].as_str().unwrap_or_default().to_string();
    (text("status"), text("code"), text("hint"))
}

/// The first backquoted statement of `hint` that starts with `keyword`, as printed.
fn statement_in(hint: &str, keyword: &str) -> String {
    hint.split('`')
        .skip(1)
        .step_by(2)
        .find(|part| part.starts_with(keyword))
        .unwrap_or_else(|| panic!("no `{keyword} ...` in the hint: {hint}"))
        .to_string()
}

/// Each way a role can lack a place for its tables gets the fix its server's state shows (read
/// on the failure path, not guessed from the message), and that statement, run as printed,
/// makes the same URL pass: a search_path set for the role to a schema that does not exist;
/// schema public closed by `REVOKE ALL ... FROM PUBLIC` (the hardening step), which gives the
/// same "no schema has been selected" error; a default_tablespace the role may not create in;
/// and public owned by a superuser with CREATE revoked (PostgreSQL 14's layout), which is not
/// PostgreSQL 15's case. Before, the first two got a hint about another session's lock.
#[test]
fn a_role_without_a_place_for_its_tables_gets_the_fix_its_servers_state_shows() {
    let cluster = support::shared(Shared::Trust);
    let name = support::unique_name("nowhere");
    let location = tempfile::tempdir().unwrap();
    support::give_to_server_user(location.path(), 0o700);
    let setups = [
        // (role and database suffix, SQL as the superuser in postgres, then in the database)
        (
            "path",
            "ALTER ROLE {r} SET search_path = missing_schema".to_string(),
            "",
        ),
        (
            "closed",
            String::new(),
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        ),
        (
            "space",
            format!(
                "CREATE TABLESPACE {{r}} LOCATION '{}'; ALTER ROLE {{r}} SET default_tablespace = {{r}}",
                location.path().display()
            ),
            "GRANT CREATE ON SCHEMA public TO PUBLIC",
        ),
        (
            "pg14",
            String::new(),
            "ALTER SCHEMA public OWNER TO postgres; REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        ),
    ];
    let mut seen = Vec::new();
    for (suffix, in_postgres, in_db) in &setups {
        let r = format!("{name}_{suffix}");
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {r} LOGIN; CREATE DATABASE {r}"),
        );
        if !in_postgres.is_empty() {
            cluster.psql("postgres", &in_postgres.replace("{r}", &r));
        }
        if !in_db.is_empty() {
            cluster.psql(&r, in_db);
        }
        let url = cluster.url(&r, None, &r);
        let (status, code, hint) = privileges_line(&url);
        assert_eq!(status, "warn", "{suffix}: {hint}");
        let fix = match *suffix {
            "path" => {
                assert!(
                    hint.starts_with("search_path is `missing_schema` (set for the role)"),
                    "{hint}"
                );
                statement_in(&hint, "CREATE SCHEMA")
            }
            "closed" => {
                assert!(hint.contains("has no USAGE on it"), "{hint}");
                statement_in(&hint, "GRANT USAGE, CREATE ON SCHEMA \"public\"")
            }
            "space" => statement_in(&hint, "GRANT CREATE ON TABLESPACE"),
            _ => {
                assert!(!hint.contains("PostgreSQL 15"), "{hint}");
                statement_in(&hint, "GRANT CREATE ON SCHEMA \"public\"")
            }
        };
        seen.push(format!("{suffix}: {code}"));
        cluster.psql(&r, &fix);
        let (status, _, hint) = privileges_line(&url);
        assert_eq!(status, "pass", "{suffix} after `{fix}`: {hint}");
    }
    assert_eq!(
        seen,
        [
            "path: no-creation-schema",
            "closed: no-creation-schema",
            "space: cannot-create-tables",
            "pg14: cannot-create-tables"
        ]
    );
    let space = format!("{name}_space");
    cluster.psql(
        "postgres",
        &format!("ALTER ROLE {space} RESET default_tablespace; DROP DATABASE {space}; DROP TABLESPACE {space}"),
    );
}

/// A refusal aksara has no diagnosis for (an event trigger that stops DDL in this database) is
/// shown in the server's words, with the server's own hint, and no code or hint of another
/// class: not "cannot create tables", not a lock.
#[test]
fn a_refused_probe_with_no_diagnosis_keeps_the_servers_words() {
    let cluster = support::shared(Shared::Trust);
    let r = support::unique_name("frozen");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {r} LOGIN; CREATE DATABASE {r} OWNER {r}"),
    );
    cluster.psql(
        &r,
        "CREATE FUNCTION no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'DDL is frozen here' USING HINT = 'ask the DBA'; END $$; \
         CREATE EVENT TRIGGER ddl_frozen ON ddl_command_start EXECUTE FUNCTION no_ddl()",
    );
    let (out, json) = doctor_json(&cluster.url(&r, None, &r), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let check = privileges_check(&json);
    assert_eq!(check["status"], "warn", "{check}");
    assert!(check["code"].is_null(), "no borrowed code: {check}");
    assert_eq!(
        check["message"],
        format!(
            "user \"{r}\" can log in, but the server refused the create-table check: DDL is frozen here (SQLSTATE P0001)"
        )
    );
    assert_eq!(check["hint"], "the server's hint: ask the DBA");
}

#[test]
fn pool_exceeding_max_connections_is_a_warning_with_the_table() {
    let cluster = support::shared(Shared::Scram);
    let (out, json) = doctor_json(
        &cluster.admin_url(),
        &["--pool-max", "50", "--instances", "4"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let pool = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "pool-exceeds-connections")
        .expect("a pool warning")
        .clone();
    assert!(pool["message"].as_str().unwrap().contains("200"), "{pool}");
    assert!(
        pool["hint"]
            .as_str()
            .unwrap()
            .contains("small production 5–20"),
        "{pool}"
    );
}

#[test]
fn wait_returns_once_the_server_is_up_and_stops_early_on_a_wrong_password() {
    let cluster = support::shared(Shared::Scram);
    let started = Instant::now();
    let (out, _) = doctor_json(
        &cluster.url("postgres", Some("wrong"), "postgres"),
        &["--wait", "30"],
    );
    assert_eq!(out.code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--wait retried a wrong password: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_server_shutting_down_is_reported_as_shutting_down() {
    let cluster = Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        ..ClusterConfig::default()
    });
    let held = cluster.hold_connections(1);
    cluster.begin_smart_shutdown();
    // The server answers 57P03 as soon as it has seen the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.try_psql("postgres", "SELECT 1").is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let check = expect_failure(
        &cluster.url("postgres", None, "postgres"),
        &[],
        "server-shutting-down",
    );
    assert!(
        check["message"].as_str().unwrap().contains("shutting down"),
        "{check}"
    );
    text_snapshot(
        "doctor_server_shutting_down",
        &cluster.url("postgres", None, "postgres"),
        &[],
        &refs(&cluster_placeholders(&cluster)),
    );
    drop(held);
}

#[test]
fn connections_near_the_limit_warn() {
    let cluster = trust_cluster_with_max_connections(5);
    let _held = cluster.hold_connections(3);
    let (out, json) = doctor_json(
        &cluster.url("postgres", None, "postgres"),
        &["--pool-max", "1"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let near = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "connections-near-limit")
        .expect("a near-limit warning")
        .clone();
    assert!(
        near["message"].as_str().unwrap().contains("4 of 5"),
        "{near}"
    );
}

#[test]
fn an_env_file_not_ignored_by_git_and_readable_by_others_warns() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(git.success());
    let env = dir.path().join(".env");
    std::fs::write(&env, format!("DATABASE_URL={}\n", cluster.admin_url())).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--format", "json"]));
    assert_eq!(out.code, 0, "{out:?}");
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let codes: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert!(codes.contains(&"env-not-ignored"), "{json:#}");
    assert!(codes.contains(&"env-world-readable"), "{json:#}");
    // Fixed: ignored and private, both warnings go.
    std::fs::write(dir.path().join(".gitignore"), ".env\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--format", "json"]));
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let codes: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert!(
        !codes.contains(&"env-not-ignored") && !codes.contains(&"env-world-readable"),
        "{json:#}"
    );
}

/// The shell's `DATABASE_URL` beside a different one in `.env`: the app gets one or the other by
/// its loader (python-dotenv keeps the shell's), so doctor checks both, and a failure of either
/// fails the run.
#[test]
fn the_shell_shadowing_the_env_file_is_checked_too() {
    let cluster = support::shared(Shared::Scram);
    let dir = project();
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_URL={}\n", cluster.admin_url()),
    )
    .unwrap();
    // Its mode set, not left to the umask: the doctor's `.env mode` line is in the snapshot.
    std::fs::set_permissions(
        dir.path().join(".env"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let dead = support::free_port();
    let out = run(aksara(dir.path()).arg("doctor").env(
        "DATABASE_URL",
        format!("postgresql://other@127.0.0.1:{dead}/db"),
    ));
    assert_eq!(out.code, 1, "{out:?}");
    let mut placeholders = cluster_placeholders(cluster);
    placeholders.push((dead.to_string(), "[DEAD-PORT]"));
    insta::assert_snapshot!(
        "doctor_checks_the_shells_database_url_beside_the_env_files",
        transcript(
            "DATABASE_URL=postgresql://other@127.0.0.1:[DEAD-PORT]/db aksara doctor",
            &out,
            &refs(&placeholders)
        )
    );

    // Both work: both are checked and the run passes.
    let other = format!("{}?application_name=from-the-shell", cluster.admin_url());
    let out = run(aksara(dir.path())
        .args(["doctor", "--format", "json"])
        .env("DATABASE_URL", &other));
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let sources: Vec<&str> = json["targets"]
        .as_array()
        .expect("a report per target")
        .iter()
        .map(|t| t["source"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        sources,
        [
            ".env (DATABASE_URL, line 1)",
            "the environment variable DATABASE_URL"
        ],
        "{json:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals that used to come out as `connection-refused` with "see the server log": each gets
// its own code, the server's words, and a fix that is true of the server's state.

/// The failed check's message and hint together, for asserting what the user reads.
fn said(check: &Value) -> String {
    format!("{} / {}", check["message"], check["hint"])
}

fn assert_no_filler(check: &Value) {
    let text = said(check);
    assert!(!text.contains("see the server log"), "{text}");
}

#[test]
fn a_nologin_role_is_told_to_get_login() {
    let cluster = support::shared(Shared::Trust);
    let role = support::unique_name("nologin");
    cluster.psql("postgres", &format!("CREATE ROLE {role} NOLOGIN"));
    let check = expect_failure(
        &cluster.url(&role, None, "postgres"),
        &[],
        "role-cannot-login",
    );
    assert_no_filler(&check);
    trust_snapshot(
        "doctor_role_cannot_login",
        cluster,
        &cluster.url(&role, None, "postgres"),
        &[],
        1,
        &[(&role, "[ROLE]")],
    );
    // The fix works: after it, the same URL passes.
    cluster.psql("postgres", &format!("ALTER ROLE {role} LOGIN"));
    let (out, _) = doctor_json(&cluster.url(&role, None, "postgres"), &[]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_database_that_does_not_allow_connections() {
    let cluster = support::shared(Shared::Trust);
    let db = support::unique_name("closed");
    cluster.psql(
        "postgres",
        &format!("CREATE DATABASE {db} ALLOW_CONNECTIONS false"),
    );
    let check = expect_failure(
        &cluster.url("postgres", None, &db),
        &[],
        "database-not-accepting",
    );
    assert_no_filler(&check);
    trust_snapshot(
        "doctor_database_not_accepting_connections",
        cluster,
        &cluster.url("postgres", None, &db),
        &[],
        1,
        &[(&db, "[DB]")],
    );
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
    );
    let (out, _) = doctor_json(&cluster.url("postgres", None, &db), &[]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn role_and_database_connection_limits_are_not_max_connections() {
    let cluster = support::shared(Shared::Trust);
    let role = support::unique_name("limited");
    let db = support::unique_name("limitdb");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 0; CREATE DATABASE {db} OWNER {role} CONNECTION LIMIT 0"),
    );
    expect_failure(
        &cluster.url(&role, None, "postgres"),
        &[],
        "role-connection-limit",
    );
    // The fix named is the role's limit, not max_connections.
    let names = [(role.as_str(), "[ROLE]"), (db.as_str(), "[DB]")];
    trust_snapshot(
        "doctor_role_connection_limit",
        cluster,
        &cluster.url(&role, None, "postgres"),
        &[],
        1,
        &names,
    );
    cluster.psql(
        "postgres",
        &format!("ALTER ROLE {role} CONNECTION LIMIT -1"),
    );
    expect_failure(
        &cluster.url(&role, None, &db),
        &[],
        "database-connection-limit",
    );
    trust_snapshot(
        "doctor_database_connection_limit",
        cluster,
        &cluster.url(&role, None, &db),
        &[],
        1,
        &names,
    );
}

#[test]
fn a_reject_line_is_not_fixed_by_adding_a_line_below_it() {
    let cluster = Cluster::start(ClusterConfig {
        hba: Some(vec![
            "local all all scram-sha-256".into(),
            "host all all 127.0.0.1/32 reject".into(),
            "host all all 127.0.0.1/32 scram-sha-256".into(),
        ]),
        ..ClusterConfig::default()
    });
    let check = expect_failure(&cluster.admin_url(), &[], "hba-reject");
    assert_no_filler(&check);
    // The hint names the reject line and does not suggest adding one below it.
    trust_snapshot(
        "doctor_hba_reject_line",
        &cluster,
        &cluster.admin_url(),
        &[],
        1,
        &[],
    );
}

#[test]
fn a_cert_only_pg_hba_line_asks_for_a_client_certificate() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        ..ClusterConfig::default()
    });
    // `cert` needs the CA that client certificates are checked against: set it, then switch
    // pg_hba to certificate-only TCP logins and reload.
    let ca = cluster.ssl_ca.clone().expect("ssl cluster has a CA");
    cluster.psql(
        "postgres",
        &format!("ALTER SYSTEM SET ssl_ca_file = '{}'", ca.display()),
    );
    std::fs::write(
        cluster.data_dir.join("pg_hba.conf"),
        "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 cert\n",
    )
    .unwrap();
    cluster.psql("postgres", "SELECT pg_reload_conf()");
    let url = format!("{}?sslmode=require", cluster.admin_url());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let check = loop {
        let (_, json) = doctor_json(&url, &[]);
        let failed = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "fail")
            .cloned();
        match failed {
            Some(c) if c["code"] == "client-certificate-required" => break c,
            other if std::time::Instant::now() > deadline => {
                panic!("no client-certificate-required after the reload: {other:?}")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    assert_no_filler(&check);
    expect_failure(&url, &[], "client-certificate-required");
    trust_snapshot(
        "doctor_client_certificate_required",
        &cluster,
        &url,
        &[],
        1,
        &[],
    );
}

#[test]
fn a_read_only_database_is_not_blamed_on_schema_public() {
    let cluster = support::shared(Shared::Trust);
    let role = support::unique_name("reader");
    let db = support::unique_name("readonly");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN; CREATE DATABASE {db} OWNER {role}; ALTER DATABASE {db} SET default_transaction_read_only = on"),
    );
    let (out, json) = doctor_json(&cluster.url(&role, None, &db), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let check = privileges_check(&json);
    assert_eq!(check["status"], "warn", "{check}");
    // Read-only is named as such, with no schema-ownership fix.
    trust_snapshot(
        "doctor_read_only_database_warning",
        cluster,
        &cluster.url(&role, None, &db),
        &[],
        0,
        &[(&role, "[ROLE]"), (&db, "[DB]")],
    );
}

/// The `.env` as the application's loader reads it: an unclosed quote on line 1 is named with
/// its line (not "no DATABASE_URL"), and duplicate keys say which line each loader takes.
#[test]
fn the_env_file_is_read_as_the_apps_loader_reads_it() {
    let dir = project();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=\"postgresql://app@localhost/app\nOTHER=1\n",
    )
    .unwrap();
    let out = run(aksara(dir.path()).arg("doctor"));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "doctor_names_the_env_files_unclosed_quote",
        transcript("aksara doctor", &out, &[])
    );

    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=postgresql://a@127.0.0.1:1/x\nDATABASE_URL=postgresql://b@127.0.0.1:1/y\n",
    )
    .unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--driver", "libpq"]));
    insta::assert_snapshot!(
        "doctor_says_which_duplicate_line_each_loader_takes",
        transcript("aksara doctor --driver libpq", &out, &[])
    );
}

/// The URL says `[::1]` and the server listens on 127.0.0.1 only (the harness's
/// listen_addresses): it runs, so the hint is the address, not "start the server".
#[test]
fn a_server_on_the_other_loopback_address_is_not_told_to_start() {
    let cluster = support::shared(Shared::Scram);
    let url = format!(
        "postgresql://postgres:{}@[::1]:{}/postgres",
        cluster.password, cluster.port
    );
    expect_failure(&url, &["--driver", "libpq"], "connection-refused");
    // The hint names where it listens and listen_addresses, the IPv6 address bracketed.
    trust_snapshot(
        "doctor_a_server_on_the_other_loopback_is_not_told_to_start",
        cluster,
        &url,
        &["--driver", "libpq"],
        1,
        &[],
    );
}

/// A database that does not exist, next to one that does with another case or a letter off:
/// the hint asks "did you mean", read over a second, bounded login.
#[test]
fn a_missing_database_gets_the_close_names_that_exist() {
    let cluster = support::shared(Shared::Trust);
    let tag = support::unique_name("x");
    let upper = format!("MyApp_{tag}");
    let appdb = format!("appdb_{tag}");
    cluster.psql(
        "postgres",
        &format!("CREATE DATABASE \"{upper}\"; CREATE DATABASE {appdb}"),
    );
    for (name, db) in [
        (
            "doctor_database_missing_suggests_another_case",
            format!("myapp_{tag}"),
        ),
        (
            "doctor_database_missing_suggests_a_near_name",
            format!("apdb_{tag}"),
        ),
    ] {
        let url = cluster.url("postgres", None, &db);
        expect_failure(&url, &["--driver", "libpq"], "database-missing");
        trust_snapshot(
            name,
            cluster,
            &url,
            &["--driver", "libpq"],
            1,
            &[(&tag, "[TAG]")],
        );
    }
}

/// The probe that asks whether PostgreSQL listens (dbsetup's discovery, doctor's failure
/// paths) leaves nothing in the log of a server that offers TLS: it completes the handshake
/// the server's `S` began and closes it, where closing after the `S` made every probe log
/// "could not accept SSL connection: EOF detected" (seen on Debian's own cluster, ssl = on).
#[test]
fn probing_a_tls_server_leaves_nothing_in_its_log() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        ..ClusterConfig::default().set("log_connections", "on")
    });
    let cfg = crate::config(&cluster.admin_url());
    let answer = crate::runtime().block_on(aksara::probe::probe(
        &cfg.endpoints[0],
        Duration::from_secs(5),
    ));
    assert_eq!(answer, aksara::probe::Answer::Postgres { tls: true });
    // The probe's backend: its "connection received" line names its pid; once that process
    // is gone, everything it logged is in the log.
    let log = cluster.log_contents();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("connection received: host=127.0.0.1"))
        .unwrap_or_else(|| panic!("the probe reached no backend: {log}"));
    let pid: u32 = line
        .split('[')
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = cluster.log_contents();
    assert!(!log.contains("could not accept SSL connection"), "{log}");
    assert!(!log.contains(&format!("[{pid}] FATAL")), "{log}");
}
