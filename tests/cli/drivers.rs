//! The driver model (`aksara::drivers`) against the real drivers: for each URL difference of
//! issue 13, asyncpg (`connect` and `create_pool`), psycopg (libpq), SQLAlchemy with both
//! dialects, node-postgres and sqlx connect to a harness cluster, and the model's verdict for each
//! must be what the driver did: `Ok` means it connected where libpq's reading says, with the
//! TLS the reading says; a misread means it failed or connected exactly where the model says
//! it would; any other problem means it failed. Each problem's rewritten URL is then run too
//! and must connect where the URL means.
//!
//! SQLAlchemy gets each URL after the documented scheme rewrite (`postgresql://` →
//! `postgresql+asyncpg://` / `postgresql+psycopg://`): without it every case would only test
//! that `postgresql://` means psycopg2.

use aksara::drivers::{self, Code, Driver, Host, Reading, Tls, Verdict};

use crate::support::drivers::{Outcome, Place, RealDriver, run_all};
use crate::support::{self, Cluster, Shared, unique_name};

/// The string a driver gets: SQLAlchemy's dialect in the scheme, as its docs say.
fn as_given_to(driver: RealDriver, url: &str) -> String {
    let dialect = match driver {
        RealDriver::SqlalchemyAsyncpg => "postgresql+asyncpg://",
        RealDriver::SqlalchemyPsycopg => "postgresql+psycopg://",
        _ => return url.to_owned(),
    };
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return format!("{dialect}{rest}");
        }
    }
    url.to_owned()
}

/// Whether `place` is where `reading` connects: one of its ports, its user and database,
/// a socket when it names only sockets, TLS as it asks.
fn lands_at(reading: &Reading, place: &Place) -> Result<(), String> {
    let ports: Vec<u16> = reading
        .endpoints
        .iter()
        .map(|e| e.port.unwrap_or(5432))
        .collect();
    if !ports.is_empty() && !ports.contains(&place.port) {
        return Err(format!("port {} is none of {ports:?}", place.port));
    }
    let sockets = reading
        .endpoints
        .iter()
        .filter(|e| matches!(e.host, Some(Host::Socket(_))))
        .count();
    if !reading.endpoints.is_empty() && sockets == reading.endpoints.len() && !place.socket {
        return Err("connected over TCP, the reading names sockets only".into());
    }
    if sockets == 0 && reading.endpoints.iter().all(|e| e.host.is_some()) && place.socket {
        return Err("connected over a socket, the reading names TCP hosts only".into());
    }
    if let Some(user) = &reading.user
        && *user != place.user
    {
        return Err(format!("user `{}`, the reading says `{user}`", place.user));
    }
    if let Some(database) = reading.database.as_ref().or(reading.user.as_ref())
        && *database != place.database
    {
        return Err(format!(
            "database `{}`, the reading says `{database}`",
            place.database
        ));
    }
    let wants_tls = matches!(reading.tls, Tls::Required | Tls::VerifyCa | Tls::VerifyFull);
    if wants_tls && !place.ssl {
        return Err("no TLS, the reading requires it".into());
    }
    if reading.tls == Tls::Off && place.ssl {
        return Err("TLS, the reading says none".into());
    }
    Ok(())
}

/// The settings the reading says the driver sends arrived: `application_name`, and a
/// `search_path` given through `options`.
fn settings_arrived(reading: &Reading, place: &Place) -> Result<(), String> {
    for (name, value) in &reading.settings {
        let arrived = match name.as_str() {
            "application_name" => place.application_name == *value,
            "options" => match value.split_once("search_path=") {
                Some((_, path)) => {
                    place.search_path == path.split_whitespace().next().unwrap_or_default()
                }
                None => true,
            },
            _ => true,
        };
        if !arrived {
            return Err(format!(
                "`{name}={value}` did not reach the server: {place:?}"
            ));
        }
    }
    Ok(())
}

/// One URL, every real driver: the verdicts are `expected` (None = Ok), and each agrees with
/// what the driver did; each fix connects where the URL means.
fn check(url: &str, expected: &[(RealDriver, Option<Code>)], secrets: &[&str]) {
    let secrets: Vec<&str> = secrets.to_vec();
    let meant = drivers::reading_of(
        &drivers::meaning(url).expect("the case's URL means something to libpq"),
    );
    let mut jobs = Vec::new();
    let mut verdicts = Vec::new();
    for &(driver, code) in expected {
        let given = as_given_to(driver, url);
        let verdict = drivers::verdict(driver.model(), &given);
        assert_eq!(
            verdict.code(),
            code,
            "{}: the model's verdict on {}:\n{}",
            driver.id(),
            support::drivers::redact(&given, &secrets),
            describe(&verdict)
        );
        jobs.push((driver, given));
        if let Verdict::Problem(problem) = &verdict
            && let Ok(fix) = &problem.fix
        {
            let fixed = fix.url.expose().to_owned();
            assert!(
                drivers::verdict(driver.model(), &fixed).is_ok(),
                "{}: the model does not accept its own fix {}:\n{}",
                driver.id(),
                fix.url,
                describe(&drivers::verdict(driver.model(), &fixed))
            );
            jobs.push((driver, fixed));
        }
        verdicts.push(verdict);
    }
    let outcomes = run_all(&jobs, &secrets);
    if std::env::var_os("AKSARA_DRIVER_TRACE").is_some() {
        for ((driver, url), outcome) in jobs.iter().zip(&outcomes) {
            eprintln!(
                "{} {} => {outcome:?}",
                driver.id(),
                support::drivers::redact(url, &secrets)
            );
        }
    }
    let mut outcome = outcomes.iter();
    for ((driver, _), verdict) in expected.iter().zip(&verdicts) {
        let first = outcome.next().unwrap();
        agree(*driver, verdict, first, &meant);
        if let Verdict::Problem(problem) = verdict
            && let Ok(fix) = &problem.fix
        {
            match outcome.next().unwrap() {
                Outcome::Connected(place) => {
                    let fixed = drivers::verdict(driver.model(), fix.url.expose());
                    lands_at(&meant, place)
                        .and_then(|()| settings_arrived(fixed.reading().unwrap(), place))
                        .unwrap_or_else(|why| {
                            panic!("{}: the fix {} connected, but: {why}", driver.id(), fix.url)
                        })
                }
                failed => panic!("{}: the fix {} failed: {failed:?}", driver.id(), fix.url),
            }
        }
    }
}

fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Ok(reading) => format!("ok: {}", reading.summary()),
        Verdict::Problem(problem) => format!(
            "{}: {}\nfix: {}",
            problem.code,
            problem.message,
            match &problem.fix {
                Ok(fix) => format!("{} ({})", fix.url, fix.notes.join("; ")),
                Err(refusal) => refusal.message.clone(),
            }
        ),
    }
}

