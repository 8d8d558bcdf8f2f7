//! What a dbsetup run has changed so far, kept outside the setup itself, so that whatever ends
//! the run (a failed statement, a lost connection, a server that stops answering, Ctrl-C) can
//! undo this run's own objects and say exactly what exists afterwards.
//!
//! The rule: until `.env` is written, a run that does not finish leaves the server as it was.
//! Only what this run created is dropped, never anything that existed before it; a password
//! set on an existing user cannot be taken back, so the report says so. When the session that
//! holds the setup lock is gone, a new one ends the old backend first (a statement waiting
//! for a lock would otherwise finish after the report was written) and takes the lock, so no
//! other run is using the objects it drops.

use crate::code::Code;
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use crate::connect::{self, FailureKind};
use crate::dsn::ConnConfig;
use crate::error::CliError;
use crate::provision::{self, Existing, Step};

/// Holding this on the server serialises concurrent dbsetup runs from the check of what
/// exists to the .env write, so racing runs see each other's finished work.
pub const ADVISORY_LOCK_KEY: i64 = 0x616b_7361_7261; // "aksara"

/// How long a new session waits for the old backend to go after terminating it.
const BACKEND_EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long an interrupted run that changed nothing spends ending its old backend.
const NOTHING_AT_STAKE: Duration = Duration::from_secs(2);

/// Bounds on waiting for the server: no request goes out without one.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One connection attempt (`--connect-timeout`).
    pub connect: Duration,
    /// One statement or lock wait (`--timeout`), enforced by the server itself through
    /// `statement_timeout` and `lock_timeout`, so that nothing keeps running server-side
    /// after the client gave up.
    pub statement: Duration,
}

impl Limits {
    /// The client's own bound, for a server that stops answering altogether: a little longer
    /// than the server's, so that a live server's clearer error arrives first.
    pub fn client(&self) -> Duration {
        self.statement + self.margin()
    }

    /// What the client waits beyond the server's own bound: 2 s, less for a very short
    /// `--connect-timeout` (the margin comes out of the cleanup's share, see below).
    pub fn margin(&self) -> Duration {
        Duration::from_secs(2).min(self.connect / 2)
    }

    /// After a request got no answer within [`Limits::client`] (a stopped or wedged backend):
    /// the time left to undo and close, so that a server which stops answering ends the run
    /// within `--timeout` + `--connect-timeout` in all, whatever the cleanup meets (a stopped
    /// backend ignores `pg_terminate_backend` and keeps the setup lock).
    pub fn cleanup_after_silence(&self) -> Duration {
        self.connect.saturating_sub(self.margin())
    }

    /// The session settings that make the server enforce [`Limits::statement`].
    pub fn session_settings(&self) -> String {
        let ms = self.statement.as_millis().max(1);
        format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}")
    }
}

/// A request to the server within [`Limits::client`].
pub async fn bounded<T>(
    limits: Limits,
    request: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(limits.client(), request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(db_error(e)),
        Err(_) => Err(no_answer(limits)),
    }
}

pub fn no_answer(limits: Limits) -> CliError {
    CliError::failure(format!(
        "the server did not answer within {} s (--timeout {} s, and {} s more for the server's own timeout error to arrive)",
        limits.client().as_secs_f64(),
        limits.statement.as_secs_f64(),
        limits.margin().as_secs_f64()
    ))
    .with_code(Code::ConnectionTimeout)
    .with_hint("check that the server is not overloaded or stopped (`aksara doctor`), then run `aksara dbsetup` again; pass --timeout SECONDS to wait longer")
}

/// A statement's failure: the server's message and SQLSTATE, or the lost connection.
pub fn db_error(e: sqlx::Error) -> CliError {
    match connect::classify(e) {
        FailureKind::Server(e) => {
            CliError::failure(format!("{} (SQLSTATE {})", e.message, e.sqlstate))
                .with_server_error(e)
        }
        other => CliError::failure(format!("the connection to the server was lost ({other})")),
    }
}

