//! Every failure and warning aksara can report, as one enum: the single source of the catalogue.
//!
//! A code is declared once, in the `codes!` table below, with its JSON/CLI id, severity, what it
//! means and the fix in general terms. Everything else is derived from that table: `--help`'s
//! list, the README's table (checked by `tests/cli/docs.rs`), the man page (rendered from
//! `--help`), the JSON `code` field, and which failures `doctor --wait` keeps retrying. A new
//! code cannot be forgotten in any of them: the match arms are generated, and the README test
//! fails until its row is added.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The connection does not work (exit 1).
    Failure,
    /// It works, but something is wrong or risky (exit 0).
    Warning,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $severity:ident, transient: $transient:literal,
        meaning: $meaning:literal, fix: $fix:literal; )*) => {
        /// A stable failure or warning code (`aksara doctor --help` lists them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The kebab-case id shown in text, JSON and the docs.
            pub fn id(self) -> &'static str {
                match self { $( Code::$variant => $id, )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$severity, )* }
            }

            /// What it means, in one line.
            pub fn meaning(self) -> &'static str {
                match self { $( Code::$variant => $meaning, )* }
            }

            /// The fix in general terms; the live hint names this machine's values.
            pub fn fix(self) -> &'static str {
                match self { $( Code::$variant => $fix, )* }
            }

            /// Failures that waiting can fix: `doctor --wait` keeps retrying these.
            pub fn is_transient(self) -> bool {
                match self { $( Code::$variant => $transient, )* }
            }
        }
    };
}

