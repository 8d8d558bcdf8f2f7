//! Why a session cannot create a table where an unqualified CREATE TABLE puts it, read on the
//! failure path after the create-table probe (src/session.rs) was refused, and the fix that
//! fits what the server's state is, not a guess from the message (which `lc_messages` may
//! translate).
//!
//! No schema to create in (SQLSTATE 3F000, "no schema has been selected to create in"):
//! PostgreSQL creates in the first schema of `search_path` that exists *and* on which the role
//! has USAGE; schemas that fail either test are skipped without a word. So the same error comes
//! from a search_path naming schemas that are not there (set for the role, the database, the
//! server or the URL) and from a schema that is there but closed to the role: `REVOKE ALL ON
//! SCHEMA public FROM PUBLIC`, the hardening step many guides give, leaves every role but the
//! schema's owner with it.
//!
//! A privilege refused (42501): the schema CREATE TABLE chose may not take the role's tables
//! (PostgreSQL 15's public, owned by `pg_database_owner`, or any schema without CREATE for it),
//! or the schema may, and `default_tablespace` names a tablespace the role may not create in.

use crate::provision::quote_ident;

/// One schema `search_path` names, as this session's role sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSchema {
    /// `$user` already replaced by the role's name.
    pub name: String,
    pub exists: bool,
    /// The role has USAGE on it (false when it does not exist).
    pub usable: bool,
}

/// The session's `search_path`, where its value comes from, and each schema it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    pub setting: String,
    /// `pg_settings.source`: `default`, `configuration file`, `user`, `database`,
    /// `database user`, `client`, `session`, ...
    pub source: String,
    pub schemas: Vec<PathSchema>,
}

impl SearchPath {
    /// The first schema it names that exists but is closed to the role (no USAGE): the one
    /// a grant reopens.
    pub fn closed(&self) -> Option<&PathSchema> {
        self.schemas.iter().find(|s| s.exists && !s.usable)
    }
}

/// One row per schema the setting names, each with the setting and its source, in the path's
/// order. `$user` (quoted or not) is the session's role; names are unquoted the simple way (a
/// schema whose name holds a comma would be read as two).
pub const SEARCH_PATH_SQL: &str = "SELECT s.setting, s.source, e.name, n.oid IS NOT NULL, \
     COALESCE(has_schema_privilege(n.oid, 'USAGE'), false) \
     FROM pg_settings s \
     CROSS JOIN LATERAL (SELECT e.ord, CASE WHEN btrim(e.x) IN ('$user', '\"$user\"') \
     THEN current_user::text ELSE btrim(btrim(e.x), '\"') END AS name \
     FROM unnest(string_to_array(s.setting, ',')) WITH ORDINALITY AS e(x, ord)) e \
     LEFT JOIN pg_namespace n ON n.nspname = e.name \
     WHERE s.name = 'search_path' ORDER BY e.ord";

/// [`SEARCH_PATH_SQL`]'s rows as a [`SearchPath`]; `None` when they do not read as its answer (or there
/// are none: an empty search_path, whose fix is the same as an unreadable one's).
pub fn search_path_from_rows(rows: &[Vec<Option<String>>]) -> Option<SearchPath> {
    let first = rows.first()?;
    let text = |row: &[Option<String>], i: usize| row.get(i).cloned().flatten();
    let flag = |row: &[Option<String>], i: usize| text(row, i).map(|t| t == "t");
    let mut schemas = Vec::with_capacity(rows.len());
    for row in rows {
        schemas.push(PathSchema {
            name: text(row, 2)?,
            exists: flag(row, 3)?,
            usable: flag(row, 4)?,
        });
    }
    Some(SearchPath {
        setting: text(first, 0)?,
        source: text(first, 1)?,
        schemas,
    })
}

/// Where a fix can be made: in the database that was checked; or, after a setup's undo dropped
/// the database and the user it had just created, only where the next run's new ones will
/// find it (template1, which every new database copies, and the server's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixIn {
    TheDatabase,
    NewDatabases,
}

