//! `aksara doctor`: check a connection string step by step (URL, host, reach, TLS, login,
//! query, privileges, production advice), each step timed, and name the first failure with
//! its catalogue code and the fix for this machine. Exit 0 when nothing failed (warnings
//! allowed), 1 when a check failed, 2 for usage errors.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::PgSslMode;

use crate::cli::{DoctorArgs, OutputFormat};
use crate::connect::{self, Attempt, FailureKind};
use crate::diagnose::{self, Context, Diagnosis};
use crate::dsn::{ConnConfig, ConnString, Endpoint, Host, SslMode};
use crate::envfile;
use crate::error::{CliError, CliResult, Exit};
use crate::probe::{self, Answer};
use crate::sysenv::ProcessEnvironment;
use crate::ui::{Mark, Printer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub code: Option<&'static str>,
    pub message: String,
    pub hint: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFacts {
    pub version: String,
    pub version_num: i32,
    pub max_connections: i32,
    pub superuser_reserved_connections: i32,
    pub connections: i64,
    pub ssl: String,
    pub password_encryption: String,
    pub in_recovery: bool,
    /// Whether this connection uses TLS.
    pub connection_tls: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub source: String,
    pub url: String,
    pub checks: Vec<Check>,
    pub server: Option<ServerFacts>,
    /// About where the URL came from, e.g. the shell's DATABASE_URL shadowing the .env one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where the URL came from.
struct Target {
    source: String,
    raw: String,
    env_file: Option<PathBuf>,
    note: Option<String>,
}

pub async fn run(args: DoctorArgs, printer: &Printer) -> CliResult<Exit> {
    let targets = find_targets(&args)?;
    let env = ProcessEnvironment::load();
    if let Some(w) = env.pgpass_warning() {
        printer.warn(w);
    }
    let mut reports = Vec::new();
    // --quiet leaves out the header of a single target: the failing lines and the summary say it.
    let headers = !printer.is_quiet() || targets.len() > 1;
    for target in &targets {
        let report = check_target(target, &args, &env, printer, headers).await;
        reports.push(report);
    }
    let ok = reports.iter().all(|r| r.ok);
    if args.format == OutputFormat::Json {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&serde_json::json!({ "ok": ok, "targets": reports }))
        }
        .expect("the report serialises");
        printer.result(&json);
    } else if args.format == OutputFormat::Text && printer.is_verbose() {
        print_tools(printer);
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}

fn find_targets(args: &DoctorArgs) -> CliResult<Vec<Target>> {
    if let Some(url) = &args.url {
        return Ok(vec![Target {
            source: "--url".into(),
            raw: url.clone(),
            env_file: None,
            note: None,
        }]);
    }
    let path = &args.env.env_file;
    let shell_value = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty());
    match envfile::read_entries(path) {
        Ok(entries) => {
            let mut targets: Vec<Target> = entries
                .iter()
                .filter(|e| e.key == "DATABASE_URL" || e.key.ends_with("_DATABASE_URL"))
                .map(|e| {
                    let note = (e.key == "DATABASE_URL")
                        .then(|| shell_value.as_ref().filter(|v| **v != e.value))
                        .flatten()
                        .map(|_| {
                            "the shell also sets DATABASE_URL, to a different value; most frameworks use the shell's and ignore .env (dotenv does not override variables already set)".to_string()
                        });
                    Target {
                        source: format!("{} ({}, line {})", path.display(), e.key, e.line),
                        raw: e.value.clone(),
                        env_file: Some(path.clone()),
                        note,
                    }
                })
                .collect();
            // The last definition of a key is the one dotenv-style loaders keep; check each key once.
            let mut seen = std::collections::HashSet::new();
            targets.reverse();
            targets.retain(|t| {
                seen.insert(t.source.split(',').next().unwrap_or_default().to_string())
            });
            targets.reverse();
            if !targets.is_empty() {
                return Ok(targets);
            }
        }
        Err(e) if path.exists() => return Err(e.into()),
        Err(_) => {}
    }
    if let Some(url) = shell_value {
        return Ok(vec![Target {
            source: "the environment variable DATABASE_URL".into(),
            raw: url,
            env_file: None,
            note: None,
        }]);
    }
    Err(CliError::usage(format!(
        "no database URL to check: --url was not given, {} has no DATABASE_URL, and DATABASE_URL is not set",
        path.display()
    ))
    .with_hint("run `aksara dbsetup` to create the database and write DATABASE_URL, or pass --url"))
}

