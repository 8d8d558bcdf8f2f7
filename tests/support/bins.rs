//! Finding the PostgreSQL programs where a user's machine keeps them.
//!
//! The search order matches how people install PostgreSQL: whatever is on `PATH`, then what
//! `pg_config --bindir` reports, then the well-known install locations of Debian/Ubuntu,
//! source builds, Homebrew and Postgres.app. Debian's `/usr/bin/psql` and friends are Perl
//! wrappers (`pg_wrapper`) that pick a cluster from `~/.postgresqlrc`, so a directory is accepted
//! only when every program in it is a real executable, and programs found on `PATH` are
//! followed through their symlinks to the directory that holds the real binaries.

use std::env;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Overrides the search with one directory, for machines with several PostgreSQL versions.
pub const BINDIR_ENV: &str = "AKSARA_TEST_PG_BINDIR";

/// The server and client programs of one PostgreSQL installation, all from one directory.
#[derive(Debug)]
pub struct PgBins {
    pub bindir: PathBuf,
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    pub postgres: PathBuf,
    pub psql: PathBuf,
    pub pg_isready: PathBuf,
    pub createdb: PathBuf,
    pub createuser: PathBuf,
    /// Major version from `postgres --version`, e.g. 15.
    pub major: u32,
}

const PROGRAMS: [&str; 7] = [
    "initdb",
    "pg_ctl",
    "postgres",
    "psql",
    "pg_isready",
    "createdb",
    "createuser",
];

/// The installation the tests run against, found once per test process.
///
/// Panics with the install command when PostgreSQL is missing: a suite that silently skipped
/// its server tests would pass while testing nothing.
pub fn bins() -> &'static PgBins {
    static BINS: OnceLock<PgBins> = OnceLock::new();
    BINS.get_or_init(discover)
}

fn discover() -> PgBins {
    let candidates = candidate_dirs();
    if let Some(found) = candidates.iter().find_map(|dir| PgBins::in_dir(dir)) {
        return found;
    }
    let searched: Vec<String> = candidates
        .iter()
        .map(|dir| format!("  {}", dir.display()))
        .collect();
    let install = if cfg!(target_os = "macos") {
        "`brew install postgresql@15` (macOS; or `apt-get install -y postgresql` on Debian/Ubuntu)"
    } else {
        "`apt-get install -y postgresql` (Debian/Ubuntu; or `brew install postgresql@15` on macOS)"
    };
    panic!(
        "the integration tests need a real PostgreSQL, but no directory holds all of {} \
         as real executables\nsearched:\n{}\n\nhelp: install PostgreSQL with {install}, \
         or set {BINDIR_ENV} to the directory that holds `initdb`",
        PROGRAMS.join(", "),
        if searched.is_empty() {
            "  (nothing)".to_owned()
        } else {
            searched.join("\n")
        },
    );
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = env::var_os(BINDIR_ENV) {
        dirs.push(PathBuf::from(dir));
    }
    // Resolving the symlink turns Debian's /usr/local/bin/initdb into /usr/lib/postgresql/15/bin,
    // where pg_ctl and psql are real binaries rather than pg_wrapper.
    for program in ["initdb", "pg_ctl", "postgres"] {
        if let Some(found) = on_path(program)
            && let Ok(real) = fs::canonicalize(found)
            && let Some(dir) = real.parent()
        {
            dirs.push(dir.to_path_buf());
        }
    }
    if let Some(pg_config) = on_path("pg_config")
        && let Ok(out) = Command::new(pg_config).arg("--bindir").output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs.extend(versioned_dirs(Path::new("/usr/lib/postgresql"), ""));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.extend(versioned_dirs(
        Path::new("/opt/homebrew/opt"),
        "postgresql@",
    ));
    dirs.extend(versioned_dirs(Path::new("/usr/local/opt"), "postgresql@"));
    dirs.push(PathBuf::from(
        "/Applications/Postgres.app/Contents/Versions/latest/bin",
    ));
    let mut unique = Vec::new();
    for dir in dirs {
        if !unique.contains(&dir) {
            unique.push(dir);
        }
    }
    unique
}

/// `<parent>/<prefix><version>/bin`, highest version first.
fn versioned_dirs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let key = version
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// An executable that is not a script, which rules out Debian's Perl `pg_wrapper`.
fn is_real_binary(path: &Path) -> bool {
    if !is_executable(path) {
        return false;
    }
    let mut magic = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok_and(|()| &magic != b"#!")
}

impl PgBins {
    fn in_dir(dir: &Path) -> Option<PgBins> {
        if !PROGRAMS.iter().all(|p| is_real_binary(&dir.join(p))) {
            return None;
        }
        let postgres = dir.join("postgres");
        let out = Command::new(&postgres).arg("--version").output().ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split(") ").nth(1)?;
        let major = version
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()?;
        Some(PgBins {
            bindir: dir.to_path_buf(),
            initdb: dir.join("initdb"),
            pg_ctl: dir.join("pg_ctl"),
            postgres,
            psql: dir.join("psql"),
            pg_isready: dir.join("pg_isready"),
            createdb: dir.join("createdb"),
            createuser: dir.join("createuser"),
            major,
        })
    }
}
