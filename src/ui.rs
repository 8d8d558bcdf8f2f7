//! The one printer all output goes through: quiet / default / verbose, colours (off for
//! NO_COLOR, `--color never` or a non-terminal), check marks that fall back to ASCII, and
//! spinners that only exist on a terminal. Results go to stdout; progress, warnings and
//! errors go to stderr, so `aksara ... --format json | jq` always sees clean JSON.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use console::Style;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{ColorChoice, GlobalArgs};
use crate::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// What a line in a checklist says about its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub verbosity: Verbosity,
    colors: bool,
    /// Unicode marks and spinners only where a person is watching a terminal.
    fancy: bool,
    stderr_is_terminal: bool,
}

impl Printer {
    pub fn new(global: &GlobalArgs) -> Printer {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colors = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && stdout_is_terminal,
        };
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors);
        let verbosity = if global.quiet {
            Verbosity::Quiet
        } else if global.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Printer {
            verbosity,
            colors,
            fancy: colors || (stdout_is_terminal && !no_color),
            stderr_is_terminal,
        }
    }

    /// A printer for tests and for code paths that must stay silent.
    pub fn plain(verbosity: Verbosity) -> Printer {
        Printer {
            verbosity,
            colors: false,
            fancy: false,
            stderr_is_terminal: false,
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }

    pub fn is_quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    fn style(&self, s: Style) -> Style {
        if self.colors {
            s.force_styling(true)
        } else {
            s.force_styling(false)
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.style(Style::new().bold()).apply_to(text).to_string()
    }

    pub fn dim(&self, text: &str) -> String {
        self.style(Style::new().dim()).apply_to(text).to_string()
    }

    pub fn green(&self, text: &str) -> String {
        self.style(Style::new().green()).apply_to(text).to_string()
    }

    pub fn yellow(&self, text: &str) -> String {
        self.style(Style::new().yellow()).apply_to(text).to_string()
    }

    pub fn red(&self, text: &str) -> String {
        self.style(Style::new().red()).apply_to(text).to_string()
    }

    pub fn mark(&self, mark: Mark) -> String {
        let (fancy, ascii, style) = match mark {
            Mark::Pass => ("✔", "[ok]", Style::new().green()),
            Mark::Warn => ("!", "[!!]", Style::new().yellow()),
            Mark::Fail => ("✖", "[xx]", Style::new().red()),
            Mark::Skip => ("-", "[--]", Style::new().dim()),
        };
        let symbol = if self.fancy { fancy } else { ascii };
        self.style(style).apply_to(symbol).to_string()
    }

    /// The command's result: printed even with --quiet.
    pub fn result(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// A progress or status line (stderr), hidden by --quiet.
    pub fn status(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{text}");
        }
    }

    /// A status line that starts with a check mark.
    pub fn step(&self, mark: Mark, text: &str) {
        if self.verbosity >= Verbosity::Normal || mark == Mark::Fail {
            eprintln!("{} {text}", self.mark(mark));
        }
    }

    /// Detail only shown with --verbose.
    pub fn detail(&self, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            eprintln!("{}", self.dim(text));
        }
    }

    pub fn warn(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{} {text}", self.yellow(&self.bold("warning:")));
        }
    }

    pub fn hint(&self, text: &str) {
        eprintln!("{} {text}", self.bold("hint:"));
    }

    /// `error: ...` then `hint: ...`, on stderr, always.
    pub fn error(&self, err: &CliError) {
        eprintln!("{} {}", self.red(&self.bold("error:")), err.message);
        if let Some(hint) = &err.hint {
            self.hint(hint);
        }
    }

    /// A spinner for a wait that may exceed ~200 ms; a no-op unless stderr is a terminal.
    pub fn spinner(&self, text: &str) -> Spinner {
        if !self.stderr_is_terminal || self.is_quiet() {
            return Spinner { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(text.to_string());
        bar.enable_steady_tick(Duration::from_millis(80));
        Spinner { bar: Some(bar) }
    }
}

/// Clears itself when dropped, so an early return never leaves a spinner running.
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn set_message(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
