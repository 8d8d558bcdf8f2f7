//! The seed page's Docker quickstart, done for the user: `docker run` of `postgres:15` as the
//! `aksara-postgres` container with the `aksara_pgdata` volume, or `docker start` of that
//! container when it exists. The superuser password reaches docker only through its
//! environment (`-e POSTGRES_PASSWORD` with no value makes docker read its own variable), never
//! its command line. Every docker call is bounded, so a hung engine cannot hang aksara; only
//! `docker run` may take long, as it downloads the image the first time.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::projectserver::SUPERUSER;

pub const CONTAINER: &str = "aksara-postgres";
pub const VOLUME: &str = "aksara_pgdata";
pub const IMAGE: &str = "postgres:15";
/// The variable that carries the password from aksara to docker to the image's entrypoint.
pub const PASSWORD_VAR: &str = "POSTGRES_PASSWORD";
/// Bound for the quick calls (`info`, `ps`, `start`, `port`, `stop`).
const QUICK: Duration = Duration::from_secs(20);
/// `docker run` may pull the image first.
const RUN: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub enum DockerError {
    NotFound,
    Failed {
        command: String,
        output: String,
    },
    TimedOut {
        command: String,
        after: Duration,
    },
    /// `docker port` did not name a host port for 5432.
    NoPort {
        output: String,
    },
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::NotFound => f.write_str("docker is not installed (not on PATH)"),
            DockerError::Failed { command, output } => {
                write!(f, "`{command}` failed: {output}")
            }
            DockerError::TimedOut { command, after } => {
                write!(f, "`{command}` did not finish within {} s", after.as_secs())
            }
            DockerError::NoPort { output } => write!(
                f,
                "the container {CONTAINER} publishes no host port for PostgreSQL (5432/tcp): `docker port` said `{output}`"
            ),
        }
    }
}

impl DockerError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            DockerError::NotFound => "install Docker (https://docs.docker.com/get-docker/), or use --start-server local".into(),
            DockerError::Failed { .. } | DockerError::TimedOut { .. } => {
                "check that the Docker engine runs (`docker info`); `docker logs aksara-postgres` shows the server's output".into()
            }
            DockerError::NoPort { .. } => format!(
                "recreate it with a published port: `docker rm -f {CONTAINER}` (the data stays in the volume {VOLUME}), then run `aksara dbsetup --start-server docker`"
            ),
        })
    }
}

/// The container's state, from `docker ps -a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Container {
    Missing,
    Running,
    /// Exited, created, dead: `docker start` brings it back; the text is docker's status.
    Stopped(String),
}

fn docker_path() -> Result<PathBuf, DockerError> {
    which::which("docker").map_err(|_| DockerError::NotFound)
}

async fn docker(
    args: &[&str],
    env: Option<(&str, &str)>,
    bound: Duration,
) -> Result<String, DockerError> {
    let program = docker_path()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Docker needs its own variables (DOCKER_HOST, ...), not the database passwords aksara
    // was given.
    for secret in ["PGPASSWORD", "AKSARA_DB_PASSWORD", PASSWORD_VAR] {
        cmd.env_remove(secret);
    }
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let shown = format!("docker {}", args.join(" "));
    let out = match tokio::time::timeout(bound, cmd.output()).await {
        Err(_) => {
            return Err(DockerError::TimedOut {
                command: shown,
                after: bound,
            });
        }
        Ok(Err(e)) => {
            return Err(DockerError::Failed {
                command: shown,
                output: e.to_string(),
            });
        }
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if text.is_empty() {
            text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(DockerError::Failed {
            command: shown,
            output: text,
        })
    }
}

/// Whether a Docker engine answers: its socket (or DOCKER_HOST) is there and `docker info`
/// succeeds within `bound`. A yes is remembered for the run: the menu asks before offering
/// Docker, and starting the container right after need not ask again.
pub async fn engine_answers(bound: Duration) -> bool {
    static ANSWERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if ANSWERED.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    let answers = docker_path().is_ok()
        && engine_socket_present()
        && docker(&["info"], None, bound).await.is_ok();
    ANSWERED.store(answers, std::sync::atomic::Ordering::Relaxed);
    answers
}

/// A stopped container that publishes `port` on the host, for the hint after a refused
/// connection ("`docker start NAME`"). None when no engine answers (checked quickly: the
/// client fails at once without one) or nothing matches.
pub async fn stopped_container_publishing(port: u16) -> Option<String> {
    docker_path().ok()?;
    // Without an engine the client still takes tens of milliseconds to say so: look for the
    // engine's socket (or DOCKER_HOST) first, so a refused connection is reported at once.
    if !engine_socket_present() {
        return None;
    }
    let names = docker(
        &[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--filter",
            "status=created",
            "--format",
            "{{.Names}}",
        ],
        None,
        QUICK,
    )
    .await
    .ok()?;
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let bindings = docker(
            &[
                "inspect",
                "--format",
                "{{json .HostConfig.PortBindings}}",
                name,
            ],
            None,
            QUICK,
        )
        .await
        .ok()?;
        if publishes(&bindings, port) {
            return Some(name.to_string());
        }
    }
    None
}

