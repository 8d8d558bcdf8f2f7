//! The libpq password file (`~/.pgpass`, or the file `PGPASSFILE` names), read the way libpq
//! reads it. sqlx has its own copy of this logic, but it only consults the file when it parses
//! a URL, skips it for builder-made options, and checks permissions only on Linux; aksara
//! builds its sqlx options explicitly, so it does the lookup itself and can say which file and
//! line a password came from, and why a file was ignored. Parsing and matching are pure;
//! [`load`] is the only function here that touches the file system.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::dsn::Password;

/// One field of the four that select a line: `*` matches anything, anything else must match
/// exactly (case-sensitive, as libpq compares bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgPassField {
    Any,
    Exact(String),
}

impl PgPassField {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            PgPassField::Any => true,
            PgPassField::Exact(expected) => expected == value,
        }
    }
}

impl fmt::Display for PgPassField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgPassField::Any => f.write_str("*"),
            PgPassField::Exact(text) => f.write_str(text),
        }
    }
}

/// A usable line of the file: `hostname:port:database:username:password`. The password is a
/// [`Password`], so printing a line with `{:?}` never shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgPassLine {
    /// 1-based, so a diagnosis can point at the line the user has to edit.
    pub line_number: usize,
    pub host: PgPassField,
    pub port: PgPassField,
    pub database: PgPassField,
    pub user: PgPassField,
    pub password: Password,
}

impl PgPassLine {
    pub fn matches(&self, host: &str, port: u16, dbname: &str, user: &str) -> bool {
        self.host.matches(host)
            && self.port.matches(&port.to_string())
            && self.database.matches(dbname)
            && self.user.matches(user)
    }
}

/// The result of [`load`]: which file was meant, its usable lines, and why it was ignored if
/// it was (the caller shows the warning; libpq prints the same text on stderr).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgPassFile {
    /// None when neither `PGPASSFILE` nor a home directory is known.
    pub path: Option<PathBuf>,
    pub lines: Vec<PgPassLine>,
    pub warning: Option<String>,
}

/// Parses the file's text. Comment lines (`#` in the first column, as libpq checks only
/// there), blank lines and lines with fewer than four `:`-terminated fields are skipped: libpq
/// can never match them either.
pub fn parse(contents: &str) -> Vec<PgPassLine> {
    contents
        .split('\n')
        .enumerate()
        .filter_map(|(index, line)| parse_line(index + 1, line.trim_end_matches(['\r', '\n'])))
        .collect()
}

fn parse_line(line_number: usize, line: &str) -> Option<PgPassLine> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut rest = line;
    let host = take_field(&mut rest)?;
    let port = take_field(&mut rest)?;
    let database = take_field(&mut rest)?;
    let user = take_field(&mut rest)?;
    Some(PgPassLine {
        line_number,
        host,
        port,
        database,
        user,
        password: Password::new(unescape_password(rest)),
    })
}

/// Takes one `:`-terminated selector field off the front of `rest`. Only an unescaped `*`
/// standing alone is a wildcard: `\*` is a literal star, as in libpq's `pwdfMatchesString`.
fn take_field(rest: &mut &str) -> Option<PgPassField> {
    if let Some(after) = rest.strip_prefix("*:") {
        *rest = after;
        return Some(PgPassField::Any);
    }
    let mut text = String::new();
    let mut chars = rest.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            ':' => {
                *rest = &rest[index + 1..];
                return Some(PgPassField::Exact(text));
            }
            _ => text.push(c),
        }
    }
    // The line ended before this field's ':' — libpq never matches such a line.
    None
}

/// The password runs to the end of the line or to the next unescaped `:` (libpq ignores
/// anything after it); a trailing lone backslash is kept, as libpq keeps it.
fn unescape_password(raw: &str) -> String {
    let mut password = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(escaped) => password.push(escaped),
                None => password.push('\\'),
            },
            _ => password.push(c),
        }
    }
    password
}

