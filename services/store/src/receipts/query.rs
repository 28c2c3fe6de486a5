//! The read side of receipts, for the finance office and operators: stored receipts by
//! classification, flag, notice, key and payment day with stable page tokens, in bounded
//! chunks for export (the refund worklist is the receipts classified `double_payment` or
//! `closed_notice`); one receipt with its transfers, the ledger entries it caused and its
//! parked state; the conflicts recorded under a receipt's key. Nothing here returns the debtor
//! or the payer: they stay in the encrypted raw message.
//!
//! Receipts are listed in the order of their row id, a UUIDv7 taken when the receipt was
//! stored: time-ordered, unique and the primary key, so a page token is "after id x" and a
//! page never repeats or skips a row that existed when the listing began.

use std::collections::BTreeSet;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DbBackend, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::RECEIPT_ID_MAX_CHARS;
use incasso_domain::notice_number::Iuv;
use incasso_domain::receipt::{Classification, ReceiptFlag};
use incasso_domain::rome_time::start_of_rome_day;
use incasso_domain::validation::{ValidationErrors, parse_date};

use super::park::ParkedReceipt;
use crate::Store;
use crate::entity::{parked_receipt, receipt, receipt_conflict, receipt_transfer};
use crate::error::AppError;
use crate::ledger::{EntryFilterInput, StoredEntry};
use crate::page_token;

const DEFAULT_PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 1000;
/// Ledger entries read per query while collecting a receipt's entries.
const ENTRY_CHUNK: u64 = 100;

/// The filters of a receipt query, as sent; empty strings mean "any".
#[derive(Debug, Clone, Default)]
pub struct ReceiptFilterInput {
    /// Any of these classifications; empty for every one.
    pub classifications: Vec<Classification>,
    /// Receipts carrying this flag.
    pub flag: Option<ReceiptFlag>,
    /// The notice number as sent (18 digits).
    pub notice_number: String,
    /// IUV.
    pub iuv: String,
    /// PagoPA's receiptId.
    pub receipt_id: String,
    /// The notice's creditor (the key's creditor).
    pub creditor_fiscal_code: String,
    /// Paid on or after this Europe/Rome day, `YYYY-MM-DD`.
    pub paid_from: String,
    /// Paid on or before this Europe/Rome day, `YYYY-MM-DD`.
    pub paid_to: String,
}

/// A parsed receipt filter: what [`Store::receipts_after`] takes.
#[derive(Debug, Clone, Default)]
pub struct ReceiptFilter {
    classifications: BTreeSet<Classification>,
    flag: Option<ReceiptFlag>,
    notice_number: Option<String>,
    iuv: Option<String>,
    receipt_id: Option<String>,
    creditor: Option<String>,
    /// Start of the first Rome day (included).
    paid_from: Option<OffsetDateTime>,
    /// Start of the Rome day after the last (excluded).
    paid_to: Option<OffsetDateTime>,
}

fn optional(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

/// A notice-number filter: 18 digits (the printed spaces ignored). Check digits are not
/// checked, because receipts are stored with the notice number as sent, even a wrong one.
fn notice_filter(errors: &mut ValidationErrors, text: &str) -> Option<String> {
    let text = optional(text)?;
    let digits: String = text.chars().filter(|c| *c != ' ').collect();
    if digits.len() != 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        errors.add(
            "notice_number",
            format!("'{text}' is not a notice number (18 digits)"),
        );
        return None;
    }
    Some(digits)
}

fn iuv_filter(errors: &mut ValidationErrors, field: &str, text: &str) -> Option<String> {
    let text = optional(text)?;
    errors
        .check(field, Iuv::parse(text))
        .map(|iuv| iuv.as_str().to_owned())
}

