//! Booking a batch of receipts in one transaction. Each receipt of the batch is first told
//! apart: a redelivery or a conflict (its key is stored, or an earlier receipt of the batch
//! has it), or a new receipt. New receipts are classified one after the other against their
//! positions, locked together in id order (so two batches on other replicas never deadlock on
//! them) and held in memory, so a second payment in the same batch sees the first. A receipt
//! whose planning fails (its position cannot be read, a posting rule breaks an invariant) is
//! taken out of the batch and parked after the commit. Then every table is written with
//! multi-row statements and the ledger entries of the whole batch are chained under one lock
//! of the chain head.
//!
//! A statement that fails for a non-transient reason fails the whole batch: it is rolled back
//! and every receipt is booked again alone, so one bad receipt never fails the others, and a
//! receipt that fails alone is parked. A transient failure (the database unreachable, a lost
//! deadlock) fails the batch's receipts with [`AppError::Unavailable`]: nothing of them was
//! stored, and the Node delivers them again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Set, Statement, TransactionTrait,
};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::debt_position::payment::PaymentOutcome;
use incasso_domain::debt_position::{DebtPosition, InstallmentState};
use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::rules::{self, Receipt as LedgerReceipt};
use incasso_domain::ledger::{EntryDraft, is_psp_id};
use incasso_domain::notice_number::Iuv;
use incasso_domain::receipt::{Classification, PaymentFacts, ReceiptFlag, classify};
use incasso_domain::rome_time;

use super::{
    NodeOutcome, RECEIPT_HASH_PURPOSE, ReceiptFacts, ReceiptInput, ReceiptKey, ReceiptOutcome,
};
use crate::Store;
use crate::batch::{OnConflict, Writes, is_in};
use crate::entity::{
    debt_position, installment, receipt, receipt_conflict, receipt_transfer, recon_pending_iuv,
};
use crate::error::AppError;
use crate::ledger::{self, SourceDocumentInput};
use crate::outbox;

/// How often a batch that raced another replica on a receipt key is tried again before its
/// receipts are booked one by one.
const RACE_RETRIES: usize = 3;

/// The civil day of a payment: the Europe/Rome day of its paymentDateTime, or today.
pub(crate) fn payment_day(paid_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Date {
    rome_time::rome_date(paid_at.unwrap_or(now))
}

/// The ledger's name for a PSP: idPSP with anything but letters, digits, `_` and `-` replaced.
fn psp_account_id(psp: &str) -> String {
    let cleaned: String = psp
        .chars()
        .take(35)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if is_psp_id(&cleaned) {
        cleaned
    } else {
        "UNKNOWN".to_owned()
    }
}

/// What booking one new receipt writes, decided before anything is written.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// How it is booked.
    pub classification: Classification,
    /// Its flags.
    pub flags: Vec<ReceiptFlag>,
    /// The position it paid, when incasso issued its notice.
    pub position_id: Option<Uuid>,
    /// The installment it paid.
    pub installment_id: Option<Uuid>,
    /// Its ledger entries.
    pub drafts: Vec<EntryDraft>,
    /// Whether it settled its notice (the position's new state is published).
    pub settled: bool,
}

/// The positions a batch touches: as loaded, and as the batch leaves them.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    before: HashMap<Uuid, DebtPosition>,
    after: HashMap<Uuid, DebtPosition>,
}

/// Plans the booking of `facts` in order, in `txn`: finds, locks and loads their positions,
/// classifies each receipt and derives its ledger entries. A receipt that cannot be planned
/// gets the reason, and leaves the positions as they were.
pub(crate) async fn plan(
    store: &Store,
    txn: &DatabaseTransaction,
    facts: &[&ReceiptFacts],
    now: OffsetDateTime,
) -> Result<(Vec<Result<Planned, String>>, Positions), AppError> {
    let notice_positions = positions_of_notices(store, txn, facts).await?;
    plan_with(store, txn, facts, notice_positions, now).await
}

