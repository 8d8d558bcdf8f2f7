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

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The libpq environment variables this module reads, named once.
pub mod env_vars {
    pub const PGHOST: &str = "PGHOST";
    pub const PGPORT: &str = "PGPORT";
    pub const PGUSER: &str = "PGUSER";
    pub const PGPASSWORD: &str = "PGPASSWORD";
    pub const PGDATABASE: &str = "PGDATABASE";
    pub const PGSSLMODE: &str = "PGSSLMODE";
    pub const PGCONNECT_TIMEOUT: &str = "PGCONNECT_TIMEOUT";
    pub const PGAPPNAME: &str = "PGAPPNAME";
    pub const PGSSLROOTCERT: &str = "PGSSLROOTCERT";
    pub const PGOPTIONS: &str = "PGOPTIONS";
}

pub const DEFAULT_PORT: u16 = 5432;

/// Socket directories that libpq builds use as their compiled-in default (Debian and RHEL
/// packages, upstream builds, macOS's `/tmp`). libpq matches `.pgpass` lines against
/// `localhost` for its own default directory; which one that is depends on the user's libpq
/// build, so all of them are treated alike.
pub const DEFAULT_SOCKET_DIRS: &[&str] = &[
    "/var/run/postgresql",
    "/run/postgresql",
    "/tmp",
    "/private/tmp",
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

impl ConnString {
    /// Parses a URI (recognised by its `postgresql://` or `postgres://` scheme) or else a
    /// keyword/value string. Surrounding whitespace is ignored, so a pasted line with its
    /// newline still parses.
    pub fn parse(s: &str) -> Result<ConnString, DsnError> {
        if s.contains('\0') {
            return Err(DsnError::NulByte { part: None });
        }
        let s = s.trim_start();
        if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            return parse_uri(rest.trim_end());
        }
        if let Some(scheme) = uri_scheme(s) {
            return Err(DsnError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        }
        parse_keyword_value(s)
    }

    /// The URI form, whatever format was parsed. Everything is percent-encoded so that libpq
    /// and sqlx read it back identically. A string with a user but no host renders as libpq
    /// accepts it (`postgresql://app@/db`), which sqlx rejects; a resolved [`ConnConfig`]
    /// always has hosts, so its URLs work with both.
    pub fn to_url(&self, reveal: Reveal) -> String {
        let mut url = String::from("postgresql://");
        if self.user.is_some() || self.password.is_some() {
            if let Some(user) = &self.user {
                url.push_str(&encode(user, COMPONENT));
            }
            if let Some(password) = &self.password {
                url.push(':');
                match reveal {
                    Reveal::Redacted => url.push_str(REDACTED),
                    Reveal::Secret => url.push_str(&encode(password.expose(), COMPONENT)),
                }
            }
            url.push('@');
        }

        let mut query: Vec<String> = Vec::new();
        // The url crate (sqlx) rejects an empty host after a port or after credentials, so
        // hosts go in the authority when every host is given; a socket directory is then
        // percent-encoded (%2Ftmp), which libpq and sqlx both read as a socket. Without
        // credentials the readable `?host=/var/run/postgresql` form is used instead.
        let has_credentials = self.user.is_some() || self.password.is_some();
        let in_authority = !self.hosts.is_empty()
            && self.hosts.iter().all(|spec| spec.host.is_some())
            && (has_credentials || !self.hosts.iter().any(HostSpec::is_socket));
        if in_authority {
            let hosts: Vec<String> = self
                .hosts
                .iter()
                .map(|spec| {
                    let host = spec.host.as_deref().unwrap_or_default();
                    let mut rendered = if host.contains(':') {
                        format!("[{}]", encode(host, IPV6_HOST))
                    } else {
                        encode(host, COMPONENT)
                    };
                    if let Some(port) = spec.port {
                        rendered.push_str(&format!(":{port}"));
                    }
                    rendered
                })
                .collect();
            url.push_str(&hosts.join(","));
        } else {
            if self.lists_hosts() {
                let hosts: Vec<String> = self
                    .hosts
                    .iter()
                    .map(|spec| encode(spec.host.as_deref().unwrap_or_default(), QUERY_VALUE))
                    .collect();
                query.push(format!("host={}", hosts.join(",")));
            }
            if let Some(ports) = self.port_list() {
                query.push(format!("port={ports}"));
            }
        }

        if let Some(dbname) = &self.dbname {
            url.push('/');
            url.push_str(&encode(dbname, COMPONENT));
        }

        for (key, value) in self.parameters(reveal) {
            query.push(format!(
                "{}={}",
                encode(key, COMPONENT),
                encode(&value, QUERY_VALUE)
            ));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// The keyword/value form: `host=localhost port=5432 user=app dbname=app`, values quoted
    /// only when they must be.
    pub fn to_keyword_value(&self, reveal: Reveal) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if self.lists_hosts() {
            let hosts: Vec<&str> = self
                .hosts
                .iter()
                .map(|spec| spec.host.as_deref().unwrap_or_default())
                .collect();
            pairs.push(("host", hosts.join(",")));
        }
        if let Some(ports) = self.port_list() {
            pairs.push(("port", ports));
        }
        if let Some(user) = &self.user {
            pairs.push(("user", user.clone()));
        }
        if let Some(password) = &self.password {
            let shown = match reveal {
                Reveal::Redacted => REDACTED,
                Reveal::Secret => password.expose(),
            };
            pairs.push(("password", shown.to_owned()));
        }
        if let Some(dbname) = &self.dbname {
            pairs.push(("dbname", dbname.clone()));
        }
        pairs.extend(self.parameters(reveal));
        pairs
            .iter()
            .map(|(key, value)| format!("{key}={}", quote_keyword_value(value)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the host list must be written out: a name is given, or several empty ones
    /// (`host=,` means the default host twice; leaving it out would mean it once).
    fn lists_hosts(&self) -> bool {
        self.hosts.len() > 1 || self.hosts.iter().any(|spec| spec.host.is_some())
    }

    /// Renders in the format it was written in.
    pub fn render(&self, reveal: Reveal) -> String {
        match self.format {
            Format::Uri => self.to_url(reveal),
            Format::KeyValue => self.to_keyword_value(reveal),
        }
    }

    /// The ports as one libpq list, or None when no port was given. Equal ports on every host
    /// collapse to one, which libpq applies to all hosts.
    fn port_list(&self) -> Option<String> {
        if self.hosts.iter().all(|spec| spec.port.is_none()) {
            return None;
        }
        let first = self.hosts[0].port;
        if self.hosts.len() > 1 && self.hosts.iter().all(|spec| spec.port == first) {
            return first.map(|port| port.to_string());
        }
        let ports: Vec<String> = self
            .hosts
            .iter()
            .map(|spec| spec.port.map(|port| port.to_string()).unwrap_or_default())
            .collect();
        Some(ports.join(","))
    }

    /// The parameters after host, port, user, password and dbname, in rendering order.
    fn parameters(&self, reveal: Reveal) -> Vec<(&str, String)> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(sslmode) = self.sslmode {
            params.push(("sslmode", sslmode.as_str().to_owned()));
        }
        if let Some(timeout) = self.connect_timeout {
            params.push(("connect_timeout", timeout.to_string()));
        }
        if let Some(name) = &self.application_name {
            params.push(("application_name", name.clone()));
        }
        if let Some(cert) = &self.sslrootcert {
            params.push(("sslrootcert", cert.clone()));
        }
        if let Some(options) = &self.options {
            params.push(("options", options.clone()));
        }
        for (key, value) in &self.unknown {
            let value = if reveal == Reveal::Redacted && is_secret_key(key) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            params.push((key.as_str(), value));
        }
        params
    }

    /// Applies libpq's precedence — the string, then the `PG*` variable, then the default —
    /// and returns the settings a connection attempt uses.
    pub fn resolve(&self, env: &dyn Environment) -> Result<ConnConfig, DsnError> {
        use env_vars::*;
        let var = |name: &str| env.var(name).filter(|value| !value.is_empty());
        let in_variable = |variable: &'static str| {
            move |error: DsnError| DsnError::Environment {
                variable,
                error: Box::new(error),
            }
        };

        // libpq keeps `host` and `port` as separate lists, each taken from the string or else
        // its variable, and pairs them only at the end.
        let hosts: Vec<Option<String>> = if self.hosts.iter().any(|spec| spec.host.is_some()) {
            self.hosts.iter().map(|spec| spec.host.clone()).collect()
        } else if let Some(pghost) = var(PGHOST) {
            split_list(&pghost)
        } else {
            vec![None]
        };
        let ports: Vec<Option<u16>> = if self.hosts.iter().any(|spec| spec.port.is_some()) {
            self.hosts.iter().map(|spec| spec.port).collect()
        } else if let Some(pgport) = var(PGPORT) {
            parse_port_list(&pgport).map_err(in_variable(PGPORT))?
        } else {
            vec![None]
        };
        let ports = pair_ports(hosts.len(), ports)?;

        // Whether each host was defaulted matters for `.pgpass`, which libpq matches against
        // "localhost" then.
        let mut endpoints = Vec::with_capacity(hosts.len());
        let mut pgpass_hosts: Vec<(Vec<String>, u16)> = Vec::with_capacity(hosts.len());
        for (host, port) in hosts.into_iter().zip(ports) {
            let port = port.unwrap_or(DEFAULT_PORT);
            match host {
                None => {
                    endpoints.push(Endpoint {
                        host: env.default_host(port),
                        port,
                    });
                    pgpass_hosts.push((vec!["localhost".to_owned()], port));
                }
                Some(host) => {
                    let names = if DEFAULT_SOCKET_DIRS.contains(&host.as_str()) {
                        vec!["localhost".to_owned(), host.clone()]
                    } else {
                        vec![host.clone()]
                    };
                    pgpass_hosts.push((names, port));
                    endpoints.push(Endpoint {
                        host: Host::from_libpq(host),
                        port,
                    });
                }
            }
        }

        let user = self
            .user
            .clone()
            .or_else(|| var(PGUSER))
            .or_else(|| env.os_user())
            .ok_or(DsnError::NoUser)?;
        let dbname = self
            .dbname
            .clone()
            .or_else(|| var(PGDATABASE))
            .unwrap_or_else(|| user.clone());

        let (password, password_source) = if let Some(password) = &self.password {
            (Some(password.clone()), PasswordSource::ConnString)
        } else if let Some(password) = var(PGPASSWORD) {
            (Some(Password::new(password)), PasswordSource::EnvPgPassword)
        } else {
            // ConnConfig has one password for all hosts; libpq looks one up per host, so the
            // first host that has a line wins here.
            let found = pgpass_hosts.iter().find_map(|(names, port)| {
                names
                    .iter()
                    .find_map(|name| env.pgpass_password(name, *port, &dbname, &user))
            });
            match found {
                Some(password) => (Some(Password::new(password)), PasswordSource::PgPass),
                None => (None, PasswordSource::None),
            }
        };

        let sslmode = match self.sslmode {
            Some(mode) => mode,
            None => match var(PGSSLMODE) {
                Some(value) => value.parse().map_err(in_variable(PGSSLMODE))?,
                None => SslMode::default(),
            },
        };
        let connect_timeout = match self.connect_timeout {
            Some(seconds) => Some(seconds),
            None => var(PGCONNECT_TIMEOUT)
                .map(|value| parse_connect_timeout(&value))
                .transpose()
                .map_err(in_variable(PGCONNECT_TIMEOUT))?,
        };

        Ok(ConnConfig {
            endpoints,
            user,
            password,
            password_source,
            dbname,
            sslmode,
            connect_timeout: connect_timeout.and_then(timeout_duration),
            application_name: self.application_name.clone().or_else(|| var(PGAPPNAME)),
            sslrootcert: self.sslrootcert.clone().or_else(|| var(PGSSLROOTCERT)),
            options: self.options.clone().or_else(|| var(PGOPTIONS)),
            unknown: self.unknown.clone(),
            allow_cleartext: false,
        })
    }
}

impl fmt::Display for ConnString {
    /// The redacted URI, safe for logs and terminals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_url(Reveal::Redacted))
    }
}

/// libpq's reading of `connect_timeout`: zero or negative waits forever, and 1 second is
/// raised to 2 (libpq's minimum).
pub fn timeout_duration(seconds: i64) -> Option<Duration> {
    match seconds {
        ..=0 => None,
        1 => Some(Duration::from_secs(2)),
        n => Some(Duration::from_secs(n.unsigned_abs())),
    }
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

fn quote_keyword_value(value: &str) -> String {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| is_c_space(c) || c == '\'' || c == '\\');
    if !needs_quotes {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

/// The scheme of something that looks like a URL (`mysql://`, `jdbc:postgresql://`).
fn uri_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let valid = starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':'));
    valid.then_some(scheme)
}

fn split_list(value: &str) -> Vec<Option<String>> {
    value
        .split(',')
        .map(|item| (!item.is_empty()).then(|| item.to_owned()))
        .collect()
}

#[derive(Debug)]
enum PortProblem {
    NotANumber,
    OutOfRange,
}

/// libpq accepts surrounding whitespace and requires 1..=65535.
fn parse_port(text: &str) -> Result<u16, PortProblem> {
    let trimmed = text.trim_matches(is_c_space);
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortProblem::NotANumber);
    }
    match digits.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(PortProblem::OutOfRange),
    }
}

