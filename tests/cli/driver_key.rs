//! `aksara dbsetup --driver-url DRIVER=KEY`: a driver's own form of the URL, written in the
//! same `.env` write as DATABASE_URL, proven with the real drivers (asyncpg `connect` and
//! `create_pool`, psycopg, SQLAlchemy with both dialects, node-postgres, sqlx) and psql on
//! every kind of URL dbsetup writes; doctor reads such a key as that driver's form; what no
//! URL can make a driver do is said in the summary, and the real driver shows it is so.

use aksara::drivers::portable::as_given_to;

use crate::support::drivers::{Outcome, RealDriver, run_all};
use crate::support::{self, Cluster, Shared, Test, unique_name};
use crate::{Run, aksara, env_value, project, psql_url, run};

const FORMS: [(&str, &str, RealDriver); 3] = [
    (
        "sqlalchemy-asyncpg",
        "SQLALCHEMY_DATABASE_URL",
        RealDriver::SqlalchemyAsyncpg,
    ),
    (
        "sqlalchemy-psycopg",
        "SQLALCHEMY_PSYCOPG_DATABASE_URL",
        RealDriver::SqlalchemyPsycopg,
    ),
    ("node-pg", "NODE_PG_DATABASE_URL", RealDriver::NodePg),
];

fn form_flags() -> Vec<String> {
    FORMS
        .iter()
        .flat_map(|(driver, key, _)| ["--driver-url".to_owned(), format!("{driver}={key}")])
        .collect()
}

/// One setup: where it must land, and what it wrote.
struct Case {
    name: &'static str,
    port: u16,
    tls: bool,
    /// The drivers DATABASE_URL cannot serve (they have their form).
    main_fails: &'static [RealDriver],
    dir: tempfile::TempDir,
    stdout: String,
    out: Run,
}

impl Case {
    fn value(&self, key: &str) -> String {
        env_value(&self.dir.path().join(".env"), key)
            .unwrap_or_else(|| panic!("{}: .env has no {key}: {}", self.name, self.stdout))
    }
}

fn setup(
    name: &'static str,
    mut cmd: std::process::Command,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    main_fails: &'static [RealDriver],
) -> Case {
    cmd.args(form_flags());
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{name}: dbsetup failed: {out:?}");
    Case {
        name,
        port,
        tls,
        main_fails,
        dir,
        stdout: out.stdout.clone(),
        out,
    }
}

