//! `aksara dbsetup`: find PostgreSQL, log in as an admin without typing when possible, create
//! (or reuse) the application role and database, verify the result as the application user,
//! and only then write DATABASE_URL to .env. Interactive on a terminal; `--non-interactive`
//! for CI never prompts. Nothing that existed before is ever dropped; what this run created
//! is undone when a later step fails, and the report says what exists.

mod progress;

use crate::code::Code;
use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgConnection;

use crate::cli::{DbsetupArgs, OutputFormat, StartServer};
use crate::connect::{self, FailureKind};
use crate::diagnose::{self, Context};
use crate::dsn::{ConnConfig, ConnString, Endpoint, Format, Host, HostSpec, Password, SslMode};
use crate::envfile::{self, Change, EnvFileError, GitIgnoreStatus, OnConflict};
use crate::error::{CliError, CliResult, Exit};
use crate::localserver;
use crate::probe::{self, Answer, Candidate};
use crate::projectserver::{self, GITIGNORE_PATTERN, Kind, Layout};
use crate::prompt::Prompter;
use crate::provision::{self, AdminRights, Existing, NameKind, PasswordAction, Step};
use crate::serverup;
use crate::sysenv::ProcessEnvironment;
use crate::ui::{Mark, Printer};

use progress::{
    ADVISORY_LOCK_KEY, AdminSession, Limits, Outcome as StepOutcome, Progress, Sent, bounded,
    no_answer, recover, run_in_database,
};

/// How long one discovery probe may take (all run at once).
const DISCOVERY_BOUND: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
struct Outcome {
    ok: bool,
    database: ObjectOutcome,
    role: RoleOutcome,
    url: String,
    env_file: String,
    env_key: String,
    env_change: &'static str,
    server_version: String,
    tls: bool,
}

#[derive(Debug, Serialize)]
struct ObjectOutcome {
    name: String,
    created: bool,
}

#[derive(Debug, Serialize)]
struct RoleOutcome {
    name: String,
    created: bool,
    /// "set" (new password), "kept" (the .env already held one that works)
    password: &'static str,
}

/// What the command line and the environment settled before the server is asked anything.
struct Inputs {
    /// The application password from stdin or AKSARA_DB_PASSWORD.
    password: Option<String>,
    sslmode: Option<SslMode>,
    limits: Limits,
    /// The value the key had in .env when the run started (its host is a place to look).
    env_value: Option<String>,
}

struct Admin {
    conn: PgConnection,
    cfg: ConnConfig,
    endpoint: Endpoint,
    /// Other endpoints that answered during discovery (to pick the app URL's host).
    answered: Vec<(Endpoint, bool)>,
    /// A database the server made as aksara started it (the Docker image's POSTGRES_DB): it
    /// is this setup's own, so reusing it needs no question.
    created_database: Option<String>,
}

pub async fn run(args: DbsetupArgs, printer: &Printer) -> CliResult<Exit> {
    let interactive = !args.non_interactive;
    if interactive && !Prompter::stdin_is_terminal() {
        return Err(CliError::usage("standard input is not a terminal, so aksara cannot ask its questions")
            .with_hint("pass --non-interactive with --db-name NAME (and --admin-url URL if PG* variables do not reach an admin role)"));
    }
    if args.non_interactive && args.db_name.is_none() {
        return Err(
            CliError::usage("--db-name is required with --non-interactive")
                .with_hint("pass --db-name NAME"),
        );
    }
    if args.admin_url.is_some()
        && matches!(
            args.start_server,
            Some(StartServer::Local | StartServer::Docker)
        )
    {
        return Err(CliError::usage(
            "--admin-url names a server to use, and --start-server asks aksara to start one",
        )
        .with_hint("pass one of them"));
    }
    let sslmode = match &args.sslmode {
        Some(s) => Some(s.parse::<SslMode>().map_err(|e| {
            CliError::usage(format!("invalid --sslmode: {e}"))
                .with_hint("use one of disable, allow, prefer, require, verify-ca, verify-full")
        })?),
        None => None,
    };
    // Every flag is checked before anything is touched: a bad value is a usage error (exit 2),
    // never a failure found after the database was created.
    envfile::validate_key(&args.env_key).map_err(|e| {
        CliError::usage(format!("invalid --env-key: {e}")).with_optional_hint(e.hint())
    })?;
    if let Some(url) = &args.admin_url {
        ConnString::parse(url).map_err(|e| {
            CliError::usage(format!("invalid --admin-url: {e}"))
                .with_optional_hint(e.hint())
                .with_code(Code::InvalidUrl)
        })?;
    }
    if let Some(name) = &args.db_name {
        provision::validate_name(NameKind::Database, name).map_err(name_error)?;
    }
    match (&args.db_user, &args.db_name) {
        (Some(name), _) => provision::validate_name(NameKind::Role, name).map_err(name_error)?,
        // The user is named after the database: say so when that name cannot be a user's.
        (None, Some(db)) => {
            provision::validate_name(NameKind::Role, &provision::default_role_name(db)).map_err(
                |e| {
                    CliError::usage(format!("{e} (the user is named after the database)"))
                        .with_hint("pass --db-user NAME with another name for the user")
                },
            )?
        }
        (None, None) => {}
    }
    // Everything that can be checked without the server is checked before it changes.
    envfile::validate_key(&args.env_key).map_err(|e| {
        CliError::usage(format!("invalid --env-key: {e}")).with_optional_hint(e.hint())
    })?;
    let given_password = read_given_password(&args)?;
    let existing_env_value = existing_value(&args.env.env_file, &args.env_key)?;
    envfile::check_writable(&args.env.env_file).map_err(|e| {
        CliError::failure(e.to_string())
            .before_any_change()
            .with_optional_hint(e.hint())
    })?;
    let prompter = interactive.then(Prompter::new);
    let env = ProcessEnvironment::load();
    if let Some(w) = env.pgpass_warning() {
        printer.warn(w);
    }
    let limits = Limits {
        connect: Duration::from_secs(args.connect_timeout.max(1)),
        statement: Duration::from_secs(args.timeout.max(1)),
    };

    // Ctrl-C at any point must not leave a half-done setup behind or unexplained: the work
    // runs raced against the signal, records what it changes as it goes, and the interrupt
    // path undoes this run's own objects and reports what exists.
    let progress = RefCell::new(Progress::new(args.env.env_file.display().to_string()));
    let inputs = Inputs {
        password: given_password,
        sslmode,
        limits,
        env_value: existing_env_value,
    };
    // The admin session lives out here, not inside the work: when Ctrl-C drops the work, the
    // session (and the setup lock it holds) survives, so the undo runs under the same lock
    // and no other run can start using this run's objects in between.
    let mut admin_slot: Option<Admin> = None;
    let work = setup(
        &args,
        printer,
        prompter.as_ref(),
        &env,
        inputs,
        &progress,
        &mut admin_slot,
    );
    // SIGTERM is how CI cancels a job: it gets the same cleanup as Ctrl-C.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::failure(format!("cannot watch for SIGTERM: {e}")))?;
    let finished = tokio::select! {
        result = work => Ok(result),
        _ = tokio::signal::ctrl_c() => Err(Exit::Interrupted),
        _ = terminate.recv() => Err(Exit::Terminated),
    };
    let signal = match finished {
        Ok(result) => return result,
        Err(signal) => signal,
    };
    let mut err = match &prompter {
        Some(p) => p.interrupted(),
        None => CliError::interrupted(),
    };
    err.exit = signal;
    let progress = progress.into_inner();
    // A second Ctrl-C, or a server that does not answer, ends the cleanup too.
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
    Err(err.with_hint("run `aksara dbsetup` again to finish; it reuses whatever exists"))
}

