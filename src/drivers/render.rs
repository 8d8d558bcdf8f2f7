//! Writing a URL for one driver from what a URL means ([`ConnString`]): each driver module
//! picks a [`Style`] (where socket hosts and host lists go, how the database path is encoded)
//! and maps the query parameters; this module does the encoding, identically for all.
//!
//! Everything outside RFC 3986's unreserved set is percent-encoded, because every driver here
//! decodes `%XX` in the user, the password and the query; `+` is always `%2B`, because the
//! Python and JavaScript drivers and sqlx read a `+` in the query as a space. The exception is
//! node-postgres's database path, decoded with `decodeURI`, which leaves `%2B`, `%2C`, `%3A`
//! and the like encoded: there those characters are written as they are.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Code, Driver, Refusal, Rewritten, secret_url};
use crate::dsn::{ConnString, HostSpec, Reveal};

const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Query values keep `/`, `:` and `,` readable (socket paths, host lists); every driver takes
/// them literally there.
const QUERY_VALUE: &AsciiSet = &COMPONENT.remove(b'/').remove(b':').remove(b',');

/// What `decodeURI` leaves encoded but a raw character means the same to every parser of a
/// URL path: written raw in node-postgres's database path.
const DECODE_URI_RAW: &AsciiSet = &COMPONENT
    .remove(b'+')
    .remove(b'$')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b'&')
    .remove(b':');

/// Characters `decodeURI` does not decode and that cannot stand raw in a path either.
const DECODE_URI_IMPOSSIBLE: &[char] = &['/', '?', '#', '@'];

pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Where a unix-socket directory goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketStyle {
    /// `postgresql://user:pw@/db?host=/dir&port=P`: every Python and JavaScript driver here
    /// and libpq read it; SQLAlchemy does not decode a `%2F…` host.
    QueryHost,
    /// `postgresql://user:pw@%2Fdir:P/db`: the `url` crate (sqlx) refuses an empty host after
    /// credentials.
    AuthorityEncoded,
    /// `postgresql://user:pw@localhost:P/db?host=/dir`: Prisma needs a host and ignores it.
    LocalhostPlusQuery,
    Unsupported,
}

/// Where several hosts go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MultiHost {
    /// `h1:p1,h2:p2` in the authority.
    Authority,
    /// `?host=h1:p1&host=h2:p2` (SQLAlchemy's form).
    RepeatedQuery,
    Unsupported,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DbPath {
    Encoded,
    /// node-postgres: see [`DECODE_URI_RAW`].
    DecodeUri,
}

pub(crate) struct Style {
    pub driver: Driver,
    pub scheme: &'static str,
    pub socket: SocketStyle,
    pub multi: MultiHost,
    pub db_path: DbPath,
    /// JDBC takes no user or password in the authority.
    pub credentials_in_query: bool,
}

/// The query parameters of a parsed string after host, port, user, password and dbname, as
/// libpq would write them.
pub(crate) fn params_of(conn: &ConnString) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(mode) = conn.sslmode {
        params.push(("sslmode".into(), mode.as_str().into()));
    }
    if let Some(timeout) = conn.connect_timeout {
        params.push(("connect_timeout".into(), timeout.to_string()));
    }
    if let Some(name) = &conn.application_name {
        params.push(("application_name".into(), name.clone()));
    }
    if let Some(cert) = &conn.sslrootcert {
        params.push(("sslrootcert".into(), cert.clone()));
    }
    if let Some(options) = &conn.options {
        params.push(("options".into(), options.clone()));
    }
    params.extend(conn.unknown.iter().cloned());
    params
}

/// Prisma's `schema=X` means `search_path=X`; every other driver says that with
/// `options=-c search_path=X`, which libpq, asyncpg, psycopg and node-postgres all pass on.
pub(crate) fn fold_schema(params: &mut Vec<(String, String)>, notes: &mut Vec<String>) {
    let Some(at) = params.iter().position(|(key, _)| key == "schema") else {
        return;
    };
    let (_, schema) = params.remove(at);
    let setting = format!("-c search_path={schema}");
    notes.push(format!(
        "`schema={schema}` is Prisma's; the others say it as `options=-c search_path={schema}`"
    ));
    match params.iter_mut().find(|(key, _)| key == "options") {
        Some((_, options)) => {
            options.push(' ');
            options.push_str(&setting);
        }
        None => params.push(("options".into(), setting)),
    }
}

