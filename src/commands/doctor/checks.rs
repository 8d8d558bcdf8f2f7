//! The connection checks of one URL, in order: URL, host, reach, TLS, login, query,
//! privileges, then the production checks. Each result goes to the reporter as it is known;
//! the healthy path opens one connection, and extra probing happens only after a failure.

use std::time::{Duration, Instant};

use sqlx::postgres::PgSslMode;

use super::failure::{failure_context, login_failure_checks, server_answered};
use super::production::{Answered, lint, production_checks};
use super::report::{Check, CheckId, Report, Reporter, Status};
use super::targets::Target;
use super::tls_lines::{self, SessionView};
use crate::cli::DoctorArgs;
use crate::code::Code;
use crate::connect::{self, Attempt, FailureKind};
use crate::diagnose::{self, Diagnosis};
use crate::dsn::{ConnConfig, ConnString, Endpoint, Host};
use crate::session::{self, ServerFacts};
use crate::sysenv::ProcessEnvironment;

/// The checks of one URL so far, each also handed to the reporter as it is recorded.
pub struct Checklist<'r> {
    reporter: &'r mut dyn Reporter,
    pub checks: Vec<Check>,
    /// What would give the role a place for its tables (a grant, or a schema to create), as
    /// the Privileges line's failure path read it (for `--fix`).
    pub creation_fix: Option<crate::creation::CreationFix>,
}

impl<'r> Checklist<'r> {
    pub fn new(reporter: &'r mut dyn Reporter) -> Checklist<'r> {
        Checklist {
            reporter,
            checks: Vec::new(),
            creation_fix: None,
        }
    }

    pub fn record(&mut self, check: Check) {
        self.reporter.check(&check);
        self.checks.push(check);
    }

    pub fn waiting(&mut self, what: &str) {
        self.reporter.waiting(what);
    }

    pub fn warn(
        &mut self,
        id: CheckId,
        code: Option<Code>,
        message: String,
        hint: String,
        elapsed: Option<u64>,
    ) {
        self.record(Check {
            id,
            status: Status::Warn,
            code,
            message,
            hint: Some(hint),
            elapsed_ms: elapsed,
        });
    }

    fn skip_rest(&mut self) {
        for id in CheckId::CONNECTION_STEPS {
            if !self.checks.iter().any(|c| c.id == *id) {
                self.record(Check {
                    id: *id,
                    status: Status::Skip,
                    code: None,
                    message: "skipped: an earlier check failed".into(),
                    hint: None,
                    elapsed_ms: None,
                });
            }
        }
    }
}

pub fn pass(id: CheckId, message: String, elapsed: Option<u64>) -> Check {
    Check {
        id,
        status: Status::Pass,
        code: None,
        message,
        hint: None,
        elapsed_ms: elapsed,
    }
}

pub fn fail(id: CheckId, d: Diagnosis, elapsed: Option<u64>) -> Check {
    Check {
        id,
        status: Status::Fail,
        code: Some(d.code),
        message: d.message,
        hint: Some(d.hint),
        elapsed_ms: elapsed,
    }
}

pub fn ms(started: Instant) -> Option<u64> {
    millis(started.elapsed())
}

/// A measured duration as the reports show it.
pub fn millis(took: Duration) -> Option<u64> {
    Some(took.as_millis() as u64)
}

/// Check one URL; every result is reported as it is known.
pub async fn check_target(
    target: &Target,
    args: &DoctorArgs,
    env: &ProcessEnvironment,
    reporter: &mut dyn Reporter,
) -> Report {
    let parsed = ConnString::parse(&target.raw);
    let redacted = match &parsed {
        Ok(cs) => cs.to_string(),
        Err(_) => "<unparsable>".to_string(),
    };
    // A driver's own form is shown as written (in its driver's spelling), not as libpq reads it.
    let shown = target
        .driver_form
        .as_ref()
        .map_or(redacted, |form| form.shown.clone());
    reporter.target(&target.source, &shown, target.note.as_deref());
    let mut list = Checklist::new(reporter);
    let server = check_url(target, args, env, parsed, &mut list).await;
    let checks = std::mem::take(&mut list.checks);
    let report = Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        source: target.source.clone(),
        url: shown,
        checks,
        server,
        note: target.note.clone(),
        creation_fix: list.creation_fix.take(),
    };
    reporter.finished(&report);
    report
}

