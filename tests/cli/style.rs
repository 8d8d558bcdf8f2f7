//! The shape the code promises in docs/architecture.md, checked on every run (CI runs only
//! `cargo test`, so clippy's `too_many_lines`, which lib.rs turns on, is enforced here too):
//! no function in src/ over 120 lines of code, no file under src/commands/ of 700 lines or
//! more, and no failure classified by searching an error's text.

use std::path::{Path, PathBuf};

const MAX_FUNCTION_LINES: usize = 120;
const MAX_COMMAND_FILE_LINES: usize = 700;

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Lines of code (not blank, not comments) of each function, found by rustfmt's layout: a
/// `fn` line at some indentation, and its body closed by `}` alone at the same indentation.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = lines[i + 1..].iter().position(|l| *l == close) else {
            continue;
        };
        let code = lines[i..=i + 1 + end]
            .iter()
            .filter(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with("//")
            })
            .count();
        if code > MAX_FUNCTION_LINES {
            found.push((i + 1, trimmed.to_string(), code));
        }
    }
    found
}

#[test]
fn no_function_in_src_is_over_120_lines() {
    let mut long = Vec::new();
    for path in sources(&src()) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, signature, count) in long_functions(&text) {
            long.push(format!(
                "{}:{line} ({count} lines): {signature}",
                path.display()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "split these functions:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_scanner_finds_a_long_function() {
    let body: String = (0..130).map(|i| format!("    let x{i} = {i};\n")).collect();
    let text = format!("fn short() {{\n    1;\n}}\n\nfn long() {{\n{body}}}\n");
    let found = long_functions(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.starts_with("fn long"));
}

#[test]
fn no_command_file_reaches_700_lines() {
    for path in sources(&src().join("commands")) {
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(
            lines < MAX_COMMAND_FILE_LINES,
            "{} has {lines} lines: split it by phase",
            path.display()
        );
    }
}

/// Failures are told apart by type, SQLSTATE or the template map in
/// src/diagnose/server_messages.rs, never by searching an error's message.
#[test]
fn no_failure_is_classified_by_searching_its_message() {
    let pattern =
        regex::Regex::new(r"(\b(message|why|detail|stderr|output|e)\.|to_string\(\)\.)(contains|starts_with|ends_with|find)\(")
            .unwrap();
    let mut hits = Vec::new();
    for path in sources(&src()) {
        if path.to_string_lossy().ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may assert on what a message says.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in code.lines().enumerate() {
            // A line that only trims text for display says so: `// display only`.
            if pattern.is_match(line) && !line.contains("// display only") {
                hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "classify by type or SQLSTATE instead:\n{}",
        hits.join("\n")
    );
}