/// [`plan`], with the positions of the notices already looked up (`notice_positions` may
/// hold more notices than `facts` pay: only theirs are locked).
async fn plan_with(
    store: &Store,
    txn: &DatabaseTransaction,
    facts: &[&ReceiptFacts],
    mut notice_positions: HashMap<(String, String), Uuid>,
    now: OffsetDateTime,
) -> Result<(Vec<Result<Planned, String>>, Positions), AppError> {
    let paid: BTreeSet<(&str, &str)> = facts
        .iter()
        .map(|f| (f.creditor_fiscal_code.as_str(), f.notice_number.as_str()))
        .collect();
    notice_positions
        .retain(|(creditor, notice), _| paid.contains(&(creditor.as_str(), notice.as_str())));
    let ids: BTreeSet<Uuid> = notice_positions.values().copied().collect();
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let locked = lock_positions(txn, &ids, now).await?;
    let mut positions = Positions::default();
    let mut unreadable: HashMap<Uuid, String> = HashMap::new();
    let loaded = match locked {
        Some(rows) => store.load_children(txn, &ids, rows).await,
        None => store.load_many(txn, &ids).await,
    };
    match loaded {
        Ok(loaded) => {
            for p in loaded {
                positions.before.insert(p.id, p);
            }
        }
        // One undecodable position must not hold back the others' receipts.
        Err(_) => {
            for id in &ids {
                match store.load(txn, *id).await {
                    Ok(p) => {
                        positions.before.insert(p.id, p);
                    }
                    Err(error) => {
                        unreadable.insert(*id, error.to_string());
                    }
                }
            }
        }
    }
    for id in &ids {
        if !positions.before.contains_key(id) && !unreadable.contains_key(id) {
            unreadable.insert(*id, format!("debt position {id} vanished"));
        }
    }
    positions.after = positions.before.clone();
    let mut plans = Vec::with_capacity(facts.len());
    for f in facts {
        let position_id = notice_positions
            .get(&(f.creditor_fiscal_code.clone(), f.notice_number.clone()))
            .copied();
        if let Some(id) = position_id
            && let Some(reason) = unreadable.get(&id)
        {
            plans.push(Err(format!("its debt position cannot be read: {reason}")));
            continue;
        }
        let saved = position_id.and_then(|id| positions.after.get(&id).cloned());
        let planned = plan_one(
            f,
            position_id.and_then(|id| positions.after.get_mut(&id)),
            now,
        );
        if planned.is_err()
            && let (Some(id), Some(saved)) = (position_id, saved)
        {
            positions.after.insert(id, saved);
        }
        plans.push(planned);
    }
    Ok((plans, positions))
}

/// Classifies one receipt against its position (updated in place when it settles) and
/// derives its ledger entries.
fn plan_one(
    facts: &ReceiptFacts,
    position: Option<&mut DebtPosition>,
    now: OffsetDateTime,
) -> Result<Planned, String> {
    let paid_on = payment_day(facts.paid_at, now);
    let before = position.as_ref().map(|p| (*p).clone());
    let installment = match (&before, &facts.notice) {
        (Some(p), Some(n)) => p.installment(n).cloned(),
        _ => None,
    };
    if let (Some(p), None) = (&before, &installment) {
        return Err(format!(
            "notice {} is indexed under debt position {} but is not one of its notices",
            facts.notice_number, p.id
        ));
    }
    let mut position = position;
    let classified = classify(
        position.as_deref_mut(),
        &PaymentFacts {
            notice: facts.notice.as_ref(),
            paid: facts.outcome == NodeOutcome::Ok,
            paid_on,
            amount_cents: facts.payment_amount_cents,
            stand_in: facts.stand_in,
            other_creditor: facts.creditor_fiscal_code != facts.receiving_creditor,
        },
    );
    let ledger_receipt = LedgerReceipt {
        psp: psp_account_id(&facts.psp_id),
        receipt_id: facts.receipt_id.clone(),
        notice_number: facts.notice_number.clone(),
        iuv: facts.iuv.clone(),
        transfers: facts
            .transfers
            .iter()
            .filter_map(|t| {
                OrganizationFiscalCode::parse(&t.beneficiary)
                    .ok()
                    .map(|b| (b, t.amount_cents))
            })
            .collect(),
    };
    let mut drafts = Vec::new();
    let mut settled = false;
    match (&before, &position, &installment, &classified.outcome) {
        (Some(before), Some(after), Some(installment), Some(PaymentOutcome::Settled { .. })) => {
            drafts.extend(rules::receipt_paid(
                before,
                after,
                installment,
                &ledger_receipt,
            ));
            settled = true;
        }
        (Some(position), _, _, Some(PaymentOutcome::AlreadyPaid)) => {
            drafts.extend(rules::double_payment(position, &ledger_receipt));
        }
        (Some(position), _, _, Some(PaymentOutcome::NotPayable { .. })) => {
            drafts.extend(rules::receipt_closed_notice(position, &ledger_receipt));
        }
        _ if classified.classification == Classification::UnknownNotice => {
            if let Ok(books) = OrganizationFiscalCode::parse(&facts.receiving_creditor) {
                drafts.extend(rules::receipt_unknown_notice(&books, &ledger_receipt));
            }
        }
        _ => {}
    }
    for draft in &drafts {
        draft.validate().map_err(|error| {
            format!(
                "the posting rule for a {} receipt produced an invalid {} entry: {error}",
                classified.classification.as_str(),
                draft.event_type.as_str()
            )
        })?;
    }
    Ok(Planned {
        classification: classified.classification,
        flags: classified.flags,
        position_id: before.as_ref().map(|p| p.id),
        installment_id: installment.map(|i| i.id),
        drafts,
        settled,
    })
}

