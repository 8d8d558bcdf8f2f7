//! The real application drivers, run on a URL: asyncpg, psycopg (libpq), SQLAlchemy with both
//! dialects (Python, from `tests/drivers/.venv`) and node-postgres (from
//! `tests/drivers/node_modules`), each through a small runner script in `tests/drivers/` that
//! prints one JSON line: where it connected (server port, user, database, socket or TCP, TLS)
//! or the error it raised.
//!
//! The URLs reach the runners on their stdin, never in argv; one runner per language lives as
//! long as the test process, so Python's start-up is paid once. The
//! drivers are installed by `.ci/run`; when they are missing the test fails and names the
//! command that installs them (no silent skip).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

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
    /// sqlx, in this process: `PgConnectOptions::from_str(url)`, as aksara and Rust apps do.
    Sqlx,
}

impl RealDriver {
    pub const ALL: [RealDriver; 7] = [
        RealDriver::Asyncpg,
        RealDriver::AsyncpgPool,
        RealDriver::Psycopg,
        RealDriver::SqlalchemyAsyncpg,
        RealDriver::SqlalchemyPsycopg,
        RealDriver::NodePg,
        RealDriver::Sqlx,
    ];

    pub fn id(self) -> &'static str {
        match self {
            RealDriver::Asyncpg => "asyncpg",
            RealDriver::AsyncpgPool => "asyncpg-pool",
            RealDriver::Psycopg => "psycopg",
            RealDriver::SqlalchemyAsyncpg => "sqlalchemy-asyncpg",
            RealDriver::SqlalchemyPsycopg => "sqlalchemy-psycopg",
            RealDriver::NodePg => "node-pg",
            RealDriver::Sqlx => "sqlx",
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
            RealDriver::Sqlx => Driver::Sqlx,
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

/// A runner script that lives as long as the test process: jobs go to its stdin, one JSON
/// line each, and each outcome comes back as one line. Its stdin closes when the test process
/// ends, and it exits.
struct Runner {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Runner {
    /// `extra_env` on top of the hermetic environment (the `PG*` variables a test sets).
    fn start(is_node: bool, extra_env: &[(&str, &str)]) -> Runner {
        let dir = drivers_dir();
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
        super::hermetic_env(&mut cmd);
        cmd.envs(extra_env.iter().copied());
        // node-postgres warns about sslmode aliases on stderr: it goes to the test's stderr.
        let mut child = cmd
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the driver runner");
        let input = child.stdin.take().expect("the runner's stdin");
        let output = BufReader::new(child.stdout.take().expect("the runner's stdout"));
        Runner {
            child,
            input,
            output,
        }
    }

    fn run(&mut self, driver: RealDriver, url: &str, secrets: &[&str]) -> Outcome {
        let job = serde_json::json!({"driver": driver.id(), "url": url});
        writeln!(self.input, "{job}").expect("send a job to the driver runner");
        let mut line = String::new();
        let read = self
            .output
            .read_line(&mut line)
            .expect("read the driver runner");
        assert!(
            read > 0,
            "the {} runner ended without an outcome ({:?})",
            driver.id(),
            self.child.try_wait()
        );
        parse_outcome(&line, secrets)
    }
}

/// Runs every job, in order, on the process's runners (one Python, one node).
pub fn run_all(jobs: &[(RealDriver, String)], secrets: &[&str]) -> Vec<Outcome> {
    static PYTHON: OnceLock<Mutex<Runner>> = OnceLock::new();
    static NODE: OnceLock<Mutex<Runner>> = OnceLock::new();
    jobs.iter()
        .map(|(driver, url)| {
            if *driver == RealDriver::Sqlx {
                return run_sqlx(url, secrets);
            }
            let is_node = *driver == RealDriver::NodePg;
            let slot = if is_node { &NODE } else { &PYTHON };
            let mut runner = slot
                .get_or_init(|| Mutex::new(Runner::start(is_node, &[])))
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            runner.run(*driver, url, secrets)
        })
        .collect()
}

/// Runs every job on runners of its own started with `env` set (the shared ones have the test's
/// environment). Not sqlx: it runs in this process, whose environment a test cannot change.
pub fn run_in_environment(
    jobs: &[(RealDriver, String)],
    env: &[(&str, &str)],
    secrets: &[&str],
) -> Vec<Outcome> {
    assert!(
        jobs.iter().all(|(driver, _)| *driver != RealDriver::Sqlx),
        "sqlx runs in the test process: its PG* variables cannot be set per test"
    );
    let mut python: Option<Runner> = None;
    let mut node: Option<Runner> = None;
    let outcomes = jobs
        .iter()
        .map(|(driver, url)| {
            let is_node = *driver == RealDriver::NodePg;
            let slot = if is_node { &mut node } else { &mut python };
            slot.get_or_insert_with(|| Runner::start(is_node, env))
                .run(*driver, url, secrets)
        })
        .collect();
    // Their stdin closes as they drop, and each exits; reaped here.
    for runner in [python, node].into_iter().flatten() {
        let Runner {
            mut child, input, ..
        } = runner;
        drop(input);
        let _ = child.wait();
    }
    outcomes
}

const QUERY: &str = "select current_user::text, current_database()::text, current_setting('port'), \
     inet_server_addr() is null, \
     coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false), \
     current_setting('search_path'), current_setting('application_name')";

/// sqlx reads the URL in this process (`PgConnectOptions::from_str`, which also looks at the
/// process's PG* variables for what the URL leaves out; the suite's URLs name everything).
fn run_sqlx(url: &str, secrets: &[&str]) -> Outcome {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failed = |class: &str, error: &dyn std::fmt::Display| Outcome::Failed {
        class: class.to_owned(),
        message: redact(&error.to_string(), secrets),
    };
    let options: sqlx::postgres::PgConnectOptions = match url.parse() {
        Ok(options) => options,
        Err(error) => return failed("Configuration", &error),
    };
    runtime.block_on(async {
        let connect = sqlx::postgres::PgConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(std::time::Duration::from_secs(30), connect).await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => return failed("Connect", &error),
            Err(_) => return failed("Timeout", &"no outcome within 30 s"),
        };
        type Row = (String, String, String, bool, bool, String, String);
        let row: Row = match sqlx::query_as(QUERY).fetch_one(&mut conn).await {
            Ok(row) => row,
            Err(error) => return failed("Query", &error),
        };
        let _ = conn.close().await;
        Outcome::Connected(Place {
            port: row.2.parse().expect("a port"),
            user: row.0,
            database: row.1,
            socket: row.3,
            ssl: row.4,
            search_path: row.5,
            application_name: row.6,
        })
    })
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
