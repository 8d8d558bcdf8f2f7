//! Primary or standby: what a logged-in server is, how far a standby is behind, and whether
//! that is what the `.env` key pointing at it expects.
//!
//! The role comes from the login when it can (PostgreSQL 14+ reports `in_hot_standby`), else
//! from `pg_is_in_recovery()`. Lag is read only on a standby, in one bounded query: bytes
//! received but not yet replayed, seconds since the last replayed transaction (counted only
//! while something is waiting to be replayed: on an idle primary the timestamp alone grows
//! without any lag), and whether replay is paused. A key's expected role comes from its name.

use std::fmt;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::PgConnection;

use crate::connect;

/// What the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Writable, not in recovery.
    Primary,
    /// In recovery (a hot standby, a replica).
    Standby,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        })
    }
}

/// The role as the login reported it (`in_hot_standby`), without a query; `None` when the
/// server (before 14) or a pooler did not send it.
pub fn role_from_login(conn: &PgConnection) -> Option<Role> {
    conn.parameter_status("in_hot_standby").map(|v| {
        if v == "on" {
            Role::Standby
        } else {
            Role::Primary
        }
    })
}

/// How far a standby is behind its primary.
#[derive(Clone, Debug, PartialEq)]
pub struct Lag {
    /// WAL received but not yet replayed; `None` when nothing is streamed (archive recovery).
    pub bytes: Option<u64>,
    /// Age of the last replayed transaction while WAL is waiting to be replayed; 0 when all
    /// received WAL is replayed; `None` when nothing was replayed since the standby started.
    pub seconds: Option<f64>,
    pub replay_paused: bool,
    pub receive_lsn: Option<String>,
    pub replay_lsn: Option<String>,
}

/// The role, and the lag when it is a standby.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerRole {
    pub role: Role,
    pub lag: Option<Lag>,
}

const ROLE_SQL: &str = "SELECT pg_is_in_recovery(), \
     pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
     pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint, \
     (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint, \
     CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END";

/// One bounded query. Call it when the role matters (a `*DATABASE_URL` key with a role
/// expectation, or lag to report); `role_from_login` is enough for the role alone.
pub async fn inspect(conn: &mut PgConnection, bound: Duration) -> Result<ServerRole, String> {
    let row = match tokio::time::timeout(bound, sqlx::raw_sql(ROLE_SQL).fetch_one(&mut *conn)).await
    {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => return Err(connect::classify(e).to_string()),
        Err(_) => return Err(format!("no answer within {} ms", bound.as_millis())),
    };
    let get_err = |e: sqlx::Error| e.to_string();
    let in_recovery: bool = row.try_get(0).map_err(get_err)?;
    if !in_recovery {
        return Ok(ServerRole {
            role: Role::Primary,
            lag: None,
        });
    }
    let receive_lsn: Option<String> = row.try_get(1).map_err(get_err)?;
    let replay_lsn: Option<String> = row.try_get(2).map_err(get_err)?;
    let bytes: Option<i64> = row.try_get(3).map_err(get_err)?;
    let age_ms: Option<i64> = row.try_get(4).map_err(get_err)?;
    let replay_paused: bool = row.try_get(5).map_err(get_err)?;
    let bytes = bytes.map(|b| u64::try_from(b).unwrap_or(0));
    let seconds = match bytes {
        Some(0) => Some(0.0),
        _ => age_ms.map(|ms| ms.max(0) as f64 / 1000.0),
    };
    Ok(ServerRole {
        role: Role::Standby,
        lag: Some(Lag {
            bytes,
            seconds,
            replay_paused,
            receive_lsn,
            replay_lsn,
        }),
    })
}

/// What a `.env` key's name says it should point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRole {
    Primary,
    Replica,
    /// The name says nothing (not a `*DATABASE_URL` key, nor a replica/read key).
    Either,
}

