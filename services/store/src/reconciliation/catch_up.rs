//! Keeping labels current between imports. The receipt path does not relabel: it queues the
//! IUVs it booked (`recon_pending_iuv`) and the next import of the creditor labels them. A
//! receipt that arrives after the day's last document would otherwise wait for the next
//! day's flows, and the finance office would read a key unlabelled, or still `IUV_NO_RT`
//! although its receipt came. So the queue is also worked off here: by the server's
//! catch-up task, every interval, and by every reconciliation read before it answers
//! ([`Store::catch_up_reconciliation`]), so what a read shows includes every receipt
//! committed before it (unless an import of the creditor is running, which labels them
//! itself and which a read does not wait for). An empty queue costs one indexed lookup.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use crate::{AppError, Store};

impl Store {
    /// The creditors whose reconciliation has begun (set up in the configuration with a
    /// treasury account or an OPI entity code, or an import or a refresh labelled something of
    /// theirs) with booked receipts not labelled yet; of `creditor` only, when given. A
    /// creditor never reconciled is left alone: the Città Metropolitana, paid its TEFA inside
    /// Milan's TARI receipts, stays another beneficiary of Milan's receipts unless its own
    /// reconciliation is started.
    pub async fn reconciliation_queued_creditors(
        &self,
        creditor: Option<&str>,
    ) -> Result<Vec<String>, AppError> {
        // Creditor by creditor, two index probes each: the queue of a creditor never
        // reconciled grows for ever, and a DISTINCT over it would slow every read down.
        let candidates: Vec<String> = match creditor {
            Some(creditor) => vec![creditor.to_owned()],
            None => self
                .registry()
                .iter()
                .map(|c| c.fiscal_code().as_str().to_owned())
                .collect(),
        };
        let backend = self.db().get_database_backend();
        let queued = "EXISTS (SELECT 1 FROM recon_pending_iuv WHERE creditor_fiscal_code = $1)";
        let labelled = "EXISTS (SELECT 1 FROM recon_label WHERE creditor_fiscal_code = $1)";
        let mut due = Vec::new();
        for candidate in candidates {
            let sql = if self.recon_configured(&candidate) {
                format!("SELECT {queued} AS due")
            } else {
                format!("SELECT {queued} AND {labelled} AS due")
            };
            let sql = super::restated::numbered(backend, sql);
            let row = self
                .db()
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [candidate.as_str().into()],
                ))
                .await?;
            if let Some(row) = row
                && row.try_get::<bool>("", "due")?
            {
                due.push(candidate);
            }
        }
        Ok(due)
    }

    /// Labels the keys of the receipts booked since the creditor's last import or catch-up,
    /// for `creditor` or, with `None`, every creditor that has some (of those whose
    /// reconciliation has begun: [`Store::reconciliation_queued_creditors`]): what `incasso
    /// recon refresh` does, only where receipts wait. Returns the label changes written.
    ///
    /// With `wait`, a creditor whose import (or catch-up) is running is waited for that long
    /// at most, then left to it: an import labels the queued receipts itself, and a read
    /// must not hang for the minutes a day's statement takes.
    pub async fn catch_up_reconciliation(
        &self,
        creditor: Option<&str>,
        wait: Option<Duration>,
    ) -> Result<usize, AppError> {
        let mut changes = 0;
        for creditor in self.reconciliation_queued_creditors(creditor).await? {
            match self.refresh_reconciliation_waiting(&creditor, wait).await? {
                Some(0) => {}
                Some(written) => {
                    tracing::info!(
                        %creditor,
                        label_changes = written,
                        "reconciliation caught up with the receipts booked since the last import"
                    );
                    changes += written;
                }
                None => tracing::info!(
                    %creditor,
                    "an import of the creditor is running and labels the receipts queued: \
                     not waited for"
                ),
            }
        }
        Ok(changes)
    }

    /// Runs [`Store::catch_up_reconciliation`] for every creditor every `interval` until
    /// `shutdown` resolves. A failure is logged and tried again at the next tick: the queue
    /// keeps what was not labelled.
    pub async fn run_reconciliation_catch_up(
        &self,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the first catch-up waits a whole interval.
        ticker.tick().await;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.catch_up_reconciliation(None, None).await {
                tracing::warn!(
                    %error,
                    "labelling the receipts booked since the last import failed; \
                     they stay queued for the next try"
                );
            }
        }
    }
}
