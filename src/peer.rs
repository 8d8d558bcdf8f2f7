//! Peer authentication as the way in: on the machines people have (Debian's `postgresql`
//! package, say) the socket's `pg_hba.conf` line is `local all all peer` and no role has a
//! password. Root gets in as the `postgres` role through the `postgres` OS user; an ordinary
//! user gets in as the role named after them, once it exists. This module makes those logins
//! and, when one is refused, tells why in terms a person can act on, with the offers in order.
//!
//! ## How root logs in as the `postgres` OS user
//!
//! The server reads the client's credentials with `SO_PEERCRED`, which the kernel records when
//! the client calls connect(): the effective uid and gid of the *calling thread* (on Linux
//! credentials are per thread; glibc's `seteuid` only makes them look per process by
//! signalling every thread to change too). So the socket is connected on a short-lived
//! thread of its own that first drops to the target user with the raw `setgroups`,
//! `setresgid` and `setresuid` system calls: only that thread changes, irreversibly (all three
//! uids are set, so the capabilities go too), and it ends right after connect() returns. No
//! other thread (the tokio runtime, the blocking pool) ever runs as another user, which a
//! process-wide `seteuid` around the connect could not promise: glibc would switch every
//! thread, including ones in the middle of writing `.env`. The connected stream then goes back
//! to sqlx through a hook in the vendored sqlx-core (`net::set_uds_connector`, marked `aksara
//! patch`), chosen per task with a tokio task-local, so every other connection is untouched.
//!
//! A child process running as `postgres` passing the descriptor back over `SCM_RIGHTS` would
//! work too (and on every Unix); it needs a helper program or a fork in a process with
//! threads, for the same result. The thread is Linux-only: elsewhere [`connect`] with another
//! OS user reports [`PeerRefusal::Unsupported`], and the caller falls back to the offers.

use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use sqlx::postgres::PgSslMode;

use crate::connect::{self, Connected, FailureKind};
use crate::dsn::{ConnConfig, Endpoint, Host, PasswordSource, SslMode};
use crate::localserver::ServerUser;

tokio::task_local! {
    /// The OS user whose credentials the current task's socket connects carry.
    static CONNECT_AS: ServerUser;
}

/// The superuser role and OS user of the distributions' packages.
pub const POSTGRES: &str = "postgres";

/// Why a peer login did not get in.
#[derive(Debug, Clone)]
pub enum PeerRefusal {
    /// The server accepted the OS user's identity, but no role has that name:
    /// `role "dev1" does not exist`.
    RoleMissing { role: String },
    /// The socket's line is `peer` and the OS user is not the role (nor mapped to it):
    /// `Peer authentication failed for user "postgres"`.
    PeerFailed { role: String, os_user: String },
    /// The socket's line asks for a password (it is not `peer`), and there is none to give: a
    /// stock role has none set.
    NoPassword { role: String },
    /// Nothing listens on the socket (the cluster is down, or another socket folder).
    NoServer { socket: PathBuf },
    /// Connecting as another OS user is not possible here (not root, or not Linux).
    Unsupported { reason: String },
    /// Anything else, in the server's own words.
    Other { failure: FailureKind },
}

/// Equal when the same case with the same data; `Other` compares the server's words (a
/// `FailureKind` has no equality of its own).
impl PartialEq for PeerRefusal {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

impl fmt::Display for PeerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerRefusal::RoleMissing { role } => write!(
                f,
                "PostgreSQL has no role \"{role}\": the socket lets the OS user {role} in by peer authentication, but nobody has created the role"
            ),
            PeerRefusal::PeerFailed { role, os_user } => write!(
                f,
                "peer authentication failed: the OS user {os_user} may log in only as the role \"{os_user}\", not \"{role}\""
            ),
            PeerRefusal::NoPassword { role } => write!(
                f,
                "the server asks for a password for the role \"{role}\" on its socket, and none was given (a stock role has none set)"
            ),
            PeerRefusal::NoServer { socket } => {
                write!(f, "no PostgreSQL listens on {}", socket.display())
            }
            PeerRefusal::Unsupported { reason } => f.write_str(reason),
            PeerRefusal::Other { failure } => write!(f, "{failure}"),
        }
    }
}

