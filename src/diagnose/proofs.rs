//! How each row of the failure map (docs/failure-map.md) is proven: the integration tests that
//! reproduce it against a real PostgreSQL in the configuration that causes it, or why it cannot
//! happen on a single Linux machine (then a unit test below feeds the server's words through
//! `diagnose`). `tests/cli/docs.rs` checks that every test named here exists and that every
//! scenario named here reproduces the row it is named for, so the column cannot go stale.

use crate::code::Code;

/// How one row is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Reproduced by these integration tests, as `module::test_function` of `tests/cli/`, or
    /// `module::test_function[scenario]` for one scenario of a test that runs several
    /// (`tests/cli/map_repro.rs` defines the scenarios).
    Reproduced(&'static [&'static str]),
    /// Cannot be produced here; unit-tested only, for this reason.
    UnitOnly(&'static str),
    /// Could be produced here, is not reproduced yet, for this reason.
    NotYet(&'static str),
}

/// The test that runs every scenario of `tests/cli/map_repro.rs` side by side with psql.
const SIDE_BY_SIDE: &str = "psql_compare::aksara_and_psql_agree_on_every_reproduced_failure";

macro_rules! side_by_side {
    ($scenario:literal) => {
        concat!(
            "psql_compare::aksara_and_psql_agree_on_every_reproduced_failure[",
            $scenario,
            "]"
        )
    };
}

/// Per server template (the `text` of `server_messages::TEMPLATES`), how it is proven.
pub const SERVER_PROOFS: &[(&str, Proof)] = &[
    (
        "password authentication failed for user \"%s\"",
        Proof::Reproduced(&[
            "doctor::auth_failed_is_fast_and_says_the_role_may_not_exist",
            "doctor::password_required",
            side_by_side!("wrong-password"),
        ]),
    ),
    (
        "Peer authentication failed for user \"%s\"",
        Proof::Reproduced(&[side_by_side!("peer-mismatch")]),
    ),
    (
        "Ident authentication failed for user \"%s\"",
        Proof::Reproduced(&[side_by_side!("ident-no-identd")]),
    ),
    (
        "GSSAPI authentication failed for user \"%s\"",
        Proof::UnitOnly(
            "needs a Kerberos KDC and a GSSAPI client; sqlx (aksara's driver) has no GSSAPI, so it stops when the server asks for GSSAPI, before the server could send this",
        ),
    ),
    (
        "SSPI authentication failed for user \"%s\"",
        Proof::UnitOnly("SSPI exists only on Windows servers"),
    ),
    (
        "PAM authentication failed for user \"%s\"",
        Proof::Reproduced(&[side_by_side!("pam-deny")]),
    ),
    (
        "BSD authentication failed for user \"%s\"",
        Proof::UnitOnly("BSD Authentication exists only on OpenBSD servers"),
    ),
    (
        "LDAP authentication failed for user \"%s\"",
        Proof::Reproduced(&[side_by_side!("ldap-unreachable")]),
    ),
    (
        "RADIUS authentication failed for user \"%s\"",
        Proof::Reproduced(&[side_by_side!("radius-silent")]),
    ),
    (
        "connection requires a valid client certificate",
        Proof::Reproduced(&["doctor::a_cert_only_pg_hba_line_asks_for_a_client_certificate"]),
    ),
    (
        "certificate authentication failed for user \"%s\"",
        Proof::Reproduced(&["client_cert::a_certificate_for_another_name_is_refused_as_psql_is"]),
    ),
    (
        "certificate validation (clientcert=verify-full) failed for user \"%s\": %s",
        Proof::UnitOnly(
            "PostgreSQL writes it to the server log only: the client hears the password method's refusal, reproduced in client_cert::clientcert_verify_full_refuses_a_certificate_for_another_name_in_the_password_s_words",
        ),
    ),
    (
        "role \"%s\" does not exist",
        Proof::Reproduced(&[
            "doctor::role_missing_under_trust",
            side_by_side!("role-missing"),
        ]),
    ),
    (
        "role \"%s\" is not permitted to log in",
        Proof::Reproduced(&[
            "doctor::a_nologin_role_is_told_to_get_login",
            side_by_side!("nologin"),
        ]),
    ),
    (
        "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
        Proof::Reproduced(&[
            "doctor::no_hba_entry_when_neither_tls_nor_plaintext_is_let_in",
            "doctor::ssl_required_when_pg_hba_only_accepts_tls",
            side_by_side!("no-hba-entry"),
        ]),
    ),
    (
        "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
        Proof::Reproduced(&[
            "doctor::a_reject_line_is_not_fixed_by_adding_a_line_below_it",
            side_by_side!("hba-reject"),
        ]),
    ),
    (
        "database \"%s\" does not exist",
        Proof::Reproduced(&[
            "doctor::database_missing",
            "doctor::a_missing_database_gets_the_close_names_that_exist",
            side_by_side!("database-missing"),
        ]),
    ),
    (
        "database \"%s\" is not currently accepting connections",
        Proof::Reproduced(&[
            "doctor::a_database_that_does_not_allow_connections",
            side_by_side!("allow-connections-false"),
        ]),
    ),
    (
        "permission denied for database \"%s\"",
        Proof::Reproduced(&[
            "doctor::permission_denied_without_connect_privilege",
            side_by_side!("no-connect-privilege"),
        ]),
    ),
    (
        "too many connections for role \"%s\"",
        Proof::Reproduced(&[
            "doctor::role_and_database_connection_limits_are_not_max_connections",
            side_by_side!("role-connection-limit"),
        ]),
    ),
    (
        "too many connections for database \"%s\"",
        Proof::Reproduced(&[
            "doctor::role_and_database_connection_limits_are_not_max_connections",
            side_by_side!("database-connection-limit"),
        ]),
    ),
    (
        "sorry, too many clients already",
        Proof::Reproduced(&[
            "doctor::too_many_connections",
            side_by_side!("too-many-clients"),
        ]),
    ),
    (
        "remaining connection slots are reserved for %s",
        Proof::Reproduced(&[side_by_side!("superuser-reserved")]),
    ),
    (
        "the database system is starting up",
        Proof::Reproduced(&[side_by_side!("starting-up")]),
    ),
    (
        "the database system is shutting down",
        Proof::Reproduced(&[
            "doctor::a_server_shutting_down_is_reported_as_shutting_down",
            side_by_side!("shutting-down"),
        ]),
    ),
    (
        "the database system is in recovery mode",
        Proof::Reproduced(&[side_by_side!("crash-recovery")]),
    ),
    (
        "the database system is not yet accepting connections",
        Proof::Reproduced(&[side_by_side!("not-consistent")]),
    ),
    (
        "the database system is not accepting connections",
        Proof::Reproduced(&[side_by_side!("hot-standby-off")]),
    ),
    (
        "must be superuser to connect during database shutdown",
        Proof::UnitOnly(
            "sent by PostgreSQL 14 and older only (a smart shutdown waiting for an exclusive backup); PostgreSQL 15 and later removed it, and the suite's server is 15",
        ),
    ),
    (
        "must be superuser to connect in binary upgrade mode",
        Proof::Reproduced(&[side_by_side!("binary-upgrade")]),
    ),
    (
        "unrecognized configuration parameter \"%s\"",
        Proof::Reproduced(&[side_by_side!("unknown-setting")]),
    ),
    (
        "invalid value for parameter \"%s\": %s",
        Proof::Reproduced(&[side_by_side!("invalid-setting-value")]),
    ),
    (
        "parameter \"%s\" cannot be changed now",
        Proof::Reproduced(&[side_by_side!("sighup-setting")]),
    ),
    (
        "parameter \"%s\" cannot be changed without restarting the server",
        Proof::Reproduced(&[side_by_side!("postmaster-setting")]),
    ),
    (
        "parameter \"%s\" cannot be changed",
        Proof::Reproduced(&[side_by_side!("internal-setting")]),
    ),
    (
        "parameter \"%s\" cannot be set after connection start",
        Proof::UnitOnly(
            "raised for a SET after login; at login it cannot arise: `ALTER ROLE/DATABASE ... SET` refuses such a parameter (checked against PostgreSQL 15), and options sent at start-up are applied before the connection counts as started",
        ),
    ),
    (
        "permission denied to set parameter \"%s\"",
        Proof::Reproduced(&[side_by_side!("superuser-setting")]),
    ),
];

/// Per client-side failure (the rows of "What the client sees", by code), how it is proven.
pub const CLIENT_PROOFS: &[(Code, Proof)] = &[
    (
        Code::DnsFailure,
        Proof::Reproduced(&["doctor::dns_failure"]),
    ),
    (
        Code::ConnectionRefused,
        Proof::Reproduced(&[
            "doctor::connection_refused_names_nearby_servers",
            "doctor::a_missing_socket_is_told_apart_from_a_refused_port",
            "doctor::a_server_on_the_other_loopback_address_is_not_told_to_start",
            side_by_side!("other-loopback-address"),
        ]),
    ),
    (
        Code::ConnectionTimeout,
        Proof::Reproduced(&["doctor::a_silent_server_times_out_within_the_bound"]),
    ),
    (
        Code::NotPostgres,
        Proof::Reproduced(&["hostile::each_unusual_login_failure_has_its_own_kind_and_code"]),
    ),
    (
        Code::SslUnsupported,
        Proof::Reproduced(&["doctor::ssl_unsupported"]),
    ),
    (
        Code::SslCertificate,
        Proof::Reproduced(&["doctor::ssl_certificate_name_mismatch_and_unknown_ca"]),
    ),
    (
        Code::UnexpectedError,
        Proof::UnitOnly(
            "the fallback for a client-side failure no other row names; each failure that can be produced has its own row",
        ),
    ),
    (
        Code::ServerError,
        Proof::Reproduced(&[
            "hostile::an_internal_error_keeps_its_sqlstate",
            side_by_side!("unknown-server-option"),
        ]),
    ),
];

/// The proof of a server template, when one is recorded.
pub fn server_proof(template: &str) -> Option<Proof> {
    SERVER_PROOFS
        .iter()
        .find(|(t, _)| *t == template)
        .map(|(_, p)| *p)
}

/// The proof of a client-side row, when one is recorded.
pub fn client_proof(code: Code) -> Option<Proof> {
    CLIENT_PROOFS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, p)| *p)
}

