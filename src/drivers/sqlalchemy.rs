//! SQLAlchemy 2.x with the asyncpg and the psycopg (3) dialects.
//!
//! Source: sqlalchemy/sqlalchemy `lib/sqlalchemy/engine/url.py`, `_parse_url` (one regular
//! expression: the dialect comes from the scheme, `postgresql+asyncpg`; the username ends at
//! the first `:` or `/`, the password at the first `@`, so a raw `#`, `?` or `/` in the
//! password is fine; **only username, password and database are `unquote`d**, so a `%2F…`
//! socket host is looked up in DNS; the port must be one integer, so `h1:p1,h2:p2` fails;
//! the query goes through `parse_qsl`, `+` is a space); `dialects/postgresql/base.py`,
//! `_split_multihost_from_url` (`?host=h1:p1&host=h2:p2` or `?host=h1,h2&port=p1,p2`; the
//! query's host replaces the authority's); `dialects/postgresql/asyncpg.py`,
//! `create_connect_args` (**every query key becomes a keyword argument of
//! `asyncpg.connect`**: `sslmode` raises `TypeError`, the dialect wants `ssl=require`);
//! `dialects/postgresql/_psycopg_common.py`, `create_connect_args` (query keys become
//! `psycopg.connect` keywords, which libpq checks: `invalid connection option`).
//! `postgres://` has no dialect (`NoSuchModuleError`); plain `postgresql://` means psycopg2.

use super::pyurl::{parse_qsl, unquote};
use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{
    Code, Driver, Endpoint, Facts, Host, Reading, Refusal, Rewritten, Tls, asyncpg, libpq, password,
};
use crate::dsn::{ConnString, SslMode};

pub static ASYNCPG_FACTS: Facts = Facts {
    reads: "`postgresql+asyncpg://` only (`postgres://` has no dialect, `postgresql://` means psycopg2)",
    decoding: "user, password, database `unquote`d (a raw `#` in the password is fine); **the host is not** (`%2F…` fails); query `+` is a space",
    unknown_parameters: "**rejected**: each becomes an `asyncpg.connect()` argument (`sslmode` → `TypeError`; write `ssl=require`)",
    tls: "`ssl=<sslmode>`; default `prefer`",
    hosts: "one in the authority; several as `?host=h1:p1&host=h2:p2`; `?host=` wins",
    no_user: "as asyncpg: **`LOGNAME`, `USER`, `LNAME`, `USERNAME`**, else the OS user",
    source: "SQLAlchemy `engine/url.py` `_parse_url`; `dialects/postgresql/asyncpg.py` `create_connect_args`",
};

pub static PSYCOPG_FACTS: Facts = Facts {
    reads: "`postgresql+psycopg://` only",
    decoding: "user, password, database `unquote`d; **the host is not** (`%2F…` fails); query `+` is a space",
    unknown_parameters: "rejected by libpq: `invalid connection option`",
    tls: "libpq's: default `prefer`",
    hosts: "one in the authority; several as `?host=h1:p1&host=h2:p2`; `?host=` wins",
    no_user: "as libpq: the OS user",
    source: "SQLAlchemy `engine/url.py` `_parse_url`; `dialects/postgresql/_psycopg_common.py` `create_connect_args`",
};

/// Keyword arguments of `asyncpg.connect` (0.32) a URL can reasonably fill with a string,
/// plus the two the dialect takes off itself.
const ASYNCPG_KWARGS: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "passfile",
    "service",
    "servicefile",
    "database",
    "command_timeout",
    "ssl",
    "direct_tls",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "statement_cache_size",
    "max_cached_statement_lifetime",
    "max_cacheable_statement_size",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
];

/// `_parse_url`'s groups, as written.
#[derive(Debug, Default)]
struct SaUrl {
    name: String,
    username: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<String>,
    database: Option<String>,
    query: Vec<(String, Vec<String>)>,
}

