//! Which URLs the doctor checks, and where each came from: `--url`, else every
//! `DATABASE_URL` / `*_DATABASE_URL` / `DATABASE_*_URL` key of the `.env` file (the last
//! definition of a key, as dotenv-style loaders keep it) and the shell's value of any of those
//! keys that differs from the file's (the app gets one or the other by its loader: both are
//! checked), else the shell's `DATABASE_URL`. A key other than `DATABASE_URL` whose value is
//! spelled for one driver (`postgresql+asyncpg://`, `uselibpqcompat`, `jdbc:`: what `dbsetup
//! --driver-url` writes, see `drivers::forms`) is that driver's form of a database: it is
//! judged with that driver's reading only, and the connection checks use what it means to
//! libpq.

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
    /// Whether the file holds the URL's password (on its line, or on another that a `${NAME}`
    /// reference takes it from; not when the reference brings it from the shell): what the
    /// git check says the file gives away.
    pub password_in_file: bool,
    /// The variable it came from (`DATABASE_URL`, `DATABASE_REPLICA_URL`), whose name says
    /// whether a primary or a replica is meant.
    pub key: Option<String>,
    pub note: Option<String>,
    /// A driver's own form: the driver, and the value as the app gets it (`raw` is then what
    /// it means to libpq, which the connection checks use).
    pub driver_form: Option<DriverForm>,
    /// Drivers whose own form another key of the same file holds (`SQLALCHEMY_DATABASE_URL`
    /// next to `DATABASE_URL`): this URL's verdict for them is said, not failed.
    pub forms_elsewhere: Vec<(crate::drivers::Driver, String)>,
}

/// A key that holds one driver's own form of a database URL.
#[derive(Debug, Clone)]
pub struct DriverForm {
    pub driver: crate::drivers::Driver,
    /// The value as the app gets it.
    pub value: String,
    /// The value as the header shows it: the same URL in that driver's spelling, password
    /// redacted.
    pub shown: String,
    /// Where it is: `SQLALCHEMY_DATABASE_URL (line 2)`.
    pub place: String,
}

/// `raw` as libpq reads what it means, and the driver it is spelled for, when `key` holds
/// one driver's form; None for `DATABASE_URL`, which every driver of the app reads.
fn driver_form(key: &str, raw: &str, place: String) -> Option<(String, DriverForm, String)> {
    if key == "DATABASE_URL" {
        return None;
    }
    let (driver, spelling) = crate::drivers::forms::spelled_for(raw)?;
    let conn = crate::drivers::meaning(raw).ok()?;
    let libpq = crate::drivers::rewrite_conn(crate::drivers::Driver::Libpq, &conn).ok()?;
    let note = format!(
        "{key} is spelled for {} ({spelling}): doctor judges it with that driver's reading only, and connects where it means",
        driver.name()
    );
    let shown = crate::drivers::rewrite_conn(driver, &conn)
        .map(|own| own.url.to_string())
        .unwrap_or_else(|_| "<its own spelling>".into());
    let form = DriverForm {
        driver,
        value: raw.to_owned(),
        shown,
        place,
    };
    Some((libpq.url.expose().to_owned(), form, note))
}

/// `DATABASE_URL`, `*_DATABASE_URL` (`TEST_DATABASE_URL`) and `DATABASE_*_URL`
/// (`DATABASE_REPLICA_URL`, the seed page's read replica).
fn is_database_url_key(key: &str) -> bool {
    key == "DATABASE_URL"
        || key.ends_with("_DATABASE_URL")
        || (key.starts_with("DATABASE_") && key.ends_with("_URL"))
}

/// When the loaders take different lines for `key` (duplicates: python-dotenv and node dotenv
/// keep the last, dotenvy the first), which line each gives the app.
fn loaders_disagree(bytes: &[u8], key: &str) -> Option<String> {
    let unset = |_: &str| None;
    let got = envfile::what_the_app_gets(bytes, key, &unset);
    let lines: Vec<(envfile::Loader, usize, Vec<usize>)> = got
        .into_iter()
        .filter_map(|(loader, loaded)| match loaded {
            envfile::Loaded::FromFile { line, lines, .. } => Some((loader, line, lines)),
            _ => None,
        })
        .collect();
    let all = lines.first()?.2.clone();
    if all.len() < 2 {
        return None;
    }
    let said: Vec<String> = lines
        .iter()
        .map(|(loader, line, _)| format!("{loader} uses line {line}"))
        .collect();
    Some(format!(
        "{key} is set on lines {}: {}; doctor checks the last, as python-dotenv (the framework's loader) does",
        all.iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        said.join(", ")
    ))
}

