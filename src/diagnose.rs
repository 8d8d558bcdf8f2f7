//! The troubleshooting catalogue: every way a connection or a setup can go wrong, as a stable
//! code with what it means and the fix. The catalogue is data (`CATALOGUE`), documented in the
//! README and `aksara doctor --help`; `diagnose` picks the entry for a failed attempt and writes
//! its hint with the real host, port, user, database and file paths.

use crate::connect::{Attempt, FailureKind};
use crate::dsn::{ConnConfig, Endpoint, Host};
use crate::provision::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Failure,
    Warning,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub code: &'static str,
    pub severity: Severity,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// The fix in general terms (the live hint names the real values).
    pub fix: &'static str,
}

pub const CATALOGUE: &[Entry] = &[
    Entry {
        code: "invalid-url",
        severity: Severity::Failure,
        meaning: "the connection string does not parse",
        fix: "fix the part the message points at; percent-encode special characters in the password",
    },
    Entry {
        code: "dns-failure",
        severity: Severity::Failure,
        meaning: "the host name does not resolve",
        fix: "check the host name; an unencoded @ in the password moves the host",
    },
    Entry {
        code: "connection-refused",
        severity: Severity::Failure,
        meaning: "nothing listens on that port or socket",
        fix: "start the server, or point the URL at the port/socket where it listens",
    },
    Entry {
        code: "connection-timeout",
        severity: Severity::Failure,
        meaning: "the server did not answer in time",
        fix: "check host, port and firewall; raise connect_timeout",
    },
    Entry {
        code: "ssl-required",
        severity: Severity::Failure,
        meaning: "the server only accepts TLS connections and the client disabled TLS",
        fix: "add ?sslmode=require",
    },
    Entry {
        code: "ssl-unsupported",
        severity: Severity::Failure,
        meaning: "the client requires TLS and the server has none",
        fix: "use sslmode=prefer for a local server, or turn ssl on in postgresql.conf",
    },
    Entry {
        code: "ssl-certificate",
        severity: Severity::Failure,
        meaning: "the server's certificate did not verify",
        fix: "set sslrootcert to the CA that signed it, or connect with the name in the certificate",
    },
    Entry {
        code: "auth-failed",
        severity: Severity::Failure,
        meaning: "the server rejected the credentials",
        fix: "check the user and password; reset the password with ALTER ROLE",
    },
    Entry {
        code: "password-required",
        severity: Severity::Failure,
        meaning: "the server asks for a password and none was given",
        fix: "put the password in the URL, PGPASSWORD or ~/.pgpass",
    },
    Entry {
        code: "no-hba-entry",
        severity: Severity::Failure,
        meaning: "pg_hba.conf has no line that lets this client in",
        fix: "add a host line for this user, database and address to pg_hba.conf and reload",
    },
    Entry {
        code: "role-missing",
        severity: Severity::Failure,
        meaning: "the role does not exist",
        fix: "create it (aksara dbsetup), or fix the user name",
    },
    Entry {
        code: "database-missing",
        severity: Severity::Failure,
        meaning: "the database does not exist",
        fix: "create it (aksara dbsetup), or fix the database name",
    },
    Entry {
        code: "too-many-connections",
        severity: Severity::Failure,
        meaning: "every connection slot is taken",
        fix: "lower the pool size, or raise max_connections and restart",
    },
    Entry {
        code: "server-starting",
        severity: Severity::Failure,
        meaning: "the server is starting, shutting down or in recovery",
        fix: "wait (aksara doctor --wait 30) and try again",
    },
    Entry {
        code: "permission-denied",
        severity: Severity::Failure,
        meaning: "the role may not connect to this database or do what was asked",
        fix: "GRANT the privilege named in the message",
    },
    Entry {
        code: "cannot-create-tables",
        severity: Severity::Warning,
        meaning: "the role can log in but cannot create tables (PG 15 public)",
        fix: "make the role the database owner, or GRANT CREATE ON SCHEMA public",
    },
    Entry {
        code: "ssl-not-used-remote",
        severity: Severity::Warning,
        meaning: "a remote server is reached without requiring TLS",
        fix: "add ?sslmode=require (or verify-full)",
    },
    Entry {
        code: "env-not-ignored",
        severity: Severity::Warning,
        meaning: "the .env file holding the password is not ignored by git",
        fix: "add .env to .gitignore",
    },
    Entry {
        code: "env-world-readable",
        severity: Severity::Warning,
        meaning: "other users can read the .env file",
        fix: "chmod 600 .env",
    },
    Entry {
        code: "connections-near-limit",
        severity: Severity::Warning,
        meaning: "the server is close to max_connections",
        fix: "close idle connections or raise max_connections",
    },
    Entry {
        code: "pool-exceeds-connections",
        severity: Severity::Warning,
        meaning: "the pools can open more connections than the server allows",
        fix: "lower pool_max_size per the workload table, or raise max_connections",
    },
];

