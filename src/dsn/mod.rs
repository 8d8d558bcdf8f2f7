//! Connection strings as libpq reads them, and the settings a connection attempt really uses.
//!
//! sqlx understands only part of what users paste: it rejects keyword/value strings and
//! multiple hosts, drops `connect_timeout`, `ssl=true` and unknown parameters with a log line,
//! and silently ignores a malformed `PGSSLMODE`. aksara has to explain connection failures in
//! libpq's terms, so this module parses both libpq formats itself ([`ConnString`], exactly what
//! was written), resolves them against the environment with libpq's precedence
//! ([`ConnConfig`], nothing left implicit), and renders URLs that both libpq and sqlx decode
//! the same way. It does no I/O: the environment, the OS user, socket discovery and the
//! password file arrive through [`Environment`], so every rule here is unit-tested. Secrets are
//! redacted by type ([`Password`]), and no error message ever quotes a password.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

mod app_url;
mod error;
mod grammar;
mod render;
mod resolve;
#[cfg(test)]
mod tests;

pub use app_url::{AppUrlError, Misreading, UrlReader};
pub use error::{DsnError, UriPart};
pub use resolve::{ConnConfig, Endpoint, Environment, Host, PasswordSource, timeout_duration};

/// The libpq environment variables this module reads, named once in [`crate::envvars`].
pub use crate::envvars as env_vars;

pub const DEFAULT_PORT: u16 = 5432;

/// The one list of socket directories the crate knows, in the order they are tried: the
/// compiled-in defaults of the common libpq builds and server packages (Debian/RHEL
/// `/var/run/postgresql` and its `/run` twin, upstream/Homebrew/Postgres.app `/tmp`, macOS's
/// `/private/tmp`, old Apple's `/var/pgsql_socket`; facts §6). Server discovery probes them,
/// the default host is looked for in them, and libpq matches `.pgpass` lines against
/// `localhost` for its own default directory: which one that is depends on the user's libpq
/// build, so all of them are treated alike.
pub const DEFAULT_SOCKET_DIRS: &[&str] = &[
    "/var/run/postgresql",
    "/run/postgresql",
    "/tmp",
    "/private/tmp",
    "/var/pgsql_socket",
];

const REDACTED: &str = "****";

const PASSWORD_ENCODING_HINT: &str = "percent-encode special characters in the password: \
     @ is %40, : is %3A, / is %2F, ? is %3F, # is %23, % is %25, + is %2B, & is %26, space is %20";

/// Everything except RFC 3986's unreserved characters, for user names, passwords, database
/// names, host names and parameter names. `+` is encoded because sqlx (through the `url`
/// crate's form decoding) reads `+` in the query as a space while libpq keeps it.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Query values may keep `/` and `:` unencoded, so socket paths stay readable
/// (`?host=/var/run/postgresql`); both libpq and sqlx take them literally there.
const QUERY_VALUE: &AsciiSet = &COMPONENT.remove(b'/').remove(b':');

/// An IPv6 literal keeps its colons inside the brackets.
const IPV6_HOST: &AsciiSet = &COMPONENT.remove(b':');

// ---------------------------------------------------------------------------------------------
// sslmode

/// libpq's `sslmode`. libpq accepts exactly these lower-case spellings; sqlx is
/// case-insensitive, so `REQUIRE` works with one and not the other, and we follow libpq.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The connection fails rather than fall back to plaintext.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// The server certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// The closest valid spelling of a mistyped value, for "did you mean".
    fn suggest(typed: &str) -> Option<&'static str> {
        let normalized = typed.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match normalized.as_str() {
            "true" | "on" | "yes" | "1" | "required" | "ssl" => Some(SslMode::Require),
            "false" | "off" | "no" | "0" | "disabled" | "none" => Some(SslMode::Disable),
            _ => None,
        };
        if let Some(mode) = alias {
            return Some(mode.as_str());
        }
        SslMode::ALL
            .iter()
            .map(|mode| (edit_distance(&normalized, mode.as_str()), mode.as_str()))
            .filter(|&(distance, name)| distance <= 2 && distance * 2 < name.len())
            .min_by_key(|&(distance, _)| distance)
            .map(|(_, name)| name)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = DsnError;

    fn from_str(s: &str) -> Result<Self, DsnError> {
        SslMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| DsnError::UnknownSslMode {
                value: s.to_owned(),
                suggestion: SslMode::suggest(s),
            })
    }
}

impl From<SslMode> for sqlx::postgres::PgSslMode {
    fn from(mode: SslMode) -> Self {
        use sqlx::postgres::PgSslMode;
        match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow => PgSslMode::Allow,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Password

/// A password that cannot be printed by accident: `{}` and `{:?}` both show `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Password {
        Password(password)
    }

    /// The secret itself, for the one place that needs it (sending it to the server).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Password {
        Password(password.to_owned())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Whether rendering shows the password or `****`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reveal {
    Redacted,
    Secret,
}

// ---------------------------------------------------------------------------------------------
// ConnString: what the user wrote

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `postgresql://…` or `postgres://…`
    #[default]
    Uri,
    /// `host=localhost port=5432 dbname=mydb`
    KeyValue,
}

/// One host of the string with its port, each as typed (None = not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSpec {
    /// A unix-socket directory when it is an absolute path (or starts with `@`, a Linux
    /// abstract socket). IPv6 addresses are stored without brackets.
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl HostSpec {
    pub fn is_socket(&self) -> bool {
        self.host.as_deref().is_some_and(is_socket_dir)
    }
}

fn is_socket_dir(host: &str) -> bool {
    host.starts_with('/') || host.starts_with('@') || Path::new(host).is_absolute()
}

/// A connection string as written: nothing defaulted, nothing taken from the environment.
/// Empty values count as not given, as they do in libpq.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnString {
    pub format: Format,
    /// libpq pairs its `host` and `port` lists; a single port applies to every host.
    pub hosts: Vec<HostSpec>,
    pub user: Option<String>,
    pub password: Option<Password>,
    pub dbname: Option<String>,
    /// `ssl=true` in a URI is stored as `Require`, as libpq translates it.
    pub sslmode: Option<SslMode>,
    /// Seconds, as typed; see [`timeout_duration`] for what libpq makes of it.
    pub connect_timeout: Option<i64>,
    pub application_name: Option<String>,
    pub sslrootcert: Option<String>,
    pub options: Option<String>,
    /// Parameters this module has no field for, in order. libpq knows many of them
    /// (`target_session_attrs`, `sslcert`, …) and rejects the rest; they are kept and rendered
    /// back so nothing the user wrote silently disappears.
    pub unknown: Vec<(String, String)>,
}

fn is_secret_key(key: &str) -> bool {
    key == "password" || key == "sslpassword"
}

fn encode(value: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(value, set).to_string()
}

/// C's `isspace` in the C locale, which is what libpq's keyword/value parser uses.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}
