//! Unit and property tests of parsing, rendering and resolution.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const CANARY: &str = "Canary-S3cret-7f2a";

fn parse(s: &str) -> ConnString {
    ConnString::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn parse_err(s: &str) -> DsnError {
    ConnString::parse(s).expect_err(s)
}

fn tcp(host: &str, port: Option<u16>) -> HostSpec {
    HostSpec {
        host: Some(host.to_owned()),
        port,
    }
}

// --- the project's documented examples -------------------------------------------------

#[test]
fn documented_examples_round_trip() {
    for url in [
        "postgresql://localhost/myapp",
        "postgresql://postgres:secret@localhost:5432/myapp",
        "postgresql://user:pass@db.example.com:5432/production",
        "postgresql://postgres:password@localhost:5432/myapp",
        "postgresql://user:pass@host:5432/db?sslmode=require",
        "postgresql://user:pass@host:5432/db?sslmode=require&connect_timeout=10&application_name=myapp",
    ] {
        let conn = parse(url);
        assert_eq!(conn.format, Format::Uri);
        assert_eq!(conn.to_url(Reveal::Secret), url);
        assert_eq!(conn.render(Reveal::Secret), url);
    }
}

#[test]
fn documented_example_fields() {
    let conn = parse(
        "postgresql://user:pass@host:5432/db?sslmode=require&connect_timeout=10&application_name=myapp",
    );
    assert_eq!(conn.hosts, vec![tcp("host", Some(5432))]);
    assert_eq!(conn.user.as_deref(), Some("user"));
    assert_eq!(conn.password.as_ref().map(Password::expose), Some("pass"));
    assert_eq!(conn.dbname.as_deref(), Some("db"));
    assert_eq!(conn.sslmode, Some(SslMode::Require));
    assert_eq!(conn.connect_timeout, Some(10));
    assert_eq!(conn.application_name.as_deref(), Some("myapp"));
    assert!(conn.unknown.is_empty());
}

#[test]
fn redacted_forms() {
    let conn = parse("postgresql://app:hunter2@host/db");
    assert_eq!(conn.to_string(), "postgresql://app:****@host/db");
    assert_eq!(
        conn.to_url(Reveal::Redacted),
        "postgresql://app:****@host/db"
    );
    assert_eq!(
        conn.to_keyword_value(Reveal::Redacted),
        "host=host user=app password=**** dbname=db"
    );
}

#[test]
fn postgres_scheme_is_accepted_and_rendered_as_postgresql() {
    let conn = parse("postgres://u@h/d");
    assert_eq!(conn.to_url(Reveal::Secret), "postgresql://u@h/d");
}

#[test]
fn empty_and_minimal_uris() {
    assert_eq!(parse("postgresql://"), ConnString::default());
    let conn = parse("postgresql://host/");
    assert_eq!(conn.dbname, None);
    assert_eq!(conn.to_url(Reveal::Secret), "postgresql://host");
    let conn = parse("postgresql://localhost?sslmode=disable");
    assert_eq!(conn.sslmode, Some(SslMode::Disable));
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://localhost?sslmode=disable"
    );
    assert_eq!(parse("  postgresql://h/d\n").dbname.as_deref(), Some("d"));
}

#[test]
fn empty_user_and_password_count_as_not_given() {
    let conn = parse("postgresql://:@h/d");
    assert_eq!(conn.user, None);
    assert_eq!(conn.password, None);
    let conn = parse("postgresql://:pw@h/d");
    assert_eq!(conn.user, None);
    assert_eq!(conn.to_url(Reveal::Secret), "postgresql://:pw@h/d");
}

// --- sslmode ------------------------------------------------------------------------------

#[test]
fn all_six_sslmodes_parse_and_render() {
    for mode in SslMode::ALL {
        let url = format!("postgresql://h/d?sslmode={mode}");
        let conn = parse(&url);
        assert_eq!(conn.sslmode, Some(mode));
        assert_eq!(conn.to_url(Reveal::Secret), url);
        assert_eq!(mode.as_str().parse::<SslMode>(), Ok(mode));
        let kv = parse(&format!("sslmode={mode}"));
        assert_eq!(kv.sslmode, Some(mode));
    }
    assert_eq!(SslMode::default(), SslMode::Prefer);
}

#[test]
fn sslmode_properties() {
    let tls: Vec<_> = SslMode::ALL
        .into_iter()
        .filter(|m| m.requires_tls())
        .collect();
    assert_eq!(
        tls,
        [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull]
    );
    let verifying: Vec<_> = SslMode::ALL.into_iter().filter(|m| m.verifies()).collect();
    assert_eq!(verifying, [SslMode::VerifyCa, SslMode::VerifyFull]);
}

#[test]
fn sslmode_did_you_mean() {
    let error = "requir".parse::<SslMode>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown sslmode \"requir\"; did you mean \"require\"?"
    );
    let suggest = |s: &str| match s.parse::<SslMode>() {
        Err(DsnError::UnknownSslMode { suggestion, .. }) => suggestion,
        other => panic!("{other:?}"),
    };
    assert_eq!(suggest("REQUIRE"), Some("require"));
    assert_eq!(suggest("verify_full"), Some("verify-full"));
    assert_eq!(suggest("verifyca"), Some("verify-ca"));
    assert_eq!(suggest("prefered"), Some("prefer"));
    assert_eq!(suggest("true"), Some("require"));
    assert_eq!(suggest("off"), Some("disable"));
    assert_eq!(suggest("bogus"), None);
    assert_eq!(suggest(""), None);
    assert_eq!(
        "bogus".parse::<SslMode>().unwrap_err().to_string(),
        "unknown sslmode \"bogus\""
    );
}

#[test]
fn ssl_true_means_require_in_uris_only() {
    assert_eq!(
        parse("postgresql://h/d?ssl=true").sslmode,
        Some(SslMode::Require)
    );
    let conn = parse("postgresql://h/d?ssl=false");
    assert_eq!(conn.sslmode, None);
    assert_eq!(conn.unknown, vec![("ssl".to_owned(), "false".to_owned())]);
    let kv = parse("host=h ssl=true");
    assert_eq!(kv.sslmode, None);
    assert_eq!(kv.unknown, vec![("ssl".to_owned(), "true".to_owned())]);
}

// --- keyword/value ------------------------------------------------------------------------

#[test]
fn keyword_value_basic() {
    let conn = parse("host=localhost port=5432 dbname=mydb connect_timeout=10");
    assert_eq!(conn.format, Format::KeyValue);
    assert_eq!(conn.hosts, vec![tcp("localhost", Some(5432))]);
    assert_eq!(conn.dbname.as_deref(), Some("mydb"));
    assert_eq!(conn.connect_timeout, Some(10));
    assert_eq!(
        conn.render(Reveal::Secret),
        "host=localhost port=5432 dbname=mydb connect_timeout=10"
    );
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://localhost:5432/mydb?connect_timeout=10"
    );
}

