//! The TLS verdict agrees with the drivers (issue 12, point 3).
//!
//! For each kind of server certificate where rustls/webpki and OpenSSL could decide
//! differently, one real server serves it, and the same URL goes to psql (libpq 15 with the
//! system's OpenSSL 3.0 and /etc/ssl/openssl.cnf), asyncpg (Python's `ssl`, the same system
//! OpenSSL), psycopg (its wheel's own libpq 18 and OpenSSL 3.5) and `aksara doctor --json`.
//! aksara's verdict must be psql's: pass, or `ssl-certificate` with OpenSSL's (or libpq's) own
//! reason. asyncpg must agree wherever its sslmode semantics are libpq's; where they are not
//! (host name checks against an IP address), the row says so and the test holds asyncpg to
//! what it does. The whole table is a snapshot (tests/cli/snapshots), so a change in any
//! verdict shows in review.
//!
//! One cluster serves every case in turn (`Cluster::serve_certificate` swaps the files and
//! reloads). The server runs with an OpenSSL configuration at security level 0 so that it can
//! load the weak certificates at all (Debian's libssl refuses to load RSA-1024 or SHA-1 at its
//! level 2); the clients keep the machine's own configuration.

use serde_json::Value;

use crate::support::drivers::{self, Outcome, RealDriver};
use crate::support::{self, CaseCert, Cluster, ClusterConfig};
use crate::{aksara, project, psql_url, run};

/// Which file the URL gives as `sslrootcert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    /// The CA of the case (the certificate itself when it is self-signed).
    Case,
    /// A CA that signed nothing the server serves.
    Untrusted,
    /// No `sslrootcert` (and no `~/.postgresql/root.crt` in the test's HOME).
    Absent,
    /// A path where there is no file.
    Missing,
    /// `sslrootcert=system`: the system's CAs to libpq 16+, a file name to libpq 15 and asyncpg.
    System,
}

/// What the test expects psql to do, and the words a refusal carries in aksara's message
/// (OpenSSL's verify text, or libpq's own words for a name or a missing root file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Pass,
    Fail(&'static str),
}

/// Where asyncpg's verdict is not libpq's, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asyncpg {
    /// Same sslmode semantics as libpq: same verdict.
    Same,
    /// Python's `ssl` checks an IP host against iPAddress entries only (OpenSSL's
    /// X509_check_ip): no fallback to the CN, no dNSName holding the address, both of which
    /// libpq accepts. asyncpg fails where psql connects.
    FailsIpHostByName,
    /// asyncpg loads a `sslrootcert` it is given even under `require`, where libpq ignores a
    /// file that is not there: FileNotFoundError.
    FailsMissingRootFile,
}

/// Where psycopg's verdict (its wheel's libpq 18) is not psql's (libpq 15), and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Psycopg {
    Same,
    /// libpq 16+ reads `sslrootcert=system` as the system's CAs and refuses it with any sslmode
    /// but verify-full (`weak sslmode "require" may not be used with sslrootcert=system`).
    RefusesSystemWithWeakMode,
}

struct Row {
    case: &'static str,
    host: &'static str,
    sslmode: &'static str,
    root: Root,
    psql: Expect,
    asyncpg: Asyncpg,
    psycopg: Psycopg,
}

const fn row(
    case: &'static str,
    host: &'static str,
    sslmode: &'static str,
    root: Root,
    psql: Expect,
) -> Row {
    Row {
        case,
        host,
        sslmode,
        root,
        psql,
        asyncpg: Asyncpg::Same,
        psycopg: Psycopg::Same,
    }
}

