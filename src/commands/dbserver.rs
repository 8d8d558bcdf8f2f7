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
            Ok(Exit::Success)
        }
        DbserverAction::Status { format } => status(&layout, &record, format, printer).await,
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
        version: record.version.clone(),
        bindir: record.bindir.as_ref().map(|b| b.display().to_string()),
        container: record.container.clone(),
        pid: None,
        superuser: SUPERUSER,
        password_file: layout.password_file().display().to_string(),
    };
    match record.kind {
        Kind::Local => {
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
        }
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
        let state = if report.running {
            match report.pid {
                Some(pid) => format!("running (pid {pid})"),
                None => "running".to_string(),
            }
        } else {
            "stopped".to_string()
        };
        printer.result(&format!("This project's PostgreSQL: {state}"));
        let row = |k: &str, v: &str| printer.result(&format!("  {k:<10}{v}"));
        match record.kind {
            Kind::Local => row(
                "server",
                &format!(
                    "PostgreSQL {} (programs in {})",
                    report.version.as_deref().unwrap_or("?"),
                    report.bindir.as_deref().unwrap_or("?")
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
        if !report.running {
            printer.hint("start it: `aksara dbserver start`");
        }
    }
    Ok(if report.running {
        Exit::Success
    } else {
        Exit::Stopped
    })
}