fn name_error(e: provision::NameError) -> CliError {
    let hint = e.hint();
    CliError::usage(e.to_string()).with_hint(hint)
}

/// The application password from --db-password-stdin or AKSARA_DB_PASSWORD; never from argv.
fn read_given_password(args: &DbsetupArgs) -> CliResult<Option<String>> {
    if args.db_password_stdin {
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf).map_err(|e| {
            CliError::failure(format!("cannot read the password from standard input: {e}"))
        })?;
        let password = buf
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&buf)
            .to_string();
        if password.is_empty() {
            return Err(CliError::usage("--db-password-stdin was given but standard input was empty").with_hint("pipe the password in: `printf %s \"$PASSWORD\" | aksara dbsetup ... --db-password-stdin`"));
        }
        // libpq passes passwords as C strings: one with NUL could be set, but never used.
        if password.contains('\0') {
            return Err(CliError::usage(
                "the password from standard input contains a NUL byte, which PostgreSQL clients cannot send",
            )
            .before_any_change()
            .with_hint("use a password without NUL bytes, or leave --db-password-stdin out to have one generated"));
        }
        return check_password(password, "standard input").map(Some);
    }
    match std::env::var("AKSARA_DB_PASSWORD") {
        Ok(p) if !p.is_empty() => check_password(p, "AKSARA_DB_PASSWORD").map(Some),
        _ => Ok(None),
    }
}

/// Refuse a password sqlx could not log in with, before anything changes. The message never
/// shows the offending character: it is part of the password.
fn check_password(password: String, source: &str) -> CliResult<String> {
    if provision::scram_password_usable(&password) {
        return Ok(password);
    }
    Err(CliError::usage(format!(
        "the password from {source} has a character SASLprep prohibits (a control character such as a newline, an emoji, or mixed-direction text): sqlx, which aksara verifies with, cannot log in with it"
    ))
    .before_any_change()
    .with_hint("choose another password, or give none to have one generated"))
}

