//! What the Reach and TLS lines say about TLS. Whether this connection runs over TLS is the
//! client's own knowledge (the handshake it made); the server's row for the session
//! (`pg_stat_activity.ssl`, in the facts) says the same only when the server answered the
//! client itself. Through a pooler that row is the pooler's own connection to the server, and
//! it is said as that: reading it as the client's had doctor report "not used" for a
//! `sslmode=require` URL that PgBouncer served over TLS.

use crate::dsn::{Host, SslMode};
use crate::session::ServerFacts;

/// What the session's facts add, when they were read.
#[derive(Clone, Copy)]
pub struct SessionView<'a> {
    pub facts: &'a ServerFacts,
    /// The server itself answered this client (`pooler::answers_directly`).
    pub direct: bool,
}

/// The Reach line's note on TLS after the address: what answered offers TLS, or not, when that
/// is known. A TLS connection proves the offer; without one, only a server that answered
/// directly says through its `ssl` setting what it offers (a pooler's offer is its own, and
/// `sslmode=allow` or `disable` never asked).
pub fn reach_offer(host: &Host, client_tls: bool, view: Option<SessionView<'_>>) -> &'static str {
    match (host, client_tls, view) {
        (Host::Socket(_), _, _) => "",
        (_, true, _) => " (offers TLS)",
        (_, false, Some(v)) if v.direct && v.facts.ssl == "on" => " (offers TLS)",
        (_, false, Some(v)) if v.direct => " (no TLS)",
        (_, false, _) => "",
    }
}

/// The TLS check's line.
pub fn tls_line(
    host: &Host,
    client_tls: bool,
    sslmode: SslMode,
    view: Option<SessionView<'_>>,
) -> String {
    if let Host::Socket(_) = host {
        return "not used (unix socket)".into();
    }
    let used = if client_tls { "in use" } else { "not used" };
    match view {
        None => format!("{used} (sslmode={sslmode})"),
        Some(v) if v.direct && client_tls => format!("{used} (sslmode={sslmode})"),
        Some(v) if v.direct => format!("{used} (sslmode={sslmode}, server ssl = {})", v.facts.ssl),
        Some(v) => format!(
            "{used} (sslmode={sslmode}) to the pooler or proxy that answered; from it to the \
             server: {} (pg_stat_activity.ssl of this session)",
            if v.facts.backend_tls {
                "in use"
            } else {
                "not used"
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ssl: &str, backend_tls: bool) -> ServerFacts {
        ServerFacts {
            ssl: ssl.into(),
            backend_tls,
            ..ServerFacts::default()
        }
    }

    fn tcp() -> Host {
        Host::Tcp("127.0.0.1".into())
    }

    #[test]
    fn a_direct_server_is_told_by_the_client_and_its_ssl_setting() {
        let on = facts("on", true);
        let off = facts("off", false);
        let direct = |facts| {
            Some(SessionView {
                facts,
                direct: true,
            })
        };
        assert_eq!(reach_offer(&tcp(), true, direct(&on)), " (offers TLS)");
        assert_eq!(reach_offer(&tcp(), false, direct(&on)), " (offers TLS)");
        assert_eq!(reach_offer(&tcp(), false, direct(&off)), " (no TLS)");
        assert_eq!(
            tls_line(&tcp(), true, SslMode::Prefer, direct(&on)),
            "in use (sslmode=prefer)"
        );
        assert_eq!(
            tls_line(&tcp(), false, SslMode::Disable, direct(&on)),
            "not used (sslmode=disable, server ssl = on)"
        );
    }

    #[test]
    fn through_a_pooler_the_clients_tls_is_its_own_and_the_servers_row_is_the_poolers() {
        // PgBouncer with TLS for clients and none to a server whose ssl is off.
        let behind = facts("off", false);
        let pooled = Some(SessionView {
            facts: &behind,
            direct: false,
        });
        assert_eq!(reach_offer(&tcp(), true, pooled), " (offers TLS)");
        assert_eq!(
            tls_line(&tcp(), true, SslMode::Require, pooled),
            "in use (sslmode=require) to the pooler or proxy that answered; from it to the server: not used (pg_stat_activity.ssl of this session)"
        );
        // Without TLS to it, the server's ssl setting says nothing of the pooler's offer.
        let on_behind = facts("on", true);
        let pooled = Some(SessionView {
            facts: &on_behind,
            direct: false,
        });
        assert_eq!(reach_offer(&tcp(), false, pooled), "");
        assert!(
            tls_line(&tcp(), false, SslMode::Disable, pooled)
                .starts_with("not used (sslmode=disable) to the pooler or proxy that answered; from it to the server: in use")
        );
    }

    #[test]
    fn without_facts_only_the_client_speaks() {
        assert_eq!(reach_offer(&tcp(), false, None), "");
        assert_eq!(reach_offer(&tcp(), true, None), " (offers TLS)");
        assert_eq!(
            tls_line(&tcp(), true, SslMode::Require, None),
            "in use (sslmode=require)"
        );
        assert_eq!(
            tls_line(&tcp(), false, SslMode::Prefer, None),
            "not used (sslmode=prefer)"
        );
    }

    #[test]
    fn a_socket_has_no_tls() {
        let socket = Host::Socket("/tmp".into());
        assert_eq!(reach_offer(&socket, false, None), "");
        assert_eq!(
            tls_line(&socket, false, SslMode::Prefer, None),
            "not used (unix socket)"
        );
    }
}