/// The model's verdict agrees with the driver's outcome.
fn agree(driver: RealDriver, verdict: &Verdict, outcome: &Outcome, meant: &Reading) {
    let id = driver.id();
    match (verdict, outcome) {
        (Verdict::Ok(reading), Outcome::Connected(place)) => {
            lands_at(reading, place)
                .unwrap_or_else(|why| panic!("{id}: the model's reading is wrong: {why}"));
            settings_arrived(reading, place).unwrap_or_else(|why| panic!("{id}: {why}"));
            lands_at(meant, place).unwrap_or_else(|why| {
                panic!("{id}: connected, but not where the URL means: {why}")
            });
        }
        (Verdict::Ok(reading), Outcome::Failed { class, message }) => panic!(
            "{id}: the model says it connects ({}), the driver failed: {class}: {message}",
            reading.summary()
        ),
        (Verdict::Problem(problem), Outcome::Connected(place))
            if problem.code == Code::DriverTlsWeaker =>
        {
            // It connects, with less TLS than the URL asks: where the URL means otherwise.
            let reading = problem
                .reading
                .as_ref()
                .expect("a weaker-TLS verdict has a reading");
            lands_at(reading, place)
                .unwrap_or_else(|why| panic!("{id}: the model's reading is wrong: {why}"));
            let mut meant_plain = meant.clone();
            meant_plain.tls = reading.tls;
            lands_at(&meant_plain, place).unwrap_or_else(|why| {
                panic!("{id}: connected, but not where the URL means: {why}")
            });
        }
        (Verdict::Problem(problem), Outcome::Connected(place)) => {
            let misread = problem.code == Code::DriverMisreadsUrl;
            let at_misread_place = problem
                .reading
                .as_ref()
                .is_some_and(|r| lands_at(r, place).is_ok() && settings_arrived(r, place).is_ok());
            let not_as_meant =
                lands_at(meant, place).is_err() || settings_arrived(meant, place).is_err();
            assert!(
                misread && at_misread_place && not_as_meant,
                "{id}: the model says {}: {}; the driver connected to {place:?}",
                problem.code,
                problem.message
            );
        }
        (Verdict::Problem(_), Outcome::Failed { .. }) => {}
    }
}

use RealDriver::{
    Asyncpg, AsyncpgPool, NodePg, Psycopg, SqlalchemyAsyncpg, SqlalchemyPsycopg, Sqlx,
};

/// A login role with `password` and a database it owns, on `cluster`.
fn role_with_database(
    cluster: &Cluster,
    password: &str,
    database: Option<&str>,
) -> (String, String) {
    let role = unique_name("drv");
    let database = database.map_or_else(|| role.clone(), str::to_owned);
    let literal = password.replace('\'', "''");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{literal}'"),
    );
    let quoted = format!("\"{}\"", database.replace('"', "\"\""));
    cluster.psql(
        "postgres",
        &format!("CREATE DATABASE {quoted} OWNER {role}"),
    );
    (role, database)
}

fn tcp_url(cluster: &Cluster, role: &str, password: &str, database: &str, query: &str) -> String {
    format!("{}{query}", cluster.url(role, Some(password), database))
}

const SIMPLE_PASSWORD: &str = "drvSecret42";

#[test]
fn connect_timeout_is_sent_to_the_server_by_asyncpg() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    check(
        &tcp_url(cluster, &role, SIMPLE_PASSWORD, &db, "?connect_timeout=10"),
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverSendsUnknownSetting)),
            (AsyncpgPool, Some(Code::DriverSendsUnknownSetting)),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, None),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn schema_is_prismas_and_rejected_or_sent_by_the_others() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    check(
        &tcp_url(cluster, &role, SIMPLE_PASSWORD, &db, "?schema=public"),
        &[
            (Psycopg, Some(Code::DriverRejectsParameter)),
            (Asyncpg, Some(Code::DriverSendsUnknownSetting)),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, Some(Code::DriverRejectsParameter)),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn real_server_settings_are_sent_by_asyncpg_and_node_and_rejected_by_libpq() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    check(
        &tcp_url(
            cluster,
            &role,
            SIMPLE_PASSWORD,
            &db,
            "?statement_timeout=5000&application_name=drvapp",
        ),
        &[
            (Psycopg, Some(Code::DriverRejectsParameter)),
            (Asyncpg, None),
            (AsyncpgPool, None),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, Some(Code::DriverRejectsParameter)),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn channel_binding_is_libpqs_only() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    check(
        &tcp_url(
            cluster,
            &role,
            SIMPLE_PASSWORD,
            &db,
            "?channel_binding=prefer",
        ),
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverSendsUnknownSetting)),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, None),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn a_trailing_ampersand_fails_asyncpgs_strict_query_parsing() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    check(
        &tcp_url(
            cluster,
            &role,
            SIMPLE_PASSWORD,
            &db,
            "?target_session_attrs=any&",
        ),
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverUnsupportedFormat)),
            (SqlalchemyAsyncpg, None),
            (SqlalchemyPsycopg, None),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn keyword_value_strings_are_libpqs_only() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    let url = format!(
        "host=127.0.0.1 port={} user={role} password={SIMPLE_PASSWORD} dbname={db}",
        cluster.port
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverUnsupportedFormat)),
            (SqlalchemyAsyncpg, Some(Code::DriverUnsupportedFormat)),
            (SqlalchemyPsycopg, Some(Code::DriverUnsupportedFormat)),
            (NodePg, Some(Code::DriverMisreadsUrl)),
            (Sqlx, Some(Code::DriverUnsupportedFormat)),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn a_plus_in_the_query_password_is_a_space_outside_libpq() {
    let cluster = support::shared(Shared::Scram);
    let password = "a+b";
    let (role, db) = role_with_database(cluster, password, None);
    let url = format!(
        "postgresql://{role}@127.0.0.1:{}/{db}?password={password}",
        cluster.port
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverMisreadsUrl)),
            (SqlalchemyAsyncpg, Some(Code::DriverMisreadsUrl)),
            (SqlalchemyPsycopg, Some(Code::DriverMisreadsUrl)),
            (NodePg, Some(Code::DriverMisreadsUrl)),
            (Sqlx, Some(Code::DriverMisreadsUrl)),
        ],
        &[],
    );
}

#[test]
fn query_host_beside_an_authority_host_reaches_another_server_with_asyncpg() {
    // Two servers that both let the superuser in with the same password: libpq, SQLAlchemy
    // and node-postgres take the query's socket (the trust server), asyncpg the authority's.
    let tcp = support::shared(Shared::Scram);
    let socket = support::shared(Shared::Trust);
    let url = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/postgres?host={}&port={}",
        tcp.password,
        tcp.port,
        socket.socket_dir.display(),
        socket.port
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverMisreadsUrl)),
            (SqlalchemyAsyncpg, None),
            (SqlalchemyPsycopg, None),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[&tcp.password],
    );
    let outcome = run_all(&[(Asyncpg, url)], &[&tcp.password]).remove(0);
    assert_eq!(
        outcome.place().map(|p| p.port),
        Some(tcp.port),
        "asyncpg connected to the authority's server, as the model says"
    );
}

#[test]
fn an_unencoded_hash_in_the_password() {
    let cluster = support::shared(Shared::Scram);
    let password = "pa#ss1";
    let (role, db) = role_with_database(cluster, password, None);
    let url = format!(
        "postgresql://{role}:{password}@127.0.0.1:{}/{db}",
        cluster.port
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverMisreadsUrl)),
            (SqlalchemyAsyncpg, None),
            (SqlalchemyPsycopg, None),
            (NodePg, Some(Code::DriverUnsupportedFormat)),
            (Sqlx, Some(Code::DriverUnsupportedFormat)),
        ],
        &[password],
    );
}

