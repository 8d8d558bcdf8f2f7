//! Failures named: a failed connection attempt becomes a [`Diagnosis`], a [`Code`] from the
//! catalogue (src/code.rs) with what happened here and the fix for here (the real host, port,
//! user, database and file paths). What the server said is read only through the template map
//! in [`server_messages`]; anything it has no entry for is reported as the honest unknown
//! (`server-error` / `unexpected-error`) with the server's own words, never as another class.

pub mod advice;
pub mod proofs;
pub mod server_messages;

use crate::code::Code;
use crate::connect::{Attempt, CertReason, FailureKind, ServerError};
use crate::dsn::{ConnConfig, Endpoint, Host};
use crate::postmaster::ServerCommand;
use crate::provision::quote_ident;
use crate::tls_verify::CertFacts;
use server_messages::Cause;

pub use advice::{install_advice, start_command};

/// The command that starts a server, and which server it starts.
#[derive(Debug, Clone)]
pub struct Start {
    pub command: String,
    pub server: StartedServer,
    /// An installed cluster's `postgresql.conf` (the file that configured it for the port).
    pub config_file: Option<std::path::PathBuf>,
    /// That cluster's socket folder (the first of its `unix_socket_directories`).
    pub socket_dir: Option<std::path::PathBuf>,
    /// That cluster's `external_pid_file`, when its configuration names one.
    pub pid_file: Option<std::path::PathBuf>,
}

/// Which server a [`Start`] brings up: the first three are the server the refused endpoint
/// belongs to (it is configured or recorded for that very port), so a server answering at
/// another port is another one; the last is only the machine's usual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedServer {
    /// This project's own server: `.aksara/server.json` records this port.
    ProjectServer,
    /// A stopped Docker container that publishes this port.
    Container,
    /// An installed cluster configured for this port (postgresql-common's, systemd's).
    ConfiguredCluster,
    /// The machine's usual PostgreSQL service (Homebrew's), not known to be this port's.
    Service,
}

impl Start {
    pub fn new(command: impl Into<String>, server: StartedServer) -> Start {
        Start {
            command: command.into(),
            server,
            config_file: None,
            socket_dir: None,
            pid_file: None,
        }
    }

    /// An installed cluster's files: where it is configured and where it puts its socket.
    pub fn with_cluster_files(
        self,
        config_file: std::path::PathBuf,
        socket_dir: Option<std::path::PathBuf>,
    ) -> Start {
        Start {
            config_file: Some(config_file),
            socket_dir,
            ..self
        }
    }

    /// And where it writes its pid for other programs.
    pub fn with_pid_file(self, pid_file: Option<std::path::PathBuf>) -> Start {
        Start { pid_file, ..self }
    }

    /// What it starts, for "start {this}: `command`", when that is the endpoint's own server.
    fn own_server(&self, port: u16) -> Option<String> {
        match self.server {
            StartedServer::ProjectServer => {
                Some("this project's own server (.aksara/server.json)".to_string())
            }
            StartedServer::Container => {
                Some(format!("the stopped container that publishes port {port}"))
            }
            StartedServer::ConfiguredCluster => {
                Some(format!("the cluster configured for port {port}"))
            }
            StartedServer::Service => None,
        }
    }
}

/// A failure named: the code from the catalogue, what happened here, and the fix for here.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub code: Code,
    pub message: String,
    pub hint: String,
}

/// What the hint may mention beyond the failed attempt itself.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// Servers that do answer near the endpoint that failed ("PostgreSQL answers on 5433").
    pub nearby: Vec<Endpoint>,
    /// A server on the same port at another loopback address (`127.0.0.1` when the URL says
    /// `[::1]`): it runs, it only does not listen where the URL looks.
    pub same_port_elsewhere: Vec<String>,
    /// How the server this endpoint belongs to starts on this machine, when known.
    pub start: Option<Start>,
    /// For a peer refusal on a socket: whether PostgreSQL answers at localhost on the same port
    /// (so "connect over TCP with a password" is open); None when not asked.
    pub tcp_at_port: Option<bool>,
    /// Whether, for an `no pg_hba.conf entry ... no encryption` rejection, a TLS attempt was
    /// let through pg_hba (then the fix is sslmode, not pg_hba).
    pub tls_would_be_accepted: Option<bool>,
    /// The command line of the server answering on this port's socket, when this OS user may
    /// read it (src/postmaster.rs): a setting it gives wins over both configuration files.
    pub server_command: Option<ServerCommand>,
}

/// Name the failure of `attempt` for the connection `cfg`.
pub fn diagnose(cfg: &ConnConfig, attempt: &Attempt, ctx: &Context) -> Diagnosis {
    let ep = &attempt.endpoint;
    match &attempt.failure {
        FailureKind::Dns { host, message } => Diagnosis {
            code: Code::DnsFailure,
            message: format!("the host name \"{host}\" does not resolve ({message})"),
            hint: "check the host in the URL; if the password contains @, # or /, percent-encode it (@ is %40, # is %23, / is %2F), otherwise the part after it is taken as the host".to_string(),
        },
        FailureKind::Refused | FailureKind::SocketMissing => refused(ep, ctx),
        FailureKind::Timeout { after } => Diagnosis {
            code: Code::ConnectionTimeout,
            message: format!("{ep} did not answer within {:.1} s", after.as_secs_f64()),
            hint: format!(
                "the port accepts connections but nothing answers, or packets are dropped: check that {} is the right host and port and that no firewall (or cloud security group) blocks it; a busy server, or a connection pooler holding clients while its own login to the server fails (PgBouncer's `server_login_retry`: see its log), may need a longer wait (aksara: --connect-timeout SECONDS; the application: its driver's own timeout, e.g. asyncpg's `timeout=` argument or libpq's `connect_timeout`, which asyncpg would send to the server as a setting)",
                ep
            ),
        },
        FailureKind::TlsUnsupported => Diagnosis {
            code: Code::SslUnsupported,
            message: format!(
                "sslmode={} requires TLS, but the server at {ep} does not offer it (it declined the TLS request: `ssl = off` on a PostgreSQL server)",
                cfg.sslmode
            ),
            hint: if ep.is_local() {
                format!(
                    "for a local server use ?sslmode=prefer (or disable); or turn TLS on: {}",
                    tls_on(ctx)
                )
            } else {
                "turn TLS on at the server (`ssl = on` in postgresql.conf, then a reload), or, only on a trusted network, use ?sslmode=prefer".to_string()
            },
        },
        FailureKind::Certificate {
            reason,
            message,
            cert,
        } => certificate(cfg, ep, *reason, message, cert.as_deref()),
        FailureKind::Server(error) => server_error(cfg, ep, error, ctx),
        FailureKind::NotPostgres => Diagnosis {
            code: Code::NotPostgres,
            message: format!("something answers at {ep}, but it does not speak PostgreSQL's protocol"),
            hint: format!("check the port: {ep} belongs to another program; PostgreSQL listens on 5432 unless configured otherwise (`SHOW port;` on the server)"),
        },
        FailureKind::Unexpected { message } => Diagnosis {
            code: Code::UnexpectedError,
            message: format!("the connection to {ep} failed: {message}"),
            hint: "aksara does not recognise this failure; the text above is the client library's own. Check that the host and port belong to a PostgreSQL server".into(),
        },
        // The typed login failures of the hostile-server work (connect::login_failure_report).
        other => {
            let (code, message, hint) = crate::connect::login_failure_report(ep, other)
                .expect("every other failure kind has a report in connect");
            Diagnosis {
                code,
                message,
                hint,
            }
        }
    }
}

