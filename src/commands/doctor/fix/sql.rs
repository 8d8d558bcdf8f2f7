//! The admin-side fixes, each one statement quoted through `provision`'s helpers:
//! `CREATE DATABASE ... OWNER` the URL's user, `ALTER ROLE ... LOGIN`, `ALTER ROLE/DATABASE ...
//! CONNECTION LIMIT`, `ALTER DATABASE ... ALLOW_CONNECTIONS true`, `GRANT CONNECT`, PG15's
//! `GRANT USAGE, CREATE ON SCHEMA public` (or the schema the check found), `GRANT CREATE ON
//! TABLESPACE` for a `default_tablespace` closed to the role, and `CREATE SCHEMA ...
//! AUTHORIZATION` the role when none of the schemas its search_path names exists. Never a DROP,
//! never a password.
//!
//! Before each statement the admin reads the server's real state (the role's LOGIN, the
//! database's existence, the privilege): a diagnosis is a reading of one error message, and a
//! fix acts only when the catalogue agrees. A statement the server refuses is reported with
//! the server's words and what a person must do instead.
//!
//! The connection limit set is `--pool-max × --instances + 5`: what the application's pools
//! open at most, plus five for migrations, a psql session and a deploy's overlap. A limit
//! already that high is not raised: then sessions pile up, and a higher limit only delays it.

use std::time::Duration;

use sqlx::PgConnection;

use super::outcome::Outcome;
use super::{Apply, Fix, FixId};
use crate::adminlogin::AdminSession;
use crate::cli::DoctorArgs;
use crate::code::Code;
use crate::commands::doctor::targets::Target;
use crate::connect;
use crate::creation::CreationFix;
use crate::dsn::ConnString;
use crate::provision::{quote_ident, quote_literal};
use crate::sysenv::ProcessEnvironment;

/// Headroom over the pools for the connection limit (see the module documentation).
const LIMIT_HEADROOM: i64 = 5;

/// The server state a fix acts on, read again by the admin before it acts.
#[derive(Debug, Clone)]
pub enum Precheck {
    DatabaseMissing {
        db: String,
        owner: String,
    },
    RoleNoLogin {
        role: String,
    },
    RoleLimit {
        role: String,
        limit: i64,
    },
    DatabaseLimit {
        db: String,
        limit: i64,
    },
    DatabaseNotAllowing {
        db: String,
    },
    NoConnect {
        db: String,
        role: String,
    },
    /// `schema` is where the check found the role's tables go (`known`), or public, the
    /// default, when it could not tell.
    NoSchemaCreate {
        role: String,
        schema: String,
        known: bool,
    },
    /// The role may create in the schema, but `default_tablespace` sends its tables here.
    NoTablespaceCreate {
        role: String,
        tablespace: String,
    },
    /// The first schema of the role's search_path, which does not exist in the database.
    SchemaMissing {
        schema: String,
        owner: String,
    },
}

pub struct SqlFix {
    pub statement: String,
    /// The database to run it in, when not the admin's maintenance database.
    pub run_in: Option<String>,
    pub precheck: Precheck,
}

