//! What each fix did, said as it happens (text) or collected into one JSON document with both
//! runs of the checks; and the verdict: a fix counts only when the second check no longer
//! reports its code, so nothing is called fixed that was not checked again.

use serde::Serialize;

use super::{Declined, Fix};
use crate::code::Code;
use crate::commands::doctor::report::{Report, Status};
use crate::commands::doctor::targets::Target;
use crate::ui::{Mark, Printer, shown};

/// What one fix did.
pub struct Outcome {
    pub applied: bool,
    pub result: String,
    /// It should have changed something and could not: the run ends non-zero.
    pub failed: bool,
}

impl Outcome {
    pub fn done(result: String) -> Outcome {
        Outcome {
            applied: true,
            result,
            failed: false,
        }
    }

    /// It could not be applied; `why` says what a person must do.
    pub fn not_applied(why: String) -> Outcome {
        Outcome {
            applied: false,
            result: why,
            failed: true,
        }
    }

    pub fn declined() -> Outcome {
        Outcome {
            applied: false,
            result: "declined: nothing changed".into(),
            failed: false,
        }
    }
}

#[derive(Serialize)]
struct Entry {
    id: &'static str,
    code: Code,
    /// Where the URL came from, as the report's `source`.
    target: String,
    action: String,
    /// As whom an admin fix logs in (`null` for the others).
    #[serde(rename = "as")]
    login: Option<String>,
    applied: bool,
    result: String,
    #[serde(skip)]
    failed: bool,
    #[serde(skip)]
    target_index: usize,
}

/// A failure or warning no fix applies to, and why a person has to act.
#[derive(Serialize)]
struct Unfixed {
    target: String,
    code: Code,
    why: String,
}

pub struct Outcomes<'p> {
    printer: &'p Printer,
    json: bool,
    entries: Vec<Entry>,
    login: Option<String>,
    unfixed: Vec<Unfixed>,
    /// Fixes the second check calls for: another `--fix` run applies them.
    again: Vec<&'static str>,
}

