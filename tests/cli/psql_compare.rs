//! aksara next to psql, failure by failure: every scenario of `map_repro` is set up on a real
//! server, then the real `psql` and `aksara doctor --format json` get the same URL. Both must
//! fail; aksara must give the scenario's code, message and hint; the hint's concrete claims are
//! checked against that server while the failure holds (the SQL it proposes names the real role
//! and database and, run, lets the URL in; the pg_hba line it blames is the one that matches;
//! the address it points at listens). What was observed is docs/psql-comparison.md
//! (`AKSARA_REGENERATE=1` rewrites it; otherwise the test fails when it differs).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::map_repro::{self, Claim, Postmaster, SPECS, Staged};
use crate::support::{Auth, Cluster, ClusterConfig};

/// One line of the table, as observed.
struct Row {
    psql: String,
    code: String,
    hint: String,
}

#[derive(Default)]
struct Runner {
    rows: BTreeMap<&'static str, Row>,
    errors: Vec<String>,
}

impl Runner {
    /// Runs psql and doctor on the staged failure, checks aksara's answer and the hint's
    /// claims, and records the row.
    fn observe(&mut self, staged: Staged) {
        let name = staged.spec.name;
        let mut errors = Vec::new();
        let psql = map_repro::psql_first_error(&staged.url);
        let dir = crate::project();
        let out = crate::run(crate::aksara(dir.path()).args([
            "doctor",
            "--format",
            "json",
            "--url",
            &staged.url,
        ]));
        let psql = match psql {
            Ok(()) => {
                errors.push("psql connected, so this is no failure".to_string());
                String::new()
            }
            Err(line) => line,
        };
        if out.code != 1 {
            errors.push(format!("aksara doctor exited {}: {out:?}", out.code));
        }
        let failed = serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .and_then(|json| {
                json["checks"]
                    .as_array()?
                    .iter()
                    .find(|c| c["status"] == "fail" && c["id"] != "driver")
                    .cloned()
            })
            .unwrap_or(Value::Null);
        let code = failed["code"].as_str().unwrap_or_default().to_string();
        let message = failed["message"].as_str().unwrap_or_default().to_string();
        let hint = failed["hint"].as_str().unwrap_or_default().to_string();
        if code != staged.spec.code {
            errors.push(format!("code `{code}`, expected `{}`", staged.spec.code));
        }
        for words in &staged.message_has {
            if !message.contains(words.as_str()) {
                errors.push(format!("the message lacks `{words}`: {message}"));
            }
        }
        for words in &staged.hint_has {
            if !hint.contains(words.as_str()) {
                errors.push(format!("the hint lacks `{words}`: {hint}"));
            }
        }
        for words in &staged.hint_lacks {
            if hint.contains(words.as_str()) {
                errors.push(format!(
                    "the hint says `{words}`, which is not true here: {hint}"
                ));
            }
        }
        for claim in staged.claims {
            if let Err(e) = check_claim(claim, &staged.url, &hint) {
                errors.push(format!("a claim of the hint does not hold: {e}"));
            }
        }
        if !errors.is_empty() {
            self.errors.push(format!(
                "[{name}] {}\n  doctor: {out:?}",
                errors.join("\n  ")
            ));
        }
        let places: Vec<(&str, &str)> = staged
            .placeholders
            .iter()
            .map(|(v, p)| (v.as_str(), p.as_str()))
            .collect();
        self.rows.insert(
            name,
            Row {
                psql: crate::normalize(&psql, &places),
                code,
                hint: crate::normalize(&hint, &places),
            },
        );
    }

    fn fail(&mut self, name: &str, what: String) {
        self.errors.push(format!("[{name}] {what}"));
    }
}

/// The backquoted parts of a hint.
fn quoted(hint: &str) -> Vec<&str> {
    hint.split('`').skip(1).step_by(2).collect()
}