pub fn plan(
    index: usize,
    target: &Target,
    wanted: &[Code],
    // Where the Privileges line found the role's tables go (`Report::creation_fix`).
    creation_fix: Option<&CreationFix>,
    args: &DoctorArgs,
    env: &ProcessEnvironment,
) -> Vec<Fix> {
    let Ok(cfg) = ConnString::parse(&target.raw).and_then(|cs| cs.resolve(env)) else {
        return Vec::new();
    };
    let (user, db) = (cfg.user.clone(), cfg.dbname.clone());
    let (qu, qd) = (quote_ident(&user), quote_ident(&db));
    let limit = i64::from(args.pool_max) * i64::from(args.instances) + LIMIT_HEADROOM;
    let mut fixes = Vec::new();
    for code in wanted {
        let (id, statement, run_in, precheck) = match code {
            Code::DatabaseMissing => (
                FixId::CreateDatabase,
                format!("CREATE DATABASE {qd} OWNER {qu};"),
                None,
                Precheck::DatabaseMissing {
                    db: db.clone(),
                    owner: user.clone(),
                },
            ),
            Code::RoleCannotLogin => (
                FixId::RoleLogin,
                format!("ALTER ROLE {qu} LOGIN;"),
                None,
                Precheck::RoleNoLogin { role: user.clone() },
            ),
            Code::RoleConnectionLimit => (
                FixId::RoleConnectionLimit,
                format!("ALTER ROLE {qu} CONNECTION LIMIT {limit};"),
                None,
                Precheck::RoleLimit {
                    role: user.clone(),
                    limit,
                },
            ),
            Code::DatabaseConnectionLimit => (
                FixId::DatabaseConnectionLimit,
                format!("ALTER DATABASE {qd} CONNECTION LIMIT {limit};"),
                None,
                Precheck::DatabaseLimit {
                    db: db.clone(),
                    limit,
                },
            ),
            // template0 refuses connections on purpose: it must stay unchanged.
            Code::DatabaseNotAccepting if db != "template0" => (
                FixId::AllowConnections,
                format!("ALTER DATABASE {qd} ALLOW_CONNECTIONS true;"),
                None,
                Precheck::DatabaseNotAllowing { db: db.clone() },
            ),
            Code::PermissionDenied => (
                FixId::GrantConnect,
                format!("GRANT CONNECT ON DATABASE {qd} TO {qu};"),
                None,
                Precheck::NoConnect {
                    db: db.clone(),
                    role: user.clone(),
                },
            ),
            Code::CannotCreateTables | Code::NoCreationSchema => {
                match creation_statement(*code, creation_fix, &user, &db) {
                    Some(planned) => planned,
                    None => continue,
                }
            }
            _ => continue,
        };
        fixes.push(Fix {
            id,
            code: *code,
            target: index,
            action: match &run_in {
                Some(db) => format!("{statement}  (connected to database {})", quote_ident(db)),
                None => statement.clone(),
            },
            apply: Apply::Sql(SqlFix {
                statement,
                run_in,
                precheck,
            }),
        });
    }
    fixes
}

/// The statement for a role with no place for its tables, from what the Privileges line's
/// failure path found (`creation_fix`); None when it found nothing a statement can fix.
fn creation_statement(
    code: Code,
    creation_fix: Option<&CreationFix>,
    user: &str,
    db: &str,
) -> Option<(FixId, String, Option<String>, Precheck)> {
    let qu = quote_ident(user);
    let planned = match code {
        // A tablespace is not in any one database: the grant runs where the admin is.
        Code::CannotCreateTables
            if let Some(CreationFix::GrantTablespace(tablespace)) = creation_fix =>
        {
            (
                FixId::GrantTablespaceCreate,
                format!(
                    "GRANT CREATE ON TABLESPACE {} TO {qu};",
                    quote_ident(tablespace)
                ),
                None,
                Precheck::NoTablespaceCreate {
                    role: user.to_string(),
                    tablespace: tablespace.clone(),
                },
            )
        }
        Code::NoCreationSchema if let Some(CreationFix::CreateSchema(schema)) = creation_fix => (
            FixId::CreateSchema,
            format!("CREATE SCHEMA {} AUTHORIZATION {qu};", quote_ident(schema)),
            Some(db.to_string()),
            Precheck::SchemaMissing {
                schema: schema.clone(),
                owner: user.to_string(),
            },
        ),
        Code::CannotCreateTables | Code::NoCreationSchema => {
            // No schema known for no-creation-schema: its hint names what to create.
            let (schema, known) = match (creation_fix, code) {
                (Some(CreationFix::GrantSchema(schema)), _) => (schema.to_string(), true),
                (None, Code::CannotCreateTables) => ("public".to_string(), false),
                _ => return None,
            };
            (
                FixId::GrantSchemaCreate,
                format!(
                    "GRANT USAGE, CREATE ON SCHEMA {} TO {qu};",
                    quote_ident(&schema)
                ),
                Some(db.to_string()),
                Precheck::NoSchemaCreate {
                    role: user.to_string(),
                    schema,
                    known,
                },
            )
        }
        _ => return None,
    };
    Some(planned)
}

