//! Turning names into SQL, safely: identifier rules checked before anything is touched,
//! every identifier quoted, and passwords sent only as a SCRAM-SHA-256 verifier computed here
//! (as psql's `\password` does), so the plaintext never reaches the server or its statement log.
//! The plan is pure data that can be shown (`****` for the verifier) before it is run.

use std::fmt;

/// PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated with only a NOTICE,
/// which sqlx does not surface, so the check has to happen here.
pub const MAX_IDENT_BYTES: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Database,
    Role,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Database => "database",
            NameKind::Role => "user",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty(NameKind),
    TooLong {
        kind: NameKind,
        name: String,
        bytes: usize,
    },
    Nul(NameKind),
    ReservedPrefix {
        name: String,
    },
    /// `public` and `none` mean something else wherever a role is named.
    Reserved {
        name: String,
    },
    /// SASLprep rejects it, so sqlx cannot log in as this user (see [`check_scram_user`]).
    NotSaslPrep {
        name: String,
        reason: String,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty(kind) => write!(f, "the {kind} name is empty"),
            NameError::TooLong { kind, name, bytes } => write!(
                f,
                "the {kind} name `{name}` is {bytes} bytes long; PostgreSQL names are at most {MAX_IDENT_BYTES} bytes (longer ones are silently truncated)"
            ),
            NameError::Nul(kind) => write!(
                f,
                "the {kind} name contains a NUL character, which PostgreSQL names cannot hold"
            ),
            NameError::ReservedPrefix { name } => {
                write!(
                    f,
                    "the user name `{name}` starts with `pg_`, which PostgreSQL reserves for its own roles"
                )
            }
            NameError::Reserved { name } => {
                write!(f, "the user name `{name}` is reserved by PostgreSQL")
            }
            NameError::NotSaslPrep { name, reason } => write!(
                f,
                "the user name `{name}` cannot log in with a password through sqlx, which aksara verifies with: its SCRAM login rejects the name ({reason})"
            ),
        }
    }
}

impl NameError {
    pub fn hint(&self) -> String {
        match self {
            NameError::Empty(NameKind::Database) => "pass --db-name NAME".into(),
            NameError::Empty(NameKind::Role) => "pass --db-user NAME".into(),
            NameError::TooLong { .. } => {
                format!("choose a name of at most {MAX_IDENT_BYTES} bytes")
            }
            NameError::Nul(_) => "remove the NUL character from the name".into(),
            NameError::ReservedPrefix { .. } => {
                "choose a user name that does not start with `pg_`".into()
            }
            NameError::Reserved { .. } => "choose another user name with --db-user NAME".into(),
            NameError::NotSaslPrep { .. } => "choose a user name without control characters, emoji or mixed-direction text (--db-user NAME)".into(),
        }
    }
}

/// Role names the grammar takes for something else, even quoted (`CREATE ROLE "public"`
/// fails with "role name \"public\" is reserved").
const RESERVED_ROLE_NAMES: [&str; 2] = ["public", "none"];

pub fn validate_name(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(kind));
    }
    if name.contains('\0') {
        return Err(NameError::Nul(kind));
    }
    if name.len() > MAX_IDENT_BYTES {
        return Err(NameError::TooLong {
            kind,
            name: name.to_string(),
            bytes: name.len(),
        });
    }
    if kind == NameKind::Role && name.starts_with("pg_") {
        return Err(NameError::ReservedPrefix {
            name: name.to_string(),
        });
    }
    if kind == NameKind::Role && RESERVED_ROLE_NAMES.contains(&name) {
        return Err(NameError::Reserved {
            name: name.to_string(),
        });
    }
    if kind == NameKind::Role
        && let Err(e) = check_scram_user(name)
    {
        return Err(NameError::NotSaslPrep {
            name: name.to_string(),
            reason: e.to_string(),
        });
    }
    Ok(())
}

/// Always double-quote (quoted names are taken literally, so `My-App.db` stays itself), with
/// embedded quotes doubled: libpq's `PQescapeIdentifier`, as postgres-protocol implements it.
pub fn quote_ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// A string literal, safe whatever standard_conforming_strings says: libpq's
/// `PQescapeLiteral`, as postgres-protocol implements it (a backslash makes it ` E'...'`).
pub fn quote_literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

