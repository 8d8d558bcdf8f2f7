//! Connection poolers between the app and PostgreSQL: telling one is there, which one, in which
//! pool mode, what its own errors mean, and what that means for the app's driver.
//!
//! Cheap signals first. A healthy login already shows whether something sits in between:
//! PgBouncer answers the startup itself and announces its own BackendKeyData, so the pid the
//! login announced differs from `pg_backend_pid()`; a managed pooler is known by its host name.
//! Only when that first look signals a pooler does [`identify`] open more connections: one to
//! the admin console (`dbname=pgbouncer`, which names PgBouncer even when it refuses) and, when
//! the console does not give the pool mode, a second client whose backend pids are compared
//! with the first one's (see [`probe_mode`]). So the direct path stays one connection.
//!
//! pgpool-II relays the login unchanged; what shows it (the server's own `port` differing from
//! the dialled one, or the pid on several backends) and what it answers is in [`pgpool`]: one
//! `SHOW pool_version` on the same connection, only after such a signal.
//!
//! Facts behind each rule: ../shared/docs/drivers-and-poolers.md, and the tests in
//! tests/cli/pooler.rs against a real PgBouncer 1.18 and tests/cli/pgpool.rs against a real
//! pgpool-II 4.3.

use std::fmt;
use std::time::{Duration, Instant};

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgSslMode};

use crate::connect::{self, FailureKind, ServerError};
use crate::dsn::{ConnConfig, Endpoint, Host};

pub mod pgpool;

/// What kind of pooler or proxy sits in front of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolerKind {
    PgBouncer,
    /// pgpool-II: answers `SHOW pool_version` itself.
    PgpoolII,
    /// Supabase's pooler (`*.pooler.supabase.com`).
    Supavisor,
    /// Neon's pooled endpoint (`*-pooler.*.neon.tech`, PgBouncer in transaction mode).
    NeonPooler,
    /// Amazon RDS Proxy (`*.proxy-*.rds.amazonaws.com`).
    RdsProxy,
    /// Something that answers the login for the server, not yet identified.
    Unidentified,
}

impl fmt::Display for PoolerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolerKind::PgBouncer => "PgBouncer",
            PoolerKind::PgpoolII => "pgpool-II",
            PoolerKind::Supavisor => "Supavisor (Supabase pooler)",
            PoolerKind::NeonPooler => "Neon's pooler (PgBouncer)",
            PoolerKind::RdsProxy => "RDS Proxy",
            PoolerKind::Unidentified => "a connection pooler or proxy",
        })
    }
}

/// PgBouncer's `pool_mode`, which decides what survives between the app's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection per client connection: everything behaves as direct.
    Session,
    /// A server connection per transaction: session state and prepared statements do not
    /// survive a transaction.
    Transaction,
    /// A server connection per statement: no multi-statement transactions at all.
    Statement,
}

impl PoolMode {
    pub fn parse(text: &str) -> Option<PoolMode> {
        match text.trim() {
            "session" => Some(PoolMode::Session),
            "transaction" => Some(PoolMode::Transaction),
            "statement" => Some(PoolMode::Statement),
            _ => None,
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        })
    }
}

/// What the login itself announced, read without a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSignals {
    /// The pid of the login's BackendKeyData (0 when none was sent).
    pub announced_pid: u32,
    /// ParameterStatus `server_version` as sent (PgBouncer's console sends `1.18.0/bouncer`).
    pub server_version: Option<String>,
    /// ParameterStatus `in_hot_standby` (PostgreSQL 14+): `on` on a standby.
    pub in_hot_standby: Option<bool>,
}

impl LoginSignals {
    pub fn of(conn: &PgConnection) -> LoginSignals {
        LoginSignals {
            announced_pid: conn.announced_process_id(),
            server_version: conn.parameter_status("server_version").map(str::to_owned),
            in_hot_standby: conn.parameter_status("in_hot_standby").map(|v| v == "on"),
        }
    }
}

/// Why the first look thinks a pooler is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The login announced a pid that is not the backend's `pg_backend_pid()`.
    PidMismatch { announced: u32, backend: i32 },
    /// `server_version` carries PgBouncer's `/bouncer` suffix.
    BouncerVersion(String),
    /// The host name is a managed pooler's.
    HostName(String),
    /// The server listens on another port than the one the client dialled: something relays
    /// the connection (pgpool-II, or a port forward: only a second look tells).
    PortMismatch { dialled: u16, server: i32 },
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::PidMismatch { announced, backend } => write!(
                f,
                "the login announced process {announced}, the server process is {backend}"
            ),
            Evidence::BouncerVersion(v) => write!(f, "server_version is \"{v}\""),
            Evidence::HostName(h) => write!(f, "the host name {h} is a managed pooler's"),
            Evidence::PortMismatch { dialled, server } => write!(
                f,
                "the server listens on port {server}, the URL dials port {dialled}"
            ),
        }
    }
}

/// The verdict of the first look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstLook {
    /// Nothing in between that the login shows.
    Direct,
    Pooler {
        kind: PoolerKind,
        evidence: Evidence,
    },
}

/// The managed poolers known by host name, with the mode their documentation gives.
pub fn managed_by_host(host: &Host) -> Option<PoolerKind> {
    let Host::Tcp(name) = host else { return None };
    let name = name.to_ascii_lowercase();
    if name.ends_with(".pooler.supabase.com") {
        Some(PoolerKind::Supavisor)
    } else if name.ends_with(".neon.tech") && name.split('.').next()?.ends_with("-pooler") {
        Some(PoolerKind::NeonPooler)
    } else if name.ends_with(".rds.amazonaws.com") && name.contains(".proxy-") {
        Some(PoolerKind::RdsProxy)
    } else {
        None
    }
}

/// The cheap verdict from what the login showed and the backend's own pid (one more column in
/// the query the caller runs anyway: `pg_backend_pid()`).
pub fn first_look(signals: &LoginSignals, backend_pid: i32, host: &Host) -> FirstLook {
    if let Some(version) = signals
        .server_version
        .as_deref()
        .filter(|v| v.ends_with("/bouncer"))
    {
        return FirstLook::Pooler {
            kind: PoolerKind::PgBouncer,
            evidence: Evidence::BouncerVersion(version.to_owned()),
        };
    }
    let mismatch = i64::from(signals.announced_pid) != i64::from(backend_pid);
    let managed = managed_by_host(host);
    match (managed, mismatch) {
        (Some(kind), _) => FirstLook::Pooler {
            kind,
            evidence: Evidence::HostName(host.to_string()),
        },
        (None, true) => FirstLook::Pooler {
            kind: PoolerKind::Unidentified,
            evidence: Evidence::PidMismatch {
                announced: signals.announced_pid,
                backend: backend_pid,
            },
        },
        (None, false) => FirstLook::Direct,
    }
}