/// A peer authentication refusal on a socket: its hint depends on whether the same port is
/// open over TCP ([`Context::tcp_at_port`]).
fn is_peer_refusal_on_socket(attempt: &Attempt) -> bool {
    matches!(attempt.endpoint.host, Host::Socket(_))
        && matches!(&attempt.failure, FailureKind::Server(e)
            if server_messages::classify(&e.sqlstate, &e.message)
                == Some(Cause::MethodFailed { method: "peer" }))
}

impl Context {
    /// For a peer refusal on a socket (None for any other failure), what its hint needs: one
    /// probe of localhost at that port, within the failure path's budget, and the cluster
    /// configured for the port (its file is named). Both commands build it here.
    pub async fn beside_a_peer_refusal(attempt: &Attempt) -> Option<Context> {
        if !is_peer_refusal_on_socket(attempt) {
            return None;
        }
        let port = attempt.endpoint.port;
        let start = start_command(port);
        Some(Context {
            tcp_at_port: Some(
                crate::probe::answers_at_localhost(port, crate::probe::BESIDE_A_FAILURE).await,
            ),
            server_command: match &attempt.endpoint.host {
                Host::Socket(dir) => server_command(dir, port, start.as_ref()),
                Host::Tcp(_) => None,
            },
            start,
            ..Context::default()
        })
    }
}

/// The command line of the server whose socket for `port` is in `dir`: through the socket's
/// lock file (the server owner's and root's to read), or else, for another OS user, through
/// the pid file of the cluster configured for the port when that cluster puts its socket in
/// `dir` (postgresql-common's is readable by everyone). None when neither can be read.
pub fn server_command(
    dir: &std::path::Path,
    port: u16,
    start: Option<&Start>,
) -> Option<ServerCommand> {
    ServerCommand::at_socket(dir, port).or_else(|| {
        let cluster = start.filter(|s| s.server == StartedServer::ConfiguredCluster)?;
        let its = cluster.socket_dir.as_deref()?;
        if !same_folder(dir, its) {
            return None;
        }
        ServerCommand::of_pid_file(cluster.pid_file.as_deref()?)
    })
}

/// Whether two socket folders are one (`/run` and `/var/run` are one folder on most systems).
fn same_folder(a: &std::path::Path, b: &std::path::Path) -> bool {
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
    canonical(a) == canonical(b)
}

/// The `postgresql.conf` of the cluster configured for the failed port, when the server in
/// question is that cluster: the one whose socket in `socket_dir` answered, if that is where
/// the cluster puts its socket (another folder's socket at the same port number is another
/// server's), or the cluster itself when `socket_dir` is None (its own socket answered).
/// Otherwise "its postgresql.conf" (`SHOW config_file` names it).
fn cluster_file(ctx: &Context, socket_dir: Option<&std::path::Path>) -> String {
    ctx.start
        .as_ref()
        .filter(|start| start.server == StartedServer::ConfiguredCluster)
        .filter(|start| match (socket_dir, &start.socket_dir) {
            (None, _) => true,
            (Some(answered), Some(its)) => same_folder(answered, its),
            (Some(_), None) => false,
        })
        .and_then(|start| start.config_file.as_ref())
        .map_or_else(
            || "its postgresql.conf".to_string(),
            |file| file.display().to_string(),
        )
}

/// The ways past a peer refusal: TCP with a password first, unless nothing answers at
/// localhost on this port ([`Context::tcp_at_port`]), when opening it comes first.
fn peer_hint(ep: &Endpoint, user: &str, ctx: &Context) -> String {
    let others = format!(
        "run as that OS user (`sudo -u {user} ...`), or change the `local` line for this database in pg_hba.conf to scram-sha-256"
    );
    if ctx.tcp_at_port == Some(false) {
        format!(
            "the server listens on no TCP address at port {port}, so a password login over localhost is not open either: {open}, then use host=localhost with the role's password (run again, `aksara dbsetup` writes such a URL); or {others}",
            port = ep.port,
            // The server that refused is the one on this socket (peer is for sockets only).
            open = setting_fix(
                "listen_addresses",
                "localhost",
                &cluster_file(
                    ctx,
                    match &ep.host {
                        Host::Socket(dir) => Some(dir.as_path()),
                        Host::Tcp(_) => None,
                    }
                ),
                ctx.server_command.as_ref()
            )
        )
    } else {
        format!("connect over TCP with a password instead (host=localhost), {others}")
    }
}

/// A host name that is this machine's loopback as libpq would write it in a URL.
pub fn is_loopback_name(host: &str) -> bool {
    ["127.0.0.1", "::1", "localhost"].contains(&host)
}

fn refused(ep: &Endpoint, ctx: &Context) -> Diagnosis {
    let message = match &ep.host {
        Host::Socket(dir) => {
            if dir.is_dir() {
                format!(
                    "no server socket at {ep}: nothing listens on port {} in {}",
                    ep.port,
                    dir.display()
                )
            } else {
                format!(
                    "the socket directory {} does not exist, so no server listens there",
                    dir.display()
                )
            }
        }
        Host::Tcp(_) => format!("connection refused at {ep}: nothing listens on that port"),
    };
    if let (Host::Tcp(host), false) = (&ep.host, ctx.same_port_elsewhere.is_empty()) {
        let there = ctx.same_port_elsewhere.join(", ");
        return Diagnosis {
            code: Code::ConnectionRefused,
            message: format!("{message}; but PostgreSQL runs at {there}"),
            hint: format!(
                "the server is up and listens at {there} only, not at {host}: use that address in the URL, or {}",
                setting_fix(
                    "listen_addresses",
                    host,
                    "postgresql.conf",
                    // A socket's server that listens on no TCP address is not the one there.
                    ctx.server_command.as_ref().filter(|c| c.listens_on_tcp())
                )
            ),
        };
    }
    if let Some(running) = running_at_the_same_port(ep, &message, ctx) {
        return running;
    }
    // The server configured or recorded for this port is the one the URL names: starting it
    // is the fix, and a server answering at another port is another one, where the URL's user
    // and database are not unless someone made them there too. Something answering at this
    // same port elsewhere (its socket, say) may be that very server, running and listening
    // where the URL does not look: then, as without a known server, a server nearby may be
    // where the URL was meant to point.
    let listed = ctx
        .nearby
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let own = ctx
        .start
        .as_ref()
        .filter(|_| ctx.nearby.iter().all(|there| there.port != ep.port))
        .and_then(|start| Some((start.own_server(ep.port)?, &start.command)));
    let hint = match own {
        Some((server, command)) => {
            let mut hint = format!("start {server}: `{command}`");
            if !ctx.nearby.is_empty() {
                // Several addresses may be one server (its socket and localhost): no count.
                hint.push_str(&format!(
                    "; PostgreSQL also answers at {listed}: not the server this URL names"
                ));
            }
            hint
        }
        None => {
            let mut hint = String::new();
            if !ctx.nearby.is_empty() {
                hint.push_str(&format!(
                    "but PostgreSQL answers at {listed}: point the URL there, or "
                ));
            }
            match &ctx.start {
                Some(start) => hint.push_str(&format!("start the server: `{}`", start.command)),
                None => hint.push_str("start the server"),
            }
            hint.push_str("; `aksara dbsetup` finds a running server or sets one up");
            hint
        }
    };
    Diagnosis {
        code: Code::ConnectionRefused,
        message,
        hint,
    }
}

