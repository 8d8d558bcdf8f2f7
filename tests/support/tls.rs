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

/// One server certificate the TLS verdict tests serve (tests/cli/tls_verdict.rs), with its key
/// and the file a client gives as `sslrootcert` for it.
#[derive(Debug)]
pub struct CaseCert {
    pub name: &'static str,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub root: PathBuf,
}

/// Who signs a case's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signer {
    /// Its own key; the certificate is its own root.
    Itself,
    /// The process's test CA ([`TestCerts::ca_cert`]).
    TestCa,
    /// A CA whose own validity ended in 2021.
    ExpiredCa,
}

/// What one case's certificate is made of.
struct Spec {
    name: &'static str,
    common_name: &'static str,
    /// The v3 extensions; `None` makes an X.509 v1 certificate (no extensions at all).
    extensions: Option<&'static str>,
    signer: Signer,
    /// `openssl ca -startdate/-enddate`; `None`: from now for ten years.
    dates: Option<(&'static str, &'static str)>,
    digest: &'static str,
    rsa_1024: bool,
}

const LEAF: &str = "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n";

const SPECS: &[Spec] = &[
    // What `openssl req -x509` makes by habit: self-signed, CA:TRUE, used as the server's own.
    Spec {
        name: "ca-as-leaf",
        common_name: "localhost",
        extensions: Some(
            "basicConstraints = critical,CA:TRUE\nsubjectKeyIdentifier = hash\nsubjectAltName = DNS:localhost\n",
        ),
        signer: Signer::Itself,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "cn-only",
        common_name: "localhost",
        extensions: Some(LEAF),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "x509-v1",
        common_name: "localhost",
        extensions: None,
        signer: Signer::Itself,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "ip-in-cn",
        common_name: "127.0.0.1",
        extensions: Some(LEAF),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "ip-san",
        common_name: "db.invalid",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1\n"),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    // An address written as a dNSName: libpq compares it as text with an address host.
    Spec {
        name: "ip-as-dns-san",
        common_name: "db.invalid",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:127.0.0.1\n"),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    // Wildcards: libpq takes `*.` for one leftmost label of at least one character, and
    // compares dNSNames as text even with an address host (so `*.0.0.1` covers 127.0.0.1).
    Spec {
        name: "wildcard",
        common_name: "db.invalid",
        extensions: Some(
            "basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:*.localhost, DNS:*.0.0.1\n",
        ),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "expired",
        common_name: "localhost",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost\n"),
        signer: Signer::TestCa,
        dates: Some(("20200101000000Z", "20210101000000Z")),
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "not-yet-valid",
        common_name: "localhost",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost\n"),
        signer: Signer::TestCa,
        dates: Some(("20400101000000Z", "20410101000000Z")),
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "expired-ca",
        common_name: "localhost",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost\n"),
        signer: Signer::ExpiredCa,
        dates: None,
        digest: "sha256",
        rsa_1024: false,
    },
    Spec {
        name: "sha1",
        common_name: "localhost",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost\n"),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha1",
        rsa_1024: false,
    },
    Spec {
        name: "rsa-1024",
        common_name: "localhost",
        extensions: Some("basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost\n"),
        signer: Signer::TestCa,
        dates: None,
        digest: "sha256",
        rsa_1024: true,
    },
];

/// `openssl ca`'s configuration: any subject, repeated subjects allowed, serials from a file.
const SIGNING_CONFIG: &str = "\
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
";

/// The path of an OpenSSL configuration that lets a *server* load the weak certificates
/// (RSA-1024, SHA-1) the clients are then to refuse: Debian's libssl refuses to load them at
/// its level 2. For the postmaster's `OPENSSL_CONF`; readable by the server user.
pub fn weak_server_openssl_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let path = process_dir().join("weak-server-openssl.cnf");
        fs::write(&path, WEAK_SERVER_OPENSSL_CONF).expect("write the server's OpenSSL config");
        path
    })
}

const WEAK_SERVER_OPENSSL_CONF: &str = "\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT@SECLEVEL=0
";

/// The verdict tests' certificates, made once per test process.
pub fn case_certs() -> &'static [CaseCert] {
    static CASES: OnceLock<Vec<CaseCert>> = OnceLock::new();
    CASES.get_or_init(|| {
        let dir = process_dir().join("case-certs");
        let base = test_certs();
        generate_cases(&dir, base)
    })
}

/// The case named `name` (one of [`SPECS`]).
pub fn case_cert(name: &str) -> &'static CaseCert {
    case_certs()
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no test certificate `{name}`"))
}

fn generate_cases(dir: &Path, base: &TestCerts) -> Vec<CaseCert> {
    fs::create_dir_all(dir.join("issued")).expect("create the case certificate directory");
    fs::write(dir.join("index.txt"), "").expect("write index.txt");
    fs::write(dir.join("serial"), "1000\n").expect("write serial");
    fs::write(dir.join("sign.cnf"), SIGNING_CONFIG).expect("write sign.cnf");
    fs::copy(&base.ca_cert, dir.join("ca.crt")).expect("copy the CA");
    let ca_key = base.ca_cert.with_file_name("ca.key");
    fs::copy(&ca_key, dir.join("ca.key")).expect("copy the CA key");
    // The expired CA: self-signed, valid in 2020 only.
    fs::write(dir.join("old-ca.cnf"), ca_config("aksara expired test CA")).expect("write");
    fs::write(
        dir.join("old-ca.ext"),
        "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
    )
    .expect("write");
    openssl(
        dir,
        "ecparam -name prime256v1 -genkey -noout -out old-ca.key",
    );
    openssl(
        dir,
        "req -new -config old-ca.cnf -key old-ca.key -out old-ca.csr",
    );
    openssl(
        dir,
        "ca -config sign.cnf -batch -notext -selfsign -in old-ca.csr -keyfile old-ca.key \
         -startdate 20200101000000Z -enddate 20210101000000Z -extfile old-ca.ext \
         -out old-ca.crt",
    );
    SPECS.iter().map(|spec| generate_case(dir, spec)).collect()
}

