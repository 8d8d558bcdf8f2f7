//! `aksara doctor --fix`: after the checks, each failing or warning result whose code has a
//! safe fix becomes a planned [`Fix`], shown exactly as it will run (the SQL, the `.env` line
//! diff with the password redacted, the command) with the login it runs as; asked about one
//! by one (or all applied with `--yes`); applied; then the checks run once more and the report
//! says what changed. When that check calls for a fix no round has tried (a started server
//! shows the missing database), another round follows, up to [`MAX_ROUNDS`]. Exit 0 only when
//! the last check passes and no fix failed.
//!
//! The fix frame only reads the checks' results (`Report`s); the checks themselves are
//! untouched. One module per family: `files` (no admin needed), `sql` (as an admin, logged in
//! by `admin` the way dbsetup does), `server` (start the project's or the installed server).
//! Nothing destructive is ever planned: no DROP, no password change, no rewrite of a file
//! except the one key (its old value kept as a comment, password redacted).

mod admin;
mod files;
mod outcome;
mod references;
mod server;
mod sql;

use serde::Serialize;

use super::checks;
use super::report::{JsonReporter, Report, Reporter, Status, TextReporter};
use super::targets::Target;
use crate::cli::{DoctorArgs, OutputFormat};
use crate::code::Code;
use crate::error::{CliError, CliResult, Exit};
use crate::prompt::{Prompt, Prompter, ScriptedPrompt};
use crate::sysenv::ProcessEnvironment;
use crate::ui::Printer;

/// Which fix: its JSON `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixId {
    EnvMode,
    Gitignore,
    RewriteUrl,
    CreateDatabase,
    RoleLogin,
    RoleConnectionLimit,
    DatabaseConnectionLimit,
    AllowConnections,
    GrantConnect,
    GrantSchemaCreate,
    GrantTablespaceCreate,
    CreateSchema,
    StartServer,
}

impl FixId {
    pub fn id(self) -> &'static str {
        match self {
            FixId::EnvMode => "env-mode",
            FixId::Gitignore => "gitignore",
            FixId::RewriteUrl => "rewrite-url",
            FixId::CreateDatabase => "create-database",
            FixId::RoleLogin => "role-login",
            FixId::RoleConnectionLimit => "role-connection-limit",
            FixId::DatabaseConnectionLimit => "database-connection-limit",
            FixId::AllowConnections => "allow-connections",
            FixId::GrantConnect => "grant-connect",
            FixId::GrantSchemaCreate => "grant-schema-create",
            FixId::GrantTablespaceCreate => "grant-tablespace-create",
            FixId::CreateSchema => "create-schema",
            FixId::StartServer => "start-server",
        }
    }
}

/// How a fix is applied: the data each family needs.
pub enum Apply {
    File(files::FileFix),
    Sql(sql::SqlFix),
    Start(server::StartFix),
}

/// One planned fix.
pub struct Fix {
    pub id: FixId,
    /// The code of the check it fixes.
    pub code: Code,
    /// Index of the URL (target) whose check it fixes.
    pub target: usize,
    /// What it will do, exactly: the SQL, the `.env` line diff (password redacted), the command.
    pub action: String,
    pub apply: Apply,
}

/// A result a fix is for that `--fix` leaves to a person on this URL, and why (the general
/// reasons of a code are `outcome::why_not`'s).
pub struct Declined {
    pub target: usize,
    pub code: Code,
    pub why: String,
}

/// What the reports call for: the fixes, and the ones this URL rules out.
#[derive(Default)]
struct Planned {
    fixes: Vec<Fix>,
    declined: Vec<Declined>,
}