/// Sort a failed login into the cases above. `gave_password` says whether the attempt had
/// one: a password failure without one means the server wants a password nobody set.
pub fn classify(
    failure: FailureKind,
    role: &str,
    os_user: &str,
    socket: &Path,
    gave_password: bool,
) -> PeerRefusal {
    use crate::diagnose::server_messages::{Cause, classify as cause_of};
    let cause = failure
        .server()
        .and_then(|e| cause_of(&e.sqlstate, &e.message));
    match (&failure, cause) {
        (_, Some(Cause::MethodFailed { method: "peer" })) => PeerRefusal::PeerFailed {
            role: role.into(),
            os_user: os_user.into(),
        },
        (_, Some(Cause::RoleMissing)) => PeerRefusal::RoleMissing { role: role.into() },
        (_, Some(Cause::PasswordFailed)) if !gave_password => {
            PeerRefusal::NoPassword { role: role.into() }
        }
        (FailureKind::Refused | FailureKind::SocketMissing, _) => PeerRefusal::NoServer {
            socket: socket.to_path_buf(),
        },
        _ => PeerRefusal::Other {
            failure: failure.clone(),
        },
    }
}

/// A login with no password over `socket_dir`'s socket for `port`.
pub fn socket_config(socket_dir: &Path, port: u16, role: &str, dbname: &str) -> ConnConfig {
    ConnConfig {
        endpoints: vec![Endpoint {
            host: Host::Socket(socket_dir.to_path_buf()),
            port,
        }],
        user: role.to_string(),
        password: None,
        password_source: PasswordSource::None,
        dbname: dbname.to_string(),
        sslmode: SslMode::Disable,
        connect_timeout: None,
        application_name: Some("aksara".into()),
        sslrootcert: None,
        options: None,
        unknown: Vec::new(),
        allow_cleartext: false,
        os_user: None,
    }
}

/// Run `connecting` (a connection attempt) with `name`'s credentials on its unix socket
/// connects: how every later connection of a peer-logged-in admin (`ConnConfig::os_user`)
/// gets in the same way.
pub async fn as_os_user<T>(
    name: &str,
    connecting: impl std::future::Future<Output = T>,
) -> Result<T, PeerRefusal> {
    let user = crate::localserver::lookup_user(name).ok_or_else(|| PeerRefusal::Unsupported {
        reason: format!("there is no `{name}` OS user to log in as"),
    })?;
    if let Some(reason) = unsupported(&user) {
        return Err(PeerRefusal::Unsupported { reason });
    }
    install_connector();
    Ok(CONNECT_AS.scope(user, connecting).await)
}

/// Log in over the socket with peer authentication, as `role`, to `dbname`. With `as_user`
/// (aksara must be root) the connection carries that OS user's credentials; without, the
/// current user's own.
pub async fn connect(
    socket_dir: &Path,
    port: u16,
    as_user: Option<&ServerUser>,
    role: &str,
    dbname: &str,
    bound: Duration,
) -> Result<Connected, PeerRefusal> {
    let cfg = socket_config(socket_dir, port, role, dbname);
    let endpoint = cfg.endpoints[0].clone();
    let socket = endpoint.socket_path().expect("a socket endpoint");
    let attempt = connect::attempt(&cfg, &endpoint, PgSslMode::Disable, bound);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let (result, os_user) = match as_user.filter(|u| u.uid != euid) {
        Some(user) => {
            if let Some(reason) = unsupported(user) {
                return Err(PeerRefusal::Unsupported { reason });
            }
            install_connector();
            (
                CONNECT_AS.scope(user.clone(), attempt).await,
                user.name.clone(),
            )
        }
        // Already that user (or no other asked for): the process's own credentials.
        None => (
            attempt.await,
            crate::localserver::current_user_name().unwrap_or_default(),
        ),
    };
    result
        .map(|conn| Connected {
            conn,
            endpoint,
            tls_mode: PgSslMode::Disable,
            earlier: Vec::new(),
            skipped: Vec::new(),
            chosen_by: crate::connect::TargetSessionAttrs::Any,
        })
        .map_err(|failure| classify(failure, role, &os_user, &socket, false))
}