/// A dbsetup run against `cluster` as the user read it: the command line as the user would
/// type it (`extra` after the admin URL, the admin password in PGPASSWORD), the cluster's
/// port and socket folder and the given names masked.
fn key_transcript(
    extra: &str,
    out: &Run,
    cluster: &Cluster,
    names: &[(&str, &'static str)],
) -> String {
    let command = format!(
        "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres {extra}"
    );
    let port = cluster.port.to_string();
    let socket = cluster.socket_dir.display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![(&port, "[PORT]"), (&socket, "[SOCKET DIR]")];
    pairs.extend_from_slice(names);
    crate::transcript(&command, out, &pairs)
}

fn secret_of(url: &str) -> Vec<String> {
    aksara::drivers::meaning(url)
        .ok()
        .and_then(|c| c.password)
        .map(|p| vec![p.expose().to_owned()])
        .unwrap_or_default()
}

/// Every URL dbsetup writes, with every driver form next to it: the main URL connects with
/// psql and every driver it serves (SQLAlchemy after the scheme rewrite), each form connects
/// with its own driver, all at the server the setup used, with TLS where the setup asked.
#[test]
fn each_driver_form_connects_with_its_real_driver_on_every_kind_of_setup() {
    let scram = support::shared(Shared::Scram);
    let ssl = support::shared(Shared::Ssl);
    let socket_only = Cluster::start(support::ClusterConfig::default().set("listen_addresses", ""));
    let mut cases = Vec::new();

    let dir = project();
    let cmd = crate::dbsetup(scram, dir.path(), &["--db-name", &unique_name("fk_tcp")]);
    cases.push(setup("TCP", cmd, dir, scram.port, false, &[]));

    let dir = project();
    let mut cmd = aksara(dir.path());
    cmd.args(["dbsetup", "--non-interactive", "--db-name"])
        .arg(unique_name("fk_sock"))
        .arg("--admin-url")
        .arg(socket_only.socket_url("postgres", "postgres"))
        .env("PGPASSWORD", &socket_only.password);
    cases.push(setup(
        "socket-only server",
        cmd,
        dir,
        socket_only.port,
        false,
        &[],
    ));

    let dir = project();
    let mut cmd = crate::dbsetup(
        scram,
        dir.path(),
        &[
            "--db-name",
            &format!("c++fk {}", std::process::id()),
            "--db-user",
            &format!("fk.user-{}", std::process::id()),
        ],
    );
    cmd.env("AKSARA_DB_PASSWORD", "p@ss:w/rd?#%&+=' \"\\ ünï€ode");
    cases.push(setup("hostile names", cmd, dir, scram.port, false, &[]));

    let dir = project();
    let tls_db = unique_name("fk_tls");
    let mut cmd = aksara(dir.path());
    cmd.args(["dbsetup", "--non-interactive", "--db-name"])
        .arg(&tls_db)
        .args(["--sslmode", "require", "--admin-url"])
        .arg(format!(
            "postgresql://postgres@127.0.0.1:{}/postgres",
            ssl.port
        ))
        .env("PGPASSWORD", &ssl.password);
    cases.push(setup(
        "TLS, --sslmode require",
        cmd,
        dir,
        ssl.port,
        true,
        &[RealDriver::SqlalchemyAsyncpg, RealDriver::NodePg],
    ));

    let mut jobs: Vec<(RealDriver, String)> = Vec::new();
    let mut expected: Vec<(&Case, RealDriver, bool, &str)> = Vec::new();
    let mut secrets: Vec<String> = vec!["p@ss:w/rd?#%&+=' \"\\ ünï€ode".to_owned()];
    for case in &cases {
        let main = case.value("DATABASE_URL");
        secrets.extend(secret_of(&main));
        psql_url(&main, "select 1").unwrap_or_else(|e| panic!("{}: psql: {e}", case.name));
        for driver in RealDriver::ALL {
            jobs.push((driver, as_given_to(driver.model(), &main)));
            let connects = !case.main_fails.contains(&driver);
            expected.push((case, driver, connects, "DATABASE_URL"));
        }
        for (_, key, driver) in FORMS {
            jobs.push((driver, case.value(key)));
            expected.push((case, driver, true, key));
        }
    }
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let outcomes = run_all(&jobs, &secret_refs);
    for ((case, driver, connects, key), outcome) in expected.iter().zip(&outcomes) {
        let what = format!("{} / {} with {key}", case.name, driver.id());
        match outcome {
            Outcome::Connected(place) if *connects => {
                assert_eq!(place.port, case.port, "{what}: {place:?}");
                assert!(place.ssl || !case.tls, "{what}: no TLS: {place:?}");
            }
            Outcome::Failed { .. } if !*connects => {}
            other => panic!(
                "{what}: expected it to {}: {other:?}",
                if *connects { "connect" } else { "fail" }
            ),
        }
    }
    // The forms under TLS, as the summary explains them.
    let tls = cases.iter().find(|c| c.tls).unwrap();
    let node = tls.value("NODE_PG_DATABASE_URL");
    assert!(
        node.contains("uselibpqcompat=true") && node.contains("sslmode=require"),
        "{node}"
    );
    assert!(tls.value("SQLALCHEMY_DATABASE_URL").contains("ssl=require"));
    insta::assert_snapshot!(
        "dbsetup_driver_url_forms_under_tls",
        key_transcript(
            &format!(
                "--db-name [DB] --sslmode require {}",
                form_flags().join(" ")
            ),
            &tls.out,
            ssl,
            &[(&tls_db, "[DB]")]
        )
    );
    for case in &cases {
        for secret in secret_of(&case.value("DATABASE_URL")) {
            assert!(
                !case.stdout.contains(&secret),
                "{}: the password shown",
                case.name
            );
        }
    }
    // Doctor reads each form spelled for its driver as that driver's form (node-postgres's is
    // the main URL itself without TLS), and every check passes.
    for (name, spelled) in [
        ("TLS, --sslmode require", &FORMS[..]),
        ("socket-only server", &FORMS[..2]),
    ] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        let out = run(aksara(case.dir.path()).args(["doctor", "--format", "json"]));
        assert_eq!(out.code, 0, "{name}: doctor: {out:?}");
        for (_, key, _) in spelled {
            assert!(
                out.stdout.contains(&format!("{key} is spelled for")),
                "{name}: {key} not read as a driver form: {}",
                out.stdout
            );
        }
    }
}

/// The statement the summary makes when no URL can make a driver do what libpq does: a TLS
/// server, an admin URL without sslmode, so the written URL names none (libpq's `prefer`
/// gets TLS); node-postgres has no `prefer`, and the summary says it connects without TLS.
/// The real drivers show it: node-postgres connects in plaintext, psycopg and asyncpg with TLS.
#[test]
fn the_summary_says_which_driver_connects_without_tls_and_the_real_driver_does() {
    let ssl = support::shared(Shared::Ssl);
    let dir = project();
    let db = unique_name("fk_prefer");
    let out = run(&mut crate::dbsetup(ssl, dir.path(), &["--db-name", &db]));
    assert_eq!(out.code, 0, "{out:?}");
    // Only node-postgres is named as connecting without TLS.
    insta::assert_snapshot!(
        "dbsetup_names_the_driver_that_connects_without_tls",
        key_transcript("--db-name [DB]", &out, ssl, &[(&db, "[DB]")])
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    let secrets = secret_of(&url);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let drivers = [
        RealDriver::NodePg,
        RealDriver::Psycopg,
        RealDriver::Asyncpg,
        RealDriver::SqlalchemyAsyncpg,
    ];
    let jobs: Vec<(RealDriver, String)> = drivers
        .iter()
        .map(|d| (*d, as_given_to(d.model(), &url)))
        .collect();
    let outcomes = run_all(&jobs, &secrets);
    let tls: Vec<Option<bool>> = outcomes.iter().map(|o| o.place().map(|p| p.ssl)).collect();
    assert_eq!(
        tls,
        vec![Some(false), Some(true), Some(true), Some(true)],
        "{outcomes:?}"
    );
}

/// Without a form of its own, a driver the URL cannot serve is named with its form and the
/// flag that writes it; the real node-postgres indeed fails on DATABASE_URL (it verifies the
/// private CA), and connects with the form the flag writes.
#[test]
fn a_driver_without_its_form_is_named_with_the_flag() {
    let ssl = support::shared(Shared::Ssl);
    let dir = project();
    let db = unique_name("fk_named");
    let mut cmd = crate::dbsetup(ssl, dir.path(), &["--db-name", &db, "--sslmode", "require"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_names_a_driver_without_its_form_with_the_flag",
        key_transcript(
            "--db-name [DB] --sslmode require",
            &out,
            ssl,
            &[(&db, "[DB]")]
        )
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap();
    // The rerun with the flag keeps DATABASE_URL (it works) and adds the form.
    let out = run(&mut crate::dbsetup(
        ssl,
        dir.path(),
        &[
            "--db-name",
            &db,
            "--sslmode",
            "require",
            "--driver-url",
            "node-pg=NODE_PG_DATABASE_URL",
            "--format",
            "json",
        ],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stderr.contains("node-postgres (pg) cannot use"),
        "{}",
        out.stderr
    );
    assert_eq!(
        env_value(&dir.path().join(".env"), "DATABASE_URL").unwrap(),
        url
    );
    let outcome: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON outcome");
    assert_eq!(outcome["env_change"], "unchanged", "{outcome}");
    let form = &outcome["driver_urls"][0];
    assert_eq!(
        (&form["driver"], &form["key"], &form["change"]),
        (
            &serde_json::json!("node-pg"),
            &serde_json::json!("NODE_PG_DATABASE_URL"),
            &serde_json::json!("added")
        ),
        "{outcome}"
    );
    assert!(
        form["url"].as_str().unwrap().contains(":****@"),
        "{outcome}"
    );
    let form = env_value(&dir.path().join(".env"), "NODE_PG_DATABASE_URL").unwrap();
    let secrets = secret_of(&url);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let outcomes = run_all(
        &[
            (RealDriver::NodePg, url.clone()),
            (RealDriver::NodePg, form),
        ],
        &secrets,
    );
    assert!(
        matches!(&outcomes[0], Outcome::Failed { .. }),
        "{:?}",
        outcomes[0]
    );
    assert!(
        outcomes[1]
            .place()
            .is_some_and(|p| p.ssl && p.port == ssl.port),
        "{:?}",
        outcomes[1]
    );
}

/// Bad requests are refused before anything happens: nothing on the server, no `.env`.
#[test]
fn bad_driver_urls_are_refused_before_anything_changes() {
    let scram = support::shared(Shared::Scram);
    let mut shown = String::new();
    for flag in [
        "asyncpg=ASYNCPG_URL",
        "mysql=X_URL",
        "node-pg=DATABASE_URL",
        "node-pg=DATABASE_REPLICA_URL",
        "node-pg",
    ] {
        let dir = project();
        let db = unique_name("fk_bad");
        let out = run(&mut crate::dbsetup(
            scram,
            dir.path(),
            &["--db-name", &db, "--driver-url", flag],
        ));
        assert_eq!(out.code, 2, "{flag}: {out:?}");
        shown.push_str(&key_transcript(
            &format!("--db-name [DB] --driver-url {flag}"),
            &out,
            scram,
            &[(&db, "[DB]")],
        ));
        assert!(!dir.path().join(".env").exists(), "{flag}");
        assert_eq!(
            scram.psql(
                "postgres",
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")
            ),
            "0",
            "{flag}"
        );
    }
    insta::assert_snapshot!("dbsetup_refuses_bad_driver_urls", shown);
}

/// Both keys or neither: a different value already under the form's key stops the setup
/// before any change (DATABASE_URL is not written either); `--force` replaces both in one
/// write, keeping the old lines as comments.
#[test]
fn a_conflicting_form_key_writes_neither_key_and_force_replaces_both() {
    let scram = support::shared(Shared::Scram);
    let dir = project();
    let db = unique_name("fk_conf");
    let env = dir.path().join(".env");
    let original = "SQLALCHEMY_DATABASE_URL=postgresql+asyncpg://someone@elsewhere/theirs\n";
    std::fs::write(&env, original).unwrap();
    let flags = [
        "--db-name",
        &db,
        "--driver-url",
        "sqlalchemy-asyncpg=SQLALCHEMY_DATABASE_URL",
    ];
    let out = run(&mut crate::dbsetup(scram, dir.path(), &flags));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_conflicting_driver_url_key",
        key_transcript(
            "--db-name [DB] --driver-url sqlalchemy-asyncpg=SQLALCHEMY_DATABASE_URL",
            &out,
            scram,
            &[(&db, "[DB]")]
        )
    );
    assert_eq!(std::fs::read_to_string(&env).unwrap(), original);
    assert_eq!(
        scram.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")
        ),
        "0"
    );
    let mut forced = flags.to_vec();
    forced.push("--force");
    let out = run(&mut crate::dbsetup(scram, dir.path(), &forced));
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.contains("# replaced by aksara: SQLALCHEMY_DATABASE_URL=postgresql+asyncpg://someone@elsewhere/theirs"),
        "{text}"
    );
    let form = env_value(&env, "SQLALCHEMY_DATABASE_URL").unwrap();
    assert!(form.starts_with("postgresql+asyncpg://"), "{form}");
    assert!(env_value(&env, "DATABASE_URL").is_some());
    let secrets = secret_of(&form);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let outcome = run_all(&[(RealDriver::SqlalchemyAsyncpg, form.clone())], &secrets).remove(0);
    assert_eq!(
        outcome.place().map(|p| p.port),
        Some(scram.port),
        "{outcome:?}"
    );
}

/// Interactive: the project uses SQLAlchemy with asyncpg (requirements.txt), the URL requires
/// TLS, which SQLAlchemy's asyncpg dialect spells `ssl=`: dbsetup offers to write its form, and
/// the accepted form connects with the real SQLAlchemy.
#[test]
fn the_interactive_flow_offers_the_form_for_a_detected_driver() {
    let ssl = support::shared(Shared::Ssl);
    let db = unique_name("fk_ask");
    let ran = Test::new()
        .cluster(ssl)
        .args(["dbsetup", "--sslmode", "require"])
        .file("requirements.txt", "sqlalchemy[asyncio]==2.0\nasyncpg\n")
        .answers(&[
            ("?which one", &format!("port {}", ssl.port)),
            ("Database name", &db),
            ("Application user", ""),
            ("Password for the application user", "Generate"),
            ("SQLAlchemy + asyncpg cannot use DATABASE_URL as it is", "y"),
            ("Variable for the SQLAlchemy + asyncpg URL", ""),
            ("Go ahead?", "y"),
        ])
        .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    // node-postgres is not in the project: it is named in a warning, not offered.
    let port = ssl.port.to_string();
    let socket = ssl.socket_dir.display().to_string();
    insta::assert_snapshot!(
        "dbsetup_offers_the_form_for_a_detected_driver",
        crate::normalize(
            &ran.transcript(),
            &[(&port, "[PORT]"), (&socket, "[SOCKET DIR]"), (&db, "[DB]")]
        )
    );
    let env = ran.dir.path().join(".env");
    let form = env_value(&env, "SQLALCHEMY_DATABASE_URL").expect("the form is written");
    let secrets = secret_of(&form);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let outcome = run_all(&[(RealDriver::SqlalchemyAsyncpg, form)], &secrets).remove(0);
    assert!(
        outcome.place().is_some_and(|p| p.ssl && p.port == ssl.port),
        "{outcome:?}"
    );
}

/// Doctor on a driver-form key agrees with the real driver when the form is wrong too:
/// `sslmode=` in SQLAlchemy's asyncpg URL fails in SQLAlchemy, and doctor fails that key with
/// the driver's code and the right form, while DATABASE_URL passes.
#[test]
fn doctor_judges_a_form_key_with_its_driver_as_the_real_driver_fares() {
    let ssl = support::shared(Shared::Ssl);
    let dir = project();
    let main = format!("{}?sslmode=require", ssl.admin_url());
    let wrong = main.replacen("postgresql://", "postgresql+asyncpg://", 1);
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_URL={main}\nSQLALCHEMY_DATABASE_URL={wrong}\n"),
    )
    .unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--format", "json"]));
    assert_eq!(out.code, 1, "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets[0]["ok"], true, "{report}");
    let form = &targets[1];
    assert_eq!(form["ok"], false, "{report}");
    let failed = crate::failed_checks(form);
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["code"], "driver-rejects-parameter", "{report}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("sqlalchemy-asyncpg:"),
        "{report}"
    );
    assert!(
        failed[0]["hint"].as_str().unwrap().contains("ssl=require"),
        "{report}"
    );
    let outcome = run_all(
        &[(RealDriver::SqlalchemyAsyncpg, wrong)],
        &[ssl.password.as_str()],
    )
    .remove(0);
    assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
}

/// A project that uses SQLAlchemy + asyncpg: DATABASE_URL alone fails that driver's reading
/// (`postgresql://` is psycopg2's scheme to SQLAlchemy); with the driver's own form under
/// another key of the same `.env`, DATABASE_URL's line says where that form is instead of
/// failing a setup that is right, and the form's header shows it as written.
#[test]
fn a_form_key_beside_database_url_answers_for_its_driver() {
    let ssl = support::shared(Shared::Ssl);
    let main = format!("{}?sslmode=require", ssl.admin_url());
    let form = main
        .replacen("postgresql://", "postgresql+asyncpg://", 1)
        .replace("sslmode=require", "ssl=require");
    let doctor = |env: &str| {
        let dir = project();
        std::fs::write(
            dir.path().join("requirements.txt"),
            "sqlalchemy[asyncio]\nasyncpg\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".env"), env).unwrap();
        run(aksara(dir.path()).args(["doctor", "--format", "json"]))
    };
    // One target is reported on its own; several under `targets`.
    let driver_line = |report: &serde_json::Value, target: usize| -> serde_json::Value {
        let one = if report["targets"].is_array() {
            &report["targets"][target]
        } else {
            report
        };
        one["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["id"] == "driver"
                    && c["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("sqlalchemy-asyncpg:")
            })
            .cloned()
            .unwrap_or_else(|| panic!("no sqlalchemy-asyncpg line: {report}"))
    };

    let alone = doctor(&format!("DATABASE_URL={main}\n"));
    assert_eq!(alone.code, 1, "{alone:?}");
    let report: serde_json::Value = serde_json::from_str(&alone.stdout).unwrap();
    let line = driver_line(&report, 0);
    assert_eq!(line["status"], "fail", "{report}");
    assert_eq!(line["code"], "driver-wrong-scheme", "{report}");

    let both = doctor(&format!(
        "DATABASE_URL={main}\nSQLALCHEMY_DATABASE_URL={form}\n"
    ));
    assert_eq!(both.code, 0, "{both:?}");
    let report: serde_json::Value = serde_json::from_str(&both.stdout).unwrap();
    let line = driver_line(&report, 0);
    assert_eq!(line["status"], "pass", "{report}");
    assert!(
        line["message"].as_str().unwrap().contains(
            "SQLALCHEMY_DATABASE_URL (line 2) is its own form (checked on its own); this URL as is: SQLAlchemy picks the driver from the scheme"
        ),
        "{report}"
    );
    assert_eq!(driver_line(&report, 1)["status"], "pass", "{report}");
    let shown = report["targets"][1]["url"].as_str().unwrap();
    assert!(
        shown.starts_with("postgresql+asyncpg://postgres:****@"),
        "{shown}"
    );
    assert!(shown.ends_with("?ssl=require"), "{shown}");
    assert!(!both.all().contains(&ssl.password), "{both:?}");
    // What doctor says of the form is what the real driver does with it.
    let outcome = run_all(
        &[(RealDriver::SqlalchemyAsyncpg, form)],
        &[ssl.password.as_str()],
    )
    .remove(0);
    assert!(matches!(outcome, Outcome::Connected(_)), "{outcome:?}");
}