/// The admin session, pinned to the address that answered, and its backend.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub cfg: ConnConfig,
    pub pid: i32,
    /// `backend_start`, so that a pid the server has since reused is never terminated.
    pub started: String,
}

/// How far one statement got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent; no answer yet (or the answer was lost).
    Sent,
    Done,
    /// A concurrent run had already created it: not this run's.
    AlreadyThere,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub step: Step,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub env_file: String,
    pub admin: Option<AdminSession>,
    /// What existed when checked under the setup lock.
    pub before: Option<Existing>,
    pub sent: Vec<Sent>,
    pub env_written: bool,
    /// A change the person agreed to at its own prompt, which no failure undoes (the rights
    /// granted to their peer-login role): said whatever ends the run.
    pub granted: Option<String>,
}

impl Progress {
    pub fn new(env_file: String) -> Progress {
        Progress {
            env_file,
            ..Progress::default()
        }
    }

    /// Whether a statement that may have changed the server went out.
    pub fn changed(&self) -> bool {
        self.sent.iter().any(|s| s.outcome != Outcome::AlreadyThere)
    }

    fn env_note(&self) -> String {
        format!("{} was not written", self.env_file)
    }

    /// What may exist when the server could not be reached to undo it.
    pub fn left_behind(&self, why: &str) -> String {
        if self.env_written {
            return format!("the setup had finished: {} was written", self.env_file);
        }
        let mut parts = Vec::new();
        for s in &self.sent {
            let done = s.outcome == Outcome::Done;
            let part = match (&s.step, s.outcome) {
                (_, Outcome::AlreadyThere) => continue,
                (Step::CreateRole { role, .. }, _) if done => {
                    format!(
                        "user \"{role}\" was created by this run and still exists ({NO_URL_HOLDS_ITS_PASSWORD})"
                    )
                }
                (Step::CreateRole { role, .. }, _) => {
                    format!("user \"{role}\" may have been created by this run")
                }
                (Step::CreateDatabase { db, .. }, _) if done => {
                    format!("database \"{db}\" was created by this run and still exists")
                }
                (Step::CreateDatabase { db, .. }, _) => {
                    format!("database \"{db}\" may have been created by this run")
                }
                (Step::SetPassword { role, .. }, _) if done => {
                    format!("the password of the existing user \"{role}\" was changed")
                }
                (Step::SetPassword { role, .. }, _) => {
                    format!("the password of the existing user \"{role}\" may have been changed")
                }
                (step, _) if done => format!("kept: {}", step.sql(true)),
                (step, _) => format!("may have run: {}", step.sql(true)),
            };
            parts.push(part);
        }
        if parts.is_empty() {
            return format!("nothing was changed; {}", self.env_note());
        }
        format!(
            "{} (could not undo: {why}); {}",
            parts.join("; "),
            self.env_note()
        )
    }
}

/// Said of a user this run created and could not drop: a rerun without a prompt keeps an
/// existing user's password, and this one's is nowhere.
const NO_URL_HOLDS_ITS_PASSWORD: &str =
    "no URL holds its password: a rerun without a prompt needs `--force password`";

