//! What the doctor's checks produce, and the reporters that render it. The checks never print:
//! each result is an event handed to a [`Reporter`], which the text format renders line by
//! line as results arrive (with a spinner while a step waits) and the JSON format collects
//! into one document at the end.

use serde::Serialize;

use crate::code::Code;
use crate::session::ServerFacts;
use crate::ui::{Mark, Printer, Spinner, shown};

/// Every check the doctor runs, in the order it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckId {
    Url,
    /// What one of the application's drivers makes of the URL (one check per driver).
    Driver,
    Host,
    Reach,
    Tls,
    Login,
    Query,
    /// A connection pooler in front of the server, and what its mode means for the drivers.
    Pooler,
    /// Primary or standby, the key's expectation, a standby's lag.
    Replica,
    Privileges,
    SslRemote,
    EnvGit,
    EnvMode,
    Connections,
    Pool,
}

impl CheckId {
    /// The steps of one connection, each skipped once an earlier one failed.
    pub const CONNECTION_STEPS: &'static [CheckId] = &[
        CheckId::Url,
        CheckId::Host,
        CheckId::Reach,
        CheckId::Tls,
        CheckId::Login,
        CheckId::Query,
        CheckId::Privileges,
    ];

    /// The JSON `id`.
    pub fn id(self) -> &'static str {
        match self {
            CheckId::Url => "url",
            CheckId::Driver => "driver",
            CheckId::Host => "host",
            CheckId::Reach => "reach",
            CheckId::Tls => "tls",
            CheckId::Login => "login",
            CheckId::Query => "query",
            CheckId::Pooler => "pooler",
            CheckId::Replica => "replica",
            CheckId::Privileges => "privileges",
            CheckId::SslRemote => "ssl-remote",
            CheckId::EnvGit => "env-git",
            CheckId::EnvMode => "env-mode",
            CheckId::Connections => "connections",
            CheckId::Pool => "pool",
        }
    }

    /// The text format's column title.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::Url => "URL",
            CheckId::Driver => "Driver",
            CheckId::Host => "Host",
            CheckId::Reach => "Reach",
            CheckId::Tls => "TLS",
            CheckId::Login => "Login",
            CheckId::Query => "Query",
            CheckId::Pooler => "Pooler",
            CheckId::Replica => "Replica",
            CheckId::Privileges => "Privileges",
            CheckId::SslRemote => "TLS remote",
            CheckId::EnvGit => ".env git",
            CheckId::EnvMode => ".env mode",
            CheckId::Connections => "Connections",
            CheckId::Pool => "Pool size",
        }
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: CheckId,
    pub status: Status,
    pub code: Option<Code>,
    pub message: String,
    pub hint: Option<String>,
    /// How long this step took; `None` (JSON `null`) when it was not timed on its own: the
    /// reach and TLS steps are proven by the login's round trip, and skipped steps never ran.
    pub elapsed_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub source: String,
    pub url: String,
    pub checks: Vec<Check>,
    pub server: Option<ServerFacts>,
    /// About where the URL came from, e.g. the shell's DATABASE_URL shadowing the .env one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What would let the role create its tables (a schema or tablespace grant, or a schema to
    /// create), when the Privileges line's failure path found it (src/creation.rs); `--fix`
    /// acts on it.
    #[serde(skip)]
    pub creation_fix: Option<crate::creation::CreationFix>,
}

impl Report {
    pub fn failed_codes(&self) -> Vec<Code> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .filter_map(|c| c.code)
            .collect()
    }

    pub fn warnings(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count()
    }
}

/// Where the checks' events go.
pub trait Reporter {
    /// A new URL is about to be checked.
    fn target(&mut self, source: &str, url: &str, note: Option<&str>);
    /// A step started that may take a moment.
    fn waiting(&mut self, what: &str);
    /// A check finished.
    fn check(&mut self, check: &Check);
    /// The URL's checks are done.
    fn finished(&mut self, report: &Report);
    /// Every URL is done.
    fn done(&mut self, reports: &[Report]);
}

