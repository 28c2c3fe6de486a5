//! Reconciliation's postings: in the transaction of the import (or catch-up) that changed the
//! evidence, reads what the creditor's books already say under each posting key (a transfer
//! key's `reported` position, a treasury credit's `cashed` entries) and how its receipts were
//! booked, asks the domain's settlement rules for the difference and appends it to the ledger
//! (a flow revision's `reported` differences as one entry, the keys' positions beside it).
//! Evidence and books therefore never disagree, and importing the same evidence again, in any
//! order, posts nothing (`incasso_domain::ledger::settlement`).

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::settlement::{
    BookedReceipt, BookedReceipts, Posted, apply_to_positions, cashed_key, merge_reported,
    reported_key, settle_cashed, settle_iuv_credits, settle_reported,
};
use incasso_domain::ledger::{Account, EventType};
use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{CausaleReferences, CreditId, Evidence, TransferKey};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use time::OffsetDateTime;

use super::evidence::{ReceiptNotices, in_list, receipt_of_transfer};
use crate::AppError;
use crate::ledger;
use crate::ledger::reported_positions as positions;

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("stored ledger projection is invalid: {what}"))
}

fn sql(backend: DbBackend, text: &str) -> String {
    if backend == DbBackend::Postgres {
        text.to_owned()
    } else {
        text.replace("$1", "?")
    }
}

/// What the creditor's entries with a posting key already say, per key, with the cause of
/// each key's last entry when it is of `caused_by` (which a reversal names again).
async fn posted(
    db: &impl ConnectionTrait,
    creditor: &str,
    keys: &[String],
    caused_by: EventType,
) -> Result<BTreeMap<String, Posted>, AppError> {
    let mut out: BTreeMap<String, Posted> = BTreeMap::new();
    for chunk in keys.chunks(super::scope::IUVS_PER_STATEMENT) {
        posted_of(db, creditor, chunk, caused_by, &mut out).await?;
    }
    Ok(out)
}

/// [`posted`] for a few thousand keys.
async fn posted_of(
    db: &impl ConnectionTrait,
    creditor: &str,
    keys: &[String],
    caused_by: EventType,
    out: &mut BTreeMap<String, Posted>,
) -> Result<(), AppError> {
    let backend = db.get_database_backend();
    let mut values = vec![creditor.into()];
    let only = in_list(backend, "e.posting_key", keys, &mut values);
    // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back to the integer it is.
    let sums = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                &format!(
                    "SELECT e.posting_key, l.account, \
                     CAST(SUM(l.amount_cents) AS BIGINT) AS cents \
                     FROM ledger_entry e JOIN ledger_line l ON l.entry_sequence = e.sequence \
                     WHERE e.creditor_fiscal_code = $1 AND {only} \
                     GROUP BY e.posting_key, l.account"
                ),
            ),
            values.clone(),
        ))
        .await?;
    for row in sums {
        let key: String = row.try_get("", "posting_key")?;
        let account: String = row.try_get("", "account")?;
        let account = Account::parse(&account).map_err(corrupt)?;
        let cents: i64 = row.try_get("", "cents")?;
        out.entry(key).or_default().amounts.insert(account, cents);
    }
    // The cause of each key's last entry, which an entry reversing it names again.
    // Ordered by key first, so the planner reads the keys' index (creditor, posting_key,
    // sequence) rather than walking every `reported` entry in sequence order.
    let causes = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                &format!(
                    "SELECT e.sequence, e.posting_key, e.receipt_id, e.reporting_flow_id, \
                     e.treasury_line_id, n.notice_number, n.iuv FROM ledger_entry e \
                     LEFT JOIN ledger_entry_notice n ON n.entry_sequence = e.sequence \
                     WHERE e.creditor_fiscal_code = $1 AND e.event_type = '{}' \
                     AND {only} ORDER BY e.posting_key, e.sequence, n.notice_index",
                    caused_by.as_str()
                ),
            ),
            values,
        ))
        .await?;
    let mut last_sequence: BTreeMap<String, i64> = BTreeMap::new();
    for row in causes {
        let sequence: i64 = row.try_get("", "sequence")?;
        let key: String = row.try_get("", "posting_key")?;
        let entry = out.entry(key.clone()).or_default();
        if last_sequence.get(&key) != Some(&sequence) {
            last_sequence.insert(key, sequence);
            entry.cause.receipt_id = row.try_get("", "receipt_id")?;
            entry.cause.reporting_flow_id = row.try_get("", "reporting_flow_id")?;
            entry.cause.treasury_line_id = row.try_get("", "treasury_line_id")?;
            entry.cause.notices.clear();
        }
        let nav: Option<String> = row.try_get("", "notice_number")?;
        let iuv: Option<String> = row.try_get("", "iuv")?;
        if let (Some(nav), Some(iuv)) = (nav, iuv) {
            entry.cause.notices.push((nav, iuv));
        }
    }
    Ok(())
}

