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

macro_rules! t {
    ($state:literal, $text:literal, $cause:expr) => {
        Template {
            sqlstate: $state,
            text: $text,
            cause: $cause,
        }
    };
}

fn method(m: &'static str) -> fn(&[&str]) -> Cause {
    // One function per method keeps the table a list of literals.
    match m {
        "peer" => |_| Cause::MethodFailed { method: "peer" },
        "ident" => |_| Cause::MethodFailed { method: "ident" },
        "GSSAPI" => |_| Cause::MethodFailed { method: "GSSAPI" },
        "SSPI" => |_| Cause::MethodFailed { method: "SSPI" },
        "PAM" => |_| Cause::MethodFailed { method: "PAM" },
        "BSD" => |_| Cause::MethodFailed { method: "BSD" },
        "LDAP" => |_| Cause::MethodFailed { method: "LDAP" },
        _ => |_| Cause::MethodFailed { method: "RADIUS" },
    }
}

fn templates() -> Vec<Template> {
    vec![
        t!(
            "28P01",
            "password authentication failed for user \"%s\"",
            |_| Cause::PasswordFailed
        ),
        t!(
            "28000",
            "Peer authentication failed for user \"%s\"",
            method("peer")
        ),
        t!(
            "28000",
            "Ident authentication failed for user \"%s\"",
            method("ident")
        ),
        t!(
            "28000",
            "GSSAPI authentication failed for user \"%s\"",
            method("GSSAPI")
        ),
        t!(
            "28000",
            "SSPI authentication failed for user \"%s\"",
            method("SSPI")
        ),
        t!(
            "28000",
            "PAM authentication failed for user \"%s\"",
            method("PAM")
        ),
        t!(
            "28000",
            "BSD authentication failed for user \"%s\"",
            method("BSD")
        ),
        t!(
            "28000",
            "LDAP authentication failed for user \"%s\"",
            method("LDAP")
        ),
        t!(
            "28000",
            "RADIUS authentication failed for user \"%s\"",
            method("RADIUS")
        ),
        t!(
            "28000",
            "connection requires a valid client certificate",
            |_| Cause::ClientCertificateRequired
        ),
        t!(
            "28000",
            "certificate authentication failed for user \"%s\"",
            |_| Cause::ClientCertificateRejected
        ),
        t!(
            "28000",
            "certificate validation (clientcert=verify-full) failed for user \"%s\": %s",
            |_| Cause::ClientCertificateRejected
        ),
        t!("28000", "role \"%s\" does not exist", |_| {
            Cause::RoleMissing
        }),
        t!("28000", "role \"%s\" is not permitted to log in", |_| {
            Cause::RoleNoLogin
        }),
        t!(
            "28000",
            "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
            |v| Cause::HbaNoEntry {
                client: v[0].into(),
                encryption: v[3].into()
            }
        ),
        t!(
            "28000",
            "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
            |v| Cause::HbaRejects {
                client: v[0].into(),
                encryption: v[3].into()
            }
        ),
        t!("3D000", "database \"%s\" does not exist", |_| {
            Cause::DatabaseMissing
        }),
        t!(
            "55000",
            "database \"%s\" is not currently accepting connections",
            |_| Cause::DatabaseNotAccepting
        ),
        t!("42501", "permission denied for database \"%s\"", |_| {
            Cause::NoConnectPrivilege
        }),
        t!("53300", "too many connections for role \"%s\"", |_| {
            Cause::TooManyForRole
        }),
        t!("53300", "too many connections for database \"%s\"", |_| {
            Cause::TooManyForDatabase
        }),
        t!("53300", "sorry, too many clients already", |_| {
            Cause::TooManyClients
        }),
        t!(
            "53300",
            "remaining connection slots are reserved for %s",
            |_| Cause::TooManyClients
        ),
        t!("57P03", "the database system is starting up", |_| {
            Cause::Starting
        }),
        t!("57P03", "the database system is shutting down", |_| {
            Cause::ShuttingDown
        }),
        t!("57P03", "the database system is in recovery mode", |_| {
            Cause::InRecovery
        }),
        t!(
            "57P03",
            "the database system is not yet accepting connections",
            |_| Cause::NotYetConsistent
        ),
        t!(
            "57P03",
            "the database system is not accepting connections",
            |_| Cause::HotStandbyOff
        ),
        t!(
            "42501",
            "must be superuser to connect during database shutdown",
            |_| Cause::SuperuserOnly
        ),
        t!(
            "42501",
            "must be superuser to connect in binary upgrade mode",
            |_| Cause::SuperuserOnly
        ),
        t!(
            "42704",
            "unrecognized configuration parameter \"%s\"",
            |v| Cause::SettingRejected {
                parameter: v[0].into()
            }
        ),
        t!("22023", "invalid value for parameter \"%s\": %s", |v| {
            Cause::SettingRejected {
                parameter: v[0].into(),
            }
        }),
        t!("55P02", "parameter \"%s\" cannot be changed now", |v| {
            Cause::SettingRejected {
                parameter: v[0].into(),
            }
        }),
        t!(
            "55P02",
            "parameter \"%s\" cannot be set after connection start",
            |v| Cause::SettingRejected {
                parameter: v[0].into()
            }
        ),
        t!("42501", "permission denied to set parameter \"%s\"", |v| {
            Cause::SettingRejected {
                parameter: v[0].into(),
            }
        }),
    ]
}

/// The cause of a server's refusal, when the SQLSTATE and the whole message match a template.
pub fn classify(sqlstate: &str, message: &str) -> Option<Cause> {
    templates()
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
    let mut out = String::from("| SQLSTATE | server message (template) | code |\n|---|---|---|\n");
    for t in templates() {
        // Example values make the cause; the code is what diagnose gives it.
        let filler: Vec<&str> = vec!["x"; 4];
        let cause = (t.cause)(&filler);
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            t.sqlstate,
            t.text,
            code_of(&cause)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
