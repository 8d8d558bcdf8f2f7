//! After a failed connection attempt: what the reach, TLS and login lines say, the bounded
//! extra probing that only a failure pays for (is anything PostgreSQL there? would TLS get past
//! pg_hba? which servers answer nearby, and how does this one start?), and the diagnosis.

use std::time::{Duration, Instant};

use sqlx::postgres::PgSslMode;

use super::checks::{fail, ms, pass};
use super::report::{Check, CheckId};
use crate::code::Code;
use crate::connect::{self, Attempt, FailureKind};
use crate::diagnose::{self, Context, Diagnosis, Start, StartedServer};
use crate::dsn::{ConnConfig, ConnString, Endpoint, Host, SslMode};
use crate::probe::{self, Answer};

/// What the looks around a failure may add ([`probe::BESIDE_A_FAILURE`]): the nearby-server
/// probes and the Docker lookup run side by side within it, the did-you-mean login and its
/// query share it.
const EXTRA_PROBING: Duration = probe::BESIDE_A_FAILURE;

/// The reach, TLS and login lines after a failed connection.
pub async fn login_failure_checks(
    cfg: &ConnConfig,
    bound: Duration,
    failure: &connect::ConnectFailure,
    started: Instant,
    out: &mut Vec<Check>,
) {
    let attempt = failure.last().clone();
    let answered: Vec<&Attempt> = failure
        .attempts
        .iter()
        .filter(|a| server_answered(&a.failure))
        .collect();
    if answered.is_empty() {
        match reach_failure(&attempt, bound).await {
            Ok(reach) => out.push(pass(CheckId::Reach, reach, ms(started))),
            Err(reach_failure) => {
                let ctx = failure_context(&reach_failure).await;
                let d = diagnose::diagnose(cfg, &reach_failure, &ctx);
                out.push(fail(CheckId::Reach, d, ms(started)));
                return;
            }
        }
    } else {
        let mut lines: Vec<String> = answered
            .iter()
            .map(|a| {
                // What the failure says about the server's TLS, when it says anything.
                let tls = match a.failure {
                    FailureKind::TlsUnsupported => reach_tls_note(&a.endpoint, false),
                    FailureKind::Certificate { .. } => reach_tls_note(&a.endpoint, true),
                    _ => "",
                };
                format!("PostgreSQL answers at {}{tls}", a.endpoint)
            })
            .collect();
        lines.dedup();
        out.push(pass(CheckId::Reach, lines.join("; "), None));
    }
    if !failure.skipped.is_empty()
        && failure
            .skipped
            .iter()
            .any(|s| s.endpoint == attempt.endpoint)
    {
        out.push(pass(
            CheckId::Tls,
            tls_summary(cfg, &failure.attempts),
            None,
        ));
        out.push(fail(
            CheckId::Login,
            unmet_session_attrs(failure),
            ms(started),
        ));
        return;
    }
    let mut ctx = failure_context(&attempt).await;
    if attempt
        .failure
        .server()
        .is_some_and(|e| e.is_plaintext_hba_rejection())
    {
        ctx.tls_would_be_accepted = Some(tls_would_pass_hba(cfg, &attempt.endpoint, bound).await);
    }
    let mut d =
        stranger_at_project_port(&attempt.endpoint, diagnose::diagnose(cfg, &attempt, &ctx));
    if d.code == Code::DatabaseMissing
        && let Some(hint) = socket_database_hint(cfg, &attempt.endpoint)
    {
        d.hint = hint;
    }
    if d.code == Code::DatabaseMissing
        && let Some(names) = similar_databases(cfg, &attempt.endpoint).await
    {
        d.hint = format!(
            "did you mean {}? (database names are case-sensitive); otherwise {}",
            names.join(" or "),
            d.hint
        );
    }
    if d.code == Code::RoleMissing
        && let Some(hint) = socket_role_hint(cfg, &attempt.endpoint)
    {
        d.hint = hint;
    }
    if d.code == Code::PasswordRequired
        && let Some(hint) = socket_login_hint(cfg, &attempt.endpoint).await
    {
        d.hint = hint;
    }
    if matches!(
        d.code,
        Code::SslRequired | Code::SslUnsupported | Code::SslCertificate
    ) {
        out.push(fail(CheckId::Tls, d, ms(started)));
    } else {
        out.push(pass(
            CheckId::Tls,
            tls_summary(cfg, &failure.attempts),
            None,
        ));
        out.push(fail(CheckId::Login, d, ms(started)));
    }
}

