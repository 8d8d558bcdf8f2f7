//! The statements of a setup and what surrounds them: the admin session's bounds and its
//! record (so an interrupted run can find it), the setup lock, what exists already, the plan
//! run step by step into `progress`, the verification as the application user, and the
//! `.env` write with its `.gitignore` advice.

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use super::Setup;
use super::discover::{Admin, connect_error};
use super::progress::{
    ADVISORY_LOCK_KEY, AdminSession, Limits, Outcome as StepOutcome, Progress, Sent, bounded,
    no_answer, run_in_database,
};
use crate::code::Code;
use crate::connect::{self, FailureKind};
use crate::dsn::ConnString;
use crate::envfile::{self, Change, EnvFileError, GitIgnoreStatus, OnConflict};
use crate::error::{CliError, CliResult};
use crate::gitignore;
use crate::provision::{AdminRights, Existing, Step};
use crate::sysenv::ProcessEnvironment;
use crate::ui::{Mark, Printer};

/// The value of the last assignment of `key`: the one python-dotenv (the framework's loader),
/// node's dotenv, docker compose and a shell's `set -a; . .env` give the app (dotenvy alone
/// keeps the first; a key assigned twice with different values is a conflict for the write,
/// see [`differing_lines`]).
pub fn existing_value(path: &Path, key: &str) -> CliResult<Option<String>> {
    match envfile::read_entries(path) {
        Ok(entries) => Ok(entries.into_iter().rfind(|e| e.key == key).map(|e| e.value)),
        Err(_) if !path.exists() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The lines that assign `key` a value other than `new`: what writing `new` would replace.
pub fn differing_lines(path: &Path, key: &str, new: &str) -> CliResult<Vec<usize>> {
    match envfile::read_entries(path) {
        Ok(entries) => Ok(entries
            .into_iter()
            .filter(|e| e.key == key && e.value != new)
            .map(|e| e.line)
            .collect()),
        Err(_) if !path.exists() => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// What the app gets from the `.env`'s value `raw` of `key` (its last assignment): as
/// python-dotenv, the framework's loader, gives it (`${NAME}` references expanded) when that is
/// the line python-dotenv takes too, else as written. Only for reading (the login test of a
/// kept URL, the server to try first, the shell's shadow); what is written and compared is `raw`.
pub fn app_value(path: &Path, key: &str, raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    let expanded = envfile::read_file(path).ok().and_then(|bytes| {
        let last = envfile::parse_entries(&bytes)
            .into_iter()
            .rfind(|e| e.key == key)?;
        envfile::python_dotenv_value(&bytes, key)
            .filter(|(_, line)| *line == last.line && last.value == raw)
    });
    Some(expanded.map_or_else(|| raw.to_owned(), |(value, _)| value.expose().to_owned()))
}

/// [`app_value`] as a connection string.
pub fn env_meaning(path: &Path, key: &str, raw: Option<&str>) -> Option<ConnString> {
    ConnString::parse(&app_value(path, key, raw)?).ok()
}

/// Bound every statement of the admin session on the server's side too, and record the
/// session so that it can be found (and ended) if this run is interrupted.
pub async fn start_admin_session(
    admin: &mut Admin,
    limits: Limits,
    progress: &RefCell<Progress>,
) -> CliResult<()> {
    let mut settings = limits.session_settings();
    if admin.cfg.application_name.is_none() {
        settings.push_str("; SET application_name = 'aksara dbsetup'");
    }
    bounded(
        limits,
        sqlx::raw_sql(sqlx::AssertSqlSafe(settings)).execute(&mut admin.conn),
    )
    .await?;
    let (pid, started): (i32, String) = bounded(
        limits,
        sqlx::query_as(
            "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .fetch_one(&mut admin.conn),
    )
    .await?;
    let mut cfg = admin.cfg.clone();
    cfg.endpoints = vec![admin.endpoint.clone()];
    progress.borrow_mut().admin = Some(AdminSession { cfg, pid, started });
    Ok(())
}

pub async fn admin_rights(conn: &mut PgConnection, limits: Limits) -> CliResult<AdminRights> {
    let row: (bool, bool, bool) = bounded(
        limits,
        sqlx::query_as(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn),
    )
    .await
    .map_err(|e| {
        CliError::failure(format!(
            "cannot read the admin role's privileges: {}",
            e.message
        ))
    })?;
    Ok(AdminRights {
        superuser: row.0,
        createdb: row.1,
        createrole: row.2,
    })
}

/// Take the setup lock, waiting (bounded by `--timeout`, as lock_timeout) for another run.
pub async fn advisory_lock(
    conn: &mut PgConnection,
    limits: Limits,
    printer: &Printer,
) -> CliResult<()> {
    let free: bool = bounded(
        limits,
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .fetch_one(&mut *conn),
    )
    .await?;
    if free {
        return Ok(());
    }
    printer.status(&format!(
        "Waiting for another `aksara dbsetup` on this server to finish (up to {} s)",
        limits.statement.as_secs()
    ));
    let waited = tokio::time::timeout(
        limits.client(),
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .execute(&mut *conn),
    )
    .await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Err(_) => Err(no_answer(limits)),
        Ok(Err(e)) => match connect::classify(e) {
            // lock_timeout, or statement_timeout when it fires first.
            FailureKind::Server(e) if e.sqlstate == "55P03" || e.sqlstate == "57014" => {
                Err(CliError::failure(format!(
                    "another `aksara dbsetup` has held the setup lock on this server for over {} s",
                    limits.statement.as_secs()
                ))
                .with_hint(
                    "wait for it to finish (find it in pg_stat_activity: application_name `aksara dbsetup`), or pass --timeout SECONDS to wait longer",
                ))
            }
            FailureKind::Server(e) => Err(CliError::failure(format!(
                "{} (SQLSTATE {})",
                e.message, e.sqlstate
            ))),
            other => Err(CliError::failure(format!(
                "the connection to the server was lost ({other})"
            ))),
        },
    }
}

pub async fn existing_objects(
    conn: &mut PgConnection,
    db: &str,
    role: &str,
    limits: Limits,
) -> CliResult<Existing> {
    let row: (Option<String>, bool, bool) = bounded(
        limits,
        sqlx::query_as(
            "SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1), \
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2), \
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) AND pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = $2), 'MEMBER')",
        )
        .bind(db)
        .bind(role)
        .fetch_one(&mut *conn),
    )
    .await?;
    Ok(Existing {
        database_owner: row.0,
        role_exists: row.1,
        admin_is_member: row.2,
    })
}

#[derive(Debug, Default)]
pub struct Created {
    pub role: bool,
    pub database: bool,
}

/// Run the plan, recording each statement in `progress` before it is sent and when it is
/// done. duplicate_object / duplicate_database from a racing run count as "exists".
pub async fn execute(
    admin: &mut Admin,
    steps: &[Step],
    printer: &Printer,
    limits: Limits,
    progress: &RefCell<Progress>,
) -> CliResult<Created> {
    let mut created = Created::default();
    let _spinner = printer.spinner("Creating the user and database");
    for step in steps {
        printer.detail(&format!("  {}", step.sql(true)));
        progress.borrow_mut().sent.push(Sent {
            step: step.clone(),
            outcome: StepOutcome::Sent,
        });
        let result = match step.run_in() {
            None => bounded(
                limits,
                sqlx::raw_sql(sqlx::AssertSqlSafe(step.sql(false))).execute(&mut admin.conn),
            )
            .await
            .map(|_| ()),
            Some(db) => {
                let mut cfg = admin.cfg.clone();
                cfg.endpoints = vec![admin.endpoint.clone()];
                run_in_database(&cfg, db, &step.sql(false), limits).await
            }
        };
        let outcome = match result {
            Ok(()) => StepOutcome::Done,
            Err(e) => {
                // 42710 duplicate_object, 42P04 duplicate_database: a parallel run won.
                let raced = matches!(step, Step::CreateRole { .. })
                    && e.sqlstate() == Some("42710")
                    || matches!(step, Step::CreateDatabase { .. }) && e.sqlstate() == Some("42P04");
                if !raced {
                    let mut failed =
                        CliError::failure(format!("`{}` failed: {}", step.sql(true), e.message))
                            .with_optional_hint(e.hint);
                    // The cause's code (a silent server's connection-timeout, say) stays, and
                    // so do the server's own DETAIL and its error.
                    failed.code = e.code;
                    if let Some(detail) = e.server.as_ref().and_then(|s| s.detail.clone()) {
                        failed.causes.push(format!("the server adds: {detail}"));
                    }
                    failed.server = e.server;
                    return Err(failed);
                }
                StepOutcome::AlreadyThere
            }
        };
        if let Some(last) = progress.borrow_mut().sent.last_mut() {
            last.outcome = outcome;
        }
        if outcome == StepOutcome::AlreadyThere {
            printer.step(
                Mark::Pass,
                "Already created by a concurrent run; reusing it",
            );
            continue;
        }
        match step {
            Step::CreateRole { role, .. } => {
                created.role = true;
                printer.step(Mark::Pass, &format!("Created user \"{role}\""));
            }
            Step::CreateDatabase { db, owner } => {
                created.database = true;
                printer.step(
                    Mark::Pass,
                    &format!("Created database \"{db}\" owned by \"{owner}\""),
                );
            }
            Step::SetPassword { role, .. } => printer.step(
                Mark::Pass,
                &format!("Set a new password for user \"{role}\""),
            ),
            Step::GrantSchema { db, role } => printer.step(
                Mark::Pass,
                &format!("Granted \"{role}\" CREATE on schema public in \"{db}\""),
            ),
            Step::GrantConnect { .. } | Step::GrantMembership { .. } => {}
        }
    }
    Ok(created)
}

/// Before anything is created, when the URL to write goes over a socket: one login with it as
/// the application user. pg_hba.conf picks its line by the names, not by whether the role exists
/// yet, and PostgreSQL runs peer and ident before it looks the role up, so a `peer` or `ident`
/// line for another OS user, a `reject` line or no line at all refuses now as it would after
/// the CREATE statements (which the verification then had to undo). Any other answer (a
/// password checked against a role not there yet, a database not there yet, a login that
/// works) leaves the decision to the verification. The cost, on a server whose socket asks a
/// password: one line in its log for a role not created yet ("password authentication failed
/// ... Role does not exist"), the password itself never in it (SCRAM sends a proof).
pub async fn refuse_a_closed_socket(
    cs: &ConnString,
    env: &ProcessEnvironment,
    limits: Limits,
    allow_cleartext: bool,
) -> CliResult<()> {
    let mut cfg = cs.resolve(env)?;
    if !cfg
        .endpoints
        .iter()
        .all(|ep| matches!(ep.host, crate::dsn::Host::Socket(_)))
    {
        return Ok(());
    }
    cfg.allow_cleartext = allow_cleartext;
    match connect::connect(&cfg, limits.connect).await {
        Ok(c) => {
            connect::close(c.conn).await;
            Ok(())
        }
        Err(f) if socket_closes_to(&f.last().failure) => Err(connect_error(
            &cfg,
            &f,
            "the application user could not log in over the socket the URL would use",
        )
        .await
        .before_any_change()),
        Err(_) => Ok(()),
    }
}

/// pg_hba.conf's refusals that creating the role and database cannot change.
fn socket_closes_to(failure: &FailureKind) -> bool {
    use crate::diagnose::server_messages::{Cause, classify};
    let FailureKind::Server(e) = failure else {
        return false;
    };
    matches!(
        classify(&e.sqlstate, &e.message),
        Some(
            Cause::MethodFailed {
                method: "peer" | "ident"
            } | Cause::HbaNoEntry { .. }
                | Cause::HbaRejects { .. }
        )
    )
}

/// Connect with the final URL as the application user, read the server facts and prove it can
/// create a table (rolled back), in one round trip. Returns the server version and whether TLS is in use.
pub async fn verify(
    cs: &ConnString,
    env: &ProcessEnvironment,
    limits: Limits,
    allow_cleartext: bool,
    // This run created the database, so a failure's undo drops it (and the user).
    created_database: bool,
) -> CliResult<(String, bool)> {
    let fix_in = if created_database {
        crate::creation::FixIn::NewDatabases
    } else {
        crate::creation::FixIn::TheDatabase
    };
    let mut cfg = cs.resolve(env)?;
    cfg.allow_cleartext = allow_cleartext;
    let failed = "verification as the application user failed";
    let mut c = match connect::connect(&cfg, limits.connect).await {
        Ok(c) => c,
        Err(f) => return Err(connect_error(&cfg, &f, failed).await),
    };
    // The facts and the create-table probe in one round trip (session::look).
    let look = crate::session::look(
        &mut c.conn,
        limits.statement,
        crate::session::ProbeEnd::Rollback,
    )
    .await;
    // This connection's own TLS, as libpq's `prefer` on the written URL would get it.
    let client_tls = c.conn.is_tls();
    connect::close(c.conn).await;
    let facts = match look.facts {
        Ok(facts) => facts,
        Err(e) => {
            return Err(CliError::failure(format!("{failed}: {}", e.message))
                .with_code(e.code)
                .with_hint(e.hint));
        }
    };
    let table = match look.table {
        Some(table) => table,
        None => Err(crate::session::TableCheck::Interrupted(
            "the session could not be asked".into(),
        )),
    };
    match table {
        Ok(()) => Ok((facts.version, client_tls)),
        Err(crate::session::TableCheck::Denied { message, target }) => {
            Err(CliError::failure(format!(
                "verification: user \"{}\" cannot create tables in \"{}\": {message}",
                cfg.user, cfg.dbname
            ))
            .with_code(Code::CannotCreateTables)
            .with_hint(crate::creation::denied_hint(
                target.as_ref(),
                &cfg.user,
                &cfg.dbname,
                fix_in,
            )))
        }
        Err(crate::session::TableCheck::ReadOnly(message)) => Err(CliError::failure(format!(
            "verification: the session of user \"{}\" in \"{}\" is read-only: {message}",
            cfg.user, cfg.dbname
        ))
        .with_code(Code::CannotCreateTables)
        .with_hint("the server is a standby, or default_transaction_read_only is on for this database or role: set up against the primary")),
        Err(crate::session::TableCheck::NoSchema {
            message,
            search_path,
        }) => Err(CliError::failure(format!(
            "verification: user \"{}\" has no schema to create tables in, in \"{}\": {message}",
            cfg.user, cfg.dbname
        ))
        .with_code(Code::NoCreationSchema)
        .with_hint(crate::creation::no_schema_hint(
            search_path.as_ref(),
            &cfg.user,
            &cfg.dbname,
            fix_in,
        ))),
        Err(crate::session::TableCheck::Refused { words, hint }) => {
            Err(CliError::failure(format!("{failed}: {words}")).with_hint(hint))
        }
        Err(
            crate::session::TableCheck::LockWait(message)
            | crate::session::TableCheck::Interrupted(message),
        ) => Err(CliError::failure(format!("{failed}: {message}"))),
    }
}

/// Write the keys (`--env-key` and each `--driver-url` key) in one atomic write, waiting for
/// another process editing the same folder without blocking the runtime, so that Ctrl-C still
/// works while it waits. All of them are written, or none.
pub async fn write_env(
    path: &Path,
    pairs: &[(&str, &str)],
    on_conflict: OnConflict,
    outside: envfile::Outside,
    printer: &Printer,
) -> Result<Vec<Change>, EnvFileError> {
    let deadline = Instant::now() + envfile::DEFAULT_LOCK_WAIT;
    let mut told = false;
    let options = envfile::WriteOptions {
        on_conflict,
        lock_wait: Duration::ZERO,
        outside,
    };
    loop {
        match envfile::write_keys_opts(path, pairs, &options) {
            Err(EnvFileError::LockTimeout { path, .. }) if Instant::now() < deadline => {
                if !told {
                    printer.status(&format!(
                        "Waiting for another process editing {} (up to {} s)",
                        path.display(),
                        envfile::DEFAULT_LOCK_WAIT.as_secs()
                    ));
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(EnvFileError::LockTimeout { path, .. }) => {
                return Err(EnvFileError::LockTimeout {
                    path,
                    waited: envfile::DEFAULT_LOCK_WAIT,
                });
            }
            other => return other,
        }
    }
}

impl Setup<'_> {
    /// A `.env` that git would commit: ask to add it to `.gitignore` (interactive), or say how.
    pub async fn gitignore_advice(&self) -> CliResult<()> {
        let (path, printer, prompter) = (self.s.env_file.as_path(), self.printer, self.prompter);
        let status = envfile::git_ignore_status(path);
        if let GitIgnoreStatus::Tracked { repo_root } = &status {
            printer.warn(&format!(
            "{} holds the password and is committed to git: `git rm --cached {}`, add it to {}, and change the password (it is in the history)",
            path.display(),
            path.display(),
            repo_root.join(".gitignore").display()
        ));
        }
        if let GitIgnoreStatus::NotIgnored { repo_root } = status {
            let pattern = gitignore::relative_pattern(path, &repo_root);
            match prompter {
            Some(p) => {
                if p.confirm(&format!("{} holds the password and git does not ignore it; add `{pattern}` to .gitignore?", path.display()), true).await? {
                    envfile::add_to_gitignore(&repo_root, &pattern)?;
                    printer.step(Mark::Pass, &format!("Added `{pattern}` to {}", repo_root.join(".gitignore").display()));
                }
            }
            None => printer.warn(&format!(
                "{} holds the password and git does not ignore it; add it: `echo '{pattern}' >> {}`",
                path.display(),
                repo_root.join(".gitignore").display()
            )),
        }
        }
        Ok(())
    }
}
