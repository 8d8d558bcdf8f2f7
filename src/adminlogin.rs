//! Logging in as an admin to a server already found, without typing, the way `dbsetup` does
//! and `doctor --fix` reuses: root's peer login as the `postgres` role through the `postgres`
//! OS user over the server's socket, then each user PG* names (else `postgres` and the OS user)
//! with whatever PG* and `~/.pgpass` give, at every address of the server. The callers add
//! their own last resorts (the project server's password, a prompt) and their own messages.

use std::path::Path;
use std::time::Duration;

use crate::connect::{self, ConnectFailure, Connected, FailureKind};
use crate::dsn::{ConnConfig, ConnString, Endpoint, Environment, Host, HostSpec, PasswordSource};
use crate::peer;

/// An admin session and how it was opened.
pub struct AdminSession {
    pub connected: Connected,
    pub cfg: ConnConfig,
    /// "through the postgres OS user (no password needed)", "password from PGPASSWORD", ...
    pub how: String,
}

/// The logins tried without typing, when none got in: a line each, and the last failure.
pub struct NoLogin {
    pub tried: Vec<String>,
    pub last: Option<(ConnConfig, ConnectFailure)>,
}

/// Whether the user chose the way in with PGUSER or PGPASSWORD: that comes before peer.
pub fn chosen_by_environment(env: &dyn Environment) -> bool {
    ["PGUSER", "PGPASSWORD"]
        .iter()
        .any(|v| env.var(v).is_some())
}

/// The admin users worth a try: PGUSER, else `postgres` and the OS user.
pub fn admin_users(env: &dyn Environment) -> Vec<String> {
    if let Some(u) = env.var("PGUSER") {
        return vec![u];
    }
    let mut users = vec![peer::POSTGRES.to_string()];
    if let Some(os) = env.os_user()
        && os != peer::POSTGRES
    {
        users.push(os);
    }
    users
}

/// Root's peer login as `postgres` over the socket in `dir` (None when not root, when PG*
/// chose another way, or when the socket does not let it in).
pub async fn root_peer(
    env: &dyn Environment,
    dir: &Path,
    port: u16,
    bound: Duration,
) -> Option<AdminSession> {
    if chosen_by_environment(env) || !crate::clusters::Machine::detect().root {
        return None;
    }
    let connected = peer::connect_as_postgres(dir, port, "postgres", bound)
        .await
        .ok()?;
    let mut cfg = peer::socket_config(dir, port, peer::POSTGRES, "postgres");
    cfg.os_user = Some(peer::POSTGRES.to_string());
    Some(AdminSession {
        connected,
        cfg,
        how: "through the postgres OS user, no password needed".into(),
    })
}

/// Each admin user at each endpoint, to `postgres` (or `template1` when that is missing),
/// with the password PG* or `~/.pgpass` gives: the first that gets in.
pub async fn password_logins(
    endpoints: &[Endpoint],
    env: &dyn Environment,
    bound: Duration,
    allow_cleartext: bool,
) -> Result<AdminSession, NoLogin> {
    let users = admin_users(env);
    let mut none = NoLogin {
        tried: Vec::new(),
        last: None,
    };
    for endpoint in endpoints {
        for user in &users {
            for db in ["postgres", "template1"] {
                let db = env.var("PGDATABASE").unwrap_or_else(|| db.to_string());
                let cs = admin_conn_string(endpoint, user, &db);
                let Ok(mut cfg) = cs.resolve(env) else {
                    continue;
                };
                cfg.allow_cleartext = allow_cleartext;
                let failure = match connect::connect(&cfg, bound).await {
                    Ok(connected) => {
                        let how = password_origin(&cfg).to_string();
                        return Ok(AdminSession {
                            connected,
                            cfg,
                            how,
                        });
                    }
                    Err(f) => f,
                };
                let database_missing = failure.last().failure.sqlstate() == Some("3D000");
                if !database_missing {
                    none.tried.push(format!(
                        "\"{user}\" at {endpoint}: {}",
                        short_failure(&failure.last().failure)
                    ));
                }
                none.last = Some((cfg, failure));
                if !database_missing {
                    break;
                }
            }
        }
    }
    Err(none)
}

/// The socket folder of a local server listening on `port`: the endpoint's own, else PGHOST's
/// (when a folder) or the usual ones, where `.s.PGSQL.<port>` exists.
pub fn socket_dir_for(endpoint: &Endpoint, env: &dyn Environment) -> Option<std::path::PathBuf> {
    if let Host::Socket(dir) = &endpoint.host {
        return Some(dir.clone());
    }
    if !endpoint.is_local() {
        return None;
    }
    let mut dirs: Vec<std::path::PathBuf> = env
        .var("PGHOST")
        .into_iter()
        .flat_map(|h| {
            h.split(',')
                .map(std::path::PathBuf::from)
                .collect::<Vec<_>>()
        })
        .filter(|p| p.is_absolute())
        .collect();
    dirs.extend(
        crate::dsn::DEFAULT_SOCKET_DIRS
            .iter()
            .map(std::path::PathBuf::from),
    );
    dirs.into_iter()
        .find(|d| d.join(format!(".s.PGSQL.{}", endpoint.port)).exists())
}

pub fn short_failure(f: &FailureKind) -> String {
    match f {
        FailureKind::Server(e) => e.message.clone(),
        other => other.to_string(),
    }
}

pub fn password_origin(cfg: &ConnConfig) -> &'static str {
    match cfg.password_source {
        PasswordSource::ConnString => "password from the URL",
        PasswordSource::EnvPgPassword => "password from PGPASSWORD",
        PasswordSource::PgPass => "password from ~/.pgpass",
        PasswordSource::Prompt => "password typed",
        PasswordSource::None => "no password needed",
    }
}

pub fn admin_conn_string(endpoint: &Endpoint, user: &str, db: &str) -> ConnString {
    ConnString {
        hosts: vec![HostSpec {
            host: Some(match &endpoint.host {
                Host::Tcp(h) => h.clone(),
                Host::Socket(d) => d.display().to_string(),
            }),
            port: Some(endpoint.port),
        }],
        user: Some(user.to_string()),
        dbname: Some(db.to_string()),
        ..ConnString::default()
    }
}