/// A role missing on a unix socket when no password was given: the server let this connection
/// through authentication without one (a password method would have asked for it first, and
/// then said "password authentication failed" whether or not the role exists), so the role
/// needs none on this path and `CREATE ROLE ... PASSWORD` is beside the point. The hint is the
/// `createuser` line run as the server's OS user (see [`as_server_user`]); the SQL stays for
/// whoever has a superuser session. None (the general hint) elsewhere.
fn socket_role_hint(cfg: &ConnConfig, ep: &Endpoint) -> Option<String> {
    if cfg.password.is_some() {
        return None;
    }
    let sql = format!(
        "CREATE ROLE {} LOGIN;",
        crate::provision::quote_ident(&cfg.user)
    );
    let how = as_server_user(ep, "createuser", &[&cfg.user], &sql)?;
    Some(format!(
        "this connection got past authentication without a password, so the role needs none here: {how}; or run `aksara dbsetup`; or fix the user name in the URL"
    ))
}

/// A password asked for over TCP on this machine, none given: the distribution's cluster lets
/// its OS users in over the local socket without one (peer), and the role may have no password
/// at all, so "put the password in the URL" can be a hint that cannot help. When the server's
/// socket for the same port (owned by the OS user that every TCP listener on that port
/// belongs to, as `/proc/net/tcp` shows: the same server's user, not a container's proxy)
/// lets the same user into the same database without a password (one bounded login, on this
/// failure only), that URL is the hint, checked; beside giving the role a password. None
/// otherwise (the general hint).
async fn socket_login_hint(cfg: &ConnConfig, ep: &Endpoint) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let Host::Tcp(name) = &ep.host else {
        return None;
    };
    if cfg.password.is_some() || !diagnose::is_loopback_name(name) {
        return None;
    }
    let listener = crate::holder::listener_uid(ep.port)?;
    let deadline = tokio::time::Instant::now() + EXTRA_PROBING;
    for dir in crate::dsn::DEFAULT_SOCKET_DIRS {
        let socket = Endpoint {
            host: Host::Socket(dir.into()),
            port: ep.port,
        };
        let owner = std::fs::metadata(socket.socket_path()?)
            .ok()
            .map(|m| m.uid());
        if owner != Some(listener) {
            continue;
        }
        let mut other = cfg.clone();
        other.endpoints = vec![socket];
        let login = tokio::time::timeout_at(deadline, connect::connect(&other, EXTRA_PROBING));
        let Ok(Ok(c)) = login.await else {
            return None;
        };
        connect::close(c.conn).await;
        let url = crate::drivers::portable::portable(&ConnString {
            hosts: vec![crate::dsn::HostSpec {
                host: Some(dir.to_string()),
                port: Some(ep.port),
            }],
            user: Some(cfg.user.clone()),
            dbname: Some(cfg.dbname.clone()),
            ..ConnString::default()
        })
        .ok()?;
        return Some(format!(
            "no password was given, and user \"{}\" needs none over this server's socket: `{}` logs in (checked); use that URL, or give the role a password (psql: `\\password {}`) and put it in this one",
            cfg.user, url.url.url, cfg.user
        ));
    }
    None
}

/// A database missing on a unix socket whose login asked for no password (peer or trust, as on
/// Debian's cluster, where the server's OS user gets in the same way): `createdb -O user db`
/// as that user, beside the SQL. None (the general hint) elsewhere: behind a password (the
/// project's own server) that user has none to give.
fn socket_database_hint(cfg: &ConnConfig, ep: &Endpoint) -> Option<String> {
    if cfg.password.is_some() {
        return None;
    }
    let sql = format!(
        "CREATE DATABASE {} OWNER {};",
        crate::provision::quote_ident(&cfg.dbname),
        crate::provision::quote_ident(&cfg.user)
    );
    let how = as_server_user(ep, "createdb", &["-O", &cfg.user, &cfg.dbname], &sql)?;
    Some(format!(
        "create it owned by the application user: {how}; or run `aksara dbsetup --db-name {}`",
        cfg.dbname
    ))
}

/// "run `sudo -u postgres TOOL ARGS` (as the server's OS user, ...), or as a superuser `SQL`"
/// (see [`crate::peer::as_socket_owner`]). None off a socket, or when its owner has no name.
fn as_server_user(ep: &Endpoint, tool: &str, args: &[&str], sql: &str) -> Option<String> {
    let Host::Socket(dir) = &ep.host else {
        return None;
    };
    let line = crate::peer::as_socket_owner(dir, ep.port, tool, args)?;
    Some(format!("{line}, or as a superuser `{sql}`"))
}

