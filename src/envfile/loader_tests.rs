//! What python-dotenv, node dotenv and dotenvy give the application, as tables written from
//! the loaders' sources; and, when a python-dotenv and a node dotenv are at hand, the same
//! cases checked against the real loaders.

use super::loaders::*;
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

/// (python-dotenv, node dotenv, dotenvy) for `key` in `file`, as short strings:
/// `file:<line>=<value>`, `env=<value>`, `unreadable:<line>`, `unset`.
fn outcomes(file: &str, key: &str, env: &dyn Fn(&str) -> Option<String>) -> [String; 3] {
    let shown = |loaded: Loaded| match loaded {
        Loaded::FromFile { value, line, .. } => format!("file:{line}={}", value.expose()),
        Loaded::FromEnvironment { value, .. } => format!("env={}", value.expose()),
        Loaded::Unreadable { line, .. } => format!("unreadable:{line}"),
        Loaded::Unset => "unset".to_owned(),
    };
    Loader::ALL.map(|loader| shown(app_gets(loader, file.as_bytes(), key, env)))
}

#[test]
fn an_unterminated_quote_on_line_1_is_named_as_line_1() {
    let file = "DATABASE_URL=\"postgresql://app@db/app\nOTHER=1\n";
    assert_eq!(
        outcomes(file, "DATABASE_URL", &no_env),
        [
            "unreadable:1",
            // node keeps the opening quote as part of the value.
            "file:1=\"postgresql://app@db/app",
            "unreadable:1",
        ]
    );
    // python-dotenv reads on after the bad line; dotenvy stops there.
    assert_eq!(
        outcomes(file, "OTHER", &no_env),
        ["file:2=1", "file:2=1", "unreadable:1"]
    );
    let problem = match app_gets(
        Loader::PythonDotenv,
        file.as_bytes(),
        "DATABASE_URL",
        &no_env,
    ) {
        Loaded::Unreadable { problem, .. } => problem,
        other => panic!("{other:?}"),
    };
    assert!(problem.contains("cannot parse the statement"), "{problem}");
}

#[test]
fn the_shells_variable_wins_in_every_loader() {
    let file = "DATABASE_URL=postgresql://file@db/app\n";
    let shell =
        |name: &str| (name == "DATABASE_URL").then(|| "postgresql://shell@db/app".to_owned());
    for (loader, loaded) in what_the_app_gets(file.as_bytes(), "DATABASE_URL", &shell) {
        assert_eq!(
            loaded,
            Loaded::FromEnvironment {
                value: Password::new("postgresql://shell@db/app".into()),
                file_line: Some(1)
            },
            "{loader}"
        );
    }
}

#[test]
fn duplicates_last_wins_in_python_and_node_first_in_dotenvy() {
    let file = "K=first\n# c\nK=second\n";
    assert_eq!(
        outcomes(file, "K", &no_env),
        ["file:3=second", "file:3=second", "file:1=first"]
    );
    for (loader, loaded) in what_the_app_gets(file.as_bytes(), "K", &no_env) {
        let Loaded::FromFile { lines, .. } = loaded else {
            panic!("{loader}: {loaded:?}")
        };
        assert_eq!(lines, [1, 3], "{loader}");
    }
}

#[test]
fn quoting_spaces_comments_and_escapes() {
    let cases: &[(&str, [&str; 3])] = &[
        (
            "K=\" a b \"\n",
            ["file:1= a b ", "file:1= a b ", "file:1= a b "],
        ),
        (
            "K=' a b '\n",
            ["file:1= a b ", "file:1= a b ", "file:1= a b "],
        ),
        // dotenvy refuses a blank inside an unquoted value.
        (
            "K=   a b   \n",
            ["file:1=a b", "file:1=a b", "unreadable:1"],
        ),
        ("K=   ab   \n", ["file:1=ab", "file:1=ab", "file:1=ab"]),
        ("K=abc # note\n", ["file:1=abc", "file:1=abc", "file:1=abc"]),
        ("export K=v\n", ["file:1=v", "file:1=v", "file:1=v"]),
        (
            "K=\"a\\nb\"\n",
            ["file:1=a\nb", "file:1=a\nb", "file:1=a\nb"],
        ),
        (
            "K=\"multi\nline\"\n",
            [
                "file:1=multi\nline",
                "file:1=multi\nline",
                "file:1=multi\nline",
            ],
        ),
        ("K=\n", ["file:1=", "file:1=", "file:1="]),
        ("\n\n  K=v\r\n", ["file:3=v", "file:3=v", "file:3=v"]),
        ("OTHER=1\n", ["unset", "unset", "unset"]),
    ];
    for (file, expected) in cases {
        assert_eq!(&outcomes(file, "K", &no_env), expected, "{file:?}");
    }
}

