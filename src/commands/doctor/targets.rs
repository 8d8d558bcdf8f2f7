//! Which URLs the doctor checks, and where each came from: `--url`, else every
//! `DATABASE_URL` / `*_DATABASE_URL` key of the `.env` file (the last definition of a key, as
//! dotenv-style loaders keep it), else the shell's `DATABASE_URL`.

use std::path::PathBuf;

use crate::cli::DoctorArgs;
use crate::envfile;
use crate::error::{CliError, CliResult};

/// A URL to check.
pub struct Target {
    /// Where it came from, for the header (`.env (DATABASE_URL, line 1)`).
    pub source: String,
    pub raw: String,
    /// The `.env` file it was read from, for the file checks.
    pub env_file: Option<PathBuf>,
    pub note: Option<String>,
}

pub fn find_targets(args: &DoctorArgs) -> CliResult<Vec<Target>> {
    if let Some(url) = &args.url {
        return Ok(vec![Target {
            source: "--url".into(),
            raw: url.clone(),
            env_file: None,
            note: None,
        }]);
    }
    let path = &args.env.env_file;
    let shell_value = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty());
    match envfile::read_entries(path) {
        Ok(entries) => {
            // The last definition of a key is the one dotenv-style loaders keep.
            let mut last: Vec<&envfile::EnvEntry> = Vec::new();
            for e in entries
                .iter()
                .filter(|e| e.key == "DATABASE_URL" || e.key.ends_with("_DATABASE_URL"))
            {
                last.retain(|kept| kept.key != e.key);
                last.push(e);
            }
            last.sort_by_key(|e| e.line);
            let targets: Vec<Target> = last
                .into_iter()
                .map(|e| {
                    let shadowed = e.key == "DATABASE_URL"
                        && shell_value.as_ref().is_some_and(|v| *v != e.value);
                    Target {
                        source: format!("{} ({}, line {})", path.display(), e.key, e.line),
                        raw: e.value.clone(),
                        env_file: Some(path.clone()),
                        note: shadowed.then(|| {
                            "the shell also sets DATABASE_URL, to a different value; most frameworks use the shell's and ignore .env (dotenv does not override variables already set)".to_string()
                        }),
                    }
                })
                .collect();
            if !targets.is_empty() {
                return Ok(targets);
            }
        }
        Err(e) if path.exists() => return Err(e.into()),
        Err(_) => {}
    }
    if let Some(url) = shell_value {
        return Ok(vec![Target {
            source: "the environment variable DATABASE_URL".into(),
            raw: url,
            env_file: None,
            note: None,
        }]);
    }
    Err(CliError::usage(format!(
        "no database URL to check: --url was not given, {} has no DATABASE_URL, and DATABASE_URL is not set",
        path.display()
    ))
    .with_hint("run `aksara dbsetup` to create the database and write DATABASE_URL, or pass --url"))
}