/// The default database name for a project folder: lower-case, `_` for anything that would
/// need quoting, never starting with a digit, at most 63 bytes.
pub fn default_db_name(folder: &str) -> String {
    let mut name: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name = name.trim_matches('_').to_string();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    if name.is_empty() {
        name = "app".into();
    }
    if name.as_bytes()[0].is_ascii_digit() {
        name.insert_str(0, "db_");
    }
    name.truncate(MAX_IDENT_BYTES);
    name
}

/// The default application role for a database: the database name itself, unless that
/// would start with the reserved `pg_`.
pub fn default_role_name(db: &str) -> String {
    if db.starts_with("pg_") || RESERVED_ROLE_NAMES.contains(&db) {
        let mut name = format!("app_{db}");
        // Whole characters only: `String::truncate` panics inside one.
        let mut end = MAX_IDENT_BYTES.min(name.len());
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
        name
    } else {
        db.to_string()
    }
}

/// Whether sqlx can log in as this user with SCRAM: it runs SASLprep on `n=<user>` and gives
/// up on an error (libpq and the server ignore the name there). So a control character, a
/// code point unassigned in Unicode 3.2 (most emoji) or right-to-left text after the `n=`
/// makes every sqlx login as this user fail.
pub fn check_scram_user(name: &str) -> Result<(), stringprep::Error> {
    stringprep::saslprep(&format!("n={name}")).map(|_| ())
}

/// Whether sqlx can log in with this password: it runs SASLprep on it and gives up on an
/// error, where libpq and the server fall back to the raw bytes. The error says nothing about
/// the password itself (it would show the character).
pub fn scram_password_usable(password: &str) -> bool {
    stringprep::saslprep(password).is_ok()
}

/// The SCRAM-SHA-256 verifier for a password (random salt, 4096 iterations, SASLprep), as
/// libpq's PQencryptPasswordConn computes it. The server stores it as-is.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// A new password: 32 characters from the OS's secure random source, URL-safe (A-Z a-z 0-9 - _),
/// so it never needs percent-encoding in a URL or quoting in a .env.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    // 64 symbols: taking 6 bits of each byte keeps the distribution uniform.
    bytes
        .iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect()
}

/// One statement of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateRole {
        role: String,
        verifier: String,
    },
    SetPassword {
        role: String,
        verifier: String,
    },
    /// A non-superuser admin must be a member of the owner role to create a database for it (PG15).
    GrantMembership {
        role: String,
    },
    CreateDatabase {
        db: String,
        owner: String,
    },
    /// For a database that already exists and is owned by someone else: let the role create
    /// tables in schema public (run while connected to that database).
    GrantSchema {
        db: String,
        role: String,
    },
    GrantConnect {
        db: String,
        role: String,
    },
}

impl Step {
    /// The SQL to run; `redact` replaces the verifier with `****` for display.
    pub fn sql(&self, redact: bool) -> String {
        let secret = |v: &str| {
            if redact {
                "'****'".to_string()
            } else {
                quote_literal(v)
            }
        };
        match self {
            Step::CreateRole { role, verifier } => {
                format!(
                    "CREATE ROLE {} LOGIN PASSWORD {}",
                    quote_ident(role),
                    secret(verifier)
                )
            }
            Step::SetPassword { role, verifier } => {
                format!(
                    "ALTER ROLE {} WITH LOGIN PASSWORD {}",
                    quote_ident(role),
                    secret(verifier)
                )
            }
            Step::GrantMembership { role } => {
                format!("GRANT {} TO CURRENT_USER", quote_ident(role))
            }
            Step::CreateDatabase { db, owner } => {
                format!(
                    "CREATE DATABASE {} OWNER {}",
                    quote_ident(db),
                    quote_ident(owner)
                )
            }
            Step::GrantSchema { role, .. } => {
                format!(
                    "GRANT USAGE, CREATE ON SCHEMA public TO {}",
                    quote_ident(role)
                )
            }
            Step::GrantConnect { db, role } => {
                format!(
                    "GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}",
                    quote_ident(db),
                    quote_ident(role)
                )
            }
        }
    }

