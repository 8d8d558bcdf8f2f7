//! What the shell's `PG*` variables add to a driver's reading of a URL.
//!
//! A [`Reading`] is the URL alone, so that one URL is judged the same everywhere. But doctor
//! connects with libpq's rules, which fill what the URL leaves out from `PGHOST`, `PGPORT`,
//! `PGUSER`, `PGPASSWORD`, `PGDATABASE` and `PGSSLMODE`; the drivers that read those
//! variables do the same in this shell, and Prisma and JDBC do not read them. Without this, a
//! driver line said "database (default), TLS if offered" while doctor, two lines above, had
//! connected to `PGDATABASE`'s database with `PGSSLMODE=verify-full`.
//!
//! Who reads what, from the drivers' own code: libpq `conninfo_add_defaults` (psycopg, and
//! SQLAlchemy's psycopg dialect, which passes only what the URL has); asyncpg
//! `connect_utils._parse_connect_dsn_and_args` (`os.environ.get('PGHOST')` … `PGSSLMODE` for
//! what the DSN lacks; SQLAlchemy's asyncpg dialect passes only the URL's parts);
//! node-postgres `connection-parameters.js` (`val()` falls back to `PG<KEY>`, and
//! `readSSLConfigFromEnvironment` reads `PGSSLMODE` when the URL sets no `ssl`/`sslmode`);
//! sqlx `PgConnectOptions::new_without_pgpass`, which every URL parse starts from.
//! `tests/cli/drivers.rs` runs the real drivers with these variables set.

use super::{Driver, Endpoint, Host, Reading};
use crate::dsn::Password;
use crate::envvars::{PGDATABASE, PGHOST, PGPASSWORD, PGPORT, PGSSLMODE, PGUSER};

/// What the environment did to one driver's reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FromEnvironment {
    /// Variables that filled a part the URL leaves out, for this driver.
    pub taken: Vec<&'static str>,
    /// Variables that fill a part the URL leaves out for libpq (and so for doctor's own
    /// connection) and that this driver does not take for it.
    pub not_read: Vec<&'static str>,
}

