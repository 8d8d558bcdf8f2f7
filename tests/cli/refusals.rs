//! Issue 16, points 1 and 2: the refusals `provision::check_targets` makes before anything
//! changes, fed with the attributes `provision::role_attributes` reads from a real server.

use std::time::Duration;

use aksara::provision::{self, Forced, Refusal, RoleAttributes};

use crate::support::{self, Shared, unique_name};

/// Connect to the shared trust cluster as its superuser and read `role`'s attributes.
fn attributes(role: &str) -> Option<RoleAttributes> {
    let cluster = support::shared(Shared::Trust);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let options: sqlx::postgres::PgConnectOptions =
            cluster.admin_url().parse().expect("the admin URL parses");
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .expect("connects in time")
        .expect("connects");
        let found = provision::role_attributes(&mut conn, role)
            .await
            .expect("the attribute query runs");
        let _ = sqlx::Connection::close(conn).await;
        found
    })
}

#[test]
fn roles_with_more_rights_than_an_app_needs_are_refused_from_their_real_attributes() {
    let cluster = support::shared(Shared::Trust);
    let plain = unique_name("plain");
    let creator = unique_name("creator");
    let boss = unique_name("boss");
    let replicator = unique_name("repl");
    let rls = unique_name("rls");
    let inheritor = unique_name("inherits");
    let filer = unique_name("filer");
    let tester = unique_name("tester");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {plain} LOGIN; CREATE ROLE {creator} LOGIN CREATEROLE; \
             CREATE ROLE {boss} SUPERUSER; CREATE ROLE {replicator} LOGIN REPLICATION; \
             CREATE ROLE {rls} LOGIN BYPASSRLS; CREATE ROLE {inheritor} LOGIN IN ROLE {boss}; \
             CREATE ROLE {filer} LOGIN IN ROLE pg_write_server_files; CREATE ROLE {tester} LOGIN CREATEDB;"
        ),
    );
    let refused = |role: &str| {
        let found = attributes(role).expect("the role exists");
        provision::check_targets("postgres", role, Some(&found), "shop", Forced::default())
    };
    assert_eq!(refused(&plain), Ok(()));
    assert_eq!(refused(&tester), Ok(()), "CREATEDB alone is allowed");
    for (role, right) in [
        (&creator, "CREATEROLE".to_string()),
        (&boss, "SUPERUSER".to_string()),
        (&replicator, "REPLICATION".to_string()),
        (&rls, "BYPASSRLS".to_string()),
        (&inheritor, format!("member of \"{boss}\"")),
        (&filer, "member of \"pg_write_server_files\"".to_string()),
    ] {
        match refused(role) {
            Err(Refusal::PrivilegedRole { rights, .. }) => {
                assert!(rights.contains(&right), "{role}: {rights:?}")
            }
            other => panic!("{role}: {other:?}"),
        }
    }
    // The bootstrap superuser is refused twice over: it is the admin's role.
    let postgres = attributes("postgres").expect("postgres exists");
    assert!(postgres.superuser);
    assert!(matches!(
        provision::check_targets(
            "postgres",
            "postgres",
            Some(&postgres),
            "shop",
            Forced::default()
        ),
        Err(Refusal::AdminRole { .. })
    ));
    assert_eq!(attributes(&unique_name("nobody")), None);
    cluster.psql(
        "postgres",
        &format!("DROP ROLE {plain}, {creator}, {inheritor}, {boss}, {replicator}, {rls}, {filer}, {tester}"),
    );
}

/// End to end, once the lead calls `check_targets` in dbsetup before its plan: nothing
/// changes, the admin keeps its password, template1 keeps its ACL.
#[test]

fn dbsetup_refuses_the_admins_role_and_template1_before_changing_anything() {
    let cluster = support::Cluster::start(support::ClusterConfig::default());
    let acl = "SELECT coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public'";
    let template_acl = cluster.psql("template1", acl);
    let roles = "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles";
    let roles_before = cluster.psql("postgres", roles);
    let dir = crate::project();

    let out = crate::run(&mut crate::dbsetup(
        &cluster,
        dir.path(),
        &["--db-user", "postgres", "--db-name", "shop"],
    ));
    assert_eq!(out.code, 2, "{out:?}");
    let port = cluster.port.to_string();
    let placeholders = [(port.as_str(), "[PORT]")];
    insta::assert_snapshot!(
        "dbsetup_refuses_the_admins_own_role_as_the_app_user",
        crate::transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres --db-user postgres --db-name shop",
            &out,
            &placeholders
        )
    );
    // The admin's password still works (the bug reset it).
    let admin = cluster.url("postgres", Some(&cluster.password), "postgres");
    assert_eq!(crate::psql_url(&admin, "SELECT 1").as_deref(), Ok("1"));

    let out = crate::run(&mut crate::dbsetup(
        &cluster,
        dir.path(),
        &["--db-name", "template1"],
    ));
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_refuses_a_template_database",
        crate::transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres --db-name template1",
            &out,
            &placeholders
        )
    );
    assert_eq!(cluster.psql("template1", acl), template_acl);
    assert_eq!(cluster.psql("postgres", roles), roles_before);
    assert!(!dir.path().join(".env").exists());
}

