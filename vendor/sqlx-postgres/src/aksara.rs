//! aksara patch (see vendor/README.md): what the server asked for during login, a bound on the
//! length a server message may declare before any of it is buffered, and a refusal to send a
//! cleartext password over TCP without TLS. Upstream sqlx reads whatever length a header
//! claims (a 2 GiB header is waited for, a 300 MB error is held in memory twice), sends the
//! password to any server that asks for it in cleartext, and reports every other method as
//! a protocol error string. The failures here are typed so a caller can tell them apart:
//! [`LoginRefusal::find`] recovers one from a `sqlx::Error`.

use std::fmt;
use std::io;

use crate::error::Error;

/// libpq's bound for messages during the startup phase (`MAX_ERRLEN` in fe-connect.c): no
/// authentication request, parameter status or startup error of a real server comes close.
pub const STARTUP_MESSAGE_LIMIT: usize = 30_000;

/// The authentication request the server sent, in its terms (message `R`, the int32 code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// AuthenticationOk without any request: trust, peer, ident, cert.
    None,
    /// Code 3: the password itself.
    Cleartext,
    /// Code 5: MD5 of password, user and salt (deprecated; PostgreSQL 18 warns, a later
    /// release removes it).
    Md5,
    /// Code 10 with the mechanisms offered (SCRAM-SHA-256, SCRAM-SHA-256-PLUS, others).
    Sasl { mechanisms: Vec<String> },
    /// Code 7: GSSAPI (Kerberos), which sqlx does not speak.
    Gss,
    /// Code 9: SSPI (Windows), which sqlx does not speak.
    Sspi,
    /// Any other code (2 KerberosV5 and 6 SCMCredential are long gone from PostgreSQL).
    Other(u32),
}

impl AuthMethod {
    pub(crate) fn from_request(code: u32, body: &[u8]) -> Self {
        match code {
            0 => AuthMethod::None,
            3 => AuthMethod::Cleartext,
            5 => AuthMethod::Md5,
            7 => AuthMethod::Gss,
            9 => AuthMethod::Sspi,
            10 => AuthMethod::Sasl {
                mechanisms: body
                    .split(|b| *b == 0)
                    .filter(|m| !m.is_empty())
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect(),
            },
            other => AuthMethod::Other(other),
        }
    }

    /// Whether sqlx can answer this request.
    pub fn is_supported(&self) -> bool {
        match self {
            AuthMethod::None | AuthMethod::Cleartext | AuthMethod::Md5 => true,
            AuthMethod::Sasl { mechanisms } => mechanisms
                .iter()
                .any(|m| m == "SCRAM-SHA-256" || m == "SCRAM-SHA-256-PLUS"),
            _ => false,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::None => f.write_str("no password asked: trust, peer or certificate"),
            AuthMethod::Cleartext => f.write_str("cleartext password"),
            AuthMethod::Md5 => f.write_str("md5"),
            AuthMethod::Sasl { mechanisms } if mechanisms.iter().any(|m| m.starts_with("SCRAM-SHA-256")) => {
                f.write_str("scram-sha-256")
            }
            AuthMethod::Sasl { mechanisms } => {
                write!(f, "SASL ({})", mechanisms.join(", "))
            }
            AuthMethod::Gss => f.write_str("gss"),
            AuthMethod::Sspi => f.write_str("sspi"),
            AuthMethod::Other(code) => write!(f, "unknown method (code {code})"),
        }
    }
}

/// Why a connection attempt stopped on the client's side during startup.
#[derive(Debug)]
pub enum LoginRefusal {
    /// The server asked for the password in cleartext, the connection is TCP without TLS,
    /// and the options did not allow it: nothing was sent.
    CleartextWithoutTls,
    /// The server asked for a method sqlx cannot answer.
    Unsupported(AuthMethod),
    /// The connection broke (closed, reset) in the middle of the exchange for `method`.
    BrokenDuringAuth { method: AuthMethod, source: io::Error },
    /// The TLS handshake failed for a reason other than a certificate check.
    TlsHandshake { source: io::Error },
    /// A header declared more bytes than the limit; nothing of the body was read.
    MessageTooLarge {
        format: u8,
        declared: usize,
        limit: usize,
    },
    /// The bytes the server sent are not PostgreSQL's protocol (an HTTP server, say); the
    /// first bytes seen, for the report.
    NotPostgres { leading: Vec<u8> },
}

impl LoginRefusal {
    pub(crate) fn into_error(self) -> Error {
        Error::Io(io::Error::new(io::ErrorKind::InvalidData, self))
    }

    /// The refusal inside a sqlx error, if that is what it is.
    pub fn find(error: &Error) -> Option<&LoginRefusal> {
        match error {
            Error::Io(io) => io.get_ref()?.downcast_ref::<LoginRefusal>(),
            _ => None,
        }
    }
}

impl fmt::Display for LoginRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginRefusal::CleartextWithoutTls => f.write_str(
                "the server asked for the password in cleartext on a connection without TLS; it was not sent",
            ),
            LoginRefusal::Unsupported(method) => {
                write!(f, "the server asked for {method} authentication, which is not supported")
            }
            LoginRefusal::BrokenDuringAuth { method, source } => write!(
                f,
                "the connection broke during {method} authentication: {source}"
            ),
            LoginRefusal::TlsHandshake { source } => write!(f, "the TLS handshake failed: {source}"),
            LoginRefusal::MessageTooLarge {
                format,
                declared,
                limit,
            } => write!(
                f,
                "the server sent a message (type {:?}) declaring {declared} bytes; at most {limit} are accepted",
                char::from(*format)
            ),
            LoginRefusal::NotPostgres { leading } => write!(
                f,
                "the server's answer is not the PostgreSQL protocol (it starts with {:?})",
                String::from_utf8_lossy(leading)
            ),
        }
    }
}

impl std::error::Error for LoginRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoginRefusal::BrokenDuringAuth { source, .. } | LoginRefusal::TlsHandshake { source } => {
                Some(source)
            }
            _ => None,
        }
    }
}

// The extended-protocol pipeline (src/connection/aksara_pipeline.rs).
pub use crate::connection::aksara_pipeline::{PipelineEnd, PipelineError, PipelineRows};
