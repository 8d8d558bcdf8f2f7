//! What a logged-in session can tell about the server and the role, for both commands: the
//! server facts doctor reports and dbsetup summarises, and the create-table probe (in a
//! transaction that is never committed) that proves the role can build its schema; [`look`]
//! asks both in one round trip, one write of extended-protocol statements.

use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::aksara::{PipelineEnd, PipelineError, PipelineRows};

use crate::code::Code;
use crate::connect::{self, FailureKind};
use crate::creation::{self, CreateTarget, SearchPath};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFacts {
    pub version: String,
    pub version_num: i32,
    pub max_connections: i32,
    pub superuser_reserved_connections: i32,
    pub connections: i64,
    pub ssl: String,
    pub password_encryption: String,
    pub in_recovery: bool,
    /// Whether the server's row for this session says TLS (`pg_stat_activity.ssl`): this
    /// client's connection when the server answers it directly, and through a pooler the
    /// pooler's own connection to the server. The client's TLS is `PgConnection::is_tls`.
    pub backend_tls: bool,
    /// `pg_backend_pid()`: a pooler announces a pid of its own at login (src/pooler.rs).
    #[serde(skip)]
    pub backend_pid: i32,
    /// The `port` the server listens on: a proxy on another port (pgpool-II) shows here, not at
    /// login (src/pooler.rs). `None` when `SHOW port` gave no number (not PostgreSQL's answer).
    #[serde(skip)]
    pub port: Option<i32>,
}

impl ServerFacts {
    /// `15.18` of `15.18 (Debian 15.18-0+deb12u1)`.
    pub fn short_version(&self) -> &str {
        self.version
            .split_whitespace()
            .next()
            .unwrap_or(&self.version)
    }
}

/// The settings the report shows, one `SHOW` each, in this order. A utility statement reads
/// the setting directly, where `current_setting('…')::int` makes a fresh backend look up the
/// function, the cast and its input function in catalog caches that start empty: the seven
/// `SHOW`s cost the server ~0.01 ms, the seven calls ~0.19 ms (bench/NOTES.md section 15).
const SETTINGS: [&str; 7] = [
    "server_version",
    "server_version_num",
    "max_connections",
    "superuser_reserved_connections",
    "ssl",
    "password_encryption",
    "port",
];

/// Then one row per backend from `pg_stat_get_activity(NULL)`, the function behind
/// `pg_stat_activity` (no view to load and rewrite), counted here rather than by an aggregate
/// (whose functions and `FILTER` operator are more catalog lookups): a row with a `datid` is
/// a backend connected to a database, what summing `pg_stat_database.numbackends` gives
/// (`datid` and `pid` are visible to any role), and this session's row (`pid` =
/// `pg_backend_pid()`) says whether the server sees it over TLS. Every row carries the two
/// per-session values; this session's own row is always there.
const ACTIVITY_SQL: &str =
    "SELECT pg_is_in_recovery(), pg_backend_pid(), pid, datid, ssl FROM pg_stat_get_activity(NULL)";

