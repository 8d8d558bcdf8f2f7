//! The failure map (docs/failure-map.md), row by row, against real servers: each scenario puts
//! a real PostgreSQL in the configuration that makes it send one row's refusal (a `pam`,
//! `ldap`, `radius`, `ident` or `peer` line, a role or database limit, reserved slots, a
//! crash, a standby with `hot_standby = off`, binary-upgrade mode, ...), says what aksara must
//! name it (code, words of the message and the hint) and which of the hint's claims can be
//! checked against that server (the SQL it proposes names the real role and, run, lets the URL
//! in; the pg_hba line it blames is the line that matches; the address it points at listens).
//!
//! `tests/cli/psql_compare.rs` runs every scenario next to the real `psql` and writes
//! docs/psql-comparison.md; src/diagnose/proofs.rs names the scenarios as the proof of their
//! rows, and tests/cli/docs.rs checks that each named scenario reproduces its row.
//!
//! Servers that refuse everyone (starting up, in recovery, a standby without hot standby,
//! binary-upgrade mode) are started here with `postgres` directly ([`Postmaster`]), because
//! the harness waits for a server that is ready. No identd runs on this machine: the `ident`
//! line fails because the server cannot reach one on port 113, which is the usual way it fails.
//! PAM gets its own service file in /etc/pam.d (`pam_deny`), so that scenario needs root, as
//! the suite has in CI; LDAP and RADIUS point at a port where nothing answers.

use std::net::{TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{self, Auth, Cluster, ClusterConfig, Shared};

/// One row of the map, as a scenario: what it reproduces and what aksara must call it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// How proofs.rs names it: `...[name]`.
    pub name: &'static str,
    /// The map's row: the server template, or `client:<code>` for a client-side row.
    pub row: &'static str,
    /// The code aksara must give.
    pub code: &'static str,
    /// The configuration, as the comparison table shows it.
    pub setup: &'static str,
}

const fn spec(
    name: &'static str,
    row: &'static str,
    code: &'static str,
    setup: &'static str,
) -> Spec {
    Spec {
        name,
        row,
        code,
        setup,
    }
}

