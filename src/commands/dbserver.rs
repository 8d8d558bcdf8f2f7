//! `aksara dbserver start|stop|status`: the project's own PostgreSQL after `dbsetup` started it,
//! found through `.aksara/server.json` in this folder or one above. `start` brings it back
//! with its data (after a reboot), `stop` shuts it down fast, `status` tells the truth about
//! it and says so in its exit code too: 0 running, 3 stopped, 4 no server here (as
//! `pg_ctl status` uses 3 for "not running").

use std::time::Duration;

use serde::Serialize;

use crate::cli::{DbserverAction, DbserverArgs, OutputFormat};
use crate::docker::{self, CONTAINER, Container};
use crate::error::{CliError, CliResult, Exit};
use crate::localserver;
use crate::probe::{self, Answer};
use crate::projectserver::{Kind, Layout, Record, SUPERUSER};
use crate::serverup;
use crate::ui::{Mark, Printer};

pub async fn run(args: DbserverArgs, printer: &Printer) -> CliResult<Exit> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failure(format!("cannot read the current folder: {e}")))?;
    let Some(layout) = Layout::find_from(&cwd) else {
        if let Some(done) = unrecorded(&cwd, &args.action, printer).await? {
            return Ok(done);
        }
        return Err(CliError::failure(format!(
            "this project has no PostgreSQL of its own: no .aksara/server.json in {} or any folder above",
            cwd.display()
        ))
        .with_exit(Exit::NoServer)
        .with_hint("create one: `aksara dbsetup --start-server local` (or `--start-server docker`)"));
    };
    let record = layout
        .read_record()?
        .expect("find_from returns a project with a record");
    match args.action {
        DbserverAction::Start { start_timeout } => {
            let wait = Duration::from_secs(start_timeout.max(1));
            let how = serverup::bring_up(&layout, &record, wait, printer).await?;
            if how == serverup::How::AlreadyRunning {
                printer.step(
                    Mark::Pass,
                    &format!(
                        "This project's PostgreSQL already runs ({})",
                        where_(&layout, &record)
                    ),
                );
            }
            Ok(Exit::Success)
        }
        DbserverAction::Stop => {
            let stopped = match record.kind {
                Kind::Local => localserver::stop(&layout, &record).await?,
                Kind::Docker => match docker::container().await? {
                    Container::Running => {
                        docker::stop().await?;
                        true
                    }
                    _ => false,
                },
            };
            let text = if stopped {
                format!(
                    "Stopped this project's PostgreSQL ({}); `aksara dbserver start` brings it back with its data",
                    where_(&layout, &record)
                )
            } else {
                "This project's PostgreSQL was not running".to_string()
            };
            printer.step(Mark::Pass, &text);
            if record.kind == Kind::Local
                && let Some(holder) = localserver::status(&layout, &record).await.stranger()
            {
                printer.status(&format!(
                    "  port {} is held by {holder}, which is not this project's server: left alone",
                    record.port
                ));
            }
            Ok(Exit::Success)
        }
        DbserverAction::Status { format } => status(&layout, &record, format, printer).await,
    }
}

/// No record, but a server an interrupted setup left running in `.aksara/postgres` (a SIGKILL
/// between `pg_ctl start` and writing the record): `stop` stops it, `status` and `start` say
/// what happened. None when there is no such server either.
async fn unrecorded(
    cwd: &std::path::Path,
    action: &DbserverAction,
    printer: &Printer,
) -> CliResult<Option<Exit>> {
    let Some((layout, pid)) = cwd.ancestors().find_map(|dir| {
        let layout = Layout::in_project(dir);
        localserver::unrecorded_postmaster(&layout).map(|pid| (layout, pid))
    }) else {
        return Ok(None);
    };
    let data = layout.show(&layout.data_dir());
    match action {
        DbserverAction::Stop => {
            localserver::stop_data_dir(&layout, None).await?;
            printer.step(
                Mark::Pass,
                &format!(
                    "Stopped the PostgreSQL (pid {pid}) an interrupted setup had left running in {data}; `aksara dbsetup --start-server local` cleans up and creates it again"
                ),
            );
            Ok(Some(Exit::Success))
        }
        _ => Err(CliError::failure(format!(
            "this project has no record of its server (.aksara/server.json), but an interrupted setup left a PostgreSQL (pid {pid}) running in {data}"
        ))
        .with_exit(Exit::NoServer)
        .with_hint(
            "stop it with `aksara dbserver stop`, or run `aksara dbsetup --start-server local`, which cleans up and creates it again",
        )),
    }
}

fn where_(layout: &Layout, record: &Record) -> String {
    match record.kind {
        Kind::Local => format!(
            "127.0.0.1:{}, data in {}",
            record.port,
            layout.show(&layout.data_dir())
        ),
        Kind::Docker => format!("container {CONTAINER}, localhost:{}", record.port),
    }
}

#[derive(Debug, Serialize)]
struct StatusReport {
    running: bool,
    kind: Kind,
    port: u16,
    host: String,
    socket: Option<String>,
    data_dir: Option<String>,
    log_file: Option<String>,
    version: Option<String>,
    bindir: Option<String>,
    container: Option<String>,
    pid: Option<u32>,
    /// The installed programs' version, when it differs from the running server's.
    installed_version: Option<String>,
    system_identifier: Option<String>,
    /// Who holds the port when it is not this project's server.
    port_held_by: Option<String>,
    superuser: &'static str,
    password_file: String,
}

