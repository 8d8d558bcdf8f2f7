//! The application URL (`ConnString::to_app_url`) against a real server with the real libpq
//! (psql): hostile user, password and database names, over the socket form
//! `@/db?host=/dir&port=P` and over TCP. The other drivers (asyncpg, SQLAlchemy, psycopg,
//! node-postgres) are proven on the same URLs by the driver suite.

use aksara::dsn::{ConnString, HostSpec, Password, Reveal};

use crate::psql_url;
use crate::support::{self, Shared};

/// SQL string literal / identifier quoting for the setup statements.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[test]
fn hostile_names_reach_the_same_role_and_database_over_socket_and_tcp() {
    let cluster = support::shared(Shared::Scram);
    let suffix = support::unique_name("u");
    let user = format!("app user@:/+{suffix}");
    let dbname = format!("c++app;x=1&y,{suffix} é%");
    let password = "p@ss:/?#&=+ %word'\"\\";
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {} LOGIN PASSWORD {};\nCREATE DATABASE {} OWNER {};",
            ident(&user),
            literal(password),
            ident(&dbname),
            ident(&user)
        ),
    );
    for host in [
        cluster.socket_dir.to_string_lossy().into_owned(),
        "127.0.0.1".to_owned(),
    ] {
        let conn = ConnString {
            hosts: vec![HostSpec {
                host: Some(host.clone()),
                port: Some(cluster.port),
            }],
            user: Some(user.clone()),
            password: Some(Password::new(password.to_owned())),
            dbname: Some(dbname.clone()),
            ..ConnString::default()
        };
        let url = conn.to_app_url(Reveal::Secret).unwrap();
        // The whole URL, hostile names percent-encoded; the socket one in libpq's
        // `@/db?host=/dir` form.
        let name = if host.starts_with('/') {
            "app_url_over_the_socket"
        } else {
            "app_url_over_tcp"
        };
        let port = cluster.port.to_string();
        let socket = cluster.socket_dir.to_string_lossy().into_owned();
        let encoded_socket = support::encode(&socket);
        let encoded_password = support::encode(password);
        insta::assert_snapshot!(
            name,
            crate::normalize(
                &url,
                &[
                    (&port, "[PORT]"),
                    (&socket, "[SOCKET_DIR]"),
                    (&encoded_socket, "[SOCKET_DIR]"),
                    (&suffix, "[SUFFIX]"),
                    (&encoded_password, "[PASSWORD]"),
                ]
            )
        );
        let seen = psql_url(&url, "SELECT current_user || '|' || current_database()")
            .unwrap_or_else(|e| panic!("psql could not use {url}: {e}"));
        assert_eq!(seen, format!("{user}|{dbname}"), "{url}");
    }
    cluster.psql(
        "postgres",
        &format!(
            "DROP DATABASE {};\nDROP ROLE {};",
            ident(&dbname),
            ident(&user)
        ),
    );
}
