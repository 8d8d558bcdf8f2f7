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

use crate::code::Code;
use crate::diagnose::server_messages::Cause;
use crate::dsn::{ConnConfig, Endpoint, Host, SslMode};

/// What the server said when it refused: its SQLSTATE and every field a person needs, kept as
/// it came (the printer sanitises for the terminal; JSON escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The server function that raised it (`InitializeSessionUserId`): not translated.
    pub routine: Option<String>,
}

impl ServerError {
    fn from_sqlx(db: &dyn sqlx::error::DatabaseError) -> ServerError {
        let pg = db.try_downcast_ref::<PgDatabaseError>();
        ServerError {
            sqlstate: db.code().map(|c| c.to_string()).unwrap_or_default(),
            message: db.message().to_string(),
            detail: pg.and_then(|e| e.detail().map(str::to_string)),
            hint: pg.and_then(|e| e.hint().map(str::to_string)),
            routine: pg.and_then(|e| e.routine().map(str::to_string)),
        }
    }

    /// pg_hba.conf turned the connection away for its encryption (or lack of it): the only
    /// refusal the next sslmode of libpq's fallback could get past.
    pub fn is_hba_rejection(&self) -> bool {
        matches!(
            crate::diagnose::server_messages::classify(&self.sqlstate, &self.message),
            Some(Cause::HbaNoEntry { .. } | Cause::HbaRejects { .. })
        )
    }

    /// pg_hba.conf has no line for this client without TLS.
    pub fn is_plaintext_hba_rejection(&self) -> bool {
        matches!(
            crate::diagnose::server_messages::classify(&self.sqlstate, &self.message),
            Some(Cause::HbaNoEntry { encryption, .. }) if encryption == "no encryption"
        )
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.sqlstate)
    }
}

impl std::error::Error for ServerError {}

/// Why a server certificate did not verify: OpenSSL's verify result by its number, or
/// libpq's host name and root file rules (`tls_verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertReason {
    NameMismatch,
    /// No chain to a root of `sslrootcert`: signed by another CA, or self-signed and not in it.
    UnknownIssuer,
    Expired,
    NotYetValid,
    /// A key shorter than this machine's OpenSSL security level allows (RSA-1024 at level 2).
    WeakKey,
    /// A signature digest the security level forbids (SHA-1, MD5).
    WeakDigest,
    /// verify-ca/verify-full without `sslrootcert` and no `~/.postgresql/root.crt`.
    NoRootCert,
    /// Anything else OpenSSL said (its own words are in the message).
    Other,
    /// The certificate could not be checked at all: aksara's OpenSSL verifier library is not
    /// installed beside it, is from another version, or failed. Not a verdict on the certificate.
    VerifierMissing,
}

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
    /// TLS was negotiated but the certificate did not verify; `cert` is the certificate the
    /// refusal is about (its dates and names), when there is one.
    Certificate {
        reason: CertReason,
        message: String,
        cert: Option<Box<crate::tls_verify::CertFacts>>,
    },
    /// The server answered with an error.
    Server(ServerError),
    /// Something answered that does not speak PostgreSQL's protocol.
    NotPostgres,
    /// The server asked for a method sqlx cannot answer: GSSAPI, SSPI, SASL without SCRAM.
    AuthUnsupported { method: AuthMethod },
    /// The server asked for the password in cleartext over TCP without TLS; it was not sent.
    CleartextRefused,
    /// The connection broke in the middle of the exchange for `method` (a close mid-SCRAM).
    AuthInterrupted { method: AuthMethod, message: String },
    /// The server agreed to TLS and then the handshake broke (not a certificate problem).
    TlsHandshake { message: String },
    /// A message header declared more bytes than aksara reads ([`MAX_SERVER_MESSAGE`]; during
    /// login libpq's 30,000); refused before any of it was buffered.
    MessageTooLarge {
        kind: char,
        declared: usize,
        limit: usize,
    },
    /// Anything aksara does not recognise: reported as unknown, with the library's words.
    Unexpected { message: String },
}