/// `--fix` needs a way to answer its questions: a terminal (or the tests' prompt script), or
/// `--yes`. Checked before anything runs.
pub fn prompter(args: &DoctorArgs, printer: &Printer) -> CliResult<Option<Box<dyn Prompt>>> {
    if !args.fix || args.yes {
        return Ok(None);
    }
    if let Some(path) = std::env::var_os(crate::envvars::AKSARA_PROMPT_SCRIPT) {
        let script = std::fs::read_to_string(&path).map_err(|e| {
            CliError::usage(format!(
                "cannot read the prompt script {}: {e}",
                path.to_string_lossy()
            ))
        })?;
        let scripted = ScriptedPrompt::parse(&script, printer.clone()).map_err(CliError::usage)?;
        return Ok(Some(Box::new(scripted)));
    }
    if !Prompter::stdin_is_terminal() {
        return Err(CliError::usage(
            "--fix asks before each change, and there is no terminal to ask on",
        )
        .before_any_change()
        .with_hint(
            "pass --yes to apply every fix without asking (as in CI): `aksara doctor --fix --yes`",
        ));
    }
    Ok(Some(Box::new(Prompter::new())))
}

/// Plan, confirm, apply, check again, report. `before` are the first run's reports.
pub async fn run(
    args: &DoctorArgs,
    targets: &[Target],
    env: &ProcessEnvironment,
    before: Vec<Report>,
    prompter: Option<&dyn Prompt>,
    printer: &Printer,
) -> CliResult<Exit> {
    let json = args.format == OutputFormat::Json;
    let Planned { fixes, declined } = plan(args, targets, &before, env);
    let mut outcomes = outcome::Outcomes::new(printer, json);
    outcomes.needs_a_person(&before, &fixes, &declined);
    if fixes.is_empty() {
        outcomes.nothing_to_fix();
        let ok = before.iter().all(|r| r.ok);
        outcomes.finish(&before, None);
        return Ok(if ok { Exit::Success } else { Exit::Failure });
    }
    let mut fixes = fixes;
    let mut rounds = Rounds {
        targets: None,
        reports: before,
        before: None,
        done: Vec::new(),
    };
    let mut ok = false;
    for round in 1..=MAX_ROUNDS {
        let from = outcomes.recorded();
        let current = rounds.targets.as_deref().unwrap_or(targets);
        apply_round(&fixes, current, args, env, prompter, printer, &mut outcomes).await?;
        rounds.done.extend(fixes.iter().map(|f| (f.id, f.target)));
        let (fresh, after) = recheck(args, current, env, printer, json).await;
        ok = outcomes.judge(from, &rounds.reports, &after);
        if let Some(fresh) = fresh {
            rounds.targets = Some(fresh);
        }
        let previous = std::mem::replace(&mut rounds.reports, after);
        if round == 1 {
            rounds.before = Some(previous);
        }
        let current = rounds.targets.as_deref().unwrap_or(targets);
        // What the check run again calls for that no round has tried yet (a started server
        // shows the missing database; a role that logs in shows the .env mode): go on.
        fixes = plan(args, current, &rounds.reports, env)
            .fixes
            .into_iter()
            .filter(|f| !rounds.done.contains(&(f.id, f.target)))
            .collect();
        if fixes.is_empty() || round == MAX_ROUNDS {
            break;
        }
        if !json {
            printer.result(&printer.bold("The check run again calls for more fixes"));
        }
    }
    outcomes.again(&fixes);
    let before = rounds.before.as_deref().unwrap_or(&[]);
    outcomes.finish(before, Some(&rounds.reports));
    Ok(if ok { Exit::Success } else { Exit::Failure })
}

/// Rounds of fixing: apply, check again, and again while the check calls for a fix no round
/// has tried, at most this many times.
const MAX_ROUNDS: usize = 3;

struct Rounds {
    /// The URLs as read again after the last round (a fix may rewrite the `.env`).
    targets: Option<Vec<Target>>,
    /// The last run of the checks.
    reports: Vec<Report>,
    /// The first run's reports, once a round has replaced them.
    before: Option<Vec<Report>>,
    /// Every fix some round showed (applied, declined or failed): never offered twice.
    done: Vec<(FixId, usize)>,
}

