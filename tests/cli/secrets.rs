//! Secrets stay secret: with canary passwords, no process's command line, no output, no
//! server log (log_statement=all) and no file but the .env ever holds them.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::{Cluster, ClusterConfig};
use crate::{aksara, project, run};

const APP_CANARY: &str = "AppCanary-5b1e-d0nt-leak";
const ADMIN_CANARY: &str = "AdminCanary-9c2f-d0nt-leak";

/// Every process's argv, read from /proc.
fn all_cmdlines() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .collect()
}

fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry)
            && String::from_utf8_lossy(&bytes).contains(needle)
        {
            hits.push(entry.display().to_string());
        }
    }
    hits
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
}

#[test]
fn passwords_reach_no_argv_output_server_log_or_other_file() {
    let cluster = Cluster::start(ClusterConfig::default().set("log_statement", "all"));
    // An admin whose password only the server's verifier knows (the test's own SQL is logged).
    let verifier = aksara::provision::scram_verifier(ADMIN_CANARY);
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE canary_admin SUPERUSER LOGIN PASSWORD '{verifier}'"),
    );
    let dir = project();

    // Watch /proc while the command runs.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !done.load(Ordering::Relaxed) {
                for cmdline in all_cmdlines() {
                    if cmdline.contains(APP_CANARY) || cmdline.contains(ADMIN_CANARY) {
                        seen.push(cmdline);
                    }
                }
                scans += 1;
            }
            (seen, scans)
        })
    };
    let mut cmd = aksara(dir.path());
    cmd.args([
        "dbsetup",
        "--non-interactive",
        "--db-name",
        "canary",
        "--format",
        "json",
    ])
    .args([
        "--admin-url",
        &format!(
            "postgresql://canary_admin@127.0.0.1:{}/postgres",
            cluster.port
        ),
    ])
    .env("PGPASSWORD", ADMIN_CANARY)
    .env("AKSARA_DB_PASSWORD", APP_CANARY)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run(&mut cmd);
    // doctor on the written .env, and a failing doctor with the canary in the URL.
    let doctor = run(aksara(dir.path()).args(["doctor", "--format", "json"]));
    let failing = run(aksara(dir.path()).args([
        "doctor",
        "--url",
        &format!(
            "postgresql://canary:{APP_CANARY}@127.0.0.1:{}/nosuchdb",
            cluster.port
        ),
    ]));
    let text_doctor = run(aksara(dir.path()).args(["-v", "doctor"]));
    done.store(true, Ordering::Relaxed);
    let (seen, scans) = watcher.join().unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(doctor.code, 0, "{doctor:?}");
    assert_eq!(failing.code, 1, "{failing:?}");
    assert!(scans > 0);
    assert!(
        seen.iter().all(|c| !c.contains("dbsetup")),
        "a password was in aksara's argv: {seen:?}"
    );
    // The failing doctor had the canary in its own argv on purpose (--url); that is the
    // user's choice, not a leak by aksara. Nothing else may hold either canary.
    assert!(
        seen.iter().all(|c| c.contains("--url")),
        "a password was in some process's argv: {seen:?}"
    );

    for (name, o) in [
        ("dbsetup", &out),
        ("doctor", &doctor),
        ("failing doctor", &failing),
        ("doctor -v", &text_doctor),
    ] {
        assert!(
            !o.all().contains(APP_CANARY),
            "{name} printed the application password: {o:?}"
        );
        assert!(
            !o.all().contains(ADMIN_CANARY),
            "{name} printed the admin password: {o:?}"
        );
    }
    let log = cluster.log_contents();
    assert!(
        log.contains("CREATE ROLE"),
        "the server did not log statements"
    );
    assert!(
        !log.contains(APP_CANARY),
        "the application password reached the server log"
    );
    assert!(
        !log.contains(ADMIN_CANARY),
        "the admin password reached the server log"
    );

    let env = dir.path().join(".env");
    assert_eq!(
        files_containing(dir.path(), APP_CANARY),
        vec![env.display().to_string()]
    );
    assert!(files_containing(dir.path(), ADMIN_CANARY).is_empty());
    assert!(files_containing(crate::support::hermetic_home(), APP_CANARY).is_empty());
}