fn port_error(text: &str, problem: PortProblem) -> DsnError {
    match problem {
        PortProblem::NotANumber => DsnError::PortNotANumber {
            value: text.to_owned(),
        },
        PortProblem::OutOfRange => DsnError::PortOutOfRange {
            value: text.to_owned(),
        },
    }
}

fn parse_port_list(value: &str) -> Result<Vec<Option<u16>>, DsnError> {
    value
        .split(',')
        .map(|item| {
            if item.is_empty() {
                Ok(None)
            } else {
                parse_port(item)
                    .map(Some)
                    .map_err(|problem| port_error(item, problem))
            }
        })
        .collect()
}

/// libpq's rule: one port for every host, or one port per host.
fn pair_ports(host_count: usize, ports: Vec<Option<u16>>) -> Result<Vec<Option<u16>>, DsnError> {
    if ports.len() == host_count {
        Ok(ports)
    } else if ports.len() == 1 {
        Ok(vec![ports[0]; host_count])
    } else {
        Err(DsnError::PortCountMismatch {
            hosts: host_count,
            ports: ports.len(),
        })
    }
}

fn parse_connect_timeout(value: &str) -> Result<i64, DsnError> {
    value
        .trim_matches(is_c_space)
        .parse()
        .map_err(|_| DsnError::InvalidConnectTimeout {
            value: value.to_owned(),
        })
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Collects parameters in the order they appear; as in libpq a later value replaces an
/// earlier one (`postgresql://h/db?host=other` connects to `other`).
#[derive(Default)]
struct Collected {
    hosts: Option<Vec<Option<String>>>,
    ports: Option<Vec<Option<u16>>>,
    conn: ConnString,
}

impl Collected {
    fn set(&mut self, key: &str, value: String) -> Result<(), DsnError> {
        let conn = &mut self.conn;
        match key {
            "host" => self.hosts = (!value.is_empty()).then(|| split_list(&value)),
            "port" => {
                self.ports = if value.is_empty() {
                    None
                } else {
                    Some(parse_port_list(&value)?)
                }
            }
            "user" => conn.user = non_empty(value),
            "password" => conn.password = non_empty(value).map(Password::new),
            "dbname" => conn.dbname = non_empty(value),
            "sslmode" => {
                conn.sslmode = if value.is_empty() {
                    None
                } else {
                    Some(value.parse()?)
                }
            }
            // libpq translates this JDBC spelling, in URIs only.
            "ssl" if conn.format == Format::Uri && value == "true" => {
                conn.sslmode = Some(SslMode::Require)
            }
            "connect_timeout" => {
                conn.connect_timeout = if value.is_empty() {
                    None
                } else {
                    Some(parse_connect_timeout(&value)?)
                }
            }
            "application_name" => conn.application_name = non_empty(value),
            "sslrootcert" => conn.sslrootcert = non_empty(value),
            "options" => conn.options = non_empty(value),
            _ => match conn.unknown.iter_mut().find(|(known, _)| known == key) {
                Some(existing) => existing.1 = value,
                None => conn.unknown.push((key.to_owned(), value)),
            },
        }
        Ok(())
    }

    fn finish(self) -> Result<ConnString, DsnError> {
        let mut conn = self.conn;
        conn.hosts = match (self.hosts, self.ports) {
            (None, None) => Vec::new(),
            (Some(hosts), None) => hosts
                .into_iter()
                .map(|host| HostSpec { host, port: None })
                .collect(),
            // Ports without hosts stay a list: the hosts may come from PGHOST later.
            (None, Some(ports)) => ports
                .into_iter()
                .map(|port| HostSpec { host: None, port })
                .collect(),
            (Some(hosts), Some(ports)) => {
                let ports = pair_ports(hosts.len(), ports)?;
                hosts
                    .into_iter()
                    .zip(ports)
                    .map(|(host, port)| HostSpec { host, port })
                    .collect()
            }
        };
        // `postgresql://:` names one empty host and no port: the defaults, as if unsaid.
        if let [
            HostSpec {
                host: None,
                port: None,
            },
        ] = conn.hosts[..]
        {
            conn.hosts.clear();
        }
        Ok(conn)
    }
}

/// Percent-decodes one part of a URI. libpq decodes every part and refuses `%00`; a bad
/// sequence in a secret part is reported without quoting it.
fn decode(raw: &str, part: UriPart) -> Result<String, DsnError> {
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(offset) = raw[from..].find('%') {
        let at = from + offset;
        let valid = bytes.len() >= at + 3
            && bytes[at + 1].is_ascii_hexdigit()
            && bytes[at + 2].is_ascii_hexdigit();
        if !valid {
            let token = (!part.is_secret()).then(|| raw[at..].chars().take(3).collect());
            return Err(DsnError::InvalidPercentEncoding { part, token });
        }
        if &bytes[at + 1..at + 3] == b"00" {
            return Err(DsnError::NulByte { part: Some(part) });
        }
        from = at + 3;
    }
    String::from_utf8(percent_decode_str(raw).collect()).map_err(|_| DsnError::InvalidUtf8 { part })
}

/// Host names a user would type (so the text after `host:` cannot be a password).
fn looks_like_host_name(host: &str) -> bool {
    host == "localhost" || host.contains('.') || host.parse::<IpAddr>().is_ok()
}

/// Parses what follows `postgresql://`, with libpq's rules (`conninfo_uri_parse_options`): the
/// user and password end at the first `@` before any `/`, so an unencoded `?` or `#` in a
/// password is accepted, while an unencoded `@` or `/` is caught and explained.
fn parse_uri(rest: &str) -> Result<ConnString, DsnError> {
    parse_uri_parts(rest).map_err(|error| {
        // Any '@' besides the one that ends "user:password" may come from a password with a
        // raw '@', '/', '?' or '&', whose pieces then look like a host, port, path or query.
        let first_slash = rest.find('/').unwrap_or(rest.len());
        let userinfo_ats = usize::from(rest[..first_slash].contains('@'));
        if rest.matches('@').count() > userinfo_ats {
            error.obscured(Format::Uri)
        } else {
            error
        }
    })
}

fn parse_uri_parts(rest: &str) -> Result<ConnString, DsnError> {
    let mut collected = Collected {
        conn: ConnString {
            format: Format::Uri,
            ..ConnString::default()
        },
        ..Collected::default()
    };

    let first_slash = rest.find('/').unwrap_or(rest.len());
    let (has_userinfo, after) = match rest[..first_slash].find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            collected.set("user", decode(user, UriPart::UserName)?)?;
            if let Some(password) = password {
                collected.set("password", decode(password, UriPart::Password)?)?;
            }
            (true, &rest[at + 1..])
        }
        None => (false, rest),
    };

    let authority = parse_host_list(after, has_userinfo)?;
    collected.hosts = authority.hosts;
    collected.ports = authority.ports;
    let pos = authority.end;
    let bytes = after.as_bytes();

    let mut query = None;
    match bytes.get(pos) {
        Some(b'/') => {
            let path = &after[pos + 1..];
            let (dbname, rest_query) = match path.split_once('?') {
                Some((dbname, query)) => (dbname, Some(query)),
                None => (path, None),
            };
            // libpq would take "user:12/34@host/db" as database "34@host/db"; a database
            // name with a raw '@' is far more likely a password with a raw '/'.
            if dbname.contains('@') {
                return Err(DsnError::UnencodedAt {
                    part: UriPart::DatabaseName,
                });
            }
            collected.set("dbname", decode(dbname, UriPart::DatabaseName)?)?;
            query = rest_query;
        }
        Some(b'?') => query = Some(&after[pos + 1..]),
        _ => {}
    }

    if let Some(query) = query {
        parse_query(query, &mut collected)?;
    }
    collected.finish()
}

/// The `host[:port],…` part of a URI, which ends at `/`, `?` or the end.
struct HostList {
    /// None when no host is written (`postgresql:///db`).
    hosts: Option<Vec<Option<String>>>,
    /// None when no port is written.
    ports: Option<Vec<Option<u16>>>,
    /// Byte offset just past the list.
    end: usize,
}

/// Reads the host list that follows `user:password@` (when `has_userinfo`) or the scheme.
fn parse_host_list(after: &str, has_userinfo: bool) -> Result<HostList, DsnError> {
    let bytes = after.as_bytes();
    let mut pos = 0;
    let mut hosts: Vec<Option<String>> = Vec::new();
    let mut ports: Vec<Option<u16>> = Vec::new();
    let mut any_port = false;
    loop {
        let host_text = if bytes.get(pos) == Some(&b'[') {
            let close = after[pos + 1..]
                .find(']')
                .ok_or(DsnError::UnterminatedIpv6)?;
            let text = &after[pos + 1..pos + 1 + close];
            if text.is_empty() {
                return Err(DsnError::EmptyIpv6);
            }
            // libpq would split a comma inside the brackets into two hosts; none of these
            // belongs in an address.
            if let Some(found) = text
                .chars()
                .find(|c| matches!(c, ',' | '/' | '?' | '#' | '[') || c.is_whitespace())
            {
                return Err(DsnError::InvalidIpv6 { found });
            }
            pos += close + 2;
            if let Some(&next) = bytes.get(pos)
                && !matches!(next, b':' | b'/' | b'?' | b',')
            {
                let found = after[pos..].chars().next().unwrap_or_default();
                return Err(DsnError::UnexpectedAfterIpv6 { found });
            }
            text
        } else {
            let end = after[pos..]
                .find([':', '/', '?', ','])
                .map_or(after.len(), |offset| pos + offset);
            let text = &after[pos..end];
            pos = end;
            text
        };
        if host_text.contains('@') {
            return Err(DsnError::UnencodedAt {
                part: UriPart::Host,
            });
        }
        let host = decode(host_text, UriPart::Host)?;
        // libpq decodes, then splits the host list on commas: `%2C` would make two hosts.
        if host.contains(',') {
            return Err(DsnError::CommaInHost);
        }
        hosts.push(non_empty(host));

        if bytes.get(pos) == Some(&b':') {
            any_port = true;
            let start = pos + 1;
            let end = after[start..]
                .find(['/', '?', ','])
                .map_or(after.len(), |offset| start + offset);
            let port_text = &after[start..end];
            pos = end;
            // A password with an unencoded '/' ends the host part early, and what libpq
            // then reads as "host:port" is really "user:password…": never quote it.
            let at_sign_follows = after[start..].contains('@');
            let may_be_password =
                at_sign_follows || !(has_userinfo || looks_like_host_name(host_text));
            // After "user:password@", the host itself may be a piece of a password that
            // holds a raw '@', so it is named only when there was no user part.
            let hidden = || DsnError::PortHidden {
                host: (!has_userinfo).then(|| host_text.to_owned()),
                at_sign_follows,
            };
            if port_text.contains('@') {
                return Err(DsnError::UnencodedAt {
                    part: UriPart::Host,
                });
            }
            if port_text.is_empty() {
                // "user:?pass/word@host": libpq sees an empty port and a query.
                if at_sign_follows && !has_userinfo {
                    return Err(hidden());
                }
                ports.push(None);
            } else if may_be_password {
                let port = decode(port_text, UriPart::Port).map_err(|_| hidden())?;
                ports.push(Some(parse_port(&port).map_err(|_| hidden())?));
            } else {
                let port = decode(port_text, UriPart::Port)?;
                ports.push(Some(
                    parse_port(&port).map_err(|problem| port_error(&port, problem))?,
                ));
            }
        } else {
            ports.push(None);
        }

        if bytes.get(pos) == Some(&b',') {
            pos += 1;
        } else {
            break;
        }
    }
    Ok(HostList {
        hosts: (hosts.len() > 1 || hosts[0].is_some()).then_some(hosts),
        ports: any_port.then_some(ports),
        end: pos,
    })
}

