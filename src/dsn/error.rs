//! Why a connection string could not be used: typed errors whose messages never quote a password.

use super::*;

/// The part of a URI an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriPart {
    UserName,
    Password,
    Host,
    Port,
    DatabaseName,
    ParameterName,
    ParameterValue(String),
}

impl UriPart {
    /// The value of query parameter `key`; a password parameter is a password.
    pub(super) fn value_of(key: &str) -> UriPart {
        if is_secret_key(key) {
            UriPart::Password
        } else {
            UriPart::ParameterValue(key.to_owned())
        }
    }

    pub(super) fn is_secret(&self) -> bool {
        *self == UriPart::Password
    }
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriPart::UserName => f.write_str("the user name"),
            UriPart::Password => f.write_str("the password"),
            UriPart::Host => f.write_str("the host"),
            UriPart::Port => f.write_str("the port"),
            UriPart::DatabaseName => f.write_str("the database name"),
            UriPart::ParameterName => f.write_str("a parameter name"),
            UriPart::ParameterValue(key) => write!(f, "the value of \"{key}\""),
        }
    }
}

/// Why a connection string or `PG*` variable could not be used. No variant holds a
/// password, so neither the message nor the hint can show one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DsnError {
    UnsupportedScheme {
        scheme: String,
    },
    PortNotANumber {
        value: String,
    },
    PortOutOfRange {
        value: String,
    },
    /// The text after `host:` in a URI is not a port, and may be part of a password (a
    /// password with an unencoded `/`, or a missing `@host`), so it is not shown.
    PortHidden {
        /// The text before the `:`, when it cannot be part of a password.
        host: Option<String>,
        at_sign_follows: bool,
    },
    PortCountMismatch {
        hosts: usize,
        ports: usize,
    },
    /// A raw `@` where none can be: in the host part (a second `@`) or the database name.
    UnencodedAt {
        part: UriPart,
    },
    /// `token` is None for a password.
    InvalidPercentEncoding {
        part: UriPart,
        token: Option<String>,
    },
    /// `part` is None for a raw NUL anywhere in the string.
    NulByte {
        part: Option<UriPart>,
    },
    InvalidUtf8 {
        part: UriPart,
    },
    UnterminatedIpv6,
    EmptyIpv6,
    /// A percent-encoded comma in a host of the URI's host list.
    CommaInHost,
    /// A character no IPv6 address (or zone) holds, inside the brackets.
    InvalidIpv6 {
        found: char,
    },
    UnexpectedAfterIpv6 {
        found: char,
    },
    /// `param` is None when it follows a password and may be the rest of it.
    QueryParamMissingEquals {
        param: Option<String>,
    },
    QueryParamExtraEquals {
        key: String,
    },
    QueryParamEmptyKey,
    /// A parameter name no keyword/value string could hold (a blank or `=` in it): no
    /// parameter libpq knows is named like that.
    QueryParamInvalidKey {
        key: String,
    },
    /// Something is malformed where a password with an unencoded (URI) or unquoted
    /// (keyword/value) special character may have spilled, so only the kind of problem is
    /// named.
    Obscured {
        problem: &'static str,
        format: Format,
    },
    UnknownSslMode {
        value: String,
        suggestion: Option<&'static str>,
    },
    InvalidConnectTimeout {
        value: String,
    },
    /// `keyword` is None when the word may be part of a password.
    KvMissingEquals {
        keyword: Option<String>,
    },
    KvEmptyKeyword,
    UnterminatedQuote {
        keyword: String,
    },
    /// No user in the string, `PGUSER` or the OS.
    NoUser,
    /// A malformed `PG*` variable.
    Environment {
        variable: &'static str,
        error: Box<DsnError>,
    },
}

