//! The README's "Which driver reads what" section, rendered from the drivers' [`Facts`], so
//! the documentation cannot drift from the model (a test compares the two).

use super::{Driver, Facts, forms, meaning};

pub const BEGIN: &str = "<!-- drivers: begin (generated from src/drivers by drivers::readme::section; a test compares) -->";
pub const END: &str = "<!-- drivers: end -->";

/// The table and the sources, between the markers.
pub fn section() -> String {
    let mut out = format!("{BEGIN}\n");
    out.push_str(
        "| driver | reads | decoding | unknown parameters | TLS | hosts | no user in the URL (and no `PGUSER`) |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for driver in Driver::ALL {
        let Facts {
            reads,
            decoding,
            unknown_parameters,
            tls,
            hosts,
            no_user,
            ..
        } = driver.facts();
        out.push_str(&format!(
            "| {}, `{}` | {reads} | {decoding} | {unknown_parameters} | {tls} | {hosts} | {no_user} |\n",
            driver.name(),
            driver.id()
        ));
    }
    out.push_str("\nWritten from each driver's source:\n\n");
    for driver in Driver::ALL {
        out.push_str(&format!("- {}: {}\n", driver.name(), driver.facts().source));
    }
    out.push_str(&driver_url_section());
    out.push_str(&format!("{END}\n"));
    out
}

/// `dbsetup --driver-url`: the drivers it writes a form for, the key it suggests, the form for
/// an example URL (from [`forms::form_for`]), and how doctor reads such a key.
fn driver_url_section() -> String {
    const EXAMPLE: &str = "postgresql://app:secret@db.internal:5432/app?sslmode=require";
    let conn = meaning(EXAMPLE).expect("the example URL parses");
    let mut out = String::from(
        "\n### One URL for every driver, and a key for those it cannot serve\n\n\
         `aksara dbsetup` writes one URL that libpq, asyncpg, both SQLAlchemy dialects (with their \
         dialect in the scheme), node-postgres and sqlx read alike. Where none can serve a driver \
         (a URL that requires TLS: SQLAlchemy's asyncpg dialect wants `ssl=require`, node-postgres \
         reads `sslmode=require` as verify-full), the summary names the driver and its own form, \
         and `--driver-url DRIVER=KEY` (repeatable) writes that form under `KEY` in the same \
         `.env` write as `DATABASE_URL`: both keys or neither. The interactive setup offers it for \
         the drivers it finds in the project. For `DATABASE_URL=postgresql://app:****@db.internal:5432/app?sslmode=require`:\n\n",
    );
    out.push_str(
        "| driver | `--driver-url` (the suggested key) | what it writes |\n| --- | --- | --- |\n",
    );
    for driver in forms::WRITABLE {
        let form = match forms::form_for(driver, &conn) {
            Ok(form) => format!("`{}`", form.url),
            Err(refusal) => refusal.message,
        };
        out.push_str(&format!(
            "| {} | `{}={}` | {form} |\n",
            driver.name(),
            driver.id(),
            forms::default_key(driver)
        ));
    }
    out.push_str(
        "\nnode-postgres's `uselibpqcompat=true&sslmode=require` is libpq's `require`: encrypted, the \
         certificate not verified, so it connects to a server with a private or self-signed \
         certificate as psql does; libpq rejects the parameter, so the key is for node-postgres \
         only. `aksara doctor` reads a key other than `DATABASE_URL` whose value is spelled for one \
         driver (`postgresql+asyncpg://`, `postgresql+psycopg://`, `uselibpqcompat`, `jdbc:`) as that \
         driver's form: it judges the value with that driver's reading only, and connects where it \
         means; on `DATABASE_URL` that driver's line then names the form's key instead of \
         failing (the app hands that driver the other key). A key doctor would read as a replica's (`DATABASE_REPLICA_URL`, `*_READ*`, \
         `*_STANDBY_*`) or that libpq reads (`PG*`) is refused. Where no URL makes a driver behave \
         as libpq does, the summary says so: with no `sslmode` in the URL, node-postgres connects \
         without the TLS that libpq's `prefer` uses.\n",
    );
    out
}
