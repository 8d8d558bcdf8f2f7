//! The fixes that need no admin: `.env` mode 0600, its `.gitignore` line, and the one `.env`
//! key's URL rewritten for the application's driver (a password percent-encoded, parameters
//! the driver rejects dropped or moved, `+asyncpg` dropped for asyncpg and kept for
//! SQLAlchemy, `sslmode=require` where the server demands TLS). The rewrite goes through the
//! envfile module's locked, crash-safe replace; the old value stays as a comment line above
//! the key, its password redacted: what is kept is where it pointed (host, port, user,
//! database, parameters), which is what a person needs to go back, and never the secret.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::outcome::Outcome;
use super::references;
use super::{Apply, Declined, Fix, FixId};
use crate::cli::DoctorArgs;
use crate::code::Code;
use crate::commands::doctor::targets::Target;
use crate::drivers::{self, Driver, SecretUrl};
use crate::dsn::SslMode;
use crate::envfile::{self, EnvFileError, GitIgnoreStatus, OnConflict, WriteOptions};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the comment line above a rewritten key starts with.
pub const REPLACED_COMMENT: &str = "# aksara doctor --fix replaced: ";

pub enum FileFix {
    Mode {
        path: PathBuf,
    },
    GitIgnore {
        env_file: PathBuf,
        repo_root: PathBuf,
        pattern: String,
    },
    RewriteUrl {
        path: PathBuf,
        key: String,
        /// The URL the app is to get.
        url: SecretUrl,
        /// The line's value as written when it keeps `${NAME}` references that expand to `url`.
        template: Option<SecretUrl>,
        /// The comment line kept above the key (password redacted).
        comment: String,
    },
}

const DRIVER_CODES: [Code; 7] = [
    Code::DriverRejectsParameter,
    Code::DriverMisreadsUrl,
    Code::DriverUnsupportedFormat,
    Code::DriverWrongScheme,
    Code::DriverSendsUnknownSetting,
    Code::DriverTlsStricter,
    Code::DriverTlsWeaker,
];

pub fn plan(
    index: usize,
    target: &Target,
    wanted: &[Code],
    args: &DoctorArgs,
    declined: &mut Vec<Declined>,
) -> Vec<Fix> {
    let Some(path) = &target.env_file else {
        return Vec::new();
    };
    let mut fixes = Vec::new();
    if wanted.contains(&Code::EnvWorldReadable) {
        fixes.push(Fix {
            id: FixId::EnvMode,
            code: Code::EnvWorldReadable,
            target: index,
            action: format!("chmod 600 {}", path.display()),
            apply: Apply::File(FileFix::Mode { path: path.clone() }),
        });
    }
    if wanted.contains(&Code::EnvNotIgnored)
        && let GitIgnoreStatus::NotIgnored { repo_root } = envfile::git_ignore_status(path)
    {
        let pattern = crate::gitignore::relative_pattern(path, &repo_root);
        fixes.push(Fix {
            id: FixId::Gitignore,
            code: Code::EnvNotIgnored,
            target: index,
            action: format!("{}: + {pattern}", repo_root.join(".gitignore").display()),
            apply: Apply::File(FileFix::GitIgnore {
                env_file: path.clone(),
                repo_root,
                pattern,
            }),
        });
    }
    let url_code = wanted
        .iter()
        .copied()
        .find(|c| DRIVER_CODES.contains(c) || *c == Code::SslRequired);
    if let (Some(code), Some(key)) = (url_code, &target.key) {
        match rewrite_plan(index, target, path, key, code, wanted, args) {
            Ok(Some(fix)) => fixes.push(fix),
            Ok(None) => {}
            Err(why) => declined.push(Declined {
                target: index,
                code,
                why,
            }),
        }
    }
    fixes
}