/// How the pool mode was found, or why it was not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeVerdict {
    Known { mode: PoolMode, how: String },
    Unknown { why: String },
}

impl ModeVerdict {
    pub fn mode(&self) -> Option<PoolMode> {
        match self {
            ModeVerdict::Known { mode, .. } => Some(*mode),
            ModeVerdict::Unknown { .. } => None,
        }
    }
}

/// Everything [`identify`] learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolerReport {
    pub kind: PoolerKind,
    pub evidence: Vec<String>,
    pub mode: ModeVerdict,
    /// From the admin console's `SHOW VERSION`, when the user may read it.
    pub version: Option<String>,
    /// Whether the pooler keeps prepared statements per client (PgBouncer ≥ 1.21 with
    /// `max_prepared_statements` > 0); `None` when it could not be read.
    pub tracks_prepared_statements: Option<bool>,
    /// The server behind the pooler for this database, from the admin console.
    pub server: Option<ServerBehind>,
    /// What pgpool-II said of itself (version, settings, nodes), when it is pgpool-II.
    pub pgpool: Option<pgpool::PgpoolFacts>,
    /// How many clients it takes at once, when it said: the limit an application's pools meet
    /// through it (the server's max_connections bounds only the pooler's own connections).
    pub client_limit: Option<ClientLimit>,
}

/// A pooler's limit on its clients, as its own setting says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimit {
    /// `max_client_conn` (PgBouncer) or `num_init_children` (pgpool-II).
    pub setting: &'static str,
    pub value: i64,
}

/// Both looks after a healthy login, for doctor: `None` on a direct connection, decided from
/// what the login showed, `backend_pid` and `server_port` (the caller's `pg_backend_pid()` and
/// `current_setting('port')`), with no I/O; otherwise [`identify`]'s report. A port that
/// differs is the one signal a port forward gives too: then pgpool-II's own answer decides,
/// and without it nothing is reported.
pub async fn detect(
    connected: &mut connect::Connected,
    cfg: &ConnConfig,
    backend_pid: i32,
    server_port: Option<i32>,
    bound: Duration,
) -> Option<PoolerReport> {
    let signals = LoginSignals::of(&connected.conn);
    let look = first_look(&signals, backend_pid, &connected.endpoint.host);
    if look == FirstLook::Direct {
        let moved = port_moved(&connected.endpoint, server_port?)?;
        let facts = pgpool::read(&mut connected.conn, bound).await?;
        return Some(pgpool_report(vec![moved.to_string()], facts));
    }
    let report = identify(
        &mut connected.conn,
        cfg,
        &connected.endpoint,
        connected.tls_mode,
        &look,
        bound,
    )
    .await;
    Some(report)
}

/// Whether [`detect`] finds nothing in front of the server without a query: the login's
/// signals say direct and the server listens on the port dialled. Only then does doctor leave
/// the create-table probe's transaction to the end of the session (`session::ProbeEnd`).
pub fn answers_directly(
    signals: &LoginSignals,
    endpoint: &Endpoint,
    backend_pid: i32,
    server_port: Option<i32>,
) -> bool {
    first_look(signals, backend_pid, &endpoint.host) == FirstLook::Direct
        && server_port.is_some_and(|port| port_moved(endpoint, port).is_none())
}

/// The port signal: the server's `port` setting is not the port the client dialled.
pub fn port_moved(endpoint: &Endpoint, server_port: i32) -> Option<Evidence> {
    (i32::from(endpoint.port) != server_port).then_some(Evidence::PortMismatch {
        dialled: endpoint.port,
        server: server_port,
    })
}

/// pgpool-II keeps a client's server connections for its whole session: for what survives
/// between transactions it is session pooling, whatever its clustering mode.
fn pgpool_report(mut evidence: Vec<String>, facts: pgpool::PgpoolFacts) -> PoolerReport {
    evidence.push(format!("it answered SHOW pool_version: {}", facts.version));
    PoolerReport {
        kind: PoolerKind::PgpoolII,
        evidence,
        mode: ModeVerdict::Known {
            mode: PoolMode::Session,
            how: "pgpool-II gives each client its own server connections for its session".into(),
        },
        version: Some(format!("pgpool-II {}", facts.version)),
        tracks_prepared_statements: None,
        server: None,
        client_limit: facts
            .settings
            .get("num_init_children")
            .and_then(|v| v.trim().parse().ok())
            .map(|value| ClientLimit {
                setting: "num_init_children",
                value,
            }),
        pgpool: Some(facts),
    }
}

/// The second look, only after [`first_look`] said `Pooler`: the admin console, then (for a
/// pooler still unnamed) pgpool-II's `SHOW pool_version`, then (when the mode is still unknown)
/// the two-client pid probe. `first` is the caller's logged-in
/// connection, idle (not inside a transaction). Each extra connection is bounded by `bound`.
pub async fn identify(
    first: &mut PgConnection,
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    tls_mode: PgSslMode,
    look: &FirstLook,
    bound: Duration,
) -> PoolerReport {
    let (mut kind, mut evidence) = match look {
        FirstLook::Pooler { kind, evidence } => (*kind, vec![evidence.to_string()]),
        FirstLook::Direct => (PoolerKind::Unidentified, Vec::new()),
    };
    let console = read_console(cfg, endpoint, tls_mode, console_bound(first, bound).await).await;
    let mut report_mode = None;
    let mut version = None;
    let mut tracks = None;
    let mut server = None;
    let mut client_limit = None;
    match console {
        Console::Refused => {
            kind = PoolerKind::PgBouncer;
            evidence
                .push("its admin console (database \"pgbouncer\") answered \"not allowed\"".into());
        }
        Console::Read(facts) => {
            kind = PoolerKind::PgBouncer;
            evidence.push(format!("its admin console answered: {}", facts.version));
            report_mode = facts.pool_mode.map(|mode| ModeVerdict::Known {
                mode,
                how: "pool_mode in the admin console's SHOW DATABASES / SHOW CONFIG".into(),
            });
            version = Some(facts.version);
            tracks = Some(facts.max_prepared_statements.is_some_and(|n| n > 0));
            client_limit = facts.max_client_conn.map(|value| ClientLimit {
                setting: "max_client_conn",
                value,
            });
            server = facts.server;
        }
        Console::Silent { waited } => evidence.push(format!(
            "its admin console (database \"pgbouncer\") did not answer a login within {} ms, so what it \
             would say is not known (PgBouncer holds such a login when auth_query, not its auth_file, has \
             this user's password)",
            waited.as_millis()
        )),
        Console::NotPgBouncer => {}
    }
    // Only an unnamed pooler is asked: a managed one's server would log the refusal.
    if kind == PoolerKind::Unidentified
        && let Some(facts) = pgpool::read(first, bound).await
    {
        return pgpool_report(evidence, facts);
    }
    let mode = match report_mode {
        Some(mode) => mode,
        None => probe_mode(first, cfg, endpoint, tls_mode, bound).await,
    };
    // Only PgBouncer refuses BEGIN with its statement-mode template.
    if mode.mode() == Some(PoolMode::Statement) {
        kind = PoolerKind::PgBouncer;
    }
    PoolerReport {
        kind,
        evidence,
        mode,
        version,
        tracks_prepared_statements: tracks,
        server,
        pgpool: None,
        client_limit,
    }
}

