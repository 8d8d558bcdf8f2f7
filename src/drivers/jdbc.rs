//! pgjdbc, the PostgreSQL JDBC driver, for Java and Kotlin services that share the database.
//!
//! Source: pgjdbc `pgjdbc/src/main/java/org/postgresql/Driver.java`, `parseURL`, and its
//! documentation ("Connecting to the Database", "Connection Parameters"); not run here (no JVM
//! in the suite). Only `jdbc:postgresql:` URLs; **no user or password before the host** (they
//! are `?user=…&password=…`); hosts `h1:p1,h2:p2`; the database and the query values are
//! `URLDecoder.decode`d (`+` is a space); unknown parameters are ignored; no unix sockets
//! without a socket factory. sslmode is libpq's list, default `prefer`; `ssl=true` alone means
//! `verify-full`. Its own spellings: `ApplicationName`, `connectTimeout`, `targetServerType`.

use super::pyurl::unquote_plus;
use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{Code, Driver, Endpoint, Facts, Host, Reading, Refusal, Rewritten, Tls, password};
use crate::dsn::{ConnString, SslMode};

pub static FACTS: Facts = Facts {
    reads: "`jdbc:postgresql://` only (docs; not run here)",
    decoding: "no `user:password@`: use `?user=&password=`; `URLDecoder` (`+` is a space)",
    unknown_parameters: "ignored; its own names (`ApplicationName`, `connectTimeout`, `targetServerType`)",
    tls: "default `prefer`; `ssl=true` alone is verify-full",
    hosts: "`h1:p1,h2:p2`; no unix sockets",
    no_user: "not modelled: name the user in the URL",
    source: "pgjdbc `org/postgresql/Driver.java`: `parseURL`",
};

const PREFIX: &str = "jdbc:postgresql:";

pub fn read(raw: &str) -> Result<Reading, Refusal> {
    let Some(rest) = raw.trim().strip_prefix(PREFIX) else {
        return Err(Refusal::new(
            Code::DriverWrongScheme,
            "pgjdbc takes `jdbc:postgresql://host:port/db?user=…&password=…` only",
        ));
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (server, database) = match before_query.strip_prefix("//") {
        Some(after) => after.split_once('/').unwrap_or((after, "")),
        None => ("", before_query.trim_start_matches('/')),
    };
    if server.contains('@') {
        return Err(Refusal::new(
            Code::DriverUnsupportedFormat,
            "pgjdbc takes no `user:password@` before the host (`No suitable driver`): write `?user=…&password=…`",
        ));
    }
    let mut endpoints = Vec::new();
    for spec in server.split(',').filter(|s| !s.is_empty()) {
        let (host, port) = match spec.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || spec.starts_with('[') => {
                (host, Some(port))
            }
            _ => (spec, None),
        };
        let port = match port {
            Some(text) => Some(text.parse::<u16>().map_err(|_| {
                Refusal::new(
                    Code::DriverUnsupportedFormat,
                    "pgjdbc reads a port that is not a number",
                )
            })?),
            None => None,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        endpoints.push(Endpoint::new(Some(Host::Tcp(host.to_owned())), port));
    }
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|piece| piece.split_once('='))
        .map(|(k, v)| (k.to_owned(), unquote_plus(v)))
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let tls = match (get("sslmode"), get("ssl")) {
        (Some(mode), _) => Tls::from_sslmode(mode.parse::<SslMode>().map_err(|_| {
            Refusal::new(
                Code::DriverRejectsParameter,
                format!("pgjdbc rejects `sslmode={mode}`"),
            )
        })?),
        (None, Some(ssl)) if ssl == "true" || ssl.is_empty() => Tls::VerifyFull,
        _ => Tls::IfOffered,
    };
    let mut settings = Vec::new();
    if let Some(name) = get("ApplicationName") {
        settings.push(("application_name".to_owned(), name));
    }
    if let Some(options) = get("options") {
        settings.push(("options".to_owned(), options));
    }
    Ok(Reading {
        endpoints,
        user: get("user"),
        password: password(get("password")),
        database: Some(unquote_plus(database)).filter(|d| !d.is_empty()),
        tls,
        settings,
        ignored: Vec::new(),
    })
}

pub fn rewrite(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    let mut kept = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "sslmode" | "sslrootcert" | "sslcert" | "sslkey" | "options" => kept.push((key, value)),
            "application_name" => kept.push(("ApplicationName".to_owned(), value)),
            "connect_timeout" => kept.push(("connectTimeout".to_owned(), value)),
            "target_session_attrs" => {
                let server_type = match value.as_str() {
                    "read-write" | "primary" => "primary",
                    "read-only" | "standby" => "secondary",
                    "prefer-standby" => "preferSecondary",
                    _ => "any",
                };
                kept.push(("targetServerType".to_owned(), server_type.to_owned()));
            }
            _ => notes.push(format!("dropped `{key}`: pgjdbc has no such parameter")),
        }
    }
    let style = Style {
        driver: Driver::Jdbc,
        scheme: "jdbc:postgresql",
        socket: SocketStyle::Unsupported,
        multi: MultiHost::Authority,
        db_path: DbPath::Encoded,
        credentials_in_query: true,
    };
    render::render(&style, conn, &kept, notes)
}
