//! The admin login for the SQL fixes, at the URL's own server and the way dbsetup logs in
//! (`crate::adminlogin`): the project's own server with its password file, root's peer login
//! as `postgres` over the server's socket, PG* and `~/.pgpass`, and on a terminal a prompt.
//! One login per URL, opened only when one of its fixes needs it, and said as whom.

use std::time::Duration;

use crate::adminlogin::{self, AdminSession};
use crate::cli::DoctorArgs;
use crate::commands::doctor::targets::Target;
use crate::connect;
use crate::dsn::{ConnConfig, ConnString, Endpoint, Host, Password, PasswordSource};
use crate::error::CliResult;
use crate::projectserver::{self, AtProjectPort};
use crate::prompt::Prompt;
use crate::sysenv::ProcessEnvironment;
use crate::ui::Printer;

/// The admin sessions opened so far, by target; a failed login is kept as its reason.
#[derive(Default)]
pub struct Logins {
    by_target: Vec<(usize, Result<AdminSession, String>)>,
}

impl Logins {
    /// As whom the fixes of `target` run (`as "postgres" at ... (how)`), logging in on first
    /// use; or why no login works and what a person can do.
    pub async fn for_target(
        &mut self,
        index: usize,
        target: &Target,
        args: &DoctorArgs,
        env: &ProcessEnvironment,
        prompter: Option<&dyn Prompt>,
        printer: &Printer,
    ) -> CliResult<Result<String, String>> {
        if !self.by_target.iter().any(|(i, _)| *i == index) {
            let spinner = printer.spinner("Logging in as an admin for the fixes");
            let login = login(target, args, env, prompter, spinner).await?;
            self.by_target.push((index, login));
        }
        let (_, login) = self
            .by_target
            .iter()
            .find(|(i, _)| *i == index)
            .expect("just recorded");
        Ok(match login {
            Ok(s) => Ok(format!(
                "as \"{}\" at {} ({})",
                s.cfg.user, s.connected.endpoint, s.how
            )),
            Err(why) => Err(why.clone()),
        })
    }

    pub fn session(&mut self, index: usize) -> Option<&mut AdminSession> {
        self.by_target
            .iter_mut()
            .find(|(i, _)| *i == index)
            .and_then(|(_, l)| l.as_mut().ok())
    }

    pub async fn close(self) {
        for (_, login) in self.by_target {
            if let Ok(s) = login {
                connect::close(s.connected.conn).await;
            }
        }
    }
}

async fn login(
    target: &Target,
    args: &DoctorArgs,
    env: &ProcessEnvironment,
    prompter: Option<&dyn Prompt>,
    spinner: crate::ui::Spinner,
) -> CliResult<Result<AdminSession, String>> {
    let cfg = match ConnString::parse(&target.raw).and_then(|cs| cs.resolve(env)) {
        Ok(cfg) => cfg,
        Err(e) => return Ok(Err(format!("the URL does not parse: {e}"))),
    };
    let bound = Duration::from_secs(args.connect_timeout);
    if let Some(s) = project_server_login(&cfg, env, bound).await {
        return Ok(Ok(s));
    }
    let mut endpoints = Vec::new();
    for ep in &cfg.endpoints {
        if let Some(dir) = adminlogin::socket_dir_for(ep, env) {
            if let Some(s) = adminlogin::root_peer(env, &dir, ep.port, bound).await {
                return Ok(Ok(s));
            }
            endpoints.push(Endpoint {
                host: Host::Socket(dir),
                port: ep.port,
            });
        }
        endpoints.push(ep.clone());
    }
    endpoints.dedup();
    let none = match adminlogin::password_logins(&endpoints, env, bound, args.allow_cleartext).await
    {
        Ok(s) => return Ok(Ok(s)),
        Err(none) => none,
    };
    // No spinner may tick under a prompt.
    drop(spinner);
    let tcp = endpoints
        .iter()
        .find(|e| matches!(e.host, Host::Tcp(_)))
        .or(endpoints.first());
    if let (Some(p), Some(ep)) = (prompter, tcp) {
        return prompt_login(p, ep, env, bound, args.allow_cleartext).await;
    }
    Ok(Err(format!(
        "no admin login works without a password (tried {}): run it as a superuser yourself, or set PGUSER and PGPASSWORD (or a ~/.pgpass line) for a role that may, and run `aksara doctor --fix` again",
        if none.tried.is_empty() {
            "nothing: no address to log in at".to_string()
        } else {
            none.tried.join("; ")
        }
    )))
}

/// The project's own server, running at the URL's address: its superuser password file.
async fn project_server_login(
    cfg: &ConnConfig,
    env: &ProcessEnvironment,
    bound: Duration,
) -> Option<AdminSession> {
    let cwd = std::env::current_dir().ok()?;
    for ep in &cfg.endpoints {
        let Some((layout, record, AtProjectPort::Ours { running: true })) =
            projectserver::at_project_port(ep, &cwd)
        else {
            continue;
        };
        let password = layout.read_password().ok()??;
        let admin = layout
            .admin_conn_string(&record, &password)
            .resolve(env)
            .ok()?;
        if let Ok(connected) = connect::connect(&admin, bound).await {
            return Some(AdminSession {
                connected,
                cfg: admin,
                how: format!("password from {}", layout.show(&layout.password_file())),
            });
        }
    }
    None
}

/// Ask for the admin's name and password (one try: a wrong one is reported, not looped on).
async fn prompt_login(
    p: &dyn Prompt,
    ep: &Endpoint,
    env: &ProcessEnvironment,
    bound: Duration,
    allow_cleartext: bool,
) -> CliResult<Result<AdminSession, String>> {
    // A Ctrl-C at the prompt ends the run (exit 130), as everywhere.
    let user = p
        .input("Admin user for the fixes", Some("postgres".into()), |_| {
            Ok(())
        })
        .await?;
    let password = p
        .password(&format!("Password for \"{user}\""), false)
        .await?;
    let mut cs = adminlogin::admin_conn_string(ep, &user, "postgres");
    if !password.is_empty() {
        cs.password = Some(Password::new(password));
    }
    let mut cfg = match cs.resolve(env) {
        Ok(cfg) => cfg,
        Err(e) => return Ok(Err(e.to_string())),
    };
    cfg.allow_cleartext = allow_cleartext;
    cfg.password_source = PasswordSource::Prompt;
    Ok(match connect::connect(&cfg, bound).await {
        Ok(connected) => Ok(AdminSession {
            connected,
            cfg,
            how: "password typed".into(),
        }),
        Err(f) => Err(format!(
            "the admin login as \"{user}\" failed ({}): run it as a superuser yourself, or run `aksara doctor --fix` again with the right password",
            adminlogin::short_failure(&f.last().failure)
        )),
    })
}