/// The positions of the notices incasso issued, by (creditor, notice number as sent).
async fn positions_of_notices(
    store: &Store,
    txn: &DatabaseTransaction,
    facts: &[&ReceiptFacts],
) -> Result<HashMap<(String, String), Uuid>, AppError> {
    let issued: BTreeSet<String> = facts
        .iter()
        .filter(|f| store.registry().issuer(&f.creditor_fiscal_code).is_some())
        .map(|f| f.notice_number.clone())
        .collect();
    if issued.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, Uuid)> = installment::Entity::find()
        .select_only()
        .column(installment::Column::CreditorFiscalCode)
        .column(installment::Column::NoticeNumber)
        .column(installment::Column::DebtPositionId)
        .filter(is_in(
            txn.get_database_backend(),
            installment::Column::NoticeNumber,
            issued.into_iter().collect::<Vec<_>>(),
        ))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(creditor, notice, position)| ((creditor, notice), position))
        .collect())
}

/// Takes the row locks of `ids` (sorted) and bumps their versions: concurrent changes of
/// these positions, and other batches paying them, wait for this transaction. On PostgreSQL
/// the locked rows come back, so they need not be read again.
async fn lock_positions(
    txn: &DatabaseTransaction,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<Option<Vec<debt_position::Model>>, AppError> {
    if ids.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        // Locked in id order, whatever order an UPDATE would visit them in: two batches on
        // other replicas then never wait for each other in a cycle. One statement locks,
        // bumps and reads. (SQLite has one writer.)
        let rows = debt_position::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                "UPDATE debt_position SET version = version + 1, updated_at = $1 \
                 WHERE id IN (SELECT id FROM debt_position WHERE id = ANY($2) \
                 ORDER BY id FOR UPDATE) RETURNING *",
                [now.into(), ids.to_vec().into()],
            ))
            .all(txn)
            .await?;
        return Ok(Some(rows));
    }
    debt_position::Entity::update_many()
        .col_expr(
            debt_position::Column::Version,
            Expr::col(debt_position::Column::Version).add(1),
        )
        .col_expr(debt_position::Column::UpdatedAt, Expr::value(now))
        .filter(debt_position::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await?;
    Ok(None)
}

/// `t.id = ANY(the ids of the JSON rows)`, for an `UPDATE … FROM json_populate_recordset`.
///
/// Why: PostgreSQL estimates any set-returning function at 100 rows, so on a table of fewer
/// than some tens of thousands of rows (every creditor's first months) it joins the JSON rows
/// to the table by reading the whole table, once per receipt batch: measured at 4 ms each for
/// `installment` and `debt_position` at 12,000 rows, with fresh statistics or none. The list
/// of ids is estimated at ten, which the primary key's index serves whatever the statistics
/// say.
fn ids_of_rows(table: &str) -> String {
    format!(
        "t.id = ANY(ARRAY(SELECT r.id FROM json_populate_recordset(NULL::{table}, $ROWS::json) AS r))"
    )
}

