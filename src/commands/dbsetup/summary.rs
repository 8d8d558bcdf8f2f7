//! The end of a setup: the plan shown before anything changes, and the summary (text, or the
//! JSON outcome) after `.env` is written.

use serde::Serialize;

use crate::provision::Step;
use crate::ui::{Mark, Printer, Verbosity};

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub database: ObjectOutcome,
    pub role: RoleOutcome,
    pub url: String,
    pub env_file: String,
    pub env_key: String,
    pub env_change: &'static str,
    pub server_version: String,
    pub tls: bool,
    /// `DATABASE_REPLICA_URL`, redacted, when `--replica-url` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ObjectOutcome {
    pub name: String,
    pub created: bool,
}

#[derive(Debug, Serialize)]
pub struct RoleOutcome {
    pub name: String,
    pub created: bool,
    /// "set" (new password), "kept" (the .env already held one that works)
    pub password: &'static str,
}

/// The statements and the `.env` write, before any of them runs (text format only).
pub fn print_plan(
    printer: &Printer,
    steps: &[Step],
    env_key: &str,
    url: &str,
    env_file: &std::path::Path,
) {
    if printer.verbosity < Verbosity::Normal {
        return;
    }
    printer.status(&format!("\n{}", printer.bold("Plan:")));
    if steps.is_empty() {
        printer.status("  (nothing to create: the user and database exist)");
    }
    for s in steps {
        printer.status(&format!("  {};", s.sql(true)));
    }
    printer.status(&format!(
        "  write {env_key}={url} to {}",
        env_file.display()
    ));
    if steps
        .iter()
        .any(|s| matches!(s, Step::CreateRole { .. } | Step::SetPassword { .. }))
    {
        printer.status(&printer.dim("  (the password is sent as a SCRAM-SHA-256 verifier: the server and its log never see it)"));
    }
}

pub fn print_summary(printer: &Printer, o: &Outcome) {
    let created = |c: bool| if c { "created" } else { "reused" };
    if !printer.is_quiet() {
        printer.result("");
    }
    printer.result(&format!(
        "{} Database \"{}\" is ready",
        printer.mark(Mark::Pass),
        o.database.name
    ));
    printer.result(&format!(
        "  database  {} ({})",
        o.database.name,
        created(o.database.created)
    ));
    printer.result(&format!(
        "  user      {} ({}, password {})",
        o.role.name,
        created(o.role.created),
        o.role.password
    ));
    printer.result(&format!(
        "  server    PostgreSQL {}, TLS {}",
        o.server_version
            .split_whitespace()
            .next()
            .unwrap_or_default(),
        if o.tls { "in use" } else { "not in use" }
    ));
    printer.result(&format!(
        "  {:<9} {}={} ({})",
        o.env_file, o.env_key, o.url, o.env_change
    ));
    if let Some(replica) = &o.replica_url {
        printer.result(&format!(
            "  {:<9} {}={replica}",
            "replica",
            super::replica_url::REPLICA_KEY
        ));
    }
    // Advice, not the result: --quiet leaves it out.
    if !printer.is_quiet() {
        printer.result("");
        printer.result("Next steps:");
        // Only what runs here: the framework's commands when its CLI is installed (aksara
        // forwards them, see forward.rs), and the doctor, which always does.
        let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
        if crate::forward::available("makemigrations", &dir) {
            printer.result("  aksara makemigrations --app app.models");
        }
        if crate::forward::available("migrate", &dir) {
            printer.result("  aksara migrate");
        }
        printer.result("  aksara doctor        check the URL the way your app's drivers read it");
    }
}