#[test]
fn keyword_value_quoting_and_escapes() {
    let conn = parse(r"user = 'my user' password='it\'s a \\ secret' dbname=a\ b options=''");
    assert_eq!(conn.user.as_deref(), Some("my user"));
    assert_eq!(
        conn.password.as_ref().map(Password::expose),
        Some(r"it's a \ secret")
    );
    assert_eq!(conn.dbname.as_deref(), Some("a b"));
    assert_eq!(conn.options, None);
    assert_eq!(
        conn.to_keyword_value(Reveal::Secret),
        r"user='my user' password='it\'s a \\ secret' dbname='a b'"
    );
    assert_eq!(parse(&conn.to_keyword_value(Reveal::Secret)), conn);
}

#[test]
fn keyword_value_later_value_wins() {
    let conn = parse("dbname=a dbname=b");
    assert_eq!(conn.dbname.as_deref(), Some("b"));
}

#[test]
fn doubled_quote_is_not_an_escape_and_password_is_not_echoed() {
    let error = parse_err(&format!("password='{CANARY}''{CANARY}' host=x"));
    assert!(matches!(
        error,
        DsnError::Obscured {
            format: Format::KeyValue,
            ..
        }
    ));
    assert!(error.hint().unwrap().contains(r"\'"));
    assert!(!error.to_string().contains(CANARY));
}

#[test]
fn keyword_value_errors() {
    assert_eq!(
        parse_err("host").to_string(),
        "missing \"=\" after \"host\" in keyword/value string"
    );
    assert_eq!(
        parse_err("password='abc").to_string(),
        "unterminated quoted value for \"password\""
    );
    assert_eq!(parse_err("=x"), DsnError::KvEmptyKeyword);
    assert_eq!(
        parse_err("port=notaport").to_string(),
        "port \"notaport\" is not a number"
    );
    assert_eq!(
        parse_err("connect_timeout=abc").to_string(),
        "connect_timeout \"abc\" is not an integer"
    );
    assert_eq!(
        parse_err("port=70000").to_string(),
        "port \"70000\" is out of range (1-65535)"
    );
    assert!(matches!(
        parse_err("port=0"),
        DsnError::PortOutOfRange { .. }
    ));
    assert!(
        parse_err("localhost:5432")
            .hint()
            .unwrap()
            .contains("postgresql://")
    );
}

#[test]
fn empty_string_is_all_defaults() {
    assert_eq!(
        parse(""),
        ConnString {
            format: Format::KeyValue,
            ..ConnString::default()
        }
    );
}

// --- hosts --------------------------------------------------------------------------------

#[test]
fn multiple_hosts_in_uri() {
    let conn = parse("postgresql://h1:5432,h2:5433/db");
    assert_eq!(
        conn.hosts,
        vec![tcp("h1", Some(5432)), tcp("h2", Some(5433))]
    );
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://h1:5432,h2:5433/db"
    );
    assert_eq!(
        conn.to_keyword_value(Reveal::Secret),
        "host=h1,h2 port=5432,5433 dbname=db"
    );
    let conn = parse("postgresql://h1,h2:5433/db");
    assert_eq!(conn.hosts, vec![tcp("h1", None), tcp("h2", Some(5433))]);
    assert_eq!(parse(&conn.to_url(Reveal::Secret)), conn);
}

#[test]
fn multiple_hosts_in_keyword_value_share_a_single_port() {
    let conn = parse("host=h1,h2 port=5433");
    assert_eq!(
        conn.hosts,
        vec![tcp("h1", Some(5433)), tcp("h2", Some(5433))]
    );
    assert_eq!(
        conn.to_keyword_value(Reveal::Secret),
        "host=h1,h2 port=5433"
    );
    assert_eq!(conn.to_url(Reveal::Secret), "postgresql://h1:5433,h2:5433");
    let conn = parse("host=h1,h2 port=5432,5433");
    assert_eq!(
        conn.hosts,
        vec![tcp("h1", Some(5432)), tcp("h2", Some(5433))]
    );
    assert_eq!(
        parse_err("host=h1,h2 port=1,2,3"),
        DsnError::PortCountMismatch { hosts: 2, ports: 3 }
    );
}

#[test]
fn socket_forms() {
    let query_form = parse("postgresql:///db?host=/var/run/postgresql");
    let host_form = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
    assert_eq!(query_form, host_form);
    assert_eq!(query_form.hosts, vec![tcp("/var/run/postgresql", None)]);
    assert!(query_form.hosts[0].is_socket());
    assert_eq!(
        host_form.to_url(Reveal::Secret),
        "postgresql:///db?host=/var/run/postgresql"
    );
    let with_port = parse("postgresql://app@%2Ftmp:5433/db");
    assert_eq!(
        with_port.to_url(Reveal::Secret),
        "postgresql://app@%2Ftmp:5433/db"
    );
    assert_eq!(parse(&with_port.to_url(Reveal::Secret)), with_port);
    let kv = parse("host=/var/run/postgresql dbname=db");
    assert_eq!(kv.hosts, query_form.hosts);
}

#[test]
fn query_host_overrides_authority() {
    let conn = parse("postgresql://h1:5433/db?host=other");
    assert_eq!(conn.hosts, vec![tcp("other", Some(5433))]);
}

#[test]
fn port_without_host() {
    let conn = parse("postgresql://:5433/db");
    assert_eq!(
        conn.hosts,
        vec![HostSpec {
            host: None,
            port: Some(5433)
        }]
    );
    assert_eq!(conn.to_url(Reveal::Secret), "postgresql:///db?port=5433");
    assert_eq!(parse(&conn.to_url(Reveal::Secret)), conn);
}

#[test]
fn ipv6_hosts() {
    let conn = parse("postgresql://u@[2001:db8::1]:5433,[::1]/db");
    assert_eq!(
        conn.hosts,
        vec![tcp("2001:db8::1", Some(5433)), tcp("::1", None)]
    );
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://u@[2001:db8::1]:5433,[::1]/db"
    );
    assert_eq!(parse("postgresql://[::1]").hosts, vec![tcp("::1", None)]);
    assert_eq!(
        parse_err("postgresql://[::1/db"),
        DsnError::UnterminatedIpv6
    );
    assert_eq!(parse_err("postgresql://[]/db"), DsnError::EmptyIpv6);
    assert_eq!(
        parse_err("postgresql://[::1]x/db"),
        DsnError::UnexpectedAfterIpv6 { found: 'x' }
    );
}