/// Whether the failure's remedy is a change to the catalog (a database, a role, a grant, a
/// limit): a standby is read-only and replays its primary, so for a replica key that change is
/// made on the primary, never at the replica's URL (where it fails, or, at a primary the key
/// points at by mistake, lands on the wrong server).
pub fn remedy_is_on_the_primary(code: crate::code::Code) -> bool {
    use crate::code::Code;
    matches!(
        code,
        Code::RoleMissing
            | Code::RoleCannotLogin
            | Code::DatabaseMissing
            | Code::DatabaseNotAccepting
            | Code::RoleConnectionLimit
            | Code::DatabaseConnectionLimit
            | Code::PermissionDenied
            | Code::CannotCreateTables
            | Code::NoCreationSchema
    )
}

/// `key` when its name says it points at a replica.
pub fn replica_key(key: Option<&str>) -> Option<&str> {
    key.filter(|k| expected_role(k) == ExpectedRole::Replica)
}

/// What to say instead of changing anything at a replica key's server: the change goes to the
/// primary, which the standby replays.
pub fn on_the_primary_note(key: &str) -> String {
    format!(
        "`{key}` names a replica: a standby is read-only and replays what its primary does, so make this change on the primary, not at this URL"
    )
}

/// `DATABASE_REPLICA_URL`, `*_REPLICA_*`, `*_READ*` (`READ`, `READONLY`, `READER`, …) and
/// `*_STANDBY_*` name a replica; any other `*DATABASE_URL` a primary. The name is split on `_`
/// so `THREAD_DATABASE_URL` is not a read key.
pub fn expected_role(key: &str) -> ExpectedRole {
    let upper = key.to_ascii_uppercase();
    let replica = upper.split('_').any(|word| {
        word.starts_with("READ") || word.starts_with("REPLICA") || word == "STANDBY" || word == "RO"
    });
    if replica {
        ExpectedRole::Replica
    } else if upper.ends_with("DATABASE_URL") {
        ExpectedRole::Primary
    } else {
        ExpectedRole::Either
    }
}

/// A key pointing at the wrong kind of server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleMismatch {
    /// A replica key at a primary: the app's reads work but load the primary, and the
    /// replica the operator thinks is used is not.
    ReplicaKeyAtPrimary { key: String },
    /// A primary key at a standby: every write fails with 25006.
    PrimaryKeyAtStandby { key: String },
}

impl RoleMismatch {
    /// The proposed id for the `Code` enum.
    pub fn code(&self) -> &'static str {
        match self {
            RoleMismatch::ReplicaKeyAtPrimary { .. } => "replica-key-at-primary",
            RoleMismatch::PrimaryKeyAtStandby { .. } => "primary-key-at-standby",
        }
    }

    pub fn hint(&self) -> String {
        match self {
            RoleMismatch::ReplicaKeyAtPrimary { key } => format!(
                "`{key}` names a replica but points at the primary (not in recovery): set it to the standby's \
                 host and port, or rename the key if reads are meant to go to the primary"
            ),
            RoleMismatch::PrimaryKeyAtStandby { key } => format!(
                "`{key}` points at a standby (in recovery), where every write fails with \"cannot execute ... in a \
                 read-only transaction\" (25006): point it at the primary, or list both hosts with \
                 `target_session_attrs=read-write`"
            ),
        }
    }
}

impl fmt::Display for RoleMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleMismatch::ReplicaKeyAtPrimary { key } => {
                write!(f, "{key} is a replica key, and it points at a primary")
            }
            RoleMismatch::PrimaryKeyAtStandby { key } => {
                write!(f, "{key} is a primary key, and it points at a standby")
            }
        }
    }
}

/// The mismatch, if the key's name and the server's role disagree.
pub fn check_role(key: &str, role: Role) -> Option<RoleMismatch> {
    match (expected_role(key), role) {
        (ExpectedRole::Replica, Role::Primary) => Some(RoleMismatch::ReplicaKeyAtPrimary {
            key: key.to_owned(),
        }),
        (ExpectedRole::Primary, Role::Standby) => Some(RoleMismatch::PrimaryKeyAtStandby {
            key: key.to_owned(),
        }),
        _ => None,
    }
}