/// Root's way in to a distribution's cluster: the `postgres` role as the `postgres` OS user.
pub async fn connect_as_postgres(
    socket_dir: &Path,
    port: u16,
    dbname: &str,
    bound: Duration,
) -> Result<Connected, PeerRefusal> {
    let user = crate::localserver::lookup_user(POSTGRES).ok_or(PeerRefusal::Unsupported {
        reason: format!("there is no `{POSTGRES}` OS user to log in as"),
    })?;
    connect(socket_dir, port, Some(&user), POSTGRES, dbname, bound).await
}

/// The way in to an installed cluster without a password: as root, the cluster's owner
/// (`postgres`) through that OS user; otherwise the role named after the current OS user.
/// Returns the role used with the connection.
pub async fn login_installed(
    cluster: &crate::clusters::Installed,
    dbname: &str,
    bound: Duration,
) -> Result<(Connected, String), PeerRefusal> {
    let socket_dir = cluster
        .socket_dir
        .as_deref()
        .ok_or(PeerRefusal::Unsupported {
            reason: format!("{} has no socket folder", cluster.describe()),
        })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let owner = cluster.owner.as_deref().unwrap_or(POSTGRES);
        let user =
            crate::localserver::lookup_user(owner).ok_or_else(|| PeerRefusal::Unsupported {
                reason: format!("there is no `{owner}` OS user to log in as"),
            })?;
        let conn = connect(socket_dir, cluster.port, Some(&user), owner, dbname, bound).await?;
        return Ok((conn, owner.to_string()));
    }
    let me = crate::localserver::current_user_name().ok_or(PeerRefusal::Unsupported {
        reason: "the current OS user has no name".to_string(),
    })?;
    let conn = connect(socket_dir, cluster.port, None, &me, dbname, bound).await?;
    Ok((conn, me))
}

fn unsupported(user: &ServerUser) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!(
            "only root can connect as the OS user {}; aksara runs as {}",
            user.name,
            crate::localserver::current_user_name().unwrap_or_else(|| euid.to_string())
        ));
    }
    if !cfg!(target_os = "linux") {
        return Some(format!(
            "connecting as the OS user {} is implemented on Linux only",
            user.name
        ));
    }
    None
}

fn install_connector() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        sqlx_core::net::set_uds_connector(connector);
    });
}

/// The hook sqlx-core calls for every socket connect: this task's user, or sqlx's own connect.
fn connector(path: &Path) -> Option<io::Result<UnixStream>> {
    let user = CONNECT_AS.try_with(ServerUser::clone).ok()?;
    Some(connect_with_credentials(path, &user))
}

/// connect() on a thread that has become `user` (see the module documentation).
fn connect_with_credentials(path: &Path, user: &ServerUser) -> io::Result<UnixStream> {
    let path = path.to_path_buf();
    let (uid, gid) = (user.uid, user.gid);
    std::thread::Builder::new()
        .name("aksara-peer-connect".into())
        .spawn(move || {
            become_user(uid, gid)?;
            UnixStream::connect(&path)
        })?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the connecting thread panicked")))
}

#[cfg(target_os = "linux")]
fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    let groups = [gid];
    let check = |rc: libc::c_long| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY (all three): raw system calls on this thread's own credentials; `groups` outlives
    // the call. glibc's wrappers would change every thread of the process, which is what must
    // not happen here. Groups first, then gid, then uid (after which no change is allowed),
    // each only when the one before it worked.
    check(unsafe { libc::syscall(libc::SYS_setgroups, 1 as libc::c_long, groups.as_ptr()) })?;
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn become_user(_uid: u32, _gid: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "per-thread credentials are Linux-only",
    ))
}

/// What the lead's prompt offers a user the server refused, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Create the user's own role now: `sudo -u postgres createuser --createdb --createrole
    /// dev1` (sudo asks for the user's password in the terminal).
    CreateRole(CreateRole),
    /// Start the project's own server (`--start-server local`).
    ProjectServer,
    /// Type the connection string of a role that may create databases and roles.
    AdminUrl,
}

impl Offer {
    /// The menu item's words (interactive dbsetup).
    pub fn describe(&self) -> String {
        match self {
            Offer::CreateRole(cmd) if cmd.runnable => {
                format!(
                    "Create your PostgreSQL role now: `{cmd}` (sudo asks for your password if it needs one)"
                )
            }
            Offer::CreateRole(cmd) => format!("Create your PostgreSQL role (as root): `{cmd}`"),
            Offer::ProjectServer => {
                "Start PostgreSQL for this project instead (data in .aksara/postgres)".to_string()
            }
            Offer::AdminUrl => {
                "Type the connection string of a role that may create databases and roles"
                    .to_string()
            }
        }
    }