/// Runs the checks, printing each line as it completes (text format).
struct Checklist<'a> {
    printer: &'a Printer,
    text: bool,
    checks: Vec<Check>,
}

impl Checklist<'_> {
    fn push(&mut self, check: Check) {
        if self.text {
            let mark = match check.status {
                Status::Pass => Mark::Pass,
                Status::Warn => Mark::Warn,
                Status::Fail => Mark::Fail,
                Status::Skip => Mark::Skip,
            };
            let show =
                !self.printer.is_quiet() || matches!(check.status, Status::Fail | Status::Warn);
            if show {
                let code = check.code.map(|c| format!(" [{c}]")).unwrap_or_default();
                let timing = if check.status == Status::Skip {
                    String::new()
                } else {
                    format!(
                        "  {}",
                        self.printer.dim(&format!("{} ms", check.elapsed_ms))
                    )
                };
                self.printer.result(&format!(
                    "{} {:<11} {}{}{}",
                    self.printer.mark(mark),
                    title(check.id),
                    check.message,
                    code,
                    timing
                ));
                if let Some(hint) = &check.hint
                    && check.status != Status::Pass
                {
                    self.printer
                        .result(&format!("    {} {hint}", self.printer.bold("hint:")));
                }
            }
        }
        self.checks.push(check);
    }

    fn pass(&mut self, id: &'static str, message: String, started: Instant) {
        self.push(Check {
            id,
            status: Status::Pass,
            code: None,
            message,
            hint: None,
            elapsed_ms: ms(started),
        });
    }

    fn fail(&mut self, id: &'static str, d: Diagnosis, started: Instant) {
        self.push(Check {
            id,
            status: Status::Fail,
            code: Some(d.code),
            message: d.message,
            hint: Some(d.hint),
            elapsed_ms: ms(started),
        });
    }

    fn warn(
        &mut self,
        id: &'static str,
        code: Option<&'static str>,
        message: String,
        hint: String,
        started: Instant,
    ) {
        self.push(Check {
            id,
            status: Status::Warn,
            code,
            message,
            hint: Some(hint),
            elapsed_ms: ms(started),
        });
    }

    fn skip_rest(&mut self, ids: &[&'static str]) {
        for id in ids {
            if !self.checks.iter().any(|c| c.id == *id) {
                self.push(Check {
                    id,
                    status: Status::Skip,
                    code: None,
                    message: "skipped: an earlier check failed".into(),
                    hint: None,
                    elapsed_ms: 0,
                });
            }
        }
    }
}

const STEPS: &[&str] = &[
    "url",
    "host",
    "reach",
    "tls",
    "login",
    "query",
    "privileges",
];

fn title(id: &str) -> &'static str {
    match id {
        "url" => "URL",
        "host" => "Host",
        "reach" => "Reach",
        "tls" => "TLS",
        "login" => "Login",
        "query" => "Query",
        "privileges" => "Privileges",
        "ssl-remote" => "TLS remote",
        "env-git" => ".env git",
        "env-mode" => ".env mode",
        "connections" => "Connections",
        "pool" => "Pool size",
        _ => "Check",
    }
}

fn ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