fn parse(raw: &str) -> Result<SaUrl, Refusal> {
    let name_len = raw
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '+'))
        .unwrap_or(raw.len());
    let Some(rest) = raw[name_len..].strip_prefix("://").filter(|_| name_len > 0) else {
        return Err(Refusal::new(
            Code::DriverUnsupportedFormat,
            "SQLAlchemy reads only URLs, not keyword/value strings: `Could not parse SQLAlchemy URL from given URL string`",
        ));
    };
    let mut url = SaUrl {
        name: raw[..name_len].to_owned(),
        ..SaUrl::default()
    };
    // `(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@`, with the regex engine's backtracking:
    // the password form when an `@` follows the first `:`, else the last `@` before any `:`
    // or `/`.
    let span = rest.find([':', '/']).unwrap_or(rest.len());
    let mut after = rest;
    if rest[span..].starts_with(':')
        && let Some(at) = rest[span + 1..].find('@')
    {
        url.username = Some(rest[..span].to_owned());
        url.password = Some(rest[span + 1..span + 1 + at].to_owned());
        after = &rest[span + 1 + at + 1..];
    } else if let Some(at) = rest[..span].rfind('@') {
        url.username = Some(rest[..at].to_owned());
        after = &rest[at + 1..];
    }
    let host_end = if after.starts_with('[') {
        let limit = after.find(['/', '?']).unwrap_or(after.len());
        after[..limit].rfind(']').map_or(0, |close| close + 1)
    } else {
        after.find(['/', ':', '?']).unwrap_or(after.len())
    };
    let host = &after[..host_end];
    url.host = (!host.is_empty()).then(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    });
    let mut after = &after[host_end..];
    if let Some(port_part) = after.strip_prefix(':') {
        let end = port_part.find(['/', '?']).unwrap_or(port_part.len());
        url.port = Some(port_part[..end].to_owned());
        after = &port_part[end..];
    }
    if let Some(path) = after.strip_prefix('/') {
        let end = path.find('?').unwrap_or(path.len());
        url.database = Some(path[..end].to_owned());
        after = &path[end..];
    }
    if let Some(query) = after.strip_prefix('?') {
        for (key, value) in parse_qsl(query, false, false).unwrap_or_default() {
            match url.query.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value),
                None => url.query.push((key, vec![value])),
            }
        }
    }
    url.username = url.username.map(|u| unquote(&u));
    url.password = url.password.map(|p| unquote(&p));
    url.database = url.database.map(|d| unquote(&d));
    Ok(url)
}

fn check_dialect(url: &SaUrl, wanted: &str) -> Result<(), Refusal> {
    if url.name == wanted {
        return Ok(());
    }
    let message = match url.name.as_str() {
        "postgres" => format!(
            "SQLAlchemy has no dialect `postgres` (`NoSuchModuleError: sqlalchemy.dialects:postgres`): write `{wanted}://`"
        ),
        "postgresql" => format!(
            "SQLAlchemy picks the driver from the scheme, and `postgresql://` means psycopg2: write `{wanted}://`"
        ),
        other => format!("SQLAlchemy reads `{other}://` as another dialect: write `{wanted}://`"),
    };
    Err(Refusal::new(Code::DriverWrongScheme, message))
}

/// The authority's port: one integer, or `ValueError`.
fn authority_port(url: &SaUrl) -> Result<Option<u16>, Refusal> {
    match url.port.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            let message = if text.contains(',') {
                "SQLAlchemy reads one host and port in the authority (`int()` of the rest fails): write several hosts as `?host=h1:p1&host=h2:p2`"
            } else {
                "SQLAlchemy reads something that is not a number as the port (`int()` fails): percent-encode `:` and `@` in the password"
            };
            Refusal::new(Code::DriverUnsupportedFormat, message)
        }),
    }
}

/// A host of the query and its port, as `_split_multihost_from_url` pairs them.
type HostAndPort = (String, Option<u16>);

