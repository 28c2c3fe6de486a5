//! The reversals of treasury credits the imported documents carried (an OPI `STORNATO` of an
//! `ENTRATA`, a camt booked `DBIT` with `RvslInd`). The contract defines credits only, so a
//! reversal changes no label and no posting; it is money taken back all the same, which the
//! finance office must check with the treasury. The import warns of it, and it is kept so the
//! list (`ListTreasuryReversals`) still shows it once the warning is gone. A reversal is keyed
//! by its own reference (the same one in a notification and in the statement is kept once),
//! or by its document and place there when it has none.

use incasso_domain::validation::ValidationErrors;
use incasso_reconciliation::ReversalRecord;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction};
use time::Date;
use uuid::Uuid;

use super::queries::{BookedPage, Sql};
use crate::batch::{OnConflict, insert_rows};
use crate::entity::recon_reversal;
use crate::{AppError, Store, page_token};

/// The reversal key of the `position`-th reversal of document `document_id`.
fn reversal_key(document_id: Uuid, position: usize, reversal: &ReversalRecord) -> String {
    reversal
        .reference
        .clone()
        .unwrap_or_else(|| format!("{document_id}#{}", position + 1))
}

/// Keeps a document's reversals, each debited from the account beside it in `accounts`;
/// one already kept under the same reference is skipped.
/// Returns how many were new.
pub(crate) async fn keep(
    txn: &DatabaseTransaction,
    creditor: &str,
    document_id: Uuid,
    accounts: &[String],
    reversals: &[ReversalRecord],
) -> Result<u64, AppError> {
    debug_assert_eq!(accounts.len(), reversals.len());
    let rows: Vec<recon_reversal::ActiveModel> = reversals
        .iter()
        .zip(accounts)
        .enumerate()
        .map(|(position, (r, account))| recon_reversal::ActiveModel {
            creditor_fiscal_code: Set(creditor.to_owned()),
            reversal_key: Set(reversal_key(document_id, position, r)),
            reference: Set(r.reference.clone()),
            reverses_bill: Set(r.reverses_bill.clone()),
            amount_cents: Set(r.amount_cents),
            booking_date: Set(r.booking_date),
            account: Set(account.clone()),
            document_id: Set(document_id),
        })
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    insert_rows(
        txn,
        rows,
        8,
        OnConflict::Skip(&["creditor_fiscal_code", "reversal_key"]),
    )
    .await
}

/// The filters of [`Store::list_treasury_reversals`], as sent; empty means any.
#[derive(Debug, Clone, Default)]
pub struct ReversalFilterInput {
    /// The creditor whose account was debited.
    pub creditor_fiscal_code: String,
    /// Booked on or after, `YYYY-MM-DD`.
    pub booked_from: String,
    /// Booked on or before, `YYYY-MM-DD`.
    pub booked_to: String,
}

/// A reversal of a credit, as its document reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalItem {
    /// The creditor whose account was debited.
    pub creditor_fiscal_code: String,
    /// Its own reference (OPI `codice_riferimento_interno`, camt `AcctSvcrRef`), when it
    /// has one.
    pub reference: Option<String>,
    /// The bill it names as reversed (OPI `esercizio/numero_bolletta_quietanza_storno`).
    pub reverses_bill: Option<String>,
    /// Cents taken back, when the document says.
    pub amount_cents: Option<i64>,
    /// Booking day, when the document says.
    pub booking_date: Option<Date>,
    /// The account (IBAN, or `OPI:<codice_ente>`).
    pub account: String,
    /// The file it was imported from.
    pub file_name: String,
}

/// One page of reversals.
#[derive(Debug, Clone)]
pub struct ReversalPage {
    /// In (creditor, reference) order.
    pub reversals: Vec<ReversalItem>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

impl Store {
    /// One page of the reversals of treasury credits, in (creditor, reference) order. A
    /// reversal whose booking day is unknown is listed only without a day filter.
    pub async fn list_treasury_reversals(
        &self,
        input: &ReversalFilterInput,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<ReversalPage, AppError> {
        let mut errors = ValidationErrors::new();
        let page = BookedPage::parse(
            "recon reversals",
            (
                &input.creditor_fiscal_code,
                &input.booked_from,
                &input.booked_to,
            ),
            &[],
            page_size_requested,
            page_token,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let db = self.db();
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(
            "SELECT r.creditor_fiscal_code, r.reversal_key, r.reference, r.reverses_bill, \
             r.amount_cents, r.booking_date, r.account, d.file_name FROM recon_reversal r \
             JOIN recon_document d ON d.id = r.document_id WHERE 1 = 1",
        );
        page.filter(&mut sql, "r");
        page.page(&mut sql, "r", "reversal_key");
        let mut keyed = Vec::new();
        for row in db.query_all_raw(sql.statement()).await? {
            let key: String = row.try_get("", "reversal_key")?;
            keyed.push((
                key,
                ReversalItem {
                    creditor_fiscal_code: row.try_get("", "creditor_fiscal_code")?,
                    reference: row.try_get("", "reference")?,
                    reverses_bill: row.try_get("", "reverses_bill")?,
                    amount_cents: row.try_get("", "amount_cents")?,
                    booking_date: row.try_get("", "booking_date")?,
                    account: row.try_get("", "account")?,
                    file_name: row.try_get("", "file_name")?,
                },
            ));
        }
        let more = keyed.len() as u64 > page.size;
        keyed.truncate(usize::try_from(page.size).unwrap_or(usize::MAX));
        let next_page_token = match (more, keyed.last()) {
            (true, Some((key, last))) => page_token::encode_key(
                &[last.creditor_fiscal_code.clone(), key.clone()],
                &page.fingerprint,
            ),
            _ => String::new(),
        };
        Ok(ReversalPage {
            reversals: keyed.into_iter().map(|(_, item)| item).collect(),
            next_page_token,
        })
    }
}
