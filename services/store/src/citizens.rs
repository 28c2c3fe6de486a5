//! The citizen aggregate: the events that keep the Fascicolo del Cittadino current. Every
//! change a citizen is told about (see the domain's `citizen` module) is queued in the
//! outbox in the transaction of the change, under topic `fascicolo.citizen`, with the
//! citizen's next sequence number taken from a per-citizen counter in that same transaction,
//! so a rollback never leaves a gap and two replicas never hand out one number twice (the
//! counter row is locked until commit). The counter and the outbox row name the citizen by
//! the keyed hash of the fiscal code, never the code; the relay decrypts the debtor when it
//! delivers. Nothing is queued unless a Fascicolo URL is configured
//! ([`Store::with_citizen_events`](crate::Store::with_citizen_events)).
//!
//! The read side serves the relay (positions and receipts of a batch of events, in a few
//! queries) and `incasso fascicolo resync`, which queues a citizen's whole current picture.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::citizen::{self, CitizenChange};
use incasso_domain::debt_position::{DebtPosition, PositionState};
use incasso_domain::fiscal_code::FiscalCode;
use incasso_domain::receipt::Classification;

use crate::Store;
use crate::batch::insert_chunked;
use crate::entity::{debt_position, receipt};
use crate::error::AppError;
use crate::outbox::{self, FASCICOLO_CITIZEN, TopicEvent};

/// The payload of a `fascicolo.citizen` event: the citizen's sequence number and what
/// changed. The citizen is the event's aggregate (the keyed hash of the fiscal code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenEvent {
    /// 1, 2, 3, ... per citizen.
    pub citizen_sequence: u64,
    /// What changed.
    #[serde(flatten)]
    pub change: CitizenChange,
}

impl TopicEvent for CitizenEvent {
    const TOPIC: &'static str = FASCICOLO_CITIZEN;
}

/// A change for a citizen, named by the keyed hash of their fiscal code.
pub(crate) type Pending = (Vec<u8>, CitizenChange);

/// A stored receipt as the citizen is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenReceipt {
    /// Its row id.
    pub id: Uuid,
    /// The notice's creditor.
    pub creditor_fiscal_code: String,
    /// The position paid.
    pub debt_position_id: Option<Uuid>,
    /// The notice paid, as sent.
    pub notice_number: String,
    /// The IUV.
    pub iuv: String,
    /// receiptId.
    pub receipt_id: String,
    /// Paid, euro cents.
    pub amount_cents: i64,
    /// The PSP's fee, euro cents.
    pub fee_cents: Option<i64>,
    /// idPSP.
    pub psp_id: String,
    /// When it was paid (when it was received, if the receipt had no time).
    pub paid_at: OffsetDateTime,
    /// Collected by Stand-In.
    pub stand_in: bool,
    /// How it was booked.
    pub classification: Classification,
}

/// What one page of `incasso fascicolo resync --all` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncPage {
    /// Citizens whose picture was queued.
    pub citizens: u64,
    /// Events queued.
    pub events: u64,
    /// Resume after this citizen (hex of the keyed hash); `None` when there were none left.
    pub last: Option<String>,
}

impl Store {
    /// The same store queuing Fascicolo events (`on`) or not. Set it before
    /// [`Store::with_receipt_writer`](crate::Store::with_receipt_writer): the writer books
    /// receipts with the copy of the store it was started with.
    pub fn with_citizen_events(mut self, on: bool) -> Self {
        self.citizen_events = on;
        self
    }

    /// Whether changes queue Fascicolo events.
    pub fn citizen_events(&self) -> bool {
        self.citizen_events
    }

    /// The pending changes of `position`'s citizen, none when it has no citizen (a legal
    /// entity, no debtor) or the push is off.
    pub(crate) fn citizen_changes(
        &self,
        position: &DebtPosition,
        changes: Vec<CitizenChange>,
    ) -> Vec<Pending> {
        if !self.citizen_events || changes.is_empty() {
            return Vec::new();
        }
        match citizen::citizen_of(position) {
            Some(code) => {
                let hash = self.keys().fiscal_code_hash(code);
                changes.into_iter().map(|c| (hash.clone(), c)).collect()
            }
            None => Vec::new(),
        }
    }

    /// Positions by id with their debtors (missing ones are left out), for the relay.
    pub async fn positions_by_id(&self, ids: &[Uuid]) -> Result<Vec<DebtPosition>, AppError> {
        self.load_many(self.db(), ids).await
    }

