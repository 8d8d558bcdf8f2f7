//! Whether a driver connects where a URL means: its reading compared with libpq's, the settings
//! the server would refuse, the TLS it adds or drops; the failure codes and the fix.

use std::fmt;

use super::{
    Driver, Endpoint, Host, Reading, Tls, libpq, meaning, read, reading_of, render, rewrite_conn,
    server_settings,
};
use crate::dsn::Password;

/// The driver codes are part of the one catalogue (`crate::code`).
pub use crate::code::Code;

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
pub(crate) fn differences(reference: &Reading, driver: &Reading) -> Vec<&'static str> {
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
