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
//! file and function it follows. [`detect`] guesses the drivers of a project from its manifest
//! files; [`readme`] renders the README's "Which driver reads what" table from the same facts.

pub mod asyncpg;
pub mod detect;
pub mod jdbc;
pub mod libpq;
pub mod node_pg;
pub mod portable;
pub mod prisma;
mod pyurl;
pub mod readme;
mod render;
pub mod rust_sqlx;
pub mod server_settings;
pub mod sqlalchemy;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::dsn::{ConnString, HostSpec, Password, Reveal, SslMode};

pub use detect::detect;

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
    /// The source the module follows: file and function.
    pub source: &'static str,
}

/// A host as a driver will use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// A unix-socket directory.
    Socket(String),
}

impl Host {
    /// Absolute paths are socket directories, as in every driver here.
    pub fn classify(host: &str) -> Host {
        if host.starts_with('/') {
            Host::Socket(host.to_owned())
        } else {
            Host::Tcp(host.to_owned())
        }
    }

    fn same_as(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Tcp(a), Host::Tcp(b)) => a.eq_ignore_ascii_case(b),
            (Host::Socket(a), Host::Socket(b)) => {
                a.trim_end_matches('/') == b.trim_end_matches('/')
            }
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) => f.write_str(name),
            Host::Socket(dir) => write!(f, "socket {dir}"),
        }
    }
}

/// One place to connect to. `None` is the driver's default (its socket directories or
/// localhost; port 5432).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Option<Host>,
    pub port: Option<u16>,
}

impl Endpoint {
    pub fn new(host: Option<Host>, port: Option<u16>) -> Endpoint {
        let host = host.filter(|host| !matches!(host, Host::Tcp(name) if name.is_empty()));
        Endpoint { host, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "{host}")?,
            None => f.write_str("the default host")?,
        }
        write!(f, " port {}", self.port.unwrap_or(crate::dsn::DEFAULT_PORT))
    }
}

/// What the driver does about TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plaintext.
    Off,
    /// TLS when the server offers it, plaintext otherwise; no certificate check (libpq's
    /// `prefer`, `allow`).
    IfOffered,
    /// TLS or fail; no certificate check.
    Required,
    /// TLS, and the certificate must chain to a trusted CA.
    VerifyCa,
    /// TLS, a trusted chain, and the certificate must name the host.
    VerifyFull,
}

impl Tls {
    pub fn from_sslmode(mode: SslMode) -> Tls {
        match mode {
            SslMode::Disable => Tls::Off,
            SslMode::Allow | SslMode::Prefer => Tls::IfOffered,
            SslMode::Require => Tls::Required,
            SslMode::VerifyCa => Tls::VerifyCa,
            SslMode::VerifyFull => Tls::VerifyFull,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Tls::Off => "no TLS",
            Tls::IfOffered => "TLS if offered, unverified",
            Tls::Required => "TLS required, unverified",
            Tls::VerifyCa => "TLS with the CA checked",
            Tls::VerifyFull => "TLS with the CA and host name checked",
        }
    }

    /// Verifies more than `other`, so it can fail where `other` connects.
    fn stricter_than(self, other: Tls) -> bool {
        let rank = |tls: Tls| match tls {
            Tls::Off | Tls::IfOffered => 0,
            Tls::Required => 1,
            Tls::VerifyCa => 2,
            Tls::VerifyFull => 3,
        };
        rank(self) > rank(other)
    }
}

/// What one driver will connect with, read from the URL alone (the environment's `PG*`
/// variables and files are not consulted: the same URL is judged the same everywhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// In the order tried; empty is the driver's default host and port.
    pub endpoints: Vec<Endpoint>,
    pub user: Option<String>,
    pub password: Option<Password>,
    pub database: Option<String>,
    pub tls: Tls,
    /// Startup parameters the driver sends to the server because of the URL.
    pub settings: Vec<(String, String)>,
    /// Query parameters the driver reads past without effect.
    pub ignored: Vec<String>,
}