/// Show, log in where needed, ask, apply: one round of fixes.
async fn apply_round(
    fixes: &[Fix],
    targets: &[Target],
    args: &DoctorArgs,
    env: &ProcessEnvironment,
    prompter: Option<&dyn Prompt>,
    printer: &Printer,
    outcomes: &mut outcome::Outcomes<'_>,
) -> CliResult<()> {
    let mut logins = admin::Logins::default();
    for fix in fixes {
        outcomes.show(fix, &targets[fix.target]);
        // A replica key's catalog changes are the primary's to make (src/replica.rs): no
        // login at the replica's URL, nothing run there.
        if let (Apply::Sql(_), Some(key)) = (
            &fix.apply,
            crate::replica::replica_key(targets[fix.target].key.as_deref()),
        ) {
            let why = format!(
                "{} (the fix: `{}`)",
                crate::replica::on_the_primary_note(key),
                fix.action
            );
            outcomes.record(
                fix,
                &targets[fix.target],
                outcome::Outcome::not_applied(why),
            );
            continue;
        }
        let login = match &fix.apply {
            Apply::Sql(_) => Some(
                logins
                    .for_target(
                        fix.target,
                        &targets[fix.target],
                        args,
                        env,
                        prompter,
                        printer,
                    )
                    .await?,
            ),
            _ => None,
        };
        if let Some(Ok(how)) = &login {
            outcomes.login(how);
        }
        let outcome = match login {
            Some(Err(why)) => {
                outcome::Outcome::not_applied(format!("{why} (the fix: `{}`)", fix.action))
            }
            _ if !confirmed(fix, prompter).await? => outcome::Outcome::declined(),
            _ => apply(fix, args, &mut logins, printer).await,
        };
        outcomes.record(fix, &targets[fix.target], outcome);
    }
    logins.close().await;
    Ok(())
}

/// Every fix the reports call for, in the order the checks reported their results.
fn plan(
    args: &DoctorArgs,
    targets: &[Target],
    reports: &[Report],
    env: &ProcessEnvironment,
) -> Planned {
    let mut planned = Planned::default();
    for (index, (target, report)) in targets.iter().zip(reports).enumerate() {
        let wanted: Vec<Code> = report
            .checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
            .filter_map(|c| c.code)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let fixes = &mut planned.fixes;
        fixes.extend(server::plan(index, target, &wanted, env));
        fixes.extend(files::plan(
            index,
            target,
            &wanted,
            args,
            &mut planned.declined,
        ));
        fixes.extend(sql::plan(
            index,
            target,
            &wanted,
            report.creation_fix.as_ref(),
            args,
            env,
        ));
    }
    planned
}

async fn confirmed(fix: &Fix, prompter: Option<&dyn Prompt>) -> CliResult<bool> {
    match prompter {
        None => Ok(true),
        Some(p) => {
            p.confirm(&format!("Apply {} ({})?", fix.id.id(), fix.code), true)
                .await
        }
    }
}

async fn apply(
    fix: &Fix,
    args: &DoctorArgs,
    logins: &mut admin::Logins,
    printer: &Printer,
) -> outcome::Outcome {
    match &fix.apply {
        Apply::File(f) => files::apply(f),
        Apply::Start(s) => server::apply(s, args, printer).await,
        Apply::Sql(s) => match logins.session(fix.target) {
            Some(session) => sql::apply(s, session, args).await,
            None => outcome::Outcome::not_applied("no admin session".into()),
        },
    }
}

/// The checks once more, reported as the first run was (text), or collected (JSON).
async fn recheck(
    args: &DoctorArgs,
    targets: &[Target],
    env: &ProcessEnvironment,
    printer: &Printer,
    json: bool,
) -> (Option<Vec<Target>>, Vec<Report>) {
    if !json {
        printer.result(&printer.bold("Checking again after the fixes"));
    }
    let mut text;
    let mut silent;
    let reporter: &mut dyn Reporter = if json {
        // Never asked for its document: the fix report holds both runs.
        silent = JsonReporter::new(printer);
        &mut silent
    } else {
        text = TextReporter::new(printer, targets.len());
        &mut text
    };
    // Read again: a fix may have rewritten the .env the URLs came from.
    let fresh = super::targets::find_targets(args).ok();
    let targets = fresh.as_deref().unwrap_or(targets);
    let mut after = Vec::new();
    for target in targets {
        after.push(checks::check_target(target, args, env, reporter).await);
    }
    (fresh, after)
}
