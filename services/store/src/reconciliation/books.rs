//! Reconciliation's postings: in the transaction of the import (or catch-up) that changed the
//! evidence, reads what the creditor's books already say under each posting key and how its
//! receipts were booked, asks the domain's settlement rules for the difference and appends it
//! to the ledger. Evidence and books therefore never disagree, and importing the same evidence
//! again, in any order, posts nothing (`incasso_domain::ledger::settlement`).

use std::collections::BTreeMap;

use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::Account;
use incasso_domain::ledger::settlement::{BookedReceipt, BookedReceipts, Posted, settle};
use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::Evidence;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use time::OffsetDateTime;

use crate::AppError;
use crate::ledger;

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

/// What the creditor's entries with a posting key already say, per key.
async fn posted(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<BTreeMap<String, Posted>, AppError> {
    let backend = db.get_database_backend();
    let mut out: BTreeMap<String, Posted> = BTreeMap::new();
    // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back to the integer it is.
    let sums = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                "SELECT e.posting_key, l.account, CAST(SUM(l.amount_cents) AS BIGINT) AS cents \
                 FROM ledger_entry e JOIN ledger_line l ON l.entry_sequence = e.sequence \
                 WHERE e.creditor_fiscal_code = $1 AND e.posting_key IS NOT NULL \
                 GROUP BY e.posting_key, l.account",
            ),
            [creditor.into()],
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
    let causes = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                "SELECT e.sequence, e.posting_key, e.receipt_id, e.reporting_flow_id, \
                 e.treasury_line_id, n.notice_number, n.iuv FROM ledger_entry e \
                 LEFT JOIN ledger_entry_notice n ON n.entry_sequence = e.sequence \
                 WHERE e.creditor_fiscal_code = $1 AND e.event_type = 'reported' \
                 AND e.posting_key IS NOT NULL ORDER BY e.sequence, n.notice_index",
            ),
            [creditor.into()],
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
    Ok(out)
}

/// The creditor's receipt transfers with the notice each paid and the `psp_clearing` account
/// its booking debited in the creditor's books, if any.
async fn booked_receipts(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<BookedReceipts, AppError> {
    let backend = db.get_database_backend();
    let clearing_rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                "SELECT e.receipt_id, l.account FROM ledger_entry e \
                 JOIN ledger_line l ON l.entry_sequence = e.sequence \
                 WHERE e.creditor_fiscal_code = $1 AND e.receipt_id IS NOT NULL \
                 AND e.posting_key IS NULL AND l.account_type = 'psp_clearing' \
                 AND l.amount_cents > 0",
            ),
            [creditor.into()],
        ))
        .await?;
    let mut clearing: BTreeMap<String, Account> = BTreeMap::new();
    for row in clearing_rows {
        let receipt_id: String = row.try_get("", "receipt_id")?;
        let account: String = row.try_get("", "account")?;
        clearing.insert(receipt_id, Account::parse(&account).map_err(corrupt)?);
    }
    let receipts = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql(
                backend,
                "SELECT DISTINCT t.iuv, t.receipt_id, r.notice_number FROM receipt r \
                 JOIN receipt_transfer t ON t.receipt_row_id = r.id \
                 WHERE t.beneficiary_fiscal_code = $1 AND r.classification <> 'not_paid'",
            ),
            [creditor.into()],
        ))
        .await?;
    let mut out = BookedReceipts::new();
    for row in receipts {
        let iuv: String = row.try_get("", "iuv")?;
        let Ok(iuv) = Iuv::parse(&iuv) else {
            // Reconciliation's evidence skips it too: nothing can report it.
            continue;
        };
        let receipt_id: String = row.try_get("", "receipt_id")?;
        let notice_number: String = row.try_get("", "notice_number")?;
        let clearing = clearing.get(&receipt_id).cloned();
        out.insert(
            (iuv, receipt_id),
            BookedReceipt {
                notice_number,
                clearing,
            },
        );
    }
    Ok(out)
}

/// Posts what `evidence` asks of `creditor`'s books beyond what they say; returns the number
/// of entries appended.
pub(crate) async fn post(
    txn: &DatabaseTransaction,
    creditor: &str,
    evidence: &Evidence,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let books = OrganizationFiscalCode::parse(creditor).map_err(corrupt)?;
    let (posted, receipts) = (
        posted(txn, creditor).await?,
        booked_receipts(txn, creditor).await?,
    );
    let drafts = settle(&books, evidence, &receipts, &posted);
    if drafts.is_empty() {
        return Ok(0);
    }
    let postings: Vec<_> = drafts.into_iter().map(|d| (d, None)).collect();
    let entries = ledger::append_with_documents(txn, &[], postings, now).await?;
    Ok(entries.len())
}
