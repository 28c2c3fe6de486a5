//! Parked receipts: stored, acknowledged, not booked yet. A receipt whose booking failed for
//! a reason retrying at once cannot fix is stored in a transaction of its own with its raw
//! message, its facts and transfers, and classification `parked`; its facts are sealed beside
//! it with the reason. A background worker retries each with exponential backoff (5 s
//! doubling to an hour, never giving up: it is money), and operators list and retry them
//! (`incasso receipts parked`, `incasso receipts retry`, and the same over gRPC). A retry
//! locks the parked row, books the receipt as a delivery would (classification against the
//! position as it stands now, states, ledger entries, outbox events) and stamps the row
//! booked in the same transaction, so a receipt books exactly once whichever replica, worker
//! or operator tries it.

use std::collections::BTreeSet;
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, Statement, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::receipt::{Classification, ReceiptFlag};

use super::book::{self, Planned, receipt_row, transfer_rows};
use super::{ReceiptFacts, ReceiptInput, ReceiptOutcome};
use crate::Store;
use crate::batch::{OnConflict, Writes, insert_chunked, insert_rows};
use crate::entity::{parked_receipt, receipt, source_document};
use crate::error::AppError;
use crate::ledger::{self, SourceDocumentInput};
use crate::outbox::retry_delay_ms;
use crate::page_token;
use incasso_domain::validation::ValidationErrors;

/// The first retry of a parked receipt comes this long after it parked; each next one twice
/// as long after the last, up to [`RETRY_MAX_MS`].
pub const RETRY_BASE_MS: u64 = 5_000;
/// The longest wait between two retries of a parked receipt.
pub const RETRY_MAX_MS: u64 = 3_600_000;

/// The metric counting receipts parked since the process started.
pub const PARKED_METRIC: &str = "incasso_receipts_parked_total";
/// The metric counting parked receipts booked since the process started.
pub const UNPARKED_METRIC: &str = "incasso_receipts_unparked_total";

/// A parked receipt, as an operator sees it: no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedReceipt {
    /// The receipt's row id: what `retry` takes.
    pub id: Uuid,
    /// The notice's creditor.
    pub creditor_fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// receiptId.
    pub receipt_id: String,
    /// The notice number as sent.
    pub notice_number: String,
    /// What was paid, cents.
    pub payment_amount_cents: i64,
    /// Why its booking failed (the last attempt's reason).
    pub reason: String,
    /// Booking attempts after the first.
    pub attempts: i32,
    /// When it parked.
    pub parked_at: OffsetDateTime,
    /// When it was last tried.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the worker tries it next (`None` once booked).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was booked, if it was.
    pub booked_at: Option<OffsetDateTime>,
}

/// One page of [`Store::list_parked_receipts_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedReceiptPage {
    /// The parked receipts, in the order they arrived.
    pub parked_receipts: Vec<ParkedReceipt>,
    /// The token of the next page; empty on the last.
    pub next_page_token: String,
}

/// What a retry of one parked receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Booked now, with this classification.
    Booked(Classification),
    /// Still parked: the reason.
    StillParked(String),
    /// Booked already (by an earlier retry, another replica or the worker), or being booked
    /// by another right now: nothing done.
    NotParked,
}

