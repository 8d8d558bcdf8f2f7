//! An admin URL that goes through a connection pooler: setup needs one server session for its
//! whole run (the advisory lock, `SET` bounds, statements in order), which transaction and
//! statement pooling do not give. Told before anything changes, from what the login showed
//! (nothing more is asked on a direct login); the server behind PgBouncer is used instead when
//! its admin console says where it is and that login works, else the setup is refused.

use sqlx::postgres::PgSslMode;

use super::Setup;
use super::discover::Admin;
use super::progress::bounded;
use crate::code::Code;
use crate::connect;
use crate::error::{CliError, CliResult};
use crate::pooler::{self, FirstLook, LoginSignals, PoolMode};
use crate::ui::Mark;

impl Setup<'_> {
    /// Keep `admin` when it is direct or a session pooler; otherwise replace it with a direct
    /// login to the server behind the pooler, or refuse.
    pub async fn unpooled(&self, admin: Admin) -> CliResult<Admin> {
        let mut admin = admin;
        let limits = self.s.limits;
        let pid: i32 = bounded(
            limits,
            sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut admin.conn),
        )
        .await?;
        let look = pooler::first_look(&LoginSignals::of(&admin.conn), pid, &admin.endpoint.host);
        if look == FirstLook::Direct {
            return Ok(admin);
        }
        let report = pooler::identify(
            &mut admin.conn,
            &admin.cfg,
            &admin.endpoint,
            PgSslMode::Prefer,
            &look,
            limits.connect,
        )
        .await;
        let mode = report.mode.mode();
        if mode == Some(PoolMode::Session) {
            return Ok(admin);
        }
        let shown_mode = mode.map_or("an unknown mode".to_string(), |m| format!("{m} mode"));
        if let Some(server) = &report.server {
            let direct = server.direct_config(&admin.cfg);
            if let Ok(c) = connect::connect(&direct, limits.connect).await {
                self.printer.step(
                    Mark::Pass,
                    &format!(
                        "{} at {} pools in {shown_mode}: setting up over the server's own address {} (from its admin console)",
                        report.kind, admin.endpoint, c.endpoint
                    ),
                );
                connect::close(admin.conn).await;
                return Ok(Admin {
                    endpoint: c.endpoint.clone(),
                    conn: c.conn,
                    cfg: direct,
                    answered: admin.answered,
                    created_database: admin.created_database,
                });
            }
        }
        connect::close(admin.conn).await;
        Err(CliError::usage(format!(
            "the admin URL goes through {} in {shown_mode} ({}): a setup needs one server session for its whole run (its lock, its limits, its statements in order), which this pooling does not keep",
            report.kind,
            report.evidence.join("; ")
        ))
        .before_any_change()
        .with_code(Code::AdminThroughPooler)
        .with_hint("pass --admin-url with the server's own address (PgBouncer's [databases] line for this database names its host and port), or a session-mode pool; the app's URL may still go through the pooler"))
    }
}
