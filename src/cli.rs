//! The command line as the user types it: clap definitions only, no I/O and no defaults that
//! need the environment. `commands/*` turn these into resolved settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  aksara dbsetup                                     set up a database, asking as it goes
  aksara dbsetup --non-interactive --db-name myapp   the same in CI, never asking
  aksara doctor                                      diagnose the DATABASE_URL in ./.env
  aksara doctor --format json --wait 30              wait for the database, report as JSON

Exit codes:
  0    success (doctor: no check failed; warnings allowed)
  1    failure (doctor: a check failed)
  2    usage error (a missing or invalid flag)
  130  interrupted (Ctrl-C)";

#[derive(Debug, Parser)]
#[command(
    name = "aksara",
    version,
    about = "Set up PostgreSQL for your project, and diagnose connection failures",
    long_about = "Set up PostgreSQL for your project: find or start a server, create the database and \
                  its user, and write a working DATABASE_URL to .env. When a connection fails, \
                  `aksara doctor` names the cause and the exact fix.",
    after_help = AFTER_HELP,
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
    #[command(
        after_help = "Example:\n  aksara dbsetup\n  aksara dbsetup --non-interactive --db-name myapp --admin-url postgresql://postgres@localhost/postgres"
    )]
    Dbsetup(DbsetupArgs),

    /// Check a database connection step by step and name the fix for what fails
    ///
    /// Example: aksara doctor --url postgresql://app@localhost/app
    #[command(
        after_help = doctor_after_help()
    )]
    Doctor(DoctorArgs),
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

    /// Name of the application role [default: the database name]
    #[arg(long, value_name = "NAME")]
    pub db_user: Option<String>,

    /// Read the application password from standard input (else AKSARA_DB_PASSWORD, else generated)
    #[arg(long)]
    pub db_password_stdin: bool,

    #[command(flatten)]
    pub env: EnvFileArgs,

    /// The variable to write
    #[arg(long, value_name = "KEY", default_value = "DATABASE_URL")]
    pub env_key: String,

    /// sslmode to put into the written URL
    #[arg(long, value_name = "MODE")]
    pub sslmode: Option<String>,

    /// Replace a different existing value of the key (the old line is kept as a comment)
    #[arg(long)]
    pub force: bool,

    /// Output format of the result
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Seconds to wait for each connection attempt
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub connect_timeout: u64,

    /// Seconds to wait for the server on any one step: a statement, or another dbsetup's lock
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct EnvFileArgs {
    /// The .env file to read and write
    #[arg(long, value_name = "PATH", default_value = ".env")]
    pub env_file: PathBuf,
}

/// The doctor's examples and its failure codes, from the catalogue (one source for both).
fn doctor_after_help() -> String {
    let mut text = String::from(
        "Examples:\n  aksara doctor\n  aksara doctor --url postgresql://app@localhost:5432/app --format json\n  aksara doctor --wait 30\n\nFailure codes (exit 1):\n",
    );
    let mut warnings = String::from("\nWarning codes (exit 0):\n");
    for entry in crate::diagnose::CATALOGUE {
        let line = format!("  {:<26}{}\n", entry.code, entry.meaning);
        match entry.severity {
            crate::diagnose::Severity::Failure => text.push_str(&line),
            crate::diagnose::Severity::Warning => warnings.push_str(&line),
        }
    }
    text + &warnings
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The connection string to check [default: DATABASE_URL from --env-file, else from the environment]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    #[command(flatten)]
    pub env: EnvFileArgs,

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

    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}