async fn check_target(
    target: &Target,
    args: &DoctorArgs,
    env: &ProcessEnvironment,
    printer: &Printer,
    header: bool,
) -> Report {
    let text = args.format == OutputFormat::Text;
    let mut list = Checklist {
        printer,
        text,
        checks: Vec::new(),
    };
    let parsed = ConnString::parse(&target.raw);
    let redacted = match &parsed {
        Ok(cs) => cs.to_string(),
        Err(_) => "<unparsable>".to_string(),
    };
    if text && header {
        printer.result(&format!("{} {}", printer.bold("Checking"), target.source));
        printer.result(&format!("  {}", redacted));
    }
    if text && let Some(note) = &target.note {
        printer.result(&format!("  {} {note}", printer.yellow("note:")));
    }

    // 1. URL
    let started = Instant::now();
    let cfg = match parsed.and_then(|cs| cs.resolve(env).map(|cfg| (cs, cfg))) {
        Ok((cs, cfg)) => {
            let lints = lint(&target.raw, &cs);
            if lints.is_empty() {
                list.pass(
                    "url",
                    format!(
                        "parses: user \"{}\", database \"{}\", sslmode={}",
                        cfg.user, cfg.dbname, cfg.sslmode
                    ),
                    started,
                );
            } else {
                list.warn("url", None, format!("parses, but {}", lints.join("; ")), "remove or fix the parameters named; percent-encode special characters in the password".into(), started);
            }
            cfg
        }
        Err(e) => {
            let hint = e
                .hint()
                .unwrap_or_else(|| "fix the part the message points at".into());
            list.fail(
                "url",
                Diagnosis {
                    code: "invalid-url",
                    message: e.to_string(),
                    hint,
                },
                started,
            );
            list.skip_rest(STEPS);
            return finish(list, target, redacted, None, printer);
        }
    };
    let bound = connect::attempt_timeout(&cfg, Duration::from_secs(args.connect_timeout));
    let deadline = args.wait.map(|w| Instant::now() + Duration::from_secs(w));

    // 2-5, retried under --wait while the failure is one that waiting can fix.
    let mut spinner = None;
    let connected = loop {
        let mut attempt_list = Checklist {
            printer,
            text: false,
            checks: Vec::new(),
        };
        let outcome = connect_checks(&cfg, bound, &mut attempt_list).await;
        let failed_code = attempt_list
            .checks
            .iter()
            .find(|c| c.status == Status::Fail)
            .and_then(|c| c.code);
        let retry = match (failed_code, deadline) {
            (Some(code), Some(deadline)) => {
                diagnose::is_transient(code)
                    && Instant::now() + Duration::from_millis(250) < deadline
            }
            _ => false,
        };
        if retry {
            let waiting = format!(
                "Waiting for the server to accept connections ({})",
                failed_code.unwrap_or_default()
            );
            match &spinner {
                None => spinner = Some(printer.spinner(&waiting)),
                Some(s) => s.set_message(&waiting),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        drop(spinner.take());
        for check in attempt_list.checks {
            list.push(check);
        }
        break outcome;
    };
    let Some((mut connected, login_elapsed)) = connected else {
        list.skip_rest(STEPS);
        return finish(list, target, redacted, None, printer);
    };

    // 6-7. Query and privileges: every server fact and the create-table probe in one round
    // trip. The facts also tell whether the server offers TLS and whether this connection
    // uses it, which the reach and TLS lines state.
    let started = Instant::now();
    let spinner = printer.spinner("Querying the server");
    let facts = match tokio::time::timeout(bound, server_facts(&mut connected.conn)).await {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(e)) => Err((e.to_string(), "permission-denied")),
        Err(_) => Err((
            format!("no answer within {} s", bound.as_secs_f64()),
            "connection-timeout",
        )),
    };
    drop(spinner);
    let query_elapsed = ms(started);
    let tls_offer = match (&facts, &connected.endpoint.host) {
        (_, Host::Socket(_)) | (Err(_), _) => "",
        (Ok(f), _) if f.connection_tls || f.ssl == "on" => " (offers TLS)",
        (Ok(_), _) => " (no TLS)",
    };
    let mut answered: Vec<String> = connected
        .earlier
        .iter()
        .filter(|a| server_answered(&a.failure))
        .map(|a| a.endpoint.to_string())
        .collect();
    answered.dedup();
    answered.retain(|ep| *ep != connected.endpoint.to_string());
    let mut reach = format!("PostgreSQL answers at {}{tls_offer}", connected.endpoint);
    for ep in answered {
        reach.push_str(&format!("; PostgreSQL answers at {ep}"));
    }
    list.push(Check {
        id: "reach",
        status: Status::Pass,
        code: None,
        message: reach,
        hint: None,
        elapsed_ms: 0,
    });
    let tls_message = match (&facts, &connected.endpoint.host) {
        (_, Host::Socket(_)) => "not used (unix socket)".to_string(),
        (Ok(f), _) if f.connection_tls => format!("in use (sslmode={})", cfg.sslmode),
        (Ok(f), _) => format!("not used (sslmode={}, server ssl = {})", cfg.sslmode, f.ssl),
        (Err(_), _) => format!("sslmode={}", cfg.sslmode),
    };
    list.push(Check {
        id: "tls",
        status: Status::Pass,
        code: None,
        message: tls_message,
        hint: None,
        elapsed_ms: 0,
    });
    list.push(Check {
        id: "login",
        status: Status::Pass,
        code: None,
        message: format!(
            "logged in as \"{}\" to database \"{}\" at {}",
            cfg.user, cfg.dbname, connected.endpoint
        ),
        hint: None,
        elapsed_ms: login_elapsed,
    });
    let facts = match facts {
        Ok(f) => {
            list.push(Check {
                id: "query",
                status: Status::Pass,
                code: None,
                message: format!(
                    "PostgreSQL {} ({} of {} connections in use)",
                    short_version(&f.version),
                    f.connections,
                    f.max_connections
                ),
                hint: None,
                elapsed_ms: query_elapsed,
            });
            Some(f)
        }
        Err((e, code)) => {
            list.push(Check {
                id: "query",
                status: Status::Fail,
                code: Some(code),
                message: format!("reading the server settings failed: {e}"),
                hint: Some("see the server log for the statement's error".into()),
                elapsed_ms: query_elapsed,
            });
            None
        }
    };

    // The privilege probe ran in the same round trip (its time is the query's).
    let started = Instant::now();
    match can_create_table(&mut connected.conn, bound).await {
        Ok(()) => list.pass(
            "privileges",
            "can create tables (checked in a rolled-back transaction)".into(),
            started,
        ),
        Err(TableCheck::Unknown(message)) => list.warn(
            "privileges",
            None,
            format!("could not check whether user \"{}\" can create tables: {message}", cfg.user),
            "another session may hold a lock on schema public: look for it in pg_locks and pg_stat_activity".into(),
            started,
        ),
        Err(TableCheck::Denied(message)) => {
            let user = crate::provision::quote_ident(&cfg.user);
            let db = crate::provision::quote_ident(&cfg.dbname);
            list.warn(
                "privileges",
                Some("cannot-create-tables"),
                format!("user \"{}\" can log in but cannot create tables: {message}", cfg.user),
                format!("PostgreSQL 15 no longer lets every user create in schema public: as a superuser run `ALTER DATABASE {db} OWNER TO {user};` or, connected to that database, `GRANT USAGE, CREATE ON SCHEMA public TO {user};`"),
                started,
            );
        }
    }
    connect::close(connected.conn).await;

    // 8. Production checks (warnings only).
    production_checks(
        &mut list,
        &cfg,
        &connected.endpoint,
        facts.as_ref(),
        target,
        args,
    );
    finish(list, target, redacted, facts, printer)
}

/// Host, reach, TLS and login. Returns the connection when login succeeded.
async fn connect_checks(
    cfg: &ConnConfig,
    bound: Duration,
    list: &mut Checklist<'_>,
) -> Option<(connect::Connected, u64)> {
    // 2. Host
    let started = Instant::now();
    let spinner = list.printer.spinner("Resolving the host");
    let mut usable = Vec::new();
    let mut host_failure = None;
    for ep in &cfg.endpoints {
        match &ep.host {
            Host::Tcp(name) => {
                match tokio::time::timeout(bound, tokio::net::lookup_host((name.as_str(), ep.port)))
                    .await
                {
                    Ok(Ok(mut addrs)) => {
                        let first = addrs.next().map(|a| a.ip().to_string()).unwrap_or_default();
                        usable.push((ep.clone(), format!("{name} resolves to {first}")));
                    }
                    Ok(Err(e)) => {
                        host_failure = Some(Attempt {
                            endpoint: ep.clone(),
                            tls_mode: PgSslMode::Disable,
                            failure: FailureKind::Dns {
                                host: name.clone(),
                                message: e
                                    .to_string()
                                    .replace("failed to lookup address information: ", ""),
                            },
                            elapsed: started.elapsed(),
                        })
                    }
                    Err(_) => {
                        host_failure = Some(Attempt {
                            endpoint: ep.clone(),
                            tls_mode: PgSslMode::Disable,
                            failure: FailureKind::Timeout { after: bound },
                            elapsed: started.elapsed(),
                        })
                    }
                }
            }
            Host::Socket(_) => {
                let path = ep.socket_path().expect("socket endpoint");
                if path.exists() {
                    usable.push((ep.clone(), format!("socket {} exists", path.display())));
                } else {
                    host_failure = Some(Attempt {
                        endpoint: ep.clone(),
                        tls_mode: PgSslMode::Disable,
                        failure: FailureKind::SocketMissing,
                        elapsed: started.elapsed(),
                    });
                }
            }
        }
    }
    if usable.is_empty() {
        let attempt = host_failure.expect("no usable endpoint means a failure was recorded");
        let ctx = failure_context(&attempt).await;
        list.fail("host", diagnose::diagnose(cfg, &attempt, &ctx), started);
        return None;
    }
    list.pass(
        "host",
        usable
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        started,
    );

    // 3-5. Reach, TLS and login from one real connection attempt per host (with libpq's
    // sslmode fallbacks). A server that takes part in the login has answered, so the healthy
    // path opens a single connection; the reach line is written by the caller with what the
    // server says about TLS. Only a failure that leaves open whether anything PostgreSQL
    // answered costs a bare SSLRequest probe.
    let started = Instant::now();
    spinner.set_message("Reaching the server and logging in");
    let failure = match connect::connect(cfg, bound).await {
        Ok(connected) => return Some((connected, ms(started))),
        Err(failure) => failure,
    };
    let attempt = failure.last().clone();
    let answered: Vec<&Attempt> = failure
        .attempts
        .iter()
        .filter(|a| server_answered(&a.failure))
        .collect();
    if answered.is_empty() {
        let reach_failure = match &attempt.failure {
            FailureKind::Other { .. } => match probe::probe(&attempt.endpoint, bound).await {
                Answer::Postgres { tls } => {
                    // PostgreSQL is there; the login itself failed.
                    list.pass(
                        "reach",
                        format!(
                            "PostgreSQL answers at {}{}",
                            attempt.endpoint,
                            reach_tls_note(&attempt.endpoint, tls)
                        ),
                        started,
                    );
                    None
                }
                Answer::NotPostgres => Some(Attempt {
                    failure: FailureKind::Other {
                        message: "something answered, but it is not PostgreSQL".into(),
                    },
                    ..attempt.clone()
                }),
                Answer::Nothing(why) => Some(Attempt {
                    failure: nothing_there(&why, bound),
                    ..attempt.clone()
                }),
            },
            _ => Some(attempt.clone()),
        };
        if let Some(reach_failure) = reach_failure {
            let ctx = failure_context(&reach_failure).await;
            list.fail(
                "reach",
                diagnose::diagnose(cfg, &reach_failure, &ctx),
                started,
            );
            return None;
        }
    } else {
        let mut lines: Vec<String> = answered
            .iter()
            .map(|a| {
                // What the failure says about the server's TLS, when it says anything.
                let tls = match a.failure {
                    FailureKind::TlsUnsupported => reach_tls_note(&a.endpoint, false),
                    FailureKind::Certificate { .. } => reach_tls_note(&a.endpoint, true),
                    _ => "",
                };
                format!("PostgreSQL answers at {}{tls}", a.endpoint)
            })
            .collect();
        lines.dedup();
        let message = lines.join("; ");
        list.pass("reach", message, started);
    }

    let mut ctx = failure_context(&attempt).await;
    if is_plaintext_hba_rejection(&attempt.failure) {
        ctx.tls_would_be_accepted = Some(tls_would_pass_hba(cfg, &attempt.endpoint, bound).await);
    }
    let d = diagnose::diagnose(cfg, &attempt, &ctx);
    if d.code.starts_with("ssl-") {
        list.fail("tls", d, started);
    } else {
        list.push(Check {
            id: "tls",
            status: Status::Pass,
            code: None,
            message: tls_summary(cfg, &failure.attempts),
            hint: None,
            elapsed_ms: 0,
        });
        list.fail("login", d, started);
    }
    None
}

/// Whether the server took part in a failed attempt: it answered the SSLRequest or the
/// startup message (so PostgreSQL is reachable there).
fn server_answered(failure: &FailureKind) -> bool {
    matches!(
        failure,
        FailureKind::Server { .. } | FailureKind::TlsUnsupported | FailureKind::Certificate { .. }
    )
}

fn reach_tls_note(ep: &Endpoint, tls: bool) -> &'static str {
    match (&ep.host, tls) {
        (Host::Socket(_), _) => "",
        (Host::Tcp(_), true) => " (offers TLS)",
        (Host::Tcp(_), false) => " (no TLS)",
    }
}