/// Every scenario, in the order of the comparison table.
pub const SPECS: &[Spec] = &[
    spec(
        "wrong-password",
        "password authentication failed for user \"%s\"",
        "auth-failed",
        "scram-sha-256, wrong password",
    ),
    spec(
        "peer-mismatch",
        "Peer authentication failed for user \"%s\"",
        "auth-failed",
        "`local ... peer`, the OS user is not the role",
    ),
    spec(
        "ident-no-identd",
        "Ident authentication failed for user \"%s\"",
        "auth-failed",
        "`host ... ident`, no identd on the client (port 113)",
    ),
    spec(
        "pam-deny",
        "PAM authentication failed for user \"%s\"",
        "auth-failed",
        "`local ... pam pamservice=...`, a PAM service that denies (pam_deny)",
    ),
    spec(
        "ldap-unreachable",
        "LDAP authentication failed for user \"%s\"",
        "auth-failed",
        "`local ... ldap`, the LDAP server does not answer",
    ),
    spec(
        "radius-silent",
        "RADIUS authentication failed for user \"%s\"",
        "auth-failed",
        "`local ... radius`, the RADIUS server does not answer (3 s)",
    ),
    spec(
        "role-missing",
        "role \"%s\" does not exist",
        "role-missing",
        "trust, the URL's role does not exist",
    ),
    spec(
        "nologin",
        "role \"%s\" is not permitted to log in",
        "role-cannot-login",
        "a NOLOGIN role",
    ),
    spec(
        "no-hba-entry",
        "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
        "no-hba-entry",
        "no pg_hba.conf line for the user over TCP",
    ),
    spec(
        "hba-reject",
        "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
        "hba-reject",
        "a `reject` line above a `scram-sha-256` line",
    ),
    spec(
        "database-missing",
        "database \"%s\" does not exist",
        "database-missing",
        "the URL's database does not exist",
    ),
    spec(
        "allow-connections-false",
        "database \"%s\" is not currently accepting connections",
        "database-not-accepting",
        "`ALLOW_CONNECTIONS false`",
    ),
    spec(
        "no-connect-privilege",
        "permission denied for database \"%s\"",
        "permission-denied",
        "CONNECT revoked from PUBLIC",
    ),
    spec(
        "role-connection-limit",
        "too many connections for role \"%s\"",
        "role-connection-limit",
        "`ALTER ROLE ... CONNECTION LIMIT 0`",
    ),
    spec(
        "database-connection-limit",
        "too many connections for database \"%s\"",
        "database-connection-limit",
        "`ALTER DATABASE ... CONNECTION LIMIT 0`",
    ),
    spec(
        "superuser-reserved",
        "remaining connection slots are reserved for %s",
        "too-many-connections",
        "`max_connections = 5`, `superuser_reserved_connections = 3`, 2 held",
    ),
    spec(
        "too-many-clients",
        "sorry, too many clients already",
        "too-many-connections",
        "`max_connections = 5`, 5 held",
    ),
    spec(
        "starting-up",
        "the database system is starting up",
        "server-starting",
        "a standby whose `restore_command` has not returned yet",
    ),
    spec(
        "shutting-down",
        "the database system is shutting down",
        "server-shutting-down",
        "a smart shutdown waiting for a connected client",
    ),
    spec(
        "crash-recovery",
        "the database system is in recovery mode",
        "server-starting",
        "a backend killed (SIGKILL): the server resets",
    ),
    spec(
        "not-consistent",
        "the database system is not yet accepting connections",
        "server-starting",
        "a hot standby from a base backup, before its consistent point (the WAL with the backup's end not restored yet)",
    ),
    spec(
        "hot-standby-off",
        "the database system is not accepting connections",
        "hot-standby-off",
        "a standby (`standby.signal`) with `hot_standby = off`",
    ),
    spec(
        "binary-upgrade",
        "must be superuser to connect in binary upgrade mode",
        "permission-denied",
        "the server started with `-b` (what pg_upgrade does)",
    ),
    spec(
        "unknown-setting",
        "unrecognized configuration parameter \"%s\"",
        "setting-rejected",
        "`options=-c no_such_setting=1`",
    ),
    spec(
        "invalid-setting-value",
        "invalid value for parameter \"%s\": %s",
        "setting-rejected",
        "`options=-c work_mem=lots`",
    ),
    spec(
        "sighup-setting",
        "parameter \"%s\" cannot be changed now",
        "setting-rejected",
        "`options=-c log_checkpoints=on` (a reload-only setting)",
    ),
    spec(
        "postmaster-setting",
        "parameter \"%s\" cannot be changed without restarting the server",
        "setting-rejected",
        "`options=-c shared_buffers=1MB`",
    ),
    spec(
        "internal-setting",
        "parameter \"%s\" cannot be changed",
        "setting-rejected",
        "`options=-c server_version=1`",
    ),
    spec(
        "superuser-setting",
        "permission denied to set parameter \"%s\"",
        "setting-rejected",
        "`options=-c log_statement=all` as an ordinary role",
    ),
    spec(
        "unknown-server-option",
        "client:server-error",
        "server-error",
        "`options=--no-such-switch`: a start-up option the server has no word for in the map",
    ),
    spec(
        "other-loopback-address",
        "client:connection-refused",
        "connection-refused",
        "the URL says `[::1]`, the server listens on 127.0.0.1 only",
    ),
];