/// Whether a Docker engine may be reachable: DOCKER_HOST is set, or an engine socket exists
/// where Docker Engine, Docker Desktop or Colima put it.
pub fn engine_socket_present() -> bool {
    if std::env::var_os("DOCKER_HOST").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let mut places = vec![std::path::PathBuf::from("/var/run/docker.sock")];
    if let Some(home) = home {
        places.push(home.join(".docker/run/docker.sock"));
        places.push(home.join(".colima/default/docker.sock"));
    }
    places.iter().any(|p| p.exists())
}

/// Whether `docker inspect`'s PortBindings JSON maps some container port to host `port`.
pub fn publishes(bindings_json: &str, port: u16) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(bindings_json) else {
        return false;
    };
    value.as_object().is_some_and(|ports| {
        ports
            .values()
            .filter_map(|v| v.as_array())
            .flatten()
            .any(|b| b["HostPort"].as_str() == Some(&port.to_string()))
    })
}

pub async fn container() -> Result<Container, DockerError> {
    let out = docker(
        &[
            "ps",
            "-a",
            "--filter",
            &format!("name={CONTAINER}"),
            "--format",
            "{{.Names}}\t{{.Status}}",
        ],
        None,
        QUICK,
    )
    .await?;
    Ok(parse_ps(&out))
}

/// `docker ps` lines are `name<TAB>status`; the name filter matches substrings, so the exact
/// name is picked out here.
pub fn parse_ps(out: &str) -> Container {
    for line in out.lines() {
        let (name, status) = line.split_once('\t').unwrap_or((line, ""));
        if name.trim() == CONTAINER {
            let status = status.trim();
            return if status.starts_with("Up") {
                Container::Running
            } else {
                Container::Stopped(status.to_string())
            };
        }
    }
    Container::Missing
}

/// The arguments of the seed's quickstart, with the password left to the environment.
pub fn run_args(port: u16, db: &str) -> Vec<String> {
    vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        CONTAINER.into(),
        "-e".into(),
        format!("POSTGRES_USER={SUPERUSER}"),
        "-e".into(),
        PASSWORD_VAR.into(),
        "-e".into(),
        format!("POSTGRES_DB={db}"),
        "-p".into(),
        format!("{port}:5432"),
        "-v".into(),
        format!("{VOLUME}:/var/lib/postgresql/data"),
        IMAGE.into(),
    ]
}

/// Create and start the container.
pub async fn run(port: u16, db: &str, password: &str) -> Result<(), DockerError> {
    let args = run_args(port, db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args, Some((PASSWORD_VAR, password)), RUN)
        .await
        .map(|_| ())
}

pub async fn start() -> Result<(), DockerError> {
    docker(&["start", CONTAINER], None, QUICK).await.map(|_| ())
}

pub async fn stop() -> Result<(), DockerError> {
    docker(&["stop", CONTAINER], None, QUICK).await.map(|_| ())
}

/// The host port published for the container's 5432.
pub async fn host_port() -> Result<u16, DockerError> {
    let out = docker(&["port", CONTAINER, "5432/tcp"], None, QUICK).await?;
    parse_port(&out).ok_or(DockerError::NoPort {
        output: out.trim().to_string(),
    })
}

/// `0.0.0.0:5433` / `[::]:5433` lines → 5433.
pub fn parse_port(out: &str) -> Option<u16> {
    out.lines()
        .filter_map(|l| l.trim().rsplit_once(':')?.1.parse::<u16>().ok())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_bindings_are_read_from_docker_inspect() {
        let json = r#"{"5432/tcp":[{"HostIp":"","HostPort":"5433"}]}"#;
        assert!(publishes(json, 5433));
        assert!(!publishes(json, 5432));
        assert!(!publishes("null", 5432));
        assert!(!publishes("{}", 5432));
    }

    #[test]
    fn the_container_is_picked_out_of_docker_ps_by_its_exact_name() {
        assert_eq!(parse_ps(""), Container::Missing);
        assert_eq!(
            parse_ps("aksara-postgres-old\tUp 2 hours\n"),
            Container::Missing
        );
        assert_eq!(
            parse_ps("other\tUp 1 minute\naksara-postgres\tUp 3 seconds\n"),
            Container::Running
        );
        assert_eq!(
            parse_ps("aksara-postgres\tExited (0) 2 hours ago\n"),
            Container::Stopped("Exited (0) 2 hours ago".into())
        );
        assert_eq!(
            parse_ps("aksara-postgres\tCreated\n"),
            Container::Stopped("Created".into())
        );
    }

    #[test]
    fn the_published_port_is_read_from_docker_port() {
        assert_eq!(parse_port("0.0.0.0:5433\n[::]:5433\n"), Some(5433));
        assert_eq!(parse_port("[::]:5440\n"), Some(5440));
        assert_eq!(parse_port(""), None);
        assert_eq!(parse_port("Error: no public port"), None);
    }

    #[test]
    fn the_run_arguments_are_the_seed_quickstart_without_the_password_value() {
        let args = run_args(5433, "shop");
        assert_eq!(
            args.join(" "),
            "run -d --name aksara-postgres -e POSTGRES_USER=postgres -e POSTGRES_PASSWORD -e POSTGRES_DB=shop -p 5433:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15"
        );
    }
}
