//! When no server answers: what this machine can start (its installed cluster that is down,
//! a server for the project from the installed programs, Docker), as the interactive menu's
//! offers and as the hint of the error a non-interactive run ends with.

use crate::code::Code;
use crate::diagnose;
use crate::error::CliError;
use crate::localserver;
use crate::probe;

/// What discovery looked at: the addresses probed, and the socket folders looked in (also when
/// they hold no socket at all).
pub fn probed_places(probed: &[probe::Probed]) -> Vec<String> {
    let mut places: Vec<String> = probed
        .iter()
        .map(|p| p.candidate.endpoint.to_string())
        .collect();
    let folders: Vec<&str> = crate::dsn::DEFAULT_SOCKET_DIRS
        .iter()
        .copied()
        .filter(|d| std::path::Path::new(d).is_dir())
        .collect();
    places.push(format!("socket files in {}", folders.join(", ")));
    places
}

/// `installed` is what `clusters::discover` found (asked once per run: `pg_lsclusters` is a Perl
/// program of ~50 ms).
pub fn no_server_error(
    probed: &[probe::Probed],
    offers: &[Offer],
    installed_clusters: &[crate::clusters::Installed],
) -> CliError {
    let places = probed_places(probed);
    // The installed cluster is named once, in the advice below.
    let offers: Vec<&Offer> = offers
        .iter()
        .filter(|o| !matches!(o, Offer::Installed(_)))
        .collect();
    let mut installed = Vec::new();
    for tool in ["psql", "postgres", "pg_ctl", "initdb", "docker"] {
        if let Ok(path) = which::which(tool) {
            installed.push(format!("{tool} ({})", path.display()));
        }
    }
    let installed = if installed.is_empty() {
        "none of psql, postgres, pg_ctl, docker".to_string()
    } else {
        installed.join(", ")
    };
    let mut hint = format!("installed: {installed}. ");
    // PostgreSQL is installed and a cluster is configured, only not running: start it.
    if let Some(advice) = crate::clusters::start_advice(installed_clusters) {
        hint.push_str(&format!(
            "{advice} (or pass `--start-server installed` to have aksara start it)"
        ));
        if !offers.is_empty() {
            let flags: Vec<String> = offers
                .iter()
                .map(|o| format!("`--start-server {}` starts {}", o.flag(), o.describe()))
                .collect();
            hint.push_str(&format!(
                "; or a server for this project: {}",
                flags.join(", or ")
            ));
        }
    } else if offers.is_empty() {
        hint.push_str(&diagnose::install_advice());
    } else {
        let flags: Vec<String> = offers
            .iter()
            .map(|o| format!("`--start-server {}` starts {}", o.flag(), o.describe()))
            .collect();
        hint.push_str(&format!(
            "aksara can start one for this project: {}. Or: {}",
            flags.join(", or "),
            diagnose::install_advice()
        ));
    }
    CliError::failure(format!(
        "no PostgreSQL server answers; probed: {}",
        places.join(", ")
    ))
    .with_code(Code::ConnectionRefused)
    .with_hint(hint)
}

/// A server aksara can start on this machine.
pub enum Offer {
    /// The machine's own cluster, configured but down.
    Installed(Box<crate::clusters::Installed>),
    Local(localserver::Binaries),
    Docker,
}

impl Offer {
    pub fn flag(&self) -> &'static str {
        match self {
            Offer::Installed(_) => "installed",
            Offer::Local(_) => "local",
            Offer::Docker => "docker",
        }
    }

    /// What the offer starts, for the menu ("Start …") and the hint after a refusal.
    pub fn describe(&self) -> String {
        match self {
            Offer::Installed(c) => format!("{} with `{}`", c.describe(), c.start),
            Offer::Local(b) => format!(
                "PostgreSQL {} for this project (data in .aksara/postgres, programs in {})",
                b.version,
                b.bindir.display()
            ),
            Offer::Docker => format!(
                "PostgreSQL in Docker (container {}, image {}, volume {})",
                crate::docker::CONTAINER,
                crate::docker::IMAGE,
                crate::docker::VOLUME
            ),
        }
    }
}