/// Renders the URL; fails when the driver has no way to say the hosts or the database.
pub(crate) fn render(
    style: &Style,
    conn: &ConnString,
    params: &[(String, String)],
    notes: Vec<String>,
) -> Result<Rewritten, Refusal> {
    let hosts = &conn.hosts;
    let any_socket = hosts.iter().any(HostSpec::is_socket);
    if hosts.len() > 1 && style.multi == MultiHost::Unsupported {
        return Err(Refusal::new(
            Code::DriverCannotExpress,
            format!(
                "{} connects to one host only: pick one of the {} hosts (or put a pooler or DNS name in front of them)",
                style.driver.name(),
                hosts.len()
            ),
        ));
    }
    if any_socket && style.socket == SocketStyle::Unsupported {
        return Err(Refusal::new(
            Code::DriverCannotExpress,
            format!(
                "{} connects over TCP only: use the server's TCP address instead of the socket directory",
                style.driver.name()
            ),
        ));
    }
    let database = match &conn.dbname {
        None => None,
        Some(name) => Some(database_path(style, name)?),
    };

    let (authority_hosts, mut query) = place_hosts(style, hosts);
    let password = conn.password.as_ref().map(|p| p.expose().to_owned());
    if style.credentials_in_query
        && let Some(user) = &conn.user
    {
        query.push(("user".into(), user.clone()));
    }
    query.extend(params.iter().cloned());

    let url = secret_url(|reveal| {
        let mut url = format!("{}://", style.scheme);
        let shown_password = password.as_deref().map(|p| match reveal {
            Reveal::Secret => encode(p),
            Reveal::Redacted => "****".to_owned(),
        });
        if !style.credentials_in_query && (conn.user.is_some() || password.is_some()) {
            if let Some(user) = &conn.user {
                url.push_str(&encode(user));
            }
            if let Some(password) = &shown_password {
                url.push(':');
                url.push_str(password);
            }
            url.push('@');
        }
        url.push_str(&authority_hosts.join(","));
        url.push('/');
        if let Some(database) = &database {
            url.push_str(database);
        }
        let mut pieces: Vec<String> = query
            .iter()
            .map(|(key, value)| {
                let shown =
                    if reveal == Reveal::Redacted && (key == "password" || key == "sslpassword") {
                        "****".to_owned()
                    } else {
                        utf8_percent_encode(value, QUERY_VALUE).to_string()
                    };
                format!("{}={shown}", encode(key))
            })
            .collect();
        if style.credentials_in_query
            && let Some(password) = &shown_password
        {
            pieces.push(format!("password={password}"));
        }
        if !pieces.is_empty() {
            url.push('?');
            url.push_str(&pieces.join("&"));
        }
        if database.is_none() && pieces.is_empty() {
            url.pop();
        }
        url
    });
    Ok(Rewritten { url, notes })
}

/// The hosts written in the authority, and the `host`/`port` query parameters, for `style`.
fn place_hosts(style: &Style, hosts: &[HostSpec]) -> (Vec<String>, Vec<(String, String)>) {
    let any_socket = hosts.iter().any(HostSpec::is_socket);
    let mut authority_hosts: Vec<String> = Vec::new();
    let mut query: Vec<(String, String)> = Vec::new();
    if hosts.len() > 1 && style.multi == MultiHost::RepeatedQuery {
        for spec in hosts {
            let host = spec.host.clone().unwrap_or_else(|| "localhost".into());
            let port = spec.port.unwrap_or(crate::dsn::DEFAULT_PORT);
            query.push(("host".into(), format!("{host}:{port}")));
        }
    } else if any_socket && style.socket == SocketStyle::QueryHost
        || hosts
            .iter()
            .any(|spec| spec.host.is_none() && spec.port.is_some())
    {
        let list =
            |f: &dyn Fn(&HostSpec) -> String| hosts.iter().map(f).collect::<Vec<_>>().join(",");
        if hosts.iter().any(|spec| spec.host.is_some()) {
            query.push((
                "host".into(),
                list(&|spec| spec.host.clone().unwrap_or_default()),
            ));
        }
        if hosts.iter().any(|spec| spec.port.is_some()) {
            query.push((
                "port".into(),
                list(&|spec| spec.port.map(|p| p.to_string()).unwrap_or_default()),
            ));
        }
    } else if any_socket && style.socket == SocketStyle::LocalhostPlusQuery {
        let spec = &hosts[0];
        authority_hosts.push(with_port("localhost".into(), spec.port));
        query.push(("host".into(), spec.host.clone().unwrap_or_default()));
    } else {
        for spec in hosts {
            let host = spec.host.as_deref().unwrap_or_default();
            let rendered = if host.contains(':') {
                format!("[{host}]")
            } else {
                encode(host)
            };
            authority_hosts.push(with_port(rendered, spec.port));
        }
    }
    (authority_hosts, query)
}

fn with_port(host: String, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn database_path(style: &Style, name: &str) -> Result<String, Refusal> {
    match style.db_path {
        DbPath::Encoded => Ok(encode(name)),
        DbPath::DecodeUri => {
            if let Some(c) = name.chars().find(|c| DECODE_URI_IMPOSSIBLE.contains(c)) {
                return Err(Refusal::new(
                    Code::DriverCannotExpress,
                    format!(
                        "node-postgres decodes the database path with `decodeURI`, which leaves `{}` encoded, and a raw `{c}` ends the path: no URL names database `{name}` for it; rename the database or pass `database` in the client's config object",
                        encode(&c.to_string())
                    ),
                ));
            }
            Ok(utf8_percent_encode(name, DECODE_URI_RAW).to_string())
        }
    }
}