pub fn find_targets(args: &DoctorArgs) -> CliResult<Vec<Target>> {
    if let Some(url) = &args.url {
        return Ok(vec![Target {
            source: "--url".into(),
            raw: url.clone(),
            env_file: None,
            password_in_file: false,
            key: None,
            note: None,
            driver_form: None,
            forms_elsewhere: Vec::new(),
        }]);
    }
    let path = &match &args.env.env_file {
        Some(given) => given.clone(),
        None => envfile::default_path(),
    };
    // What the shell sets for a key, next to the file's: dotenv-style loaders keep a variable
    // that is already set, so an app started from this shell gets the shell's value.
    let shell = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    // What the application's own loader would make of the file (python-dotenv for the Aksara
    // framework): a line it cannot read is named here, not reported as "no DATABASE_URL".
    let bytes = envfile::read_file(path).ok();
    if let Some(bytes) = &bytes
        && let envfile::Loaded::Unreadable { line, problem } =
            envfile::app_gets(envfile::Loader::PythonDotenv, bytes, "DATABASE_URL", &|k| {
                std::env::var(k).ok()
            })
    {
        return Err(CliError::usage(format!(
            "{} line {line}: {problem}; the app gets no DATABASE_URL from the file",
            path.display()
        ))
        .with_hint(format!(
            "fix line {line} of {} (an unclosed quote is the usual cause), then run the doctor again",
            path.display()
        )));
    }
    match envfile::read_entries(path) {
        Ok(entries) => {
            // The last definition of a key is the one dotenv-style loaders keep.
            let mut last: Vec<&envfile::EnvEntry> = Vec::new();
            for e in entries.iter().filter(|e| is_database_url_key(&e.key)) {
                last.retain(|kept| kept.key != e.key);
                last.push(e);
            }
            last.sort_by_key(|e| e.line);
            let mut targets = Vec::new();
            for e in last {
                let expanded = bytes.as_deref().and_then(|b| expanded_value(b, e));
                let value = expanded.as_deref().unwrap_or(&e.value);
                let shadow = shell(&e.key).filter(|v| v != value);
                targets.push(file_target(
                    path,
                    e,
                    bytes.as_deref(),
                    expanded.as_deref(),
                    shadow.is_some(),
                ));
                // Which of the two the app gets depends on its loader, so both are checked:
                // "all checks passed" then holds whichever it uses.
                if let Some(value) = shadow {
                    targets.push(shell_target(&e.key, value, Some(path)));
                }
            }
            if !targets.is_empty() {
                return Ok(with_forms_elsewhere(targets));
            }
        }
        Err(e) if path.exists() => return Err(e.into()),
        Err(_) => {}
    }
    if let Some(url) = shell("DATABASE_URL") {
        return Ok(vec![shell_target("DATABASE_URL", url, None)]);
    }
    let file = if path.exists() {
        format!("{} has no DATABASE_URL", path.display())
    } else if args.env.env_file.is_some() {
        format!("there is no {}", path.display())
    } else if std::env::current_dir().is_ok_and(|cwd| envfile::in_project(&cwd)) {
        "there is no .env here or above it in the project".to_string()
    } else {
        // Outside a project nothing above is looked at (`envfile::nearest_above`).
        "there is no .env here".to_string()
    };
    Err(CliError::usage(format!(
        "no database URL to check: --url was not given, {file}, and DATABASE_URL is not set"
    ))
    .with_hint("run `aksara dbsetup` to create the database and write DATABASE_URL, or pass --url"))
}

/// What `value` of `key` means to libpq, its driver form when it is spelled for one driver,
/// and `note` with that form's own note in front.
fn spelled(
    key: &str,
    value: &str,
    place: String,
    note: Option<String>,
) -> (String, Option<DriverForm>, Option<String>) {
    match driver_form(key, value, place) {
        Some((libpq, form, form_note)) => {
            let note = match note {
                Some(note) => format!("{form_note}; {note}"),
                None => form_note,
            };
            (libpq, Some(form), Some(note))
        }
        None => (value.to_owned(), None, note),
    }
}

/// Whether the file (`bytes`) holds the password of `url`, what the app gets for `key`: the
/// same password comes out of the file read alone, its `${NAME}` references to the
/// environment left empty (it is on the key's line, or on the line a reference takes it
/// from). A value that does not read as a URL may still hold one: said as if it did.
fn password_in(bytes: Option<&[u8]>, key: &str, url: &str) -> bool {
    let password = |text: &str| {
        crate::drivers::meaning(text).ok().map(|c| {
            c.password
                .map(|p| p.expose().to_owned())
                .unwrap_or_default()
        })
    };
    let Some(wanted) = password(url) else {
        return true;
    };
    if wanted.is_empty() {
        return false;
    }
    let Some(bytes) = bytes else {
        return true;
    };
    let alone = |_: &str| None;
    match envfile::app_gets(envfile::Loader::PythonDotenv, bytes, key, &alone) {
        envfile::Loaded::FromFile { value, .. } => {
            password(value.expose()).is_none_or(|p| p == wanted)
        }
        _ => true,
    }
}

