//! asyncpg (0.32), the driver of the Aksara framework (`asyncpg.connect`, `create_pool`).
//!
//! Source: MagicStack/asyncpg `asyncpg/connect_utils.py`, `_parse_connect_dsn_and_args` and
//! `_parse_hostlist`. The URL goes through `urllib.parse.urlparse` (so an unencoded `#` or `?`
//! in the password ends the netloc) and the query through `parse_qs(strict_parsing=True)` (a
//! trailing `&` raises `bad query field`, `+` is a space, the last of repeated keys wins, an
//! empty value is dropped). The netloc splits at its first `@` and the user at its first `:`;
//! user, password, host and database are `unquote`d (`+` kept). The authority's host and port
//! win over `?host=` / `?port=` (libpq: the query wins). The query keys it knows are taken off;
//! **every other key is sent to the server as a setting** (`server_settings = query`). With no
//! host it tries `/run/postgresql`, `/var/run/postgresql`, `/tmp`, `/private/tmp`, then
//! localhost. sslmode defaults to `prefer` when any host is TCP; `require` verifies only when
//! `~/.postgresql/root.crt` exists, as libpq does.

use super::pyurl::{parse_qsl, unquote, urlsplit};
use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{
    Code, Driver, Endpoint, Facts, Host, Reading, Refusal, Rewritten, Tls, libpq, password,
    server_settings,
};
use crate::dsn::{ConnString, SslMode};

pub static FACTS: Facts = Facts {
    reads: "`postgresql://`, `postgres://` only",
    decoding: "`urlparse`: a raw `#` or `?` in the password cuts the URL; query `+` is a space, a trailing `&` fails",
    unknown_parameters: "**sent to the server as settings**: `connect_timeout`, `schema`, `channel_binding`, `ssl` fail",
    tls: "default `prefer`; `require` does not verify; never on a unix socket",
    hosts: "`h1:p1,h2:p2` tried in order; the authority's host wins over `?host=`",
    no_user: "**`LOGNAME`, `USER`, `LNAME`, `USERNAME`** (Python's `getpass.getuser()`), else the OS user",
    source: "asyncpg `connect_utils.py`: `_parse_connect_dsn_and_args`, `_parse_hostlist`",
};

/// The query keys `_parse_connect_dsn_and_args` pops before the rest becomes `server_settings`.
pub const QUERY_KEYS: &[&str] = &[
    "host",
    "port",
    "dbname",
    "database",
    "user",
    "password",
    "passfile",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslnegotiation",
    "sslcrl",
    "sslpassword",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "service",
];

/// `SessionAttribute` in `connect_utils.py`.
const SESSION_ATTRS: &[&str] = &[
    "any",
    "primary",
    "standby",
    "prefer-standby",
    "read-write",
    "read-only",
];

