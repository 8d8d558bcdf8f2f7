//! A test certificate authority and a server certificate, made with the `openssl` CLI once per
//! test process.
//!
//! The server certificate is for `CN=localhost` with `subjectAltName=DNS:localhost` only, so
//! `verify-full` succeeds against `localhost` and fails with a name mismatch against `127.0.0.1`.
//! A second, unrelated CA is there for "certificate signed by an unknown authority" tests.
//! Keys are P-256 because they take milliseconds to generate where RSA takes much longer.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::cleanup::process_dir;

#[derive(Debug)]
pub struct TestCerts {
    /// The CA (PEM) that signed `server_cert`.
    pub ca_cert: PathBuf,
    /// A CA (PEM) that signed nothing the server presents.
    pub untrusted_ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn ca_config(common_name: &str) -> String {
    format!(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {common_name}\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n"
    )
}

const SERVER_CSR_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
";

const SERVER_EXTENSIONS: &str = "\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
";

/// The process's certificates; clusters copy them into their own directory.
pub fn test_certs() -> &'static TestCerts {
    static CERTS: OnceLock<TestCerts> = OnceLock::new();
    CERTS.get_or_init(|| generate(&process_dir().join("certs")))
}

fn generate(dir: &Path) -> TestCerts {
    fs::create_dir_all(dir).expect("create the certificate directory");
    for (name, text) in [
        ("ca.cnf", ca_config("aksara test CA")),
        ("untrusted-ca.cnf", ca_config("aksara untrusted test CA")),
        ("server.cnf", SERVER_CSR_CONFIG.to_owned()),
        ("server.ext", SERVER_EXTENSIONS.to_owned()),
    ] {
        fs::write(dir.join(name), text).expect("write an openssl config file");
    }
    for ca in ["ca", "untrusted-ca"] {
        openssl(
            dir,
            &format!("ecparam -name prime256v1 -genkey -noout -out {ca}.key"),
        );
        openssl(
            dir,
            &format!(
                "req -new -x509 -sha256 -days 3650 -config {ca}.cnf -extensions v3_ca \
                 -key {ca}.key -out {ca}.crt"
            ),
        );
    }
    openssl(
        dir,
        "ecparam -name prime256v1 -genkey -noout -out server.key",
    );
    openssl(
        dir,
        "req -new -sha256 -config server.cnf -key server.key -out server.csr",
    );
    openssl(
        dir,
        "x509 -req -sha256 -days 3650 -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 \
         -extfile server.ext -out server.crt",
    );
    TestCerts {
        ca_cert: dir.join("ca.crt"),
        untrusted_ca_cert: dir.join("untrusted-ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    }
}

/// Runs `openssl` with whitespace-separated arguments (none of them contains a space) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "could not run `openssl` ({e}); the TLS tests make their certificates with it\n\n\
                 help: install it with `apt-get install -y openssl` (Debian/Ubuntu)"
            )
        });
    assert!(
        out.status.success(),
        "`openssl {args}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
