//! Finding a server and logging in as an admin: `--admin-url`, the project's own server,
//! discovery of local servers (PG* variables, the `.env`'s URL, the usual sockets and ports,
//! probed at once), logins that need no typing (PG*, `~/.pgpass`, trust, peer), the admin
//! password prompt, and, when nothing answers, the offer to start a server for the project.

use std::time::Duration;

use sqlx::PgConnection;

use super::Setup;
use super::offers::{Offer, no_server_error};
use super::settings::Name;
use crate::adminlogin;
use crate::cli::StartServer;
use crate::code::Code;
use crate::connect::{self, FailureKind};
use crate::diagnose::{self, Context};
use crate::dsn::{ConnConfig, ConnString, Endpoint, Host, Password};
use crate::envfile::{self, GitIgnoreStatus};
use crate::error::{CliError, CliResult};
use crate::localserver;
use crate::probe::{self, Answer, Candidate};
use crate::projectserver::{self, GITIGNORE_PATTERN, Kind, Layout};
use crate::prompt::Prompt;
use crate::provision;
use crate::serverup;
use crate::ui::{Mark, Printer};

/// How long one discovery probe may take (all run at once).
const DISCOVERY_BOUND: Duration = Duration::from_secs(2);

pub struct Admin {
    pub conn: PgConnection,
    pub cfg: ConnConfig,
    pub endpoint: Endpoint,
    /// Other endpoints that answered during discovery (to pick the app URL's host).
    pub answered: Vec<(Endpoint, bool)>,
    /// A database the server made as aksara started it (the Docker image's POSTGRES_DB): it
    /// is this setup's own, so reusing it needs no question.
    pub created_database: Option<String>,
}