#[test]
fn the_sqlalchemy_scheme_is_for_sqlalchemy_only() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    let url = tcp_url(cluster, &role, SIMPLE_PASSWORD, &db, "").replacen(
        "postgresql://",
        "postgresql+asyncpg://",
        1,
    );
    check(
        &url,
        &[
            (Psycopg, Some(Code::DriverWrongScheme)),
            (Asyncpg, Some(Code::DriverWrongScheme)),
            (SqlalchemyAsyncpg, None),
            (SqlalchemyPsycopg, Some(Code::DriverWrongScheme)),
            // pg-connection-string never looks at the scheme.
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn an_encoded_socket_host_is_not_decoded_by_sqlalchemy() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    let url = format!(
        "postgresql://{role}:{SIMPLE_PASSWORD}@{}:{}/{db}",
        support::encode(&cluster.socket_dir.display().to_string()),
        cluster.port
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, None),
            (AsyncpgPool, None),
            (SqlalchemyAsyncpg, Some(Code::DriverMisreadsUrl)),
            (SqlalchemyPsycopg, Some(Code::DriverMisreadsUrl)),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn an_encoded_plus_in_the_database_is_not_decoded_by_node_postgres() {
    let cluster = support::shared(Shared::Scram);
    let database = format!("c++app_{}", std::process::id());
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, Some(&database));
    check(
        &tcp_url(cluster, &role, SIMPLE_PASSWORD, &db, ""),
        &[
            (Psycopg, None),
            (Asyncpg, None),
            (SqlalchemyAsyncpg, None),
            (SqlalchemyPsycopg, None),
            (NodePg, Some(Code::DriverMisreadsUrl)),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn sslmode_require_against_a_server_with_a_private_ca() {
    let cluster = support::shared(Shared::Ssl);
    let url = format!("{}?sslmode=require", cluster.admin_url());
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, None),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, None),
            (NodePg, Some(Code::DriverTlsStricter)),
            (Sqlx, None),
        ],
        &[&cluster.password],
    );
}

#[test]
fn ssl_true_means_require_to_libpq_only() {
    let cluster = support::shared(Shared::Ssl);
    let url = format!("{}?ssl=true", cluster.admin_url());
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, Some(Code::DriverSendsUnknownSetting)),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, Some(Code::DriverRejectsParameter)),
            (NodePg, Some(Code::DriverTlsStricter)),
            (Sqlx, Some(Code::DriverTlsWeaker)),
        ],
        &[&cluster.password],
    );
}

#[test]
fn sqlalchemys_ssl_require_is_its_own() {
    let cluster = support::shared(Shared::Ssl);
    let url = format!("{}?ssl=require", cluster.admin_url()).replacen(
        "postgresql://",
        "postgresql+asyncpg://",
        1,
    );
    check(
        &url,
        &[
            (Psycopg, Some(Code::DriverWrongScheme)),
            (Asyncpg, Some(Code::DriverWrongScheme)),
            (SqlalchemyAsyncpg, None),
            (NodePg, Some(Code::DriverRejectsParameter)),
            (Sqlx, Some(Code::DriverTlsWeaker)),
        ],
        &[&cluster.password],
    );
}

#[test]
fn several_hosts_work_with_libpq_and_asyncpg_only() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    let url = format!(
        "postgresql://{role}:{SIMPLE_PASSWORD}@127.0.0.1:{},127.0.0.1:{}/{db}",
        support::free_port(),
        cluster.port
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, None),
            (SqlalchemyAsyncpg, Some(Code::DriverUnsupportedFormat)),
            (SqlalchemyPsycopg, Some(Code::DriverUnsupportedFormat)),
            (NodePg, Some(Code::DriverUnsupportedFormat)),
            (Sqlx, Some(Code::DriverUnsupportedFormat)),
        ],
        &[SIMPLE_PASSWORD],
    );
}

// ---------------------------------------------------------------------------------------------
// The URLs `aksara dbsetup --non-interactive` writes, with every real driver.

/// A URL dbsetup wrote, and the server it must reach.
struct Written {
    case: &'static str,
    url: String,
    port: u16,
    secrets: Vec<String>,
}

/// Runs dbsetup with `extra` arguments and returns the DATABASE_URL it wrote.
fn written(
    case: &'static str,
    mut cmd: std::process::Command,
    port: u16,
    secrets: &[&str],
) -> Written {
    let dir_path = cmd
        .get_current_dir()
        .expect("dbsetup runs in the project")
        .to_owned();
    let out = crate::run(&mut cmd);
    assert_eq!(out.code, 0, "{case}: dbsetup failed: {out:?}");
    let url = crate::env_value(&dir_path.join(".env"), "DATABASE_URL").expect("a DATABASE_URL");
    let mut secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    if let Ok(conn) = drivers::meaning(&url)
        && let Some(password) = conn.password
    {
        secrets.push(password.expose().to_owned());
    }
    Written {
        case,
        url,
        port,
        secrets,
    }
}

/// Driver and case pairs that fail today with the URL dbsetup writes: the `layout` work changes
/// how dbsetup renders URLs (the socket form `@/db?host=…&port=…`, no `%2B` in database
/// names). Each must fail now, and the model must say so; when one starts to connect, this
/// test fails and the pair leaves the list.
/// What one URL cannot serve (dbsetup warns and prints each driver's own form): `--sslmode
/// require`, or an admin URL with `sslmode=require` (carried into the app's URL), writes
/// `?sslmode=require`, which SQLAlchemy's asyncpg dialect passes to
/// asyncpg.connect() (it wants `ssl=require`), and node-postgres reads as verify-full (the
/// test CA is private). The socket form and the database path are portable since dbsetup
/// writes drivers::portable's URL. Each pair's own form (`drivers::forms::form_for`, what
/// `dbsetup --driver-url` writes; tests/cli/driver_key.rs runs the flag itself) is run too and
/// must connect with TLS.
const FAILS_TODAY: &[(&str, RealDriver)] = &[
    ("TLS, no --sslmode", SqlalchemyAsyncpg),
    ("TLS, no --sslmode", NodePg),
    ("TLS, --sslmode require", SqlalchemyAsyncpg),
    ("TLS, --sslmode require", NodePg),
];