// --- parameters ---------------------------------------------------------------------------

#[test]
fn unknown_parameters_are_kept_in_order() {
    let url = "postgresql://h/d?schema=public&target_session_attrs=read-write&sslmode=require";
    let conn = parse(url);
    assert_eq!(
        conn.unknown,
        vec![
            ("schema".to_owned(), "public".to_owned()),
            ("target_session_attrs".to_owned(), "read-write".to_owned()),
        ]
    );
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://h/d?sslmode=require&schema=public&target_session_attrs=read-write"
    );
    assert_eq!(
        conn.to_keyword_value(Reveal::Secret),
        "host=h dbname=d sslmode=require schema=public target_session_attrs=read-write"
    );
}

#[test]
fn secret_unknown_parameters_are_redacted() {
    let conn = parse(&format!("postgresql://h/d?sslpassword={CANARY}"));
    assert!(!conn.to_string().contains(CANARY));
    assert!(!conn.to_keyword_value(Reveal::Redacted).contains(CANARY));
    assert!(conn.to_url(Reveal::Secret).contains(CANARY));
}

#[test]
fn plus_is_literal_and_rendered_encoded() {
    let conn = parse("postgresql://h/d?application_name=a+b%20c&options=-c%20geqo%3Doff");
    assert_eq!(conn.application_name.as_deref(), Some("a+b c"));
    assert_eq!(conn.options.as_deref(), Some("-c geqo=off"));
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://h/d?application_name=a%2Bb%20c&options=-c%20geqo%3Doff"
    );
}

#[test]
fn special_characters_in_password() {
    let conn = parse("postgresql://u:p%40ss%3Aw%2Frd%23%25%2B%20x@h/d");
    assert_eq!(
        conn.password.as_ref().map(Password::expose),
        Some("p@ss:w/rd#%+ x")
    );
    assert_eq!(
        conn.to_url(Reveal::Secret),
        "postgresql://u:p%40ss%3Aw%2Frd%23%25%2B%20x@h/d"
    );
    // libpq reads up to the first '@', so raw '?', '#' and ':' in a password work.
    let conn = parse("postgresql://u:a?b#c:d@h/d");
    assert_eq!(
        conn.password.as_ref().map(Password::expose),
        Some("a?b#c:d")
    );
    assert_eq!(conn.hosts, vec![tcp("h", None)]);
}

#[test]
fn query_user_and_password_jdbc_style() {
    let conn = parse("postgresql://h/d?user=app&password=pw");
    assert_eq!(conn.user.as_deref(), Some("app"));
    assert_eq!(conn.password.as_ref().map(Password::expose), Some("pw"));
    assert_eq!(conn.to_url(Reveal::Secret), "postgresql://app:pw@h/d");
}

// --- URI errors ---------------------------------------------------------------------------

#[test]
fn uri_errors_have_pointed_messages() {
    assert_eq!(
        parse_err("mysql://u:p@h/d").to_string(),
        "unsupported scheme \"mysql\"; expected postgresql:// or postgres://"
    );
    assert!(
        parse_err("jdbc:postgresql://h/d")
            .hint()
            .unwrap()
            .contains("jdbc:")
    );
    assert!(
        parse_err("POSTGRESQL://h/d")
            .hint()
            .unwrap()
            .contains("case-sensitive")
    );
    assert_eq!(
        parse_err("postgresql://localhost:notaport/db").to_string(),
        "port \"notaport\" is not a number"
    );
    assert_eq!(
        parse_err("postgresql://u@h:99999/db").to_string(),
        "port \"99999\" is out of range (1-65535)"
    );
    assert_eq!(
        parse_err("postgresql://h/d?sslmode=requir").to_string(),
        "unknown sslmode \"requir\"; did you mean \"require\"?"
    );
    assert_eq!(
        parse_err("postgresql://h/d?connect_timeout=abc").to_string(),
        "connect_timeout \"abc\" is not an integer"
    );
    assert_eq!(
        parse_err("postgresql://h/d?sslmode").to_string(),
        "missing \"=\" in URI query parameter \"sslmode\""
    );
    let extra = parse_err("postgresql://h/d?options=-c%20a=b");
    assert_eq!(
        extra.to_string(),
        "extra \"=\" in the value of URI query parameter \"options\""
    );
    assert!(extra.hint().unwrap().contains("%3D"));
    assert_eq!(
        parse_err("postgresql://h%zz/d").to_string(),
        "invalid percent-encoding \"%zz\" in the host"
    );
    assert_eq!(
        parse_err("postgresql://u:%zz@h/d").to_string(),
        "invalid percent-encoding in the password"
    );
    assert_eq!(
        parse_err("postgresql://h/a%00b"),
        DsnError::NulByte {
            part: Some(UriPart::DatabaseName)
        }
    );
    assert_eq!(
        parse_err("postgresql://h/%ff"),
        DsnError::InvalidUtf8 {
            part: UriPart::DatabaseName
        }
    );
}

#[test]
fn trailing_ampersand_is_allowed_but_empty_parameter_is_not() {
    assert_eq!(
        parse("postgresql://h/d?sslmode=require&").sslmode,
        Some(SslMode::Require)
    );
    assert!(matches!(
        parse_err("postgresql://h/d?sslmode=require&&a=b"),
        DsnError::QueryParamMissingEquals { .. }
    ));
}

#[test]
fn unencoded_slash_in_password_is_explained_without_quoting_it() {
    let error = parse_err(&format!("postgresql://app:{CANARY}/x@db.example.com/app"));
    assert_eq!(
        error,
        DsnError::PortHidden {
            host: Some("app".to_owned()),
            at_sign_follows: true
        }
    );
    assert!(!error.to_string().contains(CANARY));
    assert!(error.hint().unwrap().contains("/ is %2F"));
    // Numeric password fragments are hidden too.
    let error = parse_err("postgresql://app:123456/x@db.example.com/app");
    assert!(!error.to_string().contains("123456"));
    // A forgotten "@host" leaves "user:password": not shown either.
    let error = parse_err(&format!("postgresql://app:{CANARY}/db"));
    assert!(!error.to_string().contains(CANARY));
}

#[test]
fn unencoded_at_in_password_is_explained_without_quoting_it() {
    let error = parse_err(&format!("postgresql://app:{CANARY}@{CANARY}@h/db"));
    assert_eq!(
        error,
        DsnError::UnencodedAt {
            part: UriPart::Host
        }
    );
    assert!(!error.to_string().contains(CANARY));
    assert!(error.hint().unwrap().contains("@ is %40"));
    let error = parse_err("postgresql://app:12/3@h/db");
    assert_eq!(
        error,
        DsnError::UnencodedAt {
            part: UriPart::DatabaseName
        }
    );
}