/// Check the state, run the statement, say what happened.
pub async fn apply(fix: &SqlFix, admin: &mut AdminSession, args: &DoctorArgs) -> Outcome {
    let bound = Duration::from_secs(args.connect_timeout.max(5));
    let who = admin.cfg.user.clone();
    let Some(db) = &fix.run_in else {
        return check_and_run(fix, &mut admin.connected.conn, &who, bound).await;
    };
    let mut cfg = admin.cfg.clone();
    cfg.dbname = db.clone();
    match connect::connect(&cfg, bound).await {
        Ok(mut c) => {
            let outcome = check_and_run(fix, &mut c.conn, &who, bound).await;
            connect::close(c.conn).await;
            outcome
        }
        Err(f) => Outcome::not_applied(format!(
            "the admin \"{who}\" cannot connect to database \"{db}\": {f}; run `{}` there as a superuser",
            fix.statement
        )),
    }
}

async fn check_and_run(
    fix: &SqlFix,
    conn: &mut PgConnection,
    who: &str,
    bound: Duration,
) -> Outcome {
    match bounded(bound, precheck(conn, &fix.precheck)).await {
        Err(e) => Outcome::not_applied(refused(
            &e,
            &fix.statement,
            who,
            "reading the server's state",
        )),
        Ok(Some(why)) => Outcome::not_applied(why),
        Ok(None) => match bounded(
            bound,
            sqlx::raw_sql(sqlx::AssertSqlSafe(fix.statement.clone())).execute(&mut *conn),
        )
        .await
        {
            Ok(_) => Outcome::done(format!("ran `{}` as \"{who}\"", fix.statement)),
            Err(e) => Outcome::not_applied(refused(&e, &fix.statement, who, "running it")),
        },
    }
}

