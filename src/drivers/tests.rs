//! The model's tables, for every driver including the ones the suite cannot run (Prisma,
//! sqlx's parser, JDBC), and the properties every rewrite must have. The integration tests in
//! `tests/cli/drivers.rs` check the same verdicts against the real drivers.

use super::verdict::differences;
use super::*;

const ALL_OK: [Option<Code>; 8] = [None; 8];

/// Expected codes in [`Driver::ALL`] order.
fn expect(url: &str, codes: [Option<Code>; 8]) {
    for (driver, code) in Driver::ALL.into_iter().zip(codes) {
        let verdict = verdict(driver, url);
        assert_eq!(
            verdict.code(),
            code,
            "{} on {url}: {verdict:?}",
            driver.id()
        );
    }
}

use Code::*;

#[test]
fn plain_urls_are_fine_for_every_uri_driver() {
    let mut codes = ALL_OK;
    codes[2] = Some(DriverWrongScheme); // SQLAlchemy: `postgresql://` means psycopg2
    codes[3] = Some(DriverWrongScheme);
    codes[7] = Some(DriverWrongScheme); // JDBC
    expect("postgresql://app:secret@db.example.com:5432/app", codes);
}

#[test]
fn asyncpg_sends_libpq_options_to_the_server() {
    for (param, code) in [
        ("connect_timeout=10", Some(DriverSendsUnknownSetting)),
        ("channel_binding=require", Some(DriverSendsUnknownSetting)),
        ("keepalives=1", Some(DriverSendsUnknownSetting)),
        ("ssl=true", Some(DriverSendsUnknownSetting)),
        ("load_balance_hosts=random", Some(DriverSendsUnknownSetting)),
        ("schema=public", Some(DriverSendsUnknownSetting)),
        // Real settings and the keys asyncpg knows.
        ("application_name=web", None),
        ("statement_timeout=5000", None),
        ("search_path=app", None),
        ("options=-c%20work_mem%3D64MB", None),
        ("target_session_attrs=read-write", None),
        ("myapp.tenant=7", None),
    ] {
        let url = format!("postgresql://app:secret@db:5432/app?{param}");
        assert_eq!(verdict(Driver::Asyncpg, &url).code(), code, "{url}");
    }
    let message = match verdict(Driver::Asyncpg, "postgresql://a@h/d?work_mem=1&ssl=true") {
        Verdict::Problem(problem) => problem.message,
        ok => panic!("{ok:?}"),
    };
    assert!(message.contains("cannot be changed now"), "{message}");
}

#[test]
fn the_rewrites_carry_the_setting_elsewhere_and_say_so() {
    let fix = rewrite(
        Driver::Asyncpg,
        "postgresql://app:secret@db/app?connect_timeout=10&schema=public",
    )
    .unwrap();
    assert_eq!(
        fix.url.expose(),
        "postgresql://app:secret@db/app?options=-c%20search_path%3Dpublic"
    );
    assert!(
        fix.notes.iter().any(|n| n.contains("timeout=10")),
        "{:?}",
        fix.notes
    );
    let fix = rewrite(
        Driver::SqlalchemyAsyncpg,
        "postgresql://app:secret@db/app?sslmode=require&application_name=web",
    )
    .unwrap();
    assert_eq!(
        fix.url.expose(),
        "postgresql+asyncpg://app:secret@db/app?ssl=require"
    );
    assert!(
        fix.notes.iter().any(|n| n.contains("server_settings")),
        "{:?}",
        fix.notes
    );
    let fix = rewrite(
        Driver::Libpq,
        "postgresql+asyncpg://app:secret@db/app?ssl=require",
    )
    .unwrap();
    assert_eq!(
        fix.url.expose(),
        "postgresql://app:secret@db/app?sslmode=require"
    );
    let fix = rewrite(
        Driver::NodePg,
        "postgresql://app:secret@db/c%2B%2Bapp?sslmode=require",
    )
    .unwrap();
    assert_eq!(
        fix.url.expose(),
        "postgresql://app:secret@db/c++app?uselibpqcompat=true&sslmode=require"
    );
    let fix = rewrite(Driver::Jdbc, "postgresql://app:s%40cret@db:5433/app?application_name=web&target_session_attrs=read-write").unwrap();
    assert_eq!(
        fix.url.expose(),
        "jdbc:postgresql://db:5433/app?user=app&ApplicationName=web&targetServerType=primary&password=s%40cret"
    );
    assert_eq!(
        fix.url.to_string(),
        "jdbc:postgresql://db:5433/app?user=app&ApplicationName=web&targetServerType=primary&password=****"
    );
    let fix = rewrite(
        Driver::Prisma,
        "postgresql://app:secret@/app?host=/run/postgresql&port=5433&sslmode=verify-full",
    )
    .unwrap();
    assert_eq!(
        fix.url.expose(),
        "postgresql://app:secret@localhost:5433/app?host=/run/postgresql&sslmode=require&sslaccept=strict"
    );
    let fix = rewrite(
        Driver::Sqlx,
        "postgresql://app:secret@/app?host=/run/postgresql&port=5433",
    )
    .unwrap();
    assert_eq!(
        fix.url.expose(),
        "postgresql://app:secret@%2Frun%2Fpostgresql:5433/app"
    );
}