/// For a database that does not exist, the names that do and are close to it (same letters in
/// another case, or one or two edits away), read over a login to `postgres` with the same
/// credentials: one bounded connection, only on this failure path.
async fn similar_databases(cfg: &ConnConfig, ep: &Endpoint) -> Option<Vec<String>> {
    let mut other = cfg.clone();
    other.dbname = if cfg.dbname == "postgres" {
        "template1".into()
    } else {
        "postgres".into()
    };
    other.endpoints = vec![ep.clone()];
    // One budget for the login and the query together: the failure path stays within it.
    let deadline = tokio::time::Instant::now() + EXTRA_PROBING;
    let mut c = tokio::time::timeout_at(deadline, connect::connect(&other, EXTRA_PROBING))
        .await
        .ok()?
        .ok()?;
    let query = sqlx::query_scalar::<_, String>(
        "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate",
    )
    .fetch_all(&mut c.conn);
    let names = tokio::time::timeout_at(deadline, query)
        .await
        .ok()
        .and_then(Result::ok);
    connect::close(c.conn).await;
    let wanted = cfg.dbname.to_lowercase();
    let close: Vec<String> = names?
        .into_iter()
        .filter(|n| *n != cfg.dbname)
        .filter(|n| n.to_lowercase() == wanted || edit_distance(&n.to_lowercase(), &wanted) <= 2)
        .map(|n| format!("`{n}`"))
        .take(3)
        .collect();
    (!close.is_empty()).then_some(close)
}

/// Levenshtein distance, for names of at most 63 bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The URL is this project's own server's address, and another server holds the port: the
/// login's refusal is that stranger's, so its hint (a password, a role) would be wrong.
fn stranger_at_project_port(ep: &Endpoint, d: Diagnosis) -> Diagnosis {
    let Some(dir) = std::env::current_dir().ok() else {
        return d;
    };
    match crate::projectserver::at_project_port(ep, &dir) {
        Some((layout, _, crate::projectserver::AtProjectPort::Stranger(holder))) => Diagnosis {
            code: Code::PortHeldByOtherServer,
            message: format!(
                "{ep} is where this project's own server ({}) listens, but {holder} holds the port; it answered: {}",
                layout.root().display(),
                d.message
            ),
            hint: "the answer is the other server's, not this project's: stop that server, or move this project's server to a free port, then `aksara dbserver start`".into(),
        },
        _ => d,
    }
}

/// Every host let the client in, and none was the kind `target_session_attrs` asks for.
fn unmet_session_attrs(failure: &connect::ConnectFailure) -> Diagnosis {
    let wanted = failure.skipped[0].wanted;
    let hosts: Vec<String> = failure
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.endpoint, s.reason))
        .collect();
    Diagnosis {
        code: Code::TargetSessionAttrsUnmet,
        message: format!(
            "no host is what target_session_attrs={wanted} asks for: {}",
            hosts.join("; ")
        ),
        hint: format!(
            "libpq and asyncpg skip these hosts too: add a host that is {wanted} to the URL (for writes, the primary), or change target_session_attrs"
        ),
    }
}

/// For a failure before the server said anything: is PostgreSQL there at all? `Ok` with the
/// reach line when it is (the login failed for another reason), else the failure to report.
async fn reach_failure(attempt: &Attempt, bound: Duration) -> Result<String, Attempt> {
    if !matches!(attempt.failure, FailureKind::Unexpected { .. }) {
        return Err(attempt.clone());
    }
    let failure = match probe::probe(&attempt.endpoint, bound).await {
        Answer::Postgres { tls } => {
            return Ok(format!(
                "PostgreSQL answers at {}{}",
                attempt.endpoint,
                reach_tls_note(&attempt.endpoint, tls)
            ));
        }
        Answer::NotPostgres => FailureKind::NotPostgres,
        Answer::Nothing(nothing) => nothing.as_failure(bound),
    };
    Err(Attempt {
        failure,
        ..attempt.clone()
    })
}

/// Whether the server took part in a failed attempt: it answered the SSLRequest or the
/// startup message (so PostgreSQL is reachable there).
pub fn server_answered(failure: &FailureKind) -> bool {
    matches!(
        failure,
        FailureKind::Server(_)
            | FailureKind::TlsUnsupported
            | FailureKind::Certificate { .. }
            | FailureKind::AuthUnsupported { .. }
            | FailureKind::CleartextRefused
            | FailureKind::AuthInterrupted { .. }
            | FailureKind::TlsHandshake { .. }
    )
}