pub fn entry(code: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.code == code)
}

/// A failure named: the code from the catalogue, what happened here, and the fix for here.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

/// What the hint may mention beyond the failed attempt itself.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// Servers that do answer near the endpoint that failed ("PostgreSQL answers on 5433").
    pub nearby: Vec<String>,
    /// The command that starts the server on this machine, when known.
    pub start_command: Option<String>,
    /// Whether, for an `no pg_hba.conf entry ... no encryption` rejection, a TLS attempt was
    /// let through pg_hba (then the fix is sslmode, not pg_hba).
    pub tls_would_be_accepted: Option<bool>,
}

/// Name the failure of `attempt` for the connection `cfg`.
pub fn diagnose(cfg: &ConnConfig, attempt: &Attempt, ctx: &Context) -> Diagnosis {
    let ep = &attempt.endpoint;
    match &attempt.failure {
        FailureKind::Dns { host, message } => Diagnosis {
            code: "dns-failure",
            message: format!("the host name \"{host}\" does not resolve ({message})"),
            hint: "check the host in the URL; if the password contains @, # or /, percent-encode it (@ is %40, # is %23, / is %2F), otherwise the part after it is taken as the host".to_string(),
        },
        FailureKind::Refused | FailureKind::SocketMissing => refused(ep, ctx),
        FailureKind::Timeout { after } => Diagnosis {
            code: "connection-timeout",
            message: format!("{ep} did not answer within {:.1} s", after.as_secs_f64()),
            hint: format!(
                "the port accepts connections but nothing answers, or packets are dropped: check that {} is the right host and port and that no firewall (or cloud security group) blocks it; a busy server may need a larger connect_timeout (e.g. ?connect_timeout=10)",
                ep
            ),
        },
        FailureKind::TlsUnsupported => Diagnosis {
            code: "ssl-unsupported",
            message: format!(
                "sslmode={} requires TLS, but the server at {ep} does not offer it (ssl = off)",
                cfg.sslmode
            ),
            hint: if ep.is_local() {
                "for a local server use ?sslmode=prefer (or disable); or turn TLS on in postgresql.conf (ssl = on, ssl_cert_file, ssl_key_file) and restart".to_string()
            } else {
                "turn TLS on at the server (ssl = on in postgresql.conf), or, only on a trusted network, use ?sslmode=prefer".to_string()
            },
        },
        FailureKind::Certificate { message } => certificate(cfg, ep, message),
        FailureKind::Server {
            code,
            message,
            detail,
        } => server_error(cfg, ep, code, message, detail.as_deref(), ctx),
        FailureKind::Other { message } => Diagnosis {
            code: "connection-refused",
            message: format!("could not talk to {ep}: {message}"),
            hint: "check that the host and port belong to a PostgreSQL server".into(),
        },
        // hostile branch: the typed login failures (connect::login_failure_report).
        other => {
            let (code, message, hint) = crate::connect::login_failure_report(ep, other)
                .expect("every other failure kind has a report in connect");
            Diagnosis {
                code,
                message,
                hint,
            }
        }
    }
}

fn refused(ep: &Endpoint, ctx: &Context) -> Diagnosis {
    let message = match &ep.host {
        Host::Socket(dir) => {
            if dir.is_dir() {
                format!(
                    "no server socket at {ep}: nothing listens on port {} in {}",
                    ep.port,
                    dir.display()
                )
            } else {
                format!(
                    "the socket directory {} does not exist, so no server listens there",
                    dir.display()
                )
            }
        }
        Host::Tcp(host) => format!(
            "connection refused at {host}:{}: nothing listens on that port",
            ep.port
        ),
    };
    let mut hint = String::new();
    if !ctx.nearby.is_empty() {
        hint.push_str(&format!(
            "but PostgreSQL answers at {}: point the URL there, or ",
            ctx.nearby.join(", ")
        ));
    }
    match &ctx.start_command {
        Some(cmd) => hint.push_str(&format!("start the server: `{cmd}`")),
        None => hint.push_str("start the server"),
    }
    hint.push_str("; `aksara dbsetup` finds a running server or sets one up");
    Diagnosis {
        code: "connection-refused",
        message,
        hint,
    }
}