#[test]
fn unencoded_ampersand_in_query_password_is_not_quoted() {
    let error = parse_err(&format!("postgresql://h/d?password=a&{CANARY}"));
    assert!(matches!(
        error,
        DsnError::Obscured {
            format: Format::Uri,
            ..
        }
    ));
    assert!(!error.to_string().contains(CANARY));
    let error = parse_err(&format!("postgresql://h/d?password={CANARY}=x"));
    assert!(!error.to_string().contains(CANARY));
    let error = parse_err(&format!("postgresql://h/d?password={CANARY}%zz"));
    assert!(!error.to_string().contains(CANARY));
}

#[test]
fn every_error_hides_a_canary_password() {
    let inputs = [
        format!("postgresql://app:{CANARY}%@h/db"),
        format!("postgresql://app:{CANARY}%4@h/db"),
        format!("postgresql://app:{CANARY}%00@h/db"),
        format!("postgresql://app:{CANARY}%ff@h/db"),
        format!("postgresql://app:{CANARY}/@h/db"),
        format!("postgresql://app:{CANARY}@@h/db"),
        format!("postgresql://app:{CANARY}@h:x/db"),
        format!("postgresql://app:{CANARY}@h/db?sslmode=x"),
        format!("postgresql://app:{CANARY}@h,h2:1,/db?port=1,2,3"),
        format!("postgresql://{CANARY}"),
        format!("password={CANARY} {CANARY}"),
        format!("password='{CANARY}"),
        format!("password={CANARY} port=x"),
        format!("app:{CANARY}@h/db"),
        format!("mysql://app:{CANARY}@h/db"),
    ];
    for input in &inputs {
        if let Err(error) = ConnString::parse(input) {
            let shown = format!("{error} {:?} {}", error.hint(), error);
            assert!(!shown.contains(CANARY), "{input:?} gave {shown}");
        }
    }
}

#[test]
fn debug_and_display_never_show_the_password() {
    let conn = parse(&format!("postgresql://app:{CANARY}@h/db"));
    assert!(!format!("{conn}").contains(CANARY));
    assert!(!format!("{conn:?}").contains(CANARY));
    assert!(!format!("{conn:#?}").contains(CANARY));
    let password = Password::new(CANARY.to_owned());
    assert_eq!(format!("{password}"), "****");
    assert_eq!(format!("{password:?}"), "****");
    let config = conn.resolve(&TestEnv::default()).unwrap();
    assert!(!format!("{config:?}").contains(CANARY));
    assert!(!config.redacted().contains(CANARY));
    assert!(
        config
            .to_conn_string()
            .to_url(Reveal::Secret)
            .contains(CANARY)
    );
}

// --- resolve ------------------------------------------------------------------------------

/// (host, port, dbname, user)
type PgPassKey = (&'static str, u16, &'static str, &'static str);

#[derive(Default)]
struct TestEnv {
    vars: HashMap<&'static str, &'static str>,
    os_user: Option<&'static str>,
    /// (host, port, dbname, user) -> password
    pgpass: Vec<(PgPassKey, &'static str)>,
}

impl TestEnv {
    fn with(vars: &[(&'static str, &'static str)]) -> TestEnv {
        TestEnv {
            vars: vars.iter().copied().collect(),
            os_user: Some("osuser"),
            ..TestEnv::default()
        }
    }
}

impl Environment for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| v.to_string())
    }
    fn os_user(&self) -> Option<String> {
        self.os_user.map(str::to_owned)
    }
    fn default_host(&self, _port: u16) -> Host {
        Host::Socket(PathBuf::from("/var/run/postgresql"))
    }
    fn pgpass_password(&self, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
        self.pgpass
            .iter()
            .find(|(key, _)| *key == (host, port, dbname, user))
            .map(|(_, pw)| pw.to_string())
    }
}

fn resolve(s: &str, env: &TestEnv) -> ConnConfig {
    parse(s).resolve(env).unwrap()
}

#[test]
fn defaults_follow_libpq() {
    let config = resolve("", &TestEnv::with(&[]));
    assert_eq!(
        config.endpoints,
        vec![Endpoint {
            host: Host::Socket(PathBuf::from("/var/run/postgresql")),
            port: 5432
        }]
    );
    assert_eq!(config.user, "osuser");
    assert_eq!(config.dbname, "osuser");
    assert_eq!(config.password, None);
    assert_eq!(config.password_source, PasswordSource::None);
    assert_eq!(config.sslmode, SslMode::Prefer);
    assert_eq!(config.connect_timeout, None);
    assert_eq!(
        config.redacted(),
        "postgresql://osuser@%2Fvar%2Frun%2Fpostgresql:5432/osuser?sslmode=prefer"
    );
}

#[test]
fn string_beats_environment_beats_defaults() {
    let env = TestEnv::with(&[
        ("PGHOST", "envhost"),
        ("PGPORT", "6000"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "envdb"),
        ("PGSSLMODE", "verify-full"),
        ("PGCONNECT_TIMEOUT", "7"),
        ("PGAPPNAME", "envapp"),
        ("PGSSLROOTCERT", "/env/root.crt"),
        ("PGOPTIONS", "-c geqo=off"),
    ]);
    let from_env = resolve("", &env);
    assert_eq!(
        from_env.endpoints,
        vec![Endpoint {
            host: Host::Tcp("envhost".into()),
            port: 6000
        }]
    );
    assert_eq!(from_env.user, "envuser");
    assert_eq!(
        from_env.password.as_ref().map(Password::expose),
        Some("envpw")
    );
    assert_eq!(from_env.password_source, PasswordSource::EnvPgPassword);
    assert_eq!(from_env.dbname, "envdb");
    assert_eq!(from_env.sslmode, SslMode::VerifyFull);
    assert_eq!(from_env.connect_timeout, Some(Duration::from_secs(7)));
    assert_eq!(from_env.application_name.as_deref(), Some("envapp"));
    assert_eq!(from_env.sslrootcert.as_deref(), Some("/env/root.crt"));
    assert_eq!(from_env.options.as_deref(), Some("-c geqo=off"));

    let from_string = resolve(
        "postgresql://u:pw@h:1/db?sslmode=disable&connect_timeout=0&application_name=a&sslrootcert=/r&options=-c%20x%3Dy",
        &env,
    );
    assert_eq!(
        from_string.endpoints,
        vec![Endpoint {
            host: Host::Tcp("h".into()),
            port: 1
        }]
    );
    assert_eq!(from_string.user, "u");
    assert_eq!(from_string.password_source, PasswordSource::ConnString);
    assert_eq!(from_string.dbname, "db");
    assert_eq!(from_string.sslmode, SslMode::Disable);
    assert_eq!(from_string.connect_timeout, None);
    assert_eq!(from_string.application_name.as_deref(), Some("a"));
    assert_eq!(from_string.sslrootcert.as_deref(), Some("/r"));
    assert_eq!(from_string.options.as_deref(), Some("-c x=y"));
}

