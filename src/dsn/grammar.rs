//! Parsing both libpq formats, URI and keyword/value, into a [`ConnString`] exactly as written.

use super::*;

impl ConnString {
    /// Parses a URI (recognised by its `postgresql://` or `postgres://` scheme) or else a
    /// keyword/value string. Surrounding whitespace is ignored, so a pasted line with its
    /// newline still parses.
    pub fn parse(s: &str) -> Result<ConnString, DsnError> {
        if s.contains('\0') {
            return Err(DsnError::NulByte { part: None });
        }
        let s = s.trim_start();
        if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            return parse_uri(rest.trim_end());
        }
        if let Some(scheme) = uri_scheme(s) {
            return Err(DsnError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        }
        parse_keyword_value(s)
    }
}

/// The scheme of something that looks like a URL (`mysql://`, `jdbc:postgresql://`).
fn uri_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let valid = starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':'));
    valid.then_some(scheme)
}

pub(super) fn split_list(value: &str) -> Vec<Option<String>> {
    value
        .split(',')
        .map(|item| (!item.is_empty()).then(|| item.to_owned()))
        .collect()
}

#[derive(Debug)]
enum PortProblem {
    NotANumber,
    OutOfRange,
}

/// libpq accepts surrounding whitespace and requires 1..=65535.
fn parse_port(text: &str) -> Result<u16, PortProblem> {
    let trimmed = text.trim_matches(is_c_space);
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortProblem::NotANumber);
    }
    match digits.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(PortProblem::OutOfRange),
    }
}

fn port_error(text: &str, problem: PortProblem) -> DsnError {
    match problem {
        PortProblem::NotANumber => DsnError::PortNotANumber {
            value: text.to_owned(),
        },
        PortProblem::OutOfRange => DsnError::PortOutOfRange {
            value: text.to_owned(),
        },
    }
}

pub(super) fn parse_port_list(value: &str) -> Result<Vec<Option<u16>>, DsnError> {
    value
        .split(',')
        .map(|item| {
            if item.is_empty() {
                Ok(None)
            } else {
                parse_port(item)
                    .map(Some)
                    .map_err(|problem| port_error(item, problem))
            }
        })
        .collect()
}

/// libpq's rule: one port for every host, or one port per host.
pub(super) fn pair_ports(
    host_count: usize,
    ports: Vec<Option<u16>>,
) -> Result<Vec<Option<u16>>, DsnError> {
    if ports.len() == host_count {
        Ok(ports)
    } else if ports.len() == 1 {
        Ok(vec![ports[0]; host_count])
    } else {
        Err(DsnError::PortCountMismatch {
            hosts: host_count,
            ports: ports.len(),
        })
    }
}