/// Parks `input`, whose booking failed for `reason`, in a transaction of its own.
pub(crate) async fn park(
    store: &Store,
    input: ReceiptInput,
    content_hash: &str,
    reason: &str,
) -> Result<ReceiptOutcome, AppError> {
    let now = store.now();
    let facts = &input.facts;
    let txn = store.db().begin().await?;
    let documents = ledger::store_documents(
        &txn,
        store.keys(),
        vec![SourceDocumentInput {
            kind: facts.primitive.document_kind(),
            media_type: facts.primitive.media_type(),
            content: input.raw.clone(),
        }],
        now,
    )
    .await?;
    let row_id = Uuid::now_v7();
    let mut flags = Vec::new();
    if facts.stand_in {
        flags.push(ReceiptFlag::StandIn);
    }
    let inserted = insert_rows(
        &txn,
        vec![receipt_row(
            row_id,
            facts,
            content_hash,
            documents[0].0,
            Classification::Parked,
            &flags,
            None,
            None,
            now,
        )],
        22,
        OnConflict::Skip(book::RECEIPT_KEY),
    )
    .await?;
    if inserted != 1 {
        // Stored meanwhile (another replica booked or parked the same key): the batch path
        // tells a redelivery from a conflict.
        txn.rollback().await?;
        return Box::pin(book::book_batch(store, vec![input]))
            .await
            .pop()
            .unwrap_or_else(|| Err(AppError::Unavailable("no outcome".into())));
    }
    insert_chunked(&txn, transfer_rows(row_id, facts), 11).await?;
    // A parked receipt is evidence too: reconciliation labels its keys at the next import.
    let pairs: BTreeSet<_> = book::pending_iuvs(store, facts).collect();
    insert_rows(
        &txn,
        book::pending_rows(pairs),
        2,
        OnConflict::Skip(book::PENDING_KEY),
    )
    .await?;
    let sealed_facts = serde_json::to_vec(facts).map_err(|e| AppError::Internal(e.to_string()))?;
    let sealed = store.keys().seal_bytes(row_id, &sealed_facts);
    parked_receipt::Entity::insert(parked_receipt::ActiveModel {
        receipt_row_id: Set(row_id),
        reason: Set(reason.to_owned()),
        attempts: Set(0),
        next_attempt_micros: Set(next_attempt(now, 1)),
        parked_at: Set(now),
        last_attempt_at: Set(None),
        booked_at: Set(None),
        key_id: Set(sealed.key_id),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    metrics::counter!(PARKED_METRIC).increment(1);
    tracing::error!(
        receipt = %row_id,
        creditor = %facts.creditor_fiscal_code,
        iuv = %facts.iuv,
        notice_number = %facts.notice_number,
        %reason,
        "receipt parked: stored and acknowledged, its booking will be retried"
    );
    Ok(ReceiptOutcome::Parked)
}

/// When attempt `attempt` (1 for the first retry) is due, as microseconds.
fn next_attempt(now: OffsetDateTime, attempt: i32) -> i64 {
    let jitter = u64::from(rand::random::<u16>() % 1000) + 500;
    let delay_ms = retry_delay_ms(attempt, RETRY_BASE_MS, RETRY_MAX_MS, jitter);
    ledger::micros(now).saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX / 1000) * 1000)
}

fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()
}