#[test]
fn host_and_port_lists_come_separately() {
    let env = TestEnv::with(&[("PGHOST", "e1,e2"), ("PGPORT", "6000")]);
    let config = resolve("port=5433", &env);
    assert_eq!(
        config.endpoints,
        vec![
            Endpoint {
                host: Host::Tcp("e1".into()),
                port: 5433
            },
            Endpoint {
                host: Host::Tcp("e2".into()),
                port: 5433
            },
        ]
    );
    let config = resolve("port=1,2", &env);
    assert_eq!(config.endpoints[1].port, 2);
    let config = resolve("host=a", &env);
    assert_eq!(
        config.endpoints,
        vec![Endpoint {
            host: Host::Tcp("a".into()),
            port: 6000
        }]
    );
    let error = parse("host=a,b,c").resolve(&TestEnv::with(&[("PGPORT", "1,2")]));
    assert_eq!(
        error,
        Err(DsnError::PortCountMismatch { hosts: 3, ports: 2 })
    );
    let config = resolve("host=a,,/tmp", &TestEnv::with(&[]));
    assert_eq!(
        config
            .endpoints
            .iter()
            .map(|e| e.host.clone())
            .collect::<Vec<_>>(),
        vec![
            Host::Tcp("a".into()),
            Host::Socket("/var/run/postgresql".into()),
            Host::Socket("/tmp".into())
        ]
    );
}

