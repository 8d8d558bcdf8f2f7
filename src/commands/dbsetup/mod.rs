//! `aksara dbsetup`: find PostgreSQL, log in as an admin without typing when possible, create
//! (or reuse) the application role and database, verify the result as the application user,
//! and only then write DATABASE_URL to .env. Interactive on a terminal; `--non-interactive`
//! for CI never prompts. Nothing that existed before is ever dropped; what this run created
//! is undone when a later step fails, and the report says what exists.
//!
//! Resolve, then run, by phase: `settings` (flags → `Settings`, pure), `discover` (a server
//! and an admin login), `decide` (names, plan; nothing changes; `password` for the app
//! user's password), `execute` (the
//! statements under the setup lock, verification, the `.env` write), `summary`. `progress`
//! records every change so a failure, Ctrl-C or SIGTERM undoes exactly this run's own.

mod decide;
mod discover;
mod execute;
mod offers;
mod password;
mod peer_login;
mod pooled;
mod progress;
mod replica_url;
mod settings;
mod summary;

use std::cell::RefCell;
use std::io::Read;
use std::time::Duration;

use crate::cli::DbsetupArgs;
use crate::code::Code;
use crate::connect;
use crate::dsn::ConnString;
use crate::envfile::{self, Change};
use crate::error::{CliError, CliResult, Exit};
use crate::prompt::{Prompt, Prompter, ScriptedPrompt};
use crate::sysenv::ProcessEnvironment;
use crate::ui::{Mark, Printer};

use discover::Admin;
use progress::{Progress, recover};
use settings::{Inputs, Settings};
use summary::{ObjectOutcome, Outcome, RoleOutcome};

/// One setup's shared context: what every phase reads. The phases are its methods.
pub(crate) struct Setup<'a> {
    s: &'a Settings,
    printer: &'a Printer,
    /// `None` in CI: no question is ever asked.
    prompter: Option<&'a dyn Prompt>,
    env: &'a ProcessEnvironment,
    progress: &'a RefCell<Progress>,
}

pub async fn run(args: DbsetupArgs, printer: &Printer) -> CliResult<Exit> {
    // Tests walk the interactive branches with a prompt script instead of a terminal.
    let script = std::env::var_os(crate::envvars::AKSARA_PROMPT_SCRIPT)
        .map(|path| {
            std::fs::read_to_string(&path).map_err(|e| {
                CliError::usage(format!(
                    "cannot read the prompt script {}: {e}",
                    path.to_string_lossy()
                ))
            })
        })
        .transpose()?;
    let inputs = Inputs {
        stdin_is_terminal: script.is_some() || Prompter::stdin_is_terminal(),
        password_env: std::env::var(crate::envvars::AKSARA_DB_PASSWORD).ok(),
        read_stdin: Box::new(|| {
            let mut buf = String::new();
            std::io::stdin().read_to_string(&mut buf).map(|_| buf)
        }),
        default_env_file: crate::envfile::default_path(),
    };
    let settings = Settings::resolve(&args, inputs)?;
    // Everything about .env that can be checked without the server, before it changes.
    // Every problem of .env (not a regular file, too large, a symlink out of its folder, an
    // unclosed quote, not writable) is found here, before the server is touched.
    let env_value = envfile::preflight(&settings.env_file, &settings.env_key, settings.outside())
        .map_err(|e| {
            CliError::failure(e.to_string())
                .before_any_change()
                .with_optional_hint(e.hint())
        })?
        .assignments
        .pop()
        .map(|e| e.value);
    let (terminal, scripted);
    let prompter: Option<&dyn Prompt> = match (settings.interactive, script) {
        (false, _) => None,
        (true, Some(script)) => {
            scripted = ScriptedPrompt::parse(&script, printer.clone()).map_err(CliError::usage)?;
            Some(&scripted)
        }
        (true, None) => {
            terminal = Prompter::new();
            Some(&terminal)
        }
    };
    let env = ProcessEnvironment::load();
    if let Some(w) = env.pgpass_warning() {
        printer.warn(w);
    }
    let progress = RefCell::new(Progress::new(settings.env_file.display().to_string()));
    let setup = Setup {
        s: &settings,
        printer,
        prompter,
        env: &env,
        progress: &progress,
    };
    // The admin session lives out here, not inside the work: when Ctrl-C drops the work, the
    // session (and the setup lock it holds) survives, so the undo runs under the same lock
    // and no other run can start using this run's objects in between.
    let mut admin_slot: Option<Admin> = None;
    let work = setup.run(env_value, &mut admin_slot);
    // SIGTERM is how CI cancels a job: it gets the same cleanup as Ctrl-C.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::failure(format!("cannot watch for SIGTERM: {e}")))?;
    let signal = tokio::select! {
        result = work => return result,
        _ = tokio::signal::ctrl_c() => Exit::Interrupted,
        _ = terminate.recv() => Exit::Terminated,
    };
    let err = match prompter {
        Some(p) => p.interrupted(),
        None => CliError::interrupted(),
    };
    Err(undo_interrupted(
        err,
        signal,
        progress.into_inner(),
        admin_slot,
        settings.limits,
    )
    .await)
}