fn check_claim(claim: Claim, url: &str, hint: &str) -> Result<(), String> {
    match claim {
        Claim::Query {
            cluster,
            db,
            sql,
            want,
        } => {
            let got = cluster.try_psql(&db, &sql)?;
            (got == want)
                .then_some(())
                .ok_or(format!("`{sql}` gave `{got}`, the hint relies on `{want}`"))
        }
        Claim::SqlFixWorks { cluster, starts } => {
            let sql = quoted(hint)
                .into_iter()
                .find(|q| q.starts_with(starts))
                .ok_or(format!("no `{starts} ...` statement in the hint"))?;
            cluster
                .try_psql("postgres", sql)
                .map_err(|e| format!("the proposed `{sql}` fails: {e}"))?;
            crate::psql_url(url, "SELECT 1")
                .map(|_| ())
                .map_err(|e| format!("after `{sql}` the URL still fails: {e}"))
        }
        Claim::HbaLineFixWorks { cluster } => {
            let line = hint
                .split_once("add `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(line, _)| line)
                .ok_or("no `add \\`LINE\\`` in the hint")?;
            let path = cluster.data_dir.join("pg_hba.conf");
            let mut text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            text.push_str(&format!("{line}\n"));
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            cluster.try_psql("postgres", "SELECT pg_reload_conf()")?;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                match crate::psql_url(url, "SELECT 1") {
                    Ok(_) => return Ok(()),
                    Err(e) if std::time::Instant::now() > deadline => {
                        return Err(format!("with `{line}` added the URL still fails: {e}"));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Claim::Listens(address) => {
            let addr = address.parse().map_err(|e| format!("{address}: {e}"))?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| format!("nothing listens at {address}: {e}"))
        }
        Claim::Check(what, check) => check(hint).map_err(|e| format!("{what}: {e}")),
    }
}

/// The server states that refuse everyone, one after another on one cluster: binary-upgrade
/// mode, a standby without hot standby, a standby whose restore_command has not returned.
fn refusing_states(r: &mut Runner) {
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        ..ClusterConfig::default()
    })));
    // The harness runs without fsync and synchronous_commit: a checkpoint makes the role
    // survive the immediate stop.
    cluster.psql("postgres", "CREATE ROLE state_user LOGIN");
    cluster.psql("postgres", "CHECKPOINT");
    let url = cluster.url("state_user", None, "postgres");
    let admin = cluster.socket_url("postgres", "postgres");
    cluster.stop_immediate();

    let upgrade = Postmaster::start(cluster, &["-b"]);
    map_repro::wait_for_refusal(cluster, &url, "binary upgrade mode");
    let superuser = admin.clone();
    r.observe(
        staged("binary-upgrade", &url, cluster)
            .message("lets only superusers in right now")
            .hint("being upgraded")
            .claim(Claim::Check(
                "a superuser does get in",
                Box::new(move |_| crate::psql_url(&superuser, "SELECT 1").map(|_| ())),
            )),
    );
    upgrade.stop();

    map_repro::server_file(cluster, "standby.signal", "");
    let standby = Postmaster::start(cluster, &["-c", "hot_standby=off"]);
    map_repro::wait_for_refusal(cluster, &url, "not accepting connections");
    r.observe(
        staged("hot-standby-off", &url, cluster)
            .message("is a standby that accepts no connections")
            .hint("hot_standby = on")
            .claim(Claim::Check(
                "pg_controldata calls it a standby",
                Box::new(move |_| {
                    let state = map_repro::cluster_state(&cluster.data_dir);
                    (state == "in archive recovery")
                        .then_some(())
                        .ok_or(format!("its state is `{state}`"))
                }),
            )),
    );
    standby.stop();
    // The hint's fix: the same standby with hot_standby = on lets the URL in.
    let hot = Postmaster::start(cluster, &["-c", "hot_standby=on"]);
    if let Err(e) = map_repro::wait_until_accepting(cluster, &url) {
        r.fail("hot-standby-off", format!("with hot_standby = on: {e}"));
    }
    hot.stop();

    let gate = cluster.data_dir.parent().unwrap().join("restore-gate");
    let restore = format!(
        "restore_command=while [ ! -f '{}' ]; do sleep 0.05; done; false",
        gate.display()
    );
    let starting = Postmaster::start(cluster, &["-c", "hot_standby=on", "-c", &restore]);
    map_repro::wait_for_refusal(cluster, &url, "starting up");
    let (gate_file, ready_url) = (gate.clone(), url.clone());
    r.observe(
        staged("starting-up", &url, cluster)
            .message("is not accepting connections yet")
            .hint("--wait")
            .claim(Claim::Check(
                "once the restore_command returns, the URL gets in (waiting helps)",
                Box::new(move |_| {
                    std::fs::write(&gate_file, "").map_err(|e| e.to_string())?;
                    map_repro::wait_until_accepting(cluster, &ready_url)
                }),
            )),
    );
    starting.stop();
}

