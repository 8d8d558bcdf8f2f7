//! OpenSSL is opened only when a certificate is verified (issue 11): aksara itself links no
//! libssl/libcrypto, a healthy `sslmode=require` doctor over TLS never maps them, a
//! verify-full one opens the verifier library (and OpenSSL through it) and passes; without
//! the library beside the binary a verify-full doctor says so with the fix, and `require`
//! still passes. What the dynamic loader opened is read from its own log (`LD_DEBUG=files`),
//! for the aksara process only (its children, a driver's Python, keep their own files).

use std::path::Path;
use std::process::Command;

use crate::support::{self, Shared};
use crate::{Run, aksara, project};

const OPENSSL_LIBRARIES: [&str; 2] = ["libssl.so.3", "libcrypto.so.3"];
const VERIFIER: &str = "libaksara_openssl.so";

/// A URL to the shared TLS server; with the CA as sslrootcert under the verifying modes only
/// (with a root file, libpq's `require` verifies the chain too).
pub fn url(sslmode: &str) -> String {
    let cluster = support::shared(Shared::Ssl);
    let ca = cluster.ssl_ca.as_ref().expect("the test CA");
    let root = match sslmode {
        "verify-ca" | "verify-full" => format!("&sslrootcert={}", ca.display()),
        _ => String::new(),
    };
    format!(
        "postgresql://{}:{}@localhost:{}/postgres?sslmode={sslmode}{root}",
        cluster.superuser, cluster.password, cluster.port,
    )
}