impl fmt::Display for DsnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DsnError::UnsupportedScheme { scheme } => write!(
                f,
                "unsupported scheme \"{scheme}\"; expected postgresql:// or postgres://"
            ),
            DsnError::PortNotANumber { value } => write!(f, "port \"{value}\" is not a number"),
            DsnError::PortOutOfRange { value } => {
                write!(f, "port \"{value}\" is out of range (1-65535)")
            }
            DsnError::PortHidden {
                host: Some(host), ..
            } => write!(
                f,
                "expected a port number after \"{host}:\", found something else \
                 (not shown: it may be part of a password)"
            ),
            DsnError::PortHidden { host: None, .. } => f.write_str(
                "expected a port number after the host, found something else \
                 (not shown: it may be part of a password)",
            ),
            DsnError::PortCountMismatch { hosts, ports } => {
                write!(f, "could not match {ports} port numbers to {hosts} hosts")
            }
            DsnError::UnencodedAt {
                part: UriPart::DatabaseName,
            } => f.write_str("found an unencoded \"@\" in the database name part of the URI"),
            DsnError::UnencodedAt { part } => write!(
                f,
                "found a second unencoded \"@\" in {part} part of the URI"
            ),
            DsnError::InvalidPercentEncoding {
                part,
                token: Some(token),
            } => {
                write!(f, "invalid percent-encoding \"{token}\" in {part}")
            }
            DsnError::InvalidPercentEncoding { part, token: None } => {
                write!(f, "invalid percent-encoding in {part}")
            }
            DsnError::NulByte { part: Some(part) } => write!(
                f,
                "{part} contains %00 (a NUL byte), which PostgreSQL cannot accept"
            ),
            DsnError::NulByte { part: None } => {
                f.write_str("the connection string contains a NUL byte")
            }
            DsnError::InvalidUtf8 { part } => {
                write!(f, "{part} is not valid UTF-8 once percent-decoded")
            }
            DsnError::UnterminatedIpv6 => {
                f.write_str("missing \"]\" after an IPv6 address that starts with \"[\"")
            }
            DsnError::EmptyIpv6 => f.write_str("empty IPv6 address \"[]\" in the URI"),
            DsnError::CommaInHost => f.write_str(
                "a host in the URI holds an encoded comma (%2C), which libpq reads as a separator between hosts",
            ),
            DsnError::InvalidIpv6 { found } => {
                write!(f, "unexpected {found:?} inside an IPv6 address in brackets")
            }
            DsnError::UnexpectedAfterIpv6 { found } => write!(
                f,
                "unexpected \"{found}\" after an IPv6 address in brackets (expected \":\", \"/\", \"?\" or \",\")"
            ),
            DsnError::QueryParamMissingEquals { param: Some(param) } => {
                write!(f, "missing \"=\" in URI query parameter \"{param}\"")
            }
            DsnError::QueryParamMissingEquals { param: None } => f.write_str(
                "missing \"=\" in a URI query parameter \
                 (not shown: it may be part of a password)",
            ),
            DsnError::Obscured { problem, .. } => write!(
                f,
                "malformed connection string: {problem} (not shown: it may be part of a password)"
            ),
            DsnError::QueryParamEmptyKey => f.write_str(
                "a URI query parameter has an empty name (\"=\" right after \"?\" or \"&\")",
            ),
            DsnError::QueryParamExtraEquals { key } => write!(
                f,
                "extra \"=\" in the value of URI query parameter \"{key}\""
            ),
            DsnError::QueryParamInvalidKey { key } => write!(
                f,
                "invalid URI query parameter name {key:?}: it holds a blank or \"=\""
            ),
            DsnError::UnknownSslMode {
                value,
                suggestion: Some(suggestion),
            } => write!(
                f,
                "unknown sslmode \"{value}\"; did you mean \"{suggestion}\"?"
            ),
            DsnError::UnknownSslMode {
                value,
                suggestion: None,
            } => {
                write!(f, "unknown sslmode \"{value}\"")
            }
            DsnError::InvalidConnectTimeout { value } => {
                write!(f, "connect_timeout \"{value}\" is not an integer")
            }
            DsnError::KvMissingEquals {
                keyword: Some(keyword),
            } => write!(
                f,
                "missing \"=\" after \"{keyword}\" in keyword/value string"
            ),
            DsnError::KvMissingEquals { keyword: None } => f.write_str(
                "missing \"=\" after a word in the keyword/value string \
                 (not shown: it may be part of a password)",
            ),
            DsnError::KvEmptyKeyword => {
                f.write_str("found \"=\" with no keyword before it in keyword/value string")
            }
            DsnError::UnterminatedQuote { keyword } => {
                write!(f, "unterminated quoted value for \"{keyword}\"")
            }
            DsnError::NoUser => f.write_str("could not determine the user name to connect as"),
            DsnError::Environment { variable, error } => {
                write!(f, "environment variable {variable}: {error}")
            }
        }
    }
}