const ROWS: &[Row] = &[
    // rustls: CaUsedAsEndEntity. OpenSSL accepts a CA:TRUE certificate as the server's own.
    row(
        "ca-as-leaf",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Pass,
    ),
    row(
        "ca-as-leaf",
        "localhost",
        "verify-ca",
        Root::Case,
        Expect::Pass,
    ),
    // libpq's `require` with a root certificate verifies the chain (verify-ca).
    row(
        "ca-as-leaf",
        "localhost",
        "require",
        Root::Case,
        Expect::Pass,
    ),
    // rustls has no CN fallback; libpq uses the CN when there is no dNSName.
    row(
        "cn-only",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Pass,
    ),
    // rustls refuses X.509 v1 (UnsupportedCertVersion); OpenSSL takes a v1 self-signed root.
    row(
        "x509-v1",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Pass,
    ),
    Row {
        asyncpg: Asyncpg::FailsIpHostByName,
        ..row(
            "ip-in-cn",
            "127.0.0.1",
            "verify-full",
            Root::Case,
            Expect::Pass,
        )
    },
    row(
        "ip-in-cn",
        "127.0.0.1",
        "verify-ca",
        Root::Case,
        Expect::Pass,
    ),
    row(
        "ip-san",
        "127.0.0.1",
        "verify-full",
        Root::Case,
        Expect::Pass,
    ),
    // A DNS host, no dNSName: libpq falls back to the CN (db.invalid), which does not match.
    row(
        "ip-san",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Fail(
            "server certificate for \"127.0.0.1\" (and 1 other name) does not match host name \"localhost\"",
        ),
    ),
    Row {
        asyncpg: Asyncpg::FailsIpHostByName,
        ..row(
            "ip-as-dns-san",
            "127.0.0.1",
            "verify-full",
            Root::Case,
            Expect::Pass,
        )
    },
    row(
        "cn-only",
        "127.0.0.1",
        "verify-full",
        Root::Case,
        Expect::Fail("server certificate for \"localhost\" does not match host name \"127.0.0.1\""),
    ),
    // Names are compared case-insensitively.
    row(
        "cn-only",
        "LOCALHOST",
        "verify-full",
        Root::Case,
        Expect::Pass,
    ),
    // `*.localhost` stands for one label before `.localhost`, never for nothing.
    row(
        "wildcard",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Fail(
            "server certificate for \"*.localhost\" (and 1 other name) does not match host name \"localhost\"",
        ),
    ),
    Row {
        asyncpg: Asyncpg::FailsIpHostByName,
        ..row(
            "wildcard",
            "127.0.0.1",
            "verify-full",
            Root::Case,
            Expect::Pass,
        )
    },
    row(
        "expired",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Fail("certificate has expired"),
    ),
    // Not verified at all under `require` without a root certificate.
    row(
        "expired",
        "localhost",
        "require",
        Root::Absent,
        Expect::Pass,
    ),
    row(
        "not-yet-valid",
        "localhost",
        "verify-ca",
        Root::Case,
        Expect::Fail("certificate is not yet valid"),
    ),
    // webpki does not look at a trust anchor's dates; OpenSSL does.
    row(
        "expired-ca",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Fail("certificate has expired"),
    ),
    row(
        "cn-only",
        "localhost",
        "verify-full",
        Root::Untrusted,
        Expect::Fail("unable to get local issuer certificate"),
    ),
    row(
        "ca-as-leaf",
        "localhost",
        "verify-full",
        Root::Untrusted,
        Expect::Fail("self-signed certificate"),
    ),
    row(
        "cn-only",
        "localhost",
        "verify-ca",
        Root::Absent,
        Expect::Fail("root certificate file"),
    ),
    // This machine's OpenSSL (Debian: security level 2) refuses both.
    row(
        "sha1",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Fail("CA signature digest algorithm too weak"),
    ),
    row(
        "rsa-1024",
        "localhost",
        "verify-full",
        Root::Case,
        Expect::Fail("EE certificate key too weak"),
    ),
    // A root file that is not there: refused under verify-*, ignored by libpq under require.
    row(
        "cn-only",
        "localhost",
        "verify-full",
        Root::Missing,
        Expect::Fail("root certificate file"),
    ),
    Row {
        asyncpg: Asyncpg::FailsMissingRootFile,
        ..row(
            "cn-only",
            "localhost",
            "require",
            Root::Missing,
            Expect::Pass,
        )
    },
    // A file name to psql 15 and asyncpg; libpq 18 (psycopg) looks in the system's CAs, which
    // do not hold the test CA: every client refuses.
    row(
        "cn-only",
        "localhost",
        "verify-full",
        Root::System,
        Expect::Fail("root certificate file \"system\" does not exist"),
    ),
    Row {
        asyncpg: Asyncpg::FailsMissingRootFile,
        psycopg: Psycopg::RefusesSystemWithWeakMode,
        ..row(
            "cn-only",
            "localhost",
            "require",
            Root::System,
            Expect::Pass,
        )
    },
    // Unverified: nobody looks at the chain, and the handshake signatures are the transport's.
    row("sha1", "localhost", "require", Root::Absent, Expect::Pass),
    row(
        "rsa-1024",
        "localhost",
        "require",
        Root::Absent,
        Expect::Pass,
    ),
];

/// What one client did with one URL: connected, or the first line of its error.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail(String),
}

impl Verdict {
    fn passed(&self) -> bool {
        *self == Verdict::Pass
    }

