//! One driver's line for doctor, as text (headline and hint) and as JSON.

use super::environment::{self, FromEnvironment};
use super::{Driver, Host, Verdict, verdict};

/// One driver's line for doctor: the verdict as a headline and, for a problem, the hint with
/// the rewritten URL (redacted: [`Rewritten::url`](super::Rewritten::url) holds the real one).
#[derive(Clone, Debug)]
pub struct DriverLine {
    pub driver: Driver,
    pub verdict: Verdict,
    /// The `PG*` variables this driver's reading took, or did not read (see
    /// [`DriverLine::in_environment`]); empty for the URL alone.
    pub environment: FromEnvironment,
}

impl DriverLine {
    /// `asyncpg: 127.0.0.1 port 5432, user app, database app, TLS if offered, unverified`, or
    /// `asyncpg: asyncpg sends the query parameter …`.
    pub fn headline(&self) -> String {
        match &self.verdict {
            Verdict::Ok(reading) => format!(
                "{}: {}{}",
                self.driver.id(),
                reading.summary(),
                self.environment.annotation()
            ),
            Verdict::Problem(problem) => format!("{}: {}", self.driver.id(), problem.message),
        }
    }

    /// The line as a process started from this shell gets it: what the URL leaves out, filled
    /// from the `PG*` variables this driver reads (`var`), as doctor's own connection does.
    /// The verdict (does the driver read the URL as libpq does) stays the URL's own.
    pub fn in_environment(mut self, raw: &str, var: &dyn Fn(&str) -> Option<String>) -> DriverLine {
        if let Verdict::Ok(reading) = &self.verdict {
            let (filled, from) = environment::in_environment(self.driver, raw, reading, var);
            self.verdict = Verdict::Ok(filled);
            self.environment = from;
        }
        self
    }

    /// `use postgresql://app:****@db/app for asyncpg (dropped …)`, or how to do without a URL.
    pub fn hint(&self) -> Option<String> {
        let Verdict::Problem(problem) = &self.verdict else {
            return None;
        };
        Some(match &problem.fix {
            Ok(fix) if fix.notes.is_empty() => {
                format!("use `{}` for {}", fix.url, self.driver.name())
            }
            Ok(fix) => format!(
                "use `{}` for {} ({})",
                fix.url,
                self.driver.name(),
                fix.notes.join("; ")
            ),
            Err(refusal) => refusal.message.clone(),
        })
    }
}

impl DriverLine {
    /// The line for `--format json`: the driver, whether it connects where the URL means, what
    /// it reads, and for a problem its code, message and fix (the URL redacted).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let reading = self.verdict.reading().map(|r| {
            let endpoints: Vec<serde_json::Value> = r
                .endpoints
                .iter()
                .map(|e| {
                    let (kind, host) = match &e.host {
                        Some(Host::Tcp(name)) => ("tcp", Some(name.as_str())),
                        Some(Host::Socket(dir)) => ("socket", Some(dir.as_str())),
                        None => ("default", None),
                    };
                    json!({"kind": kind, "host": host, "port": e.port})
                })
                .collect();
            json!({
                "endpoints": endpoints,
                "user": r.user,
                "database": r.database,
                "has_password": r.password.is_some(),
                "tls": r.tls.describe(),
                "settings": r.settings.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                "ignored": r.ignored,
            })
        });
        let mut line = json!({
            "driver": self.driver.id(),
            "ok": self.verdict.is_ok(),
            "reading": reading,
        });
        if let Verdict::Problem(problem) = &self.verdict {
            line["code"] = json!(problem.code.id());
            line["message"] = json!(problem.message);
            line["fix"] = match &problem.fix {
                Ok(fix) => json!({"url": fix.url.to_string(), "notes": fix.notes}),
                Err(refusal) => json!({"url": null, "notes": [refusal.message]}),
            };
        }
        line
    }
}

/// The lines for `drivers`, in their order (from `--driver`, or [`detect()`](super::detect())).
pub fn lines(raw: &str, drivers: &[Driver]) -> Vec<DriverLine> {
    drivers
        .iter()
        .map(|&driver| DriverLine {
            driver,
            verdict: verdict(driver, raw),
            environment: FromEnvironment::default(),
        })
        .collect()
}
