//! Whom a driver logs in as when neither the URL nor `PGUSER` names a user. libpq and sqlx ask
//! the password database for the effective user's name; asyncpg takes Python's
//! `getpass.getuser()`, which reads `LOGNAME`, `USER`, `LNAME` and `USERNAME` first; node-postgres
//! takes `USER`. On a login shell they agree. Under `sudo -E`, `su` without `-`, `setpriv`, a
//! container or a service with its own environment they part ways, and the application logs in
//! as another role than the one psql (and aksara's own checks) use.
//!
//! Pure: the caller passes the variables and the OS user; doctor turns a difference into a
//! `driver-misreads-url` line with the URL that names the user.

use super::Driver;
use crate::envvars::{GETPASS_USER_VARS, PGUSER, USER};

/// A driver's default role and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultUser {
    pub name: String,
    /// `the OS user` or the variable it was read from (`LOGNAME`).
    pub from: &'static str,
}

/// `driver`'s default role, given the environment's non-empty variables (`var`) and the name
/// of the user aksara runs as (`os_user`, what libpq asks the password database for; aksara is
/// never setuid, so the real and the effective user are one). `None` when `PGUSER` decides for
/// every driver, or when the driver has no default that can be told from here.
pub fn default_user(
    driver: Driver,
    var: &dyn Fn(&str) -> Option<String>,
    os_user: Option<&str>,
) -> Option<DefaultUser> {
    if var(PGUSER).is_some() {
        return None;
    }
    let os = || {
        os_user.map(|name| DefaultUser {
            name: name.to_owned(),
            from: "the OS user",
        })
    };
    match driver {
        // libpq's pg_fe_getusername(geteuid()); sqlx's whoami::username() (getpwuid_r(geteuid())).
        Driver::Libpq | Driver::SqlalchemyPsycopg | Driver::Sqlx => os(),
        // asyncpg/connect_utils.py: `user = os.getenv('PGUSER') or getpass.getuser()`.
        Driver::Asyncpg | Driver::SqlalchemyAsyncpg => GETPASS_USER_VARS
            .iter()
            .find_map(|name| {
                var(name).map(|value| DefaultUser {
                    name: value,
                    from: name,
                })
            })
            .or_else(os),
        // pg/lib/defaults.js: `user: process.env.USER` (USERNAME on Windows).
        Driver::NodePg => var(USER).map(|name| DefaultUser { name, from: USER }),
        // Prisma and pgjdbc want the user in the URL.
        Driver::Prisma | Driver::Jdbc => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn name(
        driver: Driver,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(String, &'static str)> {
        default_user(driver, env, Some("root")).map(|d| (d.name, d.from))
    }

    #[test]
    fn libpq_asks_for_the_os_user_whatever_the_variables_say() {
        let env = vars(&[("USER", "dev"), ("LOGNAME", "dev")]);
        assert_eq!(
            name(Driver::Libpq, &env),
            Some(("root".into(), "the OS user"))
        );
        assert_eq!(
            name(Driver::Sqlx, &env),
            Some(("root".into(), "the OS user"))
        );
        assert_eq!(
            name(Driver::SqlalchemyPsycopg, &env),
            Some(("root".into(), "the OS user"))
        );
    }

    #[test]
    fn asyncpg_reads_getpass_variables_in_their_order_then_the_os_user() {
        let both = vars(&[("USER", "second"), ("LOGNAME", "first")]);
        assert_eq!(
            name(Driver::Asyncpg, &both),
            Some(("first".into(), "LOGNAME"))
        );
        let user_only = vars(&[("USER", "second")]);
        assert_eq!(
            name(Driver::SqlalchemyAsyncpg, &user_only),
            Some(("second".into(), "USER"))
        );
        let username = vars(&[("USERNAME", "win")]);
        assert_eq!(
            name(Driver::Asyncpg, &username),
            Some(("win".into(), "USERNAME"))
        );
        let none = vars(&[]);
        assert_eq!(
            name(Driver::Asyncpg, &none),
            Some(("root".into(), "the OS user"))
        );
    }

    #[test]
    fn node_postgres_reads_user_only() {
        assert_eq!(
            name(Driver::NodePg, &vars(&[("LOGNAME", "a"), ("USER", "b")])),
            Some(("b".into(), "USER"))
        );
        assert_eq!(name(Driver::NodePg, &vars(&[("LOGNAME", "a")])), None);
    }

    #[test]
    fn pguser_decides_for_every_driver() {
        let env = vars(&[("PGUSER", "app"), ("LOGNAME", "dev")]);
        for driver in [Driver::Libpq, Driver::Asyncpg, Driver::NodePg, Driver::Sqlx] {
            assert_eq!(name(driver, &env), None, "{driver:?}");
        }
    }
}