impl Reading {
    /// One line: where, as whom, which database, TLS (never the password).
    pub fn summary(&self) -> String {
        let endpoints = if self.endpoints.is_empty() {
            "the default host".to_owned()
        } else {
            self.endpoints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", then ")
        };
        let mut line = format!(
            "{endpoints}, user {}, database {}, {}",
            self.user.as_deref().unwrap_or("(default)"),
            self.database.as_deref().unwrap_or("(default)"),
            self.tls.describe()
        );
        if !self.settings.is_empty() {
            let names: Vec<&str> = self.settings.iter().map(|(k, _)| k.as_str()).collect();
            line.push_str(&format!("; sends {}", names.join(", ")));
        }
        if !self.ignored.is_empty() {
            line.push_str(&format!("; ignores {}", self.ignored.join(", ")));
        }
        line
    }
}

/// Failure codes this module proposes, for the lead's `Code` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    DriverRejectsParameter,
    DriverMisreadsUrl,
    DriverUnsupportedFormat,
    DriverWrongScheme,
    DriverSendsUnknownSetting,
    DriverTlsStricter,
    DriverTlsWeaker,
    DriverCannotExpress,
}

impl Code {
    pub const ALL: [Code; 8] = [
        Code::DriverRejectsParameter,
        Code::DriverMisreadsUrl,
        Code::DriverUnsupportedFormat,
        Code::DriverWrongScheme,
        Code::DriverSendsUnknownSetting,
        Code::DriverTlsStricter,
        Code::DriverTlsWeaker,
        Code::DriverCannotExpress,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Code::DriverRejectsParameter => "driver-rejects-parameter",
            Code::DriverMisreadsUrl => "driver-misreads-url",
            Code::DriverUnsupportedFormat => "driver-unsupported-format",
            Code::DriverWrongScheme => "driver-wrong-scheme",
            Code::DriverSendsUnknownSetting => "driver-sends-unknown-setting",
            Code::DriverTlsStricter => "driver-tls-stricter",
            Code::DriverTlsWeaker => "driver-tls-weaker",
            Code::DriverCannotExpress => "driver-cannot-express",
        }
    }

    /// One line: what it means.
    pub fn meaning(self) -> &'static str {
        match self {
            Code::DriverRejectsParameter => {
                "the driver raises on a query parameter it does not accept"
            }
            Code::DriverMisreadsUrl => {
                "the driver reads a different host, port, user, password or database than libpq"
            }
            Code::DriverUnsupportedFormat => {
                "the driver cannot parse this form of connection string at all"
            }
            Code::DriverWrongScheme => "the driver does not take this URL scheme",
            Code::DriverSendsUnknownSetting => {
                "the driver sends a query parameter to the server as a setting, and the server refuses it"
            }
            Code::DriverTlsStricter => {
                "the driver verifies the server certificate where the URL's sslmode does not ask for it"
            }
            Code::DriverTlsWeaker => {
                "the driver ignores the TLS the URL asks for and connects with less (plaintext if the server allows it)"
            }
            Code::DriverCannotExpress => "no URL can say this to the driver",
        }
    }

    /// One line: the fix.
    pub fn fix(self) -> &'static str {
        match self {
            Code::DriverRejectsParameter
            | Code::DriverMisreadsUrl
            | Code::DriverUnsupportedFormat
            | Code::DriverWrongScheme
            | Code::DriverSendsUnknownSetting
            | Code::DriverTlsStricter
            | Code::DriverTlsWeaker => "use the rewritten URL shown for that driver",
            Code::DriverCannotExpress => {
                "set it in the driver's own configuration instead of the URL, as the hint says"
            }
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The driver fails before it connects, or connects somewhere it should not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    /// Lower-case, values in backticks, never a password.
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// A URL that holds a password: `{}` shows it redacted, [`SecretUrl::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    secret: String,
    redacted: String,
}