async fn bounded<T>(
    bound: Duration,
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(bound, work).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// `None` when the server is in the state the fix is for; else why it does not act.
async fn precheck(
    conn: &mut PgConnection,
    check: &Precheck,
) -> Result<Option<String>, sqlx::Error> {
    Ok(match check {
        Precheck::DatabaseMissing { db, owner } => {
            let (exists, owner_exists): (bool, bool) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1), EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)",
            )
            .bind(db)
            .bind(owner)
            .fetch_one(&mut *conn)
            .await?;
            if exists {
                Some(format!(
                    "the database \"{db}\" exists now: nothing to create"
                ))
            } else if !owner_exists {
                Some(format!(
                    "the role \"{owner}\" does not exist either, and --fix sets no passwords: `aksara dbsetup --db-name {db} --db-user {owner}` creates both"
                ))
            } else {
                None
            }
        }
        Precheck::RoleNoLogin { role } => role_no_login(conn, role).await?,
        Precheck::RoleLimit { role, limit } => {
            let row: Option<(i32, i64)> = sqlx::query_as(
                "SELECT rolconnlimit, (SELECT count(*) FROM pg_stat_activity WHERE usename = $1) FROM pg_roles WHERE rolname = $1",
            )
            .bind(role)
            .fetch_optional(&mut *conn)
            .await?;
            limit_verdict(
                &format!("role \"{role}\""),
                row,
                *limit,
                "SELECT pid, state, backend_start FROM pg_stat_activity WHERE usename = ",
                role,
            )
        }
        Precheck::DatabaseLimit { db, limit } => {
            let row: Option<(i32, i64)> = sqlx::query_as(
                "SELECT datconnlimit, (SELECT count(*) FROM pg_stat_activity WHERE datname = $1) FROM pg_database WHERE datname = $1",
            )
            .bind(db)
            .fetch_optional(&mut *conn)
            .await?;
            limit_verdict(
                &format!("database \"{db}\""),
                row,
                *limit,
                "SELECT pid, state, backend_start FROM pg_stat_activity WHERE datname = ",
                db,
            )
        }
        Precheck::DatabaseNotAllowing { db } => {
            let allowed: Option<bool> =
                sqlx::query_scalar("SELECT datallowconn FROM pg_database WHERE datname = $1")
                    .bind(db)
                    .fetch_optional(&mut *conn)
                    .await?;
            match allowed {
                None => Some(format!("the database \"{db}\" does not exist")),
                Some(true) => Some(format!("the database \"{db}\" allows connections already")),
                Some(false) => None,
            }
        }
        Precheck::NoConnect { db, role } => {
            let row: Option<bool> = sqlx::query_scalar(
                "SELECT has_database_privilege(r.oid, d.oid, 'CONNECT') FROM pg_roles r, pg_database d WHERE r.rolname = $1 AND d.datname = $2",
            )
            .bind(role)
            .bind(db)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => Some(format!(
                    "the role \"{role}\" or the database \"{db}\" does not exist"
                )),
                Some(true) => Some(format!(
                    "\"{role}\" has CONNECT on \"{db}\" already: the refusal is not about that privilege; read its message above"
                )),
                Some(false) => None,
            }
        }
        Precheck::NoSchemaCreate {
            role,
            schema,
            known,
        } => no_schema_create(conn, role, schema, *known).await?,
        Precheck::NoTablespaceCreate { role, tablespace } => {
            no_tablespace_create(conn, role, tablespace).await?
        }
        Precheck::SchemaMissing { schema, owner } => {
            let (exists, owner_exists): (bool, bool) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)",
            )
            .bind(schema)
            .bind(owner)
            .fetch_one(&mut *conn)
            .await?;
            if exists {
                Some(format!(
                    "schema {} exists now in this database: nothing to create; see the hint above",
                    quote_ident(schema)
                ))
            } else if !owner_exists {
                Some(format!("the role \"{owner}\" does not exist"))
            } else {
                None
            }
        }
    })
}

/// `None` when `role` may not create in `schema` (and, for the default guess public, its
/// tables would not go elsewhere), the state `GRANT USAGE, CREATE ON SCHEMA` fixes.
async fn no_schema_create(
    conn: &mut PgConnection,
    role: &str,
    schema: &str,
    known: bool,
) -> Result<Option<String>, sqlx::Error> {
    // (CREATE on the schema; when it is only the default guess, public, whether the
    // role's tables may go elsewhere: a search_path set for the role or this database,
    // or by the server's configuration, or a schema named after the role, which the
    // default "$user" puts first.)
    let row: Option<(bool, bool)> = sqlx::query_as(
        "SELECT has_schema_privilege(r.oid, n.oid, 'CREATE'), \
         EXISTS (SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) c \
           WHERE c LIKE 'search_path=%' AND s.setrole IN (r.oid, 0) \
           AND s.setdatabase IN ((SELECT oid FROM pg_database WHERE datname = current_database()), 0)) \
         OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = r.rolname) \
         OR (SELECT source FROM pg_settings WHERE name = 'search_path') = 'configuration file' \
         FROM pg_roles r, pg_namespace n WHERE r.rolname = $1 AND n.nspname = $2",
    )
    .bind(role)
    .bind(schema)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None => Some(format!(
            "there is no schema {schema} (or no role \"{role}\") in this database: create the schema the app uses, owned by \"{role}\""
        )),
        Some((true, _)) => Some(format!(
            "\"{role}\" may create in schema {schema} already, so this grant would not help: the refusal is elsewhere (a read-only session, another schema, a tablespace); see the hint above"
        )),
        Some((false, true)) if !known => Some(format!(
            "the tables of \"{role}\" may not go to schema public (a search_path is set for it, this database or the server, or a schema has its name), so a grant on public may not help: see the hint above for the schema the server chose"
        )),
        Some((false, _)) => None,
    })
}

