//! The Privileges line: what the create-table probe (src/session.rs) proved, or why it could
//! not, with the fix that fits what the server said, and no borrowed hint when aksara has no
//! diagnosis.

use super::checks::{Checklist, pass};
use super::report::CheckId;
use crate::code::Code;
use crate::creation::{self, FixIn};
use crate::dsn::ConnConfig;
use crate::session::TableCheck;

/// The Privileges line; its time is the Query line's (one message, answered at once).
pub fn privileges_check(
    cfg: &ConnConfig,
    table: Result<(), TableCheck>,
    expects_replica: bool,
    standby: bool,
    list: &mut Checklist<'_>,
) {
    let user = crate::provision::quote_ident(&cfg.user);
    let db = crate::provision::quote_ident(&cfg.dbname);
    let could_not = |why: &str| {
        format!(
            "could not check whether user \"{}\" can create tables: {why}",
            cfg.user
        )
    };
    match table {
        Ok(()) => list.record(pass(
            CheckId::Privileges,
            "can create tables (checked in a rolled-back transaction)".into(),
            None,
        )),
        Err(TableCheck::LockWait(message)) => list.warn(
            CheckId::Privileges,
            None,
            could_not(&message),
            "another session holds a lock that CREATE TABLE waits for (on the schema, or a catalog): look for it in pg_locks and pg_stat_activity, then run the check again".into(),
            None,
        ),
        Err(TableCheck::Interrupted(message)) => list.warn(
            CheckId::Privileges,
            None,
            could_not(&message),
            "the session ended under the check, which says nothing about privileges: see the server log for why, then run the check again".into(),
            None,
        ),
        // Refused, for a reason aksara has no entry for: said as the server said it.
        Err(TableCheck::Refused { words, hint }) => list.warn(
            CheckId::Privileges,
            None,
            format!(
                "user \"{}\" can log in, but the server refused the create-table check: {words}",
                cfg.user
            ),
            hint,
            None,
        ),
        Err(TableCheck::NoSchema {
            message,
            search_path,
        }) => {
            list.creation_fix = creation::creation_fix(None, search_path.as_ref());
            let hint = creation::no_schema_hint(
                search_path.as_ref(),
                &cfg.user,
                &cfg.dbname,
                FixIn::TheDatabase,
            );
            list.warn(
                CheckId::Privileges,
                Some(Code::NoCreationSchema),
                format!(
                    "user \"{}\" can log in but has no schema to create tables in: {message}",
                    cfg.user
                ),
                hint,
                None,
            );
        }
        // A replica key is for reads: a read-only session is what it should get.
        Err(TableCheck::ReadOnly(_)) if expects_replica => list.record(pass(
            CheckId::Privileges,
            "read-only, as a replica key expects (no tables are created here)".into(),
            None,
        )),
        Err(TableCheck::ReadOnly(message)) => list.warn(
            CheckId::Privileges,
            Some(Code::CannotCreateTables),
            format!("user \"{}\" can log in but this session is read-only: {message}", cfg.user),
            // The same session's pg_is_in_recovery() says which of the two it is.
            if standby {
                "the server is a standby (pg_is_in_recovery() is true in this session), which takes no writes: point DATABASE_URL at the primary".to_string()
            } else {
                format!("the server is a primary, so `default_transaction_read_only` is on for this session: set for this database or role, in the server's configuration, or by the URL's `options` (`SELECT setting, source FROM pg_settings WHERE name = 'default_transaction_read_only';` says which); for the first two, as a superuser `ALTER DATABASE {db} SET default_transaction_read_only = off;` / `ALTER ROLE {user} RESET default_transaction_read_only;`")
            },
            None,
        ),
        Err(TableCheck::Denied { message, target }) => {
            list.creation_fix = creation::creation_fix(target.as_ref(), None);
            list.warn(
                CheckId::Privileges,
                Some(Code::CannotCreateTables),
                format!("user \"{}\" can log in but cannot create tables: {message}", cfg.user),
                creation::denied_hint(target.as_ref(), &cfg.user, &cfg.dbname, FixIn::TheDatabase),
                None,
            );
        }
    }
}
