//! The map of what a PostgreSQL server says when it refuses a connection: SQLSTATE and message
//! template → the cause. One SQLSTATE covers many causes (28000 is "invalid authorization" for a
//! missing role, NOLOGIN, pg_hba and client certificates alike), so the message decides; this
//! table is the only place that reads server messages, and it matches whole templates (as the
//! server's sources write them, `%s` for the values), never fragments.
//!
//! Templates are from PostgreSQL 15–17: `src/backend/libpq/auth.c` (ClientAuthentication,
//! auth_failed), `utils/init/postinit.c` (CheckMyDatabase, InitPostgres),
//! `utils/init/miscinit.c` (InitializeSessionUserId), `postmaster/postmaster.c`
//! (ProcessStartupPacket, canAcceptConnections), `utils/misc/guc.c` (startup options). A server
//! with translated messages (`lc_messages`) matches nothing here: its errors are reported as
//! `server-error` with its own words, never guessed.

/// What the server's refusal means, with the values the message named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    PasswordFailed,
    /// Peer, ident, GSSAPI, SSPI, PAM, BSD, LDAP, RADIUS: the method that failed.
    MethodFailed {
        method: &'static str,
    },
    ClientCertificateRequired,
    ClientCertificateRejected,
    RoleMissing,
    RoleNoLogin,
    HbaNoEntry {
        client: String,
        encryption: String,
    },
    HbaRejects {
        client: String,
        encryption: String,
    },
    DatabaseMissing,
    DatabaseNotAccepting,
    NoConnectPrivilege,
    TooManyForRole,
    TooManyForDatabase,
    TooManyClients,
    Starting,
    ShuttingDown,
    InRecovery,
    NotYetConsistent,
    HotStandbyOff,
    SuperuserOnly,
    SettingRejected {
        parameter: String,
    },
}

struct Template {
    sqlstate: &'static str,
    text: &'static str,
    cause: fn(&[&str]) -> Cause,
}

