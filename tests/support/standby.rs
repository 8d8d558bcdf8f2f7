//! A primary and a real streaming standby made from it with `pg_basebackup -R`.
//!
//! The primary is a harness cluster whose `pg_hba.conf` also lets the superuser connect for
//! replication over the socket (`wal_level` is `replica` by default, with WAL senders to
//! spare). The standby is a second harness cluster whose data directory is the base backup:
//! `-R` writes `standby.signal` and `primary_conninfo`, the harness then gives it its own port
//! and socket. Lag is made by pausing replay on the standby (`pg_wal_replay_pause()`) and
//! writing on the primary: the standby keeps receiving WAL but does not apply it.

use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::cluster::{Cluster, ClusterConfig, clear_pg_env};
use super::privileges::run_as_server_user;
use super::{bins, unique_name};

const WAIT: Duration = Duration::from_secs(20);

pub struct StandbyPair {
    pub primary: Cluster,
    pub standby: Cluster,
}

impl StandbyPair {
    /// A new primary and its standby, streaming and caught up.
    pub fn start() -> StandbyPair {
        let primary = Cluster::start(ClusterConfig {
            hba: Some(vec![
                "local all all scram-sha-256".into(),
                "host all all 127.0.0.1/32 scram-sha-256".into(),
                "host all all ::1/128 scram-sha-256".into(),
                "local replication postgres scram-sha-256".into(),
            ]),
            ..ClusterConfig::default()
        });
        let standby = Cluster::start_with_data(ClusterConfig::default(), |data_dir| {
            base_backup(&primary, data_dir)
        });
        let pair = StandbyPair { primary, standby };
        pair.wait_until_streaming();
        pair
    }

    fn wait_until_streaming(&self) {
        self.wait_for(
            "the standby to stream from the primary",
            &self.primary,
            "select count(*) from pg_stat_replication where state = 'streaming'",
            "1",
        );
    }

    /// Pauses WAL replay on the standby and waits until the pause has taken effect.
    pub fn pause_replay(&self) {
        self.standby
            .psql("postgres", "select pg_wal_replay_pause()");
        self.wait_for(
            "replay to pause",
            &self.standby,
            "select pg_get_wal_replay_pause_state()",
            "paused",
        );
    }

    pub fn resume_replay(&self) {
        self.standby
            .psql("postgres", "select pg_wal_replay_resume()");
    }

    /// Writes about `bytes` of WAL on the primary (replay must be paused for it to become
    /// lag), then waits until the standby has received all of it. Returns the primary's LSN.
    pub fn make_lag(&self, bytes: usize) -> String {
        let table = unique_name("lag");
        self.primary.psql(
            "postgres",
            &format!(
                "create table {table} (t text); \
                 insert into {table} select repeat('x', 1000) from generate_series(1, {});",
                bytes / 1000 + 1
            ),
        );
        let lsn = self
            .primary
            .psql("postgres", "select pg_current_wal_insert_lsn()");
        self.wait_for(
            "the standby to receive the new WAL",
            &self.standby,
            &format!("select pg_last_wal_receive_lsn() >= '{lsn}'::pg_lsn"),
            "t",
        );
        lsn
    }

    /// Waits until the standby has replayed everything the primary has written so far. The
    /// insert position, not `pg_current_wal_lsn()`: with the harness's `synchronous_commit=off`
    /// a commit can be inserted but not yet written.
    pub fn wait_caught_up(&self) {
        let lsn = self
            .primary
            .psql("postgres", "select pg_current_wal_insert_lsn()");
        self.wait_for(
            "the standby to replay the primary's WAL",
            &self.standby,
            &format!("select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
            "t",
        );
    }

    fn wait_for(&self, what: &str, on: &Cluster, sql: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = on.try_psql("postgres", sql);
            if got.as_deref() == Ok(want) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "gave up waiting for {what} after {WAIT:?} (`{sql}` gave {got:?}); standby log:\n{}",
                    self.standby.log_contents()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One pair per test process for tests that only read (never pause its replay).
pub fn shared_pair() -> &'static StandbyPair {
    static PAIR: OnceLock<StandbyPair> = OnceLock::new();
    PAIR.get_or_init(StandbyPair::start)
}

/// `pg_basebackup -R` over the primary's socket into `data_dir`, as the server user.
fn base_backup(primary: &Cluster, data_dir: &std::path::Path) {
    let mut cmd = Command::new(bins().bindir.join("pg_basebackup"));
    clear_pg_env(&mut cmd);
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
        .arg("-h")
        .arg(&primary.socket_dir)
        .args(["-p", &primary.port.to_string(), "-U", &primary.superuser])
        // The password goes into primary_conninfo too (-R), which stays in the data directory.
        .env("PGPASSWORD", &primary.password)
        .env("LC_ALL", "C")
        .current_dir("/");
    run_as_server_user(&mut cmd);
    let out = cmd.output().expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup failed ({}):\n{}\nprimary log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        primary.log_contents()
    );
}