fn certificate(cfg: &ConnConfig, ep: &Endpoint, message: &str) -> Diagnosis {
    let name_mismatch =
        message.contains("NotValidForName") || message.contains("not valid for name");
    let hint = if name_mismatch {
        format!(
            "the certificate is not issued for the name `{}`: connect using a name it lists (e.g. the DNS name instead of an IP address), or use sslmode=verify-ca to check the chain only",
            match &ep.host {
                Host::Tcp(h) => h.as_str(),
                Host::Socket(_) => "",
            }
        )
    } else if cfg.sslrootcert.is_none() {
        "the server's certificate is not signed by a known authority: add ?sslrootcert=/path/to/ca.crt with the CA that signed it".to_string()
    } else {
        format!(
            "the certificate does not chain to the CA in sslrootcert ({}): use the CA file your provider gives for this server",
            cfg.sslrootcert.as_deref().unwrap_or_default()
        )
    };
    Diagnosis {
        code: "ssl-certificate",
        message: format!(
            "the TLS certificate of {ep} did not verify (sslmode={}): {message}",
            cfg.sslmode
        ),
        hint,
    }
}

/// The client address pg_hba saw, from `no pg_hba.conf entry for host "1.2.3.4", ...`.
fn hba_client_host(message: &str) -> Option<&str> {
    let start = message.find("host \"")? + 6;
    let end = message[start..].find('"')? + start;
    Some(&message[start..end])
}

fn server_error(
    cfg: &ConnConfig,
    ep: &Endpoint,
    code: &str,
    message: &str,
    detail: Option<&str>,
    ctx: &Context,
) -> Diagnosis {
    let user = &cfg.user;
    let db = &cfg.dbname;
    let qu = quote_ident(user);
    let qd = quote_ident(db);
    match code {
        "28P01" if cfg.password.is_none() => Diagnosis {
            code: "password-required",
            message: format!("the server at {ep} asks for a password for user \"{user}\" and none was given"),
            hint: format!(
                "put the password in the URL (postgresql://{user}:PASSWORD@...), in PGPASSWORD, or in ~/.pgpass (a line `{}:{}:{db}:{user}:PASSWORD`, chmod 600)",
                match &ep.host { Host::Tcp(h) => h.clone(), Host::Socket(_) => "localhost".into() },
                ep.port
            ),
        },
        "28P01" => Diagnosis {
            code: "auth-failed",
            message: format!("password authentication failed for user \"{user}\" at {ep}"),
            hint: format!(
                "the password is wrong, or the role \"{user}\" does not exist (with password authentication the server does not say which); as a superuser run `ALTER ROLE {qu} WITH PASSWORD '...'` (psql: \\password {user}), or rerun `aksara dbsetup` to set a new password"
            ),
        },
        "28000" if message.contains("Peer authentication failed") || message.contains("Ident authentication failed") => Diagnosis {
            code: "auth-failed",
            message: format!("{message}: the server only lets the operating-system user \"{user}\" in over this socket"),
            hint: format!(
                "connect over TCP with a password instead (host=localhost), run as that OS user (`sudo -u {user} ...`), or change the `local` line for this database in pg_hba.conf to scram-sha-256"
            ),
        },
        "28000" if message.contains("does not exist") => Diagnosis {
            code: "role-missing",
            message: format!("the role \"{user}\" does not exist on {ep}"),
            hint: format!("create it as a superuser: `CREATE ROLE {qu} LOGIN PASSWORD '...'`, or run `aksara dbsetup`; or fix the user name in the URL"),
        },
        "28000" if message.contains("pg_hba.conf") => {
            let client = hba_client_host(message).unwrap_or("127.0.0.1");
            let plain = message.ends_with("no encryption");
            if plain && ctx.tls_would_be_accepted == Some(true) {
                Diagnosis {
                    code: "ssl-required",
                    message: format!("the server at {ep} only accepts TLS connections for user \"{user}\", and this connection did not use TLS (sslmode={})", cfg.sslmode),
                    hint: "add ?sslmode=require to the connection string (or verify-full with sslrootcert for a remote server)".into(),
                }
            } else {
                let cidr = if client.contains(':') { format!("{client}/128") } else { format!("{client}/32") };
                let line = if matches!(ep.host, Host::Socket(_)) || client == "[local]" {
                    format!("local  {db}  {user}  scram-sha-256")
                } else {
                    format!("host{}  {db}  {user}  {cidr}  scram-sha-256", if plain { "" } else { "ssl" })
                };
                Diagnosis {
                    code: "no-hba-entry",
                    message: format!("the server's pg_hba.conf has no line that lets user \"{user}\" connect to database \"{db}\" from {client} ({})", if plain { "without TLS" } else { "with TLS" }),
                    hint: format!("add `{line}` to pg_hba.conf (`SHOW hba_file;` as a superuser shows where it is), then reload: `SELECT pg_reload_conf();`"),
                }
            }
        }
        "3D000" => Diagnosis {
            code: "database-missing",
            message: format!("the database \"{db}\" does not exist on {ep}"),
            hint: format!("create it owned by the application user: `CREATE DATABASE {qd} OWNER {qu};` as a superuser, or run `aksara dbsetup --db-name {db}`"),
        },
        "53300" => Diagnosis {
            code: "too-many-connections",
            message: format!("the server at {ep} has no free connection slot: {message}"),
            hint: "lower pool_max_size (see the pool-sizing table: development 5, small production 20), close idle clients, or raise max_connections: `ALTER SYSTEM SET max_connections = 200;` then restart PostgreSQL".into(),
        },
        "57P03" => Diagnosis {
            code: "server-starting",
            message: format!("the server at {ep} is not accepting connections yet: {message}{}", detail.map(|d| format!(" ({d})")).unwrap_or_default()),
            hint: "wait and retry: `aksara doctor --wait 30` returns as soon as the server is ready".into(),
        },
        "42501" => Diagnosis {
            code: "permission-denied",
            message: format!("user \"{user}\" may not connect to database \"{db}\": {message}"),
            hint: format!("as the database owner or a superuser: `GRANT CONNECT ON DATABASE {qd} TO {qu};`"),
        },
        _ => Diagnosis {
            code: "connection-refused",
            message: format!("the server at {ep} refused the connection: {message} (SQLSTATE {code})"),
            hint: "see the server log for details".into(),
        },
    }
}