    /// The database the statement must run in, when it is not the admin's maintenance database.
    pub fn run_in(&self) -> Option<&str> {
        match self {
            Step::GrantSchema { db, .. } => Some(db),
            _ => None,
        }
    }
}

/// What the admin role may do (pg_roles of current_user).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminRights {
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
}

/// What exists on the server already.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub database_owner: Option<String>,
    pub role_exists: bool,
    /// Whether the admin (non-superuser) is already a member of the role.
    pub admin_is_member: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordAction {
    /// Create with / set this password.
    Set(String),
    /// The role keeps its password (the .env already holds one that works).
    Keep,
}

/// The statements that take the server from `existing` to "db owned by (or usable by) role,
/// role can log in with the password".
pub fn plan(
    db: &str,
    role: &str,
    password: &PasswordAction,
    existing: &Existing,
    admin: AdminRights,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let verifier = || match password {
        PasswordAction::Set(p) => Some(scram_verifier(p)),
        PasswordAction::Keep => None,
    };
    if !existing.role_exists {
        let verifier = verifier().unwrap_or_else(|| scram_verifier(&generate_password()));
        steps.push(Step::CreateRole {
            role: role.into(),
            verifier,
        });
    } else if let Some(verifier) = verifier() {
        steps.push(Step::SetPassword {
            role: role.into(),
            verifier,
        });
    }
    match &existing.database_owner {
        None => {
            if !admin.superuser && !existing.admin_is_member {
                steps.push(Step::GrantMembership { role: role.into() });
            }
            steps.push(Step::CreateDatabase {
                db: db.into(),
                owner: role.into(),
            });
        }
        Some(owner) if owner == role => {}
        Some(_) => {
            steps.push(Step::GrantConnect {
                db: db.into(),
                role: role.into(),
            });
            steps.push(Step::GrantSchema {
                db: db.into(),
                role: role.into(),
            });
        }
    }
    steps
}

/// Privileges missing for a plan, each with the statement that grants it.
pub fn missing_rights(
    steps: &[Step],
    admin: AdminRights,
    admin_name: &str,
) -> Vec<(String, String)> {
    if admin.superuser {
        return Vec::new();
    }
    let mut missing = Vec::new();
    let needs_createdb = steps
        .iter()
        .any(|s| matches!(s, Step::CreateDatabase { .. }));
    let needs_createrole = steps.iter().any(|s| {
        matches!(
            s,
            Step::CreateRole { .. } | Step::SetPassword { .. } | Step::GrantMembership { .. }
        )
    });
    if needs_createdb && !admin.createdb {
        missing.push((
            "CREATEDB".to_string(),
            format!("ALTER ROLE {} CREATEDB;", quote_ident(admin_name)),
        ));
    }
    if needs_createrole && !admin.createrole {
        missing.push((
            "CREATEROLE".to_string(),
            format!("ALTER ROLE {} CREATEROLE;", quote_ident(admin_name)),
        ));
    }
    missing
}

/// What an existing role may do beyond logging in (pg_roles), and the roles it is a member of
/// that grant more (directly or through other roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAttributes {
    pub superuser: bool,
    pub createrole: bool,
    pub createdb: bool,
    pub replication: bool,
    pub bypassrls: bool,
    /// Roles it belongs to that are superusers, have CREATEROLE, REPLICATION or BYPASSRLS, or
    /// are the predefined roles that read or write server files or run server programs: with
    /// `SET ROLE` (or inheritance) the app would have their rights.
    pub powerful_memberships: Vec<String>,
    /// When its `VALID UNTIL` is in the past: no password logs in as it, a new one included
    /// (`ALTER ROLE … PASSWORD` keeps the date), and the server says only "password
    /// authentication failed".
    pub password_expired_at: Option<String>,
}

