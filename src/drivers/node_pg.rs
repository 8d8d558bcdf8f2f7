//! node-postgres (`pg` 8.x), which parses with `pg-connection-string` 2.x.
//!
//! Source: brianc/node-postgres `packages/pg-connection-string/index.js`, `parse`: the string
//! goes to WHATWG `new URL(str, 'postgres://base')` (the scheme is never checked; a
//! keyword/value string becomes a path under the host `base`; an empty host after `@` is
//! retried as `@___DUMMY___/`); every query parameter is copied into the config
//! (`searchParams`: `+` is a space); user and password are `decodeURIComponent`ed, the host
//! too unless `?host=` is given (the query's host wins), **the database with `decodeURI`**,
//! which leaves `%2B`, `%2C`, `%3A`, `%40`, `%2F`, `%23`, … encoded (`c%2B%2Bapp` stays
//! `c%2B%2Bapp`); any `sslmode` makes `ssl = {}`, and `prefer`, `require`, `verify-ca` are
//! **treated as verify-full** unless `uselibpqcompat=true` (a self-signed certificate fails; a
//! server without TLS fails even with `prefer`). `packages/pg/lib/connection-parameters.js`,
//! `ConnectionParameters`: no host is `localhost`, no TLS unless asked, query keys it does not
//! read are ignored (`connect_timeout` too: the timeout is the `connectionTimeoutMillis`
//! option of the client, not of the URL). `packages/pg/lib/client.js`, `getStartupConf`: the
//! settings sent at startup. One host only.

use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{Code, Driver, Endpoint, Facts, Host, Reading, Refusal, Rewritten, Tls, password};
use crate::dsn::{ConnString, SslMode};

pub static FACTS: Facts = Facts {
    reads: "any `scheme://` URL (not checked); keyword/value strings are misread as a path under host `base`",
    decoding: "user, password, host decoded; **the database with `decodeURI`** (`%2B` stays); query `+` is a space",
    unknown_parameters: "ignored (`connect_timeout` too)",
    tls: "no TLS by default; **`prefer`/`require`/`verify-ca` act as verify-full** (a socket or a server without TLS fails); `uselibpqcompat=true` gives libpq's meaning",
    hosts: "one host; `?host=` wins over the authority's",
    no_user: "**`USER`**; none when it is unset",
    source: "`pg-connection-string/index.js` `parse`; `pg/lib/connection-parameters.js`; `pg/lib/client.js` `getStartupConf`",
};

/// The query keys `parse`, `ConnectionParameters` and `Client` read from the URL.
const KNOWN_KEYS: &[&str] = &[
    "user",
    "password",
    "host",
    "port",
    "ssl",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "uselibpqcompat",
    "sslnegotiation",
    "options",
    "application_name",
    "fallback_application_name",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "query_timeout",
    "client_encoding",
    "replication",
];

/// `decodeURIComponent`: every `%XX`; a malformed sequence throws `URIError`.
fn decode_uri_component(text: &str) -> Result<String, Refusal> {
    decode_except(text, "")
}

/// `decodeURI`: like `decodeURIComponent`, but the escapes of `;/?:@&=+$,#` stay as written.
fn decode_uri(text: &str) -> Result<String, Refusal> {
    decode_except(text, ";/?:@&=+$,#")
}