pub(crate) fn receipt_id_filter(
    errors: &mut ValidationErrors,
    field: &str,
    text: &str,
) -> Option<String> {
    let text = optional(text)?;
    let length = text.chars().count();
    if length > RECEIPT_ID_MAX_CHARS {
        errors.add(
            field,
            format!(
                "{length} characters: no receipt is accepted with more than {RECEIPT_ID_MAX_CHARS}"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// A creditor filter. Any creditor's fiscal code is accepted, not only those incasso issues
/// for: a receipt for another creditor's notice is stored under that creditor's key.
fn creditor_filter(errors: &mut ValidationErrors, field: &str, text: &str) -> Option<String> {
    let text = optional(text)?;
    errors
        .check(field, OrganizationFiscalCode::parse(text))
        .map(|c| c.as_str().to_owned())
}

impl ReceiptFilterInput {
    /// Parses every filter, naming each bad one.
    fn parse(&self, errors: &mut ValidationErrors) -> ReceiptFilter {
        let day = |errors: &mut ValidationErrors, field: &str, text: &str| {
            optional(text).and_then(|t| errors.check(field, parse_date(t)))
        };
        let from = day(errors, "paid_from", &self.paid_from);
        let to = day(errors, "paid_to", &self.paid_to);
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            errors.add("paid_to", "must not be before paid_from");
        }
        ReceiptFilter {
            classifications: self.classifications.iter().copied().collect(),
            flag: self.flag,
            notice_number: notice_filter(errors, &self.notice_number),
            iuv: iuv_filter(errors, "iuv", &self.iuv),
            receipt_id: receipt_id_filter(errors, "receipt_id", &self.receipt_id),
            creditor: creditor_filter(errors, "creditor_fiscal_code", &self.creditor_fiscal_code),
            paid_from: from.map(start_of_rome_day),
            paid_to: to.map(|d| start_of_rome_day(d.next_day().unwrap_or(d))),
        }
    }
}

/// Every stored form of a flag set that contains `flag`. Flags are stored joined in one
/// canonical order ([`ReceiptFlag::join`]), so the sets holding a flag are few and exact,
/// where a `LIKE` on the text would have to escape the `_` in the flags' names.
fn stored_flag_sets(flag: ReceiptFlag) -> Vec<String> {
    let all = ReceiptFlag::ALL;
    (0u32..1 << all.len())
        .map(|mask| {
            all.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| *f)
                .collect::<Vec<_>>()
        })
        .filter(|set| set.contains(&flag))
        .map(|set| ReceiptFlag::join(&set))
        .collect()
}

/// The instant of the start of a second as SQLite compares it: whole seconds since the epoch.
fn epoch_seconds(instant: OffsetDateTime) -> i64 {
    instant.unix_timestamp()
}

impl ReceiptFilter {
    fn condition(&self, backend: DbBackend) -> Condition {
        let mut condition = Condition::all();
        if !self.classifications.is_empty() {
            condition = condition.add(
                receipt::Column::Classification
                    .is_in(self.classifications.iter().map(|c| c.as_str())),
            );
        }
        if let Some(flag) = self.flag {
            condition = condition.add(receipt::Column::Flags.is_in(stored_flag_sets(flag)));
        }
        if let Some(notice) = &self.notice_number {
            condition = condition.add(receipt::Column::NoticeNumber.eq(notice.as_str()));
        }
        if let Some(iuv) = &self.iuv {
            condition = condition.add(receipt::Column::Iuv.eq(iuv.as_str()));
        }
        if let Some(id) = &self.receipt_id {
            condition = condition.add(receipt::Column::ReceiptId.eq(id.as_str()));
        }
        if let Some(creditor) = &self.creditor {
            condition = condition.add(receipt::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        match backend {
            // SQLite keeps the instant as RFC 3339 text with the offset it was read with
            // (Rome time for most receipts), which does not compare as text across offsets:
            // compared as whole seconds since the epoch instead. The bounds are whole
            // seconds, so truncating the stored fraction decides every case exactly.
            DbBackend::Sqlite => {
                let seconds = "CAST(strftime('%s', paid_at) AS INTEGER)";
                if let Some(from) = self.paid_from {
                    condition = condition.add(Expr::cust_with_values(
                        format!("{seconds} >= ?"),
                        [epoch_seconds(from)],
                    ));
                }
                if let Some(to) = self.paid_to {
                    condition = condition.add(Expr::cust_with_values(
                        format!("{seconds} < ?"),
                        [epoch_seconds(to)],
                    ));
                }
            }
            _ => {
                if let Some(from) = self.paid_from {
                    condition = condition.add(receipt::Column::PaidAt.gte(from));
                }
                if let Some(to) = self.paid_to {
                    condition = condition.add(receipt::Column::PaidAt.lt(to));
                }
            }
        }
        condition
    }

    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"receipts\0");
        let classifications: Vec<&str> = self.classifications.iter().map(|c| c.as_str()).collect();
        let parts = [
            Some(classifications.join(",")),
            self.flag.map(|f| f.as_str().to_owned()),
            self.notice_number.clone(),
            self.iuv.clone(),
            self.receipt_id.clone(),
            self.creditor.clone(),
            self.paid_from.map(|t| t.unix_timestamp().to_string()),
            self.paid_to.map(|t| t.unix_timestamp().to_string()),
        ];
        for part in parts {
            hasher.update(part.unwrap_or_default().as_bytes());
            hasher.update(b"\0");
        }
        hex::encode(&hasher.finalize()[..8])
    }
}

/// A stored receipt's facts, as the finance office sees them: no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    /// The row id.
    pub id: Uuid,
    /// The notice's creditor (key).
    pub creditor_fiscal_code: String,
    /// IUV (key).
    pub iuv: String,
    /// PagoPA's receiptId (key).
    pub receipt_id: String,
    /// The notice number as sent.
    pub notice_number: String,
    /// The creditor that received it (idPA).
    pub receiving_creditor: String,
    /// paSendRT, paSendRTV2, or bizEvents when recovered.
    pub primitive: String,
    /// idPSP.
    pub psp_id: String,
    /// idChannel.
    pub channel_id: String,
    /// What was paid, cents.
    pub payment_amount_cents: i64,
    /// The PSP's fee, cents, when the receipt says.
    pub fee_cents: Option<i64>,
    /// paymentDateTime as sent.
    pub payment_date_time: Option<String>,
    /// paymentDateTime as an instant.
    pub paid_at: Option<OffsetDateTime>,
    /// Paid in Stand-In.
    pub stand_in: bool,
    /// How it was booked.
    pub classification: Classification,
    /// What an operator should know.
    pub flags: Vec<ReceiptFlag>,
    /// The position it paid, when incasso knows the notice.
    pub debt_position_id: Option<Uuid>,
    /// The installment it paid.
    pub installment_id: Option<Uuid>,
    /// When incasso stored it.
    pub received_at: OffsetDateTime,
    /// Recovered from PagoPA's biz-events API, not delivered by the Node.
    pub recovered: bool,
}

impl TryFrom<receipt::Model> for StoredReceipt {
    type Error = AppError;

    fn try_from(row: receipt::Model) -> Result<Self, AppError> {
        let classification = Classification::parse(&row.classification).ok_or_else(|| {
            AppError::corrupt(format!(
                "receipt {}: unknown classification '{}'",
                row.id, row.classification
            ))
        })?;
        let flags = row
            .flags
            .split(',')
            .filter(|f| !f.is_empty())
            .map(|f| {
                ReceiptFlag::parse(f).ok_or_else(|| {
                    AppError::corrupt(format!("receipt {}: unknown flag '{f}'", row.id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            id: row.id,
            creditor_fiscal_code: row.creditor_fiscal_code,
            iuv: row.iuv,
            receipt_id: row.receipt_id,
            notice_number: row.notice_number,
            receiving_creditor: row.receiving_creditor,
            primitive: row.primitive,
            psp_id: row.psp_id,
            channel_id: row.channel_id,
            payment_amount_cents: row.payment_amount_cents,
            fee_cents: row.fee_cents,
            payment_date_time: row.payment_date_time,
            paid_at: row.paid_at,
            stand_in: row.stand_in,
            classification,
            flags,
            debt_position_id: row.debt_position_id,
            installment_id: row.installment_id,
            received_at: row.received_at,
            recovered: row.recovered,
        })
    }
}

/// One page of receipts.
#[derive(Debug, Clone)]
pub struct ReceiptPage {
    /// Receipts in row-id order.
    pub receipts: Vec<StoredReceipt>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

/// One transfer of a stored receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceiptTransfer {
    /// idTransfer (1..5).
    pub id_transfer: i16,
    /// Beneficiary fiscal code.
    pub beneficiary_fiscal_code: String,
    /// The account credited; `None` for a digital stamp.
    pub iban: Option<String>,
    /// Cents.
    pub amount_cents: i64,
    /// remittanceInformation, as the notice's creditor wrote it when it issued the notice.
    pub remittance_information: String,
    /// transferCategory (taxonomy code).
    pub transfer_category: String,
}

/// How [`Store::get_receipt`] finds a receipt. Texts are as sent; each is checked and named
/// by its field path when wrong.
#[derive(Debug, Clone)]
pub enum ReceiptLookup {
    /// By row id (`id`).
    Id(String),
    /// By PagoPA's key (`key.creditor_fiscal_code`, `key.iuv`, `key.receipt_id`).
    Key {
        /// The notice's creditor.
        creditor_fiscal_code: String,
        /// IUV.
        iuv: String,
        /// receiptId.
        receipt_id: String,
    },
}

/// One receipt with everything known about it.
#[derive(Debug, Clone)]
pub struct ReceiptDetail {
    /// Its facts.
    pub receipt: StoredReceipt,
    /// Its transfers, in list order.
    pub transfers: Vec<StoredReceiptTransfer>,
    /// The ledger entries its booking wrote, in sequence order.
    pub ledger_entries: Vec<StoredEntry>,
    /// Its parked state, if it is or was parked.
    pub parked: Option<ParkedReceipt>,
}

/// The filters of a conflict query, as sent; empty strings mean "any".
#[derive(Debug, Clone, Default)]
pub struct ConflictFilterInput {
    /// The key's creditor.
    pub creditor_fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// receiptId.
    pub receipt_id: String,
}

/// A delivery whose content differed from the receipt stored under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptConflict {
    /// The conflict's row id.
    pub id: Uuid,
    /// The key's creditor.
    pub creditor_fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// receiptId.
    pub receipt_id: String,
    /// The keyed hash of the conflicting delivery's content (hex).
    pub content_sha256: String,
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// The row id of the receipt stored under the key.
    pub receipt_row_id: Option<Uuid>,
}

/// One page of conflicts.
#[derive(Debug, Clone)]
pub struct ConflictPage {
    /// Conflicts in row-id order (the order they arrived).
    pub conflicts: Vec<ReceiptConflict>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

pub(super) fn page_size(errors: &mut ValidationErrors, page_size: i32) -> u64 {
    match u64::try_from(page_size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(size) if size <= MAX_PAGE_SIZE => size,
        _ => {
            errors.add(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            );
            DEFAULT_PAGE_SIZE
        }
    }
}

fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()
}

impl Store {
    /// Parses a receipt filter once, for [`Store::receipts_after`] (an export).
    pub fn parse_receipt_filter(
        &self,
        input: &ReceiptFilterInput,
    ) -> Result<ReceiptFilter, AppError> {
        let mut errors = ValidationErrors::new();
        let filter = input.parse(&mut errors);
        errors.into_result(|| filter).map_err(AppError::Invalid)
    }

    /// Receipts matching `filter` with row id after `after`, at most `limit`, in row-id
    /// order. An export calls it chunk after chunk, holding one chunk in memory at a time.
    pub async fn receipts_after(
        &self,
        filter: &ReceiptFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<StoredReceipt>, AppError> {
        let mut query =
            receipt::Entity::find().filter(filter.condition(self.db().get_database_backend()));
        if let Some(after) = after {
            query = query.filter(receipt::Column::Id.gt(after));
        }
        query
            .order_by(receipt::Column::Id, Order::Asc)
            .limit(limit)
            .all(self.db())
            .await?
            .into_iter()
            .map(StoredReceipt::try_from)
            .collect()
    }

    /// One page of receipts matching every filter, in row-id order.
    pub async fn list_receipts(
        &self,
        input: &ReceiptFilterInput,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<ReceiptPage, AppError> {
        let mut errors = ValidationErrors::new();
        let filter = input.parse(&mut errors);
        let size = page_size(&mut errors, page_size_requested);
        let fingerprint = filter.fingerprint();
        let after = page_token::decode(&mut errors, page_token, &fingerprint);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut receipts = self.receipts_after(&filter, after, size + 1).await?;
        let more = receipts.len() as u64 > size;
        receipts.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_page_token = match (more, receipts.last()) {
            (true, Some(last)) => page_token::encode(last.id, &fingerprint),
            _ => String::new(),
        };
        Ok(ReceiptPage {
            receipts,
            next_page_token,
        })
    }

    /// One receipt, by row id or by key, with its transfers, its ledger entries and its
    /// parked state.
    pub async fn get_receipt(&self, lookup: &ReceiptLookup) -> Result<ReceiptDetail, AppError> {
        let mut errors = ValidationErrors::new();
        let query = match lookup {
            ReceiptLookup::Id(id) => {
                let id = id.trim();
                match Uuid::try_parse(id) {
                    Ok(id) => Some(receipt::Entity::find_by_id(id)),
                    Err(_) => {
                        errors.add("id", format!("'{id}' is not a receipt id (UUID)"));
                        None
                    }
                }
            }
            ReceiptLookup::Key {
                creditor_fiscal_code,
                iuv,
                receipt_id,
            } => {
                let creditor = creditor_filter(
                    &mut errors,
                    "key.creditor_fiscal_code",
                    creditor_fiscal_code,
                );
                let iuv = iuv_filter(&mut errors, "key.iuv", iuv);
                let receipt_id = receipt_id_filter(&mut errors, "key.receipt_id", receipt_id);
                for (field, value) in [
                    ("key.creditor_fiscal_code", &creditor),
                    ("key.iuv", &iuv),
                    ("key.receipt_id", &receipt_id),
                ] {
                    if value.is_none() && !errors.violations().iter().any(|v| v.field == field) {
                        errors.add(field, "required");
                    }
                }
                match (creditor, iuv, receipt_id) {
                    (Some(creditor), Some(iuv), Some(receipt_id)) => Some(
                        receipt::Entity::find()
                            .filter(receipt::Column::CreditorFiscalCode.eq(creditor))
                            .filter(receipt::Column::Iuv.eq(iuv))
                            .filter(receipt::Column::ReceiptId.eq(receipt_id)),
                    ),
                    _ => None,
                }
            }
        };
        let Some(query) = query.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let row = query
            .one(self.db())
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "receipt".to_owned(),
            })?;
        let document_id = row.source_document_id;
        let receipt = StoredReceipt::try_from(row)?;
        let transfers = receipt_transfer::Entity::find()
            .filter(receipt_transfer::Column::ReceiptRowId.eq(receipt.id))
            .order_by(receipt_transfer::Column::TransferIndex, Order::Asc)
            .all(self.db())
            .await?
            .into_iter()
            .map(|t| StoredReceiptTransfer {
                id_transfer: t.id_transfer,
                beneficiary_fiscal_code: t.beneficiary_fiscal_code,
                iban: t.iban,
                amount_cents: t.amount_cents,
                remittance_information: t.remittance_information,
                transfer_category: t.transfer_category,
            })
            .collect();
        let ledger_entries = self
            .entries_of_receipt(&receipt.receipt_id, document_id)
            .await?;
        let parked = self.parked_state(&receipt).await?;
        Ok(ReceiptDetail {
            receipt,
            transfers,
            ledger_entries,
            parked,
        })
    }

    /// The entries a receipt's booking wrote: the ledger's own receiptId filter, narrowed to
    /// the entries whose source document is this receipt's raw message, since a receiptId
    /// is only unique together with its creditor and IUV.
    async fn entries_of_receipt(
        &self,
        receipt_id: &str,
        document_id: Uuid,
    ) -> Result<Vec<StoredEntry>, AppError> {
        let mut export = self.parse_export_filter(&EntryFilterInput {
            receipt_id: receipt_id.to_owned(),
            ..EntryFilterInput::default()
        })?;
        let mut after = 0;
        let mut found = Vec::new();
        loop {
            let chunk = self.export_chunk(&mut export, after, ENTRY_CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            after = last.entry.sequence;
            found.extend(
                chunk
                    .into_iter()
                    .filter(|e| e.source_document_id == Some(document_id)),
            );
        }
        Ok(found)
    }

    async fn parked_state(
        &self,
        receipt: &StoredReceipt,
    ) -> Result<Option<ParkedReceipt>, AppError> {
        let Some(parked) = parked_receipt::Entity::find_by_id(receipt.id)
            .one(self.db())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ParkedReceipt {
            id: receipt.id,
            creditor_fiscal_code: receipt.creditor_fiscal_code.clone(),
            iuv: receipt.iuv.clone(),
            receipt_id: receipt.receipt_id.clone(),
            notice_number: receipt.notice_number.clone(),
            payment_amount_cents: receipt.payment_amount_cents,
            reason: parked.reason,
            attempts: parked.attempts,
            parked_at: parked.parked_at,
            last_attempt_at: parked.last_attempt_at,
            next_attempt_at: if parked.booked_at.is_none() {
                from_micros(parked.next_attempt_micros)
            } else {
                None
            },
            booked_at: parked.booked_at,
        }))
    }

    /// One page of conflicts matching every filter, in the order they arrived, each with the
    /// row id of the receipt stored under its key.
    pub async fn list_receipt_conflicts(
        &self,
        input: &ConflictFilterInput,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<ConflictPage, AppError> {
        let mut errors = ValidationErrors::new();
        let creditor = creditor_filter(
            &mut errors,
            "creditor_fiscal_code",
            &input.creditor_fiscal_code,
        );
        let iuv = iuv_filter(&mut errors, "iuv", &input.iuv);
        let receipt_id = receipt_id_filter(&mut errors, "receipt_id", &input.receipt_id);
        let size = page_size(&mut errors, page_size_requested);
        let fingerprint = {
            let mut hasher = Sha256::new();
            hasher.update(b"receipt conflicts\0");
            for part in [&creditor, &iuv, &receipt_id] {
                hasher.update(part.as_deref().unwrap_or_default().as_bytes());
                hasher.update(b"\0");
            }
            hex::encode(&hasher.finalize()[..8])
        };
        let after = page_token::decode(&mut errors, page_token, &fingerprint);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut query = receipt_conflict::Entity::find();
        if let Some(creditor) = &creditor {
            query =
                query.filter(receipt_conflict::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        if let Some(iuv) = &iuv {
            query = query.filter(receipt_conflict::Column::Iuv.eq(iuv.as_str()));
        }
        if let Some(receipt_id) = &receipt_id {
            query = query.filter(receipt_conflict::Column::ReceiptId.eq(receipt_id.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(receipt_conflict::Column::Id.gt(after));
        }
        let mut rows = query
            .order_by(receipt_conflict::Column::Id, Order::Asc)
            .limit(size + 1)
            .all(self.db())
            .await?;
        let more = rows.len() as u64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => page_token::encode(last.id, &fingerprint),
            _ => String::new(),
        };
        let mut conflicts = Vec::with_capacity(rows.len());
        for row in rows {
            // At most a page of single-row lookups on the key's unique index.
            let receipt_row_id: Option<Uuid> = receipt::Entity::find()
                .select_only()
                .column(receipt::Column::Id)
                .filter(receipt::Column::CreditorFiscalCode.eq(row.creditor_fiscal_code.as_str()))
                .filter(receipt::Column::Iuv.eq(row.iuv.as_str()))
                .filter(receipt::Column::ReceiptId.eq(row.receipt_id.as_str()))
                .into_tuple()
                .one(self.db())
                .await?;
            conflicts.push(ReceiptConflict {
                id: row.id,
                creditor_fiscal_code: row.creditor_fiscal_code,
                iuv: row.iuv,
                receipt_id: row.receipt_id,
                content_sha256: row.content_sha256,
                received_at: row.received_at,
                receipt_row_id,
            });
        }
        Ok(ConflictPage {
            conflicts,
            next_page_token,
        })
    }

    /// The ids in `ids` that name no receipt that is or was parked, so that a retry can
    /// refuse an unknown id before it retries anything.
    pub async fn unknown_parked_receipts(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, AppError> {
        let mut known = BTreeSet::new();
        for chunk in ids.chunks(1000) {
            let found: Vec<Uuid> = parked_receipt::Entity::find()
                .select_only()
                .column(parked_receipt::Column::ReceiptRowId)
                .filter(parked_receipt::Column::ReceiptRowId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(self.db())
                .await?;
            known.extend(found);
        }
        Ok(ids
            .iter()
            .filter(|id| !known.contains(id))
            .copied()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_filter_matches_exactly_the_stored_sets_holding_it() {
        let sets = stored_flag_sets(ReceiptFlag::Late);
        assert_eq!(sets.len(), 8);
        assert!(sets.contains(&"late".to_owned()));
        assert!(sets.contains(&"stand_in,late,amount_differs,other_creditor_notice".to_owned()));
        assert!(sets.contains(&"late,other_creditor_notice".to_owned()));
        assert!(!sets.iter().any(|s| s == "stand_in" || s.is_empty()));
    }

    #[test]
    fn page_tokens_are_bound_to_their_filters() {
        let mut errors = ValidationErrors::new();
        let token = page_token::encode(Uuid::nil(), "0123456789abcdef");
        assert_eq!(
            page_token::decode(&mut errors, &token, "0123456789abcdef"),
            Some(Uuid::nil())
        );
        assert!(errors.is_empty());
        assert_eq!(
            page_token::decode(&mut errors, &token, "fedcba9876543210"),
            None
        );
        assert_eq!(
            page_token::decode(&mut errors, "nonsense", "fedcba9876543210"),
            None
        );
        let fields: Vec<&str> = errors
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["page_token", "page_token"]);
        assert_eq!(
            errors.violations()[0].description,
            "belongs to a query with other filters"
        );
    }
}
