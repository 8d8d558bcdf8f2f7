//! The URL as the application's driver reads it, next to how libpq reads it.
//!
//! aksara checks URLs with libpq's rules, but the application connects with asyncpg,
//! SQLAlchemy, psycopg, node-postgres, Prisma or sqlx, and each reads the same string its own
//! way: asyncpg sends unknown query parameters to the server as settings, SQLAlchemy does not
//! decode the host, node-postgres reads `sslmode=require` as verify-full, Python's `urlsplit`
//! cuts a URL at an unencoded `#`. This module predicts, without any I/O, what each driver will
//! connect to ([`read`]), whether that is what the URL means ([`verdict`]: libpq's reading is
//! the reference, because it is the documented grammar), and the exact URL that gives that
//! driver the same meaning ([`rewrite`]).
//!
//! One module per driver family, each written from the driver's own source and citing the
//! file and function it follows. [`detect()`] guesses the drivers of a project from its manifest
//! files; [`lines`] gives doctor one line per driver (text and JSON); [`portable`] finds the one
//! URL every driver reads, where there is one; [`readme`] renders the README's "Which driver
//! reads what" table from the same facts. `tests/cli/drivers.rs` holds the model to the real
//! drivers.

pub mod asyncpg;
pub mod default_user;
pub mod detect;
pub mod environment;
pub mod forms;
pub mod jdbc;
pub mod libpq;
mod line;
pub mod node_pg;
pub mod portable;
pub mod prisma;
mod pyurl;
mod reading;
pub mod readme;
mod render;
pub mod rust_sqlx;
pub mod server_settings;
pub mod sqlalchemy;
#[cfg(test)]
mod tests;
mod verdict;

use std::fmt;

use crate::dsn::{ConnString, HostSpec, Password, Reveal, SslMode};

pub use detect::detect;
pub use line::{DriverLine, lines};
pub use reading::{Endpoint, Host, Reading, Tls};
pub use verdict::{Code, Problem, Refusal, Rewritten, SecretUrl, Verdict, verdict};

/// A driver family: one way of reading a connection URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Driver {
    /// libpq itself: psql, psycopg 3, psycopg2, and everything built on them.
    Libpq,
    Asyncpg,
    SqlalchemyAsyncpg,
    SqlalchemyPsycopg,
    /// node-postgres (`pg`), which parses with `pg-connection-string`.
    NodePg,
    Prisma,
    Sqlx,
    /// pgjdbc, the PostgreSQL JDBC driver.
    Jdbc,
}

impl Driver {
    pub const ALL: [Driver; 8] = [
        Driver::Libpq,
        Driver::Asyncpg,
        Driver::SqlalchemyAsyncpg,
        Driver::SqlalchemyPsycopg,
        Driver::NodePg,
        Driver::Prisma,
        Driver::Sqlx,
        Driver::Jdbc,
    ];