fn existing_value(path: &Path, key: &str) -> CliResult<Option<String>> {
    match envfile::read_entries(path) {
        Ok(entries) => Ok(entries.into_iter().find(|e| e.key == key).map(|e| e.value)),
        Err(_) if !path.exists() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn setup(
    args: &DbsetupArgs,
    printer: &Printer,
    prompter: Option<&Prompter>,
    env: &ProcessEnvironment,
    inputs: Inputs,
    progress: &RefCell<Progress>,
    admin_slot: &mut Option<Admin>,
) -> CliResult<Exit> {
    let limits = inputs.limits;
    let existing_cs = inputs
        .env_value
        .as_deref()
        .and_then(|v| ConnString::parse(v).ok());

    // 1-2. Find PostgreSQL and log in as an admin.
    let admin = admin_slot.insert(
        admin_connection(
            args,
            printer,
            prompter,
            env,
            existing_cs.as_ref(),
            limits.connect,
        )
        .await?,
    );

    // From here on the server may change: whatever ends the run, undo what it created and
    // say what exists. The admin session (and so the setup lock) lasts until .env is written.
    let result = provision_and_write(args, printer, prompter, env, inputs, progress, admin).await;
    let mut admin = admin_slot.take().expect("the admin session is in its slot");
    match result {
        Ok(exit) => {
            connect::close(admin.conn).await;
            Ok(exit)
        }
        Err(mut e) => {
            let snapshot = progress.borrow().clone();
            // A refusal before any change says so itself.
            if snapshot.changed() || !e.before_any_change {
                let report = recover(&snapshot, Some(&mut admin.conn), limits).await;
                e.message = format!("{}; {report}", e.message);
                if e.hint.is_none() {
                    e.hint = Some("fix the cause named above and run `aksara dbsetup` again; it reuses whatever exists".into());
                }
            }
            connect::close(admin.conn).await;
            Err(e)
        }
    }
}

/// Everything after the admin login: the setup lock, the plan, the statements, verification
/// and the .env write. Records in `progress` what it changes as it goes.
async fn provision_and_write(
    args: &DbsetupArgs,
    printer: &Printer,
    prompter: Option<&Prompter>,
    env: &ProcessEnvironment,
    inputs: Inputs,
    progress: &RefCell<Progress>,
    admin: &mut Admin,
) -> CliResult<Exit> {
    let Inputs {
        password: given_password,
        sslmode,
        limits,
        ..
    } = inputs;
    let bound = limits.connect;
    start_admin_session(admin, limits, progress).await?;
    let rights = admin_rights(&mut admin.conn, limits).await?;

    // 3. Names.
    let folder = std::env::current_dir()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "app".into());
    let mut db = match (&args.db_name, prompter) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) => {
            p.input(
                "Database name",
                Some(provision::default_db_name(&folder)),
                validate_db,
            )
            .await?
        }
        (None, None) => unreachable!("--db-name is checked before"),
    };
    let role = match (&args.db_user, prompter) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) if args.db_name.is_none() => {
            p.input(
                "Application user",
                Some(provision::default_role_name(&db)),
                validate_role,
            )
            .await?
        }
        _ => provision::default_role_name(&db),
    };

    // Serialise with other dbsetup runs on this server from here to the .env write.
    advisory_lock(&mut admin.conn, limits, printer).await?;
    // Read again under the lock: a run that held it before may have just written its URL.
    let locked_env_value = existing_value(&args.env.env_file, &args.env_key)?;
    let existing_cs = locked_env_value
        .as_deref()
        .and_then(|v| ConnString::parse(v).ok());

    // 4. What is there already? (Interactive: reuse, new password, or another name.)
    let mut existing = {
        let _spinner = printer.spinner("Looking for an existing database and user");
        existing_objects(&mut admin.conn, &db, &role, limits).await?
    };
    if let Some(p) = prompter {
        loop {
            if let Some(owner) = &existing.database_owner
                && admin.created_database.as_deref() != Some(db.as_str())
            {
                let choice = p
                    .select(
                        &format!("Database \"{db}\" already exists (owner \"{owner}\")"),
                        vec![
                            "Reuse it (nothing is dropped)".into(),
                            "Choose another name".into(),
                        ],
                        0,
                    )
                    .await?;
                if choice == 1 {
                    db = p.input("Database name", None, validate_db).await?;
                    existing = existing_objects(&mut admin.conn, &db, &role, limits).await?;
                    continue;
                }
            }
            break;
        }
    }

    // The application URL's host: the admin's TCP address, or localhost on the same port
    // when the admin came in over a socket (application users rarely have peer access).
    let app_endpoint = app_endpoint(admin);

    // Password: keep one that works already, else the given one, else ask or generate.
    let mut keep_url = None;
    if existing.role_exists
        && let Some(cs) = &existing_cs
        && cs.user.as_deref() == Some(role.as_str())
        && cs.dbname.as_deref() == Some(db.as_str())
        && existing.database_owner.is_some()
        && let Ok(cfg) = cs.resolve(env)
        && let Ok(c) = {
            let _spinner = printer.spinner("Trying the password already in .env");
            connect::connect(&cfg, bound).await
        }
    {
        connect::close(c.conn).await;
        let same = given_password
            .as_deref()
            .is_none_or(|g| cs.password.as_ref().map(|p| p.expose()) == Some(g));
        if same {
            keep_url = Some(cs.clone());
        }
    }
    let password = match (&keep_url, &given_password) {
        (Some(cs), _) => cs.password.as_ref().map(|p| p.expose().to_string()),
        (None, Some(g)) => Some(g.clone()),
        (None, None) => None,
    };
    let password = match (password, prompter) {
        (Some(p), _) => p,
        (None, Some(p)) => {
            if existing.role_exists {
                let choice = p
                    .select(
                        &format!("User \"{role}\" already exists"),
                        vec![
                            "Set a new generated password on it".into(),
                            "Type its current password".into(),
                            "Type a new password for it".into(),
                        ],
                        0,
                    )
                    .await?;
                match choice {
                    0 => provision::generate_password(),
                    1 => {
                        let typed = p
                            .password(&format!("Current password of \"{role}\""), false)
                            .await?;
                        keep_url =
                            Some(app_conn_string(&app_endpoint, &role, &typed, &db, sslmode));
                        typed
                    }
                    _ => {
                        p.password(&format!("New password for \"{role}\""), true)
                            .await?
                    }
                }
            } else {
                let choice = p
                    .select(
                        "Password for the application user",
                        vec![
                            "Generate a strong one (recommended)".into(),
                            "Type my own".into(),
                        ],
                        0,
                    )
                    .await?;
                if choice == 0 {
                    provision::generate_password()
                } else {
                    p.password(&format!("Password for \"{role}\""), true)
                        .await?
                }
            }
        }
        (None, None) => provision::generate_password(),
    };
    let password = match keep_url {
        Some(_) => password,
        None => check_password(password, "the prompt")?,
    };
    let action = if keep_url.is_some() {
        PasswordAction::Keep
    } else {
        PasswordAction::Set(password.clone())
    };
    let steps = provision::plan(&db, &role, &action, &existing, rights);

    // Refuse before touching anything when the admin lacks a privilege the plan needs.
    let missing = provision::missing_rights(&steps, rights, &admin.cfg.user);
    if !missing.is_empty() {
        let names: Vec<_> = missing.iter().map(|(n, _)| n.as_str()).collect();
        let grants: Vec<_> = missing.iter().map(|(_, g)| g.as_str()).collect();
        return Err(CliError::failure(format!(
            "the admin role \"{}\" lacks the {} privilege{} needed to create {}",
            admin.cfg.user,
            names.join(" and "),
            if names.len() > 1 { "s" } else { "" },
            if steps
                .iter()
                .any(|s| matches!(s, Step::CreateDatabase { .. }))
            {
                "the database"
            } else {
                "the user"
            }
        ))
        .before_any_change()
        .with_code(Code::PermissionDenied)
        .with_hint(format!(
            "as a superuser run `{}`, or pass --admin-url with a superuser",
            grants.join(" ")
        )));
    }

    // The .env must be writable without clobbering a different value: decide before any change.
    let final_cs = keep_url
        .clone()
        .unwrap_or_else(|| app_conn_string(&app_endpoint, &role, &password, &db, sslmode));
    let final_url = final_cs.to_url(crate::dsn::Reveal::Secret);
    let mut on_conflict = OnConflict::Fail;
    if let Some(old) = &locked_env_value
        && *old != final_url
    {
        if args.force {
            on_conflict = OnConflict::ReplaceKeepingOldAsComment;
        } else if let Some(p) = prompter {
            if !p
                .confirm(
                    &format!(
                        "{} already sets {}; replace it (the old line is kept as a comment)?",
                        args.env.env_file.display(),
                        args.env_key
                    ),
                    true,
                )
                .await?
            {
                return Err(CliError::failure("setup cancelled")
                    .before_any_change()
                    .with_hint(
                        "pass --env-key OTHER_KEY to write another variable, or --env-file PATH"
                            .to_string(),
                    ));
            }
            on_conflict = OnConflict::ReplaceKeepingOldAsComment;
        } else {
            return Err(CliError::failure(format!(
                    "{} already sets {} to a different value",
                    args.env.env_file.display(),
                    args.env_key
                ))
                .before_any_change()
                .with_hint("pass --force to replace it (the old line is kept as a comment), or --env-key to write another variable"));
        }
    }

    // 5. The plan.
    if printer.verbosity >= crate::ui::Verbosity::Normal && args.format == OutputFormat::Text {
        printer.status(&format!("\n{}", printer.bold("Plan:")));
        if steps.is_empty() {
            printer.status("  (nothing to create: the user and database exist)");
        }
        for s in &steps {
            printer.status(&format!("  {};", s.sql(true)));
        }
        printer.status(&format!(
            "  write {}={} to {}",
            args.env_key,
            final_cs,
            args.env.env_file.display()
        ));
        if steps
            .iter()
            .any(|s| matches!(s, Step::CreateRole { .. } | Step::SetPassword { .. }))
        {
            printer.status(&printer.dim("  (the password is sent as a SCRAM-SHA-256 verifier: the server and its log never see it)"));
        }
    }
    if let Some(p) = prompter
        && !p.confirm("Go ahead?", true).await?
    {
        return Err(CliError::failure("setup cancelled").before_any_change());
    }

    // 6. Provision. A failure from here on is undone by the caller (see `progress`).
    progress.borrow_mut().before = Some(existing.clone());
    let created = execute(admin, &steps, printer, limits, progress).await?;

    // 7. Verify as the application user.
    let (server_version, tls) = {
        let _spinner = printer.spinner("Verifying as the application user");
        verify(&final_cs, env, limits).await?
    };
    printer.step(
        Mark::Pass,
        &format!("Verified: \"{role}\" logs in to \"{db}\" with the new URL and can create tables"),
    );

    // 8. Write .env, still holding the setup lock.
    let change = write_env(
        &args.env.env_file,
        &args.env_key,
        &final_url,
        on_conflict,
        printer,
    )
    .await?;
    progress.borrow_mut().env_written = true;
    gitignore_advice(&args.env.env_file, printer, prompter).await?;

    // 9. Summary.
    let outcome = Outcome {
        ok: true,
        database: ObjectOutcome {
            name: db.clone(),
            created: created.database,
        },
        role: RoleOutcome {
            name: role.clone(),
            created: created.role,
            password: if keep_url.is_some() { "kept" } else { "set" },
        },
        url: final_cs.to_string(),
        env_file: args.env.env_file.display().to_string(),
        env_key: args.env_key.clone(),
        env_change: match change {
            Change::Added => "added",
            Change::Replaced { .. } => "replaced",
            Change::Unchanged => "unchanged",
        },
        server_version,
        tls,
    };
    if args.format == OutputFormat::Json {
        printer.result(&serde_json::to_string_pretty(&outcome).expect("the outcome serialises"));
    } else {
        print_summary(printer, &outcome);
    }
    Ok(Exit::Success)
}

