//! What a driver will connect with: hosts and ports, user, database, TLS, the settings it sends
//! and the parameters it ignores, read from a URL alone.

use std::fmt;

use crate::dsn::{Password, SslMode};

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

    pub(crate) fn same_as(&self, other: &Host) -> bool {
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

    pub fn describe(self) -> &'static str {
        match self {
            Tls::Off => "no TLS",
            Tls::IfOffered => "TLS if offered, unverified",
            Tls::Required => "TLS required, unverified",
            Tls::VerifyCa => "TLS with the CA checked",
            Tls::VerifyFull => "TLS with the CA and host name checked",
        }
    }

    /// Verifies more than `other`, so it can fail where `other` connects.
    pub(crate) fn stricter_than(self, other: Tls) -> bool {
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
