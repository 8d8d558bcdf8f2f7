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
    /// The database error behind this one, when a statement failed (its SQLSTATE decides
    /// what the caller does next, never its text).
    pub server: Option<Box<crate::connect::ServerError>>,
    /// The command stopped before changing anything (the message says so; no undo report).
    pub before_any_change: bool,
    /// What led to it, outermost first (`caused by:` lines).
    pub causes: Vec<String>,
}

/// What [`CliError::before_any_change`] adds to the message.
const NOTHING_CHANGED: &str = "; nothing was changed";

impl CliError {
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: None,
            exit: Exit::Failure,
            server: None,
            before_any_change: false,
            causes: Vec::new(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: None,
            exit: Exit::Usage,
            server: None,
            before_any_change: false,
            causes: Vec::new(),
        }
    }

    pub fn interrupted() -> Self {
        CliError {
            message: "interrupted".into(),
            hint: None,
            code: None,
            exit: Exit::Interrupted,
            server: None,
            before_any_change: false,
            causes: Vec::new(),
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

    /// Marks a refusal before anything changed, and says so in the message.
    pub fn before_any_change(mut self) -> Self {
        self.message.push_str(NOTHING_CHANGED);
        self.before_any_change = true;
        self
    }

    /// One change that stays although the run failed (one the person agreed to at its own
    /// prompt): said in the message, where "nothing was changed" becomes "nothing else".
    pub fn except_for(mut self, change: &str) -> Self {
        match self.message.strip_suffix(NOTHING_CHANGED) {
            Some(before) if self.before_any_change => {
                self.message = format!("{before}; nothing else was changed: {change}");
            }
            _ => self.message.push_str(&format!("; {change}")),
        }
        self
    }

    pub fn with_server_error(mut self, error: crate::connect::ServerError) -> Self {
        self.server = Some(Box::new(error));
        self
    }

    /// The SQLSTATE of the database error behind this one.
    pub fn sqlstate(&self) -> Option<&str> {
        self.server.as_ref().map(|e| e.sqlstate.as_str())
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

/// An error that knows how to be reported: its catalogue code when it has one, and the fix.
/// The module errors (dsn, envfile, localserver, projectserver, docker) and the server's own
/// errors implement it; they become a [`CliError`] only at the command boundary, where the
/// source chain is kept for the printer's `caused by:` lines.
pub trait Diagnostic: std::error::Error {
    fn code(&self) -> Option<Code> {
        None
    }
    fn hint(&self) -> Option<String> {
        None
    }
    /// The first line, when it needs more context than the error's own Display.
    fn summary(&self) -> String {
        self.to_string()
    }
}

impl Diagnostic for crate::dsn::DsnError {
    fn code(&self) -> Option<Code> {
        Some(Code::InvalidUrl)
    }
    fn hint(&self) -> Option<String> {
        crate::dsn::DsnError::hint(self)
    }
    fn summary(&self) -> String {
        format!("invalid connection string: {self}")
    }
}

macro_rules! diagnostic_with_hint {
    ($($t:ty),*) => {$(
        impl Diagnostic for $t {
            fn hint(&self) -> Option<String> {
                <$t>::hint(self)
            }
        }
    )*};
}

// These three predate the trait and only implement Display: the std marker makes them errors.
impl std::error::Error for crate::projectserver::ProjectError {}
impl std::error::Error for crate::localserver::LocalError {}
impl std::error::Error for crate::docker::DockerError {}

diagnostic_with_hint!(
    crate::envfile::EnvFileError,
    crate::projectserver::ProjectError,
    crate::localserver::LocalError,
    crate::docker::DockerError
);

impl Diagnostic for crate::connect::ServerError {
    fn code(&self) -> Option<Code> {
        Some(Code::ServerError)
    }
    fn hint(&self) -> Option<String> {
        Some(crate::diagnose::server_words(self).1)
    }
}

impl<E: Diagnostic> From<E> for CliError {
    fn from(e: E) -> Self {
        let mut causes = Vec::new();
        let mut source = e.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        let mut err = CliError::failure(e.summary()).with_optional_hint(e.hint());
        err.code = e.code();
        err.causes = causes;
        err
    }
}

pub type CliResult<T> = Result<T, CliError>;