/// Runs dbsetup for each case of the test below; the project folders go to `folders`, so they
/// live until the test ends.
fn dbsetup_cases(
    folders: &mut Vec<tempfile::TempDir>,
    scram: &Cluster,
    ssl: &Cluster,
    socket_only: &Cluster,
) -> Vec<Written> {
    let hostile_password = "p@ss:w/rd?#%&+=' \"\\ ünï€ode";

    let mut folder = || {
        folders.push(crate::project());
        folders.last().unwrap().path().to_owned()
    };
    let name = |prefix: &str| unique_name(prefix);
    let mut cases = Vec::new();
    cases.push(written(
        "TCP",
        crate::dbsetup(scram, &folder(), &["--db-name", &name("tcp")]),
        scram.port,
        &[],
    ));
    let admin = |host: &str, cluster: &Cluster, query: &str| {
        format!(
            "postgresql://postgres@{host}:{}/postgres{query}",
            cluster.port
        )
    };
    let mut cmd = crate::aksara(&folder());
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        &name("local"),
        "--admin-url",
    ])
    .arg(admin("localhost", scram, ""))
    .env("PGPASSWORD", &scram.password);
    cases.push(written("localhost", cmd, scram.port, &[]));

    let mut cmd = crate::aksara(&folder());
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        &name("sock"),
        "--admin-url",
    ])
    .arg(socket_only.socket_url("postgres", "postgres"))
    .env("PGPASSWORD", &socket_only.password);
    cases.push(written("socket-only server", cmd, socket_only.port, &[]));

    let mut cmd = crate::dbsetup(
        scram,
        &folder(),
        &[
            "--db-name",
            &format!("c++app {}", std::process::id()),
            "--db-user",
            &format!("app.user-{}", std::process::id()),
        ],
    );
    cmd.env("AKSARA_DB_PASSWORD", hostile_password);
    cases.push(written(
        "hostile names",
        cmd,
        scram.port,
        &[hostile_password],
    ));

    for (case, extra) in [
        ("TLS, no --sslmode", &[][..]),
        ("TLS, --sslmode require", &["--sslmode", "require"][..]),
    ] {
        let mut cmd = crate::aksara(&folder());
        cmd.args([
            "dbsetup",
            "--non-interactive",
            "--db-name",
            &name("tls"),
            "--admin-url",
        ])
        .arg(admin("127.0.0.1", ssl, "?sslmode=require"))
        .args(extra)
        .env("PGPASSWORD", &ssl.password);
        cases.push(written(case, cmd, ssl.port, &[]));
    }
    // A TLS server and an admin URL without sslmode: the app's URL names none, libpq's
    // `prefer` gets TLS, node-postgres connects in plaintext (the summary says so:
    // driver_key.rs proves it).
    let mut cmd = crate::aksara(&folder());
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        &name("tlsprefer"),
        "--admin-url",
    ])
    .arg(admin("127.0.0.1", ssl, ""))
    .env("PGPASSWORD", &ssl.password);
    cases.push(written(
        "TLS server, no sslmode anywhere",
        cmd,
        ssl.port,
        &[],
    ));

    cases
}

#[test]
fn every_driver_on_the_urls_dbsetup_writes() {
    let scram = support::shared(Shared::Scram);
    let ssl = support::shared(Shared::Ssl);
    let socket_only = Cluster::start(support::ClusterConfig::default().set("listen_addresses", ""));
    let mut folders = Vec::new();
    let cases = dbsetup_cases(&mut folders, scram, ssl, &socket_only);
    let mut jobs = Vec::new();
    for written in &cases {
        for driver in RealDriver::ALL {
            jobs.push((driver, as_given_to(driver, &written.url)));
        }
    }
    let secrets: Vec<&str> = cases
        .iter()
        .flat_map(|c| c.secrets.iter().map(String::as_str))
        .collect();
    let outcomes = run_all(&jobs, &secrets);
    let mut outcome = outcomes.iter();
    let mut report = Vec::new();
    for written in &cases {
        let meant = drivers::reading_of(
            &drivers::meaning(&written.url).expect("dbsetup writes what libpq reads"),
        );
        let shown = support::drivers::redact(&written.url, &secrets);
        crate::psql_url(&written.url, "select 1").unwrap_or_else(|e| {
            panic!(
                "{}: psql cannot use {shown}: {}",
                written.case,
                support::drivers::redact(&e, &secrets)
            )
        });
        for driver in RealDriver::ALL {
            let got = outcome.next().unwrap();
            let verdict = drivers::verdict(driver.model(), &as_given_to(driver, &written.url));
            let expected_failure = FAILS_TODAY.contains(&(written.case, driver));
            let connected_right = got
                .place()
                .is_some_and(|place| place.port == written.port && lands_at(&meant, place).is_ok());
            if expected_failure {
                assert!(
                    !connected_right && !verdict.is_ok(),
                    "{} with {}: listed as failing today, but it connected ({got:?}) or the model accepts it: drop it from FAILS_TODAY",
                    written.case,
                    driver.id()
                );
                report.push(format!(
                    "{} / {}: fails as listed ({:?}) on {shown}",
                    written.case,
                    driver.id(),
                    verdict.code()
                ));
            } else {
                assert!(
                    connected_right,
                    "{} with {}: {shown} did not reach the server as the URL means: {got:?}",
                    written.case,
                    driver.id()
                );
                assert!(
                    verdict.is_ok(),
                    "{} with {}: the driver connects, the model says {}",
                    written.case,
                    driver.id(),
                    describe(&verdict)
                );
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    portable_forms_work(&cases, &secrets);
    driver_forms_work(&cases, &secrets);
}

/// Each pair of FAILS_TODAY gets its own form (what `--driver-url` writes), and the real
/// driver connects with it where the URL means, with TLS.
fn driver_forms_work(cases: &[Written], secrets: &[&str]) {
    let mut jobs = Vec::new();
    let mut judged = Vec::new();
    for (case, driver) in FAILS_TODAY {
        let written = cases.iter().find(|w| w.case == *case).unwrap();
        let conn = drivers::meaning(&written.url).unwrap();
        let form = drivers::forms::form_for(driver.model(), &conn)
            .unwrap_or_else(|r| panic!("{case}: no form for {}: {}", driver.id(), r.message));
        assert!(
            drivers::verdict(driver.model(), form.url.expose()).is_ok(),
            "{case}: the model refuses the form it made for {}",
            driver.id()
        );
        jobs.push((*driver, form.url.expose().to_owned()));
        judged.push((written, *driver, form.url.to_string()));
    }
    let outcomes = run_all(&jobs, secrets);
    for ((written, driver, shown), outcome) in judged.iter().zip(&outcomes) {
        let place = outcome.place().unwrap_or_else(|| {
            panic!(
                "{}: {} fails with its form {shown}: {outcome:?}",
                written.case,
                driver.id()
            )
        });
        assert!(
            place.port == written.port && place.ssl,
            "{}: {} with {shown}: {place:?}",
            written.case,
            driver.id()
        );
    }
}

/// The portable form of each URL dbsetup wrote (`drivers::portable`): every driver the model
/// does not list as an exception connects where the URL means; the exceptions fail, or connect
/// as the model says.
fn portable_forms_work(cases: &[Written], secrets: &[&str]) {
    let mut jobs = Vec::new();
    let mut judged = Vec::new();
    for written in cases {
        let conn = drivers::meaning(&written.url).unwrap();
        let portable = drivers::portable::portable(&conn).expect("a portable form");
        let exceptions: Vec<Driver> = portable.exceptions.iter().map(|(d, _)| *d).collect();
        eprintln!(
            "{}: portable {} (exceptions: {exceptions:?})",
            written.case, portable.url.url
        );
        crate::psql_url(portable.url.url.expose(), "select 1").unwrap_or_else(|e| {
            panic!(
                "{}: psql cannot use the portable {}: {}",
                written.case,
                portable.url.url,
                support::drivers::redact(&e, secrets)
            )
        });
        for driver in RealDriver::ALL {
            let given = as_given_to(driver, portable.url.url.expose());
            let verdict = drivers::verdict(driver.model(), &given);
            assert_eq!(
                !verdict.is_ok(),
                exceptions.contains(&driver.model()),
                "{}: {} on the portable form: {}",
                written.case,
                driver.id(),
                describe(&verdict)
            );
            jobs.push((driver, given));
            judged.push((written, driver, verdict, drivers::reading_of(&conn)));
        }
    }
    let outcomes = run_all(&jobs, secrets);
    for ((written, driver, verdict, meant), outcome) in judged.iter().zip(&outcomes) {
        if let Some(place) = outcome.place() {
            assert_eq!(
                place.port,
                written.port,
                "{}: {}",
                written.case,
                driver.id()
            );
        }
        agree(*driver, verdict, outcome, meant);
    }
}

// ---------------------------------------------------------------------------------------------
// The README's "Which driver reads what" is the model's table.

#[test]
fn the_readme_driver_table_is_the_model() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let begin = readme
        .find(drivers::readme::BEGIN)
        .expect("the README has the drivers section's begin marker");
    let end = readme[begin..]
        .find(drivers::readme::END)
        .map(|at| begin + at + drivers::readme::END.len() + 1)
        .expect("the README has the drivers section's end marker");
    let generated = drivers::readme::section();
    if std::env::var_os("AKSARA_REGENERATE").is_some_and(|v| v == "1") {
        std::fs::write(
            &path,
            format!("{}{generated}{}", &readme[..begin], &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        &readme[begin..end],
        generated,
        "the README's driver table is not the model's (src/drivers); regenerate it with\n  AKSARA_REGENERATE=1 cargo test --test cli drivers::the_readme_driver_table_is_the_model"
    );
}

// ---------------------------------------------------------------------------------------------
// The project-local server's URL.

/// Stops the project's cluster when the test ends, panicking or not (`pg_ctl stop -m
/// immediate`, as the server user when root), before its folder goes.
struct StopProjectServer(std::path::PathBuf);

impl Drop for StopProjectServer {
    fn drop(&mut self) {
        let data_dir = self.0.join(".aksara/postgres");
        if !data_dir.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = std::process::Command::new(&support::bins().pg_ctl);
        support::clear_pg_env(&mut cmd);
        cmd.args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&data_dir)
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(user) = support::server_user() {
            use std::os::unix::process::CommandExt;
            cmd.uid(user.uid).gid(user.gid);
        }
        let _ = cmd.status();
    }
}

#[test]
fn every_driver_on_the_project_local_servers_url() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::project();
    // As root the server runs as `postgres`, which must pass through the folder.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _stop = StopProjectServer(dir.path().to_owned());
    let port = support::free_port();
    let mut cmd = crate::aksara(dir.path());
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--start-server",
        "local",
        "--server-port",
    ])
    .arg(port.to_string())
    .args(["--db-name", "shop"]);
    let case = written("project-local server", cmd, port, &[]);
    let meant = drivers::reading_of(&drivers::meaning(&case.url).unwrap());
    let secrets: Vec<&str> = case.secrets.iter().map(String::as_str).collect();
    let jobs: Vec<(RealDriver, String)> = RealDriver::ALL
        .into_iter()
        .map(|driver| (driver, as_given_to(driver, &case.url)))
        .collect();
    for ((driver, given), outcome) in jobs.iter().zip(run_all(&jobs, &secrets)) {
        let verdict = drivers::verdict(driver.model(), given);
        assert!(verdict.is_ok(), "{}: {}", driver.id(), describe(&verdict));
        assert_eq!(
            outcome.place().map(|p| p.port),
            Some(port),
            "{}: {outcome:?}",
            driver.id()
        );
        agree(*driver, &verdict, &outcome, &meant);
    }
}

