//! The one printer all output goes through: quiet / default / verbose, colours (off for
//! NO_COLOR, `--color never` or a stream that is not a terminal), check marks that fall back to
//! ASCII, and spinners that only exist on a terminal. Results go to stdout; progress, warnings
//! and errors go to stderr, so `aksara ... --format json | jq` always sees clean JSON.
//!
//! The crate denies `print!`-style macros everywhere else (see lib.rs), as uv does: a line that
//! bypassed the printer would ignore `--quiet`, break through a spinner, or colour a pipe.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub verbosity: Verbosity,
    /// Whether each stream gets colours. Text is styled when either does, and the escape
    /// codes are stripped on the way to a stream that does not (`2>log` stays plain).
    colors_stdout: bool,
    colors_stderr: bool,
    /// Unicode marks only where a person is watching a terminal.
    fancy: bool,
    stderr_is_terminal: bool,
    /// The spinner on screen, if any: lines printed meanwhile are written above it.
    spinner: Arc<Mutex<Option<ProgressBar>>>,
    /// Where lines go: the process's streams, or a buffer a test reads (as cargo's `Shell`).
    sink: Sink,
}

#[derive(Debug, Clone, Default)]
enum Sink {
    #[default]
    Streams,
    Buffer(Captured),
}

/// What a capturing printer was given: every line, tagged with its stream.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<(bool, String)>>>);

impl Captured {
    /// Everything written to stdout, in order.
    pub fn stdout(&self) -> String {
        self.stream(true)
    }

    /// Everything written to stderr, in order.
    pub fn stderr(&self) -> String {
        self.stream(false)
    }

    fn stream(&self, stdout: bool) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter(|(out, _)| *out == stdout)
            .map(|(_, text)| text.as_str())
            .collect()
    }
}

impl Printer {
    pub fn new(global: &GlobalArgs) -> Printer {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let (colors_stdout, colors_stderr) = match global.color {
            ColorChoice::Always => (true, true),
            ColorChoice::Never => (false, false),
            ColorChoice::Auto => (
                !no_color && stdout_is_terminal,
                !no_color && stderr_is_terminal,
            ),
        };
        // dialoguer's prompts (stderr) style themselves through console.
        console::set_colors_enabled(colors_stdout);
        console::set_colors_enabled_stderr(colors_stderr);
        let verbosity = if global.quiet {
            Verbosity::Quiet
        } else if global.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Printer {
            verbosity,
            colors_stdout,
            colors_stderr,
            fancy: global.color == ColorChoice::Always
                || (!no_color && (stdout_is_terminal || stderr_is_terminal)),
            stderr_is_terminal,
            spinner: Arc::default(),
            sink: Sink::Streams,
        }
    }

    /// A printer that writes into a buffer instead of the streams (no colours, ASCII marks,
    /// no spinners), and the buffer, for tests of what a command prints.
    pub fn capture(verbosity: Verbosity) -> (Printer, Captured) {
        let captured = Captured::default();
        let printer = Printer {
            verbosity,
            colors_stdout: false,
            colors_stderr: false,
            fancy: false,
            stderr_is_terminal: false,
            spinner: Arc::default(),
            sink: Sink::Buffer(captured.clone()),
        };
        (printer, captured)
    }

    /// Every line goes out here: escape codes stripped for a stream without colours, and
    /// written above a running spinner instead of through it.
    fn emit(&self, stream: Stream, text: &str, newline: bool) {
        let colors = match stream {
            Stream::Stdout => self.colors_stdout,
            Stream::Stderr => self.colors_stderr,
        };
        let text = if colors {
            std::borrow::Cow::Borrowed(text)
        } else {
            console::strip_ansi_codes(text)
        };
        if let Sink::Buffer(captured) = &self.sink {
            let line = if newline {
                format!("{text}\n")
            } else {
                text.into_owned()
            };
            let mut lines = captured.0.lock().unwrap_or_else(|e| e.into_inner());
            lines.push((stream == Stream::Stdout, line));
            return;
        }
        let write = || match stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = if newline {
                    writeln!(out, "{text}")
                } else {
                    write!(out, "{text}")
                };
                let _ = out.flush();
            }
            Stream::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = if newline {
                    writeln!(err, "{text}")
                } else {
                    write!(err, "{text}")
                };
            }
        };
        let active = self
            .spinner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match active {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }

    pub fn is_quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    fn style(&self, s: Style) -> Style {
        if self.colors_stdout || self.colors_stderr {
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

    /// The command's result (stdout): printed even with --quiet.
    pub fn result(&self, text: &str) {
        self.emit(Stream::Stdout, text, true);
    }

    /// Generated text that carries its own line ends (a completion script), as it is.
    pub fn result_raw(&self, text: &str) {
        self.emit(Stream::Stdout, text, false);
    }

    /// A progress or status line (stderr), hidden by --quiet.
    pub fn status(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.emit(Stream::Stderr, text, true);
        }
    }

    /// A status line that starts with a check mark; a failure shows even with --quiet.
    pub fn step(&self, mark: Mark, text: &str) {
        if self.verbosity >= Verbosity::Normal || mark == Mark::Fail {
            self.emit(Stream::Stderr, &format!("{} {text}", self.mark(mark)), true);
        }
    }

    /// Detail only shown with --verbose.
    pub fn detail(&self, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.emit(Stream::Stderr, &self.dim(text), true);
        }
    }

    pub fn warn(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.emit(
                Stream::Stderr,
                &format!("{} {text}", self.yellow(&self.bold("warning:"))),
                true,
            );
        }
    }

    pub fn hint(&self, text: &str) {
        self.emit(
            Stream::Stderr,
            &format!("{} {text}", self.bold("hint:")),
            true,
        );
    }

    /// `error: ...` then `hint: ...`, on stderr, always.
    pub fn error(&self, err: &CliError) {
        self.emit(
            Stream::Stderr,
            &format!("{} {}", self.red(&self.bold("error:")), err.message),
            true,
        );
        for cause in &err.causes {
            self.emit(
                Stream::Stderr,
                &format!("  {} {cause}", self.bold("caused by:")),
                true,
            );
        }
        if let Some(hint) = &err.hint {
            self.hint(hint);
        }
    }

    /// A spinner for a wait that may exceed ~200 ms (stderr); a no-op unless stderr is a
    /// terminal, and with --quiet. A second spinner replaces the first one's message.
    pub fn spinner(&self, text: &str) -> Spinner {
        if !self.stderr_is_terminal || self.is_quiet() {
            return Spinner { bar: None };
        }
        let mut slot = self.spinner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = slot.as_ref() {
            bar.set_message(text.to_string());
            return Spinner { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        let template = if self.colors_stderr {
            "{spinner:.cyan} {msg}"
        } else {
            "{spinner} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(text.to_string());
        bar.enable_steady_tick(Duration::from_millis(80));
        *slot = Some(bar.clone());
        Spinner {
            bar: Some((bar, self.spinner.clone())),
        }
    }
}

/// Clears itself when dropped, so an early return never leaves a spinner running.
pub struct Spinner {
    bar: Option<(ProgressBar, Arc<Mutex<Option<ProgressBar>>>)>,
}

impl Spinner {
    pub fn set_message(&self, text: &str) {
        if let Some((bar, _)) = &self.bar {
            bar.set_message(text.to_string());
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some((bar, slot)) = &self.bar {
            bar.finish_and_clear();
            slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}
