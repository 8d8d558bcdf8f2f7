//! The parts of Python's `urllib.parse` that asyncpg and SQLAlchemy read URLs with, so their
//! readings can be predicted without running Python: `urlsplit` (which `urlparse` calls; the
//! `;params` split does not apply to `postgresql:`), `unquote`, and `parse_qsl`.
//!
//! Written from CPython 3.11 `Lib/urllib/parse.py` (`urlsplit`, `_splitnetloc`, `unquote`,
//! `parse_qsl`). Differences that cannot matter for PostgreSQL URLs (IDNA checks, the
//! bracket validation of exotic netlocs) are left out.

use percent_encoding::percent_decode_str;

/// `urlsplit(url)`: the five parts, each as written (nothing decoded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitUrl {
    pub scheme: String,
    pub netloc: String,
    pub path: String,
    pub query: String,
    pub fragment: String,
}

/// CPython strips leading and trailing C0 controls and spaces, and removes tab, CR and LF
/// anywhere (`_UNSAFE_URL_BYTES_TO_REMOVE`).
fn sanitize(url: &str) -> String {
    url.trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect()
}

/// Why `urlsplit` raised `ValueError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidNetloc(pub &'static str);

/// CPython 3.11.4+ checks brackets in the netloc, wherever they are (a password too): they must
/// pair up, and the first bracketed text must be an IPv6 address (`_check_bracketed_host`).
fn check_brackets(netloc: &str) -> Result<(), InvalidNetloc> {
    let (open, close) = (netloc.contains('['), netloc.contains(']'));
    if open != close {
        return Err(InvalidNetloc("Invalid IPv6 URL"));
    }
    if !open {
        return Ok(());
    }
    let inside = netloc
        .split_once('[')
        .map(|(_, after)| after.split(']').next().unwrap_or_default())
        .unwrap_or_default();
    let future = inside.strip_prefix('v').is_some_and(|rest| {
        rest.split_once('.').is_some_and(|(hex, tail)| {
            !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) && !tail.is_empty()
        })
    });
    let address = inside.split('%').next().unwrap_or_default();
    if future || address.parse::<std::net::Ipv6Addr>().is_ok() {
        Ok(())
    } else {
        Err(InvalidNetloc(
            "does not appear to be an IPv4 or IPv6 address",
        ))
    }
}

/// `urllib.parse.urlsplit`: the scheme (lower-cased) up to the first `:` when it is a valid
/// scheme, the netloc after `//` up to the first `/`, `?` or `#` (its brackets checked), then
/// the fragment after the first `#` and the query after the first `?`. Not modelled: the NFKC
/// check of non-ASCII netlocs (`_checknetloc`), which only fullwidth look-alikes of `/?#@:` fail.
pub fn urlsplit(url: &str) -> Result<SplitUrl, InvalidNetloc> {
    let mut url = sanitize(url);
    let mut split = SplitUrl::default();
    if let Some(colon) = url.find(':') {
        let candidate = &url[..colon];
        let valid = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            split.scheme = candidate.to_ascii_lowercase();
            url = url[colon + 1..].to_owned();
        }
    }
    if let Some(rest) = url.strip_prefix("//") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        split.netloc = rest[..end].to_owned();
        check_brackets(&split.netloc)?;
        url = rest[end..].to_owned();
    }
    if let Some((before, fragment)) = url.split_once('#') {
        split.fragment = fragment.to_owned();
        url = before.to_owned();
    }
    if let Some((before, query)) = url.split_once('?') {
        split.query = query.to_owned();
        url = before.to_owned();
    }
    split.path = url;
    Ok(split)
}

/// `urllib.parse.unquote`: `%XX` decoded, invalid UTF-8 replaced, `+` kept.
pub fn unquote(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// `urllib.parse.unquote_plus`: `+` is a space, then [`unquote`].
pub fn unquote_plus(text: &str) -> String {
    unquote(&text.replace('+', " "))
}

/// Why `parse_qsl(..., strict_parsing=True)` raised `ValueError("bad query field: ...")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadQueryField(pub String);

/// `urllib.parse.parse_qsl`: pairs split on `&` and the first `=`, `+` decoded as a space.
/// Pairs with an empty value are dropped unless `keep_blank_values`. With `strict`, an empty
/// piece (a trailing or doubled `&`) or a piece without `=` raises; without it, they are
/// skipped.
pub fn parse_qsl(
    query: &str,
    keep_blank_values: bool,
    strict: bool,
) -> Result<Vec<(String, String)>, BadQueryField> {
    let mut pairs = Vec::new();
    if query.is_empty() {
        return Ok(pairs);
    }
    for piece in query.split('&') {
        if piece.is_empty() && !strict {
            continue;
        }
        match piece.split_once('=') {
            Some((name, value)) if !value.is_empty() || keep_blank_values => {
                pairs.push((unquote_plus(name), unquote_plus(value)));
            }
            Some(_) => {}
            None if strict => return Err(BadQueryField(piece.to_owned())),
            None if keep_blank_values => pairs.push((unquote_plus(piece), String::new())),
            None => {}
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_in_the_password_ends_the_netloc() {
        let split = urlsplit("postgresql://u:pa#ss@host:5432/db").unwrap();
        assert_eq!(split.netloc, "u:pa");
        assert_eq!(split.fragment, "ss@host:5432/db");
        assert_eq!(split.path, "");
    }

    #[test]
    fn brackets_anywhere_in_the_netloc_must_hold_an_ipv6_address() {
        assert!(urlsplit("postgresql://u:p[s]s@h/db").is_err());
        assert!(urlsplit("postgresql://u:p[s@h/db").is_err());
        assert!(urlsplit("postgresql://u:p@[::1]:5432/db").is_ok());
        assert!(urlsplit("postgresql://u:p@[127.0.0.1]/db").is_err());
    }

    #[test]
    fn keyword_value_strings_have_no_scheme() {
        let split = urlsplit("host=/tmp dbname=app").unwrap();
        assert_eq!(split.scheme, "");
        assert_eq!(split.path, "host=/tmp dbname=app");
    }

    #[test]
    fn strict_parsing_refuses_a_trailing_ampersand_and_decodes_plus() {
        assert_eq!(
            parse_qsl("a=1&", false, true),
            Err(BadQueryField(String::new()))
        );
        assert_eq!(
            parse_qsl("password=a+b&x=%2B", false, true).unwrap(),
            vec![
                ("password".to_owned(), "a b".to_owned()),
                ("x".to_owned(), "+".to_owned())
            ]
        );
        assert_eq!(parse_qsl("a=&b=2", false, true).unwrap().len(), 1);
        assert!(parse_qsl("flag", false, true).is_err());
        assert!(parse_qsl("flag&a=1&", false, false).unwrap().len() == 1);
    }
}
