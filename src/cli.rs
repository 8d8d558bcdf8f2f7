//! The command line as the user types it: clap definitions only, no I/O and no defaults that
//! need the environment, and `Cli::parse_from_args`, which parses `doctor` and `dbsetup` lines
//! against that subcommand alone. `commands/*` turn these into resolved settings.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  aksara dbsetup                                     set up a database, asking as it goes
  aksara dbsetup --non-interactive --db-name myapp   the same in CI, never asking
  aksara doctor                                      diagnose the DATABASE_URL in ./.env
  aksara doctor --format json --wait 30              wait for the database, report as JSON
  aksara dbserver status                             the project's own server, if dbsetup started one
  aksara completions bash > ~/.local/share/bash-completion/completions/aksara
  aksara migrate                                     any other command: `aksara-migrate` on PATH,
                                                     else .venv/bin/python -m aksara migrate

Exit codes:
  0    success (doctor: no check failed; warnings allowed; dbserver status: running)
  1    failure (doctor: a check failed)
  2    usage error (a missing or invalid flag, no terminal without --non-interactive)
  3    dbserver status: this project's server is stopped
  4    dbserver: this project has no server of its own
  130  interrupted (Ctrl-C); .env is not written
  143  terminated (SIGTERM, e.g. a cancelled CI job); cleaned up as for Ctrl-C";

const DBSETUP_AFTER_HELP: &str = "\
Examples:
  aksara dbsetup
  PGPASSWORD=... aksara dbsetup --non-interactive --db-name myapp --admin-url postgresql://postgres@localhost/postgres
  aksara dbsetup --non-interactive --db-name myapp --start-server local

When no PostgreSQL answers, dbsetup offers to start one for this project: a cluster in
.aksara/postgres from the installed server programs, or the aksara-postgres Docker
container. Its superuser password is kept in .aksara/postgres-password (0600); manage it
with `aksara dbserver start|stop|status`.

Exit codes:
  0    the database and user exist, the URL works, .env holds it (a rerun changes nothing)
  1    failure: no server, no admin login, a missing privilege, a different value in .env
  2    usage error: a missing or invalid flag, no terminal without --non-interactive
  130  interrupted (Ctrl-C); .env is not written
  143  terminated (SIGTERM, e.g. a cancelled CI job); cleaned up as for Ctrl-C";

/// Every environment variable aksara reads, with what for: `--help`, the man page and the
/// README's table are written from (or tested against) this list.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGCONNECT_TIMEOUT, PGAPPNAME, PGSSLROOTCERT, PGOPTIONS",
        "defaults for what a connection string leaves out, as in libpq",
    ),
    ("PGPASSFILE", "the password file (default ~/.pgpass)"),
    (
        "DATABASE_URL",
        "the URL `doctor` checks when --url and .env give none",
    ),
    (
        "AKSARA_DB_PASSWORD",
        "the application password for `dbsetup` (instead of generating one)",
    ),
    ("NO_COLOR", "no colours; ASCII marks"),
    (
        "AKSARA_PROMPT_SCRIPT",
        "tests only: a file of answers to `dbsetup`'s questions, used instead of a terminal",
    ),
    (
        "VIRTUAL_ENV",
        "the activated Python environment a forwarded command (`aksara migrate`) runs in, before ./.venv",
    ),
    (
        "AKSARA_TEST_PAUSE",
        "tests only: `<point>:<file>` holds `dbsetup --start-server local` at that point so a test can SIGKILL it there",
    ),
];

fn environment_help() -> String {
    let mut text = String::from("Environment:\n");
    for (names, meaning) in ENVIRONMENT {
        // The names, wrapped at 80 columns, then what they are for.
        let mut line = String::from(" ");
        for name in names.split(", ") {
            if line.len() + name.len() + 1 > 80 {
                text.push_str(&line);
                text.push('\n');
                line = String::from(" ");
            }
            line.push(' ');
            line.push_str(name);
        }
        text.push_str(&line);
        text.push_str(&format!("\n      {meaning}\n"));
    }
    text
}

fn long_after_help() -> String {
    format!("{AFTER_HELP}\n\n{}", environment_help().trim_end())
}