/// The checklist on stdout, a line per check as it completes.
pub struct TextReporter<'p> {
    printer: &'p Printer,
    /// Whether each target gets its "Checking ..." header (`-q` leaves out a lone one).
    headers: bool,
    spinner: Option<Spinner>,
}

impl<'p> TextReporter<'p> {
    pub fn new(printer: &'p Printer, targets: usize) -> TextReporter<'p> {
        TextReporter {
            printer,
            headers: !printer.is_quiet() || targets > 1,
            spinner: None,
        }
    }

    fn line(&self, check: &Check) -> String {
        let p = self.printer;
        let mark = match check.status {
            Status::Pass => Mark::Pass,
            Status::Warn => Mark::Warn,
            Status::Fail => Mark::Fail,
            Status::Skip => Mark::Skip,
        };
        let code = check.code.map(|c| format!(" [{c}]")).unwrap_or_default();
        let timing = check
            .elapsed_ms
            .map(|ms| format!("  {}", p.dim(&format!("{ms} ms"))))
            .unwrap_or_default();
        format!(
            "{} {:<11} {}{}{}",
            p.mark(mark),
            check.id.title(),
            shown(&check.message),
            code,
            timing
        )
    }
}

impl Reporter for TextReporter<'_> {
    fn target(&mut self, source: &str, url: &str, note: Option<&str>) {
        let p = self.printer;
        if self.headers {
            p.result(&format!("{} {}", p.bold("Checking"), shown(source)));
            p.result(&format!("  {}", shown(url)));
        }
        if let Some(note) = note {
            p.result(&format!("  {} {}", p.yellow("note:"), shown(note)));
        }
    }

    fn waiting(&mut self, what: &str) {
        match &self.spinner {
            Some(s) => s.set_message(what),
            None => self.spinner = Some(self.printer.spinner(what)),
        }
    }

    fn check(&mut self, check: &Check) {
        self.spinner = None;
        let visible =
            !self.printer.is_quiet() || matches!(check.status, Status::Fail | Status::Warn);
        if !visible {
            return;
        }
        self.printer.result(&self.line(check));
        if let Some(hint) = &check.hint
            && check.status != Status::Pass
        {
            self.printer.result(&format!(
                "    {} {}",
                self.printer.bold("hint:"),
                shown(hint)
            ));
        }
    }

    fn finished(&mut self, report: &Report) {
        self.spinner = None;
        let p = self.printer;
        let warned = report.warnings();
        let summary = if report.ok && warned == 0 {
            format!("{} all checks passed", p.mark(Mark::Pass))
        } else if report.ok {
            format!(
                "{} connection works, {warned} {}",
                p.mark(Mark::Warn),
                if warned == 1 { "warning" } else { "warnings" }
            )
        } else {
            let codes: Vec<&str> = report.failed_codes().iter().map(|c| c.id()).collect();
            format!("{} failed: {}", p.mark(Mark::Fail), codes.join(", "))
        };
        p.result(&summary);
        if !p.is_quiet() {
            p.result("");
        }
    }

    fn done(&mut self, _reports: &[Report]) {}
}

/// One JSON document on stdout at the end: a report, or `{"ok", "targets"}` for several.
pub struct JsonReporter<'p> {
    printer: &'p Printer,
}

impl<'p> JsonReporter<'p> {
    pub fn new(printer: &'p Printer) -> JsonReporter<'p> {
        JsonReporter { printer }
    }
}

impl Reporter for JsonReporter<'_> {
    fn target(&mut self, _: &str, _: &str, _: Option<&str>) {}
    fn waiting(&mut self, _: &str) {}
    fn check(&mut self, _: &Check) {}
    fn finished(&mut self, _: &Report) {}