/// A claim of the hint, checked against the server while the failure holds (or, for a fix,
/// by applying it and connecting with the same URL).
pub enum Claim {
    /// `sql` run as the superuser on `db` prints `want`: a fact the hint relies on.
    Query {
        cluster: &'static Cluster,
        db: String,
        sql: String,
        want: String,
    },
    /// The hint's backquoted SQL (the one starting with `starts`), run as the superuser,
    /// lets the same URL in.
    SqlFixWorks {
        cluster: &'static Cluster,
        starts: &'static str,
    },
    /// The hint's `add \`LINE\`` to pg_hba.conf, appended and reloaded, lets the URL in.
    HbaLineFixWorks { cluster: &'static Cluster },
    /// Something accepts TCP connections at this address (the hint says the server is there).
    Listens(String),
    /// Anything else, checked by the scenario itself after the observation.
    Check(&'static str, CheckFn),
}

/// A check of a claim, given the hint.
pub type CheckFn = Box<dyn FnOnce(&str) -> Result<(), String> + Send>;

/// A scenario set up: the failure holds until it is dropped.
pub struct Staged {
    pub spec: Spec,
    pub url: String,
    pub message_has: Vec<String>,
    pub hint_has: Vec<String>,
    pub hint_lacks: Vec<String>,
    pub claims: Vec<Claim>,
    /// Values that differ from run to run, and their placeholders, for the committed table.
    pub placeholders: Vec<(String, String)>,
}

impl Staged {
    fn new(spec: Spec, url: String) -> Staged {
        Staged {
            spec,
            url,
            message_has: Vec::new(),
            hint_has: Vec::new(),
            hint_lacks: Vec::new(),
            claims: Vec::new(),
            placeholders: Vec::new(),
        }
    }

    pub fn message(mut self, words: &str) -> Self {
        self.message_has.push(words.to_string());
        self
    }

    pub fn hint(mut self, words: &str) -> Self {
        self.hint_has.push(words.to_string());
        self
    }

    pub fn not_hint(mut self, words: &str) -> Self {
        self.hint_lacks.push(words.to_string());
        self
    }

    pub fn claim(mut self, claim: Claim) -> Self {
        self.claims.push(claim);
        self
    }

    pub fn place(mut self, value: &str, placeholder: &str) -> Self {
        self.placeholders
            .push((value.to_string(), placeholder.to_string()));
        self
    }

    fn cluster(self, cluster: &Cluster) -> Self {
        self.place(&cluster.port.to_string(), "[PORT]")
            .place(&cluster.socket_dir.display().to_string(), "[SOCKET_DIR]")
            .place(
                &support::encode(&cluster.socket_dir.display().to_string()),
                "[SOCKET_DIR]",
            )
            .place(&cluster.password, "[PASSWORD]")
    }
}

/// A scenario of the states this file does not set up itself (psql_compare drives them).
pub fn staged_on(name: &str, url: &str, cluster: &Cluster) -> Staged {
    Staged::new(spec_named(name), url.to_string()).cluster(cluster)
}

pub fn spec_named(name: &str) -> Spec {
    *SPECS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario `{name}`"))
}

/// The password every role of these scenarios gets, where one is needed.
pub const ROLE_PASSWORD: &str = "map-repro-pw";

/// A socket URL with a password (psql and aksara read the same one).
fn socket_url(cluster: &Cluster, user: &str, db: &str) -> String {
    format!("{}&password={ROLE_PASSWORD}", cluster.socket_url(user, db))
}

/// The scenarios that only read or add their own objects on the shared trust cluster.
pub fn on_shared_trust(name: &str) -> Staged {
    let cluster = support::shared(Shared::Trust);
    let spec = spec_named(name);
    let role = support::unique_name("map_role");
    let db = support::unique_name("map_db");
    let staged = |url: String| {
        Staged::new(spec, url)
            .cluster(cluster)
            .place(&role, "[ROLE]")
            .place(&db, "[DB]")
    };
    let q_role = format!("\"{role}\"");
    let q_db = format!("\"{db}\"");
    match name {
        "role-missing" => staged(cluster.url(&role, None, "postgres"))
            .message(&format!("the role \"{role}\" does not exist"))
            .hint(&format!("CREATE ROLE {q_role} LOGIN"))
            .claim(Claim::Query {
                cluster,
                db: "postgres".into(),
                sql: format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"),
                want: "0".into(),
            }),
        "nologin" => {
            cluster.psql("postgres", &format!("CREATE ROLE {role} NOLOGIN"));
            staged(cluster.url(&role, None, "postgres"))
                .message("may not log in (NOLOGIN)")
                .hint(&format!("ALTER ROLE {q_role} LOGIN;"))
                .claim(Claim::SqlFixWorks {
                    cluster,
                    starts: "ALTER ROLE",
                })
        }
        "database-missing" => staged(cluster.url("postgres", None, &db))
            .message(&format!("the database \"{db}\" does not exist"))
            .hint(&format!("CREATE DATABASE {q_db} OWNER \"postgres\";"))
            .claim(Claim::SqlFixWorks {
                cluster,
                starts: "CREATE DATABASE",
            }),
        "allow-connections-false" => {
            cluster.psql(
                "postgres",
                &format!("CREATE DATABASE {db} ALLOW_CONNECTIONS false"),
            );
            staged(cluster.url("postgres", None, &db))
                .message("ALLOW_CONNECTIONS false")
                .hint(&format!("ALTER DATABASE {q_db} ALLOW_CONNECTIONS true;"))
                .claim(Claim::SqlFixWorks {
                    cluster,
                    starts: "ALTER DATABASE",
                })
        }
        "no-connect-privilege" => {
            cluster.psql("postgres", &format!("CREATE DATABASE {db}"));
            cluster.psql(
                "postgres",
                &format!("CREATE ROLE {role} LOGIN; REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"),
            );
            staged(cluster.url(&role, None, &db))
                .message(&format!("permission denied for database \"{db}\""))
                .hint(&format!("GRANT CONNECT ON DATABASE {q_db} TO {q_role};"))
                .claim(Claim::SqlFixWorks {
                    cluster,
                    starts: "GRANT CONNECT",
                })
        }
        "role-connection-limit" => {
            cluster.psql(
                "postgres",
                &format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"),
            );
            staged(cluster.url(&role, None, "postgres"))
                .message(&format!("too many connections for role \"{role}\""))
                .hint(&format!("ALTER ROLE {q_role} CONNECTION LIMIT"))
                .not_hint("max_connections =")
                .claim(Claim::SqlFixWorks {
                    cluster,
                    starts: "ALTER ROLE",
                })
        }
        "database-connection-limit" => {
            // A superuser is not held to a database's limit: an ordinary role is.
            cluster.psql(
                "postgres",
                &format!("CREATE ROLE {role} LOGIN; CREATE DATABASE {db} CONNECTION LIMIT 0"),
            );
            staged(cluster.url(&role, None, &db))
                .message(&format!("too many connections for database \"{db}\""))
                .hint(&format!("ALTER DATABASE {q_db} CONNECTION LIMIT"))
                .not_hint("max_connections =")
                .claim(Claim::SqlFixWorks {
                    cluster,
                    starts: "ALTER DATABASE",
                })
        }
        "unknown-setting"
        | "invalid-setting-value"
        | "sighup-setting"
        | "postmaster-setting"
        | "internal-setting"
        | "superuser-setting" => setting_rejected(cluster, spec, &role),
        // No row of the map: the honest unknown, with the server's own words and hint.
        "unknown-server-option" => {
            cluster.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
            staged(format!(
                "{}?options=--no-such-switch",
                cluster.url(&role, None, "postgres")
            ))
            .message("answered: --no-such-switch requires a value (SQLSTATE 42601)")
            .hint("aksara has no diagnosis for this error (SQLSTATE 42601)")
        }
        other => panic!("`{other}` is not a shared-trust scenario"),
    }
}

/// A setting sent at login (`options=-c name=value`) that the server refuses.
fn setting_rejected(cluster: &'static Cluster, spec: Spec, role: &str) -> Staged {
    let (parameter, value) = match spec.name {
        "unknown-setting" => ("no_such_setting", "1"),
        "invalid-setting-value" => ("work_mem", "lots"),
        "sighup-setting" => ("log_checkpoints", "on"),
        "postmaster-setting" => ("shared_buffers", "1MB"),
        "internal-setting" => ("server_version", "1"),
        _ => ("log_statement", "all"),
    };
    cluster.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    let plain = cluster.url(role, None, "postgres");
    let url = format!("{plain}?options=-c%20{parameter}%3D{value}");
    Staged::new(spec, url)
        .cluster(cluster)
        .place(role, "[ROLE]")
        .message(&format!("refused the setting \"{parameter}\""))
        .hint(&format!("remove or correct `{parameter}`"))
        .claim(Claim::Check(
            "the same URL without the setting connects",
            Box::new(move |_| crate::psql_url(&plain, "SELECT 1").map(|_| ())),
        ))
}

fn pam_service_path() -> PathBuf {
    Path::new("/etc/pam.d").join(format!("aksara-test-deny-{}", std::process::id()))
}

/// The PAM service the `pam` line names: denies everyone (written once per test process,
/// removed by [`remove_pam_service`]).
fn pam_service() -> &'static str {
    static SERVICE: OnceLock<String> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let path = pam_service_path();
        std::fs::write(
            &path,
            "# Written by aksara's tests (tests/cli/map_repro.rs) for one test run.\nauth required pam_deny.so\naccount required pam_permit.so\n",
        )
        .unwrap_or_else(|e| {
            panic!(
                "the PAM scenario writes {} and needs root: {e}",
                path.display()
            )
        });
        path.file_name().unwrap().to_string_lossy().into_owned()
    })
}

