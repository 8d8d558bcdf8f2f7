//! The way in on a distribution's cluster, where the socket says `peer` and `postgres` has no
//! password: as root, the `postgres` role through the `postgres` OS user (no password asked);
//! as an ordinary user without a role of their own, the offers in order (create the role now
//! with the line an experienced person runs, the project's own server, an admin URL), and
//! never a password loop for a role that does not exist.

use std::path::Path;

use super::Setup;
use super::discover::Admin;
use crate::cli::StartServer;
use crate::dsn::{Endpoint, Host};
use crate::error::{CliError, CliResult};
use crate::peer::{self, Offer, PeerRefusal};
use crate::probe::Candidate;
use crate::ui::Mark;

/// The server's socket, when it has one: peer authentication lives there.
fn socket_of(server: &[(Candidate, bool)]) -> Option<(&Path, u16)> {
    server.iter().find_map(|(c, _)| match &c.endpoint.host {
        Host::Socket(dir) => Some((dir.as_path(), c.endpoint.port)),
        Host::Tcp(_) => None,
    })
}

impl Setup<'_> {
    /// Root's peer login as `postgres`, when the server has a socket and lets it in.
    pub async fn root_peer_login(
        &self,
        server: &[(Candidate, bool)],
        answered: &[(Endpoint, bool)],
    ) -> Option<Admin> {
        let (dir, port) = socket_of(server)?;
        let s = crate::adminlogin::root_peer(self.env, dir, port, self.s.limits.connect).await?;
        self.printer.step(
            Mark::Pass,
            "Logged in as \"postgres\" through the postgres OS user (no password needed)",
        );
        let (c, cfg) = (s.connected, s.cfg);
        Some(Admin {
            endpoint: c.endpoint.clone(),
            conn: c.conn,
            cfg,
            answered: answered.to_vec(),
            created_database: None,
        })
    }

    /// An ordinary user the socket knows by name but who has no role: say so plainly, and
    /// offer the ways on (interactive), or name them (CI). `None` when that is not the case.
    pub async fn roleless_user(
        &self,
        server: &[(Candidate, bool)],
        answered: &[(Endpoint, bool)],
    ) -> Option<CliResult<Admin>> {
        let machine = crate::clusters::Machine::detect();
        let chosen = ["PGUSER", "PGPASSWORD"]
            .iter()
            .any(|v| self.env.var_nonempty(v).is_some());
        if chosen || machine.root {
            return None;
        }
        let (dir, port) = socket_of(server)?;
        let me = crate::localserver::current_user_name()?;
        let bound = self.s.limits.connect;
        let refusal = match peer::connect(dir, port, None, &me, "postgres", bound).await {
            Ok(c) => {
                crate::connect::close(c.conn).await;
                return None;
            }
            Err(refusal @ PeerRefusal::RoleMissing { .. }) => refusal,
            Err(_) => return None,
        };
        let offers = peer::offers(&refusal, dir, port, &machine);
        let Some(p) = self.prompter else {
            return Some(Err(CliError::failure(refusal.to_string())
                .with_code(crate::code::Code::RoleMissing)
                .with_hint(peer::hint(&offers))));
        };
        self.printer.step(
            Mark::Warn,
            &format!("The server at {} knows no role \"{me}\" (peer authentication by your OS user name)", dir.display()),
        );
        Some(self.take_offer(p, &offers, dir, port, &me, answered).await)
    }

    pub(super) async fn take_offer(
        &self,
        p: &dyn crate::prompt::Prompt,
        offers: &[Offer],
        dir: &Path,
        port: u16,
        me: &str,
        answered: &[(Endpoint, bool)],
    ) -> CliResult<Admin> {
        let items: Vec<String> = offers.iter().map(Offer::describe).collect();
        let choice = p.select("How do you want to go on?", items, 0).await?;
        match &offers[choice] {
            // No sudo here: the line is for root to run, not for aksara.
            Offer::CreateRole(cmd) if !cmd.runnable => Err(CliError::failure(format!(
                "no role \"{me}\" yet, and this machine has no sudo for aksara to create it with"
            ))
            .with_code(crate::code::Code::RoleMissing)
            .with_hint(format!("as root, run `{cmd}`, then `aksara dbsetup` again"))),
            Offer::CreateRole(cmd) => {
                peer::run_create_role(cmd).map_err(|why| {
                    CliError::failure(format!("{why}: no role was created"))
                        .before_any_change()
                        .with_code(crate::code::Code::RoleMissing)
                        .with_hint(peer::SUDO_FAILED_HINT)
                })?;
                let bound = self.s.limits.connect;
                let c = peer::connect(dir, port, None, me, "postgres", bound)
                    .await
                    .map_err(|refusal| {
                        CliError::failure(format!("the new role does not log in: {refusal}"))
                    })?;
                self.printer.step(
                    Mark::Pass,
                    &format!("Logged in as \"{me}\" (peer authentication)"),
                );
                Ok(Admin {
                    endpoint: c.endpoint.clone(),
                    conn: c.conn,
                    cfg: peer::socket_config(dir, port, me, "postgres"),
                    answered: answered.to_vec(),
                    created_database: None,
                })
            }
            Offer::ProjectServer => {
                let layout =
                    super::discover::project_layout(&self.s.env_file, self.s.env_file_given)?;
                self.project_admin(&layout, StartServer::Local, true).await
            }
            Offer::AdminUrl => {
                let url = p
                    .input(
                        "Admin connection string (postgresql://USER@HOST:PORT/postgres)",
                        None,
                        |s| {
                            crate::dsn::ConnString::parse(s)
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        },
                    )
                    .await?;
                self.admin_from_url(&url).await
            }
        }
    }
}