struct ConsoleFacts {
    version: String,
    pool_mode: Option<PoolMode>,
    max_prepared_statements: Option<i64>,
    max_client_conn: Option<i64>,
    server: Option<ServerBehind>,
}

/// Where PgBouncer sends a database, from its `SHOW DATABASES`: what a direct admin URL for
/// dbsetup can be derived from (a `host` starting with `/` is a socket folder on the
/// pooler's machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBehind {
    pub host: String,
    pub port: u16,
    pub database: String,
}

enum Console {
    /// PgBouncer's console refused this user: "not allowed".
    Refused,
    Read(ConsoleFacts),
    /// The login to it got no answer within the console's bound.
    Silent {
        waited: Duration,
    },
    /// Anything else: no console there, or a failure that says nothing.
    NotPgBouncer,
}

/// How long the console login may take: a login to the same pooler as `first`, so a few of
/// its round trips and a margin, not the whole connect timeout. PgBouncer 1.18 never answers a
/// console login whose password only auth_query knows (the console has no server to ask), and
/// waiting out `bound` there made every such doctor run 5 s longer.
async fn console_bound(first: &mut PgConnection, bound: Duration) -> Duration {
    let started = Instant::now();
    let round_trip = match tokio::time::timeout(bound, sqlx::raw_sql("").execute(&mut *first)).await
    {
        Ok(Ok(_)) => started.elapsed(),
        // No measure: the connect timeout, as before.
        _ => return bound,
    };
    bound.min(CONSOLE_LOGIN_MARGIN + round_trip * 8)
}

/// The console login's allowance beyond its round trips: a healthy PgBouncer answers one in
/// 1-2 ms on this machine's loopback, including the SCRAM exchange.
const CONSOLE_LOGIN_MARGIN: Duration = Duration::from_millis(250);

