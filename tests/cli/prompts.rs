//! Every interactive branch of `aksara dbsetup`, answered by a prompt script (no terminal:
//! `support::Test` sets `AKSARA_PROMPT_SCRIPT`) against real servers. The PTY tests in
//! `interactive.rs` keep what only a terminal shows: hidden input, Ctrl-C, the restored tty.

use std::process::Command;

use crate::support::{self, Cluster, Ran, Shared, Test};
use crate::{assert_url_works, env_value, normalize, psql_url};

/// Discovery may find servers the machine runs too: pick the harness cluster when asked.
fn choose(cluster: &Cluster) -> (String, String) {
    ("?which one".into(), format!("port {}", cluster.port))
}

fn script<'a>(cluster: &Cluster, rest: &'a [(&'a str, &'a str)]) -> Vec<(String, String)> {
    std::iter::once(choose(cluster))
        .chain(rest.iter().map(|(q, a)| (q.to_string(), a.to_string())))
        .collect()
}

fn dbsetup(cluster: &Cluster, answers: &[(String, String)]) -> Test {
    let refs: Vec<(&str, &str)> = answers
        .iter()
        .map(|(q, a)| (q.as_str(), a.as_str()))
        .collect();
    Test::new()
        .cluster(cluster)
        .args(["dbsetup"])
        .answers(&refs)
}

/// Interactive dbsetup answered by `answers`, in a project whose `.env` holds `url`.
fn with_env_url(cluster: &Cluster, url: &str, answers: &[(&str, &str)]) -> Ran {
    dbsetup(cluster, &script(cluster, answers))
        .file(".env", &format!("DATABASE_URL={url}\n"))
        .run()
}

/// Interactive dbsetup pointed at `cluster` over TCP only, with no password anywhere:
/// discovery finds the server and nothing logs in by itself, so the admin login is asked.
fn tcp_only_setup(cluster: &Cluster, answers: &[(String, String)]) -> Ran {
    let refs: Vec<(&str, &str)> = answers
        .iter()
        .map(|(q, a)| (q.as_str(), a.as_str()))
        .collect();
    Test::new()
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", &cluster.port.to_string())
        .args(["dbsetup"])
        .answers(&refs)
        .run()
}

fn written_url(ran: &Ran) -> String {
    env_value(&ran.dir.path().join(".env"), "DATABASE_URL").expect(".env has DATABASE_URL")
}

/// The session's transcript with run-to-run values replaced, for snapshots.
fn session(ran: &Ran, cluster: &Cluster, names: &[(&str, &'static str)]) -> String {
    let port = cluster.port.to_string();
    let socket = cluster.socket_dir.display().to_string();
    let encoded = support::encode(&socket);
    // The OS user is tried as an admin name and shown (quoted): this machine's, whoever runs.
    let id = Command::new("id").arg("-un").output().expect("id -un");
    let os_user = format!("\"{}\"", String::from_utf8_lossy(&id.stdout).trim());
    let mut pairs: Vec<(&str, &str)> = vec![
        (&port, "[PORT]"),
        (&socket, "[SOCKET_DIR]"),
        (&encoded, "[SOCKET_DIR]"),
        (&os_user, "\"[OS_USER]\""),
    ];
    pairs.extend(names.iter().map(|(v, p)| (*v, *p)));
    // normalize drops the lines that depend on other servers and other tests' runs.
    normalize(&ran.transcript(), &pairs)
}

#[test]
fn a_first_run_asks_the_names_and_generates_a_password() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("first");
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &db),
                ("Application user", ""),
                ("Password for the application user", "Generate"),
                ("Go ahead?", "y"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_url_works(&written_url(&ran));
    insta::assert_snapshot!(
        "prompts_first_run",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
}

#[test]
fn an_existing_database_can_be_renamed_or_reused() {
    let cluster = support::shared(Shared::Scram);
    let taken = support::unique_name("taken");
    let other = support::unique_name("other");
    cluster.psql("postgres", &format!("CREATE DATABASE {taken}"));
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &taken),
                ("Application user", &other),
                ("already exists", "Choose another name"),
                ("Database name", &other),
                ("Password for the application user", "Generate"),
                ("Go ahead?", "y"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "prompts_a_taken_database_name_is_changed",
        session(&ran, cluster, &[(&taken, "[TAKEN]"), (&other, "[DB]")])
    );
    let url = written_url(&ran);
    assert_eq!(psql_url(&url, "SELECT current_database()").unwrap(), other);
    assert_url_works(&url);
    // The taken one is as it was: still owned by postgres.
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{taken}'")
        ),
        "postgres"
    );

    let reuse = support::unique_name("reuse");
    cluster.psql("postgres", &format!("CREATE DATABASE {reuse}"));
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &reuse),
                ("Application user", ""),
                ("already exists", "Reuse it"),
                ("Password for the application user", "Generate"),
                ("Go ahead?", "y"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    // Reusing a database grants the new user what it needs.
    insta::assert_snapshot!(
        "prompts_an_existing_database_is_reused",
        session(&ran, cluster, &[(&reuse, "[DB]")])
    );
    assert_url_works(&written_url(&ran));
}

