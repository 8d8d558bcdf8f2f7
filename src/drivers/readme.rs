//! The README's "Which driver reads what" section, rendered from the drivers' [`Facts`], so
//! the documentation cannot drift from the model (a test compares the two).

use super::{Driver, Facts};

pub const BEGIN: &str = "<!-- drivers: begin (generated from src/drivers by drivers::readme::section; a test compares) -->";
pub const END: &str = "<!-- drivers: end -->";

/// The table and the sources, between the markers.
pub fn section() -> String {
    let mut out = format!("{BEGIN}\n");
    out.push_str("| driver | reads | decoding | unknown parameters | TLS | hosts |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for driver in Driver::ALL {
        let Facts {
            reads,
            decoding,
            unknown_parameters,
            tls,
            hosts,
            ..
        } = driver.facts();
        out.push_str(&format!(
            "| {}, `{}` | {reads} | {decoding} | {unknown_parameters} | {tls} | {hosts} |\n",
            driver.name(),
            driver.id()
        ));
    }
    out.push_str("\nWritten from each driver's source:\n\n");
    for driver in Driver::ALL {
        out.push_str(&format!("- {}: {}\n", driver.name(), driver.facts().source));
    }
    out.push_str(&format!("{END}\n"));
    out
}