    /// The same offer as a flag or command, for the hint of a non-interactive run.
    pub fn as_hint(&self) -> String {
        match self {
            Offer::CreateRole(cmd) if cmd.runnable => format!("run `{cmd}`"),
            Offer::CreateRole(cmd) => format!("as root, run `{cmd}`"),
            Offer::ProjectServer => {
                "pass `--start-server local` for this project's own server".into()
            }
            Offer::AdminUrl => "pass `--admin-url URL` (its password in PGPASSWORD)".into(),
        }
    }
}

/// The hint after a refused peer login, the offers in their order: "run `sudo -u postgres
/// createuser ...`, or pass `--start-server local` ..., or pass `--admin-url URL` ...".
pub fn hint(offers: &[Offer]) -> String {
    offers
        .iter()
        .map(Offer::as_hint)
        .collect::<Vec<_>>()
        .join(", or ")
}

/// The one line an experienced person runs to give themselves a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRole {
    pub argv: Vec<String>,
    /// False when there is no `sudo` (or aksara is root, which needs no role of its own): the
    /// line is shown as what to run as root, not run.
    pub runnable: bool,
}

impl fmt::Display for CreateRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// `createuser` for `role` on the cluster at `socket_dir`/`port`, run as `postgres` (through
/// sudo when there is one), with the rights dbsetup needs to go on. `-h`/`-p` are left out for
/// Debian's defaults.
pub fn create_role_command(role: &str, socket_dir: &Path, port: u16, sudo: bool) -> CreateRole {
    let run_as = if sudo { RunAs::Sudo } else { RunAs::Root };
    let args = ["--createdb".to_string(), "--createrole".into(), role.into()];
    CreateRole {
        argv: server_tool_line(POSTGRES, run_as, "createuser", socket_dir, port, &args),
        runnable: sudo,
    }
}

/// How a client program's line (createuser, createdb, psql) becomes the server's OS user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// `sudo -u OWNER TOOL ...` (asks for the user's own password).
    Sudo,
    /// `runuser -u OWNER -- TOOL ...`: for root (who needs no sudo), or shown as what
    /// to run as root where there is no sudo.
    Root,
    /// The server's OS user is this user: `TOOL ...` as is.
    Owner,
}

/// `tool [-h dir] [-p port] args...` (a PostgreSQL client program: createuser, createdb) run
/// as the server's OS user `owner`. `-h`/`-p` are left out for Debian's defaults.
pub fn server_tool_line(
    owner: &str,
    run_as: RunAs,
    tool: &str,
    socket_dir: &Path,
    port: u16,
    args: &[String],
) -> Vec<String> {
    let mut argv: Vec<String> = match run_as {
        RunAs::Sudo => vec!["sudo".into(), "-u".into(), owner.into()],
        RunAs::Root => vec!["runuser".into(), "-u".into(), owner.into(), "--".into()],
        RunAs::Owner => Vec::new(),
    };
    argv.push(tool.into());
    if socket_dir != Path::new("/var/run/postgresql") && socket_dir != Path::new("/run/postgresql")
    {
        argv.push("-h".into());
        argv.push(socket_dir.display().to_string());
    }
    if port != crate::clusters::DEFAULT_PORT {
        argv.push("-p".into());
        argv.push(port.to_string());
    }
    argv.extend(args.iter().cloned());
    argv
}

/// A client program's line run as the OS user who owns a server's socket file, as a hint
/// shows it: "run `sudo -u postgres createuser dev1` (as the server's OS user, postgres, who
/// owns its socket)". That is how a machine with peer authentication (Debian's cluster)
/// creates roles and databases. Through sudo for an ordinary user, `runuser` for root (or as
/// what to run as root, with no sudo), as is for the owner.
pub struct SocketOwnerLine {
    /// What runs: the program and its arguments as they are.
    pub argv: Vec<String>,
    /// The same as a shell line (an argument a shell would split is single-quoted).
    pub shown: String,
    pub owner: String,
    pub run_as: RunAs,
    /// The line is for root: there is no sudo here, and aksara is not root.
    pub as_root: bool,
}

