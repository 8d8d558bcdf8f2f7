//! `aksara doctor --fix`: each fix against a real server in the broken state, then the SQL or
//! file change read back from the server or the disk, and a plain `aksara doctor` that passes;
//! the questions through the scripted prompter (declining changes nothing); a fix the admin
//! lacks the right for ends non-zero with the server's reason. The SQL fixes share one
//! cluster, each with names of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::support::{self, Cluster, ClusterConfig, DistCluster, Ran, Shared, Test};
use crate::{aksara, run};

/// An application role with a password, on the shared SCRAM cluster.
fn app_role(cluster: &Cluster, prefix: &str, attributes: &str) -> (String, String) {
    let role = support::unique_name(prefix);
    let password = format!("pw-{role}");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} {attributes} PASSWORD '{password}'"),
    );
    (role, password)
}

/// `aksara doctor --fix --yes` (plus `extra`) on a project whose .env holds `url`, with the
/// cluster's superuser as the admin (PGUSER/PGPASSWORD, as a CI job would give it).
fn fix(cluster: &Cluster, url: &str, extra: &[&str]) -> Ran {
    Test::new()
        .cluster(cluster)
        .file(".env", &format!("DATABASE_URL={url}\n"))
        .args(["doctor", "--fix", "--yes"])
        .args(extra.iter().copied())
        .run()
}

/// A plain `aksara doctor` in the same project, no admin anywhere: it must pass.
fn assert_doctor_passes(dir: &Path) {
    let out = run(aksara(dir).args(["doctor"]));
    assert_eq!(out.code, 0, "the plain doctor after the fix: {out:?}");
}