/// The URL that every one of the application's drivers reads as the old one means (with
/// `sslmode=require` when the server demands TLS); None when there is no such one URL, an
/// error (why a person has to make the change) when the line's `${NAME}` references could not
/// be kept.
fn rewrite_plan(
    index: usize,
    target: &Target,
    path: &std::path::Path,
    key: &str,
    code: Code,
    wanted: &[Code],
    args: &DoctorArgs,
) -> Result<Option<Fix>, String> {
    let app_drivers = crate::commands::doctor::drivers_for(args);
    let fixed = |text: &str| {
        let mut conn = drivers::meaning(text).ok()?;
        if wanted.contains(&Code::SslRequired) {
            conn.sslmode = Some(SslMode::Require);
        }
        // A URL without a user means libpq's default, the OS user (with no PGUSER), which
        // asyncpg and node-postgres read from LOGNAME or USER instead: the rewrite names it, so
        // every driver logs in as the role the other checks used.
        let pguser_set = std::env::var_os(crate::envvars::PGUSER).is_some_and(|v| !v.is_empty());
        if conn.user.is_none() && !pguser_set && wanted.contains(&Code::DriverMisreadsUrl) {
            conn.user = crate::localserver::current_user_name();
        }
        url_for_all(&conn, &app_drivers)
    };
    let Some((url, notes)) = fixed(&target.raw) else {
        return Ok(None);
    };
    if url.expose() == target.raw.trim() {
        return Ok(None);
    }
    let fixed_url = |text: &str| fixed(text).map(|(url, _)| url);
    let template = match references::keep(path, key, &target.raw, &url, &fixed_url) {
        references::Kept::NoReferences => None,
        references::Kept::Template(template) => Some(template),
        references::Kept::Lost(why) => return Err(why),
    };
    let Some(old) = redacted(&target.raw) else {
        return Ok(None);
    };
    let comment = format!("{REPLACED_COMMENT}{key}={old} (password not kept)");
    let line = envfile::read_entries(path)
        .ok()
        .and_then(|entries| entries.into_iter().rfind(|e| e.key == key))
        .map(|e| format!(" line {}", e.line))
        .unwrap_or_default();
    let mut action = format!(
        "{}{line}:\n- {key}={old}\n+ {comment}\n+ {key}={}",
        path.display(),
        template.as_ref().unwrap_or(&url)
    );
    for note in notes {
        action.push_str(&format!("\n  ({note})"));
    }
    Ok(Some(Fix {
        id: FixId::RewriteUrl,
        code,
        target: index,
        action,
        apply: Apply::File(FileFix::RewriteUrl {
            path: path.to_path_buf(),
            key: key.to_string(),
            url,
            template,
            comment,
        }),
    }))
}

/// The URL as written, its password redacted: libpq's rendering of what it means, under the
/// scheme it was written with (`postgresql+asyncpg://` stays visible).
fn redacted(raw: &str) -> Option<String> {
    let shown = drivers::meaning(raw).ok()?.to_string();
    let written_scheme = raw.trim().split_once("://").map(|(scheme, _)| scheme);
    Some(match (written_scheme, shown.split_once("://")) {
        (Some(scheme), Some((_, rest))) if scheme.contains('+') => format!("{scheme}://{rest}"),
        _ => shown,
    })
}

/// The first driver's rewritten URL that every driver of the app reads right.
fn url_for_all(
    conn: &crate::dsn::ConnString,
    app_drivers: &[Driver],
) -> Option<(SecretUrl, Vec<String>)> {
    for driver in app_drivers {
        let Ok(rewritten) = drivers::rewrite_conn(*driver, conn) else {
            continue;
        };
        let all_read_it = app_drivers
            .iter()
            .all(|d| drivers::verdict(*d, rewritten.url.expose()).is_ok());
        if all_read_it {
            return Some((rewritten.url, rewritten.notes));
        }
    }
    None
}

pub fn apply(fix: &FileFix) -> Outcome {
    match fix {
        FileFix::Mode { path } => {
            let set = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            // Read back: a file system without Unix modes accepts the call and changes nothing.
            match set.and_then(|()| envfile::readable_by_others(path)) {
                Ok(false) => Outcome::done(format!("{} is now mode 0600", path.display())),
                Ok(true) => Outcome::not_applied(format!(
                    "{} is still readable by others after chmod (a file system without Unix modes?): keep the password elsewhere",
                    path.display()
                )),
                Err(e) => Outcome::not_applied(format!(
                    "cannot change the mode of {}: {e}; run `chmod 600 {}` as its owner",
                    path.display(),
                    path.display()
                )),
            }
        }
        FileFix::GitIgnore {
            env_file,
            repo_root,
            pattern,
        } => {
            let file = repo_root.join(".gitignore");
            let added = envfile::add_to_gitignore(repo_root, pattern);
            // Asked again: a later `!` line, or a .gitignore git does not read, keeps it unignored.
            let ignored = || envfile::git_ignore_status(env_file) == GitIgnoreStatus::Ignored;
            match added {
                Ok(_) if !ignored() => Outcome::not_applied(format!(
                    "git still does not ignore {} with `{pattern}` in {} (a later `!` pattern?): see `git check-ignore -v {}`",
                    env_file.display(),
                    file.display(),
                    env_file.display()
                )),
                Ok(true) => Outcome::done(format!("added `{pattern}` to {}", file.display())),
                Ok(false) => Outcome::done(format!("{} already has `{pattern}`", file.display())),
                Err(e) => Outcome::not_applied(file_error(
                    &e,
                    &format!("add `{pattern}` to {} yourself", file.display()),
                )),
            }
        }
        FileFix::RewriteUrl {
            path,
            key,
            url,
            template,
            comment,
        } => match rewrite_key(path, key, url, template.as_ref(), comment) {
            Ok(()) => Outcome::done(format!(
                "{key} in {} is now {}; the old value is the comment above it (password not kept)",
                path.display(),
                template.as_ref().unwrap_or(url)
            )),
            Err(e) => Outcome::not_applied(file_error(
                &e,
                &format!("set {key} in {} to the URL shown yourself", path.display()),
            )),
        },
    }
}

