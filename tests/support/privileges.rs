//! Running the server as an unprivileged user when the tests run as root.
//!
//! PostgreSQL refuses to run as root ("root execution of the PostgreSQL server is not
//! permitted"), while CI runs the suite as root. So when the test process is root, `initdb` and
//! `postgres` run as the `postgres` system user, and every file the server touches is handed to
//! that user. Without root, everything runs as the current user and nothing changes hands.

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The system user the server runs as when the tests are root.
pub const SERVER_USER: &str = "postgres";

#[derive(Clone, Copy, Debug)]
pub struct ServerUser {
    pub uid: u32,
    pub gid: u32,
}

/// `Some` when the tests run as root and the server must run as [`SERVER_USER`].
pub fn server_user() -> Option<ServerUser> {
    static USER: OnceLock<Option<ServerUser>> = OnceLock::new();
    *USER.get_or_init(|| {
        let uid = id(&["-u"]).expect("`id -u` failed: cannot tell whether the tests run as root");
        if uid != 0 {
            return None;
        }
        match (id(&["-u", SERVER_USER]), id(&["-g", SERVER_USER])) {
            (Some(uid), Some(gid)) => Some(ServerUser { uid, gid }),
            _ => panic!(
                "the tests run as root, and PostgreSQL refuses to run as root, but there is no \
                 `{SERVER_USER}` system user to run it as\n\nhelp: create one with \
                 `useradd --system --user-group {SERVER_USER}` (installing the `postgresql` \
                 package also does), or run the tests as an unprivileged user"
            ),
        }
    })
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Makes `cmd` run as the server user when the tests are root.
pub fn run_as_server_user(cmd: &mut Command) {
    if let Some(user) = server_user() {
        cmd.uid(user.uid).gid(user.gid);
    }
}

/// Hands `path` to the server user when the tests are root, and sets its mode.
pub fn give_to_server_user(path: &Path, mode: u32) {
    if let Some(user) = server_user() {
        chown(path, Some(user.uid), Some(user.gid))
            .unwrap_or_else(|e| panic!("chown {} to {SERVER_USER}: {e}", path.display()));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}