/// Said beside a setting to change in postgresql.conf: ALTER SYSTEM's value comes after it.
const ALTER_SYSTEM_WINS: &str = "(or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it)";

/// How to turn TLS on at a local server. `ssl` takes effect on a reload (PostgreSQL 10+), not
/// only on a restart; where the server's own command line sets it, that wins over both files.
fn tls_on(ctx: &Context) -> String {
    let in_files = "`ALTER SYSTEM SET ssl = on;` as a superuser (or `ssl = on` in postgresql.conf), with ssl_cert_file and ssl_key_file naming a certificate and its key, then reload (`SELECT pg_reload_conf();`): no restart is needed";
    match &ctx.server_command {
        Some(command) => match command.given("ssl") {
            Some(given) => format!(
                "the server's command line (pid {}) sets `{}`, which wins over postgresql.conf and ALTER SYSTEM: start it with `-c ssl=on` instead (and ssl_cert_file, ssl_key_file naming a certificate and its key)",
                command.pid, given.written
            ),
            None => in_files.to_string(),
        },
        // No postmaster's command line found at this port: it may be a pooler, whose TLS to
        // its clients is its own setting, before anything is asked of it.
        None => format!(
            "{in_files} (unless the command that starts the server sets `-c ssl=...`, which wins over both); if it is a pooler (PgBouncer), its TLS to clients is `client_tls_sslmode` with `client_tls_key_file` and `client_tls_cert_file` in pgbouncer.ini, then a reload"
        ),
    }
}

/// "add `{value}` to {setting} in {conf} ... and restart it": where the running server's own
/// command line sets the setting (which wins over both files, so editing them would change
/// nothing), the change is named there instead; where that command line could not be read,
/// the hint says it may be there.
fn setting_fix(setting: &str, value: &str, conf: &str, command: Option<&ServerCommand>) -> String {
    let flag = crate::postmaster::flag_for(setting)
        .map(|f| format!(" or `{f}`"))
        .unwrap_or_default();
    match command {
        Some(command) => match command.given(setting) {
            Some(given) => format!(
                "add `{value}` to `{}` in the command that starts the server (its command line, pid {}, sets {setting} there, which wins over postgresql.conf and ALTER SYSTEM) and restart it",
                given.written, command.pid
            ),
            None => {
                format!("add `{value}` to {setting} in {conf} {ALTER_SYSTEM_WINS} and restart it")
            }
        },
        None => format!(
            "add `{value}` to {setting} in {conf} (or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it; a `-c {setting}=...`{flag} in the command that starts the server wins over both) and restart it"
        ),
    }
}

/// Something answers at the refused endpoint's port number on this machine, only not where
/// the URL looks: a socket at the port while the loopback TCP address refuses
/// (`listen_addresses = ''`, or addresses without this one), or TCP or another socket folder
/// while the URL's socket folder has none (a server built with `/tmp` against a client that
/// looks in `/var/run/postgresql`). A socket file means a local server for that port runs, so
/// starting it is no fix: the hint points the URL where it answers, or makes it listen where
/// the URL looks, each with its catch (pg_hba.conf's `local` lines decide on a socket, often
/// peer). A TCP answer may be another program's, so that hint gives both readings.
fn running_at_the_same_port(ep: &Endpoint, message: &str, ctx: &Context) -> Option<Diagnosis> {
    let port = ep.port;
    let (there, hint) = match &ep.host {
        Host::Tcp(host) if is_loopback_name(host) => {
            let (there, dir) = ctx.nearby.iter().find_map(|there| match &there.host {
                Host::Socket(dir) if there.port == port => Some((there, dir)),
                _ => None,
            })?;
            let hint = format!(
                "a server for port {port} runs but does not listen at {host}: {}; or connect through the socket (`host={}` in the URL), where pg_hba.conf's `local` lines decide (often peer: the OS user's name must be the role's)",
                setting_fix(
                    "listen_addresses",
                    host,
                    &cluster_file(ctx, Some(dir)),
                    ctx.server_command.as_ref()
                ),
                dir.display()
            );
            (there, hint)
        }
        Host::Socket(dir) => {
            let there = ctx.nearby.iter().find(|there| there.port == port)?;
            let folder = dir.display();
            // A folder that does not exist cannot take a socket: the server would not start.
            let listen = |file: &str| {
                if dir.is_dir() {
                    format!(
                        "; or {}",
                        setting_fix(
                            "unix_socket_directories",
                            &folder.to_string(),
                            file,
                            ctx.server_command.as_ref()
                        )
                    )
                } else {
                    String::new()
                }
            };
            let hint = match &there.host {
                // A socket file at this port in another local folder: a local server for the
                // port runs, with its sockets elsewhere.
                Host::Socket(other) => format!(
                    "a server for port {port} runs with its socket in {}, not in {folder}: point the URL at it (`host={}` in the URL){}",
                    other.display(),
                    other.display(),
                    listen(&cluster_file(ctx, Some(other)))
                ),
                // Over TCP the port may be another program's (a container that publishes it).
                // The cluster configured for the port tells: its own socket answers (it runs,
                // and that is its TCP), or not (it is down, and something else answers).
                // Without one, both readings.
                Host::Tcp(host) => {
                    let over_tcp = format!(
                        "`host={host}` in the URL, where pg_hba.conf's `host` lines decide, usually by password"
                    );
                    let cluster = ctx
                        .start
                        .as_ref()
                        .filter(|start| start.server == StartedServer::ConfiguredCluster);
                    let its_socket = cluster.and_then(|start| start.socket_dir.as_ref());
                    let answers = |its: &std::path::PathBuf| {
                        ctx.nearby.iter().any(|n| {
                            n.port == port
                                && matches!(&n.host, Host::Socket(d) if same_folder(d, its))
                        })
                    };
                    match (cluster, its_socket) {
                        (Some(_), Some(its)) if answers(its) => format!(
                            "the cluster configured for port {port} runs with its socket in {}, not in {folder}: point the URL at it (`host={}` in the URL) or at {there} ({over_tcp}){}",
                            its.display(),
                            its.display(),
                            listen(&cluster_file(ctx, None))
                        ),
                        (Some(start), Some(its)) => format!(
                            "the cluster configured for port {port} is not running (no socket in {}), so what answers at {there} is another server (a container that publishes the port, say): start the cluster: `{}`; or, if that other server is the one this URL means, point the URL at it ({over_tcp})",
                            its.display(),
                            start.command
                        ),
                        _ => {
                            let start = ctx
                                .start
                                .as_ref()
                                .map(|start| format!(": `{}`", start.command))
                                .unwrap_or_default();
                            format!(
                                "if that is the server this URL means, point the URL at it ({over_tcp}){}; if it is another (a container that publishes the port, say), start the one whose socket belongs in {folder}{start}",
                                listen("its postgresql.conf")
                            )
                        }
                    }
                }
            };
            (there, hint)
        }
        Host::Tcp(_) => return None,
    };
    let what = match there.host {
        Host::Socket(_) => "on the socket",
        Host::Tcp(_) => "at",
    };
    Some(Diagnosis {
        code: Code::ConnectionRefused,
        message: format!(
            "{message}; but PostgreSQL answers {what} {there}, with the same port number"
        ),
        hint,
    })
}