/// A user that exists: its current password (kept), a new typed one, or a new generated one.
#[test]
fn an_existing_user_keeps_or_changes_its_password() {
    let cluster = support::shared(Shared::Scram);
    let role = support::unique_name("known");
    let current = "Current-pw-1";
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{current}'; CREATE DATABASE {role} OWNER {role}"
        ),
    );
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &role),
                ("Application user", &role),
                ("already exists", "Reuse it"),
                (
                    &format!("User \"{role}\" already exists"),
                    "Type its current password",
                ),
                ("Current password of", current),
                ("Go ahead?", "y"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    // The kept password is not set again.
    insta::assert_snapshot!(
        "prompts_an_existing_user_keeps_its_current_password",
        session(&ran, cluster, &[(&role, "[ROLE]")])
    );
    assert!(written_url(&ran).contains(current));
    assert!(
        !ran.all_output().contains(current),
        "the typed password was shown: {ran:?}"
    );

    let typed = "Typed-new-pw-2";
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &role),
                ("Application user", &role),
                ("already exists", "Reuse it"),
                (
                    &format!("User \"{role}\" already exists"),
                    "Type a new password",
                ),
                ("New password for", typed),
                ("Go ahead?", "y"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(!ran.all_output().contains(typed), "{ran:?}");
    insta::assert_snapshot!(
        "prompts_an_existing_user_gets_a_typed_new_password",
        session(&ran, cluster, &[(&role, "[ROLE]")])
    );
    let url = written_url(&ran);
    assert!(url.contains(typed), "{url}");
    assert_url_works(&url);
    let old = cluster.url(&role, Some(current), &role);
    assert!(
        psql_url(&old, "SELECT 1").is_err(),
        "the old password still works"
    );
}

#[test]
fn a_new_user_with_a_password_typed_twice() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("typed");
    let password = "Own p@ss:w/rd?#%'\"\\ é";
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &db),
                ("Application user", ""),
                ("Password for the application user", "Type my own"),
                (&format!("Password for \"{db}\""), password),
                ("Go ahead?", "y"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    let url = written_url(&ran);
    assert_eq!(psql_url(&url, "SELECT current_user").unwrap(), db);
    assert!(!ran.all_output().contains(password));
}

#[test]
fn declining_the_plan_changes_nothing() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("declined");
    let ran = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &db),
                ("Application user", ""),
                ("Password for the application user", "Generate"),
                ("Go ahead?", "n"),
            ],
        ),
    )
    .run();
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(!ran.dir.path().join(".env").exists());
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")
        ),
        "0"
    );
    insta::assert_snapshot!("prompts_declined", session(&ran, cluster, &[(&db, "[DB]")]));
}