/// A probe that found nothing, as the failure the catalogue names.
fn nothing_there(why: &str, bound: Duration) -> FailureKind {
    if why.contains("no answer within") {
        FailureKind::Timeout { after: bound }
    } else if why.contains("No such file") {
        FailureKind::SocketMissing
    } else {
        FailureKind::Refused
    }
}

/// What the failed attempts at the last endpoint did about TLS. Under `prefer` a plaintext
/// retry follows a TLS attempt that pg_hba rejected; both are worth saying.
fn tls_summary(cfg: &ConnConfig, attempts: &[Attempt]) -> String {
    let last = attempts.last().expect("a failure has attempts");
    if matches!(last.endpoint.host, Host::Socket(_)) {
        return "not used (unix socket)".into();
    }
    let at_endpoint: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.endpoint == last.endpoint)
        .collect();
    let tried_tls = at_endpoint
        .iter()
        .any(|a| !matches!(a.tls_mode, PgSslMode::Disable));
    let tried_plain = at_endpoint
        .iter()
        .any(|a| matches!(a.tls_mode, PgSslMode::Disable));
    match (tried_tls, tried_plain) {
        (true, true) => format!("tried with and without TLS (sslmode={})", cfg.sslmode),
        (false, _) => format!("not attempted (sslmode={})", cfg.sslmode),
        (true, false) if cfg.sslmode == SslMode::Prefer => {
            "sslmode=prefer: TLS when the server offers it".into()
        }
        (true, false) => format!("negotiated (sslmode={})", cfg.sslmode),
    }
}