/// The most bytes one server message may declare after login. aksara's queries return one
/// short row; PostgreSQL's own errors are a few kilobytes. A larger header is refused before
/// anything is buffered, so a hostile server cannot make aksara hold hundreds of megabytes.
pub const MAX_SERVER_MESSAGE: usize = 1024 * 1024;

impl FailureKind {
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            FailureKind::Server(e) => Some(e),
            _ => None,
        }
    }

    pub fn sqlstate(&self) -> Option<&str> {
        self.server().map(|e| e.sqlstate.as_str())
    }

    /// Errors after which libpq does not try the next host: the server answered.
    fn is_final(&self) -> bool {
        matches!(
            self,
            FailureKind::Server(_) | FailureKind::Certificate { .. }
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
            FailureKind::Certificate { message, .. } => {
                write!(f, "certificate verification failed: {message}")
            }
            FailureKind::Server(e) => write!(f, "{} (SQLSTATE {})", e.message, e.sqlstate),
            FailureKind::NotPostgres => f.write_str("something answered, but it is not PostgreSQL"),
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
            FailureKind::MessageTooLarge {
                kind,
                declared,
                limit,
            } => write!(
                f,
                "the server sent a message (type '{}') claiming {declared} bytes; aksara reads at most {limit}, so it stopped before reading it",
                crate::sanitize::for_terminal(&kind.to_string())
            ),
            FailureKind::Unexpected { message } => f.write_str(message),
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
    /// Hosts that let us in but were not what `target_session_attrs` asked for (each also
    /// has an attempt, `FailureKind::Unexpected` with libpq's words).
    pub skipped: Vec<SkippedHost>,
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
    /// Earlier hosts that were not what `target_session_attrs` asked for, and why.
    pub skipped: Vec<SkippedHost>,
    /// The `target_session_attrs` this host was chosen by (`Any` when none was given).
    pub chosen_by: TargetSessionAttrs,
}

/// libpq's `target_session_attrs`: which kind of server a multi-host URL should end on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    /// A standby if any host is one, else any host (two passes, as libpq does).
    PreferStandby,
}

impl TargetSessionAttrs {
    pub fn parse(value: &str) -> Option<TargetSessionAttrs> {
        Some(match value {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => return None,
        })
    }

