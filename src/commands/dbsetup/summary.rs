//! The end of a setup: the plan shown before anything changes, and the summary (text, or the
//! JSON outcome) after `.env` is written.

use serde::Serialize;

use super::decide::{DriverForm, Exception};
use crate::drivers::{self, Driver, Tls, forms};
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_change: Option<&'static str>,
    /// `--driver-url`: each driver's own form, redacted, under its key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub driver_urls: Vec<DriverUrlOutcome>,
    /// Drivers that connect to this server without TLS although libpq's `prefer` gets it (the
    /// URL names no sslmode, the server offers TLS, and they ask for it only when told).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_tls: Vec<&'static str>,
    /// Keys written that the shell also sets, to another value: an app started from that shell
    /// gets the shell's value, not the one written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shell_shadows: Vec<String>,
    /// The env file, now holding a working password, may be read by the group or others (an
    /// existing file keeps its mode): `aksara doctor` warns of the same (`env-world-readable`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub env_readable_by_others: bool,
}

/// One `--driver-url` key as written.
#[derive(Debug, Serialize)]
pub struct DriverUrlOutcome {
    pub driver: &'static str,
    pub key: String,
    /// Redacted.
    pub url: String,
    pub change: &'static str,
    /// What differs from the main URL for this driver, and why.
    pub notes: Vec<String>,
}

impl DriverUrlOutcome {
    pub fn new(form: &DriverForm, change: &'static str) -> DriverUrlOutcome {
        DriverUrlOutcome {
            driver: form.driver.id(),
            key: form.key.clone(),
            url: form.shown.clone(),
            change,
            notes: form.notes.clone(),
        }
    }
}

/// The judged drivers that read no TLS into `url` where libpq's default (`prefer`) uses the
/// TLS the server offered (`tls_in_use`): node-postgres asks for TLS only when the URL says
/// `sslmode` or `ssl`. Its id and name, from the model.
pub fn without_tls(url: &str, tls_in_use: bool) -> Vec<Driver> {
    if !tls_in_use {
        return Vec::new();
    }
    let libpq_prefers = drivers::read(Driver::Libpq, url).is_ok_and(|r| r.tls == Tls::IfOffered);
    if !libpq_prefers {
        return Vec::new();
    }
    drivers::portable::JUDGED
        .into_iter()
        .filter(|&driver| {
            let given = drivers::portable::as_given_to(driver, url);
            drivers::read(driver, &given).is_ok_and(|r| r.tls == Tls::Off)
        })
        .collect()
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
    // `.env` holds this URL already and its line is not written (a rerun, a shipped URL).
    stays: bool,
    forms: &[DriverForm],
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
    let verb = if stays {
        format!(
            "keep {env_key}={url} in {} (it holds this URL already)",
            env_file.display()
        )
    } else {
        format!("write {env_key}={url} to {}", env_file.display())
    };
    printer.status(&format!("  {verb}"));
    for form in forms {
        printer.status(&format!(
            "  write {}={} to {} (for {}, in the same write)",
            form.key,
            form.shown,
            env_file.display(),
            form.driver.name()
        ));
    }
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
    for form in &o.driver_urls {
        let name = Driver::from_id(form.driver).map_or(form.driver, Driver::name);
        printer.result(&format!(
            "  {:<9} {}={} ({}, for {name})",
            o.env_file, form.key, form.url, form.change
        ));
        for note in &form.notes {
            printer.result(&printer.dim(&format!("  {:<9} {note}", "")));
        }
    }
    for id in &o.without_tls {
        let name = Driver::from_id(id).map_or(*id, Driver::name);
        printer.result(&format!(
            "  {:<9} {name} connects to this server without TLS: it asks for TLS only when the URL names sslmode (pass --sslmode require for TLS with every driver)",
            "note"
        ));
    }
    for key in &o.shell_shadows {
        printer.result(&format!(
            "  {:<9} this shell also sets {key}, to a different value: an app started from it gets that one, not {}'s (dotenv does not override variables already set); `unset {key}` to use the file's",
            "note", o.env_file
        ));
    }
    if o.env_readable_by_others {
        printer.result(&format!(
            "  {:<9} {} is readable by other users of this machine, and it holds the password: `chmod 600 {}`",
            "note", o.env_file, o.env_file
        ));
    }
    if let Some(replica) = &o.replica_url {
        printer.result(&format!(
            "  {:<9} {}={replica} ({})",
            "replica",
            super::replica_url::REPLICA_KEY,
            o.replica_change.unwrap_or("written")
        ));
    }
    // Advice, not the result: --quiet leaves it out.
    if !printer.is_quiet() {
        printer.result("");
        printer.result("Next steps:");
        // Only what runs here: the framework's commands when its CLI is installed (aksara
        // forwards them, see forward.rs), and the doctor, which always does.
        let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
        let mut steps = Vec::new();
        if crate::forward::available("makemigrations", &dir) {
            steps.push((
                "aksara makemigrations --app app.models",
                "create the migrations for your models (the framework's command)",
            ));
        }
        if crate::forward::available("migrate", &dir) {
            steps.push((
                "aksara migrate",
                "apply them to the new database (the framework's command)",
            ));
        }
        steps.push((
            "aksara doctor",
            "check the URL the way your app's drivers read it",
        ));
        // One column for the descriptions, as cargo's and git's command lists have.
        let width = steps.iter().map(|(cmd, _)| cmd.len()).max().unwrap_or(0) + 8;
        for (cmd, what) in steps {
            printer.result(&format!("  {cmd:<width$}{what}"));
        }
    }
}

/// The drivers the written URL cannot serve and that got no form of their own: what they would
/// do with it, their form, and the flag that writes it.
pub fn print_exceptions(printer: &Printer, exceptions: &[Exception], written: &[DriverForm]) {
    for exception in exceptions {
        let driver = exception.driver;
        if written.iter().any(|form| form.driver == driver) {
            continue;
        }
        let flag = if forms::not_writable(driver).is_none() {
            format!(
                ", or pass --driver-url {}={} to have it written",
                driver.id(),
                forms::default_key(driver)
            )
        } else {
            String::new()
        };
        printer.warn(&format!(
            "{} cannot use this URL as it is; give it {} ({}){flag}",
            driver.name(),
            exception.form,
            exception.reason
        ));
    }
}