#[test]
fn sslmode_prefer_against_a_server_without_tls() {
    let cluster = support::shared(Shared::Scram);
    let (role, db) = role_with_database(cluster, SIMPLE_PASSWORD, None);
    check(
        &tcp_url(cluster, &role, SIMPLE_PASSWORD, &db, "?sslmode=prefer"),
        &[
            (Psycopg, None),
            (Asyncpg, None),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, None),
            // node-postgres asks for TLS and fails: "The server does not support SSL connections".
            (NodePg, Some(Code::DriverTlsStricter)),
            (Sqlx, None),
        ],
        &[SIMPLE_PASSWORD],
    );
}

#[test]
fn sslmode_verify_full_with_the_ca_works_where_the_driver_reads_sslrootcert() {
    let cluster = support::shared(Shared::Ssl);
    let ca = cluster.ssl_ca.as_ref().expect("the TLS cluster has a CA");
    let url = format!(
        "postgresql://postgres:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.password,
        cluster.port,
        ca.display()
    );
    check(
        &url,
        &[
            (Psycopg, None),
            (Asyncpg, None),
            (SqlalchemyAsyncpg, Some(Code::DriverRejectsParameter)),
            (SqlalchemyPsycopg, None),
            (NodePg, None),
            (Sqlx, None),
        ],
        &[&cluster.password],
    );
}

// ---------------------------------------------------------------------------------------------
// Generated URLs: passwords and database names with every special character, written raw,
// encoded or half encoded, in the authority or the query, with assorted parameters and host
// forms. A fixed seed and 32 URLs in the suite; 5 seeds of 120 agreed when this was written.

/// A small deterministic generator (64-bit LCG), so a failure names a reproducible case.
struct Lcg(u64);

impl Lcg {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        &items[(self.0 >> 33) as usize % items.len()]
    }
}

