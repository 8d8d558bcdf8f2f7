//! Opening one connection the way libpq would, on top of sqlx.
//!
//! sqlx's connect has no timeout, no multiple hosts, implements sslmode `allow` as `disable`,
//! does not fall back to plaintext under `prefer` when the server rejects the TLS attempt, and
//! negotiates TLS even on unix sockets (../shared/docs/postgres-facts.md, section 2). This
//! module closes those gaps: every attempt is bounded by a deadline, hosts are tried in order,
//! the sslmode fallbacks are done here, and failures are classified into a `FailureKind` that
//! `diagnose` turns into a code and a fix. Always a single connection, never a pool: a pool
//! retries and then hides the real error behind a timeout.

use std::fmt;
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::postgres::aksara::LoginRefusal;
use sqlx::postgres::{PgConnection, PgDatabaseError, PgSslMode};

/// The authentication a server asked for (from the vendored sqlx-postgres patch); a live
/// connection tells it with `conn.auth_method()`.
pub use sqlx::postgres::aksara::AuthMethod;

use crate::dsn::{ConnConfig, Endpoint, Host, SslMode};

/// What stopped one connection attempt.
#[derive(Debug, Clone)]
pub enum FailureKind {
    /// The host name does not resolve.
    Dns { host: String, message: String },
    /// Nothing listens on the TCP port.
    Refused,
    /// The unix socket file does not exist.
    SocketMissing,
    /// No answer within the bound.
    Timeout { after: Duration },
    /// The client requires TLS and the server does not offer it.
    TlsUnsupported,
    /// TLS was negotiated but the certificate did not verify.
    Certificate { message: String },
    /// The server answered with an error (SQLSTATE and its message).
    Server {
        code: String,
        message: String,
        detail: Option<String>,
    },
    /// The server asked for a method sqlx cannot answer: GSSAPI, SSPI, SASL without SCRAM.
    AuthUnsupported { method: AuthMethod },
    /// The server asked for the password in cleartext over TCP without TLS; it was not sent.
    CleartextRefused,
    /// The connection broke in the middle of the exchange for `method` (a close mid-SCRAM).
    AuthInterrupted { method: AuthMethod, message: String },
    /// The server agreed to TLS and then the handshake broke (not a certificate problem).
    TlsHandshake { message: String },
    /// What answered does not speak PostgreSQL's protocol (an HTTP server, say).
    NotPostgres { leading: String },
    /// A message header declared more bytes than aksara reads ([`MAX_SERVER_MESSAGE`]; during
    /// login libpq's 30,000); refused before any of it was buffered.
    MessageTooLarge {
        kind: char,
        declared: usize,
        limit: usize,
    },
    /// Any other I/O or protocol problem.
    Other { message: String },
}

/// The most bytes one server message may declare after login. aksara's queries return one
/// short row; PostgreSQL's own errors are a few kilobytes. A larger header is refused before
/// anything is buffered, so a hostile server cannot make aksara hold hundreds of megabytes.
pub const MAX_SERVER_MESSAGE: usize = 1024 * 1024;