impl SecretUrl {
    pub fn new(secret: String, redacted: String) -> SecretUrl {
        SecretUrl { secret, redacted }
    }

    /// The URL itself, for writing to `.env` or handing to the driver.
    pub fn expose(&self) -> &str {
        &self.secret
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// The URL for one driver, with what had to change and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    pub url: SecretUrl,
    /// One line per parameter dropped or moved, naming where its setting goes instead.
    pub notes: Vec<String>,
}

/// A problem one driver has with a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: Code,
    pub message: String,
    /// What the driver reads when it does read something (a misread), else None.
    pub reading: Option<Reading>,
    /// The URL that fixes it for this driver, or why none can.
    pub fix: Result<Rewritten, Refusal>,
}

/// Whether a driver connects where the URL means, by libpq's reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok(Reading),
    Problem(Box<Problem>),
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok(_))
    }

    pub fn code(&self) -> Option<Code> {
        match self {
            Verdict::Ok(_) => None,
            Verdict::Problem(problem) => Some(problem.code),
        }
    }

    /// What the driver will connect to, when it reads anything.
    pub fn reading(&self) -> Option<&Reading> {
        match self {
            Verdict::Ok(reading) => Some(reading),
            Verdict::Problem(problem) => problem.reading.as_ref(),
        }
    }
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

/// Whether `driver` connects where `raw` means; if not, the first problem it hits, with the
/// URL that fixes it for that driver.
pub fn verdict(driver: Driver, raw: &str) -> Verdict {
    let meant = meaning(raw);
    // A misread can put pieces of the password where the user or database goes; no message
    // may carry them.
    let secret = meant.as_ref().ok().and_then(|conn| conn.password.clone());
    let problem = |code: Code, message: String, reading: Option<Reading>| {
        let message = scrub(message, secret.as_ref());
        let fix = match &meant {
            Ok(conn) => rewrite_conn(driver, conn),
            Err(refusal) => Err(refusal.clone()),
        };
        Verdict::Problem(Box::new(Problem {
            code,
            message,
            reading,
            fix,
        }))
    };
    let reading = match read(driver, raw) {
        Ok(reading) => reading,
        Err(refusal) => return problem(refusal.code, refusal.message, None),
    };
    let meant = match &meant {
        Ok(conn) => conn,
        Err(refusal) => {
            let message = format!(
                "{}; {} reads it as {}",
                refusal.message,
                driver.name(),
                reading.summary()
            );
            return problem(Code::DriverMisreadsUrl, message, Some(reading));
        }
    };
    let reference = reading_of(meant);
    let differences = differences(&reference, &reading);
    if !differences.is_empty() {
        let message = format!(
            "{} reads a different {} than libpq: it would connect to {}",
            driver.name(),
            differences.join(" and "),
            reading.summary()
        );
        return problem(Code::DriverMisreadsUrl, message, Some(reading));
    }
    if let Some(message) = refused_setting(driver, &reading.settings) {
        return problem(Code::DriverSendsUnknownSetting, message, Some(reading));
    }
    if reading.tls.stricter_than(reference.tls) {
        let why = match reading.tls {
            Tls::VerifyFull => {
                "it connects only when the server's certificate is signed by a CA it trusts and names the host"
            }
            Tls::VerifyCa => {
                "it connects only when the server's certificate is signed by a CA it trusts"
            }
            _ => "it fails where the server offers no TLS",
        };
        let socket = if reference.tls == Tls::Off
            && !reading.endpoints.is_empty()
            && reading
                .endpoints
                .iter()
                .all(|e| matches!(e.host, Some(Host::Socket(_))))
        {
            " (PostgreSQL never offers TLS on a unix socket, so libpq does not ask for it there)"
        } else {
            ""
        };
        let message = format!(
            "{} makes this {} where libpq makes it {}{socket}: {why}",
            driver.name(),
            reading.tls.describe(),
            reference.tls.describe(),
        );
        return problem(Code::DriverTlsStricter, message, Some(reading));
    }
    if reference.tls.stricter_than(reading.tls) {
        let message = format!(
            "{} ignores what the URL asks for TLS: libpq makes it {}, {} makes it {}, so against a server that allows plaintext the session is unprotected",
            driver.name(),
            reference.tls.describe(),
            driver.name(),
            reading.tls.describe()
        );
        return problem(Code::DriverTlsWeaker, message, Some(reading));
    }
    Verdict::Ok(reading)
}