fn reach_tls_note(ep: &Endpoint, tls: bool) -> &'static str {
    match (&ep.host, tls) {
        (Host::Socket(_), _) => "",
        (Host::Tcp(_), true) => " (offers TLS)",
        (Host::Tcp(_), false) => " (no TLS)",
    }
}

/// What the failed attempts at the last endpoint did about TLS. Under `prefer` a plaintext
/// retry follows a TLS attempt that pg_hba rejected; both are worth saying.
fn tls_summary(cfg: &ConnConfig, attempts: &[Attempt]) -> String {
    let last = attempts.last().expect("a failure has attempts");
    if matches!(last.endpoint.host, Host::Socket(_)) {
        return "not used (unix socket)".into();
    }
    let at_endpoint: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.endpoint == last.endpoint)
        .collect();
    let tried_tls = at_endpoint
        .iter()
        .any(|a| !matches!(a.tls_mode, PgSslMode::Disable));
    let tried_plain = at_endpoint
        .iter()
        .any(|a| matches!(a.tls_mode, PgSslMode::Disable));
    match (tried_tls, tried_plain) {
        (true, true) => format!("tried with and without TLS (sslmode={})", cfg.sslmode),
        (false, _) => format!("not attempted (sslmode={})", cfg.sslmode),
        (true, false) if cfg.sslmode == SslMode::Prefer => {
            "sslmode=prefer: TLS when the server offers it".into()
        }
        (true, false) => format!("negotiated (sslmode={})", cfg.sslmode),
    }
}

/// Would pg_hba let a TLS connection through? Told by a second attempt with sslmode=require:
/// any answer but the same pg_hba rejection means TLS is the missing piece.
async fn tls_would_pass_hba(cfg: &ConnConfig, ep: &Endpoint, bound: Duration) -> bool {
    if matches!(ep.host, Host::Socket(_)) {
        return false;
    }
    match connect::attempt(cfg, ep, PgSslMode::Require, bound).await {
        Ok(conn) => {
            connect::close(conn).await;
            true
        }
        Err(FailureKind::Server(e)) => !e.is_hba_rejection(),
        Err(_) => false,
    }
}

/// Nearby servers and the start command, for a refused connection.
/// The other loopback addresses at `ep`'s port, when `ep` is a loopback address.
fn loopback_twins(ep: &Endpoint) -> Vec<Endpoint> {
    let Host::Tcp(host) = &ep.host else {
        return Vec::new();
    };
    if !diagnose::is_loopback_name(host) {
        return Vec::new();
    }
    ["127.0.0.1", "::1"]
        .iter()
        .filter(|h| **h != host.as_str())
        .map(|h| Endpoint {
            host: Host::Tcp((*h).to_string()),
            port: ep.port,
        })
        .collect()
}

/// The command line of the local server at `ep`'s port: through its own socket folder, the usual
/// ones, or the folder of the cluster configured for the port (src/postmaster.rs). Over TCP, a
/// server whose command line sets `listen_addresses` empty is not the one that answered there
/// (a socket-only cluster beside a container that publishes the port): it is not taken.
fn local_server_command(ep: &Endpoint) -> Option<crate::postmaster::ServerCommand> {
    let start = diagnose::start_command(ep.port);
    let mut dirs: Vec<std::path::PathBuf> = match &ep.host {
        Host::Socket(dir) => vec![dir.clone()],
        Host::Tcp(_) => Vec::new(),
    };
    dirs.extend(crate::dsn::DEFAULT_SOCKET_DIRS.iter().map(Into::into));
    dirs.extend(start.as_ref().and_then(|s| s.socket_dir.clone()));
    let tcp = matches!(ep.host, Host::Tcp(_));
    dirs.iter()
        .find_map(|dir| diagnose::server_command(dir, ep.port, start.as_ref()))
        .filter(|command| !tcp || command.listens_on_tcp())
}

