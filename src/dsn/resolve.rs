//! libpq's precedence (string, then `PG*` variable, then default) applied to a [`ConnString`],
//! giving the [`ConnConfig`] a connection attempt really uses.

use super::grammar::{pair_ports, parse_connect_timeout, parse_port_list, split_list};
use super::*;

impl ConnString {
    /// Applies libpq's precedence — the string, then the `PG*` variable, then the default —
    /// and returns the settings a connection attempt uses.
    pub fn resolve(&self, env: &dyn Environment) -> Result<ConnConfig, DsnError> {
        use env_vars::*;
        let var = |name: &str| env.var(name).filter(|value| !value.is_empty());
        let in_variable = |variable: &'static str| {
            move |error: DsnError| DsnError::Environment {
                variable,
                error: Box::new(error),
            }
        };

        // libpq keeps `host` and `port` as separate lists, each taken from the string or else
        // its variable, and pairs them only at the end.
        let hosts: Vec<Option<String>> = if self.hosts.iter().any(|spec| spec.host.is_some()) {
            self.hosts.iter().map(|spec| spec.host.clone()).collect()
        } else if let Some(pghost) = var(PGHOST) {
            split_list(&pghost)
        } else {
            vec![None]
        };
        let ports: Vec<Option<u16>> = if self.hosts.iter().any(|spec| spec.port.is_some()) {
            self.hosts.iter().map(|spec| spec.port).collect()
        } else if let Some(pgport) = var(PGPORT) {
            parse_port_list(&pgport).map_err(in_variable(PGPORT))?
        } else {
            vec![None]
        };
        let ports = pair_ports(hosts.len(), ports)?;

        // Whether each host was defaulted matters for `.pgpass`, which libpq matches against
        // "localhost" then.
        let mut endpoints = Vec::with_capacity(hosts.len());
        let mut pgpass_hosts: Vec<(Vec<String>, u16)> = Vec::with_capacity(hosts.len());
        for (host, port) in hosts.into_iter().zip(ports) {
            let port = port.unwrap_or(DEFAULT_PORT);
            match host {
                None => {
                    endpoints.push(Endpoint {
                        host: env.default_host(port),
                        port,
                    });
                    pgpass_hosts.push((vec!["localhost".to_owned()], port));
                }
                Some(host) => {
                    let names = if DEFAULT_SOCKET_DIRS.contains(&host.as_str()) {
                        vec!["localhost".to_owned(), host.clone()]
                    } else {
                        vec![host.clone()]
                    };
                    pgpass_hosts.push((names, port));
                    endpoints.push(Endpoint {
                        host: Host::from_libpq(host),
                        port,
                    });
                }
            }
        }

        let user = self
            .user
            .clone()
            .or_else(|| var(PGUSER))
            .or_else(|| env.os_user())
            .ok_or(DsnError::NoUser)?;
        let dbname = self
            .dbname
            .clone()
            .or_else(|| var(PGDATABASE))
            .unwrap_or_else(|| user.clone());

        let (password, password_source) = if let Some(password) = &self.password {
            (Some(password.clone()), PasswordSource::ConnString)
        } else if let Some(password) = var(PGPASSWORD) {
            (Some(Password::new(password)), PasswordSource::EnvPgPassword)
        } else {
            // ConnConfig has one password for all hosts; libpq looks one up per host, so the
            // first host that has a line wins here.
            let found = pgpass_hosts.iter().find_map(|(names, port)| {
                names
                    .iter()
                    .find_map(|name| env.pgpass_password(name, *port, &dbname, &user))
            });
            match found {
                Some(password) => (Some(Password::new(password)), PasswordSource::PgPass),
                None => (None, PasswordSource::None),
            }
        };

        let sslmode = match self.sslmode {
            Some(mode) => mode,
            None => match var(PGSSLMODE) {
                Some(value) => value.parse().map_err(in_variable(PGSSLMODE))?,
                None => SslMode::default(),
            },
        };
        let connect_timeout = match self.connect_timeout {
            Some(seconds) => Some(seconds),
            None => var(PGCONNECT_TIMEOUT)
                .map(|value| parse_connect_timeout(&value))
                .transpose()
                .map_err(in_variable(PGCONNECT_TIMEOUT))?,
        };