/// A refused certificate: the hint names what the certificate itself says (its dates, its
/// names) and the fix for this reason; OpenSSL's or libpq's words are in the message.
fn certificate(
    cfg: &ConnConfig,
    ep: &Endpoint,
    reason: CertReason,
    message: &str,
    cert: Option<&CertFacts>,
) -> Diagnosis {
    let host = match &ep.host {
        Host::Tcp(h) => h.as_str(),
        Host::Socket(_) => "",
    };
    let which = match cert {
        Some(c) if c.depth > 0 => format!("the CA certificate `{}`", c.subject),
        Some(c) => format!("the server's certificate (`{}`)", c.subject),
        None => "the server's certificate".to_string(),
    };
    let dates = cert
        .map(|c| format!(" (valid from {} until {})", c.not_before, c.not_after))
        .unwrap_or_default();
    let roots = match &cfg.sslrootcert {
        Some(file) => format!("sslrootcert ({file})"),
        None => "~/.postgresql/root.crt (libpq's default when sslrootcert is not set)".to_string(),
    };
    let hint = match reason {
        CertReason::NameMismatch => {
            let names = match cert.map(|c| c.names.as_slice()) {
                Some([]) => "no host name at all".to_string(),
                Some(names) => {
                    // The CN often repeats a subjectAltName: each name once.
                    let mut shown: Vec<String> = Vec::new();
                    for name in names {
                        let name = format!("`{}`", crate::sanitize::for_terminal(name));
                        if !shown.contains(&name) {
                            shown.push(name);
                        }
                    }
                    shown.join(", ")
                }
                None => "other names".to_string(),
            };
            format!(
                "the certificate is not issued for `{host}`; it names {names}: connect with a host name it covers, or use sslmode=verify-ca to check the chain only"
            )
        }
        CertReason::Expired if cert.is_some_and(|c| c.depth > 0) => format!(
            "{which} has expired{dates}: give a current CA as sslrootcert (and re-issue the server's certificate from it if the CA's key changed), or check this machine's clock"
        ),
        CertReason::Expired => format!(
            "{which} has expired{dates}: renew it on the server (ssl_cert_file, then SELECT pg_reload_conf()), or check this machine's clock"
        ),
        CertReason::NotYetValid => format!(
            "{which} is not valid yet{dates}: check this machine's clock and the server's, or issue the certificate with a start date in the past"
        ),
        CertReason::WeakKey => format!(
            "{which} has a key shorter than this machine's OpenSSL accepts at its security level (psql and asyncpg refuse it too): issue a new one with an RSA key of at least 2048 bits, or an EC key (P-256)"
        ),
        CertReason::WeakDigest => format!(
            "{which} is signed with a digest (SHA-1 or MD5) this machine's OpenSSL refuses at its security level (psql and asyncpg refuse it too): have it signed again with SHA-256"
        ),
        CertReason::NoRootCert if cfg.sslrootcert.as_deref() == Some("system") => "`sslrootcert=system` means the system's trusted CAs to libpq 16 and later (psycopg 3's wheel; with sslmode=verify-full only), but a file named `system` to libpq 15 (Debian 12's psql) and asyncpg, which fail: give the path of the CA file instead (for a public CA, /etc/ssl/certs/ca-certificates.crt)".to_string(),
        CertReason::NoRootCert => match &cfg.sslrootcert {
            Some(file) => format!("the sslmode verifies the certificate, and the sslrootcert file `{file}` is not there: give the path of the CA file that signed the server's certificate"),
            None => "the sslmode verifies the certificate but there is no CA to check it with: add ?sslrootcert=/path/to/ca.crt (the CA that signed the server's certificate), or put it at ~/.postgresql/root.crt".to_string(),
        },
        CertReason::UnknownIssuer => format!(
            "{which} does not chain to a CA in {roots}: use the CA file that signed the server's certificate (for a self-signed certificate, that certificate itself) as ?sslrootcert=/path/to/ca.crt"
        ),
        CertReason::Other => format!(
            "OpenSSL (as psql and asyncpg use it) refuses {which}: check the server's certificate (ssl_cert_file) and the CA in {roots}"
        ),
        CertReason::VerifierMissing => "aksara checks certificates with the system's OpenSSL through its library libaksara_openssl.so (beside the aksara binary, or in <prefix>/lib/aksara/): install aksara again with ./install.sh, which puts the library of the same version there (in a source checkout, `cargo build` puts it beside target/debug/aksara; `cargo run` alone does not build it); nothing is known yet about the server's certificate".to_string(),
    };
    Diagnosis {
        // Without the verifier nothing is known about the certificate: a code of its own.
        code: if reason == CertReason::VerifierMissing {
            Code::TlsVerifierMissing
        } else {
            Code::SslCertificate
        },
        message: format!(
            "the TLS certificate of {ep} {} (sslmode={}): {message}",
            // No verdict without the verifier: the certificate was not checked at all.
            if reason == CertReason::VerifierMissing {
                "could not be checked"
            } else {
                "did not verify"
            },
            cfg.sslmode
        ),
        hint,
    }
}

/// Name a server's refusal from the template map; the honest unknown when it has no entry.
fn server_error(cfg: &ConnConfig, ep: &Endpoint, error: &ServerError, ctx: &Context) -> Diagnosis {
    // A connection pooler's own refusals come before the server's map: PgBouncer sends them
    // as 08P01 with its own words, pgpool-II as XX000 (src/pooler.rs matches them as whole
    // templates, pgpool's wrong password by its detail).
    if let Some(pooler) = crate::pooler::PoolerError::from_server_error(error)
        && let Some(code) = Code::from_id(pooler.code())
    {
        return Diagnosis {
            code,
            message: format!("the connection pooler at {ep} refused: {pooler}"),
            hint: pooler.hint(),
        };
    }
    match server_messages::classify(&error.sqlstate, &error.message) {
        Some(cause) => known_cause(cfg, ep, error, &cause, ctx),
        None => unknown_server_error(ep, error),
    }
}

/// What the server said, whole: message, SQLSTATE, detail and hint, for a failure aksara has
/// no entry for. The hint is the server's own when it gave one; nothing is borrowed from
/// another class.
pub fn unknown_server_error(ep: &Endpoint, error: &ServerError) -> Diagnosis {
    let (words, hint) = server_words(error);
    Diagnosis {
        code: Code::ServerError,
        message: format!("the server at {ep} answered: {words}"),
        hint,
    }
}

