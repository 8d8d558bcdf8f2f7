//! What a logged-in session can tell about the server and the role, for both commands: the
//! server facts doctor reports and dbsetup summarises, and the create-table probe (in a
//! rolled-back transaction) that proves the role can build its schema; [`look`] asks both in
//! one simple-query round trip.

use std::time::Duration;

use serde::Serialize;

use crate::code::Code;
use crate::connect::{self, FailureKind};

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
    /// Whether this connection uses TLS.
    pub connection_tls: bool,
    /// `pg_backend_pid()`: a pooler announces a pid of its own at login (src/pooler.rs).
    #[serde(skip)]
    pub backend_pid: i32,
    /// The `port` the server listens on: a proxy on another port (pgpool-II) shows here, not at
    /// login (src/pooler.rs). `None` when the answer has no such column (not PostgreSQL's).
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

/// Every server fact the report shows, in one row. The connection count and this session's
/// TLS come from one scan of `pg_stat_get_activity(NULL)`, the function behind
/// `pg_stat_activity`: `count(datid)` is what summing `pg_stat_database.numbackends` gives
/// (every backend connected to a database; `datid` is visible to any role, `backend_type` is
/// not), and a fresh backend then has no views to load and rewrite (bench/NOTES.md).
const FACTS_SQL: &str = "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
        current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, \
        a.connections, current_setting('ssl'), current_setting('password_encryption'), pg_is_in_recovery(), \
        a.tls, pg_backend_pid(), current_setting('port')::int \
        FROM (SELECT count(datid) AS connections, bool_or(ssl) FILTER (WHERE pid = pg_backend_pid()) AS tls \
              FROM pg_stat_get_activity(NULL)) a";

/// The create-table probe: a table with no columns (the privilege is the schema's, and fewer
/// catalog rows make it cheaper), created in a transaction that is rolled back, which also
/// removes the table: nothing is left behind and nothing else needs to run.
fn table_probe_sql(limit: Duration) -> String {
    let ms = limit.as_millis().max(1);
    format!(
        "BEGIN; SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms}; \
         CREATE TABLE aksara_privilege_probe (); ROLLBACK"
    )
}

/// Why the facts could not be read: a code of its own for each, never a guess.
#[derive(Debug, Clone)]
pub struct FactsError {
    pub code: Code,
    pub message: String,
    pub hint: String,
}

/// The session is fine; its answer is not the row PostgreSQL sends for this query.
fn undecodable_facts(e: sqlx::Error) -> FactsError {
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

fn facts_from_row(row: &sqlx::postgres::PgRow) -> Result<ServerFacts, sqlx::Error> {
    use sqlx::Row as _;
    Ok(ServerFacts {
        version: row.try_get(0)?,
        version_num: row.try_get(1)?,
        max_connections: row.try_get(2)?,
        superuser_reserved_connections: row.try_get(3)?,
        connections: row.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
        ssl: row.try_get(5)?,
        password_encryption: row.try_get(6)?,
        in_recovery: row.try_get(7)?,
        connection_tls: row.try_get::<Option<bool>, _>(8)?.unwrap_or(false),
        backend_pid: row.try_get(9)?,
        port: row.try_get::<Option<i32>, _>(10).ok().flatten(),
    })
}

/// Why the create-table probe of [`look`] could not prove the privilege.
#[derive(Debug)]
pub enum TableCheck {
    /// The server refused for lack of privilege (42501): the role may not create tables there.
    Denied(String),
    /// The session is read-only (25006): a standby, or `default_transaction_read_only`.
    ReadOnly(String),
    /// No verdict: the statement waited too long for a lock, or the connection was lost.
    Unknown(String),
}

fn table_probe_silent(bound: Duration) -> TableCheck {
    TableCheck::Unknown(format!(
        "the server did not answer within {} s",
        bound.as_secs()
    ))
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
            TableCheck::Unknown(format!(
                "CREATE TABLE waited over {} s for a lock another session holds ({})",
                limit.as_secs().max(1),
                e.message
            ))
        }
        // Shutdown, termination, lost connection: says nothing about privileges.
        FailureKind::Server(e) if e.sqlstate.starts_with("57") || e.sqlstate.starts_with("08") => {
            TableCheck::Unknown(format!("{} (SQLSTATE {})", e.message, e.sqlstate))
        }
        FailureKind::Server(e) if e.sqlstate == "42501" => TableCheck::Denied(e.message),
        FailureKind::Server(e) if e.sqlstate == "25006" => TableCheck::ReadOnly(e.message),
        FailureKind::Server(e) => TableCheck::Unknown(crate::diagnose::server_words(&e).0),
        other => TableCheck::Unknown(other.to_string()),
    }
}

/// What one look at a logged-in session found: the facts, and (when they could be read) the
/// create-table probe.
#[derive(Debug)]
pub struct SessionLook {
    pub facts: Result<ServerFacts, FactsError>,
    /// The whole message's time, as the client saw it. The server sends the answers of one
    /// simple-query message together when it ends (its output buffer is flushed then), so the
    /// two parts cannot be timed apart from here.
    pub took: Duration,
    /// `None` when the facts failed: the session is in no state to say more.
    pub table: Option<Result<(), TableCheck>>,
}

/// The facts query and the create-table probe in one simple-query message: one round trip on
/// the healthy path. The server answers in order, so the facts row comes first and an error
/// after it is the probe's (the server skips the rest of the message and the probe's
/// transaction is rolled back). Both arrive when the message ends, so one deadline covers
/// both: the facts' bound and the probe's (a lock wait ends at `lock_timeout` = `limit`).
pub async fn look(conn: &mut sqlx::PgConnection, limit: Duration) -> SessionLook {
    use futures_util::StreamExt as _;
    use sqlx::Either;
    let sql = format!("{FACTS_SQL}; {}", table_probe_sql(limit));
    let started = tokio::time::Instant::now();
    let probe_bound = limit + Duration::from_secs(2);
    let bound = limit + probe_bound;
    let mut facts: Option<Result<ServerFacts, FactsError>> = None;
    let mut failed: Option<sqlx::Error> = None;
    let mut silent = false;
    {
        let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *conn);
        loop {
            let item = match tokio::time::timeout_at(started + bound, stream.next()).await {
                Err(_) => {
                    silent = true;
                    break;
                }
                Ok(None) => break,
                Ok(Some(item)) => item,
            };
            match item {
                Ok(Either::Right(row)) if facts.is_none() => {
                    let read = facts_from_row(&row).map_err(undecodable_facts);
                    let undecodable = read.is_err();
                    facts = Some(read);
                    if undecodable {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    let took = started.elapsed();
    let Some(facts) = facts else {
        let facts = match failed {
            Some(e) => Err(facts_error(connect::classify(e))),
            None if silent => Err(facts_silent(bound)),
            None => Err(undecodable_facts(sqlx::Error::RowNotFound)),
        };
        return SessionLook {
            facts,
            took,
            table: None,
        };
    };
    if facts.is_err() {
        return SessionLook {
            facts,
            took,
            table: None,
        };
    }
    let table = match failed {
        None if silent => Err(table_probe_silent(bound)),
        None => Ok(()),
        Some(e) => Err(table_probe_failed(conn, e, limit).await),
    };
    SessionLook {
        facts,
        took,
        table: Some(table),
    }
}