/// The map's "proven by" cell.
pub fn cell(proof: Option<Proof>) -> String {
    match proof {
        Some(Proof::Reproduced(tests)) => tests
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join("<br>"),
        Some(Proof::UnitOnly(why)) => format!("unit-tested only: {why}"),
        Some(Proof::NotYet(why)) => format!("**not reproduced yet**: {why}"),
        None => "**no proof recorded** (add it to src/diagnose/proofs.rs)".into(),
    }
}

/// The test every `side_by_side!` entry names (for the docs check).
pub const fn side_by_side_test() -> &'static str {
    SIDE_BY_SIDE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::{Attempt, FailureKind, ServerError};
    use crate::diagnose::{Context, code_of, diagnose, server_messages};
    use crate::dsn::{ConnString, Endpoint, Environment, Host};

    struct NoEnv;

    impl Environment for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
        fn os_user(&self) -> Option<String> {
            Some("app".into())
        }
        fn default_host(&self, _: u16) -> Host {
            Host::Tcp("localhost".into())
        }
        fn pgpass_password(&self, _: &str, _: u16, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    fn config() -> crate::dsn::ConnConfig {
        ConnString::parse("postgresql://app:pw@db.example.com:5432/shop")
            .unwrap()
            .resolve(&NoEnv)
            .unwrap()
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            host: Host::Tcp("db.example.com".into()),
            port: 5432,
        }
    }

    #[test]
    fn every_template_has_one_proof_and_every_proof_a_template() {
        let templates = server_messages::template_texts();
        for t in &templates {
            let n = SERVER_PROOFS.iter().filter(|(p, _)| p == t).count();
            assert_eq!(n, 1, "template `{t}` has {n} proofs");
        }
        for (p, _) in SERVER_PROOFS {
            assert!(templates.contains(p), "a proof for no template: `{p}`");
        }
    }

    /// The rows that cannot happen here: the server's words, as a remote server sends them,
    /// go through `diagnose` and come out with the row's code, the server's words and a hint.
    #[test]
    fn the_rows_that_cannot_happen_here_are_diagnosed_from_the_servers_words() {
        let cfg = config();
        let mut seen = 0;
        for (template, sqlstate) in server_messages::template_texts()
            .into_iter()
            .zip(server_messages::template_sqlstates())
        {
            if !matches!(server_proof(template), Some(Proof::UnitOnly(_))) {
                continue;
            }
            seen += 1;
            let message = template.replace("%s", "app");
            let cause = server_messages::classify(sqlstate, &message)
                .unwrap_or_else(|| panic!("`{message}` matches its own template"));
            let attempt = Attempt {
                endpoint: endpoint(),
                tls_mode: sqlx::postgres::PgSslMode::Require,
                failure: FailureKind::Server(ServerError {
                    sqlstate: sqlstate.into(),
                    message: message.clone(),
                    detail: None,
                    hint: None,
                    routine: None,
                }),
                elapsed: std::time::Duration::from_millis(5),
            };
            let d = diagnose(&cfg, &attempt, &Context::default());
            assert_eq!(d.code, code_of(&cause, true), "{message}");
            assert!(!d.hint.is_empty(), "{message}");
            assert!(d.code != Code::ServerError, "{message}");
        }
        assert!(seen >= 4, "the unit-only rows were found ({seen})");
        let attempt = Attempt {
            endpoint: endpoint(),
            tls_mode: sqlx::postgres::PgSslMode::Require,
            failure: FailureKind::Unexpected {
                message: "something new".into(),
            },
            elapsed: std::time::Duration::from_millis(5),
        };
        let d = diagnose(&cfg, &attempt, &Context::default());
        assert_eq!(d.code, Code::UnexpectedError);
        assert!(d.message.contains("something new"), "{}", d.message);
    }
}