async fn read_console(
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    tls_mode: PgSslMode,
    bound: Duration,
) -> Console {
    let mut console_cfg = cfg.clone();
    console_cfg.dbname = "pgbouncer".into();
    let mut conn = match connect::attempt(&console_cfg, endpoint, tls_mode, bound).await {
        Ok(conn) => conn,
        Err(FailureKind::Timeout { after }) => return Console::Silent { waited: after },
        Err(failure) => {
            return match PoolerError::from_failure(&failure) {
                Some(PoolerError::ConsoleNotAllowed) => Console::Refused,
                _ => Console::NotPgBouncer,
            };
        }
    };
    // The console speaks only the simple query protocol: raw_sql.
    let version =
        match tokio::time::timeout(bound, sqlx::raw_sql("SHOW VERSION").fetch_one(&mut conn)).await
        {
            Ok(Ok(row)) => row.try_get::<String, _>(0).unwrap_or_default(),
            _ => {
                connect::close(conn).await;
                return Console::NotPgBouncer;
            }
        };
    let config = match tokio::time::timeout(
        bound,
        sqlx::raw_sql("SHOW CONFIG").fetch_all(&mut conn),
    )
    .await
    {
        Ok(Ok(rows)) => rows
            .iter()
            .filter_map(|r| {
                Some((
                    r.try_get::<String, _>(0).ok()?,
                    r.try_get::<String, _>(1).ok()?,
                ))
            })
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let entry = database_entry(&mut conn, &cfg.dbname, bound).await;
    connect::close(conn).await;
    let setting = |name: &str| {
        config
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Console::Read(ConsoleFacts {
        version,
        pool_mode: entry
            .as_ref()
            .and_then(|(mode, _)| *mode)
            .or_else(|| setting("pool_mode").as_deref().and_then(PoolMode::parse)),
        max_prepared_statements: setting("max_prepared_statements").and_then(|v| v.parse().ok()),
        max_client_conn: setting("max_client_conn").and_then(|v| v.parse().ok()),
        server: entry.map(|(_, server)| server),
    })
}

impl ServerBehind {
    /// `cfg` pointed at this server instead of the pooler: same user, password and settings,
    /// the database PgBouncer maps the name to. For dbsetup's direct admin connection; the
    /// caller still logs in with it to prove it (the server may not accept what PgBouncer's
    /// own `auth_file` does, and a socket folder is only reachable on the pooler's machine).
    pub fn direct_config(&self, cfg: &ConnConfig) -> ConnConfig {
        let host = if self.host.starts_with('/') {
            Host::Socket(self.host.clone().into())
        } else {
            Host::Tcp(self.host.clone())
        };
        let mut direct = cfg.clone();
        direct.endpoints = vec![Endpoint {
            host,
            port: self.port,
        }];
        direct.dbname = self.database.clone();
        direct
    }
}

/// This database's line of `SHOW DATABASES`: its own `pool_mode` (empty when the default
/// applies) and where it points.
async fn database_entry(
    conn: &mut PgConnection,
    dbname: &str,
    bound: Duration,
) -> Option<(Option<PoolMode>, ServerBehind)> {
    let rows = tokio::time::timeout(bound, sqlx::raw_sql("SHOW DATABASES").fetch_all(&mut *conn))
        .await
        .ok()?
        .ok()?;
    rows.iter().find_map(|row| {
        let name: String = row.try_get("name").ok()?;
        if name != dbname {
            return None;
        }
        let mode: Option<String> = row.try_get("pool_mode").ok()?;
        let port = row
            .try_get::<i32, _>("port")
            .ok()
            .and_then(|p| u16::try_from(p).ok())?;
        let server = ServerBehind {
            host: row.try_get::<Option<String>, _>("host").ok()??,
            port,
            database: row.try_get("database").ok()?,
        };
        Some((mode.as_deref().and_then(PoolMode::parse), server))
    })
}

/// The pool mode from what two clients see, without the admin console. Client A is `first`;
/// client B is a new connection. Statement mode refuses B's `BEGIN`. Otherwise, in each round,
/// A runs a statement, then B opens a transaction and holds it while A runs another: in
/// session mode each client keeps its own server process for its whole life, so B never gets
/// A's pid and neither client's pid ever changes. In transaction mode A's server goes back to
/// the pool after each statement and PgBouncer hands the most recently released server to the
/// next client (LIFO, the default), so B gets A's; with `server_round_robin` a pid changes
/// instead. Any sharing or change proves transaction pooling; none in [`PROBE_ROUNDS`] rounds
/// is read as session mode, and the `how` says so (other clients of a busy pooler can in
/// principle hide the sharing; they cannot fake it).
pub async fn probe_mode(
    first: &mut PgConnection,
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    tls_mode: PgSslMode,
    bound: Duration,
) -> ModeVerdict {
    let mut b = match connect::attempt(cfg, endpoint, tls_mode, bound).await {
        Ok(conn) => conn,
        Err(e) => {
            return ModeVerdict::Unknown {
                why: format!("a second connection failed: {e}"),
            };
        }
    };
    let verdict = match compare_clients(first, &mut b, bound).await {
        Ok(Some(verdict)) => verdict,
        Ok(None) => ModeVerdict::Known {
            mode: PoolMode::Session,
            how: format!(
                "two clients kept their own server processes through {PROBE_ROUNDS} rounds of statements and transactions"
            ),
        },
        Err(why) => ModeVerdict::Unknown { why },
    };
    connect::close(b).await;
    verdict
}

/// Rounds of [`probe_mode`]; each is six short statements.
pub const PROBE_ROUNDS: usize = 3;

/// `Ok(Some)` when a round proved statement or transaction pooling, `Ok(None)` when no round
/// did, `Err` when a statement failed for another reason.
async fn compare_clients(
    a: &mut PgConnection,
    b: &mut PgConnection,
    bound: Duration,
) -> Result<Option<ModeVerdict>, String> {
    let transaction = |how: &str| {
        Ok(Some(ModeVerdict::Known {
            mode: PoolMode::Transaction,
            how: how.to_owned(),
        }))
    };
    for _ in 0..PROBE_ROUNDS {
        let pid_a = backend_pid(a, bound)
            .await
            .map_err(|e| format!("the first connection's pid: {e}"))?;
        match run(b, "BEGIN", bound).await {
            Err(Refusal::Pooler(PoolerError::TransactionInStatementMode)) => {
                return Ok(Some(ModeVerdict::Known {
                    mode: PoolMode::Statement,
                    how: format!("BEGIN was refused: \"{STATEMENT_MODE_REFUSAL}\""),
                }));
            }
            Err(e) => return Err(format!("BEGIN on a second connection failed: {e}")),
            Ok(()) => {}
        }
        // Inside B's transaction: what the pids show. B's transaction is ended before any
        // answer, since a client that leaves inside one makes PgBouncer drop its server
        // connection ("client disconnect while server was not ready").
        let inside = async {
            let pid_b = backend_pid(b, bound)
                .await
                .map_err(|e| format!("the second connection's pid: {e}"))?;
            if pid_b == pid_a {
                return Ok((pid_b, Some("a second client got the first client's server process while both were connected")));
            }
            let again = backend_pid(a, bound)
                .await
                .map_err(|e| format!("the first connection's pid: {e}"))?;
            if again != pid_a {
                return Ok((pid_b, Some("the first client's server process changed between two statements")));
            }
            Ok::<_, String>((pid_b, None))
        }
        .await;
        if !matches!(inside, Ok((_, None))) {
            let _ = run(b, "ROLLBACK", bound).await;
        }
        let (pid_b, proof) = inside?;
        if let Some(how) = proof {
            return transaction(how);
        }
        run(b, "COMMIT", bound)
            .await
            .map_err(|e| format!("COMMIT on the second connection failed: {e}"))?;
        let after = backend_pid(b, bound)
            .await
            .map_err(|e| format!("the second connection's pid: {e}"))?;
        if after != pid_b {
            return transaction(
                "the second client's server process changed after its transaction ended",
            );
        }
    }
    Ok(None)
}

/// PgBouncer's refusal of a transaction block in statement mode (src/server.c).
pub const STATEMENT_MODE_REFUSAL: &str = "transaction blocks not allowed in statement pooling mode";

/// Why a probe statement failed: PgBouncer's own refusal, kept typed, or anything else.
enum Refusal {
    Pooler(PoolerError),
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Pooler(e) => e.fmt(f),
            Refusal::Other(e) => f.write_str(e),
        }
    }
}

async fn run(conn: &mut PgConnection, sql: &'static str, bound: Duration) -> Result<(), Refusal> {
    match tokio::time::timeout(bound, sqlx::raw_sql(sql).execute(&mut *conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let failure = connect::classify(e);
            Err(match PoolerError::from_failure(&failure) {
                Some(pooler) => Refusal::Pooler(pooler),
                None => Refusal::Other(failure.to_string()),
            })
        }
        Err(_) => Err(Refusal::Other(format!(
            "no answer within {} ms",
            bound.as_millis()
        ))),
    }
}

async fn backend_pid(conn: &mut PgConnection, bound: Duration) -> Result<i32, String> {
    match tokio::time::timeout(
        bound,
        sqlx::raw_sql("SELECT pg_backend_pid()").fetch_one(&mut *conn),
    )
    .await
    {
        Ok(Ok(row)) => row.try_get::<i32, _>(0).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(connect::classify(e).to_string()),
        Err(_) => Err(format!("no answer within {} ms", bound.as_millis())),
    }
}