    /// Receipts by row id (missing ones are left out), for the relay.
    pub async fn citizen_receipts(&self, ids: &[Uuid]) -> Result<Vec<CitizenReceipt>, AppError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            for row in receipt::Entity::find()
                .filter(receipt::Column::Id.is_in(chunk.iter().copied()))
                .all(self.db())
                .await?
            {
                found.push(citizen_receipt(row)?);
            }
        }
        Ok(found)
    }

    /// Queues the whole current picture of the citizen `fiscal_code` (every notice of every
    /// position they are the debtor of, each position's cancellation, each payment and
    /// refund); returns how many events. Invalid codes are refused naming the field, without
    /// echoing the code.
    pub async fn resync_citizen(&self, fiscal_code: &str) -> Result<u64, AppError> {
        self.require_citizen_events()?;
        let code = FiscalCode::parse(fiscal_code.trim())
            .map_err(|e| AppError::invalid("citizen", e.to_string()))?;
        let hash = self.keys().fiscal_code_hash(&code);
        self.resync_hashes(vec![hash]).await
    }

    /// Queues the current picture of up to `limit` citizens after `after` (hex of the keyed
    /// hash; from the first when `None`), in hash order, in one transaction: a run stopped
    /// between pages resumes after the last page's `last`.
    pub async fn resync_citizens_page(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<ResyncPage, AppError> {
        self.require_citizen_events()?;
        let mut query = debt_position::Entity::find()
            .select_only()
            .column(debt_position::Column::DebtorFiscalCodeHash)
            .distinct()
            .filter(debt_position::Column::DebtorEntityType.eq("F"));
        if let Some(after) = after {
            let after = hex::decode(after.trim())
                .map_err(|_| AppError::invalid("after", "not a resume token (hex)"))?;
            query = query.filter(debt_position::Column::DebtorFiscalCodeHash.gt(after));
        }
        let hashes: Vec<Vec<u8>> = query
            .order_by_asc(debt_position::Column::DebtorFiscalCodeHash)
            .limit(limit)
            .into_tuple()
            .all(self.db())
            .await?;
        let last = hashes.last().map(hex::encode);
        let citizens = u64::try_from(hashes.len()).unwrap_or(u64::MAX);
        let events = self.resync_hashes(hashes).await?;
        Ok(ResyncPage {
            citizens,
            events,
            last,
        })
    }

    fn require_citizen_events(&self) -> Result<(), AppError> {
        if self.citizen_events {
            Ok(())
        } else {
            Err(AppError::invalid(
                "fascicolo.url",
                "no Fascicolo URL is configured (INCASSO_FASCICOLO_URL or [fascicolo] url): \
                 nothing would deliver the events",
            ))
        }
    }

    /// Queues the pictures of the citizens `hashes` in one transaction.
    async fn resync_hashes(&self, hashes: Vec<Vec<u8>>) -> Result<u64, AppError> {
        if hashes.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let txn = self.db().begin().await?;
        let ids: Vec<Uuid> = debt_position::Entity::find()
            .select_only()
            .column(debt_position::Column::Id)
            .filter(debt_position::Column::DebtorFiscalCodeHash.is_in(hashes))
            .filter(debt_position::Column::DebtorEntityType.eq("F"))
            .order_by_asc(debt_position::Column::CreatedAt)
            .order_by_asc(debt_position::Column::Id)
            .into_tuple()
            .all(&txn)
            .await?;
        let positions = self.load_many(&txn, &ids).await?;
        let mut receipts: HashMap<Uuid, Vec<(Uuid, Classification)>> = HashMap::new();
        for chunk in ids.chunks(1000) {
            let rows: Vec<(Uuid, Option<Uuid>, String)> = receipt::Entity::find()
                .select_only()
                .column(receipt::Column::Id)
                .column(receipt::Column::DebtPositionId)
                .column(receipt::Column::Classification)
                .filter(receipt::Column::DebtPositionId.is_in(chunk.iter().copied()))
                .order_by_asc(receipt::Column::Id)
                .into_tuple()
                .all(&txn)
                .await?;
            for (id, position, classification) in rows {
                if let (Some(position), Some(classification)) =
                    (position, Classification::parse(&classification))
                {
                    receipts
                        .entry(position)
                        .or_default()
                        .push((id, classification));
                }
            }
        }
        let mut pending = Vec::new();
        for position in &positions {
            let mut changes = citizen::on_issue(position);
            if position.state == PositionState::Cancelled {
                changes.push(citizen::on_cancel(position));
            }
            for (id, classification) in receipts.remove(&position.id).unwrap_or_default() {
                changes.extend(citizen::on_receipt(classification, id));
            }
            pending.extend(self.citizen_changes(position, changes));
        }
        let events = u64::try_from(pending.len()).unwrap_or(u64::MAX);
        queue(&txn, pending, now).await?;
        txn.commit().await?;
        Ok(events)
    }
}