/// The server's own words (message, SQLSTATE, detail) and its hint, or a hint that says
/// aksara knows no more.
pub fn server_words(error: &ServerError) -> (String, String) {
    let mut words = format!("{} (SQLSTATE {})", error.message, error.sqlstate);
    if let Some(detail) = &error.detail {
        words.push_str(&format!("; detail: {detail}"));
    }
    let hint = match &error.hint {
        Some(h) => format!("the server's hint: {h}"),
        None => format!(
            "aksara has no diagnosis for this error (SQLSTATE {}); the words above are the server's own",
            error.sqlstate
        ),
    };
    (words, hint)
}

/// For a user name with capitals: a URL keeps its case, and an unquoted `CREATE ROLE ShopApp`
/// made "shopapp", a common reason for a role "that does not exist". A fact about the names,
/// not a guess about the server: said as a condition.
fn case_folded_role(user: &str) -> String {
    let folded = user.to_lowercase();
    if folded == *user {
        return String::new();
    }
    format!(
        "; a URL keeps the name's case, while an unquoted `CREATE ROLE {user}` makes \"{folded}\": if that is how the role was made, put {folded} in the URL"
    )
}

/// The diagnosis `cause` gets; also used to document the map (docs/failure-map.md).
pub fn code_of(cause: &Cause, password_given: bool) -> Code {
    match cause {
        Cause::PasswordFailed if !password_given => Code::PasswordRequired,
        Cause::PasswordFailed | Cause::MethodFailed { .. } => Code::AuthFailed,
        Cause::ClientCertificateRequired | Cause::ClientCertificateRejected => {
            Code::ClientCertificateRequired
        }
        Cause::RoleMissing => Code::RoleMissing,
        Cause::RoleNoLogin => Code::RoleCannotLogin,
        Cause::HbaNoEntry { .. } => Code::NoHbaEntry,
        Cause::HbaRejects { .. } => Code::HbaReject,
        Cause::DatabaseMissing => Code::DatabaseMissing,
        Cause::DatabaseNotAccepting => Code::DatabaseNotAccepting,
        Cause::NoConnectPrivilege | Cause::SuperuserOnly => Code::PermissionDenied,
        Cause::TooManyForRole => Code::RoleConnectionLimit,
        Cause::TooManyForDatabase => Code::DatabaseConnectionLimit,
        Cause::TooManyClients => Code::TooManyConnections,
        Cause::Starting | Cause::InRecovery | Cause::NotYetConsistent => Code::ServerStarting,
        Cause::ShuttingDown => Code::ServerShuttingDown,
        Cause::HotStandbyOff => Code::HotStandbyOff,
        Cause::SettingRejected { .. } => Code::SettingRejected,
    }
}

fn known_cause(
    cfg: &ConnConfig,
    ep: &Endpoint,
    error: &ServerError,
    cause: &Cause,
    ctx: &Context,
) -> Diagnosis {
    let user = &cfg.user;
    let db = &cfg.dbname;
    let qu = quote_ident(user);
    let qd = quote_ident(db);
    let said = &error.message;
    let code = code_of(cause, cfg.password.is_some());
    let (message, hint) = match cause {
        Cause::PasswordFailed if cfg.password.is_none() => (
            format!("the server at {ep} asks for a password for user \"{user}\" and none was given"),
            format!(
                "put the password in the URL (postgresql://{user}:PASSWORD@...), in PGPASSWORD, or in ~/.pgpass (a line `{}:{}:{db}:{user}:PASSWORD`, chmod 600)",
                match &ep.host { Host::Tcp(h) => h.clone(), Host::Socket(_) => "localhost".into() },
                ep.port
            ),
        ),
        Cause::PasswordFailed => (
            format!("password authentication failed for user \"{user}\" at {ep}"),
            format!(
                "the password is wrong, or the role \"{user}\" does not exist, has no password, or its password has expired (VALID UNTIL); with password authentication the server does not say which (its log does){}; as a superuser run `ALTER ROLE {qu} WITH PASSWORD '...'` (psql: \\password {user}), and for an expired one `ALTER ROLE {qu} VALID UNTIL 'infinity'`, or run `aksara dbsetup`, which offers to set a new one (`--force password` without a prompt) and names an expired one",
                // A `clientcert=verify-full` line refuses a certificate whose CN is not the
                // user with the password's own words (the real reason goes to the server log).
                if cfg.client_certificate().is_some() {
                    format!(", or the line has `clientcert=verify-full` and the client certificate's common name is not \"{user}\" (the server's log says which)")
                } else {
                    String::new()
                }
            ) + &case_folded_role(user),
        ),
        // `ident` on a `local` line is peer; the server says "Ident" only for TCP, where it
        // asked an ident server on the client's machine (port 113) and got no vouching answer.
        Cause::MethodFailed { method: "ident" } => (
            format!("{said} (at {ep}): pg_hba.conf sends this TCP connection to ident authentication, and no ident server on the client's machine vouched for the OS user \"{user}\""),
            "ident over TCP asks an ident server (identd, port 113) on the client's machine, which few machines run: change this client's `host` line in pg_hba.conf to scram-sha-256 and reload (`SELECT pg_reload_conf();`), or run an identd there that reports the OS user".to_string(),
        ),
        Cause::MethodFailed { method: m @ "peer" } => (
            format!("{said}: the server only lets the operating-system user \"{user}\" in over this connection ({m} authentication)"),
            peer_hint(ep, user, ctx),
        ),
        Cause::MethodFailed { method } => (
            format!("{said} (at {ep})"),
            format!("pg_hba.conf sends user \"{user}\" to {method} authentication, which did not let the login through: the {method} password or account is wrong, or the server could not reach its {method} service (the server's log says which, on the line before this FATAL); or ask the server's administrator which pg_hba.conf line applies"),
        ),
        Cause::ClientCertificateRequired => (
            format!("the server at {ep} requires a client certificate for user \"{user}\", and none was accepted: {said}"),
            "give the client certificate and key in the URL: ?sslmode=verify-full&sslcert=/path/client.crt&sslkey=/path/client.key (the certificate signed by the server's ssl_ca_file, its CN the user name); or use a pg_hba.conf line without `cert`/clientcert".to_string(),
        ),
        Cause::ClientCertificateRejected => (
            format!("the server at {ep} did not accept the client certificate for user \"{user}\": {said}"),
            format!("the certificate's common name must be the user name \"{user}\" (or mapped to it in pg_ident.conf) and it must be signed by the server's ssl_ca_file"),
        ),
        Cause::RoleMissing => (
            format!("the role \"{user}\" does not exist on {ep}"),
            format!("create it as a superuser: `CREATE ROLE {qu} LOGIN PASSWORD '...'`, or run `aksara dbsetup`; or fix the user name in the URL") + &case_folded_role(user),
        ),
        Cause::RoleNoLogin => (
            format!("the role \"{user}\" exists on {ep} but may not log in (NOLOGIN)"),
            format!("as a superuser: `ALTER ROLE {qu} LOGIN;`"),
        ),
        Cause::HbaNoEntry { client, encryption } => return hba_no_entry(cfg, ep, client, encryption, ctx),
        Cause::HbaRejects { client, encryption } => (
            format!("pg_hba.conf on {ep} has a `reject` line that matches user \"{user}\", database \"{db}\" from {client} ({encryption})"),
            "the first matching line wins, so a line added below it does not help: remove that reject line, or put the line that should let this client in above it, then reload (`SELECT pg_reload_conf();`; `SELECT * FROM pg_hba_file_rules;` shows the lines in order)".to_string(),
        ),
        Cause::DatabaseMissing => (
            format!("the database \"{db}\" does not exist on {ep}"),
            format!("create it owned by the application user: `CREATE DATABASE {qd} OWNER {qu};` as a superuser, or run `aksara dbsetup --db-name {db}`"),
        ),
        Cause::DatabaseNotAccepting => (
            format!("the database \"{db}\" on {ep} does not allow connections (ALLOW_CONNECTIONS false)"),
            format!("as a superuser, connected to another database: `ALTER DATABASE {qd} ALLOW_CONNECTIONS true;`"),
        ),
        Cause::NoConnectPrivilege => (
            format!("user \"{user}\" may not connect to database \"{db}\": {said}"),
            format!("as the database owner or a superuser: `GRANT CONNECT ON DATABASE {qd} TO {qu};`"),
        ),
        Cause::SuperuserOnly => (
            format!("the server at {ep} lets only superusers in right now: {said}"),
            "the server is shutting down or being upgraded: wait until it is back (`aksara doctor --wait 60`)".to_string(),
        ),
        Cause::TooManyForRole => (
            format!("the role \"{user}\" has reached its own connection limit on {ep}: {said}"),
            format!("the role's CONNECTION LIMIT is reached (max_connections is not): lower the pool size, close idle sessions (`SELECT pid FROM pg_stat_activity WHERE usename = {};`), or as a superuser `ALTER ROLE {qu} CONNECTION LIMIT 50;` (-1 for none; with a limit of 0 nothing else helps, as no session of it can exist)", crate::provision::quote_literal(user)),
        ),
        Cause::TooManyForDatabase => (
            format!("the database \"{db}\" has reached its own connection limit on {ep}: {said}"),
            format!("the database's CONNECTION LIMIT is reached (max_connections is not): lower the pool size, or as a superuser `ALTER DATABASE {qd} CONNECTION LIMIT 100;` (-1 for none; with a limit of 0 nothing else helps)"),
        ),
        Cause::TooManyClients => (
            format!("the server at {ep} has no free connection slot: {said}"),
            "lower pool_max_size (see the pool-sizing table: development 5, small production 20), close idle clients, or raise max_connections: `ALTER SYSTEM SET max_connections = 200;` then restart PostgreSQL".to_string(),
        ),
        Cause::ShuttingDown => (
            format!("the server at {ep} is shutting down: {said}"),
            "it lets no new connection in while it stops (a smart shutdown waits for the connected clients to leave): if it is being restarted, `aksara doctor --wait 30` returns once it is back; otherwise start it again once it has stopped".to_string(),
        ),
        Cause::Starting | Cause::InRecovery | Cause::NotYetConsistent => (
            format!("the server at {ep} is not accepting connections yet: {said}{}", error.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()),
            "wait and retry: `aksara doctor --wait 30` returns as soon as the server is ready".to_string(),
        ),
        Cause::HotStandbyOff => (
            format!("the server at {ep} is a standby that accepts no connections: {said}{}", error.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()),
            "waiting does not help: point the URL at the primary, or set `hot_standby = on` on this standby and restart it".to_string(),
        ),
        Cause::SettingRejected { parameter } => (
            format!("the server at {ep} refused the setting \"{parameter}\" sent at login: {said}"),
            format!("remove or correct `{parameter}` in the URL's options (or its query parameters)"),
        ),
    };
    Diagnosis {
        code,
        message,
        hint,
    }
}