/// A hot standby made from a low-level base backup whose end lies in a WAL segment its
/// restore_command has not delivered yet: until it has replayed to the backup's end it is not
/// consistent, and answers "not yet accepting connections".
fn before_consistency(r: &mut Runner) {
    let trust = || ClusterConfig {
        auth: Auth::Trust,
        ..ClusterConfig::default()
    };
    let primary: &'static Cluster = Box::leak(Box::new(Cluster::start(trust())));
    let standby: &'static Cluster = Box::leak(Box::new(Cluster::start(trust())));
    standby.stop_immediate();
    let gate = standby.data_dir.parent().unwrap().join("consistency-gate");
    let segment = map_repro::base_backup_across_segments(primary, standby);
    let restore = format!(
        "restore_command=if [ \"%f\" = \"{segment}\" ]; then while [ ! -f '{}' ]; do sleep 0.05; done; fi; false",
        gate.display()
    );
    let url = standby.url("postgres", None, "postgres");
    let server = Postmaster::start(standby, &["-c", "hot_standby=on", "-c", &restore]);
    map_repro::wait_for_refusal(standby, &url, "not yet accepting connections");
    let ready = url.clone();
    r.observe(
        staged("not-consistent", &url, standby)
            .message("is not accepting connections yet")
            .message("Consistent recovery state has not been yet reached")
            .hint("--wait")
            .claim(Claim::Check(
                "once the segment with the backup's end arrives, the URL gets in (waiting helps)",
                Box::new(move |_| {
                    std::fs::write(&gate, "").map_err(|e| e.to_string())?;
                    map_repro::wait_until_accepting(standby, &ready)
                }),
            )),
    );
    server.stop();
    primary.stop_immediate();
}

/// A backend killed (the server resets every session and recovers), then a smart shutdown
/// held open by a connected client, on one cluster.
fn crash_and_shutdown(r: &mut Runner) {
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start(ClusterConfig {
        auth: Auth::Trust,
        ..ClusterConfig::default()
    })));
    let url = cluster.url("postgres", None, "postgres");
    {
        let held = cluster.hold_connections(2);
        let backends = map_repro::client_backends(cluster);
        assert_eq!(backends.len(), 2, "{backends:?}");
        // A stopped backend keeps the postmaster waiting (up to 5 s, then SIGKILL) before it
        // resets: the window in which it answers "in recovery mode".
        map_repro::signal("STOP", backends[0]);
        map_repro::signal("KILL", backends[1]);
        map_repro::wait_for_refusal(cluster, &url, "in recovery mode");
        let (stopped, again) = (backends[0], url.clone());
        r.observe(
            staged("crash-recovery", &url, cluster)
                .message("is not accepting connections yet")
                .hint("--wait")
                .claim(Claim::Check(
                    "the server recovers by itself and lets the URL in (waiting helps)",
                    Box::new(move |_| {
                        map_repro::signal("CONT", stopped);
                        map_repro::wait_until_accepting(cluster, &again)
                    }),
                )),
        );
        drop(held);
    }
    let held = cluster.hold_connections(1);
    cluster.begin_smart_shutdown();
    map_repro::wait_for_refusal(cluster, &url, "shutting down");
    r.observe(
        staged("shutting-down", &url, cluster)
            .message("is shutting down")
            .hint("once it has stopped")
            .not_hint("returns as soon as the server is ready"),
    );
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cluster.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if cluster.is_running() {
        r.fail(
            "shutting-down",
            "the server did not stop once the client left".into(),
        );
    }
    cluster.stop_immediate();
}

fn crowded(r: &mut Runner) {
    let cluster: &'static Cluster = Box::leak(Box::new(map_repro::crowded_cluster()));
    {
        let _held = cluster.hold_connections(2);
        r.observe(map_repro::crowded(cluster, "superuser-reserved"));
    }
    {
        let _held = cluster.hold_connections(4);
        // What the hint relies on: the sessions held are what fills max_connections.
        let full = cluster.psql(
            "postgres",
            "SELECT count(*) = current_setting('max_connections')::int FROM pg_stat_activity WHERE backend_type = 'client backend'",
        );
        if full != "t" {
            r.fail(
                "too-many-clients",
                format!("4 held + 1 asking is not max_connections ({full})"),
            );
        }
        let _last = cluster.hold_connections(1);
        r.observe(map_repro::crowded(cluster, "too-many-clients"));
    }
    cluster.stop_immediate();
}