#[derive(Debug, Parser)]
#[command(
    name = "aksara",
    version,
    about = "Set up PostgreSQL for your project, and diagnose connection failures",
    long_about = "Set up PostgreSQL for your project: find or start a server, create the database and \
                  its user, and write a working DATABASE_URL to .env. When a connection fails, \
                  `aksara doctor` names the cause and the exact fix.",
    after_help = AFTER_HELP,
    after_long_help = long_after_help(),
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// When to use colours: auto (terminal and no NO_COLOR), always, never
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    /// Print only errors and the final result
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail (the SQL run, timings, installed tools)
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database and its user, and write DATABASE_URL to .env
    ///
    /// Example: aksara dbsetup --non-interactive --db-name myapp
    #[command(after_help = DBSETUP_AFTER_HELP)]
    Dbsetup(DbsetupArgs),

    /// Start, stop or show this project's own PostgreSQL (the one dbsetup started)
    ///
    /// Example: aksara dbserver status
    #[command(after_help = DBSERVER_AFTER_HELP)]
    Dbserver(DbserverArgs),

    /// Check a database connection step by step and name the fix for what fails
    ///
    /// Example: aksara doctor --url postgresql://app@localhost/app
    #[command(
        after_help = doctor_after_help()
    )]
    Doctor(DoctorArgs),

    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    ///
    /// Example: aksara completions bash > ~/.local/share/bash-completion/completions/aksara
    #[command(after_help = COMPLETIONS_AFTER_HELP)]
    Completions(CompletionsArgs),

    /// Any other command is forwarded, as cargo and git do: `aksara NAME ARGS` runs
    /// `aksara-NAME ARGS` from PATH, else the project's `.venv/bin/python -m aksara NAME ARGS`
    /// (the Aksara framework's CLI: makemigrations, migrate)
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

const COMPLETIONS_AFTER_HELP: &str = "\
Where the script goes:
  bash        aksara completions bash > ~/.local/share/bash-completion/completions/aksara
  zsh         aksara completions zsh > ~/.zfunc/_aksara   (with fpath+=~/.zfunc in ~/.zshrc)
  fish        aksara completions fish > ~/.config/fish/completions/aksara.fish
  powershell  aksara completions powershell >> $PROFILE

Exit codes:
  0    the script was printed
  2    usage error (an unknown shell)";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct DbsetupArgs {
    /// Never prompt; fail naming the flag that is missing (for CI)
    #[arg(long)]
    pub non_interactive: bool,

    /// Connection string of a role that may create databases and roles [default: PG* variables, ~/.pgpass, local socket]
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,

    /// Name of the database to create or reuse
    #[arg(long, value_name = "NAME")]
    pub db_name: Option<String>,

    /// Name of the application role [default: the one .env's URL names for that database, else the database name]
    #[arg(long, value_name = "NAME")]
    pub db_user: Option<String>,

    /// Read the application password from standard input (else AKSARA_DB_PASSWORD, else, for a new role, the one .env's URL gives it, else generated)
    #[arg(long)]
    pub db_password_stdin: bool,

    #[command(flatten)]
    pub env: EnvFileArgs,

    /// The variable to write
    #[arg(long, value_name = "KEY", default_value = "DATABASE_URL")]
    pub env_key: String,

    /// A read replica (streaming standby) of the server: after the setup, log in there as the
    /// application user, check it is a standby, and write DATABASE_REPLICA_URL (its host, port
    /// and sslmode; the app's user, password and database)
    #[arg(long, value_name = "URL")]
    pub replica_url: Option<String>,

    /// sslmode to put into the written URL
    #[arg(long, value_name = "MODE", value_parser = SslModeValues)]
    pub sslmode: Option<String>,

    /// Also write DRIVER's own form of the same URL (same user, password, server) under KEY,
    /// in the same .env write as --env-key: for a driver that one URL cannot serve, e.g.
    /// `sqlalchemy-asyncpg=SQLALCHEMY_DATABASE_URL` (its scheme and `ssl=`) or
    /// `node-pg=NODE_PG_DATABASE_URL` (its `sslmode` semantics). Repeatable. DRIVER is one of
    /// sqlalchemy-asyncpg, sqlalchemy-psycopg, node-pg, jdbc. Named after what it writes, a
    /// driver's URL, beside --replica-url; doctor judges such a key with that driver's reading
    #[arg(long, value_name = "DRIVER=KEY")]
    pub driver_url: Vec<String>,

    /// Replace a different existing value of the key (the old line is kept as a comment);
    /// `--force privileged-role` / `--force postgres-database` allow what is refused otherwise;
    /// `--force password` sets a new generated password on an existing user whose working URL
    /// the .env does not hold (which breaks every URL holding its current one)
    #[arg(long, value_name = "WHAT", num_args = 0..=1, default_missing_value = "env", value_parser = ["env", "privileged-role", "postgres-database", "password"])]
    pub force: Vec<String>,

    /// Let a server that asks for the password in cleartext have it over TCP without TLS
    #[arg(long)]
    pub allow_cleartext: bool,

    /// Output format of the result
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Seconds to wait for each connection attempt
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub connect_timeout: u64,

    /// Start a server for this project: `local` (a cluster in .aksara/postgres from the installed
    /// server programs) or `docker` (the aksara-postgres container) skip the search for a running
    /// server; `never` fails when none answers [default: ask when none answers; never with
    /// --non-interactive]
    #[arg(long, value_enum, value_name = "HOW")]
    pub start_server: Option<StartServer>,

    /// First TCP port to try for a server aksara starts (the next free one when it is taken)
    #[arg(long, value_name = "PORT", default_value_t = 5432)]
    pub server_port: u16,

    /// Seconds to wait for a started server to accept connections
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub start_timeout: u64,

    /// Seconds to wait for the server on any one step: a statement, or another dbsetup's lock
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

