//! Commands aksara does not have are forwarded, as cargo and git do: to `aksara-<name>` on
//! PATH, else to the project's Python environment (`python -m aksara <name>`), with the
//! forwarded program's own output and exit code. The Aksara framework's CLI cannot exist on
//! this machine: the tests use stand-ins for it, a shell script named `aksara-makemigrations`
//! and an `aksara` package (`__main__.py`) in a real `python3 -m venv` environment.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::{aksara, project, run, transcript};

fn with_path(cmd: &mut Command, first: &Path) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![first.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).unwrap())
        .env_remove("VIRTUAL_ENV");
}

#[test]
fn an_unknown_command_runs_the_aksara_program_of_that_name_on_path() {
    let dir = project();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("aksara-makemigrations");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"stand-in framework CLI: $*\"\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = aksara(dir.path());
    with_path(&mut cmd, &bin);
    let out = run(cmd.args(["makemigrations", "--app", "app.models"]));
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "stand-in framework CLI: --app app.models\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn an_unknown_command_runs_in_the_projects_python_environment() {
    let dir = project();
    let venv = dir.path().join(".venv");
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(made.success());
    let site = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .next()
        .expect("lib/python3.X")
        .path()
        .join("site-packages/aksara");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("__init__.py"), "").unwrap();
    std::fs::write(
        site.join("__main__.py"),
        "import sys\nprint('framework stand-in:', sys.argv[1:])\nsys.exit(5)\n",
    )
    .unwrap();
    let sub = dir.path().join("app/models");
    std::fs::create_dir_all(&sub).unwrap();

    assert!(aksara::forward::available("migrate", &sub));
    let mut cmd = aksara(&sub);
    cmd.env_remove("VIRTUAL_ENV");
    let out = run(cmd.args(["migrate", "--check"]));
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.stdout, "framework stand-in: ['migrate', '--check']\n");

    // A .venv without the framework does not count.
    std::fs::remove_dir_all(&site).unwrap();
    assert!(!aksara::forward::available("migrate", &sub));
}

#[test]
fn without_a_program_or_an_environment_the_error_names_both_and_how_to_get_one() {
    let dir = project();
    assert!(!aksara::forward::available("migrate", dir.path()));
    let mut cmd = aksara(dir.path());
    cmd.env_remove("VIRTUAL_ENV");
    let out = run(cmd.arg("migrate"));
    assert_eq!(out.code, 2, "{out:?}");
    let project = dir.path().display().to_string();
    let placeholders = [(project.as_str(), "[PROJECT]")];
    insta::assert_snapshot!(
        "forward_names_what_would_provide_a_missing_command",
        transcript("aksara migrate", &out, &placeholders)
    );
    let bad = run(aksara(dir.path()).arg("../../bin/sh"));
    assert_eq!(bad.code, 2, "{bad:?}");
    insta::assert_snapshot!(
        "forward_refuses_a_path_as_a_command_name",
        transcript("aksara ../../bin/sh", &bad, &placeholders)
    );
}