pub async fn failure_context(attempt: &Attempt) -> Context {
    // A peer refusal's usual way out is TCP with a password: asked whether that is open.
    if let Some(ctx) = Context::beside_a_peer_refusal(attempt).await {
        return ctx;
    }
    let mut ctx = Context::default();
    // A local server without TLS: how it was started decides where `ssl` is turned on.
    if matches!(attempt.failure, FailureKind::TlsUnsupported) && attempt.endpoint.is_local() {
        ctx.server_command = local_server_command(&attempt.endpoint);
        return ctx;
    }
    // Only "nothing listens there" hints at other servers and at starting one; a timeout's
    // hint is about the network, and its report should not wait for more probing.
    if !matches!(
        attempt.failure,
        FailureKind::Refused | FailureKind::SocketMissing
    ) {
        return ctx;
    }
    let mut candidates: Vec<_> = probe::local_candidates()
        .into_iter()
        .filter(|c| c.endpoint != attempt.endpoint)
        .collect();
    // The other loopback address at the same port: `[::1]` in the URL, 127.0.0.1 in
    // listen_addresses (or the reverse) is a running server, not a stopped one.
    let twins = loopback_twins(&attempt.endpoint);
    candidates.extend(twins.iter().cloned().map(|endpoint| probe::Candidate {
        endpoint,
        origin: "the other loopback address".into(),
    }));
    // A socket the URL's folder lacks: the same port over TCP is looked at too (the probe
    // list has only the usual ports), since a server answering there is this port's server.
    if let Host::Socket(_) = attempt.endpoint.host {
        let tcp = Endpoint {
            host: Host::Tcp("localhost".into()),
            port: attempt.endpoint.port,
        };
        if !candidates.iter().any(|c| c.endpoint == tcp) {
            candidates.push(probe::Candidate {
                endpoint: tcp,
                origin: "TCP localhost at the same port".into(),
            });
        }
    }
    // The cluster configured for this port (its files only): its own socket is asked too,
    // wherever its configuration puts it, since an answer there says it runs.
    let configured = diagnose::start_command(attempt.endpoint.port);
    let its_socket = configured
        .as_ref()
        .and_then(|start| start.socket_dir.clone())
        .map(|dir| Endpoint {
            host: Host::Socket(dir),
            port: attempt.endpoint.port,
        })
        .filter(|its| *its != attempt.endpoint);
    if let Some(its) = &its_socket
        && !candidates.iter().any(|c| c.endpoint == *its)
    {
        candidates.push(probe::Candidate {
            endpoint: its.clone(),
            origin: "the configured cluster's socket".into(),
        });
    }
    // This project's own server (aksara started it) comes back with `aksara dbserver start`,
    // not with the OS's service; a stopped container that publishes the port with
    // `docker start`. The Docker lookup runs beside the probes, within the same budget (a
    // slow engine costs the hint, not the wait).
    let project = std::env::current_dir()
        .ok()
        .and_then(|dir| crate::projectserver::start_command_for(&attempt.endpoint, &dir));
    let docker = async {
        if project.is_some() {
            return None;
        }
        tokio::time::timeout(
            EXTRA_PROBING,
            crate::docker::stopped_container_publishing(attempt.endpoint.port),
        )
        .await
        .ok()
        .flatten()
    };
    let (found, container) = tokio::join!(probe::probe_all(candidates, EXTRA_PROBING), docker);
    let mut seen_ports = std::collections::BTreeSet::new();
    for p in &found {
        if twins.contains(&p.candidate.endpoint) && matches!(p.answer, Answer::Postgres { .. }) {
            ctx.same_port_elsewhere
                .push(p.candidate.endpoint.to_string());
        }
    }
    for p in found {
        // One socket and one TCP address per port, and the configured cluster's socket always.
        let mut first_at_port = || {
            seen_ports.insert((
                matches!(p.candidate.endpoint.host, Host::Socket(_)),
                p.candidate.endpoint.port,
            ))
        };
        if matches!(p.answer, Answer::Postgres { .. })
            && (first_at_port() || its_socket.as_ref() == Some(&p.candidate.endpoint))
        {
            ctx.nearby.push(p.candidate.endpoint.clone());
        }
    }
    // The server answering on this port's socket: what its own command line sets decides
    // where a listen_addresses or unix_socket_directories change has to go.
    ctx.server_command = ctx.nearby.iter().find_map(|there| match &there.host {
        Host::Socket(dir) if there.port == attempt.endpoint.port => {
            diagnose::server_command(dir, there.port, configured.as_ref())
        }
        _ => None,
    });
    ctx.start = match (project, container) {
        (Some(cmd), _) => Some(Start::new(cmd, StartedServer::ProjectServer)),
        (None, Some(name)) => Some(Start::new(
            format!("docker start {name}"),
            StartedServer::Container,
        )),
        (None, None) => configured,
    };
    ctx
}