    fn words(&self) -> &str {
        match self {
            Verdict::Pass => "",
            Verdict::Fail(words) => words,
        }
    }
}

fn driver_verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Connected(place) => {
            assert!(place.ssl, "a driver connected without TLS: {place:?}");
            Verdict::Pass
        }
        Outcome::Failed { class, message } => Verdict::Fail(format!("{class}: {message}")),
    }
}

/// aksara's verdict: pass, or the failed connection check's `code: message`.
fn doctor_verdict(url: &str) -> Verdict {
    let dir = project();
    let out = run(aksara(dir.path()).args(["doctor", "--format", "json", "--url", url]));
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {out:?}"));
    if json["ok"] == true {
        assert_eq!(out.code, 0, "{out:?}");
        return Verdict::Pass;
    }
    let failed = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["status"] == "fail" && c["id"] != "driver")
        .unwrap_or_else(|| panic!("doctor failed without a failed connection check: {json:#}"))
        .clone();
    Verdict::Fail(format!(
        "{}: {} (hint: {})",
        failed["code"].as_str().unwrap_or_default(),
        failed["message"].as_str().unwrap_or_default(),
        failed["hint"].as_str().unwrap_or_default()
    ))
}

fn url_for(cluster: &Cluster, row: &Row, case: &CaseCert) -> String {
    let root = match row.root {
        Root::Case => format!("&sslrootcert={}", case.root.display()),
        Root::Untrusted => format!(
            "&sslrootcert={}",
            support::test_certs().untrusted_ca_cert.display()
        ),
        Root::Absent => String::new(),
        Root::Missing => "&sslrootcert=/nonexistent/aksara-test-ca.crt".to_string(),
        Root::System => "&sslrootcert=system".to_string(),
    };
    format!(
        "postgresql://postgres:{}@{}:{}/postgres?sslmode={}{root}",
        cluster.password, row.host, cluster.port, row.sslmode
    )
}

/// The verdict cluster: TLS on, its server allowed to load weak certificates (see the module
/// documentation).
fn verdict_cluster(settings: &[(&str, &str)]) -> Cluster {
    let conf = support::weak_server_openssl_conf();
    let mut cfg = ClusterConfig {
        ssl: true,
        server_env: vec![("OPENSSL_CONF".into(), conf.display().to_string())],
        ..ClusterConfig::default()
    };
    for (name, value) in settings {
        cfg = cfg.set(name, value);
    }
    Cluster::start(cfg)
}

/// One row of the committed table, with ports, paths and the password as placeholders.
fn table_line(row: &Row, verdicts: &[Verdict; 4], cluster: &Cluster) -> String {
    // The test process's scratch folder (certificates, the hermetic HOME).
    let scratch = support::hermetic_home()
        .parent()
        .expect("the process folder")
        .display()
        .to_string();
    let shown = |v: &Verdict| match v {
        Verdict::Pass => "pass".to_string(),
        Verdict::Fail(words) => {
            let first = words.lines().next().unwrap_or_default();
            first
                .replace(&scratch, "[TMP]")
                .replace(&cluster.port.to_string(), "[PORT]")
                .replace(&cluster.password, "[PASSWORD]")
        }
    };
    let root = match row.root {
        Root::Case => "case CA",
        Root::Untrusted => "other CA",
        Root::Absent => "none",
        Root::Missing => "missing file",
        Root::System => "system",
    };
    format!(
        "{} | {} | {} | {root}\n  psql:    {}\n  asyncpg: {}\n  psycopg: {}\n  aksara:  {}\n",
        row.case,
        row.host,
        row.sslmode,
        shown(&verdicts[0]),
        shown(&verdicts[1]),
        shown(&verdicts[2]),
        shown(&verdicts[3]),
    )
}

/// Every row against `cluster`, asserting as the module documentation says; returns the table.
fn check_rows(cluster: &Cluster, rows: &[Row]) -> String {
    let mut table = String::new();
    let mut served: Option<&str> = None;
    for row in rows {
        let case = support::case_cert(row.case);
        if served != Some(row.case) {
            cluster.serve_certificate(case);
            served = Some(row.case);
        }
        let verdicts = verdicts(cluster, row, case);
        check_row(row, &verdicts);
        table.push_str(&table_line(row, &verdicts, cluster));
    }
    table
}

