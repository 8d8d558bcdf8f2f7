//! `--replica-url`: the application's read replica. After the setup, the new user logs in on
//! the standby (the role and database arrive there by replication, so the login is retried for
//! a few seconds), the server must say it is in recovery, and `DATABASE_REPLICA_URL` is written
//! in the same portable form as `DATABASE_URL`, in the same `.env` write.

use std::time::{Duration, Instant};

use super::Setup;
use crate::code::Code;
use crate::connect;
use crate::dsn::ConnString;
use crate::error::{CliError, CliResult};
use crate::ui::Mark;

/// The key the seed page's "Multiple Databases" replica goes under.
pub const REPLICA_KEY: &str = "DATABASE_REPLICA_URL";

/// How long the new role may take to reach the standby.
const REPLICATION_WAIT: Duration = Duration::from_secs(10);

impl Setup<'_> {
    /// The app's URL with the replica's host, port and sslmode, verified (before `.env` is
    /// written, so a wrong replica undoes the setup like any other failure).
    pub async fn verified_replica(
        &self,
        app: &ConnString,
    ) -> CliResult<Option<super::decide::WrittenUrl>> {
        let Some(replica) = &self.s.replica else {
            return Ok(None);
        };
        let mut url = app.clone();
        url.hosts = replica.hosts.clone();
        if replica.sslmode.is_some() {
            url.sslmode = replica.sslmode;
        }
        let mut cfg = url.resolve(self.env)?;
        cfg.allow_cleartext = self.s.allow_cleartext;
        let in_recovery = {
            let _spinner = self
                .printer
                .spinner("Logging in on the replica as the application user");
            self.replica_login(&cfg).await?
        };
        if !in_recovery {
            return Err(CliError::failure(format!(
                "--replica-url points at {}, which is not a standby (pg_is_in_recovery() is false)",
                cfg.endpoints
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ))
            .with_code(Code::ReplicaKeyAtPrimary)
            .with_hint("pass --replica-url with the standby's host and port"));
        }
        self.printer.step(
            Mark::Pass,
            &format!(
                "Verified the replica: a read-only login as \"{}\" on a standby",
                cfg.user
            ),
        );
        Ok(Some(super::decide::portable_url(&url)?))
    }

    /// Before anything changes: when the admin's credentials log in at the replica's address
    /// too, a server there that is not in recovery is refused now, so a wrong `--replica-url`
    /// costs no role and database created and undone. A login that does not work there says
    /// nothing yet: the application user's login after the setup decides.
    pub async fn replica_precheck(&self, admin: &crate::dsn::ConnConfig) -> CliResult<()> {
        let Some(replica) = &self.s.replica else {
            return Ok(());
        };
        let Ok(at) = replica.resolve(self.env) else {
            return Ok(());
        };
        let mut cfg = admin.clone();
        cfg.endpoints = at.endpoints;
        if replica.sslmode.is_some() {
            cfg.sslmode = at.sslmode;
        }
        let Ok(mut c) = connect::connect(&cfg, self.s.limits.connect).await else {
            return Ok(());
        };
        let in_recovery = tokio::time::timeout(
            self.s.limits.client(),
            sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&mut c.conn),
        )
        .await;
        let endpoint = c.endpoint.to_string();
        connect::close(c.conn).await;
        match in_recovery {
            Ok(Ok(false)) => Err(CliError::failure(format!(
                "--replica-url points at {endpoint}, which is not a standby (pg_is_in_recovery() is false)"
            ))
            .with_code(Code::ReplicaKeyAtPrimary)
            .with_hint("pass --replica-url with the standby's host and port")
            .before_any_change()),
            _ => Ok(()),
        }
    }

    /// Log in (retrying while the role or database has not replicated yet) and ask whether the
    /// server is in recovery.
    async fn replica_login(&self, cfg: &crate::dsn::ConnConfig) -> CliResult<bool> {
        let deadline = Instant::now() + REPLICATION_WAIT;
        loop {
            match connect::connect(cfg, self.s.limits.connect).await {
                Ok(mut c) => {
                    let in_recovery = super::progress::bounded(
                        self.s.limits,
                        sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                            .fetch_one(&mut c.conn),
                    )
                    .await;
                    connect::close(c.conn).await;
                    return in_recovery;
                }
                Err(failure) => {
                    let not_yet = matches!(
                        failure.last().failure.sqlstate(),
                        Some("28000" | "28P01" | "3D000")
                    );
                    if !not_yet || Instant::now() >= deadline {
                        return Err(super::discover::connect_error(
                            cfg,
                            &failure,
                            "the application user's login on the replica failed",
                        )
                        .await);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