/// Ctrl-C or SIGTERM: undo this run's own objects and say what exists. A second Ctrl-C, or a
/// server that does not answer, ends the cleanup too.
async fn undo_interrupted(
    mut err: CliError,
    signal: Exit,
    progress: Progress,
    mut admin_slot: Option<Admin>,
    limits: progress::Limits,
) -> CliError {
    err.exit = signal;
    let cleanup = tokio::time::timeout(
        limits.connect + limits.client() + Duration::from_secs(10),
        recover(&progress, admin_slot.as_mut().map(|a| &mut a.conn), limits),
    );
    let report = tokio::select! {
        report = cleanup => report.unwrap_or_else(|_| progress.left_behind("the server did not answer")),
        _ = tokio::signal::ctrl_c() => progress.left_behind("interrupted again"),
    };
    if let Some(admin) = admin_slot.take() {
        connect::close(admin.conn).await;
    }
    let what = if signal == Exit::Terminated {
        "terminated (SIGTERM)"
    } else {
        "interrupted"
    };
    err.message = format!("{what}; {report}");
    err.with_hint("run `aksara dbsetup` again to finish; it reuses whatever exists")
}

impl Setup<'_> {
    /// Refused before anything changes: the admin's own role or a privileged one as the app's
    /// user, a template or the maintenance database as the app's database (exit 2).
    async fn refuse_targets(&self, admin: &mut Admin, role: &str, db: &str) -> CliResult<()> {
        let attributes = progress::bounded(
            self.s.limits,
            crate::provision::role_attributes(&mut admin.conn, role),
        )
        .await?;
        crate::provision::check_targets(
            &admin.cfg.user,
            role,
            attributes.as_ref(),
            db,
            self.s.forced,
        )
        .map_err(|refusal| {
            CliError::usage(refusal.to_string())
                .before_any_change()
                .with_code(refusal.code())
                .with_hint(refusal.hint())
        })
    }

    async fn run(
        &self,
        env_value: Option<String>,
        admin_slot: &mut Option<Admin>,
    ) -> CliResult<Exit> {
        let limits = self.s.limits;
        let existing_cs =
            execute::env_meaning(&self.s.env_file, &self.s.env_key, env_value.as_deref());
        let admin = self.admin_connection(existing_cs.as_ref()).await?;
        let admin = admin_slot.insert(self.unpooled(admin).await?);
        // From here on the server may change: whatever ends the run, undo what it created and
        // say what exists. The admin session (and so the setup lock) lasts until .env is written.
        let result = self.provision_and_write(admin, existing_cs.as_ref()).await;
        let mut admin = admin_slot.take().expect("the admin session is in its slot");
        // A request that got no answer at all: the backend is stopped or wedged.
        let silent = matches!(&result, Err(e) if e.code == Some(Code::ConnectionTimeout));
        let result = match result {
            Ok(exit) => Ok(exit),
            Err(mut e) => {
                let snapshot = self.progress.borrow().clone();
                // A refusal before any change says so itself.
                if snapshot.changed() || !e.before_any_change {
                    let report = if silent {
                        // Bounded, so the run's whole promise holds (see Limits).
                        tokio::time::timeout(
                            limits.cleanup_after_silence(),
                            recover(&snapshot, Some(&mut admin.conn), limits),
                        )
                        .await
                        .unwrap_or_else(|_| snapshot.left_behind("the server stopped answering"))
                    } else {
                        recover(&snapshot, Some(&mut admin.conn), limits).await
                    };
                    e.message = format!("{}; {report}", e.message);
                    if e.hint.is_none() {
                        e.hint = Some("fix the cause named above and run `aksara dbsetup` again; it reuses whatever exists".into());
                    }
                }
                match &snapshot.granted {
                    Some(granted) => Err(e.except_for(granted)),
                    None => Err(e),
                }
            }
        };
        if silent {
            // A backend that stopped answering would not read a goodbye either; dropping
            // the connection closes the socket at once.
            drop(admin.conn);
        } else {
            connect::close(admin.conn).await;
        }
        result
    }

    /// Everything after the admin login: the setup lock, the decisions, the statements,
    /// verification and the .env write. Records in `progress` what it changes as it goes.
    async fn provision_and_write(
        &self,
        admin: &mut Admin,
        in_env: Option<&ConnString>,
    ) -> CliResult<Exit> {
        let limits = self.s.limits;
        execute::start_admin_session(admin, limits, self.progress).await?;
        let rights = execute::admin_rights(&mut admin.conn, limits).await?;
        let (db, role) = self.names(in_env).await?;
        self.refuse_targets(admin, &role, &db).await?;
        self.replica_precheck(&admin.cfg).await?;
        // Serialise with other dbsetup runs on this server from here to the .env write.
        execute::advisory_lock(&mut admin.conn, limits, self.printer).await?;
        // Read again under the lock: a run that held it before may have just written its URL.
        let locked_env_value = execute::existing_value(&self.s.env_file, &self.s.env_key)?;
        let plan = self
            .decide(admin, db, role, rights, locked_env_value.as_deref())
            .await?;
        execute::refuse_a_closed_socket(&plan.url, self.env, limits, self.s.allow_cleartext)
            .await?;
        if !self.s.json {
            summary::print_plan(
                self.printer,
                &plan.steps,
                &self.s.env_key,
                &plan.written.shown,
                plan.written.stays,
                &plan.forms,
                &self.s.env_file,
            );
        }
        if let Some(p) = self.prompter
            && !p.confirm("Go ahead?", true).await?
        {
            return Err(CliError::failure("setup cancelled").before_any_change());
        }

        // A failure from here on is undone by the caller (see `progress`).
        self.progress.borrow_mut().before = Some(plan.existing.clone());
        let created =
            execute::execute(admin, &plan.steps, self.printer, limits, self.progress).await?;
        let (server_version, tls) = {
            let _spinner = self.printer.spinner("Verifying as the application user");
            execute::verify(
                &plan.url,
                self.env,
                limits,
                self.s.allow_cleartext,
                created.database,
            )
            .await?
        };
        self.printer.step(
            Mark::Pass,
            &format!(
                "Verified: \"{}\" logs in to \"{}\" with the new URL and can create tables",
                plan.role, plan.db
            ),
        );
        let replica = self.verified_replica(&plan.url).await?;
        let written = self.write_env_file(&plan, replica.as_ref()).await?;
        let changes = &written.changes;
        let replica_change = replica
            .as_ref()
            .and_then(|_| changes.last())
            .map(change_word);
        self.gitignore_advice().await?;
        let outcome = Outcome {
            ok: true,
            database: ObjectOutcome {
                name: plan.db.clone(),
                created: created.database,
            },
            role: RoleOutcome {
                name: plan.role.clone(),
                created: created.role,
                password: if plan.password_kept { "kept" } else { "set" },
            },
            url: plan.written.shown.clone(),
            env_file: self.s.env_file.display().to_string(),
            env_key: self.s.env_key.clone(),
            env_change: change_word(&changes[0]),
            replica_url: replica.map(|w| w.shown),
            replica_change,
            driver_urls: plan
                .forms
                .iter()
                .zip(&changes[1..])
                .map(|(form, change)| summary::DriverUrlOutcome::new(form, change_word(change)))
                .collect(),
            without_tls: summary::without_tls(&plan.written.app_value, tls)
                .into_iter()
                .map(|d| d.id())
                .collect(),
            server_version,
            tls,
            shell_shadows: written.shell_shadows,
            // Only when what was written holds a password (a peer URL over a socket holds none).
            env_readable_by_others: plan.url.password.is_some()
                && crate::envfile::readable_by_others(&self.s.env_file).unwrap_or(false),
        };
        if self.s.json {
            self.printer
                .result(&serde_json::to_string_pretty(&outcome).expect("the outcome serialises"));
        } else {
            summary::print_summary(self.printer, &outcome);
        }
        summary::print_exceptions(self.printer, &plan.written.exceptions, &plan.forms);
        Ok(Exit::Success)
    }

    /// Write the keys to `.env` in one write, still holding the setup lock: the URL, the
    /// drivers' forms, the replica's (both keys or neither). A line that works stays as written
    /// (a `${NAME}` in it would read as a different value to the editor, and is the user's).
    async fn write_env_file(
        &self,
        plan: &decide::Plan,
        replica: Option<&decide::WrittenUrl>,
    ) -> CliResult<EnvWritten> {
        let main = (self.s.env_key.as_str(), plan.written.secret.as_str());
        let mut others: Vec<(&str, &str)> = plan
            .forms
            .iter()
            .map(|f| (f.key.as_str(), f.secret.as_str()))
            .collect();
        if let Some(written) = replica {
            others.push((replica_url::REPLICA_KEY, written.secret.as_str()));
        }
        let pairs: Vec<(&str, &str)> = (!plan.written.stays)
            .then_some(main)
            .into_iter()
            .chain(others.iter().copied())
            .collect();
        let mut changes = if pairs.is_empty() {
            Vec::new()
        } else {
            execute::write_env(
                &self.s.env_file,
                &pairs,
                plan.on_conflict,
                self.s.outside(),
                self.printer,
            )
            .await?
        };
        if plan.written.stays {
            changes.insert(0, Change::Unchanged);
        }
        self.progress.borrow_mut().env_written = true;
        // The keys the shell also sets to another value than the app gets from the file: an
        // app started from this shell gets the shell's (dotenv-style loaders do not override a
        // variable already set).
        let shell_shadows = std::iter::once((main.0, plan.written.app_value.as_str()))
            .chain(others)
            .filter(|(key, value)| self.env.var_nonempty(key).is_some_and(|v| v != *value))
            .map(|(key, _)| key.to_string())
            .collect();
        Ok(EnvWritten {
            changes,
            shell_shadows,
        })
    }
}

fn change_word(change: &Change) -> &'static str {
    match change {
        Change::Added => "added",
        Change::Replaced { .. } => "replaced",
        Change::Unchanged => "unchanged",
    }
}

/// What [`Setup::write_env_file`] did: each key's change (the URL's first, then the drivers'
/// forms, then the replica's), and the keys the shell shadows.
struct EnvWritten {
    changes: Vec<Change>,
    shell_shadows: Vec<String>,
}
