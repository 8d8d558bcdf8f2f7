#![warn(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

/// Parse, print, exit: the only exit point. clap's own `--help`, `--version` and usage errors
/// (exit 2) are printed by clap, not by `process::exit` deep inside `parse`.
fn main() -> ExitCode {
    let cli = match aksara::cli::Cli::parse_from_args(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    let printer = aksara::ui::Printer::new(&cli.global);
    let exit = match aksara::run(cli, &printer) {
        Ok(exit) => exit,
        Err(err) => {
            printer.error(&err);
            err.exit
        }
    };
    ExitCode::from(exit as u8)
}