/// Removes the PAM service file, once the scenarios that use it are done.
pub fn remove_pam_service() {
    let _ = std::fs::remove_file(pam_service_path());
}

/// A port on 127.0.0.1 where nothing answers UDP or TCP (bound by no one after this).
fn silent_port() -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    udp.local_addr().unwrap().port()
}

/// One cluster for every pg_hba scenario: a line per method, each for its own role.
fn hba_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let nowhere = silent_port();
        let cluster = Cluster::start(ClusterConfig {
            hba: Some(vec![
                "local all postgres scram-sha-256".into(),
                "local all peer_user peer".into(),
                format!("local all pam_user pam pamservice={}", pam_service()),
                format!("local all ldap_user ldap ldapserver=127.0.0.1 ldapport={nowhere} ldapprefix=\"cn=\" ldapsuffix=\",dc=example,dc=com\""),
                format!("local all radius_user radius radiusservers=127.0.0.1 radiussecrets=secret radiusports={nowhere}"),
                "host all ident_user 127.0.0.1/32 ident".into(),
                "host all reject_user 127.0.0.1/32 reject".into(),
                "host all reject_user 127.0.0.1/32 scram-sha-256".into(),
                "host all postgres 127.0.0.1/32 scram-sha-256".into(),
                "host all peer_user 127.0.0.1/32 scram-sha-256".into(),
                "local all all scram-sha-256".into(),
            ]),
            ..ClusterConfig::default()
        });
        for role in [
            "peer_user",
            "pam_user",
            "ldap_user",
            "radius_user",
            "ident_user",
            "reject_user",
            "nohba_user",
        ] {
            cluster.psql(
                "postgres",
                &format!("CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'"),
            );
        }
        cluster
    })
}