fn validate_db(s: &str) -> Result<(), String> {
    provision::validate_name(NameKind::Database, s).map_err(|e| format!("{e}; {}", e.hint()))
}

fn validate_role(s: &str) -> Result<(), String> {
    provision::validate_name(NameKind::Role, s).map_err(|e| format!("{e}; {}", e.hint()))
}

fn app_conn_string(
    ep: &Endpoint,
    role: &str,
    password: &str,
    db: &str,
    sslmode: Option<SslMode>,
) -> ConnString {
    let host = match &ep.host {
        Host::Tcp(h) => h.clone(),
        Host::Socket(dir) => dir.display().to_string(),
    };
    ConnString {
        format: Format::Uri,
        hosts: vec![HostSpec {
            host: Some(host),
            port: Some(ep.port),
        }],
        user: Some(role.to_string()),
        password: Some(Password::new(password.to_string())),
        dbname: Some(db.to_string()),
        sslmode,
        connect_timeout: None,
        application_name: None,
        sslrootcert: None,
        options: None,
        unknown: Vec::new(),
    }
}

fn app_endpoint(admin: &Admin) -> Endpoint {
    match &admin.endpoint.host {
        Host::Tcp(_) => admin.endpoint.clone(),
        Host::Socket(_) => {
            let port = admin.endpoint.port;
            let tcp = admin.answered.iter().find(|(ep, _)| {
                matches!(&ep.host, Host::Tcp(h) if h == "localhost" || h == "127.0.0.1")
                    && ep.port == port
            });
            match tcp {
                Some((ep, _)) => ep.clone(),
                None => admin.endpoint.clone(),
            }
        }
    }
}