impl fmt::Display for SocketOwnerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.as_root { "as root, " } else { "" };
        write!(
            f,
            "{who}run `{}` (as the server's OS user, {}, who owns its socket)",
            self.shown, self.owner
        )
    }
}

/// [`SocketOwnerLine`] for `tool args` on the server at `socket_dir`/`port`. None when the
/// socket's owner is not known (no socket file, or a uid without a name).
pub fn as_socket_owner(
    socket_dir: &Path,
    port: u16,
    tool: &str,
    args: &[&str],
) -> Option<SocketOwnerLine> {
    use std::os::unix::fs::MetadataExt as _;
    let owner_uid = std::fs::metadata(socket_dir.join(format!(".s.PGSQL.{port}")))
        .ok()?
        .uid();
    let owner = crate::localserver::user_name_of(owner_uid)?;
    let words: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
    let machine = crate::clusters::Machine::detect();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let run_as = if me == owner_uid {
        RunAs::Owner
    } else if !machine.root && machine.sudo {
        RunAs::Sudo
    } else {
        RunAs::Root
    };
    let raw: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    Some(SocketOwnerLine {
        argv: server_tool_line(&owner, run_as, tool, socket_dir, port, &raw),
        shown: server_tool_line(&owner, run_as, tool, socket_dir, port, &words).join(" "),
        as_root: run_as == RunAs::Root && !machine.root,
        run_as,
        owner,
    })
}

/// `word` as a shell reads it back: as is when plain, else in single quotes (a `'` inside
/// closes them, is escaped and opens them again: `'it'\''s'`).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.-@/=:,+%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The offers for a refused login, in order: the user's own role (only when it is missing),
/// the project's own server, an admin URL.
pub fn offers(
    refusal: &PeerRefusal,
    socket_dir: &Path,
    port: u16,
    machine: &crate::clusters::Machine,
) -> Vec<Offer> {
    let mut out = Vec::new();
    if let PeerRefusal::RoleMissing { role } = refusal
        && !machine.root
    {
        out.push(Offer::CreateRole(create_role_command(
            role,
            socket_dir,
            port,
            machine.sudo,
        )));
    }
    out.push(Offer::ProjectServer);
    out.push(Offer::AdminUrl);
    out
}

/// When a line aksara ran through sudo failed: sudo has said why on the terminal (a password
/// it did not take, no sudo rights for this user, no terminal to ask on), which aksara cannot
/// read, so the hint names the ways on without choosing among them.
pub const SUDO_FAILED_HINT: &str = "sudo said why above: run the line as a user who may use sudo here, or as root, then `aksara dbsetup` again; or pass `--start-server local` for this project's own server, or `--admin-url URL` for a role that may create databases and roles";

/// Run the createuser line with the terminal attached (sudo asks there). The output is the
/// command's own; the exit status says whether the role now exists.
pub fn run_create_role(cmd: &CreateRole) -> Result<(), String> {
    run_attached(&cmd.argv, &cmd.to_string())
}