impl std::error::Error for DsnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DsnError::Environment { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl DsnError {
    /// This error without any text taken from the input, for a place where that text may
    /// be part of a password.
    pub(super) fn obscured(self, format: Format) -> DsnError {
        let problem = match &self {
            DsnError::PortNotANumber { .. } => "a port that is not a number",
            DsnError::PortOutOfRange { .. } => "a port out of range",
            DsnError::InvalidPercentEncoding { token: Some(_), .. } => {
                "an invalid percent-encoding"
            }
            DsnError::InvalidPercentEncoding {
                part: UriPart::ParameterValue(_),
                ..
            } => "an invalid percent-encoding",
            DsnError::NulByte {
                part: Some(UriPart::ParameterValue(_)),
            } => "a %00 (NUL byte)",
            DsnError::InvalidUtf8 {
                part: UriPart::ParameterValue(_),
            } => "percent-encoded text that is not UTF-8",
            DsnError::QueryParamMissingEquals { param: Some(_) } => {
                "a query parameter without \"=\""
            }
            DsnError::QueryParamExtraEquals { .. } => "a query parameter with a second \"=\"",
            DsnError::QueryParamInvalidKey { .. } => "a query parameter name with a blank or \"=\"",
            DsnError::UnknownSslMode { .. } => "an unknown sslmode",
            DsnError::InvalidConnectTimeout { .. } => "a connect_timeout that is not an integer",
            DsnError::KvMissingEquals { keyword: Some(_) } => "a word without \"=\" after it",
            DsnError::UnterminatedQuote { .. } => "an unterminated quoted value",
            _ => return self,
        };
        DsnError::Obscured { problem, format }
    }