/// The notice each receipt paid to `creditor` (beneficiary) of the IUVs `iuvs` paid, receipts
/// not paid excluded.
async fn notices_of_iuvs(
    db: &impl ConnectionTrait,
    creditor: &str,
    iuvs: &[String],
) -> Result<ReceiptNotices, AppError> {
    let backend = db.get_database_backend();
    let mut out = ReceiptNotices::new();
    if iuvs.is_empty() {
        return Ok(out);
    }
    let mut values = vec![creditor.into()];
    let only = in_list(backend, "t.iuv", iuvs, &mut values);
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                &format!(
                    "SELECT DISTINCT t.iuv, t.receipt_id, r.notice_number FROM receipt_transfer t \
                     {} WHERE t.beneficiary_fiscal_code = $1 AND r.classification <> 'not_paid' \
                     AND {only}",
                    receipt_of_transfer(backend)
                ),
            ),
            values,
        ))
        .await?;
    for row in rows {
        let iuv: String = row.try_get("", "iuv")?;
        let Ok(iuv) = Iuv::parse(&iuv) else {
            // Reconciliation's evidence skips it too: nothing can report it.
            continue;
        };
        out.insert(
            (iuv, row.try_get("", "receipt_id")?),
            row.try_get("", "notice_number")?,
        );
    }
    Ok(out)
}

/// How [`clearing_of_receipts`] joins each entry `e` to its line `l` debiting `psp_clearing`:
/// on PostgreSQL by the line's key for each entry (a `LATERAL` subquery that `OFFSET 0` keeps
/// from being turned back into a join), since a plain join was planned as a parallel scan of
/// every ledger line into a hash for each slice of a few thousand receipts, a cost that grew
/// with the books.
fn clearing_line_of_entry(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres {
        "CROSS JOIN LATERAL (SELECT l.account FROM ledger_line l \
         WHERE l.entry_sequence = e.sequence AND l.account_type = 'psp_clearing' \
         AND l.amount_cents > 0 OFFSET 0) l"
    } else {
        "JOIN ledger_line l ON l.entry_sequence = e.sequence \
         AND l.account_type = 'psp_clearing' AND l.amount_cents > 0"
    }
}

/// The `psp_clearing` account the booking of each receipt of `receipt_ids` debited in
/// `creditor`'s books, for those whose booking did.
pub(crate) async fn clearing_of_receipts(
    db: &impl ConnectionTrait,
    creditor: &str,
    receipt_ids: &[String],
) -> Result<BTreeMap<String, Account>, AppError> {
    let backend = db.get_database_backend();
    let mut clearing = BTreeMap::new();
    for receipt_ids in receipt_ids.chunks(super::scope::IUVS_PER_STATEMENT) {
        let mut values = vec![creditor.into()];
        let only = in_list(backend, "e.receipt_id", receipt_ids, &mut values);
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql(
                    backend,
                    &format!(
                        "SELECT e.receipt_id, l.account FROM ledger_entry e {} \
                         WHERE e.creditor_fiscal_code = $1 AND {only} \
                         AND e.posting_key IS NULL",
                        clearing_line_of_entry(backend)
                    ),
                ),
                values,
            ))
            .await?;
        for row in rows {
            let receipt_id: String = row.try_get("", "receipt_id")?;
            let account: String = row.try_get("", "account")?;
            clearing.insert(receipt_id, Account::parse(&account).map_err(corrupt)?);
        }
    }
    Ok(clearing)
}