/// A pooler's own refusal, told from its text (PgBouncer sends them all as SQLSTATE 08P01, so
/// the words are all there is to go by).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolerError {
    /// `no such database: x`: the name is not in PgBouncer's `[databases]` (and no `*` entry).
    UnknownDatabase { database: String },
    /// `unsupported startup parameter: x`: the client sent a startup parameter PgBouncer does
    /// not pass on (`options`, `search_path`, sqlx's `extra_float_digits`).
    UnsupportedStartupParameter { parameter: String },
    /// `query_wait_timeout`: the client waited longer than `query_wait_timeout` for a server
    /// connection (pool exhausted, or the server cannot be reached).
    QueryWaitTimeout,
    /// `no more connections allowed (max_client_conn)`: PgBouncer's client limit is reached.
    PoolFull,
    /// `server login has been failing, ...`: PgBouncer's own logins to the server fail and it
    /// refuses clients until `server_login_retry` has passed.
    ServerLoginRetry { cached: Option<String> },
    /// A server's own login refusal (a template of `diagnose::server_messages`) under PgBouncer's
    /// 08P01: PgBouncer's login to the server, as this user, was refused, and it relays the
    /// server's words (1.18: "pooler error: <the server's message>").
    ServerLoginRefused { server_said: String },
    /// The statement-mode refusal of `BEGIN`.
    TransactionInStatementMode,
    /// The admin console refused the user: `not allowed`.
    ConsoleNotAllowed,
    /// PgBouncer's own check of the client's password failed, against its auth_file or
    /// auth_query (`method`: its auth_type's family; `said`: its words): `SASL authentication
    /// failed` (SCRAM) or `password authentication failed` (md5, plain), whole messages that
    /// PostgreSQL never sends (its own name the user).
    PgBouncerPasswordRejected {
        method: &'static str,
        said: &'static str,
    },
    /// pgpool-II has no password for this user to log in to the server with (`method`: SCRAM
    /// or md5): none in `pool_passwd`, and it may not ask the client for one.
    PgpoolNoPassword { method: String },
    /// pgpool-II's own SCRAM exchange with the client failed: the password is not the one in
    /// its `pool_passwd` (which must also be the server's).
    PgpoolPasswordMismatch { user: String },
    /// `Sorry, too many clients already`: every pgpool-II child but `reserved_connections` is
    /// serving a client.
    PgpoolChildrenBusy,
    /// pgpool-II considers every backend down.
    PgpoolBackendsDown,
}

/// PgBouncer's refusals (1.18 `src/client.c`, `objects.c`, `server.c`; the `cached error`
/// form is PgBouncer ≥ 1.22's), each a whole message with at most one `%s`.
type MakeError = fn(&str) -> PoolerError;
const POOLER_TEMPLATES: &[(&str, MakeError)] = &[
    ("no such database: %s", |db| PoolerError::UnknownDatabase {
        database: db.to_owned(),
    }),
    ("unsupported startup parameter: %s", |param| {
        PoolerError::UnsupportedStartupParameter {
            parameter: param.to_owned(),
        }
    }),
    ("query_wait_timeout", |_| PoolerError::QueryWaitTimeout),
    ("no more connections allowed (max_client_conn)", |_| {
        PoolerError::PoolFull
    }),
    (
        "server login has been failing, try again later (server_login_retry)",
        |_| PoolerError::ServerLoginRetry { cached: None },
    ),
    (
        "server login has been failing, cached error: %s (server_login_retry)",
        |cached| PoolerError::ServerLoginRetry {
            cached: Some(cached.to_owned()),
        },
    ),
    (STATEMENT_MODE_REFUSAL, |_| {
        PoolerError::TransactionInStatementMode
    }),
    ("not allowed", |_| PoolerError::ConsoleNotAllowed),
    ("SASL authentication failed", |_| {
        PoolerError::PgBouncerPasswordRejected {
            method: "scram-sha-256",
            said: "SASL authentication failed",
        }
    }),
    ("password authentication failed", |_| {
        PoolerError::PgBouncerPasswordRejected {
            method: "md5 or plain",
            said: "password authentication failed",
        }
    }),
    // pgpool-II 4.3's own (src/auth/pool_auth.c, src/protocol/child.c), sent as XX000 or 53300.
    ("failed to authenticate with backend using %s", |method| {
        PoolerError::PgpoolNoPassword {
            method: method.to_owned(),
        }
    }),
    ("Sorry, too many clients already", |_| {
        PoolerError::PgpoolChildrenBusy
    }),
    (
        "all backend nodes are down, pgpool requires at least one valid node",
        |_| PoolerError::PgpoolBackendsDown,
    ),
];

/// pgpool-II's refusal of a wrong password: the message is a bare "authentication failed",
/// the detail says which.
const PGPOOL_AUTH_FAILED: &str = "authentication failed";
const PGPOOL_AUTH_FAILED_DETAIL: &str = "username \"%s\" or password does not exist in backend";

/// The `%s` of `template` in `text` when the whole text is the template, `""` for a template
/// without one; `None` when it is another text.
fn fill<'t>(template: &str, text: &'t str) -> Option<&'t str> {
    match template.split_once("%s") {
        Some((before, after)) => text.strip_prefix(before)?.strip_suffix(after),
        None if text == template => Some(""),
        None => None,
    }
}

impl PoolerError {
    /// Recognises a pooler's refusal; `None` for everything else (a server's own error).
    pub fn from_failure(failure: &FailureKind) -> Option<PoolerError> {
        // PgBouncer 1.18 sends every refusal as 08P01, and later versions use other SQLSTATEs
        // for some (53300, 57014): only the whole message tells them apart.
        let FailureKind::Server(e) = failure else {
            return None;
        };
        PoolerError::from_server_error(e)
    }

    /// [`PoolerError::from_message`], and the refusals told by their detail (pgpool-II's).
    pub fn from_server_error(e: &ServerError) -> Option<PoolerError> {
        if let Some(found) = PoolerError::from_message(&e.message) {
            return Some(found);
        }
        // A server never sends its login refusals as 08P01 (they are 28000, 28P01, 3D000,
        // 53300, 57P03...): under 08P01 they are a pooler relaying its own server login.
        if e.sqlstate == "08P01" && crate::diagnose::server_messages::is_login_refusal(&e.message) {
            return Some(PoolerError::ServerLoginRefused {
                server_said: e.message.clone(),
            });
        }
        if e.message.trim() != PGPOOL_AUTH_FAILED {
            return None;
        }
        let user = fill(PGPOOL_AUTH_FAILED_DETAIL, e.detail.as_deref()?.trim())?;
        Some(PoolerError::PgpoolPasswordMismatch {
            user: user.to_owned(),
        })
    }

    /// Matches a whole message against PgBouncer's templates (as its sources write them, `%s`
    /// for the one value), never a fragment, like `diagnose`'s map of server messages.
    pub fn from_message(message: &str) -> Option<PoolerError> {
        let message = message.trim();
        POOLER_TEMPLATES
            .iter()
            .find_map(|(template, make)| Some(make(fill(template, message)?)))
    }