#[test]
fn what_no_url_can_say() {
    let several = "postgresql://app:pw@h1:5432,h2:5433/app";
    for driver in [Driver::NodePg, Driver::Prisma, Driver::Sqlx] {
        assert_eq!(
            rewrite(driver, several).unwrap_err().code,
            DriverCannotExpress,
            "{driver}"
        );
    }
    assert_eq!(
        rewrite(Driver::Jdbc, "postgresql://app:pw@/app?host=/tmp")
            .unwrap_err()
            .code,
        DriverCannotExpress
    );
    assert_eq!(
        rewrite(Driver::NodePg, "postgresql://app:pw@h/a%2Fb")
            .unwrap_err()
            .code,
        DriverCannotExpress
    );
    assert!(
        rewrite(Driver::SqlalchemyAsyncpg, several)
            .unwrap()
            .url
            .expose()
            .ends_with("?host=h1:5432&host=h2:5433")
    );
}

#[test]
fn sqlx_prisma_and_jdbc_readings() {
    // sqlx: the url crate refuses an empty host after credentials; ignores what it does not know.
    assert_eq!(
        verdict(Driver::Sqlx, "postgresql://u:pw@/db?host=/tmp&port=5432").code(),
        Some(DriverUnsupportedFormat)
    );
    let reading = read(
        Driver::Sqlx,
        "postgresql://u:pw@%2Ftmp:5432/db?connect_timeout=3",
    )
    .unwrap();
    assert_eq!(
        reading.endpoints,
        vec![Endpoint::new(Some(Host::Socket("/tmp".into())), Some(5432))]
    );
    assert_eq!(reading.ignored, vec!["connect_timeout".to_owned()]);
    assert_eq!(
        verdict(Driver::Sqlx, "postgresql://u:pw@h/db?password=a+b").code(),
        Some(DriverMisreadsUrl)
    );
    // Prisma: `schema` is its own; a socket needs ?host= and a host.
    assert!(
        verdict(
            Driver::Prisma,
            "postgresql://u:pw@localhost/db?schema=app&host=/tmp"
        )
        .is_ok()
    );
    assert_eq!(
        verdict(Driver::Prisma, "postgresql://u:pw@/db?host=/tmp").code(),
        Some(DriverUnsupportedFormat)
    );
    assert_eq!(
        read(Driver::Prisma, "postgresql://u:pw@h/db?sslmode=require")
            .unwrap()
            .tls,
        Tls::Required
    );
    // JDBC: its own scheme, credentials in the query.
    assert!(
        verdict(
            Driver::Jdbc,
            "jdbc:postgresql://h:5433/db?user=u&password=pw"
        )
        .is_ok()
    );
    assert_eq!(
        verdict(Driver::Jdbc, "jdbc:postgresql://u:pw@h/db").code(),
        Some(DriverUnsupportedFormat)
    );
    assert_eq!(
        read(Driver::Jdbc, "jdbc:postgresql://h/db?ssl=true")
            .unwrap()
            .tls,
        Tls::VerifyFull
    );
}

#[test]
fn node_postgres_tls_is_verify_full_unless_told_otherwise() {
    let tls = |query: &str| {
        read(Driver::NodePg, &format!("postgresql://u:pw@h/db{query}")).map(|r| r.tls)
    };
    assert_eq!(tls(""), Ok(Tls::Off));
    assert_eq!(tls("?sslmode=prefer"), Ok(Tls::VerifyFull));
    assert_eq!(tls("?sslmode=require"), Ok(Tls::VerifyFull));
    assert_eq!(tls("?sslmode=no-verify"), Ok(Tls::Required));
    assert_eq!(
        tls("?uselibpqcompat=true&sslmode=require"),
        Ok(Tls::Required)
    );
    assert_eq!(tls("?ssl=true"), Ok(Tls::VerifyFull));
    assert_eq!(
        tls("?ssl=require").unwrap_err().code,
        DriverRejectsParameter
    );
    assert_eq!(
        verdict(Driver::NodePg, "postgresql://u:pw@h/db?sslmode=prefer").code(),
        Some(DriverTlsStricter)
    );
    assert!(verdict(Driver::NodePg, "postgresql://u:pw@h/db?sslmode=verify-full").is_ok());
}

