//! The real process environment behind `dsn::Environment`: PG* variables, the OS user, the
//! default socket directory libpq would use, and ~/.pgpass (loaded once, with libpq's
//! permission rule). Kept apart so `dsn` stays free of I/O and testable with fixed values.

use std::path::PathBuf;

use crate::dsn::{DEFAULT_SOCKET_DIRS, Environment, Host};
use crate::envvars::{HOME, PGHOST, PGHOSTADDR, PGPASSFILE, PGPORT};
use crate::pgpass;

pub struct ProcessEnvironment {
    pgpass: pgpass::PgPassFile,
    /// The effective user's name, asked of the password database (NSS) once.
    os_user: std::sync::OnceLock<Option<String>>,
}

impl ProcessEnvironment {
    pub fn load() -> ProcessEnvironment {
        let home = std::env::var_os(HOME).map(PathBuf::from);
        let passfile = std::env::var(PGPASSFILE).ok();
        ProcessEnvironment {
            pgpass: pgpass::load(passfile.as_deref(), home.as_deref()),
            os_user: std::sync::OnceLock::new(),
        }
    }

    /// A variable's value, unless unset or empty (libpq treats empty as unset).
    pub fn var_nonempty(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// Whether PG* variables point at a server (then it is the first place to look).
    pub fn has_pg_target(&self) -> bool {
        [PGHOST, PGHOSTADDR, PGPORT]
            .iter()
            .any(|v| self.var_nonempty(v).is_some())
    }

    /// libpq's warning when ~/.pgpass was ignored for its permissions.
    pub fn pgpass_warning(&self) -> Option<&str> {
        self.pgpass.warning.as_deref()
    }
}

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.var_nonempty(name)
    }

    /// libpq's default role: the name of the effective user (`pg_fe_getusername(geteuid())`),
    /// never `USER` or `LOGNAME`, which `sudo -E`, `su` without `-`, `setpriv` and containers
    /// leave naming someone else (asyncpg does read them: see `drivers::default_user`).
    fn os_user(&self) -> Option<String> {
        self.os_user
            .get_or_init(crate::localserver::current_user_name)
            .clone()
    }

    /// Like sqlx and the common libpq builds: the first usual socket directory holding a
    /// socket for this port, else TCP localhost.
    fn default_host(&self, port: u16) -> Host {
        for dir in DEFAULT_SOCKET_DIRS {
            if std::path::Path::new(dir)
                .join(format!(".s.PGSQL.{port}"))
                .exists()
            {
                return Host::Socket(PathBuf::from(dir));
            }
        }
        Host::Tcp("localhost".into())
    }

    fn pgpass_password(&self, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
        pgpass::lookup(&self.pgpass.lines, host, port, dbname, user)
    }
}