/// libpq's `conninfo_uri_parse_params`: `&`-separated `key=value`, both percent-decoded
/// (never `+` as space), exactly one `=` each; a single trailing `&` is allowed.
fn parse_query(query: &str, collected: &mut Collected) -> Result<(), DsnError> {
    let mut rest = query;
    let mut seen_secret = false;
    while !rest.is_empty() {
        let (piece, next) = rest.split_once('&').unwrap_or((rest, ""));
        rest = next;
        match parse_query_parameter(piece, collected) {
            Ok(key) => seen_secret |= is_secret_key(&key),
            // After `password=ab&cd=e`, "cd=e" may be the rest of a password with a raw '&'.
            Err(error) if seen_secret => return Err(error.obscured(Format::Uri)),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// One `key=value` piece of the query; returns the key.
fn parse_query_parameter(piece: &str, collected: &mut Collected) -> Result<String, DsnError> {
    let Some((raw_key, raw_value)) = piece.split_once('=') else {
        // A piece with an '@' is the rest of a user:password that a raw '/' or '?' cut short.
        return Err(DsnError::QueryParamMissingEquals {
            param: (!piece.contains('@')).then(|| piece.to_owned()),
        });
    };
    let key = decode(raw_key, UriPart::ParameterName)?;
    if key.is_empty() {
        return Err(DsnError::QueryParamEmptyKey);
    }
    // Such a name could not be written back as a keyword (libpq rejects it anyway, as it
    // rejects every name it does not know).
    if key.chars().any(|c| is_c_space(c) || c == '=') {
        return Err(DsnError::QueryParamInvalidKey { key });
    }
    if raw_value.contains('=') {
        return Err(DsnError::QueryParamExtraEquals { key });
    }
    let value = decode(raw_value, UriPart::value_of(&key))?;
    collected.set(&key, value)?;
    Ok(key)
}

/// libpq's `conninfo_parse`: `keyword = value` pairs separated by whitespace; a value is
/// single-quoted when it has spaces or is empty, and `\` escapes the next character, quoted
/// or not.
fn parse_keyword_value(s: &str) -> Result<ConnString, DsnError> {
    let mut collected = Collected {
        conn: ConnString {
            format: Format::KeyValue,
            ..ConnString::default()
        },
        ..Collected::default()
    };
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut seen_secret = false;
    loop {
        match parse_keyword_value_pair(&chars, &mut i, &mut collected) {
            Ok(Some(keyword)) => seen_secret |= is_secret_key(&keyword),
            Ok(None) => break,
            // "password=my secret" (unquoted) leaves "secret" to be read as a keyword.
            Err(error) if seen_secret => return Err(error.obscured(Format::KeyValue)),
            Err(error) => return Err(error),
        }
    }
    collected.finish()
}

/// Reads one `keyword=value` pair starting at `i`; returns its keyword, or None at the end.
fn parse_keyword_value_pair(
    chars: &[char],
    i: &mut usize,
    collected: &mut Collected,
) -> Result<Option<String>, DsnError> {
    let skip_spaces = |i: &mut usize| {
        while chars.get(*i).is_some_and(|&c| is_c_space(c)) {
            *i += 1;
        }
    };
    skip_spaces(i);
    if *i == chars.len() {
        return Ok(None);
    }
    let start = *i;
    while chars.get(*i).is_some_and(|&c| c != '=' && !is_c_space(c)) {
        *i += 1;
    }
    let keyword: String = chars[start..*i].iter().collect();
    skip_spaces(i);
    if chars.get(*i) != Some(&'=') {
        // "user:pw@host" is a URI without its scheme: not to be quoted back.
        return Err(DsnError::KvMissingEquals {
            keyword: (!keyword.contains('@')).then_some(keyword),
        });
    }
    if keyword.is_empty() {
        return Err(DsnError::KvEmptyKeyword);
    }
    *i += 1;
    skip_spaces(i);

    let mut value = String::new();
    if chars.get(*i) == Some(&'\'') {
        *i += 1;
        loop {
            match chars.get(*i) {
                None => return Err(DsnError::UnterminatedQuote { keyword }),
                Some('\\') => {
                    *i += 1;
                    if let Some(&c) = chars.get(*i) {
                        value.push(c);
                        *i += 1;
                    }
                }
                Some('\'') => {
                    *i += 1;
                    break;
                }
                Some(&c) => {
                    value.push(c);
                    *i += 1;
                }
            }
        }
    } else {
        while let Some(&c) = chars.get(*i) {
            *i += 1;
            if is_c_space(c) {
                break;
            }
            if c == '\\' {
                if let Some(&escaped) = chars.get(*i) {
                    value.push(escaped);
                    *i += 1;
                }
            } else {
                value.push(c);
            }
        }
    }
    collected.set(&keyword, value)?;
    Ok(Some(keyword))
}

// ---------------------------------------------------------------------------------------------
// Resolution

/// What [`ConnString::resolve`] needs from the outside world, so resolution stays pure.
pub trait Environment {
    /// A `PG*` variable (see [`env_vars`]); an empty value counts as unset.
    fn var(&self, name: &str) -> Option<String>;
    fn os_user(&self) -> Option<String>;
    /// Where to connect when no host is given: the process implementation looks for a
    /// socket `.s.PGSQL.<port>` in the usual directories.
    fn default_host(&self, port: u16) -> Host;
    /// The `.pgpass` password for these values (matching is done by `pgpass.rs`).
    fn pgpass_password(&self, host: &str, port: u16, dbname: &str, user: &str) -> Option<String>;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name or IP address (IPv6 without brackets).
    Tcp(String),
    /// A directory holding the socket file `.s.PGSQL.<port>`.
    Socket(PathBuf),
}

impl Host {
    /// libpq's reading of a `host` value: a path (or `@name`) is a socket directory.
    pub fn from_libpq(host: String) -> Host {
        if is_socket_dir(&host) {
            Host::Socket(PathBuf::from(host))
        } else {
            Host::Tcp(host)
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(host) => f.write_str(host),
            Host::Socket(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// One place to try, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl Endpoint {
    /// The socket file for a socket endpoint.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Socket(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Host::Tcp(_) => None,
        }
    }

    /// On this machine: a socket, `localhost`, 127.0.0.0/8 or `::1`.
    pub fn is_local(&self) -> bool {
        match &self.host {
            Host::Socket(_) => true,
            Host::Tcp(host) => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host.eq_ignore_ascii_case("localhost")
                    || host.eq_ignore_ascii_case("localhost.")
                    || host
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.to_canonical().is_loopback())
            }
        }
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, `[::1]:5432`, or the socket file's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(host) if host.contains(':') => write!(f, "[{host}]:{}", self.port),
            Host::Tcp(host) => write!(f, "{host}:{}", self.port),
            Host::Socket(dir) => write!(
                f,
                "{}",
                dir.join(format!(".s.PGSQL.{}", self.port)).display()
            ),
        }
    }
}

/// Where the password came from, so a diagnosis can say which one to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    ConnString,
    EnvPgPassword,
    PgPass,
    /// Typed at a prompt (set by callers, never by `resolve`).
    Prompt,
    None,
}

/// Fully resolved settings: what a connection attempt uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Tried in order.
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub password: Option<Password>,
    pub password_source: PasswordSource,
    pub dbname: String,
    pub sslmode: SslMode,
    /// Per endpoint; None waits forever.
    pub connect_timeout: Option<Duration>,
    pub application_name: Option<String>,
    pub sslrootcert: Option<String>,
    pub options: Option<String>,
    pub unknown: Vec<(String, String)>,
    /// Whether a server that asks for the password in cleartext may have it over TCP without
    /// TLS (`--allow-cleartext`, after libpq's `require_auth`); false unless the caller sets it.
    pub allow_cleartext: bool,
}

impl ConnConfig {
    /// sqlx options for one attempt at one endpoint, with `sslmode` chosen by the caller (it
    /// handles allow/prefer fallbacks, and must pass `Disable` for sockets because sqlx
    /// negotiates TLS even there).
    ///
    /// Every field comes from this config so that sqlx's own reading of `PG*` variables and
    /// `.pgpass` cannot disagree with what aksara reports. sqlx offers no way to clear a
    /// field it took from the environment, so the empty password and application name are
    /// set explicitly (sqlx sends an empty password anyway when it has none, and the server's
    /// default application name is empty). Some variables can still leak in when this config
    /// was resolved against a different environment than the process's: `PGSSLROOTCERT`
    /// (when this config has no root certificate), `PGSSLCERT`/`PGSSLKEY`, and `PGOPTIONS`,
    /// which sqlx puts before our options (later settings win on the server).
    pub fn sqlx_options(
        &self,
        endpoint: &Endpoint,
        sslmode: sqlx::postgres::PgSslMode,
    ) -> sqlx::postgres::PgConnectOptions {
        use sqlx::postgres::PgConnectOptions;

        // The builder can only add `-c name=value` settings, not a raw options string, while
        // sqlx's URL parser passes `options=` through verbatim: use that for the options and
        // the builder for the rest. The password in the URL keeps sqlx from reading .pgpass.
        let base = match &self.options {
            Some(options) => {
                let url = format!(
                    "postgresql://aksara:unused@localhost/?options={}",
                    encode(options, QUERY_VALUE)
                );
                // Cannot fail: every part of the URL is fixed or percent-encoded.
                url.parse::<PgConnectOptions>()
                    .unwrap_or_else(|_| PgConnectOptions::new_without_pgpass())
            }
            None => PgConnectOptions::new_without_pgpass(),
        };

        let mut options = base
            .port(endpoint.port)
            .username(&self.user)
            .password(self.password.as_ref().map_or("", Password::expose))
            .database(&self.dbname)
            .ssl_mode(sslmode)
            .application_name(self.application_name.as_deref().unwrap_or(""));
        options = match &endpoint.host {
            Host::Tcp(host) => options.host(host),
            Host::Socket(dir) => options.host(&dir.to_string_lossy()).socket(dir),
        };
        if let Some(cert) = &self.sslrootcert {
            options = options.ssl_root_cert(cert);
        }
        options
    }

