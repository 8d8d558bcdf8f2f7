//! sqlx's PostgreSQL driver (`PgConnectOptions::from_str`), which aksara itself connects with.
//!
//! Source: launchbadge/sqlx `sqlx-postgres/src/options/parse.rs`, `parse_from_url`: the URL goes
//! through the `url` crate (WHATWG: an empty host after `user:pw@` does not parse, nor do
//! several hosts); the scheme is not checked; user, password and database are
//! percent-decoded, the host is decoded only to tell a socket (`%2F…`) from a name; the query
//! is form-decoded (`+` is a space) and a later `host` replaces the authority's; known keys
//! are `sslmode`/`ssl-mode`, `sslrootcert`/`ssl-root-cert`/`ssl-ca`, `sslcert`, `sslkey`,
//! `statement-cache-capacity`, `host`, `hostaddr`, `port`, `dbname`, `user`, `password`,
//! `application_name`, `options`, `options[name]`; **anything else is ignored** with a log
//! line (`ignoring unrecognized connect parameter`), `connect_timeout` included.
//! `options/ssl_mode.rs`: sslmode is case-insensitive, default `prefer`.

use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{Code, Driver, Endpoint, Facts, Host, Reading, Refusal, Rewritten, Tls, password};
use crate::dsn::{ConnString, SslMode};

pub static FACTS: Facts = Facts {
    reads: "any `scheme://` URL (not checked); no keyword/value",
    decoding: "`url` crate: user, password, database decoded; query `+` is a space; `user:pw@/db` does not parse",
    unknown_parameters: "ignored (logged), `connect_timeout` too",
    tls: "default `prefer`; `require` does not verify (and fails on a unix socket); `ssl=true` ignored",
    hosts: "one host; `?host=` wins over the authority's",
    no_user: "the OS user (`whoami::username()`: the effective uid's name, from its source; not run with another `USER` here)",
    source: "sqlx `sqlx-postgres/src/options/parse.rs`: `parse_from_url`",
};

const KNOWN_KEYS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

pub fn read(raw: &str) -> Result<Reading, Refusal> {
    let url = url::Url::parse(raw).map_err(|error| {
        Refusal::new(
            Code::DriverUnsupportedFormat,
            format!("sqlx cannot parse it as a URL ({error}): it reads no keyword/value strings, no empty host after `user:password@`, one host only"),
        )
    })?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut host = url.host_str().map(|h| {
        let decoded = decode(h);
        if decoded.starts_with('/') {
            Host::Socket(decoded)
        } else {
            // `connect_tcp` takes the brackets off an IPv6 address (sqlx-core `net/socket`).
            Host::Tcp(h.trim_start_matches('[').trim_end_matches(']').to_owned())
        }
    });
    let mut port = url.port();
    let mut user = Some(decode(url.username())).filter(|u| !u.is_empty());
    let mut secret = url.password().map(decode);
    let mut database = Some(decode(url.path().trim_start_matches('/'))).filter(|d| !d.is_empty());
    let mut tls = Tls::IfOffered;
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut ignored = Vec::new();
    let bad = |key: &str| {
        Refusal::new(
            Code::DriverRejectsParameter,
            format!("sqlx rejects the value of `{key}`"),
        )
    };
    for (key, value) in url.query_pairs() {
        let value = value.into_owned();
        match &*key {
            "sslmode" | "ssl-mode" => {
                let mode: SslMode = value.to_ascii_lowercase().parse().map_err(|_| {
                    Refusal::new(
                        Code::DriverRejectsParameter,
                        format!("sqlx rejects `{key}={value}`: unknown value for `ssl_mode`"),
                    )
                })?;
                tls = Tls::from_sslmode(mode);
            }
            "host" => host = Some(Host::classify(&value)),
            "hostaddr" => {
                value.parse::<std::net::IpAddr>().map_err(|_| bad(&key))?;
                host = Some(Host::Tcp(value));
            }
            "port" => port = Some(value.parse().map_err(|_| bad(&key))?),
            "dbname" => database = Some(value),
            "user" => user = Some(value),
            "password" => secret = Some(value),
            "statement-cache-capacity" => {
                value.parse::<usize>().map_err(|_| bad(&key))?;
            }
            "application_name" | "options" => settings.push((key.into_owned(), value)),
            k if KNOWN_KEYS.contains(&k) || k.starts_with("options[") => {}
            _ => ignored.push(key.into_owned()),
        }
    }
    let endpoints = if host.is_none() && port.is_none() {
        Vec::new()
    } else {
        vec![Endpoint::new(host, port)]
    };
    Ok(Reading {
        endpoints,
        user,
        password: password(secret),
        database,
        tls,
        settings,
        ignored,
    })
}

pub fn rewrite(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    params.retain(|(key, value)| {
        let known = KNOWN_KEYS.contains(&key.as_str());
        if !known {
            notes.push(match key.as_str() {
                "connect_timeout" => format!("dropped `connect_timeout={value}`: sqlx ignores it; set `PgPoolOptions::acquire_timeout`"),
                _ => format!("dropped `{key}`: sqlx ignores it"),
            });
        }
        known
    });
    let style = Style {
        driver: Driver::Sqlx,
        scheme: "postgresql",
        socket: SocketStyle::AuthorityEncoded,
        multi: MultiHost::Unsupported,
        db_path: DbPath::Encoded,
        credentials_in_query: false,
    };
    render::render(&style, conn, &params, notes)
}