/// The facts from the answers to the [`SETTINGS`] and [`ACTIVITY_SQL`] statements, in that
/// order; what does not read as PostgreSQL's answer is said in words.
fn facts_from(answers: &[PipelineRows]) -> Result<ServerFacts, String> {
    let value = |rows: &PipelineRows, column: usize| -> Option<String> {
        rows.first()
            .and_then(|row| row.get(column).cloned().flatten())
    };
    let mut settings = Vec::with_capacity(SETTINGS.len());
    for (i, setting) in SETTINGS.iter().enumerate() {
        let shown = answers.get(i).and_then(|rows| value(rows, 0));
        settings.push(shown.ok_or_else(|| format!("no value for SHOW {setting}"))?);
    }
    let number = |i: usize| -> Result<i32, String> {
        settings[i]
            .trim()
            .parse()
            .map_err(|_| format!("SHOW {} gave {:?}", SETTINGS[i], settings[i]))
    };
    let activity = answers
        .get(SETTINGS.len())
        .ok_or("no answer to the activity query")?;
    let flag = |text: Option<&String>| text.map(|t| t == "t");
    let integer = |text: Option<&String>| text.and_then(|t| t.parse::<i32>().ok());
    let first = activity
        .first()
        .ok_or("the activity query returned no row")?;
    let in_recovery = flag(first.first().and_then(Option::as_ref))
        .ok_or("no pg_is_in_recovery() in the activity row")?;
    let backend_pid = integer(first.get(1).and_then(Option::as_ref))
        .ok_or("no pg_backend_pid() in the activity row")?;
    let mut connections = 0;
    let mut backend_tls = false;
    for row in activity {
        let [_, _, pid, datid, ssl] = row.as_slice() else {
            return Err(format!("an activity row of {} columns, not 5", row.len()));
        };
        if datid.is_some() {
            connections += 1;
        }
        if integer(pid.as_ref()) == Some(backend_pid) {
            backend_tls = flag(ssl.as_ref()).unwrap_or(false);
        }
    }
    Ok(ServerFacts {
        version: settings[0].clone(),
        version_num: number(1)?,
        max_connections: number(2)?,
        superuser_reserved_connections: number(3)?,
        connections,
        ssl: settings[4].clone(),
        password_encryption: settings[5].clone(),
        in_recovery,
        backend_tls,
        backend_pid,
        port: number(6).ok(),
    })
}

/// The statements [`look`] sends, in order: the facts ([`SETTINGS`], [`ACTIVITY_SQL`]), then
/// the create-table probe: a table with no columns (the privilege is the schema's, and fewer
/// catalog rows make it cheaper) in a transaction that is never committed. Rolling it back, or
/// ending the session, removes the table: nothing is left behind and nothing else needs to
/// run. `BEGIN` after the facts makes the exchange's transaction an explicit one, to which the
/// probe's bounds are `SET LOCAL`.
fn look_statements(limit: Duration, end: &ProbeEnd<'_>) -> Vec<String> {
    let ms = limit.as_millis().max(1);
    let mut statements: Vec<String> = SETTINGS.iter().map(|s| format!("SHOW {s}")).collect();
    statements.push(ACTIVITY_SQL.to_string());
    statements.push("BEGIN".into());
    statements.push(format!("SET LOCAL lock_timeout = {ms}"));
    statements.push(format!("SET LOCAL statement_timeout = {ms}"));
    statements.push("CREATE TABLE aksara_privilege_probe ()".into());
    if matches!(end, ProbeEnd::Rollback) {
        statements.push("ROLLBACK".into());
    }
    statements
}

/// How many of [`look_statements`] are the facts'.
const FACTS_STATEMENTS: usize = SETTINGS.len() + 1;

/// How the probe's transaction ends once the table was created.
pub enum ProbeEnd<'a> {
    /// `ROLLBACK` and a Sync in the same write: the session is idle again when [`look`]
    /// returns and can run more statements (dbsetup goes on with it).
    Rollback,
    /// For a caller that closes the session right after [`look`] and runs nothing more on it
    /// (doctor). The statements go with a Flush and no Sync, so the answers come while the
    /// transaction is still open, with no ReadyForQuery inside it (which a pooler in statement
    /// mode would refuse). When `direct(facts)` says the server answers this client itself,
    /// the transaction is left for the session's end, which the server rolls back after the
    /// client has its answer: the check does not wait for the rollback (a scan of all of
    /// `shared_buffers` for the dropped table, ~0.7 ms at 1 GB, and the WAL a standby is then
    /// sent: bench/NOTES.md section 15). Otherwise (anything that may be a pooler, which would
    /// have to throw its server connection away) `ROLLBACK` is sent before [`look`] returns.
    AtCloseIfDirect(&'a dyn Fn(&ServerFacts) -> bool),
}

/// Why the facts could not be read: a code of its own for each, never a guess.
#[derive(Debug, Clone)]
pub struct FactsError {
    pub code: Code,
    pub message: String,
    pub hint: String,
}

