//! Every environment variable aksara reads, named once. A name typed twice can drift apart
//! (`PGSSLMODE` in one module, `PG_SSLMODE` in another) without any compiler noticing; a
//! constant cannot. What each one means for the user is in `cli::ENVIRONMENT` (the `--help`
//! table); the comments here say who reads it.

// libpq's variables: defaults for what a connection string leaves out (read by `dsn::resolve`
// in libpq's order of precedence).
pub const PGHOST: &str = "PGHOST";
/// libpq's numeric-address companion of `PGHOST`; aksara only notes that it is set.
pub const PGHOSTADDR: &str = "PGHOSTADDR";
pub const PGPORT: &str = "PGPORT";
pub const PGUSER: &str = "PGUSER";
pub const PGPASSWORD: &str = "PGPASSWORD";
pub const PGDATABASE: &str = "PGDATABASE";
pub const PGSSLMODE: &str = "PGSSLMODE";
pub const PGCONNECT_TIMEOUT: &str = "PGCONNECT_TIMEOUT";
pub const PGAPPNAME: &str = "PGAPPNAME";
pub const PGSSLROOTCERT: &str = "PGSSLROOTCERT";
pub const PGOPTIONS: &str = "PGOPTIONS";
/// The password file libpq reads instead of `~/.pgpass`.
pub const PGPASSFILE: &str = "PGPASSFILE";

/// The application's own connection URL: what `doctor` checks when neither `--url` nor `.env`
/// gives one, and the key `dbsetup` writes by default.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// The application password `dbsetup` sets instead of generating one (kept out of argv).
pub const AKSARA_DB_PASSWORD: &str = "AKSARA_DB_PASSWORD";
/// Tests only: a prompt script that answers `dbsetup`'s questions instead of a terminal
/// (`prompt::ScriptedPrompt`).
pub const AKSARA_PROMPT_SCRIPT: &str = "AKSARA_PROMPT_SCRIPT";
/// The official postgres image's superuser password, passed to `docker run` by environment.
pub const POSTGRES_PASSWORD: &str = "POSTGRES_PASSWORD";

/// <https://no-color.org>: any non-empty value turns colours off.
pub const NO_COLOR: &str = "NO_COLOR";
/// Where `docker` talks to its engine; aksara asks docker only when it or a socket exists.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// The user's home: `~/.pgpass` and docker's context folder live under it.
pub const HOME: &str = "HOME";
/// The user names Python's `getpass.getuser()` reads, in its order, before the password
/// database: asyncpg's default role. libpq ignores them (it asks for the effective uid's name).
pub const GETPASS_USER_VARS: [&str; 4] = ["LOGNAME", "USER", "LNAME", "USERNAME"];
/// node-postgres's default role (`pg/lib/defaults.js`, outside Windows).
pub const USER: &str = "USER";

/// Test builds only: `<pause point>:<marker file>` makes a `.env` write stop at that point (see
/// `envfile::replace`), so a test can SIGKILL it inside a window. The released binary has no
/// such hook: the killed process is the unit-test binary itself.
#[cfg(test)]
pub const AKSARA_TEST_PAUSE: &str = "AKSARA_TEST_PAUSE";