pub(super) fn parse_connect_timeout(value: &str) -> Result<i64, DsnError> {
    value
        .trim_matches(is_c_space)
        .parse()
        .map_err(|_| DsnError::InvalidConnectTimeout {
            value: value.to_owned(),
        })
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Collects parameters in the order they appear; as in libpq a later value replaces an
/// earlier one (`postgresql://h/db?host=other` connects to `other`).
#[derive(Default)]
struct Collected {
    hosts: Option<Vec<Option<String>>>,
    ports: Option<Vec<Option<u16>>>,
    conn: ConnString,
}

impl Collected {
    fn set(&mut self, key: &str, value: String) -> Result<(), DsnError> {
        let conn = &mut self.conn;
        match key {
            "host" => self.hosts = (!value.is_empty()).then(|| split_list(&value)),
            "port" => {
                self.ports = if value.is_empty() {
                    None
                } else {
                    Some(parse_port_list(&value)?)
                }
            }
            "user" => conn.user = non_empty(value),
            "password" => conn.password = non_empty(value).map(Password::new),
            "dbname" => conn.dbname = non_empty(value),
            "sslmode" => {
                conn.sslmode = if value.is_empty() {
                    None
                } else {
                    Some(value.parse()?)
                }
            }
            // libpq translates this JDBC spelling, in URIs only.
            "ssl" if conn.format == Format::Uri && value == "true" => {
                conn.sslmode = Some(SslMode::Require)
            }
            "connect_timeout" => {
                conn.connect_timeout = if value.is_empty() {
                    None
                } else {
                    Some(parse_connect_timeout(&value)?)
                }
            }
            "application_name" => conn.application_name = non_empty(value),
            "sslrootcert" => conn.sslrootcert = non_empty(value),
            "options" => conn.options = non_empty(value),
            _ => match conn.unknown.iter_mut().find(|(known, _)| known == key) {
                Some(existing) => existing.1 = value,
                None => conn.unknown.push((key.to_owned(), value)),
            },
        }
        Ok(())
    }

    fn finish(self) -> Result<ConnString, DsnError> {
        let mut conn = self.conn;
        conn.hosts = match (self.hosts, self.ports) {
            (None, None) => Vec::new(),
            (Some(hosts), None) => hosts
                .into_iter()
                .map(|host| HostSpec { host, port: None })
                .collect(),
            // Ports without hosts stay a list: the hosts may come from PGHOST later.
            (None, Some(ports)) => ports
                .into_iter()
                .map(|port| HostSpec { host: None, port })
                .collect(),
            (Some(hosts), Some(ports)) => {
                let ports = pair_ports(hosts.len(), ports)?;
                hosts
                    .into_iter()
                    .zip(ports)
                    .map(|(host, port)| HostSpec { host, port })
                    .collect()
            }
        };
        // `postgresql://:` names one empty host and no port: the defaults, as if unsaid.
        if let [
            HostSpec {
                host: None,
                port: None,
            },
        ] = conn.hosts[..]
        {
            conn.hosts.clear();
        }
        Ok(conn)
    }
}

/// Percent-decodes one part of a URI. libpq decodes every part and refuses `%00`; a bad
/// sequence in a secret part is reported without quoting it.
fn decode(raw: &str, part: UriPart) -> Result<String, DsnError> {
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(offset) = raw[from..].find('%') {
        let at = from + offset;
        let valid = bytes.len() >= at + 3
            && bytes[at + 1].is_ascii_hexdigit()
            && bytes[at + 2].is_ascii_hexdigit();
        if !valid {
            let token = (!part.is_secret()).then(|| raw[at..].chars().take(3).collect());
            return Err(DsnError::InvalidPercentEncoding { part, token });
        }
        if &bytes[at + 1..at + 3] == b"00" {
            return Err(DsnError::NulByte { part: Some(part) });
        }
        from = at + 3;
    }
    String::from_utf8(percent_decode_str(raw).collect()).map_err(|_| DsnError::InvalidUtf8 { part })
}

/// Host names a user would type (so the text after `host:` cannot be a password).
fn looks_like_host_name(host: &str) -> bool {
    host == "localhost" || host.contains('.') || host.parse::<IpAddr>().is_ok()
}

/// Parses what follows `postgresql://`, with libpq's rules (`conninfo_uri_parse_options`): the
/// user and password end at the first `@` before any `/`, so an unencoded `?` or `#` in a
/// password is accepted, while an unencoded `@` or `/` is caught and explained.
fn parse_uri(rest: &str) -> Result<ConnString, DsnError> {
    parse_uri_parts(rest).map_err(|error| {
        // Any '@' besides the one that ends "user:password" may come from a password with a
        // raw '@', '/', '?' or '&', whose pieces then look like a host, port, path or query.
        let first_slash = rest.find('/').unwrap_or(rest.len());
        let userinfo_ats = usize::from(rest[..first_slash].contains('@'));
        if rest.matches('@').count() > userinfo_ats {
            error.obscured(Format::Uri)
        } else {
            error
        }
    })
}

fn parse_uri_parts(rest: &str) -> Result<ConnString, DsnError> {
    let mut collected = Collected {
        conn: ConnString {
            format: Format::Uri,
            ..ConnString::default()
        },
        ..Collected::default()
    };

    let first_slash = rest.find('/').unwrap_or(rest.len());
    let (has_userinfo, after) = match rest[..first_slash].find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            collected.set("user", decode(user, UriPart::UserName)?)?;
            if let Some(password) = password {
                collected.set("password", decode(password, UriPart::Password)?)?;
            }
            (true, &rest[at + 1..])
        }
        None => (false, rest),
    };

    let authority = parse_host_list(after, has_userinfo)?;
    collected.hosts = authority.hosts;
    collected.ports = authority.ports;
    let pos = authority.end;
    let bytes = after.as_bytes();

    let mut query = None;
    match bytes.get(pos) {
        Some(b'/') => {
            let path = &after[pos + 1..];
            let (dbname, rest_query) = match path.split_once('?') {
                Some((dbname, query)) => (dbname, Some(query)),
                None => (path, None),
            };
            // libpq would take "user:12/34@host/db" as database "34@host/db"; a database
            // name with a raw '@' is far more likely a password with a raw '/'.
            if dbname.contains('@') {
                return Err(DsnError::UnencodedAt {
                    part: UriPart::DatabaseName,
                });
            }
            collected.set("dbname", decode(dbname, UriPart::DatabaseName)?)?;
            query = rest_query;
        }
        Some(b'?') => query = Some(&after[pos + 1..]),
        _ => {}
    }

    if let Some(query) = query {
        parse_query(query, &mut collected)?;
    }
    collected.finish()
}