    /// Back to a string with every setting explicit.
    pub fn to_conn_string(&self) -> ConnString {
        ConnString {
            format: Format::Uri,
            hosts: self
                .endpoints
                .iter()
                .map(|endpoint| HostSpec {
                    host: Some(match &endpoint.host {
                        Host::Tcp(host) => host.clone(),
                        Host::Socket(dir) => dir.to_string_lossy().into_owned(),
                    }),
                    port: Some(endpoint.port),
                })
                .collect(),
            user: Some(self.user.clone()),
            password: self.password.clone(),
            dbname: Some(self.dbname.clone()),
            sslmode: Some(self.sslmode),
            connect_timeout: self
                .connect_timeout
                .map(|timeout| i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)),
            application_name: self.application_name.clone(),
            sslrootcert: self.sslrootcert.clone(),
            options: self.options.clone(),
            unknown: self.unknown.clone(),
        }
    }

    /// The explicit URI with the password as `****`.
    pub fn redacted(&self) -> String {
        self.to_conn_string().to_url(Reveal::Redacted)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The part of a URI an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriPart {
    UserName,
    Password,
    Host,
    Port,
    DatabaseName,
    ParameterName,
    ParameterValue(String),
}

impl UriPart {
    /// The value of query parameter `key`; a password parameter is a password.
    fn value_of(key: &str) -> UriPart {
        if is_secret_key(key) {
            UriPart::Password
        } else {
            UriPart::ParameterValue(key.to_owned())
        }
    }

    fn is_secret(&self) -> bool {
        *self == UriPart::Password
    }
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriPart::UserName => f.write_str("the user name"),
            UriPart::Password => f.write_str("the password"),
            UriPart::Host => f.write_str("the host"),
            UriPart::Port => f.write_str("the port"),
            UriPart::DatabaseName => f.write_str("the database name"),
            UriPart::ParameterName => f.write_str("a parameter name"),
            UriPart::ParameterValue(key) => write!(f, "the value of \"{key}\""),
        }
    }
}

/// Why a connection string or `PG*` variable could not be used. No variant holds a
/// password, so neither the message nor the hint can show one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DsnError {
    UnsupportedScheme {
        scheme: String,
    },
    PortNotANumber {
        value: String,
    },
    PortOutOfRange {
        value: String,
    },
    /// The text after `host:` in a URI is not a port, and may be part of a password (a
    /// password with an unencoded `/`, or a missing `@host`), so it is not shown.
    PortHidden {
        /// The text before the `:`, when it cannot be part of a password.
        host: Option<String>,
        at_sign_follows: bool,
    },
    PortCountMismatch {
        hosts: usize,
        ports: usize,
    },
    /// A raw `@` where none can be: in the host part (a second `@`) or the database name.
    UnencodedAt {
        part: UriPart,
    },
    /// `token` is None for a password.
    InvalidPercentEncoding {
        part: UriPart,
        token: Option<String>,
    },
    /// `part` is None for a raw NUL anywhere in the string.
    NulByte {
        part: Option<UriPart>,
    },
    InvalidUtf8 {
        part: UriPart,
    },
    UnterminatedIpv6,
    EmptyIpv6,
    /// A percent-encoded comma in a host of the URI's host list.
    CommaInHost,
    /// A character no IPv6 address (or zone) holds, inside the brackets.
    InvalidIpv6 {
        found: char,
    },
    UnexpectedAfterIpv6 {
        found: char,
    },
    /// `param` is None when it follows a password and may be the rest of it.
    QueryParamMissingEquals {
        param: Option<String>,
    },
    QueryParamExtraEquals {
        key: String,
    },
    QueryParamEmptyKey,
    /// A parameter name no keyword/value string could hold (a blank or `=` in it): no
    /// parameter libpq knows is named like that.
    QueryParamInvalidKey {
        key: String,
    },
    /// Something is malformed where a password with an unencoded (URI) or unquoted
    /// (keyword/value) special character may have spilled, so only the kind of problem is
    /// named.
    Obscured {
        problem: &'static str,
        format: Format,
    },
    UnknownSslMode {
        value: String,
        suggestion: Option<&'static str>,
    },
    InvalidConnectTimeout {
        value: String,
    },
    /// `keyword` is None when the word may be part of a password.
    KvMissingEquals {
        keyword: Option<String>,
    },
    KvEmptyKeyword,
    UnterminatedQuote {
        keyword: String,
    },
    /// No user in the string, `PGUSER` or the OS.
    NoUser,
    /// A malformed `PG*` variable.
    Environment {
        variable: &'static str,
        error: Box<DsnError>,
    },
}

impl fmt::Display for DsnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DsnError::UnsupportedScheme { scheme } => write!(
                f,
                "unsupported scheme \"{scheme}\"; expected postgresql:// or postgres://"
            ),
            DsnError::PortNotANumber { value } => write!(f, "port \"{value}\" is not a number"),
            DsnError::PortOutOfRange { value } => {
                write!(f, "port \"{value}\" is out of range (1-65535)")
            }
            DsnError::PortHidden {
                host: Some(host), ..
            } => write!(
                f,
                "expected a port number after \"{host}:\", found something else \
                 (not shown: it may be part of a password)"
            ),
            DsnError::PortHidden { host: None, .. } => f.write_str(
                "expected a port number after the host, found something else \
                 (not shown: it may be part of a password)",
            ),
            DsnError::PortCountMismatch { hosts, ports } => {
                write!(f, "could not match {ports} port numbers to {hosts} hosts")
            }
            DsnError::UnencodedAt {
                part: UriPart::DatabaseName,
            } => f.write_str("found an unencoded \"@\" in the database name part of the URI"),
            DsnError::UnencodedAt { part } => write!(
                f,
                "found a second unencoded \"@\" in {part} part of the URI"
            ),
            DsnError::InvalidPercentEncoding {
                part,
                token: Some(token),
            } => {
                write!(f, "invalid percent-encoding \"{token}\" in {part}")
            }
            DsnError::InvalidPercentEncoding { part, token: None } => {
                write!(f, "invalid percent-encoding in {part}")
            }
            DsnError::NulByte { part: Some(part) } => write!(
                f,
                "{part} contains %00 (a NUL byte), which PostgreSQL cannot accept"
            ),
            DsnError::NulByte { part: None } => {
                f.write_str("the connection string contains a NUL byte")
            }
            DsnError::InvalidUtf8 { part } => {
                write!(f, "{part} is not valid UTF-8 once percent-decoded")
            }
            DsnError::UnterminatedIpv6 => {
                f.write_str("missing \"]\" after an IPv6 address that starts with \"[\"")
            }
            DsnError::EmptyIpv6 => f.write_str("empty IPv6 address \"[]\" in the URI"),
            DsnError::CommaInHost => f.write_str(
                "a host in the URI holds an encoded comma (%2C), which libpq reads as a separator between hosts",
            ),
            DsnError::InvalidIpv6 { found } => {
                write!(f, "unexpected {found:?} inside an IPv6 address in brackets")
            }
            DsnError::UnexpectedAfterIpv6 { found } => write!(
                f,
                "unexpected \"{found}\" after an IPv6 address in brackets (expected \":\", \"/\", \"?\" or \",\")"
            ),
            DsnError::QueryParamMissingEquals { param: Some(param) } => {
                write!(f, "missing \"=\" in URI query parameter \"{param}\"")
            }
            DsnError::QueryParamMissingEquals { param: None } => f.write_str(
                "missing \"=\" in a URI query parameter \
                 (not shown: it may be part of a password)",
            ),
            DsnError::Obscured { problem, .. } => write!(
                f,
                "malformed connection string: {problem} (not shown: it may be part of a password)"
            ),
            DsnError::QueryParamEmptyKey => f.write_str(
                "a URI query parameter has an empty name (\"=\" right after \"?\" or \"&\")",
            ),
            DsnError::QueryParamExtraEquals { key } => write!(
                f,
                "extra \"=\" in the value of URI query parameter \"{key}\""
            ),
            DsnError::QueryParamInvalidKey { key } => write!(
                f,
                "invalid URI query parameter name {key:?}: it holds a blank or \"=\""
            ),
            DsnError::UnknownSslMode {
                value,
                suggestion: Some(suggestion),
            } => write!(
                f,
                "unknown sslmode \"{value}\"; did you mean \"{suggestion}\"?"
            ),
            DsnError::UnknownSslMode {
                value,
                suggestion: None,
            } => {
                write!(f, "unknown sslmode \"{value}\"")
            }
            DsnError::InvalidConnectTimeout { value } => {
                write!(f, "connect_timeout \"{value}\" is not an integer")
            }
            DsnError::KvMissingEquals {
                keyword: Some(keyword),
            } => write!(
                f,
                "missing \"=\" after \"{keyword}\" in keyword/value string"
            ),
            DsnError::KvMissingEquals { keyword: None } => f.write_str(
                "missing \"=\" after a word in the keyword/value string \
                 (not shown: it may be part of a password)",
            ),
            DsnError::KvEmptyKeyword => {
                f.write_str("found \"=\" with no keyword before it in keyword/value string")
            }
            DsnError::UnterminatedQuote { keyword } => {
                write!(f, "unterminated quoted value for \"{keyword}\"")
            }
            DsnError::NoUser => f.write_str("could not determine the user name to connect as"),
            DsnError::Environment { variable, error } => {
                write!(f, "environment variable {variable}: {error}")
            }
        }
    }
}

impl std::error::Error for DsnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DsnError::Environment { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl DsnError {
    /// This error without any text taken from the input, for a place where that text may
    /// be part of a password.
    fn obscured(self, format: Format) -> DsnError {
        let problem = match &self {
            DsnError::PortNotANumber { .. } => "a port that is not a number",
            DsnError::PortOutOfRange { .. } => "a port out of range",
            DsnError::InvalidPercentEncoding { token: Some(_), .. } => {
                "an invalid percent-encoding"
            }
            DsnError::InvalidPercentEncoding {
                part: UriPart::ParameterValue(_),
                ..
            } => "an invalid percent-encoding",
            DsnError::NulByte {
                part: Some(UriPart::ParameterValue(_)),
            } => "a %00 (NUL byte)",
            DsnError::InvalidUtf8 {
                part: UriPart::ParameterValue(_),
            } => "percent-encoded text that is not UTF-8",
            DsnError::QueryParamMissingEquals { param: Some(_) } => {
                "a query parameter without \"=\""
            }
            DsnError::QueryParamExtraEquals { .. } => "a query parameter with a second \"=\"",
            DsnError::QueryParamInvalidKey { .. } => "a query parameter name with a blank or \"=\"",
            DsnError::UnknownSslMode { .. } => "an unknown sslmode",
            DsnError::InvalidConnectTimeout { .. } => "a connect_timeout that is not an integer",
            DsnError::KvMissingEquals { keyword: Some(_) } => "a word without \"=\" after it",
            DsnError::UnterminatedQuote { .. } => "an unterminated quoted value",
            _ => return self,
        };
        DsnError::Obscured { problem, format }
    }

