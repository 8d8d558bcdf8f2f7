//! A driver's own form of the application URL, kept under a key of its own beside
//! `DATABASE_URL`: which drivers dbsetup writes one for (`--driver-url DRIVER=KEY`), the key it
//! suggests, the keys it refuses, and how doctor recognises such a value when it reads `.env`
//! again ([`spelled_for`]), so that it judges the value with that driver's reading instead of
//! reporting SQLAlchemy's `postgresql+asyncpg://` as an invalid URL.
//!
//! The rule doctor and dbsetup share: a value whose spelling only one driver reads (SQLAlchemy's
//! dialect in the scheme, node-postgres's `uselibpqcompat`, pgjdbc's `jdbc:` prefix) is that
//! driver's form of the same database. Every form these drivers get from [`super::rewrite`]
//! either carries that spelling or is the portable URL itself (node-postgres without TLS), which
//! every driver reads.

use super::{Driver, Refusal, Rewritten, portable, rewrite_conn};
use crate::dsn::ConnString;

/// The drivers `--driver-url` writes a form for: those one URL may not serve (the SQLAlchemy
/// dialects want their scheme and `ssl=`, node-postgres reads `sslmode=require` as
/// verify-full, pgjdbc wants `jdbc:`), each recognisable again by [`spelled_for`].
pub const WRITABLE: [Driver; 4] = [
    Driver::SqlalchemyAsyncpg,
    Driver::SqlalchemyPsycopg,
    Driver::NodePg,
    Driver::Jdbc,
];

/// The URL `--driver-url` writes for `driver`: its own form ([`super::rewrite`]) when that is
/// spelled for it (SQLAlchemy's scheme, node-postgres's `uselibpqcompat`, `jdbc:`); else the
/// portable URL itself where it serves that driver (said in the notes), so that whatever is
/// written, doctor reads it back as what it is.
pub fn form_for(driver: Driver, conn: &ConnString) -> Result<Rewritten, Refusal> {
    let own = rewrite_conn(driver, conn)?;
    if spelled_for(own.url.expose()).is_some_and(|(named, _)| named == driver) {
        return Ok(own);
    }
    let portable = portable::portable(conn)?;
    let served = portable::JUDGED.contains(&driver)
        && !portable.exceptions.iter().any(|(d, _)| *d == driver);
    if !served {
        return Ok(own);
    }
    let mut url = portable.url;
    url.notes.push(format!(
        "the same URL as the main key: {} reads it as it is",
        driver.name()
    ));
    Ok(url)
}

/// Why `driver` gets no form of its own from `--driver-url`, or None when it does.
pub fn not_writable(driver: Driver) -> Option<String> {
    if WRITABLE.contains(&driver) {
        return None;
    }
    let ids: Vec<&str> = WRITABLE.iter().map(|d| d.id()).collect();
    Some(match driver {
        Driver::Prisma => format!(
            "aksara writes no Prisma form: nothing in it would tell doctor it is Prisma's and not a second database; Prisma reads DATABASE_URL (`aksara doctor --driver prisma` checks it); --driver-url takes {}",
            ids.join(", ")
        ),
        _ => format!(
            "{} reads DATABASE_URL as dbsetup writes it: no second key is needed; --driver-url takes {}",
            driver.name(),
            ids.join(", ")
        ),
    })
}

/// The key suggested for `driver`'s form: the names those ecosystems use (Flask-SQLAlchemy's
/// `SQLALCHEMY_DATABASE_URI` is a config name, `SQLALCHEMY_DATABASE_URL` the usual variable;
/// Heroku sets `JDBC_DATABASE_URL`).
pub fn default_key(driver: Driver) -> &'static str {
    match driver {
        Driver::SqlalchemyPsycopg => "SQLALCHEMY_PSYCOPG_DATABASE_URL",
        Driver::NodePg => "NODE_PG_DATABASE_URL",
        Driver::Jdbc => "JDBC_DATABASE_URL",
        _ => "SQLALCHEMY_DATABASE_URL",
    }
}

/// Why `key` cannot hold a driver's form, beyond being a valid name and not `--env-key`:
/// `DATABASE_URL` is every driver's (doctor judges it with all of them), doctor reads a key
/// named for a replica as a standby's URL, and libpq reads `PG*` variables from the
/// environment the app loads `.env` into.
pub fn refused_key(key: &str) -> Option<String> {
    if key == "DATABASE_URL" {
        return Some(
            "`DATABASE_URL` is what the framework and most tools read, and doctor judges it with every driver of the project: it gets the URL every driver reads (--env-key)".into(),
        );
    }
    if crate::replica::expected_role(key) == crate::replica::ExpectedRole::Replica {
        return Some(format!(
            "`{key}` names a read replica (doctor expects a standby behind it), not this server"
        ));
    }
    if key.to_ascii_uppercase().starts_with("PG") {
        return Some(format!(
            "`{key}` starts with PG: libpq reads PG* variables from the environment (`PGHOST`, `PGSERVICE`, ...), and the app's loader puts `.env` there"
        ));
    }
    None
}