fn is_plaintext_hba_rejection(failure: &FailureKind) -> bool {
    matches!(failure, FailureKind::Server { code, message, .. } if code == "28000" && message.contains("pg_hba.conf") && message.ends_with("no encryption"))
}

/// Would pg_hba let a TLS connection through? Told by a second attempt with sslmode=require:
/// any answer but the same pg_hba rejection means TLS is the missing piece.
async fn tls_would_pass_hba(cfg: &ConnConfig, ep: &Endpoint, bound: Duration) -> bool {
    if matches!(ep.host, Host::Socket(_)) {
        return false;
    }
    match connect::attempt(cfg, ep, PgSslMode::Require, bound).await {
        Ok(conn) => {
            connect::close(conn).await;
            true
        }
        Err(FailureKind::Server { code, message, .. }) => {
            !(code == "28000" && message.contains("pg_hba.conf"))
        }
        Err(_) => false,
    }
}

/// Nearby servers and the start command, for a refused connection.
async fn failure_context(attempt: &Attempt) -> Context {
    let mut ctx = Context::default();
    // Only "nothing listens there" hints at other servers and at starting one; a timeout's
    // hint is about the network, and its report should not wait for more probing.
    if matches!(
        attempt.failure,
        FailureKind::Refused | FailureKind::SocketMissing
    ) {
        let candidates: Vec<_> = probe::local_candidates()
            .into_iter()
            .filter(|c| c.endpoint != attempt.endpoint)
            .collect();
        let found = probe::probe_all(candidates, Duration::from_millis(300)).await;
        let mut seen_ports = std::collections::BTreeSet::new();
        for p in found {
            if matches!(p.answer, Answer::Postgres { .. })
                && seen_ports.insert((
                    matches!(p.candidate.endpoint.host, Host::Socket(_)),
                    p.candidate.endpoint.port,
                ))
            {
                ctx.nearby.push(p.candidate.endpoint.to_string());
            }
        }
        // This project's own server (aksara started it) comes back with `aksara dbserver
        // start`, not with the OS's service.
        // A stopped container that publishes the port comes back with `docker start`.
        let project = std::env::current_dir()
            .ok()
            .and_then(|dir| crate::projectserver::start_command_for(&attempt.endpoint, &dir));
        ctx.start_command = match project {
            Some(cmd) => Some(cmd),
            None => {
                match crate::docker::stopped_container_publishing(attempt.endpoint.port).await {
                    Some(name) => Some(format!("docker start {name}")),
                    None => diagnose::start_command(attempt.endpoint.port),
                }
            }
        };
    }
    ctx
}