fn hba_no_entry(
    cfg: &ConnConfig,
    ep: &Endpoint,
    client: &str,
    encryption: &str,
    ctx: &Context,
) -> Diagnosis {
    let user = &cfg.user;
    let db = &cfg.dbname;
    let plain = encryption == "no encryption";
    if plain && ctx.tls_would_be_accepted == Some(true) {
        return Diagnosis {
            code: Code::SslRequired,
            message: format!("the server at {ep} only accepts TLS connections for user \"{user}\", and this connection did not use TLS (sslmode={})", cfg.sslmode),
            hint: "add ?sslmode=require to the connection string (or verify-full with sslrootcert for a remote server)".into(),
        };
    }
    let line = if matches!(ep.host, Host::Socket(_)) || client == "[local]" {
        format!("local  {db}  {user}  scram-sha-256")
    } else {
        let cidr = match client.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => format!("{client}/128"),
            _ => format!("{client}/32"),
        };
        format!(
            "host{}  {db}  {user}  {cidr}  scram-sha-256",
            if plain { "" } else { "ssl" }
        )
    };
    Diagnosis {
        code: Code::NoHbaEntry,
        message: format!(
            "the server's pg_hba.conf has no line that lets user \"{user}\" connect to database \"{db}\" from {client} ({})",
            if plain { "without TLS" } else { "with TLS" }
        ),
        hint: format!(
            "add `{line}` to pg_hba.conf (`SHOW hba_file;` as a superuser shows where it is), then reload: `SELECT pg_reload_conf();`"
        ),
    }
}

/// docs/failure-map.md: how each server refusal and each client-side failure is named.
pub fn failure_map() -> String {
    let server = server_messages::markdown_table(|cause| match cause {
        Cause::PasswordFailed => {
            "`auth-failed` (`password-required` when no password was given)".into()
        }
        other => format!("`{}`", code_of(other, true)),
    });
    let client = [
        ("the host name does not resolve", Code::DnsFailure),
        (
            "TCP connection refused, or no socket file",
            Code::ConnectionRefused,
        ),
        (
            "no answer within the bound (ours or the OS's TCP timeout)",
            Code::ConnectionTimeout,
        ),
        (
            "something answers but not the PostgreSQL protocol",
            Code::NotPostgres,
        ),
        (
            "sslmode requires TLS and the server answers the SSLRequest with N",
            Code::SslUnsupported,
        ),
        (
            "the server certificate fails verification (name, issuer, dates; rustls's typed error)",
            Code::SslCertificate,
        ),
        (
            "any other client-side failure (shown with the library's words)",
            Code::UnexpectedError,
        ),
        (
            "a server error with no template above (shown with the server's words)",
            Code::ServerError,
        ),
    ];
    let mut out = [
        "# How aksara names a failed connection",
        "",
        "Generated from `src/diagnose/server_messages.rs` and `src/diagnose/mod.rs` by",
        "`tests/cli/docs.rs` (`AKSARA_REGENERATE=1 cargo test --test cli docs::` rewrites it).",
        "A server message matches a row only when its SQLSTATE and the whole text (the template",
        "with `%s` for the values) agree; translated messages (`lc_messages`) match nothing and",
        "are reported as `server-error` with the server's own words.",
        "",
        "\"proven by\" names the tests of `tests/cli/` that reproduce a row against a real server",
        "in the configuration that causes it (`test[scenario]`: one scenario of",
        "`tests/cli/map_repro.rs`, run next to psql by `tests/cli/psql_compare.rs`, whose table is",
        "docs/psql-comparison.md), or says why the row cannot happen on one Linux machine (then a",
        "unit test in `src/diagnose/proofs.rs` feeds the server's words through the diagnosis).",
        "Kept in `src/diagnose/proofs.rs`; `tests/cli/docs.rs` checks each named test exists.",
        "",
        "## What the server says",
        "",
        "",
    ]
    .join("\n");
    out.push_str(&server);
    out.push_str("\n## What the client sees\n\n| failure | code | proven by |\n|---|---|---|\n");
    for (what, code) in client {
        out.push_str(&format!(
            "| {what} | `{code}` | {} |\n",
            proofs::cell(proofs::client_proof(code))
        ));
    }
    out
}