    /// The URL's `target_session_attrs` (kept among the parameters dsn does not model). A value
    /// libpq would reject is treated as `any` here; the URL lint names it.
    pub fn of(cfg: &ConnConfig) -> TargetSessionAttrs {
        cfg.unknown
            .iter()
            .rev()
            .find(|(key, _)| key == "target_session_attrs")
            .and_then(|(_, value)| TargetSessionAttrs::parse(value))
            .unwrap_or(TargetSessionAttrs::Any)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a server of this kind is acceptable; `Err` says why not, in libpq's words.
    pub fn accepts(self, kind: SessionKind) -> Result<(), SkipReason> {
        let read_only = kind.in_hot_standby || kind.default_read_only;
        match self {
            TargetSessionAttrs::Any => Ok(()),
            TargetSessionAttrs::ReadWrite if read_only => Err(SkipReason::ReadOnly),
            TargetSessionAttrs::ReadOnly if !read_only => Err(SkipReason::NotReadOnly),
            TargetSessionAttrs::Primary if kind.in_hot_standby => Err(SkipReason::HotStandby),
            TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby
                if !kind.in_hot_standby =>
            {
                Err(SkipReason::NotHotStandby)
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `target_session_attrs` looks at on a logged-in server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKind {
    pub in_hot_standby: bool,
    pub default_read_only: bool,
}

/// Why a host that let us in was passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    ReadOnly,
    NotReadOnly,
    HotStandby,
    NotHotStandby,
    /// The server could not be asked what it is.
    CheckFailed(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::ReadOnly => f.write_str("session is read-only"),
            SkipReason::NotReadOnly => f.write_str("session is not read-only"),
            SkipReason::HotStandby => f.write_str("server is in hot standby mode"),
            SkipReason::NotHotStandby => f.write_str("server is not in hot standby mode"),
            SkipReason::CheckFailed(e) => write!(f, "could not check the session: {e}"),
        }
    }
}

/// A host passed over for `target_session_attrs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedHost {
    pub endpoint: Endpoint,
    pub wanted: TargetSessionAttrs,
    pub reason: SkipReason,
}

/// The bound for one attempt: the URL's connect_timeout wins over the caller's default, as in
/// libpq, and it applies per host.
pub fn attempt_timeout(cfg: &ConnConfig, default: Duration) -> Duration {
    cfg.connect_timeout.unwrap_or(default)
}

/// Connect to the first endpoint that answers and is what `target_session_attrs` asks for, as
/// libpq does (`prefer-standby`: a second pass over all hosts accepting any, when no standby
/// was found). With `any` nothing is checked: no query on the healthy path.
pub async fn connect(
    cfg: &ConnConfig,
    default_timeout: Duration,
) -> Result<Connected, ConnectFailure> {
    connect_hosts(cfg, default_timeout, Lookup::First).await
}

/// [`connect`] for a caller that has just resolved every host name itself (the doctor's Host
/// step): the names are not looked up a second time before sqlx connects.
pub async fn connect_resolved(
    cfg: &ConnConfig,
    default_timeout: Duration,
) -> Result<Connected, ConnectFailure> {
    connect_hosts(cfg, default_timeout, Lookup::Done).await
}

/// Whether [`attempt`] resolves the host name before connecting (sqlx reports a DNS failure as
/// an uncategorised I/O error, so the lookup is ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    First,
    Done,
}

async fn connect_hosts(
    cfg: &ConnConfig,
    default_timeout: Duration,
    lookup: Lookup,
) -> Result<Connected, ConnectFailure> {
    let bound = attempt_timeout(cfg, default_timeout);
    let target = TargetSessionAttrs::of(cfg);
    let mut attempts = Vec::new();
    let mut skipped = Vec::new();
    let passes: &[TargetSessionAttrs] = match target {
        TargetSessionAttrs::PreferStandby => {
            &[TargetSessionAttrs::PreferStandby, TargetSessionAttrs::Any]
        }
        _ => std::slice::from_ref(&target),
    };
    for wanted in passes {
        for endpoint in &cfg.endpoints {
            let Some((mut conn, tls_mode)) =
                connect_endpoint(cfg, endpoint, bound, lookup, &mut attempts).await
            else {
                if attempts.last().is_some_and(|a| a.failure.is_final()) {
                    return Err(ConnectFailure { attempts, skipped });
                }
                continue;
            };
            let started = Instant::now();
            let verdict = match *wanted {
                TargetSessionAttrs::Any => Ok(()),
                _ => match session_kind(&mut conn, bound).await {
                    Ok(kind) => wanted.accepts(kind),
                    Err(e) => Err(SkipReason::CheckFailed(e)),
                },
            };
            match verdict {
                Ok(()) => {
                    return Ok(Connected {
                        conn,
                        endpoint: endpoint.clone(),
                        tls_mode,
                        earlier: attempts,
                        skipped,
                        chosen_by: target,
                    });
                }
                Err(reason) => {
                    close(conn).await;
                    attempts.push(Attempt {
                        endpoint: endpoint.clone(),
                        tls_mode,
                        // No variant of its own yet: `skipped` carries the typed reason.
                        failure: FailureKind::Unexpected {
                            message: reason.to_string(),
                        },
                        elapsed: started.elapsed(),
                    });
                    skipped.push(SkippedHost {
                        endpoint: endpoint.clone(),
                        wanted: *wanted,
                        reason,
                    });
                }
            }
        }
    }
    Err(ConnectFailure { attempts, skipped })
}

/// What the login reported (`in_hot_standby` and `default_transaction_read_only` are sent at
/// login by PostgreSQL 14+); older servers, and poolers that do not pass them on, are asked.
pub async fn session_kind(conn: &mut PgConnection, bound: Duration) -> Result<SessionKind, String> {
    let reported = |name: &str| conn.parameter_status(name).map(|v| v == "on");
    if let (Some(in_hot_standby), Some(default_read_only)) = (
        reported("in_hot_standby"),
        reported("default_transaction_read_only"),
    ) {
        return Ok(SessionKind {
            in_hot_standby,
            default_read_only,
        });
    }
    use sqlx::Row as _;
    let sql = "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('default_transaction_read_only')";
    match tokio::time::timeout(bound, sqlx::raw_sql(sql).fetch_one(&mut *conn)).await {
        Ok(Ok(row)) => Ok(SessionKind {
            in_hot_standby: row.try_get(0).map_err(|e| e.to_string())?,
            default_read_only: row.try_get::<String, _>(1).map_err(|e| e.to_string())? == "on",
        }),
        Ok(Err(e)) => Err(classify(e).to_string()),
        Err(_) => Err(format!("no answer within {} ms", bound.as_millis())),
    }
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
        // libpq's `require` verifies the chain when the root certificate file (sslrootcert, or
        // the default `~/.postgresql/root.crt`) exists; a missing one is not an error there.
        SslMode::Require if root_file_exists(cfg) => vec![PgSslMode::VerifyCa],
        SslMode::Require => vec![PgSslMode::Require],
        SslMode::VerifyCa => vec![PgSslMode::VerifyCa],
        SslMode::VerifyFull => vec![PgSslMode::VerifyFull],
    }
}