/// The driver whose own spelling `raw` uses, when only that driver reads it, with the
/// spelling: `postgresql+asyncpg://` (SQLAlchemy + asyncpg), `postgresql+psycopg://`
/// (SQLAlchemy + psycopg), `uselibpqcompat` in the query (node-postgres), `jdbc:`.
pub fn spelled_for(raw: &str) -> Option<(Driver, &'static str)> {
    let raw = raw.trim();
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("jdbc:postgresql:") {
        return Some((Driver::Jdbc, "`jdbc:`"));
    }
    for (scheme, driver, spelling) in [
        (
            "postgresql+asyncpg://",
            Driver::SqlalchemyAsyncpg,
            "`postgresql+asyncpg://`",
        ),
        (
            "postgres+asyncpg://",
            Driver::SqlalchemyAsyncpg,
            "`postgres+asyncpg://`",
        ),
        (
            "postgresql+psycopg://",
            Driver::SqlalchemyPsycopg,
            "`postgresql+psycopg://`",
        ),
        (
            "postgres+psycopg://",
            Driver::SqlalchemyPsycopg,
            "`postgres+psycopg://`",
        ),
    ] {
        if lower.starts_with(scheme) {
            return Some((driver, spelling));
        }
    }
    let uri = lower.starts_with("postgresql://") || lower.starts_with("postgres://");
    let query = raw.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let node = query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("uselibpqcompat"));
    (uri && node).then_some((Driver::NodePg, "`uselibpqcompat`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::meaning;

    #[test]
    fn every_written_form_is_spelled_for_its_driver_or_is_the_portable_url() {
        for url in [
            "postgresql://app:pw@db:5433/app",
            "postgresql://app:pw@db/app?sslmode=require",
            "postgresql://app:pw@db/app?sslmode=verify-full&sslrootcert=/ca.pem",
            "postgresql://app:p%2Bw@%2Fvar%2Frun%2Fpostgresql:5433/c%2B%2Bapp",
            "postgresql://app:pw@%2Fvar%2Frun%2Fpostgresql:5433/app?sslmode=require",
        ] {
            let conn = meaning(url).unwrap();
            let portable = portable::portable(&conn).unwrap();
            for driver in WRITABLE {
                let Ok(form) = form_for(driver, &conn) else {
                    continue;
                };
                let form = form.url.expose().to_owned();
                match spelled_for(&form) {
                    Some((named, _)) => assert_eq!(named, driver, "{form}"),
                    None => assert_eq!(form, portable.url.url.expose(), "{driver:?}"),
                }
            }
        }
    }

    #[test]
    fn the_portable_url_names_no_driver() {
        for url in [
            "postgresql://app:pw@db/app?sslmode=require",
            "postgresql:///app?host=/run/pg&port=5433&user=app&password=pw",
            "host=db dbname=app",
        ] {
            assert_eq!(spelled_for(url), None, "{url}");
        }
        assert_eq!(
            spelled_for("postgresql://a@h/d?uselibpqcompat=true&sslmode=require").map(|(d, _)| d),
            Some(Driver::NodePg)
        );
        assert_eq!(
            spelled_for("POSTGRESQL+ASYNCPG://a@h/d").map(|(d, _)| d),
            Some(Driver::SqlalchemyAsyncpg)
        );
    }

    #[test]
    fn keys_for_a_replica_or_libpq_are_refused() {
        assert!(refused_key("DATABASE_REPLICA_URL").is_some());
        assert!(refused_key("READONLY_DATABASE_URL").is_some());
        assert!(refused_key("PGSERVICE").is_some());
        assert!(refused_key("DATABASE_URL").is_some());
        assert_eq!(refused_key("SQLALCHEMY_DATABASE_URL"), None);
        for driver in WRITABLE {
            assert_eq!(refused_key(default_key(driver)), None);
            assert_eq!(not_writable(driver), None);
        }
        assert!(
            not_writable(Driver::Asyncpg)
                .unwrap()
                .contains("reads DATABASE_URL")
        );
    }
}