pub fn read(raw: &str) -> Result<Reading, Refusal> {
    let split = urlsplit(raw).map_err(|invalid| {
        Refusal::new(
            Code::DriverUnsupportedFormat,
            format!(
                "Python's `urlparse` under asyncpg raises `ValueError` ({}): a raw `[` or `]` outside an IPv6 host, in the password for one; percent-encode it",
                invalid.0
            ),
        )
    })?;
    let query = if split.query.is_empty() {
        Vec::new()
    } else {
        parse_qsl(&split.query, false, true).map_err(|bad| {
            Refusal::new(
                Code::DriverUnsupportedFormat,
                format!(
                    "asyncpg parses the query strictly and fails with `bad query field: '{}'` (a trailing or doubled `&`, or a parameter without `=`)",
                    if bad.0.contains("password") { "…" } else { &bad.0 }
                ),
            )
        })?
    };
    if split.scheme != "postgresql" && split.scheme != "postgres" {
        return Err(scheme_refusal(&split.scheme, raw));
    }
    // parse_qs keeps the first position of a key and its last value.
    let mut query = dedupe(query);

    let (auth, hostspec) = match split.netloc.split_once('@') {
        Some((auth, hostspec)) => (auth, hostspec),
        None => ("", split.netloc.as_str()),
    };
    let (user, dsn_password) = auth.split_once(':').unwrap_or((auth, ""));
    let mut endpoints = if hostspec.is_empty() {
        None
    } else {
        Some(parse_hostlist(hostspec, true)?)
    };
    let mut database = (!split.path.is_empty())
        .then(|| unquote(split.path.strip_prefix('/').unwrap_or(&split.path)));
    let mut user = (!user.is_empty()).then(|| unquote(user));
    let mut secret = (!dsn_password.is_empty()).then(|| unquote(dsn_password));

    let mut take = |key: &str| {
        query
            .iter()
            .position(|(k, _)| k == key)
            .map(|at| query.remove(at).1)
    };
    // The authority's hosts come with their ports (5432 where none is written), so the query's
    // `host` and `port` count only when the authority names no host.
    let query_port = take("port");
    let query_host = take("host");
    if endpoints.is_none() {
        if let Some(hosts) = query_host {
            endpoints = Some(parse_hostlist(&hosts, false)?);
        }
        if let Some(ports) = &query_port {
            let list = endpoints.get_or_insert_with(|| vec![Endpoint::new(None, None)]);
            apply_ports(list, ports)?;
        }
    }
    for key in ["dbname", "database"] {
        if let Some(value) = take(key)
            && database.is_none()
        {
            database = Some(value);
        }
    }
    if let Some(value) = take("user")
        && user.is_none()
    {
        user = Some(value);
    }
    if let Some(value) = take("password")
        && secret.is_none()
    {
        secret = Some(value);
    }
    let sslmode = take("sslmode");
    if let Some(attrs) = take("target_session_attrs")
        && !SESSION_ATTRS.contains(&attrs.as_str())
    {
        return Err(Refusal::new(
            Code::DriverRejectsParameter,
            format!(
                "asyncpg rejects `target_session_attrs={attrs}`: it takes {}",
                SESSION_ATTRS.join(", ")
            ),
        ));
    }
    for key in QUERY_KEYS {
        take(key);
    }

    let endpoints = endpoints.unwrap_or_default();
    let any_tcp = endpoints.is_empty()
        || endpoints
            .iter()
            .any(|e| !matches!(e.host, Some(Host::Socket(_))));
    // Like libpq, asyncpg asks for no TLS on unix sockets, whatever sslmode says (seen: it
    // connects in plaintext over a socket with `sslmode=require`).
    let tls = match sslmode {
        Some(mode) if any_tcp => Tls::from_sslmode(parse_sslmode(&mode)?),
        Some(mode) => {
            Tls::from_sslmode(parse_sslmode(&mode)?);
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
        settings: query,
        ignored: Vec::new(),
    })
}