impl FailureKind {
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            FailureKind::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Errors after which libpq does not try the next host: the server answered.
    fn is_final(&self) -> bool {
        matches!(
            self,
            FailureKind::Server { .. } | FailureKind::Certificate { .. }
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Dns { host, message } => {
                write!(
                    f,
                    "could not translate host name \"{host}\" to an address: {message}"
                )
            }
            FailureKind::Refused => f.write_str("connection refused"),
            FailureKind::SocketMissing => f.write_str("no socket file"),
            FailureKind::Timeout { after } => {
                write!(f, "no answer within {:.1} s", after.as_secs_f64())
            }
            FailureKind::TlsUnsupported => {
                f.write_str("the server does not support TLS, but TLS was required")
            }
            FailureKind::Certificate { message } => {
                write!(f, "certificate verification failed: {message}")
            }
            FailureKind::Server { code, message, .. } => write!(f, "{message} (SQLSTATE {code})"),
            FailureKind::AuthUnsupported { method } => write!(
                f,
                "the server asked for {} authentication, which aksara (through sqlx) cannot answer",
                shown(method)
            ),
            FailureKind::CleartextRefused => f.write_str(
                "the server asked for the password in cleartext on a connection without TLS; aksara did not send it",
            ),
            FailureKind::AuthInterrupted { method, message } => write!(
                f,
                "the server broke off {} authentication: {message}",
                shown(method)
            ),
            FailureKind::TlsHandshake { message } => {
                write!(f, "the TLS handshake with the server failed: {message}")
            }
            FailureKind::NotPostgres { leading } => write!(
                f,
                "something answered, but it is not PostgreSQL (its answer starts with \"{}\")",
                crate::sanitize::for_terminal(leading)
            ),
            FailureKind::MessageTooLarge {
                kind,
                declared,
                limit,
            } => write!(
                f,
                "the server sent a message (type '{kind}') claiming {declared} bytes; aksara reads at most {limit}, so it stopped before reading it"
            ),
            FailureKind::Other { message } => f.write_str(message),
        }
    }
}

/// A failed attempt at one endpoint, with the sslmode it used.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub endpoint: Endpoint,
    pub tls_mode: PgSslMode,
    pub failure: FailureKind,
    pub elapsed: Duration,
}

/// Every attempt made; the last one is the one to report (libpq reports them all).
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    pub attempts: Vec<Attempt>,
}

impl ConnectFailure {
    pub fn last(&self) -> &Attempt {
        self.attempts
            .last()
            .expect("a connect failure has at least one attempt")
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.last();
        write!(f, "{}: {}", last.endpoint, last.failure)
    }
}

pub struct Connected {
    pub conn: PgConnection,
    pub endpoint: Endpoint,
    pub tls_mode: PgSslMode,
    /// Failed attempts at earlier hosts, if any.
    pub earlier: Vec<Attempt>,
}

/// The bound for one attempt: the URL's connect_timeout wins over the caller's default, as in
/// libpq, and it applies per host.
pub fn attempt_timeout(cfg: &ConnConfig, default: Duration) -> Duration {
    cfg.connect_timeout.unwrap_or(default)
}

/// Connect to the first endpoint that answers, as libpq does.
pub async fn connect(
    cfg: &ConnConfig,
    default_timeout: Duration,
) -> Result<Connected, ConnectFailure> {
    let bound = attempt_timeout(cfg, default_timeout);
    let mut attempts = Vec::new();
    for endpoint in &cfg.endpoints {
        match connect_endpoint(cfg, endpoint, bound, &mut attempts).await {
            Some((conn, tls_mode)) => {
                return Ok(Connected {
                    conn,
                    endpoint: endpoint.clone(),
                    tls_mode,
                    earlier: attempts,
                });
            }
            None => {
                if attempts.last().is_some_and(|a| a.failure.is_final()) {
                    break;
                }
            }
        }
    }
    Err(ConnectFailure { attempts })
}

/// The sslmodes to try in order for one endpoint. Unix sockets never use TLS (libpq ignores
/// sslmode there; sqlx would fail `require` on a socket).
pub fn tls_modes(cfg: &ConnConfig, endpoint: &Endpoint) -> Vec<PgSslMode> {
    if matches!(endpoint.host, Host::Socket(_)) {
        return vec![PgSslMode::Disable];
    }
    match cfg.sslmode {
        SslMode::Disable => vec![PgSslMode::Disable],
        // sqlx implements `allow` as `disable`; libpq retries with TLS when plaintext is refused.
        SslMode::Allow => vec![PgSslMode::Disable, PgSslMode::Require],
        // sqlx's prefer falls back when the server says it has no TLS, but not when the server
        // rejects the TLS connection (a `hostnossl`-only pg_hba); libpq retries in plaintext.
        SslMode::Prefer => vec![PgSslMode::Prefer, PgSslMode::Disable],
        // libpq's `require` verifies the chain when a root certificate is given.
        SslMode::Require if cfg.sslrootcert.is_some() => vec![PgSslMode::VerifyCa],
        SslMode::Require => vec![PgSslMode::Require],
        SslMode::VerifyCa => vec![PgSslMode::VerifyCa],
        SslMode::VerifyFull => vec![PgSslMode::VerifyFull],
    }
}

