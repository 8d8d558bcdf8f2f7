use crate::error::Error;
use crate::net::tls::{self, TlsConfig};
use crate::net::{Socket, SocketIntoBox, WithSocket};

use crate::message::SslRequest;
use crate::{PgConnectOptions, PgSslMode};

pub struct MaybeUpgradeTls<'a>(pub &'a PgConnectOptions);

impl WithSocket for MaybeUpgradeTls<'_> {
    // aksara patch: with whether TLS is in use.
    type Output = crate::Result<(Box<dyn Socket>, bool)>;

    async fn with_socket<S: Socket>(self, socket: S) -> Self::Output {
        maybe_upgrade(socket, self.0).await
    }
}

async fn maybe_upgrade<S: Socket>(
    mut socket: S,
    options: &PgConnectOptions,
) -> Result<(Box<dyn Socket>, bool), Error> {
    // https://www.postgresql.org/docs/12/libpq-ssl.html#LIBPQ-SSL-SSLMODE-STATEMENTS
    match options.ssl_mode {
        // FIXME: Implement ALLOW
        PgSslMode::Allow | PgSslMode::Disable => return Ok((Box::new(socket), false)),

        PgSslMode::Prefer => {
            if !tls::available() {
                return Ok((Box::new(socket), false));
            }

            // try upgrade, but its okay if we fail
            if !request_upgrade(&mut socket, options).await? {
                return Ok((Box::new(socket), false));
            }
        }

        PgSslMode::Require | PgSslMode::VerifyFull | PgSslMode::VerifyCa => {
            tls::error_if_unavailable()?;

            if !request_upgrade(&mut socket, options).await? {
                // upgrade failed, die
                return Err(Error::Tls("server does not support TLS".into()));
            }
        }
    }

    let accept_invalid_certs = !matches!(
        options.ssl_mode,
        PgSslMode::VerifyCa | PgSslMode::VerifyFull
    );
    let accept_invalid_hostnames = !matches!(options.ssl_mode, PgSslMode::VerifyFull);

    let config = TlsConfig {
        accept_invalid_certs,
        accept_invalid_hostnames,
        hostname: &options.host,
        root_cert_path: options.ssl_root_cert.as_ref(),
        client_cert_path: options.ssl_client_cert.as_ref(),
        client_key_path: options.ssl_client_key.as_ref(),
    };

    // aksara patch: a handshake that breaks for a reason other than the certificate (a server
    // that says `S` and then closes or sends garbage) is its own typed failure.
    match tls::handshake(socket, config, SocketIntoBox).await {
        Ok(socket) => Ok((socket, true)),
        Err(Error::Io(io)) if !io.to_string().contains("certificate") => {
            Err(crate::aksara::LoginRefusal::TlsHandshake { source: io }.into_error())
        }
        Err(other) => Err(other),
    }
}

async fn request_upgrade(
    socket: &mut impl Socket,
    _options: &PgConnectOptions,
) -> Result<bool, Error> {
    // https://www.postgresql.org/docs/current/protocol-flow.html#id-1.10.5.7.11

    // To initiate an SSL-encrypted connection, the frontend initially sends an
    // SSLRequest message rather than a StartupMessage

    socket.write(SslRequest::BYTES).await?;

    // The server then responds with a single byte containing S or N, indicating that
    // it is willing or unwilling to perform SSL, respectively.

    let mut response = [0u8];

    // aksara patch: how many bytes came, so an answer that is not PostgreSQL's is typed.
    let received = socket.read(&mut &mut response[..]).await?;

    match response[0] {
        b'S' => {
            // The server is ready and willing to accept an SSL connection
            Ok(true)
        }

        b'N' => {
            // The server is _unwilling_ to perform SSL
            Ok(false)
        }

        // aksara patch: an ErrorResponse instead of `S`/`N` is a refusal sent before the
        // startup was read (pgpool-II's "Sorry, too many clients already"; a postmaster that
        // cannot fork): read it whole, bounded, as libpq 15 does, and report it as the
        // server's error rather than "not PostgreSQL".
        b'E' if received > 0 => Err(early_error(socket).await),

        // aksara patch: an HTTP server answers `H`, say.
        other if received > 0 => {
            Err(crate::aksara::LoginRefusal::NotPostgres { leading: vec![other] }.into_error())
        }

        other => Err(err_protocol!(
            "unexpected response from SSLRequest: 0x{:02x}",
            other
        )),
    }
}

/// aksara patch: the ErrorResponse after the `E` of an SSLRequest answer: its length, then its
/// fields (at most the startup bound of 30,000 bytes); anything else is "not PostgreSQL".
async fn early_error(socket: &mut impl Socket) -> Error {
    use crate::message::BackendMessage as _;
    let not_postgres =
        || crate::aksara::LoginRefusal::NotPostgres { leading: vec![b'E'] }.into_error();
    let mut len = [0u8; 4];
    if read_full(socket, &mut len).await.is_err() {
        return not_postgres();
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(4..=30_000).contains(&len) {
        return not_postgres();
    }
    let mut body = vec![0u8; len - 4];
    if read_full(socket, &mut body).await.is_err() {
        return not_postgres();
    }
    match crate::PgDatabaseError::decode_body(body.into()) {
        Ok(e) => Error::Database(Box::new(e)),
        Err(_) => not_postgres(),
    }
}

/// Reading into a `&mut [u8]` advances the slice past what was read (tokio's `try_read_buf`).
async fn read_full(socket: &mut impl Socket, mut buf: &mut [u8]) -> Result<(), Error> {
    while !buf.is_empty() {
        if socket.read(&mut buf).await? == 0 {
            return Err(err_protocol!("the server closed the connection"));
        }
    }
    Ok(())
}