fn citizen_receipt(row: receipt::Model) -> Result<CitizenReceipt, AppError> {
    let classification = Classification::parse(&row.classification).ok_or_else(|| {
        AppError::corrupt(format!(
            "receipt {} has an unknown classification {:?}",
            row.id, row.classification
        ))
    })?;
    Ok(CitizenReceipt {
        id: row.id,
        creditor_fiscal_code: row.creditor_fiscal_code,
        debt_position_id: row.debt_position_id,
        notice_number: row.notice_number,
        iuv: row.iuv,
        receipt_id: row.receipt_id,
        amount_cents: row.payment_amount_cents,
        fee_cents: row.fee_cents,
        psp_id: row.psp_id,
        paid_at: row.paid_at.unwrap_or(row.received_at),
        stand_in: row.stand_in,
        classification,
    })
}

/// Queues `pending` (in commit order) in `txn`: advances each citizen's counter once by its
/// count, in one statement (rows locked in hash order, so two transactions never wait for
/// each other in a cycle), numbers the changes and inserts the events. Call it before the
/// ledger append, which takes the chain head last.
pub(crate) async fn queue(
    txn: &DatabaseTransaction,
    pending: Vec<Pending>,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    if pending.is_empty() {
        return Ok(());
    }
    let citizens: Vec<Vec<u8>> = pending.iter().map(|(hash, _)| hash.clone()).collect();
    let counts = citizen::counts(&citizens);
    let last_after = advance(txn, &counts).await?;
    let numbers = citizen::number(&citizens, &last_after).ok_or_else(|| {
        AppError::Internal("a citizen's sequence counter was not advanced".into())
    })?;
    let rows = pending
        .into_iter()
        .zip(numbers)
        .map(|((hash, change), citizen_sequence)| {
            let event = CitizenEvent {
                citizen_sequence,
                change,
            };
            let mut row = outbox::typed(&event, &hex::encode(&hash), now);
            // The citizen's queue is ordered by the sequence the Fascicolo checks.
            row.order_micros = Set(i64::try_from(citizen_sequence).unwrap_or(i64::MAX));
            row
        })
        .collect();
    insert_chunked(txn, rows, 12).await
}

/// Adds `counts` to the citizens' counters (creating them at 0) and returns their new values.
async fn advance(
    txn: &DatabaseTransaction,
    counts: &BTreeMap<Vec<u8>, u64>,
) -> Result<BTreeMap<Vec<u8>, u64>, AppError> {
    let backend = txn.get_database_backend();
    let mut last_after = BTreeMap::new();
    let entries: Vec<(&Vec<u8>, &u64)> = counts.iter().collect();
    for chunk in entries.chunks(5000) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 2);
        let mut tuples = Vec::with_capacity(chunk.len());
        for (n, (hash, count)) in chunk.iter().enumerate() {
            tuples.push(match backend {
                DbBackend::Postgres => format!("(${}, ${})", 2 * n + 1, 2 * n + 2),
                _ => "(?, ?)".to_owned(),
            });
            values.push((*hash).clone().into());
            values.push(i64::try_from(**count).unwrap_or(i64::MAX).into());
        }
        let sql = format!(
            "INSERT INTO citizen_sequence (citizen_hash, last_sequence) VALUES {} \
             ON CONFLICT (citizen_hash) DO UPDATE \
             SET last_sequence = citizen_sequence.last_sequence + excluded.last_sequence \
             RETURNING citizen_hash, last_sequence",
            tuples.join(", ")
        );
        for row in txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            let hash: Vec<u8> = row.try_get("", "citizen_hash")?;
            let last: i64 = row.try_get("", "last_sequence")?;
            last_after.insert(hash, u64::try_from(last).unwrap_or(0));
        }
    }
    Ok(last_after)
}