impl Setup<'_> {
    /// Find a server and log in as an admin, trying what needs no typing first.
    pub async fn admin_connection(&self, existing_cs: Option<&ConnString>) -> CliResult<Admin> {
        if let Some(url) = &self.s.admin_url {
            return self.admin_from_url(url).await;
        }
        // The project's own server: asked for by --start-server, or recorded in .aksara/.
        let layout = project_layout(&self.s.env_file, self.s.env_file_given)?;
        if let Some(kind @ (StartServer::Local | StartServer::Docker)) = self.s.start_server {
            return self.project_admin(&layout, kind, true).await;
        }
        if self.s.start_server == Some(StartServer::Installed) {
            self.start_installed().await?;
        }
        if let Some(record) = layout.read_record()? {
            let kind = match record.kind {
                Kind::Local => StartServer::Local,
                Kind::Docker => StartServer::Docker,
            };
            self.printer.step(
                Mark::Pass,
                &format!(
                    "This project has its own PostgreSQL ({}, port {})",
                    layout.show(&layout.record_file()),
                    record.port
                ),
            );
            let allow_start = self.s.start_server != Some(StartServer::Never);
            return self.project_admin(&layout, kind, allow_start).await;
        }
        let probed = self.discover(existing_cs).await;
        let answered: Vec<_> = probed
            .iter()
            .filter_map(|p| match p.answer {
                Answer::Postgres { tls } => Some((p.candidate.clone(), tls)),
                _ => None,
            })
            .collect();
        if answered.is_empty() {
            return self.offer_server(&layout, &probed).await;
        }
        // One local server usually answers on a socket and on TCP localhost with the same
        // port: list it once, with all its addresses.
        let servers = group_servers(&answered);
        let chosen = match self.prompter {
            Some(p) if servers.len() > 1 => {
                let items: Vec<String> = servers.iter().map(|s| describe_server(s)).collect();
                p.select("Several PostgreSQL servers answer; which one?", items, 0)
                    .await?
            }
            _ => 0,
        };
        let server = &servers[chosen];
        self.printer
            .step(Mark::Pass, &format!("Found {}", describe_server(server)));
        let answered_eps: Vec<(Endpoint, bool)> = answered
            .iter()
            .map(|(c, t)| (c.endpoint.clone(), *t))
            .collect();
        self.login_without_typing(server, answered_eps).await
    }

    pub(super) async fn admin_from_url(&self, url: &str) -> CliResult<Admin> {
        let bound = self.s.limits.connect;
        let cs = ConnString::parse(url)?;
        let mut cfg = cs.resolve(self.env)?;
        cfg.allow_cleartext = self.s.allow_cleartext;
        let spinner = self
            .printer
            .spinner(&format!("Connecting to {}", cfg.redacted()));
        let result = connect::connect(&cfg, bound).await;
        drop(spinner);
        let failure = match result {
            Ok(c) => {
                self.printer.step(
                    Mark::Pass,
                    &format!("Connected as \"{}\" to {}", cfg.user, c.endpoint),
                );
                return Ok(Admin {
                    endpoint: c.endpoint.clone(),
                    conn: c.conn,
                    cfg,
                    answered: Vec::new(),
                    created_database: None,
                });
            }
            Err(failure) => failure,
        };
        let attempt = failure.last().clone();
        if let (Some(p), FailureKind::Server(e)) = (self.prompter, &attempt.failure)
            && e.sqlstate == "28P01"
        {
            return self
                .prompt_admin_login(p, &attempt.endpoint, Some(cfg.user.clone()), Vec::new())
                .await;
        }
        Err(connect_error(&cfg, &failure, "the admin connection (--admin-url) failed").await)
    }

    /// Discovery: PG* variables, the .env's URL, the usual sockets and ports, all at once.
    async fn discover(&self, existing_cs: Option<&ConnString>) -> Vec<probe::Probed> {
        let env = self.env;
        let mut candidates = Vec::new();
        if env.has_pg_target()
            && let Ok(cfg) = ConnString::default().resolve(env)
        {
            candidates.extend(cfg.endpoints.into_iter().map(|endpoint| Candidate {
                endpoint,
                origin: "PG* variables".into(),
            }));
        }
        if let Some(cs) = existing_cs
            && let Ok(cfg) = cs.resolve(env)
        {
            candidates.extend(cfg.endpoints.into_iter().map(|endpoint| Candidate {
                endpoint,
                origin: format!("{} in {}", self.s.env_key, self.s.env_file.display()),
            }));
        }
        // A socket's server may listen on TCP localhost at the same port: that is the address
        // the application's URL needs when the socket only lets the OS user in (peer).
        let tcp_twins: Vec<Candidate> = candidates
            .iter()
            .filter(|c| matches!(c.endpoint.host, Host::Socket(_)))
            .map(|c| Candidate {
                endpoint: Endpoint {
                    host: Host::Tcp("localhost".into()),
                    port: c.endpoint.port,
                },
                origin: c.origin.clone(),
            })
            .collect();
        candidates.extend(tcp_twins);
        candidates.extend(probe::local_candidates());
        let mut unique: Vec<Candidate> = Vec::new();
        for c in candidates {
            if !unique.iter().any(|u| u.endpoint == c.endpoint) {
                unique.push(c);
            }
        }
        let _spinner = self.printer.spinner("Looking for PostgreSQL");
        // Refused ports and missing sockets answer at once, so the bound only matters for a
        // server that is slow to fork its backend (a loaded machine, a busy CI runner):
        // generous enough not to miss it.
        probe::probe_all(unique, DISCOVERY_BOUND).await
    }

    /// Admin login without typing: PG* variables, ~/.pgpass, trust or peer over the socket;
    /// then, interactive, the admin password prompt.
    async fn login_without_typing(
        &self,
        server: &[(Candidate, bool)],
        answered_eps: Vec<(Endpoint, bool)>,
    ) -> CliResult<Admin> {
        if let Some(admin) = self.root_peer_login(server, &answered_eps).await {
            return Ok(admin);
        }
        if let Some(outcome) = self.roleless_user(server, &answered_eps).await {
            return outcome;
        }
        let (env, printer, bound) = (self.env, self.printer, self.s.limits.connect);
        let spinner = printer.spinner("Logging in as an admin");
        // Every address of the server is worth a try: peer auth may work on the socket and a
        // password from ~/.pgpass over TCP.
        let same_server: Vec<Endpoint> = server.iter().map(|(c, _)| c.endpoint.clone()).collect();
        let none =
            match adminlogin::password_logins(&same_server, env, bound, self.s.allow_cleartext)
                .await
            {
                Ok(s) => {
                    printer.step(
                        Mark::Pass,
                        &format!("Logged in as \"{}\" ({})", s.cfg.user, s.how),
                    );
                    return Ok(Admin {
                        endpoint: s.connected.endpoint.clone(),
                        conn: s.connected.conn,
                        cfg: s.cfg,
                        answered: answered_eps,
                        created_database: None,
                    });
                }
                Err(none) => none,
            };
        let tried = none.tried;
        // No spinner may tick under a prompt.
        drop(spinner);
        let (cfg, failure) = none.last.expect("at least one login was attempted");
        let Some(p) = self.prompter else {
            return Err(connect_error(&cfg, &failure, "no admin login works without a password")
                .await
                .with_hint("pass --admin-url postgresql://USER:PASSWORD@HOST:PORT/postgres (or set PGUSER and PGPASSWORD, or a ~/.pgpass line) for a role that may create databases and roles"));
        };
        printer.status("No admin login works without a password; tried:");
        for t in &tried {
            printer.status(&format!("  {t}"));
        }
        // Passwords go over TCP when the server listens there: peer auth on the socket
        // ignores them.
        let endpoint = same_server
            .iter()
            .find(|e| matches!(e.host, Host::Tcp(_)))
            .unwrap_or(&same_server[0])
            .clone();
        self.prompt_admin_login(p, &endpoint, None, answered_eps)
            .await
    }
}