#[test]
fn malformed_environment_variables_are_errors_naming_the_variable() {
    let error = parse("")
        .resolve(&TestEnv::with(&[("PGSSLMODE", "requir")]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable PGSSLMODE: unknown sslmode \"requir\"; did you mean \"require\"?"
    );
    assert!(error.hint().unwrap().contains("unset PGSSLMODE"));
    assert!(std::error::Error::source(&error).is_some());
    let error = parse("")
        .resolve(&TestEnv::with(&[("PGPORT", "abc")]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable PGPORT: port \"abc\" is not a number"
    );
    let error = parse("")
        .resolve(&TestEnv::with(&[("PGCONNECT_TIMEOUT", "soon")]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable PGCONNECT_TIMEOUT: connect_timeout \"soon\" is not an integer"
    );
    // The string wins, so a bad variable it overrides does not matter.
    assert!(
        parse("sslmode=disable")
            .resolve(&TestEnv::with(&[("PGSSLMODE", "x")]))
            .is_ok()
    );
    // Empty variables count as unset.
    let config = resolve("", &TestEnv::with(&[("PGSSLMODE", ""), ("PGPORT", "")]));
    assert_eq!(config.sslmode, SslMode::Prefer);
    assert_eq!(config.endpoints[0].port, 5432);
}

#[test]
fn connect_timeout_follows_libpq() {
    let timeout = |s: &str| resolve(s, &TestEnv::with(&[])).connect_timeout;
    assert_eq!(timeout("connect_timeout=1"), Some(Duration::from_secs(2)));
    assert_eq!(timeout("connect_timeout=2"), Some(Duration::from_secs(2)));
    assert_eq!(timeout("connect_timeout=10"), Some(Duration::from_secs(10)));
    assert_eq!(timeout("connect_timeout=0"), None);
    assert_eq!(timeout("connect_timeout=-5"), None);
    assert_eq!(timeout(""), None);
}

#[test]
fn no_user_anywhere_is_an_error() {
    let env = TestEnv::default();
    assert_eq!(parse("").resolve(&env), Err(DsnError::NoUser));
    assert_eq!(resolve("user=u", &env).dbname, "u");
}

#[test]
fn pgpass_is_used_only_when_no_password_elsewhere() {
    let mut env = TestEnv::with(&[]);
    env.pgpass = vec![
        (("db.example.com", 5432, "app", "app"), "from-pgpass"),
        (("localhost", 5432, "app", "app"), "local-pgpass"),
        (("/custom", 5432, "app", "app"), "custom-socket"),
    ];
    let config = resolve("postgresql://app@db.example.com/app", &env);
    assert_eq!(
        config.password.as_ref().map(Password::expose),
        Some("from-pgpass")
    );
    assert_eq!(config.password_source, PasswordSource::PgPass);

    let config = resolve("postgresql://app:inline@db.example.com/app", &env);
    assert_eq!(
        config.password.as_ref().map(Password::expose),
        Some("inline")
    );
    assert_eq!(config.password_source, PasswordSource::ConnString);

    env.vars.insert("PGPASSWORD", "env");
    let config = resolve("postgresql://app@db.example.com/app", &env);
    assert_eq!(config.password_source, PasswordSource::EnvPgPassword);
    env.vars.clear();

    // A defaulted host, and a socket in a default directory, match "localhost".
    let config = resolve("user=app dbname=app", &env);
    assert_eq!(
        config.password.as_ref().map(Password::expose),
        Some("local-pgpass")
    );
    let config = resolve("host=/var/run/postgresql user=app dbname=app", &env);
    assert_eq!(
        config.password.as_ref().map(Password::expose),
        Some("local-pgpass")
    );
    // Another socket directory matches by its path.
    let config = resolve("host=/custom user=app dbname=app", &env);
    assert_eq!(
        config.password.as_ref().map(Password::expose),
        Some("custom-socket")
    );
    // Nothing matches: no password.
    let config = resolve("host=other user=app dbname=app", &env);
    assert_eq!(config.password_source, PasswordSource::None);
}

#[test]
fn endpoints() {
    let socket = Endpoint {
        host: Host::Socket("/tmp".into()),
        port: 5433,
    };
    assert_eq!(
        socket.socket_path(),
        Some(PathBuf::from("/tmp/.s.PGSQL.5433"))
    );
    assert_eq!(socket.to_string(), "/tmp/.s.PGSQL.5433");
    assert!(socket.is_local());
    let v6 = Endpoint {
        host: Host::Tcp("::1".into()),
        port: 5432,
    };
    assert_eq!(v6.to_string(), "[::1]:5432");
    assert!(v6.is_local());
    assert_eq!(v6.socket_path(), None);
    for local in [
        "localhost",
        "LOCALHOST",
        "127.0.0.1",
        "127.1.2.3",
        "::ffff:127.0.0.1",
    ] {
        assert!(
            Endpoint {
                host: Host::Tcp(local.into()),
                port: 1
            }
            .is_local(),
            "{local}"
        );
    }
    for remote in [
        "db.example.com",
        "10.0.0.1",
        "2001:db8::1",
        "localhost.example.com",
    ] {
        assert!(
            !Endpoint {
                host: Host::Tcp(remote.into()),
                port: 1
            }
            .is_local(),
            "{remote}"
        );
    }
    assert_eq!(
        Endpoint {
            host: Host::Tcp("db".into()),
            port: 5432
        }
        .to_string(),
        "db:5432"
    );
}

#[test]
fn config_round_trips_through_an_explicit_string() {
    let env = TestEnv::with(&[]);
    let config = resolve(
        "postgresql://app:pw@/db?host=::1,/tmp&port=5433&connect_timeout=1&target_session_attrs=any",
        &env,
    );
    let explicit = config.to_conn_string();
    assert_eq!(explicit.connect_timeout, Some(2));
    let again = explicit.resolve(&TestEnv::default()).unwrap();
    assert_eq!(again, config);
    assert_eq!(
        config.redacted(),
        "postgresql://app:****@[::1]:5433,%2Ftmp:5433/db?sslmode=prefer&connect_timeout=2&target_session_attrs=any"
    );
}

// --- sqlx ---------------------------------------------------------------------------------

#[test]
fn sqlx_options_take_everything_from_the_config() {
    use sqlx::postgres::PgSslMode;
    let config = resolve(
        "postgresql://app:pw@db.example.com:6543/appdb?application_name=aksara&sslrootcert=/ca.pem&options=-c%20search_path%3Dapp%5C%20x",
        &TestEnv::with(&[]),
    );
    let options = config.sqlx_options(&config.endpoints[0], PgSslMode::VerifyFull);
    assert_eq!(options.get_host(), "db.example.com");
    assert_eq!(options.get_port(), 6543);
    assert_eq!(options.get_socket(), None);
    assert_eq!(options.get_username(), "app");
    assert_eq!(options.get_database(), Some("appdb"));
    assert_eq!(format!("{:?}", options.get_ssl_mode()), "VerifyFull");
    assert_eq!(options.get_application_name(), Some("aksara"));
    assert!(
        options
            .get_options()
            .unwrap()
            .ends_with(r"-c search_path=app\ x")
    );

    let socket = Endpoint {
        host: Host::Socket("/var/run/postgresql".into()),
        port: 5433,
    };
    let options = config.sqlx_options(&socket, PgSslMode::Disable);
    assert_eq!(
        options.get_socket(),
        Some(&PathBuf::from("/var/run/postgresql"))
    );
    assert_eq!(options.get_port(), 5433);
    assert_eq!(format!("{:?}", options.get_ssl_mode()), "Disable");
}

#[test]
fn sqlx_reads_rendered_urls_like_libpq() {
    use sqlx::postgres::PgConnectOptions;
    let conn = ConnString {
        user: Some("a+b c@d".into()),
        password: Some(Password::new("p@ss:w/rd#%+ x".into())),
        dbname: Some("my db+1".into()),
        hosts: vec![tcp("/var/run/postgresql", Some(5433))],
        application_name: Some("a+b c".into()),
        ..ConnString::default()
    };
    let url = conn.to_url(Reveal::Secret);
    let options: PgConnectOptions = url.parse().unwrap();
    assert_eq!(options.get_username(), "a+b c@d");
    assert_eq!(options.get_database(), Some("my db+1"));
    assert_eq!(
        options.get_socket(),
        Some(&PathBuf::from("/var/run/postgresql"))
    );
    assert_eq!(options.get_port(), 5433);
    assert_eq!(options.get_application_name(), Some("a+b c"));
    assert_eq!(parse(&url), conn);
}

// --- properties ---------------------------------------------------------------------------

/// Any text PostgreSQL can store (no NUL), not empty (libpq treats empty as unset).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[@:/?#%+'\"\\\\ =&,\\[\\]]{1,12}",
        "[a-z@:/?#%+'\" \\\\]{1,20}",
    ]
    .prop_filter("non-empty, no NUL", |s| !s.is_empty() && !s.contains('\0'))
}

#[test]
fn regression_a_query_parameter_name_a_keyword_cannot_hold_is_refused() {
    // Found by the fuzz smoke test: the name was kept as an unknown parameter, and its
    // keyword/value rendering did not parse.
    for uri in [
        "postgresql://h/db?a%0Ab=1",
        "postgresql://h/db?a%20b=1",
        "postgresql://h/db?a%3Db=1",
        "postgresql://h/db?a\nb=1",
    ] {
        assert!(
            matches!(
                ConnString::parse(uri),
                Err(DsnError::QueryParamInvalidKey { .. })
            ),
            "{uri}"
        );
    }
    // Found by the proptest below: empty host lists lost their length (`,` is the
    // default host twice) or came back empty (`:` is no host at all).
    for (uri, hosts) in [("postgresql://,", 2), ("postgresql://:", 0), ("host=,,", 3)] {
        let conn = ConnString::parse(uri).unwrap();
        assert_eq!(conn.hosts.len(), hosts, "{uri}");
        for format in [Format::Uri, Format::KeyValue] {
            let conn = ConnString {
                format,
                ..conn.clone()
            };
            assert_eq!(
                ConnString::parse(&conn.render(Reveal::Secret)),
                Ok(conn),
                "{uri}"
            );
        }
    }
    // Found by the fuzz smoke test: a comma inside IPv6 brackets was one host here and
    // two in the keyword/value rendering (and for libpq).
    for uri in [
        "postgresql://[::1,h2:1]:5432/db",
        "postgresql://[,h2/db?x::1]/db",
    ] {
        assert!(
            matches!(ConnString::parse(uri), Err(DsnError::InvalidIpv6 { .. })),
            "{uri}"
        );
    }
    assert!(ConnString::parse("postgresql://[fe80::1%25eth0]:5432/db").is_ok());
    // Found by cargo fuzz: `%2C` in a host was one host here, two for libpq and in the
    // keyword/value rendering.
    assert_eq!(
        ConnString::parse("postgresql://25%2C%20word/db"),
        Err(DsnError::CommaInHost)
    );
    assert_eq!(
        ConnString::parse("postgresql:///db?host=a%2Cb")
            .unwrap()
            .hosts
            .len(),
        2
    );
    // sqlx's own spellings still pass through.
    let conn =
        ConnString::parse("postgresql://h/db?options[search_path]=app&ssl-mode=require").unwrap();
    let kv = ConnString {
        format: Format::KeyValue,
        ..conn.clone()
    };
    assert_eq!(ConnString::parse(&kv.render(Reveal::Secret)), Ok(kv));
}

proptest! {
    // Failures are reported with their minimal input; no regression file is written.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn credentials_round_trip_through_both_formats(
        user in name(),
        password in name(),
        dbname in name(),
        port in 1u16..,
    ) {
        let mut conn = ConnString {
            hosts: vec![tcp("db.example.com", Some(port))],
            user: Some(user),
            password: Some(Password::new(password)),
            dbname: Some(dbname),
            ..ConnString::default()
        };
        let url = conn.to_url(Reveal::Secret);
        prop_assert_eq!(ConnString::parse(&url), Ok(conn.clone()), "{}", url);
        conn.format = Format::KeyValue;
        let kv = conn.to_keyword_value(Reveal::Secret);
        prop_assert_eq!(ConnString::parse(&kv), Ok(conn), "{}", kv);
    }

    #[test]
    fn parameter_values_round_trip(
        application_name in name(),
        options in name(),
        unknown_value in any::<String>().prop_filter("no NUL", |s| !s.contains('\0')),
        socket in "/[a-z@:?#%+ ]{0,10}",
    ) {
        let conn = ConnString {
            hosts: vec![tcp(&socket, None)],
            application_name: Some(application_name),
            options: Some(options),
            unknown: vec![("target_session_attrs".into(), unknown_value)],
            ..ConnString::default()
        };
        let url = conn.to_url(Reveal::Secret);
        prop_assert_eq!(ConnString::parse(&url), Ok(conn.clone()), "{}", url);
        let kv = ConnString { format: Format::KeyValue, ..conn };
        let text = kv.to_keyword_value(Reveal::Secret);
        prop_assert_eq!(ConnString::parse(&text), Ok(kv), "{}", text);
    }

    /// Whatever parses renders back, in either format, to a string that parses to the
    /// same thing (the fuzz target `dsn_parse` checks this on mutated input too).
    #[test]
    fn whatever_parses_renders_back_to_itself(
        scheme in prop_oneof![Just("postgresql://"), Just("postgres://"), Just("")],
        rest in "[a-z0-9@:/?#%=&,\\[\\]' \\\\.\n_]{0,40}",
    ) {
        if let Ok(conn) = ConnString::parse(&format!("{scheme}{rest}")) {
            for format in [Format::Uri, Format::KeyValue] {
                let conn = ConnString { format, ..conn.clone() };
                let text = conn.render(Reveal::Secret);
                prop_assert_eq!(ConnString::parse(&text), Ok(conn), "{}", text);
            }
        }
    }

    #[test]
    fn parse_never_panics(input in any::<String>()) {
        let _ = ConnString::parse(&input);
    }

    #[test]
    fn parse_never_panics_on_uri_like_input(
        scheme in prop_oneof![Just("postgresql://"), Just("postgres://"), Just("")],
        rest in "[a-z0-9@:/?#%=&,\\[\\]' \\\\.]{0,40}",
    ) {
        if let Ok(conn) = ConnString::parse(&format!("{scheme}{rest}")) {
            let _ = conn.to_url(Reveal::Secret);
            let _ = conn.to_keyword_value(Reveal::Secret);
        }
    }

    /// A canary password with raw special characters around it is either parsed as that
    /// password (and then redacted) or rejected with an error that does not show it. The
    /// third outcome, a valid string that means something else (libpq reads it the same
    /// way: "app:@x" has an empty password and host "x"), may show text: it is then not
    /// the password as far as any parser can tell.
    #[test]
    fn raw_passwords_never_leak(
        before in "[@:/?#%+&= ]{0,3}",
        middle in "[@:/?#%+&= 0-9a-f]{0,4}",
        after in "[@:/?#%+&= ]{0,3}",
    ) {
        let password = format!("{before}canary{middle}secret{after}");
        for input in [
            format!("postgresql://app:{password}@db.example.com:5432/app"),
            format!("postgresql://db.example.com/app?user=app&password={password}"),
        ] {
            match ConnString::parse(&input) {
                Err(error) => {
                    let shown = format!("{error} {:?} {error:?}", error.hint());
                    prop_assert!(!shown.contains("canary"), "{} -> {}", input, shown);
                    prop_assert!(!shown.contains("secret"), "{} -> {}", input, shown);
                }
                Ok(conn) if conn.password == Some(Password::new(password.clone())) => {
                    let shown = format!("{conn} {conn:?} {}", conn.to_keyword_value(Reveal::Redacted));
                    prop_assert!(!shown.contains("canary"), "{} -> {}", input, shown);
                }
                Ok(_) => {}
            }
        }
    }
}