/// The session is fine; its answer is not what PostgreSQL sends for these statements.
fn undecodable_facts(e: impl std::fmt::Display) -> FactsError {
    FactsError {
        code: Code::UnexpectedError,
        message: format!(
            "the server's answer to the settings query is not what PostgreSQL sends: {e}"
        ),
        hint: "aksara does not know what answered: check that the URL points at a PostgreSQL server (or a pooler in front of one)".into(),
    }
}

fn facts_silent(limit: Duration) -> FactsError {
    FactsError {
        code: Code::ConnectionTimeout,
        message: format!(
            "the server did not answer the settings query within {:.1} s",
            limit.as_secs_f64()
        ),
        hint: "the server accepted the login but does not answer queries: it may be overloaded or waiting on a lock; look at pg_stat_activity".into(),
    }
}

fn facts_error(failure: FailureKind) -> FactsError {
    match failure {
        FailureKind::Server(e) if e.sqlstate == "42501" => FactsError {
            code: Code::PermissionDenied,
            message: format!("reading the server settings was refused: {}", e.message),
            hint: "the role may not read a setting or statistics function aksara asks for; a superuser can GRANT pg_read_all_settings and pg_read_all_stats to it".into(),
        },
        // A cancelled statement (57014) leaves the session as it was: it did not end.
        FailureKind::Server(e) if e.sqlstate == "57014" => FactsError {
            code: Code::ServerError,
            message: format!(
                "the server cancelled the settings query: {} (SQLSTATE 57014)",
                e.message
            ),
            hint: "the login worked; a statement_timeout set for this role, database or server (`SHOW statement_timeout`), or another session's pg_cancel_backend(), cancelled the query".into(),
        },
        FailureKind::Server(e) if e.sqlstate.starts_with("57") || e.sqlstate.starts_with("08") => {
            FactsError {
                code: Code::ConnectionLost,
                message: format!(
                    "the session ended while reading the server settings: {} (SQLSTATE {})",
                    e.message, e.sqlstate
                ),
                hint: "the server ended this session (shutdown, pg_terminate_backend, or a crash): see the server log, then run the check again".into(),
            }
        }
        FailureKind::Server(e) => {
            let (words, hint) = crate::diagnose::server_words(&e);
            FactsError {
                code: Code::ServerError,
                message: format!("reading the server settings failed: {words}"),
                hint,
            }
        }
        other => FactsError {
            code: Code::ConnectionLost,
            message: format!("the connection broke while reading the server settings: {other}"),
            hint: "the connection closed under the query: see the server log for why the session ended, then run the check again".into(),
        },
    }
}

/// Why the create-table probe of [`look`] could not prove the privilege.
#[derive(Debug)]
pub enum TableCheck {
    /// The server refused for lack of privilege (42501): the role may not create tables there;
    /// with where the table was to go and what the role may do there (src/creation.rs), when
    /// the failure path could read it.
    Denied {
        message: String,
        target: Option<CreateTarget>,
    },
    /// The session is read-only (25006): a standby, or `default_transaction_read_only`.
    ReadOnly(String),
    /// No schema to create in (3F000): none in search_path both exists and is open to the
    /// role; with what the failure path read of it (src/creation.rs), when it could.
    NoSchema {
        message: String,
        search_path: Option<SearchPath>,
    },
    /// No verdict: the statement waited too long for a lock another session holds.
    LockWait(String),
    /// No verdict: the session ended or the connection was lost under the check.
    Interrupted(String),
    /// Any other refusal, which aksara has no diagnosis for: the server's words and its hint
    /// (or that there is none), as they came.
    Refused { words: String, hint: String },
}