        Ok(ConnConfig {
            endpoints,
            user,
            password,
            password_source,
            dbname,
            sslmode,
            connect_timeout: connect_timeout.and_then(timeout_duration),
            application_name: self.application_name.clone().or_else(|| var(PGAPPNAME)),
            sslrootcert: self.sslrootcert.clone().or_else(|| var(PGSSLROOTCERT)),
            options: self.options.clone().or_else(|| var(PGOPTIONS)),
            unknown: self.unknown.clone(),
            allow_cleartext: false,
            os_user: None,
        })
    }
}

/// libpq's reading of `connect_timeout`: zero or negative waits forever, and 1 second is
/// raised to 2 (libpq's minimum).
pub fn timeout_duration(seconds: i64) -> Option<Duration> {
    match seconds {
        ..=0 => None,
        1 => Some(Duration::from_secs(2)),
        n => Some(Duration::from_secs(n.unsigned_abs())),
    }
}

/// What [`ConnString::resolve`] needs from the outside world, so resolution stays pure.
pub trait Environment {
    /// A `PG*` variable (see [`env_vars`]); an empty value counts as unset.
    fn var(&self, name: &str) -> Option<String>;
    fn os_user(&self) -> Option<String>;
    /// Where to connect when no host is given: the process implementation looks for a
    /// socket `.s.PGSQL.<port>` in the usual directories.
    fn default_host(&self, port: u16) -> Host;
    /// The `.pgpass` password for these values (matching is done by `pgpass.rs`).
    fn pgpass_password(&self, host: &str, port: u16, dbname: &str, user: &str) -> Option<String>;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name or IP address (IPv6 without brackets).
    Tcp(String),
    /// A directory holding the socket file `.s.PGSQL.<port>`.
    Socket(PathBuf),
}

impl Host {
    /// libpq's reading of a `host` value: a path (or `@name`) is a socket directory.
    pub fn from_libpq(host: String) -> Host {
        if is_socket_dir(&host) {
            Host::Socket(PathBuf::from(host))
        } else {
            Host::Tcp(host)
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(host) => f.write_str(host),
            Host::Socket(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// One place to try, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl Endpoint {
    /// The socket file for a socket endpoint.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Socket(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Host::Tcp(_) => None,
        }
    }

    /// On this machine: a socket, `localhost`, 127.0.0.0/8 or `::1`.
    pub fn is_local(&self) -> bool {
        match &self.host {
            Host::Socket(_) => true,
            Host::Tcp(host) => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host.eq_ignore_ascii_case("localhost")
                    || host.eq_ignore_ascii_case("localhost.")
                    || host
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.to_canonical().is_loopback())
            }
        }
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, `[::1]:5432`, or the socket file's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(host) if host.contains(':') => write!(f, "[{host}]:{}", self.port),
            Host::Tcp(host) => write!(f, "{host}:{}", self.port),
            Host::Socket(dir) => write!(
                f,
                "{}",
                dir.join(format!(".s.PGSQL.{}", self.port)).display()
            ),
        }
    }
}

/// Where the password came from, so a diagnosis can say which one to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    ConnString,
    EnvPgPassword,
    PgPass,
    /// Typed at a prompt (set by callers, never by `resolve`).
    Prompt,
    None,
}

/// Fully resolved settings: what a connection attempt uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Tried in order.
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub password: Option<Password>,
    pub password_source: PasswordSource,
    pub dbname: String,
    pub sslmode: SslMode,
    /// Per endpoint; None waits forever.
    pub connect_timeout: Option<Duration>,
    pub application_name: Option<String>,
    pub sslrootcert: Option<String>,
    pub options: Option<String>,
    pub unknown: Vec<(String, String)>,
    /// Whether a server that asks for the password in cleartext may have it over TCP without
    /// TLS (`--allow-cleartext`, after libpq's `require_auth`); false unless the caller sets it.
    pub allow_cleartext: bool,
    /// Connect unix sockets with this OS user's credentials (root's peer login as `postgres`,
    /// see `peer`); `None`: the process's own.
    pub os_user: Option<String>,
}