/// Find a server and log in as an admin, trying what needs no typing first.
async fn admin_connection(
    args: &DbsetupArgs,
    printer: &Printer,
    prompter: Option<&Prompter>,
    env: &ProcessEnvironment,
    existing_cs: Option<&ConnString>,
    bound: Duration,
) -> CliResult<Admin> {
    if let Some(url) = &args.admin_url {
        let cs = ConnString::parse(url)?;
        let cfg = cs.resolve(env)?;
        let spinner = printer.spinner(&format!("Connecting to {}", cfg.redacted()));
        let result = connect::connect(&cfg, bound).await;
        drop(spinner);
        return match result {
            Ok(c) => {
                printer.step(
                    Mark::Pass,
                    &format!("Connected as \"{}\" to {}", cfg.user, c.endpoint),
                );
                Ok(Admin {
                    endpoint: c.endpoint.clone(),
                    conn: c.conn,
                    cfg,
                    answered: Vec::new(),
                    created_database: None,
                })
            }
            Err(failure) => {
                let attempt = failure.last().clone();
                if let (Some(p), FailureKind::Server(e)) = (prompter, &attempt.failure)
                    && e.sqlstate == "28P01"
                {
                    return prompt_admin_login(
                        p,
                        printer,
                        env,
                        &attempt.endpoint,
                        Some(cfg.user.clone()),
                        bound,
                        Vec::new(),
                    )
                    .await;
                }
                Err(
                    connect_error(&cfg, &failure, "the admin connection (--admin-url) failed")
                        .await,
                )
            }
        };
    }

    // The project's own server: asked for by --start-server, or recorded in .aksara/.
    let layout = project_layout()?;
    if let Some(kind @ (StartServer::Local | StartServer::Docker)) = args.start_server {
        return project_admin(args, printer, env, &layout, kind, true, bound).await;
    }
    if let Some(record) = layout.read_record()? {
        let kind = match record.kind {
            Kind::Local => StartServer::Local,
            Kind::Docker => StartServer::Docker,
        };
        printer.step(
            Mark::Pass,
            &format!(
                "This project has its own PostgreSQL ({}, port {})",
                layout.show(&layout.record_file()),
                record.port
            ),
        );
        let allow_start = args.start_server != Some(StartServer::Never);
        return project_admin(args, printer, env, &layout, kind, allow_start, bound).await;
    }

    // Discovery: PG* variables, the .env's URL, the usual sockets and ports, all at once.
    let mut candidates = Vec::new();
    if env.has_pg_target()
        && let Ok(cfg) = ConnString::default().resolve(env)
    {
        candidates.extend(cfg.endpoints.into_iter().map(|endpoint| Candidate {
            endpoint,
            origin: "PG* variables".into(),
        }));
    }
    if let Some(cs) = existing_cs
        && let Ok(cfg) = cs.resolve(env)
    {
        candidates.extend(cfg.endpoints.into_iter().map(|endpoint| Candidate {
            endpoint,
            origin: format!("{} in {}", args.env_key, args.env.env_file.display()),
        }));
    }
    candidates.extend(probe::local_candidates());
    let mut unique: Vec<Candidate> = Vec::new();
    for c in candidates {
        if !unique.iter().any(|u| u.endpoint == c.endpoint) {
            unique.push(c);
        }
    }
    let spinner = printer.spinner("Looking for PostgreSQL");
    // Refused ports and missing sockets answer at once, so the bound only matters for a
    // server that is slow to fork its backend (a loaded machine, a busy CI runner): generous
    // enough not to miss it.
    let probed = probe::probe_all(unique.clone(), DISCOVERY_BOUND).await;
    drop(spinner);
    let answered: Vec<_> = probed
        .iter()
        .filter_map(|p| match p.answer {
            Answer::Postgres { tls } => Some((p.candidate.clone(), tls)),
            _ => None,
        })
        .collect();
    if answered.is_empty() {
        return offer_server(args, printer, prompter, env, &layout, &probed, bound).await;
    }
    let answered_eps: Vec<(Endpoint, bool)> = answered
        .iter()
        .map(|(c, t)| (c.endpoint.clone(), *t))
        .collect();

    // One local server usually answers on a socket and on TCP localhost with the same port:
    // list it once, with all its addresses.
    let servers = group_servers(&answered);
    let chosen = match prompter {
        Some(p) if servers.len() > 1 => {
            let items: Vec<String> = servers.iter().map(|s| describe_server(s)).collect();
            p.select("Several PostgreSQL servers answer; which one?", items, 0)
                .await?
        }
        _ => 0,
    };
    let server = &servers[chosen];
    printer.step(Mark::Pass, &format!("Found {}", describe_server(server)));

    // Admin login without typing: PG* variables, ~/.pgpass, trust or peer over the socket.
    let mut users = Vec::new();
    if let Some(u) = env.var_nonempty("PGUSER") {
        users.push(u);
    } else {
        users.push("postgres".to_string());
        if let Some(os) = crate::dsn::Environment::os_user(env)
            && os != "postgres"
        {
            users.push(os);
        }
    }
    let mut last_failure = None;
    let mut tried = Vec::new();
    let spinner = printer.spinner("Logging in as an admin");
    // Every address of the server is worth a try: peer auth may work on the socket and a
    // password from ~/.pgpass over TCP.
    let same_server: Vec<Endpoint> = server.iter().map(|(c, _)| c.endpoint.clone()).collect();
    for endpoint in &same_server {
        for user in &users {
            for db in ["postgres", "template1"] {
                let cs = admin_conn_string(
                    endpoint,
                    user,
                    env.var_nonempty("PGDATABASE").as_deref().unwrap_or(db),
                );
                let Ok(cfg) = cs.resolve(env) else { continue };
                match connect::connect(&cfg, bound).await {
                    Ok(c) => {
                        printer.step(
                            Mark::Pass,
                            &format!("Logged in as \"{}\" ({})", cfg.user, password_origin(&cfg)),
                        );
                        return Ok(Admin {
                            endpoint: c.endpoint.clone(),
                            conn: c.conn,
                            cfg,
                            answered: answered_eps,
                            created_database: None,
                        });
                    }
                    Err(f) => {
                        let database_missing = f.last().failure.sqlstate() == Some("3D000");
                        if !database_missing {
                            tried.push(format!(
                                "\"{user}\" at {endpoint}: {}",
                                short_failure(&f.last().failure)
                            ));
                        }
                        last_failure = Some((cfg, f));
                        if !database_missing {
                            break;
                        }
                    }
                }
            }
        }
    }
    // No spinner may tick under a prompt.
    drop(spinner);
    let (cfg, failure) = last_failure.expect("at least one login was attempted");
    match prompter {
        Some(p) => {
            printer.status("No admin login works without a password; tried:");
            for t in &tried {
                printer.status(&format!("  {t}"));
            }
            // Passwords go over TCP when the server listens there: peer auth on the socket
            // ignores them.
            let endpoint = same_server.iter().find(|e| matches!(e.host, Host::Tcp(_))).unwrap_or(&same_server[0]).clone();
            prompt_admin_login(p, printer, env, &endpoint, None, bound, answered_eps).await
        }
        None => Err(connect_error(&cfg, &failure, "no admin login works without a password")
            .await
            .with_hint("pass --admin-url postgresql://USER:PASSWORD@HOST:PORT/postgres (or set PGUSER and PGPASSWORD, or a ~/.pgpass line) for a role that may create databases and roles")),
    }
}