/// The map, in the order the server's sources raise them.
const TEMPLATES: &[Template] = &[
    Template {
        sqlstate: "28P01",
        text: "password authentication failed for user \"%s\"",
        cause: |_| Cause::PasswordFailed,
    },
    Template {
        sqlstate: "28000",
        text: "Peer authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "peer" },
    },
    Template {
        sqlstate: "28000",
        text: "Ident authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "ident" },
    },
    Template {
        sqlstate: "28000",
        text: "GSSAPI authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "GSSAPI" },
    },
    Template {
        sqlstate: "28000",
        text: "SSPI authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "SSPI" },
    },
    Template {
        sqlstate: "28000",
        text: "PAM authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "PAM" },
    },
    Template {
        sqlstate: "28000",
        text: "BSD authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "BSD" },
    },
    Template {
        sqlstate: "28000",
        text: "LDAP authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "LDAP" },
    },
    Template {
        sqlstate: "28000",
        text: "RADIUS authentication failed for user \"%s\"",
        cause: |_| Cause::MethodFailed { method: "RADIUS" },
    },
    Template {
        sqlstate: "28000",
        text: "connection requires a valid client certificate",
        cause: |_| Cause::ClientCertificateRequired,
    },
    Template {
        sqlstate: "28000",
        text: "certificate authentication failed for user \"%s\"",
        cause: |_| Cause::ClientCertificateRejected,
    },
    Template {
        sqlstate: "28000",
        text: "certificate validation (clientcert=verify-full) failed for user \"%s\": %s",
        cause: |_| Cause::ClientCertificateRejected,
    },
    Template {
        sqlstate: "28000",
        text: "role \"%s\" does not exist",
        cause: |_| Cause::RoleMissing,
    },
    Template {
        sqlstate: "28000",
        text: "role \"%s\" is not permitted to log in",
        cause: |_| Cause::RoleNoLogin,
    },
    Template {
        sqlstate: "28000",
        text: "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
        cause: |v| Cause::HbaNoEntry {
            client: v[0].into(),
            encryption: v[3].into(),
        },
    },
    Template {
        sqlstate: "28000",
        text: "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
        cause: |v| Cause::HbaRejects {
            client: v[0].into(),
            encryption: v[3].into(),
        },
    },
    Template {
        sqlstate: "3D000",
        text: "database \"%s\" does not exist",
        cause: |_| Cause::DatabaseMissing,
    },
    Template {
        sqlstate: "55000",
        text: "database \"%s\" is not currently accepting connections",
        cause: |_| Cause::DatabaseNotAccepting,
    },
    Template {
        sqlstate: "42501",
        text: "permission denied for database \"%s\"",
        cause: |_| Cause::NoConnectPrivilege,
    },
    Template {
        sqlstate: "53300",
        text: "too many connections for role \"%s\"",
        cause: |_| Cause::TooManyForRole,
    },
    Template {
        sqlstate: "53300",
        text: "too many connections for database \"%s\"",
        cause: |_| Cause::TooManyForDatabase,
    },
    Template {
        sqlstate: "53300",
        text: "sorry, too many clients already",
        cause: |_| Cause::TooManyClients,
    },
    Template {
        sqlstate: "53300",
        text: "remaining connection slots are reserved for %s",
        cause: |_| Cause::TooManyClients,
    },
    Template {
        sqlstate: "57P03",
        text: "the database system is starting up",
        cause: |_| Cause::Starting,
    },
    Template {
        sqlstate: "57P03",
        text: "the database system is shutting down",
        cause: |_| Cause::ShuttingDown,
    },
    Template {
        sqlstate: "57P03",
        text: "the database system is in recovery mode",
        cause: |_| Cause::InRecovery,
    },
    Template {
        sqlstate: "57P03",
        text: "the database system is not yet accepting connections",
        cause: |_| Cause::NotYetConsistent,
    },
    Template {
        sqlstate: "57P03",
        text: "the database system is not accepting connections",
        cause: |_| Cause::HotStandbyOff,
    },
    Template {
        sqlstate: "42501",
        text: "must be superuser to connect during database shutdown",
        cause: |_| Cause::SuperuserOnly,
    },
    Template {
        sqlstate: "42501",
        text: "must be superuser to connect in binary upgrade mode",
        cause: |_| Cause::SuperuserOnly,
    },
    Template {
        sqlstate: "42704",
        text: "unrecognized configuration parameter \"%s\"",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
    Template {
        sqlstate: "22023",
        text: "invalid value for parameter \"%s\": %s",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
    Template {
        sqlstate: "55P02",
        text: "parameter \"%s\" cannot be changed now",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
    Template {
        sqlstate: "55P02",
        text: "parameter \"%s\" cannot be changed without restarting the server",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
    Template {
        sqlstate: "55P02",
        text: "parameter \"%s\" cannot be changed",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
    Template {
        sqlstate: "55P02",
        text: "parameter \"%s\" cannot be set after connection start",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
    Template {
        sqlstate: "42501",
        text: "permission denied to set parameter \"%s\"",
        cause: |v| Cause::SettingRejected {
            parameter: v[0].into(),
        },
    },
];

/// The template texts of the map, in its order (for the proofs and their checks).
pub fn template_texts() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.text).collect()
}

/// The SQLSTATE of each template, in the order of [`template_texts`].
pub fn template_sqlstates() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.sqlstate).collect()
}

/// Whether `message` is one of the server's login refusals, whatever SQLSTATE came with it (a
/// pooler relays them under its own, see `pooler::PoolerError::ServerLoginRefused`).
pub fn is_login_refusal(message: &str) -> bool {
    TEMPLATES
        .iter()
        .any(|t| match_template(t.text, message).is_some())
}

/// The cause of a login refusal relayed without the server's SQLSTATE (a pooler sends its own):
/// the cause of the templates the whole message matches, when they all say the same.
pub fn classify_relayed(message: &str) -> Option<Cause> {
    let mut causes = TEMPLATES
        .iter()
        .filter_map(|t| match_template(t.text, message).map(|values| (t.cause)(&values)));
    let first = causes.next()?;
    causes.all(|other| other == first).then_some(first)
}

/// The cause of a server's refusal, when the SQLSTATE and the whole message match a template.
pub fn classify(sqlstate: &str, message: &str) -> Option<Cause> {
    TEMPLATES
        .iter()
        .filter(|t| t.sqlstate == sqlstate)
        .find_map(|t| match_template(t.text, message).map(|values| (t.cause)(&values)))
}

/// The values `%s` stood for, when `message` is `template` with each `%s` replaced. The last
/// `%s` takes the rest of the message; the others the shortest text that lets the rest match.
fn match_template<'m>(template: &str, message: &'m str) -> Option<Vec<&'m str>> {
    let pieces: Vec<&str> = template.split("%s").collect();
    let rest = message.strip_prefix(pieces[0])?;
    let mut values = Vec::new();
    if pieces.len() == 1 {
        return rest.is_empty().then_some(values);
    }
    match_rest(&pieces[1..], rest, &mut values).then_some(values)
}

