//! aksara: from "is PostgreSQL even running?" to a working DATABASE_URL in .env, and a doctor
//! that names every connection failure with its fix. `run` is the whole program, callable
//! from tests; `main` only parses arguments and turns the result into an exit code.
//!
//! All output goes through [`ui::Printer`]: the lints below keep `println!` and friends out of
//! every other module (ui.rs allows them for itself), as uv does.

#![warn(clippy::print_stdout, clippy::print_stderr)]
// No function over 120 lines (clippy.toml sets the threshold); tests/cli/style.rs checks it in CI.
#![warn(clippy::too_many_lines)]

pub mod adminlogin;
pub mod cli;
pub mod clusters;
pub mod code;
pub mod commands;
pub mod connect;
pub mod creation;
pub mod diagnose;
pub mod docker;
pub mod drivers;
pub mod dsn;
pub mod envfile;
pub mod envvars;
pub mod error;
pub mod forward;
pub mod gitignore;
pub mod holder;
pub mod localserver;
pub mod peer;
pub mod pgpass;
pub mod pooler;
pub mod postmaster;
pub mod probe;
pub mod projectserver;
pub mod prompt;
pub mod provision;
pub mod replica;
pub mod sanitize;
pub mod serverup;
pub mod session;
pub mod sysenv;
pub mod tls_verify;
pub mod ui;

use crate::cli::{Cli, Command};
use crate::error::{CliResult, Exit};
use crate::ui::Printer;

/// Run a parsed command line; the caller maps the result to the process exit code.
pub fn run(cli: Cli, printer: &Printer) -> CliResult<Exit> {
    if let Command::Completions(args) = &cli.command {
        return Ok(commands::completions::run(args, printer));
    }
    if let Command::External(args) = cli.command {
        let dir = std::env::current_dir().map_err(|e| {
            error::CliError::failure(format!("cannot read the current folder: {e}"))
        })?;
        return forward::run(args, &dir);
    }
    // One thread is plenty for a handful of sockets, and it starts faster than a pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error::CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dbsetup(args) => commands::dbsetup::run(args, printer).await,
            Command::Doctor(args) => commands::doctor::run(args, printer).await,
            Command::Dbserver(args) => commands::dbserver::run(args, printer).await,
            Command::Completions(_) | Command::External(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    // A prompt interrupted by Ctrl-C leaves its blocking read behind; dropping the runtime
    // would wait for it forever.
    runtime.shutdown_background();
    result
}