/// Undo what this run changed, unless `.env` was written (then the setup is complete), and
/// say what exists now. `conn` is the session that holds the setup lock, when there is one.
pub async fn recover(p: &Progress, conn: Option<&mut PgConnection>, limits: Limits) -> String {
    if p.env_written {
        return p.left_behind("");
    }
    let Some(admin) = &p.admin else {
        return format!("nothing was changed; {}", p.env_note());
    };
    if !p.changed() {
        if conn.is_none() {
            // A statement of ours may still wait on the server (for the setup lock): end it,
            // briefly, since nothing else is at stake.
            let ended = tokio::time::timeout(NOTHING_AT_STAKE, reconnect(admin, limits, false));
            if let Ok(Ok(c)) = ended.await {
                connect::close(c).await;
            }
        }
        return format!("nothing was changed; {}", p.env_note());
    }
    let mut conn = conn;
    if let Some(c) = conn.as_deref_mut() {
        // After Ctrl-C the session may still wait for a statement's answer (a CREATE DATABASE
        // held by a lock, say): a short look tells an idle session, which still holds the setup
        // lock and can undo at once, from a busy one, which a new session ends first.
        let alive = tokio::time::timeout(
            limits.client().min(Duration::from_secs(1)),
            sqlx::raw_sql("SELECT 1").execute(&mut *c),
        )
        .await;
        if !matches!(alive, Ok(Ok(_))) {
            conn = None;
        }
    }
    let mut fresh = None;
    if conn.is_none() {
        match reconnect(admin, limits, true).await {
            Ok(c) => fresh = Some(c),
            Err(why) => return p.left_behind(&why),
        }
    }
    let conn = match (conn, fresh.as_mut()) {
        (Some(c), _) => c,
        (None, Some(c)) => c,
        (None, None) => unreachable!("either the old session or a new one"),
    };
    let report = undo(p, admin, conn, limits).await;
    if let Some(c) = fresh {
        connect::close(c).await;
    }
    report
}

/// A new admin session that ends the old backend and, with `lock`, takes the setup lock.
async fn reconnect(
    admin: &AdminSession,
    limits: Limits,
    lock: bool,
) -> Result<PgConnection, String> {
    let connected = connect::connect(&admin.cfg, limits.connect)
        .await
        .map_err(|f| format!("the server cannot be reached ({})", f.last().failure))?;
    let mut conn = connected.conn;
    let result = end_backend_and_lock(&mut conn, admin, limits, lock).await;
    match result {
        Ok(()) => Ok(conn),
        Err(e) => {
            connect::close(conn).await;
            Err(e)
        }
    }
}

