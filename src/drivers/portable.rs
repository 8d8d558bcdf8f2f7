//! One URL for every driver where one can serve: the form dbsetup can write so that libpq,
//! asyncpg, both SQLAlchemy dialects (after the scheme rewrite they document), node-postgres
//! and sqlx all connect where it means, and the drivers it cannot serve named with their own
//! form.
//!
//! What makes it portable, each rule checked against the real drivers by the suite: a socket
//! directory goes in the query with the user and the password (`postgresql:///db?host=/dir&
//! port=P&user=u&password=pw`: SQLAlchemy does not decode a `%2F` host, and the `url` crate
//! under sqlx refuses `user:pw@/db`); the database path keeps `+ $ , ; = & :` raw, because
//! node-postgres's `decodeURI` leaves their escapes; everything else is percent-encoded, `+`
//! as `%2B`.

use super::render::{self, DbPath, MultiHost, SocketStyle, Style};
use super::{Driver, Problem, Refusal, Rewritten, Verdict, libpq, verdict};
use crate::dsn::{ConnString, HostSpec};

/// The drivers the portable URL is judged for (Prisma and JDBC have forms of their own).
pub const JUDGED: [Driver; 6] = [
    Driver::Libpq,
    Driver::Asyncpg,
    Driver::SqlalchemyAsyncpg,
    Driver::SqlalchemyPsycopg,
    Driver::NodePg,
    Driver::Sqlx,
];

#[derive(Debug)]
pub struct Portable {
    pub url: Rewritten,
    /// The drivers this URL does not serve, each with its problem and its own form.
    pub exceptions: Vec<(Driver, Box<Problem>)>,
}

/// SQLAlchemy's documented rewrite: its dialect in the scheme, the rest unchanged. Other
/// drivers get `url` as it is.
pub fn as_given_to(driver: Driver, url: &str) -> String {
    let dialect = match driver {
        Driver::SqlalchemyAsyncpg => "postgresql+asyncpg://",
        Driver::SqlalchemyPsycopg => "postgresql+psycopg://",
        _ => return url.to_owned(),
    };
    ["postgresql://", "postgres://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .map_or_else(|| url.to_owned(), |rest| format!("{dialect}{rest}"))
}

/// The portable URL for what `conn` means.
pub fn portable(conn: &ConnString) -> Result<Portable, Refusal> {
    let mut notes = Vec::new();
    let mut params = render::params_of(conn);
    render::fold_schema(&mut params, &mut notes);
    params.retain(|(key, _)| libpq::KEYWORDS.contains(&key.as_str()));
    let sockets = conn.hosts.iter().any(HostSpec::is_socket);
    let style = |db_path| Style {
        driver: Driver::Libpq,
        scheme: "postgresql",
        socket: SocketStyle::QueryHost,
        multi: MultiHost::Authority,
        db_path,
        credentials_in_query: sockets,
    };
    // A database name node-postgres cannot be told falls back to full encoding; node-postgres
    // is then an exception.
    let url = render::render(&style(DbPath::DecodeUri), conn, &params, notes.clone())
        .or_else(|_| render::render(&style(DbPath::Encoded), conn, &params, notes))?;
    let exceptions = JUDGED
        .into_iter()
        .filter_map(
            |driver| match verdict(driver, &as_given_to(driver, url.url.expose())) {
                Verdict::Ok(_) => None,
                Verdict::Problem(problem) => Some((driver, problem)),
            },
        )
        .collect();
    Ok(Portable { url, exceptions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::meaning;

    fn portable_of(url: &str) -> Portable {
        portable(&meaning(url).unwrap()).unwrap()
    }

    #[test]
    fn a_socket_goes_in_the_query_with_the_credentials() {
        let p = portable_of("postgresql://app:p%2Bw@%2Fvar%2Frun%2Fpostgresql:5433/c%2B%2Bapp");
        assert_eq!(
            p.url.url.expose(),
            "postgresql:///c++app?host=/var/run/postgresql&port=5433&user=app&password=p%2Bw"
        );
        assert!(p.exceptions.is_empty(), "{:?}", p.exceptions);
    }

    #[test]
    fn tls_require_cannot_be_said_once_for_all() {
        let p = portable_of("postgresql://app:pw@db/app?sslmode=require");
        let drivers: Vec<Driver> = p.exceptions.iter().map(|(d, _)| *d).collect();
        assert_eq!(drivers, vec![Driver::SqlalchemyAsyncpg, Driver::NodePg]);
        let (_, problem) = &p.exceptions[0];
        assert_eq!(
            problem.fix.as_ref().unwrap().url.expose(),
            "postgresql+asyncpg://app:pw@db/app?ssl=require"
        );
    }

    #[test]
    fn a_database_node_cannot_be_told_makes_node_the_exception() {
        let p = portable_of("postgresql://app:pw@db/a%2Fb");
        assert_eq!(p.url.url.expose(), "postgresql://app:pw@db/a%2Fb");
        let drivers: Vec<Driver> = p.exceptions.iter().map(|(d, _)| *d).collect();
        assert_eq!(drivers, vec![Driver::NodePg]);
    }
}