impl<'p> Outcomes<'p> {
    pub fn new(printer: &'p Printer, json: bool) -> Outcomes<'p> {
        Outcomes {
            printer,
            json,
            entries: Vec::new(),
            login: None,
            unfixed: Vec::new(),
            again: Vec::new(),
        }
    }

    /// The fix as it will run, before the login and the question.
    pub fn show(&mut self, fix: &Fix, target: &Target) {
        self.login = None;
        if self.json {
            return;
        }
        let p = self.printer;
        p.result(&format!(
            "{} {} [{}] for {}",
            p.bold("Fix"),
            fix.id.id(),
            fix.code,
            shown(&target.source)
        ));
        for line in fix.action.lines() {
            p.result(&format!("    {}", shown(line)));
        }
    }

    /// As whom an admin fix runs, once logged in.
    pub fn login(&mut self, how: &str) {
        self.login = Some(how.to_string());
        if !self.json {
            self.printer
                .result(&format!("    {}", self.printer.dim(&shown(how))));
        }
    }

    pub fn record(&mut self, fix: &Fix, target: &Target, outcome: Outcome) {
        if !self.json {
            let p = self.printer;
            let mark = match (outcome.applied, outcome.failed) {
                (true, _) => Mark::Pass,
                (false, true) => Mark::Fail,
                (false, false) => Mark::Skip,
            };
            p.result(&format!(
                "{} {}: {}",
                p.mark(mark),
                fix.id.id(),
                shown(&outcome.result)
            ));
        }
        self.entries.push(Entry {
            id: fix.id.id(),
            code: fix.code,
            target: target.source.clone(),
            action: fix.action.clone(),
            login: self.login.take(),
            applied: outcome.applied,
            result: outcome.result,
            failed: outcome.failed,
            target_index: fix.target,
        });
    }

    /// The results no planned fix is for, each with why a person must act (the check's
    /// hint above says how).
    pub fn needs_a_person(&mut self, before: &[Report], fixes: &[Fix], declined: &[Declined]) {
        for (index, report) in before.iter().enumerate() {
            for code in problems(report) {
                let planned = |f: &&Fix| {
                    f.target == index
                        && (f.code == code
                            // The driver's URL rewrite is also what makes it parse.
                            || (code == Code::InvalidUrl && f.id == super::FixId::RewriteUrl))
                };
                if fixes.iter().any(|f| planned(&f)) {
                    continue;
                }
                let why = declined
                    .iter()
                    .find(|d| d.target == index && d.code == code)
                    .map_or_else(|| why_not(code).to_owned(), |d| d.why.clone());
                if !self.json {
                    let p = self.printer;
                    p.result(&format!(
                        "{} no fix for {code}: {}",
                        p.mark(Mark::Skip),
                        shown(&why)
                    ));
                }
                self.unfixed.push(Unfixed {
                    target: report.source.clone(),
                    code,
                    why,
                });
            }
        }
    }

    /// What another `--fix` run would apply, after what the second check found.
    pub fn again(&mut self, fixes: &[Fix]) {
        self.again = fixes.iter().map(|f| f.id.id()).collect();
        self.again.dedup();
        if !self.json && !self.again.is_empty() {
            self.printer.result(&format!(
                "The check again calls for more: `aksara doctor --fix` again applies {}",
                self.again.join(", ")
            ));
        }
    }

    /// No fix applies.
    pub fn nothing_to_fix(&mut self) {
        if self.json {
            return;
        }
        self.printer.result(if self.unfixed.is_empty() {
            "Nothing to fix."
        } else {
            "Nothing aksara can fix safely: the results above need a person."
        });
    }

    /// Whether the run succeeded: the second check passes, and every applied fix's code is
    /// gone from it (an applied fix whose code is still reported is called so, and fails). A
    /// fix whose check did not run again (an earlier one failed) is said to be unconfirmed.
    /// How many fixes were recorded so far: where the next round's entries start.
    pub fn recorded(&self) -> usize {
        self.entries.len()
    }

    /// Judge the fixes recorded since `from` (one round) by the check run after them.
    pub fn judge(&mut self, from: usize, before: &[Report], after: &[Report]) -> bool {
        for entry in self.entries.iter_mut().skip(from) {
            let Some(now) = after.get(entry.target_index) else {
                continue;
            };
            let check = before
                .get(entry.target_index)
                .and_then(|r| r.checks.iter().find(|c| c.code == Some(entry.code)))
                .map(|c| c.id);
            let ran_again = now
                .checks
                .iter()
                .any(|c| Some(c.id) == check && c.status != Status::Skip);
            if !entry.applied {
                continue;
            }
            if problems(now).contains(&entry.code) {
                entry.failed = true;
                entry.result.push_str(&format!(
                    "; but the check run again still reports {}",
                    entry.code
                ));
            } else if !ran_again {
                entry.result.push_str(
                    "; not confirmed: its check did not run again (an earlier check failed)",
                );
            }
        }
        after.iter().all(|r| r.ok) && !self.entries.iter().any(|e| e.failed)
    }

    /// What changed between the two runs (text), or the one document (JSON).
    pub fn finish(&self, before: &[Report], after: Option<&[Report]>) {
        if self.json {
            let json = serde_json::json!({
                "ok": after.unwrap_or(before).iter().all(|r| r.ok) && !self.entries.iter().any(|e| e.failed),
                "before": document(before),
                "fixes": self.entries,
                "unfixed": self.unfixed,
                "recheck": after.map(document),
                "again": self.again,
            });
            let text = serde_json::to_string_pretty(&json).expect("the fix report serialises");
            self.printer.result(&text);
            return;
        }
        let Some(after) = after else {
            return;
        };
        let p = self.printer;
        for entry in self.entries.iter().filter(|e| e.failed && !e.applied) {
            p.result(&format!(
                "{} not fixed: {} ({})",
                p.mark(Mark::Fail),
                entry.id,
                shown(&entry.result)
            ));
        }
        for (index, (b, a)) in before.iter().zip(after).enumerate() {
            let (was, now) = (problems(b), problems(a));
            // What a later round found (hidden behind the first failure) and fixed.
            let mut found: Vec<String> = self
                .entries
                .iter()
                .filter(|e| e.target_index == index && e.applied && !e.failed)
                .filter(|e| !was.contains(&e.code) && !now.contains(&e.code))
                .map(|e| e.code.to_string())
                .collect();
            found.dedup();
            let fixed: Vec<String> = was
                .iter()
                .filter(|c| !now.contains(c))
                .map(|c| c.to_string())
                .collect();
            let still: Vec<String> = now
                .iter()
                .filter(|c| was.contains(c))
                .map(|c| c.to_string())
                .collect();
            let new: Vec<String> = now
                .iter()
                .filter(|c| !was.contains(c))
                .map(|c| c.to_string())
                .collect();
            let mut parts = Vec::new();
            for (label, codes) in [
                ("fixed", fixed),
                ("found on the way and fixed", found),
                ("still reported", still),
                ("newly reported", new),
            ] {
                if !codes.is_empty() {
                    parts.push(format!("{label}: {}", codes.join(", ")));
                }
            }
            if parts.is_empty() {
                parts.push("no change".into());
            }
            p.result(&format!(
                "What changed for {}: {}",
                // The last check's source: a rewrite moves the key below its old value's comment.
                shown(&a.source),
                parts.join("; ")
            ));
        }
    }
}

/// Why `--fix` leaves a result to a person.
fn why_not(code: Code) -> &'static str {
    match code {
        Code::NoHbaEntry | Code::HbaReject => {
            "aksara does not edit pg_hba.conf: whoever runs the server edits it and reloads (for a remote or managed server, its administrator or the provider's console)"
        }
        Code::AuthFailed | Code::PasswordRequired => {
            "--fix changes no password: put the right one in the URL, or run `aksara dbsetup`, which offers to set a new one (`--force password` without a prompt)"
        }
        Code::RoleMissing => {
            "--fix creates no role (who may log in, and with what password if any, is a person's choice): run the line in the hint, or `aksara dbsetup`, which creates the app's role"
        }
        Code::InvalidUrl => {
            "the URL does not parse: fix it as the hint says (a driver's rewritten URL, when shown, is applied by its own fix)"
        }
        _ => "no fix applies here: the hint above says what to do",
    }
}

/// The codes a report fails or warns with.
fn problems(report: &Report) -> Vec<Code> {
    report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
        .filter_map(|c| c.code)
        .collect()
}

/// One report, or `{"ok", "targets"}` for several, as the doctor's JSON prints them.
fn document(reports: &[Report]) -> serde_json::Value {
    match reports {
        [only] => serde_json::to_value(only).expect("the report serialises"),
        _ => serde_json::json!({ "ok": reports.iter().all(|r| r.ok), "targets": reports }),
    }
}