/// The first pg_hba line that applies to `user` over `kind` (`local` or `host`) is `method`.
fn first_line_is(cluster: &'static Cluster, kind: &str, user: &str, method: &str) -> Claim {
    Claim::Query {
        cluster,
        db: "postgres".into(),
        sql: format!(
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = '{kind}' \
             AND ('{user}' = ANY(user_name) OR 'all' = ANY(user_name)) ORDER BY line_number LIMIT 1"
        ),
        want: method.into(),
    }
}

/// The pg_hba scenarios, on [`hba_cluster`].
pub fn on_hba_cluster(name: &str) -> Staged {
    let cluster = hba_cluster();
    let spec = spec_named(name);
    let method_failed = |user: &str, method: &str, said: &str| {
        Staged::new(spec, socket_url(cluster, user, "postgres"))
            .cluster(cluster)
            .message(&format!("{said} authentication failed for user \"{user}\""))
            .hint(&format!(
                "pg_hba.conf sends user \"{user}\" to {said} authentication"
            ))
            .claim(first_line_is(cluster, "local", user, method))
    };
    match name {
        "wrong-password" => Staged::new(spec, cluster.url("postgres", Some("wrong"), "postgres"))
            .cluster(cluster)
            .message("password authentication failed for user \"postgres\"")
            .hint("ALTER ROLE \"postgres\" WITH PASSWORD")
            .claim(first_line_is(cluster, "host", "postgres", "scram-sha-256")),
        "peer-mismatch" => Staged::new(spec, socket_url(cluster, "peer_user", "postgres"))
            .cluster(cluster)
            .message("Peer authentication failed for user \"peer_user\"")
            .hint("connect over TCP with a password")
            .claim(first_line_is(cluster, "local", "peer_user", "peer"))
            .claim(Claim::Check(
                "over TCP with its password the role gets in",
                Box::new(move |_| {
                    let url = cluster.url("peer_user", Some(ROLE_PASSWORD), "postgres");
                    crate::psql_url(&url, "SELECT 1").map(|_| ())
                }),
            )),
        "ident-no-identd" => Staged::new(
            spec,
            cluster.url("ident_user", Some(ROLE_PASSWORD), "postgres"),
        )
        .cluster(cluster)
        .message("Ident authentication failed for user \"ident_user\"")
        .hint("ident server")
        .not_hint("connect over TCP")
        .claim(first_line_is(cluster, "host", "ident_user", "ident"))
        .claim(Claim::Check(
            "no identd answers on port 113 here",
            Box::new(|_| match TcpStream::connect("127.0.0.1:113") {
                Ok(_) => Err("something listens on 127.0.0.1:113".into()),
                Err(_) => Ok(()),
            }),
        )),
        "pam-deny" => method_failed("pam_user", "pam", "PAM"),
        "ldap-unreachable" => method_failed("ldap_user", "ldap", "LDAP"),
        "radius-silent" => method_failed("radius_user", "radius", "RADIUS"),
        "no-hba-entry" => Staged::new(
            spec,
            cluster.url("nohba_user", Some(ROLE_PASSWORD), "postgres"),
        )
        .cluster(cluster)
        .message("has no line that lets user \"nohba_user\" connect to database \"postgres\" from 127.0.0.1")
        .hint("host  postgres  nohba_user  127.0.0.1/32  scram-sha-256")
        .claim(Claim::HbaLineFixWorks { cluster }),
        "hba-reject" => Staged::new(
            spec,
            cluster.url("reject_user", Some(ROLE_PASSWORD), "postgres"),
        )
        .cluster(cluster)
        .message("has a `reject` line that matches user \"reject_user\"")
        .hint("first matching line wins")
        .not_hint("add `host")
        .claim(first_line_is(cluster, "host", "reject_user", "reject"))
        .claim(Claim::Query {
            cluster,
            db: "postgres".into(),
            sql: "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND 'reject_user' = ANY(user_name) AND auth_method = 'scram-sha-256'".into(),
            want: "1".into(),
        }),
        other => panic!("`{other}` is not a pg_hba scenario"),
    }
}

