//! What the command line and the environment settle before the server is asked anything:
//! `Settings::resolve` validates every flag once (names, `--env-key`, `--sslmode`, the
//! password's source, the server policy) and turns them into settings the phases read. Pure:
//! the terminal check and the two password sources come in as values, so it is unit-tested.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{DbsetupArgs, OutputFormat, StartServer};
use crate::code::Code;
use crate::drivers::{Driver, forms};
use crate::dsn::{ConnString, SslMode};
use crate::envfile;
use crate::error::{CliError, CliResult};
use crate::provision::{self, NameKind};

use super::progress::Limits;

/// A name given on the command line, or one to ask for (interactive runs only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Given(String),
    Ask,
}

/// The application password given by the user (never on argv), and where it came from.
#[derive(Clone)]
pub struct GivenPassword {
    pub value: String,
    pub source: &'static str,
}

impl std::fmt::Debug for GivenPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GivenPassword(**** from {})", self.source)
    }
}

/// What the environment contributes to the settings, as values.
pub struct Inputs {
    pub stdin_is_terminal: bool,
    /// `AKSARA_DB_PASSWORD`, when set.
    pub password_env: Option<String>,
    /// Standard input, read only for `--db-password-stdin`.
    pub read_stdin: Box<dyn FnOnce() -> std::io::Result<String>>,
    /// The `.env` to use when `--env-file` is not given (`envfile::default_path`).
    pub default_env_file: PathBuf,
}

/// A driver whose own form of the URL goes under `key`, in the same `.env` write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverKey {
    pub driver: Driver,
    pub key: String,
}

#[derive(Debug)]
pub struct Settings {
    pub interactive: bool,
    pub db_name: Name,
    /// `None`: named after the database (asked for when the database name is asked for).
    pub db_user: Option<String>,
    pub sslmode: Option<SslMode>,
    pub password: Option<GivenPassword>,
    pub limits: Limits,
    pub env_file: PathBuf,
    /// `--env-file` was given (else `env_file` is `envfile::default_path`'s choice).
    pub env_file_given: bool,
    pub env_key: String,
    /// `--driver-url DRIVER=KEY`: drivers whose own form is written too, each under its key.
    pub driver_urls: Vec<DriverKey>,
    pub admin_url: Option<String>,
    /// `--replica-url`: the standby's address (host, port, sslmode).
    pub replica: Option<ConnString>,
    pub start_server: Option<StartServer>,
    pub server_port: u16,
    pub start_timeout: Duration,
    /// `--force`: replace a different value of the key in `.env`.
    pub force: bool,
    /// `--force privileged-role|postgres-database`.
    pub forced: provision::Forced,
    /// `--force password`: without a prompt, an existing user whose working URL `.env` does not
    /// hold gets a new generated password (else that is refused: it breaks the URLs that hold
    /// the current one).
    pub force_new_password: bool,
    pub allow_cleartext: bool,
    pub json: bool,
}

impl Settings {
    /// A `.env` symlink pointing out of its folder is written through only with `--force`.
    pub fn outside(&self) -> crate::envfile::Outside {
        if self.force {
            crate::envfile::Outside::Allow
        } else {
            crate::envfile::Outside::Refuse
        }
    }

