//! The real application drivers, run on a URL: asyncpg, psycopg (libpq), SQLAlchemy with both
//! dialects (Python, from `tests/drivers/.venv`) and node-postgres (from
//! `tests/drivers/node_modules`), each through a small runner script in `tests/drivers/` that
//! prints one JSON line: where it connected (server port, user, database, socket or TCP, TLS)
//! or the error it raised.
//!
//! The URLs reach the runners in the environment (`AKSARA_DRIVER_JOBS`), never in argv. The
//! drivers are installed by `.ci/run`; when they are missing the test fails and names the
//! command that installs them (no silent skip).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One way of connecting that a real driver offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealDriver {
    Asyncpg,
    AsyncpgPool,
    /// psycopg 3: the URL goes to libpq as it is.
    Psycopg,
    SqlalchemyAsyncpg,
    SqlalchemyPsycopg,
    NodePg,
}

impl RealDriver {
    pub const ALL: [RealDriver; 6] = [
        RealDriver::Asyncpg,
        RealDriver::AsyncpgPool,
        RealDriver::Psycopg,
        RealDriver::SqlalchemyAsyncpg,
        RealDriver::SqlalchemyPsycopg,
        RealDriver::NodePg,
    ];

    pub fn id(self) -> &'static str {
        match self {
            RealDriver::Asyncpg => "asyncpg",
            RealDriver::AsyncpgPool => "asyncpg-pool",
            RealDriver::Psycopg => "psycopg",
            RealDriver::SqlalchemyAsyncpg => "sqlalchemy-asyncpg",
            RealDriver::SqlalchemyPsycopg => "sqlalchemy-psycopg",
            RealDriver::NodePg => "node-pg",
        }
    }

    /// The model's driver family for it.
    pub fn model(self) -> aksara::drivers::Driver {
        use aksara::drivers::Driver;
        match self {
            RealDriver::Asyncpg | RealDriver::AsyncpgPool => Driver::Asyncpg,
            RealDriver::Psycopg => Driver::Libpq,
            RealDriver::SqlalchemyAsyncpg => Driver::SqlalchemyAsyncpg,
            RealDriver::SqlalchemyPsycopg => Driver::SqlalchemyPsycopg,
            RealDriver::NodePg => Driver::NodePg,
        }
    }
}

/// What the driver did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Connected(Place),
    Failed { class: String, message: String },
}

/// Where a connection landed, as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The server's `port` setting: which harness cluster it is.
    pub port: u16,
    pub user: String,
    pub database: String,
    pub socket: bool,
    pub ssl: bool,
    pub search_path: String,
    pub application_name: String,
}

impl Outcome {
    pub fn place(&self) -> Option<&Place> {
        match self {
            Outcome::Connected(place) => Some(place),
            Outcome::Failed { .. } => None,
        }
    }
}

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

const INSTALL: &str = "python3 -m venv tests/drivers/.venv && \
    tests/drivers/.venv/bin/pip install -r tests/drivers/requirements.txt && \
    (cd tests/drivers && npm ci)   # or run .ci/run, which does the same";

/// Panics with the install command when the drivers are not there.
fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): the driver tests run the real drivers; install them with\n  {INSTALL}",
        path.display()
    );
}

/// Runs `driver` on `url`; see [`run_all`].
pub fn run(driver: RealDriver, url: &str, secrets: &[&str]) -> Outcome {
    run_all(&[(driver, url.to_owned())], secrets).remove(0)
}

/// Runs every job, in order: one Python process for the Python drivers and one node process
/// for node-postgres, the jobs passed in `AKSARA_DRIVER_JOBS`. Messages are redacted of
/// `secrets`.
pub fn run_all(jobs: &[(RealDriver, String)], secrets: &[&str]) -> Vec<Outcome> {
    let dir = drivers_dir();
    let (node, python): (Vec<usize>, Vec<usize>) =
        (0..jobs.len()).partition(|&i| jobs[i].0 == RealDriver::NodePg);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
    for (indices, is_node) in [(python, false), (node, true)] {
        if indices.is_empty() {
            continue;
        }
        let mut cmd = if is_node {
            require(&dir.join("node_modules/pg"), "node-postgres");
            let mut cmd = Command::new("node");
            cmd.arg(dir.join("run_node.js"));
            cmd
        } else {
            let python = dir.join(".venv/bin/python");
            require(&python, "the Python driver venv");
            let mut cmd = Command::new(python);
            cmd.arg(dir.join("run_python.py"));
            cmd
        };
        let batch: Vec<serde_json::Value> = indices
            .iter()
            .map(|&i| serde_json::json!({"driver": jobs[i].0.id(), "url": jobs[i].1}))
            .collect();
        super::hermetic_env(&mut cmd);
        // node-postgres warns about sslmode aliases on stderr; the outcomes are on stdout.
        cmd.env(
            "AKSARA_DRIVER_JOBS",
            serde_json::Value::Array(batch).to_string(),
        )
        .current_dir(&dir)
        .stdin(Stdio::null());
        let out = cmd.output().expect("start the driver runner");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
        assert_eq!(
            lines.len(),
            indices.len(),
            "the driver runner printed {} outcomes for {} jobs\n--- stdout\n{}\n--- stderr\n{}",
            lines.len(),
            indices.len(),
            redact(&stdout, secrets),
            redact(&String::from_utf8_lossy(&out.stderr), secrets)
        );
        for (&i, line) in indices.iter().zip(lines) {
            outcomes[i] = Some(parse_outcome(line, secrets));
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}

fn parse_outcome(line: &str, secrets: &[&str]) -> Outcome {
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON outcome");
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
    if json["ok"].as_bool() == Some(true) {
        Outcome::Connected(Place {
            port: json["port"].as_u64().expect("a port") as u16,
            user: text("user"),
            database: text("database"),
            socket: json["socket"].as_bool().unwrap_or(false),
            ssl: json["ssl"].as_bool().unwrap_or(false),
            search_path: text("search_path"),
            application_name: text("application_name"),
        })
    } else {
        Outcome::Failed {
            class: text("error_class"),
            message: redact(&text("error"), secrets),
        }
    }
}

/// Replaces each secret (and its percent-encoded form) with `****`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        text = text.replace(secret, "****");
        text = text.replace(&super::encode(secret), "****");
    }
    text
}
