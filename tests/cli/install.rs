//! install.sh: its arguments, `--uninstall` (idempotent, and without root), and, ignored by
//! default because it builds a release binary, a whole install into a temporary prefix and
//! back out: `cargo test --test cli install -- --ignored`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Run, project, run};

/// The files an install puts under a prefix.
const INSTALLED: &[&str] = &[
    "bin/aksara",
    // The OpenSSL verifier, where aksara looks for it beside its own folder (../lib/aksara/).
    "lib/aksara/libaksara_openssl.so",
    "share/man/man1/aksara.1",
    "share/bash-completion/completions/aksara",
    "share/zsh/site-functions/_aksara",
    "share/fish/vendor_completions.d/aksara.fish",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

fn install_sh(args: &[&str]) -> Command {
    // By path: a test may give the script a PATH without sh.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(script()).args(args).stdin(Stdio::null());
    crate::support::hermetic_env(&mut cmd);
    cmd
}

/// As the unprivileged `nobody` when the tests run as root, else as ourselves: install.sh
/// must work without root for a prefix its user owns.
fn as_unprivileged(cmd: Command) -> Command {
    if !is_root() {
        return cmd;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A prefix folder the unprivileged user owns (nobody cannot enter root's temp dirs).
fn unprivileged_prefix() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("aksara-install-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn install_sh_explains_itself_and_refuses_bad_arguments() {
    let help = run(&mut install_sh(&["--help"]));
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("--prefix DIR"), "{help:?}");
    assert!(help.stdout.contains("--uninstall"), "{help:?}");

    let unknown = run(&mut install_sh(&["--frobnicate"]));
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert_eq!(
        unknown.stderr,
        "error: unknown option '--frobnicate'\nhint: ./install.sh [--prefix DIR] [--uninstall]\n"
    );
    let missing = run(&mut install_sh(&["--prefix"]));
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.starts_with("error: --prefix needs a folder"),
        "{missing:?}"
    );
    assert_eq!(missing.stdout, "");

    // No cargo on PATH: said so, with where to get it, before anything is written.
    let bare = project();
    std::os::unix::fs::symlink(which("dirname"), bare.path().join("dirname")).unwrap();
    let prefix = project();
    let mut cmd = install_sh(&["--prefix", &prefix.path().display().to_string()]);
    cmd.env("PATH", bare.path());
    let no_cargo = run(&mut cmd);
    assert_eq!(no_cargo.code, 1, "{no_cargo:?}");
    assert!(
        no_cargo.stderr.starts_with("error: cargo is not installed"),
        "{no_cargo:?}"
    );
    assert!(
        no_cargo
            .stderr
            .contains("hint: install Rust from https://rustup.rs")
    );
    assert_eq!(std::fs::read_dir(prefix.path()).unwrap().count(), 0);
}

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn uninstall_removes_every_installed_file_is_idempotent_and_needs_no_root() {
    let prefix = unprivileged_prefix();
    let root = prefix.path().join("p");
    for file in INSTALLED {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "x").unwrap();
    }
    // Something else under the prefix stays.
    std::fs::write(root.join("bin/other-tool"), "keep").unwrap();
    chown_to_nobody(prefix.path());

    let root_arg = root.display().to_string();
    let first: Run = run(&mut as_unprivileged(install_sh(&[
        "--uninstall",
        "--prefix",
        &root_arg,
    ])));
    assert_eq!(first.code, 0, "{first:?}");
    for file in INSTALLED {
        assert!(
            !root.join(file).exists(),
            "{file} is still there: {first:?}"
        );
        assert!(
            first
                .stdout
                .contains(&format!("removed {}", root.join(file).display())),
            "{first:?}"
        );
    }
    assert!(root.join("bin/other-tool").exists());
    // The library's own folder goes with it; lib/ may hold other things.
    assert!(!root.join("lib/aksara").exists(), "{first:?}");
    assert!(root.join("lib").exists(), "{first:?}");

    let again = run(&mut as_unprivileged(install_sh(&[
        "--uninstall",
        &format!("--prefix={root_arg}"),
    ])));
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.stdout,
        format!("nothing to remove under {root_arg}\n")
    );
}

fn chown_to_nobody(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The whole install: release build, binary, man page, completions; then the uninstall.
/// Ignored by default: the release build (LTO, one codegen unit) takes minutes on two cores.
/// Run it by hand: `cargo test --test cli install -- --ignored`.
#[test]
#[ignore = "builds a release binary (minutes); run with --ignored"]
fn install_into_a_prefix_and_uninstall_again() {
    let prefix = project();
    let root = prefix.path().join("usr");
    let root_arg = root.display().to_string();
    // Its own target folder beside the suite's, which the cargo running it holds locked.
    let target = Path::new(env!("CARGO_BIN_EXE_aksara"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("install-test");
    let mut cmd = install_sh(&["--prefix", &root_arg]);
    cmd.env("CARGO_TARGET_DIR", &target)
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{out:?}");
    for file in INSTALLED {
        let path = root.join(file);
        assert!(path.is_file(), "{file} was not installed: {out:?}");
        assert!(
            std::fs::metadata(&path).unwrap().len() > 0,
            "{file} is empty"
        );
    }
    assert!(
        out.stdout
            .contains(&format!("installed {root_arg}/bin/aksara (aksara ")),
        "{out:?}"
    );
    let version = Command::new(root.join("bin/aksara"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("aksara "));
    let committed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/aksara.1")).unwrap();
    assert_eq!(
        std::fs::read(root.join("share/man/man1/aksara.1")).unwrap(),
        committed
    );
    let bash =
        std::fs::read_to_string(root.join("share/bash-completion/completions/aksara")).unwrap();
    assert!(bash.contains("_aksara()"), "{bash}");
    // The installed binary finds its verifier library in ../lib/aksara/: a verify-full doctor
    // passes from the prefix (and says the library is missing without it, tests/cli/lazy_openssl.rs).
    let verifying = crate::lazy_openssl::url("verify-full");
    let mut doctor = Command::new(root.join("bin/aksara"));
    crate::support::hermetic_env(&mut doctor);
    let dir = project();
    doctor.current_dir(dir.path()).stdin(Stdio::null());
    let checked = run(doctor.args(["doctor", "--url", &verifying]));
    assert_eq!(checked.code, 0, "{checked:?}");

    // Again: idempotent, the same files.
    let again = run(&mut cmd);
    assert_eq!(again.code, 0, "{again:?}");

    let out = run(&mut install_sh(&["--uninstall", "--prefix", &root_arg]));
    assert_eq!(out.code, 0, "{out:?}");
    for file in INSTALLED {
        assert!(!root.join(file).exists(), "{file} survived the uninstall");
    }
}

/// build.rs links the binary without PIE on Linux (bench/NOTES.md section 21) unless
/// AKSARA_BUILD_PIE was set for the build: the ELF type says which it got (2, `ET_EXEC`: fixed
/// address; 3, `ET_DYN`: a PIE).
#[test]
fn the_binary_is_linked_as_build_rs_says() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_aksara")).expect("read the aksara binary");
    assert_eq!(&binary[..4], b"\x7fELF");
    let elf_type = u16::from_le_bytes([binary[16], binary[17]]);
    let wanted = if std::env::var_os("AKSARA_BUILD_PIE").is_some() {
        3
    } else {
        2
    };
    assert_eq!(
        elf_type, wanted,
        "ELF type {elf_type}: build.rs and the build disagree"
    );
}