    /// The proposed id for the `Code` enum (kebab-case).
    pub fn code(&self) -> &'static str {
        match self {
            PoolerError::UnknownDatabase { .. } => "pooler-unknown-database",
            PoolerError::UnsupportedStartupParameter { .. } => "pooler-startup-parameter",
            PoolerError::QueryWaitTimeout => "pooler-wait-timeout",
            PoolerError::PoolFull => "pooler-client-limit",
            PoolerError::ServerLoginRetry { .. } | PoolerError::ServerLoginRefused { .. } => {
                "pooler-server-login-failing"
            }
            PoolerError::TransactionInStatementMode => "pooler-statement-mode",
            PoolerError::ConsoleNotAllowed => "pooler-console-not-allowed",
            PoolerError::PgpoolNoPassword { .. } => "pgpool-no-password",
            PoolerError::PgpoolPasswordMismatch { .. }
            | PoolerError::PgBouncerPasswordRejected { .. } => "auth-failed",
            PoolerError::PgpoolChildrenBusy => "pgpool-children-busy",
            PoolerError::PgpoolBackendsDown => "pgpool-backends-down",
        }
    }

    /// The fix, as the user should read it.
    pub fn hint(&self) -> String {
        match self {
            PoolerError::UnknownDatabase { database } => format!(
                "PgBouncer has no entry for database \"{database}\": add `{database} = host=... port=... dbname={database}` \
                 under [databases] in pgbouncer.ini (or a `*` fallback line) and reload it (`RELOAD;` on the admin console)"
            ),
            PoolerError::UnsupportedStartupParameter { parameter } => format!(
                "PgBouncer does not pass on the startup parameter `{parameter}`: remove it from the URL, or add it to \
                 `ignore_startup_parameters` in pgbouncer.ini (set it per role instead: `ALTER ROLE ... SET ...`)"
            ),
            PoolerError::QueryWaitTimeout => "PgBouncer found no free server connection within `query_wait_timeout`: \
                 the pool is busy (raise `default_pool_size`/`pool_size`, or find long transactions in `SHOW POOLS`), \
                 or PgBouncer cannot reach or log in to the server (see its log)"
                .into(),
            PoolerError::PoolFull => "PgBouncer's `max_client_conn` is reached: raise it in pgbouncer.ini, or use \
                 fewer client connections (a smaller pool per app instance)"
                .into(),
            PoolerError::ServerLoginRetry { .. } => "PgBouncer's own login to the server is failing (see its log for \
                 the server's error) and it refuses clients for `server_login_retry` seconds: fix the server side \
                 ([databases] host/port/user, the auth_file or auth_query) and retry"
                .into(),
            PoolerError::ServerLoginRefused { server_said } => server_login_refused_hint(server_said),
            PoolerError::TransactionInStatementMode => "this PgBouncer pool runs in statement mode, which refuses \
                 transactions: use a pool in transaction or session mode for this app"
                .into(),
            PoolerError::ConsoleNotAllowed => "database \"pgbouncer\" is PgBouncer's admin console: list the user in \
                 `admin_users` or `stats_users` in pgbouncer.ini to use it"
                .into(),
            PoolerError::PgpoolNoPassword { method } => format!(
                "pgpool-II logs in to the server with {method} itself and needs the user's password for it: add the user to \
                 pgpool's pool_passwd (`pg_enc -m -k ~/.pgpoolkey -u USER -p`, or `USER:TEXTpassword`) and reload pgpool, \
                 or set `allow_clear_text_frontend_auth = on` (without pool_hba) so it asks the client"
            ),
            PoolerError::PgBouncerPasswordRejected { .. } => "PgBouncer checked the password itself, against the user's line in its \
                 auth_file (or what its auth_query returned), before any server saw it: use the right password in the URL, or, \
                 when the role's password changed on the server, update that line (a SCRAM secret as `SELECT rolpassword FROM \
                 pg_authid WHERE rolname = '...'` gives it, or the plaintext password) and reload PgBouncer (`RELOAD;` on its \
                 admin console); a user missing from the auth_file is refused the same way"
                .into(),
            PoolerError::PgpoolPasswordMismatch { user } => format!(
                "pgpool-II checked the password against its pool_passwd entry for \"{user}\": use the right password in the \
                 URL, or, when the role's password changed on the server, update pool_passwd (`pg_enc`) and reload pgpool"
            ),
            PoolerError::PgpoolChildrenBusy => "every pgpool-II child process but `reserved_connections` serves a client: \
                 open fewer client connections (the app pools together at most `num_init_children` - `reserved_connections`), \
                 or raise `num_init_children` in pgpool.conf and restart pgpool"
                .into(),
            PoolerError::PgpoolBackendsDown => "pgpool-II marks every backend down: start the servers, then attach them \
                 again (`pcp_attach_node`, or restart pgpool after removing its pgpool_status file); `SHOW pool_nodes` \
                 through pgpool lists each node's status"
                .into(),
        }
    }
}

