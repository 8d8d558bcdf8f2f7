//! `aksara dbsetup` on a cluster made the distribution's way (postgresql-common's
//! `pg_createcluster`: peer on the socket, SCRAM on TCP, no password for `postgres`), as the
//! machines people have it: root gets in through the `postgres` OS user with no password; an
//! ordinary user without a role is told so, with the createuser line, not asked for a
//! password that does not exist.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use crate::support::{self, DistCluster, OsUser};
use crate::{Run, assert_url_works, env_value, project, run};

/// `aksara` run as `user` in `dir` (its HOME, USER and LOGNAME, as a login gives them),
/// discovery pointed at `dist`'s socket and port.
pub(crate) fn aksara_as(user: &OsUser, dist: &DistCluster, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aksara"));
    support::hermetic_env(&mut cmd);
    cmd.current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env("PGHOST", &dist.socket_dir)
        .env("PGPORT", dist.port.to_string())
        .env("HOME", format!("/home/{}", user.name))
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .uid(user.uid)
        .gid(user.gid);
    cmd
}

/// A run against `dist` in `project` as the user read it: the cluster's port, socket folder
/// and name, the OS user's name, the project folder and the given values masked, and the
/// cluster's start command, which depends on whether the machine runs systemd.
fn peer_transcript(
    command: &str,
    out: &Run,
    dist: &DistCluster,
    user: Option<&OsUser>,
    project: &std::path::Path,
    values: &[(&str, &'static str)],
) -> String {
    let port = dist.port.to_string();
    let socket = dist.socket_dir.display().to_string();
    let project = project.display().to_string();
    let cluster = [
        format!("{}/{}", dist.version, dist.name),
        format!("{}-{}", dist.version, dist.name),
        format!("{} {}", dist.version, dist.name),
        dist.name.clone(),
    ];
    let mut pairs: Vec<(&str, &str)> = vec![
        (&port, "[PORT]"),
        (&socket, "[SOCKET DIR]"),
        (&project, "[PROJECT]"),
    ];
    pairs.extend(cluster.iter().map(|c| (c.as_str(), "[CLUSTER]")));
    if let Some(user) = user {
        pairs.push((&user.name, "[OS USER]"));
    }
    pairs.extend_from_slice(values);
    let start =
        regex::Regex::new(r"systemctl start postgresql@\S+|pg_ctlcluster \S+ \S+ start").unwrap();
    let masked = Run {
        code: out.code,
        stdout: start
            .replace_all(&out.stdout, "[START COMMAND]")
            .into_owned(),
        stderr: start
            .replace_all(&out.stderr, "[START COMMAND]")
            .into_owned(),
    };
    crate::transcript(command, &masked, &pairs)
}

/// A project folder `user` owns, where the server user can look (every folder above it can be
/// traversed).
fn project_of(user: &OsUser, prefix: &str) -> tempfile::TempDir {
    let dir = support::project_folder(prefix);
    std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    dir
}

/// Interactive `aksara dbsetup` as `user`, answered by `script` (the prompt script's lines),
/// which is written beside the project; the run, and the script's path.
fn scripted_setup_as(
    user: &OsUser,
    dist: &DistCluster,
    dir: &std::path::Path,
    script: &str,
) -> (crate::Run, std::path::PathBuf) {
    let path = dir.join("answers");
    std::fs::write(&path, script).unwrap();
    let out = run(aksara_as(user, dist, dir)
        .arg("dbsetup")
        .env("AKSARA_PROMPT_SCRIPT", &path));
    (out, path)
}

#[test]
fn root_sets_up_through_peer_login_with_no_password() {
    let dist = DistCluster::create();
    dist.start();
    let dir = project();
    let db = support::unique_name("peerapp");
    let out = run(crate::aksara(dir.path())
        .args(["dbsetup", "--non-interactive", "--db-name", &db])
        .env("PGHOST", &dist.socket_dir)
        .env("PGPORT", dist.port.to_string()));
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_root_logs_in_through_the_postgres_os_user",
        peer_transcript(
            "PGHOST=[SOCKET DIR] PGPORT=[PORT] aksara dbsetup --non-interactive --db-name [DB]",
            &out,
            &dist,
            None,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    // The socket lets only the OS user in by name: the app's URL goes over TCP.
    assert!(url.contains(&format!("localhost:{}", dist.port)), "{url}");
    assert_url_works(&url);
}

#[test]
fn an_ordinary_user_without_a_role_gets_the_createuser_line_not_a_password_prompt() {
    let dist = DistCluster::create();
    dist.start();
    let user = OsUser::create();
    let dir = project_of(&user, "aksara-roleless");
    let command =
        "PGHOST=[SOCKET DIR] PGPORT=[PORT] aksara dbsetup --non-interactive --db-name roleless";
    let out = run(aksara_as(&user, &dist, dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        "roleless",
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_an_os_user_without_a_role_gets_the_createuser_line",
        peer_transcript(command, &out, &dist, Some(&user), dir.path(), &[])
    );

    // The line, run as root would run it, and the same command again: the user's own peer
    // login now creates the database and user, and the URL works.
    let create = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "createuser",
            "-p",
            &dist.port.to_string(),
        ])
        .args(["--createdb", "--createrole", &user.name])
        .status()
        .expect("runuser createuser");
    assert!(create.success());
    let out = run(aksara_as(&user, &dist, dir.path()).args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        "roleless",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_an_os_user_with_its_new_role_logs_in_by_peer",
        peer_transcript(command, &out, &dist, Some(&user), dir.path(), &[])
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_url_works(&url);
}

/// A cluster configured the distribution's way but down: without a flag the error names its
/// start command as this machine runs it (root: no sudo); `--start-server installed` starts it
/// and the setup goes on.
#[test]
fn a_configured_but_down_cluster_gets_its_start_command_and_is_started_with_the_ci_flag() {
    let dist = DistCluster::create();
    let dir = project();
    let db = support::unique_name("downapp");
    let setup = |extra: &[&str]| {
        run(crate::aksara(dir.path())
            .args([
                "dbsetup",
                "--non-interactive",
                "--db-name",
                &db,
                "--start-server",
            ])
            .args(extra)
            .env("PGHOST", &dist.socket_dir)
            .env("PGPORT", dist.port.to_string()))
    };
    // The hint a run without a server gets names the cluster's own start command, as root
    // runs it (no sudo). Asked of the library: through the CLI, discovery would also see the
    // clusters other tests run in /var/run/postgresql meanwhile, and rightly use one.
    let advice = aksara::clusters::start_advice(&aksara::clusters::discover()).unwrap_or_default();
    let start = format!("pg_ctlcluster {} {} start", dist.version, dist.name);
    assert!(advice.contains(&format!("`{start}`")), "{advice}");
    assert!(
        !advice.contains(&format!("sudo {start}")),
        "root needs no sudo: {advice}"
    );

    let out = setup(&["installed"]);
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(
        "dbsetup_start_server_installed_starts_a_down_cluster",
        peer_transcript(
            "PGHOST=[SOCKET DIR] PGPORT=[PORT] aksara dbsetup --non-interactive --db-name [DB] --start-server installed",
            &out,
            &dist,
            None,
            dir.path(),
            &[(&db, "[DB]")]
        )
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_url_works(&url);
}

/// Interactive, the role-less user gets the three offers in order (scripted answers); taking
/// the admin URL, the password is asked for it and the setup completes.
#[test]
fn a_roleless_user_chooses_an_admin_url_from_the_offers() {
    let dist = DistCluster::create();
    dist.start();
    let admin_password = "Admin-pw-for-test-1";
    dist.psql(&format!("ALTER ROLE postgres PASSWORD '{admin_password}'"));
    let user = OsUser::create();
    let dir = project_of(&user, "aksara-offers");
    let db = support::unique_name("offered");
    let (out, script) = scripted_setup_as(
        &user,
        &dist,
        dir.path(),
        &format!(
            "?which one\tport {port}\n\
                 How do you want to go on?\tType the connection string\n\
                 Admin connection string\tpostgresql://postgres@127.0.0.1:{port}/postgres\n\
                 Password for \"postgres\"\t{admin_password}\n\
                 Database name\t{db}\n\
                 Application user\t\n\
                 Password for the application user\tGenerate\n\
                 Go ahead?\ty\n",
            port = dist.port
        ),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(admin_password), "{out:?}");
    // The offers, in their order, as the user saw them: the createuser line, the project's own
    // server, an admin URL (the last is taken here).
    let script = script.display().to_string();
    insta::assert_snapshot!(
        "dbsetup_a_roleless_user_chooses_an_admin_url_from_the_offers",
        peer_transcript(
            "PGHOST=[SOCKET DIR] PGPORT=[PORT] AKSARA_PROMPT_SCRIPT=[SCRIPT] aksara dbsetup",
            &out,
            &dist,
            Some(&user),
            dir.path(),
            &[(&db, "[DB]"), (&script, "[SCRIPT]")]
        )
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_url_works(&url);
}

/// Lets `user` run a client program (`createuser`, `psql`) as `postgres` through sudo without
/// a password (a common dev machine rule), for as long as the value lives.
struct SudoRule {
    file: std::path::PathBuf,
}

impl SudoRule {
    fn createuser_as_postgres(user: &OsUser) -> SudoRule {
        SudoRule::as_postgres(user, "createuser")
    }

    fn as_postgres(user: &OsUser, tool: &str) -> SudoRule {
        which_sudo().expect(
            "this test needs sudo (`apt-get install sudo`; .ci/run installs it): it runs the \
             line dbsetup offers the way dbsetup runs it",
        );
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .expect("find the program");
        let program = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert!(!program.is_empty(), "{tool} not on PATH");
        let file = std::path::PathBuf::from(format!("/etc/sudoers.d/aksara-test-{}", user.name));
        std::fs::write(
            &file,
            format!("{} ALL=(postgres) NOPASSWD: {program}\n", user.name),
        )
        .expect("write the sudoers rule");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o440))
            .unwrap();
        SudoRule { file }
    }
}

impl Drop for SudoRule {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn which_sudo() -> Option<std::path::PathBuf> {
    ["/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}

/// Issue 14, offer (a) taken for real: the role-less user picks "Create your PostgreSQL role
/// now"; aksara runs `sudo -u postgres createuser --createdb --createrole USER` (sudo lets this
/// user do that without a password here), then logs in with the user's own peer login and
/// finishes the setup.
#[test]
fn a_roleless_user_creates_their_role_through_sudo_and_the_setup_completes() {
    let dist = DistCluster::create();
    dist.start();
    let user = OsUser::create();
    let _rule = SudoRule::createuser_as_postgres(&user);
    let dir = project_of(&user, "aksara-sudo");
    let db = support::unique_name("sudoapp");
    let (out, script) = scripted_setup_as(
        &user,
        &dist,
        dir.path(),
        &format!(
            "?which one\tport {port}\n\
                 How do you want to go on?\tCreate your PostgreSQL role now\n\
                 Database name\t{db}\n\
                 Application user\t\n\
                 Password for the application user\tGenerate\n\
                 Go ahead?\ty\n",
            port = dist.port
        ),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let script = script.display().to_string();
    insta::assert_snapshot!(
        "dbsetup_a_roleless_user_creates_their_role_through_sudo",
        peer_transcript(
            "PGHOST=[SOCKET DIR] PGPORT=[PORT] AKSARA_PROMPT_SCRIPT=[SCRIPT] aksara dbsetup",
            &out,
            &dist,
            Some(&user),
            dir.path(),
            &[(&db, "[DB]"), (&script, "[SCRIPT]")]
        )
    );
    // The role sudo created is the user's own, with the rights the line asked for.
    assert_eq!(
        dist.psql(&format!(
            "SELECT rolcreatedb, rolcreaterole, rolsuper FROM pg_roles WHERE rolname = '{}'",
            user.name
        )),
        "t|t|f"
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_url_works(&url);
}

/// Offer (a) taken where sudo cannot do it: no sudo rule for this user, and no terminal for
/// sudo to ask a password on (the run is in a session of its own, as a CI job is; with one,
/// sudo would wait there). sudo fails, nothing is created, and the hint gives every way on
/// rather than "run it yourself", which this user cannot.
#[test]
fn a_roleless_user_whose_sudo_fails_is_given_the_other_ways_on() {
    use std::os::unix::process::CommandExt as _;
    which_sudo()
        .expect("this test needs sudo (.ci/run installs it): the offer is made only where it is");
    let dist = DistCluster::create();
    dist.start();
    let user = OsUser::create();
    let dir = project_of(&user, "aksara-nosudo");
    let path = dir.path().join("answers");
    std::fs::write(
        &path,
        format!(
            "?which one\tport {}\nHow do you want to go on?\tCreate your PostgreSQL role now\n",
            dist.port
        ),
    )
    .unwrap();
    let mut cmd = aksara_as(&user, &dist, dir.path());
    cmd.arg("dbsetup").env("AKSARA_PROMPT_SCRIPT", &path);
    // SAFETY: setsid() is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let out = run(&mut cmd);
    assert_eq!(out.code, 1, "{out:?}");
    let text = out.all();
    let line = format!(
        "error: `sudo -u postgres createuser -p {} --createdb --createrole {}` failed (exit status: 1): no role was created; nothing was changed",
        dist.port, user.name
    );
    assert!(text.contains(&line), "{text}");
    assert!(
        text.contains(&format!("hint: {}", aksara::peer::SUDO_FAILED_HINT)),
        "{text}"
    );
    assert_eq!(
        dist.psql(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{}'",
            user.name
        )),
        "0"
    );
    assert!(!dir.path().join(".env").exists(), "{text}");
}

/// One broken cluster configuration on the machine (a data folder removed by hand, its
/// `/etc/postgresql/<version>/<name>/` left behind) makes `pg_lsclusters` print nothing and
/// exit 1 ("Error: Invalid data directory for cluster ..."). `--start-server installed` still
/// starts the down cluster PGPORT names: its own pid file says it is down. The broken folder
/// exists only in a private mount namespace (a folder with this cluster's configuration and
/// the broken one, bound over /etc/postgresql: copying the whole folder would race with other
/// tests' clusters coming and going), so the other tests' `pg_lsclusters` never meet it.
#[test]
fn a_broken_cluster_configuration_does_not_keep_the_down_cluster_from_starting() {
    assert!(
        support::can_hide_machine_sockets(),
        "this test needs a private mount namespace (root with unshare, as CI runs the suite)"
    );
    let dist = DistCluster::create();
    let etc_copy = tempfile::tempdir().unwrap();
    let dir = project();
    let db = support::unique_name("brokenapp");
    let broken = support::unique_name("gone");
    let mut setup = crate::aksara(dir.path());
    setup
        .args(["dbsetup", "--non-interactive", "--db-name", &db])
        .args(["--start-server", "installed"])
        .env("PGHOST", &dist.socket_dir)
        .env("PGPORT", dist.port.to_string());
    let inner = format!(
        "mkdir -p {copy}/{version}/{broken} && cp -a /etc/postgresql/{version}/{name} {copy}/{version}/ \
         && echo 'port = 5999' > {copy}/{version}/{broken}/postgresql.conf \
         && mount --bind {copy} /etc/postgresql \
         && ! pg_lsclusters --no-header >/dev/null 2>&1 \
         && exec \"$@\"",
        copy = etc_copy.path().display(),
        version = dist.version,
        name = dist.name,
    );
    let mut namespaced = Command::new("unshare");
    namespaced
        .args(["-m", "--", "sh", "-c", &inner, "sh"])
        .arg(setup.get_program())
        .args(setup.get_args())
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    for (key, value) in setup.get_envs() {
        match value {
            Some(value) => namespaced.env(key, value),
            None => namespaced.env_remove(key),
        };
    }
    let out = run(&mut namespaced);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "Started PostgreSQL cluster {}/{}",
            dist.version, dist.name
        )),
        "the down cluster was not started: {out:?}"
    );
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert!(
        url.contains(&format!(":{}/", dist.port)),
        "the URL is not the started cluster's: {url}"
    );
    assert_url_works(&url);
}

/// A peer-login role without CREATEDB and CREATEROLE (created by hand, as many guides do):
/// interactive dbsetup names the grant line and offers to run it through sudo. Declined, the
/// refusal stands and nothing changed; accepted and then the plan cancelled, the message says
/// the grant stays; accepted again (after the rights are taken back), the setup finishes and
/// writes a URL that works. The real sudo, psql and cluster.
#[test]
fn a_peer_role_without_createdb_is_offered_the_grant_and_the_setup_completes() {
    let dist = DistCluster::create();
    dist.start();
    let user = OsUser::create();
    let _rule = SudoRule::as_postgres(&user, "psql");
    dist.psql(&format!("CREATE ROLE \"{}\" LOGIN", user.name));
    let dir = project_of(&user, "aksara-grant");
    let db = support::unique_name("grantapp");
    let rights = || {
        dist.psql(&format!(
            "SELECT rolcreatedb::text || ' ' || rolcreaterole::text FROM pg_roles WHERE rolname = '{}'",
            user.name
        ))
    };
    let script = |grant: &str, go_ahead: &str| {
        format!(
            "?which one\tport {port}\n\
             Database name\t{db}\n\
             Application user\t\n\
             Password for the application user\tGenerate\n\
             Run that now\t{grant}\n\
             {go_ahead}",
            port = dist.port
        )
    };
    let transcript = |name: &str, out: &crate::Run, script: &std::path::Path| {
        let script = script.display().to_string();
        insta::assert_snapshot!(
            name,
            peer_transcript(
                "PGHOST=[SOCKET DIR] PGPORT=[PORT] AKSARA_PROMPT_SCRIPT=[SCRIPT] aksara dbsetup",
                out,
                &dist,
                Some(&user),
                dir.path(),
                &[(&db, "[DB]"), (&script, "[SCRIPT]")]
            )
        );
    };

    let (declined, path) = scripted_setup_as(&user, &dist, dir.path(), &script("n", ""));
    assert_eq!(declined.code, 1, "{declined:?}");
    transcript(
        "dbsetup_a_peer_role_without_createdb_declines_the_grant",
        &declined,
        &path,
    );
    assert_eq!(rights(), "false false");

    let (cancelled, path) =
        scripted_setup_as(&user, &dist, dir.path(), &script("y", "Go ahead?\tn\n"));
    assert_eq!(cancelled.code, 1, "{cancelled:?}");
    transcript(
        "dbsetup_a_peer_role_granted_then_cancelled",
        &cancelled,
        &path,
    );
    assert_eq!(rights(), "true true");
    assert!(!dir.path().join(".env").exists());

    dist.psql(&format!(
        "ALTER ROLE \"{}\" NOCREATEDB NOCREATEROLE",
        user.name
    ));
    let (done, path) = scripted_setup_as(&user, &dist, dir.path(), &script("y", "Go ahead?\ty\n"));
    assert_eq!(done.code, 0, "{done:?}");
    transcript("dbsetup_a_peer_role_granted_and_set_up", &done, &path);
    assert_eq!(rights(), "true true");
    let url = env_value(&dir.path().join(".env"), "DATABASE_URL").expect(".env written");
    assert_url_works(&url);
}
