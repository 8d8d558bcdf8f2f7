//! Bringing the project's own server up and logging in to it: the path `dbsetup` takes when no
//! server runs (or when `--start-server` asks for one), and `dbserver start` after a reboot.
//! The local cluster and the Docker container differ in how they start; both end in the same
//! place: a record in `.aksara/server.json`, the superuser password in its `0600` file, and a
//! login that waits, bounded, until the server lets the superuser in.

use crate::code::Code;
use std::time::Duration;

use crate::connect::{self, Connected, FailureKind, WaitFailure};
use crate::diagnose::{self, Context};
use crate::docker::{self, CONTAINER, Container, VOLUME};
use crate::dsn::{ConnConfig, Endpoint, Environment};
use crate::error::{CliError, CliResult};
use crate::localserver;
use crate::probe::{self, Answer};
use crate::projectserver::{Kind, Layout, Record, SUPERUSER};
use crate::ui::{Mark, Printer};

/// How the server came to be running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Created,
    Started,
    AlreadyRunning,
}

/// The project's server, running.
#[derive(Debug)]
pub struct Up {
    pub record: Record,
    pub password: String,
    pub how: How,
    /// A database the server made as it was created (the image's POSTGRES_DB).
    pub created_database: Option<String>,
}

/// Docker's `docker info` bound: long enough for a slow engine, short enough for a hung one.
pub const DOCKER_INFO_BOUND: Duration = Duration::from_secs(5);

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Local => "a PostgreSQL cluster in .aksara/postgres",
        Kind::Docker => "the Docker container aksara-postgres",
    }
}

fn other_kind(layout: &Layout, record: &Record, wanted: Kind) -> CliError {
    let flag = match record.kind {
        Kind::Local => "local",
        Kind::Docker => "docker",
    };
    CliError::usage(format!(
        "this project's server is {} ({}), not {}",
        kind_name(record.kind),
        layout.show(&layout.record_file()),
        kind_name(wanted)
    ))
    .with_hint(format!(
        "pass --start-server {flag} to use it; to replace it, stop it (`aksara dbserver stop`) and remove {}",
        layout.show(&layout.root())
    ))
}

fn stopped_error(layout: &Layout) -> CliError {
    CliError::failure(format!(
        "this project's PostgreSQL ({}) is not running, and --start-server never forbids starting it",
        layout.show(&layout.root())
    ))
    .with_code(Code::ConnectionRefused)
    .with_hint("start it: `aksara dbserver start`")
}

fn password_of(layout: &Layout) -> CliResult<String> {
    layout.read_password()?.ok_or_else(|| {
        CliError::failure(format!(
            "the superuser password file {} is missing",
            layout.password_file().display()
        ))
        .with_hint(format!(
            "put the password of the `{SUPERUSER}` role in it (one line, `chmod 600`), or pass --admin-url with PGPASSWORD"
        ))
    })
}

/// The project's local cluster: started when it exists (unless `allow_start` is false),
/// created from the installed server programs when it does not.
pub async fn local(
    layout: &Layout,
    first_port: u16,
    wait: Duration,
    allow_start: bool,
    printer: &Printer,
) -> CliResult<Up> {
    if let Some(record) = layout.read_record()? {
        if record.kind != Kind::Local {
            return Err(other_kind(layout, &record, Kind::Local));
        }
        let how = if allow_start {
            bring_up(layout, &record, wait, printer).await?
        } else if localserver::status(layout, &record).await.accepting {
            How::AlreadyRunning
        } else {
            return Err(stopped_error(layout));
        };
        return Ok(Up {
            password: password_of(layout)?,
            record,
            how,
            created_database: None,
        });
    }
    let bins = localserver::find_binaries()?;
    let record = localserver::create(layout, &bins, first_port, wait, printer).await?;
    printer.step(
        Mark::Pass,
        &format!(
            "Started it on 127.0.0.1:{} and a socket in {} (`aksara dbserver status|stop|start`)",
            record.port,
            layout.show(&layout.socket_dir())
        ),
    );
    Ok(Up {
        password: password_of(layout)?,
        record,
        how: How::Created,
        created_database: None,
    })
}