/// `_split_multihost_from_url`: the hosts and ports of the query, when it names any.
fn multihost(url: &SaUrl) -> Result<Option<Vec<HostAndPort>>, Refusal> {
    let values = |key: &str| {
        url.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let bad = |message: &str| {
        Refusal::new(
            Code::DriverUnsupportedFormat,
            format!("SQLAlchemy fails: {message}"),
        )
    };
    let mut integrated = false;
    let mut hosts: Option<Vec<String>> = None;
    let mut ports: Option<Vec<String>> = None;
    if let Some(list) = values("host") {
        if list.len() > 1 {
            integrated = true;
            let (h, p): (Vec<String>, Vec<String>) = list
                .iter()
                .map(|token| match token.split_once(':') {
                    Some((h, p)) => (h.to_owned(), p.to_owned()),
                    None => (token.clone(), String::new()),
                })
                .unzip();
            hosts = Some(h);
            ports = Some(p);
        } else {
            let split: Vec<String> = list[0].split(',').map(str::to_owned).collect();
            if values("port").is_none() && split.len() == 1 && split[0].contains(':') {
                let (h, p) = split[0].split_once(':').unwrap_or_default();
                if h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    && p.chars().all(|c| c.is_ascii_digit())
                {
                    integrated = true;
                    hosts = Some(vec![h.to_owned()]);
                    ports = Some(vec![p.to_owned()]);
                }
            }
            if hosts.is_none() {
                hosts = Some(split);
            }
        }
    }
    if let Some(list) = values("port") {
        if integrated {
            return Err(bad("can't mix 'multihost' formats together"));
        }
        ports = Some(if list.len() > 1 {
            list
        } else {
            list[0].split(',').map(str::to_owned).collect()
        });
    }
    let ports: Option<Vec<Option<u16>>> = match ports {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|p| {
                    if p.is_empty() {
                        Ok(None)
                    } else {
                        p.parse().map(Some)
                    }
                })
                .collect::<Result<_, _>>()
                .map_err(|_| bad("received non-integer port arguments"))?,
        ),
    };
    let Some(hosts) = hosts else {
        return Ok(None);
    };
    let ports = ports.unwrap_or_else(|| vec![None; hosts.len()]);
    if hosts.len() != ports.len() && (hosts.len() > 1 || ports.len() > 1) {
        return Err(bad("number of hosts and ports don't match"));
    }
    let ports = if ports.len() == hosts.len() {
        ports
    } else {
        vec![ports[0]; hosts.len()]
    };
    Ok(Some(hosts.into_iter().zip(ports).collect()))
}

/// SQLAlchemy's `?host=h1:p1&host=h2:p2` as libpq says it (`?host=h1,h2&port=p1,p2`), so
/// such a URL can be compared with libpq's reading; anything else is returned as it is.
pub(crate) fn host_list_as_libpq(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pieces: Vec<&str> = query.split('&').collect();
    let hosts: Vec<&str> = pieces
        .iter()
        .filter_map(|p| p.strip_prefix("host="))
        .collect();
    let integrated = hosts.len() > 1
        || hosts.first().is_some_and(|h| {
            h.contains(':') && !h.starts_with('/') && !pieces.iter().any(|p| p.starts_with("port="))
        });
    if !integrated {
        return url.to_owned();
    }
    let (names, ports): (Vec<&str>, Vec<&str>) = hosts
        .iter()
        .map(|h| h.split_once(':').unwrap_or((h, "")))
        .unzip();
    let mut rebuilt: Vec<String> = vec![
        format!("host={}", names.join(",")),
        format!("port={}", ports.join(",")),
    ];
    rebuilt.extend(
        pieces
            .iter()
            .filter(|p| !p.starts_with("host="))
            .map(|p| p.to_string()),
    );
    format!("{base}?{}", rebuilt.join("&"))
}