#[test]
fn a_different_env_value_is_replaced_only_when_confirmed() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("envconf");
    let answers = |replace: &str| {
        script(
            cluster,
            &[
                ("Database name", &db),
                ("Application user", ""),
                ("Password for the application user", "Generate"),
                ("already sets DATABASE_URL", replace),
            ],
        )
    };
    let old = "DATABASE_URL=postgresql://someone@elsewhere/other\n";
    let ran = dbsetup(cluster, &answers("n")).file(".env", old).run();
    assert_eq!(ran.code, 1, "{ran:?}");
    insta::assert_snapshot!(
        "prompts_a_different_env_value_is_kept_when_declined",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
    assert_eq!(
        std::fs::read_to_string(ran.dir.path().join(".env")).unwrap(),
        old
    );

    let mut yes = answers("y");
    yes.push(("Go ahead?".into(), "y".into()));
    let ran = dbsetup(cluster, &yes).file(".env", old).run();
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "prompts_a_different_env_value_is_replaced_when_confirmed",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
    let text = std::fs::read_to_string(ran.dir.path().join(".env")).unwrap();
    assert!(
        text.contains("# replaced by aksara: DATABASE_URL=postgresql://someone@elsewhere/other"),
        "{text}"
    );
    assert_url_works(&written_url(&ran));
}

/// No admin login works without a password: the admin's name and password are asked for, and
/// a wrong password is asked again.
#[test]
fn the_admin_password_is_asked_again_after_a_wrong_one() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("adminpw");
    let answers = script(
        cluster,
        &[
            ("Admin user", "postgres"),
            ("Password for \"postgres\"", "wrong-1"),
            ("Password for \"postgres\"", &cluster.password),
            ("Database name", &db),
            ("Application user", ""),
            ("Password for the application user", "Generate"),
            ("Go ahead?", "y"),
        ],
    );
    let ran = tcp_only_setup(cluster, &answers);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(!ran.all_output().contains(&cluster.password));
    insta::assert_snapshot!(
        "prompts_the_admin_password_is_asked_again",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
    assert_url_works(&written_url(&ran));
}

/// Two servers answer (PGHOST's and the one in .env): the user picks one, and the setup
/// happens there.
#[test]
fn several_servers_answering_are_listed_and_one_is_chosen() {
    let first = support::shared(Shared::Scram);
    let second = Cluster::start(support::ClusterConfig::default());
    let db = support::unique_name("chosen");
    let env = format!(
        "DATABASE_URL=postgresql://nobody@127.0.0.1:{}/nothing\n",
        second.port
    );
    let ran = Test::new()
        .cluster(first)
        .args(["dbsetup"])
        .answers(&[
            ("which one", &format!("port {}", second.port)),
            ("Database name", &db),
            ("Application user", ""),
            ("Password for the application user", "Generate"),
            ("already sets DATABASE_URL", "y"),
            ("Go ahead?", "y"),
        ])
        .file(".env", &env)
        .run();
    assert_eq!(ran.code, 0, "{ran:?}");
    let url = written_url(&ran);
    assert!(url.contains(&format!(":{}/", second.port)), "{url}");
    assert_url_works(&url);
    assert_eq!(
        first.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")
        ),
        "0"
    );
}

/// In a git repository that does not ignore .env, the password file gets its .gitignore line
/// when the user agrees.
#[test]
fn the_env_file_is_added_to_gitignore_when_agreed() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("gitig");
    let test = dbsetup(
        cluster,
        &script(
            cluster,
            &[
                ("Database name", &db),
                ("Application user", ""),
                ("Password for the application user", "Generate"),
                ("Go ahead?", "y"),
                ("git does not ignore it", "y"),
            ],
        ),
    );
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(test.path())
        .status()
        .expect("git init");
    assert!(git.success());
    let ran = test.run();
    assert_eq!(ran.code, 0, "{ran:?}");
    let ignore = std::fs::read_to_string(ran.dir.path().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "/.env"), "{ignore}");
}

/// A script that answers the wrong question fails loudly instead of answering it anyway.
#[test]
fn a_script_that_expects_another_question_fails_and_names_both() {
    let cluster = support::shared(Shared::Scram);
    let ran = dbsetup(cluster, &script(cluster, &[("Colour of the sky", "blue")])).run();
    assert_eq!(ran.code, 1, "{ran:?}");
    insta::assert_snapshot!(
        "prompts_a_script_expecting_another_question_fails",
        session(&ran, cluster, &[])
    );
}