codes! {
    InvalidUrl = "invalid-url", Failure, transient: false,
        meaning: "the connection string does not parse",
        fix: "fix the part the message points at; percent-encode special characters in the password";
    DnsFailure = "dns-failure", Failure, transient: false,
        meaning: "the host name does not resolve",
        fix: "check the host name; an unencoded @ in the password moves the host";
    ConnectionRefused = "connection-refused", Failure, transient: true,
        meaning: "nothing listens on that port or socket",
        fix: "start the server, or point the URL at the port/socket where it listens";
    ConnectionTimeout = "connection-timeout", Failure, transient: true,
        meaning: "the server did not answer in time",
        fix: "check host, port and firewall; raise connect_timeout";
    NotPostgres = "not-postgres", Failure, transient: false,
        meaning: "something answers on that port, but it is not PostgreSQL",
        fix: "point the URL at the PostgreSQL server's port";
    SslRequired = "ssl-required", Failure, transient: false,
        meaning: "the server only accepts TLS connections and the client disabled TLS",
        fix: "add ?sslmode=require";
    SslUnsupported = "ssl-unsupported", Failure, transient: false,
        meaning: "the client requires TLS and the server has none",
        fix: "use sslmode=prefer for a local server, or turn ssl on in postgresql.conf";
    SslCertificate = "ssl-certificate", Failure, transient: false,
        meaning: "the server's certificate did not verify",
        fix: "set sslrootcert to the CA that signed it, or connect with the name in the certificate";
    TlsVerifierMissing = "tls-verifier-missing", Failure, transient: false,
        meaning: "aksara's certificate verifier library is missing, so the certificate was not checked",
        fix: "install aksara again with ./install.sh (it puts lib/aksara/libaksara_openssl.so beside bin/aksara)";
    ClientCertificateRequired = "client-certificate-required", Failure, transient: false,
        meaning: "pg_hba.conf asks for a client certificate and none was sent, or it was not accepted",
        fix: "give sslcert and sslkey (signed by the server's ssl_ca_file, CN = the user name)";
    AuthFailed = "auth-failed", Failure, transient: false,
        meaning: "the server (or a pooler, by its own password file) rejected the credentials",
        fix: "check the user and password; reset the password with ALTER ROLE (a pooler's copy: PgBouncer's auth_file, pgpool-II's pool_passwd)";
    PasswordRequired = "password-required", Failure, transient: false,
        meaning: "the server asks for a password and none was given",
        fix: "put the password in the URL, PGPASSWORD or ~/.pgpass";
    NoHbaEntry = "no-hba-entry", Failure, transient: false,
        meaning: "pg_hba.conf has no line that lets this client in",
        fix: "add a host line for this user, database and address to pg_hba.conf and reload";
    HbaReject = "hba-reject", Failure, transient: false,
        meaning: "a reject line in pg_hba.conf matches this client first",
        fix: "remove that reject line, or put a line that lets this client in above it, and reload";
    RoleMissing = "role-missing", Failure, transient: false,
        meaning: "the role does not exist",
        fix: "create it (aksara dbsetup), or fix the user name";
    RoleCannotLogin = "role-cannot-login", Failure, transient: false,
        meaning: "the role exists but has NOLOGIN",
        fix: "ALTER ROLE ... LOGIN as a superuser";
    DatabaseMissing = "database-missing", Failure, transient: false,
        meaning: "the database does not exist",
        fix: "create it (aksara dbsetup), or fix the database name";
    DatabaseNotAccepting = "database-not-accepting", Failure, transient: false,
        meaning: "the database does not allow connections (ALLOW_CONNECTIONS false)",
        fix: "ALTER DATABASE ... ALLOW_CONNECTIONS true as a superuser";
    TooManyConnections = "too-many-connections", Failure, transient: true,
        meaning: "every connection slot of the server is taken",
        fix: "lower the pool size, or raise max_connections and restart";
    RoleConnectionLimit = "role-connection-limit", Failure, transient: true,
        meaning: "the role's own CONNECTION LIMIT is reached",
        fix: "ALTER ROLE ... CONNECTION LIMIT n (or -1), or lower the pool size";
    DatabaseConnectionLimit = "database-connection-limit", Failure, transient: true,
        meaning: "the database's own CONNECTION LIMIT is reached",
        fix: "ALTER DATABASE ... CONNECTION LIMIT n (or -1), or lower the pool size";
    ServerStarting = "server-starting", Failure, transient: true,
        meaning: "the server is starting up or in recovery",
        fix: "wait (aksara doctor --wait 30) and try again";
    ServerShuttingDown = "server-shutting-down", Failure, transient: true,
        meaning: "the server is shutting down and lets no new connection in",
        fix: "if it is restarting, wait (aksara doctor --wait 30); otherwise start it again once it has stopped";
    HotStandbyOff = "hot-standby-off", Failure, transient: false,
        meaning: "the server is a standby with hot_standby = off: it accepts no connections",
        fix: "connect to the primary, or set hot_standby = on on the standby and restart it";
    SettingRejected = "setting-rejected", Failure, transient: false,
        meaning: "the server refused a setting sent at login (options or a URL parameter)",
        fix: "remove or correct the setting the message names";
    PermissionDenied = "permission-denied", Failure, transient: false,
        meaning: "the role may not connect to this database or do what was asked",
        fix: "GRANT the privilege named in the message";
    ConnectionLost = "connection-lost", Failure, transient: true,
        meaning: "the connection closed while a check was running",
        fix: "see the server log for why the session ended, then run the check again";
    /// The honest unknown on the server's side: aksara has no entry for what the server said.
    ServerError = "server-error", Failure, transient: false,
        meaning: "the server answered with an error aksara has no entry for",
        fix: "read the server's own message, detail and hint, shown as they came";
    /// The honest unknown on the client's side.
    UnexpectedError = "unexpected-error", Failure, transient: false,
        meaning: "the connection failed in a way aksara does not recognise",
        fix: "read the error as shown; check that the host and port belong to a PostgreSQL server";
    AuthMethodUnsupported = "auth-method-unsupported", Failure, transient: false,
        meaning: "the server asks for an authentication method aksara cannot answer (GSSAPI, SSPI, an unknown SASL mechanism)",
        fix: "put a scram-sha-256 line for this user in pg_hba.conf above the line that matches now";
    AuthCleartextRefused = "auth-cleartext-refused", Failure, transient: false,
        meaning: "the server asks for the password in cleartext on a connection without TLS; aksara does not send it",
        fix: "use scram-sha-256 in pg_hba.conf, or require TLS; --allow-cleartext only on a network you trust";
    AuthInterrupted = "auth-interrupted", Failure, transient: false,
        meaning: "the server closed the connection in the middle of authentication",
        fix: "read the server's log; check the pooler or proxy in front of it";
    SslHandshakeFailed = "ssl-handshake-failed", Failure, transient: false,
        meaning: "the server agreed to TLS, then the handshake failed (not a certificate problem)",
        fix: "check the server's certificate and key files and its log, and what listens on that port";
    ServerMessageTooLarge = "server-message-too-large", Failure, transient: false,
        meaning: "the server sent a message larger than aksara reads (1 MiB; 30,000 bytes during login)",
        fix: "check that the URL points at the PostgreSQL server you mean";
    AppRoleIsAdmin = "app-role-is-admin", Failure, transient: false,
        meaning: "--db-user names the role the admin connection logs in as",
        fix: "choose another --db-user";
    AppRolePrivileged = "app-role-privileged", Failure, transient: false,
        meaning: "--db-user names a role with more rights than an app needs (SUPERUSER, CREATEROLE, REPLICATION, BYPASSRLS, or a member of such a role)",
        fix: "choose another --db-user, or pass --force privileged-role";
    AppRolePasswordExpired = "app-role-password-expired", Failure, transient: false,
        meaning: "--db-user names a role whose password has expired (VALID UNTIL in the past): no password logs in as it",
        fix: "as a superuser run ALTER ROLE name VALID UNTIL 'infinity' (or a later date), or choose another --db-user";
    AppDatabaseTemplate = "app-database-template", Failure, transient: false,
        meaning: "--db-name names template0 or template1, whose grants every new database copies",
        fix: "choose another --db-name";
    AppDatabaseMaintenance = "app-database-maintenance", Failure, transient: false,
        meaning: "--db-name names postgres, the maintenance database",
        fix: "choose another --db-name, or pass --force postgres-database";
    DriverRejectsParameter = "driver-rejects-parameter", Failure, transient: false,
        meaning: "the application's driver raises on a query parameter it does not accept",
        fix: "use the rewritten URL shown for that driver";
    DriverMisreadsUrl = "driver-misreads-url", Failure, transient: false,
        meaning: "the driver reads a different host, port, user, password or database than libpq",
        fix: "use the rewritten URL shown for that driver";
    DriverUnsupportedFormat = "driver-unsupported-format", Failure, transient: false,
        meaning: "the driver cannot parse this form of connection string at all",
        fix: "use the rewritten URL shown for that driver";
    DriverWrongScheme = "driver-wrong-scheme", Failure, transient: false,
        meaning: "the driver does not take this URL scheme",
        fix: "use the rewritten URL shown for that driver";
    DriverSendsUnknownSetting = "driver-sends-unknown-setting", Failure, transient: false,
        meaning: "the driver sends a query parameter to the server as a setting, and the server refuses it",
        fix: "use the rewritten URL shown for that driver";
    DriverTlsStricter = "driver-tls-stricter", Failure, transient: false,
        meaning: "the driver verifies the server certificate where the URL's sslmode does not ask for it",
        fix: "use the rewritten URL shown for that driver";
    DriverCannotExpress = "driver-cannot-express", Failure, transient: false,
        meaning: "no URL can say this to the driver",
        fix: "set it in the driver's own configuration instead of the URL, as the hint says";
    PoolerUnknownDatabase = "pooler-unknown-database", Failure, transient: false,
        meaning: "the connection pooler has no entry for this database ([databases] in pgbouncer.ini)",
        fix: "add the database under [databases] (or a * fallback) and reload the pooler";
    PoolerStartupParameter = "pooler-startup-parameter", Failure, transient: false,
        meaning: "the connection pooler refuses a startup parameter the client sent",
        fix: "drop it from the URL, or list it in ignore_startup_parameters";
    PoolerWaitTimeout = "pooler-wait-timeout", Failure, transient: true,
        meaning: "the pooler found no free server connection within query_wait_timeout",
        fix: "raise the pool size, find long transactions (SHOW POOLS), or check the pooler's server login";
    PoolerClientLimit = "pooler-client-limit", Failure, transient: true,
        meaning: "the pooler's max_client_conn is reached",
        fix: "raise max_client_conn, or open fewer client connections";
    PoolerServerLoginFailing = "pooler-server-login-failing", Failure, transient: false,
        meaning: "the pooler's own login to the server fails: it relays the server's refusal, or refuses clients for server_login_retry",
        fix: "fix the pooler's server side ([databases] host/port/user, auth_file or auth_query)";
    PoolerConsoleNotAllowed = "pooler-console-not-allowed", Failure, transient: false,
        meaning: "the pooler's admin console refused this user",
        fix: "list the user in admin_users or stats_users";
    PgpoolNoPassword = "pgpool-no-password", Failure, transient: false,
        meaning: "pgpool-II has no password for this user to log in to the server with (SCRAM or md5)",
        fix: "add the user to pgpool's pool_passwd (pg_enc), or allow_clear_text_frontend_auth = on";
    PgpoolChildrenBusy = "pgpool-children-busy", Failure, transient: true,
        meaning: "every pgpool-II child process serves a client (num_init_children - reserved_connections)",
        fix: "open fewer client connections, or raise num_init_children and restart pgpool";
    PgpoolBackendsDown = "pgpool-backends-down", Failure, transient: false,
        meaning: "pgpool-II marks every backend server down",
        fix: "start the servers, then pcp_attach_node (SHOW pool_nodes lists their status)";
    AdminThroughPooler = "admin-through-pooler", Failure, transient: false,
        meaning: "dbsetup's admin URL goes through transaction or statement pooling, which keeps no session",
        fix: "pass --admin-url with the server's own address, or a session-mode pool";
    ReplicaKeyAtPrimary = "replica-key-at-primary", Failure, transient: false,
        meaning: "a replica key (DATABASE_REPLICA_URL, *_REPLICA_*) points at a primary",
        fix: "point it at the standby, or rename the key";
    PrimaryKeyAtStandby = "primary-key-at-standby", Failure, transient: false,
        meaning: "DATABASE_URL points at a standby, where every write fails",
        fix: "point it at the primary, or list both hosts with target_session_attrs=read-write";
    PortHeldByOtherServer = "port-held-by-other-server", Failure, transient: false,
        meaning: "the project's own server is configured for this port, and another server holds it",
        fix: "stop that server, or move the project's server to a free port, then aksara dbserver start";
    TargetSessionAttrsUnmet = "target-session-attrs-unmet", Failure, transient: false,
        meaning: "every host let the client in, but none is the kind target_session_attrs asks for",
        fix: "add a host of that kind to the URL, or change target_session_attrs";
    CannotCreateTables = "cannot-create-tables", Warning, transient: false,
        meaning: "the role can log in but cannot create tables (PG 15 public)",
        fix: "make the role the database owner, or GRANT CREATE ON SCHEMA public";
    NoCreationSchema = "no-creation-schema", Warning, transient: false,
        meaning: "no schema in the session's search_path both exists and is open to the role (USAGE): CREATE TABLE has nowhere to go",
        fix: "GRANT USAGE, CREATE on the schema, create one, or point search_path at one that exists";
    DriverTlsWeaker = "driver-tls-weaker", Warning, transient: false,
        meaning: "the driver ignores the TLS the URL asks for and connects with less (plaintext if the server allows it)",
        fix: "use the rewritten URL shown for that driver";
    DriverIgnoresEnvironment = "driver-ignores-environment", Warning, transient: false,
        meaning: "the URL leaves out parts that doctor took from this shell's PG* variables, and this driver reads none of them",
        fix: "put those parts in the URL itself";
    PoolerPreparedStatements = "pooler-prepared-statements", Warning, transient: false,
        meaning: "the app's driver caches prepared statements, which break under transaction or statement pooling",
        fix: "turn the driver's statement cache off (asyncpg: statement_cache_size=0), or use PgBouncer >= 1.21 with max_prepared_statements";
    PoolerSessionState = "pooler-session-state", Warning, transient: false,
        meaning: "under transaction or statement pooling, SET, search_path, advisory locks and LISTEN do not last",
        fix: "set per-role or per-database settings (ALTER ROLE ... SET), or use session pooling";
    PoolerStatementMode = "pooler-statement-mode", Warning, transient: false,
        meaning: "statement pooling refuses transactions (BEGIN)",
        fix: "use transaction or session pooling for an app that uses transactions";
    PoolerLoadBalancing = "pooler-load-balancing", Warning, transient: false,
        meaning: "pgpool-II sends reads to standbys, where a write just committed may not be visible yet",
        fix: "read after writes in the same transaction, or disable_load_balance_on_write = 'always'";
    ReplicaReplayPaused = "replica-replay-paused", Warning, transient: false,
        meaning: "WAL replay is paused on the standby: it serves older and older data",
        fix: "SELECT pg_wal_replay_resume(); on the standby";
    ReplicaLag = "replica-lag", Warning, transient: false,
        meaning: "the standby is further behind than --max-lag",
        fix: "find what slows replay (pg_stat_replication on the primary, long queries on the standby)";
    SslNotUsedRemote = "ssl-not-used-remote", Warning, transient: false,
        meaning: "a remote server is reached without requiring TLS (or a pooler reaches it without TLS)",
        fix: "add ?sslmode=require (or verify-full); a pooler's: PgBouncer's server_tls_sslmode = require";
    EnvNotIgnored = "env-not-ignored", Warning, transient: false,
        meaning: "the .env file holding the password is not ignored by git",
        fix: "add .env to .gitignore";
    EnvWorldReadable = "env-world-readable", Warning, transient: false,
        meaning: "other users can read the .env file",
        fix: "chmod 600 .env";
    ConnectionsNearLimit = "connections-near-limit", Warning, transient: false,
        meaning: "the server is close to max_connections",
        fix: "close idle connections or raise max_connections";
    PoolExceedsConnections = "pool-exceeds-connections", Warning, transient: false,
        meaning: "the pools can open more connections than the server allows (through a pooler: than the pooler takes clients)",
        fix: "lower pool_max_size per the workload table, or raise max_connections (a pooler's max_client_conn / num_init_children)";
    AuthMethodDeprecated = "auth-method-deprecated", Warning, transient: false,
        meaning: "the server (or the pooler that answered) authenticates with md5, which PostgreSQL deprecates (18 warns)",
        fix: "password_encryption = scram-sha-256, set the password again, scram-sha-256 in pg_hba.conf; a pooler's own setting (PgBouncer: auth_type = scram-sha-256)";
    AuthCleartextAllowed = "auth-cleartext-allowed", Warning, transient: false,
        meaning: "the password crossed the network in cleartext because --allow-cleartext allowed it",
        fix: "use scram-sha-256 in pg_hba.conf (a pooler's: PgBouncer's auth_type), or require TLS";
}

