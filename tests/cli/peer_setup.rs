//! `aksara dbsetup` on a cluster made the distribution's way (postgresql-common's
//! `pg_createcluster`: peer on the socket, SCRAM on TCP, no password for `postgres`), as the
//! machines people have it: root gets in through the `postgres` OS user with no password; an
//! ordinary user without a role is told so, with the createuser line, not asked for a
//! password that does not exist.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use crate::support::{self, DistCluster, OsUser};
use crate::{assert_url_works, env_value, project, run};

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
    assert!(
        out.stderr.contains(
            "Logged in as \"postgres\" through the postgres OS user (no password needed)"
        ),
        "{out:?}"
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
    let dir = tempfile::Builder::new()
        .prefix("aksara-roleless")
        .tempdir_in("/tmp")
        .unwrap();
    std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aksara"));
    support::hermetic_env(&mut cmd);
    let out = cmd
        .args(["dbsetup", "--non-interactive", "--db-name", "roleless"])
        .current_dir(dir.path())
        .env("PGHOST", &dist.socket_dir)
        .env("PGPORT", dist.port.to_string())
        .env("HOME", format!("/home/{}", user.name))
        .env("USER", &user.name)
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .expect("run aksara as the new user");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no role for you"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "createuser -p {} --createdb --createrole {}",
            dist.port, user.name
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--start-server local"), "{stderr}");
    assert!(!stderr.contains("asks for a password"), "{stderr}");
}