/// The fix for a CREATE TABLE of `user` in `db` that found no schema to create in.
pub fn no_schema_hint(path: Option<&SearchPath>, user: &str, db: &str, fix_in: FixIn) -> String {
    let (qu, qd) = (quote_ident(user), quote_ident(db));
    if fix_in == FixIn::NewDatabases {
        return new_databases_hint(path);
    }
    let Some(path) = path else {
        return format!(
            "no schema in this session's search_path both exists in database {qd} and may be used by user {qu} (USAGE): `SHOW search_path` names them; as a superuser, connected to {qd}, grant it one (`GRANT USAGE, CREATE ON SCHEMA public TO {qu};`) or create one (`CREATE SCHEMA {qu} AUTHORIZATION {qu};`)"
        );
    };
    if let Some(closed) = path.closed() {
        let schema = quote_ident(&closed.name);
        return format!(
            "schema {schema} exists in database {qd}, but user {qu} has no USAGE on it (as after `REVOKE ALL ON SCHEMA {schema} FROM PUBLIC`), so CREATE TABLE skips it: as its owner or a superuser, connected to {qd}: `GRANT USAGE, CREATE ON SCHEMA {schema} TO {qu};`"
        );
    }
    let first = path
        .schemas
        .first()
        .map_or_else(|| qu.clone(), |s| quote_ident(&s.name));
    let (from, change) = match path.source.as_str() {
        "user" => (
            "set for the role".to_string(),
            format!("`ALTER ROLE {qu} SET search_path = ...;` (or `RESET search_path`)"),
        ),
        "database" => (
            "set for the database".to_string(),
            format!("`ALTER DATABASE {qd} SET search_path = ...;` (or `RESET search_path`)"),
        ),
        "database user" => (
            "set for the role in this database".to_string(),
            format!(
                "`ALTER ROLE {qu} IN DATABASE {qd} SET search_path = ...;` (or `RESET search_path`)"
            ),
        ),
        "configuration file" => (
            "from the server's configuration".to_string(),
            "change search_path in postgresql.conf and reload".to_string(),
        ),
        "client" => (
            "sent by the client at login".to_string(),
            "change it in the URL's `options` (or PGOPTIONS)".to_string(),
        ),
        "default" => (
            "the default".to_string(),
            format!("`ALTER ROLE {qu} SET search_path = ...;`"),
        ),
        other => (
            format!("source: {other}"),
            format!("`ALTER ROLE {qu} SET search_path = ...;`"),
        ),
    };
    format!(
        "search_path is `{}` ({from}), and none of its schemas exists in database {qd}: as a superuser, connected to {qd}, create one (`CREATE SCHEMA {first} AUTHORIZATION {qu};`), or point search_path at a schema that exists (psql's `\\dn` lists them): {change}",
        path.setting
    )
}

/// [`no_schema_hint`] after an undo: the database and user are gone, so the fix is one the
/// next run's new database and user will find.
fn new_databases_hint(path: Option<&SearchPath>) -> String {
    let then = "then run dbsetup again";
    match path {
        Some(path) if path.closed().is_some() => {
            let schema = quote_ident(path.closed().map_or("public", |s| s.name.as_str()));
            format!(
                "schema {schema}, which new databases copy from template1, is closed to new users (no USAGE), so CREATE TABLE skips it: as a superuser, connected to template1, `GRANT USAGE, CREATE ON SCHEMA {schema} TO PUBLIC;` (or create the database yourself and give its name to dbsetup), {then}"
            )
        }
        Some(path) => {
            let change = match path.source.as_str() {
                "configuration file" => "change search_path in postgresql.conf and reload",
                "client" => "remove it from PGOPTIONS",
                _ => "set search_path where it comes from to a schema new databases have (public)",
            };
            format!(
                "search_path is `{}` (source: {}), and none of its schemas exists in a new database: {change}, {then}",
                path.setting, path.source
            )
        }
        None => format!(
            "no schema in the new user's search_path both exists and is open to it (USAGE): `SHOW search_path` names them; make one of them exist in template1 (which new databases copy) or change search_path, {then}"
        ),
    }
}

/// Where CREATE TABLE put the table and what the role may do there, for a refused privilege.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTarget {
    /// `current_schema()`: the first schema of search_path that exists and is open to the role.
    pub schema: String,
    pub schema_owner: String,
    /// The role has CREATE on it.
    pub schema_create: bool,
    /// `default_tablespace`, when set, and whether the role has CREATE on it.
    pub tablespace: Option<(String, bool)>,
}