fn file_error(e: &EnvFileError, instead: &str) -> String {
    match e.hint() {
        Some(hint) => format!("{e} ({hint}); or {instead}"),
        None => format!("{e}; {instead}"),
    }
}

/// Set `key` to `url` under the folder lock (or to `template`, written so that it expands to
/// `url`, which is checked on the written bytes), with `comment` as a new line right above the
/// key's first assignment. The envfile module keeps every other byte; the comment is one
/// whole line inserted before an assignment's first line, so no loader reads it as a value.
fn rewrite_key(
    path: &std::path::Path,
    key: &str,
    url: &SecretUrl,
    template: Option<&SecretUrl>,
    comment: &str,
) -> Result<(), EnvFileError> {
    let value = url.expose();
    let options = WriteOptions {
        on_conflict: OnConflict::Replace,
        ..WriteOptions::default()
    };
    let edit = |original: &[u8]| {
        let (bytes, change) = match template {
            Some(template) => envfile::upsert_template(original, key, template.expose())?,
            None => envfile::upsert(original, key, value, OnConflict::Replace)?,
        };
        if change == envfile::Change::Unchanged {
            return Ok((None, ()));
        }
        Ok((Some(with_comment_above(&bytes, key, comment)), ()))
    };
    let holds = |written: &[u8]| match template {
        // What python-dotenv, which expands the references, then gives the app.
        Some(_) => {
            envfile::python_dotenv_value(written, key).is_some_and(|(got, _)| got.expose() == value)
        }
        None => envfile::parse_entries(written)
            .iter()
            .filter(|e| e.key == key)
            .all(|e| e.value == value),
    };
    envfile::replace_file(path, 0o600, &options, edit, holds)
}

/// `bytes` with `comment` as a line of its own before the first assignment of `key`.
fn with_comment_above(bytes: &[u8], key: &str, comment: &str) -> Vec<u8> {
    let Some(first) = envfile::parse_entries(bytes)
        .into_iter()
        .find(|e| e.key == key)
    else {
        return bytes.to_vec();
    };
    let mut out = Vec::with_capacity(bytes.len() + comment.len() + 2);
    // A byte order mark stays the file's first bytes, before the comment.
    let bytes = match bytes.strip_prefix(BOM) {
        Some(rest) => {
            out.extend_from_slice(BOM);
            rest
        }
        None => bytes,
    };
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    for _ in 1..first.line {
        if let Some(line) = lines.next() {
            out.extend_from_slice(line);
        }
    }
    let rest: Vec<u8> = lines.flatten().copied().collect();
    let ending: &[u8] = if rest.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(ending);
    out.extend_from_slice(&rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_goes_on_its_own_line_above_the_key_and_loaders_skip_it() {
        let before = b"A=1\r\nDATABASE_URL=postgresql://x@h/db\r\nB=2\r\n";
        let out = with_comment_above(before, "DATABASE_URL", "# old: DATABASE_URL=...");
        assert_eq!(
            out,
            b"A=1\r\n# old: DATABASE_URL=...\r\nDATABASE_URL=postgresql://x@h/db\r\nB=2\r\n"
        );
        let keys: Vec<String> = envfile::parse_entries(&out)
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["A", "DATABASE_URL", "B"]);
    }

    #[test]
    fn a_byte_order_mark_stays_first() {
        let out = with_comment_above(b"\xEF\xBB\xBFDATABASE_URL=x\n", "DATABASE_URL", "# old");
        assert_eq!(out, b"\xEF\xBB\xBF# old\nDATABASE_URL=x\n");
    }

    #[test]
    fn the_old_value_in_the_comment_keeps_the_place_and_not_the_password() {
        let old = drivers::meaning("postgresql://app:s3cret-pw@db.example:5433/app?foo=1").unwrap();
        let comment = format!("{REPLACED_COMMENT}DATABASE_URL={old}");
        assert!(!comment.contains("s3cret-pw"), "{comment}");
        assert!(comment.contains("db.example:5433/app"), "{comment}");
    }
}
