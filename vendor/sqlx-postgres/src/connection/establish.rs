use crate::HashMap;

use crate::common::StatementCache;
use crate::connection::{sasl, stream::PgStream};
use crate::error::Error;
use crate::io::StatementId;
use crate::message::{
    Authentication, BackendKeyData, BackendMessageFormat, Password, ReadyForQuery, Startup,
};
use crate::{PgConnectOptions, PgConnection};
// aksara patch
use crate::aksara::{AuthMethod, LoginRefusal};

use super::PgConnectionInner;

// https://www.postgresql.org/docs/current/protocol-flow.html#id-1.10.5.7.3
// https://www.postgresql.org/docs/current/protocol-flow.html#id-1.10.5.7.11

impl PgConnection {
    pub(crate) async fn establish(options: &PgConnectOptions) -> Result<Self, Error> {
        // Upgrade to TLS if we were asked to and the server supports it
        let mut stream = PgStream::connect(options).await?;

        // To begin a session, a frontend opens a connection to the server
        // and sends a startup message.

        let mut params = vec![
            // Sets the display format for date and time values,
            // as well as the rules for interpreting ambiguous date input values.
            ("DateStyle", "ISO, MDY"),
            // Sets the client-side encoding (character set).
            // <https://www.postgresql.org/docs/devel/multibyte.html#MULTIBYTE-CHARSET-SUPPORTED>
            ("client_encoding", "UTF8"),
            // aksara patch: no `TimeZone`. Upstream sends `UTC`, and every new backend then loads
            // that zone's file (~60-75 us of server CPU per connection, bench/NOTES.md section
            // 16) where the server's own zone is already loaded. aksara decodes no time stamp
            // (sqlx's chrono and time features are off), and libpq and asyncpg send none either.
        ];

        if let Some(ref extra_float_digits) = options.extra_float_digits {
            params.push(("extra_float_digits", extra_float_digits));
        }

        if let Some(ref application_name) = options.application_name {
            params.push(("application_name", application_name));
        }

        if let Some(ref options) = options.options {
            params.push(("options", options));
        }

        stream.write(Startup {
            username: Some(&options.username),
            database: options.database.as_deref(),
            params: &params,
        })?;

        stream.flush().await?;

        // The server then uses this information and the contents of
        // its configuration files (such as pg_hba.conf) to determine whether the connection is
        // provisionally acceptable, and what additional
        // authentication is required (if any).

        let mut process_id = 0;
        let mut secret_key = 0;
        let transaction_status;

        // aksara patch: the method the server asked for, and whether its exchange is still on
        // (a broken connection then is a failure of that exchange, typed as such).
        let mut auth_method: Option<AuthMethod> = None;
        let mut authenticated = false;
        let broken = |e: Error, method: &Option<AuthMethod>, authenticated: bool| match (e, method) {
            (Error::Io(io), Some(method))
                if !authenticated
                    && io.get_ref().is_none_or(|inner| !inner.is::<LoginRefusal>()) =>
            {
                LoginRefusal::BrokenDuringAuth {
                    method: method.clone(),
                    source: io,
                }
                .into_error()
            }
            (e, _) => e,
        };

        loop {
            let message = stream
                .recv()
                .await
                .map_err(|e| broken(e, &auth_method, authenticated))?;
            if message.format == BackendMessageFormat::Authentication {
                let code = message.contents.get(..4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                match code {
                    Some(0) => {
                        authenticated = true;
                        auth_method.get_or_insert(AuthMethod::None);
                    }
                    // SASL continuation and final messages belong to the request before them.
                    Some(11) | Some(12) => {}
                    Some(code) => {
                        let method = AuthMethod::from_request(code, &message.contents[4..]);
                        if !method.is_supported() {
                            return Err(LoginRefusal::Unsupported(method).into_error());
                        }
                        let local = options.fetch_socket().is_some();
                        if method == AuthMethod::Cleartext
                            && !stream.tls
                            && !local
                            && !options.aksara_allow_cleartext
                        {
                            return Err(LoginRefusal::CleartextWithoutTls.into_error());
                        }
                        auth_method = Some(method);
                    }
                    None => {}
                }
            }
            match message.format {
                BackendMessageFormat::Authentication => match message.decode()? {
                    Authentication::Ok => {
                        // the authentication exchange is successfully completed
                        // do nothing; no more information is required to continue
                    }

                    Authentication::CleartextPassword => {
                        // The frontend must now send a [PasswordMessage] containing the
                        // password in clear-text form.

                        stream
                            .send(Password::Cleartext(
                                options.password.as_deref().unwrap_or_default(),
                            ))
                            .await
                            .map_err(|e| broken(e, &auth_method, authenticated))?;
                    }

                    Authentication::Md5Password(body) => {
                        // The frontend must now send a [PasswordMessage] containing the
                        // password (with user name) encrypted via MD5, then encrypted again
                        // using the 4-byte random salt specified in the
                        // [AuthenticationMD5Password] message.

                        stream
                            .send(Password::Md5 {
                                username: &options.username,
                                password: options.password.as_deref().unwrap_or_default(),
                                salt: body.salt,
                            })
                            .await?;
                    }

                    Authentication::Sasl(body) => {
                        sasl::authenticate(&mut stream, options, body)
                            .await
                            .map_err(|e| broken(e, &auth_method, authenticated))?;
                    }

                    method => {
                        return Err(err_protocol!(
                            "unsupported authentication method: {:?}",
                            method
                        ));
                    }
                },

                BackendMessageFormat::BackendKeyData => {
                    // provides secret-key data that the frontend must save if it wants to be
                    // able to issue cancel requests later

                    let data: BackendKeyData = message.decode()?;

                    process_id = data.process_id;
                    secret_key = data.secret_key;
                }

                BackendMessageFormat::ReadyForQuery => {
                    // start-up is completed. The frontend can now issue commands
                    transaction_status = message.decode::<ReadyForQuery>()?.transaction_status;

                    break;
                }

                _ => {
                    return Err(err_protocol!(
                        "establish: unexpected message: {:?}",
                        message.format
                    ))
                }
            }
        }

        stream.in_startup = false;

        Ok(PgConnection {
            inner: Box::new(PgConnectionInner {
                auth_method: auth_method.unwrap_or(AuthMethod::None),
                stream,
                process_id,
                secret_key,
                transaction_status,
                transaction_depth: 0,
                pending_ready_for_query_count: 0,
                next_statement_id: StatementId::NAMED_START,
                cache_statement: StatementCache::new(options.statement_cache_capacity),
                cache_type_oid: HashMap::new(),
                cache_type_info: HashMap::new(),
                cache_elem_type_to_array: HashMap::new(),
                cache_table_data: HashMap::new(),
                log_settings: options.log_settings.clone(),
            }),
        })
    }
}