fn scrub(message: String, secret: Option<&Password>) -> String {
    match secret.map(Password::expose).filter(|s| !s.is_empty()) {
        Some(secret) => message
            .replace(secret, "****")
            .replace(&render::encode(secret), "****"),
        None => message,
    }
}

/// The parts of `driver`'s reading that differ from libpq's. A default host or port on both
/// sides matches (drivers' defaults differ only in where they look first).
fn differences(reference: &Reading, driver: &Reading) -> Vec<&'static str> {
    let mut found = Vec::new();
    let endpoint_pairs = reference.endpoints.len().max(driver.endpoints.len());
    let default_endpoint = Endpoint::default();
    let (mut host_differs, mut port_differs) = (false, false);
    if !reference.endpoints.is_empty() && !driver.endpoints.is_empty() {
        for i in 0..endpoint_pairs {
            let a = reference.endpoints.get(i).unwrap_or(&default_endpoint);
            let b = driver.endpoints.get(i).unwrap_or(&default_endpoint);
            if let (Some(x), Some(y)) = (&a.host, &b.host)
                && !x.same_as(y)
            {
                host_differs = true;
            }
            let port = |e: &Endpoint| e.port.unwrap_or(crate::dsn::DEFAULT_PORT);
            if port(a) != port(b) {
                port_differs = true;
            }
        }
    } else if let Some(explicit) = reference.endpoints.first().or(driver.endpoints.first()) {
        // One side names a place, the other takes its defaults.
        host_differs = explicit.host.is_some();
        port_differs = explicit.port.is_some_and(|p| p != crate::dsn::DEFAULT_PORT);
    }
    if host_differs {
        found.push("host");
    }
    if port_differs {
        found.push("port");
    }
    // The settings both send must say the same (`+` in `application_name=x+y` is a space to
    // the form decoders; node-postgres's `encodeURI` step can leave `%3D` in `options`).
    for (name, value) in &reference.settings {
        if driver
            .settings
            .iter()
            .any(|(other, sent)| other == name && sent != value)
        {
            found.push(if name == "options" {
                "`options` setting"
            } else {
                "`application_name` setting"
            });
        }
    }
    // A user, password or database only one side has is a difference: the other side's
    // default (the OS user, no password) is not what the URL says.
    for (name, differs) in [
        ("user", reference.user != driver.user),
        ("password", reference.password != driver.password),
        ("database", reference.database != driver.database),
    ] {
        if differs {
            found.push(name);
        }
    }
    found
}