/// Answering endpoints grouped into servers: local addresses with the same port are one
/// server (its socket and its TCP listener); anything else stands alone.
fn group_servers(answered: &[(Candidate, bool)]) -> Vec<Vec<(Candidate, bool)>> {
    let mut servers: Vec<Vec<(Candidate, bool)>> = Vec::new();
    for (c, tls) in answered {
        let key = |e: &Endpoint| {
            if e.is_local() {
                (String::new(), e.port)
            } else {
                (e.to_string(), e.port)
            }
        };
        match servers
            .iter_mut()
            .find(|s| key(&s[0].0.endpoint) == key(&c.endpoint))
        {
            Some(server) => server.push((c.clone(), *tls)),
            None => servers.push(vec![(c.clone(), *tls)]),
        }
    }
    // Sockets first: trust and peer logins live there.
    for server in &mut servers {
        server.sort_by_key(|(c, _)| !matches!(c.endpoint.host, Host::Socket(_)));
    }
    servers
}

fn describe_server(server: &[(Candidate, bool)]) -> String {
    let port = server[0].0.endpoint.port;
    let addresses: Vec<String> = server
        .iter()
        .map(|(c, tls)| match &c.endpoint.host {
            Host::Socket(dir) => format!("socket in {}", dir.display()),
            Host::Tcp(h) => format!("TCP {h}:{port}, TLS {}", if *tls { "on" } else { "off" }),
        })
        .collect();
    let origin = &server[0].0.origin;
    let origin = if origin.starts_with("socket") || origin.starts_with("TCP") {
        String::new()
    } else {
        format!(", from {origin}")
    };
    format!(
        "PostgreSQL on port {port} ({}{origin})",
        addresses.join("; ")
    )
}

fn short_failure(f: &FailureKind) -> String {
    match f {
        FailureKind::Server(e) => e.message.clone(),
        other => other.to_string(),
    }
}

fn password_origin(cfg: &ConnConfig) -> &'static str {
    match cfg.password_source {
        crate::dsn::PasswordSource::ConnString => "password from the URL",
        crate::dsn::PasswordSource::EnvPgPassword => "password from PGPASSWORD",
        crate::dsn::PasswordSource::PgPass => "password from ~/.pgpass",
        crate::dsn::PasswordSource::Prompt => "password typed",
        crate::dsn::PasswordSource::None => "no password needed",
    }
}

fn admin_conn_string(endpoint: &Endpoint, user: &str, db: &str) -> ConnString {
    ConnString {
        hosts: vec![HostSpec {
            host: Some(match &endpoint.host {
                Host::Tcp(h) => h.clone(),
                Host::Socket(d) => d.display().to_string(),
            }),
            port: Some(endpoint.port),
        }],
        user: Some(user.to_string()),
        dbname: Some(db.to_string()),
        ..ConnString::default()
    }
}

async fn prompt_admin_login(
    p: &Prompter,
    printer: &Printer,
    env: &ProcessEnvironment,
    endpoint: &Endpoint,
    user: Option<String>,
    bound: Duration,
    answered: Vec<(Endpoint, bool)>,
) -> CliResult<Admin> {
    let user = match user {
        Some(u) => u,
        None => {
            p.input("Admin user", Some("postgres".into()), |_| Ok(()))
                .await?
        }
    };
    let mut last = None;
    for attempt in 1..=3 {
        let password = p
            .password(&format!("Password for \"{user}\""), false)
            .await?;
        let mut cs = admin_conn_string(endpoint, &user, "postgres");
        cs.password = Some(Password::new(password));
        let mut cfg = cs.resolve(env)?;
        cfg.password_source = crate::dsn::PasswordSource::Prompt;
        let spinner = printer.spinner(&format!("Logging in as \"{user}\""));
        let result = connect::connect(&cfg, bound).await;
        drop(spinner);
        match result {
            Ok(c) => {
                printer.step(Mark::Pass, &format!("Logged in as \"{user}\""));
                return Ok(Admin {
                    endpoint: c.endpoint.clone(),
                    conn: c.conn,
                    cfg,
                    answered,
                    created_database: None,
                });
            }
            Err(f) if f.last().failure.sqlstate() == Some("28P01") && attempt < 3 => {
                printer.step(
                    Mark::Fail,
                    &format!(
                        "password authentication failed for user \"{user}\"; try again ({} left)",
                        3 - attempt
                    ),
                );
                last = Some((cfg, f));
            }
            Err(f) => return Err(connect_error(&cfg, &f, "the admin login failed").await),
        }
    }
    let (cfg, f) = last.expect("three attempts failed");
    Err(connect_error(&cfg, &f, "the admin login failed").await)
}