/// What python-dotenv, the framework's loader, gives the app for `e` when that differs from
/// the text as written: its `${NAME}` references expanded (from earlier lines, else the
/// environment). None when it gives the text itself, or takes another line for the key.
fn expanded_value(bytes: &[u8], e: &envfile::EnvEntry) -> Option<String> {
    let (value, line) = envfile::python_dotenv_value(bytes, &e.key)?;
    (line == e.line && value.expose() != e.value).then(|| value.expose().to_owned())
}

/// A key of the `.env` file; `shadowed` when the shell sets the same key to another value.
fn file_target(
    path: &std::path::Path,
    e: &envfile::EnvEntry,
    bytes: Option<&[u8]>,
    expanded: Option<&str>,
    shadowed: bool,
) -> Target {
    let mut notes = Vec::new();
    if expanded.is_some() {
        notes.push("python-dotenv (the framework's loader) expands its ${NAME} references: doctor checks the value it gives the app (node's dotenv without dotenv-expand keeps the text as written)".to_string());
    }
    if shadowed {
        notes.push(format!(
            "the shell also sets {}, to a different value, which most frameworks use instead (dotenv does not override variables already set): doctor checks both",
            e.key
        ));
    } else if let Some(note) = bytes.and_then(|b| loaders_disagree(b, &e.key)) {
        notes.push(note);
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    let place = format!("{} (line {})", e.key, e.line);
    let value = expanded.unwrap_or(&e.value);
    let (raw, driver_form, note) = spelled(&e.key, value, place, note);
    let password_in_file = password_in(bytes, &e.key, &raw);
    Target {
        source: format!("{} ({}, line {})", path.display(), e.key, e.line),
        raw,
        env_file: Some(path.to_path_buf()),
        password_in_file,
        key: Some(e.key.clone()),
        note,
        driver_form,
        forms_elsewhere: Vec::new(),
    }
}

/// The shell's value of `key`; `shadows` names the `.env` file whose value it differs from.
fn shell_target(key: &str, value: String, shadows: Option<&std::path::Path>) -> Target {
    let note = shadows.map(|path| {
        format!(
            "set in the shell, so an app started from it gets this value, not the one in {}",
            path.display()
        )
    });
    let (raw, driver_form, note) = spelled(key, &value, format!("the shell's {key}"), note);
    Target {
        source: format!("the environment variable {key}"),
        raw,
        env_file: None,
        password_in_file: false,
        key: Some(key.to_string()),
        note,
        driver_form,
        forms_elsewhere: Vec::new(),
    }
}

/// Tell each ordinary target which drivers have their own form under another key of the file.
fn with_forms_elsewhere(mut targets: Vec<Target>) -> Vec<Target> {
    let forms: Vec<(crate::drivers::Driver, String)> = targets
        .iter()
        .filter_map(|t| t.driver_form.as_ref())
        .map(|f| (f.driver, f.place.clone()))
        .collect();
    for t in targets.iter_mut().filter(|t| t.driver_form.is_none()) {
        t.forms_elsewhere = forms.clone();
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::password_in;

    #[test]
    fn the_git_check_says_password_only_when_the_file_holds_it() {
        let check = |text: &str, url: &str| password_in(Some(text.as_bytes()), "DATABASE_URL", url);
        // On the URL's line (percent-encoded there), or on the line a `${NAME}` reference
        // takes it from.
        assert!(check(
            "DATABASE_URL=postgresql://app:s3cr%40t@localhost/app\n",
            "postgresql://app:s3cr%40t@localhost/app"
        ));
        assert!(check(
            "PW=s3cr%40t\nDATABASE_URL=postgresql://app:${PW}@localhost/app\n",
            "postgresql://app:s3cr%40t@localhost/app"
        ));
        // Brought from the shell by the reference: not in the file.
        assert!(!check(
            "DATABASE_URL=postgresql://app:${PW}@localhost/app\n",
            "postgresql://app:s3cr%40t@localhost/app"
        ));
        // No password at all (peer over a socket), or an empty one.
        assert!(!check("x", "postgresql:///app?host=/var/run/postgresql"));
        assert!(!check("x", "postgresql://app:@localhost/app"));
        // Not a URL aksara reads: said as if it held one.
        assert!(check("x", "not a url at all"));
    }
}