/// Whether `dbsetup` starts a server of the project's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartServer {
    /// A cluster in .aksara/postgres, run with the installed PostgreSQL server programs
    Local,
    /// The seed page's Docker quickstart: container aksara-postgres, volume aksara_pgdata
    Docker,
    /// Only use a server that already runs
    Never,
    /// Start the machine's installed cluster that is configured but down (pg_ctlcluster,
    /// brew services, systemctl), then use it
    Installed,
}

const DBSERVER_AFTER_HELP: &str = "\
Examples:
  aksara dbserver status            port, socket, data folder, version; running or not
  aksara dbserver start             after a reboot: start it again, with its data
  aksara dbserver stop              stop it (fast: sessions end, data is kept)

The project's server is the one `aksara dbsetup` started (see --start-server): a cluster in
.aksara/postgres, or the aksara-postgres Docker container. Its record is .aksara/server.json,
found from the current folder or any folder above it.

Exit codes:
  0    success; status: running
  1    failure
  3    status: stopped
  4    this project has no server of its own (no .aksara/server.json here or above)";

#[derive(Debug, Args)]
pub struct DbserverArgs {
    #[command(subcommand)]
    pub action: DbserverAction,
}

#[derive(Debug, Subcommand)]
pub enum DbserverAction {
    /// Start this project's server (after a reboot, say); its data is kept
    Start {
        /// Seconds to wait for it to accept connections
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        start_timeout: u64,
    },
    /// Stop this project's server (fast shutdown: sessions end, data is kept)
    Stop,
    /// Show port, socket, data folder and version, and whether it runs (exit 0 running, 3 stopped)
    Status {
        /// Output format
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// libpq's sslmodes: `--sslmode` takes these (and shell completion offers them).
pub const SSLMODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// `--sslmode`'s values for completion and `--help`, while the value itself is checked by
/// `dbsetup` (its error names the modes and carries a hint, as every dbsetup usage error does).
#[derive(Debug, Clone, Copy)]
pub struct SslModeValues;

impl clap::builder::TypedValueParser for SslModeValues {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        Ok(value.to_string_lossy().into_owned())
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            SSLMODES
                .iter()
                .map(|m| clap::builder::PossibleValue::new(*m)),
        ))
    }
}

fn parse_driver(name: &str) -> Result<crate::drivers::Driver, String> {
    crate::drivers::Driver::from_id(name).ok_or_else(|| {
        let ids: Vec<&str> = crate::drivers::Driver::ALL.iter().map(|d| d.id()).collect();
        format!("unknown driver; one of {}", ids.join(", "))
    })
}

