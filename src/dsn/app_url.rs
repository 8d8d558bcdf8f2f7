//! The URL aksara writes into the application's `.env`: one spelling that libpq (psql,
//! psycopg), asyncpg, SQLAlchemy and node-postgres all read as the same connection, or a typed
//! error saying which driver misreads which character.
//!
//! [`ConnString::to_url`] is written for libpq and sqlx; the app's drivers read URLs by other
//! rules (sources read for this module, and the measured facts in
//! `docs/drivers-and-poolers.md`):
//!
//! - asyncpg (`asyncpg/connect_utils.py`, `_parse_connect_dsn_and_args`): Python's
//!   `urllib.parse.urlparse` (so a literal `#` starts a fragment and cuts the URL), then
//!   `unquote` of user, password, authority host and the path; the query with
//!   `parse_qs(strict_parsing=True)`, which decodes `%XX` and reads `+` as a space; a `host` list
//!   is split at commas.
//! - SQLAlchemy (`engine/url.py`, `_parse_url`): a regex; `unquote` of username, password and
//!   database only (so a `%2F…` socket host in the authority is looked up in DNS), the query with
//!   `parse_qsl` (`+` is a space); `dialects/postgresql/base.py` `_split_multihost_from_url`
//!   splits `?host=` at commas.
//! - node-postgres (`pg-connection-string/index.js`): the WHATWG `URL` parser (dot segments
//!   `.`/`..` of the path, also `%2e`, are removed), `decodeURIComponent` of user and password,
//!   but `decodeURI` of the database path, which leaves the escapes of `; / ? : @ & = + $ , #`
//!   undecoded (`c%2B%2Bapp` stays `c%2B%2Bapp`); `URLSearchParams` for the query (`+` is a
//!   space).
//! - libpq (`conninfo_uri_parse_options`): percent-decodes every part, keeps `+` literally, and
//!   splits the decoded `host` value at commas.
//!
//! Hence the form `postgresql://user:password@/db?host=/dir&port=P` for a socket (SQLAlchemy
//! cannot decode a socket path in the authority; an empty authority host is read by all four),
//! user and password fully percent-encoded (everyone decodes them), the database path with
//! `; : & = + $ , /` left literal (everyone keeps them as written; node-postgres would not
//! decode their escapes) and everything else encoded, and query values with `+` encoded.
//!
//! sqlx (the `url` crate) refuses an empty host after credentials, so Rust apps on sqlx cannot
//! read the socket form; the framework's own driver is asyncpg, which reads a socket only from
//! an empty authority (it prefers the authority's host to `?host=`), so asyncpg wins here.

use super::*;

/// A driver (or family) whose reading of a URL constrains the one aksara writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UrlReader {
    /// libpq itself and everything built on it: psql, psycopg 2 and 3.
    Libpq,
    Asyncpg,
    SqlAlchemy,
    NodePostgres,
    /// aksara's own reading (`ConnString::parse`), which `doctor` applies to the same `.env`.
    Aksara,
}

impl UrlReader {
    pub fn name(self) -> &'static str {
        match self {
            UrlReader::Libpq => "libpq (psql, psycopg)",
            UrlReader::Asyncpg => "asyncpg",
            UrlReader::SqlAlchemy => "SQLAlchemy",
            UrlReader::NodePostgres => "node-postgres",
            UrlReader::Aksara => "aksara doctor",
        }
    }
}

impl fmt::Display for UrlReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One driver's misreading of one spelling, for the error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misreading {
    pub reader: UrlReader,
    /// What that driver does, e.g. "cuts the URL at a literal `#`".
    pub what: &'static str,
}

/// Why no URL read alike by every driver can be written for a connection string. Names of
/// databases, hosts and parameters are not secrets and are quoted; nothing here holds a
/// password or a user name's characters beyond the one at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppUrlError {
    /// A character of `part` that every spelling gets misread by some driver: written as is by
    /// the first driver, percent-encoded by the second.
    Unportable {
        part: UriPart,
        /// The name or path at fault (never a password).
        value: String,
        character: char,
        literal: Misreading,
        encoded: Misreading,
    },
    /// A database name with a `.` or `..` path segment, which node-postgres's URL parser removes
    /// in every spelling (also `%2e`).
    DotSegment { dbname: String },
    /// No host, or several: the drivers' defaults and their multi-host syntaxes differ.
    HostCount { count: usize },
    /// A TCP host that is not a plain name or IP address: SQLAlchemy does not decode the host.
    HostName { host: String, character: char },
    /// A parameter some driver rejects in a URL (it has a connect argument instead).
    Parameter { key: String, misread: Misreading },
}