/// Parameters the driver would ignore, and a password that moved the host.
fn lint(raw: &str, cs: &ConnString) -> Vec<String> {
    let mut out = Vec::new();
    if !cs.unknown.is_empty() {
        let names: Vec<_> = cs.unknown.iter().map(|(k, _)| k.as_str()).collect();
        out.push(format!(
            "PostgreSQL drivers ignore the parameter(s) {}",
            names.join(", ")
        ));
    }
    if let Some(rest) = raw.split_once("://").map(|(_, r)| r) {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.matches('@').count() > 1 {
            out.push("the user/password part holds an unencoded @ (write it as %40)".into());
        }
    }
    out
}

/// Every server fact the report shows, in one row. The connection counts and this session's
/// TLS come from the functions behind `pg_stat_database` and `pg_stat_ssl` (the same values):
/// a fresh backend then has no views to load and rewrite, ~0.4 ms less (bench/NOTES.md).
const FACTS_SQL: &str = "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
        current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, \
        (SELECT sum(pg_stat_get_db_numbackends(oid))::bigint FROM pg_database), \
        current_setting('ssl'), current_setting('password_encryption'), pg_is_in_recovery(), \
        (SELECT ssl FROM pg_stat_get_activity(pg_backend_pid()))";

/// Every server fact in one simple-query round trip.
async fn server_facts(conn: &mut sqlx::PgConnection) -> Result<ServerFacts, sqlx::Error> {
    let row = sqlx::raw_sql(FACTS_SQL).fetch_one(&mut *conn).await?;
    facts_from_row(&row)
}