/// Percent-encodes the characters of `text` that `which` selects.
fn encode_some(text: &str, which: impl Fn(char) -> bool) -> String {
    text.chars()
        .map(|c| {
            if which(c) {
                support::encode(&c.to_string())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A number from the environment, for exploring beyond the suite's fixed sample:
/// `AKSARA_TEST_DRIVER_SEED=7 AKSARA_TEST_DRIVER_CASES=200 cargo test --test cli drivers::generated`.
fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn generated_urls_agree_with_the_model() {
    let cluster = support::shared(Shared::Scram);
    let passwords = [
        "a+b",
        "p@ss",
        "p:ss",
        "p/ss",
        "p?ss",
        "p#ss",
        "p%ss",
        "p&ss",
        "p=ss",
        "p ss",
        "üñï€",
        "p'ss",
        "p\\ss",
        "p;ss",
        "p,ss",
        "p[s]s",
        "plain",
    ];
    let mut roles: Vec<(String, String, &str)> = passwords
        .iter()
        .map(|password| {
            let (role, db) = role_with_database(cluster, password, None);
            (role, db, *password)
        })
        .collect();
    // Database names with the characters that decoders treat differently.
    for name in ["c++db", "my db", "d%b", "ü€db", "a,b;c=d$", "x:y", "q&r"] {
        let name = format!("{name}_{}", std::process::id());
        let (role, db) = role_with_database(cluster, "plain-db-pw", Some(&name));
        roles.push((role, db, "plain-db-pw"));
    }
    type Encoding = (&'static str, fn(char) -> bool);
    let encodings: [Encoding; 3] = [
        ("all", |c| !c.is_ascii_alphanumeric()),
        ("raw", |_| false),
        ("some", |c| matches!(c, '@' | '/' | '%' | ' ' | '\\' | '"')),
    ];
    let queries = [
        "",
        "?sslmode=disable",
        "?application_name=x+y",
        "?application_name=x%2By",
        "?target_session_attrs=any",
        "?connect_timeout=5",
        "?options=-c%20search_path%3Dpublic",
        "?sslmode=prefer&",
        "?schema=public",
        "?ssl=true",
        "?channel_binding=prefer",
        "?statement_timeout=1000",
        "?keepalives=1&application_name=k",
        "?sslmode=require",
        // Another role with the same password, so either reading can log in.
        "?user={other}",
        "?dbname=postgres",
    ];
    let socket = support::encode(&cluster.socket_dir.display().to_string());
    let mut rng = Lcg(knob("AKSARA_TEST_DRIVER_SEED", 13));
    let mut cases = Vec::new();
    for _ in 0..knob("AKSARA_TEST_DRIVER_CASES", 32) {
        let (role, db, password) = rng.pick(&roles).clone();
        let (how, encode) = rng.pick(&encodings);
        let written = encode_some(password, encode);
        // The database name: the same encoding as the password, or everything encoded.
        let encode_db: fn(char) -> bool =
            *rng.pick(&[*encode, |c: char| !c.is_ascii_alphanumeric() && c != '_']);
        let db = encode_some(&db, encode_db);
        let other = roles
            .iter()
            .find(|(r, _, p)| *p == password && *r != role)
            .map(|(r, _, _)| r.clone());
        let query = match (*rng.pick(&queries), other) {
            ("?user={other}", Some(other)) => format!("?user={other}"),
            ("?user={other}", None) => String::new(),
            (query, _) => query.to_owned(),
        };
        let query = query.as_str();
        let port = cluster.port;
        let url = match *rng.pick(&[0, 1, 2, 3]) {
            0 => format!("postgresql://{role}:{written}@127.0.0.1:{port}/{db}{query}"),
            1 => format!("postgres://{role}:{written}@{socket}:{port}/{db}{query}"),
            2 => {
                let joiner = if query.is_empty() { "?" } else { "&" };
                format!(
                    "postgresql://{role}@127.0.0.1:{port}/{db}{query}{joiner}password={written}"
                )
            }
            _ => {
                let dir = cluster.socket_dir.display();
                let rest = query.trim_start_matches('?');
                let rest = if rest.is_empty() {
                    String::new()
                } else {
                    format!("&{rest}")
                };
                format!("postgresql://{role}:{written}@/{db}?host={dir}&port={port}{rest}")
            }
        };
        // Only what libpq itself reads: that is the meaning every driver is compared with.
        if drivers::meaning(&url).is_ok() {
            cases.push((format!("{how}-encoded `{password}`"), url, password));
        }
    }
    // Most generated URLs are ones libpq reads (the rest, e.g. a raw `%`, are left out).
    assert!(
        cases.len() as u64 * 2 >= knob("AKSARA_TEST_DRIVER_CASES", 32),
        "too few generated URLs parse: {}",
        cases.len()
    );
    let mut jobs = Vec::new();
    for (_, url, _) in &cases {
        for driver in RealDriver::ALL {
            jobs.push((driver, as_given_to(driver, url)));
        }
    }
    let secrets: Vec<&str> = passwords.iter().copied().filter(|p| p.len() >= 3).collect();
    let outcomes = run_all(&jobs, &secrets);
    let mut outcome = outcomes.iter();
    let mut disagreements = Vec::new();
    for (label, url, _) in &cases {
        let meant = drivers::reading_of(&drivers::meaning(url).unwrap());
        for driver in RealDriver::ALL {
            let given = as_given_to(driver, url);
            let verdict = drivers::verdict(driver.model(), &given);
            let got = outcome.next().unwrap();
            // The server has no TLS: a driver that requires it over TCP fails there, whatever
            // it reads.
            let needs_tls = verdict.reading().is_some_and(|r| {
                matches!(r.tls, Tls::Required | Tls::VerifyCa | Tls::VerifyFull)
                    && !r
                        .endpoints
                        .iter()
                        .all(|e| matches!(e.host, Some(Host::Socket(_))))
            });
            if verdict.is_ok() && needs_tls && got.place().is_none() {
                continue;
            }
            let agreed = std::panic::catch_unwind(|| agree(driver, &verdict, got, &meant));
            if agreed.is_err() {
                disagreements.push(format!(
                    "{label}: {} on {}: model {} / driver {got:?}",
                    driver.id(),
                    support::drivers::redact(&given, &secrets),
                    describe(&verdict)
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} generated cases disagree:\n{}",
        disagreements.len(),
        jobs.len(),
        disagreements.join("\n")
    );
}

/// `current_user` as the real asyncpg or node-postgres gets it for `url`, run with `LOGNAME`
/// and `USER` set to `env_user` (the shared driver runners have the test's environment, so this
/// is a process of its own).
fn real_current_user(driver: Driver, url: &str, env_user: &str) -> Result<String, String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    let mut cmd = match driver {
        Driver::Asyncpg => {
            let python = dir.join(".venv/bin/python");
            assert!(
                python.exists(),
                "the Python driver venv is missing: run .ci/run"
            );
            let mut cmd = std::process::Command::new(python);
            cmd.arg("-c").arg(
                "import asyncio, sys, asyncpg\n\
                 async def main():\n\
                 \x20   conn = await asyncpg.connect(sys.argv[1])\n\
                 \x20   print(await conn.fetchval('select current_user'))\n\
                 \x20   await conn.close()\n\
                 asyncio.run(main())\n",
            );
            cmd
        }
        Driver::NodePg => {
            assert!(
                dir.join("node_modules/pg").exists(),
                "node-postgres is missing: run .ci/run"
            );
            let mut cmd = std::process::Command::new("node");
            cmd.arg("-e").arg(
                "const { Client } = require('pg');\n\
                 (async () => {\n\
                 \x20 const c = new Client({ connectionString: process.argv[1] });\n\
                 \x20 await c.connect();\n\
                 \x20 console.log((await c.query('select current_user')).rows[0].current_user);\n\
                 \x20 await c.end();\n\
                 })().catch((e) => { console.error(e.message); process.exit(1); });\n",
            );
            cmd
        }
        other => panic!("no runner here for {other:?}"),
    };
    support::hermetic_env(&mut cmd);
    let out = cmd
        .arg(url)
        .current_dir(&dir)
        .env("LOGNAME", env_user)
        .env("USER", env_user)
        .output()
        .expect("run the driver");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// A URL that names no user, under a `LOGNAME` and `USER` that name another role than the OS
/// user (as `sudo -E`, `su` without `-` and `setpriv` leave them): real psql logs in as the OS
/// user, real asyncpg as `LOGNAME`, real node-postgres as `USER`. doctor must say the URL's
/// user is the OS user's (it said `USER`'s, and then checked a role psql never uses), fail the
/// lines of asyncpg and node-postgres with both names, and hint, for each, a URL that gets that
/// driver in as libpq's role.
#[test]
fn a_url_without_a_user_is_read_with_each_drivers_own_default_user() {
    let cluster = Cluster::start(support::ClusterConfig {
        auth: support::Auth::Trust,
        ..support::ClusterConfig::default()
    });
    let id = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    let os_user = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let env_user = unique_name("envuser");
    assert_ne!(os_user, env_user);
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE \"{env_user}\" LOGIN; \
             DO $$ BEGIN CREATE ROLE \"{os_user}\" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ),
    );
    let url = format!("postgresql://127.0.0.1:{}/postgres", cluster.port);

    let mut psql = std::process::Command::new(&support::bins().psql);
    support::clear_pg_env(&mut psql);
    let psql = psql
        .args(["-X", "-A", "-t", "-d", &url, "-c", "select current_user"])
        .env("HOME", support::hermetic_home())
        .env("LOGNAME", &env_user)
        .env("USER", &env_user)
        .output()
        .expect("run psql");
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout).trim(),
        os_user,
        "psql: {psql:?}"
    );
    for driver in [Driver::Asyncpg, Driver::NodePg] {
        assert_eq!(
            real_current_user(driver, &url, &env_user),
            Ok(env_user.clone()),
            "{driver:?}"
        );
    }

    let dir = crate::project();
    let out = crate::run(
        crate::aksara(dir.path())
            .args(["doctor", "--format", "json", "--url", &url])
            .args([
                "--driver", "libpq", "--driver", "asyncpg", "--driver", "node-pg",
            ])
            .env("LOGNAME", &env_user)
            .env("USER", &env_user),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("doctor's JSON");
    let check = |id: &str| -> Vec<&serde_json::Value> {
        json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["id"] == id)
            .collect()
    };
    let url_check = check("url")[0]["message"].as_str().unwrap().to_owned();
    assert!(
        url_check.contains(&format!("user \"{os_user}\"")),
        "{url_check}"
    );
    assert_eq!(check("login")[0]["status"], "pass", "{}", out.stdout);
    let failed = crate::failed_checks(&json);
    assert_eq!(failed.len(), 2, "{}", out.stdout);
    for (line, driver, from) in [
        (failed[0], Driver::Asyncpg, "LOGNAME"),
        (failed[1], Driver::NodePg, "USER"),
    ] {
        assert_eq!(line["code"], "driver-misreads-url", "{line}");
        let message = line["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{}: ", driver.id())),
            "{message}"
        );
        assert!(
            message.contains(&format!("\"{env_user}\" ({from})")),
            "{message}"
        );
        assert!(
            message.contains(&format!("not \"{os_user}\" as libpq does")),
            "{message}"
        );
        let hint = line["hint"].as_str().unwrap();
        let fixed = hint.split('`').nth(1).expect("a URL in the hint");
        assert_eq!(
            real_current_user(driver, fixed, &env_user),
            Ok(os_user.clone()),
            "{hint}"
        );
    }

    // `--fix` writes the URL that names the user, and then every check passes.
    std::fs::write(dir.path().join(".env"), format!("DATABASE_URL={url}\n")).unwrap();
    let fixed = crate::run(
        crate::aksara(dir.path())
            .args(["doctor", "--fix", "--yes"])
            .args([
                "--driver", "libpq", "--driver", "asyncpg", "--driver", "node-pg",
            ])
            .env("LOGNAME", &env_user)
            .env("USER", &env_user),
    );
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    let written = crate::env_value(&dir.path().join(".env"), "DATABASE_URL").expect("DATABASE_URL");
    for driver in [Driver::Asyncpg, Driver::NodePg] {
        assert_eq!(
            real_current_user(driver, &written, &env_user),
            Ok(os_user.clone()),
            "{written}"
        );
    }
}

/// What the app does in `dir`, with `env` added to its environment: load `.env` with the real
/// python-dotenv, connect to its DATABASE_URL with asyncpg. `ok <current_user>`, or `error
/// <exception>`.
fn dotenv_app(dir: &std::path::Path, env: &[(&str, &str)]) -> String {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/.venv/bin/python");
    assert!(
        python.exists(),
        "the Python driver venv is missing: run .ci/run"
    );
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(
            "import asyncio, asyncpg, dotenv\n\
             async def main():\n\
             \x20   try:\n\
             \x20       conn = await asyncpg.connect(dotenv.dotenv_values('.env')['DATABASE_URL'])\n\
             \x20       print('ok', await conn.fetchval('select current_user'))\n\
             \x20       await conn.close()\n\
             \x20   except Exception as e:\n\
             \x20       print('error', type(e).__name__)\n\
             asyncio.run(main())\n",
        )
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `${NAME}` in `.env`: python-dotenv (the framework's loader, the real one from the venv)
/// expands it, so doctor checks the expanded URL. Defined on an earlier line, both log in; a
/// reference to nothing, both fail. Before, doctor checked the text as written and reported
/// auth-failed for a URL the app connects with.
#[test]
fn a_dotenv_reference_is_checked_as_python_dotenv_expands_it() {
    let cluster = support::shared(Shared::Scram);
    let dir = crate::project();
    let app = || dotenv_app(dir.path(), &[]);
    let doctor = || {
        let out = crate::run(crate::aksara(dir.path()).args(["doctor", "--format", "json"]));
        let json: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {out:?}"));
        (out.code, json)
    };
    let url = |reference: &str| {
        format!(
            "DB_PASSWORD={}\nDATABASE_URL=postgresql://postgres:${{{reference}}}@127.0.0.1:{}/postgres\n",
            cluster.password, cluster.port
        )
    };

    std::fs::write(dir.path().join(".env"), url("DB_PASSWORD")).unwrap();
    assert_eq!(app(), "ok postgres");
    let (code, json) = doctor();
    assert_eq!(code, 0, "{json:#}");
    assert!(
        json["note"].as_str().is_some_and(|n| n
            .starts_with("python-dotenv (the framework's loader) expands its ${NAME} references")),
        "{json:#}"
    );

    std::fs::write(dir.path().join(".env"), url("NOT_DEFINED_ANYWHERE")).unwrap();
    assert!(app().starts_with("error "), "{}", app());
    let (code, json) = doctor();
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(
        crate::failed_checks(&json)[0]["code"],
        "password-required",
        "{json:#}"
    );
}

/// `--fix` rewrites a URL whose password is a `${NAME}` reference to the shell: the line keeps
/// the reference and the file never holds the password, and the real python-dotenv and asyncpg
/// then connect with it. Before, the rewrite wrote what the reference expanded to, the shell's
/// password, into the file. A reference the rewrite cannot keep (the port's, next to a
/// parameter asyncpg cannot take) leaves the file as it was, and says why.
#[test]
fn fix_keeps_a_dotenv_reference_and_never_writes_what_it_expands_to() {
    let cluster = support::shared(Shared::Scram);
    let dir = crate::project();
    let env_file = dir.path().join(".env");
    const VAR: &str = "AKSARA_TEST_DB_PASSWORD";
    let app = || dotenv_app(dir.path(), &[(VAR, &cluster.password)]);
    let fix = || {
        crate::run(
            crate::aksara(dir.path())
                .args(["doctor", "--fix", "--yes"])
                .env(VAR, &cluster.password),
        )
    };

    let port = cluster.port;
    std::fs::write(
        &env_file,
        format!("DATABASE_URL=postgresql://postgres:${{{VAR}}}@127.0.0.1:{port}/postgres?connect_timeout=10\n"),
    )
    .unwrap();
    let fixed = fix();
    assert_eq!(fixed.code, 0, "{fixed:?}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(!env.contains(&cluster.password), "{env}");
    assert_eq!(
        env.lines().last(),
        Some(
            format!("DATABASE_URL=\"postgresql://postgres:${{{VAR}}}@127.0.0.1:{port}/postgres\"")
                .as_str()
        ),
        "{env}"
    );
    assert!(
        fixed.stdout.contains(&format!(
            "+ DATABASE_URL=postgresql://postgres:${{{VAR}}}@127.0.0.1:{port}/postgres\n"
        )),
        "{fixed:?}"
    );
    assert_eq!(app(), "ok postgres");

    let kept = format!(
        "DB_PORT={port}\nDATABASE_URL=postgresql://postgres:${{{VAR}}}@127.0.0.1:${{DB_PORT}}/postgres?connect_timeout=10\n"
    );
    std::fs::write(&env_file, &kept).unwrap();
    let declined = fix();
    assert_eq!(declined.code, 1, "{declined:?}");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), kept);
    assert!(
        declined.stdout.contains(&format!(
            "no fix for driver-sends-unknown-setting: DATABASE_URL takes ${{{VAR}}}, ${{DB_PORT}} from the shell or the lines above"
        )) && declined.stdout.contains(&format!("keeping ${{{VAR}}}, ${{DB_PORT}}")),
        "{declined:?}"
    );
}

/// The URL leaves out the database and TLS; the shell sets PGDATABASE, then PGSSLMODE. Each real
/// driver, started with those variables, connects where its doctor line (the model, in that
/// environment) says, or fails where the line says it requires TLS the server lacks; doctor's
/// URL line says which parts are the shell's.
#[test]
fn the_pg_variables_fill_what_the_url_leaves_out_as_each_driver_reads_them() {
    let cluster = support::shared(Shared::Scram);
    let password = "env-fill-pw";
    // A database of another name than the role: the default would be the role's name.
    let (role, db) = role_with_database(
        cluster,
        password,
        Some(&format!("envdb_{}", std::process::id())),
    );
    let url = format!("postgresql://{role}:{password}@127.0.0.1:{}", cluster.port);
    let real: Vec<RealDriver> = RealDriver::ALL
        .into_iter()
        .filter(|d| *d != RealDriver::Sqlx)
        .collect();
    let line_in = |driver: RealDriver, env: &[(&str, &str)]| {
        let var = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let given = as_given_to(driver, &url);
        let line = drivers::lines(&given, &[driver.model()])
            .remove(0)
            .in_environment(&given, &var);
        let reading = line.verdict.reading().cloned();
        (
            reading.expect("the URL is fine for every driver"),
            line.headline(),
        )
    };

    // PGDATABASE: every driver here reads it for a URL without a database.
    let env = [("PGDATABASE", db.as_str())];
    let jobs: Vec<(RealDriver, String)> =
        real.iter().map(|d| (*d, as_given_to(*d, &url))).collect();
    let outcomes = support::drivers::run_in_environment(&jobs, &env, &[password]);
    for (driver, got) in real.iter().zip(&outcomes) {
        let (reading, headline) = line_in(*driver, &env);
        assert_eq!(reading.database.as_deref(), Some(db.as_str()), "{headline}");
        assert!(
            headline.contains("PGDATABASE from the environment"),
            "{headline}"
        );
        let place = got
            .place()
            .unwrap_or_else(|| panic!("{} did not connect: {got:?}", driver.id()));
        assert_eq!(place.database, db, "{}", driver.id());
    }
    // A bare `/`: asyncpg reads the empty name (the server then takes the role's name) and
    // does not look at PGDATABASE; its line says so. The role's own
    // database exists too, so that such a driver connects and shows where.
    cluster.psql("postgres", &format!("CREATE DATABASE {role} OWNER {role}"));
    let slash = format!("{url}/");
    let jobs_slash: Vec<(RealDriver, String)> =
        real.iter().map(|d| (*d, as_given_to(*d, &slash))).collect();
    let outcomes = support::drivers::run_in_environment(&jobs_slash, &env, &[password]);
    for ((driver, given), got) in jobs_slash.iter().zip(&outcomes) {
        let var = |name: &str| (name == "PGDATABASE").then(|| db.clone());
        let line = drivers::lines(given, &[driver.model()])
            .remove(0)
            .in_environment(given, &var);
        let reading = line.verdict.reading().expect("a reading").clone();
        let expected = reading
            .database
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| role.clone());
        let place = got
            .place()
            .unwrap_or_else(|| panic!("{} did not connect: {got:?}", driver.id()));
        assert_eq!(
            place.database,
            expected,
            "{}: {}",
            driver.id(),
            line.headline()
        );
        // Where it lands is not where doctor's connection went: the line says so (asyncpg's
        // empty name is already a misreading of the URL alone).
        let said = line.environment.not_read.contains(&"PGDATABASE")
            || matches!(&line.verdict, Verdict::Problem(p) if p.code == Code::DriverMisreadsUrl);
        assert_eq!(
            place.database != db,
            said,
            "{}: {}",
            driver.id(),
            line.headline()
        );
    }

    let out = crate::run(
        crate::aksara(crate::project().path())
            .args([
                "doctor", "--url", &url, "--driver", "asyncpg", "--driver", "prisma",
            ])
            .env("PGDATABASE", &db),
    );
    insta::assert_snapshot!(
        "doctor_names_the_parts_the_shell_fills",
        crate::transcript(
            "PGDATABASE=[DB] aksara doctor --url [URL] --driver asyncpg --driver prisma",
            &out,
            &[
                (url.as_str(), "[URL]"),
                (db.as_str(), "[DB]"),
                (role.as_str(), "[ROLE]"),
                (&cluster.port.to_string(), "[PORT]"),
            ]
        )
    );
    // Prisma reads no PG* variable: a warning, and the run still passes (exit 0).
    assert_eq!(out.code, 0, "{out:?}");

    // PGSSLMODE=require, and this server has no TLS: the drivers that read it fail, as their
    // lines say (node-postgres verifies for `require`, and fails the same).
    let env = [("PGDATABASE", db.as_str()), ("PGSSLMODE", "require")];
    let outcomes = support::drivers::run_in_environment(&jobs, &env, &[password]);
    for (driver, got) in real.iter().zip(&outcomes) {
        let (reading, headline) = line_in(*driver, &env);
        assert!(
            matches!(reading.tls, Tls::Required | Tls::VerifyCa | Tls::VerifyFull),
            "{headline}"
        );
        assert!(
            got.place().is_none(),
            "{} connected without TLS: {got:?}",
            driver.id()
        );
    }
}
