//! `Cli::parse_from_args` against the whole tree: the one-subcommand tree must give the value
//! the whole tree gives for every line it accepts, and leave every other line to it.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

use super::*;

/// Lines that parse, in the forms people and scripts type them: flags in any order, `=` and
/// separate values, repeated flags, the globals before and after the subcommand, an optional
/// value taken or not.
const PARSING: &[&[&str]] = &[
    &["doctor"],
    &["doctor", "--url", "postgresql://app@localhost/app"],
    &[
        "doctor",
        "--url=postgresql://app:pw@db:6432/app?sslmode=require",
    ],
    &[
        "doctor",
        "--format",
        "json",
        "--wait",
        "30",
        "--connect-timeout",
        "2",
    ],
    &[
        "doctor",
        "--env-file",
        "config/.env",
        "--pool-max",
        "5",
        "--instances",
        "3",
    ],
    &[
        "doctor",
        "--driver",
        "asyncpg",
        "--driver=node-pg",
        "--max-lag",
        "5",
    ],
    &["doctor", "--fix", "--yes", "--allow-cleartext"],
    &["doctor", "-q"],
    &["doctor", "--verbose", "--color", "never"],
    &["doctor", "--color=always", "--url", "-"],
    &["dbsetup"],
    &["dbsetup", "--non-interactive", "--db-name", "myapp"],
    &[
        "dbsetup",
        "--non-interactive",
        "--db-name=myapp",
        "--db-user",
        "app",
        "--admin-url",
        "postgresql://postgres@localhost/postgres",
        "--env-file",
        ".env.local",
        "--env-key",
        "APP_DATABASE_URL",
    ],
    &["dbsetup", "--force"],
    &[
        "dbsetup",
        "--force",
        "password",
        "--force",
        "privileged-role",
    ],
    &["dbsetup", "--force", "--db-name", "x"],
    &[
        "dbsetup",
        "--sslmode",
        "verify-full",
        "--replica-url",
        "postgresql://r/app",
    ],
    &[
        "dbsetup",
        "--driver-url",
        "node-pg=NODE_URL",
        "--driver-url",
        "jdbc=JDBC_URL",
    ],
    &[
        "dbsetup",
        "--start-server",
        "local",
        "--server-port",
        "5433",
        "--start-timeout",
        "9",
    ],
    &[
        "dbsetup",
        "--db-password-stdin",
        "--timeout",
        "3",
        "--format",
        "json",
        "-v",
    ],
    &["dbsetup", "--sslmode", "nonsense"],
];

/// Lines the whole tree refuses or answers with help or the version.
const NOT_PARSING: &[&[&str]] = &[
    &["doctor", "--help"],
    &["doctor", "-h"],
    &["doctor", "--version"],
    &["doctor", "-V"],
    &["doctor", "--yes"],
    &["doctor", "--bogus"],
    &["doctor", "--driver", "nosuch"],
    &["doctor", "--wait", "soon"],
    &["doctor", "-q", "-v"],
    &["doctor", "help"],
    &["doctor", "extra"],
    &["dbsetup", "--force", "everything"],
    &["dbsetup", "--start-server", "somewhere"],
    &["dbsetup", "--server-port", "70000"],
    &["dbsetup", "--help"],
];

fn line(words: &[&str]) -> Vec<OsString> {
    std::iter::once("aksara")
        .chain(words.iter().copied())
        .map(OsString::from)
        .collect()
}

fn whole_tree(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    let mut matches = Cli::command().try_get_matches_from(args)?;
    Cli::from_arg_matches_mut(&mut matches)
}

#[test]
fn a_line_that_parses_gives_what_the_whole_tree_gives_and_takes_the_small_tree() {
    for words in PARSING {
        let args = line(words);
        let small = one_subcommand_tree(&args[1])
            .expect("doctor and dbsetup have a small tree")
            .try_get_matches_from(&args);
        assert!(
            small.is_ok(),
            "{words:?} did not parse in the small tree: {small:?}"
        );
        let fast = Cli::parse_from_args(args.clone()).expect("the line parses");
        let whole = whole_tree(args).expect("the whole tree parses it");
        assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{words:?}");
    }
}

#[test]
fn a_line_that_does_not_parse_gets_the_whole_trees_answer() {
    for words in NOT_PARSING {
        let args = line(words);
        let fast = Cli::parse_from_args(args.clone()).expect_err("the line does not parse");
        let whole = whole_tree(args).expect_err("nor in the whole tree");
        assert_eq!(fast.kind(), whole.kind(), "{words:?}");
        assert_eq!(fast.to_string(), whole.to_string(), "{words:?}");
    }
}

#[test]
fn the_help_texts_are_the_whole_trees() {
    let help = Cli::parse_from_args(line(&["doctor", "--help"]))
        .expect_err("help")
        .to_string();
    assert!(help.contains("Failure codes (exit 1):"), "{help}");
    let long = Cli::parse_from_args(line(&["--help"]))
        .expect_err("help")
        .to_string();
    assert!(long.contains("Environment:"), "{long}");
}

#[test]
fn other_subcommands_and_leading_globals_use_the_whole_tree() {
    for words in [
        &["dbserver", "status"][..],
        &["completions", "bash"],
        &["-q", "doctor", "--url", "postgresql://x/y"],
        &["migrate", "--fake"],
    ] {
        let args = line(words);
        assert!(one_subcommand_tree(&args[1]).is_none(), "{words:?}");
        let fast = Cli::parse_from_args(args.clone()).expect("the line parses");
        let whole = whole_tree(args).expect("the whole tree parses it");
        assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{words:?}");
    }
}
