//! aksara patch (see vendor/README.md): statements sent through the extended protocol in one
//! write, each as Parse/Bind/Execute on the unnamed statement and portal, ended by a Flush
//! instead of a Sync when the caller wants the answers before the exchange ends. The server
//! runs them in order and sends what it has at the Flush; with no Sync there is no
//! ReadyForQuery yet, so an explicit transaction the statements opened stays open without any
//! message boundary inside it (a pooler in statement mode refuses a ReadyForQuery inside a
//! transaction), and the caller can end it with [`PgConnection::aksara_sync`] or leave it to
//! the end of the session. sqlx has no API for either.

use crate::error::Error;
use crate::io::{PortalId, StatementId};
use crate::message::{BackendMessageFormat, Bind, DataRow, Execute, Flush, Parse};
use crate::PgConnection;

/// How [`PgConnection::aksara_pipeline`] ends what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineEnd {
    /// A Flush: the answers come, the exchange stays open (no ReadyForQuery) until
    /// [`PgConnection::aksara_sync`] or the end of the session.
    Flush,
    /// A Sync: the exchange ends with the server's ReadyForQuery, read before returning.
    Sync,
}

/// One statement's rows, each value as the server sent it in text format (`None` is NULL).
pub type PipelineRows = Vec<Vec<Option<String>>>;

/// The statement that failed (its index), the failure, and the answers of the statements
/// before it; the server skipped the rest, and the exchange has been ended with a Sync (when
/// the connection still works).
#[derive(Debug)]
pub struct PipelineError {
    pub statement: usize,
    pub error: Error,
    pub answered: Vec<PipelineRows>,
}

impl PgConnection {
    /// Runs `statements` in one write (see the module comment) and returns each one's rows.
    pub async fn aksara_pipeline(
        &mut self,
        statements: &[&str],
        end: PipelineEnd,
    ) -> Result<Vec<PipelineRows>, PipelineError> {
        let at = |statement: usize| {
            move |error: Error| PipelineError {
                statement,
                error,
                answered: Vec::new(),
            }
        };
        self.wait_until_ready().await.map_err(at(0))?;
        for sql in statements {
            let stream = &mut self.inner.stream;
            stream
                .write_msg(Parse {
                    statement: StatementId::UNNAMED,
                    query: sql,
                    param_types: &[],
                })
                .map_err(at(0))?;
            stream
                .write_msg(Bind {
                    portal: PortalId::UNNAMED,
                    statement: StatementId::UNNAMED,
                    formats: &[],
                    num_params: 0,
                    params: &[],
                    result_formats: &[],
                })
                .map_err(at(0))?;
            stream
                .write_msg(Execute {
                    portal: PortalId::UNNAMED,
                    limit: 0,
                })
                .map_err(at(0))?;
        }
        match end {
            PipelineEnd::Flush => self.inner.stream.write_msg(Flush).map_err(at(0))?,
            PipelineEnd::Sync => self.write_sync(),
        }
        self.inner
            .stream
            .flush()
            .await
            .map_err(|e| at(0)(e.into()))?;

        let mut results = Vec::with_capacity(statements.len());
        let mut rows = PipelineRows::new();
        while results.len() < statements.len() {
            let failed = at(results.len());
            let message = match self.inner.stream.recv().await {
                Ok(message) => message,
                Err(error) => {
                    // The server skips to the Sync: send it if the caller did not, and read
                    // up to its ReadyForQuery so the connection can be used (or closed) again.
                    if end == PipelineEnd::Flush && matches!(error, Error::Database(_)) {
                        self.write_sync();
                    }
                    if matches!(error, Error::Database(_)) {
                        let _ = self.wait_until_ready().await;
                    }
                    return Err(PipelineError {
                        statement: results.len(),
                        error,
                        answered: results,
                    });
                }
            };
            match message.format {
                BackendMessageFormat::ParseComplete | BackendMessageFormat::BindComplete => {}
                BackendMessageFormat::DataRow => {
                    let row: DataRow = message.decode().map_err(&failed)?;
                    let mut values = Vec::with_capacity(row.values.len());
                    for i in 0..row.values.len() {
                        values.push(match row.get(i) {
                            None => None,
                            Some(bytes) => Some(
                                String::from_utf8(bytes.to_vec())
                                    .map_err(|e| failed(Error::Decode(e.into())))?,
                            ),
                        });
                    }
                    rows.push(values);
                }
                BackendMessageFormat::CommandComplete
                | BackendMessageFormat::EmptyQueryResponse => {
                    results.push(std::mem::take(&mut rows));
                }
                other => {
                    return Err(failed(err_protocol!(
                        "aksara_pipeline: unexpected message: {other:?}"
                    )))
                }
            }
        }
        if end == PipelineEnd::Sync {
            self.wait_until_ready()
                .await
                .map_err(at(statements.len().saturating_sub(1)))?;
        }
        Ok(results)
    }

    /// Ends an exchange [`PgConnection::aksara_pipeline`] left open: `statements` (each
    /// Parse/Bind/Execute, e.g. `ROLLBACK`), then a Sync, read through the ReadyForQuery.
    pub async fn aksara_sync(&mut self, statements: &[&str]) -> Result<(), Error> {
        self.aksara_pipeline(statements, PipelineEnd::Sync)
            .await
            .map(drop)
            .map_err(|e| e.error)
    }
}