/// dotenvy is a dependency of the tests: its `dotenv()` keeps the first assignment and stops
/// at the first error, which the table must match.
#[test]
fn the_dotenvy_column_is_what_dotenvy_loads() {
    for file in [
        "DATABASE_URL=\"postgresql://app@db/app\nOTHER=1\n",
        "K=first\n# c\nK=second\n",
        "K=\" a b \"\n",
        "K=   a b   \n",
        "K=abc # note\n",
        "export K=v\n",
        "K=\"multi\nline\"\n",
        "A=1\nB=x y\nK=v\n",
        "K='unterminated\nL=1\nM='x'\n",
    ] {
        for key in ["K", "L", "OTHER", "DATABASE_URL"] {
            let mut real = None;
            for item in dotenvy::from_read_iter(file.as_bytes()) {
                match item {
                    Ok((k, v)) if k == key => {
                        real = Some(v);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let modelled = match app_gets(Loader::Dotenvy, file.as_bytes(), key, &no_env) {
                Loaded::FromFile { value, .. } => Some(value.expose().to_owned()),
                _ => None,
            };
            assert_eq!(modelled, real, "{file:?} {key}");
        }
    }
}

#[test]
fn python_dotenv_expands_braced_variables() {
    let file = "HOST=db\nK=postgresql://app@${HOST}/${DB:-app}?x=$PLAIN\n";
    let env = |name: &str| (name == "PLAIN").then(|| "p".to_owned());
    assert_eq!(
        outcomes(file, "K", &env)[0],
        "file:2=postgresql://app@db/app?x=$PLAIN"
    );
}

#[test]
fn debug_never_shows_the_value() {
    let loaded = app_gets(Loader::NodeDotenv, b"K=Canary-S3cret\n", "K", &no_env);
    assert!(!format!("{loaded:?}").contains("Canary"));
}

/// The real python-dotenv and node dotenv, when the driver test environment has them
/// (`tests/drivers/.venv` and `tests/drivers/node_modules` from the `drivers` work, or
/// `AKSARA_TEST_DOTENV_PYTHON` / `AKSARA_TEST_DOTENV_NODE_PATH`).
#[test]
fn the_real_loaders_agree_with_the_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    let python = std::env::var_os("AKSARA_TEST_DOTENV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let node_path = std::env::var_os("AKSARA_TEST_DOTENV_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("node_modules"));
    let files = [
        "DATABASE_URL=\"postgresql://app@db/app\nOTHER=1\n",
        "K=first\n# c\nK=second\n",
        "K=\" a b \"\n",
        "K=' a b '\n",
        "K=   a b   \n",
        "K=abc # note\n",
        "export K=v\n",
        "K=\"a\\nb\"\n",
        "K=\"multi\nline\"\n",
        "K='unterminated\nL=1\nM='x'\n",
        "K=v'x\n",
        "K=\n",
        "\n\n  K=v\r\n",
        "K= # only a comment\n",
        "K=#not a comment\n",
        "K=\"a\" junk\nL=2\n",
    ];
    let dir = tempfile::tempdir().unwrap();
    for (n, file) in files.iter().enumerate() {
        let path = dir.path().join(format!("{n}.env"));
        fs::write(&path, file).unwrap();
        for key in ["K", "L", "OTHER", "DATABASE_URL"] {
            let script = "import sys, json\nfrom dotenv import dotenv_values\n\
                          v = dotenv_values(sys.argv[1]).get(sys.argv[2])\nprint(json.dumps(v))";
            let out = std::process::Command::new(&python)
                .args(["-c", script])
                .arg(&path)
                .arg(key)
                .env_clear()
                .output()
                .expect("python with python-dotenv");
            let real: Option<String> = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
            let modelled = match app_gets(Loader::PythonDotenv, file.as_bytes(), key, &no_env) {
                Loaded::FromFile { value, .. } => Some(value.expose().to_owned()),
                _ => None,
            };
            assert_eq!(modelled, real, "python-dotenv, {file:?}, {key}");

            let script = "const v = require('dotenv').parse(require('fs').readFileSync(process.argv[1]))[process.argv[2]];\
                          console.log(JSON.stringify(v === undefined ? null : v))";
            let out = std::process::Command::new("node")
                .args(["-e", script])
                .arg(&path)
                .arg(key)
                .env_clear()
                .env("NODE_PATH", &node_path)
                .output()
                .expect("node");
            let real: Option<String> = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
            let modelled = match app_gets(Loader::NodeDotenv, file.as_bytes(), key, &no_env) {
                Loaded::FromFile { value, .. } => Some(value.expose().to_owned()),
                _ => None,
            };
            assert_eq!(modelled, real, "node dotenv, {file:?}, {key}");
        }
    }
}

#[test]
fn references_are_what_python_dotenv_expands() {
    let value = "a${USER}b${X:-d}c${a:b}${open";
    let found = super::py_references(value);
    let texts: Vec<&str> = found.iter().map(|r| &value[r.range.clone()]).collect();
    // `${a:b}` is no variable (a colon that does not start `:-`), `${open` has no `}`.
    assert_eq!(texts, ["${USER}", "${X:-d}"]);
    assert_eq!(
        (found[1].name.as_str(), found[1].default.as_str()),
        ("X", "d")
    );
}

#[test]
fn a_template_expands_as_its_line_does_and_is_written_so_that_it_still_does() {
    let file = "PW=secret\nDATABASE_URL=postgresql://u:${PW}@h/db?connect_timeout=10 # c\nB=2\n";
    let template = super::python_dotenv_template(file.as_bytes(), "DATABASE_URL").unwrap();
    assert_eq!(
        template.written,
        "postgresql://u:${PW}@h/db?connect_timeout=10"
    );
    assert_eq!(template.line, 2);
    assert_eq!(template.expand("x${PW}y"), "xsecrety");
    let (out, _) =
        super::upsert_template(file.as_bytes(), "DATABASE_URL", "postgresql://u:${PW}@h/db")
            .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "PW=secret\nDATABASE_URL=\"postgresql://u:${PW}@h/db\" # c\nB=2\n"
    );
    let (value, line) = super::python_dotenv_value(out.as_bytes(), "DATABASE_URL").unwrap();
    assert_eq!((value.expose(), line), ("postgresql://u:secret@h/db", 2));
}