fn staged(name: &str, url: &str, cluster: &Cluster) -> Staged {
    map_repro::staged_on(name, url, cluster)
}

/// The committed table.
fn table(rows: &BTreeMap<&'static str, Row>) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "# psql and aksara, failure by failure\n\n\
         Written by `tests/cli/psql_compare.rs` (`AKSARA_REGENERATE=1 cargo test --test cli psql_compare`\n\
         rewrites it): each scenario of `tests/cli/map_repro.rs` set up on a real PostgreSQL, then the\n\
         real `psql` and `aksara doctor --format json` given the same URL. Both fail in every row; the\n\
         test also checks aksara's message and the hint's claims against that server (the SQL it\n\
         proposes, run, lets the URL in; the pg_hba line it names is the matching one; the address it\n\
         names listens). Ports, folders and generated names are placeholders.\n\n\
         | scenario | configuration | psql's first error line | aksara's code | aksara's hint |\n\
         |---|---|---|---|---|\n",
    );
    for spec in SPECS {
        let Some(row) = rows.get(spec.name) else {
            continue;
        };
        out.push_str(&format!(
            "| {} | {} | {} | `{}` | {} |\n",
            spec.name,
            cell(spec.setup),
            cell(&row.psql),
            row.code,
            cell(&row.hint)
        ));
    }
    out
}

/// A group of scenarios that share servers, run on its own thread.
type Job<'a> = Box<dyn FnOnce(&mut Runner) + Send + 'a>;

#[test]
fn aksara_and_psql_agree_on_every_reproduced_failure() {
    // Removes the PAM service file however the test ends.
    struct PamService;
    impl Drop for PamService {
        fn drop(&mut self) {
            map_repro::remove_pam_service();
        }
    }
    let _pam = PamService;
    let shared_trust: Vec<&str> = vec![
        "role-missing",
        "nologin",
        "database-missing",
        "allow-connections-false",
        "no-connect-privilege",
        "role-connection-limit",
        "database-connection-limit",
        "unknown-setting",
        "invalid-setting-value",
        "sighup-setting",
        "postmaster-setting",
        "internal-setting",
        "superuser-setting",
        "unknown-server-option",
    ];
    let hba = [
        "wrong-password",
        "peer-mismatch",
        "ident-no-identd",
        "pam-deny",
        "ldap-unreachable",
        "radius-silent",
        "no-hba-entry",
        "hba-reject",
    ];
    let runners: Vec<Runner> = std::thread::scope(|s| {
        let jobs: Vec<Job> = vec![
            Box::new(|r| {
                for name in &shared_trust {
                    r.observe(map_repro::on_shared_trust(name));
                }
                r.observe(map_repro::other_loopback());
            }),
            Box::new(|r| {
                for name in hba {
                    r.observe(map_repro::on_hba_cluster(name));
                }
            }),
            Box::new(|r| {
                crowded(r);
                refusing_states(r);
            }),
            Box::new(crash_and_shutdown),
            Box::new(before_consistency),
        ];
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                s.spawn(move || {
                    let mut r = Runner::default();
                    job(&mut r);
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scenario thread panicked"))
            .collect()
    });
    let mut rows = BTreeMap::new();
    let mut errors = Vec::new();
    for r in runners {
        rows.extend(r.rows);
        errors.extend(r.errors);
    }
    for spec in SPECS {
        if !rows.contains_key(spec.name) {
            errors.push(format!("[{}] was never run", spec.name));
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} scenarios went wrong:\n{}",
        errors.len(),
        SPECS.len(),
        errors.join("\n")
    );
    let want = table(&rows);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/psql-comparison.md");
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        if std::env::var_os("AKSARA_REGENERATE").is_some() {
            std::fs::write(&path, want).unwrap();
            return;
        }
        panic!(
            "docs/psql-comparison.md differs from what was observed; if the change is right, \
             rewrite it: AKSARA_REGENERATE=1 cargo test --test cli psql_compare\n--- observed\n{want}"
        );
    }
}