pub fn read_asyncpg(raw: &str) -> Result<Reading, Refusal> {
    let url = parse(raw)?;
    check_dialect(&url, "postgresql+asyncpg")?;
    let port = authority_port(&url)?;
    let mut endpoints: Vec<Endpoint> = match &url.host {
        Some(host) => vec![Endpoint::new(Some(Host::classify(host)), port)],
        None if port.is_some() => vec![Endpoint::new(None, port)],
        None => Vec::new(),
    };
    if let Some(list) = multihost(&url)? {
        if list.len() > 1 && list.iter().any(|(h, p)| h.is_empty() || p.is_none()) {
            return Err(Refusal::new(
                Code::DriverUnsupportedFormat,
                "SQLAlchemy's asyncpg dialect needs every host and port of a multiple host URL: write `?host=h1:p1&host=h2:p2`",
            ));
        }
        let keep_port = endpoints.first().and_then(|e| e.port);
        endpoints = list
            .into_iter()
            .map(|(h, p)| Endpoint::new(Some(Host::classify(&h)), p.or(if_single(keep_port))))
            .collect();
    }
    let mut ssl = None;
    let mut user = url.username.clone().filter(|u| !u.is_empty());
    let mut secret = url.password.clone();
    let mut database = url.database.clone().filter(|d| !d.is_empty());
    for (key, values) in &url.query {
        let value = values.last().cloned().unwrap_or_default();
        if !ASYNCPG_KWARGS.contains(&key.as_str()) {
            let hint = if key == "sslmode" {
                ": write `ssl=…` instead"
            } else {
                ""
            };
            return Err(Refusal::new(
                Code::DriverRejectsParameter,
                format!(
                    "SQLAlchemy passes `{key}` to `asyncpg.connect()`, which fails with `unexpected keyword argument '{key}'`{hint}"
                ),
            ));
        }
        match key.as_str() {
            "ssl" => ssl = Some(asyncpg::parse_sslmode(&value).map_err(|_| {
                Refusal::new(Code::DriverRejectsParameter, format!("asyncpg rejects `ssl={value}` from SQLAlchemy: `sslmode` parameter must be one of: disable, allow, prefer, require, verify-ca, verify-full"))
            })?),
            "user" => user = Some(value),
            "password" => secret = Some(value),
            "database" => database = Some(value),
            _ => {}
        }
    }
    let any_tcp = endpoints.is_empty()
        || endpoints
            .iter()
            .any(|e| !matches!(e.host, Some(Host::Socket(_))));
    // Like libpq, asyncpg asks for no TLS on unix sockets, whatever sslmode says (seen: it
    // connects in plaintext over a socket with `sslmode=require`).
    let tls = match ssl {
        Some(mode) if any_tcp => Tls::from_sslmode(mode),
        Some(mode) => {
            Tls::from_sslmode(mode);
            Tls::Off
        }
        None if any_tcp => Tls::IfOffered,
        None => Tls::Off,
    };
    Ok(Reading {
        endpoints,
        user,
        password: password(secret),
        database,
        tls,
        settings: Vec::new(),
        ignored: Vec::new(),
    })
}

/// One query host keeps the authority's port when the query gives none.
fn if_single(port: Option<u16>) -> Option<u16> {
    port
}