impl Setup<'_> {
    /// `--start-server installed`: start the installed clusters that are down, with this
    /// machine's own command, and wait until they answer (discovery then finds them).
    async fn start_installed(&self) -> CliResult<()> {
        let all = crate::clusters::discover();
        // PGPORT names the cluster meant; without it, every one that is down.
        let port: Option<u16> = self.env.var_nonempty("PGPORT").and_then(|p| p.parse().ok());
        let down: Vec<_> = crate::clusters::down(&all)
            .into_iter()
            .filter(|c| port.is_none_or(|p| c.port == p))
            .collect();
        for cluster in down {
            let _spinner = self
                .printer
                .spinner(&format!("Starting {}", cluster.describe()));
            crate::clusters::start_and_wait(cluster, self.s.start_timeout)
                .await
                .map_err(|why| {
                    CliError::failure(format!("`{}` did not start it: {why}", cluster.start))
                        .with_code(Code::ConnectionRefused)
                })?;
            self.printer.step(
                Mark::Pass,
                &format!("Started {} (`{}`)", cluster.label(), cluster.start),
            );
        }
        Ok(())
    }
}

/// Answering endpoints grouped into servers: local addresses with the same port are one
/// server (its socket and its TCP listener); anything else stands alone.
fn group_servers(answered: &[(Candidate, bool)]) -> Vec<Vec<(Candidate, bool)>> {
    let mut servers: Vec<Vec<(Candidate, bool)>> = Vec::new();
    for (c, tls) in answered {
        let key = |e: &Endpoint| {
            if e.is_local() {
                (String::new(), e.port)
            } else {
                (e.to_string(), e.port)
            }
        };
        match servers
            .iter_mut()
            .find(|s| key(&s[0].0.endpoint) == key(&c.endpoint))
        {
            Some(server) => server.push((c.clone(), *tls)),
            None => servers.push(vec![(c.clone(), *tls)]),
        }
    }
    // Sockets first: trust and peer logins live there.
    for server in &mut servers {
        server.sort_by_key(|(c, _)| !matches!(c.endpoint.host, Host::Socket(_)));
    }
    servers
}

fn describe_server(server: &[(Candidate, bool)]) -> String {
    let port = server[0].0.endpoint.port;
    let addresses: Vec<String> = server
        .iter()
        .map(|(c, tls)| match &c.endpoint.host {
            Host::Socket(dir) => format!("socket in {}", dir.display()),
            Host::Tcp(h) => format!("TCP {h}:{port}, TLS {}", if *tls { "on" } else { "off" }),
        })
        .collect();
    let origin = &server[0].0.origin;
    let origin = if origin.starts_with("socket") || origin.starts_with("TCP") {
        String::new()
    } else {
        format!(", from {origin}")
    };
    format!(
        "PostgreSQL on port {port} ({}{origin})",
        addresses.join("; ")
    )
}