/// Writes the installment and position states the batch changed: with `writes` on
/// PostgreSQL (one JSON piece per table), one statement per new state on SQLite.
pub(crate) async fn write_states(
    writes: &mut Writes<'_>,
    positions: &Positions,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let mut installments: BTreeMap<&'static str, Vec<Uuid>> = BTreeMap::new();
    let mut states: BTreeMap<&'static str, Vec<Uuid>> = BTreeMap::new();
    for (id, after) in &positions.after {
        let Some(before) = positions.before.get(id) else {
            continue;
        };
        for (old, new) in before.installments().zip(after.installments()) {
            if old.state != new.state {
                installments
                    .entry(new.state.as_str())
                    .or_default()
                    .push(new.id);
            }
        }
        if before.state != after.state {
            states
                .entry(after.state.as_str())
                .or_default()
                .push(after.id);
        }
    }
    if writes.gathers() {
        let at = crate::batch::json_of(&now.into(), "installment", "updated_at")?;
        let mut installment_rows = Vec::new();
        for (state, ids) in &installments {
            let paid = *state == InstallmentState::Paid.as_str();
            for id in ids {
                installment_rows.push(serde_json::json!({
                    "id": id.to_string(),
                    "state": state,
                    "updated_at": at,
                    "paid_at": if paid { at.clone() } else { serde_json::Value::Null },
                }));
            }
        }
        if !installment_rows.is_empty() {
            writes.push_json(
                format!(
                    "UPDATE installment AS t SET state = j.state, updated_at = j.updated_at, \
                     paid_at = COALESCE(j.paid_at, t.paid_at) \
                     FROM json_populate_recordset(NULL::installment, $ROWS::json) AS j \
                     WHERE t.id = j.id AND {}",
                    ids_of_rows("installment")
                ),
                serde_json::Value::Array(installment_rows).to_string(),
            );
        }
        let position_rows: Vec<serde_json::Value> = states
            .iter()
            .flat_map(|(state, ids)| {
                ids.iter()
                    .map(move |id| serde_json::json!({"id": id.to_string(), "state": state}))
            })
            .collect();
        if !position_rows.is_empty() {
            writes.push_json(
                format!(
                    "UPDATE debt_position AS t SET state = j.state \
                     FROM json_populate_recordset(NULL::debt_position, $ROWS::json) AS j \
                     WHERE t.id = j.id AND {}",
                    ids_of_rows("debt_position")
                ),
                serde_json::Value::Array(position_rows).to_string(),
            );
        }
        return Ok(());
    }
    let txn = writes.txn();
    let backend = txn.get_database_backend();
    for (state, ids) in installments {
        let mut update = installment::Entity::update_many()
            .col_expr(installment::Column::State, Expr::value(state))
            .col_expr(installment::Column::UpdatedAt, Expr::value(now));
        if state == InstallmentState::Paid.as_str() {
            update = update.col_expr(installment::Column::PaidAt, Expr::value(Some(now)));
        }
        update
            .filter(is_in(backend, installment::Column::Id, ids))
            .exec(txn)
            .await?;
    }
    for (state, ids) in states {
        debt_position::Entity::update_many()
            .col_expr(debt_position::Column::State, Expr::value(state))
            .filter(is_in(backend, debt_position::Column::Id, ids))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The outbox events of booked receipts: the Stand-In archive's once per settled position.
/// (The Fascicolo's are [`citizen_changes`], numbered per citizen when queued.)
pub(crate) fn outbox_events(
    booked: &[(&ReceiptFacts, &Planned)],
    now: OffsetDateTime,
) -> Vec<crate::entity::outbox_event::ActiveModel> {
    let mut events = Vec::new();
    let mut published = BTreeSet::new();
    for (_, planned) in booked {
        if planned.settled
            && let Some(id) = planned.position_id
            && published.insert(id)
        {
            events.push(outbox::position_changed(id, "paid", now));
        }
    }
    events
}

/// The Fascicolo changes of booked receipts (row id, plan), in order: a payment or a refund
/// owed, for the citizen of the position paid, as the batch leaves it; then, per position,
/// the notices of other options the payments closed.
pub(crate) fn citizen_changes(
    store: &Store,
    booked: &[(Uuid, &Planned)],
    positions: &Positions,
) -> Vec<crate::citizens::Pending> {
    use incasso_domain::citizen;
    let mut pending: Vec<crate::citizens::Pending> = booked
        .iter()
        .filter_map(|(row_id, planned)| {
            let position = positions.after.get(&planned.position_id?)?;
            let change = citizen::on_receipt(planned.classification, *row_id)?;
            Some(store.citizen_changes(position, vec![change]))
        })
        .flatten()
        .collect();
    let mut seen = BTreeSet::new();
    for (_, planned) in booked {
        if let Some(id) = planned.position_id
            && seen.insert(id)
            && let (Some(before), Some(after)) =
                (positions.before.get(&id), positions.after.get(&id))
        {
            pending.extend(store.citizen_changes(after, citizen::closed_by_payment(before, after)));
        }
    }
    pending
}

/// The rows of a receipt's transfers.
pub(crate) fn transfer_rows(
    row_id: Uuid,
    facts: &ReceiptFacts,
) -> Vec<receipt_transfer::ActiveModel> {
    facts
        .transfers
        .iter()
        .enumerate()
        .map(|(index, t)| receipt_transfer::ActiveModel {
            receipt_row_id: Set(row_id),
            // At most five transfers: the parser refuses more.
            transfer_index: Set(i16::try_from(index).unwrap_or(i16::MAX)),
            creditor_fiscal_code: Set(facts.creditor_fiscal_code.clone()),
            iuv: Set(facts.iuv.clone()),
            receipt_id: Set(facts.receipt_id.clone()),
            id_transfer: Set(i16::from(t.id_transfer)),
            beneficiary_fiscal_code: Set(t.beneficiary.clone()),
            iban: Set(t.iban.clone()),
            amount_cents: Set(t.amount_cents),
            remittance_information: Set(t.remittance_information.clone()),
            transfer_category: Set(t.transfer_category.clone()),
        })
        .collect()
}

/// The row of a receipt.
#[allow(clippy::too_many_arguments)]
pub(crate) fn receipt_row(
    row_id: Uuid,
    facts: &ReceiptFacts,
    content_hash: &str,
    document_id: Uuid,
    classification: Classification,
    flags: &[ReceiptFlag],
    position_id: Option<Uuid>,
    installment_id: Option<Uuid>,
    now: OffsetDateTime,
) -> receipt::ActiveModel {
    receipt::ActiveModel {
        id: Set(row_id),
        creditor_fiscal_code: Set(facts.creditor_fiscal_code.clone()),
        iuv: Set(facts.iuv.clone()),
        receipt_id: Set(facts.receipt_id.clone()),
        notice_number: Set(facts.notice_number.clone()),
        receiving_creditor: Set(facts.receiving_creditor.clone()),
        content_sha256: Set(content_hash.to_owned()),
        source_document_id: Set(document_id),
        primitive: Set(facts.primitive.name().to_owned()),
        psp_id: Set(facts.psp_id.chars().take(35).collect()),
        channel_id: Set(facts.channel_id.chars().take(35).collect()),
        payment_amount_cents: Set(facts.payment_amount_cents),
        fee_cents: Set(facts.fee_cents),
        payment_date_time: Set(facts.payment_date_time.clone()),
        // UTC, so that SQLite's text timestamps compare in time order.
        paid_at: Set(facts.paid_at.map(|t| t.to_offset(time::UtcOffset::UTC))),
        stand_in: Set(facts.stand_in),
        classification: Set(classification.as_str().to_owned()),
        flags: Set(ReceiptFlag::join(flags)),
        debt_position_id: Set(position_id),
        installment_id: Set(installment_id),
        received_at: Set(now),
        recovered: Set(facts.primitive.is_recovered()),
    }
}

/// A receipt's key columns: a row whose key is stored is not inserted, and the caller counts
/// the rows it inserted.
pub(crate) const RECEIPT_KEY: &[&str] = &["creditor_fiscal_code", "iuv", "receipt_id"];

/// The key of `recon_pending_iuv`.
pub(crate) const PENDING_KEY: &[&str] = &["creditor_fiscal_code", "iuv"];

/// The rows of `recon_pending_iuv` for (creditor, IUV) pairs.
pub(crate) fn pending_rows(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Vec<recon_pending_iuv::ActiveModel> {
    pairs
        .into_iter()
        .map(|(creditor, iuv)| recon_pending_iuv::ActiveModel {
            creditor_fiscal_code: Set(creditor),
            iuv: Set(iuv),
        })
        .collect()
}

/// The (creditor, IUV) pairs that tell reconciliation a booked receipt has keys to label: one
/// per creditor of the registry a transfer pays (another beneficiary is nobody's to
/// reconcile here).
///
/// An IUV that is not 1 to 35 letters and digits (the XSD allows any text) can match no
/// flow line or credit, which are read only with such IUVs: it is not queued, so it never
/// stops a creditor's imports, and the receipt is booked as any other.
pub(crate) fn pending_iuvs<'f>(
    store: &'f Store,
    facts: &'f ReceiptFacts,
) -> impl Iterator<Item = (String, String)> + 'f {
    let reconcilable = Iuv::parse(&facts.iuv).is_ok();
    if !reconcilable {
        tracing::warn!(
            iuv = %facts.iuv,
            receipt = %facts.receipt_id,
            "a receipt's IUV is not 1 to 35 letters and digits: reconciliation cannot label it"
        );
    }
    facts
        .transfers
        .iter()
        .filter(move |t| reconcilable && store.registry().get(&t.beneficiary).is_some())
        .map(|t| (t.beneficiary.clone(), facts.iuv.clone()))
}

/// What is stored under a receipt key: its content hash, and whether it was recovered from
/// biz-events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredKey {
    /// The keyed hash of its canonical form.
    pub hash: String,
    /// Booked from biz-events.
    pub recovered: bool,
}