/// The `aksara-postgres` container: used when it runs, started when it is stopped, created
/// with the seed's quickstart when it does not exist. `db` is the image's POSTGRES_DB.
pub async fn docker(
    layout: &Layout,
    first_port: u16,
    db: &str,
    allow_start: bool,
    printer: &Printer,
) -> CliResult<Up> {
    if let Some(record) = layout.read_record()?
        && record.kind != Kind::Docker
    {
        return Err(other_kind(layout, &record, Kind::Docker));
    }
    let spinner = printer.spinner("Asking Docker");
    let engine = docker::engine_answers(DOCKER_INFO_BOUND).await;
    drop(spinner);
    if !engine {
        return Err(no_engine());
    }
    let created_root = layout.create_root()?;
    let (password, created_password) = layout.ensure_password()?;
    let undo = |e: CliError| {
        // Nothing started: leave the project as it was.
        if created_password {
            let _ = std::fs::remove_file(layout.password_file());
        }
        if created_root {
            let _ = std::fs::remove_dir(layout.root());
        }
        e
    };
    let state = docker::container().await.map_err(|e| undo(e.into()))?;
    let (port, how, created_database) = match state {
        Container::Running => (docker::host_port().await?, How::AlreadyRunning, None),
        Container::Stopped(status) => {
            if !allow_start {
                return Err(stopped_error(layout));
            }
            printer.status(&format!(
                "  the container {CONTAINER} exists ({status}); starting it"
            ));
            docker::start().await.map_err(|e| undo(e.into()))?;
            (docker::host_port().await?, How::Started, None)
        }
        Container::Missing => {
            if !allow_start {
                return Err(stopped_error(layout)
                    .with_hint("drop --start-server never to let aksara create it".to_string()));
            }
            // Never a port an installed cluster is configured for: it would not start again.
            let installed = crate::clusters::discover();
            let (port, why) =
                localserver::choose_port(first_port, &installed, localserver::port_is_free)
                    .map_err(|e| undo(e.into()))?;
            if let Some(why) = why {
                printer.status(&format!(
                    "  {why}; the container publishes PostgreSQL on port {port}"
                ));
            }
            let spinner = printer.spinner(&format!(
                "Starting {} in Docker (the first run downloads the image)",
                docker::IMAGE
            ));
            let ran = docker::run(port, db, &password).await;
            drop(spinner);
            ran.map_err(|e| undo(e.into()))?;
            (port, How::Created, Some(db.to_string()))
        }
    };
    let record = Record {
        kind: Kind::Docker,
        port,
        bindir: None,
        version: None,
        container: Some(CONTAINER.into()),
        identity: None,
    };
    layout.write_record(&record)?;
    let what = match how {
        How::Created => "Created and started",
        How::Started => "Started",
        How::AlreadyRunning => "Using the running",
    };
    printer.step(
        Mark::Pass,
        &format!(
            "{what} the Docker container {CONTAINER} ({}, volume {VOLUME}) on localhost:{port}",
            docker::IMAGE
        ),
    );
    Ok(Up {
        record,
        password,
        how,
        created_database,
    })
}

fn no_engine() -> CliError {
    CliError::failure("no Docker engine answers (`docker info` failed or did not answer within 5 s)")
        .with_hint("start Docker (Docker Desktop, or `sudo systemctl start docker`), or use --start-server local with the PostgreSQL server programs installed")
}

/// Start the recorded server if it is not running; for `dbserver start` and for a project
/// whose server `dbsetup` finds stopped.
pub async fn bring_up(
    layout: &Layout,
    record: &Record,
    wait: Duration,
    printer: &Printer,
) -> CliResult<How> {
    match record.kind {
        Kind::Local => {
            let started = localserver::start(layout, record, wait, printer).await?;
            Ok(if started {
                printer.step(
                    Mark::Pass,
                    &format!(
                        "Started this project's PostgreSQL on 127.0.0.1:{} (data in {})",
                        record.port,
                        layout.show(&layout.data_dir())
                    ),
                );
                How::Started
            } else {
                How::AlreadyRunning
            })
        }
        Kind::Docker => {
            let how = match docker::container().await? {
                Container::Running => How::AlreadyRunning,
                Container::Stopped(_) => {
                    docker::start().await?;
                    How::Started
                }
                Container::Missing => {
                    return Err(CliError::failure(format!(
                        "the Docker container {CONTAINER} recorded in {} no longer exists",
                        layout.show(&layout.record_file())
                    ))
                    .with_hint(format!(
                        "create it again with `aksara dbsetup --start-server docker` (the data in the volume {VOLUME} is reused)"
                    )));
                }
            };
            if how == How::Started {
                let ep = layout.tcp_endpoint(record);
                let spinner = printer.spinner(&format!("Waiting for PostgreSQL at {ep}"));
                let ready = wait_accepting(std::slice::from_ref(&ep), wait).await;
                drop(spinner);
                if !ready {
                    return Err(CliError::failure(format!(
                        "the container {CONTAINER} started, but PostgreSQL did not answer at {ep} within {} s",
                        wait.as_secs()
                    ))
                    .with_hint(format!("`docker logs {CONTAINER}` shows why")));
                }
                printer.step(
                    Mark::Pass,
                    &format!(
                        "Started the Docker container {CONTAINER} on localhost:{}",
                        record.port
                    ),
                );
            }
            Ok(how)
        }
    }
}