/// A fix run against `cluster` as the user read it: its port and socket folder, the project
/// folder and the given names masked.
fn fix_transcript(ran: &Ran, cluster: &Cluster, names: &[(&str, &'static str)]) -> String {
    let port = cluster.port.to_string();
    let socket = cluster.socket_dir.display().to_string();
    shown(
        &ran.transcript(),
        ran.dir.path(),
        &[(&port, "[PORT]"), (&socket, "[SOCKET DIR]")],
        names,
    )
}

/// `transcript` with the project folder, `places` (ports, folders) and `names` masked.
fn shown(
    transcript: &str,
    project: &Path,
    places: &[(&str, &'static str)],
    names: &[(&str, &'static str)],
) -> String {
    let project = project.display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![(&project, "[PROJECT]")];
    pairs.extend_from_slice(places);
    pairs.extend_from_slice(names);
    crate::normalize(transcript, &pairs)
}

fn json_fix(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {ran:?}"))
}

#[test]
fn create_database_owned_by_the_urls_user() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixcreate", "LOGIN");
    let db = support::unique_name("fixcreated");
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "doctor_fix_creates_the_missing_database",
        fix_transcript(&ran, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    let owner = cluster.psql(
        "postgres",
        &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'"),
    );
    assert_eq!(owner, role);
    assert_doctor_passes(ran.dir.path());
}

#[test]
fn the_role_login_connect_and_allow_connections_fixes() {
    let cluster = support::shared(Shared::Scram);
    // NOLOGIN.
    let (role, pw) = app_role(cluster, "fixnologin", "NOLOGIN");
    let db = support::unique_name("fixnologin_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "doctor_fix_lets_a_nologin_role_log_in",
        fix_transcript(&ran, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    let login = cluster.psql(
        "postgres",
        &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{role}'"),
    );
    assert_eq!(login, "t");
    assert_doctor_passes(ran.dir.path());

    // A NOLOGIN role with admin rights stays NOLOGIN: that is not the app's role.
    let (admin_role, admin_pw) = app_role(cluster, "fixnologin_admin", "NOLOGIN CREATEROLE");
    let ran = fix(
        cluster,
        &cluster.url(&admin_role, Some(&admin_pw), "postgres"),
        &[],
    );
    assert_eq!(ran.code, 1, "{ran:?}");
    insta::assert_snapshot!(
        "doctor_fix_leaves_a_nologin_admin_role_alone",
        fix_transcript(&ran, cluster, &[(&admin_role, "[ROLE]")])
    );
    let login = cluster.psql(
        "postgres",
        &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{admin_role}'"),
    );
    assert_eq!(login, "f");

    // No CONNECT on a database someone else owns.
    let (role, pw) = app_role(cluster, "fixconnect", "LOGIN");
    let db = support::unique_name("fixconnect_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
    cluster.psql(
        "postgres",
        &format!(
            "REVOKE CONNECT ON DATABASE {db} FROM PUBLIC; GRANT CREATE ON DATABASE {db} TO {role}"
        ),
    );
    cluster.psql(
        &db,
        &format!("GRANT USAGE, CREATE ON SCHEMA public TO {role}"),
    );
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let granted = cluster.psql(
        "postgres",
        &format!("SELECT has_database_privilege('{role}', '{db}', 'CONNECT')"),
    );
    assert_eq!(granted, "t");
    assert_doctor_passes(ran.dir.path());

    // ALLOW_CONNECTIONS false.
    let (role, pw) = app_role(cluster, "fixallow", "LOGIN");
    let db = support::unique_name("fixallow_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"),
    );
    let ran = fix(
        cluster,
        &cluster.url(&role, Some(&pw), &db),
        &["--format", "json"],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let report = json_fix(&ran);
    let fixes = report["fixes"].as_array().unwrap();
    let allow = fixes
        .iter()
        .find(|f| f["id"] == "allow-connections")
        .expect("the fix");
    assert_eq!(allow["applied"], true, "{report:#}");
    assert_eq!(
        allow["action"],
        format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true;")
    );
    assert!(
        allow["as"].as_str().unwrap().contains("\"postgres\""),
        "{report:#}"
    );
    assert_eq!(report["recheck"]["ok"], true, "{report:#}");
    assert_eq!(report["before"]["ok"], false, "{report:#}");
    assert_eq!(report["ok"], true);
    let allowed = cluster.psql(
        "postgres",
        &format!("SELECT datallowconn FROM pg_database WHERE datname = '{db}'"),
    );
    assert_eq!(allowed, "t");
    assert_doctor_passes(ran.dir.path());
}

/// The role may create in schema public, but `default_tablespace` (set for the role) sends its
/// tables to a tablespace it may not create in: the fix is the tablespace's grant, not a
/// schema's, and the plain check then passes.
#[test]
fn a_closed_default_tablespace_gets_its_grant() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixspace", "LOGIN");
    let db = support::unique_name("fixspace_db");
    let location = tempfile::tempdir().unwrap();
    support::give_to_server_user(location.path(), 0o700);
    cluster.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {db} OWNER {role}; CREATE TABLESPACE {role} LOCATION '{}'; ALTER ROLE {role} SET default_tablespace = {role}",
            location.path().display()
        ),
    );
    let can = || {
        cluster.psql(
            "postgres",
            &format!("SELECT has_tablespace_privilege('{role}', '{role}', 'CREATE')"),
        )
    };
    assert_eq!(can(), "f");
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let statement = format!("GRANT CREATE ON TABLESPACE \"{role}\" TO \"{role}\";");
    assert!(
        ran.stdout.contains(&statement) && ran.stdout.contains("grant-tablespace-create"),
        "{ran:?}"
    );
    assert!(!ran.stdout.contains("grant-schema-create"), "{ran:?}");
    assert_eq!(can(), "t");
    assert_doctor_passes(ran.dir.path());

    // Run again, there is nothing left to grant: no fix is offered.
    let again = run(aksara(ran.dir.path()).args(["doctor", "--fix", "--yes"]));
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        !again.stdout.contains("grant-tablespace-create"),
        "{again:?}"
    );
    cluster.psql(
        "postgres",
        &format!(
            "DROP DATABASE {db}; ALTER ROLE {role} RESET default_tablespace; DROP TABLESPACE {role}"
        ),
    );
}

/// A search_path set for the role naming a schema the database does not have
/// (`no-creation-schema`): the fix creates that schema, owned by the role, in that database;
/// the plain check then passes, and a second `--fix` has nothing to do.
#[test]
fn a_search_path_of_missing_schemas_gets_the_first_created() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixnoschema", "LOGIN");
    let db = support::unique_name("fixnoschema_db");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {db}; ALTER ROLE {role} SET search_path = app_{role}, also_missing"
        ),
    );
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let statement = format!("CREATE SCHEMA \"app_{role}\" AUTHORIZATION \"{role}\";");
    assert!(
        ran.stdout.contains(&statement) && ran.stdout.contains("create-schema"),
        "{ran:?}"
    );
    let owner = cluster.psql(
        &db,
        &format!("SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'app_{role}'"),
    );
    assert_eq!(owner, role);
    assert_doctor_passes(ran.dir.path());
    let again = run(aksara(ran.dir.path()).args(["doctor", "--fix", "--yes"]));
    assert_eq!(again.code, 0, "{again:?}");
    assert!(!again.stdout.contains("create-schema"), "{again:?}");
}

#[test]
fn the_connection_limit_and_public_schema_fixes() {
    let cluster = support::shared(Shared::Scram);
    // A role limit of 0 lets nobody in: raised to the pools' size plus headroom.
    let (role, pw) = app_role(cluster, "fixlimit", "LOGIN CONNECTION LIMIT 0");
    let db = support::unique_name("fixlimit_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
    let ran = fix(
        cluster,
        &cluster.url(&role, Some(&pw), &db),
        &["--pool-max", "4", "--instances", "2"],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "doctor_fix_raises_a_role_connection_limit_of_0",
        fix_transcript(&ran, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    let limit = cluster.psql(
        "postgres",
        &format!("SELECT rolconnlimit FROM pg_roles WHERE rolname = '{role}'"),
    );
    assert_eq!(limit, "13");
    assert_doctor_passes(ran.dir.path());

    // The database's own limit, the same rule.
    let (role, pw) = app_role(cluster, "fixdblimit", "LOGIN");
    let db = support::unique_name("fixdblimit_db");
    cluster.psql(
        "postgres",
        &format!("CREATE DATABASE {db} OWNER {role} CONNECTION LIMIT 0"),
    );
    let ran = fix(
        cluster,
        &cluster.url(&role, Some(&pw), &db),
        &["--pool-max", "10"],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let limit = cluster.psql(
        "postgres",
        &format!("SELECT datconnlimit FROM pg_database WHERE datname = '{db}'"),
    );
    assert_eq!(limit, "15");
    assert_doctor_passes(ran.dir.path());

    // PG15: CONNECT but no CREATE on schema public of a database the role does not own.
    let (role, pw) = app_role(cluster, "fixschema", "LOGIN");
    let db = support::unique_name("fixschema_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
    cluster.psql(&db, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let can = cluster.psql(
        &db,
        &format!("SELECT has_schema_privilege('{role}', 'public', 'CREATE')"),
    );
    assert_eq!(can, "t");
    let out = run(aksara(ran.dir.path()).args(["doctor", "--format", "json"]));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("cannot-create-tables"), "{out:?}");

    // Its tables go to another schema (a search_path set for the role): the grant is made on
    // the schema the check found, not on public, and the check then passes.
    let (role, pw) = app_role(cluster, "fixpath", "LOGIN");
    let db = support::unique_name("fixpath_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
    cluster.psql(
        &db,
        &format!("CREATE SCHEMA app; GRANT USAGE ON SCHEMA app TO {role}"),
    );
    cluster.psql(
        "postgres",
        &format!("ALTER ROLE {role} SET search_path = app"),
    );
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains(&format!(
            "GRANT USAGE, CREATE ON SCHEMA \"app\" TO \"{role}\";"
        )),
        "{ran:?}"
    );
    let can = |schema: &str| {
        cluster.psql(
            &db,
            &format!("SELECT has_schema_privilege('{role}', '{schema}', 'CREATE')"),
        )
    };
    assert_eq!((can("app"), can("public")), ("t".into(), "f".into()));

    // Schema public closed to it (REVOKE ALL ... FROM PUBLIC: no-creation-schema): the grant
    // opens the schema the check found closed.
    let (role, pw) = app_role(cluster, "fixclosed", "LOGIN");
    let db = support::unique_name("fixclosed_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
    cluster.psql(&db, "REVOKE ALL ON SCHEMA public FROM PUBLIC");
    let ran = fix(cluster, &cluster.url(&role, Some(&pw), &db), &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let out = run(aksara(ran.dir.path()).args(["doctor", "--format", "json"]));
    assert!(!out.stdout.contains("no-creation-schema"), "{out:?}");
}

#[test]
fn file_fixes_mode_gitignore_and_the_url_for_asyncpg() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixurl", "LOGIN");
    let db = support::unique_name("fixurl_db");
    cluster.psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
    // SQLAlchemy's scheme, which asyncpg (the framework's driver) refuses.
    let url =
        cluster
            .url(&role, Some(&pw), &db)
            .replacen("postgresql://", "postgresql+asyncpg://", 1);
    let test = Test::new()
        .file(
            ".env",
            &format!("# the app's database\nDATABASE_URL={url}\nOTHER=1\n"),
        )
        .file("requirements.txt", "asyncpg\n");
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(test.path())
        .status()
        .expect("run git");
    assert!(git.success());
    let env_file = test.path().join(".env");
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = test.args(["doctor", "--fix", "--yes"]).run();
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(!ran.all_output().contains(&pw), "{ran:?}");
    insta::assert_snapshot!(
        "doctor_fix_rewrites_a_sqlalchemy_url_for_asyncpg",
        fix_transcript(&ran, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    let dir = ran.dir.path();
    // The file checks run once the URL parses: the second run fixes the mode and .gitignore.
    let again = run(aksara(dir).args(["doctor", "--fix", "--yes"]));
    assert_eq!(again.code, 0, "{again:?}");
    let port = cluster.port.to_string();
    insta::assert_snapshot!(
        "doctor_fix_makes_the_env_private_and_git_ignored",
        shown(
            &crate::transcript("aksara doctor --fix --yes", &again, &[]),
            dir,
            &[(&port, "[PORT]")],
            &[(&role, "[ROLE]"), (&db, "[DB]")]
        )
    );
    let mode = std::fs::metadata(dir.join(".env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "/.env"), "{ignore}");
    let env = std::fs::read_to_string(dir.join(".env")).unwrap();
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines[0], "# the app's database");
    assert!(
        lines[1].starts_with("# aksara doctor --fix replaced: DATABASE_URL=postgresql+asyncpg://"),
        "{env}"
    );
    assert!(
        !lines[1].contains(&pw),
        "the old password is kept in clear: {env}"
    );
    assert_eq!(
        lines[2],
        format!("DATABASE_URL={}", cluster.url(&role, Some(&pw), &db))
    );
    assert_eq!(lines[3], "OTHER=1");
    assert_doctor_passes(dir);
}

#[test]
fn the_prompter_asks_per_fix_and_declining_changes_nothing() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixask", "LOGIN");
    let db = support::unique_name("fixask_db");
    let url = cluster.url(&role, Some(&pw), &db);
    let exists = |db: &str| {
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )
    };
    let declined = Test::new()
        .cluster(cluster)
        .file(".env", &format!("DATABASE_URL={url}\n"))
        .answers(&[("Apply create-database", "n")])
        .args(["doctor", "--fix"])
        .run();
    assert_eq!(declined.code, 1, "{declined:?}");
    insta::assert_snapshot!(
        "doctor_fix_declined_changes_nothing",
        fix_transcript(&declined, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    assert_eq!(exists(&db), "0");

    // A session that logs in also gets the file checks: two fixes, two questions, both no.
    let (reader, reader_pw) = app_role(cluster, "fixask_reader", "LOGIN");
    let shared_db = support::unique_name("fixask_shared");
    cluster.psql("postgres", &format!("CREATE DATABASE {shared_db}"));
    let declined = Test::new()
        .cluster(cluster)
        .file(
            ".env",
            &format!(
                "DATABASE_URL={}\n",
                cluster.url(&reader, Some(&reader_pw), &shared_db)
            ),
        )
        .answers(&[("Apply env-mode", "n"), ("Apply grant-schema-create", "n")])
        .args(["doctor", "--fix"])
        .run();
    let mode = std::fs::metadata(declined.dir.path().join(".env"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(
        mode & 0o077,
        0,
        "the declined env-mode fix changed the mode"
    );
    let can = cluster.psql(
        &shared_db,
        &format!("SELECT has_schema_privilege('{reader}', 'public', 'CREATE')"),
    );
    assert_eq!(can, "f", "the declined grant ran");
    // Warnings only, so the exit is 0; nothing was claimed fixed.
    assert_eq!(declined.code, 0, "{declined:?}");
    insta::assert_snapshot!(
        "doctor_fix_two_fixes_declined",
        fix_transcript(
            &declined,
            cluster,
            &[(&reader, "[ROLE]"), (&shared_db, "[DB]")]
        )
    );

    let accepted = Test::new()
        .cluster(cluster)
        .file(".env", &format!("DATABASE_URL={url}\n"))
        .answers(&[
            ("Apply create-database", "y"),
            // With the database there, the check run again sees the .env's mode: a second
            // round asks for it in the same run.
            ("Apply env-mode", "y"),
        ])
        .args(["doctor", "--fix"])
        .run();
    assert_eq!(accepted.code, 0, "{accepted:?}");
    insta::assert_snapshot!(
        "doctor_fix_accepted_in_two_rounds",
        fix_transcript(&accepted, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    let mode = std::fs::metadata(accepted.dir.path().join(".env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{accepted:?}");
    assert_eq!(exists(&db), "1");
    assert_doctor_passes(accepted.dir.path());
}

#[test]
fn fix_without_a_terminal_needs_yes_and_changes_nothing() {
    let dir = crate::project();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=postgresql://a@127.0.0.1:1/a\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join(".env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = run(aksara(dir.path()).args(["doctor", "--fix"]));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "doctor_fix_without_a_terminal_needs_yes",
        shown(
            &crate::transcript("aksara doctor --fix", &out, &[]),
            dir.path(),
            &[],
            &[]
        )
    );
    let mode = std::fs::metadata(dir.path().join(".env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "changed before refusing");
    let out = run(aksara(dir.path()).args(["doctor", "--yes"]));
    assert_eq!(out.code, 2, "--yes without --fix: {out:?}");
}

#[test]
fn an_admin_without_createdb_ends_non_zero_with_the_servers_reason() {
    let cluster = support::shared(Shared::Scram);
    let (admin, admin_pw) = app_role(cluster, "fixweak", "LOGIN");
    let (role, pw) = app_role(cluster, "fixwanting", "LOGIN");
    let db = support::unique_name("fixwanting_db");
    let ran = Test::new()
        .cluster(cluster)
        .env("PGUSER", &admin)
        .env("PGPASSWORD", &admin_pw)
        .file(
            ".env",
            &format!("DATABASE_URL={}\n", cluster.url(&role, Some(&pw), &db)),
        )
        .args(["doctor", "--fix", "--yes", "--format", "json"])
        .run();
    assert_eq!(ran.code, 1, "{ran:?}");
    let report = json_fix(&ran);
    let create = report["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "create-database")
        .expect("the fix")
        .clone();
    assert_eq!(create["applied"], false, "{report:#}");
    let result = create["result"].as_str().unwrap();
    assert!(
        result.contains("permission denied to create database"),
        "{result}"
    );
    assert!(
        result.contains("42501") && result.contains("as a superuser"),
        "{result}"
    );
    assert_eq!(report["ok"], false);
    assert_eq!(report["recheck"]["ok"], false);
    assert!(!ran.all_output().contains(&admin_pw) && !ran.all_output().contains(&pw));
    let count = cluster.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    );
    assert_eq!(count, "0");
}

#[test]
fn sslmode_require_where_the_server_only_lets_tls_in() {
    let cluster = Cluster::start(ClusterConfig {
        ssl: true,
        hba: Some(vec![
            "local all all scram-sha-256".into(),
            "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
        ]),
        ..ClusterConfig::default()
    });
    let url = format!("{}?sslmode=disable", cluster.admin_url());
    let ran = fix(&cluster, &url, &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let env = std::fs::read_to_string(ran.dir.path().join(".env")).unwrap();
    let value = env
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL="))
        .expect("the key");
    assert!(value.contains("sslmode=require"), "{env}");
    assert!(
        !env.contains("sslmode=disable")
            || env.contains("# aksara doctor --fix replaced: DATABASE_URL=")
    );
    assert_doctor_passes(ran.dir.path());
}

/// The distribution's cluster, down: `--fix` starts it with its own command; the next run
/// creates the missing database as root's peer login (`postgres` through the postgres OS
/// user: no password anywhere).
#[test]
fn start_the_stopped_installed_cluster_then_create_the_database_as_roots_peer_login() {
    let dist = DistCluster::create();
    dist.start();
    let role = support::unique_name("fixdist");
    dist.psql(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'"));
    dist.stop();
    let db = support::unique_name("fixdist_db");
    let url = format!("postgresql://{role}:pw-{role}@127.0.0.1:{}/{db}", dist.port);
    let ran = Test::new()
        .file(".env", &format!("DATABASE_URL={url}\n"))
        .args(["doctor", "--fix", "--yes"])
        .run();
    // The snapshot masks the start command (it depends on whether the machine runs
    // systemd); without systemd, as here and on CI, it is postgresql-common's own.
    assert!(ran.stdout.contains("pg_ctlcluster"), "{ran:?}");
    // Started; the check run again finds what the stopped server hid, and a second round
    // of the same run creates the database as root's peer login.
    assert_eq!(ran.code, 0, "{ran:?}");
    let port = dist.port.to_string();
    let socket = dist.socket_dir.display().to_string();
    let cluster = [
        format!("{}/{}", dist.version, dist.name),
        format!("{}-{}", dist.version, dist.name),
        format!("{} {}", dist.version, dist.name),
    ];
    let start = regex::Regex::new(r"systemctl start postgresql@\S+|pg_ctlcluster \S+ \S+ start")
        .unwrap()
        .replace_all(&ran.transcript(), "[START COMMAND]")
        .into_owned();
    insta::assert_snapshot!(
        "doctor_fix_starts_the_installed_cluster_then_creates_the_database",
        shown(
            &start,
            ran.dir.path(),
            &[
                (&port, "[PORT]"),
                (&socket, "[SOCKET DIR]"),
                (&cluster[0], "[CLUSTER]"),
                (&cluster[1], "[CLUSTER]"),
                (&cluster[2], "[CLUSTER]"),
                (&dist.name, "[CLUSTER]"),
            ],
            &[(&role, "[ROLE]"), (&db, "[DB]")]
        )
    );
    assert_eq!(
        dist.psql(&format!(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'"
        )),
        role
    );
    assert_doctor_passes(ran.dir.path());
}

/// No admin login (no PG*, no ~/.pgpass, no peer): the SQL fix is named with what a person
/// must do, and a wrong password is left to a person; neither is ever called fixed.
#[test]
fn without_an_admin_login_or_a_safe_fix_a_person_is_told_what_to_do() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixnoadmin", "LOGIN");
    let db = support::unique_name("fixnoadmin_db");
    let ran = Test::new()
        .file(
            ".env",
            &format!("DATABASE_URL={}\n", cluster.url(&role, Some(&pw), &db)),
        )
        .args(["doctor", "--fix", "--yes"])
        .run();
    assert_eq!(ran.code, 1, "{ran:?}");
    // The logins tried without a password include the OS user's own name.
    let os_user = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("run id");
    let os_user = format!("\"{}\"", String::from_utf8_lossy(&os_user.stdout).trim());
    insta::assert_snapshot!(
        "doctor_fix_without_an_admin_login_names_what_to_do",
        fix_transcript(
            &ran,
            cluster,
            &[
                (&role, "[ROLE]"),
                (&db, "[DB]"),
                (&os_user, "\"[OS USER]\"")
            ]
        )
    );

    let wrong = Test::new()
        .cluster(cluster)
        .file(
            ".env",
            &format!(
                "DATABASE_URL={}\n",
                cluster.url(&role, Some("not-it"), "postgres")
            ),
        )
        .args(["doctor", "--fix", "--yes", "--format", "json"])
        .run();
    assert_eq!(wrong.code, 1, "{wrong:?}");
    let report = json_fix(&wrong);
    assert_eq!(report["ok"], false);
    let unfixed = report["unfixed"].as_array().unwrap();
    assert!(
        unfixed.iter().any(|u| u["code"] == "auth-failed"
            && u["why"].as_str().unwrap().contains("changes no password")),
        "{report:#}"
    );
    assert!(!wrong.all_output().contains(&cluster.password), "{wrong:?}");
}

/// Stops the project's server when the test ends, passing or not.
struct StopProjectServer<'a>(&'a Path);

impl Drop for StopProjectServer<'_> {
    fn drop(&mut self) {
        let _ = run(aksara(self.0).args(["dbserver", "stop"]));
    }
}

/// This project's own server, stopped: `--fix` starts it (`aksara dbserver start`); then a
/// NOLOGIN app role is fixed as its superuser, with the password from its own file.
#[test]
fn start_the_projects_server_then_fix_as_its_superuser() {
    let dir = crate::project();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _stop = StopProjectServer(dir.path());
    let port = support::free_port().to_string();
    let setup = run(aksara(dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "local",
        "--server-port",
        &port,
        "--db-name",
        "fixproj",
    ]));
    assert_eq!(setup.code, 0, "{setup:?}");
    let stop = run(aksara(dir.path()).args(["dbserver", "stop"]));
    assert_eq!(stop.code, 0, "{stop:?}");

    let started = run(aksara(dir.path()).args(["doctor", "--fix", "--yes"]));
    assert_eq!(started.code, 0, "{started:?}");
    let shown_here = |out: &crate::Run| {
        shown(
            &crate::transcript("aksara doctor --fix --yes", out, &[]),
            dir.path(),
            &[(&port, "[PORT]")],
            &[],
        )
    };
    insta::assert_snapshot!(
        "doctor_fix_starts_the_projects_server",
        shown_here(&started)
    );

    let password = std::fs::read_to_string(dir.path().join(".aksara/postgres-password")).unwrap();
    let admin = format!(
        "postgresql://postgres:{}@127.0.0.1:{port}/postgres",
        password.trim()
    );
    crate::psql_url(&admin, "ALTER ROLE fixproj NOLOGIN").unwrap();
    let fixed = run(aksara(dir.path()).args(["doctor", "--fix", "--yes"]));
    assert_eq!(fixed.code, 0, "{fixed:?}");
    insta::assert_snapshot!("doctor_fix_as_the_projects_superuser", shown_here(&fixed));
    assert!(!fixed.all().contains(password.trim()), "{fixed:?}");
    assert_eq!(
        crate::psql_url(
            &admin,
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'fixproj'"
        )
        .unwrap(),
        "t"
    );
    assert_doctor_passes(dir.path());
}

/// No login works without typing: on a terminal (here the prompt script) the admin's name
/// and password are asked, and the plan says it was typed.
#[test]
fn the_admin_password_can_be_typed_at_the_prompt() {
    let cluster = support::shared(Shared::Scram);
    let (role, pw) = app_role(cluster, "fixtyped", "LOGIN");
    let db = support::unique_name("fixtyped_db");
    let ran = Test::new()
        .file(
            ".env",
            &format!("DATABASE_URL={}\n", cluster.url(&role, Some(&pw), &db)),
        )
        .answers(&[
            ("Admin user for the fixes", "postgres"),
            ("Password for \"postgres\"", &cluster.password),
            ("Apply create-database", "y"),
            // The next round: the database now exists and the check sees the .env's mode.
            ("?Apply env-mode", "n"),
        ])
        .args(["doctor", "--fix"])
        .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "doctor_fix_with_the_admin_password_typed",
        fix_transcript(&ran, cluster, &[(&role, "[ROLE]"), (&db, "[DB]")])
    );
    assert!(!ran.all_output().contains(&cluster.password), "{ran:?}");
    assert_doctor_passes(ran.dir.path());
}

/// A password with `#` works for libpq but cuts asyncpg's URL short (Python's urlsplit): the
/// rewrite percent-encodes it, and the comment keeps the URL without it.
#[test]
fn a_password_asyncpg_misreads_is_percent_encoded() {
    let cluster = support::shared(Shared::Scram);
    let role = support::unique_name("fixhash");
    let password = "p#ss-fixhash";
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}'; CREATE DATABASE {role} OWNER {role}"
        ),
    );
    let url = format!(
        "postgresql://{role}:{password}@127.0.0.1:{}/{role}",
        cluster.port
    );
    let ran = fix(cluster, &url, &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let env = std::fs::read_to_string(ran.dir.path().join(".env")).unwrap();
    assert!(
        env.contains(&format!(
            "DATABASE_URL=postgresql://{role}:p%23ss-fixhash@127.0.0.1:"
        )),
        "{env}"
    );
    assert!(!env.contains(password), "{env}");
    assert!(!ran.all_output().contains(password), "{ran:?}");
    assert_doctor_passes(ran.dir.path());
}

/// A replica key's missing database is the primary's to create: a standby is read-only, and a
/// replica key that points at a primary by mistake would get a database on the wrong server.
/// Found by trying `--fix` on a `.env` with both keys on one server: it created the replica
/// key's database there before the recheck said the key pointed at a primary.
#[test]
fn a_replica_keys_catalog_fix_is_left_to_the_primary() {
    let cluster = support::shared(Shared::Scram);
    let (primary_role, primary_pw) = app_role(cluster, "fixprim", "LOGIN");
    let (replica_role, replica_pw) = app_role(cluster, "fixrepl", "LOGIN");
    let primary_db = support::unique_name("fixprimdb");
    let replica_db = support::unique_name("fixrepldb");
    let ran = Test::new()
        .cluster(cluster)
        .file(
            ".env",
            &format!(
                "DATABASE_URL={}\nDATABASE_REPLICA_URL={}\n",
                cluster.url(&primary_role, Some(&primary_pw), &primary_db),
                cluster.url(&replica_role, Some(&replica_pw), &replica_db)
            ),
        )
        .args(["doctor", "--fix", "--yes"])
        .run();
    assert_ne!(ran.code, 0, "the replica key is still broken: {ran:?}");
    let exists = |db: &str| {
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )
    };
    assert_eq!(exists(&primary_db), "1", "DATABASE_URL's database: {ran:?}");
    assert_eq!(
        exists(&replica_db),
        "0",
        "nothing created for the replica key: {ran:?}"
    );
    let refusal = "`DATABASE_REPLICA_URL` names a replica: a standby is read-only and replays \
                   what its primary does, so make this change on the primary, not at this URL";
    assert!(
        ran.stdout
            .contains(&format!("{refusal} (the fix: `CREATE DATABASE")),
        "{ran:?}"
    );
    // The plain doctor's hint says the same where the change goes.
    let out = run(aksara(ran.dir.path()).args(["doctor"]));
    assert!(out.stdout.contains(&format!("; {refusal}")), "{out:?}");
}