// --- the application's URL (to_app_url) ---------------------------------------------------

fn app(host: &str, port: u16, user: &str, password: &str, dbname: &str) -> ConnString {
    ConnString {
        hosts: vec![HostSpec {
            host: Some(host.to_owned()),
            port: Some(port),
        }],
        user: Some(user.to_owned()),
        password: Some(Password::new(password.to_owned())),
        dbname: Some(dbname.to_owned()),
        ..ConnString::default()
    }
}

fn app_url(conn: &ConnString) -> String {
    conn.to_app_url(Reveal::Secret)
        .unwrap_or_else(|e| panic!("{conn} should render: {e}"))
}

#[test]
fn app_url_uses_the_socket_form_with_an_empty_authority() {
    let conn = app("/var/run/postgresql", 5433, "app", "pw", "app");
    assert_eq!(
        app_url(&conn),
        "postgresql://app:pw@/app?host=/var/run/postgresql&port=5433"
    );
    // A socket folder with characters to encode: decoded alike in every driver's query parser.
    let conn = app("/tmp/my sock+#&", 5432, "app", "pw", "app");
    assert_eq!(
        app_url(&conn),
        "postgresql://app:pw@/app?host=/tmp/my%20sock%2B%23%26&port=5432"
    );
    assert_eq!(
        conn.to_app_url(Reveal::Redacted).unwrap(),
        "postgresql://app:****@/app?host=/tmp/my%20sock%2B%23%26&port=5432"
    );
}

#[test]
fn app_url_tcp_hosts_are_written_as_is() {
    assert_eq!(
        app_url(&app("db.example.com", 5432, "app", "pw", "app")),
        "postgresql://app:pw@db.example.com:5432/app"
    );
    assert_eq!(
        app_url(&app("::1", 5432, "app", "pw", "app")),
        "postgresql://app:pw@[::1]:5432/app"
    );
    let err = app("fe80::1%eth0", 5432, "a", "p", "d")
        .to_app_url(Reveal::Secret)
        .unwrap_err();
    assert_eq!(
        err,
        AppUrlError::HostName {
            host: "fe80::1%eth0".into(),
            character: '%'
        }
    );
    assert!(
        err.to_string()
            .contains("SQLAlchemy does not decode the host")
    );
}