impl ConnConfig {
    /// sqlx options for one attempt at one endpoint, with `sslmode` chosen by the caller (it
    /// handles allow/prefer fallbacks, and must pass `Disable` for sockets because sqlx
    /// negotiates TLS even there).
    ///
    /// Every field comes from this config so that sqlx's own reading of `PG*` variables and
    /// `.pgpass` cannot disagree with what aksara reports. sqlx offers no way to clear a
    /// field it took from the environment, so the empty password and application name are
    /// set explicitly (sqlx sends an empty password anyway when it has none, and the server's
    /// default application name is empty). Some variables can still leak in when this config
    /// was resolved against a different environment than the process's: `PGSSLROOTCERT`
    /// (when this config has no root certificate), `PGSSLCERT`/`PGSSLKEY`, and `PGOPTIONS`,
    /// which sqlx puts before our options (later settings win on the server).
    pub fn sqlx_options(
        &self,
        endpoint: &Endpoint,
        sslmode: sqlx::postgres::PgSslMode,
    ) -> sqlx::postgres::PgConnectOptions {
        use sqlx::postgres::PgConnectOptions;

        // The builder can only add `-c name=value` settings, not a raw options string, while
        // sqlx's URL parser passes `options=` through verbatim: use that for the options and
        // the builder for the rest. The password in the URL keeps sqlx from reading .pgpass.
        let base = match &self.options {
            Some(options) => {
                let url = format!(
                    "postgresql://aksara:unused@localhost/?options={}",
                    encode(options, QUERY_VALUE)
                );
                // Cannot fail: every part of the URL is fixed or percent-encoded.
                url.parse::<PgConnectOptions>()
                    .unwrap_or_else(|_| PgConnectOptions::new_without_pgpass())
            }
            None => PgConnectOptions::new_without_pgpass(),
        };

        let mut options = base
            .port(endpoint.port)
            .username(&self.user)
            .password(self.password.as_ref().map_or("", Password::expose))
            .database(&self.dbname)
            .ssl_mode(sslmode)
            .application_name(self.application_name.as_deref().unwrap_or(""));
        options = match &endpoint.host {
            Host::Tcp(host) => options.host(host),
            Host::Socket(dir) => options.host(&dir.to_string_lossy()).socket(dir),
        };
        if let Some(cert) = &self.sslrootcert {
            options = options.ssl_root_cert(cert);
        }
        if let Some((cert, key)) = self.client_certificate() {
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        options
    }

    /// The client certificate and key libpq would send: `sslcert`/`sslkey` from the URL, else
    /// `~/.postgresql/postgresql.crt` and `.key` when the certificate file exists (libpq's
    /// defaults; `PGSSLCERT`/`PGSSLKEY` sqlx reads itself). None when there is no certificate.
    pub fn client_certificate(&self) -> Option<(String, String)> {
        let param = |name: &str| {
            self.unknown
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let default = |file: &str| {
            home.as_ref()
                .map(|h| h.join(".postgresql").join(file).display().to_string())
        };
        let cert = param("sslcert").or_else(|| {
            default("postgresql.crt").filter(|path| std::path::Path::new(path).is_file())
        })?;
        let key = param("sslkey").or_else(|| default("postgresql.key"))?;
        Some((cert, key))
    }

    /// Back to a string with every setting explicit.
    pub fn to_conn_string(&self) -> ConnString {
        ConnString {
            format: Format::Uri,
            hosts: self
                .endpoints
                .iter()
                .map(|endpoint| HostSpec {
                    host: Some(match &endpoint.host {
                        Host::Tcp(host) => host.clone(),
                        Host::Socket(dir) => dir.to_string_lossy().into_owned(),
                    }),
                    port: Some(endpoint.port),
                })
                .collect(),
            user: Some(self.user.clone()),
            password: self.password.clone(),
            dbname: Some(self.dbname.clone()),
            sslmode: Some(self.sslmode),
            connect_timeout: self
                .connect_timeout
                .map(|timeout| i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)),
            application_name: self.application_name.clone(),
            sslrootcert: self.sslrootcert.clone(),
            options: self.options.clone(),
            unknown: self.unknown.clone(),
        }
    }

    /// The explicit URI with the password as `****`.
    pub fn redacted(&self) -> String {
        self.to_conn_string().to_url(Reveal::Redacted)
    }
}
