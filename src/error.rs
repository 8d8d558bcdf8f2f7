//! The error a command ends with: what happened, the fix as its own `hint:`, and the exit code.
//! Module errors (DsnError, EnvFileError, connection failures) carry their own data and hints;
//! they become a `CliError` only at the command boundary, where the exit code is decided.

use std::fmt;

use crate::code::Code;

/// Exit codes, documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    Usage = 2,
    /// `dbserver status`: the project's server is not running (as `pg_ctl status`).
    Stopped = 3,
    /// `dbserver`: the project has no server of its own.
    NoServer = 4,
    Interrupted = 130,
    /// SIGTERM (how CI cancels a job): what this run created is undone first, as for Ctrl-C.
    Terminated = 143,
}

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    /// A stable failure code from the catalogue (`auth-failed`, ...), when one applies.
    pub code: Option<Code>,
    pub exit: Exit,
}

impl CliError {
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: None,
            exit: Exit::Failure,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: None,
            exit: Exit::Usage,
        }
    }

    pub fn interrupted() -> Self {
        CliError {
            message: "interrupted".into(),
            hint: None,
            code: None,
            exit: Exit::Interrupted,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn with_exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }

    pub fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<crate::dsn::DsnError> for CliError {
    fn from(e: crate::dsn::DsnError) -> Self {
        CliError::failure(format!("invalid connection string: {e}"))
            .with_optional_hint(e.hint())
            .with_code(Code::InvalidUrl)
    }
}

impl From<crate::envfile::EnvFileError> for CliError {
    fn from(e: crate::envfile::EnvFileError) -> Self {
        CliError::failure(e.to_string()).with_optional_hint(e.hint())
    }
}

impl From<crate::projectserver::ProjectError> for CliError {
    fn from(e: crate::projectserver::ProjectError) -> Self {
        CliError::failure(e.to_string()).with_optional_hint(e.hint())
    }
}

impl From<crate::localserver::LocalError> for CliError {
    fn from(e: crate::localserver::LocalError) -> Self {
        CliError::failure(e.to_string()).with_optional_hint(e.hint())
    }
}

impl From<crate::docker::DockerError> for CliError {
    fn from(e: crate::docker::DockerError) -> Self {
        CliError::failure(e.to_string()).with_optional_hint(e.hint())
    }
}

pub type CliResult<T> = Result<T, CliError>;
