//! The documentation is tested like code: the man page is generated from the clap definitions
//! and must match assets/aksara.1; the completion scripts parse and complete; the README's
//! failure codes, environment variables and exit codes match the code; its quickstart is what
//! aksara really prints; and every shell example in it runs (or the test says why it cannot).
//!
//! Generated text that went stale fails with the command that rewrites it:
//! `AKSARA_REGENERATE=1 cargo test --test cli docs::`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::CommandFactory;

use crate::support::{self, Cluster, ClusterConfig};
use crate::{aksara, normalize, project, run};

const REGENERATE: &str = "AKSARA_REGENERATE=1 cargo test --test cli docs::";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn regenerating() -> bool {
    std::env::var_os("AKSARA_REGENERATE").is_some_and(|v| v == "1")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// The man page.

/// The whole command line as one page: clap_mangen's sections for `aksara`, a section per
/// subcommand (its synopsis, description and options, demoted to subsections), and the help
/// texts' examples, exit codes and environment as sections of their own.
fn render_man_page() -> String {
    let mut cmd = aksara::cli::Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page).unwrap();
    man.render_name_section(&mut page).unwrap();
    man.render_synopsis_section(&mut page).unwrap();
    man.render_description_section(&mut page).unwrap();
    man.render_options_section(&mut page).unwrap();
    let mut page = String::from_utf8(page).unwrap();

    // clap_mangen's list points at one page per subcommand; here they are sections below.
    let subcommands: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    let mut list = roff::Roff::new();
    list.control("SH", ["SUBCOMMANDS"]);
    for sub in &subcommands {
        list.control("TP", []);
        list.text([roff::bold(format!("aksara {}", sub.get_name()))]);
        list.text([roff::roman(
            sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        )]);
    }
    page.push_str(&list.to_roff());

    for sub in subcommands {
        let mut heading = roff::Roff::new();
        heading.control(
            "SH",
            [format!("AKSARA {}", sub.get_name().to_uppercase()).as_str()],
        );
        page.push_str(&heading.to_roff());
        let sub_man = clap_mangen::Man::new(sub.clone());
        let mut part = Vec::new();
        sub_man.render_synopsis_section(&mut part).unwrap();
        sub_man.render_description_section(&mut part).unwrap();
        sub_man.render_options_section(&mut part).unwrap();
        let part = String::from_utf8(part).unwrap();
        for line in part.lines() {
            match line.strip_prefix(".SH ") {
                Some(title) => page.push_str(&format!(".SS {}\n", title_case(title))),
                None => {
                    page.push_str(line);
                    page.push('\n');
                }
            }
        }
        if let Some(after) = sub.get_after_help() {
            page.push_str(&help_blocks(&after.to_string(), "SS"));
        }
        page.push_str(&nested_sections(sub));
    }
    let after = cmd
        .get_after_long_help()
        .expect("aksara has an after_long_help")
        .to_string();
    page.push_str(&help_blocks(&after, "SH"));
    let mut version = Vec::new();
    man.render_version_section(&mut version).unwrap();
    page.push_str(&String::from_utf8(version).unwrap());

    // Every clap_mangen section starts with roff's apostrophe preamble: keep the first.
    let preamble_start = page.find(".ie \\n(.g").expect("the roff preamble");
    let preamble_end = page[preamble_start..].find(".el").unwrap() + preamble_start;
    let preamble_end = page[preamble_end..].find('\n').unwrap() + preamble_end + 1;
    let preamble = page[preamble_start..preamble_end].to_string();
    let first = page.find(&preamble).unwrap() + preamble.len();
    format!("{}{}", &page[..first], page[first..].replace(&preamble, ""))
}