/// What is stored under the keys in `keys` that are already stored.
pub(crate) async fn stored_hashes(
    txn: &DatabaseTransaction,
    keys: &[ReceiptKey],
) -> Result<HashMap<ReceiptKey, StoredKey>, AppError> {
    let receipt_ids: BTreeSet<String> = keys.iter().map(|k| k.receipt_id.clone()).collect();
    if receipt_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, String, String, bool)> = receipt::Entity::find()
        .select_only()
        .column(receipt::Column::CreditorFiscalCode)
        .column(receipt::Column::Iuv)
        .column(receipt::Column::ReceiptId)
        .column(receipt::Column::ContentSha256)
        .column(receipt::Column::Recovered)
        .filter(is_in(
            txn.get_database_backend(),
            receipt::Column::ReceiptId,
            receipt_ids.into_iter().collect::<Vec<_>>(),
        ))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(creditor_fiscal_code, iuv, receipt_id, hash, recovered)| {
            (
                ReceiptKey {
                    creditor_fiscal_code,
                    iuv,
                    receipt_id,
                },
                StoredKey { hash, recovered },
            )
        })
        .collect())
}

/// What a batch looks up before deciding: the stored content hashes of its keys, and the
/// positions of the notices its receipts pay (those incasso issued). One query on
/// PostgreSQL, two on SQLite.
async fn look_up(
    store: &Store,
    txn: &DatabaseTransaction,
    keys: &[ReceiptKey],
    inputs: &[ReceiptInput],
) -> Result<
    (
        HashMap<ReceiptKey, StoredKey>,
        HashMap<(String, String), Uuid>,
    ),
    AppError,