fn match_rest<'m>(pieces: &[&str], text: &'m str, values: &mut Vec<&'m str>) -> bool {
    let (literal, later) = (pieces[0], &pieces[1..]);
    if later.is_empty() {
        // The last literal ends the message.
        return match text.strip_suffix(literal) {
            Some(value) => {
                values.push(value);
                true
            }
            None => false,
        };
    }
    let mut from = 0;
    while let Some(found) = text[from..].find(literal) {
        let at = from + found;
        values.push(&text[..at]);
        if match_rest(later, &text[at + literal.len()..], values) {
            return true;
        }
        values.pop();
        from = at + literal.len().max(1);
        if from > text.len() {
            break;
        }
    }
    false
}

/// The map as a markdown table, for docs/failure-map.md (a test keeps the file equal to it).
pub fn markdown_table(code_of: impl Fn(&Cause) -> String) -> String {
    let mut out = String::from(
        "| SQLSTATE | server message (template) | code | proven by |\n|---|---|---|---|\n",
    );
    for t in TEMPLATES {
        // Example values make the cause; the code is what diagnose gives it.
        let filler: Vec<&str> = vec!["x"; 4];
        let cause = (t.cause)(&filler);
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            t.sqlstate,
            t.text,
            code_of(&cause),
            super::proofs::cell(super::proofs::server_proof(t.text))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_refusal_is_read_by_its_whole_message_without_its_sqlstate() {
        assert_eq!(
            classify_relayed("too many connections for role \"app\""),
            Some(Cause::TooManyForRole)
        );
        assert_eq!(
            classify_relayed("database \"app\" does not exist"),
            Some(Cause::DatabaseMissing)
        );
        assert_eq!(
            classify_relayed("the database system is shutting down"),
            Some(Cause::ShuttingDown)
        );
        // A fragment, or words of the pooler's own, are not a server refusal.
        assert_eq!(classify_relayed("too many connections for role"), None);
        assert_eq!(
            classify_relayed("no more connections allowed (max_client_conn)"),
            None
        );
    }

    #[test]
    fn templates_match_whole_messages_only() {
        assert_eq!(
            classify("28000", "role \"app\" is not permitted to log in"),
            Some(Cause::RoleNoLogin)
        );
        assert_eq!(
            classify("28000", "role \"app\" does not exist"),
            Some(Cause::RoleMissing)
        );
        // A different SQLSTATE with the same words is not the same cause.
        assert_eq!(classify("XX000", "role \"app\" does not exist"), None);
        // A fragment is not enough.
        assert_eq!(
            classify("28000", "something about role \"app\" does not exist"),
            None
        );
    }

    #[test]
    fn hba_values_are_taken_from_the_message() {
        let m = "no pg_hba.conf entry for host \"127.0.0.1\", user \"a, b\", database \"d\", no encryption";
        assert_eq!(
            classify("28000", m),
            Some(Cause::HbaNoEntry {
                client: "127.0.0.1".into(),
                encryption: "no encryption".into()
            })
        );
        let r = "pg_hba.conf rejects connection for host \"[local]\", user \"u\", database \"d\", SSL encryption";
        assert_eq!(
            classify("28000", r),
            Some(Cause::HbaRejects {
                client: "[local]".into(),
                encryption: "SSL encryption".into()
            })
        );
    }

    #[test]
    fn the_standby_refusals_are_told_apart() {
        assert_eq!(
            classify("57P03", "the database system is not accepting connections"),
            Some(Cause::HotStandbyOff)
        );
        assert_eq!(
            classify(
                "57P03",
                "the database system is not yet accepting connections"
            ),
            Some(Cause::NotYetConsistent)
        );
    }

    #[test]
    fn a_translated_message_matches_nothing() {
        assert_eq!(classify("28000", "la función «app» no existe"), None);
    }
}
