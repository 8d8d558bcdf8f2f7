//! Questions to the person at the terminal. Every prompt runs on a blocking thread raced
//! against Ctrl-C: on an interrupt the terminal is restored (echo back on after a hidden
//! password prompt, cursor shown) and the command ends with exit code 130, having written
//! nothing. Prompts exist only on a terminal; without one the command fails at once and
//! names the flag that answers the question.

use std::io::IsTerminal;
use std::process::{Command, Stdio};

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

use crate::error::{CliError, CliResult};

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
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => Err(self.interrupted()),
                Ok(Err(e)) => Err(CliError::failure(format!("cannot read the answer from the terminal: {e}"))),
                Err(e) => Err(CliError::failure(format!("the prompt failed: {e}"))),
            },
            _ = tokio::signal::ctrl_c() => Err(self.interrupted()),
        }
    }

    /// Restore the terminal and report the interrupt.
    pub fn interrupted(&self) -> CliError {
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

    pub async fn input(
        &self,
        prompt: &str,
        default: Option<String>,
        validate: fn(&str) -> Result<(), String>,
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

    pub async fn password(&self, prompt: &str, confirm: bool) -> CliResult<String> {
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

    pub async fn confirm(&self, prompt: &str, default: bool) -> CliResult<bool> {
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

    pub async fn select(
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