impl Code {
    pub fn from_id(id: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.id() == id)
    }

    /// The failure codes of the catalogue, then the warnings, as `--help` lists them.
    pub fn help_lines(severity: Severity) -> impl Iterator<Item = String> {
        let width = Code::ALL.iter().map(|c| c.id().len()).max().unwrap_or(0) + 2;
        Code::ALL
            .iter()
            .filter(move |c| c.severity() == severity)
            .map(move |c| format!("  {:<width$}{}", c.id(), c.meaning()))
    }

    /// The README's catalogue table (regenerated by `AKSARA_REGENERATE=1 cargo test --test cli docs`).
    pub fn markdown_table() -> String {
        let mut out = String::from("| code | severity | meaning | fix |\n|---|---|---|---|\n");
        for c in Code::ALL {
            let severity = match c.severity() {
                Severity::Failure => "failure",
                Severity::Warning => "warning",
            };
            out.push_str(&format!(
                "| `{}` | {severity} | {} | {} |\n",
                c.id(),
                c.meaning(),
                c.fix()
            ));
        }
        out
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.id()), "duplicate id {}", c.id());
            assert!(
                c.id()
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '-'),
                "{}",
                c.id()
            );
            assert_eq!(Code::from_id(c.id()), Some(*c));
        }
    }

    /// The pooler and replica modules name their codes as ids: each must be in the catalogue.
    #[test]
    fn the_pooler_and_replica_ids_are_codes() {
        let ids = [
            "pooler-unknown-database",
            "pooler-startup-parameter",
            "pooler-wait-timeout",
            "pooler-client-limit",
            "pooler-server-login-failing",
            "pooler-statement-mode",
            "pooler-console-not-allowed",
            "pgpool-no-password",
            "pgpool-children-busy",
            "pgpool-backends-down",
            "pooler-load-balancing",
            "pooler-prepared-statements",
            "pooler-session-state",
            "replica-key-at-primary",
            "primary-key-at-standby",
            "replica-replay-paused",
            "replica-lag",
        ];
        for id in ids {
            assert!(Code::from_id(id).is_some(), "{id} is not in the catalogue");
        }
    }

    #[test]
    fn warnings_are_never_transient() {
        for c in Code::ALL {
            if c.severity() == Severity::Warning {
                assert!(!c.is_transient(), "{c}");
            }
        }
    }
}