/// psql's, asyncpg's, psycopg's and aksara's verdicts on one row's URL.
fn verdicts(cluster: &Cluster, row: &Row, case: &CaseCert) -> [Verdict; 4] {
    let url = url_for(cluster, row, case);
    let secrets = [cluster.password.as_str()];
    let psql = match psql_url(&url, "select 1") {
        Ok(_) => Verdict::Pass,
        Err(stderr) => Verdict::Fail(stderr.trim().to_string()),
    };
    let mut outcomes = drivers::run_all(
        &[
            (RealDriver::Asyncpg, url.clone()),
            (RealDriver::Psycopg, url.clone()),
        ],
        &secrets,
    )
    .into_iter()
    .map(driver_verdict);
    let asyncpg = outcomes.next().expect("asyncpg");
    let psycopg = outcomes.next().expect("psycopg");
    [psql, asyncpg, psycopg, doctor_verdict(&url)]
}

fn check_row(row: &Row, [psql, asyncpg, psycopg, aksara]: &[Verdict; 4]) {
    let context = format!(
        "{} {} {} {:?}\n  psql: {psql:?}\n  asyncpg: {asyncpg:?}\n  psycopg: {psycopg:?}\n  aksara: {aksara:?}",
        row.case, row.host, row.sslmode, row.root
    );
    // The setup is what the row says: psql's own verdict.
    match row.psql {
        Expect::Pass => assert!(psql.passed(), "psql was expected to connect: {context}"),
        Expect::Fail(_) => assert!(!psql.passed(), "psql was expected to fail: {context}"),
    }
    // aksara's verdict is psql's, with the reason in OpenSSL's or libpq's words.
    assert_eq!(
        aksara.passed(),
        psql.passed(),
        "aksara disagrees with psql: {context}"
    );
    if let Expect::Fail(words) = row.psql {
        assert!(
            aksara.words().starts_with("ssl-certificate: "),
            "aksara's code: {context}"
        );
        assert!(aksara.words().contains(words), "aksara's reason: {context}");
    }
    // psycopg is libpq too (its wheel's libpq 18 and OpenSSL 3.5): the same verdict, but for
    // what libpq 16 changed.
    match row.psycopg {
        Psycopg::Same => {
            assert_eq!(
                psycopg.passed(),
                psql.passed(),
                "psycopg disagrees with psql: {context}"
            );
        }
        Psycopg::RefusesSystemWithWeakMode => assert!(
            !psycopg.passed()
                && psycopg
                    .words()
                    .contains("may not be used with sslrootcert=system"),
            "psycopg was expected to refuse sslrootcert=system: {context}"
        ),
    }
    match row.asyncpg {
        Asyncpg::Same => {
            assert_eq!(
                asyncpg.passed(),
                psql.passed(),
                "asyncpg disagrees with psql: {context}"
            );
            // OpenSSL's verify text is in asyncpg's error as in aksara's.
            if let Expect::Fail(words) = row.psql
                && !words.contains("host name")
                && !words.contains("root certificate file")
            {
                assert!(
                    asyncpg.words().contains(words),
                    "asyncpg's reason: {context}"
                );
            }
        }
        Asyncpg::FailsMissingRootFile => assert!(
            !asyncpg.passed() && asyncpg.words().contains("FileNotFoundError"),
            "asyncpg was expected to fail on the missing root file: {context}"
        ),
        Asyncpg::FailsIpHostByName => assert!(
            !asyncpg.passed() && asyncpg.words().contains("IP address mismatch"),
            "asyncpg was expected to refuse the IP host by name: {context}"
        ),
    }
}

#[test]
fn the_tls_verdict_is_the_drivers_verdict() {
    let cluster = verdict_cluster(&[]);
    let table = check_rows(&cluster, ROWS);
    insta::assert_snapshot!("tls_verdict_table", table);
}

/// TLS 1.2 signs the handshake differently (RSA PKCS#1 allowed, the curve not bound to the
/// scheme): the same verdicts with a server that offers nothing newer.
#[test]
fn the_tls_1_2_verdict_is_the_drivers_verdict() {
    let cluster = verdict_cluster(&[("ssl_max_protocol_version", "TLSv1.2")]);
    let rows = [
        row(
            "ca-as-leaf",
            "localhost",
            "verify-full",
            Root::Case,
            Expect::Pass,
        ),
        row(
            "x509-v1",
            "localhost",
            "verify-full",
            Root::Case,
            Expect::Pass,
        ),
        row(
            "rsa-1024",
            "localhost",
            "require",
            Root::Absent,
            Expect::Pass,
        ),
        row(
            "expired",
            "localhost",
            "verify-full",
            Root::Case,
            Expect::Fail("certificate has expired"),
        ),
    ];
    let table = check_rows(&cluster, &rows);
    let case = support::case_cert("expired");
    let version = psql_url(
        &url_for(&cluster, &rows[2], case),
        "select version from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert_eq!(
        version.as_deref(),
        Ok("TLSv1.2"),
        "the server negotiates TLS 1.2"
    );
    insta::assert_snapshot!("tls_1_2_verdict_table", table);
}

