//! libpq: psql, psycopg 3 and psycopg2, and aksara itself (whose `dsn` module follows libpq).
//!
//! Source: PostgreSQL `src/interfaces/libpq/fe-connect.c`: `conninfo_uri_parse_options`
//! (URIs: `postgresql://` or `postgres://`, user and password up to the first `@`, every part
//! percent-decoded and `+` kept), `conninfo_uri_parse_params` (`invalid URI query parameter`
//! for a key it does not know; `ssl=true` is read as `sslmode=require`; one trailing `&` is
//! allowed), `conninfo_parse` (keyword/value strings, `invalid connection option`), and
//! `PQconninfoOptions` (the keywords). A `host` in the query replaces the authority's (the later
//! value wins). sslmode defaults to `prefer`; `require` does not verify the certificate unless
//! `~/.postgresql/root.crt` exists. Several hosts are tried in order (`target_session_attrs`
//! picks among them).

use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{Code, Driver, Facts, Reading, Refusal, Rewritten, Tls, endpoints_of};
use crate::dsn::{ConnString, DsnError, Format};

pub static FACTS: Facts = Facts {
    reads: "`postgresql://`, `postgres://`, keyword/value (`host=… dbname=…`)",
    decoding: "`%XX` everywhere, `+` stays `+`; an unencoded `#` or `?` in the password is kept",
    unknown_parameters: "rejected: `invalid URI query parameter`",
    tls: "default `prefer`; `require` does not verify; `ssl=true` means `require`; never on a unix socket",
    hosts: "`h1:p1,h2:p2` tried in order; `?host=` replaces the authority's host",
    no_user: "the OS user (the effective uid's name); `USER` and `LOGNAME` are not read",
    source: "libpq `fe-connect.c`: `conninfo_uri_parse_options`, `conninfo_uri_parse_params`, `PQconninfoOptions`",
};

/// libpq's connection keywords (`PQconninfoOptions`, PostgreSQL 18). `require_auth`,
/// `sslcertmode` and `load_balance_hosts` need libpq 16, `sslnegotiation` 17, the protocol
/// versions, `sslkeylogfile`, `scram_*` and `oauth_*` 18; psycopg 3.3's binary wheel bundles
/// libpq 18, Debian 12's psql is libpq 15.
pub const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "min_protocol_version",
    "max_protocol_version",
    "sslkeylogfile",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

pub fn read(raw: &str) -> Result<Reading, Refusal> {
    let conn = parse(raw)?;
    // libpq 17 added this check (`conninfo_uri_parse_options`); older ones accept the spaces.
    if conn.format == Format::Uri && raw.trim().contains(char::is_whitespace) {
        return Err(Refusal::new(
            Code::DriverUnsupportedFormat,
            "libpq 17 and later (psycopg's binary wheels bundle libpq 18) refuse unencoded spaces in a URI: `unexpected spaces found in \"…\", use percent-encoded spaces (%20) instead`; percent-encode them",
        ));
    }
    if let Some((key, _)) = conn
        .unknown
        .iter()
        .find(|(key, _)| !KEYWORDS.contains(&key.as_str()))
    {
        let message = match conn.format {
            Format::Uri => format!(
                "libpq rejects the parameter `{key}`: `invalid URI query parameter: \"{key}\"`"
            ),
            Format::KeyValue => {
                format!("libpq rejects the keyword `{key}`: `invalid connection option \"{key}\"`")
            }
        };
        return Err(Refusal::new(Code::DriverRejectsParameter, message));
    }
    Ok(reading_of(&conn))
}

/// `ConnString::parse`, with a scheme that names a driver explained.
pub(crate) fn parse(raw: &str) -> Result<ConnString, Refusal> {
    ConnString::parse(raw).map_err(|error| match error {
        DsnError::UnsupportedScheme { scheme } => wrong_scheme(&scheme),
        other => Refusal::new(
            Code::DriverUnsupportedFormat,
            format!("libpq cannot read it: {other}"),
        ),
    })
}

fn wrong_scheme(scheme: &str) -> Refusal {
    let message = if let Some((_, dialect)) = scheme.split_once('+') {
        format!(
            "`{scheme}://` names SQLAlchemy's `{dialect}` dialect: drop `+{dialect}` for libpq and aksara (`postgresql://`), keep it for SQLAlchemy"
        )
    } else if scheme.starts_with("jdbc:") {
        format!("`{scheme}://` is the JDBC form: drop `jdbc:` for libpq and aksara")
    } else {
        format!("libpq reads `postgresql://` and `postgres://` URLs, not `{scheme}://`")
    };
    Refusal::new(Code::DriverWrongScheme, message)
}

/// What libpq connects with: the reference every other driver is compared with.
pub(crate) fn reading_of(conn: &ConnString) -> Reading {
    let endpoints = endpoints_of(&conn.hosts);
    let only_sockets = !endpoints.is_empty() && conn.hosts.iter().all(|spec| spec.is_socket());
    // "sslmode is ignored for Unix domain socket communication" (libpq docs): PostgreSQL
    // offers no TLS there, and libpq does not ask.
    let tls = match conn.sslmode {
        _ if only_sockets => Tls::Off,
        Some(mode) => Tls::from_sslmode(mode),
        None => Tls::IfOffered,
    };
    let mut settings = Vec::new();
    if let Some(name) = &conn.application_name {
        settings.push(("application_name".to_owned(), name.clone()));
    }
    if let Some(options) = &conn.options {
        settings.push(("options".to_owned(), options.clone()));
    }
    Reading {
        endpoints,
        user: conn.user.clone(),
        password: conn.password.clone(),
        database: conn.dbname.clone(),
        tls,
        settings,
        ignored: Vec::new(),
    }
}

pub fn rewrite(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    params.retain(|(key, _)| {
        let known = KEYWORDS.contains(&key.as_str());
        if !known {
            notes.push(format!("dropped `{key}`: libpq has no such parameter"));
        }
        known
    });
    let style = Style {
        driver: Driver::Libpq,
        scheme: "postgresql",
        socket: SocketStyle::QueryHost,
        multi: MultiHost::Authority,
        db_path: DbPath::Encoded,
        credentials_in_query: false,
    };
    render::render(&style, conn, &params, notes)
}