impl RoleAttributes {
    /// The rights the app's role should not have, as PostgreSQL spells them. CREATEDB is not
    /// among them: it creates databases the role owns and nothing else, and test runners
    /// need it for their test databases.
    pub fn excess_rights(&self) -> Vec<String> {
        let mut rights: Vec<String> = [
            (self.superuser, "SUPERUSER"),
            (self.createrole, "CREATEROLE"),
            (self.replication, "REPLICATION"),
            (self.bypassrls, "BYPASSRLS"),
        ]
        .into_iter()
        .filter(|(has, _)| *has)
        .map(|(_, name)| name.to_string())
        .collect();
        rights.extend(
            self.powerful_memberships
                .iter()
                .map(|role| format!("member of {}", quote_ident(role))),
        );
        rights
    }
}

/// The attributes of the role `role`, or None when it does not exist.
pub async fn role_attributes(
    conn: &mut sqlx::PgConnection,
    role: &str,
) -> Result<Option<RoleAttributes>, sqlx::Error> {
    use sqlx::Row as _;
    let row = sqlx::query(
        "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, \
         ARRAY(SELECT b.rolname::text FROM pg_roles b \
               WHERE b.oid <> r.oid AND pg_has_role(r.oid, b.oid, 'MEMBER') \
                 AND (b.rolsuper OR b.rolcreaterole OR b.rolreplication OR b.rolbypassrls \
                      OR b.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program')) \
               ORDER BY b.rolname), \
         CASE WHEN r.rolvaliduntil < now() THEN r.rolvaliduntil::text END \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(RoleAttributes {
            superuser: row.try_get(0)?,
            createrole: row.try_get(1)?,
            createdb: row.try_get(2)?,
            replication: row.try_get(3)?,
            bypassrls: row.try_get(4)?,
            powerful_memberships: row.try_get(5)?,
            password_expired_at: row.try_get(6)?,
        })
    })
    .transpose()
}

/// What the user allowed with `--force` (each refusal that can be overridden names its word).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forced {
    /// `--force privileged-role`: use an existing role with more rights than the app needs.
    pub privileged_role: bool,
    /// `--force postgres-database`: put the app in the `postgres` maintenance database.
    pub postgres_database: bool,
}

/// A setup aksara will not run, found before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `--db-user` is the role the admin connection logs in as: setting its password would
    /// lock the admin out and hand the app the admin's rights. Cannot be forced.
    AdminRole { role: String },
    /// An existing role with more rights than an application needs.
    PrivilegedRole { role: String, rights: Vec<String> },
    /// template0/template1: whatever is granted there is copied into every new database.
    /// Cannot be forced.
    TemplateDatabase { db: String },
    /// `postgres`, the maintenance database tools and admins connect to.
    MaintenanceDatabase { db: String },
    /// An existing role whose password expired (`VALID UNTIL`): the app could not log in with
    /// any password, and a new one would be set and lost. Lifting the date is the admin's
    /// decision (a rotation policy may have set it), so it is not done for them.
    ExpiredPassword { role: String, until: String },
}

impl Refusal {
    /// The code for the catalogue.
    pub fn code(&self) -> crate::code::Code {
        use crate::code::Code;
        match self {
            Refusal::AdminRole { .. } => Code::AppRoleIsAdmin,
            Refusal::PrivilegedRole { .. } => Code::AppRolePrivileged,
            Refusal::TemplateDatabase { .. } => Code::AppDatabaseTemplate,
            Refusal::MaintenanceDatabase { .. } => Code::AppDatabaseMaintenance,
            Refusal::ExpiredPassword { .. } => Code::AppRolePasswordExpired,
        }
    }