/// Whether a failure under the first sslmode is one the next mode could get past: the server
/// rejected the connection in pg_hba for its (lack of) encryption.
fn worth_fallback(failure: &FailureKind) -> bool {
    matches!(failure, FailureKind::Server { code, message, .. }
        if code == "28000" && (message.contains("no pg_hba.conf entry") || message.contains("pg_hba.conf rejects")))
}

async fn connect_endpoint(
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    bound: Duration,
    attempts: &mut Vec<Attempt>,
) -> Option<(PgConnection, PgSslMode)> {
    let modes = tls_modes(cfg, endpoint);
    for (i, mode) in modes.iter().enumerate() {
        let started = Instant::now();
        match attempt(cfg, endpoint, *mode, bound).await {
            Ok(conn) => return Some((conn, *mode)),
            Err(failure) => {
                let retry = i + 1 < modes.len() && worth_fallback(&failure);
                attempts.push(Attempt {
                    endpoint: endpoint.clone(),
                    tls_mode: *mode,
                    failure,
                    elapsed: started.elapsed(),
                });
                if !retry {
                    return None;
                }
            }
        }
    }
    None
}

/// One bounded attempt with one sslmode: name resolution, connect, TLS, login.
pub async fn attempt(
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    mode: PgSslMode,
    bound: Duration,
) -> Result<PgConnection, FailureKind> {
    let deadline = tokio::time::Instant::now() + bound;
    if let Host::Tcp(name) = &endpoint.host {
        // Resolve first: sqlx reports a DNS failure as an uncategorised I/O error.
        let lookup = tokio::time::timeout_at(
            deadline,
            tokio::net::lookup_host((name.as_str(), endpoint.port)),
        )
        .await;
        match lookup {
            Err(_) => return Err(FailureKind::Timeout { after: bound }),
            Ok(Err(e)) => {
                return Err(FailureKind::Dns {
                    host: name.clone(),
                    message: dns_message(&e),
                });
            }
            Ok(Ok(_)) => {}
        }
    }
    let options = cfg
        .sqlx_options(endpoint, mode)
        .max_message_len(MAX_SERVER_MESSAGE)
        .allow_cleartext_without_tls(cfg.allow_cleartext);
    match tokio::time::timeout_at(deadline, PgConnection::connect_with(&options)).await {
        Err(_) => Err(FailureKind::Timeout { after: bound }),
        Ok(Err(e)) => Err(classify(e)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

fn dns_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string()
}

/// Map a sqlx error to what happened, without losing the server's SQLSTATE.
pub fn classify(error: sqlx::Error) -> FailureKind {
    if let Some(refusal) = LoginRefusal::find(&error) {
        return classify_refusal(refusal);
    }
    match error {
        sqlx::Error::Database(db) => {
            let detail = db
                .try_downcast_ref::<PgDatabaseError>()
                .and_then(|pg| pg.detail().map(str::to_string));
            FailureKind::Server {
                code: db.code().map(|c| c.to_string()).unwrap_or_default(),
                message: db.message().to_string(),
                detail,
            }
        }
        sqlx::Error::Io(io) => {
            let text = io.to_string();
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => FailureKind::Refused,
                std::io::ErrorKind::NotFound => FailureKind::SocketMissing,
                std::io::ErrorKind::TimedOut => FailureKind::Timeout {
                    after: Duration::ZERO,
                },
                // rustls reports an untrusted or mismatched certificate as InvalidData.
                std::io::ErrorKind::InvalidData if text.contains("certificate") => {
                    FailureKind::Certificate { message: text }
                }
                _ => FailureKind::Other { message: text },
            }
        }
        sqlx::Error::Tls(e) => {
            let text = e.to_string();
            if text.contains("does not support TLS") {
                FailureKind::TlsUnsupported
            } else {
                FailureKind::Certificate { message: text }
            }
        }
        sqlx::Error::Protocol(text) => FailureKind::Other {
            message: without_source_location(&text).to_string(),
        },
        other => FailureKind::Other {
            message: without_source_location(&other.to_string()).to_string(),
        },
    }
}

/// The typed failures of the vendored sqlx-postgres patch.
fn classify_refusal(refusal: &LoginRefusal) -> FailureKind {
    match refusal {
        LoginRefusal::CleartextWithoutTls => FailureKind::CleartextRefused,
        LoginRefusal::Unsupported(method) => FailureKind::AuthUnsupported {
            method: method.clone(),
        },
        LoginRefusal::BrokenDuringAuth { method, source } => FailureKind::AuthInterrupted {
            method: method.clone(),
            message: io_message(source),
        },
        // rustls reports a certificate it does not trust as an I/O error too.
        LoginRefusal::TlsHandshake { source } if source.to_string().contains("certificate") => {
            FailureKind::Certificate {
                message: source.to_string(),
            }
        }
        LoginRefusal::TlsHandshake { source } => FailureKind::TlsHandshake {
            message: io_message(source),
        },
        LoginRefusal::MessageTooLarge {
            format,
            declared,
            limit,
        } => FailureKind::MessageTooLarge {
            kind: char::from(*format),
            declared: *declared,
            limit: *limit,
        },
        LoginRefusal::NotPostgres { leading } => FailureKind::NotPostgres {
            leading: String::from_utf8_lossy(leading).into_owned(),
        },
    }
}

/// A method as a terminal may show it: SASL mechanism names come from the server.
fn shown(method: &AuthMethod) -> String {
    crate::sanitize::for_terminal(&method.to_string()).into_owned()
}

/// The report for the failures the hostile-server work added, as (code, message, hint), for
/// `diagnose` to wrap: codes `auth-method-unsupported`, `auth-cleartext-refused`,
/// `auth-interrupted`, `ssl-handshake-failed`, `not-postgres`, `server-message-too-large`.
/// None for the older kinds, which `diagnose` names itself.
pub fn login_failure_report(
    ep: &Endpoint,
    failure: &FailureKind,
) -> Option<(&'static str, String, String)> {
    Some(match failure {
        FailureKind::AuthUnsupported { method } => (
            "auth-method-unsupported",
            format!(
                "the server at {ep} asks for {} authentication, which aksara cannot answer (it speaks scram-sha-256, md5, password, and trust/peer)",
                shown(method)
            ),
            "the first pg_hba.conf line matching this user, database and address picks the method: add a `scram-sha-256` line above it for this application's user, or check this connection with psql, which speaks GSSAPI".into(),
        ),
        FailureKind::CleartextRefused => (
            "auth-cleartext-refused",
            format!(
                "the server at {ep} asks for the password in cleartext on a connection without TLS, where anyone on the path could read it; aksara did not send it"
            ),
            "change the pg_hba.conf method from `password` to `scram-sha-256` (and reload), or require TLS (?sslmode=require); only on a network you trust, pass --allow-cleartext".into(),
        ),
        FailureKind::AuthInterrupted { method, message } => (
            "auth-interrupted",
            format!(
                "the server at {ep} broke off {} authentication before answering it ({message})",
                shown(method)
            ),
            "PostgreSQL answers a failed login with an error, not a closed connection: look at the server's log, and at whatever listens in front of it (a pooler or proxy that does not support this method)".into(),
        ),
        FailureKind::TlsHandshake { message } => (
            "ssl-handshake-failed",
            format!("{ep} agreed to TLS, then the handshake failed: {message}"),
            "check the server's ssl_cert_file and ssl_key_file and its log; something other than PostgreSQL (a proxy) may be answering on that port".into(),
        ),
        FailureKind::NotPostgres { leading } => (
            "not-postgres",
            format!(
                "something answers at {ep}, but it is not PostgreSQL: its answer starts with \"{}\"",
                crate::sanitize::for_terminal(leading)
            ),
            "check the port in the URL (PostgreSQL's default is 5432): another program, such as a web server, listens on this one".into(),
        ),
        FailureKind::MessageTooLarge {
            kind,
            declared,
            limit,
        } => (
            "server-message-too-large",
            format!(
                "the server at {ep} sent a message (type '{}') claiming {declared} bytes; aksara reads at most {limit} and stopped before reading it",
                crate::sanitize::for_terminal(&kind.to_string())
            ),
            format!("a PostgreSQL server does not send messages that large: check that {ep} is the server you mean"),
        ),
        _ => return None,
    })
}

/// An I/O error in words, without sqlx's wording for a plain end of stream.
fn io_message(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        std::io::ErrorKind::ConnectionReset => "the server reset the connection".into(),
        _ => without_source_location(&error.to_string()).to_string(),
    }
}