/// libpq's default root file, `~/.postgresql/root.crt`: when it exists, `require` verifies the
/// chain against it (and verify-ca uses it without `sslrootcert`). psql and aksara with the
/// same HOME; asyncpg reads the same file, but its runner's HOME is the suite's shared one,
/// which must not hold a root file for the other tests.
#[test]
fn the_default_root_file_makes_require_verify_as_libpq_does() {
    let cluster = support::shared(support::Shared::Ssl);
    let home = tempfile::tempdir().expect("a HOME");
    let dot = home.path().join(".postgresql");
    std::fs::create_dir(&dot).expect("create ~/.postgresql");
    let url = format!(
        "postgresql://postgres:{}@localhost:{}/postgres?sslmode=require",
        cluster.password, cluster.port
    );
    let psql = |sql: &str| {
        let mut cmd = std::process::Command::new(&support::bins().psql);
        support::clear_pg_env(&mut cmd);
        let out = cmd
            .args(["-X", "-q", "-A", "-t", "-d", &url, "-c", sql])
            .env("HOME", home.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run psql");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let doctor = || {
        let dir = project();
        let mut cmd = aksara(dir.path());
        support::hermetic_env_with_home(&mut cmd, home.path());
        let out = run(cmd.args(["doctor", "--format", "json", "--url", &url]));
        let json: Value = serde_json::from_str(&out.stdout).expect("doctor's JSON");
        (out.code, json)
    };

    // A root file of another CA: psql refuses the server, and so does aksara, naming the file.
    std::fs::copy(
        &support::test_certs().untrusted_ca_cert,
        dot.join("root.crt"),
    )
    .expect("copy");
    let (ok, stderr) = psql("select 1");
    assert!(
        !ok && stderr.contains("certificate verify failed"),
        "{stderr}"
    );
    let (code, json) = doctor();
    assert_eq!(code, 1, "{json:#}");
    let failed = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["status"] == "fail" && c["id"] != "driver")
        .expect("a failed check")
        .clone();
    assert_eq!(failed["code"], "ssl-certificate", "{json:#}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("unable to get local issuer certificate")
            && failed["hint"]
                .as_str()
                .unwrap()
                .contains("~/.postgresql/root.crt"),
        "{failed:#}"
    );

    // The CA that signed the server's certificate: both connect.
    std::fs::copy(
        cluster.ssl_ca.as_ref().expect("the CA"),
        dot.join("root.crt"),
    )
    .expect("copy");
    let (ok, stderr) = psql("select 1");
    assert!(ok, "{stderr}");
    let (code, json) = doctor();
    assert_eq!(code, 0, "{json:#}");
}

/// The security level comes from the machine's OpenSSL configuration, read by aksara as psql
/// reads it: under a configuration at level 0 (`OPENSSL_CONF`) both accept the RSA-1024 and
/// SHA-1 certificates that Debian's level 2 refuses (rows above).
#[test]
fn the_openssl_configuration_decides_weak_certificates_for_aksara_as_for_psql() {
    let cluster = verdict_cluster(&[]);
    let conf = support::weak_server_openssl_conf();
    for name in ["rsa-1024", "sha1"] {
        let case = support::case_cert(name);
        cluster.serve_certificate(case);
        let url = url_for(
            &cluster,
            &row(name, "localhost", "verify-full", Root::Case, Expect::Pass),
            case,
        );
        let mut psql = std::process::Command::new(&support::bins().psql);
        support::clear_pg_env(&mut psql);
        let out = psql
            .args(["-X", "-q", "-A", "-t", "-d", &url, "-c", "select 1"])
            .env("HOME", support::hermetic_home())
            .env("OPENSSL_CONF", conf)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql at level 0 ({name}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = project();
        let doctor = run(aksara(dir.path())
            .env("OPENSSL_CONF", conf)
            .args(["doctor", "--format", "json", "--url", &url]));
        assert_eq!(doctor.code, 0, "aksara at level 0 ({name}): {doctor:?}");
        // And without it, the machine's own level refuses both, as the table shows.
        assert!(
            !doctor_verdict(&url).passed(),
            "{name} at the machine's level"
        );
    }
}
