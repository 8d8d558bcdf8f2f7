//! Which drivers a project uses, guessed from its dependency manifests, so doctor judges the
//! URL for the drivers that will read it.
//!
//! Cheap by design (it runs on every doctor invocation): only the manifest files named below,
//! each read up to [`MAX_BYTES`], by substring and not by a full parse (a lock file's
//! package names are enough). tokio-postgres is judged as libpq: its `Config` follows libpq's
//! grammar (both formats, several hosts, unknown options rejected).

use std::fs;
use std::io::Read;
use std::path::Path;

use super::Driver;

/// Larger manifests are read only this far.
pub const MAX_BYTES: u64 = 512 * 1024;

/// What doctor assumes without any manifest: the Aksara framework's asyncpg, and libpq.
pub const DEFAULT: [Driver; 2] = [Driver::Libpq, Driver::Asyncpg];

fn read_bounded(path: &Path) -> Option<String> {
    let file = fs::File::open(path).ok()?;
    let mut text = Vec::new();
    file.take(MAX_BYTES).read_to_end(&mut text).ok()?;
    Some(
        String::from_utf8_lossy(&text)
            .to_ascii_lowercase()
            .replace('_', "-"),
    )
}

/// A package name as a whole word: `asyncpg` but not `asyncpgsa`'s prefix match.
fn mentions(text: &str, name: &str) -> bool {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// The drivers of the project in `dir`, in [`Driver::ALL`] order; [`DEFAULT`] when no
/// manifest names one.
pub fn detect(dir: &Path) -> Vec<Driver> {
    let mut found: Vec<Driver> = Vec::new();
    let python = python_manifests(dir);
    if !python.is_empty() {
        let asyncpg = mentions(&python, "asyncpg") || mentions(&python, "aksara");
        let psycopg = ["psycopg", "psycopg2", "psycopg-binary", "psycopg2-binary"]
            .iter()
            .any(|name| mentions(&python, name));
        let sqlalchemy = mentions(&python, "sqlalchemy");
        if asyncpg {
            found.push(Driver::Asyncpg);
        }
        if psycopg {
            found.push(Driver::Libpq);
        }
        if sqlalchemy && asyncpg {
            found.push(Driver::SqlalchemyAsyncpg);
        }
        if sqlalchemy && psycopg {
            found.push(Driver::SqlalchemyPsycopg);
        }
    }
    if let Some(package) = read_bounded(&dir.join("package.json")) {
        let deps = node_dependencies(&package);
        if deps.iter().any(|d| d == "pg") {
            found.push(Driver::NodePg);
        }
        if deps.iter().any(|d| d == "prisma" || d == "@prisma/client") {
            found.push(Driver::Prisma);
        }
    }
    if let Some(cargo) = read_bounded(&dir.join("Cargo.toml")) {
        if mentions(&cargo, "sqlx") {
            found.push(Driver::Sqlx);
        }
        if mentions(&cargo, "tokio-postgres") {
            found.push(Driver::Libpq);
        }
    }
    for build in ["pom.xml", "build.gradle", "build.gradle.kts"] {
        if read_bounded(&dir.join(build)).is_some_and(|text| text.contains("org.postgresql")) {
            found.push(Driver::Jdbc);
        }
    }
    if found.is_empty() {
        return DEFAULT.to_vec();
    }
    found.sort();
    found.dedup();
    found
}

/// pyproject.toml, requirements*.txt, poetry.lock and uv.lock, joined.
fn python_manifests(dir: &Path) -> String {
    let mut text = String::new();
    for name in ["pyproject.toml", "poetry.lock", "uv.lock"] {
        if let Some(content) = read_bounded(&dir.join(name)) {
            text.push_str(&content);
            text.push('\n');
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if name.starts_with("requirements")
                && name.ends_with(".txt")
                && let Some(content) = read_bounded(&entry.path())
            {
                text.push_str(&content);
                text.push('\n');
            }
        }
    }
    text
}

/// The keys of `dependencies` and `devDependencies`.
fn node_dependencies(package: &str) -> Vec<String> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(package) else {
        return Vec::new();
    };
    ["dependencies", "devdependencies"]
        .iter()
        .filter_map(|key| json.get(*key).and_then(|v| v.as_object()))
        .flat_map(|deps| deps.keys().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn no_manifest_means_asyncpg_and_libpq() {
        assert_eq!(
            detect(project(&[]).path()),
            vec![Driver::Libpq, Driver::Asyncpg]
        );
    }

    #[test]
    fn python_manifests_name_the_dialects() {
        let dir = project(&[
            (
                "pyproject.toml",
                "[project]\ndependencies = [\"SQLAlchemy[asyncio]>=2\", \"asyncpg==0.32\"]\n",
            ),
            ("requirements-dev.txt", "psycopg[binary]==3.3\n"),
        ]);
        assert_eq!(
            detect(dir.path()),
            vec![
                Driver::Libpq,
                Driver::Asyncpg,
                Driver::SqlalchemyAsyncpg,
                Driver::SqlalchemyPsycopg
            ]
        );
    }

    #[test]
    fn the_aksara_framework_means_asyncpg_and_names_are_whole_words() {
        let dir = project(&[("requirements.txt", "aksara>=1\nasyncpgsa\n")]);
        assert_eq!(detect(dir.path()), vec![Driver::Asyncpg]);
        let dir = project(&[("requirements.txt", "asyncpgsa\n")]);
        assert_eq!(detect(dir.path()), DEFAULT.to_vec());
    }

    #[test]
    fn node_and_rust_manifests() {
        let dir = project(&[
            (
                "package.json",
                r#"{"dependencies": {"pg": "^8"}, "devDependencies": {"prisma": "6"}}"#,
            ),
            (
                "Cargo.toml",
                "[dependencies]\nsqlx = { version = \"0.8\" }\n",
            ),
        ]);
        assert_eq!(
            detect(dir.path()),
            vec![Driver::NodePg, Driver::Prisma, Driver::Sqlx]
        );
        let dir = project(&[("package.json", r#"{"dependencies": {"pg-promise": "1"}}"#)]);
        assert_eq!(detect(dir.path()), DEFAULT.to_vec());
    }
}