/// One row: the schema, its owner, CREATE on it, `default_tablespace` and CREATE on that (NULL
/// when it is empty: the database's own tablespace needs no grant).
pub const TARGET_SQL: &str = "SELECT current_schema(), pg_get_userbyid(n.nspowner), \
     has_schema_privilege(n.oid, 'CREATE'), current_setting('default_tablespace'), \
     CASE WHEN current_setting('default_tablespace') <> '' \
     THEN has_tablespace_privilege(current_setting('default_tablespace'), 'CREATE') END \
     FROM pg_namespace n WHERE n.nspname = current_schema()";

/// [`TARGET_SQL`]'s row as a [`CreateTarget`]; `None` when it does not read as its answer.
pub fn target_from_rows(rows: &[Vec<Option<String>>]) -> Option<CreateTarget> {
    let row = rows.first()?;
    let text = |i: usize| row.get(i).cloned().flatten();
    let flag = |i: usize| text(i).map(|t| t == "t");
    let tablespace = match text(3).filter(|t| !t.is_empty()) {
        Some(name) => Some((name, flag(4)?)),
        None => None,
    };
    Some(CreateTarget {
        schema: text(0)?,
        schema_owner: text(1)?,
        schema_create: flag(2)?,
        tablespace,
    })
}

/// The fix for a CREATE TABLE of `user` in `db` refused for a privilege.
pub fn denied_hint(target: Option<&CreateTarget>, user: &str, db: &str, fix_in: FixIn) -> String {
    let (qu, qd) = (quote_ident(user), quote_ident(db));
    // After an undo the user and database are gone: the grant goes where the next run's will
    // find it.
    let (grantee, connected_to, then) = match fix_in {
        FixIn::TheDatabase => (qu.clone(), qd.clone(), ""),
        FixIn::NewDatabases => (
            "PUBLIC".to_string(),
            "template1 (which new databases copy)".to_string(),
            ", then run dbsetup again",
        ),
    };
    match target {
        Some(t)
            if !t.schema_create
                && t.schema == "public"
                && t.schema_owner == "pg_database_owner"
                && fix_in == FixIn::TheDatabase =>
        {
            if db == "postgres" {
                // Not a database to give away: the server's own, which tools connect to.
                format!(
                    "PostgreSQL 15 no longer lets every user create in schema public, and \"postgres\" is the server's maintenance database: give the app a database of its own (`aksara dbsetup` creates one owned by {qu}), or, as a superuser connected to \"postgres\", `GRANT USAGE, CREATE ON SCHEMA public TO {qu};`"
                )
            } else {
                format!(
                    "PostgreSQL 15 no longer lets every user create in schema public: as a superuser run `ALTER DATABASE {qd} OWNER TO {qu};` or, connected to that database, `GRANT USAGE, CREATE ON SCHEMA public TO {qu};`"
                )
            }
        }
        Some(t) if !t.schema_create => {
            let schema = quote_ident(&t.schema);
            format!(
                "user {qu} may not create in schema {schema} (owned by {}), the first schema of its search_path it may use: as that owner or a superuser, connected to {connected_to}: `GRANT CREATE ON SCHEMA {schema} TO {grantee};`{then}",
                quote_ident(&t.schema_owner)
            )
        }
        Some(CreateTarget {
            schema,
            tablespace: Some((tablespace, false)),
            ..
        }) => {
            let ts = quote_ident(tablespace);
            format!(
                "user {qu} may create in schema {}, but new tables go to tablespace {ts} (default_tablespace), where it may not: as a superuser `GRANT CREATE ON TABLESPACE {ts} TO {grantee};`, or clear default_tablespace where it is set{then}",
                quote_ident(schema)
            )
        }
        Some(t) => format!(
            "user {qu} may create in schema {} and aksara found no other privilege it lacks, so it cannot say which one the server means: its words above name it",
            quote_ident(&t.schema)
        ),
        None => format!(
            "the server's words above name what user {qu} may not do; for a schema, as its owner or a superuser, connected to {connected_to}: `GRANT USAGE, CREATE ON SCHEMA <schema> TO {grantee};`{then}"
        ),
    }
}