/// The `host[:port],…` part of a URI, which ends at `/`, `?` or the end.
struct HostList {
    /// None when no host is written (`postgresql:///db`).
    hosts: Option<Vec<Option<String>>>,
    /// None when no port is written.
    ports: Option<Vec<Option<u16>>>,
    /// Byte offset just past the list.
    end: usize,
}

/// Reads the host list that follows `user:password@` (when `has_userinfo`) or the scheme.
fn parse_host_list(after: &str, has_userinfo: bool) -> Result<HostList, DsnError> {
    let bytes = after.as_bytes();
    let mut pos = 0;
    let mut hosts: Vec<Option<String>> = Vec::new();
    let mut ports: Vec<Option<u16>> = Vec::new();
    let mut any_port = false;
    loop {
        let host_text = if bytes.get(pos) == Some(&b'[') {
            let close = after[pos + 1..]
                .find(']')
                .ok_or(DsnError::UnterminatedIpv6)?;
            let text = &after[pos + 1..pos + 1 + close];
            if text.is_empty() {
                return Err(DsnError::EmptyIpv6);
            }
            // libpq would split a comma inside the brackets into two hosts; none of these
            // belongs in an address.
            if let Some(found) = text
                .chars()
                .find(|c| matches!(c, ',' | '/' | '?' | '#' | '[') || c.is_whitespace())
            {
                return Err(DsnError::InvalidIpv6 { found });
            }
            pos += close + 2;
            if let Some(&next) = bytes.get(pos)
                && !matches!(next, b':' | b'/' | b'?' | b',')
            {
                let found = after[pos..].chars().next().unwrap_or_default();
                return Err(DsnError::UnexpectedAfterIpv6 { found });
            }
            text
        } else {
            let end = after[pos..]
                .find([':', '/', '?', ','])
                .map_or(after.len(), |offset| pos + offset);
            let text = &after[pos..end];
            pos = end;
            text
        };
        if host_text.contains('@') {
            return Err(DsnError::UnencodedAt {
                part: UriPart::Host,
            });
        }
        let host = decode(host_text, UriPart::Host)?;
        // libpq decodes, then splits the host list on commas: `%2C` would make two hosts.
        if host.contains(',') {
            return Err(DsnError::CommaInHost);
        }
        hosts.push(non_empty(host));

        if bytes.get(pos) == Some(&b':') {
            any_port = true;
            let start = pos + 1;
            let end = after[start..]
                .find(['/', '?', ','])
                .map_or(after.len(), |offset| start + offset);
            let port_text = &after[start..end];
            pos = end;
            // A password with an unencoded '/' ends the host part early, and what libpq
            // then reads as "host:port" is really "user:password…": never quote it.
            let at_sign_follows = after[start..].contains('@');
            let may_be_password =
                at_sign_follows || !(has_userinfo || looks_like_host_name(host_text));
            // After "user:password@", the host itself may be a piece of a password that
            // holds a raw '@', so it is named only when there was no user part.
            let hidden = || DsnError::PortHidden {
                host: (!has_userinfo).then(|| host_text.to_owned()),
                at_sign_follows,
            };
            if port_text.contains('@') {
                return Err(DsnError::UnencodedAt {
                    part: UriPart::Host,
                });
            }
            if port_text.is_empty() {
                // "user:?pass/word@host": libpq sees an empty port and a query.
                if at_sign_follows && !has_userinfo {
                    return Err(hidden());
                }
                ports.push(None);
            } else if may_be_password {
                let port = decode(port_text, UriPart::Port).map_err(|_| hidden())?;
                ports.push(Some(parse_port(&port).map_err(|_| hidden())?));
            } else {
                let port = decode(port_text, UriPart::Port)?;
                ports.push(Some(
                    parse_port(&port).map_err(|problem| port_error(&port, problem))?,
                ));
            }
        } else {
            ports.push(None);
        }

        if bytes.get(pos) == Some(&b',') {
            pos += 1;
        } else {
            break;
        }
    }
    Ok(HostList {
        hosts: (hosts.len() > 1 || hosts[0].is_some()).then_some(hosts),
        ports: any_port.then_some(ports),
        end: pos,
    })
}

