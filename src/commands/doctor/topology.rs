//! What stands between the application and its data, after a healthy login: a connection
//! pooler (PgBouncer, pgpool-II; `pooler::detect` costs nothing on a direct login) and what its
//! mode means for the app's drivers, and whether the server is a primary or a standby against what
//! the key's name expects (`DATABASE_REPLICA_URL`), with a standby's lag.

use std::time::{Duration, Instant};

use super::checks::{Checklist, fail, ms, pass};
use super::report::CheckId;
use super::targets::Target;
use crate::cli::DoctorArgs;
use crate::code::Code;
use crate::connect;
use crate::diagnose::Diagnosis;
use crate::dsn::ConnConfig;
use crate::session::ServerFacts;

/// What stands in front of the server and what the server is: a pooler (detected from what
/// the login showed; a second look only when it signals one), and primary or standby against
/// what the key's name expects, with a standby's lag. A direct primary costs nothing more.
/// Returns the pooler's report, for the production checks (whose pool limit is then its own).
pub async fn topology_checks(
    target: &Target,
    args: &DoctorArgs,
    cfg: &ConnConfig,
    connected: &mut connect::Connected,
    facts: &ServerFacts,
    bound: Duration,
    list: &mut Checklist<'_>,
) -> Option<crate::pooler::PoolerReport> {
    let started = Instant::now();
    let pooler = crate::pooler::detect(connected, cfg, facts.backend_pid, facts.port, bound).await;
    match &pooler {
        Some(report) if report.pgpool.is_some() => pgpool_lines(report, args, started, list),
        Some(report) => pooler_lines(report, args, started, list),
        None => {}
    }
    let role = if facts.in_recovery {
        crate::replica::Role::Standby
    } else {
        crate::replica::Role::Primary
    };
    let key = target.key.as_deref().unwrap_or("--url");
    if let Some(mismatch) = target
        .key
        .as_deref()
        .and_then(|k| crate::replica::check_role(k, role))
    {
        let through_pgpool = pooler.as_ref().is_some_and(|r| r.pgpool.is_some());
        if through_pgpool
            && matches!(
                mismatch,
                crate::replica::RoleMismatch::ReplicaKeyAtPrimary { .. }
            )
        {
            // pgpool-II sends doctor's session (its facts query) to the primary and picks a
            // node for the app's reads itself: the key is not simply "at a primary".
            list.warn(
                CheckId::Replica,
                Some(Code::PoolerLoadBalancing),
                format!("{key} goes through pgpool-II, which ran this session on the primary; where the application's reads go is pgpool's choice (its nodes are listed above)"),
                "for reads that must come from a standby, point the replica key at the standby itself; through pgpool, reads are balanced by its load_balance_mode and backend_weight".into(),
                None,
            );
        } else {
            let code = Code::from_id(mismatch.code()).unwrap_or(Code::ServerError);
            let d = Diagnosis {
                code,
                message: mismatch.to_string(),
                hint: mismatch.hint(),
            };
            list.record(fail(CheckId::Replica, d, None));
        }
    }
    if role == crate::replica::Role::Standby {
        let started = Instant::now();
        match crate::replica::inspect(&mut connected.conn, bound).await {
            Ok(server) => replica_lines(key, &server, args, started, list),
            Err(e) => list.warn(
                CheckId::Replica,
                None,
                format!("a standby, but its replay position could not be read: {e}"),
                "the role may not call pg_last_wal_receive_lsn(); a superuser can GRANT pg_monitor"
                    .into(),
                ms(started),
            ),
        }
    }
    pooler
}

fn pooler_lines(
    report: &crate::pooler::PoolerReport,
    args: &DoctorArgs,
    started: Instant,
    list: &mut Checklist<'_>,
) {
    let mode = match &report.mode {
        crate::pooler::ModeVerdict::Known { mode, how } => format!("{mode} mode ({how})"),
        crate::pooler::ModeVerdict::Unknown { why } => format!("mode unknown ({why})"),
    };
    let message = format!("{} in {mode}; {}", report.kind, report.evidence.join("; "));
    list.record(pass(CheckId::Pooler, message, ms(started)));
    let Some(mode) = report.mode.mode() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for driver in super::drivers_for(args) {
        let id = match driver {
            crate::drivers::Driver::SqlalchemyAsyncpg => "sqlalchemy+asyncpg",
            crate::drivers::Driver::Libpq => "psycopg",
            other => other.id(),
        };
        let advice =
            crate::pooler::driver_advice(report.kind, mode, report.tracks_prepared_statements, id);
        for a in advice {
            // Driver-independent advice once, driver advice per driver.
            if !seen.insert((a.code, a.problem.clone())) {
                continue;
            }
            list.warn(
                CheckId::Pooler,
                Code::from_id(a.code),
                a.problem,
                a.fix,
                None,
            );
        }
    }
}

/// pgpool-II: what it is and does in one line, then what its load balancing means for each of
/// the project's drivers (its pooling keeps a session's server connections, so the transaction
/// pooling advice does not apply).
fn pgpool_lines(
    report: &crate::pooler::PoolerReport,
    args: &DoctorArgs,
    started: Instant,
    list: &mut Checklist<'_>,
) {
    let Some(facts) = &report.pgpool else { return };
    let message = format!("{}; {}", facts.describe(), report.evidence.join("; "));
    list.record(pass(CheckId::Pooler, message, ms(started)));
    let drivers: Vec<&str> = super::drivers_for(args)
        .into_iter()
        .map(|driver| match driver {
            crate::drivers::Driver::SqlalchemyAsyncpg => "sqlalchemy+asyncpg",
            crate::drivers::Driver::Libpq => "psycopg",
            other => other.id(),
        })
        .collect();
    for a in facts.advice(&drivers) {
        list.warn(
            CheckId::Pooler,
            Code::from_id(a.code),
            a.problem,
            a.fix,
            None,
        );
    }
}

fn replica_lines(
    key: &str,
    server: &crate::replica::ServerRole,
    args: &DoctorArgs,
    started: Instant,
    list: &mut Checklist<'_>,
) {
    let Some(lag) = &server.lag else {
        return;
    };
    let behind = match (lag.bytes, lag.seconds) {
        (Some(b), Some(s)) => format!("{b} bytes and {s:.1} s behind"),
        (Some(b), None) => format!("{b} bytes behind"),
        (None, Some(s)) => format!("{s:.1} s behind"),
        (None, None) => "its lag is not known (nothing streamed or replayed yet)".into(),
    };
    let paused = if lag.replay_paused {
        ", replay paused"
    } else {
        ""
    };
    list.record(pass(
        CheckId::Replica,
        format!("{key} is a standby, {behind}{paused}"),
        ms(started),
    ));
    for warning in crate::replica::lag_warnings(lag, Duration::from_secs(args.max_lag)) {
        list.warn(
            CheckId::Replica,
            Code::from_id(warning.code()),
            warning.to_string(),
            warning.hint(),
            None,
        );
    }
}