/// sqlx's protocol errors end with ` (sqlx_postgres::module::path:123)`: its source
/// location, which means nothing to a user.
fn without_source_location(text: &str) -> &str {
    match text.rfind(" (sqlx_") {
        Some(at) if text.ends_with(')') && text[at..].contains(':') => &text[..at],
        _ => text,
    }
}

/// What the login's authentication method says about the connection, when it deserves a
/// warning: MD5 (deprecated, PostgreSQL 18 warns and a later release removes it), or a
/// cleartext password that went over TCP without TLS because `--allow-cleartext` allowed it.
/// Returns the message and the hint.
pub fn auth_warning(method: &AuthMethod, over_tls: bool, socket: bool) -> Option<(String, String)> {
    match method {
        AuthMethod::Md5 => Some((
            "the server authenticated with md5, which PostgreSQL deprecates (18 warns; a later release removes it)".into(),
            "switch to SCRAM: set password_encryption = 'scram-sha-256', set the password again (`\\password` in psql), and change `md5` to `scram-sha-256` in pg_hba.conf".into(),
        )),
        AuthMethod::Cleartext if !over_tls && !socket => Some((
            "the server asked for the password in cleartext and it crossed the network without TLS (--allow-cleartext)".into(),
            "use scram-sha-256 in pg_hba.conf, or require TLS (?sslmode=require)".into(),
        )),
        _ => None,
    }
}