async fn end_backend_and_lock(
    conn: &mut PgConnection,
    admin: &AdminSession,
    limits: Limits,
    lock: bool,
) -> Result<(), String> {
    let why = |e: CliError| e.message;
    bounded(
        limits,
        sqlx::raw_sql(sqlx::AssertSqlSafe(limits.session_settings())).execute(&mut *conn),
    )
    .await
    .map_err(why)?;
    let ours = "FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2";
    bounded(
        limits,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) {ours}"
        )))
        .bind(admin.pid)
        .bind(&admin.started)
        .execute(&mut *conn),
    )
    .await
    .map_err(why)?;
    let deadline = Instant::now() + BACKEND_EXIT_WAIT;
    loop {
        let alive: bool = bounded(
            limits,
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 {ours})"
            )))
            .bind(admin.pid)
            .bind(&admin.started)
            .fetch_one(&mut *conn),
        )
        .await
        .map_err(why)?;
        if !alive {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the earlier session (pid {}) did not end within {} s",
                admin.pid,
                BACKEND_EXIT_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if lock {
        let got: bool = bounded(
            limits,
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .fetch_one(&mut *conn),
        )
        .await
        .map_err(why)?;
        if !got {
            return Err(
                "another `aksara dbsetup` took the setup lock meanwhile and may be using them"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Drop what this run created (in reverse order), and list what stays changed.
async fn undo(
    p: &Progress,
    admin: &AdminSession,
    conn: &mut PgConnection,
    limits: Limits,
) -> String {
    let before = p.before.clone().unwrap_or_default();
    let mut undone = Vec::new();
    let mut kept = Vec::new();
    // What exists now decides for statements whose answer was lost.
    let role = p.sent.iter().find_map(|s| match &s.step {
        Step::CreateRole { role, .. } | Step::SetPassword { role, .. } => Some(role.clone()),
        _ => None,
    });
    let db = p.sent.iter().find_map(|s| match &s.step {
        Step::CreateDatabase { db, .. } => Some(db.clone()),
        _ => None,
    });
    let now: Result<(bool, bool), CliError> = bounded(
        limits,
        sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
                    EXISTS (SELECT 1 FROM pg_database WHERE datname = $2)",
        )
        .bind(role.clone().unwrap_or_default())
        .bind(db.clone().unwrap_or_default())
        .fetch_one(&mut *conn),
    )
    .await;
    let (role_now, db_now) = match now {
        Ok(v) => v,
        Err(e) => return p.left_behind(&e.message),
    };
    let attempted = |which: fn(&Step) -> bool| {
        p.sent
            .iter()
            .any(|s| s.outcome != Outcome::AlreadyThere && which(&s.step))
    };
    let role_ours =
        role_now && !before.role_exists && attempted(|s| matches!(s, Step::CreateRole { .. }));
    let db_ours = db_now
        && before.database_owner.is_none()
        && attempted(|s| matches!(s, Step::CreateDatabase { .. }));
    let force = conn.server_version_num().is_some_and(|v| v >= 130_000);

    for s in p.sent.iter().rev() {
        if s.outcome == Outcome::AlreadyThere {
            continue;
        }
        let done = s.outcome == Outcome::Done;
        let sql = match &s.step {
            Step::CreateDatabase { db, .. } if db_ours => {
                let force = if force { " WITH (FORCE)" } else { "" };
                format!("DROP DATABASE {}{force}", provision::quote_ident(db))
            }
            Step::CreateRole { role, .. } if role_ours => {
                format!("DROP ROLE {}", provision::quote_ident(role))
            }
            Step::CreateDatabase { .. } | Step::CreateRole { .. } => continue,
            // A role this run created had no privileges before it: take its grants back so
            // that it can be dropped. On an older role a grant may have been there already.
            Step::GrantConnect { db, role } if role_ours => format!(
                "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM {}",
                provision::quote_ident(db),
                provision::quote_ident(role)
            ),
            Step::GrantSchema { db, role } if role_ours => {
                let sql = format!(
                    "REVOKE USAGE, CREATE ON SCHEMA public FROM {}",
                    provision::quote_ident(role)
                );
                match run_in_database(&admin.cfg, db, &sql, limits).await {
                    Ok(()) => undone.push(format!("undone: {sql} (in \"{db}\")")),
                    Err(e) => kept.push(format!("kept: {} ({})", s.step.sql(true), e.message)),
                }
                continue;
            }
            // Dropping the role takes its memberships with it.
            Step::GrantMembership { .. } if role_ours => continue,
            Step::SetPassword { role, .. } => {
                kept.push(if done {
                    format!("the password of the existing user \"{role}\" was changed by this run (the new one is not saved anywhere)")
                } else {
                    format!("the password of the existing user \"{role}\" may have been changed by this run")
                });
                continue;
            }
            step => {
                if done {
                    kept.push(format!("kept: {}", step.sql(true)));
                }
                continue;
            }
        };
        match bounded(
            limits,
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&mut *conn),
        )
        .await
        {
            Ok(_) => undone.push(format!("undone: {}", sql.trim_end_matches(" WITH (FORCE)"))),
            Err(e) if matches!(s.step, Step::CreateRole { .. }) => kept.push(format!(
                "could not undo ({sql}): {} ({NO_URL_HOLDS_ITS_PASSWORD})",
                e.message
            )),
            Err(e) => kept.push(format!("could not undo ({sql}): {}", e.message)),
        }
    }
    let mut parts = undone;
    let as_it_was = kept.is_empty();
    parts.extend(kept);
    if as_it_was {
        parts.push(if parts.is_empty() {
            "nothing was changed".into()
        } else {
            "the server is as it was".into()
        });
    }
    parts.push(p.env_note());
    parts.join("; ")
}

/// Run one statement while connected to another database, as the admin.
pub async fn run_in_database(
    admin: &ConnConfig,
    db: &str,
    sql: &str,
    limits: Limits,
) -> Result<(), CliError> {
    let mut cfg = admin.clone();
    cfg.dbname = db.to_string();
    let connected = connect::connect(&cfg, limits.connect)
        .await
        .map_err(|f| CliError::failure(f.to_string()))?;
    let mut conn = connected.conn;
    let result = bounded(
        limits,
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "{}; {sql}",
            limits.session_settings()
        )))
        .execute(&mut conn),
    )
    .await
    .map(|_| ());
    connect::close(conn).await;
    result
}