/// Whether one of `endpoints` answers as PostgreSQL within `wait`.
pub async fn wait_accepting(endpoints: &[Endpoint], wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        for ep in endpoints {
            if matches!(
                probe::probe(ep, Duration::from_millis(500)).await,
                Answer::Postgres { .. }
            ) {
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Log in as the superuser, waiting (bounded) while the server is still coming up.
pub async fn login(
    layout: &Layout,
    up: &Up,
    env: &dyn Environment,
    wait: Duration,
    per_attempt: Duration,
    printer: &Printer,
) -> CliResult<(Connected, ConnConfig)> {
    let cfg = layout
        .admin_conn_string(&up.record, &up.password)
        .resolve(env)?;
    let ep = layout.tcp_endpoint(&up.record);
    let spinner = printer.spinner(&format!(
        "Waiting for PostgreSQL to accept connections at {ep}"
    ));
    let result = connect::connect_when_ready(&cfg, wait, per_attempt).await;
    drop(spinner);
    match result {
        Ok(c) => {
            printer.step(
                Mark::Pass,
                &format!(
                    "Logged in as \"{SUPERUSER}\" (password from {})",
                    layout.show(&layout.password_file())
                ),
            );
            Ok((c, cfg))
        }
        Err(WaitFailure::Rejected(f)) if f.last().failure.sqlstate() == Some("28P01") => {
            Err(wrong_password(layout, &up.record))
        }
        Err(WaitFailure::Rejected(f)) => {
            let d = diagnose::diagnose(&cfg, f.last(), &Context::default());
            Err(CliError::failure(format!(
                "this project's PostgreSQL refused the superuser login: {}",
                d.message
            ))
            .with_hint(d.hint)
            .with_code(d.code))
        }
        Err(WaitFailure::NotReady { failure, waited }) => {
            let last = short(&failure.last().failure);
            let (what, hint) = match up.record.kind {
                Kind::Docker => (
                    format!("the container {CONTAINER}"),
                    format!(
                        "`docker logs {CONTAINER}` shows why; the first start initialises the data and may need longer: rerun with --start-timeout 180"
                    ),
                ),
                Kind::Local => (
                    "this project's PostgreSQL".to_string(),
                    format!("see {}", layout.log_file().display()),
                ),
            };
            Err(CliError::failure(format!(
                "{what} did not accept connections at {ep} within {} s (last attempt: {last})",
                waited.as_secs()
            ))
            .with_code(Code::ConnectionTimeout)
            .with_hint(hint))
        }
    }
}

fn short(f: &FailureKind) -> String {
    match f {
        FailureKind::Server(e) => e.message.clone(),
        other => other.to_string(),
    }
}

/// The superuser password in the file does not open the server.
fn wrong_password(layout: &Layout, record: &Record) -> CliError {
    let file = layout.show(&layout.password_file());
    match record.kind {
        // The image documents it: POSTGRES_PASSWORD only applies when the data folder is
        // empty, so a volume from an earlier run keeps the earlier password.
        Kind::Docker => CliError::failure(format!(
            "the server in the container {CONTAINER} rejected the superuser password from {file}: the volume {VOLUME} already held a database from an earlier run, and the postgres image ignores POSTGRES_PASSWORD when its data folder is not empty"
        ))
        .with_code(Code::AuthFailed)
        .with_hint(format!(
            "if you know the earlier password, use it: `PGPASSWORD=... aksara dbsetup --admin-url postgresql://{SUPERUSER}@localhost:{port}/postgres`; or start afresh after backing up what you need (`docker exec {CONTAINER} pg_dumpall -U {SUPERUSER} > backup.sql`): `docker rm -f {CONTAINER} && docker volume rm {VOLUME}`, then `aksara dbsetup --start-server docker`",
            port = record.port
        )),
        Kind::Local => CliError::failure(format!(
            "this project's PostgreSQL rejected the superuser password from {file}"
        ))
        .with_code(Code::AuthFailed)
        .with_hint(format!(
            "the file no longer holds the password of the `{SUPERUSER}` role; if you know the right one, put it in {file}, or pass --admin-url with PGPASSWORD"
        )),
    }
}