/// A role whose password expired (VALID UNTIL in the past) logs in with no password, a new one
/// included: dbsetup used to set a new password, fail its own verification and lose it. Now it
/// is refused before anything changes, with the statement that lifts the date; the server's
/// words for such a login are a wrong password's, so doctor's hint names expiry among them.
#[test]
fn dbsetup_refuses_a_role_whose_password_expired_before_changing_anything() {
    let cluster = support::shared(Shared::Scram);
    let role = unique_name("expired");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'old-pw' VALID UNTIL '2020-01-01 00:00:00+00'; \
             CREATE DATABASE {role} OWNER {role}"
        ),
    );
    let verifier = format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'");
    let before = cluster.psql("postgres", &verifier);
    let dir = crate::project();
    let out = crate::run(&mut crate::dbsetup(
        cluster,
        dir.path(),
        &[
            "--db-user",
            &role,
            "--db-name",
            &role,
            "--force",
            "password",
        ],
    ));
    assert_eq!(out.code, 2, "{out:?}");
    let port = cluster.port.to_string();
    insta::assert_snapshot!(
        "dbsetup_refuses_a_role_whose_password_expired",
        crate::transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres --db-user [ROLE] --db-name [ROLE] --force password",
            &out,
            &[(port.as_str(), "[PORT]"), (role.as_str(), "[ROLE]")]
        )
    );
    assert_eq!(
        cluster.psql("postgres", &verifier),
        before,
        "the password was changed"
    );
    assert!(!dir.path().join(".env").exists());

    // The right password, refused for the date alone: doctor cannot tell it from a wrong one,
    // and says so; after the statement the hint gives, the same URL logs in.
    let url = cluster.url(&role, Some("old-pw"), &role);
    let doctor = crate::run(crate::aksara(dir.path()).args(["doctor", "--url", &url]));
    assert_eq!(doctor.code, 1, "{doctor:?}");
    assert!(
        doctor
            .stdout
            .contains("its password has expired (VALID UNTIL)")
            && doctor.stdout.contains("VALID UNTIL 'infinity'"),
        "{}",
        doctor.stdout
    );
    cluster.psql(
        "postgres",
        &format!("ALTER ROLE {role} VALID UNTIL 'infinity'"),
    );
    let doctor = crate::run(crate::aksara(dir.path()).args(["doctor", "--url", &url]));
    assert_eq!(doctor.code, 0, "{doctor:?}");
}

/// `.env` holds the right URL but the role is NOLOGIN: dbsetup used to say that `.env` "holds
/// no URL that logs in" and offer a new password, which would not help. It now says what the
/// server said, changes nothing, and once the role may log in the rerun keeps the URL.
#[test]
fn dbsetup_says_why_the_env_files_url_does_not_log_in_when_it_is_not_the_password() {
    let cluster = support::shared(Shared::Scram);
    let role = unique_name("nologin");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {role} NOLOGIN PASSWORD 'right-pw'; CREATE DATABASE {role} OWNER {role}"
        ),
    );
    let dir = crate::project();
    let url = cluster.url(&role, Some("right-pw"), &role);
    let line = format!("DATABASE_URL={url}\n");
    std::fs::write(dir.path().join(".env"), &line).unwrap();
    let args = ["--db-user", role.as_str(), "--db-name", role.as_str()];
    let out = crate::run(&mut crate::dbsetup(cluster, dir.path(), &args));
    assert_eq!(out.code, 1, "{out:?}");
    let port = cluster.port.to_string();
    insta::assert_snapshot!(
        "dbsetup_names_nologin_behind_the_env_files_url",
        crate::transcript(
            "PGPASSWORD=[ADMIN PASSWORD] aksara dbsetup --non-interactive --admin-url postgresql://postgres@127.0.0.1:[PORT]/postgres --db-user [ROLE] --db-name [ROLE]",
            &out,
            &[(port.as_str(), "[PORT]"), (role.as_str(), "[ROLE]")]
        )
    );
    let can_login = format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{role}'");
    assert_eq!(cluster.psql("postgres", &can_login), "f");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        line
    );

    // The statement the hint gives, then the same run keeps the URL and its password.
    cluster.psql("postgres", &format!("ALTER ROLE {role} LOGIN"));
    let out = crate::run(&mut crate::dbsetup(cluster, dir.path(), &args));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        line
    );
    crate::assert_url_works(&url);
}