/// The receipts of `notices` as the settlement rules read them, each with its clearing
/// account from `clearing`.
fn booked(notices: &ReceiptNotices, clearing: &BTreeMap<String, Account>) -> BookedReceipts {
    notices
        .iter()
        .map(|((iuv, receipt_id), notice_number)| {
            (
                (iuv.clone(), receipt_id.clone()),
                BookedReceipt {
                    notice_number: notice_number.clone(),
                    clearing: clearing.get(receipt_id).cloned(),
                },
            )
        })
        .collect()
}

/// Posts the `reported` entries `evidence` asks of `creditor`'s books beyond what they say,
/// for the transfer keys of a set of IUVs: `evidence` holds their receipts (whose notices are
/// `notices`) and their lines of every flow revision (and no line of another IUV);
/// `stored_keys` are the keys of those lines that were stored before this import. Returns
/// the number of entries appended (one per flow revision whose keys moved).
///
/// What each key has posted is its position (`positions`); the keys' differences are
/// journaled as one entry per flow revision. Only a key of a stored line can have a position
/// already: a key is posted only while a line names it, and lines are never removed. So the
/// positions are read for those keys alone (a day's first flows read none), and the receipts'
/// bookings only for the receipts the lines report, unless `clearing` holds them already
/// (read ahead with the receipts, for every receipt of `notices`).
pub(crate) async fn post_reported(
    txn: &DatabaseTransaction,
    creditor: &str,
    evidence: &Evidence,
    notices: &ReceiptNotices,
    stored_keys: &BTreeSet<TransferKey>,
    clearing: Option<&BTreeMap<String, Account>>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let books = OrganizationFiscalCode::parse(creditor).map_err(corrupt)?;
    let reported: BTreeSet<&TransferKey> = evidence
        .all_flow_revisions()
        .flat_map(|f| f.lines.iter().map(|l| &l.key))
        .collect();
    if reported.is_empty() {
        return Ok(0);
    }
    let stored: Vec<String> = stored_keys
        .iter()
        .filter(|k| reported.contains(k))
        .map(reported_key)
        .collect();
    let receipt_ids: BTreeSet<String> = reported
        .iter()
        .filter(|k| notices.contains_key(&(k.iuv.clone(), k.receipt_id.clone())))
        .map(|k| k.receipt_id.clone())
        .collect();
    let receipt_ids: Vec<String> = receipt_ids.into_iter().collect();
    let posted = positions::of_keys(txn, creditor, &stored).await?;
    let read;
    let clearing = match clearing {
        Some(clearing) => clearing,
        None => {
            read = clearing_of_receipts(txn, creditor, &receipt_ids).await?;
            &read
        }
    };
    let drafts = settle_reported(&books, evidence, &booked(notices, clearing), &posted);
    if drafts.is_empty() {
        return Ok(0);
    }
    // Each key's position, and its difference journaled with its flow's other keys'.
    let mut moved = posted;
    apply_to_positions(&mut moved, &drafts);
    let changed: BTreeSet<&str> = drafts
        .iter()
        .filter_map(|d| d.cause.posting_key.as_deref())
        .collect();
    moved.retain(|key, _| changed.contains(key.as_str()));
    super::plans::with_cached_plans(txn, positions::write(txn, creditor, &moved)).await?;
    append(txn, merge_reported(drafts), now).await
}