/// `doctor`'s `.env`: read only.
#[derive(Debug, Args)]
pub struct EnvFileReadArgs {
    /// The .env file to read DATABASE_URL from (doctor writes it only with --fix) [default:
    /// .env here, else the nearest one above it in the project, as python-dotenv finds it]
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnvFileArgs {
    /// The .env file to read and write [default: .env here, else the nearest one above it in
    /// the project, as python-dotenv finds it; else a new .env here]
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

/// The doctor's examples and its failure codes, from the catalogue (one source for both).
fn doctor_after_help() -> String {
    let mut text = String::from(
        "Examples:\n  aksara doctor\n  aksara doctor --url postgresql://app@localhost:5432/app --format json\n  aksara doctor --wait 30\n  aksara doctor --fix --yes    apply the safe fixes, then check again\n\nExit codes:\n  0    no check failed (warnings allowed)\n  1    a check failed: its code is one of the failure codes below\n  2    usage error: a missing or invalid flag, no URL to check\n\nFailure codes (exit 1):\n",
    );
    use crate::code::{Code, Severity};
    for line in Code::help_lines(Severity::Failure) {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str("\nWarning codes (exit 0):\n");
    text.push_str(
        &Code::help_lines(Severity::Warning)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    text
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The connection string to check [default: DATABASE_URL from --env-file, else from the environment]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    #[command(flatten)]
    pub env: EnvFileReadArgs,

    /// Seconds to wait for the server to answer (the URL's connect_timeout wins)
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub connect_timeout: u64,

    /// Retry until the server is ready or SECONDS pass; stops early on failures waiting cannot fix
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,

    /// Pool size per application instance, for the connection-limit check
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub pool_max: u32,

    /// Number of application instances sharing the database
    #[arg(long, value_name = "M", default_value_t = 1)]
    pub instances: u32,

    /// Also check what this driver makes of the URL (repeatable): libpq, asyncpg,
    /// sqlalchemy-asyncpg, sqlalchemy-psycopg, node-pg, prisma, sqlx, jdbc [default: the
    /// project's, from pyproject.toml, requirements*.txt, package.json or Cargo.toml; else
    /// asyncpg and libpq]
    #[arg(long, value_name = "NAME", value_parser = parse_driver)]
    pub driver: Vec<crate::drivers::Driver>,

    /// Warn when a standby is more than SECONDS behind its primary
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub max_lag: u64,

    /// Let a server that asks for the password in cleartext have it over TCP without TLS
    #[arg(long)]
    pub allow_cleartext: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// After the checks, apply the fixes aksara can make safely (file modes, .gitignore, the
    /// URL for the driver, CREATE DATABASE, ALTER ROLE ... LOGIN, GRANT ..., starting the
    /// server), each shown exactly and asked about first, then check again; exit 0 only when
    /// the new check passes
    #[arg(long)]
    pub fix: bool,

    /// With --fix: apply every fix without asking (for CI; without a terminal --fix needs it)
    #[arg(long, requires = "fix")]
    pub yes: bool,
}

impl Cli {
    /// Parses a command line (`args[0]` is the program). A line that names `doctor` or
    /// `dbsetup` first, the common case, is parsed against a tree holding that one subcommand
    /// and none of the help texts: the whole tree makes clap build every subcommand's
    /// arguments and both computed help texts (the codes list, the variables table) before
    /// it parses, 0.3 M instructions and 7–15 first-touched pages of code and heap of a 5 ms
    /// doctor run (bench/NOTES.md section 22). Whatever that tree does not parse (help,
    /// version, a usage error, any other form) is parsed again against the whole tree, which
    /// is what prints; a value the small tree gives is the one the whole tree gives
    /// (`cli_tests.rs` holds both to the same lines).
    pub fn parse_from_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let small = args
            .get(1)
            .and_then(|name| one_subcommand_tree(name))
            .and_then(|tree| tree.try_get_matches_from(&args).ok())
            .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches).ok());
        if let Some(cli) = small {
            return Ok(cli);
        }
        let mut matches = Cli::command().try_get_matches_from(args)?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

/// The whole tree's top level (its name, the global arguments, a required subcommand) with
/// only the subcommand `name`, its arguments built by the same derive as in the whole tree,
/// and no help texts, version or other subcommands: a line that needs any of those fails
/// here and goes to the whole tree.
pub(crate) fn one_subcommand_tree(name: &std::ffi::OsStr) -> Option<clap::Command> {
    let subcommand = match name.to_str()? {
        "doctor" => DoctorArgs::augment_args(clap::Command::new("doctor")),
        "dbsetup" => DbsetupArgs::augment_args(clap::Command::new("dbsetup")),
        _ => return None,
    };
    Some(
        GlobalArgs::augment_args(clap::Command::new("aksara"))
            .subcommand_required(true)
            .subcommand(subcommand),
    )
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
