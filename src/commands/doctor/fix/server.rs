//! Starting the URL's server when nothing listens there and aksara knows which server it is:
//! this project's own (`.aksara/`, `aksara dbserver start`), or an installed cluster configured
//! for that port and down (its own start command: `pg_ctlcluster 15 main start`, `brew
//! services start ...`). Nothing else is started: a port nobody claims is not guessed at.

use std::time::Duration;

use super::outcome::Outcome;
use super::{Apply, Fix, FixId};
use crate::cli::DoctorArgs;
use crate::clusters::{self, Installed, State};
use crate::code::Code;
use crate::commands::doctor::targets::Target;
use crate::dsn::{ConnString, Endpoint};
use crate::projectserver::{self, AtProjectPort, Layout, Record};
use crate::sysenv::ProcessEnvironment;
use crate::ui::Printer;

/// How long a started server may take to answer, unless `--wait` says longer.
const START_WAIT: Duration = Duration::from_secs(30);

pub enum StartFix {
    Project { layout: Layout, record: Record },
    Cluster(Box<Installed>),
}

pub fn plan(index: usize, target: &Target, wanted: &[Code], env: &ProcessEnvironment) -> Vec<Fix> {
    if !wanted.contains(&Code::ConnectionRefused) {
        return Vec::new();
    }
    let Ok(cfg) = ConnString::parse(&target.raw).and_then(|cs| cs.resolve(env)) else {
        return Vec::new();
    };
    let Some(ep) = cfg.endpoints.last() else {
        return Vec::new();
    };
    let fix = |action: String, start: StartFix| Fix {
        id: FixId::StartServer,
        code: Code::ConnectionRefused,
        target: index,
        action,
        apply: Apply::Start(start),
    };
    if let Some(cwd) = std::env::current_dir().ok()
        && let Some((layout, record, AtProjectPort::Ours { running: false })) =
            projectserver::at_project_port(ep, &cwd)
    {
        let action = format!(
            "aksara dbserver start  (this project's server, {}, port {})",
            layout.show(&layout.root()),
            record.port
        );
        return vec![fix(action, StartFix::Project { layout, record })];
    }
    match stopped_cluster_at(ep) {
        Some(cluster) => {
            let action = format!("{}  ({})", cluster.start, cluster.describe());
            vec![fix(action, StartFix::Cluster(Box::new(cluster)))]
        }
        None => Vec::new(),
    }
}

/// The one installed cluster configured for the endpoint's port that is down, when the
/// endpoint is on this machine.
fn stopped_cluster_at(ep: &Endpoint) -> Option<Installed> {
    if !ep.is_local() {
        return None;
    }
    let all = clusters::discover();
    let mut down = clusters::configured_for(&all, ep.port)
        .into_iter()
        .filter(|c| c.state == State::Down);
    let one = down.next()?.clone();
    // Two clusters down on one port: which one the URL means is not ours to guess.
    down.next().is_none().then_some(one)
}

pub async fn apply(fix: &StartFix, args: &DoctorArgs, printer: &Printer) -> Outcome {
    let wait = args
        .wait
        .map(Duration::from_secs)
        .unwrap_or(START_WAIT)
        .max(START_WAIT);
    match fix {
        StartFix::Project { layout, record } => {
            match crate::serverup::bring_up(layout, record, wait, printer).await {
                Ok(_) => Outcome::done(format!(
                    "started this project's server on port {}",
                    record.port
                )),
                Err(e) => Outcome::not_applied(format!(
                    "`aksara dbserver start` did not start it: {}{}",
                    e.message,
                    e.hint
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )),
            }
        }
        StartFix::Cluster(cluster) if cluster.start.needs_root => Outcome::not_applied(format!(
            "starting {} needs root, and aksara is not: run `sudo {}`",
            cluster.label(),
            cluster.start
        )),
        StartFix::Cluster(cluster) => {
            let spinner = printer.spinner(&format!("Starting {}", cluster.describe()));
            let result = clusters::start_and_wait(cluster, wait).await;
            drop(spinner);
            match result {
                Ok(()) => {
                    Outcome::done(format!("started {} (`{}`)", cluster.label(), cluster.start))
                }
                Err(why) => {
                    Outcome::not_applied(format!("`{}` did not start it: {why}", cluster.start))
                }
            }
        }
    }
}