fn generate_case(dir: &Path, spec: &Spec) -> CaseCert {
    let name = spec.name;
    fs::write(
        dir.join(format!("{name}.cnf")),
        format!(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {}\n",
            spec.common_name
        ),
    )
    .expect("write a request config");
    if spec.rsa_1024 {
        openssl(dir, &format!("genrsa -out {name}.key 1024"));
    } else {
        openssl(
            dir,
            &format!("ecparam -name prime256v1 -genkey -noout -out {name}.key"),
        );
    }
    openssl(
        dir,
        &format!("req -new -config {name}.cnf -key {name}.key -out {name}.csr"),
    );
    let mut args = format!(
        "ca -config sign.cnf -batch -notext -md {} -in {name}.csr -out {name}.crt",
        spec.digest
    );
    match spec.signer {
        Signer::Itself => args.push_str(&format!(" -selfsign -keyfile {name}.key")),
        Signer::TestCa => args.push_str(" -cert ca.crt -keyfile ca.key"),
        Signer::ExpiredCa => args.push_str(" -cert old-ca.crt -keyfile old-ca.key"),
    }
    match spec.dates {
        Some((start, end)) => args.push_str(&format!(" -startdate {start} -enddate {end}")),
        None => args.push_str(" -days 3650"),
    }
    if let Some(extensions) = spec.extensions {
        fs::write(dir.join(format!("{name}.ext")), extensions).expect("write extensions");
        args.push_str(&format!(" -extfile {name}.ext"));
    }
    openssl(dir, &args);
    let root = match spec.signer {
        Signer::Itself => dir.join(format!("{name}.crt")),
        Signer::TestCa => dir.join("ca.crt"),
        Signer::ExpiredCa => dir.join("old-ca.crt"),
    };
    CaseCert {
        name,
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        root,
    }
}

impl super::Cluster {
    /// Serves `case`'s certificate from now on: it replaces the cluster's `server.crt` and
    /// `server.key`, the server reloads, and this returns once a TLS handshake shows the new
    /// certificate (a reload that could not load it keeps the old one, so it is checked with
    /// `openssl s_client` rather than assumed). The cluster must have `ssl` on.
    pub fn serve_certificate(&self, case: &CaseCert) {
        let ssl_dir = self
            .ssl_ca
            .as_ref()
            .and_then(|ca| ca.parent())
            .expect("a cluster with ssl on");
        for (from, name, mode) in [
            (&case.cert, "server.crt", 0o644),
            (&case.key, "server.key", 0o600),
        ] {
            let to = ssl_dir.join(name);
            fs::copy(from, &to).expect("copy a case certificate");
            super::privileges::give_to_server_user(&to, mode);
        }
        self.psql("postgres", "SELECT pg_reload_conf()");
        let wanted = fs::read_to_string(&case.cert).expect("read the case certificate");
        let wanted = pem_body(&wanted);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let served = served_certificate(self.port);
            if served.as_deref() == Some(wanted.as_str()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server does not serve `{}` after the reload (serves {served:?}); its log:\n{}",
                case.name,
                self.log_contents()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The base64 body of the first PEM block in `text`.
fn pem_body(text: &str) -> String {
    text.lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect()
}

/// The certificate the server on `port` presents, from `openssl s_client -starttls postgres`
/// (which verifies nothing and allows any key size, so it sees whatever is served).
fn served_certificate(port: u16) -> Option<String> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-starttls",
            "postgres",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let body = pem_body(&String::from_utf8_lossy(&out.stdout));
    (!body.is_empty()).then_some(body)
}

/// A client certificate for `common_name`, signed by the test CA (the one a cluster's
/// `ssl_ca_file` names in `client_cert_cluster`), with its key (mode 0600, as libpq wants).
pub fn client_cert(common_name: &str) -> (PathBuf, PathBuf) {
    let certs = test_certs();
    let ca_dir = certs
        .ca_cert
        .parent()
        .expect("the CA's folder")
        .to_path_buf();
    let dir = process_dir().join("client-certs").join(common_name);
    fs::create_dir_all(&dir).expect("create a client certificate folder");
    fs::write(
        dir.join("client.cnf"),
        format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {common_name}\n"),
    )
    .expect("write the client certificate config");
    fs::write(
        dir.join("client.ext"),
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n",
    )
    .expect("write the client certificate extensions");
    openssl(&dir, "ecparam -name prime256v1 -genkey -noout -out ec.key");
    // PKCS#8, as most tools write it today.
    openssl(&dir, "pkcs8 -topk8 -nocrypt -in ec.key -out client.key");
    openssl(
        &dir,
        "req -new -sha256 -config client.cnf -key client.key -out client.csr",
    );
    let ca_cert = ca_dir.join("ca.crt").display().to_string();
    let ca_key = ca_dir.join("ca.key").display().to_string();
    openssl(
        &dir,
        &format!(
            "x509 -req -sha256 -days 3650 -in client.csr -CA {ca_cert} -CAkey {ca_key} \
             -set_serial 7 -extfile client.ext -out client.crt"
        ),
    );
    let key = dir.join("client.key");
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (dir.join("client.crt"), key)
}