/// The probe's error, read; the failed transaction is rolled back first.
async fn table_probe_failed(
    conn: &mut sqlx::PgConnection,
    error: sqlx::Error,
    limit: Duration,
) -> TableCheck {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn),
    )
    .await;
    match connect::classify(error) {
        FailureKind::Server(e) if e.sqlstate == "55P03" || e.sqlstate == "57014" => {
            TableCheck::LockWait(format!(
                "CREATE TABLE waited over {} s for a lock another session holds ({})",
                limit.as_secs().max(1),
                e.message
            ))
        }
        // Shutdown, termination, lost connection: says nothing about privileges.
        FailureKind::Server(e) if e.sqlstate.starts_with("57") || e.sqlstate.starts_with("08") => {
            TableCheck::Interrupted(format!("{} (SQLSTATE {})", e.message, e.sqlstate))
        }
        FailureKind::Server(e) if e.sqlstate == "42501" => TableCheck::Denied {
            message: e.message,
            target: read_failure_facts(conn, creation::TARGET_SQL)
                .await
                .and_then(|rows| creation::target_from_rows(&rows)),
        },
        FailureKind::Server(e) if e.sqlstate == "25006" => TableCheck::ReadOnly(e.message),
        FailureKind::Server(e) if e.sqlstate == "3F000" => TableCheck::NoSchema {
            message: e.message,
            search_path: read_failure_facts(conn, creation::SEARCH_PATH_SQL)
                .await
                .and_then(|rows| creation::search_path_from_rows(&rows)),
        },
        FailureKind::Server(e) => {
            let (words, hint) = crate::diagnose::server_words(&e);
            TableCheck::Refused { words, hint }
        }
        other => TableCheck::Interrupted(other.to_string()),
    }
}

/// One query's rows on the failure path only (src/creation.rs): one more round trip, within a
/// second, or `None`.
async fn read_failure_facts(conn: &mut sqlx::PgConnection, sql: &str) -> Option<PipelineRows> {
    let mut answer = tokio::time::timeout(
        Duration::from_secs(1),
        conn.aksara_pipeline(&[sql], PipelineEnd::Sync),
    )
    .await
    .ok()?
    .ok()?;
    answer.pop()
}

/// What one look at a logged-in session found: the facts, and (when they could be read) the
/// create-table probe.
#[derive(Debug)]
pub struct SessionLook {
    pub facts: Result<ServerFacts, FactsError>,
    /// The whole exchange's time, as the client saw it. The server sends the answers together
    /// (its output buffer goes out at the Flush or Sync), so the two parts cannot be timed
    /// apart from here.
    pub took: Duration,
    /// `None` when the facts failed: the session is in no state to say more.
    pub table: Option<Result<(), TableCheck>>,
}

/// The facts' statements and the create-table probe in one write: one round trip on the
/// healthy path (`aksara_pipeline` of the vendored sqlx-postgres). The server answers in
/// order, so an error at a statement after the facts' is the probe's (the server skips the
/// rest). Both parts arrive together, so one deadline covers both: the facts' bound and the
/// probe's (a lock wait ends at `lock_timeout` = `limit`).
pub async fn look(
    conn: &mut sqlx::PgConnection,
    limit: Duration,
    end: ProbeEnd<'_>,
) -> SessionLook {
    let statements = look_statements(limit, &end);
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    let pipeline_end = match end {
        ProbeEnd::Rollback => PipelineEnd::Sync,
        ProbeEnd::AtCloseIfDirect(_) => PipelineEnd::Flush,
    };
    let started = tokio::time::Instant::now();
    let bound = limit + limit + Duration::from_secs(2);
    let answered =
        tokio::time::timeout(bound, conn.aksara_pipeline(&statements, pipeline_end)).await;
    let took = started.elapsed();
    let failed_look = |facts: FactsError| SessionLook {
        facts: Err(facts),
        took,
        table: None,
    };
    let (answers, probe_error) = match answered {
        Err(_) => return failed_look(facts_silent(bound)),
        Ok(Ok(answers)) => (answers, None),
        Ok(Err(PipelineError {
            statement, error, ..
        })) if statement < FACTS_STATEMENTS => {
            return failed_look(facts_error(connect::classify(error)));
        }
        Ok(Err(PipelineError {
            error, answered, ..
        })) => (answered, Some(error)),
    };
    let facts = match facts_from(&answers) {
        Ok(facts) => facts,
        Err(words) => {
            if probe_error.is_none() && pipeline_end == PipelineEnd::Flush {
                end_exchange(conn).await;
            }
            return failed_look(undecodable_facts(words));
        }
    };
    let table = match (probe_error, end) {
        (Some(e), _) => Err(table_probe_failed(conn, e, limit).await),
        (None, ProbeEnd::Rollback) => Ok(()),
        (None, ProbeEnd::AtCloseIfDirect(direct)) => {
            // A direct server's session is closed next, which ends the transaction.
            if !direct(&facts) {
                end_exchange(conn).await;
            }
            Ok(())
        }
    };
    SessionLook {
        facts: Ok(facts),
        took,
        table: Some(table),
    }
}

