//! A test as the user's session: `Test::new().cluster(&c).args(["dbsetup"]).answers(..).run()`
//! runs the real binary in a project folder the test owns, answers its questions from a
//! prompt script (`AKSARA_PROMPT_SCRIPT`, so no terminal is needed), and keeps the real argv
//! for the transcript. Secrets go through the environment, never argv, as they would for a user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Cluster, hermetic_env};

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    answers: Option<Vec<(String, String)>>,
}

/// What a run printed, and the folder it ran in (kept until the value is dropped).
pub struct Ran {
    pub argv: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: super::project_folder(".tmp"),
            args: Vec::new(),
            env: Vec::new(),
            answers: None,
        }
    }

    /// Point libpq-style discovery at `cluster` (its socket) as its superuser, the password
    /// in PGPASSWORD.
    pub fn cluster(self, cluster: &Cluster) -> Test {
        self.env("PGHOST", &cluster.socket_dir.display().to_string())
            .env("PGPORT", &cluster.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", &cluster.password)
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Test {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The prompt script: each question (text it contains; `?` first for one that may not
    /// be asked) and its answer.
    pub fn answers(mut self, answers: &[(&str, &str)]) -> Test {
        self.answers = Some(
            answers
                .iter()
                .map(|(q, a)| (q.to_string(), a.to_string()))
                .collect(),
        );
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file into the project folder before the run.
    pub fn file(self, name: &str, contents: &str) -> Test {
        std::fs::write(self.dir.path().join(name), contents).expect("write a project file");
        self
    }

    pub fn run(self) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aksara"));
        hermetic_env(&mut cmd);
        cmd.current_dir(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // The script lives beside the project, not in it: it must not look like project files.
        let script_dir = tempfile::tempdir().expect("a folder for the prompt script");
        if let Some(answers) = &self.answers {
            let script: PathBuf = script_dir.path().join("answers");
            let text: String = answers.iter().map(|(q, a)| format!("{q}\t{a}\n")).collect();
            std::fs::write(&script, text).expect("write the prompt script");
            cmd.env("AKSARA_PROMPT_SCRIPT", &script);
        }
        let out = cmd.output().expect("run aksara");
        Ran {
            argv: std::iter::once("aksara".to_string())
                .chain(self.args.iter().cloned())
                .collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        }
    }
}

impl Ran {
    /// Both streams, for checking that a secret appears in neither.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The session as the user read it: the real command line, exit code, both streams.
    pub fn transcript(&self) -> String {
        let mut text = format!("$ {}\nexit: {}\n", self.argv.join(" "), self.code);
        for (name, stream) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if !stream.is_empty() {
                text.push_str(&format!("--- {name}\n{stream}"));
                if !stream.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.transcript())
    }
}