impl Setup<'_> {
    /// Ask for the admin's name (unless known) and password; three tries for a wrong one.
    async fn prompt_admin_login(
        &self,
        p: &dyn Prompt,
        endpoint: &Endpoint,
        user: Option<String>,
        answered: Vec<(Endpoint, bool)>,
    ) -> CliResult<Admin> {
        let (printer, env, bound) = (self.printer, self.env, self.s.limits.connect);
        let user = match user {
            Some(u) => u,
            None => {
                p.input("Admin user", Some("postgres".into()), |_| Ok(()))
                    .await?
            }
        };
        let mut last = None;
        for attempt in 1..=3 {
            let password = p
                .password(&format!("Password for \"{user}\""), false)
                .await?;
            // An empty answer is an answer: there is no password to type (a stock cluster's
            // `postgres` has none). Back to the ways on, never another round of the same question.
            if password.is_empty() {
                let offers = [
                    crate::peer::Offer::ProjectServer,
                    crate::peer::Offer::AdminUrl,
                ];
                return Box::pin(self.take_offer(
                    p,
                    &offers,
                    std::path::Path::new(""),
                    endpoint.port,
                    &user,
                    &answered,
                ))
                .await;
            }
            let mut cs = adminlogin::admin_conn_string(endpoint, &user, "postgres");
            cs.password = Some(Password::new(password));
            let mut cfg = cs.resolve(env)?;
            cfg.allow_cleartext = self.s.allow_cleartext;
            cfg.password_source = crate::dsn::PasswordSource::Prompt;
            let spinner = printer.spinner(&format!("Logging in as \"{user}\""));
            let result = connect::connect(&cfg, bound).await;
            drop(spinner);
            match result {
                Ok(c) => {
                    printer.step(Mark::Pass, &format!("Logged in as \"{user}\""));
                    return Ok(Admin {
                        endpoint: c.endpoint.clone(),
                        conn: c.conn,
                        cfg,
                        answered,
                        created_database: None,
                    });
                }
                Err(f) if f.last().failure.sqlstate() == Some("28P01") && attempt < 3 => {
                    printer.step(
                    Mark::Fail,
                    &format!(
                        "password authentication failed for user \"{user}\"; try again ({} left)",
                        3 - attempt
                    ),
                );
                    last = Some((cfg, f));
                }
                Err(f) => return Err(connect_error(&cfg, &f, "the admin login failed").await),
            }
        }
        let (cfg, f) = last.expect("three attempts failed");
        Err(connect_error(&cfg, &f, "the admin login failed").await)
    }
}

/// A connection failure as a CliError, named by the catalogue.
pub async fn connect_error(
    cfg: &ConnConfig,
    failure: &connect::ConnectFailure,
    what: &str,
) -> CliError {
    let attempt = failure.last();
    // Whether TCP is open beside a peer refusal, as doctor asks it.
    let mut ctx = Context::beside_a_peer_refusal(attempt)
        .await
        .unwrap_or_default();
    if matches!(
        attempt.failure,
        FailureKind::Refused | FailureKind::SocketMissing
    ) {
        ctx.start = std::env::current_dir()
            .ok()
            .and_then(|dir| projectserver::start_command_for(&attempt.endpoint, &dir))
            .map(|cmd| diagnose::Start::new(cmd, diagnose::StartedServer::ProjectServer))
            .or_else(|| diagnose::start_command(attempt.endpoint.port));
    }
    let d = diagnose::diagnose(cfg, attempt, &ctx);
    CliError::failure(format!("{what}: {}", d.message))
        .with_hint(d.hint)
        .with_code(d.code)
}

/// The project folder, whose `.aksara/` holds the project's own server: the nearest at or
/// above the working folder that records one (as `aksara dbserver` finds it), else the folder
/// of the `.env` this setup uses when that was found above (a setup run in `app/` writes the
/// project's `../.env`; its server belongs beside it), else the working folder.
pub(super) fn project_layout(
    env_file: &std::path::Path,
    env_file_given: bool,
) -> CliResult<Layout> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failure(format!("cannot read the current folder: {e}")))?;
    if let Some(recorded) = Layout::find_from(&cwd) {
        return Ok(recorded);
    }
    let above = (!env_file_given)
        .then(|| env_file.parent())
        .flatten()
        .filter(|folder| !folder.as_os_str().is_empty())
        .and_then(|folder| std::fs::canonicalize(cwd.join(folder)).ok());
    Ok(Layout::in_project(&above.unwrap_or(cwd)))
}