#[cfg(test)]
mod refused_tests {
    use super::*;

    fn socket(port: u16) -> Endpoint {
        Endpoint {
            host: Host::Socket("/var/run/postgresql".into()),
            port,
        }
    }

    fn tcp(port: u16) -> Endpoint {
        Endpoint {
            host: Host::Tcp("localhost".into()),
            port,
        }
    }

    /// The cluster configured for 5433, as `advice::start_command` gives it.
    fn web_cluster(socket_dir: Option<&std::path::Path>) -> Start {
        Start::new(
            "pg_ctlcluster 15 web start",
            StartedServer::ConfiguredCluster,
        )
        .with_cluster_files(
            "/etc/postgresql/15/web/postgresql.conf".into(),
            socket_dir.map(std::path::Path::to_path_buf),
        )
    }

    /// The hint for a refused localhost:5433.
    fn hint(start: Option<Start>, nearby: &[Endpoint]) -> String {
        let ep = tcp(5433);
        let ctx = Context {
            nearby: nearby.to_vec(),
            start,
            ..Context::default()
        };
        let d = refused(&ep, &ctx);
        assert_eq!(d.code, Code::ConnectionRefused);
        d.hint
    }

    #[test]
    fn the_ports_own_server_is_started_and_a_nearby_one_is_another_server() {
        let nearby = [socket(5432), tcp(5432)];
        let own = [
            (
                StartedServer::ProjectServer,
                "aksara dbserver start",
                "this project's own server (.aksara/server.json)",
            ),
            (
                StartedServer::Container,
                "docker start pg",
                "the stopped container that publishes port 5433",
            ),
            (
                StartedServer::ConfiguredCluster,
                "pg_ctlcluster 15 main start",
                "the cluster configured for port 5433",
            ),
        ];
        for (server, command, what) in own {
            let alone = hint(Some(Start::new(command, server)), &[]);
            assert_eq!(alone, format!("start {what}: `{command}`"));
            let beside = hint(Some(Start::new(command, server)), &nearby[..1]);
            assert_eq!(
                beside,
                format!(
                    "start {what}: `{command}`; PostgreSQL also answers at /var/run/postgresql/.s.PGSQL.5432: not the server this URL names"
                )
            );
            let several = hint(Some(Start::new(command, server)), &nearby);
            assert!(
                several.ends_with(
                    "PostgreSQL also answers at /var/run/postgresql/.s.PGSQL.5432, localhost:5432: not the server this URL names"
                ),
                "{several}"
            );
            assert!(!several.contains("point the URL there"), "{several}");
            // Its own socket answering: the server runs, it only does not listen at
            // localhost, so starting it is no fix (the socket case below).
            let running = hint(Some(Start::new(command, server)), &[socket(5433)]);
            assert!(!running.contains(command), "{running}");
            assert!(
                running.starts_with("a server for port 5433 runs"),
                "{running}"
            );
        }
    }

    /// The command line of a running server (pid 4242): `postgres -D /d` and `extra`.
    fn started_with(extra: &[&str]) -> Option<ServerCommand> {
        let mut argv = vec![
            "/usr/lib/postgresql/15/bin/postgres".to_string(),
            "-D".into(),
            "/d".into(),
        ];
        argv.extend(extra.iter().map(|w| w.to_string()));
        Some(ServerCommand::from_argv(4242, argv))
    }

    #[test]
    fn the_other_loopback_address_reads_only_a_command_line_that_listens_on_tcp() {
        let twin = |command| Context {
            same_port_elsewhere: vec!["127.0.0.1:5433".into()],
            server_command: command,
            ..Context::default()
        };
        let ipv6 = Endpoint {
            host: Host::Tcp("::1".into()),
            port: 5433,
        };
        let given = refused(&ipv6, &twin(started_with(&["-h", "127.0.0.1"]))).hint;
        assert!(
            given.ends_with("or add `::1` to `-h 127.0.0.1` in the command that starts the server (its command line, pid 4242, sets listen_addresses there, which wins over postgresql.conf and ALTER SYSTEM) and restart it"),
            "{given}"
        );
        // A socket-only server at that port number is not the one answering at 127.0.0.1.
        let other = refused(&ipv6, &twin(started_with(&["-c", "listen_addresses="]))).hint;
        assert_eq!(other, refused(&ipv6, &twin(None)).hint);
        assert!(
            other.contains("in the command that starts the server wins over both"),
            "{other}"
        );
    }