/// What would give the role a place for its tables, when the failure path shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreationFix {
    /// `GRANT USAGE, CREATE ON SCHEMA` this schema: the one CREATE TABLE chose (the role lacks
    /// CREATE there), or the first schema of search_path that exists but is closed to it.
    GrantSchema(String),
    /// `GRANT CREATE ON TABLESPACE` this one: the role may create in the schema, but
    /// `default_tablespace` sends new tables to a tablespace it may not create in.
    GrantTablespace(String),
    /// `CREATE SCHEMA ... AUTHORIZATION` the role: none of the schemas search_path names
    /// exists, and this is the first of them (what the setting asks for).
    CreateSchema(String),
}

pub fn creation_fix(
    target: Option<&CreateTarget>,
    path: Option<&SearchPath>,
) -> Option<CreationFix> {
    match (target, path) {
        (Some(t), _) if !t.schema_create => Some(CreationFix::GrantSchema(t.schema.clone())),
        (
            Some(CreateTarget {
                tablespace: Some((tablespace, false)),
                ..
            }),
            _,
        ) => Some(CreationFix::GrantTablespace(tablespace.clone())),
        (_, Some(p)) => match p.closed() {
            Some(closed) => Some(CreationFix::GrantSchema(closed.name.clone())),
            None if p.schemas.iter().all(|s| !s.exists) => p
                .schemas
                .first()
                .map(|s| CreationFix::CreateSchema(s.name.clone())),
            None => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        setting: &str,
        source: &str,
        name: &str,
        exists: bool,
        usable: bool,
    ) -> Vec<Option<String>> {
        let b = |v: bool| Some(if v { "t" } else { "f" }.to_string());
        vec![
            Some(setting.into()),
            Some(source.into()),
            Some(name.into()),
            b(exists),
            b(usable),
        ]
    }

    fn path_hint(rows: &[Vec<Option<String>>], user: &str, db: &str, fix_in: FixIn) -> String {
        no_schema_hint(search_path_from_rows(rows).as_ref(), user, db, fix_in)
    }

    #[test]
    fn a_schema_closed_to_the_role_gets_the_grant_not_a_new_search_path() {
        let rows = vec![
            row("\"$user\", public", "default", "app", false, false),
            row("\"$user\", public", "default", "public", true, false),
        ];
        let path = search_path_from_rows(&rows).unwrap();
        assert_eq!(path.schemas.len(), 2);
        let hint = no_schema_hint(Some(&path), "app", "shop", FixIn::TheDatabase);
        assert!(
            hint.contains("`GRANT USAGE, CREATE ON SCHEMA \"public\" TO \"app\";`")
                && hint.contains("has no USAGE on it"),
            "{hint}"
        );
    }

    #[test]
    fn schemas_that_do_not_exist_name_where_the_setting_comes_from() {
        let rows = vec![row("nonexistent", "user", "nonexistent", false, false)];
        let hint = path_hint(&rows, "r3", "d3", FixIn::TheDatabase);
        assert!(
            hint.starts_with("search_path is `nonexistent` (set for the role)"),
            "{hint}"
        );
        assert!(
            hint.contains("`CREATE SCHEMA \"nonexistent\" AUTHORIZATION \"r3\";`"),
            "{hint}"
        );
        assert!(
            hint.contains("`ALTER ROLE \"r3\" SET search_path = ...;`"),
            "{hint}"
        );
        let rows = vec![row("x", "database user", "x", false, false)];
        let hint = path_hint(&rows, "r3", "d3", FixIn::TheDatabase);
        assert!(
            hint.contains("ALTER ROLE \"r3\" IN DATABASE \"d3\" SET"),
            "{hint}"
        );
    }

    #[test]
    fn an_unreadable_answer_gives_both_fixes_and_no_guess() {
        assert_eq!(search_path_from_rows(&[]), None);
        assert_eq!(search_path_from_rows(&[vec![Some("x".into())]]), None);
        let hint = no_schema_hint(None, "app", "shop", FixIn::TheDatabase);
        assert!(
            hint.contains("GRANT USAGE, CREATE") && hint.contains("CREATE SCHEMA"),
            "{hint}"
        );
    }
    fn target(
        schema: &str,
        owner: &str,
        create: bool,
        ts: Option<(&str, bool)>,
    ) -> Vec<Vec<Option<String>>> {
        let b = |v: bool| Some(if v { "t" } else { "f" }.to_string());
        vec![vec![
            Some(schema.into()),
            Some(owner.into()),
            b(create),
            Some(ts.map_or(String::new(), |(t, _)| t.to_string())),
            ts.and_then(|(_, c)| b(c)),
        ]]
    }

    #[test]
    fn a_refused_create_names_the_schema_or_tablespace_the_server_state_shows() {
        let pg15 = target_from_rows(&target("public", "pg_database_owner", false, None));
        assert!(
            denied_hint(pg15.as_ref(), "app", "shop", FixIn::TheDatabase)
                .starts_with("PostgreSQL 15 no longer")
        );
        let maintenance = denied_hint(pg15.as_ref(), "app", "postgres", FixIn::TheDatabase);
        assert!(
            !maintenance.contains("OWNER TO") && maintenance.contains("aksara dbsetup"),
            "{maintenance}"
        );
        // PostgreSQL 14's public (owned by postgres, CREATE revoked) is not PG15's.
        let pg14 = target_from_rows(&target("public", "postgres", false, None));
        let hint = denied_hint(pg14.as_ref(), "app", "shop", FixIn::TheDatabase);
        assert!(
            hint.contains("`GRANT CREATE ON SCHEMA \"public\" TO \"app\";`")
                && !hint.contains("PostgreSQL 15"),
            "{hint}"
        );
        let ts = target_from_rows(&target(
            "public",
            "pg_database_owner",
            true,
            Some(("fast", false)),
        ));
        let hint = denied_hint(ts.as_ref(), "app", "shop", FixIn::TheDatabase);
        assert!(
            hint.contains("GRANT CREATE ON TABLESPACE \"fast\""),
            "{hint}"
        );
        let unknown = target_from_rows(&target("public", "pg_database_owner", true, None));
        let hint = denied_hint(unknown.as_ref(), "app", "shop", FixIn::TheDatabase);
        assert!(hint.contains("cannot say which"), "{hint}");
        assert!(denied_hint(None, "app", "shop", FixIn::TheDatabase).contains("<schema>"));
    }
    #[test]
    fn after_an_undo_the_fix_goes_where_the_next_runs_database_will_find_it() {
        let rows = vec![row("\"$user\", public", "default", "public", true, false)];
        let hint = path_hint(&rows, "app", "shop", FixIn::NewDatabases);
        assert!(
            hint.contains("connected to template1") && hint.ends_with("then run dbsetup again"),
            "{hint}"
        );
        assert!(
            !hint.contains("\"shop\""),
            "the dropped database is not where to fix it: {hint}"
        );
        let closed = target_from_rows(&target("public", "postgres", false, None));
        let hint = denied_hint(closed.as_ref(), "app", "shop", FixIn::NewDatabases);
        assert!(
            hint.contains("TO PUBLIC;`") && hint.contains("template1"),
            "{hint}"
        );
    }
    #[test]
    fn the_fix_goes_where_the_server_state_shows() {
        let chosen = target_from_rows(&target("app", "postgres", false, None));
        let schema = |name: &str| Some(CreationFix::GrantSchema(name.into()));
        assert_eq!(creation_fix(chosen.as_ref(), None), schema("app"));
        // CREATE is there: the refusal is the tablespace's, and so is the grant.
        let tablespace = target_from_rows(&target("app", "postgres", true, Some(("fast", false))));
        assert_eq!(
            creation_fix(tablespace.as_ref(), None),
            Some(CreationFix::GrantTablespace("fast".into()))
        );
        let rows = vec![
            row("\"$user\", public", "default", "app", false, false),
            row("\"$user\", public", "default", "public", true, false),
        ];
        let path = search_path_from_rows(&rows);
        assert_eq!(creation_fix(None, path.as_ref()), schema("public"));
        let missing = search_path_from_rows(&[row("x", "user", "x", false, false)]);
        assert_eq!(
            creation_fix(None, missing.as_ref()),
            Some(CreationFix::CreateSchema("x".into()))
        );
    }
}