pub fn read_psycopg(raw: &str) -> Result<Reading, Refusal> {
    let url = parse(raw)?;
    check_dialect(&url, "postgresql+psycopg")?;
    let port = authority_port(&url)?;
    // `psycopg.connect(**opts)` turns the keywords into a conninfo string for libpq.
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: String| match opts.iter_mut().find(|(k, _)| k == key) {
        Some(existing) => existing.1 = value,
        None => opts.push((key.to_owned(), value)),
    };
    if let Some(host) = &url.host {
        set("host", host.clone());
    }
    if let Some(port) = port {
        set("port", port.to_string());
    }
    if let Some(user) = &url.username {
        set("user", user.clone());
    }
    if let Some(secret) = &url.password {
        set("password", secret.clone());
    }
    if let Some(database) = &url.database {
        set("dbname", database.clone());
    }
    for (key, values) in &url.query {
        set(key, values.last().cloned().unwrap_or_default());
    }
    if let Some(list) = multihost(&url)? {
        set(
            "host",
            list.iter()
                .map(|(h, _)| h.clone())
                .collect::<Vec<_>>()
                .join(","),
        );
        let ports: Vec<String> = list
            .iter()
            .map(|(_, p)| p.map(|p| p.to_string()).unwrap_or_default())
            .collect();
        if ports.iter().any(|p| !p.is_empty()) {
            set("port", ports.join(","));
        }
    }
    let conninfo: Vec<String> = opts
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", quote_conninfo(value)))
        .collect();
    libpq::read(&conninfo.join(" ")).map_err(|refusal| match refusal.code {
        Code::DriverRejectsParameter => Refusal::new(
            refusal.code,
            format!(
                "SQLAlchemy passes every query parameter to `psycopg.connect()`, and {}",
                refusal.message
            ),
        ),
        _ => refusal,
    })
}

/// libpq's keyword/value quoting, as psycopg's `make_conninfo` writes it.
fn quote_conninfo(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub fn rewrite_asyncpg(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    let mut kept = Vec::new();
    let mut server_settings = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "sslmode" => kept.push(("ssl".to_owned(), value)),
            k if ASYNCPG_KWARGS.contains(&k) || matches!(k, "target_session_attrs") => kept.push((key, value)),
            "connect_timeout" => notes.push(format!(
                "dropped `connect_timeout={value}`: pass `connect_args={{\"timeout\": {value}}}` to `create_async_engine`"
            )),
            "sslrootcert" if conn.sslmode.is_some_and(SslMode::verifies) => {
                // Without the CA the verification fails: no URL alone can do it.
                return Err(Refusal::new(
                    Code::DriverCannotExpress,
                    format!(
                        "SQLAlchemy's asyncpg dialect takes no CA file in the URL: drop `sslmode` and `sslrootcert` from it and pass `connect_args={{\"ssl\": ssl.create_default_context(cafile=\"{value}\")}}` to `create_async_engine`"
                    ),
                ));
            }
            "sslrootcert" => notes.push(format!(
                "dropped `sslrootcert`: asyncpg takes it only in its own URL; pass `connect_args={{\"ssl\": ssl.create_default_context(cafile=\"{value}\")}}`"
            )),
            _ if asyncpg_sends(&key) => server_settings.push(format!("\"{key}\": \"{value}\"")),
            _ => notes.push(format!("dropped `{key}`: neither asyncpg nor the server knows it")),
        }
    }
    if !server_settings.is_empty() {
        notes.push(format!(
            "moved out of the URL: pass `connect_args={{\"server_settings\": {{{}}}}}` to `create_async_engine`",
            server_settings.join(", ")
        ));
    }
    let style = Style {
        driver: Driver::SqlalchemyAsyncpg,
        scheme: "postgresql+asyncpg",
        socket: SocketStyle::QueryHost,
        multi: MultiHost::RepeatedQuery,
        db_path: DbPath::Encoded,
        credentials_in_query: false,
    };
    render::render(&style, conn, &kept, notes)
}

/// Settings asyncpg would put in the startup packet had they come through its own URL.
fn asyncpg_sends(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower == "options" || super::server_settings::USER_SETTABLE.contains(&lower.as_str())
}

pub fn rewrite_psycopg(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    params.retain(|(key, _)| {
        let known = libpq::KEYWORDS.contains(&key.as_str());
        if !known {
            notes.push(format!(
                "dropped `{key}`: libpq (under psycopg) has no such parameter"
            ));
        }
        known
    });
    let style = Style {
        driver: Driver::SqlalchemyPsycopg,
        scheme: "postgresql+psycopg",
        socket: SocketStyle::QueryHost,
        multi: MultiHost::RepeatedQuery,
        db_path: DbPath::Encoded,
        credentials_in_query: false,
    };
    render::render(&style, conn, &params, notes)
}