fn root_file_exists(cfg: &ConnConfig) -> bool {
    match &cfg.sslrootcert {
        Some(file) => std::path::Path::new(file).exists(),
        None => crate::tls_verify::default_root_cert().is_some_and(|path| path.exists()),
    }
}

/// Whether a failure under the first sslmode is one the next mode could get past: the server
/// rejected the connection in pg_hba for its (lack of) encryption.
fn worth_fallback(failure: &FailureKind) -> bool {
    failure.server().is_some_and(ServerError::is_hba_rejection)
}

async fn connect_endpoint(
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    bound: Duration,
    lookup: Lookup,
    attempts: &mut Vec<Attempt>,
) -> Option<(PgConnection, PgSslMode)> {
    let modes = tls_modes(cfg, endpoint);
    for (i, mode) in modes.iter().enumerate() {
        let started = Instant::now();
        // One lookup per endpoint at most: a fallback attempt reuses the first one's answer.
        let lookup = if i == 0 { lookup } else { Lookup::Done };
        match attempt_with(cfg, endpoint, *mode, bound, lookup).await {
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
    attempt_with(cfg, endpoint, mode, bound, Lookup::First).await
}

async fn attempt_with(
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    mode: PgSslMode,
    bound: Duration,
    lookup: Lookup,
) -> Result<PgConnection, FailureKind> {
    // A peer-logged-in admin's connections carry the same OS user's credentials.
    if let (Some(user), Host::Socket(_)) = (&cfg.os_user, &endpoint.host) {
        let mut own = cfg.clone();
        own.os_user = None;
        let attempt = Box::pin(attempt_with(&own, endpoint, mode, bound, lookup));
        return match crate::peer::as_os_user(user, attempt).await {
            Ok(result) => result,
            Err(refusal) => Err(FailureKind::Unexpected {
                message: refusal.to_string(),
            }),
        };
    }
    // The certificate is verified by the system's OpenSSL, as libpq and asyncpg verify it.
    crate::tls_verify::install();
    let deadline = tokio::time::Instant::now() + bound;
    if let (Host::Tcp(name), Lookup::First) = (&endpoint.host, lookup) {
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
    // sqlx sends `extra_float_digits=2` at startup by default, which PgBouncer refuses
    // (`unsupported startup parameter`, 08P01) unless listed in `ignore_startup_parameters`.
    // It only changes how float values are printed, and aksara reads no float column.
    let options = cfg
        .sqlx_options(endpoint, mode)
        .extra_float_digits(None)
        .max_message_len(MAX_SERVER_MESSAGE)
        .allow_cleartext_without_tls(cfg.allow_cleartext);
    let started = Instant::now();
    match tokio::time::timeout_at(deadline, PgConnection::connect_with(&options)).await {
        Err(_) => Err(FailureKind::Timeout { after: bound }),
        // The operating system's own TCP timeout, before ours.
        Ok(Err(sqlx::Error::Io(io))) if io.kind() == std::io::ErrorKind::TimedOut => {
            Err(FailureKind::Timeout {
                after: started.elapsed(),
            })
        }
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

/// sqlx's own words when the server answers an SSLRequest with "no" (sqlx-postgres 0.9
/// `connection/tls.rs`): a boxed string, the one failure sqlx gives no type for.
const SQLX_NO_TLS: &str = "server does not support TLS";

/// Map a sqlx error to what happened, without losing the server's fields. Only typed errors
/// are read: sqlx's database error, the I/O error kind, and rustls's certificate error.
pub fn classify(error: sqlx::Error) -> FailureKind {
    if let Some(refusal) = LoginRefusal::find(&error) {
        return classify_refusal(refusal);
    }
    match error {
        sqlx::Error::Database(db) => FailureKind::Server(ServerError::from_sqlx(db.as_ref())),
        sqlx::Error::Io(io) => {
            if let Some(failure) = io.get_ref().and_then(|e| certificate_failure(e)) {
                return failure;
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => FailureKind::Refused,
                std::io::ErrorKind::NotFound => FailureKind::SocketMissing,
                // The OS gave up (a TCP timeout): how long it waited is not known here.
                std::io::ErrorKind::TimedOut => FailureKind::Unexpected {
                    message: format!("the operating system gave up on the connection: {io}"),
                },
                _ => FailureKind::Unexpected {
                    message: io_message(&io),
                },
            }
        }
        sqlx::Error::Tls(e) => {
            if let Some(failure) = certificate_failure(e.as_ref()) {
                failure
            } else if e.to_string() == SQLX_NO_TLS {
                FailureKind::TlsUnsupported
            } else {
                FailureKind::Unexpected {
                    message: format!("TLS failed: {e}"),
                }
            }
        }
        sqlx::Error::Protocol(message) => FailureKind::Unexpected {
            message: format!("protocol error: {}", without_source_location(&message)),
        },
        other => FailureKind::Unexpected {
            message: without_source_location(&other.to_string()).to_string(),
        },
    }
}

/// The typed failures of the vendored sqlx-postgres patch (`sqlx::postgres::aksara`).
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
        // A certificate the verifier rejected, wherever rustls put it.
        LoginRefusal::TlsHandshake { source } => source
            .get_ref()
            .and_then(|e| certificate_failure(e))
            .unwrap_or_else(|| FailureKind::TlsHandshake {
                message: io_message(source),
            }),
        LoginRefusal::MessageTooLarge {
            format,
            declared,
            limit,
        } => FailureKind::MessageTooLarge {
            kind: char::from(*format),
            declared: *declared,
            limit: *limit,
        },
        LoginRefusal::NotPostgres { .. } => FailureKind::NotPostgres,
    }
}

/// A method as a terminal may show it: SASL mechanism names come from the server.
fn shown(method: &AuthMethod) -> String {
    crate::sanitize::for_terminal(&method.to_string()).into_owned()
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
        // Display only: trims sqlx's suffix, decides nothing about the failure.
        Some(at) if text.ends_with(')') && text[at..].contains(':') => &text[..at], // display only
        _ => text,
    }
}

/// Who ran the login a warning is about, as far as the session's facts tell: the method is
/// the server's pg_hba.conf only when the server answered the client itself; a pooler
/// (PgBouncer's `auth_type`, pgpool-II's pool_hba.conf) authenticates its clients by its own
/// settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginBy {
    Server,
    /// Something else answered (`pooler::answers_directly` said no).
    Intermediary,
    /// The facts could not be read.
    Unknown,
}

/// Where a login's method is set, for a hint: `server` is the server's own fix.
fn method_fix(by: LoginBy, server: &str, pooler: &str) -> String {
    match by {
        LoginBy::Server => server.to_string(),
        LoginBy::Intermediary => format!(
            "the login was the pooler's or proxy's own, not the server's pg_hba.conf: {pooler}"
        ),
        LoginBy::Unknown => {
            format!("{server}; if a pooler answered, the login is its own: {pooler}")
        }
    }
}

const POOLER_SCRAM: &str = "for PgBouncer `auth_type = scram-sha-256` in pgbouncer.ini (its auth_file holding SCRAM secrets, as `SELECT rolpassword FROM pg_authid` gives them, or plaintext passwords; or auth_query), then a reload; for pgpool-II `scram-sha-256` in pool_hba.conf";

/// What the login's authentication method says about the connection, when it deserves a
/// warning: MD5 (deprecated, PostgreSQL 18 warns and a later release removes it), or a
/// cleartext password that went over TCP without TLS because `--allow-cleartext` allowed it.
/// Returns the message and the hint, which names the settings of what ran the login (`by`).
pub fn auth_warning(
    method: &AuthMethod,
    over_tls: bool,
    socket: bool,
    by: LoginBy,
) -> Option<(String, String)> {
    let who = match by {
        LoginBy::Server => "the server",
        LoginBy::Intermediary => "the pooler or proxy that answered",
        LoginBy::Unknown => "what answered",
    };
    match method {
        AuthMethod::Md5 => Some((
            format!(
                "{who} authenticated with md5, which PostgreSQL deprecates (18 warns; a later release removes it)"
            ),
            format!(
                "switch to SCRAM: {}",
                method_fix(
                    by,
                    "set password_encryption = 'scram-sha-256', set the password again (`\\password` in psql), and change `md5` to `scram-sha-256` in pg_hba.conf",
                    POOLER_SCRAM,
                )
            ),
        )),
        AuthMethod::Cleartext if !over_tls && !socket => Some((
            format!(
                "{who} asked for the password in cleartext and it crossed the network without TLS (--allow-cleartext)"
            ),
            format!(
                "{}, or require TLS (?sslmode=require)",
                method_fix(by, "use scram-sha-256 in pg_hba.conf", POOLER_SCRAM,)
            ),
        )),
        _ => None,
    }
}

/// What to do when the server asks for a method aksara cannot answer: psql helps only where
/// it speaks that method (GSSAPI, when libpq is built with it), never for SSPI (Windows
/// servers' method) or a SASL mechanism other than SCRAM.
fn unsupported_method_hint(method: &AuthMethod) -> String {
    let line = "the first pg_hba.conf line matching this user, database and address picks the method: add a `scram-sha-256` line above it for this application's user";
    match method {
        AuthMethod::Gss => {
            format!("{line}, or check this connection with psql, which speaks GSSAPI")
        }
        AuthMethod::Sspi => format!(
            "{line}; SSPI is for Windows clients in the server's domain, which aksara is not"
        ),
        _ => format!(
            "{line}; the mechanism the server offered is not one PostgreSQL itself offers (SCRAM-SHA-256): check that the URL points at the server you mean"
        ),
    }
}

/// The report for the failures the hostile-server work added, as (code, message, hint), for
/// `diagnose` to wrap. None for the other kinds, which `diagnose` names itself.
pub fn login_failure_report(
    ep: &Endpoint,
    failure: &FailureKind,
) -> Option<(Code, String, String)> {
    Some(match failure {
        FailureKind::AuthUnsupported { method } => (
            Code::AuthMethodUnsupported,
            format!(
                "the server at {ep} asks for {} authentication, which aksara cannot answer (it speaks scram-sha-256, md5, password, and trust/peer)",
                shown(method)
            ),
            unsupported_method_hint(method),
        ),
        FailureKind::CleartextRefused => (
            Code::AuthCleartextRefused,
            format!(
                "the server at {ep} asks for the password in cleartext on a connection without TLS, where anyone on the path could read it; aksara did not send it"
            ),
            "change the pg_hba.conf method from `password` to `scram-sha-256` (and reload), or require TLS (?sslmode=require); only on a network you trust, pass --allow-cleartext".into(),
        ),
        FailureKind::AuthInterrupted { method, message } => (
            Code::AuthInterrupted,
            format!(
                "the server at {ep} broke off {} authentication before answering it ({message})",
                shown(method)
            ),
            "PostgreSQL answers a failed login with an error, not a closed connection: look at the server's log, and at whatever listens in front of it (a pooler or proxy that does not support this method)".into(),
        ),
        FailureKind::TlsHandshake { message } => (
            Code::SslHandshakeFailed,
            format!("{ep} agreed to TLS, then the handshake failed: {message}"),
            "check the server's ssl_cert_file and ssl_key_file and its log; something other than PostgreSQL (a proxy) may be answering on that port".into(),
        ),
        FailureKind::MessageTooLarge {
            kind,
            declared,
            limit,
        } => (
            Code::ServerMessageTooLarge,
            format!(
                "the server at {ep} sent a message (type '{}') claiming {declared} bytes; aksara reads at most {limit} and stopped before reading it",
                crate::sanitize::for_terminal(&kind.to_string())
            ),
            format!("a PostgreSQL server does not send messages that large: check that {ep} is the server you mean"),
        ),
        _ => return None,
    })
}

/// A certificate the verifier rejected, wherever it sits in the chain of sources: the
/// OpenSSL verifier's [`Rejection`](crate::tls_verify::Rejection) (inside rustls's
/// `CertificateError::Other`, or alone when the verifier could not be built), else rustls's
/// own typed error (a handshake signature it refused).
fn certificate_failure(error: &(dyn std::error::Error + 'static)) -> Option<FailureKind> {
    use crate::tls_verify::Rejection;
    use rustls::CertificateError as C;
    let rejected = |r: &Rejection| FailureKind::Certificate {
        reason: r.reason,
        message: r.message.clone(),
        cert: r.cert.clone(),
    };
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(rejection) = e.downcast_ref::<Rejection>() {
            return Some(rejected(rejection));
        }
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            if let C::Other(other) = cert
                && let Some(rejection) = other.0.downcast_ref::<Rejection>()
            {
                return Some(rejected(rejection));
            }
            let reason = match cert {
                C::NotValidForName | C::NotValidForNameContext { .. } => CertReason::NameMismatch,
                C::UnknownIssuer => CertReason::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => CertReason::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => CertReason::NotYetValid,
                _ => CertReason::Other,
            };
            return Some(FailureKind::Certificate {
                reason,
                message: cert.to_string(),
                cert: None,
            });
        }
        current = e.source();
    }
    None
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
                    FailureKind::Server(e) => e.sqlstate == "57P03",
                    FailureKind::Dns { .. } | FailureKind::Certificate { .. } => false,
                    // The server's answer is what it is; waiting does not change it.
                    FailureKind::AuthUnsupported { .. }
                    | FailureKind::CleartextRefused
                    | FailureKind::MessageTooLarge { .. } => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_warnings_hint_names_the_settings_of_what_ran_the_login() {
        let hint = |by| {
            auth_warning(&AuthMethod::Md5, false, false, by)
                .expect("md5 warns")
                .1
        };
        let server = hint(LoginBy::Server);
        assert!(
            server.contains("in pg_hba.conf") && !server.contains("PgBouncer"),
            "{server}"
        );
        let pooler = hint(LoginBy::Intermediary);
        assert!(
            pooler.contains(
                "not the server's pg_hba.conf: for PgBouncer `auth_type = scram-sha-256`"
            ),
            "{pooler}"
        );
        // Facts unread: both, the server's first.
        let unknown = hint(LoginBy::Unknown);
        assert!(
            unknown.starts_with(&format!(
                "{server}; if a pooler answered, the login is its own: for PgBouncer"
            )),
            "{unknown}"
        );
        let (message, hint) =
            auth_warning(&AuthMethod::Cleartext, false, false, LoginBy::Intermediary)
                .expect("cleartext over TCP warns");
        assert!(
            message.starts_with(
                "the pooler or proxy that answered asked for the password in cleartext"
            ),
            "{message}"
        );
        assert!(
            hint.ends_with(", or require TLS (?sslmode=require)"),
            "{hint}"
        );
        assert_eq!(
            auth_warning(&AuthMethod::Cleartext, true, false, LoginBy::Server),
            None
        );
    }
}