> {
    let facts: Vec<&ReceiptFacts> = inputs.iter().map(|i| &i.facts).collect();
    if txn.get_database_backend() != DbBackend::Postgres {
        let stored = stored_hashes(txn, keys).await?;
        return Ok((stored, positions_of_notices(store, txn, &facts).await?));
    }
    let receipt_ids: Vec<String> = keys
        .iter()
        .map(|k| k.receipt_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let notices: Vec<String> = facts
        .iter()
        .filter(|f| store.registry().issuer(&f.creditor_fiscal_code).is_some())
        .map(|f| f.notice_number.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT TRUE AS stored, creditor_fiscal_code, iuv AS code, receipt_id, \
                    content_sha256, recovered, NULL::uuid AS debt_position_id \
             FROM receipt WHERE receipt_id = ANY($1) \
             UNION ALL \
             SELECT FALSE, creditor_fiscal_code, notice_number, NULL, NULL, NULL, \
                    debt_position_id \
             FROM installment WHERE notice_number = ANY($2)",
            [receipt_ids.into(), notices.into()],
        ))
        .await?;
    let mut stored = HashMap::new();
    let mut positions = HashMap::new();
    for row in rows {
        let creditor_fiscal_code: String = row.try_get("", "creditor_fiscal_code")?;
        let code: String = row.try_get("", "code")?;
        if row.try_get::<bool>("", "stored")? {
            stored.insert(
                ReceiptKey {
                    creditor_fiscal_code,
                    iuv: code,
                    receipt_id: row.try_get("", "receipt_id")?,
                },
                StoredKey {
                    hash: row.try_get("", "content_sha256")?,
                    recovered: row.try_get("", "recovered")?,
                },
            );
        } else {
            positions.insert(
                (creditor_fiscal_code, code),
                row.try_get("", "debt_position_id")?,
            );
        }
    }
    Ok((stored, positions))
}

/// What the batch decided for one of its receipts.
enum Decision {
    /// A new receipt, planned.
    Book(Planned),
    /// A new receipt that cannot be booked now: parked after the commit.
    Park(String),
    /// The same receipt as a stored one, or as receipt `usize` of the batch.
    Redelivered,
    /// The same key as a stored receipt with other content.
    Conflict,
}

/// Why a batch did not commit.
enum BatchError {
    /// Another replica stored one of its keys first: plan again.
    Raced,
    /// A statement failed.
    Failed(AppError),
}

impl From<AppError> for BatchError {
    fn from(error: AppError) -> Self {
        Self::Failed(error)
    }
}

impl From<sea_orm::DbErr> for BatchError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Failed(error.into())
    }
}

/// Books `inputs` together; one outcome per input, in order. Errors are transient ones only.
pub async fn book_batch(
    store: &Store,
    inputs: Vec<ReceiptInput>,
) -> Vec<Result<ReceiptOutcome, AppError>> {
    let now = store.now();
    let hashes: Vec<String> = inputs
        .iter()
        .map(|i| {
            store
                .keys()
                .document_hash(RECEIPT_HASH_PURPOSE, &i.canonical)
        })
        .collect();
    for _ in 0..RACE_RETRIES {
        match try_batch(store, &inputs, &hashes, now).await {
            Ok(decisions) => return finish(store, inputs, &hashes, decisions).await,
            Err(BatchError::Raced) => continue,
            Err(BatchError::Failed(AppError::Unavailable(detail))) => {
                tracing::warn!(receipts = inputs.len(), %detail, "receipt batch failed: storage unavailable");
                return inputs
                    .iter()
                    .map(|_| Err(AppError::Unavailable(detail.clone())))
                    .collect();
            }
            Err(BatchError::Failed(error)) => {
                if let ([input], [hash]) = (&inputs[..], &hashes[..]) {
                    let reason = error.to_string();
                    return vec![super::park::park(store, input.clone(), hash, &reason).await];
                }
                tracing::warn!(receipts = inputs.len(), %error, "receipt batch failed: booking each receipt alone");
                return one_by_one(store, inputs).await;
            }
        }
    }
    if inputs.len() == 1 {
        return vec![Err(AppError::Unavailable(
            "the receipt's key kept being written by another writer".into(),
        ))];
    }
    tracing::warn!(
        receipts = inputs.len(),
        "receipt batch kept racing another writer: booking each receipt alone"
    );
    one_by_one(store, inputs).await
}