    #[test]
    fn a_socket_answering_at_the_refused_loopback_port_is_a_server_that_does_not_listen_there() {
        for start in [
            None,
            Some(Start::new(
                "pg_ctlcluster 15 main start",
                StartedServer::ConfiguredCluster,
            )),
            Some(Start::new(
                "systemctl start postgresql",
                StartedServer::Service,
            )),
        ] {
            let ctx = Context {
                nearby: vec![tcp(5432), socket(5433)],
                start,
                server_command: started_with(&[]),
                ..Context::default()
            };
            let d = refused(&tcp(5433), &ctx);
            assert_eq!(d.code, Code::ConnectionRefused);
            assert_eq!(
                d.message,
                "connection refused at localhost:5433: nothing listens on that port; but PostgreSQL answers on the socket /var/run/postgresql/.s.PGSQL.5433, with the same port number"
            );
            assert_eq!(
                d.hint,
                "a server for port 5433 runs but does not listen at localhost: add `localhost` to listen_addresses in its postgresql.conf (or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it) and restart it; or connect through the socket (`host=/var/run/postgresql` in the URL), where pg_hba.conf's `local` lines decide (often peer: the OS user's name must be the role's)"
            );
        }
        // The server's own command line sets listen_addresses: editing the files would change
        // nothing, so the hint names the option. Unread (another OS user's server), it may.
        let given = Context {
            nearby: vec![socket(5433)],
            server_command: started_with(&["-c", "listen_addresses="]),
            ..Context::default()
        };
        assert_eq!(
            refused(&tcp(5433), &given).hint,
            "a server for port 5433 runs but does not listen at localhost: add `localhost` to `-c listen_addresses=` in the command that starts the server (its command line, pid 4242, sets listen_addresses there, which wins over postgresql.conf and ALTER SYSTEM) and restart it; or connect through the socket (`host=/var/run/postgresql` in the URL), where pg_hba.conf's `local` lines decide (often peer: the OS user's name must be the role's)"
        );
        let unread = Context {
            server_command: None,
            ..given
        };
        assert!(
            refused(&tcp(5433), &unread).hint.starts_with("a server for port 5433 runs but does not listen at localhost: add `localhost` to listen_addresses in its postgresql.conf (or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it; a `-c listen_addresses=...` or `-h` in the command that starts the server wins over both) and restart it; or connect"),
            "{}",
            refused(&tcp(5433), &unread).hint
        );
        // The cluster configured for the port puts its socket where one answers: its own
        // file is named. Its socket elsewhere: the answering socket is another server's.
        let at_its_socket = |its: &str| Context {
            nearby: vec![socket(5433)],
            start: Some(web_cluster(Some(std::path::Path::new(its)))),
            server_command: started_with(&[
                "-c",
                "config_file=/etc/postgresql/15/web/postgresql.conf",
            ]),
            ..Context::default()
        };
        let d = refused(&tcp(5433), &at_its_socket("/var/run/postgresql"));
        assert!(
            d.hint.starts_with("a server for port 5433 runs but does not listen at localhost: add `localhost` to listen_addresses in /etc/postgresql/15/web/postgresql.conf (or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it) and restart it; "),
            "{}",
            d.hint
        );
        let d = refused(&tcp(5433), &at_its_socket("/srv/pg/sockets"));
        assert!(
            d.hint
                .contains("to listen_addresses in its postgresql.conf"),
            "{}",
            d.hint
        );
        // A host that is not this machine: a local socket at the same port number is no
        // evidence about it, so the nearby hint stays.
        let remote = Endpoint {
            host: Host::Tcp("db.example.com".into()),
            port: 5433,
        };
        let ctx = Context {
            nearby: vec![socket(5433)],
            ..Context::default()
        };
        let d = refused(&remote, &ctx);
        assert!(
            d.hint.starts_with("but PostgreSQL answers at"),
            "{}",
            d.hint
        );
        assert!(!d.message.contains("the same port"), "{}", d.message);
    }

    #[test]
    fn a_missing_socket_whose_port_answers_elsewhere_is_a_server_with_its_socket_there() {
        let existing = tempfile::tempdir().expect("a folder");
        let at = |dir: &std::path::Path| Endpoint {
            host: Host::Socket(dir.to_path_buf()),
            port: 5433,
        };
        let ctx = Context {
            nearby: vec![tcp(5432), tcp(5433)],
            start: Some(web_cluster(None)),
            server_command: started_with(&[]),
            ..Context::default()
        };
        let d = refused(&at(existing.path()), &ctx);
        assert_eq!(d.code, Code::ConnectionRefused);
        assert!(
            d.message
                .ends_with("; but PostgreSQL answers at localhost:5433, with the same port number"),
            "{}",
            d.message
        );
        let dir = existing.path().display();
        // Over TCP the answer may be another program's: both readings, and no cluster's file.
        assert_eq!(
            d.hint,
            format!(
                "if that is the server this URL means, point the URL at it (`host=localhost` in the URL, where pg_hba.conf's `host` lines decide, usually by password); or add `{dir}` to unix_socket_directories in its postgresql.conf (or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it) and restart it; if it is another (a container that publishes the port, say), start the one whose socket belongs in {dir}: `pg_ctlcluster 15 web start`"
            )
        );
        // The configured cluster's socket folder tells which reading holds: its socket file
        // there means it runs; none means it is down and another server has the TCP port.
        let its = tempfile::tempdir().expect("a folder");
        let configured = |its_dir: &std::path::Path| Context {
            start: Some(web_cluster(Some(its_dir))),
            ..ctx.clone()
        };
        let d = refused(&at(existing.path()), &configured(its.path()));
        assert_eq!(
            d.hint,
            format!(
                "the cluster configured for port 5433 is not running (no socket in {}), so what answers at localhost:5433 is another server (a container that publishes the port, say): start the cluster: `pg_ctlcluster 15 web start`; or, if that other server is the one this URL means, point the URL at it (`host=localhost` in the URL, where pg_hba.conf's `host` lines decide, usually by password)",
                its.path().display()
            )
        );
        let answering = Context {
            nearby: vec![tcp(5433), at(its.path())],
            ..configured(its.path())
        };
        let d = refused(&at(existing.path()), &answering);
        assert!(
            d.hint.starts_with(&format!(
                "the cluster configured for port 5433 runs with its socket in {}, not in {dir}: point the URL at it",
                its.path().display()
            )),
            "{}",
            d.hint
        );
        // A socket file in another local folder is a local server for the port: its own
        // folder, and the configured cluster's file when that is where it puts its socket.
        let other = tempfile::tempdir().expect("a folder");
        let d = refused(
            &at(existing.path()),
            &Context {
                nearby: vec![at(other.path()), tcp(5433)],
                ..configured(other.path())
            },
        );
        let elsewhere = other.path().display();
        assert_eq!(
            d.hint,
            format!(
                "a server for port 5433 runs with its socket in {elsewhere}, not in {dir}: point the URL at it (`host={elsewhere}` in the URL); or add `{dir}` to unix_socket_directories in /etc/postgresql/15/web/postgresql.conf (or in postgresql.auto.conf, which wins, if ALTER SYSTEM set it) and restart it"
            )
        );
        // A folder that does not exist could not take the socket: it is not offered.
        let gone = existing.path().join("gone");
        let d = refused(&at(&gone), &ctx);
        assert!(!d.hint.contains("unix_socket_directories"), "{}", d.hint);
        assert!(
            d.hint.starts_with("if that is the server this URL means"),
            "{}",
            d.hint
        );
        // Nothing at that port: the nearby hint, with the configured cluster to start.
        let d = refused(
            &at(existing.path()),
            &Context {
                nearby: vec![tcp(5432)],
                ..ctx
            },
        );
        assert!(
            d.hint
                .starts_with("start the cluster configured for port 5433"),
            "{}",
            d.hint
        );
    }

    #[test]
    fn without_the_ports_own_server_a_nearby_one_may_be_where_the_url_belongs() {
        let service = Start::new("brew services start postgresql@15", StartedServer::Service);
        assert_eq!(
            hint(Some(service), &[tcp(5432)]),
            "but PostgreSQL answers at localhost:5432: point the URL there, or start the server: `brew services start postgresql@15`; `aksara dbsetup` finds a running server or sets one up"
        );
        assert_eq!(
            hint(None, &[]),
            "start the server; `aksara dbsetup` finds a running server or sets one up"
        );
    }
}

#[cfg(test)]
mod case_tests {
    use super::case_folded_role;

    #[test]
    fn only_a_name_with_capitals_gets_the_case_note() {
        assert_eq!(case_folded_role("shopapp"), "");
        let note = case_folded_role("ShopApp");
        assert!(
            note.contains("`CREATE ROLE ShopApp` makes \"shopapp\"")
                && note.contains("put shopapp in the URL"),
            "{note}"
        );
    }
}