    /// The fix, in a sentence, for the `hint:` line.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            DsnError::UnsupportedScheme { scheme } if scheme.eq_ignore_ascii_case("jdbc:postgresql") => {
                "drop the \"jdbc:\" prefix: postgresql://host:5432/dbname?user=...&password=... \
                 is a valid libpq URI"
                    .to_owned()
            }
            DsnError::UnsupportedScheme { scheme }
                if scheme.eq_ignore_ascii_case("postgresql")
                    || scheme.eq_ignore_ascii_case("postgres") =>
            {
                "the scheme is case-sensitive: write it as postgresql://".to_owned()
            }
            DsnError::UnsupportedScheme { .. } => {
                "aksara works with PostgreSQL only: postgresql://user:password@host:5432/dbname"
                    .to_owned()
            }
            DsnError::PortNotANumber { value } if value.contains(['@', '#', '/', '?', ':']) => {
                PASSWORD_ENCODING_HINT.to_owned()
            }
            DsnError::PortNotANumber { .. } | DsnError::PortOutOfRange { .. } => {
                "the port is a number from 1 to 65535; PostgreSQL's default is 5432".to_owned()
            }
            DsnError::PortHidden { at_sign_follows: true, .. } => {
                format!("the password probably contains an unencoded \"/\"; {PASSWORD_ENCODING_HINT}")
            }
            DsnError::PortHidden { at_sign_follows: false, .. } => {
                "a URI with a password looks like postgresql://user:password@host:5432/dbname; \
                 a port is a number from 1 to 65535"
                    .to_owned()
            }
            DsnError::PortCountMismatch { .. } => {
                "give one port for all hosts, or one port per host in the same order".to_owned()
            }
            DsnError::UnencodedAt { .. } => PASSWORD_ENCODING_HINT.to_owned(),
            DsnError::InvalidPercentEncoding { part: UriPart::Password, .. } => {
                PASSWORD_ENCODING_HINT.to_owned()
            }
            DsnError::InvalidPercentEncoding { .. } => {
                "\"%\" must be followed by two hex digits; write a literal % as %25".to_owned()
            }
            DsnError::NulByte { .. } => "remove the NUL byte (%00)".to_owned(),
            DsnError::InvalidUtf8 { .. } => {
                "percent-encode text as UTF-8 (é is %C3%A9)".to_owned()
            }
            DsnError::CommaInHost => {
                "separate hosts with a plain comma: postgresql://h1:5432,h2:5433/dbname".to_owned()
            }
            DsnError::UnterminatedIpv6
            | DsnError::EmptyIpv6
            | DsnError::InvalidIpv6 { .. }
            | DsnError::UnexpectedAfterIpv6 { .. } => {
                "write an IPv6 address in brackets: postgresql://[2001:db8::1]:5432/dbname".to_owned()
            }
            DsnError::QueryParamMissingEquals { param: None } => {
                format!("the password probably contains an unencoded \"/\" or \"?\"; {PASSWORD_ENCODING_HINT}")
            }
            DsnError::Obscured { format: Format::Uri, .. } => PASSWORD_ENCODING_HINT.to_owned(),
            DsnError::Obscured { format: Format::KeyValue, .. } => {
                "put the password in single quotes if it contains spaces, and escape ' and \\ in it \
                 with a backslash: password='it\\'s secret'"
                    .to_owned()
            }
            DsnError::QueryParamMissingEquals { param: Some(_) }
            | DsnError::QueryParamEmptyKey
            | DsnError::QueryParamInvalidKey { .. } => {
                "query parameters are key=value pairs separated by &, as in ?sslmode=require&connect_timeout=10"
                    .to_owned()
            }
            DsnError::QueryParamExtraEquals { key } if is_secret_key(key) => {
                PASSWORD_ENCODING_HINT.replace("& is %26", "& is %26, = is %3D")
            }
            DsnError::QueryParamExtraEquals { .. } => {
                "percent-encode \"=\" inside a value as %3D, as in options=-c%20search_path%3Dapp"
                    .to_owned()
            }
            DsnError::UnknownSslMode { .. } => {
                "sslmode is one of disable, allow, prefer, require, verify-ca, verify-full (lower case)"
                    .to_owned()
            }
            DsnError::InvalidConnectTimeout { .. } => {
                "connect_timeout is whole seconds, as in connect_timeout=10; 0 waits forever".to_owned()
            }
            DsnError::KvMissingEquals { .. } => {
                "write keyword=value pairs separated by spaces (host=localhost port=5432 dbname=app); \
                 put a value with spaces in single quotes and escape ' and \\ in it with a backslash \
                 (password='it\\'s secret'); a URI starts with postgresql://"
                    .to_owned()
            }
            DsnError::KvEmptyKeyword => {
                "write keyword=value pairs separated by spaces, as in host=localhost port=5432".to_owned()
            }
            DsnError::UnterminatedQuote { .. } => {
                "close the value with ' and write a quote inside it as \\' (a doubled '' is not an escape)"
                    .to_owned()
            }
            DsnError::NoUser => {
                "put the user in the connection string (postgresql://user@host/db) or set PGUSER".to_owned()
            }
            DsnError::Environment { variable, error } => match error.hint() {
                Some(hint) => format!("{hint}; or unset {variable}"),
                None => format!("fix or unset {variable}"),
            },
        };
        Some(hint)
    }
}
