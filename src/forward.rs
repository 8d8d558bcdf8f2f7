//! Subcommands aksara does not have, forwarded as cargo and git do: `aksara makemigrations
//! --app app.models` runs `aksara-makemigrations --app app.models` from PATH, or else the
//! project's Python environment's `python -m aksara makemigrations --app app.models` (the
//! Aksara framework's own CLI, where `makemigrations` and `migrate` live). The program
//! replaces aksara (`exec`), so its exit code, its signals and its terminal are its own.
//! With neither, the error names both ways and how to get one.
//!
//! [`available`] tells the caller, without running anything of the framework's, whether a
//! forwarded command would run here: `dbsetup` prints under "Next steps" only those.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{CliError, CliResult, Exit};

/// The prefix of the programs aksara forwards to (`aksara-migrate`).
pub const PROGRAM_PREFIX: &str = "aksara-";
/// The Python module that is the framework's CLI.
pub const PYTHON_MODULE: &str = "aksara";

/// Where a forwarded command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `aksara-<name>` on PATH.
    Program(PathBuf),
    /// A Python interpreter of the project's environment that has the framework installed.
    Python(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Program(p) => write!(f, "{}", p.display()),
            Target::Python(p) => write!(f, "{} -m {PYTHON_MODULE}", p.display()),
        }
    }
}

/// A name that can be a program's suffix: no path separator, no leading dot or dash.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The Python interpreters that count as the project's environment, in order: the activated
/// one (`$VIRTUAL_ENV`), then `.venv/bin/python` in `project_dir` or the nearest folder above
/// it that has one.
pub fn python_candidates(project_dir: &Path, virtual_env: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(venv) = virtual_env {
        out.push(venv.join("bin/python"));
    }
    if let Some(found) = project_dir
        .ancestors()
        .map(|d| d.join(".venv/bin/python"))
        .find(|p| p.is_file())
    {
        out.push(found);
    }
    out
}

/// Whether `python` can import the framework's CLI module (`aksara.__main__`).
fn has_framework(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('aksara.__main__') else 1)",
        ])
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where `name` would be forwarded from `project_dir`, if anywhere.
pub fn find(name: &str, project_dir: &Path) -> Option<Target> {
    if !valid_name(name) {
        return None;
    }
    if let Ok(program) = which::which(format!("{PROGRAM_PREFIX}{name}")) {
        return Some(Target::Program(program));
    }
    let virtual_env = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from);
    python_candidates(project_dir, virtual_env.as_deref())
        .into_iter()
        .find(|p| has_framework(p))
        .map(Target::Python)
}

/// Whether `aksara <name>` would run here: for "Next steps", print only what will.
pub fn available(name: &str, project_dir: &Path) -> bool {
    find(name, project_dir).is_some()
}

/// Run the forwarded command in place of aksara; returns only when it could not be run.
pub fn run(args: Vec<OsString>, project_dir: &Path) -> CliResult<Exit> {
    let (name, rest) = args
        .split_first()
        .ok_or_else(|| CliError::usage("no subcommand given"))?;
    let name = name.to_string_lossy().into_owned();
    let Some(target) = find(&name, project_dir) else {
        return Err(not_found(&name, project_dir));
    };
    let mut cmd = match &target {
        Target::Program(program) => Command::new(program),
        Target::Python(python) => {
            let mut c = Command::new(python);
            c.args(["-m", PYTHON_MODULE, &name]);
            c
        }
    };
    cmd.args(rest);
    let error = cmd.exec();
    Err(CliError::failure(format!(
        "cannot run `{target}` for `aksara {name}`: {error}"
    ))
    .with_hint("check that the program is executable and its interpreter exists"))
}

fn not_found(name: &str, project_dir: &Path) -> CliError {
    if !valid_name(name) {
        return CliError::usage(format!("`{name}` is not an aksara command"))
            .with_hint("see `aksara --help` for the commands");
    }
    CliError::usage(format!(
        "`aksara {name}` is not a command of this program, and nothing here provides it: no `{PROGRAM_PREFIX}{name}` on PATH, and no Python environment with the Aksara framework (`$VIRTUAL_ENV`, or `.venv/bin/python` in {} or a folder above)",
        project_dir.display()
    ))
    .with_hint(format!(
        "commands such as `makemigrations` and `migrate` belong to the Aksara framework's own CLI: install the framework into the project's Python environment (`python3 -m venv .venv`, then the framework's install step), and `aksara {name}` runs `.venv/bin/python -m aksara {name}`; `aksara --help` lists this program's own commands"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_forwarded() {
        assert!(valid_name("makemigrations"));
        assert!(valid_name("db-shell_2.0"));
        assert!(!valid_name("../bin/sh"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
    }

    #[test]
    fn the_activated_environment_comes_before_the_nearest_venv() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("src/app");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::create_dir_all(dir.path().join(".venv/bin")).unwrap();
        std::fs::write(dir.path().join(".venv/bin/python"), "").unwrap();
        let got = python_candidates(&sub, Some(Path::new("/opt/env")));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/opt/env/bin/python"),
                dir.path().join(".venv/bin/python")
            ]
        );
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(python_candidates(elsewhere.path(), None).is_empty());
    }
}