/// A connection failure as a CliError, named by the catalogue.
async fn connect_error(
    cfg: &ConnConfig,
    failure: &connect::ConnectFailure,
    what: &str,
) -> CliError {
    let attempt = failure.last();
    let mut ctx = Context::default();
    if matches!(
        attempt.failure,
        FailureKind::Refused | FailureKind::SocketMissing
    ) {
        ctx.start_command = std::env::current_dir()
            .ok()
            .and_then(|dir| projectserver::start_command_for(&attempt.endpoint, &dir))
            .or_else(|| diagnose::start_command(attempt.endpoint.port));
    }
    let d = diagnose::diagnose(cfg, attempt, &ctx);
    CliError::failure(format!("{what}: {}", d.message))
        .with_hint(d.hint)
        .with_code(d.code)
}

fn no_server_error(probed: &[probe::Probed], offers: &[Offer]) -> CliError {
    let places: Vec<String> = probed
        .iter()
        .map(|p| p.candidate.endpoint.to_string())
        .collect();
    let mut installed = Vec::new();
    for tool in ["psql", "postgres", "pg_ctl", "initdb", "docker"] {
        if let Ok(path) = which::which(tool) {
            installed.push(format!("{tool} ({})", path.display()));
        }
    }
    let installed = if installed.is_empty() {
        "none of psql, postgres, pg_ctl, docker".to_string()
    } else {
        installed.join(", ")
    };
    let mut hint = format!("installed: {installed}. ");
    if offers.is_empty() {
        hint.push_str(&diagnose::install_advice());
    } else {
        let flags: Vec<String> = offers
            .iter()
            .map(|o| format!("`--start-server {}` starts {}", o.flag(), o.describe()))
            .collect();
        hint.push_str(&format!(
            "aksara can start one for this project: {}. Or: {}",
            flags.join(", or "),
            diagnose::install_advice()
        ));
    }
    CliError::failure(format!(
        "no PostgreSQL server answers; probed: {}",
        places.join(", ")
    ))
    .with_code(Code::ConnectionRefused)
    .with_hint(hint)
}

/// A server aksara can start on this machine.
enum Offer {
    Local(localserver::Binaries),
    Docker,
}

impl Offer {
    fn flag(&self) -> &'static str {
        match self {
            Offer::Local(_) => "local",
            Offer::Docker => "docker",
        }
    }

    /// What the offer starts, for the menu ("Start …") and the hint after a refusal.
    fn describe(&self) -> String {
        match self {
            Offer::Local(b) => format!(
                "PostgreSQL {} for this project (data in .aksara/postgres, programs in {})",
                b.version,
                b.bindir.display()
            ),
            Offer::Docker => format!(
                "PostgreSQL in Docker (container {}, image {}, volume {})",
                crate::docker::CONTAINER,
                crate::docker::IMAGE,
                crate::docker::VOLUME
            ),
        }
    }
}

/// The project folder: where dbsetup runs, as for `.env`.
fn project_layout() -> CliResult<Layout> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failure(format!("cannot read the current folder: {e}")))?;
    Ok(Layout::in_project(&cwd))
}

/// No server answers: offer what this machine can start (installed server programs first,
/// then a Docker engine), or fail with what was probed and how to install PostgreSQL.
async fn offer_server(
    args: &DbsetupArgs,
    printer: &Printer,
    prompter: Option<&Prompter>,
    env: &ProcessEnvironment,
    layout: &Layout,
    probed: &[probe::Probed],
    bound: Duration,
) -> CliResult<Admin> {
    let mut offers = Vec::new();
    if args.start_server != Some(StartServer::Never) {
        if let Ok(bins) = localserver::find_binaries() {
            offers.push(Offer::Local(bins));
        }
        let spinner = printer.spinner("Asking Docker");
        if crate::docker::engine_answers(serverup::DOCKER_INFO_BOUND).await {
            offers.push(Offer::Docker);
        }
        drop(spinner);
    }
    let Some(p) = prompter.filter(|_| !offers.is_empty()) else {
        return Err(no_server_error(probed, &offers));
    };
    let places: Vec<String> = probed
        .iter()
        .map(|p| p.candidate.endpoint.to_string())
        .collect();
    printer.step(
        Mark::Fail,
        &format!(
            "No PostgreSQL server answers (probed {})",
            places.join(", ")
        ),
    );
    let mut items: Vec<String> = offers
        .iter()
        .map(|o| format!("Start {}", o.describe()))
        .collect();
    items.push("Neither: show how to install PostgreSQL".into());
    let choice = p.select("Start a PostgreSQL server?", items, 0).await?;
    let kind = match offers.get(choice) {
        Some(Offer::Local(_)) => StartServer::Local,
        Some(Offer::Docker) => StartServer::Docker,
        None => {
            return Err(
                CliError::failure("no PostgreSQL server answers, and none was started")
                    .with_code(Code::ConnectionRefused)
                    .with_hint(diagnose::install_advice()),
            );
        }
    };
    project_admin(args, printer, env, layout, kind, true, bound).await
}

/// Bring the project's own server up (creating it on first use) and log in as its superuser.
async fn project_admin(
    args: &DbsetupArgs,
    printer: &Printer,
    env: &ProcessEnvironment,
    layout: &Layout,
    kind: StartServer,
    allow_start: bool,
    bound: Duration,
) -> CliResult<Admin> {
    let wait = Duration::from_secs(args.start_timeout.max(1));
    let up = match kind {
        StartServer::Docker => {
            // The image creates POSTGRES_DB as it starts: the database this setup is for.
            let db = args
                .db_name
                .clone()
                .unwrap_or_else(|| provision::default_db_name(&folder_name()));
            serverup::docker(layout, args.server_port, &db, allow_start, printer).await?
        }
        _ => serverup::local(layout, args.server_port, wait, allow_start, printer).await?,
    };
    ignore_project_folder(layout, printer)?;
    let (c, cfg) = serverup::login(layout, &up, env, wait, bound, printer).await?;
    Ok(Admin {
        endpoint: c.endpoint.clone(),
        conn: c.conn,
        cfg,
        answered: Vec::new(),
        created_database: up.created_database,
    })
}