fn decode_except(text: &str, reserved: &str) -> Result<String, Refusal> {
    let malformed = || {
        Refusal::new(
            Code::DriverUnsupportedFormat,
            "node-postgres fails with `URIError: URI malformed`: a `%` that does not start a valid percent-encoded UTF-8 sequence",
        )
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = text.get(i + 1..i + 3).ok_or_else(malformed)?;
        let byte = u8::from_str_radix(hex, 16).map_err(|_| malformed())?;
        if byte.is_ascii() && reserved.contains(char::from(byte)) {
            out.extend_from_slice(&bytes[i..i + 3]);
        } else {
            out.push(byte);
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

/// JavaScript's `encodeURI`, which `parse` applies when the string has a space or a `%` not
/// followed by two hex digits (then turns `%25dd` back into `%dd`).
fn encode_uri(text: &str) -> String {
    const KEEP: &str = ";,/?:@&=+$-_.!~*'()#";
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || KEEP.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    // `.replace(/%25(\d\d)/g, '%$1')`
    let mut fixed = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find("%25") {
        fixed.push_str(&rest[..at]);
        let digits = rest
            .get(at + 3..at + 5)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        match digits {
            Some(d) => {
                fixed.push('%');
                fixed.push_str(d);
                rest = &rest[at + 5..];
            }
            None => {
                fixed.push_str("%25");
                rest = &rest[at + 3..];
            }
        }
    }
    fixed.push_str(rest);
    fixed
}

fn needs_encode_uri(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.contains(' ')
        || bytes.iter().enumerate().any(|(i, b)| {
            *b == b'%'
                && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        })
}

pub fn read(raw: &str) -> Result<Reading, Refusal> {
    if raw.starts_with('/') {
        let mut words = raw.split(' ');
        let host = words.next().unwrap_or_default();
        return Ok(reading(
            vec![Endpoint::new(Some(Host::Socket(host.to_owned())), None)],
            None,
            None,
            words.next().map(str::to_owned),
            Tls::Off,
            Vec::new(),
            Vec::new(),
        ));
    }
    let (url, dummy_host) = new_url(raw)?;
    let mut config: Vec<(String, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        match config.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value.into_owned(),
            None => config.push((key.into_owned(), value.into_owned())),
        }
    }
    let get = |key: &str| {
        config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let user = match get("user") {
        Some(user) => Some(user),
        None => Some(decode_uri_component(url.username())?).filter(|u| !u.is_empty()),
    };
    let secret = match get("password") {
        Some(secret) => Some(secret),
        None => url.password().map(decode_uri_component).transpose()?,
    };
    let hostname = if dummy_host {
        String::new()
    } else {
        url.host_str().unwrap_or_default().to_owned()
    };
    let hostname = hostname
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map(str::to_owned)
        .unwrap_or(hostname);
    let mut pathname = url.path().to_owned();
    let host = match get("host") {
        Some(host) => {
            if hostname.to_ascii_lowercase().starts_with("%2f") {
                pathname = format!("{hostname}{pathname}");
            }
            host
        }
        None => decode_uri_component(&hostname)?,
    };
    let port_text =
        get("port").unwrap_or_else(|| url.port().map(|p| p.to_string()).unwrap_or_default());
    let port = if port_text.is_empty() {
        None
    } else {
        Some(parse_int(&port_text).ok_or_else(|| {
            Refusal::new(
                Code::DriverUnsupportedFormat,
                "node-postgres reads a port that is not a number",
            )
        })?)
    };
    let database = match pathname.get(1..).filter(|p| !p.is_empty()) {
        Some(path) => Some(decode_uri(path)?),
        None => None,
    };
    let tls = tls(&|key| get(key))?;
    let settings = startup_settings(&get);
    let ignored = config
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .collect();
    let host = (!host.is_empty()).then(|| Host::classify(&host));
    let endpoints = if host.is_none() && port.is_none() {
        Vec::new()
    } else {
        vec![Endpoint::new(host, port)]
    };
    Ok(reading(
        endpoints, user, secret, database, tls, settings, ignored,
    ))
}

/// `new URL(str, 'postgres://base')`, after `parse`'s `encodeURI` step, retried with a dummy
/// host when the host is empty; says whether the dummy was used.
fn new_url(raw: &str) -> Result<(url::Url, bool), Refusal> {
    let text = if needs_encode_uri(raw) {
        encode_uri(raw)
    } else {
        raw.to_owned()
    };
    let base = url::Url::parse("postgres://base").expect("a valid base URL");
    match base.join(&text) {
        Ok(url) => Ok((url, false)),
        Err(_) => match base.join(&text.replace("@/", "@___DUMMY___/")) {
            Ok(url) => Ok((url, true)),
            Err(error) => Err(Refusal::new(
                Code::DriverUnsupportedFormat,
                format!(
                    "node-postgres cannot parse it: `new URL()` fails ({error}); several hosts or an unencoded `#`, `?`, `/` or `@` in the password do this"
                ),
            )),
        },
    }
}

/// `getStartupConf`: what the client puts in the startup packet because of the URL.
fn startup_settings(get: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    for key in [
        "application_name",
        "replication",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "options",
    ] {
        if let Some(value) = get(key) {
            settings.push((key.to_owned(), value));
        }
    }
    if settings.iter().all(|(k, _)| k != "application_name")
        && let Some(value) = get("fallback_application_name")
    {
        settings.push(("application_name".to_owned(), value));
    }
    settings
}

fn reading(
    endpoints: Vec<Endpoint>,
    user: Option<String>,
    secret: Option<String>,
    database: Option<String>,
    tls: Tls,
    settings: Vec<(String, String)>,
    ignored: Vec<String>,
) -> Reading {
    Reading {
        endpoints,
        user,
        password: password(secret),
        database,
        tls,
        settings,
        ignored,
    }
}

/// JavaScript's `parseInt(text, 10)`: leading digits, the rest ignored.
fn parse_int(text: &str) -> Option<u16> {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The `ssl` config `parse` builds, as the TLS node's `tls.connect` then does.
fn tls(get: &dyn Fn(&str) -> Option<String>) -> Result<Tls, Refusal> {
    let compat = get("uselibpqcompat").as_deref() == Some("true");
    let has_ca = get("sslrootcert").is_some();
    let any_file = get("sslcert").is_some() || get("sslkey").is_some() || has_ca;
    let Some(mode) = get("sslmode") else {
        if any_file {
            return Ok(Tls::VerifyFull);
        }
        return match get("ssl").as_deref() {
            None | Some("0") => Ok(Tls::Off),
            Some("no-verify") => Ok(Tls::Required),
            Some("true" | "1") => Ok(Tls::VerifyFull),
            // Any other string stays a string, which `Connection.upgradeToSSL` uses as an object.
            Some(other) => Err(Refusal::new(
                Code::DriverRejectsParameter,
                format!(
                    "node-postgres fails on `ssl={other}`: against a TLS server it throws `TypeError: Cannot use 'in' operator to search for 'key' in {other}`; it reads `ssl=true`, `ssl=no-verify` or `sslmode`"
                ),
            )),
        };
    };
    Ok(match (mode.as_str(), compat) {
        ("disable", _) => Tls::Off,
        ("no-verify", false) => Tls::Required,
        ("prefer", true) => Tls::Required,
        ("require", true) if has_ca => Tls::VerifyCa,
        ("require", true) => Tls::Required,
        ("verify-ca", true) if has_ca => Tls::VerifyCa,
        ("verify-ca", true) => {
            return Err(Refusal::new(
                Code::DriverRejectsParameter,
                "node-postgres refuses `uselibpqcompat=true&sslmode=verify-ca` without `sslrootcert` (`SECURITY WARNING: Using sslmode=verify-ca requires specifying a CA with sslrootcert`)",
            ));
        }
        _ => Tls::VerifyFull,
    })
}

pub fn rewrite(conn: &ConnString) -> Result<Rewritten, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    let mut kept = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "sslmode" => match value.parse::<SslMode>() {
                Ok(SslMode::Disable | SslMode::VerifyFull) => kept.push((key, value)),
                Ok(SslMode::Allow | SslMode::Prefer) => notes.push(format!(
                    "dropped `sslmode={value}`: node-postgres cannot fall back between TLS and plaintext; without `sslmode` it connects in plaintext, `uselibpqcompat=true&sslmode=require` asks for TLS without verification"
                )),
                Ok(SslMode::Require | SslMode::VerifyCa) => {
                    notes.push(format!(
                        "added `uselibpqcompat=true` so `sslmode={value}` means what it means to libpq (node-postgres reads it as verify-full otherwise); libpq rejects this parameter, so keep this URL for node-postgres only"
                    ));
                    kept.push(("uselibpqcompat".to_owned(), "true".to_owned()));
                    kept.push((key, value));
                }
                Err(_) => kept.push((key, value)),
            },
            "connect_timeout" => notes.push(format!(
                "dropped `connect_timeout={value}`: node-postgres ignores it; pass `connectionTimeoutMillis: {value}000` to `new Client` / `new Pool`"
            )),
            k if KNOWN_KEYS.contains(&k) => kept.push((key, value)),
            _ => notes.push(format!("dropped `{key}`: node-postgres ignores it")),
        }
    }
    let style = Style {
        driver: Driver::NodePg,
        scheme: "postgresql",
        socket: SocketStyle::QueryHost,
        multi: MultiHost::Unsupported,
        db_path: DbPath::DecodeUri,
        credentials_in_query: false,
    };
    render::render(&style, conn, &kept, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_uri_leaves_reserved_escapes() {
        assert_eq!(decode_uri("c%2B%2Bapp").unwrap(), "c%2B%2Bapp");
        assert_eq!(decode_uri("caf%C3%A9%20x").unwrap(), "café x");
        assert_eq!(decode_uri("a%25b").unwrap(), "a%b");
    }

    #[test]
    fn encode_uri_restores_only_decimal_escapes() {
        // `.replace(/%25(\d\d)/g, '%$1')` matches digits only: `%2F` becomes `%252F`.
        assert_eq!(encode_uri("a b%20%2F%zz"), "a%20b%20%252F%25zz");
    }
}