/// The URL says `[::1]`, the server listens on 127.0.0.1 only.
pub fn other_loopback() -> Staged {
    let cluster = support::shared(Shared::Scram);
    let url = format!(
        "postgresql://postgres:{}@[::1]:{}/postgres",
        cluster.password, cluster.port
    );
    let there = format!("127.0.0.1:{}", cluster.port);
    Staged::new(spec_named("other-loopback-address"), url)
        .cluster(cluster)
        .message(&format!("but PostgreSQL runs at {there}"))
        .hint("listen_addresses")
        .not_hint("start the server:")
        .claim(Claim::Listens(there))
}

/// A trust cluster whose connection slots the scenario fills: 5, 3 kept for superusers.
pub fn crowded_cluster() -> Cluster {
    Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        settings: vec![
            ("max_connections".into(), "5".into()),
            ("superuser_reserved_connections".into(), "3".into()),
        ],
        ..ClusterConfig::default()
    })
}

/// Slots full: reserved for superusers (2 held) or all (5 held, checked by the caller: no
/// query gets in then).
pub fn crowded(cluster: &'static Cluster, name: &str) -> Staged {
    let spec = spec_named(name);
    let role = "crowd_user";
    let _ = cluster.try_psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    let staged = Staged::new(spec, cluster.url(role, None, "postgres"))
        .cluster(cluster)
        .hint("max_connections");
    match name {
        "superuser-reserved" => staged
            .message("remaining connection slots are reserved for non-replication superuser connections")
            .claim(Claim::Query {
                cluster,
                db: "postgres".into(),
                sql: "SELECT count(*) + 1 >= current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()".into(),
                want: "t".into(),
            }),
        _ => staged.message("sorry, too many clients already"),
    }
}