/// Failures that waiting can fix (`doctor --wait` keeps retrying these).
pub fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "connection-refused" | "connection-timeout" | "server-starting" | "too-many-connections"
    )
}

/// The seed page's installation advice for this OS.
pub fn install_advice() -> String {
    if cfg!(target_os = "macos") {
        "Install and start PostgreSQL: download Postgres.app from postgresapp.com, or `brew install postgresql@15 && brew services start postgresql@15`; or with Docker: `docker run -d --name aksara-postgres -e POSTGRES_PASSWORD=... -p 5432:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15`".into()
    } else if cfg!(target_os = "windows") {
        "Install PostgreSQL from postgresql.org (the installer asks for the postgres user's password), or use the Linux instructions inside WSL2".into()
    } else {
        let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let like = os
            .lines()
            .filter(|l| l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            .collect::<Vec<_>>()
            .join(" ");
        let install = if like.contains("fedora") || like.contains("rhel") {
            "`sudo dnf install postgresql-server && sudo postgresql-setup --initdb && sudo systemctl start postgresql`"
        } else if like.contains("debian") || like.contains("ubuntu") {
            "`sudo apt-get install -y postgresql` (starts a server on port 5432), or start an installed one: `sudo systemctl start postgresql`"
        } else {
            "install the postgresql server package of your distribution and start it"
        };
        format!(
            "Install and start PostgreSQL: {install}; or with Docker: `docker run -d --name aksara-postgres -e POSTGRES_PASSWORD=... -p 5432:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15`"
        )
    }
}

/// The command that starts PostgreSQL on this machine, for the hint after a refused connection.
pub fn start_command(port: u16) -> Option<String> {
    if cfg!(target_os = "macos") {
        // Homebrew's service; Postgres.app users press Start in the app instead.
        return Some("brew services start postgresql@15".to_string());
    }
    if cfg!(target_os = "linux") {
        // Debian/Ubuntu clusters are named by version and port.
        if let Ok(entries) = std::fs::read_dir("/etc/postgresql") {
            for version in entries.flatten() {
                let Ok(clusters) = std::fs::read_dir(version.path()) else {
                    continue;
                };
                for cluster in clusters.flatten() {
                    let conf = cluster.path().join("postgresql.conf");
                    let text = std::fs::read_to_string(&conf).unwrap_or_default();
                    let cluster_port = text
                        .lines()
                        .filter_map(|l| l.trim().strip_prefix("port"))
                        .filter_map(|rest| rest.trim_start().strip_prefix('='))
                        .filter_map(|v| v.split('#').next()?.trim().parse::<u16>().ok())
                        .next()
                        .unwrap_or(5432);
                    if cluster_port == port {
                        return Some(format!(
                            "sudo pg_ctlcluster {} {} start",
                            version.file_name().to_string_lossy(),
                            cluster.file_name().to_string_lossy()
                        ));
                    }
                }
            }
        }
        if which::which("systemctl").is_ok() {
            return Some("sudo systemctl start postgresql".into());
        }
    }
    None
}