/// Close politely; a failure to say goodbye is not worth reporting.
pub async fn close(conn: PgConnection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
}

/// Why [`connect_when_ready`] gave up.
#[derive(Debug, Clone)]
pub enum WaitFailure {
    /// The server answered with an error waiting cannot fix (a wrong password, say).
    Rejected(ConnectFailure),
    /// Still no server ready when the time was up; the last attempt's failure.
    NotReady {
        failure: ConnectFailure,
        waited: Duration,
    },
}

/// Connect, retrying while the server is not there yet or still starting (refused, no socket,
/// a proxy that accepts and hangs up, 57P03), for at most `wait`. A just-started server
/// (`docker run`, `pg_ctl start`) goes through all of these before it lets anyone in.
pub async fn connect_when_ready(
    cfg: &ConnConfig,
    wait: Duration,
    per_attempt: Duration,
) -> Result<Connected, WaitFailure> {
    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bound = per_attempt.min(remaining).max(Duration::from_millis(200));
        match connect(cfg, bound).await {
            Ok(c) => return Ok(c),
            Err(failure) => {
                let waitable = match &failure.last().failure {
                    FailureKind::Server { code, .. } => code == "57P03",
                    FailureKind::Dns { .. } | FailureKind::Certificate { .. } => false,
                    _ => true,
                };
                if !waitable {
                    return Err(WaitFailure::Rejected(failure));
                }
                if Instant::now() >= deadline {
                    return Err(WaitFailure::NotReady {
                        failure,
                        waited: wait,
                    });
                }
                tokio::time::sleep(Duration::from_millis(250).min(remaining)).await;
            }
        }
    }
}