/// A subsection per subcommand of `sub` (`aksara dbserver start`, ...): its synopsis,
/// description and options, their headings as italic paragraph titles (man has no third level).
fn nested_sections(sub: &clap::Command) -> String {
    let mut out = String::new();
    for inner in sub
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let mut heading = roff::Roff::new();
        heading.control(
            "SS",
            [format!("aksara {} {}", sub.get_name(), inner.get_name()).as_str()],
        );
        out.push_str(&heading.to_roff());
        let inner_man = clap_mangen::Man::new(inner.clone().bin_name(format!(
            "aksara {} {}",
            sub.get_name(),
            inner.get_name()
        )));
        let mut part = Vec::new();
        inner_man.render_synopsis_section(&mut part).unwrap();
        inner_man.render_description_section(&mut part).unwrap();
        inner_man.render_options_section(&mut part).unwrap();
        for line in String::from_utf8(part).unwrap().lines() {
            match line.strip_prefix(".SH ") {
                Some(title) => out.push_str(&format!(".PP\n\\fI{}\\fR\n.br\n", title_case(title))),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}

fn title_case(title: &str) -> String {
    let mut chars = title.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// An after-help text ("Examples:\n  ...\n\nExit codes:\n  ...") as roff sections, each
/// block kept as written (no filling): the columns line up as in `--help`.
fn help_blocks(text: &str, level: &str) -> String {
    let mut roff = roff::Roff::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(title) = lines.next() else { continue };
        let title = title.trim_end_matches(':');
        let title = match (level, title) {
            ("SH", "Exit codes") => "EXIT STATUS".to_string(),
            ("SH", t) => t.to_uppercase(),
            (_, t) => t.to_string(),
        };
        roff.control(level, [title.as_str()]);
        roff.control("nf", []);
        for line in lines {
            roff.text([roff::roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
        roff.control("fi", []);
    }
    roff.to_roff()
}

#[test]
fn man_page_is_current() {
    let path = repo().join("assets/aksara.1");
    let page = render_man_page();
    if regenerating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "assets/aksara.1 is not the man page of this command line; regenerate it with\n  {REGENERATE}\nand commit it"
    );
}

#[test]
fn the_man_page_renders() {
    let path = repo().join("assets/aksara.1");
    let page = std::fs::read_to_string(&path).expect("assets/aksara.1 exists");
    // The structure man(7) expects, and every part of the command line.
    assert!(page.starts_with(".ie \\n(.g"), "{page}");
    assert_eq!(page.matches(".TH ").count(), 1);
    for needle in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
        ".SH \"AKSARA DBSETUP\"",
        ".SH \"AKSARA DOCTOR\"",
        ".SH \"AKSARA COMPLETIONS\"",
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        "\\-\\-non\\-interactive",
        "auth\\-failed",
    ] {
        assert!(page.contains(needle), "the man page lacks {needle}");
    }
    // Typeset it when groff is installed (man-db depends on it): no warnings, and the text a
    // reader sees.
    if !have("groff") {
        return;
    }
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warns");
    // Wide lines, no hyphenation, no formatting: the text as words.
    let out = Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou", "-rHY=0", "-rLL=200n"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "aksara - Set up PostgreSQL",
        "SUBCOMMANDS aksara dbsetup Create the database",
        "aksara dbsetup [--color]",
        "--db-name <NAME>",
        "130 interrupted (Ctrl-C)",
        "AKSARA_DB_PASSWORD",
    ] {
        assert!(
            text.contains(needle),
            "the rendered page lacks {needle:?}:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Completions.

fn completion(shell: &str) -> String {
    let dir = project();
    let out = run(aksara(dir.path()).args(["completions", shell]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    out.stdout
}

#[test]
fn completion_scripts_parse_and_complete() {
    let dir = project();
    let bash = completion("bash");
    let script = dir.path().join("aksara.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {syntax:?}");
    // Load it and ask it what a user gets after `aksara do<TAB>` and `aksara doctor --f<TAB>`.
    let ask = |words: &str, cword: usize| {
        let probe = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _aksara aksara \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(ask("aksara do", 1).trim(), "doctor");
    let flags = ask("aksara doctor --f", 2);
    assert!(flags.lines().any(|l| l == "--format"), "{flags}");
    // `--sslmode` offers libpq's six modes, not file names.
    let modes = ask("aksara dbsetup --sslmode ''", 3);
    assert_eq!(
        modes.lines().collect::<Vec<_>>(),
        [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full"
        ],
        "{modes}"
    );
    let shells = ask("aksara completions ''", 2);
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.lines().any(|l| l == shell), "{shells}");
    }

    let zsh = completion("zsh");
    assert!(zsh.starts_with("#compdef aksara"), "{zsh}");
    if have("zsh") {
        let file = dir.path().join("_aksara");
        std::fs::write(&file, &zsh).unwrap();
        let out = Command::new("zsh").arg("-n").arg(&file).output().unwrap();
        assert!(out.status.success(), "zsh -n: {out:?}");
    }
    let fish = completion("fish");
    assert!(fish.contains("complete -c aksara"), "{fish}");
    if have("fish") {
        let file = dir.path().join("aksara.fish");
        std::fs::write(&file, &fish).unwrap();
        let out = Command::new("fish")
            .arg("--no-execute")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "fish --no-execute: {out:?}");
    }
    let powershell = completion("powershell");
    assert!(
        powershell.contains("Register-ArgumentCompleter -Native -CommandName 'aksara'"),
        "{powershell}"
    );
}

// ---------------------------------------------------------------------------------------------
// The README.

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The text under a `## ` or `### ` heading, up to the next heading of any level.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no heading {heading:?}"))
        + heading.len()
        + 2;
    let end = readme[start..]
        .find("\n#")
        .map_or(readme.len(), |i| i + start);
    &readme[start..end]
}

/// The first column of every row of the markdown tables in `text`, backticks removed.
fn first_column(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| ---"))
        .filter_map(|l| l.split('|').nth(1))
        .map(|cell| cell.trim().replace('`', ""))
        .collect()
}

const CODES_BEGIN: &str = "<!-- codes: begin (generated from src/code.rs by tests/cli/docs.rs; AKSARA_REGENERATE=1 rewrites it) -->\n";
const CODES_END: &str = "<!-- codes: end -->";

/// The README's code table is `Code::markdown_table()`, so it cannot drift from the enum.
#[test]
fn the_readme_code_table_is_the_code_enum() {
    let path = repo().join("README.md");
    let readme = readme();
    let start = readme
        .find(CODES_BEGIN)
        .expect("README has the codes: begin marker")
        + CODES_BEGIN.len();
    let end = readme[start..]
        .find(CODES_END)
        .expect("README has the codes: end marker")
        + start;
    let want = aksara::code::Code::markdown_table();
    if readme[start..end] != want {
        if regenerating() {
            let updated = format!("{}{want}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!("the README's code table differs from src/code.rs; rewrite it: {REGENERATE}");
    }
}

/// docs/failure-map.md is what the code maps, so it cannot drift from it.
#[test]
fn the_failure_map_is_current() {
    let path = repo().join("docs/failure-map.md");
    let want = aksara::diagnose::failure_map();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        if regenerating() {
            std::fs::write(&path, want).unwrap();
            return;
        }
        panic!("docs/failure-map.md is stale; rewrite it: {REGENERATE}");
    }
}

/// The failure map's "proven by" column (src/diagnose/proofs.rs) cannot go stale: every test
/// it names is a `#[test]` in tests/cli/, every scenario it names is one of map_repro's and
/// reproduces that very row with that row's code, and every scenario proves some row.
#[test]
fn the_failure_maps_proofs_name_tests_that_reproduce_their_rows() {
    use aksara::diagnose::proofs::{self, Proof};
    use aksara::diagnose::server_messages;
    let mut rows: Vec<(String, String, Proof)> = Vec::new();
    for (template, sqlstate) in server_messages::template_texts()
        .into_iter()
        .zip(server_messages::template_sqlstates())
    {
        let cause = server_messages::classify(sqlstate, &template.replace("%s", "x"))
            .unwrap_or_else(|| panic!("`{template}` matches itself"));
        let code = aksara::diagnose::code_of(&cause, true).id().to_string();
        let proof = proofs::server_proof(template).unwrap_or_else(|| {
            panic!("no proof recorded for `{template}` in src/diagnose/proofs.rs")
        });
        rows.push((template.to_string(), code, proof));
    }
    for (code, proof) in proofs::CLIENT_PROOFS {
        rows.push((
            format!("client:{}", code.id()),
            code.id().to_string(),
            *proof,
        ));
    }
    let mut proven_scenarios = Vec::new();
    for (row, code, proof) in &rows {
        let Proof::Reproduced(tests) = proof else {
            continue;
        };
        for named in *tests {
            let (test, scenario) = match named.split_once('[') {
                Some((test, rest)) => (test, rest.strip_suffix(']')),
                None => (*named, None),
            };
            let (module, function) = test
                .split_once("::")
                .unwrap_or_else(|| panic!("`{named}` is not module::test"));
            let source = std::fs::read_to_string(repo().join(format!("tests/cli/{module}.rs")))
                .unwrap_or_else(|e| panic!("`{named}`: no tests/cli/{module}.rs ({e})"));
            let pattern = format!(r"#\[test\]\s*(?:#\[[^\]]*\]\s*)*fn\s+{function}\s*\(");
            assert!(
                regex::Regex::new(&pattern).unwrap().is_match(&source),
                "`{named}` (proof of `{row}`) names no #[test] fn in tests/cli/{module}.rs"
            );
            if let Some(scenario) = scenario {
                assert_eq!(test, proofs::side_by_side_test(), "{named}");
                let spec = crate::map_repro::spec_named(scenario);
                assert_eq!(
                    spec.row, row,
                    "scenario `{scenario}` reproduces another row"
                );
                assert_eq!(
                    spec.code, code,
                    "scenario `{scenario}` expects another code than its row's"
                );
                proven_scenarios.push(scenario.to_string());
            }
        }
    }
    for spec in crate::map_repro::SPECS {
        assert!(
            proven_scenarios.iter().any(|s| s == spec.name),
            "scenario `{}` is named by no row's proof",
            spec.name
        );
    }
}

/// `aksara doctor --help` (and so the man page, rendered from the same clap text) lists every
/// code under its severity.
#[test]
fn doctor_help_lists_every_code() {
    let dir = project();
    let out = run(aksara(dir.path()).args(["doctor", "--help"]));
    let help = out.stdout;
    let warnings_at = help
        .find("Warning codes")
        .expect("help has the warning list");
    for code in aksara::code::Code::ALL {
        let at = help
            .find(&format!("  {} ", code.id()))
            .unwrap_or_else(|| panic!("`aksara doctor --help` lacks `{code}`"));
        let listed_as_warning = at > warnings_at;
        assert_eq!(
            listed_as_warning,
            code.severity() == aksara::code::Severity::Warning,
            "{code} is listed under the wrong heading"
        );
    }
}

#[test]
fn every_environment_variable_read_is_documented() {
    let readme = readme();
    let table = section(&readme, "## Environment variables read");
    let documented: Vec<String> = first_column(table)
        .iter()
        .flat_map(|cell| cell.split(", ").map(str::to_string).collect::<Vec<_>>())
        .filter(|v| v != "variable")
        .collect();
    let listed: Vec<&str> = aksara::cli::ENVIRONMENT
        .iter()
        .flat_map(|(names, _)| names.split(", "))
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    let mut documented_sorted: Vec<&str> = documented.iter().map(String::as_str).collect();
    documented_sorted.sort();
    assert_eq!(
        documented_sorted, listed_sorted,
        "the README's environment table and aksara::cli::ENVIRONMENT (--help, man page) differ"
    );
    // Every variable the source reads is in the list.
    // PG followed by a letter: libpq's variables (PG_VERSION is a file in a data folder).
    let name =
        regex::Regex::new(r#""(PG[A-Z][A-Z_]*|AKSARA_[A-Z_]+|DATABASE_URL|NO_COLOR)""#).unwrap();
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // Test modules in files of their own (`tests.rs`, `*_tests.rs`) are compiled
            // into test builds only.
            if path.to_string_lossy().ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for cap in name.captures_iter(code) {
                let var = &cap[1];
                // Only a hint that PG* variables point somewhere (sysenv.rs); libpq's
                // PGHOSTADDR is not otherwise supported, so it is not documented as read.
                if var == "PGHOSTADDR" {
                    continue;
                }
                assert!(
                    listed.contains(&var),
                    "{} reads {var}, which aksara::cli::ENVIRONMENT (and the README) do not list",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn exit_codes_agree_between_the_code_the_help_and_the_readme() {
    use aksara::error::Exit;
    let codes = [
        Exit::Success as i32,
        Exit::Failure as i32,
        Exit::Usage as i32,
        Exit::Stopped as i32,
        Exit::NoServer as i32,
        Exit::Interrupted as i32,
        Exit::Terminated as i32,
    ];
    let readme = readme();
    let documented: Vec<i32> = first_column(section(&readme, "## Exit codes"))
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    assert_eq!(documented, codes, "the README's exit-code table");

    let dir = project();
    let help_codes = |args: &[&str]| -> Vec<i32> {
        let out = run(aksara(dir.path()).args(args));
        let block = out
            .stdout
            .split("Exit codes:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?} has no Exit codes: {out:?}"));
        block
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    };
    assert_eq!(help_codes(&["--help"]), codes);
    assert_eq!(help_codes(&["dbsetup", "--help"]), [0, 1, 2, 130, 143]);
    // The doctor never waits for input: Ctrl-C ends it the default way.
    assert_eq!(help_codes(&["doctor", "--help"]), [0, 1, 2]);
    assert_eq!(help_codes(&["completions", "--help"]), [0, 2]);
}

// ---------------------------------------------------------------------------------------------
// The README's quickstart and shell examples, run.

const QUICKSTART_BEGIN: &str = "<!-- quickstart: begin";
const QUICKSTART_END: &str = "<!-- quickstart: end -->";

/// Where a README example runs and what it needs.
enum How {
    /// In a fresh project folder, against the test's cluster: `localhost:5432` becomes the
    /// cluster's port and `$ADMIN_PASSWORD` its superuser's password.
    Project,
    /// In a clone's root folder (the example names files of the repository).
    Repository,
    /// Not run here, and why.
    NotHere(&'static str),
}

/// Every ```sh block of the README, by its first line. A new example fails the test until it
/// is added here.
const EXAMPLES: &[(&str, How)] = &[
    (
        "./install.sh",
        How::NotHere(
            "builds a release binary (minutes): install.rs runs install.sh into a temporary prefix (ignored by default, run by hand), and tests its arguments and --uninstall; `aksara dbsetup` alone needs a terminal: interactive.rs types through a PTY",
        ),
    ),
    ("cargo test", How::NotHere("it is this test suite")),
    (
        "bench/run.sh",
        How::NotHere(
            "the benchmark: release builds and a minute of timing; run by hand, it writes BENCHMARKS.md",
        ),
    ),
    (
        "PGPASSWORD=$ADMIN_PASSWORD aksara dbsetup --non-interactive \\",
        How::Project,
    ),
    ("aksara doctor --format json --wait 30", How::Project),
    (
        "aksara dbsetup --non-interactive --start-server local --db-name myapp",
        How::NotHere(
            "would take port 5432 if free: tests/cli/localserver.rs runs the same command with --server-port on a free port and checks the URL with psql",
        ),
    ),
    (
        "mkdir -p ~/.local/share/bash-completion/completions",
        How::Project,
    ),
    ("man ./assets/aksara.1", How::Repository),
];

/// The README's ```sh blocks, each as its text.
fn sh_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            None => {}
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

/// `sh -c SCRIPT` as a reader would run it: aksara on PATH, the cluster's port and password.
fn shell(script: &str, cwd: &Path, cluster: &Cluster, home: &Path) -> crate::Run {
    let script = script.replace("localhost:5432", &format!("localhost:{}", cluster.port));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_aksara")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-ec", &script]);
    support::hermetic_env_with_home(&mut cmd, home);
    cmd.current_dir(cwd)
        .env("PATH", path)
        .env("ADMIN_PASSWORD", &cluster.password)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::null());
    run(&mut cmd)
}

/// The quickstart block: `$ command` lines, each followed by what it prints.
fn quickstart(readme: &str) -> (usize, usize, Vec<(String, String)>) {
    let begin = readme
        .find(QUICKSTART_BEGIN)
        .expect("the README has a quickstart block");
    let body_start = readme[begin..].find("```console\n").unwrap() + begin + "```console\n".len();
    let body_end = readme[body_start..].find("```\n").unwrap() + body_start;
    let end = readme
        .find(QUICKSTART_END)
        .expect("the quickstart block ends");
    assert!(body_end < end);
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in readme[body_start..body_end].lines() {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_string(), String::new())),
            None => {
                let (_, output) = steps.last_mut().expect("output after a command");
                output.push_str(line);
                output.push('\n');
            }
        }
    }
    (body_start, body_end, steps)
}

#[test]
fn the_readme_quickstart_is_what_aksara_prints_and_every_example_runs() {
    let cluster = Cluster::start(ClusterConfig::default());
    let readme = readme();

    // 1. The quickstart, in one project folder, each command's stdout and stderr as they
    //    interleave on a terminal.
    let (body_start, body_end, steps) = quickstart(&readme);
    assert!(!steps.is_empty());
    let dir = project();
    let home = project();
    let port = cluster.port.to_string();
    let project_path = dir.path().display().to_string();
    let mut generated = String::new();
    let mut mismatch = Vec::new();
    for (command, shown) in &steps {
        let out = shell(
            &format!("{command} 2>&1"),
            dir.path(),
            &cluster,
            home.path(),
        );
        assert_eq!(out.code, 0, "quickstart `{command}` failed: {out:?}");
        let printed = out
            .stdout
            .replace(&port, "5432")
            .replace(&project_path, ".");
        let printed = format!("{}\n", printed.trim_end());
        generated.push_str(&format!("$ {command}\n{printed}"));
        if normalize(&printed, &[]) != normalize(shown, &[]) {
            mismatch.push(format!(
                "`{command}` prints:\n{printed}\nthe README shows:\n{shown}"
            ));
        }
    }
    if regenerating() {
        let updated = format!(
            "{}{generated}{}",
            &readme[..body_start],
            &readme[body_end..]
        );
        std::fs::write(repo().join("README.md"), updated).unwrap();
    } else {
        assert!(
            mismatch.is_empty(),
            "the README's quickstart is not what aksara prints; regenerate it with\n  {REGENERATE}\n\n{}",
            mismatch.join("\n")
        );
    }

    // 2. Every ```sh example.
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= EXAMPLES.len());
    for block in &blocks {
        let first = block.lines().next().unwrap_or_default().trim();
        let (_, how) = EXAMPLES
            .iter()
            .find(|(line, _)| *line == first)
            .unwrap_or_else(|| {
                panic!("a README example this test does not know: add it to EXAMPLES in tests/cli/docs.rs, to be run or with the reason it cannot be:\n{block}")
            });
        let out = match how {
            How::NotHere(why) => {
                assert!(!why.is_empty());
                continue;
            }
            How::Project => {
                let dir = project();
                // The doctor example needs a DATABASE_URL to check: the quickstart's.
                std::fs::copy(dir_env(&project_path), dir.path().join(".env")).unwrap();
                let home = project();
                shell(block, dir.path(), &cluster, home.path())
            }
            How::Repository => {
                if block.starts_with("man ") && !have("man") {
                    continue;
                }
                shell(block, repo(), &cluster, home.path())
            }
        };
        assert_eq!(out.code, 0, "the README example failed:\n{block}\n{out:?}");
        if block.starts_with("man ") {
            assert!(out.stdout.contains("aksara"), "{out:?}");
        }
        if block.contains("--format json") {
            let json: serde_json::Value = serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("{block}: not JSON ({e}): {out:?}"));
            assert_eq!(json["ok"], true, "{json:#}");
        }
    }
    // And every entry of EXAMPLES still names a block (a removed example goes from the list).
    for (line, _) in EXAMPLES {
        assert!(
            blocks
                .iter()
                .any(|b| b.lines().next().is_some_and(|f| f.trim() == *line)),
            "EXAMPLES lists `{line}`, which the README no longer has"
        );
    }
}

fn dir_env(project: &str) -> PathBuf {
    Path::new(project).join(".env")
}
