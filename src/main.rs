use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = aksara::cli::Cli::parse();
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