async fn check_url(
    target: &Target,
    args: &DoctorArgs,
    env: &ProcessEnvironment,
    parsed: Result<ConnString, crate::dsn::DsnError>,
    list: &mut Checklist<'_>,
) -> Option<ServerFacts> {
    let started = Instant::now();
    let cfg = match parsed.and_then(|cs| cs.resolve(env).map(|cfg| (cs, cfg))) {
        Ok((cs, mut cfg)) => {
            cfg.allow_cleartext = args.allow_cleartext;
            let lints = lint(&target.raw, &cs);
            let message = format!(
                "parses: user \"{}\", database \"{}\", sslmode={}{}",
                cfg.user,
                cfg.dbname,
                cfg.sslmode,
                taken_from_environment(&target.raw, env)
            );
            if lints.is_empty() {
                list.record(pass(CheckId::Url, message, ms(started)));
            } else {
                list.warn(CheckId::Url, None, format!("parses, but {}", lints.join("; ")), "percent-encode the @ in the password (%40), or libpq takes what follows it as the host".into(), ms(started));
            }
            driver_checks(target, args, env, list);
            cfg
        }
        Err(e) => {
            let hint = e
                .hint()
                .unwrap_or_else(|| "fix the part the message points at".into());
            let d = Diagnosis {
                code: Code::InvalidUrl,
                message: e.to_string(),
                hint,
            };
            list.record(fail(CheckId::Url, d, ms(started)));
            // A scheme for another tool (`postgresql+asyncpg://`, `jdbc:`) is what the drivers'
            // lines explain; any other unparsable URL would only fail there again.
            if is_scheme_variant(&target.raw) {
                driver_checks(target, args, env, list);
            }
            list.skip_rest();
            return None;
        }
    };
    // Whether git would commit the .env: asked now that there is a server to check, so its
    // answer comes while the server answers.
    let git = crate::envfile::PendingGitStatus::start(target.env_file.as_deref());
    let bound = connect::attempt_timeout(&cfg, Duration::from_secs(args.connect_timeout));
    let replica_key = crate::replica::replica_key(target.key.as_deref());
    let expects_replica = replica_key.is_some();
    let Some((mut connected, login_ms)) =
        connect_waiting(&cfg, bound, args.wait, replica_key, list).await
    else {
        list.skip_rest();
        return None;
    };
    let facts = session_checks(&cfg, &mut connected, login_ms, bound, expects_replica, list).await;
    let pooler = match &facts {
        Some(f) => {
            super::topology::topology_checks(target, args, &cfg, &mut connected, f, bound, list)
                .await
        }
        None => None,
    };
    connect::close(connected.conn).await;
    production_checks(
        list,
        &cfg,
        &connected.endpoint,
        Answered {
            facts: facts.as_ref(),
            pooler: pooler.as_ref(),
        },
        target,
        args,
        git,
    );
    facts
}

/// ` (PGUSER, PGDATABASE from this shell's environment: the URL leaves them out)`: what of the
/// checked target is this shell's and not the URL's, so an app started without those
/// variables (a service, a container) is not promised the same connection. Empty when the URL
/// says it all.
fn taken_from_environment(raw: &str, env: &ProcessEnvironment) -> String {
    let taken = crate::drivers::environment::taken_by_libpq(raw, &|name| env.var_nonempty(name));
    match taken.len() {
        0 => String::new(),
        n => format!(
            " ({} from this shell's environment: the URL leaves {} out)",
            taken.join(", "),
            if n == 1 { "it" } else { "them" }
        ),
    }
}

fn is_scheme_variant(raw: &str) -> bool {
    let lower = raw.trim_start().to_ascii_lowercase();
    lower.starts_with("jdbc:") || lower.starts_with("postgresql+") || lower.starts_with("postgres+")
}

