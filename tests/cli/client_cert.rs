//! Client certificates, as libpq sends them (`sslcert`/`sslkey` in the URL): a `cert` line in
//! pg_hba.conf lets the URL in, and the server's two refusals of a certificate (its common
//! name is not the user; `clientcert=verify-full` on a password line) are reproduced on a real
//! server next to psql, with their code and a hint true of the certificate sent.

use crate::support::{self, Cluster, ClusterConfig, client_cert};
use crate::{aksara, project, run};

/// TLS on, the test CA trusted for client certificates, and the given line for TCP.
fn cluster(tcp_line: &str) -> Cluster {
    Cluster::start(ClusterConfig {
        ssl: true,
        hba: Some(vec!["local all all trust".into(), tcp_line.into()]),
        // The harness puts the CA beside the data folder (ssl/ca.crt).
        settings: vec![("ssl_ca_file".into(), "../ssl/ca.crt".into())],
        ..ClusterConfig::default()
    })
}

fn url(cluster: &Cluster, role: &str, cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "postgresql://{role}:pw-{role}@127.0.0.1:{}/postgres?sslmode=require&sslcert={}&sslkey={}",
        cluster.port,
        cert.display(),
        key.display()
    )
}

fn psql(url: &str) -> (bool, String) {
    let mut cmd = std::process::Command::new(&support::bins().psql);
    support::clear_pg_env(&mut cmd);
    let out = cmd
        .args(["-X", "-A", "-t", "-c", "select current_user", url])
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn doctor(url: &str) -> (crate::Run, serde_json::Value) {
    let dir = project();
    let out = run(aksara(dir.path()).args(["doctor", "--format", "json", "--url", url]));
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out, json)
}

fn failed(json: &serde_json::Value) -> Vec<serde_json::Value> {
    crate::failed_checks(json).into_iter().cloned().collect()
}

#[test]
fn a_client_certificate_in_the_url_logs_in_on_a_cert_line() {
    let cluster = cluster("hostssl all all 127.0.0.1/32 cert");
    let role = support::unique_name("certuser");
    cluster.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    let (cert, key) = client_cert(&role);
    let url = url(&cluster, &role, &cert, &key);
    let (ok, said) = psql(&url);
    assert!(ok, "psql: {said}");
    let (out, json) = doctor(&url);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(failed(&json).is_empty(), "{json:#}");
    // The same URL without the certificate: the server asks for one, and the hint names the
    // parameters that send it.
    let bare = format!(
        "postgresql://{role}@127.0.0.1:{}/postgres?sslmode=require",
        cluster.port
    );
    let (out, json) = doctor(&bare);
    assert_eq!(out.code, 1, "{out:?}");
    let fail = &failed(&json)[0];
    assert_eq!(fail["code"], "client-certificate-required", "{json:#}");
    assert!(
        fail["hint"].as_str().unwrap().contains("sslcert="),
        "{json:#}"
    );
}

/// `certificate authentication failed for user "%s"`: a certificate whose CN is another name.
#[test]
fn a_certificate_for_another_name_is_refused_as_psql_is() {
    let cluster = cluster("hostssl all all 127.0.0.1/32 cert");
    let role = support::unique_name("certwho");
    cluster.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    let (cert, key) = client_cert("somebody_else");
    let url = url(&cluster, &role, &cert, &key);
    let (ok, said) = psql(&url);
    assert!(!ok);
    assert!(
        said.contains(&format!(
            "certificate authentication failed for user \"{role}\""
        )),
        "psql: {said}"
    );
    let (out, json) = doctor(&url);
    assert_eq!(out.code, 1, "{out:?}");
    let fail = &failed(&json)[0];
    assert_eq!(fail["code"], "client-certificate-required", "{json:#}");
    assert!(
        fail["message"].as_str().unwrap().contains(&format!(
            "certificate authentication failed for user \"{role}\""
        )),
        "{json:#}"
    );
    assert!(
        fail["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("common name must be the user name \"{role}\"")),
        "{json:#}"
    );
}

/// A password line with `clientcert=verify-full` and a certificate whose CN is another name:
/// the server logs `certificate validation (clientcert=verify-full) failed for user "%s"`, but
/// the client only ever hears the password method's refusal (PostgreSQL's `auth_failed` words
/// the method). psql says just that; doctor's hint names the certificate as a cause too, since
/// one was sent, and the server log is where the two are told apart.
#[test]
fn clientcert_verify_full_refuses_a_certificate_for_another_name_in_the_password_s_words() {
    let cluster = cluster("hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full");
    let role = support::unique_name("certfull");
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'"),
    );
    let (cert, key) = client_cert("not_the_user");
    let wrong = url(&cluster, &role, &cert, &key);
    let (ok, said) = psql(&wrong);
    assert!(!ok);
    assert!(
        said.contains(&format!(
            "password authentication failed for user \"{role}\""
        )),
        "psql: {said}"
    );
    let (out, json) = doctor(&wrong);
    assert_eq!(out.code, 1, "{out:?}");
    let fail = &failed(&json)[0];
    assert_eq!(fail["code"], "auth-failed", "{json:#}");
    assert!(
        fail["hint"].as_str().unwrap().contains(&format!(
            "`clientcert=verify-full` and the client certificate's common name is not \"{role}\""
        )),
        "{json:#}"
    );
    // The hint is true of this server: the user's own certificate and the same password pass.
    let (cert, key) = client_cert(&role);
    let right = url(&cluster, &role, &cert, &key);
    assert!(psql(&right).0);
    let (out, json) = doctor(&right);
    assert_eq!(out.code, 0, "{out:?}\n{json:#}");
}