#[test]
fn app_url_database_names_keep_what_node_postgres_would_not_decode() {
    for (dbname, path) in [
        ("c++app", "c++app"),
        ("a;b:c&e=f$g,h", "a;b:c&e=f$g,h"),
        ("my db", "my%20db"),
        ("100%", "100%25"),
        ("café", "caf%C3%A9"),
        ("quote\"d", "quote%22d"),
        ("a/b", "a/b"),
        ("%2e", "%252e"),
    ] {
        let url = app_url(&app("localhost", 5432, "app", "pw", dbname));
        assert_eq!(
            url,
            format!("postgresql://app:pw@localhost:5432/{path}"),
            "{dbname}"
        );
        // libpq (our parser follows it) reads the same name back.
        assert_eq!(
            ConnString::parse(&url).unwrap().dbname.as_deref(),
            Some(dbname)
        );
    }
}

#[test]
fn app_url_refuses_names_some_driver_misreads_in_every_spelling() {
    let err = app("localhost", 5432, "app", "pw", "a#b")
        .to_app_url(Reveal::Secret)
        .unwrap_err();
    let AppUrlError::Unportable {
        part,
        character,
        literal,
        encoded,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (part, *character, literal.reader, encoded.reader),
        (
            &UriPart::DatabaseName,
            '#',
            UrlReader::Asyncpg,
            UrlReader::NodePostgres
        )
    );
    assert_eq!(
        err.to_string(),
        "the database name `a#b` cannot be written in a URL every driver reads alike: written as \
         `#`, asyncpg cuts the URL there (Python's `urlparse` starts a fragment at `#`); \
         percent-encoded as `%23`, node-postgres leaves that escape undecoded in the database \
         path (`decodeURI`)"
    );
    assert_eq!(
        err.hint(),
        "choose a database name without `#` (pass --db-name)"
    );

    let err = app("localhost", 5432, "app", "pw", "what?")
        .to_app_url(Reveal::Secret)
        .unwrap_err();
    assert!(
        matches!(err, AppUrlError::Unportable { character: '?', .. }),
        "{err:?}"
    );

    for dbname in [".", "..", "a/../b", "./x"] {
        let err = app("localhost", 5432, "app", "pw", dbname)
            .to_app_url(Reveal::Secret)
            .unwrap_err();
        assert!(
            matches!(err, AppUrlError::DotSegment { .. }),
            "{dbname}: {err:?}"
        );
    }

    let err = app("/tmp/a,b", 5432, "app", "pw", "db")
        .to_app_url(Reveal::Secret)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppUrlError::Unportable {
                part: UriPart::Host,
                character: ',',
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn app_url_carries_sslmode_and_refuses_parameters_a_driver_rejects() {
    let admin =
        ConnString::parse("postgresql://admin@db.example.com/postgres?sslmode=require").unwrap();
    let mut conn = app("db.example.com", 5432, "app", "pw", "app");
    conn.carry_sslmode_from(&admin);
    assert_eq!(
        app_url(&conn),
        "postgresql://app:pw@db.example.com:5432/app?sslmode=require"
    );
    // The app's own sslmode is kept.
    conn.sslmode = Some(SslMode::VerifyFull);
    conn.carry_sslmode_from(&admin);
    assert_eq!(conn.sslmode, Some(SslMode::VerifyFull));
    // With a socket the sslmode follows host and port.
    let mut conn = app("/tmp", 5432, "app", "pw", "app");
    conn.carry_sslmode_from(&admin);
    assert_eq!(
        app_url(&conn),
        "postgresql://app:pw@/app?host=/tmp&port=5432&sslmode=require"
    );

    for (extra, key, reader) in [
        ("connect_timeout=10", "connect_timeout", UrlReader::Asyncpg),
        ("schema=public", "schema", UrlReader::Asyncpg),
        (
            "application_name=x",
            "application_name",
            UrlReader::SqlAlchemy,
        ),
    ] {
        let mut conn = ConnString::parse(&format!("postgresql://app:pw@h/app?{extra}")).unwrap();
        conn.hosts[0].port = Some(5432);
        let err = conn.to_app_url(Reveal::Secret).unwrap_err();
        let AppUrlError::Parameter { key: k, misread } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((k.as_str(), misread.reader), (key, reader));
    }

    let none = ConnString::parse("postgresql://app:pw@/app").unwrap();
    assert_eq!(
        none.to_app_url(Reveal::Secret),
        Err(AppUrlError::HostCount { count: 0 })
    );
    let two = ConnString::parse("postgresql://app:pw@a:1,b:2/app").unwrap();
    assert_eq!(
        two.to_app_url(Reveal::Secret),
        Err(AppUrlError::HostCount { count: 2 })
    );
}

proptest! {
    /// Whatever user, password and database name: the app URL either reads back through the
    /// libpq parser as exactly what was put in, or is refused with a typed error; the password
    /// never appears in an error.
    #[test]
    fn app_url_round_trips_through_libpq(
        user in "[a-z@:/?#%+&= é.;$,-]{1,8}",
        password in "[a-zA-Z0-9@:/?#%+&= é.;$,\\\\\"'-]{1,12}",
        dbname in "[a-z@:/?#%+&= é.;$,-]{1,8}",
        socket in proptest::bool::ANY,
    ) {
        let host = if socket { "/run/pg sock" } else { "db.example.com" };
        let password = format!("{CANARY}{password}");
        let conn = app(host, 6543, &user, &password, &dbname);
        match conn.to_app_url(Reveal::Secret) {
            Ok(url) => {
                let back = ConnString::parse(&url).unwrap();
                prop_assert_eq!(back.user.as_deref(), Some(user.as_str()));
                prop_assert_eq!(back.password, Some(Password::new(password.clone())));
                prop_assert_eq!(back.dbname.as_deref(), Some(dbname.as_str()));
                prop_assert_eq!(back.hosts, conn.hosts.clone());
                // The only `#` and `?` are the ones the drivers read as syntax.
                prop_assert!(!url.contains('#'));
                prop_assert_eq!(url.matches('?').count(), usize::from(socket));
            }
            Err(error) => {
                prop_assert!(matches!(
                    error,
                    AppUrlError::Unportable { part: UriPart::DatabaseName, .. }
                        | AppUrlError::DotSegment { .. }
                ), "{:?}", error);
                let shown = format!("{error} {error:?} {}", error.hint());
                prop_assert!(!shown.contains(CANARY), "{}", shown);
            }
        }
    }
}
