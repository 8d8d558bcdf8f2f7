//! The production checks (warnings only, exit 0): a remote host without TLS, a `.env` that git
//! does not ignore or other users can read, connections near the limit, pools larger than the
//! server allows; and the URL's lint.

use std::time::Instant;

use super::checks::{Checklist, ms};
use super::report::CheckId;
use super::targets::Target;
use crate::cli::DoctorArgs;
use crate::code::Code;
use crate::dsn::{ConnConfig, ConnString, Endpoint, Host, SslMode};
use crate::envfile;
use crate::pooler::PoolerReport;
use crate::session::ServerFacts;

/// What the session told of the server and of what answered in front of it.
#[derive(Clone, Copy)]
pub struct Answered<'a> {
    pub facts: Option<&'a ServerFacts>,
    /// A pooler that answered, when one did: the application's pools meet its client limit,
    /// not the server's max_connections.
    pub pooler: Option<&'a PoolerReport>,
}

pub fn production_checks(
    list: &mut Checklist<'_>,
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    session: Answered<'_>,
    target: &Target,
    args: &DoctorArgs,
    git: envfile::PendingGitStatus,
) {
    // Computed from what is already known: no step of their own to time. The client's own
    // leg, then a pooler's leg to the server.
    let Answered { facts, pooler } = session;
    let pooler_leg = facts
        .zip(pooler)
        .and_then(|(f, report)| pooler_leg_without_tls(f, report));
    for (message, hint) in remote_without_tls(endpoint, cfg.sslmode)
        .into_iter()
        .chain(pooler_leg)
    {
        list.warn(
            CheckId::SslRemote,
            Some(Code::SslNotUsedRemote),
            message,
            hint,
            None,
        );
    }
    if let Some(path) = &target.env_file {
        if let Some((envfile::GitIgnoreStatus::NotIgnored { repo_root }, took)) = git.wait() {
            list.warn(
                CheckId::EnvGit,
                Some(Code::EnvNotIgnored),
                format!(
                    "{} holds the database {} and git does not ignore it",
                    path.display(),
                    if target.password_in_file {
                        "password"
                    } else {
                        "URL"
                    }
                ),
                format!(
                    "add it to {}: `echo {} >> {}` (or `aksara doctor --fix`)",
                    repo_root.join(".gitignore").display(),
                    // The line `doctor --fix` and dbsetup write: anchored at the root.
                    crate::gitignore::relative_pattern(path, &repo_root),
                    repo_root.join(".gitignore").display()
                ),
                // git's own time, on its thread (it ran while the server answered).
                Some(took.as_millis() as u64),
            )
        }
        let started = Instant::now();
        if envfile::readable_by_others(path).unwrap_or(false) {
            list.warn(
                CheckId::EnvMode,
                Some(Code::EnvWorldReadable),
                format!(
                    "{} is readable by other users on this machine",
                    path.display()
                ),
                format!("`chmod 600 {}`", path.display()),
                ms(started),
            );
        }
    }
    if let Some(f) = facts {
        let usable = (f.max_connections - f.superuser_reserved_connections).max(0) as i64;
        if usable > 0 && f.connections * 10 >= usable * 8 {
            list.warn(
                CheckId::Connections,
                Some(Code::ConnectionsNearLimit),
                format!(
                    "{} of {} usable connections are in use",
                    f.connections, usable
                ),
                "close idle connections (look at pg_stat_activity) or raise max_connections".into(),
                None,
            );
        }
        let wanted = args.pool_max as i64 * args.instances as i64;
        let pools = format!(
            "{} instance(s) × pool_max_size {} = {wanted} connections",
            args.instances, args.pool_max
        );
        match pooler {
            None if wanted > usable => list.warn(
                CheckId::Pool,
                Some(Code::PoolExceedsConnections),
                format!("{pools}, but the server allows {usable} (max_connections {} − {} reserved)", f.max_connections, f.superuser_reserved_connections),
                format!("keep instances × pool_max_size ≤ {usable}: e.g. pool_max_size {} per instance; workloads: development 2–5, small production 5–20, medium 10–50, high traffic 20–100 (raise max_connections for those)", (usable / args.instances.max(1) as i64).max(1)),
                None,
            ),
            None => {}
            Some(report) => pooler_pool_check(list, report, &pools, wanted, usable),
        }
    }
}

/// The pool check through a pooler: the application's connections are the pooler's clients,
/// bounded by its own limit when it said it; the server sees only the pooler's connections.
fn pooler_pool_check(
    list: &mut Checklist<'_>,
    report: &PoolerReport,
    pools: &str,
    wanted: i64,
    usable: i64,
) {
    let kind = report.kind;
    let server_side = format!(
        "the server's {usable} usable connections bound {kind}'s own connections to it (PgBouncer: default_pool_size per database and user), not the application's pools"
    );
    match &report.client_limit {
        Some(limit) if wanted > limit.value => list.warn(
            CheckId::Pool,
            Some(Code::PoolExceedsConnections),
            format!(
                "{pools} to {kind}, but its {} is {}",
                limit.setting, limit.value
            ),
            format!(
                "keep instances × pool_max_size ≤ {}, or raise {} in {kind}'s configuration; {server_side}",
                limit.value, limit.setting
            ),
            None,
        ),
        Some(_) => {}
        // Unknown: said only where the direct check would have warned, and as unknown.
        None if wanted > usable => list.warn(
            CheckId::Pool,
            None,
            format!(
                "{pools} to {kind}: more than the server's {usable} usable connections, which through a pooler is not the limit; {kind}'s own client limit could not be read"
            ),
            format!(
                "compare with {kind}'s own limit (PgBouncer: max_client_conn, `SHOW CONFIG` on its admin console; pgpool-II: num_init_children); {server_side}"
            ),
            None,
        ),
        None => {}
    }
}