/// Books each of `inputs` in a batch of its own.
async fn one_by_one(
    store: &Store,
    inputs: Vec<ReceiptInput>,
) -> Vec<Result<ReceiptOutcome, AppError>> {
    let mut outcomes = Vec::with_capacity(inputs.len());
    for input in inputs {
        outcomes.extend(Box::pin(book_batch(store, vec![input])).await);
    }
    outcomes
}

/// After the commit: parks what could not be booked, logs, and turns decisions into
/// outcomes.
async fn finish(
    store: &Store,
    inputs: Vec<ReceiptInput>,
    hashes: &[String],
    decisions: Vec<Decision>,
) -> Vec<Result<ReceiptOutcome, AppError>> {
    let mut outcomes = Vec::with_capacity(inputs.len());
    for ((input, decision), hash) in inputs.into_iter().zip(decisions).zip(hashes) {
        let facts = &input.facts;
        outcomes.push(match decision {
            Decision::Book(planned) => {
                tracing::info!(
                    creditor = %facts.creditor_fiscal_code,
                    iuv = %facts.iuv,
                    classification = planned.classification.as_str(),
                    flags = %ReceiptFlag::join(&planned.flags),
                    "receipt recorded"
                );
                Ok(ReceiptOutcome::Recorded(planned.classification))
            }
            Decision::Park(reason) => super::park::park(store, input, hash, &reason).await,
            Decision::Redelivered => Ok(ReceiptOutcome::Redelivered),
            Decision::Conflict => {
                tracing::warn!(
                    creditor = %facts.creditor_fiscal_code,
                    iuv = %facts.iuv,
                    "receipt redelivered with different content: recorded for an operator"
                );
                Ok(ReceiptOutcome::Conflict)
            }
        });
    }
    outcomes
}