/// What each of the application's drivers makes of the URL: pure, no connection. A driver
/// that cannot use the URL is a failure (the app would not connect), with the rewritten URL.
fn driver_checks(
    target: &Target,
    args: &DoctorArgs,
    env: &ProcessEnvironment,
    list: &mut Checklist<'_>,
) {
    // A driver's own form (`dbsetup --driver-url`) is for that driver alone.
    let (raw, drivers) = match &target.driver_form {
        Some(form) => (form.value.as_str(), vec![form.driver]),
        None => (target.raw.as_str(), super::drivers_for(args)),
    };
    let var = |name: &str| env.var_nonempty(name);
    for line in crate::drivers::lines(raw, &drivers) {
        let line = line.in_environment(raw, &var);
        if let Some(check) = default_user_check(raw, &line, env) {
            list.record(check);
            continue;
        }
        let elsewhere = target
            .forms_elsewhere
            .iter()
            .find(|(driver, _)| *driver == line.driver);
        let check = match (&line.verdict, elsewhere) {
            // The file holds this driver's own form under another key: say what this URL
            // would do to it and where its form is, without failing a setup that is right
            // when the app hands that driver the other key.
            (crate::drivers::Verdict::Problem(problem), Some((_, place))) => pass(
                CheckId::Driver,
                format!(
                    "{}: {place} is its own form (checked on its own); this URL as is: {}",
                    line.driver.id(),
                    problem.message
                ),
                None,
            ),
            (verdict, _) => driver_check(&line, verdict),
        };
        list.record(check);
    }
}

/// A driver that reads no user from the URL logs in as its own default: a failure when that is
/// not libpq's (the one every other check used), with the URL that names libpq's user.
fn default_user_check(
    raw: &str,
    line: &crate::drivers::DriverLine,
    env: &ProcessEnvironment,
) -> Option<Check> {
    use crate::drivers::default_user::default_user;
    let crate::drivers::Verdict::Ok(reading) = &line.verdict else {
        return None;
    };
    if reading.user.is_some() {
        return None;
    }
    let var = |name: &str| env.var_nonempty(name);
    let os_user = crate::dsn::Environment::os_user(env);
    let libpq = default_user(crate::drivers::Driver::Libpq, &var, os_user.as_deref())?;
    let theirs = default_user(line.driver, &var, os_user.as_deref())?;
    if theirs.name == libpq.name {
        return None;
    }
    // The URL with the user in it, shown only where this driver's model reads that user back.
    let named = ConnString::parse(raw)
        .ok()
        .map(|mut cs| {
            cs.user = Some(libpq.name.clone());
            cs.to_string()
        })
        .filter(|url| {
            crate::drivers::lines(url, &[line.driver]).iter().all(|l| {
                matches!(&l.verdict, crate::drivers::Verdict::Ok(r) if r.user.as_deref() == Some(libpq.name.as_str()))
            })
        });
    let hint = match named {
        Some(url) => format!(
            "use `{url}` for {} (or set PGUSER, which every driver reads)",
            line.driver.name()
        ),
        None => format!(
            "name the user \"{}\" in the URL for {} (or set PGUSER, which every driver reads)",
            libpq.name,
            line.driver.name()
        ),
    };
    Some(Check {
        id: CheckId::Driver,
        status: Status::Fail,
        code: Some(Code::DriverMisreadsUrl),
        message: format!(
            "{}: the URL names no user, so it logs in as \"{}\" ({}), not \"{}\" as libpq does ({})",
            line.driver.id(),
            theirs.name,
            theirs.from,
            libpq.name,
            libpq.from
        ),
        hint: Some(hint),
        elapsed_ms: None,
    })
}

fn driver_check(line: &crate::drivers::DriverLine, verdict: &crate::drivers::Verdict) -> Check {
    match verdict {
        // Doctor's connection took parts from PG* variables that this driver does not (Prisma,
        // JDBC; asyncpg's database after a bare `/`): the app connects elsewhere than checked.
        crate::drivers::Verdict::Ok(_) if !line.environment.not_read.is_empty() => Check {
            id: CheckId::Driver,
            status: Status::Warn,
            code: Some(Code::DriverIgnoresEnvironment),
            message: line.headline(),
            hint: Some(format!(
                "put what {} says in the URL itself: {} does not take it from the environment for this URL, and an app started without this shell's variables (a service, a container) would not have it either",
                line.environment.not_read.join(", "),
                line.driver.name()
            )),
            elapsed_ms: None,
        },
        crate::drivers::Verdict::Ok(_) => pass(CheckId::Driver, line.headline(), None),
        crate::drivers::Verdict::Problem(problem) => Check {
            id: CheckId::Driver,
            status: match problem.code.severity() {
                crate::code::Severity::Failure => Status::Fail,
                crate::code::Severity::Warning => Status::Warn,
            },
            code: Some(problem.code),
            message: line.headline(),
            hint: line.hint(),
            elapsed_ms: None,
        },
    }
}