    /// Every flag checked before anything is touched: a bad value is a usage error (exit 2),
    /// never a failure found after the database was created.
    pub fn resolve(args: &DbsetupArgs, inputs: Inputs) -> CliResult<Settings> {
        let interactive = !args.non_interactive;
        if interactive && !inputs.stdin_is_terminal {
            return Err(CliError::usage("standard input is not a terminal, so aksara cannot ask its questions")
                .with_hint("pass --non-interactive with --db-name NAME (and --admin-url URL if PG* variables do not reach an admin role)"));
        }
        let db_name = match (&args.db_name, interactive) {
            (Some(name), _) => Name::Given(name.clone()),
            (None, true) => Name::Ask,
            (None, false) => {
                return Err(
                    CliError::usage("--db-name is required with --non-interactive")
                        .with_hint("pass --db-name NAME"),
                );
            }
        };
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
        validate_names(args)?;
        let driver_urls = driver_keys(&args.driver_url, &args.env_key)?;
        let replica = match &args.replica_url {
            Some(url) => Some(ConnString::parse(url).map_err(|e| {
                CliError::usage(format!("invalid --replica-url: {e}"))
                    .with_optional_hint(e.hint())
                    .with_code(Code::InvalidUrl)
            })?),
            None => None,
        };
        let env_file = match &args.env.env_file {
            Some(given) => given.clone(),
            None => inputs.default_env_file.clone(),
        };
        let password = given_password(args, inputs)?;
        Ok(Settings {
            interactive,
            db_name,
            db_user: args.db_user.clone(),
            sslmode,
            password,
            limits: Limits {
                connect: Duration::from_secs(args.connect_timeout.max(1)),
                statement: Duration::from_secs(args.timeout.max(1)),
            },
            env_file,
            env_file_given: args.env.env_file.is_some(),
            env_key: args.env_key.clone(),
            driver_urls,
            admin_url: args.admin_url.clone(),
            replica,
            start_server: args.start_server,
            server_port: args.server_port,
            start_timeout: Duration::from_secs(args.start_timeout.max(1)),
            force: args.force.iter().any(|w| w == "env"),
            forced: provision::Forced {
                privileged_role: args.force.iter().any(|w| w == "privileged-role"),
                postgres_database: args.force.iter().any(|w| w == "postgres-database"),
            },
            force_new_password: args.force.iter().any(|w| w == "password"),
            allow_cleartext: args.allow_cleartext,
            json: args.format == OutputFormat::Json,
        })
    }
}

fn validate_names(args: &DbsetupArgs) -> CliResult<()> {
    if let Some(name) = &args.db_name {
        provision::validate_name(NameKind::Database, name).map_err(name_error)?;
    }
    match (&args.db_user, &args.db_name) {
        (Some(name), _) => provision::validate_name(NameKind::Role, name).map_err(name_error),
        // The user is named after the database: say so when that name cannot be a user's.
        (None, Some(db)) => {
            provision::validate_name(NameKind::Role, &provision::default_role_name(db)).map_err(
                |e| {
                    CliError::usage(format!("{e} (the user is named after the database)"))
                        .with_hint("pass --db-user NAME with another name for the user")
                },
            )
        }
        (None, None) => Ok(()),
    }
}

/// `--driver-url DRIVER=KEY`, each checked: a driver with a form of its own, given once, and a
/// key that is valid, not `--env-key`, not another's, and not one doctor or libpq reads as
/// something else.
fn driver_keys(given: &[String], env_key: &str) -> CliResult<Vec<DriverKey>> {
    let mut out: Vec<DriverKey> = Vec::new();
    for text in given {
        let error = |what: String| {
            CliError::usage(format!("invalid --driver-url `{text}`: {what}")).before_any_change()
        };
        let Some((name, key)) = text.split_once('=') else {
            return Err(error("it names no key".into()).with_hint(
                "pass --driver-url DRIVER=KEY, like `--driver-url sqlalchemy-asyncpg=SQLALCHEMY_DATABASE_URL`",
            ));
        };
        let Some(driver) = Driver::from_id(name) else {
            let ids: Vec<&str> = forms::WRITABLE.iter().map(|d| d.id()).collect();
            return Err(error(format!("`{name}` is not a driver aksara knows"))
                .with_hint(format!("use one of {}", ids.join(", "))));
        };
        if let Some(why) = forms::not_writable(driver) {
            return Err(error(why));
        }
        let another = format!("choose another key, like `{}`", forms::default_key(driver));
        if let Err(e) = envfile::validate_key(key) {
            return Err(error(e.to_string()).with_optional_hint(e.hint()));
        }
        if key == env_key {
            return Err(error(format!(
                "`{key}` is --env-key, which gets the URL every driver reads"
            ))
            .with_hint(another));
        }
        if let Some(why) = forms::refused_key(key) {
            return Err(error(why).with_hint(another));
        }
        if let Some(earlier) = out.iter().find(|d| d.key == key || d.driver == driver) {
            return Err(error(format!(
                "`{}={}` is given already",
                earlier.driver.id(),
                earlier.key
            ))
            .with_hint("give each driver and each key once"));
        }
        out.push(DriverKey {
            driver,
            key: key.to_owned(),
        });
    }
    Ok(out)
}

