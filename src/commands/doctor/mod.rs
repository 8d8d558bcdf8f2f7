//! `aksara doctor`: check a connection string step by step (URL, host, reach, TLS, login,
//! query, privileges, production advice), each step timed, and name the first failure with
//! its catalogue code and the fix for this machine. Exit 0 when nothing failed (warnings
//! allowed), 1 when a check failed, 2 for usage errors.
//!
//! `targets` finds the URLs, `checks` runs them and hands each result to a `report::Reporter`
//! (text or JSON), `production` holds the warnings-only checks.

mod checks;
mod failure;
mod fix;
mod privileges;
mod production;
pub mod report;
mod targets;
mod tls_lines;
mod topology;

use crate::cli::{DoctorArgs, OutputFormat};
use crate::error::{CliResult, Exit};
use crate::sysenv::ProcessEnvironment;
use crate::ui::Printer;
use report::{JsonReporter, Reporter, TextReporter};

pub async fn run(args: DoctorArgs, printer: &Printer) -> CliResult<Exit> {
    // `--fix` without a way to ask and without `--yes` is refused before anything runs.
    let prompter = fix::prompter(&args, printer)?;
    let targets = targets::find_targets(&args)?;
    let env = ProcessEnvironment::load();
    if let Some(w) = env.pgpass_warning() {
        printer.warn(w);
    }
    let mut text;
    let mut json;
    let reporter: &mut dyn Reporter = if args.format == OutputFormat::Json {
        json = JsonReporter::new(printer);
        &mut json
    } else {
        text = TextReporter::new(printer, targets.len());
        &mut text
    };
    let mut reports = Vec::new();
    for target in &targets {
        reports.push(checks::check_target(target, &args, &env, reporter).await);
    }
    if args.fix {
        // The fix report holds both runs of the checks (one JSON document).
        return fix::run(&args, &targets, &env, reports, prompter.as_deref(), printer).await;
    }
    reporter.done(&reports);
    if args.format == OutputFormat::Text && printer.is_verbose() {
        print_tools(printer);
    }
    let ok = reports.iter().all(|r| r.ok);
    Ok(if ok { Exit::Success } else { Exit::Failure })
}

/// The drivers whose reading doctor reports: `--driver`, else those the project uses
/// (pyproject.toml, requirements*.txt, package.json, Cargo.toml...), else asyncpg and libpq.
pub fn drivers_for(args: &DoctorArgs) -> Vec<crate::drivers::Driver> {
    if !args.driver.is_empty() {
        return args.driver.clone();
    }
    let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    crate::drivers::detect(&dir)
}

fn print_tools(printer: &Printer) {
    printer.result("Installed tools:");
    for tool in ["psql", "pg_ctl", "postgres", "pg_isready", "docker"] {
        match which::which(tool) {
            Ok(path) => {
                let version = std::process::Command::new(&path)
                    .arg("--version")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .ok()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .unwrap_or_default();
                printer.result(&format!(
                    "  {tool:<11} {} {}",
                    path.display(),
                    printer.dim(&version)
                ));
            }
            Err(_) => printer.result(&format!("  {tool:<11} not found")),
        }
    }
}