    fn done(&mut self, reports: &[Report]) {
        let json = if let [only] = reports {
            serde_json::to_string_pretty(only)
        } else {
            let ok = reports.iter().all(|r| r.ok);
            serde_json::to_string_pretty(&serde_json::json!({ "ok": ok, "targets": reports }))
        }
        .expect("the report serialises");
        self.printer.result(&json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::Verbosity;

    fn check(id: CheckId, status: Status, code: Option<Code>, elapsed_ms: Option<u64>) -> Check {
        Check {
            id,
            status,
            code,
            message: format!("{} said", id.id()),
            hint: code.map(|c| format!("fix {c}")),
            elapsed_ms,
        }
    }

    fn report(checks: Vec<Check>) -> Report {
        Report {
            ok: checks.iter().all(|c| c.status != Status::Fail),
            source: "--url".into(),
            url: "postgresql://app@localhost/app".into(),
            checks,
            server: None,
            note: None,
            creation_fix: None,
        }
    }

    /// The text reporter streams a line per check as it arrives, times only what was timed,
    /// and ends with the summary; the hint follows a failure on its own line.
    #[test]
    fn text_lines_come_as_checks_arrive() {
        let (printer, out) = Printer::capture(Verbosity::Normal);
        let mut text = TextReporter::new(&printer, 1);
        text.target("--url", "postgresql://app@localhost/app", None);
        let checks = vec![
            check(CheckId::Url, Status::Pass, None, Some(0)),
            check(CheckId::Reach, Status::Pass, None, None),
            check(
                CheckId::Login,
                Status::Fail,
                Some(Code::RoleCannotLogin),
                Some(3),
            ),
            check(CheckId::Query, Status::Skip, None, None),
        ];
        text.check(&checks[0]);
        assert_eq!(
            out.stdout(),
            "Checking --url\n  postgresql://app@localhost/app\n[ok] URL         url said  0 ms\n"
        );
        for c in &checks[1..] {
            text.check(c);
        }
        text.finished(&report(checks));
        assert_eq!(
            out.stdout(),
            "Checking --url\n  postgresql://app@localhost/app\n\
             [ok] URL         url said  0 ms\n\
             [ok] Reach       reach said\n\
             [xx] Login       login said [role-cannot-login]  3 ms\n    hint: fix role-cannot-login\n\
             [--] Query       query said\n\
             [xx] failed: role-cannot-login\n\n"
        );
        assert_eq!(out.stderr(), "");
    }

    #[test]
    fn quiet_text_shows_only_failures_warnings_and_the_summary() {
        let (printer, out) = Printer::capture(Verbosity::Quiet);
        let mut text = TextReporter::new(&printer, 1);
        text.target("--url", "u", None);
        let checks = vec![
            check(CheckId::Url, Status::Pass, None, Some(0)),
            check(
                CheckId::Privileges,
                Status::Warn,
                Some(Code::CannotCreateTables),
                Some(1),
            ),
        ];
        for c in &checks {
            text.check(c);
        }
        text.finished(&report(checks));
        assert_eq!(
            out.stdout(),
            "[!!] Privileges  privileges said [cannot-create-tables]  1 ms\n    hint: fix cannot-create-tables\n[!!] connection works, 1 warning\n"
        );
    }

    /// JSON is one document at the end; a step not timed on its own is null, not 0.
    #[test]
    fn json_is_one_document_with_null_for_untimed_steps() {
        let (printer, out) = Printer::capture(Verbosity::Normal);
        let mut json = JsonReporter::new(&printer);
        let checks = vec![check(CheckId::Reach, Status::Pass, None, None)];
        json.check(&checks[0]);
        assert_eq!(out.stdout(), "");
        json.done(&[report(checks)]);
        let value: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
        assert_eq!(value["checks"][0]["id"], "reach");
        assert!(value["checks"][0]["elapsed_ms"].is_null());
        assert_eq!(value["ok"], true);
    }
}