/// Host, reach, TLS and login, retried under `--wait` while the failure is one waiting can fix.
async fn connect_waiting(
    cfg: &ConnConfig,
    bound: Duration,
    wait: Option<u64>,
    replica_key: Option<&str>,
    list: &mut Checklist<'_>,
) -> Option<(connect::Connected, Option<u64>)> {
    let deadline = wait.map(|w| Instant::now() + Duration::from_secs(w));
    loop {
        let mut attempt_checks = Vec::new();
        let outcome = connect_checks(cfg, bound, &mut attempt_checks, list).await;
        let failed = attempt_checks
            .iter()
            .find(|c| c.status == Status::Fail)
            .and_then(|c| c.code);
        let retry = match (failed, deadline) {
            (Some(code), Some(deadline)) => {
                code.is_transient() && Instant::now() + Duration::from_millis(250) < deadline
            }
            _ => false,
        };
        if let (true, Some(code)) = (retry, failed) {
            list.waiting(&format!(
                "Waiting for the server to accept connections ({code})"
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for mut check in attempt_checks {
            if let (Some(key), Some(code)) = (replica_key, check.code)
                && crate::replica::remedy_is_on_the_primary(code)
            {
                let note = crate::replica::on_the_primary_note(key);
                check.hint = Some(match check.hint.take() {
                    Some(hint) => format!("{hint}; {note}"),
                    None => note,
                });
            }
            list.record(check);
        }
        return outcome;
    }
}

/// Query and privileges on the logged-in session, and the reach/TLS/login lines that the
/// server's facts complete (whether it offers TLS, whether this session uses it).
async fn session_checks(
    cfg: &ConnConfig,
    connected: &mut connect::Connected,
    login_ms: Option<u64>,
    bound: Duration,
    expects_replica: bool,
    list: &mut Checklist<'_>,
) -> Option<ServerFacts> {
    list.waiting("Querying the server");
    // The facts and the create-table probe in one round trip, timed together (the server
    // answers both at once): the Query line has the time, the Privileges line none of its own.
    // Doctor runs nothing more on a direct server's session and closes it after these checks:
    // topology_checks queries only behind a pooler signal (answers_directly says no, and the
    // probe's transaction is rolled back) or on a standby (where the probe fails and is rolled
    // back). So the probe's transaction is left for the session's end (session::ProbeEnd).
    let signals = crate::pooler::LoginSignals::of(&connected.conn);
    let endpoint = connected.endpoint.clone();
    let direct = move |f: &ServerFacts| {
        crate::pooler::answers_directly(&signals, &endpoint, f.backend_pid, f.port)
    };
    let look = session::look(
        &mut connected.conn,
        bound,
        session::ProbeEnd::AtCloseIfDirect(&direct),
    )
    .await;
    let facts = look.facts;
    let query_ms = millis(look.took);
    let client_tls = connected.conn.is_tls();
    let view = facts.as_ref().ok().map(|facts| SessionView {
        facts,
        direct: direct(facts),
    });
    list.record(pass(
        CheckId::Reach,
        reach_line(connected, client_tls, view),
        None,
    ));
    let host = &connected.endpoint.host;
    let tls_message = tls_lines::tls_line(host, client_tls, cfg.sslmode, view);
    list.record(pass(CheckId::Tls, tls_message, None));
    let method = connected.conn.auth_method().clone();
    let login = format!(
        "logged in as \"{}\" to database \"{}\" at {} ({method})",
        cfg.user, cfg.dbname, connected.endpoint
    );
    let socket = matches!(connected.endpoint.host, Host::Socket(_));
    let by = match view {
        Some(v) if v.direct => connect::LoginBy::Server,
        Some(_) => connect::LoginBy::Intermediary,
        None => connect::LoginBy::Unknown,
    };
    match connect::auth_warning(&method, client_tls, socket, by) {
        None => list.record(pass(CheckId::Login, login, login_ms)),
        Some((warning, hint)) => {
            let code = match method {
                connect::AuthMethod::Md5 => Code::AuthMethodDeprecated,
                _ => Code::AuthCleartextAllowed,
            };
            list.warn(
                CheckId::Login,
                Some(code),
                format!("{login}; {warning}"),
                hint,
                login_ms,
            );
        }
    }
    let facts = match facts {
        Ok(f) => {
            let message = format!(
                "PostgreSQL {} ({} of {} connections in use)",
                f.short_version(),
                f.connections,
                f.max_connections
            );
            list.record(pass(CheckId::Query, message, query_ms));
            Some(f)
        }
        Err(e) => {
            let d = Diagnosis {
                code: e.code,
                message: e.message,
                hint: e.hint,
            };
            list.record(fail(CheckId::Query, d, query_ms));
            return None;
        }
    };
    if let Some(table) = look.table {
        let standby = facts.as_ref().is_some_and(|f| f.in_recovery);
        super::privileges::privileges_check(cfg, table, expects_replica, standby, list);
    }
    facts
}

/// "PostgreSQL answers at ..." for the host logged in to, and any earlier host that answered.
fn reach_line(
    connected: &connect::Connected,
    client_tls: bool,
    view: Option<SessionView<'_>>,
) -> String {
    let tls_offer = tls_lines::reach_offer(&connected.endpoint.host, client_tls, view);
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
    if connected.chosen_by != connect::TargetSessionAttrs::Any {
        reach.push_str(&format!(
            "; chosen for target_session_attrs={}",
            connected.chosen_by
        ));
    }
    for skipped in &connected.skipped {
        reach.push_str(&format!(
            "; skipped {} ({})",
            skipped.endpoint, skipped.reason
        ));
    }
    reach
}

/// Resolve every TCP host (the Host step). Returns the endpoints that can be tried, each with
/// its line, or the failure of the last one that cannot.
async fn resolve_hosts(
    cfg: &ConnConfig,
    bound: Duration,
) -> (Vec<(Endpoint, String)>, Option<Attempt>) {
    let started = Instant::now();
    let mut usable = Vec::new();
    let mut failure = None;
    for ep in &cfg.endpoints {
        let failed = |failure| Attempt {
            endpoint: ep.clone(),
            tls_mode: PgSslMode::Disable,
            failure,
            elapsed: started.elapsed(),
        };
        match &ep.host {
            Host::Tcp(name) => {
                let lookup =
                    tokio::time::timeout(bound, tokio::net::lookup_host((name.as_str(), ep.port)));
                match lookup.await {
                    Ok(Ok(mut addrs)) => {
                        let first = addrs.next().map(|a| a.ip().to_string()).unwrap_or_default();
                        usable.push((ep.clone(), format!("{name} resolves to {first}")));
                    }
                    Ok(Err(e)) => {
                        failure = Some(failed(FailureKind::Dns {
                            host: name.clone(),
                            message: e
                                .to_string()
                                .replace("failed to lookup address information: ", ""),
                        }))
                    }
                    Err(_) => failure = Some(failed(FailureKind::Timeout { after: bound })),
                }
            }
            Host::Socket(_) => {
                let path = ep.socket_path().expect("socket endpoint");
                if path.exists() {
                    usable.push((ep.clone(), format!("socket {} exists", path.display())));
                } else {
                    failure = Some(failed(FailureKind::SocketMissing));
                }
            }
        }
    }
    (usable, failure)
}

/// Host, reach, TLS and login, into `out`. Returns the connection when login succeeded.
async fn connect_checks(
    cfg: &ConnConfig,
    bound: Duration,
    out: &mut Vec<Check>,
    list: &mut Checklist<'_>,
) -> Option<(connect::Connected, Option<u64>)> {
    let started = Instant::now();
    list.waiting("Resolving the host");
    let (usable, host_failure) = resolve_hosts(cfg, bound).await;
    if usable.is_empty() {
        let attempt = host_failure.expect("no usable endpoint means a failure was recorded");
        let ctx = failure_context(&attempt).await;
        out.push(fail(
            CheckId::Host,
            diagnose::diagnose(cfg, &attempt, &ctx),
            ms(started),
        ));
        return None;
    }
    let lines: Vec<&str> = usable.iter().map(|(_, m)| m.as_str()).collect();
    out.push(pass(CheckId::Host, lines.join("; "), ms(started)));

    // Reach, TLS and login from one real connection attempt per host (with libpq's sslmode
    // fallbacks). A server that takes part in the login has answered, so the healthy path
    // opens a single connection; only a failure that leaves open whether anything PostgreSQL
    // answered costs a bare SSLRequest probe.
    let started = Instant::now();
    list.waiting("Reaching the server and logging in");
    let failure = match connect::connect_resolved(cfg, bound).await {
        Ok(connected) => return Some((connected, ms(started))),
        Err(failure) => failure,
    };
    login_failure_checks(cfg, bound, &failure, started, out).await;
    None
}