/// The fix for a server refusal PgBouncer relayed from its own login. It comes under
/// PgBouncer's SQLSTATE, so the server's whole message says what it was; the fix is on the
/// pooler-to-server side, where PgBouncer's pool sizes stand in for the app's own.
fn server_login_refused_hint(server_said: &str) -> String {
    use crate::diagnose::server_messages::{Cause, classify_relayed};
    const AUTH: &str = "PgBouncer logs in to the server itself, as this user, with its [databases] entry (host, port, user) and \
         the password from its auth_file or auth_query, and the server refused that login: fix the \
         pooler-to-server side (the server's log names the pg_hba.conf line).";
    const POOL: &str = "PgBouncer opens up to `default_pool_size` (or the [databases] entry's `pool_size`) plus \
         `reserve_pool_size` server connections for each user and database, capped by `max_user_connections` and \
         `max_db_connections`";
    match classify_relayed(server_said) {
        // Peer compares the connecting process's OS user: PgBouncer's own.
        Some(Cause::MethodFailed { method: "peer" }) => format!(
            "{AUTH} PgBouncer reached a `local` (socket) line with `peer`, which checks PgBouncer's own OS user, not this \
             role: give the [databases] entry `host=127.0.0.1` (met by a `host` line with scram-sha-256), or a `local` \
             line with scram-sha-256 for this user, then `RELOAD;` on the admin console."
        ),
        Some(Cause::PasswordFailed) => format!(
            "{AUTH} The password PgBouncer has for this user (its auth_file, or what auth_query returns) is not the one \
             the server checks."
        ),
        Some(Cause::TooManyForRole) => format!(
            "the role's own CONNECTION LIMIT on the server is reached, and PgBouncer's connections count against it: \
             {POOL}. Raise the role's limit to at least that plus the connections made around PgBouncer (as a superuser, \
             `ALTER ROLE ... CONNECTION LIMIT n;`, -1 for none), or lower those PgBouncer settings and `RELOAD;`."
        ),
        Some(Cause::TooManyForDatabase) => format!(
            "the database's own CONNECTION LIMIT on the server is reached, and PgBouncer's connections count against it: \
             {POOL}. Raise the database's limit (as a superuser, `ALTER DATABASE ... CONNECTION LIMIT n;`, -1 for none), \
             or lower `max_db_connections` or the pool sizes in pgbouncer.ini and `RELOAD;`."
        ),
        Some(Cause::TooManyClients) => format!(
            "the server's max_connections is used up, PgBouncer's server connections included: {POOL}. Lower them \
             across all of PgBouncer's pools (with other clients of the server, their total must stay under \
             max_connections), close other clients, or raise max_connections (`ALTER SYSTEM SET max_connections = ...;`, \
             then restart PostgreSQL)."
        ),
        Some(Cause::RoleMissing) => "the server has no role by the name PgBouncer logs in with (the [databases] \
             entry's `user=`, else the client's user): create it on the server, or correct `user=` and `RELOAD;` \
             PgBouncer."
            .into(),
        Some(Cause::RoleNoLogin) => "the role PgBouncer logs in as may not log in on the server: as a superuser, \
             `ALTER ROLE ... LOGIN;`."
            .into(),
        Some(Cause::DatabaseMissing) => "the database PgBouncer's [databases] entry leads to (its `dbname=`, else \
             the client's database) does not exist on the server: create it there, or correct the entry and `RELOAD;` \
             PgBouncer."
            .into(),
        Some(Cause::DatabaseNotAccepting) => "the database PgBouncer's [databases] entry leads to does not allow \
             connections on the server: as a superuser, connected to another database, `ALTER DATABASE ... \
             ALLOW_CONNECTIONS true;`."
            .into(),
        Some(Cause::NoConnectPrivilege) => "the role PgBouncer logs in as lacks CONNECT on the database on the server: \
             as its owner or a superuser, `GRANT CONNECT ON DATABASE ... TO ...;`."
            .into(),
        Some(Cause::Starting | Cause::InRecovery | Cause::NotYetConsistent) => "the server PgBouncer logs in to is \
             starting up or in recovery and lets no connection in yet: wait, then run the check again (PgBouncer \
             tries its login again after `server_login_retry` seconds)."
            .into(),
        Some(Cause::ShuttingDown) => "the server PgBouncer logs in to is shutting down: if it is restarting, wait and \
             run the check again; otherwise start it again once it has stopped."
            .into(),
        Some(Cause::HotStandbyOff) => "the server PgBouncer logs in to is a standby with hot_standby = off, which lets \
             no connection in: point PgBouncer's [databases] entry at the primary, or set hot_standby = on there and \
             restart it."
            .into(),
        Some(Cause::ClientCertificateRequired | Cause::ClientCertificateRejected) => format!(
            "{AUTH} That line asks PgBouncer for a client certificate the server accepts: give PgBouncer one \
             (`server_tls_cert_file` and `server_tls_key_file` in pgbouncer.ini, with `server_tls_sslmode` at least \
             require), or change the line."
        ),
        Some(Cause::SuperuserOnly) => "the server lets only superusers in right now (it is shutting down, or in \
             binary-upgrade mode): wait until it is back, then run the check again."
            .into(),
        Some(Cause::SettingRejected { parameter }) => format!(
            "the server refused the setting `{parameter}` that PgBouncer passed on at login: remove it from the URL \
             (or add it to `ignore_startup_parameters` and set it per role: `ALTER ROLE ... SET ...`)."
        ),
        Some(Cause::HbaNoEntry { .. } | Cause::HbaRejects { .. } | Cause::MethodFailed { .. }) | None => AUTH.into(),
    }
}

impl fmt::Display for PoolerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolerError::UnknownDatabase { database } => {
                write!(f, "the pooler does not know database \"{database}\"")
            }
            PoolerError::UnsupportedStartupParameter { parameter } => {
                write!(f, "the pooler refused the startup parameter `{parameter}`")
            }
            PoolerError::QueryWaitTimeout => f.write_str(
                "the pooler gave up waiting for a server connection (query_wait_timeout)",
            ),
            PoolerError::PoolFull => {
                f.write_str("the pooler accepts no more clients (max_client_conn)")
            }
            PoolerError::ServerLoginRetry { cached: Some(e) } => {
                write!(
                    f,
                    "the pooler's logins to the server have been failing: {e}"
                )
            }
            PoolerError::ServerLoginRefused { server_said } => write!(
                f,
                "the pooler could not log in to the server for this user; the server said: {server_said}"
            ),
            PoolerError::ServerLoginRetry { cached: None } => f.write_str(
                "the pooler's logins to the server have been failing (server_login_retry)",
            ),
            PoolerError::TransactionInStatementMode => {
                f.write_str("the pooler refuses transactions (statement pooling)")
            }
            PoolerError::ConsoleNotAllowed => {
                f.write_str("the pooler's admin console refused this user")
            }
            PoolerError::PgpoolNoPassword { method } => write!(
                f,
                "pgpool-II has no password to log in to the server with {method} (\"failed to authenticate with backend using {method}\")"
            ),
            PoolerError::PgBouncerPasswordRejected { method, said } => write!(
                f,
                "PgBouncer rejected the password ({method}, PgBouncer's own check: \"{said}\")"
            ),
            PoolerError::PgpoolPasswordMismatch { user } => write!(
                f,
                "pgpool-II rejected the password for \"{user}\" (\"authentication failed\": username \"{user}\" or password does not exist in backend)"
            ),
            PoolerError::PgpoolChildrenBusy => {
                f.write_str("pgpool-II accepts no more clients (\"Sorry, too many clients already\")")
            }
            PoolerError::PgpoolBackendsDown => f.write_str(
                "pgpool-II has no backend up (\"all backend nodes are down, pgpool requires at least one valid node\")",
            ),
        }
    }
}

/// One piece of advice for an app's driver behind a pooler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverAdvice {
    /// Proposed code id for the `Code` enum.
    pub code: &'static str,
    pub problem: String,
    pub fix: String,
}