/// URLs every rewrite is tried on: hostile credentials and names, sockets, several hosts,
/// every parameter kind.
const SAMPLES: &[&str] = &[
    "postgresql://app:secret@db.example.com:5432/app",
    "postgresql://app:p%40ss%3Aw%2Frd%3F%23%25%26%2B%3D%27%20%C3%BC@db:5432/c%2B%2Bapp%20x",
    "postgresql://app:pw@%2Fvar%2Frun%2Fpostgresql:5433/app",
    "postgresql://app:pw@/app?host=/tmp&port=5433",
    "postgresql://app:pw@h1:5432,h2:5433/app?target_session_attrs=read-write",
    "postgresql://app:pw@db/app?sslmode=require&connect_timeout=10&application_name=web&schema=public",
    "postgresql://app:pw@db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem",
    "postgresql://app:pw@db/app?ssl=true&channel_binding=require",
    "postgres://app:pw@[::1]:5432/app?options=-c%20statement_timeout%3D5s",
    "host=/tmp port=5433 user=app password='a b' dbname=app",
    "postgresql+asyncpg://app:pw@db/app?ssl=require",
    "jdbc:postgresql://db:5432/app?user=app&password=pw&sslmode=require",
];

#[test]
fn every_rewrite_is_accepted_by_its_driver_and_means_the_same() {
    for url in SAMPLES {
        let meant = reading_of(&meaning(url).unwrap());
        for driver in Driver::ALL {
            let Ok(fix) = rewrite(driver, url) else {
                continue;
            };
            let fixed = fix.url.expose();
            let verdict = verdict(driver, fixed);
            assert!(
                verdict.is_ok(),
                "{} on its rewrite {fixed} of {url}: {verdict:?}",
                driver.id()
            );
            let reading = verdict.reading().unwrap();
            assert!(
                differences(&meant, reading).is_empty(),
                "{} on {fixed}: {reading:?} vs {meant:?}",
                driver.id()
            );
            // The rewrite means the same to libpq, unless it is a driver-only spelling.
            if matches!(
                driver,
                Driver::Libpq | Driver::Asyncpg | Driver::SqlalchemyPsycopg
            ) {
                let again = reading_of(&meaning(fixed).unwrap());
                assert!(differences(&meant, &again).is_empty(), "{fixed}");
            }
        }
    }
}

#[test]
fn no_message_shows_the_password() {
    let secret = "Zq9+x/y@z#w";
    let encoded = "Zq9%2Bx%2Fy%40z%23w";
    for url in [
        format!("postgresql://app:{encoded}@db/app?schema=x"),
        format!("host=db user=app password={secret} dbname=app"),
        format!("postgresql://app@db/app?password={encoded}&ssl=true"),
        format!("postgresql://app:{encoded}@h1:1,h2:2/app"),
    ] {
        for driver in Driver::ALL {
            let text = format!("{:?}", verdict(driver, &url));
            assert!(
                !text.contains(secret) && !text.contains(encoded),
                "{} on {url}: {text}",
                driver.id()
            );
            if let Ok(fix) = rewrite(driver, &url) {
                assert!(!fix.url.to_string().contains(encoded), "{}", fix.url);
                assert!(!format!("{:?}", fix).contains(encoded));
            }
        }
    }
}

#[test]
fn ids_and_codes_are_unique_kebab_case() {
    for driver in Driver::ALL {
        assert_eq!(Driver::from_id(driver.id()), Some(driver));
    }
    assert_eq!(Driver::from_id("psycopg"), Some(Driver::Libpq));
    assert_eq!(Driver::from_id("PG"), Some(Driver::NodePg));
    assert_eq!(Driver::from_id("mysql"), None);
    let mut ids: Vec<&str> = Code::ALL.iter().map(|c| c.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), Code::ALL.len());
    assert!(
        ids.iter()
            .all(|id| id.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
    );
}

#[test]
fn doctor_lines_name_the_driver_the_problem_and_the_fix_without_the_password() {
    let url = "postgresql://app:s3cret-pw@db:5432/app?connect_timeout=10";
    let lines = lines(url, &[Driver::Libpq, Driver::Asyncpg]);
    assert_eq!(
        lines[0].headline(),
        "libpq: db port 5432, user app, database app, TLS if offered, unverified"
    );
    assert_eq!(lines[0].hint(), None);
    assert!(lines[1].headline().starts_with("asyncpg: asyncpg sends the query parameter `connect_timeout` to the server as a setting"), "{}", lines[1].headline());
    assert_eq!(
        lines[1].hint().unwrap(),
        "use `postgresql://app:****@db:5432/app` for asyncpg (dropped `connect_timeout=10`: asyncpg would send it to the server; pass `timeout=10` to `asyncpg.connect` / `create_pool`)"
    );
    assert!(
        lines
            .iter()
            .all(|l| !format!("{}{:?}", l.headline(), l.hint()).contains("s3cret"))
    );
}

#[test]
fn the_json_line_has_the_code_and_the_redacted_fix() {
    let line = &lines(
        "postgresql://app:s3cret-pw@db/app?schema=public",
        &[Driver::Asyncpg],
    )[0];
    let json = line.to_json();
    assert_eq!(json["driver"], "asyncpg");
    assert_eq!(json["ok"], false);
    assert_eq!(json["code"], "driver-sends-unknown-setting");
    assert_eq!(
        json["fix"]["url"],
        "postgresql://app:****@db/app?options=-c%20search_path%3Dpublic"
    );
    assert_eq!(json["reading"]["has_password"], true);
    assert!(!json.to_string().contains("s3cret"));
}