/// Why the server will refuse one of the startup settings, if it will.
fn refused_setting(driver: Driver, settings: &[(String, String)]) -> Option<String> {
    use server_settings::{FROM_VERSION, NOT_AT_STARTUP, SUPERUSER_ONLY, USER_SETTABLE};
    for (name, _) in settings {
        let lower = name.to_ascii_lowercase();
        // The startup packet's own keys, and custom settings (`myapp.x`), which the server
        // accepts as placeholders.
        if matches!(
            lower.as_str(),
            "options" | "replication" | "user" | "database"
        ) || lower.contains('.')
            || USER_SETTABLE.contains(&lower.as_str())
        {
            continue;
        }
        let why = if NOT_AT_STARTUP.contains(&lower.as_str()) {
            format!("the server answers `parameter \"{name}\" cannot be changed now`")
        } else if SUPERUSER_ONLY.contains(&lower.as_str()) {
            format!(
                "only a superuser may set `{name}`: other roles get `permission denied to set parameter \"{name}\"`"
            )
        } else if libpq::KEYWORDS.contains(&name.as_str()) {
            format!(
                "`{name}` is a libpq connection option, not a server setting: the server answers `unrecognized configuration parameter \"{name}\"`"
            )
        } else {
            format!(
                "`{name}` is not a setting of PostgreSQL {FROM_VERSION}: the server answers `unrecognized configuration parameter \"{name}\"`"
            )
        };
        return Some(format!(
            "{} sends the query parameter `{name}` to the server as a setting, and {why}",
            driver.name()
        ));
    }
    None
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

/// One driver's line for doctor: the verdict as a headline and, for a problem, the hint with
/// the rewritten URL (redacted: [`Rewritten::url`] holds the real one).
#[derive(Clone, Debug)]
pub struct DriverLine {
    pub driver: Driver,
    pub verdict: Verdict,
}

impl DriverLine {
    /// `asyncpg: 127.0.0.1 port 5432, user app, database app, TLS if offered, unverified`, or
    /// `asyncpg: asyncpg sends the query parameter …`.
    pub fn headline(&self) -> String {
        match &self.verdict {
            Verdict::Ok(reading) => format!("{}: {}", self.driver.id(), reading.summary()),
            Verdict::Problem(problem) => format!("{}: {}", self.driver.id(), problem.message),
        }
    }

    /// `use postgresql://app:****@db/app for asyncpg (dropped …)`, or how to do without a URL.
    pub fn hint(&self) -> Option<String> {
        let Verdict::Problem(problem) = &self.verdict else {
            return None;
        };
        Some(match &problem.fix {
            Ok(fix) if fix.notes.is_empty() => {
                format!("use `{}` for {}", fix.url, self.driver.name())
            }
            Ok(fix) => format!(
                "use `{}` for {} ({})",
                fix.url,
                self.driver.name(),
                fix.notes.join("; ")
            ),
            Err(refusal) => refusal.message.clone(),
        })
    }
}

impl DriverLine {
    /// The line for `--format json`: the driver, whether it connects where the URL means, what
    /// it reads, and for a problem its code, message and fix (the URL redacted).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let reading = self.verdict.reading().map(|r| {
            let endpoints: Vec<serde_json::Value> = r
                .endpoints
                .iter()
                .map(|e| {
                    let (kind, host) = match &e.host {
                        Some(Host::Tcp(name)) => ("tcp", Some(name.as_str())),
                        Some(Host::Socket(dir)) => ("socket", Some(dir.as_str())),
                        None => ("default", None),
                    };
                    json!({"kind": kind, "host": host, "port": e.port})
                })
                .collect();
            json!({
                "endpoints": endpoints,
                "user": r.user,
                "database": r.database,
                "has_password": r.password.is_some(),
                "tls": r.tls.describe(),
                "settings": r.settings.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                "ignored": r.ignored,
            })
        });
        let mut line = json!({
            "driver": self.driver.id(),
            "ok": self.verdict.is_ok(),
            "reading": reading,
        });
        if let Verdict::Problem(problem) = &self.verdict {
            line["code"] = json!(problem.code.id());
            line["message"] = json!(problem.message);
            line["fix"] = match &problem.fix {
                Ok(fix) => json!({"url": fix.url.to_string(), "notes": fix.notes}),
                Err(refusal) => json!({"url": null, "notes": [refusal.message]}),
            };
        }
        line
    }
}

/// The lines for `drivers`, in their order (from `--driver`, or [`detect`]).
pub fn lines(raw: &str, drivers: &[Driver]) -> Vec<DriverLine> {
    drivers
        .iter()
        .map(|&driver| DriverLine {
            driver,
            verdict: verdict(driver, raw),
        })
        .collect()
}
