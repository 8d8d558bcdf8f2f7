//! Finding PostgreSQL servers without logging in: every place a local server may listen is
//! probed concurrently, each within a short bound, so "is anything running?" is answered in
//! milliseconds. A probe sends an SSLRequest (8 bytes): a PostgreSQL server answers `S` or `N`,
//! which both identifies it and tells whether it offers TLS. Closing after `N` leaves nothing in
//! the server log; after `S` the probe completes the TLS handshake and closes it before leaving
//! (a server left waiting for its ClientHello logs "could not accept SSL connection: EOF
//! detected" for every probe, as Debian's clusters with `ssl = on` did for each dbsetup).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::dsn::{DEFAULT_SOCKET_DIRS, Endpoint, Host};

/// What the looks around a failed connection may add to its report (issue 12: ≤ 300 ms on a
/// failure path).
pub const BESIDE_A_FAILURE: Duration = Duration::from_millis(300);

/// The default port and Debian's second cluster.
pub const TCP_PORTS: &[u16] = &[5432, 5433];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A PostgreSQL server answered the SSLRequest.
    Postgres { tls: bool },
    /// Something accepted the connection but did not speak the protocol (or too slowly).
    NotPostgres,
    /// Nothing there: refused, no socket file, or no answer in time.
    Nothing(Nothing),
}

/// Why nothing answered, from the I/O error's kind (never its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nothing {
    Refused,
    NoSocket,
    Timeout,
    /// Another I/O failure, with the operating system's words.
    Other(String),
}

impl Nothing {
    fn from_io(e: &std::io::Error) -> Nothing {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Nothing::Refused,
            std::io::ErrorKind::NotFound => Nothing::NoSocket,
            std::io::ErrorKind::TimedOut => Nothing::Timeout,
            _ => Nothing::Other(e.to_string()),
        }
    }

    /// The connection failure this stands for; `bound` is how long the probe waited.
    pub fn as_failure(&self, bound: Duration) -> crate::connect::FailureKind {
        use crate::connect::FailureKind;
        match self {
            Nothing::Refused => FailureKind::Refused,
            Nothing::NoSocket => FailureKind::SocketMissing,
            Nothing::Timeout => FailureKind::Timeout { after: bound },
            Nothing::Other(message) => FailureKind::Unexpected {
                message: message.clone(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub endpoint: Endpoint,
    /// Where this candidate came from, for the user: "PGHOST", ".env", "default socket", ...
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Probed {
    pub candidate: Candidate,
    pub answer: Answer,
}

/// The well-known local places: sockets found in the usual directories (any port: the file
/// name carries it) and TCP localhost on 5432 and 5433.
pub fn local_candidates() -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for dir in DEFAULT_SOCKET_DIRS {
        // /run and /var/run are the same folder on most systems: list each socket once.
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| PathBuf::from(dir));
        for port in socket_ports(Path::new(dir)) {
            if seen.insert((canonical.clone(), port)) {
                out.push(Candidate {
                    endpoint: Endpoint {
                        host: Host::Socket(PathBuf::from(dir)),
                        port,
                    },
                    origin: format!("socket in {dir}"),
                });
            }
        }
    }
    for port in TCP_PORTS {
        out.push(Candidate {
            endpoint: Endpoint {
                host: Host::Tcp("localhost".into()),
                port: *port,
            },
            origin: "TCP localhost".into(),
        });
    }
    out
}

/// Ports of the `.s.PGSQL.<port>` files in a directory.
pub fn socket_ports(dir: &Path) -> Vec<u16> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(".s.PGSQL.")?.parse::<u16>().ok()
        })
        .collect();
    ports.sort_unstable();
    ports
}

/// Probe all candidates at once; the whole run takes at most `bound`.
pub async fn probe_all(candidates: Vec<Candidate>, bound: Duration) -> Vec<Probed> {
    let mut set = tokio::task::JoinSet::new();
    for (i, candidate) in candidates.into_iter().enumerate() {
        set.spawn(async move {
            let answer = probe(&candidate.endpoint, bound).await;
            (i, Probed { candidate, answer })
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(r) = joined {
            results.push(r);
        }
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, p)| p).collect()
}

/// Whether PostgreSQL answers at localhost on `port` within `bound` (one SSLRequest).
pub async fn answers_at_localhost(port: u16, bound: Duration) -> bool {
    let endpoint = Endpoint {
        host: Host::Tcp("localhost".into()),
        port,
    };
    matches!(probe(&endpoint, bound).await, Answer::Postgres { .. })
}

/// Probe one endpoint within `bound`.
pub async fn probe(endpoint: &Endpoint, bound: Duration) -> Answer {
    match tokio::time::timeout(bound, probe_unbounded(endpoint)).await {
        Ok(answer) => answer,
        Err(_) => Answer::Nothing(Nothing::Timeout),
    }
}

async fn probe_unbounded(endpoint: &Endpoint) -> Answer {
    match &endpoint.host {
        Host::Socket(_) => {
            let path = endpoint
                .socket_path()
                .expect("a socket endpoint has a socket path");
            match tokio::net::UnixStream::connect(&path).await {
                // The server never offers TLS on a socket; no need to ask.
                Ok(stream) => ssl_request(stream, false).await,
                Err(e) => Answer::Nothing(Nothing::from_io(&e)),
            }
        }
        Host::Tcp(name) => {
            match tokio::net::TcpStream::connect((name.as_str(), endpoint.port)).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    ssl_request(stream, true).await
                }
                Err(e) => Answer::Nothing(Nothing::from_io(&e)),
            }
        }
    }
}

/// Send SSLRequest and read the one-byte answer. On a socket we still ask (it identifies the
/// server) but the answer is always `N`.
async fn ssl_request<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, _tcp: bool) -> Answer {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    if stream.write_all(&SSL_REQUEST).await.is_err() {
        return Answer::NotPostgres;
    }
    let mut byte = [0u8; 1];
    match stream.read_exact(&mut byte).await {
        Ok(_) if byte[0] == b'S' => {
            leave_tls_quietly(&mut stream).await;
            Answer::Postgres { tls: true }
        }
        Ok(_) if byte[0] == b'N' => Answer::Postgres { tls: false },
        _ => Answer::NotPostgres,
    }
}

/// After `S`: the TLS handshake, then close_notify. A server whose handshake completed and that
/// then gets no startup packet at all logs nothing (PostgreSQL's "such cases often occur for
/// legitimate reasons"), as for `pg_isready`. Nothing is verified and nothing is sent over it:
/// the answer already identified the server. A handshake that fails changes nothing.
async fn leave_tls_quietly<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let Ok(config) = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    else {
        return;
    };
    let config = config
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(NothingVerified(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
    let Ok(mut tls) = rustls::ClientConnection::new(std::sync::Arc::new(config), name) else {
        return;
    };
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if flush_tls(&mut tls, stream).await.is_err() {
            return;
        }
        if !tls.is_handshaking() {
            break;
        }
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tls.read_tls(&mut &buffer[..n]).is_err() || tls.process_new_packets().is_err() {
            return;
        }
    }
    tls.send_close_notify();
    let _ = flush_tls(&mut tls, stream).await;
}

async fn flush_tls<S: AsyncWrite + Unpin>(
    tls: &mut rustls::ClientConnection,
    stream: &mut S,
) -> std::io::Result<()> {
    while tls.wants_write() {
        let mut out = Vec::new();
        tls.write_tls(&mut out)?;
        stream.write_all(&out).await?;
    }
    stream.flush().await
}

/// The probe's handshake checks nothing: it only ends the TLS session the server began.
#[derive(Debug)]
struct NothingVerified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NothingVerified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