/// Rolls back the probe's transaction and ends the exchange a Flush left open; a session that
/// cannot even do that is reported by whatever runs on it next.
async fn end_exchange(conn: &mut sqlx::PgConnection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.aksara_sync(&["ROLLBACK"])).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(activity: &[[Option<&str>; 5]]) -> Vec<PipelineRows> {
        let shown = [
            "15.18 (Debian)",
            "150018",
            "100",
            "3",
            "on",
            "scram-sha-256",
            "5432",
        ];
        let mut answers: Vec<PipelineRows> = shown
            .iter()
            .map(|v| vec![vec![Some((*v).to_string())]])
            .collect();
        answers.push(
            activity
                .iter()
                .map(|row| row.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
        );
        answers
    }

    #[test]
    fn connections_are_backends_with_a_database_and_tls_is_this_sessions_own() {
        let facts = facts_from(&answers(&[
            // the checkpointer and a physical walsender: no database
            [Some("f"), Some("42"), Some("10"), None, None],
            [Some("f"), Some("42"), Some("11"), None, Some("t")],
            [Some("f"), Some("42"), Some("41"), Some("5"), Some("t")],
            [Some("f"), Some("42"), Some("42"), Some("5"), Some("f")],
        ]))
        .unwrap();
        assert_eq!(facts.connections, 2);
        assert!(!facts.backend_tls);
        assert_eq!(facts.backend_pid, 42);
        assert_eq!(
            (facts.version_num, facts.max_connections, facts.port),
            (150018, 100, Some(5432))
        );
        assert_eq!(facts.short_version(), "15.18");
    }

    #[test]
    fn an_answer_that_is_not_postgresqls_is_said_in_words() {
        let mut odd = answers(&[[Some("f"), Some("42"), Some("42"), Some("5"), Some("t")]]);
        odd[2] = vec![vec![Some("lots".into())]];
        let words = facts_from(&odd).unwrap_err();
        assert!(
            words.contains("SHOW max_connections gave \"lots\""),
            "{words}"
        );
        let none = facts_from(&answers(&[])).unwrap_err();
        assert!(none.contains("no row"), "{none}");
        let narrow = facts_from(&answers(&[[Some("f"), Some("42"), None, None, None]]));
        assert!(narrow.is_ok());
        let mut short = answers(&[[Some("f"), Some("42"), Some("42"), Some("5"), Some("t")]]);
        short[7][0].pop();
        assert!(facts_from(&short).unwrap_err().contains("4 columns"));
    }

    #[test]
    fn a_cancelled_settings_query_is_not_an_ended_session() {
        let error = |sqlstate: &str, message: &str| {
            FailureKind::Server(crate::connect::ServerError {
                sqlstate: sqlstate.into(),
                message: message.into(),
                detail: None,
                hint: None,
                routine: None,
            })
        };
        let cancelled = facts_error(error(
            "57014",
            "canceling statement due to statement timeout",
        ));
        assert_eq!(cancelled.code, Code::ServerError);
        assert!(
            cancelled.hint.contains("statement_timeout"),
            "{}",
            cancelled.hint
        );
        let ended = facts_error(error(
            "57P01",
            "terminating connection due to administrator command",
        ));
        assert_eq!(ended.code, Code::ConnectionLost);
    }
}