/// An empty answer to the admin password is an answer (there may be none to type): the ways on
/// are offered instead of the same question again, and an admin URL gets the setup done.
#[test]
fn an_empty_admin_password_offers_the_ways_on_instead_of_asking_again() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("emptypw");
    let admin = format!("postgresql://postgres@127.0.0.1:{}/postgres", cluster.port);
    let answers = script(
        cluster,
        &[
            ("Admin user", "postgres"),
            ("Password for \"postgres\"", ""),
            ("How do you want to go on?", "Type the connection string"),
            ("Admin connection string", &admin),
            ("Password for \"postgres\"", &cluster.password),
            ("Database name", &db),
            ("Application user", ""),
            ("Password for the application user", "Generate"),
            ("Go ahead?", "y"),
        ],
    );
    let ran = tcp_only_setup(cluster, &answers);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(!ran.all_output().contains(&cluster.password));
    // The ways on are offered; the empty answer is not asked again.
    insta::assert_snapshot!(
        "prompts_an_empty_admin_password_offers_the_ways_on",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
    assert_url_works(&written_url(&ran));
}

/// A rerun in a project whose `.env` already holds a URL offers that URL's database and user
/// as the defaults (not the folder's name), so pressing Enter sets up what is there again.
#[test]
fn a_rerun_offers_the_names_the_env_file_holds() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("rerun");
    let first = crate::project();
    let out = crate::run(&mut crate::dbsetup(
        cluster,
        first.path(),
        &["--db-name", &db],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    let url = env_value(&first.path().join(".env"), "DATABASE_URL").expect("written");
    let ran = with_env_url(
        cluster,
        &url,
        &[
            ("Database name", ""),
            ("Application user", ""),
            ("already exists", "Reuse it"),
            ("Go ahead?", "y"),
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(written_url(&ran), url, "the same URL, its password kept");
    insta::assert_snapshot!(
        "prompts_a_rerun_offers_the_env_files_names",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
}

/// Interactive, `.env` holding the right URL for a NOLOGIN role: before the password menu, the
/// server's reason (not a wrong password) is shown with its fix; a new password then turns
/// LOGIN back on, as the plan says, and the URL works.
#[test]
fn a_nologin_role_behind_the_env_file_is_named_before_the_password_menu() {
    let cluster = support::shared(Shared::Scram);
    let role = support::unique_name("nolog");
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {role} NOLOGIN PASSWORD 'right-pw'; CREATE DATABASE {role} OWNER {role}"
        ),
    );
    let url = cluster.url(&role, Some("right-pw"), &role);
    let ran = with_env_url(
        cluster,
        &url,
        &[
            ("Database name", &role),
            ("Application user", &role),
            ("already exists", "Reuse it"),
            (
                &format!("User \"{role}\" already exists"),
                "Set a new generated password",
            ),
            ("already sets DATABASE_URL", "y"),
            ("Go ahead?", "y"),
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "prompts_a_nologin_role_is_named_before_the_password_menu",
        session(&ran, cluster, &[(&role, "[ROLE]")])
    );
    crate::assert_url_works(&written_url(&ran));
}

/// Interactive, `.env` naming a user that does not exist yet with a password (a project that
/// ships its URL): that password is offered first, and taking it leaves `.env` as it was.
#[test]
fn a_new_user_is_offered_the_password_the_env_files_url_holds() {
    let cluster = support::shared(Shared::Scram);
    let db = support::unique_name("offered");
    let url = format!(
        "postgresql://{db}:team-pw-5Kd@localhost:{}/{db}",
        cluster.port
    );
    let ran = with_env_url(
        cluster,
        &url,
        &[
            ("Database name", ""),
            ("Application user", ""),
            (
                "Password for the application user",
                "The one .env's DATABASE_URL holds",
            ),
            ("Go ahead?", "y"),
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    insta::assert_snapshot!(
        "prompts_a_new_user_is_offered_the_env_files_password",
        session(&ran, cluster, &[(&db, "[DB]")])
    );
    assert_eq!(written_url(&ran), url, ".env as it was");
    assert_url_works(&url);
}