/// No server answers: offer what this machine can start (installed server programs first,
/// then a Docker engine), or fail with what was probed and how to install PostgreSQL.
impl Setup<'_> {
    async fn offer_server(&self, layout: &Layout, probed: &[probe::Probed]) -> CliResult<Admin> {
        let (printer, prompter) = (self.printer, self.prompter);
        let mut offers = Vec::new();
        let installed = crate::clusters::discover();
        if self.s.start_server != Some(StartServer::Never) {
            // The machine's own cluster first: it is what the user installed.
            for cluster in &installed {
                if cluster.state == crate::clusters::State::Down && !cluster.start.needs_root {
                    offers.push(Offer::Installed(Box::new(cluster.clone())));
                }
            }
            if let Ok(bins) = localserver::find_binaries() {
                offers.push(Offer::Local(bins));
            }
            let spinner = printer.spinner("Asking Docker");
            if crate::docker::engine_answers(serverup::DOCKER_INFO_BOUND).await {
                offers.push(Offer::Docker);
            }
            drop(spinner);
        }
        let Some(p) = prompter.filter(|_| !offers.is_empty()) else {
            return Err(no_server_error(probed, &offers, &installed));
        };
        let places = super::offers::probed_places(probed);
        // Not an error yet: a normal state on a fresh machine, with ways on below.
        printer.step(
            Mark::Warn,
            &format!(
                "No PostgreSQL server answers (probed {})",
                places.join(", ")
            ),
        );
        let mut items: Vec<String> = offers
            .iter()
            .map(|o| format!("Start {}", o.describe()))
            .collect();
        items.push("None of these: show how to install PostgreSQL, and stop".into());
        let choice = p.select("Start a PostgreSQL server?", items, 0).await?;
        let kind = match offers.get(choice) {
            Some(Offer::Installed(cluster)) => {
                let spinner = printer.spinner(&format!("Starting {}", cluster.describe()));
                crate::clusters::start_and_wait(cluster, self.s.start_timeout)
                    .await
                    .map_err(|why| {
                        CliError::failure(format!("`{}` did not start it: {why}", cluster.start))
                            .with_code(Code::ConnectionRefused)
                    })?;
                drop(spinner);
                printer.step(
                    Mark::Pass,
                    &format!("Started {} (`{}`)", cluster.label(), cluster.start),
                );
                return Box::pin(self.admin_connection(None)).await;
            }
            Some(Offer::Local(_)) => StartServer::Local,
            Some(Offer::Docker) => StartServer::Docker,
            None => {
                return Err(CliError::failure(
                    "no PostgreSQL server answers, and none was started",
                )
                .with_code(Code::ConnectionRefused)
                .with_hint(diagnose::install_advice()));
            }
        };
        self.project_admin(layout, kind, true).await
    }

    /// Bring the project's own server up (creating it on first use) and log in as its superuser.
    pub(super) async fn project_admin(
        &self,
        layout: &Layout,
        kind: StartServer,
        allow_start: bool,
    ) -> CliResult<Admin> {
        let (printer, env, bound) = (self.printer, self.env, self.s.limits.connect);
        let wait = self.s.start_timeout;
        let up = match kind {
            StartServer::Docker => {
                // The image creates POSTGRES_DB as it starts: the database this setup is for.
                let db = match &self.s.db_name {
                    Name::Given(n) => n.clone(),
                    Name::Ask => provision::default_db_name(&folder_name(&self.s.env_file)),
                };
                serverup::docker(layout, self.s.server_port, &db, allow_start, printer).await?
            }
            _ => serverup::local(layout, self.s.server_port, wait, allow_start, printer).await?,
        };
        ignore_project_folder(layout, printer)?;
        let (c, cfg) = serverup::login(layout, &up, env, wait, bound, printer).await?;
        Ok(Admin {
            endpoint: c.endpoint.clone(),
            conn: c.conn,
            cfg,
            answered: Vec::new(),
            created_database: up.created_database,
        })
    }
}

/// `.aksara/` holds the superuser password and the data: git must not pick it up.
fn ignore_project_folder(layout: &Layout, printer: &Printer) -> CliResult<()> {
    match envfile::git_ignore_status(&layout.root()) {
        GitIgnoreStatus::NotIgnored { repo_root } => {
            let pattern = crate::gitignore::relative_pattern(&layout.root(), &repo_root);
            let pattern = format!("{}/", pattern.trim_end_matches('/'));
            if envfile::add_to_gitignore(&repo_root, &pattern)? {
                printer.step(
                    Mark::Pass,
                    &format!(
                        "Added `{pattern}` to {} (it holds the superuser password and the data)",
                        repo_root.join(".gitignore").display()
                    ),
                );
            }
        }
        GitIgnoreStatus::Tracked { repo_root } => printer.warn(&format!(
            "{} is committed to git, and it holds the superuser password: `git rm -r --cached {}` and add `/{}` to {}",
            layout.root().display(),
            layout.root().display(),
            GITIGNORE_PATTERN,
            repo_root.join(".gitignore").display()
        )),
        _ => {}
    }
    Ok(())
}

/// The project's name for the default database: the folder that holds its `.env` (the project's
/// root when a setup in `app/` uses `../.env`).
pub fn folder_name(env_file: &std::path::Path) -> String {
    let folder = match env_file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::canonicalize(parent).ok(),
        _ => std::env::current_dir().ok(),
    };
    folder
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "app".into())
}