/// A postmaster started here on a harness cluster's data directory (whose own postmaster is
/// stopped), for states the harness's start would wait out. Stopped (SIGQUIT) when dropped.
pub struct Postmaster {
    child: Child,
}

impl Postmaster {
    pub fn start(cluster: &Cluster, args: &[&str]) -> Postmaster {
        assert!(!cluster.is_running(), "stop the harness's postmaster first");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&cluster.log_file)
            .expect("open the server log");
        let mut cmd = Command::new(&support::bins().postgres);
        cmd.arg("-D")
            .arg(&cluster.data_dir)
            .args(args)
            .env_clear()
            .env("LC_ALL", "C")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .process_group(0);
        if let Some(user) = support::server_user() {
            cmd.uid(user.uid).gid(user.gid);
        }
        Postmaster {
            child: cmd.spawn().expect("spawn postgres"),
        }
    }

    /// Stops it (immediate shutdown) and waits until it has exited.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal("QUIT", self.child.id());
            let _ = self.child.wait();
        }
    }
}

impl Drop for Postmaster {
    fn drop(&mut self) {
        self.stop_now();
    }
}

pub fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// psql's first line of error for `url` (`Ok` when it connected).
pub fn psql_first_error(url: &str) -> Result<(), String> {
    match crate::psql_url(url, "SELECT 1") {
        Ok(_) => Ok(()),
        Err(e) => Err(e.lines().next().unwrap_or_default().to_string()),
    }
}