/// One attempt at the batch, committed when it returns `Ok`.
async fn try_batch(
    store: &Store,
    inputs: &[ReceiptInput],
    hashes: &[String],
    now: OffsetDateTime,
) -> Result<Vec<Decision>, BatchError> {
    let txn = store.db().begin().await?;
    let keys: Vec<ReceiptKey> = inputs.iter().map(|i| i.facts.key()).collect();
    let (stored, notice_positions) = look_up(store, &txn, &keys, inputs).await?;
    // Decide what each receipt is; `None` marks the new ones, planned below.
    let mut first_of_key: HashMap<&ReceiptKey, usize> = HashMap::new();
    let mut decisions: Vec<Option<Decision>> = Vec::with_capacity(inputs.len());
    for (index, key) in keys.iter().enumerate() {
        let recovered = inputs[index].facts.primitive.is_recovered();
        let known = stored
            .get(key)
            .map(|k| (k.hash.as_str(), k.recovered))
            .or_else(|| {
                first_of_key.get(key).map(|&first| {
                    (
                        hashes[first].as_str(),
                        inputs[first].facts.primitive.is_recovered(),
                    )
                })
            });
        decisions.push(match known {
            Some((hash, _)) if hash == hashes[index] => Some(Decision::Redelivered),
            // The Node's copy of a receipt recovered from biz-events (or the other way
            // round): the same payment under the same key, told in another form whose
            // canonical bytes cannot match. The one booked first stands.
            Some((_, stored_recovered)) if stored_recovered != recovered => {
                Some(Decision::Redelivered)
            }
            Some(_) => Some(Decision::Conflict),
            None => {
                first_of_key.insert(key, index);
                None
            }
        });
    }
    let new: Vec<usize> = (0..inputs.len())
        .filter(|&i| decisions[i].is_none())
        .collect();
    let new_facts: Vec<&ReceiptFacts> = new.iter().map(|&i| &inputs[i].facts).collect();
    let (plans, positions) = plan_with(store, &txn, &new_facts, notice_positions, now).await?;
    for (&index, planned) in new.iter().zip(plans) {
        decisions[index] = Some(match planned {
            Ok(planned) => Decision::Book(planned),
            Err(reason) => Decision::Park(reason),
        });
    }
    let decisions: Vec<Decision> = decisions
        .into_iter()
        .map(|d| d.unwrap_or(Decision::Redelivered))
        .collect();

    // The raw messages of booked receipts and of conflicts, in one statement.
    let mut documents = Vec::new();
    let mut document_of: HashMap<usize, usize> = HashMap::new();
    for (index, decision) in decisions.iter().enumerate() {
        let kind = match decision {
            Decision::Book(_) => inputs[index].facts.primitive.document_kind(),
            Decision::Conflict => "pagopa.receipt_conflict",
            _ => continue,
        };
        document_of.insert(index, documents.len());
        documents.push(SourceDocumentInput {
            kind,
            media_type: inputs[index].facts.primitive.media_type(),
            content: inputs[index].raw.clone(),
        });
    }
    let (document_refs, document_rows) = ledger::document_rows(store.keys(), documents, now);

    let mut receipt_rows = Vec::new();
    let mut transfer_rows_all = Vec::new();
    let mut pending_pairs = BTreeSet::new();
    let mut conflict_rows = Vec::new();
    let mut booked = Vec::new();
    let mut told = Vec::new();
    let mut postings = Vec::new();
    for (index, decision) in decisions.iter().enumerate() {
        let facts = &inputs[index].facts;
        match decision {
            Decision::Book(planned) => {
                let document = document_of[&index];
                let row_id = Uuid::now_v7();
                receipt_rows.push(receipt_row(
                    row_id,
                    facts,
                    &hashes[index],
                    document_refs[document].0,
                    planned.classification,
                    &planned.flags,
                    planned.position_id,
                    planned.installment_id,
                    now,
                ));
                transfer_rows_all.extend(transfer_rows(row_id, facts));
                pending_pairs.extend(pending_iuvs(store, facts));
                postings.extend(planned.drafts.iter().cloned().map(|d| (d, Some(document))));
                booked.push((facts, planned));
                told.push((row_id, planned));
            }
            Decision::Conflict => conflict_rows.push(receipt_conflict::ActiveModel {
                id: Set(Uuid::now_v7()),
                creditor_fiscal_code: Set(facts.creditor_fiscal_code.clone()),
                iuv: Set(facts.iuv.clone()),
                receipt_id: Set(facts.receipt_id.clone()),
                content_sha256: Set(hashes[index].clone()),
                source_document_id: Set(document_refs[document_of[&index]].0),
                received_at: Set(now),
            }),
            _ => {}
        }
    }
    // The documents with the receipts that cite them, then everything else the batch
    // writes: two statements on PostgreSQL. The receipts go first and alone because their
    // count tells a race with another replica, which must be seen before their transfers
    // are written.
    let expected = receipt_rows.len();
    let mut writes = Writes::new(&txn);
    writes.insert(document_rows, 8, OnConflict::Fail).await?;
    let receipts = writes
        .insert(receipt_rows, 22, OnConflict::Skip(RECEIPT_KEY))
        .await?;
    writes.insert(conflict_rows, 7, OnConflict::Fail).await?;
    let inserted = writes.send().await?.of(receipts);
    if usize::try_from(inserted).unwrap_or(0) != expected {
        txn.rollback().await?;
        return Err(BatchError::Raced);
    }
    let mut writes = Writes::new(&txn);
    writes
        .insert(transfer_rows_all, 11, OnConflict::Fail)
        .await?;
    writes
        .insert(
            pending_rows(pending_pairs),
            2,
            OnConflict::Skip(PENDING_KEY),
        )
        .await?;
    write_states(&mut writes, &positions, now).await?;
    writes
        .insert(outbox_events(&booked, now), 12, OnConflict::Fail)
        .await?;
    writes.send().await?;
    crate::citizens::queue(&txn, citizen_changes(store, &told, &positions), now).await?;
    ledger::append_with_documents(&txn, &document_refs, postings, now).await?;
    txn.commit().await?;
    if !booked.is_empty() {
        store.outbox_queued();
    }
    Ok(decisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn the_payment_day_is_the_rome_day_of_the_payment() {
        let now = datetime!(2026-11-24 10:00 UTC);
        assert_eq!(
            payment_day(Some(datetime!(2026-07-31 22:30 UTC)), now),
            date!(2026 - 08 - 01)
        );
        assert_eq!(
            payment_day(Some(datetime!(2026-11-12 17:48:22 +01:00)), now),
            date!(2026 - 11 - 12)
        );
        assert_eq!(payment_day(None, now), date!(2026 - 11 - 24));
        assert_eq!(psp_account_id("BCITITMM"), "BCITITMM");
        assert_eq!(psp_account_id("AB C:D"), "AB_C_D");
    }
}
