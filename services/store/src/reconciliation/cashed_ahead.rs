//! Reading a treasury document's components ahead of their `cashed` entries: while the
//! import's transaction appends one component's entries, the next components' flow lines and
//! the notices their receipts paid are read on a pooled connection of their own.
//!
//! A statement cashing a day's flows names every notice of every cashed flow: at a million
//! receipts, reading those notices (an index probe per IUV) was nearly half of the statement,
//! and the transaction's connection alternated between those reads and the entries' writes
//! while the other core idled. What a component's entries read is committed before the import
//! (a document that brings no flow lines adds neither lines nor receipts; the creditor's lock
//! keeps other imports out), so any connection reads it as the transaction would. A document
//! that brings lines has its own uncommitted lines in its components, and reads in the
//! transaction, as SQLite always does. A reader that cannot start or fails leaves the
//! components it did not deliver to the transaction, with one warning.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::FlowLine;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use super::evidence::{self, ReceiptNotices};
use super::read_ahead::CONNECTION_WAIT;
use super::{books, plans};
use crate::AppError;

/// Components read ahead and waiting to be taken (one more may wait to join them): bounds
/// what is held in memory (a component's lines and notices, a few MB for a flow of tens of
/// thousands of lines).
const COMPONENTS_AHEAD: usize = 1;

/// What a component's `cashed` entries read: the lines of its flows' latest revisions (by
/// row) and the notice each receipt of their IUVs paid.
pub(crate) struct CashedReads {
    /// The lines of each flow revision read, by row.
    pub lines: BTreeMap<Uuid, Vec<FlowLine>>,
    /// The notices of the receipts of the lines' IUVs; `None` when they are left to the
    /// caller, who reads them for its whole evidence.
    pub notices: Option<ReceiptNotices>,
}

/// Reads the lines of the flow revisions `rows` and the notices of their IUVs' receipts.
async fn read(
    db: &impl ConnectionTrait,
    creditor: &str,
    rows: &[Uuid],
) -> Result<CashedReads, AppError> {
    let lines = evidence::lines_of_flows(db, rows).await?;
    let iuvs: BTreeSet<String> = lines
        .values()
        .flatten()
        .map(|l| l.key.iuv.as_str().to_owned())
        .collect();
    let notices = books::notices_of(db, creditor, &iuvs).await?;
    Ok(CashedReads {
        lines,
        notices: Some(notices),
    })
}

/// Reads the components of one import in the order they are taken: ahead on a pooled
/// connection when it was started with one, otherwise (or once that failed) in the
/// transaction.
pub(crate) struct ComponentReader {
    ahead: Option<Ahead>,
    creditor: String,
}

/// The reading task and what it has delivered.
struct Ahead {
    task: JoinHandle<()>,
    delivered: mpsc::Receiver<Result<CashedReads, AppError>>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ComponentReader {
    /// A reader of the components whose flow revisions are `components` (one list of rows
    /// each, in the order they will be taken), ahead on `pool` when given.
    pub(crate) fn start(
        pool: Option<DatabaseConnection>,
        creditor: &str,
        components: Vec<Vec<Uuid>>,
    ) -> Self {
        let ahead = pool.filter(|_| components.len() > 1).map(|pool| {
            let (deliver, delivered) = mpsc::channel(COMPONENTS_AHEAD);
            let owner = creditor.to_owned();
            let task = async move {
                let txn = match tokio::time::timeout(CONNECTION_WAIT, pool.begin()).await {
                    Ok(Ok(txn)) => txn,
                    Ok(Err(error)) => {
                        let _ = deliver.send(Err(error.into())).await;
                        return;
                    }
                    Err(_) => {
                        let _ = deliver
                            .send(Err(AppError::Unavailable(format!(
                                "no database connection free within {} ms to read the \
                                 cashed components ahead",
                                CONNECTION_WAIT.as_millis()
                            ))))
                            .await;
                        return;
                    }
                };
                if let Err(error) = plans::reads_planned_afresh(&txn).await {
                    let _ = deliver.send(Err(error)).await;
                    return;
                }
                for rows in components {
                    let reads = read(&txn, &owner, &rows).await;
                    let failed = reads.is_err();
                    if deliver.send(reads).await.is_err() || failed {
                        return;
                    }
                }
                // Read only: nothing to keep.
                let _ = txn.rollback().await;
            };
            Ahead {
                task: tokio::spawn(task.instrument(tracing::Span::current())),
                delivered,
            }
        });
        Self {
            ahead,
            creditor: creditor.to_owned(),
        }
    }

    /// The next component's reads, whose flow revisions are `rows`: as read ahead, or its
    /// lines read now in `txn` (its notices then left to the caller).
    pub(crate) async fn next(
        &mut self,
        txn: &impl ConnectionTrait,
        rows: &[Uuid],
    ) -> Result<CashedReads, AppError> {
        if let Some(ahead) = &mut self.ahead {
            let error = match ahead.delivered.recv().await {
                Some(Ok(reads)) => return Ok(reads),
                Some(Err(error)) => error.to_string(),
                None => "the reader stopped".to_owned(),
            };
            tracing::warn!(
                creditor = %self.creditor,
                %error,
                "reading the cashed components ahead failed; the rest are read in the \
                 import's transaction"
            );
            self.ahead = None;
        }
        Ok(CashedReads {
            lines: evidence::lines_of_flows(txn, rows).await?,
            notices: None,
        })
    }
}