    /// The fix, in a sentence, for the `hint:` line.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            DsnError::UnsupportedScheme { scheme } if scheme.eq_ignore_ascii_case("jdbc:postgresql") => {
                "drop the \"jdbc:\" prefix: postgresql://host:5432/dbname?user=...&password=... \
                 is a valid libpq URI"
                    .to_owned()
            }
            DsnError::UnsupportedScheme { scheme }
                if scheme.eq_ignore_ascii_case("postgresql")
                    || scheme.eq_ignore_ascii_case("postgres") =>
            {
                "the scheme is case-sensitive: write it as postgresql://".to_owned()
            }
            DsnError::UnsupportedScheme { .. } => {
                "aksara works with PostgreSQL only: postgresql://user:password@host:5432/dbname"
                    .to_owned()
            }
            DsnError::PortNotANumber { value } if value.contains(['@', '#', '/', '?', ':']) => {
                PASSWORD_ENCODING_HINT.to_owned()
            }
            DsnError::PortNotANumber { .. } | DsnError::PortOutOfRange { .. } => {
                "the port is a number from 1 to 65535; PostgreSQL's default is 5432".to_owned()
            }
            DsnError::PortHidden { at_sign_follows: true, .. } => {
                format!("the password probably contains an unencoded \"/\"; {PASSWORD_ENCODING_HINT}")
            }
            DsnError::PortHidden { at_sign_follows: false, .. } => {
                "a URI with a password looks like postgresql://user:password@host:5432/dbname; \
                 a port is a number from 1 to 65535"
                    .to_owned()
            }
            DsnError::PortCountMismatch { .. } => {
                "give one port for all hosts, or one port per host in the same order".to_owned()
            }
            DsnError::UnencodedAt { .. } => PASSWORD_ENCODING_HINT.to_owned(),
            DsnError::InvalidPercentEncoding { part: UriPart::Password, .. } => {
                PASSWORD_ENCODING_HINT.to_owned()
            }
            DsnError::InvalidPercentEncoding { .. } => {
                "\"%\" must be followed by two hex digits; write a literal % as %25".to_owned()
            }
            DsnError::NulByte { .. } => "remove the NUL byte (%00)".to_owned(),
            DsnError::InvalidUtf8 { .. } => {
                "percent-encode text as UTF-8 (é is %C3%A9)".to_owned()
            }
            DsnError::CommaInHost => {
                "separate hosts with a plain comma: postgresql://h1:5432,h2:5433/dbname".to_owned()
            }
            DsnError::UnterminatedIpv6
            | DsnError::EmptyIpv6
            | DsnError::InvalidIpv6 { .. }
            | DsnError::UnexpectedAfterIpv6 { .. } => {
                "write an IPv6 address in brackets: postgresql://[2001:db8::1]:5432/dbname".to_owned()
            }
            DsnError::QueryParamMissingEquals { param: None } => {
                format!("the password probably contains an unencoded \"/\" or \"?\"; {PASSWORD_ENCODING_HINT}")
            }
            DsnError::Obscured { format: Format::Uri, .. } => PASSWORD_ENCODING_HINT.to_owned(),
            DsnError::Obscured { format: Format::KeyValue, .. } => {
                "put the password in single quotes if it contains spaces, and escape ' and \\ in it \
                 with a backslash: password='it\\'s secret'"
                    .to_owned()
            }
            DsnError::QueryParamMissingEquals { param: Some(_) }
            | DsnError::QueryParamEmptyKey
            | DsnError::QueryParamInvalidKey { .. } => {
                "query parameters are key=value pairs separated by &, as in ?sslmode=require&connect_timeout=10"
                    .to_owned()
            }
            DsnError::QueryParamExtraEquals { key } if is_secret_key(key) => {
                PASSWORD_ENCODING_HINT.replace("& is %26", "& is %26, = is %3D")
            }
            DsnError::QueryParamExtraEquals { .. } => {
                "percent-encode \"=\" inside a value as %3D, as in options=-c%20search_path%3Dapp"
                    .to_owned()
            }
            DsnError::UnknownSslMode { .. } => {
                "sslmode is one of disable, allow, prefer, require, verify-ca, verify-full (lower case)"
                    .to_owned()
            }
            DsnError::InvalidConnectTimeout { .. } => {
                "connect_timeout is whole seconds, as in connect_timeout=10; 0 waits forever".to_owned()
            }
            DsnError::KvMissingEquals { .. } => {
                "write keyword=value pairs separated by spaces (host=localhost port=5432 dbname=app); \
                 put a value with spaces in single quotes and escape ' and \\ in it with a backslash \
                 (password='it\\'s secret'); a URI starts with postgresql://"
                    .to_owned()
            }
            DsnError::KvEmptyKeyword => {
                "write keyword=value pairs separated by spaces, as in host=localhost port=5432".to_owned()
            }
            DsnError::UnterminatedQuote { .. } => {
                "close the value with ' and write a quote inside it as \\' (a doubled '' is not an escape)"
                    .to_owned()
            }
            DsnError::NoUser => {
                "put the user in the connection string (postgresql://user@host/db) or set PGUSER".to_owned()
            }
            DsnError::Environment { variable, error } => match error.hint() {
                Some(hint) => format!("{hint}; or unset {variable}"),
                None => format!("fix or unset {variable}"),
            },
        };
        Some(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const CANARY: &str = "Canary-S3cret-7f2a";

    fn parse(s: &str) -> ConnString {
        ConnString::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn parse_err(s: &str) -> DsnError {
        ConnString::parse(s).expect_err(s)
    }

    fn tcp(host: &str, port: Option<u16>) -> HostSpec {
        HostSpec {
            host: Some(host.to_owned()),
            port,
        }
    }

    // --- the project's documented examples -------------------------------------------------

    #[test]
    fn documented_examples_round_trip() {
        for url in [
            "postgresql://localhost/myapp",
            "postgresql://postgres:secret@localhost:5432/myapp",
            "postgresql://user:pass@db.example.com:5432/production",
            "postgresql://postgres:password@localhost:5432/myapp",
            "postgresql://user:pass@host:5432/db?sslmode=require",
            "postgresql://user:pass@host:5432/db?sslmode=require&connect_timeout=10&application_name=myapp",
        ] {
            let conn = parse(url);
            assert_eq!(conn.format, Format::Uri);
            assert_eq!(conn.to_url(Reveal::Secret), url);
            assert_eq!(conn.render(Reveal::Secret), url);
        }
    }

    #[test]
    fn documented_example_fields() {
        let conn = parse(
            "postgresql://user:pass@host:5432/db?sslmode=require&connect_timeout=10&application_name=myapp",
        );
        assert_eq!(conn.hosts, vec![tcp("host", Some(5432))]);
        assert_eq!(conn.user.as_deref(), Some("user"));
        assert_eq!(conn.password.as_ref().map(Password::expose), Some("pass"));
        assert_eq!(conn.dbname.as_deref(), Some("db"));
        assert_eq!(conn.sslmode, Some(SslMode::Require));
        assert_eq!(conn.connect_timeout, Some(10));
        assert_eq!(conn.application_name.as_deref(), Some("myapp"));
        assert!(conn.unknown.is_empty());
    }

    #[test]
    fn redacted_forms() {
        let conn = parse("postgresql://app:hunter2@host/db");
        assert_eq!(conn.to_string(), "postgresql://app:****@host/db");
        assert_eq!(
            conn.to_url(Reveal::Redacted),
            "postgresql://app:****@host/db"
        );
        assert_eq!(
            conn.to_keyword_value(Reveal::Redacted),
            "host=host user=app password=**** dbname=db"
        );
    }

    #[test]
    fn postgres_scheme_is_accepted_and_rendered_as_postgresql() {
        let conn = parse("postgres://u@h/d");
        assert_eq!(conn.to_url(Reveal::Secret), "postgresql://u@h/d");
    }

    #[test]
    fn empty_and_minimal_uris() {
        assert_eq!(parse("postgresql://"), ConnString::default());
        let conn = parse("postgresql://host/");
        assert_eq!(conn.dbname, None);
        assert_eq!(conn.to_url(Reveal::Secret), "postgresql://host");
        let conn = parse("postgresql://localhost?sslmode=disable");
        assert_eq!(conn.sslmode, Some(SslMode::Disable));
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://localhost?sslmode=disable"
        );
        assert_eq!(parse("  postgresql://h/d\n").dbname.as_deref(), Some("d"));
    }

    #[test]
    fn empty_user_and_password_count_as_not_given() {
        let conn = parse("postgresql://:@h/d");
        assert_eq!(conn.user, None);
        assert_eq!(conn.password, None);
        let conn = parse("postgresql://:pw@h/d");
        assert_eq!(conn.user, None);
        assert_eq!(conn.to_url(Reveal::Secret), "postgresql://:pw@h/d");
    }

    // --- sslmode ------------------------------------------------------------------------------

    #[test]
    fn all_six_sslmodes_parse_and_render() {
        for mode in SslMode::ALL {
            let url = format!("postgresql://h/d?sslmode={mode}");
            let conn = parse(&url);
            assert_eq!(conn.sslmode, Some(mode));
            assert_eq!(conn.to_url(Reveal::Secret), url);
            assert_eq!(mode.as_str().parse::<SslMode>(), Ok(mode));
            let kv = parse(&format!("sslmode={mode}"));
            assert_eq!(kv.sslmode, Some(mode));
        }
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn sslmode_properties() {
        let tls: Vec<_> = SslMode::ALL
            .into_iter()
            .filter(|m| m.requires_tls())
            .collect();
        assert_eq!(
            tls,
            [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull]
        );
        let verifying: Vec<_> = SslMode::ALL.into_iter().filter(|m| m.verifies()).collect();
        assert_eq!(verifying, [SslMode::VerifyCa, SslMode::VerifyFull]);
    }

    #[test]
    fn sslmode_did_you_mean() {
        let error = "requir".parse::<SslMode>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown sslmode \"requir\"; did you mean \"require\"?"
        );
        let suggest = |s: &str| match s.parse::<SslMode>() {
            Err(DsnError::UnknownSslMode { suggestion, .. }) => suggestion,
            other => panic!("{other:?}"),
        };
        assert_eq!(suggest("REQUIRE"), Some("require"));
        assert_eq!(suggest("verify_full"), Some("verify-full"));
        assert_eq!(suggest("verifyca"), Some("verify-ca"));
        assert_eq!(suggest("prefered"), Some("prefer"));
        assert_eq!(suggest("true"), Some("require"));
        assert_eq!(suggest("off"), Some("disable"));
        assert_eq!(suggest("bogus"), None);
        assert_eq!(suggest(""), None);
        assert_eq!(
            "bogus".parse::<SslMode>().unwrap_err().to_string(),
            "unknown sslmode \"bogus\""
        );
    }

    #[test]
    fn ssl_true_means_require_in_uris_only() {
        assert_eq!(
            parse("postgresql://h/d?ssl=true").sslmode,
            Some(SslMode::Require)
        );
        let conn = parse("postgresql://h/d?ssl=false");
        assert_eq!(conn.sslmode, None);
        assert_eq!(conn.unknown, vec![("ssl".to_owned(), "false".to_owned())]);
        let kv = parse("host=h ssl=true");
        assert_eq!(kv.sslmode, None);
        assert_eq!(kv.unknown, vec![("ssl".to_owned(), "true".to_owned())]);
    }

    // --- keyword/value ------------------------------------------------------------------------

    #[test]
    fn keyword_value_basic() {
        let conn = parse("host=localhost port=5432 dbname=mydb connect_timeout=10");
        assert_eq!(conn.format, Format::KeyValue);
        assert_eq!(conn.hosts, vec![tcp("localhost", Some(5432))]);
        assert_eq!(conn.dbname.as_deref(), Some("mydb"));
        assert_eq!(conn.connect_timeout, Some(10));
        assert_eq!(
            conn.render(Reveal::Secret),
            "host=localhost port=5432 dbname=mydb connect_timeout=10"
        );
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://localhost:5432/mydb?connect_timeout=10"
        );
    }

    #[test]
    fn keyword_value_quoting_and_escapes() {
        let conn = parse(r"user = 'my user' password='it\'s a \\ secret' dbname=a\ b options=''");
        assert_eq!(conn.user.as_deref(), Some("my user"));
        assert_eq!(
            conn.password.as_ref().map(Password::expose),
            Some(r"it's a \ secret")
        );
        assert_eq!(conn.dbname.as_deref(), Some("a b"));
        assert_eq!(conn.options, None);
        assert_eq!(
            conn.to_keyword_value(Reveal::Secret),
            r"user='my user' password='it\'s a \\ secret' dbname='a b'"
        );
        assert_eq!(parse(&conn.to_keyword_value(Reveal::Secret)), conn);
    }

    #[test]
    fn keyword_value_later_value_wins() {
        let conn = parse("dbname=a dbname=b");
        assert_eq!(conn.dbname.as_deref(), Some("b"));
    }

    #[test]
    fn doubled_quote_is_not_an_escape_and_password_is_not_echoed() {
        let error = parse_err(&format!("password='{CANARY}''{CANARY}' host=x"));
        assert!(matches!(
            error,
            DsnError::Obscured {
                format: Format::KeyValue,
                ..
            }
        ));
        assert!(error.hint().unwrap().contains(r"\'"));
        assert!(!error.to_string().contains(CANARY));
    }

    #[test]
    fn keyword_value_errors() {
        assert_eq!(
            parse_err("host").to_string(),
            "missing \"=\" after \"host\" in keyword/value string"
        );
        assert_eq!(
            parse_err("password='abc").to_string(),
            "unterminated quoted value for \"password\""
        );
        assert_eq!(parse_err("=x"), DsnError::KvEmptyKeyword);
        assert_eq!(
            parse_err("port=notaport").to_string(),
            "port \"notaport\" is not a number"
        );
        assert_eq!(
            parse_err("connect_timeout=abc").to_string(),
            "connect_timeout \"abc\" is not an integer"
        );
        assert_eq!(
            parse_err("port=70000").to_string(),
            "port \"70000\" is out of range (1-65535)"
        );
        assert!(matches!(
            parse_err("port=0"),
            DsnError::PortOutOfRange { .. }
        ));
        assert!(
            parse_err("localhost:5432")
                .hint()
                .unwrap()
                .contains("postgresql://")
        );
    }

    #[test]
    fn empty_string_is_all_defaults() {
        assert_eq!(
            parse(""),
            ConnString {
                format: Format::KeyValue,
                ..ConnString::default()
            }
        );
    }

    // --- hosts --------------------------------------------------------------------------------

    #[test]
    fn multiple_hosts_in_uri() {
        let conn = parse("postgresql://h1:5432,h2:5433/db");
        assert_eq!(
            conn.hosts,
            vec![tcp("h1", Some(5432)), tcp("h2", Some(5433))]
        );
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://h1:5432,h2:5433/db"
        );
        assert_eq!(
            conn.to_keyword_value(Reveal::Secret),
            "host=h1,h2 port=5432,5433 dbname=db"
        );
        let conn = parse("postgresql://h1,h2:5433/db");
        assert_eq!(conn.hosts, vec![tcp("h1", None), tcp("h2", Some(5433))]);
        assert_eq!(parse(&conn.to_url(Reveal::Secret)), conn);
    }

    #[test]
    fn multiple_hosts_in_keyword_value_share_a_single_port() {
        let conn = parse("host=h1,h2 port=5433");
        assert_eq!(
            conn.hosts,
            vec![tcp("h1", Some(5433)), tcp("h2", Some(5433))]
        );
        assert_eq!(
            conn.to_keyword_value(Reveal::Secret),
            "host=h1,h2 port=5433"
        );
        assert_eq!(conn.to_url(Reveal::Secret), "postgresql://h1:5433,h2:5433");
        let conn = parse("host=h1,h2 port=5432,5433");
        assert_eq!(
            conn.hosts,
            vec![tcp("h1", Some(5432)), tcp("h2", Some(5433))]
        );
        assert_eq!(
            parse_err("host=h1,h2 port=1,2,3"),
            DsnError::PortCountMismatch { hosts: 2, ports: 3 }
        );
    }

    #[test]
    fn socket_forms() {
        let query_form = parse("postgresql:///db?host=/var/run/postgresql");
        let host_form = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
        assert_eq!(query_form, host_form);
        assert_eq!(query_form.hosts, vec![tcp("/var/run/postgresql", None)]);
        assert!(query_form.hosts[0].is_socket());
        assert_eq!(
            host_form.to_url(Reveal::Secret),
            "postgresql:///db?host=/var/run/postgresql"
        );
        let with_port = parse("postgresql://app@%2Ftmp:5433/db");
        assert_eq!(
            with_port.to_url(Reveal::Secret),
            "postgresql://app@%2Ftmp:5433/db"
        );
        assert_eq!(parse(&with_port.to_url(Reveal::Secret)), with_port);
        let kv = parse("host=/var/run/postgresql dbname=db");
        assert_eq!(kv.hosts, query_form.hosts);
    }

    #[test]
    fn query_host_overrides_authority() {
        let conn = parse("postgresql://h1:5433/db?host=other");
        assert_eq!(conn.hosts, vec![tcp("other", Some(5433))]);
    }

    #[test]
    fn port_without_host() {
        let conn = parse("postgresql://:5433/db");
        assert_eq!(
            conn.hosts,
            vec![HostSpec {
                host: None,
                port: Some(5433)
            }]
        );
        assert_eq!(conn.to_url(Reveal::Secret), "postgresql:///db?port=5433");
        assert_eq!(parse(&conn.to_url(Reveal::Secret)), conn);
    }

    #[test]
    fn ipv6_hosts() {
        let conn = parse("postgresql://u@[2001:db8::1]:5433,[::1]/db");
        assert_eq!(
            conn.hosts,
            vec![tcp("2001:db8::1", Some(5433)), tcp("::1", None)]
        );
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://u@[2001:db8::1]:5433,[::1]/db"
        );
        assert_eq!(parse("postgresql://[::1]").hosts, vec![tcp("::1", None)]);
        assert_eq!(
            parse_err("postgresql://[::1/db"),
            DsnError::UnterminatedIpv6
        );
        assert_eq!(parse_err("postgresql://[]/db"), DsnError::EmptyIpv6);
        assert_eq!(
            parse_err("postgresql://[::1]x/db"),
            DsnError::UnexpectedAfterIpv6 { found: 'x' }
        );
    }

    // --- parameters ---------------------------------------------------------------------------

    #[test]
    fn unknown_parameters_are_kept_in_order() {
        let url = "postgresql://h/d?schema=public&target_session_attrs=read-write&sslmode=require";
        let conn = parse(url);
        assert_eq!(
            conn.unknown,
            vec![
                ("schema".to_owned(), "public".to_owned()),
                ("target_session_attrs".to_owned(), "read-write".to_owned()),
            ]
        );
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://h/d?sslmode=require&schema=public&target_session_attrs=read-write"
        );
        assert_eq!(
            conn.to_keyword_value(Reveal::Secret),
            "host=h dbname=d sslmode=require schema=public target_session_attrs=read-write"
        );
    }

    #[test]
    fn secret_unknown_parameters_are_redacted() {
        let conn = parse(&format!("postgresql://h/d?sslpassword={CANARY}"));
        assert!(!conn.to_string().contains(CANARY));
        assert!(!conn.to_keyword_value(Reveal::Redacted).contains(CANARY));
        assert!(conn.to_url(Reveal::Secret).contains(CANARY));
    }

    #[test]
    fn plus_is_literal_and_rendered_encoded() {
        let conn = parse("postgresql://h/d?application_name=a+b%20c&options=-c%20geqo%3Doff");
        assert_eq!(conn.application_name.as_deref(), Some("a+b c"));
        assert_eq!(conn.options.as_deref(), Some("-c geqo=off"));
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://h/d?application_name=a%2Bb%20c&options=-c%20geqo%3Doff"
        );
    }

    #[test]
    fn special_characters_in_password() {
        let conn = parse("postgresql://u:p%40ss%3Aw%2Frd%23%25%2B%20x@h/d");
        assert_eq!(
            conn.password.as_ref().map(Password::expose),
            Some("p@ss:w/rd#%+ x")
        );
        assert_eq!(
            conn.to_url(Reveal::Secret),
            "postgresql://u:p%40ss%3Aw%2Frd%23%25%2B%20x@h/d"
        );
        // libpq reads up to the first '@', so raw '?', '#' and ':' in a password work.
        let conn = parse("postgresql://u:a?b#c:d@h/d");
        assert_eq!(
            conn.password.as_ref().map(Password::expose),
            Some("a?b#c:d")
        );
        assert_eq!(conn.hosts, vec![tcp("h", None)]);
    }

    #[test]
    fn query_user_and_password_jdbc_style() {
        let conn = parse("postgresql://h/d?user=app&password=pw");
        assert_eq!(conn.user.as_deref(), Some("app"));
        assert_eq!(conn.password.as_ref().map(Password::expose), Some("pw"));
        assert_eq!(conn.to_url(Reveal::Secret), "postgresql://app:pw@h/d");
    }

    // --- URI errors ---------------------------------------------------------------------------

    #[test]
    fn uri_errors_have_pointed_messages() {
        assert_eq!(
            parse_err("mysql://u:p@h/d").to_string(),
            "unsupported scheme \"mysql\"; expected postgresql:// or postgres://"
        );
        assert!(
            parse_err("jdbc:postgresql://h/d")
                .hint()
                .unwrap()
                .contains("jdbc:")
        );
        assert!(
            parse_err("POSTGRESQL://h/d")
                .hint()
                .unwrap()
                .contains("case-sensitive")
        );
        assert_eq!(
            parse_err("postgresql://localhost:notaport/db").to_string(),
            "port \"notaport\" is not a number"
        );
        assert_eq!(
            parse_err("postgresql://u@h:99999/db").to_string(),
            "port \"99999\" is out of range (1-65535)"
        );
        assert_eq!(
            parse_err("postgresql://h/d?sslmode=requir").to_string(),
            "unknown sslmode \"requir\"; did you mean \"require\"?"
        );
        assert_eq!(
            parse_err("postgresql://h/d?connect_timeout=abc").to_string(),
            "connect_timeout \"abc\" is not an integer"
        );
        assert_eq!(
            parse_err("postgresql://h/d?sslmode").to_string(),
            "missing \"=\" in URI query parameter \"sslmode\""
        );
        let extra = parse_err("postgresql://h/d?options=-c%20a=b");
        assert_eq!(
            extra.to_string(),
            "extra \"=\" in the value of URI query parameter \"options\""
        );
        assert!(extra.hint().unwrap().contains("%3D"));
        assert_eq!(
            parse_err("postgresql://h%zz/d").to_string(),
            "invalid percent-encoding \"%zz\" in the host"
        );
        assert_eq!(
            parse_err("postgresql://u:%zz@h/d").to_string(),
            "invalid percent-encoding in the password"
        );
        assert_eq!(
            parse_err("postgresql://h/a%00b"),
            DsnError::NulByte {
                part: Some(UriPart::DatabaseName)
            }
        );
        assert_eq!(
            parse_err("postgresql://h/%ff"),
            DsnError::InvalidUtf8 {
                part: UriPart::DatabaseName
            }
        );
    }

    #[test]
    fn trailing_ampersand_is_allowed_but_empty_parameter_is_not() {
        assert_eq!(
            parse("postgresql://h/d?sslmode=require&").sslmode,
            Some(SslMode::Require)
        );
        assert!(matches!(
            parse_err("postgresql://h/d?sslmode=require&&a=b"),
            DsnError::QueryParamMissingEquals { .. }
        ));
    }

    #[test]
    fn unencoded_slash_in_password_is_explained_without_quoting_it() {
        let error = parse_err(&format!("postgresql://app:{CANARY}/x@db.example.com/app"));
        assert_eq!(
            error,
            DsnError::PortHidden {
                host: Some("app".to_owned()),
                at_sign_follows: true
            }
        );
        assert!(!error.to_string().contains(CANARY));
        assert!(error.hint().unwrap().contains("/ is %2F"));
        // Numeric password fragments are hidden too.
        let error = parse_err("postgresql://app:123456/x@db.example.com/app");
        assert!(!error.to_string().contains("123456"));
        // A forgotten "@host" leaves "user:password": not shown either.
        let error = parse_err(&format!("postgresql://app:{CANARY}/db"));
        assert!(!error.to_string().contains(CANARY));
    }

    #[test]
    fn unencoded_at_in_password_is_explained_without_quoting_it() {
        let error = parse_err(&format!("postgresql://app:{CANARY}@{CANARY}@h/db"));
        assert_eq!(
            error,
            DsnError::UnencodedAt {
                part: UriPart::Host
            }
        );
        assert!(!error.to_string().contains(CANARY));
        assert!(error.hint().unwrap().contains("@ is %40"));
        let error = parse_err("postgresql://app:12/3@h/db");
        assert_eq!(
            error,
            DsnError::UnencodedAt {
                part: UriPart::DatabaseName
            }
        );
    }

    #[test]
    fn unencoded_ampersand_in_query_password_is_not_quoted() {
        let error = parse_err(&format!("postgresql://h/d?password=a&{CANARY}"));
        assert!(matches!(
            error,
            DsnError::Obscured {
                format: Format::Uri,
                ..
            }
        ));
        assert!(!error.to_string().contains(CANARY));
        let error = parse_err(&format!("postgresql://h/d?password={CANARY}=x"));
        assert!(!error.to_string().contains(CANARY));
        let error = parse_err(&format!("postgresql://h/d?password={CANARY}%zz"));
        assert!(!error.to_string().contains(CANARY));
    }

    #[test]
    fn every_error_hides_a_canary_password() {
        let inputs = [
            format!("postgresql://app:{CANARY}%@h/db"),
            format!("postgresql://app:{CANARY}%4@h/db"),
            format!("postgresql://app:{CANARY}%00@h/db"),
            format!("postgresql://app:{CANARY}%ff@h/db"),
            format!("postgresql://app:{CANARY}/@h/db"),
            format!("postgresql://app:{CANARY}@@h/db"),
            format!("postgresql://app:{CANARY}@h:x/db"),
            format!("postgresql://app:{CANARY}@h/db?sslmode=x"),
            format!("postgresql://app:{CANARY}@h,h2:1,/db?port=1,2,3"),
            format!("postgresql://{CANARY}"),
            format!("password={CANARY} {CANARY}"),
            format!("password='{CANARY}"),
            format!("password={CANARY} port=x"),
            format!("app:{CANARY}@h/db"),
            format!("mysql://app:{CANARY}@h/db"),
        ];
        for input in &inputs {
            if let Err(error) = ConnString::parse(input) {
                let shown = format!("{error} {:?} {}", error.hint(), error);
                assert!(!shown.contains(CANARY), "{input:?} gave {shown}");
            }
        }
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let conn = parse(&format!("postgresql://app:{CANARY}@h/db"));
        assert!(!format!("{conn}").contains(CANARY));
        assert!(!format!("{conn:?}").contains(CANARY));
        assert!(!format!("{conn:#?}").contains(CANARY));
        let password = Password::new(CANARY.to_owned());
        assert_eq!(format!("{password}"), "****");
        assert_eq!(format!("{password:?}"), "****");
        let config = conn.resolve(&TestEnv::default()).unwrap();
        assert!(!format!("{config:?}").contains(CANARY));
        assert!(!config.redacted().contains(CANARY));
        assert!(
            config
                .to_conn_string()
                .to_url(Reveal::Secret)
                .contains(CANARY)
        );
    }

    // --- resolve ------------------------------------------------------------------------------

    /// (host, port, dbname, user)
    type PgPassKey = (&'static str, u16, &'static str, &'static str);

    #[derive(Default)]
    struct TestEnv {
        vars: HashMap<&'static str, &'static str>,
        os_user: Option<&'static str>,
        /// (host, port, dbname, user) -> password
        pgpass: Vec<(PgPassKey, &'static str)>,
    }

    impl TestEnv {
        fn with(vars: &[(&'static str, &'static str)]) -> TestEnv {
            TestEnv {
                vars: vars.iter().copied().collect(),
                os_user: Some("osuser"),
                ..TestEnv::default()
            }
        }
    }

    impl Environment for TestEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|v| v.to_string())
        }
        fn os_user(&self) -> Option<String> {
            self.os_user.map(str::to_owned)
        }
        fn default_host(&self, _port: u16) -> Host {
            Host::Socket(PathBuf::from("/var/run/postgresql"))
        }
        fn pgpass_password(
            &self,
            host: &str,
            port: u16,
            dbname: &str,
            user: &str,
        ) -> Option<String> {
            self.pgpass
                .iter()
                .find(|(key, _)| *key == (host, port, dbname, user))
                .map(|(_, pw)| pw.to_string())
        }
    }

    fn resolve(s: &str, env: &TestEnv) -> ConnConfig {
        parse(s).resolve(env).unwrap()
    }

    #[test]
    fn defaults_follow_libpq() {
        let config = resolve("", &TestEnv::with(&[]));
        assert_eq!(
            config.endpoints,
            vec![Endpoint {
                host: Host::Socket(PathBuf::from("/var/run/postgresql")),
                port: 5432
            }]
        );
        assert_eq!(config.user, "osuser");
        assert_eq!(config.dbname, "osuser");
        assert_eq!(config.password, None);
        assert_eq!(config.password_source, PasswordSource::None);
        assert_eq!(config.sslmode, SslMode::Prefer);
        assert_eq!(config.connect_timeout, None);
        assert_eq!(
            config.redacted(),
            "postgresql://osuser@%2Fvar%2Frun%2Fpostgresql:5432/osuser?sslmode=prefer"
        );
    }

    #[test]
    fn string_beats_environment_beats_defaults() {
        let env = TestEnv::with(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "verify-full"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGAPPNAME", "envapp"),
            ("PGSSLROOTCERT", "/env/root.crt"),
            ("PGOPTIONS", "-c geqo=off"),
        ]);
        let from_env = resolve("", &env);
        assert_eq!(
            from_env.endpoints,
            vec![Endpoint {
                host: Host::Tcp("envhost".into()),
                port: 6000
            }]
        );
        assert_eq!(from_env.user, "envuser");
        assert_eq!(
            from_env.password.as_ref().map(Password::expose),
            Some("envpw")
        );
        assert_eq!(from_env.password_source, PasswordSource::EnvPgPassword);
        assert_eq!(from_env.dbname, "envdb");
        assert_eq!(from_env.sslmode, SslMode::VerifyFull);
        assert_eq!(from_env.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(from_env.application_name.as_deref(), Some("envapp"));
        assert_eq!(from_env.sslrootcert.as_deref(), Some("/env/root.crt"));
        assert_eq!(from_env.options.as_deref(), Some("-c geqo=off"));

        let from_string = resolve(
            "postgresql://u:pw@h:1/db?sslmode=disable&connect_timeout=0&application_name=a&sslrootcert=/r&options=-c%20x%3Dy",
            &env,
        );
        assert_eq!(
            from_string.endpoints,
            vec![Endpoint {
                host: Host::Tcp("h".into()),
                port: 1
            }]
        );
        assert_eq!(from_string.user, "u");
        assert_eq!(from_string.password_source, PasswordSource::ConnString);
        assert_eq!(from_string.dbname, "db");
        assert_eq!(from_string.sslmode, SslMode::Disable);
        assert_eq!(from_string.connect_timeout, None);
        assert_eq!(from_string.application_name.as_deref(), Some("a"));
        assert_eq!(from_string.sslrootcert.as_deref(), Some("/r"));
        assert_eq!(from_string.options.as_deref(), Some("-c x=y"));
    }

    #[test]
    fn host_and_port_lists_come_separately() {
        let env = TestEnv::with(&[("PGHOST", "e1,e2"), ("PGPORT", "6000")]);
        let config = resolve("port=5433", &env);
        assert_eq!(
            config.endpoints,
            vec![
                Endpoint {
                    host: Host::Tcp("e1".into()),
                    port: 5433
                },
                Endpoint {
                    host: Host::Tcp("e2".into()),
                    port: 5433
                },
            ]
        );
        let config = resolve("port=1,2", &env);
        assert_eq!(config.endpoints[1].port, 2);
        let config = resolve("host=a", &env);
        assert_eq!(
            config.endpoints,
            vec![Endpoint {
                host: Host::Tcp("a".into()),
                port: 6000
            }]
        );
        let error = parse("host=a,b,c").resolve(&TestEnv::with(&[("PGPORT", "1,2")]));
        assert_eq!(
            error,
            Err(DsnError::PortCountMismatch { hosts: 3, ports: 2 })
        );
        let config = resolve("host=a,,/tmp", &TestEnv::with(&[]));
        assert_eq!(
            config
                .endpoints
                .iter()
                .map(|e| e.host.clone())
                .collect::<Vec<_>>(),
            vec![
                Host::Tcp("a".into()),
                Host::Socket("/var/run/postgresql".into()),
                Host::Socket("/tmp".into())
            ]
        );
    }

    #[test]
    fn malformed_environment_variables_are_errors_naming_the_variable() {
        let error = parse("")
            .resolve(&TestEnv::with(&[("PGSSLMODE", "requir")]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable PGSSLMODE: unknown sslmode \"requir\"; did you mean \"require\"?"
        );
        assert!(error.hint().unwrap().contains("unset PGSSLMODE"));
        assert!(std::error::Error::source(&error).is_some());
        let error = parse("")
            .resolve(&TestEnv::with(&[("PGPORT", "abc")]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable PGPORT: port \"abc\" is not a number"
        );
        let error = parse("")
            .resolve(&TestEnv::with(&[("PGCONNECT_TIMEOUT", "soon")]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable PGCONNECT_TIMEOUT: connect_timeout \"soon\" is not an integer"
        );
        // The string wins, so a bad variable it overrides does not matter.
        assert!(
            parse("sslmode=disable")
                .resolve(&TestEnv::with(&[("PGSSLMODE", "x")]))
                .is_ok()
        );
        // Empty variables count as unset.
        let config = resolve("", &TestEnv::with(&[("PGSSLMODE", ""), ("PGPORT", "")]));
        assert_eq!(config.sslmode, SslMode::Prefer);
        assert_eq!(config.endpoints[0].port, 5432);
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let timeout = |s: &str| resolve(s, &TestEnv::with(&[])).connect_timeout;
        assert_eq!(timeout("connect_timeout=1"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("connect_timeout=2"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("connect_timeout=10"), Some(Duration::from_secs(10)));
        assert_eq!(timeout("connect_timeout=0"), None);
        assert_eq!(timeout("connect_timeout=-5"), None);
        assert_eq!(timeout(""), None);
    }

    #[test]
    fn no_user_anywhere_is_an_error() {
        let env = TestEnv::default();
        assert_eq!(parse("").resolve(&env), Err(DsnError::NoUser));
        assert_eq!(resolve("user=u", &env).dbname, "u");
    }

    #[test]
    fn pgpass_is_used_only_when_no_password_elsewhere() {
        let mut env = TestEnv::with(&[]);
        env.pgpass = vec![
            (("db.example.com", 5432, "app", "app"), "from-pgpass"),
            (("localhost", 5432, "app", "app"), "local-pgpass"),
            (("/custom", 5432, "app", "app"), "custom-socket"),
        ];
        let config = resolve("postgresql://app@db.example.com/app", &env);
        assert_eq!(
            config.password.as_ref().map(Password::expose),
            Some("from-pgpass")
        );
        assert_eq!(config.password_source, PasswordSource::PgPass);

        let config = resolve("postgresql://app:inline@db.example.com/app", &env);
        assert_eq!(
            config.password.as_ref().map(Password::expose),
            Some("inline")
        );
        assert_eq!(config.password_source, PasswordSource::ConnString);

        env.vars.insert("PGPASSWORD", "env");
        let config = resolve("postgresql://app@db.example.com/app", &env);
        assert_eq!(config.password_source, PasswordSource::EnvPgPassword);
        env.vars.clear();

        // A defaulted host, and a socket in a default directory, match "localhost".
        let config = resolve("user=app dbname=app", &env);
        assert_eq!(
            config.password.as_ref().map(Password::expose),
            Some("local-pgpass")
        );
        let config = resolve("host=/var/run/postgresql user=app dbname=app", &env);
        assert_eq!(
            config.password.as_ref().map(Password::expose),
            Some("local-pgpass")
        );
        // Another socket directory matches by its path.
        let config = resolve("host=/custom user=app dbname=app", &env);
        assert_eq!(
            config.password.as_ref().map(Password::expose),
            Some("custom-socket")
        );
        // Nothing matches: no password.
        let config = resolve("host=other user=app dbname=app", &env);
        assert_eq!(config.password_source, PasswordSource::None);
    }

    #[test]
    fn endpoints() {
        let socket = Endpoint {
            host: Host::Socket("/tmp".into()),
            port: 5433,
        };
        assert_eq!(
            socket.socket_path(),
            Some(PathBuf::from("/tmp/.s.PGSQL.5433"))
        );
        assert_eq!(socket.to_string(), "/tmp/.s.PGSQL.5433");
        assert!(socket.is_local());
        let v6 = Endpoint {
            host: Host::Tcp("::1".into()),
            port: 5432,
        };
        assert_eq!(v6.to_string(), "[::1]:5432");
        assert!(v6.is_local());
        assert_eq!(v6.socket_path(), None);
        for local in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                Endpoint {
                    host: Host::Tcp(local.into()),
                    port: 1
                }
                .is_local(),
                "{local}"
            );
        }
        for remote in [
            "db.example.com",
            "10.0.0.1",
            "2001:db8::1",
            "localhost.example.com",
        ] {
            assert!(
                !Endpoint {
                    host: Host::Tcp(remote.into()),
                    port: 1
                }
                .is_local(),
                "{remote}"
            );
        }
        assert_eq!(
            Endpoint {
                host: Host::Tcp("db".into()),
                port: 5432
            }
            .to_string(),
            "db:5432"
        );
    }

    #[test]
    fn config_round_trips_through_an_explicit_string() {
        let env = TestEnv::with(&[]);
        let config = resolve(
            "postgresql://app:pw@/db?host=::1,/tmp&port=5433&connect_timeout=1&target_session_attrs=any",
            &env,
        );
        let explicit = config.to_conn_string();
        assert_eq!(explicit.connect_timeout, Some(2));
        let again = explicit.resolve(&TestEnv::default()).unwrap();
        assert_eq!(again, config);
        assert_eq!(
            config.redacted(),
            "postgresql://app:****@[::1]:5433,%2Ftmp:5433/db?sslmode=prefer&connect_timeout=2&target_session_attrs=any"
        );
    }

    // --- sqlx ---------------------------------------------------------------------------------

    #[test]
    fn sqlx_options_take_everything_from_the_config() {
        use sqlx::postgres::PgSslMode;
        let config = resolve(
            "postgresql://app:pw@db.example.com:6543/appdb?application_name=aksara&sslrootcert=/ca.pem&options=-c%20search_path%3Dapp%5C%20x",
            &TestEnv::with(&[]),
        );
        let options = config.sqlx_options(&config.endpoints[0], PgSslMode::VerifyFull);
        assert_eq!(options.get_host(), "db.example.com");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_socket(), None);
        assert_eq!(options.get_username(), "app");
        assert_eq!(options.get_database(), Some("appdb"));
        assert_eq!(format!("{:?}", options.get_ssl_mode()), "VerifyFull");
        assert_eq!(options.get_application_name(), Some("aksara"));
        assert!(
            options
                .get_options()
                .unwrap()
                .ends_with(r"-c search_path=app\ x")
        );

        let socket = Endpoint {
            host: Host::Socket("/var/run/postgresql".into()),
            port: 5433,
        };
        let options = config.sqlx_options(&socket, PgSslMode::Disable);
        assert_eq!(
            options.get_socket(),
            Some(&PathBuf::from("/var/run/postgresql"))
        );
        assert_eq!(options.get_port(), 5433);
        assert_eq!(format!("{:?}", options.get_ssl_mode()), "Disable");
    }

    #[test]
    fn sqlx_reads_rendered_urls_like_libpq() {
        use sqlx::postgres::PgConnectOptions;
        let conn = ConnString {
            user: Some("a+b c@d".into()),
            password: Some(Password::new("p@ss:w/rd#%+ x".into())),
            dbname: Some("my db+1".into()),
            hosts: vec![tcp("/var/run/postgresql", Some(5433))],
            application_name: Some("a+b c".into()),
            ..ConnString::default()
        };
        let url = conn.to_url(Reveal::Secret);
        let options: PgConnectOptions = url.parse().unwrap();
        assert_eq!(options.get_username(), "a+b c@d");
        assert_eq!(options.get_database(), Some("my db+1"));
        assert_eq!(
            options.get_socket(),
            Some(&PathBuf::from("/var/run/postgresql"))
        );
        assert_eq!(options.get_port(), 5433);
        assert_eq!(options.get_application_name(), Some("a+b c"));
        assert_eq!(parse(&url), conn);
    }

    // --- properties ---------------------------------------------------------------------------

    /// Any text PostgreSQL can store (no NUL), not empty (libpq treats empty as unset).
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[@:/?#%+'\"\\\\ =&,\\[\\]]{1,12}",
            "[a-z@:/?#%+'\" \\\\]{1,20}",
        ]
        .prop_filter("non-empty, no NUL", |s| !s.is_empty() && !s.contains('\0'))
    }

    #[test]
    fn regression_a_query_parameter_name_a_keyword_cannot_hold_is_refused() {
        // Found by the fuzz smoke test: the name was kept as an unknown parameter, and its
        // keyword/value rendering did not parse.
        for uri in [
            "postgresql://h/db?a%0Ab=1",
            "postgresql://h/db?a%20b=1",
            "postgresql://h/db?a%3Db=1",
            "postgresql://h/db?a\nb=1",
        ] {
            assert!(
                matches!(
                    ConnString::parse(uri),
                    Err(DsnError::QueryParamInvalidKey { .. })
                ),
                "{uri}"
            );
        }
        // Found by the proptest below: empty host lists lost their length (`,` is the
        // default host twice) or came back empty (`:` is no host at all).
        for (uri, hosts) in [("postgresql://,", 2), ("postgresql://:", 0), ("host=,,", 3)] {
            let conn = ConnString::parse(uri).unwrap();
            assert_eq!(conn.hosts.len(), hosts, "{uri}");
            for format in [Format::Uri, Format::KeyValue] {
                let conn = ConnString {
                    format,
                    ..conn.clone()
                };
                assert_eq!(
                    ConnString::parse(&conn.render(Reveal::Secret)),
                    Ok(conn),
                    "{uri}"
                );
            }
        }
        // Found by the fuzz smoke test: a comma inside IPv6 brackets was one host here and
        // two in the keyword/value rendering (and for libpq).
        for uri in [
            "postgresql://[::1,h2:1]:5432/db",
            "postgresql://[,h2/db?x::1]/db",
        ] {
            assert!(
                matches!(ConnString::parse(uri), Err(DsnError::InvalidIpv6 { .. })),
                "{uri}"
            );
        }
        assert!(ConnString::parse("postgresql://[fe80::1%25eth0]:5432/db").is_ok());
        // Found by cargo fuzz: `%2C` in a host was one host here, two for libpq and in the
        // keyword/value rendering.
        assert_eq!(
            ConnString::parse("postgresql://25%2C%20word/db"),
            Err(DsnError::CommaInHost)
        );
        assert_eq!(
            ConnString::parse("postgresql:///db?host=a%2Cb")
                .unwrap()
                .hosts
                .len(),
            2
        );
        // sqlx's own spellings still pass through.
        let conn = ConnString::parse("postgresql://h/db?options[search_path]=app&ssl-mode=require")
            .unwrap();
        let kv = ConnString {
            format: Format::KeyValue,
            ..conn.clone()
        };
        assert_eq!(ConnString::parse(&kv.render(Reveal::Secret)), Ok(kv));
    }

    proptest! {
        // Failures are reported with their minimal input; no regression file is written.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn credentials_round_trip_through_both_formats(
            user in name(),
            password in name(),
            dbname in name(),
            port in 1u16..,
        ) {
            let mut conn = ConnString {
                hosts: vec![tcp("db.example.com", Some(port))],
                user: Some(user),
                password: Some(Password::new(password)),
                dbname: Some(dbname),
                ..ConnString::default()
            };
            let url = conn.to_url(Reveal::Secret);
            prop_assert_eq!(ConnString::parse(&url), Ok(conn.clone()), "{}", url);
            conn.format = Format::KeyValue;
            let kv = conn.to_keyword_value(Reveal::Secret);
            prop_assert_eq!(ConnString::parse(&kv), Ok(conn), "{}", kv);
        }

        #[test]
        fn parameter_values_round_trip(
            application_name in name(),
            options in name(),
            unknown_value in any::<String>().prop_filter("no NUL", |s| !s.contains('\0')),
            socket in "/[a-z@:?#%+ ]{0,10}",
        ) {
            let conn = ConnString {
                hosts: vec![tcp(&socket, None)],
                application_name: Some(application_name),
                options: Some(options),
                unknown: vec![("target_session_attrs".into(), unknown_value)],
                ..ConnString::default()
            };
            let url = conn.to_url(Reveal::Secret);
            prop_assert_eq!(ConnString::parse(&url), Ok(conn.clone()), "{}", url);
            let kv = ConnString { format: Format::KeyValue, ..conn };
            let text = kv.to_keyword_value(Reveal::Secret);
            prop_assert_eq!(ConnString::parse(&text), Ok(kv), "{}", text);
        }

        /// Whatever parses renders back, in either format, to a string that parses to the
        /// same thing (the fuzz target `dsn_parse` checks this on mutated input too).
        #[test]
        fn whatever_parses_renders_back_to_itself(
            scheme in prop_oneof![Just("postgresql://"), Just("postgres://"), Just("")],
            rest in "[a-z0-9@:/?#%=&,\\[\\]' \\\\.\n_]{0,40}",
        ) {
            if let Ok(conn) = ConnString::parse(&format!("{scheme}{rest}")) {
                for format in [Format::Uri, Format::KeyValue] {
                    let conn = ConnString { format, ..conn.clone() };
                    let text = conn.render(Reveal::Secret);
                    prop_assert_eq!(ConnString::parse(&text), Ok(conn), "{}", text);
                }
            }
        }

        #[test]
        fn parse_never_panics(input in any::<String>()) {
            let _ = ConnString::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_uri_like_input(
            scheme in prop_oneof![Just("postgresql://"), Just("postgres://"), Just("")],
            rest in "[a-z0-9@:/?#%=&,\\[\\]' \\\\.]{0,40}",
        ) {
            if let Ok(conn) = ConnString::parse(&format!("{scheme}{rest}")) {
                let _ = conn.to_url(Reveal::Secret);
                let _ = conn.to_keyword_value(Reveal::Secret);
            }
        }

        /// A canary password with raw special characters around it is either parsed as that
        /// password (and then redacted) or rejected with an error that does not show it. The
        /// third outcome, a valid string that means something else (libpq reads it the same
        /// way: "app:@x" has an empty password and host "x"), may show text: it is then not
        /// the password as far as any parser can tell.
        #[test]
        fn raw_passwords_never_leak(
            before in "[@:/?#%+&= ]{0,3}",
            middle in "[@:/?#%+&= 0-9a-f]{0,4}",
            after in "[@:/?#%+&= ]{0,3}",
        ) {
            let password = format!("{before}canary{middle}secret{after}");
            for input in [
                format!("postgresql://app:{password}@db.example.com:5432/app"),
                format!("postgresql://db.example.com/app?user=app&password={password}"),
            ] {
                match ConnString::parse(&input) {
                    Err(error) => {
                        let shown = format!("{error} {:?} {error:?}", error.hint());
                        prop_assert!(!shown.contains("canary"), "{} -> {}", input, shown);
                        prop_assert!(!shown.contains("secret"), "{} -> {}", input, shown);
                    }
                    Ok(conn) if conn.password == Some(Password::new(password.clone())) => {
                        let shown = format!("{conn} {conn:?} {}", conn.to_keyword_value(Reveal::Redacted));
                        prop_assert!(!shown.contains("canary"), "{} -> {}", input, shown);
                    }
                    Ok(_) => {}
                }
            }
        }
    }
}