/// libpq's `conninfo_uri_parse_params`: `&`-separated `key=value`, both percent-decoded
/// (never `+` as space), exactly one `=` each; a single trailing `&` is allowed.
fn parse_query(query: &str, collected: &mut Collected) -> Result<(), DsnError> {
    let mut rest = query;
    let mut seen_secret = false;
    while !rest.is_empty() {
        let (piece, next) = rest.split_once('&').unwrap_or((rest, ""));
        rest = next;
        match parse_query_parameter(piece, collected) {
            Ok(key) => seen_secret |= is_secret_key(&key),
            // After `password=ab&cd=e`, "cd=e" may be the rest of a password with a raw '&'.
            Err(error) if seen_secret => return Err(error.obscured(Format::Uri)),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// One `key=value` piece of the query; returns the key.
fn parse_query_parameter(piece: &str, collected: &mut Collected) -> Result<String, DsnError> {
    let Some((raw_key, raw_value)) = piece.split_once('=') else {
        // A piece with an '@' is the rest of a user:password that a raw '/' or '?' cut short.
        return Err(DsnError::QueryParamMissingEquals {
            param: (!piece.contains('@')).then(|| piece.to_owned()),
        });
    };
    let key = decode(raw_key, UriPart::ParameterName)?;
    if key.is_empty() {
        return Err(DsnError::QueryParamEmptyKey);
    }
    // Such a name could not be written back as a keyword (libpq rejects it anyway, as it
    // rejects every name it does not know).
    if key.chars().any(|c| is_c_space(c) || c == '=') {
        return Err(DsnError::QueryParamInvalidKey { key });
    }
    if raw_value.contains('=') {
        return Err(DsnError::QueryParamExtraEquals { key });
    }
    let value = decode(raw_value, UriPart::value_of(&key))?;
    collected.set(&key, value)?;
    Ok(key)
}

/// libpq's `conninfo_parse`: `keyword = value` pairs separated by whitespace; a value is
/// single-quoted when it has spaces or is empty, and `\` escapes the next character, quoted
/// or not.
fn parse_keyword_value(s: &str) -> Result<ConnString, DsnError> {
    let mut collected = Collected {
        conn: ConnString {
            format: Format::KeyValue,
            ..ConnString::default()
        },
        ..Collected::default()
    };
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut seen_secret = false;
    loop {
        match parse_keyword_value_pair(&chars, &mut i, &mut collected) {
            Ok(Some(keyword)) => seen_secret |= is_secret_key(&keyword),
            Ok(None) => break,
            // "password=my secret" (unquoted) leaves "secret" to be read as a keyword.
            Err(error) if seen_secret => return Err(error.obscured(Format::KeyValue)),
            Err(error) => return Err(error),
        }
    }
    collected.finish()
}

/// Reads one `keyword=value` pair starting at `i`; returns its keyword, or None at the end.
fn parse_keyword_value_pair(
    chars: &[char],
    i: &mut usize,
    collected: &mut Collected,
) -> Result<Option<String>, DsnError> {
    let skip_spaces = |i: &mut usize| {
        while chars.get(*i).is_some_and(|&c| is_c_space(c)) {
            *i += 1;
        }
    };
    skip_spaces(i);
    if *i == chars.len() {
        return Ok(None);
    }
    let start = *i;
    while chars.get(*i).is_some_and(|&c| c != '=' && !is_c_space(c)) {
        *i += 1;
    }
    let keyword: String = chars[start..*i].iter().collect();
    skip_spaces(i);
    if chars.get(*i) != Some(&'=') {
        // "user:pw@host" is a URI without its scheme: not to be quoted back.
        return Err(DsnError::KvMissingEquals {
            keyword: (!keyword.contains('@')).then_some(keyword),
        });
    }
    if keyword.is_empty() {
        return Err(DsnError::KvEmptyKeyword);
    }
    *i += 1;
    skip_spaces(i);

    let mut value = String::new();
    if chars.get(*i) == Some(&'\'') {
        *i += 1;
        loop {
            match chars.get(*i) {
                None => return Err(DsnError::UnterminatedQuote { keyword }),
                Some('\\') => {
                    *i += 1;
                    if let Some(&c) = chars.get(*i) {
                        value.push(c);
                        *i += 1;
                    }
                }
                Some('\'') => {
                    *i += 1;
                    break;
                }
                Some(&c) => {
                    value.push(c);
                    *i += 1;
                }
            }
        }
    } else {
        while let Some(&c) = chars.get(*i) {
            *i += 1;
            if is_c_space(c) {
                break;
            }
            if c == '\\' {
                if let Some(&escaped) = chars.get(*i) {
                    value.push(escaped);
                    *i += 1;
                }
            } else {
                value.push(c);
            }
        }
    }
    collected.set(&keyword, value)?;
    Ok(Some(keyword))
}

// ---------------------------------------------------------------------------------------------
// Resolution