/// A pooler's own connection to a server at a non-loopback address without TLS: the server's
/// row for the session (`backend_tls`) is that connection, and PgBouncer's console named the
/// server (`PoolerReport.server`). Whether that address is the pooler's own machine cannot be
/// told from here, and the message says so.
fn pooler_leg_without_tls(facts: &ServerFacts, report: &PoolerReport) -> Option<(String, String)> {
    let server = report.server.as_ref()?;
    if facts.backend_tls || server.host.is_empty() || server.host.starts_with('/') {
        return None;
    }
    let at = Endpoint {
        host: Host::Tcp(server.host.clone()),
        port: server.port,
    };
    if at.is_local() {
        return None;
    }
    Some((
        format!(
            "{}'s own connection to the server at {at} does not use TLS (the server's pg_stat_activity row for this session): unless {} is {}'s own machine, passwords and data cross the network between them in the clear",
            report.kind, server.host, report.kind
        ),
        "set `server_tls_sslmode = require` (or `verify-full` with `server_tls_ca_file`) in pgbouncer.ini, then a reload; the server must have `ssl = on`".into(),
    ))
}

/// A remote server reached without requiring TLS: credentials and data cross the network in
/// the clear (or to whoever answers, since nothing is verified).
fn remote_without_tls(endpoint: &Endpoint, sslmode: SslMode) -> Option<(String, String)> {
    (!endpoint.is_local() && !sslmode.requires_tls()).then(|| {
        (
            format!("{endpoint} is a remote host and sslmode={sslmode} does not require TLS"),
            "add ?sslmode=require to the URL (or verify-full with sslrootcert) so credentials and data are encrypted".to_string(),
        )
    })
}

/// What libpq accepts but is almost surely a typo: an unencoded `@` in the password, which
/// moves the host. What each driver makes of the parameters is the drivers' checks' job.
pub fn lint(raw: &str, _cs: &ConnString) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rest) = raw.split_once("://").map(|(_, r)| r) {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.matches('@').count() > 1 {
            out.push("the user/password part holds an unencoded @ (write it as %40)".into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pooler::{ModeVerdict, PoolerKind, ServerBehind};

    fn pgbouncer_before(host: &str) -> PoolerReport {
        PoolerReport {
            kind: PoolerKind::PgBouncer,
            evidence: Vec::new(),
            mode: ModeVerdict::Unknown { why: String::new() },
            version: None,
            tracks_prepared_statements: None,
            server: Some(ServerBehind {
                host: host.into(),
                port: 5432,
                database: "app".into(),
            }),
            pgpool: None,
            client_limit: None,
        }
    }

    #[test]
    fn a_poolers_own_leg_to_a_remote_server_without_tls_is_warned_about() {
        let plain = ServerFacts::default();
        let (message, hint) =
            pooler_leg_without_tls(&plain, &pgbouncer_before("10.0.0.7")).expect("a warning");
        assert!(
            message.starts_with(
                "PgBouncer's own connection to the server at 10.0.0.7:5432 does not use TLS"
            ) && message.contains("unless 10.0.0.7 is PgBouncer's own machine"),
            "{message}"
        );
        assert!(
            hint.starts_with("set `server_tls_sslmode = require`"),
            "{hint}"
        );
        // A leg over TLS, to a loopback address or a socket, or a server the console did not
        // name: nothing to say.
        let tls = ServerFacts {
            backend_tls: true,
            ..ServerFacts::default()
        };
        assert!(pooler_leg_without_tls(&tls, &pgbouncer_before("10.0.0.7")).is_none());
        for local in ["127.0.0.1", "localhost", "::1", "/var/run/postgresql", ""] {
            assert!(
                pooler_leg_without_tls(&plain, &pgbouncer_before(local)).is_none(),
                "{local}"
            );
        }
        let unnamed = PoolerReport {
            server: None,
            ..pgbouncer_before("10.0.0.7")
        };
        assert!(pooler_leg_without_tls(&plain, &unnamed).is_none());
    }

    #[test]
    fn a_remote_host_without_required_tls_is_warned_about() {
        let remote = Endpoint {
            host: Host::Tcp("db.example.com".into()),
            port: 5432,
        };
        let (message, hint) = remote_without_tls(&remote, SslMode::Prefer).expect("a warning");
        assert!(
            message.contains("db.example.com:5432") && message.contains("sslmode=prefer"),
            "{message}"
        );
        assert!(hint.contains("sslmode=require"));
        assert!(remote_without_tls(&remote, SslMode::Require).is_none());
        assert!(remote_without_tls(&remote, SslMode::VerifyFull).is_none());
        let local = Endpoint {
            host: Host::Tcp("localhost".into()),
            port: 5432,
        };
        assert!(remote_without_tls(&local, SslMode::Disable).is_none());
        let socket = Endpoint {
            host: Host::Socket("/var/run/postgresql".into()),
            port: 5432,
        };
        assert!(remote_without_tls(&socket, SslMode::Disable).is_none());
    }

    #[test]
    fn lint_names_a_moved_host_and_leaves_parameters_to_the_drivers() {
        let raw = "postgresql://app:p@ss@localhost/db?schema=public";
        let cs = ConnString::parse("postgresql://app:p%40ss@localhost/db?schema=public").unwrap();
        let lints = lint(raw, &cs);
        assert!(lints.iter().any(|l| l.contains("unencoded @")), "{lints:?}");
        assert!(!lints.iter().any(|l| l.contains("schema")), "{lints:?}");
    }
}