    /// The kebab-case id used on the command line (`--driver asyncpg`) and in JSON.
    pub fn id(self) -> &'static str {
        match self {
            Driver::Libpq => "libpq",
            Driver::Asyncpg => "asyncpg",
            Driver::SqlalchemyAsyncpg => "sqlalchemy-asyncpg",
            Driver::SqlalchemyPsycopg => "sqlalchemy-psycopg",
            Driver::NodePg => "node-pg",
            Driver::Prisma => "prisma",
            Driver::Sqlx => "sqlx",
            Driver::Jdbc => "jdbc",
        }
    }

    /// How the user knows it.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Libpq => "libpq (psql, psycopg)",
            Driver::Asyncpg => "asyncpg",
            Driver::SqlalchemyAsyncpg => "SQLAlchemy + asyncpg",
            Driver::SqlalchemyPsycopg => "SQLAlchemy + psycopg",
            Driver::NodePg => "node-postgres (pg)",
            Driver::Prisma => "Prisma",
            Driver::Sqlx => "sqlx",
            Driver::Jdbc => "JDBC (pgjdbc)",
        }
    }

    /// The driver for an id, or for a name users type for it (`psycopg`, `psql`, `pg`).
    pub fn from_id(id: &str) -> Option<Driver> {
        let id = id.trim().to_ascii_lowercase();
        let alias = match id.as_str() {
            "psql" | "psycopg" | "psycopg3" | "psycopg2" => Some(Driver::Libpq),
            "pg" | "node-postgres" | "node" => Some(Driver::NodePg),
            "sqlalchemy" | "sqlalchemy+asyncpg" => Some(Driver::SqlalchemyAsyncpg),
            "sqlalchemy+psycopg" => Some(Driver::SqlalchemyPsycopg),
            "pgjdbc" => Some(Driver::Jdbc),
            _ => None,
        };
        alias.or_else(|| Driver::ALL.into_iter().find(|driver| driver.id() == id))
    }

    /// The facts the README's table shows, from the driver's module.
    pub fn facts(self) -> &'static Facts {
        match self {
            Driver::Libpq => &libpq::FACTS,
            Driver::Asyncpg => &asyncpg::FACTS,
            Driver::SqlalchemyAsyncpg => &sqlalchemy::ASYNCPG_FACTS,
            Driver::SqlalchemyPsycopg => &sqlalchemy::PSYCOPG_FACTS,
            Driver::NodePg => &node_pg::FACTS,
            Driver::Prisma => &prisma::FACTS,
            Driver::Sqlx => &rust_sqlx::FACTS,
            Driver::Jdbc => &jdbc::FACTS,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a driver does with URLs, in one line per topic, for the README.
#[derive(Debug)]
pub struct Facts {
    /// URL forms and schemes it reads.
    pub reads: &'static str,
    /// How user, password, host, database and query are decoded.
    pub decoding: &'static str,
    /// What happens to a query parameter it does not know.
    pub unknown_parameters: &'static str,
    /// Its sslmode semantics and default.
    pub tls: &'static str,
    /// Several hosts, and `?host=` beside a host in the authority.
    pub hosts: &'static str,
    /// Whom it logs in as when neither the URL nor `PGUSER` names a user (see [`default_user`]).
    pub no_user: &'static str,
    /// The source the module follows: file and function.
    pub source: &'static str,
}

/// What `driver` makes of `raw`: where it connects, or how it fails first.
pub fn read(driver: Driver, raw: &str) -> Result<Reading, Refusal> {
    match driver {
        Driver::Libpq => libpq::read(raw),
        Driver::Asyncpg => asyncpg::read(raw),
        Driver::SqlalchemyAsyncpg => sqlalchemy::read_asyncpg(raw),
        Driver::SqlalchemyPsycopg => sqlalchemy::read_psycopg(raw),
        Driver::NodePg => node_pg::read(raw),
        Driver::Prisma => prisma::read(raw),
        Driver::Sqlx => rust_sqlx::read(raw),
        Driver::Jdbc => jdbc::read(raw),
    }
}

/// What the URL means: libpq's reading of it, after the spellings that name a driver rather
/// than a place are taken off (`postgresql+asyncpg://`, `jdbc:`, SQLAlchemy's `ssl=require`,
/// node-postgres's `uselibpqcompat`).
pub fn meaning(raw: &str) -> Result<ConnString, Refusal> {
    let trimmed = raw.trim();
    let (without_prefix, had_dialect) = strip_driver_scheme(trimmed);
    let without_prefix = if had_dialect {
        sqlalchemy::host_list_as_libpq(&without_prefix)
    } else {
        without_prefix
    };
    let mut conn = ConnString::parse(&without_prefix).map_err(|error| {
        Refusal::new(
            Code::DriverUnsupportedFormat,
            format!("libpq cannot read it: {error}"),
        )
    })?;
    let mut unknown = Vec::new();
    for (key, value) in std::mem::take(&mut conn.unknown) {
        match key.as_str() {
            "ssl" if had_dialect => match value.parse::<SslMode>() {
                Ok(mode) => conn.sslmode = Some(mode),
                Err(_) => unknown.push((key, value)),
            },
            "uselibpqcompat" | "connectionTimeoutMillis" => {}
            _ => unknown.push((key, value)),
        }
    }
    // Prisma says verify-full as `sslmode=require&sslaccept=strict`, its CA as `sslcert`.
    if let Some(at) = unknown
        .iter()
        .position(|(k, v)| k == "sslaccept" && v == "strict")
    {
        unknown.remove(at);
        if conn.sslmode == Some(SslMode::Require) {
            conn.sslmode = Some(SslMode::VerifyFull);
        }
        if let Some(at) = unknown.iter().position(|(k, _)| k == "sslcert") {
            conn.sslrootcert = Some(unknown.remove(at).1);
        }
    }
    conn.unknown = unknown;
    Ok(conn)
}

/// `postgresql+asyncpg://…` → `postgresql://…`, `jdbc:postgresql://…` → `postgresql://…`;
/// also says whether a SQLAlchemy dialect was named.
fn strip_driver_scheme(raw: &str) -> (String, bool) {
    if let Some(rest) = raw.strip_prefix("jdbc:") {
        return (rest.to_owned(), false);
    }
    if let Some((scheme, rest)) = raw.split_once("://")
        && let Some((base, _dialect)) = scheme.split_once('+')
        && matches!(base, "postgresql" | "postgres")
    {
        return (format!("postgresql://{rest}"), true);
    }
    (raw.to_owned(), false)
}

/// libpq's reading of a parsed string, the reference every driver is compared with.
pub fn reading_of(conn: &ConnString) -> Reading {
    libpq::reading_of(conn)
}

/// The URL that means, to `driver`, what `raw` means to libpq; dropped parameters are named
/// in the notes with where their setting goes instead.
pub fn rewrite(driver: Driver, raw: &str) -> Result<Rewritten, Refusal> {
    rewrite_conn(driver, &meaning(raw)?)
}

/// [`rewrite`] from an already parsed string (dbsetup has one).
pub fn rewrite_conn(driver: Driver, conn: &ConnString) -> Result<Rewritten, Refusal> {
    match driver {
        Driver::Libpq => libpq::rewrite(conn),
        Driver::Asyncpg => asyncpg::rewrite(conn),
        Driver::SqlalchemyAsyncpg => sqlalchemy::rewrite_asyncpg(conn),
        Driver::SqlalchemyPsycopg => sqlalchemy::rewrite_psycopg(conn),
        Driver::NodePg => node_pg::rewrite(conn),
        Driver::Prisma => prisma::rewrite(conn),
        Driver::Sqlx => rust_sqlx::rewrite(conn),
        Driver::Jdbc => jdbc::rewrite(conn),
    }
}

/// The endpoints of a parsed string, as every driver module needs them.
pub(crate) fn endpoints_of(hosts: &[HostSpec]) -> Vec<Endpoint> {
    hosts
        .iter()
        .map(|spec| Endpoint::new(spec.host.as_deref().map(Host::classify), spec.port))
        .collect()
}

/// A password from a URL part, None when empty (every driver treats an empty password as
/// none).
pub(crate) fn password(text: Option<String>) -> Option<Password> {
    text.filter(|p| !p.is_empty()).map(Password::new)
}

/// The redacted and the secret rendering of the same parts.
pub(crate) fn secret_url(render: impl Fn(Reveal) -> String) -> SecretUrl {
    SecretUrl::new(render(Reveal::Secret), render(Reveal::Redacted))
}