impl fmt::Display for AppUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppUrlError::Unportable {
                part,
                value,
                character,
                literal,
                encoded,
            } => write!(
                f,
                "{part} `{value}` cannot be written in a URL every driver reads alike: \
                 written as `{character}`, {} {}; percent-encoded as `{}`, {} {}",
                literal.reader,
                literal.what,
                encode(&character.to_string(), COMPONENT),
                encoded.reader,
                encoded.what,
            ),
            AppUrlError::DotSegment { dbname } => write!(
                f,
                "the database name `{dbname}` cannot be written in a URL every driver reads alike: \
                 node-postgres drops `.` and `..` path segments however they are spelled"
            ),
            AppUrlError::HostCount { count: 0 } => {
                f.write_str("the application URL needs a host: drivers default to different places")
            }
            AppUrlError::HostCount { count } => write!(
                f,
                "the application URL can name one host, not {count}: SQLAlchemy cannot parse \
                 several hosts in the authority and node-postgres does not read a host list"
            ),
            AppUrlError::HostName { host, character } => write!(
                f,
                "the host `{host}` cannot be written in a URL every driver reads alike: \
                 SQLAlchemy does not decode the host, and `{character}` cannot be written as is"
            ),
            AppUrlError::Parameter { key, misread } => write!(
                f,
                "the parameter `{key}` cannot go in the application URL: {} {}",
                misread.reader, misread.what
            ),
        }
    }
}

impl std::error::Error for AppUrlError {}

impl AppUrlError {
    /// The fix, as its own paragraph.
    pub fn hint(&self) -> String {
        match self {
            AppUrlError::Unportable {
                part: UriPart::DatabaseName,
                character,
                ..
            } => format!("choose a database name without `{character}` (pass --db-name)"),
            AppUrlError::Unportable {
                part, character, ..
            } => format!("use {part} without `{character}`"),
            AppUrlError::DotSegment { .. } => {
                "choose a database name without `.` or `..` between slashes (pass --db-name)"
                    .to_owned()
            }
            AppUrlError::HostCount { .. } => {
                "give exactly one host (a name, an IP address or a socket folder)".to_owned()
            }
            AppUrlError::HostName { .. } => {
                "use a host name of letters, digits, `.` and `-`, or an IP address".to_owned()
            }
            AppUrlError::Parameter { key, .. } => format!(
                "leave `{key}` out of the URL and pass it as a connect argument of the application's driver"
            ),
        }
    }
}

const ASYNCPG_FRAGMENT: Misreading = Misreading {
    reader: UrlReader::Asyncpg,
    what: "cuts the URL there (Python's `urlparse` starts a fragment at `#`)",
};
const EVERYONE_QUERY: Misreading = Misreading {
    reader: UrlReader::Libpq,
    what: "starts the query there, as every driver does",
};
const AKSARA_RAW_AT: Misreading = Misreading {
    reader: UrlReader::Aksara,
    what: "refuses it (a raw `@` after the host is far more often a password's)",
};
const NODE_PATH_ESCAPE: Misreading = Misreading {
    reader: UrlReader::NodePostgres,
    what: "leaves that escape undecoded in the database path (`decodeURI`)",
};
const HOST_LIST_SPLIT: Misreading = Misreading {
    reader: UrlReader::Libpq,
    what: "splits the host list there (asyncpg and SQLAlchemy too)",
};
const HOST_LIST_SPLIT_DECODED: Misreading = Misreading {
    reader: UrlReader::Asyncpg,
    what: "decodes it first and then splits the host list there (libpq and SQLAlchemy too)",
};
const SERVER_SETTING: Misreading = Misreading {
    reader: UrlReader::Asyncpg,
    what: "sends parameters it does not know to the server as settings, which the server rejects",
};
const SQLALCHEMY_KWARG: Misreading = Misreading {
    reader: UrlReader::SqlAlchemy,
    what: "passes it to `asyncpg.connect` as a keyword argument, which asyncpg does not take",
};

/// Characters of a database name kept literal: every driver keeps them as written in the path,
/// while node-postgres's `decodeURI` would leave their escapes undecoded.
const PATH_LITERAL: &[char] = &[';', ':', '&', '=', '+', '$', ',', '/'];