/// `None` when `role` may not create in `tablespace`, the state `GRANT CREATE ON TABLESPACE`
/// fixes.
async fn no_tablespace_create(
    conn: &mut PgConnection,
    role: &str,
    tablespace: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<bool> = sqlx::query_scalar(
        "SELECT has_tablespace_privilege(r.oid, t.oid, 'CREATE') FROM pg_roles r, pg_tablespace t WHERE r.rolname = $1 AND t.spcname = $2",
    )
    .bind(role)
    .bind(tablespace)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None => Some(format!(
            "there is no tablespace {} (or no role \"{role}\"): clear default_tablespace where it is set (`SELECT setting, source FROM pg_settings WHERE name = 'default_tablespace';` says where)",
            quote_ident(tablespace)
        )),
        Some(true) => Some(format!(
            "\"{role}\" may create in tablespace {} already, so this grant would not help: the refusal is elsewhere; see the hint above",
            quote_ident(tablespace)
        )),
        Some(false) => None,
    })
}

/// `None` when `role` is NOLOGIN and an ordinary role, the one state `ALTER ROLE ... LOGIN` fixes.
async fn role_no_login(conn: &mut PgConnection, role: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT rolcanlogin, rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls OR left(rolname, 3) = 'pg_' FROM pg_roles WHERE rolname = $1",
        )
        .bind(role)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        None => Some(format!(
            "the role \"{role}\" does not exist: `aksara dbsetup` creates it"
        )),
        Some((true, _)) => Some(format!(
            "the role \"{role}\" may log in already (LOGIN): the refusal has another cause"
        )),
        // A NOLOGIN role with admin rights (or a predefined pg_* role) is kept from
        // logging in on purpose: letting the app in as it is not a fix.
        Some((false, true)) => Some(format!(
            "the role \"{role}\" has more rights than an app needs (SUPERUSER, CREATEROLE, REPLICATION, BYPASSRLS, or a predefined pg_ role), so --fix does not let it log in: point the URL at the app's own role (`aksara dbsetup` creates one)"
        )),
        Some((false, false)) => None,
    })
}

fn limit_verdict(
    what: &str,
    row: Option<(i32, i64)>,
    limit: i64,
    sessions_query: &str,
    name: &str,
) -> Option<String> {
    let (current, open) = match row {
        None => return Some(format!("the {what} does not exist")),
        Some((current, open)) => (i64::from(current), open),
    };
    if current < 0 {
        return Some(format!("the {what} has no connection limit now"));
    }
    if current >= limit {
        return Some(format!(
            "the {what}'s limit {current} already covers the pools (--pool-max × --instances + {LIMIT_HEADROOM} = {limit}) and {open} sessions are open: a higher limit would only delay the next refusal; find the idle ones (`{sessions_query}{};`) and close them, or lower the pool size",
            quote_literal(name)
        ));
    }
    None
}

/// A refused statement: the server's words, and what a person must do instead.
fn refused(e: &sqlx::Error, statement: &str, who: &str, doing: &str) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let sqlstate = db.code().map(|c| c.to_string()).unwrap_or_default();
            let instead = if sqlstate == "42501" {
                format!(
                    "the admin \"{who}\" lacks the right: run `{statement}` as a superuser, or set PGUSER and PGPASSWORD for one and run `aksara doctor --fix` again"
                )
            } else {
                format!("run `{statement}` as a superuser once the cause is fixed")
            };
            format!(
                "the server refused {doing} as \"{who}\": {} (SQLSTATE {sqlstate}); {instead}",
                db.message()
            )
        }
        sqlx::Error::PoolTimedOut => format!(
            "no answer from the server while {doing}: another session may hold a lock; run `{statement}` as a superuser when it is free"
        ),
        other => format!("{doing} as \"{who}\" failed: {other}; run `{statement}` as a superuser"),
    }
}