fn facts_from_row(row: &sqlx::postgres::PgRow) -> Result<ServerFacts, sqlx::Error> {
    use sqlx::Row as _;
    Ok(ServerFacts {
        version: row.try_get(0)?,
        version_num: row.try_get(1)?,
        max_connections: row.try_get(2)?,
        superuser_reserved_connections: row.try_get(3)?,
        connections: row.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
        ssl: row.try_get(5)?,
        password_encryption: row.try_get(6)?,
        in_recovery: row.try_get(7)?,
        connection_tls: row.try_get::<Option<bool>, _>(8)?.unwrap_or(false),
    })
}

/// Why [`can_create_table`] could not prove the privilege.
#[derive(Debug)]
pub enum TableCheck {
    /// The server refused: the role may not create tables there.
    Denied(String),
    /// No verdict: the statement waited too long for a lock, or the connection was lost.
    Unknown(String),
}

/// Create and drop a table inside a transaction that is rolled back: proves the privilege
/// without leaving anything behind. Bounded by `limit` on both sides: the server cancels a
/// wait for a lock (another session's DDL on schema public) and the client stops waiting for
/// a server that does not answer.
pub async fn can_create_table(
    conn: &mut sqlx::PgConnection,
    limit: Duration,
) -> Result<(), TableCheck> {
    let ms = limit.as_millis().max(1);
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms}; \
         CREATE TABLE aksara_privilege_probe (id int); DROP TABLE aksara_privilege_probe; ROLLBACK"
    );
    let bound = limit + Duration::from_secs(2);
    let result = tokio::time::timeout(
        bound,
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn),
    )
    .await;
    let error = match result {
        Ok(Ok(_)) => return Ok(()),
        Err(_) => {
            return Err(TableCheck::Unknown(format!(
                "the server did not answer within {} s",
                bound.as_secs()
            )));
        }
        Ok(Err(e)) => e,
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn),
    )
    .await;
    Err(match connect::classify(error) {
        FailureKind::Server { code, message, .. } if code == "55P03" || code == "57014" => {
            TableCheck::Unknown(format!(
                "CREATE TABLE waited over {} s for a lock another session holds ({message})",
                limit.as_secs().max(1)
            ))
        }
        // Shutdown, termination, lost connection: says nothing about privileges.
        FailureKind::Server { code, message, .. }
            if code.starts_with("57") || code.starts_with("08") =>
        {
            TableCheck::Unknown(format!("{message} (SQLSTATE {code})"))
        }
        FailureKind::Server { message, .. } => TableCheck::Denied(message),
        other => TableCheck::Unknown(other.to_string()),
    })
}

fn short_version(version: &str) -> &str {
    version.split_whitespace().next().unwrap_or(version)
}

fn production_checks(
    list: &mut Checklist<'_>,
    cfg: &ConnConfig,
    endpoint: &Endpoint,
    facts: Option<&ServerFacts>,
    target: &Target,
    args: &DoctorArgs,
) {
    if let Some((message, hint)) = remote_without_tls(endpoint, cfg.sslmode) {
        list.warn(
            "ssl-remote",
            Some("ssl-not-used-remote"),
            message,
            hint,
            Instant::now(),
        );
    }
    if let Some(path) = &target.env_file {
        let started = Instant::now();
        if let envfile::GitIgnoreStatus::NotIgnored { repo_root } = envfile::git_ignore_status(path)
        {
            list.warn(
                "env-git",
                Some("env-not-ignored"),
                format!(
                    "{} holds the database password and git does not ignore it",
                    path.display()
                ),
                format!(
                    "add it to {}: `echo {} >> {}`",
                    repo_root.join(".gitignore").display(),
                    file_name(path),
                    repo_root.join(".gitignore").display()
                ),
                started,
            )
        }
        if envfile::readable_by_others(path).unwrap_or(false) {
            list.warn(
                "env-mode",
                Some("env-world-readable"),
                format!(
                    "{} is readable by other users on this machine",
                    path.display()
                ),
                format!("`chmod 600 {}`", path.display()),
                Instant::now(),
            );
        }
    }
    if let Some(f) = facts {
        let usable = (f.max_connections - f.superuser_reserved_connections).max(0) as i64;
        if usable > 0 && f.connections * 10 >= usable * 8 {
            list.warn(
                "connections",
                Some("connections-near-limit"),
                format!(
                    "{} of {} usable connections are in use",
                    f.connections, usable
                ),
                "close idle connections (look at pg_stat_activity) or raise max_connections".into(),
                Instant::now(),
            );
        }
        let wanted = args.pool_max as i64 * args.instances as i64;
        if wanted > usable {
            list.warn(
                "pool",
                Some("pool-exceeds-connections"),
                format!("{} instance(s) × pool_max_size {} = {wanted} connections, but the server allows {usable} (max_connections {} − {} reserved)", args.instances, args.pool_max, f.max_connections, f.superuser_reserved_connections),
                format!("keep instances × pool_max_size ≤ {usable}: e.g. pool_max_size {} per instance; workloads: development 2–5, small production 5–20, medium 10–50, high traffic 20–100 (raise max_connections for those)", (usable / args.instances.max(1) as i64).max(1)),
                Instant::now(),
            );
        }
    }
}