impl ConnString {
    /// The URL for the application's `.env` (see the module docs for why each part is spelled
    /// as it is). Only `sslmode` travels as a parameter: it is read by libpq, psycopg, asyncpg
    /// and node-postgres (which treats `require` as `verify-full`), while SQLAlchemy's asyncpg
    /// dialect needs the scheme rewritten and `ssl=` instead (the per-driver form is the
    /// driver model's job, not this URL's).
    pub fn to_app_url(&self, reveal: Reveal) -> Result<String, AppUrlError> {
        let [spec] = self.hosts.as_slice() else {
            return Err(AppUrlError::HostCount {
                count: self.hosts.len(),
            });
        };
        let Some(host) = spec.host.as_deref() else {
            return Err(AppUrlError::HostCount { count: 0 });
        };
        self.check_app_parameters()?;

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
        let mut query = Vec::new();
        if host.starts_with('/') {
            if host.contains(',') {
                return Err(AppUrlError::Unportable {
                    part: UriPart::Host,
                    value: host.to_owned(),
                    character: ',',
                    literal: HOST_LIST_SPLIT,
                    encoded: HOST_LIST_SPLIT_DECODED,
                });
            }
            query.push(format!("host={}", encode(host, QUERY_VALUE)));
            if let Some(port) = spec.port {
                query.push(format!("port={port}"));
            }
        } else {
            url.push_str(&app_tcp_host(host)?);
            if let Some(port) = spec.port {
                url.push_str(&format!(":{port}"));
            }
        }
        // Always a path: node-postgres finds an empty authority only before a `/`.
        url.push('/');
        if let Some(dbname) = &self.dbname {
            url.push_str(&app_dbname(dbname)?);
        }
        if let Some(sslmode) = self.sslmode {
            query.push(format!("sslmode={sslmode}"));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Ok(url)
    }

    /// The admin connection's `sslmode` carried into this (the app's) string when this one
    /// sets none: the app talks to the same server, which needs the same TLS.
    pub fn carry_sslmode_from(&mut self, admin: &ConnString) {
        if self.sslmode.is_none() {
            self.sslmode = admin.sslmode;
        }
    }

    fn check_app_parameters(&self) -> Result<(), AppUrlError> {
        let refused = |key: &str, misread| {
            Err(AppUrlError::Parameter {
                key: key.to_owned(),
                misread,
            })
        };
        if self.connect_timeout.is_some() {
            return refused("connect_timeout", SERVER_SETTING);
        }
        for (key, given) in [
            ("application_name", self.application_name.is_some()),
            ("options", self.options.is_some()),
            ("sslrootcert", self.sslrootcert.is_some()),
        ] {
            if given {
                return refused(key, SQLALCHEMY_KWARG);
            }
        }
        match self.unknown.first() {
            Some((key, _)) => refused(key, SERVER_SETTING),
            None => Ok(()),
        }
    }
}

/// A TCP host as every driver reads it: SQLAlchemy takes the authority's host verbatim, so
/// only characters that need no encoding are allowed (IPv6 in brackets).
fn app_tcp_host(host: &str) -> Result<String, AppUrlError> {
    let ipv6 = host.contains(':');
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (ipv6 && c == ':');
    match host.chars().find(|&c| !allowed(c)) {
        Some(character) => Err(AppUrlError::HostName {
            host: host.to_owned(),
            character,
        }),
        None if ipv6 => Ok(format!("[{host}]")),
        None => Ok(host.to_owned()),
    }
}

/// The database path: `PATH_LITERAL` as is, everything else percent-encoded, and the names no
/// spelling carries through every driver refused.
fn app_dbname(dbname: &str) -> Result<String, AppUrlError> {
    let unportable = |character, literal, encoded| AppUrlError::Unportable {
        part: UriPart::DatabaseName,
        value: dbname.to_owned(),
        character,
        literal,
        encoded,
    };
    if dbname.contains('#') {
        return Err(unportable('#', ASYNCPG_FRAGMENT, NODE_PATH_ESCAPE));
    }
    if dbname.contains('@') {
        return Err(unportable('@', AKSARA_RAW_AT, NODE_PATH_ESCAPE));
    }
    if dbname.contains('?') {
        return Err(unportable('?', EVERYONE_QUERY, NODE_PATH_ESCAPE));
    }
    if dbname
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(AppUrlError::DotSegment {
            dbname: dbname.to_owned(),
        });
    }
    let mut out = String::with_capacity(dbname.len());
    for c in dbname.chars() {
        if PATH_LITERAL.contains(&c) {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            out.push_str(&encode(c.encode_utf8(&mut buf), COMPONENT));
        }
    }
    Ok(out)
}