impl Store {
    /// Every parked receipt, oldest first: those still waiting, and with `include_booked`
    /// those booked since. For the CLI and tests; a caller facing many reads pages with
    /// [`Store::list_parked_receipts_page`].
    pub async fn list_parked_receipts(
        &self,
        include_booked: bool,
    ) -> Result<Vec<ParkedReceipt>, AppError> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .list_parked_receipts_page(include_booked, 0, &token)
                .await?;
            all.extend(page.parked_receipts);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            token = page.next_page_token;
        }
    }

    /// One page of parked receipts in the order they arrived (row id), with the token of the
    /// next page (empty on the last). A page size of 0 means the default.
    pub async fn list_parked_receipts_page(
        &self,
        include_booked: bool,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<ParkedReceiptPage, AppError> {
        let mut errors = ValidationErrors::new();
        let size = super::query::page_size(&mut errors, page_size_requested);
        // The fingerprint binds a token to the one filter this list has.
        let fingerprint = if include_booked {
            "0000000000000001"
        } else {
            "0000000000000000"
        };
        let after = page_token::decode(&mut errors, page_token, fingerprint);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut query = parked_receipt::Entity::find();
        if !include_booked {
            query = query.filter(parked_receipt::Column::BookedAt.is_null());
        }
        if let Some(after) = after {
            query = query.filter(parked_receipt::Column::ReceiptRowId.gt(after));
        }
        let mut parked = query
            .order_by_asc(parked_receipt::Column::ReceiptRowId)
            .limit(size + 1)
            .all(self.db())
            .await?;
        let more = parked.len() as u64 > size;
        parked.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let ids: Vec<Uuid> = parked.iter().map(|p| p.receipt_row_id).collect();
        let mut receipts: std::collections::HashMap<Uuid, receipt::Model> = receipt::Entity::find()
            .filter(receipt::Column::Id.is_in(ids))
            .all(self.db())
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let next_page_token = match (more, parked.last()) {
            (true, Some(last)) => page_token::encode(last.receipt_row_id, fingerprint),
            _ => String::new(),
        };
        let parked_receipts = parked
            .into_iter()
            .map(|p| {
                let r = receipts.remove(&p.receipt_row_id).ok_or_else(|| {
                    AppError::corrupt(format!(
                        "parked receipt {} has no receipt row",
                        p.receipt_row_id
                    ))
                })?;
                Ok(ParkedReceipt {
                    id: p.receipt_row_id,
                    creditor_fiscal_code: r.creditor_fiscal_code,
                    iuv: r.iuv,
                    receipt_id: r.receipt_id,
                    notice_number: r.notice_number,
                    payment_amount_cents: r.payment_amount_cents,
                    reason: p.reason,
                    attempts: p.attempts,
                    parked_at: p.parked_at,
                    last_attempt_at: p.last_attempt_at,
                    next_attempt_at: if p.booked_at.is_none() {
                        from_micros(p.next_attempt_micros)
                    } else {
                        None
                    },
                    booked_at: p.booked_at,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(ParkedReceiptPage {
            parked_receipts,
            next_page_token,
        })
    }

    /// How many receipts are parked now.
    pub async fn count_parked_receipts(&self) -> Result<u64, AppError> {
        use sea_orm::PaginatorTrait;
        Ok(parked_receipt::Entity::find()
            .filter(parked_receipt::Column::BookedAt.is_null())
            .count(self.db())
            .await?)
    }

    /// Retries parked receipts now: those named by `ids`, or every one still parked when
    /// `ids` is `None`. One outcome per receipt tried, in order.
    pub async fn retry_parked_receipts(
        &self,
        ids: Option<&[Uuid]>,
    ) -> Result<Vec<(Uuid, RetryOutcome)>, AppError> {
        let ids: Vec<Uuid> = match ids {
            Some(ids) => ids.to_vec(),
            None => self
                .list_parked_receipts(false)
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect(),
        };
        // Every id is checked before any is tried, so that a typo never leaves the receipts
        // named before it booked without their outcomes reported.
        for id in &ids {
            if parked_receipt::Entity::find_by_id(*id)
                .select_only()
                .column(parked_receipt::Column::ReceiptRowId)
                .into_tuple::<Uuid>()
                .one(self.db())
                .await?
                .is_none()
            {
                return Err(AppError::NotFound {
                    what: format!("parked receipt {id}"),
                });
            }
        }
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            outcomes.push((id, self.rebook(id).await?));
        }
        Ok(outcomes)
    }

    /// Retries the parked receipts whose next attempt is due, up to `limit`; returns how many
    /// it booked.
    pub async fn retry_due_parked_receipts(&self, limit: u64) -> Result<usize, AppError> {
        let now_micros = ledger::micros(self.now());
        let due: Vec<Uuid> = parked_receipt::Entity::find()
            .select_only()
            .column(parked_receipt::Column::ReceiptRowId)
            .filter(parked_receipt::Column::BookedAt.is_null())
            .filter(parked_receipt::Column::NextAttemptMicros.lte(now_micros))
            .order_by_asc(parked_receipt::Column::NextAttemptMicros)
            .limit(limit)
            .into_tuple()
            .all(self.db())
            .await?;
        let mut booked = 0;
        for id in due {
            if matches!(self.rebook(id).await?, RetryOutcome::Booked(_)) {
                booked += 1;
            }
        }
        Ok(booked)
    }

    /// Retries parked receipts every `interval` until `shutdown` resolves. Failures of the
    /// database are logged and tried again at the next tick.
    pub async fn run_parked_receipt_retries(
        &self,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            match self.retry_due_parked_receipts(100).await {
                Ok(0) => {}
                Ok(booked) => tracing::info!(booked, "parked receipts booked"),
                Err(error) => tracing::warn!(%error, "retrying parked receipts failed"),
            }
        }
    }

    /// Books parked receipt `id`, if it is still parked and nobody else is booking it.
    async fn rebook(&self, id: Uuid) -> Result<RetryOutcome, AppError> {
        let now = self.now();
        let txn = self.db().begin().await?;
        let backend = self.db().get_database_backend();
        let lock = match backend {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "SELECT receipt_row_id FROM parked_receipt WHERE receipt_row_id = {} \
             AND booked_at IS NULL{lock}",
            if backend == DbBackend::Postgres {
                "$1"
            } else {
                "?"
            }
        );
        if txn
            .query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
            .await?
            .is_none()
        {
            return Ok(RetryOutcome::NotParked);
        }
        let parked = parked_receipt::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::corrupt(format!("parked receipt {id} vanished")))?;
        let attempts = parked.attempts.saturating_add(1);
        let attempt = async {
            let facts: ReceiptFacts = self
                .keys()
                .open_bytes(id, &parked.key_id, &parked.nonce, &parked.ciphertext)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| {
                    "its sealed facts cannot be opened (key rotated or data altered)".to_owned()
                })?;
            let row = receipt::Entity::find_by_id(id)
                .one(&txn)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "its receipt row is missing".to_owned())?;
            let sha256: Vec<u8> = source_document::Entity::find_by_id(row.source_document_id)
                .select_only()
                .column(source_document::Column::Sha256)
                .into_tuple()
                .one(&txn)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "its raw message is missing".to_owned())?;
            let sha256: [u8; 32] = sha256
                .try_into()
                .map_err(|_| "its raw message's hash is not 32 bytes".to_owned())?;
            let (plans, positions) = book::plan(self, &txn, &[&facts], now)
                .await
                .map_err(|e| e.to_string())?;
            let planned: Planned = plans
                .into_iter()
                .next()
                .ok_or_else(|| "nothing was planned".to_owned())??;
            let write = async {
                let updated = receipt::Entity::update_many()
                    .col_expr(
                        receipt::Column::Classification,
                        Expr::value(planned.classification.as_str()),
                    )
                    .col_expr(
                        receipt::Column::Flags,
                        Expr::value(ReceiptFlag::join(&planned.flags)),
                    )
                    .col_expr(
                        receipt::Column::DebtPositionId,
                        Expr::value(planned.position_id),
                    )
                    .col_expr(
                        receipt::Column::InstallmentId,
                        Expr::value(planned.installment_id),
                    )
                    .filter(receipt::Column::Id.eq(id))
                    .filter(receipt::Column::Classification.eq(Classification::Parked.as_str()))
                    .exec(&txn)
                    .await?;
                if updated.rows_affected != 1 {
                    return Err(AppError::corrupt(format!(
                        "parked receipt {id} is no longer parked"
                    )));
                }
                let mut writes = Writes::new(&txn);
                book::write_states(&mut writes, &positions, now).await?;
                writes
                    .insert(
                        book::outbox_events(&[(&facts, &planned)], now),
                        12,
                        OnConflict::Fail,
                    )
                    .await?;
                writes.send().await?;
                crate::citizens::queue(
                    &txn,
                    book::citizen_changes(self, &[(id, &planned)], &positions),
                    now,
                )
                .await?;
                let postings = planned
                    .drafts
                    .iter()
                    .cloned()
                    .map(|d| (d, Some(0)))
                    .collect();
                ledger::append_with_documents(
                    &txn,
                    &[(row.source_document_id, sha256)],
                    postings,
                    now,
                )
                .await?;
                parked_receipt::Entity::update_many()
                    .col_expr(parked_receipt::Column::BookedAt, Expr::value(Some(now)))
                    .col_expr(
                        parked_receipt::Column::LastAttemptAt,
                        Expr::value(Some(now)),
                    )
                    .col_expr(parked_receipt::Column::Attempts, Expr::value(attempts))
                    .filter(parked_receipt::Column::ReceiptRowId.eq(id))
                    .exec(&txn)
                    .await?;
                Ok::<_, AppError>(())
            };
            match write.await {
                Ok(()) => Ok((facts, planned)),
                Err(error @ AppError::Unavailable(_)) => Err(format!("transient: {error}")),
                Err(error) => Err(error.to_string()),
            }
        };
        match attempt.await {
            Ok((facts, planned)) => {
                txn.commit().await?;
                self.outbox_queued();
                metrics::counter!(UNPARKED_METRIC).increment(1);
                tracing::info!(
                    receipt = %id,
                    creditor = %facts.creditor_fiscal_code,
                    iuv = %facts.iuv,
                    classification = planned.classification.as_str(),
                    attempts,
                    "parked receipt booked"
                );
                Ok(RetryOutcome::Booked(planned.classification))
            }
            Err(reason) => {
                txn.rollback().await?;
                let next = next_attempt(now, attempts.saturating_add(1));
                parked_receipt::Entity::update_many()
                    .col_expr(parked_receipt::Column::Reason, Expr::value(reason.clone()))
                    .col_expr(parked_receipt::Column::Attempts, Expr::value(attempts))
                    .col_expr(
                        parked_receipt::Column::LastAttemptAt,
                        Expr::value(Some(now)),
                    )
                    .col_expr(parked_receipt::Column::NextAttemptMicros, Expr::value(next))
                    .filter(parked_receipt::Column::ReceiptRowId.eq(id))
                    .filter(parked_receipt::Column::BookedAt.is_null())
                    .exec(self.db())
                    .await?;
                tracing::warn!(receipt = %id, attempts, %reason, "parked receipt still cannot be booked");
                Ok(RetryOutcome::StillParked(reason))
            }
        }
    }
}
