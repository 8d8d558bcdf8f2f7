//! pgpool-II: telling it is there, reading what it says of itself, and what it means for the
//! app's driver.
//!
//! pgpool-II relays a login without a trace of its own: on one backend it announces the
//! backend's BackendKeyData and forwards the backend's ParameterStatus unchanged (4.3
//! `src/auth/pool_auth.c`, `src/protocol/pool_process_query.c`; measured on the wire with
//! Debian's 4.3.5). What does show costs nothing: the `port` the server says it listens on
//! differs from the one the client dialled (pgpool listens on its own port: 9999, Debian's
//! 5433), and with several backends the pid it announces on a fresh connection is the last
//! node's while `pg_backend_pid()` in doctor's facts query runs on the primary (the query calls
//! the volatile `pg_is_in_recovery()`, which pgpool never load-balances). Either signal, and
//! only then, is followed by `SHOW pool_version` on the same connection: pgpool answers it
//! itself, PostgreSQL refuses it (`unrecognized configuration parameter`, one ERROR line in
//! the server log of a port-forwarded direct server, and nothing is reported). `pgpool_adm`
//! is not used: it is an extension the database must have, calling PCP with its own password.
//!
//! What pgpool means for the app (pgpool-II 4.3 documentation, "Connection Pooling" and
//! "Load Balancing"): each client gets its own pgpool child and that child's server
//! connections for the whole session, cached for the next client with the same user and
//! database after `reset_query_list` (`ABORT; DISCARD ALL`). So session state and asyncpg's
//! named prepared statements last as on a direct connection. Reads are the difference: with
//! `load_balance_mode` a SELECT outside an explicit transaction that wrote goes to the
//! session's load-balance node, a standby, which may not have replayed a write committed a
//! moment before; at most `num_init_children` clients are served at once, more wait.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgRow};

use super::DriverAdvice;

/// What pgpool-II said about itself on the client's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgpoolFacts {
    /// `SHOW pool_version`: `4.3.5 (tamahomeboshi)`.
    pub version: String,
    /// `PGPOOL SHOW ALL`, item → value (empty when it was refused).
    pub settings: HashMap<String, String>,
    /// `SHOW pool_nodes`, in node order.
    pub nodes: Vec<PgpoolNode>,
}

/// One backend of `SHOW pool_nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgpoolNode {
    pub id: String,
    pub host: String,
    pub port: String,
    /// `up`, `waiting`, `down`, `quarantine`.
    pub status: String,
    /// `primary` or `standby` (streaming replication), `main`/`replica` in other modes.
    pub role: String,
    /// `lb_weight` as pgpool prints it (`0.500000`).
    pub weight: String,
    /// Whether this session's reads go to this node.
    pub load_balance_node: bool,
}

impl PgpoolNode {
    fn is_standby(&self) -> bool {
        self.role == "standby" || self.role == "replica"
    }

    fn takes_reads(&self) -> bool {
        self.weight.parse::<f64>().is_ok_and(|w| w > 0.0)
    }
}

impl fmt::Display for PgpoolNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} {} {}:{} {}",
            self.id, self.role, self.host, self.port, self.status
        )
    }
}

/// `SHOW pool_version` on `conn`, then its settings and nodes; `None` when the first is
/// refused (not pgpool-II: PostgreSQL has no such parameter) or does not answer in `bound`.
/// Each statement is pgpool's own: none reaches a server.
pub async fn read(conn: &mut PgConnection, bound: Duration) -> Option<PgpoolFacts> {
    let version = simple(conn, "SHOW pool_version", bound).await?;
    // pgpool sends an empty result before the row (seen with 4.3.5): the first row is the answer.
    let version = version.first().and_then(|row| text(row, 0))?;
    let settings = simple(conn, "PGPOOL SHOW ALL", bound)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|row| Some((text(row, 0)?, text(row, 1)?)))
        .collect();
    let nodes = simple(conn, "SHOW pool_nodes", bound)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(node)
        .collect();
    Some(PgpoolFacts {
        version,
        settings,
        nodes,
    })
}

async fn simple(conn: &mut PgConnection, sql: &'static str, bound: Duration) -> Option<Vec<PgRow>> {
    tokio::time::timeout(bound, sqlx::raw_sql(sql).fetch_all(&mut *conn))
        .await
        .ok()?
        .ok()
}

/// pgpool declares its own result columns with type oid 0: read them as the text they are.
fn text(row: &PgRow, column: impl sqlx::ColumnIndex<PgRow>) -> Option<String> {
    row.try_get_unchecked::<Option<String>, _>(column).ok()?
}

fn node(row: &PgRow) -> Option<PgpoolNode> {
    Some(PgpoolNode {
        id: text(row, "node_id")?,
        host: text(row, "hostname")?,
        port: text(row, "port")?,
        status: text(row, "status")?,
        role: text(row, "role")?,
        weight: text(row, "lb_weight")?,
        load_balance_node: text(row, "load_balance_node").as_deref() == Some("true"),
    })
}

impl PgpoolFacts {
    fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    fn on(&self, name: &str) -> Option<bool> {
        self.setting(name).map(|v| v == "on")
    }

    /// `backend_clustering_mode` (4.2+) in words: `streaming replication`, `native replication`.
    pub fn clustering_mode(&self) -> Option<String> {
        self.setting("backend_clustering_mode")
            .map(|m| m.replace('_', " "))
    }

    /// The standbys reads can go to: up, with a load-balance weight.
    fn read_standbys(&self) -> Vec<&PgpoolNode> {
        if self.on("load_balance_mode") != Some(true) {
            return Vec::new();
        }
        self.nodes
            .iter()
            .filter(|n| n.is_standby() && n.status == "up" && n.takes_reads())
            .collect()
    }