    /// The word `--force` takes to override it, when it can be.
    pub fn forced_by(&self) -> Option<&'static str> {
        match self {
            Refusal::PrivilegedRole { .. } => Some("privileged-role"),
            Refusal::MaintenanceDatabase { .. } => Some("postgres-database"),
            Refusal::AdminRole { .. }
            | Refusal::TemplateDatabase { .. }
            | Refusal::ExpiredPassword { .. } => None,
        }
    }

    pub fn hint(&self) -> String {
        let choose = match self {
            Refusal::ExpiredPassword { role, .. } => {
                return format!(
                    "as a superuser, lift the date: `ALTER ROLE {} VALID UNTIL 'infinity';` (or a later date), then run dbsetup again; or choose another user name with --db-user NAME",
                    quote_ident(role)
                );
            }
            Refusal::AdminRole { .. } | Refusal::PrivilegedRole { .. } => {
                "choose another user name with --db-user NAME (aksara creates it with only LOGIN)"
            }
            Refusal::TemplateDatabase { .. } | Refusal::MaintenanceDatabase { .. } => {
                "choose another database name with --db-name NAME"
            }
        };
        match self.forced_by() {
            Some(word) => format!("{choose}; to use it anyway, pass --force {word}"),
            None => choose.to_string(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::sanitize::for_terminal as shown;
        match self {
            Refusal::AdminRole { role } => write!(
                f,
                "the user `{}` is the role the admin connection logs in as: aksara would set its password, locking the admin out, and the app would run with the admin's rights",
                shown(role)
            ),
            Refusal::PrivilegedRole { role, rights } => write!(
                f,
                "the existing user `{}` has more rights than an application needs ({}): the app's URL would carry them",
                shown(role),
                shown(&rights.join(", "))
            ),
            Refusal::TemplateDatabase { db } => write!(
                f,
                "`{}` is a template database: what aksara grants there would be copied into every database created afterwards",
                shown(db)
            ),
            Refusal::MaintenanceDatabase { db } => write!(
                f,
                "`{}` is the maintenance database that tools and admins connect to, not a place for an application's tables",
                shown(db)
            ),
            Refusal::ExpiredPassword { role, until } => write!(
                f,
                "the password of the existing user `{}` expired at {} (VALID UNTIL): no password logs in as it, and a new one keeps that date",
                shown(role),
                shown(until)
            ),
        }
    }
}

/// The databases that are refused as `--db-name`.
const TEMPLATE_DATABASES: [&str; 2] = ["template0", "template1"];
const MAINTENANCE_DATABASE: &str = "postgres";

/// Whether aksara may set up `db` for `role`, asked before any statement runs. `admin` is
/// the admin connection's `current_user`, `existing` the role's attributes when it exists
/// ([`role_attributes`]). Names are compared exactly, as PostgreSQL does for quoted names.
pub fn check_targets(
    admin: &str,
    role: &str,
    existing: Option<&RoleAttributes>,
    db: &str,
    forced: Forced,
) -> Result<(), Refusal> {
    if role == admin {
        return Err(Refusal::AdminRole { role: role.into() });
    }
    if TEMPLATE_DATABASES.contains(&db) {
        return Err(Refusal::TemplateDatabase { db: db.into() });
    }
    if db == MAINTENANCE_DATABASE && !forced.postgres_database {
        return Err(Refusal::MaintenanceDatabase { db: db.into() });
    }
    if let Some(until) = existing.and_then(|a| a.password_expired_at.clone()) {
        return Err(Refusal::ExpiredPassword {
            role: role.into(),
            until,
        });
    }
    if let Some(attributes) = existing {
        let rights = attributes.excess_rights();
        if !rights.is_empty() && !forced.privileged_role {
            return Err(Refusal::PrivilegedRole {
                role: role.into(),
                rights,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_runs() {
        assert_eq!(
            validate_name(NameKind::Database, ""),
            Err(NameError::Empty(NameKind::Database))
        );
        assert!(matches!(
            validate_name(NameKind::Database, &"a".repeat(64)),
            Err(NameError::TooLong { bytes: 64, .. })
        ));
        assert!(validate_name(NameKind::Database, &"a".repeat(63)).is_ok());
        // 32 two-byte characters: 64 bytes although only 32 characters.
        assert!(matches!(
            validate_name(NameKind::Role, &"é".repeat(32)),
            Err(NameError::TooLong { bytes: 64, .. })
        ));
        assert_eq!(
            validate_name(NameKind::Role, "a\0b"),
            Err(NameError::Nul(NameKind::Role))
        );
        assert!(matches!(
            validate_name(NameKind::Role, "pg_app"),
            Err(NameError::ReservedPrefix { .. })
        ));
        assert!(validate_name(NameKind::Database, "pg_app").is_ok());
        let msg = validate_name(NameKind::Database, &"x".repeat(70))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("at most 63 bytes"), "{msg}");
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("My-App.db"), "\"My-App.db\"");
        assert_eq!(
            quote_ident("x\"; DROP DATABASE y; --"),
            "\"x\"\"; DROP DATABASE y; --\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
        // Safe even with standard_conforming_strings off.
        assert_eq!(quote_literal("a\\'b"), " E'a\\\\''b'");
    }

    #[test]
    fn default_names_are_valid_identifiers() {
        assert_eq!(default_db_name("My Shop-API"), "my_shop_api");
        assert_eq!(default_db_name("2024 app"), "db_2024_app");
        assert_eq!(default_db_name("---"), "app");
        assert_eq!(default_db_name(&"x".repeat(100)).len(), 63);
        assert_eq!(default_role_name("pg_thing"), "app_pg_thing");
        assert_eq!(default_role_name("shop"), "shop");
        assert_eq!(default_role_name("public"), "app_public");
        assert_eq!(default_role_name("none"), "app_none");
        // Regression: cutting a prefixed 62-byte name to 63 bytes split a two-byte character
        // and panicked.
        let db = format!("pg_x{}", "é".repeat(29));
        assert_eq!(db.len(), 62);
        let role = default_role_name(&db);
        assert_eq!(role, format!("app_pg_x{}", "é".repeat(27)));
        assert_eq!(validate_name(NameKind::Role, &role), Ok(()));
        for db in ["public", "none", "pg_", &"é".repeat(31)] {
            assert_eq!(
                validate_name(NameKind::Role, &default_role_name(db)),
                Ok(()),
                "{db}"
            );
        }
        assert_eq!(
            validate_name(NameKind::Role, "public"),
            Err(NameError::Reserved {
                name: "public".into()
            })
        );
        assert_eq!(validate_name(NameKind::Database, "public"), Ok(()));
    }

    #[test]
    fn names_and_passwords_sqlx_cannot_log_in_with_are_found() {
        for ok in ["app", "ünï €ode 象", "a'b\"c\\d e", "x y"] {
            assert_eq!(validate_name(NameKind::Role, ok), Ok(()), "{ok}");
            assert!(scram_password_usable(ok), "{ok}");
        }
        // A control character, an emoji (unassigned in Unicode 3.2), right-to-left text
        // after the `n=` sqlx puts in front of the name.
        for bad in ["two\nlines", "tab\t", "elephant 🐘", "עברית"] {
            assert!(
                matches!(
                    validate_name(NameKind::Role, bad),
                    Err(NameError::NotSaslPrep { .. })
                ),
                "{bad}"
            );
            assert_eq!(validate_name(NameKind::Database, bad), Ok(()), "{bad}");
        }
        assert!(!scram_password_usable("pass\nword"));
        assert!(!scram_password_usable("🐘"));
        assert!(scram_password_usable("עברית"));
    }

    #[test]
    fn generated_passwords_are_long_url_safe_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn the_plan_never_shows_or_sends_the_plaintext() {
        let steps = plan(
            "shop",
            "shop",
            &PasswordAction::Set("hunter2-canary".into()),
            &Existing::default(),
            AdminRights {
                superuser: true,
                ..Default::default()
            },
        );
        assert_eq!(steps.len(), 2);
        for step in &steps {
            assert!(!step.sql(false).contains("hunter2-canary"));
            assert!(!step.sql(true).contains("SCRAM-SHA-256"));
        }
        assert!(steps[0].sql(false).contains("SCRAM-SHA-256$4096:"));
        assert_eq!(
            steps[1].sql(true),
            "CREATE DATABASE \"shop\" OWNER \"shop\""
        );
    }

    #[test]
    fn existing_objects_are_reused_never_dropped() {
        let existing = Existing {
            database_owner: Some("postgres".into()),
            role_exists: true,
            admin_is_member: false,
        };
        let steps = plan(
            "shop",
            "app",
            &PasswordAction::Keep,
            &existing,
            AdminRights {
                superuser: true,
                ..Default::default()
            },
        );
        assert_eq!(
            steps,
            vec![
                Step::GrantConnect {
                    db: "shop".into(),
                    role: "app".into()
                },
                Step::GrantSchema {
                    db: "shop".into(),
                    role: "app".into()
                },
            ]
        );
        for s in &steps {
            assert!(!s.sql(false).to_uppercase().contains("DROP"));
        }
    }

    #[test]
    fn missing_privileges_are_named_with_the_grant() {
        let steps = plan(
            "shop",
            "shop",
            &PasswordAction::Set("x".into()),
            &Existing::default(),
            AdminRights::default(),
        );
        let missing = missing_rights(
            &steps,
            AdminRights {
                createrole: true,
                ..Default::default()
            },
            "creator",
        );
        assert_eq!(
            missing,
            vec![(
                "CREATEDB".to_string(),
                "ALTER ROLE \"creator\" CREATEDB;".to_string()
            )]
        );
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, Step::GrantMembership { .. }))
        );
    }

    #[test]
    fn the_admins_own_role_and_template_databases_are_refused_even_when_forced() {
        let all = Forced {
            privileged_role: true,
            postgres_database: true,
        };
        let refusal = check_targets("postgres", "postgres", None, "shop", all).unwrap_err();
        assert_eq!(refusal.code().id(), "app-role-is-admin");
        assert_eq!(refusal.forced_by(), None);
        assert!(!refusal.hint().contains("--force"), "{}", refusal.hint());
        assert!(refusal.to_string().contains("locking the admin out"));
        for db in ["template0", "template1"] {
            let refusal = check_targets("postgres", "app", None, db, all).unwrap_err();
            assert_eq!(refusal, Refusal::TemplateDatabase { db: db.into() });
            assert!(refusal.hint().contains("--db-name"));
        }
        // Names are exact: "Postgres" is another role, "Template1" another database.
        assert_eq!(
            check_targets("postgres", "Postgres", None, "Template1", Forced::default()),
            Ok(())
        );
    }

    #[test]
    fn the_postgres_database_and_privileged_roles_are_refused_unless_forced() {
        let refusal =
            check_targets("admin", "app", None, "postgres", Forced::default()).unwrap_err();
        assert_eq!(refusal.code().id(), "app-database-maintenance");
        assert!(
            refusal.hint().ends_with("pass --force postgres-database"),
            "{}",
            refusal.hint()
        );
        let forced = Forced {
            postgres_database: true,
            ..Forced::default()
        };
        assert_eq!(
            check_targets("admin", "app", None, "postgres", forced),
            Ok(())
        );

        let strong = RoleAttributes {
            superuser: true,
            bypassrls: true,
            powerful_memberships: vec!["pg_write_server_files".into()],
            ..RoleAttributes::default()
        };
        let refusal =
            check_targets("admin", "app", Some(&strong), "shop", Forced::default()).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::PrivilegedRole {
                role: "app".into(),
                rights: vec![
                    "SUPERUSER".into(),
                    "BYPASSRLS".into(),
                    "member of \"pg_write_server_files\"".into()
                ],
            }
        );
        assert!(refusal.hint().ends_with("pass --force privileged-role"));
        let forced = Forced {
            privileged_role: true,
            ..Forced::default()
        };
        assert_eq!(
            check_targets("admin", "app", Some(&strong), "shop", forced),
            Ok(())
        );
        // CREATEDB alone is what a test runner needs: allowed.
        let createdb = RoleAttributes {
            createdb: true,
            ..RoleAttributes::default()
        };
        assert_eq!(
            check_targets("admin", "app", Some(&createdb), "shop", Forced::default()),
            Ok(())
        );
    }

    #[test]
    fn refusals_show_hostile_names_escaped() {
        let refusal = check_targets(
            "admin",
            "x\n[ok] done\x1b]0;t\x07",
            Some(&RoleAttributes {
                createrole: true,
                ..Default::default()
            }),
            "shop",
            Forced::default(),
        )
        .unwrap_err();
        let text = refusal.to_string();
        assert!(crate::sanitize::is_clean(&text), "{text:?}");
    }
}