/// Runs doctor (JSON) with the loader's file log on; the run and the files ld.so opened for
/// the aksara process itself.
fn doctor_logging_loads(cmd: &mut Command, url: &str) -> (Run, Vec<String>) {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("ld");
    cmd.args(["doctor", "--format", "json", "--url", url])
        .env("LD_DEBUG", "files")
        .env("LD_DEBUG_OUTPUT", &log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("run aksara");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let own = logs.path().join(format!("ld.{pid}"));
    let text = std::fs::read_to_string(&own)
        .unwrap_or_else(|e| panic!("no loader log {} ({e}): {run:?}", own.display()));
    // `  1234:\tfile=libssl.so.3 [0];  needed by ...` / `...;  dynamically loaded by ...`
    let opened = text
        .lines()
        .filter_map(|line| line.split_once("file=").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    (run, opened)
}

fn opened_any(opened: &[String], name: &str) -> bool {
    opened
        .iter()
        .any(|file| Path::new(file).file_name().is_some_and(|f| f == name))
}

#[test]
fn a_require_doctor_never_opens_openssl_and_a_verify_full_one_does_and_passes() {
    let dir = project();
    let (require, opened) = doctor_logging_loads(&mut aksara(dir.path()), &url("require"));
    assert_eq!(require.code, 0, "{require:?}");
    // The log is the real one: it names libc, which every run opens.
    assert!(opened_any(&opened, "libc.so.6"), "{opened:?}");
    for library in OPENSSL_LIBRARIES.iter().chain([&VERIFIER]) {
        assert!(
            !opened_any(&opened, library),
            "{library} opened: {opened:?}"
        );
    }

    let (full, opened) = doctor_logging_loads(&mut aksara(dir.path()), &url("verify-full"));
    assert_eq!(full.code, 0, "{full:?}");
    for library in OPENSSL_LIBRARIES.iter().chain([&VERIFIER]) {
        assert!(
            opened_any(&opened, library),
            "{library} not opened: {opened:?}"
        );
    }
}

#[test]
fn without_the_verifier_library_verify_full_says_so_with_the_fix_and_require_still_passes() {
    // The binary alone, as a copy that was never installed with its library.
    let alone = tempfile::tempdir().unwrap();
    let binary = alone.path().join("aksara");
    std::fs::copy(env!("CARGO_BIN_EXE_aksara"), &binary).unwrap();
    let doctor = |sslmode: &str| doctor_from(&binary, &url(sslmode));
    let (full, json) = doctor("verify-full");
    assert_ne!(full.code, 0, "{full:?}");
    let failed = crate::failed_checks(&json);
    let check = failed
        .first()
        .unwrap_or_else(|| panic!("no failed check: {json:#}"));
    // Not `ssl-certificate`: nothing is known about the certificate.
    assert_eq!(check["code"], "tls-verifier-missing", "{json:#}");
    let message = check["message"].as_str().unwrap();
    assert!(
        message.contains("could not be checked")
            && message.contains(&format!(
                "{VERIFIER} is not installed next to aksara (looked for {}",
                alone.path().join(VERIFIER).display()
            )),
        "{json:#}"
    );
    // No verdict on the certificate, which is fine: the fix is the install.
    assert!(!message.contains("did not verify"), "{json:#}");
    assert!(
        check["hint"].as_str().unwrap().contains("./install.sh"),
        "{json:#}"
    );

    let (require, json) = doctor("require");
    assert_eq!(require.code, 0, "{require:?}\n{json:#}");
}

/// aksara itself does not link OpenSSL (the verifier library does): no NEEDED entry for it
/// in the binary the tests run (the release binary has the same dependencies; bench/NOTES.md
/// section 14 shows its `readelf -d`).
#[test]
fn the_aksara_binary_needs_no_openssl_library_and_the_verifier_does() {
    let needed = |file: &Path| {
        let out = Command::new("readelf")
            .arg("-d")
            .arg(file)
            .output()
            .expect("readelf (binutils, beside the linker cargo uses)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.contains("(NEEDED)"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let binary = Path::new(env!("CARGO_BIN_EXE_aksara"));
    let own = needed(binary);
    assert!(own.iter().any(|l| l.contains("[libc.so.6]")), "{own:?}");
    for library in OPENSSL_LIBRARIES {
        assert!(!own.iter().any(|l| l.contains(library)), "{own:?}");
    }
    let theirs = needed(&built_verifier());
    for library in OPENSSL_LIBRARIES {
        assert!(theirs.iter().any(|l| l.contains(library)), "{theirs:?}");
    }
}

/// The binary copied alone into `bin/` of a temporary prefix, and doctor on it.
fn doctor_from(binary: &Path, url: &str) -> (Run, serde_json::Value) {
    let dir = project();
    let mut cmd = Command::new(binary);
    support::hermetic_env(&mut cmd);
    cmd.current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    let out = crate::run(cmd.args(["doctor", "--format", "json", "--url", url]));
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out, json)
}

fn built_verifier() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_aksara")).parent().unwrap();
    [dir.join(VERIFIER), dir.join("deps").join(VERIFIER)]
        .into_iter()
        .find(|p| p.exists())
        .expect("the verifier library, built by cargo test")
}

#[test]
fn the_library_is_found_in_lib_aksara_beside_bin_and_one_of_another_version_is_refused() {
    let prefix = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
    std::fs::create_dir_all(prefix.path().join("lib/aksara")).unwrap();
    let binary = prefix.path().join("bin/aksara");
    std::fs::copy(env!("CARGO_BIN_EXE_aksara"), &binary).unwrap();
    let installed = prefix.path().join("lib/aksara").join(VERIFIER);
    std::fs::copy(built_verifier(), &installed).unwrap();
    let (out, json) = doctor_from(&binary, &url("verify-full"));
    assert_eq!(out.code, 0, "{out:?}\n{json:#}");

    // A library that answers another ABI version (a real shared library, compiled here with
    // the C compiler cargo links with: it stands for one left by another aksara version).
    let source = prefix.path().join("other.c");
    std::fs::write(
        &source,
        "unsigned aksara_openssl_abi(void) { return 999; }\n",
    )
    .unwrap();
    let compiled = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&installed)
        .arg(&source)
        .output()
        .expect("cc");
    assert!(compiled.status.success(), "{compiled:?}");
    let (out, json) = doctor_from(&binary, &url("verify-full"));
    assert_ne!(out.code, 0, "{out:?}");
    let text = json.to_string();
    assert!(
        text.contains("speaks version 999 of its interface and this aksara version 1")
            && text.contains("./install.sh"),
        "{json:#}"
    );
    assert!(!text.contains("did not verify"), "{json:#}");
}