/// Waits until psql's error for `url` contains `words` (the server reached the state).
pub fn wait_for_refusal(cluster: &Cluster, url: &str, words: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = psql_first_error(url);
        if got.as_ref().err().is_some_and(|e| e.contains(words)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never said `{words}` (last: {got:?}); its log:\n{}",
            cluster.log_contents()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `url` connects again.
pub fn wait_until_accepting(cluster: &Cluster, url: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = psql_first_error(url);
        if got.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still refused after 30 s: {got:?}; log:\n{}",
                cluster.log_contents()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pg_controldata`'s "Database cluster state" of a data directory.
pub fn cluster_state(data_dir: &Path) -> String {
    let mut cmd = Command::new(support::bins().bindir.join("pg_controldata"));
    cmd.arg(data_dir).env("LC_ALL", "C");
    let out = cmd.output().expect("run pg_controldata");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Database cluster state:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The pids of the client backends other than the asking one.
pub fn client_backends(cluster: &Cluster) -> Vec<u32> {
    cluster
        .psql(
            "postgres",
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid",
        )
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A file in the cluster's folder, owned by the server user (recovery signal files).
pub fn server_file(cluster: &Cluster, name: &str, text: &str) -> PathBuf {
    let path = cluster.data_dir.join(name);
    std::fs::write(&path, text).expect("write a file in the data directory");
    if let Some(user) = support::server_user() {
        std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid)).expect("chown");
    }
    path
}

/// A low-level base backup of `primary` (`pg_backup_start` ... `pg_backup_stop`) into the
/// stopped `standby`'s data directory, keeping the standby's own settings and pg_hba, with a
/// WAL segment switch in between so the backup ends in a later segment than it starts; the
/// standby gets `standby.signal`. Returns the name of the WAL segment holding the backup's
/// end: the standby is not consistent before it has replayed it.
pub fn base_backup_across_segments(primary: &Cluster, standby: &Cluster) -> String {
    let keep: Vec<(PathBuf, Vec<u8>)> = ["harness.conf", "pg_hba.conf"]
        .iter()
        .map(|f| {
            let path = standby.data_dir.join(f);
            let bytes = std::fs::read(&path).expect("read the standby's own file");
            (path, bytes)
        })
        .collect();
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .status()
            .expect("run cp");
        assert!(
            status.success(),
            "cp -a {} {}",
            from.display(),
            to.display()
        );
    };
    let rt = crate::runtime();
    let (labelfile, segment) = rt.block_on(async {
        use sqlx::Connection as _;
        let options: sqlx::postgres::PgConnectOptions = primary
            .url("postgres", None, "postgres")
            .parse()
            .expect("the URL parses");
        let mut c = sqlx::PgConnection::connect_with(&options)
            .await
            .expect("connect to the primary");
        sqlx::query("SELECT pg_backup_start('map_repro', true)")
            .execute(&mut c)
            .await
            .expect("pg_backup_start");
        copy(&primary.data_dir, &standby.data_dir);
        sqlx::query("CREATE TABLE IF NOT EXISTS map_repro_backup AS SELECT 1 AS x")
            .execute(&mut c)
            .await
            .expect("a write");
        sqlx::query("SELECT pg_switch_wal()")
            .execute(&mut c)
            .await
            .expect("pg_switch_wal");
        let (lsn, label): (String, String) =
            sqlx::query_as("SELECT lsn::text, labelfile FROM pg_backup_stop(false)")
                .fetch_one(&mut c)
                .await
                .expect("pg_backup_stop");
        let segment: String = sqlx::query_scalar("SELECT pg_walfile_name($1::pg_lsn)")
            .bind(&lsn)
            .fetch_one(&mut c)
            .await
            .expect("pg_walfile_name");
        let _ = c.close().await;
        (label, segment)
    });
    // The WAL up to the backup's end, then the standby's own files back over the copy.
    copy(
        &primary.data_dir.join("pg_wal"),
        &standby.data_dir.join("pg_wal"),
    );
    for stale in ["postmaster.pid", "postmaster.opts"] {
        let _ = std::fs::remove_file(standby.data_dir.join(stale));
    }
    for (path, bytes) in keep {
        std::fs::write(&path, bytes).expect("restore the standby's own file");
    }
    server_file(standby, "backup_label", &labelfile);
    server_file(standby, "standby.signal", "");
    segment
}

/// Issue 12: the looks around a failure are bounded. A Docker engine that takes seconds to
/// answer `docker ps` (a stand-in `docker`: no Docker engine can run on these machines) used to
/// hold up a refused port's report for as long; the lookup now shares the nearby probes' budget
/// and the report comes at once, with the hint it can give without Docker.
#[test]
fn a_slow_docker_engine_does_not_hold_up_a_refused_port() {
    use std::os::unix::fs::PermissionsExt;
    let stand_in = tempfile::tempdir().unwrap();
    let docker = stand_in.path().join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\n# Stand-in for a docker CLI whose engine is slow to answer (aksara's tests).\nexec sleep 5\n",
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        stand_in.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = support::free_port();
    let dir = crate::project();
    let started = Instant::now();
    let out = crate::run(
        crate::aksara(dir.path())
            .args(["doctor", "--format", "json", "--url"])
            .arg(format!("postgresql://app@127.0.0.1:{port}/app"))
            .env("PATH", path)
            // The engine's socket is "there", so doctor asks the CLI.
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    );
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("\"connection-refused\""), "{out:?}");
    // The stand-in sleeps 5 s; the budget is 300 ms (plus process start on a loaded machine).
    assert!(took < Duration::from_secs(2), "took {took:?}: {out:?}");
}