fn dedupe(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

/// `SSLMode.parse`: the six libpq spellings, `_` for `-` also accepted.
pub(crate) fn parse_sslmode(value: &str) -> Result<SslMode, Refusal> {
    value.replace('_', "-").parse::<SslMode>().map_err(|_| {
        Refusal::new(
            Code::DriverRejectsParameter,
            format!("asyncpg rejects `sslmode={value}`: `sslmode` parameter must be one of: disable, allow, prefer, require, verify-ca, verify-full"),
        )
    })
}

fn scheme_refusal(scheme: &str, raw: &str) -> Refusal {
    if scheme.is_empty() && raw.contains('=') {
        return Refusal::new(
            Code::DriverUnsupportedFormat,
            "asyncpg reads only URLs, not keyword/value strings: `invalid DSN: scheme is expected to be either \"postgresql\" or \"postgres\"`",
        );
    }
    let message = match scheme.split_once('+') {
        Some((_, dialect)) => format!(
            "asyncpg fails with `scheme is expected to be either \"postgresql\" or \"postgres\", got '{scheme}'`: drop `+{dialect}` for asyncpg, keep it for SQLAlchemy"
        ),
        None => format!(
            "asyncpg fails with `scheme is expected to be either \"postgresql\" or \"postgres\", got '{scheme}'`"
        ),
    };
    Refusal::new(Code::DriverWrongScheme, message)
}

/// `_parse_hostlist`: comma-separated; `/…` is a socket (no port), `[…]` an IPv6 address,
/// else `host:port` split at the first `:`. Only the authority's hosts are `unquote`d.
fn parse_hostlist(list: &str, unquote_hosts: bool) -> Result<Vec<Endpoint>, Refusal> {
    let mut endpoints = Vec::new();
    for spec in list.split(',') {
        let (addr, port) = if spec.starts_with('/') {
            (spec.to_owned(), "")
        } else if let Some(rest) = spec.strip_prefix('[') {
            let Some((addr, after)) = rest.split_once(']') else {
                return Err(Refusal::new(
                    Code::DriverUnsupportedFormat,
                    "asyncpg fails with `invalid IPv6 address in the connection URI`",
                ));
            };
            (addr.to_owned(), after.strip_prefix(':').unwrap_or(""))
        } else {
            let (addr, port) = spec.split_once(':').unwrap_or((spec, ""));
            (addr.to_owned(), port)
        };
        let addr = if unquote_hosts { unquote(&addr) } else { addr };
        let port = if port.is_empty() {
            None
        } else {
            let port = if unquote_hosts {
                unquote(port)
            } else {
                port.to_owned()
            };
            Some(int_port(&port)?)
        };
        endpoints.push(Endpoint::new(Some(Host::classify(&addr)), port));
    }
    Ok(endpoints)
}

fn apply_ports(endpoints: &mut [Endpoint], ports: &str) -> Result<(), Refusal> {
    let ports: Vec<u16> = ports.split(',').map(int_port).collect::<Result<_, _>>()?;
    if ports.len() == 1 {
        endpoints.iter_mut().for_each(|e| e.port = Some(ports[0]));
    } else if ports.len() == endpoints.len() {
        for (endpoint, port) in endpoints.iter_mut().zip(ports) {
            endpoint.port = Some(port);
        }
    } else {
        return Err(Refusal::new(
            Code::DriverUnsupportedFormat,
            "asyncpg fails: the number of ports does not match the number of hosts",
        ));
    }
    Ok(())
}

/// Python's `int()`: a piece of a password that ended up where the port goes fails here, and
/// its text is never quoted.
fn int_port(text: &str) -> Result<u16, Refusal> {
    text.trim().parse::<u16>().map_err(|_| {
        Refusal::new(
            Code::DriverMisreadsUrl,
            "asyncpg reads something that is not a number as the port (`invalid literal for int()`): an unencoded `#`, `?`, `/` or `@` in the password ends it early for Python's `urlparse`; percent-encode the password",
        )
    })
}

pub fn rewrite(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    params.retain(|(key, value)| {
        if QUERY_KEYS.contains(&key.as_str()) || startup_setting(key) {
            return true;
        }
        notes.push(match key.as_str() {
            "connect_timeout" => format!(
                "dropped `connect_timeout={value}`: asyncpg would send it to the server; pass `timeout={value}` to `asyncpg.connect` / `create_pool`"
            ),
            "channel_binding" => "dropped `channel_binding`: asyncpg has no channel binding and would send it to the server".to_owned(),
            "ssl" => "dropped `ssl`: asyncpg reads `sslmode`".to_owned(),
            _ if libpq::KEYWORDS.contains(&key.as_str()) => {
                format!("dropped `{key}`: a libpq option that asyncpg would send to the server as a setting")
            }
            _ => format!("dropped `{key}`: asyncpg would send it to the server, which does not know it"),
        });
        false
    });
    let style = Style {
        driver: Driver::Asyncpg,
        scheme: "postgresql",
        socket: SocketStyle::QueryHost,
        multi: MultiHost::Authority,
        db_path: DbPath::Encoded,
        credentials_in_query: false,
    };
    render::render(&style, conn, &params, notes)
}

/// A query key the server accepts as a startup setting from any role.
fn startup_setting(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    matches!(lower.as_str(), "options" | "replication")
        || lower.contains('.')
        || server_settings::USER_SETTABLE.contains(&lower.as_str())
}
