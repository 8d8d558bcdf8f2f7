//! Prisma ORM's own PostgreSQL connector (the query engine; not its node-postgres adapter,
//! which reads URLs as [`super::node_pg`] does).
//!
//! Source: Prisma's documentation, "PostgreSQL" connector page (prisma.io, `orm/overview/
//! databases/postgresql`: "Arguments" and "Connecting via sockets"), and "Connection URLs"
//! (special characters must be percent-encoded). Not run here: the engine is a binary Prisma
//! downloads at install time, which this machine cannot fetch. What the docs say: `postgresql://`
//! or `postgres://`; arguments `schema` (its own: the search path), `connection_limit`,
//! `connect_timeout`, `pool_timeout`, `socket_timeout`, `sslmode` (`prefer` default, `disable`,
//! `require`), `sslcert` (the server's CA certificate), `sslidentity`, `sslpassword`,
//! `sslaccept` (`accept_invalid_certs` default, or `strict`), `pgbouncer`,
//! `statement_cache_size`, `application_name`, `options`; a socket is `?host=/dir` with a host
//! in the authority that is required and ignored (`@localhost`). The engine parses with the
//! `url` crate (WHATWG), so `+` in the query is a space and several hosts do not parse.
//! Parameters it does not know are ignored.

use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{Code, Driver, Endpoint, Facts, Host, Reading, Refusal, Rewritten, Tls, password};
use crate::dsn::{ConnString, SslMode};

pub static FACTS: Facts = Facts {
    reads: "`postgresql://`, `postgres://` (docs; not run here)",
    decoding: "percent-decoded (`url` crate); query `+` is a space",
    unknown_parameters: "ignored; `schema` is its own (the search path)",
    tls: "`prefer` default, `disable`, `require` (no verification unless `sslaccept=strict`)",
    hosts: "one host, required; a socket is `@localhost/db?host=/dir`",
    no_user: "not modelled: name the user in the URL",
    source: "Prisma docs: PostgreSQL connector, \"Arguments\" and \"Connecting via sockets\"",
};

const KNOWN_KEYS: &[&str] = &[
    "schema",
    "connection_limit",
    "connect_timeout",
    "pool_timeout",
    "socket_timeout",
    "sslmode",
    "sslcert",
    "sslidentity",
    "sslpassword",
    "sslaccept",
    "host",
    "pgbouncer",
    "statement_cache_size",
    "application_name",
    "options",
];

pub fn read(raw: &str) -> Result<Reading, Refusal> {
    let url = url::Url::parse(raw.trim()).map_err(|error| {
        Refusal::new(
            Code::DriverUnsupportedFormat,
            format!("Prisma reads only single-host URLs, and this one does not parse ({error})"),
        )
    })?;
    if !matches!(url.scheme(), "postgresql" | "postgres") {
        return Err(Refusal::new(
            Code::DriverWrongScheme,
            format!(
                "Prisma's PostgreSQL connector takes `postgresql://` or `postgres://`, not `{}://`",
                url.scheme()
            ),
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(Refusal::new(
            Code::DriverUnsupportedFormat,
            "Prisma needs a host in the URL: for a socket write `@localhost/db?host=/dir` (the host is then ignored)",
        ));
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |key: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let host = match get("host") {
        Some(dir) => Host::classify(&dir),
        None => Host::Tcp(decode(host.trim_start_matches('[').trim_end_matches(']'))),
    };
    let strict = get("sslaccept").as_deref() == Some("strict");
    let tls = match get("sslmode").as_deref() {
        Some("disable") => Tls::Off,
        Some("require") if strict => Tls::VerifyFull,
        Some("require") => Tls::Required,
        _ => Tls::IfOffered,
    };
    let database = url
        .path()
        .strip_prefix('/')
        .filter(|p| !p.is_empty())
        .map(decode);
    Ok(Reading {
        endpoints: vec![Endpoint::new(Some(host), url.port())],
        user: Some(decode(url.username())).filter(|u| !u.is_empty()),
        password: password(url.password().map(decode)),
        database,
        tls,
        settings: Vec::new(),
        ignored: query
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .collect(),
    })
}

pub fn rewrite(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut kept: Vec<(String, String)> = Vec::new();
    let root_cert = conn.sslrootcert.clone();
    for (key, value) in render::params_of(conn) {
        match key.as_str() {
            "sslmode" => match value.parse::<SslMode>() {
                Ok(SslMode::Disable | SslMode::Prefer | SslMode::Require) => {
                    kept.push((key, value))
                }
                Ok(SslMode::Allow) => kept.push((key, "prefer".to_owned())),
                Ok(SslMode::VerifyCa | SslMode::VerifyFull) => {
                    notes.push(format!("`sslmode={value}` is `sslmode=require&sslaccept=strict` for Prisma (`sslcert` names the CA)"));
                    kept.push((key, "require".to_owned()));
                    kept.push(("sslaccept".to_owned(), "strict".to_owned()));
                    if let Some(cert) = &root_cert {
                        kept.push(("sslcert".to_owned(), cert.clone()));
                    }
                }
                Err(_) => notes.push(format!("dropped `sslmode={value}`")),
            },
            "sslrootcert" => {}
            k if KNOWN_KEYS.contains(&k) => kept.push((key, value)),
            _ => notes.push(format!("dropped `{key}`: Prisma ignores it")),
        }
    }
    let style = Style {
        driver: Driver::Prisma,
        scheme: "postgresql",
        socket: SocketStyle::LocalhostPlusQuery,
        multi: MultiHost::Unsupported,
        db_path: DbPath::Encoded,
        credentials_in_query: false,
    };
    render::render(&style, conn, &kept, notes)
}
