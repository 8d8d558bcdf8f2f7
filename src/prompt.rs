//! Questions to the person at the terminal, behind the [`Prompt`] trait: [`Prompter`] asks
//! with dialoguer, [`ScriptedPrompt`] answers from a script (the tests' way to walk every
//! interactive branch without a terminal).
//!
//! Every terminal prompt runs on a blocking thread raced against Ctrl-C: on an interrupt the
//! terminal is restored (echo back on after a hidden password prompt, cursor shown) and the
//! command ends with exit code 130, having written nothing. Prompts exist only on a terminal;
//! without one the command fails at once and names the flag that answers the question.

use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

use crate::error::{CliError, CliResult};
use crate::ui::Printer;

/// An answer on its way.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = CliResult<T>> + 'a>>;
/// Checks a typed answer; the error is shown and the question asked again.
pub type Validator = fn(&str) -> Result<(), String>;

/// The questions a command may ask.
pub trait Prompt {
    /// A line of text, with a default taken on an empty answer.
    fn input<'a>(
        &'a self,
        prompt: &'a str,
        default: Option<String>,
        validate: Validator,
    ) -> Answer<'a, String>;
    /// Hidden input; `confirm` asks twice.
    fn password<'a>(&'a self, prompt: &'a str, confirm: bool) -> Answer<'a, String>;
    fn confirm<'a>(&'a self, prompt: &'a str, default: bool) -> Answer<'a, bool>;
    /// One of `items`, by index.
    fn select<'a>(
        &'a self,
        prompt: &'a str,
        items: Vec<String>,
        default: usize,
    ) -> Answer<'a, usize>;
    /// Ctrl-C arrived: put the terminal back and say so.
    fn interrupted(&self) -> CliError;
}

/// The dialoguer prompter, on the controlling terminal.
pub struct Prompter {
    /// `stty -g` at start, to put the terminal back exactly as it was after an interrupt.
    saved_tty: Option<String>,
}

impl Prompter {
    pub fn new() -> Prompter {
        Prompter {
            saved_tty: stty(&["-g"]),
        }
    }

    pub fn stdin_is_terminal() -> bool {
        std::io::stdin().is_terminal()
    }

    async fn ask<T: Send + 'static>(
        &self,
        question: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> CliResult<T> {
        let answer = tokio::task::spawn_blocking(question);
        tokio::select! {
            joined = answer => match joined {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => Err(self.restore_after_interrupt()),
                Ok(Err(e)) => Err(CliError::failure(format!("cannot read the answer from the terminal: {e}"))),
                Err(e) => Err(CliError::failure(format!("the prompt failed: {e}"))),
            },
            _ = tokio::signal::ctrl_c() => Err(self.restore_after_interrupt()),
        }
    }

    /// Restore the terminal and report the interrupt.
    fn restore_after_interrupt(&self) -> CliError {
        if let Some(saved) = &self.saved_tty {
            let _ = stty(&[saved.as_str()]);
        }
        // The prompt's own terminal (dialoguer draws on it), not output: the cursor back, and
        // the line ended so `error: interrupted` starts on its own.
        let term = console::Term::stderr();
        let _ = term.show_cursor();
        let _ = term.write_line("");
        CliError::interrupted()
    }

    async fn ask_input(
        &self,
        prompt: &str,
        default: Option<String>,
        validate: Validator,
    ) -> CliResult<String> {
        let prompt = prompt.to_string();
        self.ask(move || {
            let theme = ColorfulTheme::default();
            let mut input = Input::<String>::with_theme(&theme)
                .with_prompt(prompt)
                .validate_with(move |s: &String| validate(s));
            if let Some(d) = default {
                input = input.default(d);
            }
            input.interact_text().map_err(into_io)
        })
        .await
    }

    async fn ask_password(&self, prompt: &str, confirm: bool) -> CliResult<String> {
        let prompt = prompt.to_string();
        self.ask(move || {
            let theme = ColorfulTheme::default();
            let mut p = Password::with_theme(&theme).with_prompt(prompt);
            if confirm {
                p = p.with_confirmation("Repeat it", "The two entries differ, try again");
            }
            p.interact().map_err(into_io)
        })
        .await
    }

    async fn ask_confirm(&self, prompt: &str, default: bool) -> CliResult<bool> {
        let prompt = prompt.to_string();
        self.ask(move || {
            Confirm::with_theme(&ColorfulTheme::default())
                .with_prompt(prompt)
                .default(default)
                .interact()
                .map_err(into_io)
        })
        .await
    }

    async fn ask_select(
        &self,
        prompt: &str,
        items: Vec<String>,
        default: usize,
    ) -> CliResult<usize> {
        let prompt = prompt.to_string();
        self.ask(move || {
            Select::with_theme(&ColorfulTheme::default())
                .with_prompt(prompt)
                .items(&items)
                .default(default)
                .interact()
                .map_err(into_io)
        })
        .await
    }
}

impl Prompt for Prompter {
    fn input<'a>(
        &'a self,
        prompt: &'a str,
        default: Option<String>,
        validate: Validator,
    ) -> Answer<'a, String> {
        Box::pin(self.ask_input(prompt, default, validate))
    }

    fn password<'a>(&'a self, prompt: &'a str, confirm: bool) -> Answer<'a, String> {
        Box::pin(self.ask_password(prompt, confirm))
    }

    fn confirm<'a>(&'a self, prompt: &'a str, default: bool) -> Answer<'a, bool> {
        Box::pin(self.ask_confirm(prompt, default))
    }

    fn select<'a>(
        &'a self,
        prompt: &'a str,
        items: Vec<String>,
        default: usize,
    ) -> Answer<'a, usize> {
        Box::pin(self.ask_select(prompt, items, default))
    }

    fn interrupted(&self) -> CliError {
        self.restore_after_interrupt()
    }
}