    /// One line: version, clustering mode, pooling, load balancing and the nodes.
    pub fn describe(&self) -> String {
        let mode = self
            .clustering_mode()
            .map_or(String::new(), |m| format!(" in {m} mode"));
        let mut parts = vec![format!(
            "pgpool-II {}{mode}: session pooling (each client keeps its own server connections for its session{})",
            self.version,
            match self.on("connection_cache") {
                Some(false) => ", none cached: connection_cache off",
                _ => "",
            }
        )];
        if let Some(children) = self.setting("num_init_children") {
            parts.push(format!(
                "at most {children} clients at once (num_init_children; more wait)"
            ));
        }
        match (
            self.on("load_balance_mode"),
            self.on("statement_level_load_balance"),
        ) {
            (Some(true), Some(true)) => parts.push("load balancing per statement".into()),
            (Some(true), _) => parts.push("load balancing per session".into()),
            (Some(false), _) => parts.push("load balancing off".into()),
            (None, _) => {}
        }
        if !self.nodes.is_empty() {
            let nodes: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    let reads = if n.load_balance_node {
                        " (this session's reads)"
                    } else {
                        ""
                    };
                    format!("{n}{reads}")
                })
                .collect();
            parts.push(format!("nodes: {}", nodes.join(", ")));
        }
        parts.join(", ")
    }

    /// What pgpool means for the app's drivers (the ids of [`super::driver_advice`]): one
    /// piece of advice, the same problem for every driver, the fix in asyncpg's terms when the
    /// app uses it. Prepared statements and session state need nothing (the session keeps its
    /// server connections); reads sent to a standby can miss a write just committed.
    pub fn advice(&self, drivers: &[&str]) -> Vec<DriverAdvice> {
        let standbys = self.read_standbys();
        if standbys.is_empty() {
            return Vec::new();
        }
        let to = match self.nodes.iter().find(|n| n.load_balance_node) {
            Some(n) if n.is_standby() && self.on("statement_level_load_balance") != Some(true) => {
                format!("this session's reads go to {n}")
            }
            _ => format!(
                "reads can go to {}",
                standbys
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let on_write = self
            .setting("disable_load_balance_on_write")
            .unwrap_or("transaction");
        let after_write = match on_write {
            "always" => "after a write every later read of the session goes to the primary (disable_load_balance_on_write = 'always')".to_owned(),
            "off" => "even reads after a write are load-balanced (disable_load_balance_on_write = 'off')".to_owned(),
            other => format!(
                "only reads after a write inside the same explicit transaction stay on the primary (disable_load_balance_on_write = '{other}'); reads outside a transaction are load-balanced"
            ),
        };
        let asyncpg = drivers
            .iter()
            .any(|d| matches!(*d, "asyncpg" | "sqlalchemy+asyncpg"));
        let fix = if asyncpg {
            "read what a request just wrote inside the same transaction (`async with conn.transaction():` / `session.begin()`), set `disable_load_balance_on_write = 'always'` in pgpool.conf, or start such a SELECT with a comment (`/*primary*/ SELECT ...`: pgpool does not load-balance it while allow_sql_comments = off, the default); asyncpg's prepared statements need no change: pgpool picks each statement's node when asyncpg parses it, and its binds and executes follow"
        } else {
            "read what a request just wrote inside the same transaction, or set `disable_load_balance_on_write = 'always'` in pgpool.conf (every read after a write then goes to the primary)"
        };
        vec![DriverAdvice {
            code: "pooler-load-balancing",
            problem: format!(
                "pgpool-II load-balances SELECTs to standbys: {to}; {after_write}. A read right after a write committed on another connection (an app pool has many) can miss it while the standby replays"
            ),
            fix: fix.into(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(load_balance: &str, nodes: Vec<PgpoolNode>) -> PgpoolFacts {
        PgpoolFacts {
            version: "4.3.5 (tamahomeboshi)".into(),
            settings: [
                ("backend_clustering_mode", "streaming_replication"),
                ("load_balance_mode", load_balance),
                ("num_init_children", "4"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            nodes,
        }
    }

    fn node(id: &str, role: &str, weight: &str, lb: bool) -> PgpoolNode {
        PgpoolNode {
            id: id.into(),
            host: "/tmp".into(),
            port: "5432".into(),
            status: "up".into(),
            role: role.into(),
            weight: weight.into(),
            load_balance_node: lb,
        }
    }

    #[test]
    fn load_balancing_advice_only_where_reads_can_reach_a_standby() {
        let alone = facts("on", vec![node("0", "primary", "1.000000", true)]);
        assert!(alone.advice(&["asyncpg"]).is_empty());
        let off = facts(
            "off",
            vec![
                node("0", "primary", "1.000000", true),
                node("1", "standby", "1.000000", false),
            ],
        );
        assert!(off.advice(&["asyncpg"]).is_empty());
        let weightless = facts(
            "on",
            vec![
                node("0", "primary", "1.000000", true),
                node("1", "standby", "0.000000", false),
            ],
        );
        assert!(weightless.advice(&["asyncpg"]).is_empty());
        let balanced = facts(
            "on",
            vec![
                node("0", "primary", "0.000000", false),
                node("1", "standby", "1.000000", true),
            ],
        );
        let advice = balanced.advice(&["psycopg", "asyncpg"]);
        assert_eq!(advice.len(), 1);
        assert!(
            advice[0]
                .problem
                .contains("this session's reads go to node 1 standby"),
            "{advice:?}"
        );
        assert!(advice[0].fix.contains("async with conn.transaction()"));
        assert!(
            balanced
                .describe()
                .contains("in streaming replication mode")
        );
        assert!(!balanced.advice(&["psycopg"])[0].fix.contains("asyncpg"));
    }
}
