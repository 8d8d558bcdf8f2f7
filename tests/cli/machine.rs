//! The machines people have: a cluster made by the distribution's own `pg_createcluster`
//! (postgresql-common, as CI's `postgresql` package installs it), configured but down, with
//! peer authentication on its socket and no password for anyone. aksara finds it, starts it
//! with this machine's command, logs in as root through the `postgres` OS user, and tells an
//! ordinary OS user without a role the one `createuser` line that lets them in, after which
//! their own peer login works. The ordinary user is a real OS user the test creates
//! (`useradd`), running a child of this test binary.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use aksara::clusters::{self, Machine, State};
use aksara::peer::{self, Offer, PeerRefusal};

use crate::support::{DistCluster, OsUser};

/// What the child test reads to know it runs as the role-less user, and what to do.
const CHILD_ENV: &str = "AKSARA_TEST_PEER_CHILD";
const BOUND: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn find(name: &str) -> clusters::Installed {
    clusters::discover()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("discover() did not list cluster {name}"))
}

async fn scalar(conn: &mut sqlx::PgConnection, sql: &'static str) -> String {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn a_configured_but_down_cluster_is_listed_started_with_its_command_and_root_gets_in_by_peer() {
    let dist = DistCluster::create();
    let found = find(&dist.name);
    assert_eq!(found.state, State::Down, "{found:?}");
    assert_eq!(found.port, dist.port);
    assert_eq!(found.socket_dir.as_deref(), Some(dist.socket_dir.as_path()));
    assert_eq!(found.owner.as_deref(), Some("postgres"));
    let expected = if Machine::detect().systemd {
        format!("systemctl start postgresql@{}-{}", dist.version, dist.name)
    } else {
        format!("pg_ctlcluster {} {} start", dist.version, dist.name)
    };
    assert_eq!(found.start.to_string(), expected, "root needs no sudo");
    assert!(
        clusters::configured_for(&clusters::discover(), dist.port)
            .iter()
            .any(|c| c.name == dist.name)
    );

    let rt = runtime();
    rt.block_on(clusters::start(&found))
        .expect("the start command works");
    assert_eq!(find(&dist.name).state, State::Online);

    rt.block_on(async {
        let mut c = peer::connect_as_postgres(&dist.socket_dir, dist.port, "postgres", BOUND)
            .await
            .unwrap_or_else(|e| panic!("root's peer login as postgres: {e}"));
        // `peer` admits the role postgres only for the OS user postgres: the server saw it.
        assert_eq!(
            scalar(&mut c.conn, "SELECT current_user::text").await,
            "postgres"
        );
        aksara::connect::close(c.conn).await;
    });
    // Only the connecting thread changed users: this one is still root.
    assert_eq!(unsafe { libc::geteuid() }, 0);

    // Without the postgres OS user's credentials, root is refused (peer), told apart.
    let as_root = rt.block_on(peer::connect(
        &dist.socket_dir,
        dist.port,
        None,
        "postgres",
        "postgres",
        BOUND,
    ));
    match as_root {
        Err(PeerRefusal::PeerFailed { os_user, .. }) => assert_eq!(os_user, "root"),
        Err(other) => panic!("root as itself should fail peer, not: {other}"),
        Ok(_) => panic!("root logged in as postgres without its credentials"),
    }
}

#[test]
fn a_roleless_os_user_gets_the_createuser_line_and_then_logs_in_by_peer() {
    let dist = DistCluster::create();
    dist.start();
    let user = OsUser::create();
    let child = |step: &str| {
        let out = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "machine::roleless_user_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{step}:{}:{}", dist.port, dist.socket_dir.display()),
            )
            .env("HOME", format!("/home/{}", user.name))
            .env_remove("USER")
            .current_dir("/")
            .uid(user.uid)
            .gid(user.gid)
            .output()
            .expect("run the child as the new user");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "child {step} failed:\n{text}");
        text
    };
    let before = child("before");
    let line = before
        .lines()
        .find_map(|l| l.split_once("CREATEUSER: ").map(|(_, line)| line))
        .unwrap_or_else(|| panic!("the child printed no createuser line:\n{before}"));
    assert!(
        line.ends_with(&format!(
            "createuser -p {} --createdb --createrole {}",
            dist.port, user.name
        )),
        "{line}"
    );
    // Run the very line the user was offered (as root here: sudo or runuser both work).
    let argv: Vec<&str> = line.split(' ').collect();
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir("/")
        .status()
        .expect("run the createuser line");
    assert!(status.success(), "`{line}` failed");

    let after = child("after");
    assert!(after.contains("LOGGED-IN as"), "{after}");
}

/// Runs only as the child of the test above, as the OS user it created; without its variable
/// it has nothing to check (the parent asserts what it printed).
#[test]
#[ignore = "the child of a_roleless_os_user_gets_the_createuser_line_and_then_logs_in_by_peer"]
fn roleless_user_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (step, port, socket_dir) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().parse::<u16>().unwrap(),
        std::path::PathBuf::from(parts.next().unwrap()),
    );
    let me = aksara::localserver::current_user_name().expect("the new user has a name");
    assert_ne!(unsafe { libc::geteuid() }, 0, "the child must not be root");
    let rt = runtime();
    let result = rt.block_on(peer::connect(
        &socket_dir,
        port,
        None,
        &me,
        "postgres",
        BOUND,
    ));
    match (step.as_str(), result) {
        ("before", Err(refusal)) => {
            assert_eq!(refusal, PeerRefusal::RoleMissing { role: me.clone() });
            let offers = peer::offers(&refusal, &socket_dir, port, &Machine::detect());
            assert_eq!(offers[1..], [Offer::ProjectServer, Offer::AdminUrl]);
            let Offer::CreateRole(cmd) = &offers[0] else {
                panic!("the first offer is not createuser: {offers:?}")
            };
            println!("CREATEUSER: {cmd}");
        }
        ("after", Ok(mut c)) => rt.block_on(async {
            assert_eq!(scalar(&mut c.conn, "SELECT current_user::text").await, me);
            let rights = scalar(
                &mut c.conn,
                "SELECT rolcreatedb::text || rolcreaterole::text FROM pg_roles WHERE rolname = current_user",
            )
            .await;
            assert_eq!(rights, "truetrue");
            println!("LOGGED-IN as {me}");
        }),
        (step, result) => panic!(
            "step {step}: unexpected {}",
            result.map_or_else(|e| e.to_string(), |_| "login".to_string())
        ),
    }
}