/// The first line matching all four values. Like libpq, an empty database or user name never
/// matches anything (libpq does not look the file up then).
pub fn find<'a>(
    lines: &'a [PgPassLine],
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<&'a PgPassLine> {
    if dbname.is_empty() || user.is_empty() {
        return None;
    }
    lines
        .iter()
        .find(|line| line.matches(host, port, dbname, user))
}

/// The password of the first matching line.
pub fn lookup(
    lines: &[PgPassLine],
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    find(lines, host, port, dbname, user).map(|line| line.password.expose().to_owned())
}

/// Reads the password file: `PGPASSFILE` (passed in, empty meaning unset) or else
/// `<home>/.pgpass`. A missing file is normal and gives no warning. On Unix a file readable
/// or writable by group or others is ignored with libpq's own warning, because libpq ignores
/// it too and a user comparing with psql must see the same outcome.
pub fn load(env_passfile: Option<&str>, home: Option<&Path>) -> PgPassFile {
    let path = match env_passfile.filter(|p| !p.is_empty()) {
        Some(passfile) => PathBuf::from(passfile),
        None => match home {
            Some(home) => home.join(".pgpass"),
            None => return PgPassFile::default(),
        },
    };
    let ignored = |warning: String| PgPassFile {
        path: Some(path.clone()),
        lines: Vec::new(),
        warning: Some(warning),
    };

    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(_) => {
            return PgPassFile {
                path: Some(path.clone()),
                ..PgPassFile::default()
            };
        }
    };
    if !metadata.is_file() {
        return ignored(format!(
            "password file \"{}\" is not a plain file",
            path.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return ignored(format!(
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            ));
        }
    }
    match std::fs::read(&path) {
        Ok(bytes) => PgPassFile {
            lines: parse(&String::from_utf8_lossy(&bytes)),
            path: Some(path),
            warning: None,
        },
        Err(error) => ignored(format!(
            "could not read password file \"{}\": {error}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(text: &str) -> PgPassField {
        PgPassField::Exact(text.to_owned())
    }

    #[test]
    fn parses_fields_and_skips_comments_and_blank_lines() {
        let lines = parse("# comment\n\nlocalhost:5432:app:app:secret\r\n*:*:*:postgres:pw\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line_number, 3);
        assert_eq!(lines[0].host, exact("localhost"));
        assert_eq!(lines[0].port, exact("5432"));
        assert_eq!(lines[0].database, exact("app"));
        assert_eq!(lines[0].user, exact("app"));
        assert_eq!(lines[0].password.expose(), "secret");
        assert_eq!(lines[1].host, PgPassField::Any);
        assert_eq!(lines[1].user, exact("postgres"));
    }

    #[test]
    fn comment_marker_counts_only_in_first_column() {
        let lines = parse("  #x:5432:db:u:pw\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].host, exact("  #x"));
    }

    #[test]
    fn escapes_colon_and_backslash() {
        let lines = parse(r"/tmp\:x:5432:d\\b:u:p\:a\\ss:ignored");
        assert_eq!(lines[0].host, exact("/tmp:x"));
        assert_eq!(lines[0].database, exact(r"d\b"));
        assert_eq!(lines[0].password.expose(), r"p:a\ss");
    }

    #[test]
    fn escaped_star_is_a_literal_star() {
        let lines = parse(r"\*:5432:db:u:pw");
        assert_eq!(lines[0].host, exact("*"));
        assert!(!lines[0].matches("localhost", 5432, "db", "u"));
        assert!(lines[0].matches("*", 5432, "db", "u"));
    }

    #[test]
    fn star_only_wildcards_a_whole_field() {
        let lines = parse("local*:5432:db:u:pw");
        assert!(!lines[0].matches("localhost", 5432, "db", "u"));
    }

    #[test]
    fn short_lines_are_skipped_but_empty_password_is_kept() {
        let lines = parse("localhost:5432:db\nlocalhost:5432:db:u\nlocalhost:5432:db:u:");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line_number, 3);
        assert_eq!(lines[0].password.expose(), "");
    }

    #[test]
    fn lookup_first_match_wins_with_wildcards() {
        let lines = parse(
            "db.example.com:5432:prod:app:first\n\
             *:5432:*:app:second\n\
             *:*:*:*:third\n",
        );
        assert_eq!(
            lookup(&lines, "db.example.com", 5432, "prod", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(&lines, "localhost", 5432, "prod", "app").as_deref(),
            Some("second")
        );
        assert_eq!(
            lookup(&lines, "localhost", 5433, "prod", "app").as_deref(),
            Some("third")
        );
        assert_eq!(
            find(&lines, "localhost", 5433, "x", "y")
                .unwrap()
                .line_number,
            3
        );
    }

    #[test]
    fn lookup_is_case_sensitive_and_needs_user_and_database() {
        let lines = parse("localhost:5432:db:App:pw\n*:*:*:*:any");
        assert_eq!(
            lookup(&lines, "localhost", 5432, "db", "app").as_deref(),
            Some("any")
        );
        assert_eq!(lookup(&lines, "localhost", 5432, "", "app"), None);
        assert_eq!(lookup(&lines, "localhost", 5432, "db", ""), None);
    }

    #[test]
    fn socket_directory_lines_match_by_path() {
        let lines = parse("/var/run/postgresql:5432:*:app:sock\nlocalhost:5432:*:app:tcp");
        assert_eq!(
            lookup(&lines, "/var/run/postgresql", 5432, "db", "app").as_deref(),
            Some("sock")
        );
        assert_eq!(
            lookup(&lines, "localhost", 5432, "db", "app").as_deref(),
            Some("tcp")
        );
    }

    #[test]
    fn debug_of_a_line_hides_the_password() {
        let lines = parse("h:1:d:u:canary-pw-1234");
        assert!(!format!("{lines:?}").contains("canary-pw-1234"));
    }

    #[cfg(unix)]
    fn write_with_mode(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn load_ignores_group_readable_file_with_libpq_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_with_mode(dir.path(), ".pgpass", "*:*:*:*:pw\n", 0o644);
        let file = load(None, Some(dir.path()));
        assert_eq!(file.path.as_deref(), Some(path.as_path()));
        assert!(file.lines.is_empty());
        assert_eq!(
            file.warning.as_deref(),
            Some(
                format!(
                    "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                    path.display()
                )
                .as_str()
            )
        );
        assert_eq!(lookup(&file.lines, "h", 5432, "d", "u"), None);
    }

    #[cfg(unix)]
    #[test]
    fn load_reads_private_file_from_home() {
        let dir = tempfile::tempdir().unwrap();
        write_with_mode(dir.path(), ".pgpass", "*:*:*:*:pw\n", 0o600);
        let file = load(None, Some(dir.path()));
        assert_eq!(file.warning, None);
        assert_eq!(
            lookup(&file.lines, "h", 5432, "d", "u").as_deref(),
            Some("pw")
        );
    }

    #[cfg(unix)]
    #[test]
    fn pgpassfile_wins_over_home_and_empty_means_unset() {
        let dir = tempfile::tempdir().unwrap();
        write_with_mode(dir.path(), ".pgpass", "*:*:*:*:home\n", 0o600);
        let other = write_with_mode(dir.path(), "other", "*:*:*:*:other\n", 0o600);
        let file = load(Some(other.to_str().unwrap()), Some(dir.path()));
        assert_eq!(
            lookup(&file.lines, "h", 1, "d", "u").as_deref(),
            Some("other")
        );
        let file = load(Some(""), Some(dir.path()));
        assert_eq!(
            lookup(&file.lines, "h", 1, "d", "u").as_deref(),
            Some("home")
        );
    }

    #[test]
    fn missing_file_gives_no_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = load(None, Some(dir.path()));
        assert_eq!(file.path, Some(dir.path().join(".pgpass")));
        assert!(file.lines.is_empty());
        assert_eq!(file.warning, None);
        assert_eq!(load(None, None), PgPassFile::default());
    }

    #[test]
    fn directory_is_not_a_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = load(Some(dir.path().to_str().unwrap()), None);
        assert!(file.warning.unwrap().contains("is not a plain file"));
    }
}