impl FromEnvironment {
    /// ` (database, TLS from PGDATABASE, PGSSLMODE)`, or empty.
    pub fn annotation(&self) -> String {
        let mut parts = Vec::new();
        if !self.taken.is_empty() {
            parts.push(format!("{} from the environment", self.taken.join(", ")));
        }
        if !self.not_read.is_empty() {
            parts.push(format!(
                "does not take {} here, which doctor's own connection used",
                self.not_read.join(", ")
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        }
    }
}

/// Whether `driver` fills what the URL leaves out from the `PG*` variables.
fn reads_environment(driver: Driver) -> bool {
    !matches!(driver, Driver::Prisma | Driver::Jdbc)
}

/// `reading` (the driver's reading of `raw` alone) as a process started from this shell gets
/// it: each part the URL leaves out, taken from its variable when the driver reads it; and the
/// variables libpq (doctor's own connection) took that this driver does not.
pub fn in_environment(
    driver: Driver,
    raw: &str,
    reading: &Reading,
    var: &dyn Fn(&str) -> Option<String>,
) -> (Reading, FromEnvironment) {
    let doctors = taken_by_libpq(raw, var);
    if !reads_environment(driver) {
        // Prisma and JDBC: the reading stays the URL's.
        let not_read = doctors;
        return (
            reading.clone(),
            FromEnvironment {
                taken: Vec::new(),
                not_read,
            },
        );
    }
    let (filled, taken) = fill(driver, raw, reading, var);
    // A driver that reads the variables can still not take one where libpq does: a part it
    // reads from the URL as empty where libpq sees none (asyncpg's bare `/`, the empty
    // database name, which its verdict already reports as a misreading).
    let not_read = doctors.into_iter().filter(|v| !taken.contains(v)).collect();
    (filled, FromEnvironment { taken, not_read })
}

/// The variables libpq (doctor's own connection) takes for the parts `raw` leaves out: what
/// doctor's URL line names as the shell's.
pub fn taken_by_libpq(raw: &str, var: &dyn Fn(&str) -> Option<String>) -> Vec<&'static str> {
    super::meaning(raw)
        .map(|conn| fill(Driver::Libpq, raw, &super::libpq::reading_of(&conn), var).1)
        .unwrap_or_default()
}

/// `reading` with each part it leaves out taken from its variable, as `driver` maps them.
fn fill(
    driver: Driver,
    raw: &str,
    reading: &Reading,
    var: &dyn Fn(&str) -> Option<String>,
) -> (Reading, Vec<&'static str>) {
    let mut filled = reading.clone();
    let mut taken = Vec::new();
    let no_host = filled.endpoints.iter().all(|e| e.host.is_none());
    let no_port = filled.endpoints.iter().all(|e| e.port.is_none());
    let port = var(PGPORT)
        .filter(|_| no_port)
        .and_then(|p| p.trim().parse::<u16>().ok());
    if let Some(hosts) = var(PGHOST).filter(|_| no_host) {
        let url_port = filled.endpoints.iter().find_map(|e| e.port);
        filled.endpoints = hosts
            .split(',')
            .map(|h| Endpoint::new(Some(Host::classify(h.trim())), url_port.or(port)))
            .collect();
        taken.push(PGHOST);
    } else if let Some(port) = port {
        if filled.endpoints.is_empty() {
            filled.endpoints.push(Endpoint::new(None, Some(port)));
        }
        for endpoint in &mut filled.endpoints {
            endpoint.port = Some(port);
        }
    }
    if port.is_some() {
        taken.push(PGPORT);
    }
    if filled.user.is_none()
        && let Some(user) = var(PGUSER)
    {
        filled.user = Some(user);
        taken.push(PGUSER);
    }
    if filled.password.is_none()
        && let Some(password) = var(PGPASSWORD)
    {
        filled.password = Some(Password::new(password));
        taken.push(PGPASSWORD);
    }
    if filled.database.is_none()
        && let Some(database) = var(PGDATABASE)
    {
        filled.database = Some(database);
        taken.push(PGDATABASE);
    }
    if let Some(mode) = var(PGSSLMODE).filter(|_| !sets_tls(raw))
        && let Some(tls) = tls_for(driver, &filled.endpoints, &mode)
    {
        filled.tls = tls;
        taken.push(PGSSLMODE);
    }
    (filled, taken)
}

/// Whether the URL itself says what to do about TLS (`sslmode`, or `ssl` as SQLAlchemy's and
/// node-postgres's spelling): then no driver looks at `PGSSLMODE`.
fn sets_tls(raw: &str) -> bool {
    let Some((_, query)) = raw.split_once('?') else {
        return false;
    };
    query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .any(|key| key.eq_ignore_ascii_case("sslmode") || key.eq_ignore_ascii_case("ssl"))
}

/// The TLS `driver` uses under `PGSSLMODE=mode`. The variable is read by the driver under the
/// dialect (SQLAlchemy passes no `ssl` of its own), and each maps the modes its own way, as it
/// does for the URL's `sslmode` (node-postgres verifies for `require`); libpq and asyncpg use
/// no TLS on a unix socket.
fn tls_for(driver: Driver, endpoints: &[Endpoint], mode: &str) -> Option<super::Tls> {
    let reader = match driver {
        Driver::SqlalchemyAsyncpg => Driver::Asyncpg,
        Driver::SqlalchemyPsycopg => Driver::Libpq,
        other => other,
    };
    let only_sockets = !endpoints.is_empty()
        && endpoints
            .iter()
            .all(|e| matches!(e.host, Some(Host::Socket(_))));
    if only_sockets && matches!(reader, Driver::Libpq | Driver::Asyncpg) {
        return Some(super::Tls::Off);
    }
    let url = format!("postgresql://localhost/?sslmode={mode}");
    super::read(reader, &url).ok().map(|reading| reading.tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::{Tls, read};

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn what_the_url_leaves_out_comes_from_the_variables_the_driver_reads() {
        let raw = "postgresql://app:pw@db.internal";
        let vars = [
            ("PGDATABASE", "shop"),
            ("PGSSLMODE", "verify-full"),
            ("PGUSER", "other"),
        ];
        let alone = read(Driver::Asyncpg, raw).unwrap();
        let (filled, from) = in_environment(Driver::Asyncpg, raw, &alone, &env(&vars));
        assert_eq!(filled.database.as_deref(), Some("shop"));
        // The URL names its user: PGUSER does not replace it.
        assert_eq!(filled.user.as_deref(), Some("app"));
        assert_eq!(filled.tls, Tls::VerifyFull);
        assert_eq!(from.taken, vec![PGDATABASE, PGSSLMODE]);
        assert!(
            from.annotation()
                .contains("PGDATABASE, PGSSLMODE from the environment")
        );
        // asyncpg reads a bare `/` as the empty name (`database is None` is false), so it never
        // looks at PGDATABASE there; libpq takes an empty name as none and does.
        let raw = "postgresql://app:pw@db.internal/";
        let alone = read(Driver::Asyncpg, raw).unwrap();
        let (filled, from) = in_environment(Driver::Asyncpg, raw, &alone, &env(&vars));
        assert_eq!(filled.database.as_deref(), Some(""));
        assert_eq!(from.not_read, vec![PGDATABASE]);
        let alone = read(Driver::Libpq, raw).unwrap();
        let (filled, _) = in_environment(Driver::Libpq, raw, &alone, &env(&vars));
        assert_eq!(filled.database.as_deref(), Some("shop"));
    }

    #[test]
    fn a_url_that_says_sslmode_ignores_pgsslmode_and_prisma_reads_no_variable() {
        let raw = "postgresql://app:pw@db.internal/app?sslmode=disable";
        let vars = [("PGSSLMODE", "verify-full")];
        let alone = read(Driver::Libpq, raw).unwrap();
        let (filled, from) = in_environment(Driver::Libpq, raw, &alone, &env(&vars));
        assert_eq!(filled.tls, Tls::Off);
        assert!(from.taken.is_empty());

        let raw = "postgresql://app:pw@db.internal/";
        let vars = [("PGDATABASE", "shop")];
        let alone = read(Driver::Prisma, raw).unwrap();
        let (filled, from) = in_environment(Driver::Prisma, raw, &alone, &env(&vars));
        assert_eq!(filled, alone);
        assert_eq!(from.not_read, vec![PGDATABASE]);
        assert!(from.annotation().contains("does not take PGDATABASE here"));
    }

    #[test]
    fn pghost_and_pgport_fill_a_url_without_a_place() {
        let raw = "postgresql:///app";
        let vars = [("PGHOST", "/var/run/postgresql"), ("PGPORT", "5433")];
        let alone = read(Driver::Libpq, raw).unwrap();
        let (filled, from) = in_environment(Driver::Libpq, raw, &alone, &env(&vars));
        assert_eq!(
            filled.endpoints,
            vec![Endpoint::new(
                Some(Host::Socket("/var/run/postgresql".into())),
                Some(5433)
            )]
        );
        assert_eq!(from.taken, vec![PGHOST, PGPORT]);
        // node-postgres reads PGSSLMODE=require as "verify the certificate".
        let raw = "postgresql://app:pw@db.internal/app";
        let vars = [("PGSSLMODE", "require")];
        let alone = read(Driver::NodePg, raw).unwrap();
        let (filled, _) = in_environment(Driver::NodePg, raw, &alone, &env(&vars));
        assert_eq!(filled.tls, Tls::VerifyFull);
    }
}