/// Run `argv` with the terminal attached (sudo asks there); `shown` names it in the error.
/// What it prints on standard output (psql's "ALTER ROLE") goes to standard error with
/// aksara's own progress: standard output is for results.
pub fn run_attached(argv: &[String], shown: &str) -> Result<(), String> {
    use std::os::fd::AsFd as _;
    let (program, args) = argv.split_first().ok_or("an empty command")?;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot pass standard error on: {e}"))?;
    let status = std::process::Command::new(program)
        .args(args)
        .stdout(stderr)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusters::Machine;

    fn server(code: &str, message: &str) -> FailureKind {
        FailureKind::Server(crate::connect::ServerError {
            sqlstate: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
            routine: None,
        })
    }

    #[test]
    fn refusals_are_told_apart_by_the_servers_words() {
        let sock = Path::new("/var/run/postgresql/.s.PGSQL.5432");
        assert_eq!(
            classify(
                server("28000", "role \"dev1\" does not exist"),
                "dev1",
                "dev1",
                sock,
                false
            ),
            PeerRefusal::RoleMissing {
                role: "dev1".into()
            }
        );
        assert_eq!(
            classify(
                server("28000", "Peer authentication failed for user \"postgres\""),
                "postgres",
                "dev1",
                sock,
                false
            ),
            PeerRefusal::PeerFailed {
                role: "postgres".into(),
                os_user: "dev1".into()
            }
        );
        assert_eq!(
            classify(
                server("28P01", "password authentication failed for user \"dev1\""),
                "dev1",
                "dev1",
                sock,
                false
            ),
            PeerRefusal::NoPassword {
                role: "dev1".into()
            }
        );
        assert!(matches!(
            classify(
                server("28P01", "password authentication failed"),
                "dev1",
                "dev1",
                sock,
                true
            ),
            PeerRefusal::Other { .. }
        ));
        assert!(matches!(
            classify(FailureKind::SocketMissing, "dev1", "dev1", sock, false),
            PeerRefusal::NoServer { .. }
        ));
        assert!(matches!(
            classify(
                server("28000", "no pg_hba.conf entry for host \"[local]\""),
                "dev1",
                "dev1",
                sock,
                false
            ),
            PeerRefusal::Other { .. }
        ));
    }

    #[test]
    fn a_missing_role_gets_the_createuser_line_first_then_the_server_then_a_url() {
        let user = Machine {
            root: false,
            sudo: true,
            systemd: false,
        };
        let missing = PeerRefusal::RoleMissing {
            role: "dev1".into(),
        };
        let got = offers(&missing, Path::new("/var/run/postgresql"), 5432, &user);
        assert_eq!(got.len(), 3);
        let Offer::CreateRole(cmd) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            cmd.to_string(),
            "sudo -u postgres createuser --createdb --createrole dev1"
        );
        assert!(cmd.runnable);
        assert_eq!(got[1..], [Offer::ProjectServer, Offer::AdminUrl]);
        let other = offers(
            &PeerRefusal::NoPassword {
                role: "dev1".into(),
            },
            Path::new("/var/run/postgresql"),
            5432,
            &user,
        );
        assert_eq!(other, [Offer::ProjectServer, Offer::AdminUrl]);
    }

    #[test]
    fn the_hint_lists_the_offers_in_order() {
        let user = Machine {
            root: false,
            sudo: true,
            systemd: false,
        };
        let missing = PeerRefusal::RoleMissing {
            role: "dev1".into(),
        };
        let got = offers(&missing, Path::new("/var/run/postgresql"), 5432, &user);
        assert_eq!(
            hint(&got),
            "run `sudo -u postgres createuser --createdb --createrole dev1`, or pass `--start-server local` for this project's own server, or pass `--admin-url URL` (its password in PGPASSWORD)"
        );
        assert!(
            got[0]
                .describe()
                .contains("sudo asks for your password if it needs one")
        );
    }

    #[test]
    fn the_createuser_line_names_a_cluster_off_the_defaults() {
        let cmd = create_role_command("dev1", Path::new("/tmp/sock"), 5440, false);
        assert_eq!(
            cmd.to_string(),
            "runuser -u postgres -- createuser -h /tmp/sock -p 5440 --createdb --createrole dev1"
        );
        assert!(!cmd.runnable);
    }

    #[test]
    fn words_are_shown_as_a_shell_reads_them_back_or_not_at_all() {
        let words = ["dev1", "ALTER ROLE \"dev1\" CREATEDB;", "$HOME", "it's", ""];
        let shown: Vec<String> = words.iter().map(|w| shell_word(w)).collect();
        assert_eq!(
            shown,
            [
                "dev1",
                "'ALTER ROLE \"dev1\" CREATEDB;'",
                "'$HOME'",
                "'it'\\''s'",
                "''"
            ]
        );
        // A real shell reads each back as the word itself.
        let echoed = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {}", shown.join(" "))])
            .output()
            .unwrap();
        let back: Vec<String> = String::from_utf8(echoed.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(back, words);
    }

    #[test]
    fn a_server_tool_line_runs_as_the_servers_os_user_in_each_way() {
        let args = ["-O".to_string(), "dev1".into(), "app".into()];
        let line = |run_as| {
            server_tool_line(
                "pgowner",
                run_as,
                "createdb",
                Path::new("/run/postgresql"),
                5432,
                &args,
            )
            .join(" ")
        };
        assert_eq!(line(RunAs::Sudo), "sudo -u pgowner createdb -O dev1 app");
        assert_eq!(
            line(RunAs::Root),
            "runuser -u pgowner -- createdb -O dev1 app"
        );
        assert_eq!(line(RunAs::Owner), "createdb -O dev1 app");
    }
}