/// A remote server reached without requiring TLS: credentials and data cross the network in
/// the clear (or to whoever answers, since nothing is verified).
fn remote_without_tls(endpoint: &Endpoint, sslmode: SslMode) -> Option<(String, String)> {
    (!endpoint.is_local() && !sslmode.requires_tls()).then(|| {
        (
            format!("{endpoint} is a remote host and sslmode={sslmode} does not require TLS"),
            "add ?sslmode=require to the URL (or verify-full with sslrootcert) so credentials and data are encrypted".to_string(),
        )
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| ".env".into())
}

fn finish(
    list: Checklist<'_>,
    target: &Target,
    url: String,
    server: Option<ServerFacts>,
    printer: &Printer,
) -> Report {
    let failed: Vec<_> = list
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .collect();
    let warned = list
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .count();
    let ok = failed.is_empty();
    if list.text {
        let summary = if ok && warned == 0 {
            format!("{} all checks passed", printer.mark(Mark::Pass))
        } else if ok {
            format!(
                "{} connection works, {warned} warning(s)",
                printer.mark(Mark::Warn)
            )
        } else {
            let codes: Vec<_> = failed.iter().filter_map(|c| c.code).collect();
            format!("{} failed: {}", printer.mark(Mark::Fail), codes.join(", "))
        };
        printer.result(&summary);
        if !printer.is_quiet() {
            printer.result("");
        }
    }
    Report {
        ok,
        source: target.source.clone(),
        url,
        checks: list.checks,
        server,
        note: target.note.clone(),
    }
}

fn print_tools(printer: &Printer) {
    printer.result("Installed tools:");
    for tool in ["psql", "pg_ctl", "postgres", "pg_isready", "docker"] {
        match which::which(tool) {
            Ok(path) => {
                let version = std::process::Command::new(&path)
                    .arg("--version")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .ok()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .unwrap_or_default();
                printer.result(&format!(
                    "  {tool:<11} {} {}",
                    path.display(),
                    printer.dim(&version)
                ));
            }
            Err(_) => printer.result(&format!("  {tool:<11} not found")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_host_without_required_tls_is_warned_about() {
        let remote = Endpoint {
            host: Host::Tcp("db.example.com".into()),
            port: 5432,
        };
        let (message, hint) = remote_without_tls(&remote, SslMode::Prefer).expect("a warning");
        assert!(
            message.contains("db.example.com:5432") && message.contains("sslmode=prefer"),
            "{message}"
        );
        assert!(hint.contains("sslmode=require"));
        assert!(remote_without_tls(&remote, SslMode::Require).is_none());
        assert!(remote_without_tls(&remote, SslMode::VerifyFull).is_none());
        let local = Endpoint {
            host: Host::Tcp("localhost".into()),
            port: 5432,
        };
        assert!(remote_without_tls(&local, SslMode::Disable).is_none());
        let socket = Endpoint {
            host: Host::Socket("/var/run/postgresql".into()),
            port: 5432,
        };
        assert!(remote_without_tls(&socket, SslMode::Disable).is_none());
    }

    #[test]
    fn lint_names_ignored_parameters_and_a_moved_host() {
        let raw = "postgresql://app:p@ss@localhost/db?schema=public";
        let cs = ConnString::parse("postgresql://app:p%40ss@localhost/db?schema=public").unwrap();
        let lints = lint(raw, &cs);
        assert!(lints.iter().any(|l| l.contains("schema")), "{lints:?}");
        assert!(lints.iter().any(|l| l.contains("unencoded @")), "{lints:?}");
    }
}