/// The notice each receipt paid to `creditor` of the IUVs `iuvs`: what a component's `cashed`
/// entries name.
pub(crate) async fn notices_of(
    db: &impl ConnectionTrait,
    creditor: &str,
    iuvs: &BTreeSet<String>,
) -> Result<ReceiptNotices, AppError> {
    let iuvs: Vec<String> = iuvs.iter().cloned().collect();
    let mut notices = ReceiptNotices::new();
    for chunk in iuvs.chunks(super::scope::IUVS_PER_STATEMENT) {
        notices.extend(notices_of_iuvs(db, creditor, chunk).await?);
    }
    Ok(notices)
}

/// Posts the `cashed` entries of the credits `credits` beyond what the books say: `evidence`
/// holds the whole latest lines of their components' flows, and `notices` the notices of
/// their IUVs' receipts ([`notices_of`]). Returns the number of entries appended.
pub(crate) async fn post_cashed(
    txn: &DatabaseTransaction,
    creditor: &str,
    evidence: &Evidence,
    notices: &ReceiptNotices,
    credits: &BTreeSet<CreditId>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let books = OrganizationFiscalCode::parse(creditor).map_err(corrupt)?;
    let keys: Vec<String> = credits.iter().map(cashed_key).collect();
    // A `cashed` entry names the notices; what the receipts' bookings cleared is the
    // `reported` entries' business. A flow's `cashed` entry names thousands of notices, and
    // is never reversed.
    let posted = posted(txn, creditor, &keys, EventType::Reported).await?;
    append(
        txn,
        settle_cashed(
            &books,
            evidence,
            &booked(notices, &BTreeMap::new()),
            &posted,
            credits,
        ),
        now,
    )
    .await
}

/// Posts the `cashed` entries of the `/RFB/`·`/RFS/` credits `credits` beyond what the books
/// say: `evidence` holds the receipts and the lines (of every revision) of every IUV they
/// name, whose receipts' notices are `notices`, and every other credit naming those IUVs is in
/// `credits` too. Returns the number of entries appended.
pub(crate) async fn post_iuv_cashed(
    txn: &DatabaseTransaction,
    creditor: &str,
    evidence: &Evidence,
    notices: &ReceiptNotices,
    credits: &BTreeSet<CreditId>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    if credits.is_empty() {
        return Ok(0);
    }
    let books = OrganizationFiscalCode::parse(creditor).map_err(corrupt)?;
    let keys: Vec<String> = credits.iter().map(cashed_key).collect();
    let mut receipt_ids = BTreeSet::new();
    for id in credits {
        if let Some(CausaleReferences::Iuvs(iuvs)) = evidence.credit(id).map(|c| &c.references) {
            for key in iuvs.iter().flat_map(|i| evidence.keys_of_iuv(i)) {
                if notices.contains_key(&(key.iuv.clone(), key.receipt_id.clone())) {
                    receipt_ids.insert(key.receipt_id.clone());
                }
            }
        }
    }
    let receipt_ids: Vec<String> = receipt_ids.into_iter().collect();
    let posted = posted(txn, creditor, &keys, EventType::Cashed).await?;
    let clearing = clearing_of_receipts(txn, creditor, &receipt_ids).await?;
    append(
        txn,
        settle_iuv_credits(
            &books,
            evidence,
            &booked(notices, &clearing),
            &posted,
            credits,
        ),
        now,
    )
    .await
}

async fn append(
    txn: &DatabaseTransaction,
    drafts: Vec<incasso_domain::ledger::EntryDraft>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    if drafts.is_empty() {
        return Ok(0);
    }
    let postings: Vec<_> = drafts.into_iter().map(|d| (d, None)).collect();
    let entries = super::plans::with_cached_plans(
        txn,
        ledger::append_with_documents(txn, &[], postings, now),
    )
    .await?;
    Ok(entries.len())
}