/// What `mode` means for the driver `driver` (ids: `asyncpg`, `sqlalchemy+asyncpg`,
/// `psycopg`, `sqlx`, `node-pg`; others get only the driver-independent advice).
/// Nothing for session mode: it behaves as a direct connection. `tracks_prepared` is
/// PgBouncer ≥ 1.21 with `max_prepared_statements` > 0 (`None`: not known).
pub fn driver_advice(
    kind: PoolerKind,
    mode: PoolMode,
    tracks_prepared: Option<bool>,
    driver: &str,
) -> Vec<DriverAdvice> {
    let mut out = Vec::new();
    if mode == PoolMode::Session {
        return out;
    }
    let pooling = format!("{kind} in {mode} mode");
    let prepared_ok = tracks_prepared == Some(true);
    let unless = if tracks_prepared.is_none() {
        " (unless it is PgBouncer ≥ 1.21 with `max_prepared_statements` set, which aksara could not read)"
    } else {
        ""
    };
    if !prepared_ok {
        let fix = match driver {
            "asyncpg" => Some("pass `statement_cache_size=0` to `asyncpg.connect()` / `create_pool()` (it is not a URL parameter)".to_owned()),
            "sqlalchemy+asyncpg" => Some(
                "`create_async_engine(url, connect_args={\"prepared_statement_cache_size\": 0, \"prepared_statement_name_func\": lambda: f\"__asyncpg_{uuid4()}__\"})`"
                    .to_owned(),
            ),
            // sqlx 0.9 names every prepared statement (`sqlx_s_N`) even with
            // `statement_cache_capacity(0)`, and then never closes it: only unnamed statements
            // are safe (tests/cli/pooler.rs shows both).
            "sqlx" => Some(
                "`.persistent(false)` on every `sqlx::query` (an unnamed statement), or `sqlx::raw_sql`; \
                 `statement_cache_capacity(0)` is not enough (sqlx still names each statement `sqlx_s_N`)"
                    .to_owned(),
            ),
            _ => None,
        };
        if let Some(fix) = fix {
            out.push(DriverAdvice {
                code: "pooler-prepared-statements",
                problem: format!(
                    "{driver} prepares and caches statements per connection; through {pooling} several app processes fail with \
                     `prepared statement \"__asyncpg_stmt_1__\" already exists` or `... does not exist`{unless}"
                ),
                fix,
            });
        }
    }
    out.push(DriverAdvice {
        code: "pooler-session-state",
        problem: format!(
            "through {pooling}, session state does not survive a transaction: `SET`, `search_path`, session advisory locks, \
             `LISTEN`, temporary tables and `WITH HOLD` cursors end up on (or leak to) another client's server connection"
        ),
        fix: "use `SET LOCAL` inside transactions, set defaults per role (`ALTER ROLE ... SET search_path = ...`), and run \
              migrations and anything needing locks or LISTEN through a direct URL"
            .into(),
    });
    if mode == PoolMode::Statement {
        out.push(DriverAdvice {
            code: "pooler-statement-mode",
            problem: format!("{pooling} refuses every multi-statement transaction (`BEGIN`)"),
            fix: "use a pool in transaction mode for an app that uses transactions".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pooler-server-login-failing` is not transient, so `doctor --wait` does not retry it:
    /// no hint for a refusal PgBouncer relays may offer `--wait`, whatever the server said.
    #[test]
    fn no_relayed_refusal_is_told_that_wait_retries_it() {
        assert!(!crate::code::Code::PoolerServerLoginFailing.is_transient());
        for template in crate::diagnose::server_messages::template_texts() {
            let said = template.replace("%s", "app");
            let hint = PoolerError::ServerLoginRefused {
                server_said: said.clone(),
            }
            .hint();
            assert!(!hint.contains("--wait"), "{said}: {hint}");
        }
    }

    fn signals(pid: u32, version: &str) -> LoginSignals {
        LoginSignals {
            announced_pid: pid,
            server_version: Some(version.into()),
            in_hot_standby: Some(false),
        }
    }

    #[test]
    fn the_first_look_uses_the_pid_the_version_and_the_host() {
        let local = Host::Tcp("127.0.0.1".into());
        assert_eq!(
            first_look(&signals(42, "15.18"), 42, &local),
            FirstLook::Direct
        );
        assert!(matches!(
            first_look(&signals(7, "15.18"), 42, &local),
            FirstLook::Pooler {
                kind: PoolerKind::Unidentified,
                evidence: Evidence::PidMismatch {
                    announced: 7,
                    backend: 42
                }
            }
        ));
        assert!(matches!(
            first_look(&signals(42, "1.18.0/bouncer"), 42, &local),
            FirstLook::Pooler {
                kind: PoolerKind::PgBouncer,
                ..
            }
        ));
        // Managed poolers by name, even where the pid is passed through (not measured here:
        // no such service is reachable from the test machine; names from their documentation).
        for (host, kind) in [
            (
                "aws-0-eu-central-1.pooler.supabase.com",
                PoolerKind::Supavisor,
            ),
            (
                "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech",
                PoolerKind::NeonPooler,
            ),
            (
                "app.proxy-abcdefghij.eu-west-1.rds.amazonaws.com",
                PoolerKind::RdsProxy,
            ),
        ] {
            let look = first_look(&signals(42, "15.18"), 42, &Host::Tcp(host.into()));
            assert!(
                matches!(look, FirstLook::Pooler { kind: k, .. } if k == kind),
                "{host}: {look:?}"
            );
        }
        let neon_direct = Host::Tcp("ep-cool-darkness-123456.us-east-2.aws.neon.tech".into());
        assert_eq!(
            first_look(&signals(42, "15.18"), 42, &neon_direct),
            FirstLook::Direct
        );
    }

    #[test]
    fn newer_pgbouncer_texts_are_recognised_too() {
        // PgBouncer ≥ 1.22 carries the server's error in the message.
        let e = PoolerError::from_message(
            "server login has been failing, cached error: password authentication failed for user \"app\" (server_login_retry)",
        );
        assert_eq!(
            e,
            Some(PoolerError::ServerLoginRetry {
                cached: Some("password authentication failed for user \"app\"".into())
            })
        );
        assert_eq!(
            PoolerError::from_message("database \"x\" does not exist"),
            None
        );
        assert_eq!(PoolMode::parse("transaction"), Some(PoolMode::Transaction));
    }

    #[test]
    fn pgpool_refusals_are_told_by_their_whole_text() {
        let server = |message: &str, detail: Option<&str>| ServerError {
            sqlstate: "XX000".into(),
            message: message.into(),
            detail: detail.map(str::to_owned),
            hint: None,
            routine: None,
        };
        assert_eq!(
            PoolerError::from_server_error(&server(
                "authentication failed",
                Some("username \"app\" or password does not exist in backend")
            )),
            Some(PoolerError::PgpoolPasswordMismatch { user: "app".into() })
        );
        // The bare message says nothing without pgpool's detail.
        assert_eq!(
            PoolerError::from_server_error(&server("authentication failed", Some("other"))),
            None
        );
        assert_eq!(
            PoolerError::from_message(
                "all backend nodes are down, pgpool requires at least one valid node"
            ),
            Some(PoolerError::PgpoolBackendsDown)
        );
        assert_eq!(
            PoolerError::from_message("failed to authenticate with backend using md5"),
            Some(PoolerError::PgpoolNoPassword {
                method: "md5".into()
            })
        );
        // PostgreSQL's own text is lowercase: not pgpool's.
        assert_eq!(
            PoolerError::from_message("sorry, too many clients already"),
            None
        );
        assert_eq!(PoolMode::parse(""), None);
    }
}