fn name_error(e: provision::NameError) -> CliError {
    let hint = e.hint();
    CliError::usage(e.to_string()).with_hint(hint)
}

/// The application password from --db-password-stdin or AKSARA_DB_PASSWORD; never from argv.
fn given_password(args: &DbsetupArgs, inputs: Inputs) -> CliResult<Option<GivenPassword>> {
    if args.db_password_stdin {
        let buf = (inputs.read_stdin)().map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                // SCRAM (RFC 5802) works on UTF-8 text: bytes in another encoding have no
                // SASLprep form the server and every driver would agree on.
                CliError::usage("the password from standard input is not UTF-8 text")
                    .before_any_change()
                    .with_hint("convert it to UTF-8 (`iconv -f LATIN1 -t UTF-8`), or leave --db-password-stdin out to have one generated")
            } else {
                CliError::failure(format!("cannot read the password from standard input: {e}"))
                    .before_any_change()
            }
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
    match inputs.password_env {
        Some(p) if !p.is_empty() => check_password(p, "AKSARA_DB_PASSWORD").map(Some),
        _ => Ok(None),
    }
}

/// Refuse a password sqlx could not log in with, before anything changes. The message never
/// shows the offending character: it is part of the password.
pub fn check_password(password: String, source: &'static str) -> CliResult<GivenPassword> {
    if provision::scram_password_usable(&password) {
        return Ok(GivenPassword {
            value: password,
            source,
        });
    }
    Err(CliError::usage(format!(
        "the password from {source} has a character SASLprep prohibits (a control character such as a newline, an emoji, or mixed-direction text): sqlx, which aksara verifies with, cannot log in with it"
    ))
    .before_any_change()
    .with_hint("choose another password, or give none to have one generated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &[&str]) -> DbsetupArgs {
        let cli = crate::cli::Cli::try_parse_from(
            std::iter::once("aksara")
                .chain(std::iter::once("dbsetup"))
                .chain(line.iter().copied()),
        )
        .expect("the line parses");
        match cli.command {
            crate::cli::Command::Dbsetup(a) => a,
            _ => unreachable!("a dbsetup line"),
        }
    }

    fn inputs(terminal: bool, env: Option<&str>, stdin: &str) -> Inputs {
        let stdin = stdin.to_string();
        Inputs {
            stdin_is_terminal: terminal,
            password_env: env.map(str::to_string),
            read_stdin: Box::new(move || Ok(stdin)),
            default_env_file: PathBuf::from(".env"),
        }
    }

    #[test]
    fn ci_needs_a_database_name_and_no_terminal() {
        let e =
            Settings::resolve(&args(&["--non-interactive"]), inputs(false, None, "")).unwrap_err();
        assert!(e.message.contains("--db-name is required"), "{}", e.message);
        let s = Settings::resolve(
            &args(&["--non-interactive", "--db-name", "shop"]),
            inputs(false, None, ""),
        )
        .unwrap();
        assert_eq!(s.db_name, Name::Given("shop".into()));
        assert!(!s.interactive);
        let e = Settings::resolve(&args(&[]), inputs(false, None, "")).unwrap_err();
        assert!(e.hint.unwrap().contains("--non-interactive"));
        let s = Settings::resolve(&args(&[]), inputs(true, None, "")).unwrap();
        assert_eq!(s.db_name, Name::Ask);
    }

    #[test]
    fn the_password_comes_from_stdin_or_the_environment_never_argv() {
        let s = Settings::resolve(
            &args(&["--non-interactive", "--db-name", "d", "--db-password-stdin"]),
            inputs(false, Some("from-env"), "typed-in\n"),
        )
        .unwrap();
        let p = s.password.unwrap();
        assert_eq!((p.value.as_str(), p.source), ("typed-in", "standard input"));
        assert!(!format!("{p:?}").contains("typed-in"));
        let s = Settings::resolve(
            &args(&["--non-interactive", "--db-name", "d"]),
            inputs(false, Some("from-env"), ""),
        )
        .unwrap();
        assert_eq!(s.password.unwrap().source, "AKSARA_DB_PASSWORD");
        let e = Settings::resolve(
            &args(&["--non-interactive", "--db-name", "d", "--db-password-stdin"]),
            inputs(false, None, "a\0b"),
        )
        .unwrap_err();
        assert!(
            e.before_any_change && e.message.contains("NUL"),
            "{}",
            e.message
        );
    }

    #[test]
    fn flags_are_validated_once_before_anything_runs() {
        for (line, what) in [
            (vec!["--sslmode", "sometimes"], "invalid --sslmode"),
            (vec!["--env-key", "1BAD"], "invalid --env-key"),
            (
                vec!["--admin-url", "postgresql://a@h:notaport/x"],
                "invalid --admin-url",
            ),
            (
                vec![
                    "--admin-url",
                    "postgresql://a@h/x",
                    "--start-server",
                    "local",
                ],
                "--admin-url names a server",
            ),
            (vec!["--driver-url", "sqlalchemy-asyncpg"], "names no key"),
            (
                vec!["--driver-url", "mysql=X_URL"],
                "not a driver aksara knows",
            ),
            (vec!["--driver-url", "asyncpg=X_URL"], "reads DATABASE_URL"),
            (vec!["--driver-url", "prisma=X_URL"], "no Prisma form"),
            (
                vec!["--driver-url", "node-pg=1X"],
                "not a valid environment variable",
            ),
            (vec!["--driver-url", "node-pg=DATABASE_URL"], "is --env-key"),
            (
                vec![
                    "--env-key",
                    "APP_URL",
                    "--driver-url",
                    "node-pg=DATABASE_URL",
                ],
                "what the framework and most tools read",
            ),
            (
                vec!["--driver-url", "node-pg=DATABASE_REPLICA_URL"],
                "names a read replica",
            ),
            (vec!["--driver-url", "node-pg=PGSERVICE"], "starts with PG"),
            (
                vec![
                    "--driver-url",
                    "node-pg=A_URL",
                    "--driver-url",
                    "sqlalchemy-asyncpg=A_URL",
                ],
                "is given already",
            ),
        ] {
            let mut line = line;
            line.extend(["--non-interactive", "--db-name", "d"]);
            let e = Settings::resolve(&args(&line), inputs(false, None, "")).unwrap_err();
            assert!(e.message.contains(what), "{line:?}: {}", e.message);
            assert_eq!(e.exit, crate::error::Exit::Usage);
        }
        let s = Settings::resolve(
            &args(&[
                "--non-interactive",
                "--db-name",
                "d",
                "--driver-url",
                "sqlalchemy=SQLALCHEMY_DATABASE_URL",
                "--driver-url",
                "pg=NODE_URL",
            ]),
            inputs(false, None, ""),
        )
        .unwrap();
        assert_eq!(
            s.driver_urls,
            vec![
                DriverKey {
                    driver: Driver::SqlalchemyAsyncpg,
                    key: "SQLALCHEMY_DATABASE_URL".into()
                },
                DriverKey {
                    driver: Driver::NodePg,
                    key: "NODE_URL".into()
                },
            ]
        );
        let long = "x".repeat(64);
        let e = Settings::resolve(
            &args(&["--non-interactive", "--db-name", &long]),
            inputs(false, None, ""),
        )
        .unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage, "{}", e.message);
    }
}