async fn status(
    layout: &Layout,
    record: &Record,
    format: OutputFormat,
    printer: &Printer,
) -> CliResult<Exit> {
    let tcp = layout.tcp_endpoint(record);
    let mut report = StatusReport {
        running: false,
        kind: record.kind,
        port: record.port,
        host: tcp.host.to_string(),
        socket: None,
        data_dir: None,
        log_file: None,
        version: None,
        installed_version: None,
        system_identifier: record
            .identity
            .as_ref()
            .map(|i| i.system_identifier.clone())
            .filter(|s| !s.is_empty()),
        port_held_by: None,
        bindir: record.bindir.as_ref().map(|b| b.display().to_string()),
        container: record.container.clone(),
        pid: None,
        superuser: SUPERUSER,
        password_file: layout.password_file().display().to_string(),
    };
    match record.kind {
        Kind::Local => local_report(layout, record, &mut report, printer).await,
        Kind::Docker => {
            // The engine may be gone (Docker Desktop quit); the port still tells the truth.
            report.running = match docker::container().await {
                Ok(c) => c == Container::Running,
                Err(_) => matches!(
                    probe::probe(&tcp, Duration::from_secs(1)).await,
                    Answer::Postgres { .. }
                ),
            };
        }
    }
    if format == OutputFormat::Json {
        printer.result(&serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        print_report(&report, record.kind, printer);
    }
    Ok(if report.running {
        Exit::Success
    } else {
        Exit::Stopped
    })
}

/// The local cluster's part of the report: state, pid, the port's holder when it is another
/// server, and the version read from the running server or the installed programs.
async fn local_report(
    layout: &Layout,
    record: &Record,
    report: &mut StatusReport,
    printer: &Printer,
) {
    let st = localserver::status(layout, record).await;
    report.running = st.running();
    report.pid = st.pid.filter(|_| st.running());
    if !st.running()
        && let Some(pid) = st.pid
    {
        printer.warn(&format!(
            "a PostgreSQL process (pid {pid}) holds the data folder but does not answer: it is starting, shutting down or stuck; see {}",
            layout.log_file().display()
        ));
    }
    report.socket = layout
        .endpoints(record)
        .into_iter()
        .find_map(|e| e.socket_path())
        .map(|p| p.display().to_string());
    report.data_dir = Some(layout.data_dir().display().to_string());
    report.log_file = Some(layout.log_file().display().to_string());
    report.port_held_by = st.stranger().map(ToString::to_string);
    // Read, not remembered: the running server's own executable, else the programs
    // that would start it.
    let installed = localserver::installed_version(layout, record);
    report.version = report
        .pid
        .and_then(localserver::running_version)
        .or_else(|| installed.clone());
    report.installed_version = installed.filter(|i| Some(i) != report.version.as_ref());
    if localserver::same_cluster(layout, record).await == Some(false) {
        printer.warn(&format!(
            "{} is not the cluster aksara created (its system identifier differs from the one in {})",
            layout.data_dir().display(),
            layout.record_file().display()
        ));
    }
}

fn print_report(report: &StatusReport, kind: Kind, printer: &Printer) {
    let state = if report.running {
        match report.pid {
            Some(pid) => format!("running (pid {pid})"),
            None => "running".to_string(),
        }
    } else {
        "stopped".to_string()
    };
    printer.result(&format!("This project's PostgreSQL: {state}"));
    if let Some(holder) = &report.port_held_by {
        printer.result(&format!(
            "  port {} is held by {holder}: that is not this project's server",
            report.port
        ));
    }
    let row = |k: &str, v: &str| printer.result(&format!("  {k:<10}{v}"));
    match kind {
        Kind::Local => row(
            "server",
            &format!(
                "PostgreSQL {} (programs in {}){}",
                report.version.as_deref().unwrap_or("?"),
                report.bindir.as_deref().unwrap_or("?"),
                report
                    .installed_version
                    .as_ref()
                    .map(|v| format!("; {v} is installed, a restart runs it"))
                    .unwrap_or_default()
            ),
        ),
        Kind::Docker => row(
            "server",
            &format!("Docker container {CONTAINER} ({})", docker::IMAGE),
        ),
    }
    row("port", &format!("{} on {}", report.port, report.host));
    if let Some(s) = &report.socket {
        row("socket", s);
    }
    if let Some(d) = &report.data_dir {
        row("data", d);
    }
    if let Some(l) = &report.log_file {
        row("log", l);
    }
    row(
        "superuser",
        &format!("{SUPERUSER} (password in {})", report.password_file),
    );
    if let Some(id) = &report.system_identifier {
        row("identity", &format!("system identifier {id}"));
    }
    if report.port_held_by.is_some() {
        printer.hint(
            "stop that server, or give this project's server another port: change `port` in .aksara/server.json (and in DATABASE_URL), then `aksara dbserver start`",
        );
    } else if !report.running {
        printer.hint("start it: `aksara dbserver start`");
    }
}