impl Default for Prompter {
    fn default() -> Self {
        Prompter::new()
    }
}

fn into_io(e: dialoguer::Error) -> std::io::Error {
    match e {
        dialoguer::Error::IO(io) => io,
    }
}

/// Run `stty` on the controlling terminal; None when there is none.
fn stty(args: &[&str]) -> Option<String> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::from(tty))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One line of a prompt script: the question it answers, and the answer.
#[derive(Debug, Clone)]
struct ScriptLine {
    /// Text the question must contain.
    question: String,
    answer: String,
    /// Skipped when the question it names is not asked (a menu only some machines show).
    optional: bool,
}

/// Answers from a script instead of a person, in order, each checked against the question it
/// was written for: a question the script did not expect ends the command with an error
/// naming both, so a test cannot silently answer the wrong prompt. Every question and answer
/// is printed (passwords as `****`), so the output reads like the session.
///
/// The script is text, a line per answer: `QUESTION<TAB>ANSWER`, `?` before an optional
/// line. A select's answer is text that one item contains; a confirm's is `y` or `n`; an
/// empty input takes the default.
pub struct ScriptedPrompt {
    lines: Mutex<std::collections::VecDeque<ScriptLine>>,
    printer: Printer,
}

impl ScriptedPrompt {
    pub fn parse(script: &str, printer: Printer) -> Result<ScriptedPrompt, String> {
        let mut lines = std::collections::VecDeque::new();
        for (n, raw) in script.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let (question, answer) = raw.split_once('\t').ok_or_else(|| {
                format!(
                    "prompt script line {}: no TAB between question and answer",
                    n + 1
                )
            })?;
            let (question, optional) = match question.strip_prefix('?') {
                Some(q) => (q, true),
                None => (question, false),
            };
            lines.push_back(ScriptLine {
                question: question.to_string(),
                answer: answer.to_string(),
                optional,
            });
        }
        Ok(ScriptedPrompt {
            lines: Mutex::new(lines),
            printer,
        })
    }

    /// The answer to `question`: the next line written for it.
    fn next(&self, question: &str) -> CliResult<String> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(line) = lines.pop_front() {
            if question.contains(&line.question) {
                return Ok(line.answer);
            }
            if !line.optional {
                return Err(CliError::failure(format!(
                    "the prompt script expected a question with \"{}\", but aksara asked \"{question}\"",
                    line.question
                )));
            }
        }
        Err(CliError::failure(format!(
            "the prompt script has no answer for \"{question}\""
        )))
    }

    fn show(&self, question: &str, answer: &str) {
        self.printer.status(&format!("? {question} › {answer}"));
    }
}

impl Prompt for ScriptedPrompt {
    fn input<'a>(
        &'a self,
        prompt: &'a str,
        default: Option<String>,
        validate: Validator,
    ) -> Answer<'a, String> {
        Box::pin(async move {
            let typed = self.next(prompt)?;
            let answer = match (typed.is_empty(), default) {
                (true, Some(d)) => d,
                _ => typed,
            };
            self.show(prompt, &answer);
            if let Err(why) = validate(&answer) {
                // A person would see this and type again; the script gives the next answer.
                self.printer.status(&format!("  {why}"));
                return self.input(prompt, None, validate).await;
            }
            Ok(answer)
        })
    }

    fn password<'a>(&'a self, prompt: &'a str, confirm: bool) -> Answer<'a, String> {
        Box::pin(async move {
            let answer = self.next(prompt)?;
            // An empty answer is an answer of its own (the ways on are offered): show it as
            // empty; anything else hides its length too.
            let shown = if answer.is_empty() { "(empty)" } else { "****" };
            self.show(prompt, shown);
            if confirm {
                self.show("Repeat it", shown);
            }
            Ok(answer)
        })
    }

    fn confirm<'a>(&'a self, prompt: &'a str, default: bool) -> Answer<'a, bool> {
        Box::pin(async move {
            let answer = self.next(prompt)?;
            let yes = match answer.as_str() {
                "" => default,
                "y" | "yes" => true,
                "n" | "no" => false,
                other => {
                    return Err(CliError::failure(format!(
                        "the prompt script answers \"{prompt}\" with \"{other}\"; use y or n"
                    )));
                }
            };
            self.show(prompt, if yes { "yes" } else { "no" });
            Ok(yes)
        })
    }

    fn select<'a>(
        &'a self,
        prompt: &'a str,
        items: Vec<String>,
        default: usize,
    ) -> Answer<'a, usize> {
        Box::pin(async move {
            let answer = self.next(prompt)?;
            let index = if answer.is_empty() {
                default
            } else {
                items.iter().position(|i| i.contains(&answer)).ok_or_else(|| {
                    CliError::failure(format!(
                        "the prompt script picks \"{answer}\" for \"{prompt}\", but the items are: {}",
                        items.join(" | ")
                    ))
                })?
            };
            // The menu as a person would have seen it, then the choice.
            self.printer
                .status(&format!("? {prompt} [{}]", items.join(" | ")));
            self.show(prompt, &items[index]);
            Ok(index)
        })
    }

    fn interrupted(&self) -> CliError {
        CliError::interrupted()
    }
}