/// A standby's lag worth a warning.
#[derive(Clone, Debug, PartialEq)]
pub enum LagWarning {
    /// Replay is paused (`pg_wal_replay_pause()`): the standby serves ever older data.
    ReplayPaused,
    /// Behind by more than the threshold.
    Behind { seconds: f64, max: Duration },
}

impl LagWarning {
    /// The proposed id for the `Code` enum.
    pub fn code(&self) -> &'static str {
        match self {
            LagWarning::ReplayPaused => "replica-replay-paused",
            LagWarning::Behind { .. } => "replica-lag",
        }
    }

    pub fn hint(&self) -> String {
        match self {
            LagWarning::ReplayPaused => "on the standby, as a superuser: `SELECT pg_wal_replay_resume();`".into(),
            LagWarning::Behind { .. } => "the standby replays slower than the primary writes, or its replay is blocked \
                 by long queries on it (`max_standby_streaming_delay`): see `pg_stat_replication` on the primary and \
                 `pg_stat_activity` on the standby"
                .into(),
        }
    }
}

impl fmt::Display for LagWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LagWarning::ReplayPaused => f.write_str("WAL replay is paused on this standby"),
            LagWarning::Behind { seconds, max } => write!(
                f,
                "this standby is {seconds:.1} s behind (more than {} s)",
                max.as_secs_f64()
            ),
        }
    }
}

/// The warnings for a lag: a paused replay always, being behind past `max_lag`.
pub fn lag_warnings(lag: &Lag, max_lag: Duration) -> Vec<LagWarning> {
    let mut out = Vec::new();
    if lag.replay_paused {
        out.push(LagWarning::ReplayPaused);
    }
    if let Some(seconds) = lag.seconds.filter(|s| *s > max_lag.as_secs_f64()) {
        out.push(LagWarning::Behind {
            seconds,
            max: max_lag,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_give_the_expected_role() {
        assert_eq!(expected_role("DATABASE_URL"), ExpectedRole::Primary);
        assert_eq!(expected_role("TEST_DATABASE_URL"), ExpectedRole::Primary);
        assert_eq!(expected_role("DATABASE_REPLICA_URL"), ExpectedRole::Replica);
        assert_eq!(
            expected_role("ANALYTICS_REPLICA_DATABASE_URL"),
            ExpectedRole::Replica
        );
        assert_eq!(expected_role("DATABASE_READ_URL"), ExpectedRole::Replica);
        assert_eq!(
            expected_role("DATABASE_READONLY_URL"),
            ExpectedRole::Replica
        );
        assert_eq!(expected_role("THREAD_DATABASE_URL"), ExpectedRole::Primary);
        assert_eq!(expected_role("REDIS_URL"), ExpectedRole::Either);
    }

    #[test]
    fn mismatches_are_named_with_their_codes() {
        let m = check_role("DATABASE_REPLICA_URL", Role::Primary).unwrap();
        assert_eq!(m.code(), "replica-key-at-primary");
        let m = check_role("DATABASE_URL", Role::Standby).unwrap();
        assert_eq!(m.code(), "primary-key-at-standby");
        assert!(check_role("DATABASE_URL", Role::Primary).is_none());
        assert!(check_role("DATABASE_REPLICA_URL", Role::Standby).is_none());
        assert!(check_role("OTHER", Role::Standby).is_none());
    }

    #[test]
    fn lag_warns_when_paused_or_past_the_threshold() {
        let lag = Lag {
            bytes: Some(0),
            seconds: Some(0.0),
            replay_paused: false,
            receive_lsn: None,
            replay_lsn: None,
        };
        assert!(lag_warnings(&lag, Duration::from_secs(30)).is_empty());
        let behind = Lag {
            seconds: Some(45.0),
            bytes: Some(10),
            ..lag.clone()
        };
        assert_eq!(
            lag_warnings(&behind, Duration::from_secs(30))[0].code(),
            "replica-lag"
        );
        let paused = Lag {
            replay_paused: true,
            ..lag
        };
        assert_eq!(
            lag_warnings(&paused, Duration::from_secs(30))[0].code(),
            "replica-replay-paused"
        );
    }
}