/// `.aksara/` holds the superuser password and the data: git must not pick it up.
fn ignore_project_folder(layout: &Layout, printer: &Printer) -> CliResult<()> {
    match envfile::git_ignore_status(&layout.root()) {
        GitIgnoreStatus::NotIgnored { repo_root } => {
            let pattern = relative_pattern(&layout.root(), &repo_root);
            let pattern = format!("{}/", pattern.trim_end_matches('/'));
            if envfile::add_to_gitignore(&repo_root, &pattern)? {
                printer.step(
                    Mark::Pass,
                    &format!(
                        "Added `{pattern}` to {} (it holds the superuser password and the data)",
                        repo_root.join(".gitignore").display()
                    ),
                );
            }
        }
        GitIgnoreStatus::Tracked { repo_root } => printer.warn(&format!(
            "{} is committed to git, and it holds the superuser password: `git rm -r --cached {}` and add `/{}` to {}",
            layout.root().display(),
            layout.root().display(),
            GITIGNORE_PATTERN,
            repo_root.join(".gitignore").display()
        )),
        _ => {}
    }
    Ok(())
}

fn folder_name() -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "app".into())
}

/// Bound every statement of the admin session on the server's side too, and record the
/// session so that it can be found (and ended) if this run is interrupted.
async fn start_admin_session(
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

async fn admin_rights(conn: &mut PgConnection, limits: Limits) -> CliResult<AdminRights> {
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
async fn advisory_lock(
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
        Err(_) => Err(no_answer(limits.client())),
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

async fn existing_objects(
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
struct Created {
    role: bool,
    database: bool,
}

/// Run the plan, recording each statement in `progress` before it is sent and when it is
/// done. duplicate_object / duplicate_database from a racing run count as "exists".
async fn execute(
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
                    return Err(CliError::failure(format!(
                        "`{}` failed: {}",
                        step.sql(true),
                        e.message
                    ))
                    .with_optional_hint(e.hint));
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

/// Connect with the final URL as the application user, run SELECT 1, and prove it can create
/// a table (rolled back). Returns the server version and whether TLS is in use.
async fn verify(
    cs: &ConnString,
    env: &ProcessEnvironment,
    limits: Limits,
) -> CliResult<(String, bool)> {
    let cfg = cs.resolve(env)?;
    let failed = "verification as the application user failed";
    let mut c = match connect::connect(&cfg, limits.connect).await {
        Ok(c) => c,
        Err(f) => return Err(connect_error(&cfg, &f, failed).await),
    };
    let row = bounded(
        limits,
        sqlx::query_as::<_, (String, Option<bool>)>("SELECT current_setting('server_version'), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
            .fetch_one(&mut c.conn),
    )
    .await;
    let row = match row {
        Ok(row) => row,
        Err(e) => {
            connect::close(c.conn).await;
            return Err(CliError::failure(format!("{failed}: {}", e.message)));
        }
    };
    let table = crate::session::can_create_table(&mut c.conn, limits.statement).await;
    connect::close(c.conn).await;
    match table {
        Ok(()) => Ok((row.0, row.1.unwrap_or(false))),
        Err(crate::session::TableCheck::Denied(message)) => Err(CliError::failure(format!(
            "verification: user \"{}\" cannot create tables in \"{}\": {message}",
            cfg.user, cfg.dbname
        ))
        .with_code(Code::CannotCreateTables)),
        Err(crate::session::TableCheck::ReadOnly(message)) => Err(CliError::failure(format!(
            "verification: the session of user \"{}\" in \"{}\" is read-only: {message}",
            cfg.user, cfg.dbname
        ))
        .with_code(Code::CannotCreateTables)
        .with_hint("the server is a standby, or default_transaction_read_only is on for this database or role: set up against the primary")),
        Err(crate::session::TableCheck::Unknown(message)) => {
            Err(CliError::failure(format!("{failed}: {message}")))
        }
    }
}

/// Write the key, waiting for another process editing the same folder without blocking the
/// runtime, so that Ctrl-C still works while it waits.
async fn write_env(
    path: &Path,
    key: &str,
    value: &str,
    on_conflict: OnConflict,
    printer: &Printer,
) -> Result<Change, EnvFileError> {
    let deadline = Instant::now() + envfile::DEFAULT_LOCK_WAIT;
    let mut told = false;
    loop {
        match envfile::write_key_with(path, key, value, on_conflict, Duration::ZERO) {
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

async fn gitignore_advice(
    path: &Path,
    printer: &Printer,
    prompter: Option<&Prompter>,
) -> CliResult<()> {
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
        let pattern = relative_pattern(path, &repo_root);
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

fn relative_pattern(path: &Path, repo_root: &Path) -> String {
    let abs: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let root = std::fs::canonicalize(repo_root).unwrap_or_else(|_| repo_root.to_path_buf());
    match abs.strip_prefix(&root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| ".env".into()),
    }
}

fn print_summary(printer: &Printer, o: &Outcome) {
    let created = |c: bool| if c { "created" } else { "reused" };
    if !printer.is_quiet() {
        printer.result("");
    }
    printer.result(&format!(
        "{} Database \"{}\" is ready",
        printer.mark(Mark::Pass),
        o.database.name
    ));
    printer.result(&format!(
        "  database  {} ({})",
        o.database.name,
        created(o.database.created)
    ));
    printer.result(&format!(
        "  user      {} ({}, password {})",
        o.role.name,
        created(o.role.created),
        o.role.password
    ));
    printer.result(&format!(
        "  server    PostgreSQL {}, TLS {}",
        o.server_version
            .split_whitespace()
            .next()
            .unwrap_or_default(),
        if o.tls { "in use" } else { "not in use" }
    ));
    printer.result(&format!(
        "  {:<9} {}={} ({})",
        o.env_file, o.env_key, o.url, o.env_change
    ));
    // Advice, not the result: --quiet leaves it out.
    if !printer.is_quiet() {
        printer.result("");
        printer.result("Next steps:");
        printer.result("  aksara makemigrations --app app.models");
        printer.result("  aksara migrate");
    }
}
