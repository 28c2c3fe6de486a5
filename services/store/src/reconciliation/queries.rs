//! The finance office's reading of reconciliation: transfers with their labels and scope,
//! reporting flows with their treasury state, treasury credits with their references, a
//! transfer key's label history and a summary of a date range. Lists are keyset-paged on
//! their natural keys (creditor first) with opaque page tokens bound to the filters, so a
//! page never repeats or skips an item that existed when the listing began.
//!
//! A transfer is one key (beneficiary, IUV, receiptId, idTransfer) found in a paid receipt or
//! in a labelled FdR line. It is the creditor's own (`Creditor`) when the beneficiary
//! reconciles it: the receipt was delivered to the beneficiary itself, or a label exists for
//! it; any other transfer of a receipt (the TEFA of the Città Metropolitana in a TARI receipt
//! of Milan) is another beneficiary's and carries no label. A creditor's transfer without a
//! label was paid after the last import and is labelled by the next one (or `incasso recon
//! refresh`). Only the latest revision of a flow counts, as in labelling.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::settlement::reported_key;
use incasso_domain::ledger::{Account, RECEIPT_ID_MAX_CHARS};
use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    Assessment, CausaleReferences, CreditId, FlowId, FlowTreasuryState, Label, Suggestion,
    TransferIndex, TransferKey, compose_plain, parse_causale,
};
use incasso_domain::rome_time::{rome_date, start_of_rome_day};
use incasso_domain::validation::{ValidationErrors, parse_date};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryResult, Statement,
    Value,
};
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use super::duplicates::{CreditMovement, PossibleDuplicate, possible_duplicates};
use super::reversals::ReversalFilterInput;
use super::{composed, plain};
use crate::{AppError, Store, page_token};

const DEFAULT_PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 1000;
/// Transfers read per query while a summary walks its range.
const SUMMARY_CHUNK: i32 = 1000;

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("stored reconciliation data is invalid: {what}"))
}

/// A statement built piece by piece, with each engine's placeholders.
pub(super) struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(super) fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(super) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        if self.backend == DbBackend::Postgres {
            let n = self.values.len();
            self.text.push_str(&format!("${n}"));
        } else {
            self.text.push('?');
        }
        self
    }

    pub(super) fn statement(&self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text.clone(), self.values.clone())
    }
}

/// An instant column as the engine compares it with [`Sql::bind_instant`]: SQLite keeps
/// instants as RFC 3339 text in the offset they were read with, which does not compare as
/// text across offsets, so there they compare as whole seconds since the epoch (the bounds
/// are whole seconds, so that decides every case exactly).
fn instant_expr(backend: DbBackend, column: &str) -> String {
    if backend == DbBackend::Postgres {
        column.to_owned()
    } else {
        format!("CAST(strftime('%s', {column}) AS INTEGER)")
    }
}

impl Sql {
    fn bind_instant(&mut self, instant: OffsetDateTime) -> &mut Self {
        if self.backend == DbBackend::Postgres {
            self.bind(instant)
        } else {
            self.bind(instant.unix_timestamp())
        }
    }

    /// `flow` (a `recon_flow` alias) is the revision that counts.
    fn counting(&mut self, flow: &str) -> &mut Self {
        let backend = self.backend;
        self.push(&counting_sql(backend, flow))
    }
}

/// SQL true when `flow` (a `recon_flow` alias) is the revision that counts: no later revision
/// of its flow, the latest being by (dataOraFlusso, revision).
pub(super) fn counting_sql(backend: DbBackend, flow: &str) -> String {
    let later = format!("{flow}_later");
    let (a, b) = if backend == DbBackend::Postgres {
        (format!("{later}.created_at"), format!("{flow}.created_at"))
    } else {
        (
            format!("julianday({later}.created_at)"),
            format!("julianday({flow}.created_at)"),
        )
    };
    format!(
        "NOT EXISTS (SELECT 1 FROM recon_flow {later} WHERE \
         {later}.creditor_fiscal_code = {flow}.creditor_fiscal_code AND {later}.flow_id = {flow}.flow_id \
         AND ({a} > {b} OR ({a} = {b} AND {later}.revision > {flow}.revision)))"
    )
}

fn optional(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

fn creditor_filter(errors: &mut ValidationErrors, text: &str) -> Option<String> {
    let text = optional(text)?;
    errors
        .check("creditor_fiscal_code", OrganizationFiscalCode::parse(text))
        .map(|c| c.as_str().to_owned())
}

fn day_filter(errors: &mut ValidationErrors, field: &str, text: &str) -> Option<Date> {
    optional(text).and_then(|t| errors.check(field, parse_date(t)))
}

fn day_range(
    errors: &mut ValidationErrors,
    (from_field, from): (&str, &str),
    (to_field, to): (&str, &str),
) -> (Option<Date>, Option<Date>) {
    let from = day_filter(errors, from_field, from);
    let to = day_filter(errors, to_field, to);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.add(to_field, format!("must not be before {from_field}"));
    }
    (from, to)
}

fn fingerprint(kind: &str, parts: &[Option<String>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b"\0");
    for part in parts {
        hasher.update(part.as_deref().unwrap_or_default().as_bytes());
        hasher.update(b"\0");
    }
    hex::encode(&hasher.finalize()[..8])
}

/// A page of a treasury list (credits, reversals) by creditor and booking days, its filters
/// validated and its page token read.
pub(super) struct BookedPage {
    creditor: Option<String>,
    from: Option<Date>,
    to: Option<Date>,
    /// Rows per page.
    pub size: u64,
    /// What the page tokens are bound to.
    pub fingerprint: String,
    after: Option<Vec<String>>,
}

impl BookedPage {
    /// Validates the filters and the page: every bad field is named, together.
    /// `more` are the list's own filters, which its page tokens are bound to as well.
    pub(super) fn parse(
        kind: &str,
        (creditor, booked_from, booked_to): (&str, &str, &str),
        more: &[Option<String>],
        page_size_requested: i32,
        page_token: &str,
        errors: &mut ValidationErrors,
    ) -> Self {
        let creditor = creditor_filter(errors, creditor);
        let (from, to) = day_range(
            errors,
            ("booked_from", booked_from),
            ("booked_to", booked_to),
        );
        let size = page_token::page_size(
            errors,
            page_size_requested,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        );
        let mut parts = vec![creditor.clone()];
        parts.extend_from_slice(more);
        parts.extend([from.map(|d| d.to_string()), to.map(|d| d.to_string())]);
        let fingerprint = fingerprint(kind, &parts);
        let after = page_token::decode_key(errors, page_token, &fingerprint, 2);
        Self {
            creditor,
            from,
            to,
            size,
            fingerprint,
            after,
        }
    }

    /// Appends the creditor and day filters on `alias`.
    pub(super) fn filter(&self, sql: &mut Sql, alias: &str) {
        if let Some(creditor) = &self.creditor {
            sql.push(&format!(" AND {alias}.creditor_fiscal_code = "))
                .bind(creditor.clone());
        }
        if let Some(from) = self.from {
            sql.push(&format!(" AND {alias}.booking_date >= "))
                .bind(from);
        }
        if let Some(to) = self.to {
            sql.push(&format!(" AND {alias}.booking_date <= ")).bind(to);
        }
    }

    /// Appends the page: after the token's key, in (creditor, `key`) order, one row more
    /// than the page to tell whether another follows.
    pub(super) fn page(&self, sql: &mut Sql, alias: &str, key: &str) {
        if let Some([creditor, last]) = self.after.as_deref() {
            sql.push(&format!(
                " AND ({alias}.creditor_fiscal_code, {alias}.{key}) > ("
            ))
            .bind(creditor.clone())
            .push(", ")
            .bind(last.clone())
            .push(")");
        }
        sql.push(&format!(
            " ORDER BY {alias}.creditor_fiscal_code, {alias}.{key} LIMIT "
        ))
        .bind(i64::try_from(self.size + 1).unwrap_or(i64::MAX));
    }
}

fn parse_label(code: Option<String>) -> Result<Option<Label>, AppError> {
    code.map(|c| Label::parse(&c).ok_or_else(|| corrupt(c)))
        .transpose()
}

fn parse_assessment(text: Option<String>) -> Result<Option<Assessment>, AppError> {
    text.map(|t| serde_json::from_str(&t).map_err(corrupt))
        .transpose()
}

/// Whose a transfer is, seen from the creditor that received the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferScope {
    /// The beneficiary's own transfer, which it reconciles.
    Creditor,
    /// Another beneficiary's transfer in a receipt the creditor received: outside the
    /// creditor's reconciliation, never labelled.
    OtherBeneficiary,
}

/// The filters of [`Store::list_reconciliation_transfers`], as sent; empty means any.
#[derive(Debug, Clone, Default)]
pub struct TransferFilterInput {
    /// The transfer's creditor (its beneficiary).
    pub creditor_fiscal_code: String,
    /// Only transfers whose primary label is this.
    pub label: Option<Label>,
    /// IUV.
    pub iuv: String,
    /// receiptId (IUR).
    pub receipt_id: String,
    /// Transfers reported by this flow (its latest revision).
    pub flow_id: String,
    /// Paid on or after this Europe/Rome day, `YYYY-MM-DD` (an FdR line without receipt:
    /// its `dataEsitoSingoloPagamento`).
    pub paid_from: String,
    /// Paid on or before this Europe/Rome day, `YYYY-MM-DD`.
    pub paid_to: String,
    /// Only this scope.
    pub scope: Option<TransferScope>,
}

#[derive(Debug, Clone, Default)]
struct TransferFilter {
    creditor: Option<String>,
    label: Option<Label>,
    iuv: Option<String>,
    receipt_id: Option<String>,
    flow_id: Option<String>,
    paid_from: Option<Date>,
    paid_to: Option<Date>,
    scope: Option<TransferScope>,
}

impl TransferFilterInput {
    fn parse(&self, errors: &mut ValidationErrors) -> TransferFilter {
        let (paid_from, paid_to) = day_range(
            errors,
            ("paid_from", &self.paid_from),
            ("paid_to", &self.paid_to),
        );
        let receipt_id = optional(&self.receipt_id).and_then(|text| {
            let length = text.chars().count();
            if length > RECEIPT_ID_MAX_CHARS {
                errors.add(
                    "receipt_id",
                    format!("{length} characters: a receiptId has at most {RECEIPT_ID_MAX_CHARS}"),
                );
                None
            } else {
                Some(text.to_owned())
            }
        });
        TransferFilter {
            creditor: creditor_filter(errors, &self.creditor_fiscal_code),
            label: self.label,
            iuv: optional(&self.iuv)
                .and_then(|t| errors.check("iuv", Iuv::parse(t)))
                .map(|iuv| iuv.as_str().to_owned()),
            receipt_id,
            flow_id: optional(&self.flow_id)
                .and_then(|t| errors.check("flow_id", FlowId::parse(t)))
                .map(String::from),
            paid_from,
            paid_to,
            scope: self.scope,
        }
    }
}

impl TransferFilter {
    fn fingerprint(&self) -> String {
        fingerprint(
            "recon transfers",
            &[
                self.creditor.clone(),
                self.label.map(|l| l.code().to_owned()),
                self.iuv.clone(),
                self.receipt_id.clone(),
                self.flow_id.clone(),
                self.paid_from.map(|d| d.to_string()),
                self.paid_to.map(|d| d.to_string()),
                self.scope.map(|s| format!("{s:?}")),
            ],
        )
    }

    /// The payment-day bounds as instants: the start of the first day, the start of the day
    /// after the last.
    fn paid_instants(&self) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        (
            self.paid_from.map(start_of_rome_day),
            self.paid_to
                .map(|d| start_of_rome_day(d.next_day().unwrap_or(d))),
        )
    }

    /// `AND` the receipt `r` (paid_at, else received_at) was paid within the range.
    fn receipt_paid_in_range(&self, sql: &mut Sql, r: &str) {
        let paid = instant_expr(
            sql.backend,
            &format!("COALESCE({r}.paid_at, {r}.received_at)"),
        );
        let (from, to) = self.paid_instants();
        if let Some(from) = from {
            sql.push(&format!(" AND {paid} >= ")).bind_instant(from);
        }
        if let Some(to) = to {
            sql.push(&format!(" AND {paid} < ")).bind_instant(to);
        }
    }

    /// `AND` the key (column expressions) is a line of the latest revision of the filter's flow.
    fn in_flow(&self, sql: &mut Sql, [creditor, iuv, receipt_id, id_transfer]: [&str; 4]) {
        let Some(flow_id) = &self.flow_id else {
            return;
        };
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM recon_flow_line fl JOIN recon_flow f ON f.id = fl.flow_row_id \
             WHERE f.creditor_fiscal_code = {creditor} AND fl.iuv = {iuv} AND fl.receipt_id = {receipt_id} \
             AND fl.id_transfer = {id_transfer} AND f.flow_id = "
        ))
        .bind(flow_id.clone())
        .push(" AND ")
        .counting("f")
        .push(")");
    }

    /// The keys of one page: (creditor, IUV, receiptId, idTransfer, own), in key order.
    fn page_query(
        &self,
        backend: DbBackend,
        after: Option<&[String]>,
        limit: u64,
        plain_rows: bool,
    ) -> Result<Sql, AppError> {
        let mut sql = Sql::new(backend);
        sql.push("SELECT k.creditor, k.iuv, k.receipt_id, k.id_transfer, MAX(k.own) AS own FROM (");
        // Receipt transfers; a label filter leaves only labelled keys, which the second
        // branch has.
        let receipts = self.label.is_none();
        if receipts {
            sql.push(
                "SELECT t.beneficiary_fiscal_code AS creditor, t.iuv AS iuv, t.receipt_id AS receipt_id, \
                 t.id_transfer AS id_transfer, \
                 CASE WHEN r.receiving_creditor = t.beneficiary_fiscal_code THEN 1 ELSE 0 END AS own \
                 FROM receipt_transfer t JOIN receipt r ON r.id = t.receipt_row_id \
                 WHERE r.classification <> 'not_paid'",
            );
            if let Some(creditor) = &self.creditor {
                sql.push(" AND t.beneficiary_fiscal_code = ")
                    .bind(creditor.clone());
            }
            if let Some(iuv) = &self.iuv {
                sql.push(" AND t.iuv = ").bind(iuv.clone());
            }
            if let Some(receipt_id) = &self.receipt_id {
                sql.push(" AND t.receipt_id = ").bind(receipt_id.clone());
            }
            self.in_flow(
                &mut sql,
                [
                    "t.beneficiary_fiscal_code",
                    "t.iuv",
                    "t.receipt_id",
                    "t.id_transfer",
                ],
            );
            self.receipt_paid_in_range(&mut sql, "r");
            sql.push(" UNION ALL ");
        }
        // Labelled keys: an FdR line without receipt is only here.
        sql.push(
            "SELECT l.creditor_fiscal_code AS creditor, l.iuv AS iuv, l.receipt_id AS receipt_id, \
             l.id_transfer AS id_transfer, 1 AS own FROM recon_label l WHERE l.subject_kind = 'transfer'",
        );
        if let Some(creditor) = &self.creditor {
            sql.push(" AND l.creditor_fiscal_code = ")
                .bind(creditor.clone());
        }
        if let Some(label) = self.label {
            // The label a key reads as may be composed with its flow's state; the stored
            // labels it can come from keep the filter on the label index.
            sql.push(" AND l.label IN ");
            in_list(
                &mut sql,
                composed::stored_labels_reading_as(label, plain_rows)
                    .into_iter()
                    .map(|l| l.code().to_owned()),
            );
            sql.push(&format!(
                " AND {} = ",
                composed::label_sql(backend, "l", plain_rows)
            ))
            .bind(label.code());
        }
        if let Some(iuv) = &self.iuv {
            sql.push(" AND l.iuv = ").bind(iuv.clone());
        }
        if let Some(receipt_id) = &self.receipt_id {
            sql.push(" AND l.receipt_id = ").bind(receipt_id.clone());
        }
        self.in_flow(
            &mut sql,
            [
                "l.creditor_fiscal_code",
                "l.iuv",
                "l.receipt_id",
                "l.id_transfer",
            ],
        );
        if self.paid_from.is_some() || self.paid_to.is_some() {
            // The payment day of a labelled key is its receipt's; an FdR line's only when
            // no receipt has the key.
            let copy = "FROM receipt_transfer t2 JOIN receipt r2 ON r2.id = t2.receipt_row_id \
                 WHERE r2.classification <> 'not_paid' AND t2.beneficiary_fiscal_code = l.creditor_fiscal_code \
                 AND t2.iuv = l.iuv AND t2.receipt_id = l.receipt_id AND t2.id_transfer = l.id_transfer";
            sql.push(&format!(" AND (EXISTS (SELECT 1 {copy}"));
            self.receipt_paid_in_range(&mut sql, "r2");
            sql.push(&format!(
                ") OR (NOT EXISTS (SELECT 1 {copy}) AND EXISTS (SELECT 1 FROM recon_flow_line fl \
                 JOIN recon_flow f ON f.id = fl.flow_row_id WHERE f.creditor_fiscal_code = l.creditor_fiscal_code \
                 AND fl.iuv = l.iuv AND fl.receipt_id = l.receipt_id AND fl.id_transfer = l.id_transfer"
            ));
            if let Some(from) = self.paid_from {
                sql.push(" AND fl.paid_on >= ").bind(from);
            }
            if let Some(to) = self.paid_to {
                sql.push(" AND fl.paid_on <= ").bind(to);
            }
            sql.push(" AND ").counting("f").push(")))");
        }
        sql.push(") k");
        if let Some(after) = after {
            let [creditor, iuv, receipt_id, id_transfer] = after else {
                return Err(corrupt("page position"));
            };
            let id_transfer: i16 = id_transfer.parse().map_err(corrupt)?;
            sql.push(" WHERE (k.creditor, k.iuv, k.receipt_id, k.id_transfer) > (")
                .bind(creditor.clone())
                .push(", ")
                .bind(iuv.clone())
                .push(", ")
                .bind(receipt_id.clone())
                .push(", ")
                .bind(id_transfer)
                .push(")");
        }
        sql.push(" GROUP BY k.creditor, k.iuv, k.receipt_id, k.id_transfer");
        match self.scope {
            Some(TransferScope::Creditor) => {
                sql.push(" HAVING MAX(k.own) = 1");
            }
            Some(TransferScope::OtherBeneficiary) => {
                sql.push(" HAVING MAX(k.own) = 0");
            }
            None => {}
        }
        sql.push(" ORDER BY k.creditor, k.iuv, k.receipt_id, k.id_transfer LIMIT ")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        Ok(sql)
    }
}

/// One transfer as the finance office sees it. Its key is kept as the receipt or the flow
/// stated it, not as a [`TransferKey`]: a receipt is stored whatever its receiptId's length
/// (PagoPA's longer tokens included), and such a transfer is listed rather than failing the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferItem {
    /// The beneficiary: the creditor whose transfer it is.
    pub creditor_fiscal_code: String,
    /// IUV (`creditorReferenceId`).
    pub iuv: String,
    /// receiptId (IUR).
    pub receipt_id: String,
    /// idTransfer (`indiceDatiSingoloPagamento`).
    pub id_transfer: i16,
    /// `transferAmount` of its receipt; the FdR line's amount when no receipt has it.
    pub amount_cents: i64,
    /// `transferAmount` of its receipt, when one has it.
    pub receipt_cents: Option<i64>,
    /// `singoloImportoPagato` of the line reporting it, when a flow does.
    pub reported_cents: Option<i64>,
    /// The Europe/Rome day it was paid (receipt's, else the line's).
    pub paid_on: Option<Date>,
    /// Whose it is.
    pub scope: TransferScope,
    /// Its primary label; `None` for another beneficiary's, or not assessed yet.
    pub label: Option<Label>,
    /// Every label whose condition holds.
    pub labels: Vec<Label>,
    /// The flow reporting it and that flow's revision that counts.
    pub flow: Option<(FlowId, u32)>,
    /// Its flow's treasury state.
    pub treasury_state: Option<FlowTreasuryState>,
    /// The credits involved: its flow's component, or the `/RFB/` credit of its IUV.
    pub treasury_credit_ids: Vec<CreditId>,
    /// Advice next to the label.
    pub suggestions: Vec<Suggestion>,
    /// For an `IUV_NO_RT` key, the recovery of its receipt from biz-events, when attempted:
    /// why it is still missing (not found at PagoPA, failed), or that it was recovered and
    /// the key waits for its relabelling.
    pub recovery: Option<super::ReceiptRecovery>,
}

/// One page of transfers.
#[derive(Debug, Clone)]
pub struct TransferPage {
    /// In key order (creditor, IUV, receiptId, idTransfer).
    pub transfers: Vec<TransferItem>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

/// The key of a transfer across creditors: (creditor, IUV, receiptId, idTransfer), as stored.
type FullKey = (String, String, String, i16);

/// What the receipts say of a key: the first paid copy's amount and day.
struct ReceiptFacts {
    amount_cents: i64,
    paid_on: Date,
}

fn key_of(row: &QueryResult, creditor: &str, iuv: &str) -> Result<FullKey, AppError> {
    Ok((
        creditor.to_owned(),
        iuv.to_owned(),
        row.try_get("", "receipt_id")?,
        row.try_get("", "id_transfer")?,
    ))
}

fn in_list(sql: &mut Sql, values: impl IntoIterator<Item = String>) {
    sql.push("(");
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(value);
    }
    sql.push(")");
}

/// A flow line of a revision that counts: (creditor, flow, revision, amount, day).
struct CountingLine {
    flow_id: FlowId,
    revision: u32,
    amount_cents: i64,
    paid_on: Date,
    /// Its revision's plain keys were left unwritten ([`plain`]).
    plain_keys_unwritten: bool,
}

impl Store {
    /// One page of transfers matching every filter, in key order.
    pub async fn list_reconciliation_transfers(
        &self,
        input: &TransferFilterInput,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<TransferPage, AppError> {
        let mut errors = ValidationErrors::new();
        let filter = input.parse(&mut errors);
        let size = page_token::page_size(
            &mut errors,
            page_size_requested,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        );
        let fingerprint = filter.fingerprint();
        let after = page_token::decode_key(&mut errors, page_token, &fingerprint, 4);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let db = self.db();
        // Bare rows read as a flow's label only where a revision left its plain keys so.
        let plain_rows = filter.label.is_some() && plain::any_marked(db).await?;
        let sql = filter.page_query(
            db.get_database_backend(),
            after.as_deref(),
            size + 1,
            plain_rows,
        )?;
        let rows = db.query_all_raw(sql.statement()).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let creditor: String = row.try_get("", "creditor")?;
            let iuv: String = row.try_get("", "iuv")?;
            let own: i32 = row.try_get("", "own")?;
            keys.push((key_of(row, &creditor, &iuv)?, own == 1));
        }
        let more = keys.len() as u64 > size;
        keys.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let transfers = self.transfer_items(keys).await?;
        let next_page_token = match (more, transfers.last()) {
            (true, Some(last)) => page_token::encode_key(
                &[
                    last.creditor_fiscal_code.clone(),
                    last.iuv.clone(),
                    last.receipt_id.clone(),
                    last.id_transfer.to_string(),
                ],
                &fingerprint,
            ),
            _ => String::new(),
        };
        Ok(TransferPage {
            transfers,
            next_page_token,
        })
    }

    /// The items of a page of keys: receipts, labels and the lines of the revisions that
    /// count, read for the page's IUVs in three queries.
    async fn transfer_items(
        &self,
        keys: Vec<(FullKey, bool)>,
    ) -> Result<Vec<TransferItem>, AppError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.db();
        let backend = db.get_database_backend();
        let iuvs: BTreeSet<String> = keys.iter().map(|((_, iuv, _, _), _)| iuv.clone()).collect();

        let mut sql = Sql::new(backend);
        sql.push(
            "SELECT t.beneficiary_fiscal_code, t.iuv, t.receipt_id, t.id_transfer, t.amount_cents, \
             r.paid_at, r.received_at FROM receipt_transfer t JOIN receipt r ON r.id = t.receipt_row_id \
             WHERE r.classification <> 'not_paid' AND t.iuv IN ",
        );
        in_list(&mut sql, iuvs.iter().cloned());
        sql.push(" ORDER BY r.received_at, t.receipt_row_id, t.transfer_index");
        let mut receipts: BTreeMap<FullKey, ReceiptFacts> = BTreeMap::new();
        for row in db.query_all_raw(sql.statement()).await? {
            let creditor: String = row.try_get("", "beneficiary_fiscal_code")?;
            let iuv: String = row.try_get("", "iuv")?;
            let key = key_of(&row, &creditor, &iuv)?;
            let paid_at: Option<OffsetDateTime> = row.try_get("", "paid_at")?;
            let received_at: OffsetDateTime = row.try_get("", "received_at")?;
            // The first copy is the key's, as labelling reads it.
            receipts.entry(key).or_insert(ReceiptFacts {
                amount_cents: row.try_get("", "amount_cents")?,
                paid_on: rome_date(paid_at.unwrap_or(received_at)),
            });
        }

        let mut sql = Sql::new(backend);
        sql.push(
            "SELECT f.creditor_fiscal_code, f.flow_id, f.revision, fl.iuv, fl.receipt_id, fl.id_transfer, \
             fl.amount_cents, fl.paid_on, f.plain_keys_unwritten FROM recon_flow_line fl \
             JOIN recon_flow f ON f.id = fl.flow_row_id WHERE fl.iuv IN ",
        );
        in_list(&mut sql, iuvs.iter().cloned());
        sql.push(" AND ").counting("f");
        sql.push(" ORDER BY f.flow_id, fl.line_number");
        let mut lines: BTreeMap<FullKey, Vec<CountingLine>> = BTreeMap::new();
        for row in db.query_all_raw(sql.statement()).await? {
            let creditor: String = row.try_get("", "creditor_fiscal_code")?;
            let iuv: String = row.try_get("", "iuv")?;
            let key = key_of(&row, &creditor, &iuv)?;
            let flow_id: String = row.try_get("", "flow_id")?;
            let revision: i32 = row.try_get("", "revision")?;
            lines.entry(key).or_default().push(CountingLine {
                flow_id: FlowId::parse(&flow_id).map_err(corrupt)?,
                revision: u32::try_from(revision).map_err(corrupt)?,
                amount_cents: row.try_get("", "amount_cents")?,
                paid_on: row.try_get("", "paid_on")?,
                plain_keys_unwritten: row.try_get("", "plain_keys_unwritten")?,
            });
        }
        // The assessments of the flows whose plain keys a bare row of the page may read with.
        let marked: BTreeSet<(String, String)> = lines
            .iter()
            .flat_map(|((creditor, ..), ls)| {
                ls.iter()
                    .filter(|l| l.plain_keys_unwritten)
                    .map(|l| (creditor.clone(), l.flow_id.as_str().to_owned()))
            })
            .collect();
        let mut plain_flows: BTreeMap<(String, String), Assessment> = BTreeMap::new();
        if !marked.is_empty() {
            let mut sql = Sql::new(backend);
            sql.push(
                "SELECT creditor_fiscal_code, flow_id, assessment FROM recon_label \
                 WHERE subject_kind = 'flow' AND flow_id IN ",
            );
            in_list(&mut sql, marked.iter().map(|(_, f)| f.clone()));
            for row in db.query_all_raw(sql.statement()).await? {
                let key = (
                    row.try_get::<String>("", "creditor_fiscal_code")?,
                    row.try_get::<String>("", "flow_id")?,
                );
                if marked.contains(&key)
                    && let Some(assessment) = parse_assessment(row.try_get("", "assessment")?)?
                {
                    plain_flows.insert(key, assessment);
                }
            }
        }

        let mut sql = Sql::new(backend);
        sql.push(
            "SELECT l.creditor_fiscal_code, l.iuv, l.receipt_id, l.id_transfer, l.label, l.assessment, \
             l.composed_flow_id, f.assessment AS flow_assessment FROM recon_label l LEFT JOIN recon_label f \
             ON f.creditor_fiscal_code = l.creditor_fiscal_code AND f.subject_kind = 'flow' \
             AND f.flow_id = l.composed_flow_id \
             WHERE l.subject_kind = 'transfer' AND l.iuv IN ",
        );
        in_list(&mut sql, iuvs.iter().cloned());
        let mut labels: BTreeMap<FullKey, (Option<Label>, Assessment)> = BTreeMap::new();
        for row in db.query_all_raw(sql.statement()).await? {
            let creditor: String = row.try_get("", "creditor_fiscal_code")?;
            let iuv: String = row.try_get("", "iuv")?;
            let key = key_of(&row, &creditor, &iuv)?;
            let label = parse_label(row.try_get("", "label")?)?;
            let composed_flow_id: Option<String> = row.try_get("", "composed_flow_id")?;
            let flow = parse_assessment(row.try_get("", "flow_assessment")?)?;
            if let Some(assessment) = parse_assessment(row.try_get("", "assessment")?)? {
                // As it reads now: composed with its flow's current standing.
                let flow_of = |id: &FlowId| {
                    flow.as_ref()
                        .filter(|_| composed_flow_id.as_deref() == Some(id.as_str()))
                };
                // A plain key's bare row: composed with the flow of its one line, when that
                // revision's plain keys were left unwritten.
                let plain_now = || {
                    if !plain::is_bare(&assessment, composed_flow_id.is_some()) {
                        return None;
                    }
                    let [line] = lines.get(&key)?.as_slice() else {
                        return None;
                    };
                    let flow = plain_flows.get(&(key.0.clone(), line.flow_id.as_str().to_owned()));
                    compose_plain(&line.flow_id, flow.filter(|_| line.plain_keys_unwritten)?)
                };
                match composed::composed_now(&assessment, flow_of).or_else(plain_now) {
                    Some(now) => labels.insert(key, (now.label, now)),
                    None => labels.insert(key, (label, assessment)),
                };
            }
        }

        // The recoveries attempted for the page's IUVs, by (creditor, IUV, IUR).
        let recoveries: BTreeMap<(String, String, String), super::ReceiptRecovery> =
            crate::entity::recon_receipt_recovery::Entity::find()
                .filter(
                    crate::entity::recon_receipt_recovery::Column::Iuv.is_in(iuvs.iter().cloned()),
                )
                .all(db)
                .await?
                .into_iter()
                .map(|row| {
                    let recovery = super::ReceiptRecovery::try_from(row)?;
                    Ok((
                        (
                            recovery.creditor_fiscal_code.clone(),
                            recovery.iuv.clone(),
                            recovery.receipt_id.clone(),
                        ),
                        recovery,
                    ))
                })
                .collect::<Result<_, AppError>>()?;

        let mut items = Vec::with_capacity(keys.len());
        for (full_key, own) in keys {
            let receipt = receipts.get(&full_key);
            let labelled = labels.remove(&full_key);
            let key_lines = lines.get(&full_key);
            let scope = if own || labelled.is_some() {
                TransferScope::Creditor
            } else {
                TransferScope::OtherBeneficiary
            };
            // The line of the flow labelling chose; else the first of a flow that counts.
            let line = key_lines.and_then(|ls| {
                let chosen = labelled
                    .as_ref()
                    .and_then(|(_, a)| a.flow_ids.iter().next());
                ls.iter()
                    .find(|l| Some(&l.flow_id) == chosen)
                    .or_else(|| ls.first())
            });
            let (creditor, iuv, receipt_id, id_transfer) = full_key;
            let amount_cents = receipt
                .map(|r| r.amount_cents)
                .or(line.map(|l| l.amount_cents))
                .unwrap_or_default();
            let paid_on = receipt.map(|r| r.paid_on).or(line.map(|l| l.paid_on));
            let mut item = TransferItem {
                creditor_fiscal_code: creditor,
                iuv,
                receipt_id,
                id_transfer,
                amount_cents,
                receipt_cents: receipt.map(|r| r.amount_cents),
                reported_cents: line.map(|l| l.amount_cents),
                paid_on,
                scope,
                label: None,
                labels: Vec::new(),
                flow: line.map(|l| (l.flow_id.clone(), l.revision)),
                treasury_state: None,
                treasury_credit_ids: Vec::new(),
                suggestions: Vec::new(),
                recovery: None,
            };
            if let Some((label, assessment)) = labelled {
                item.label = label;
                item.labels = assessment.labels.into_iter().collect();
                item.treasury_state = assessment.treasury_state;
                item.treasury_credit_ids = assessment.credit_ids.into_iter().collect();
                item.suggestions = assessment.suggestions;
            }
            if item.label == Some(Label::IuvNoRt) {
                item.recovery = recoveries
                    .get(&(
                        item.creditor_fiscal_code.clone(),
                        item.iuv.clone(),
                        item.receipt_id.clone(),
                    ))
                    .cloned();
            }
            items.push(item);
        }
        Ok(items)
    }

    /// What transfer key `key`'s `reported` postings have posted in `creditor`'s books (its
    /// position), when a flow reported it: the key's part of the flow's entry.
    pub async fn reported_posting(
        &self,
        creditor: &str,
        key: &TransferKey,
    ) -> Result<Option<ReportedPosting>, AppError> {
        let posting_key = reported_key(key);
        let mut positions = crate::ledger::reported_positions::of_keys(
            self.db(),
            creditor,
            std::slice::from_ref(&posting_key),
        )
        .await?;
        Ok(positions
            .remove(&posting_key)
            .map(|posted| ReportedPosting {
                flow_id: posted.cause.reporting_flow_id,
                flow_revision: posted.cause.reporting_flow_revision,
                amounts: posted.amounts.into_iter().collect(),
            }))
    }
}

/// What one transfer key's `reported` postings have posted: its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedPosting {
    /// The flow (IUF) of its last posting.
    pub flow_id: Option<String>,
    /// That flow's revision.
    pub flow_revision: Option<u32>,
    /// What it has posted, per account (none left when a later revision dropped its line).
    pub amounts: Vec<(Account, i64)>,
}

impl TransferKeyInput {
    /// The creditor and the key, or every field's error.
    pub fn parse(&self) -> Result<(String, TransferKey), AppError> {
        let input = self;
        let mut errors = ValidationErrors::new();
        let creditor = creditor_filter(&mut errors, &input.creditor_fiscal_code);
        if optional(&input.creditor_fiscal_code).is_none() {
            errors.add("creditor_fiscal_code", "required");
        }
        let iuv = match optional(&input.iuv) {
            Some(text) => errors.check("iuv", Iuv::parse(text)),
            None => {
                errors.add("iuv", "required");
                None
            }
        };
        let index = errors.check("id_transfer", TransferIndex::new(input.id_transfer));
        let key = match (iuv, index) {
            (Some(iuv), Some(index)) => errors.check(
                "receipt_id",
                TransferKey::new(iuv, input.receipt_id.trim(), index),
            ),
            _ => None,
        };
        let (Some(creditor), Some(key)) = (creditor, key) else {
            return Err(AppError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        Ok((creditor, key))
    }
}

/// A transfer key as sent (GetTransferHistory), parsed by [`TransferKeyInput::parse`].
#[derive(Debug, Clone, Default)]
pub struct TransferKeyInput {
    /// The beneficiary.
    pub creditor_fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// receiptId (IUR).
    pub receipt_id: String,
    /// idTransfer, 1..5.
    pub id_transfer: i64,
}

/// The filters of [`Store::list_reporting_flows`], as sent; empty means any.
#[derive(Debug, Clone, Default)]
pub struct FlowFilterInput {
    /// The receiving creditor.
    pub creditor_fiscal_code: String,
    /// The flow (IUF).
    pub flow_id: String,
    /// The PSP that sent it.
    pub psp_id: String,
    /// Regulated on or after, `YYYY-MM-DD`.
    pub regulation_from: String,
    /// Regulated on or before, `YYYY-MM-DD`.
    pub regulation_to: String,
    /// Only flows in this treasury state.
    pub treasury_state: Option<FlowTreasuryState>,
}

/// A reporting flow (the revision that counts) with its treasury state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowItem {
    /// The receiving creditor.
    pub creditor_fiscal_code: String,
    /// IUF.
    pub flow_id: FlowId,
    /// The revision that counts.
    pub revision: u32,
    /// The PSP.
    pub psp_id: String,
    /// `dataRegolamento`.
    pub regulation_date: Date,
    /// `identificativoUnivocoRegolamento`.
    pub trn: String,
    /// `importoTotalePagamenti`, as the PSP declared it.
    pub total_cents: i64,
    /// Lines.
    pub line_count: i64,
    /// What its lines add up to: `total_cents` unless the PSP's flow does not add up.
    pub lines_cents: i64,
    /// `None` until the flow is assessed.
    pub treasury_state: Option<FlowTreasuryState>,
    /// The credits of its component.
    pub treasury_credit_ids: Vec<CreditId>,
    /// Advice (a divergent component's difference).
    pub suggestions: Vec<Suggestion>,
}

/// One page of flows.
#[derive(Debug, Clone)]
pub struct FlowPage {
    /// In (creditor, flow id) order.
    pub flows: Vec<FlowItem>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

/// The filters of [`Store::list_treasury_credits`], as sent; empty means any.
#[derive(Debug, Clone, Default)]
pub struct CreditFilterInput {
    /// The creditor whose account was credited.
    pub creditor_fiscal_code: String,
    /// Only credits with this label.
    pub label: Option<Label>,
    /// Booked on or after, `YYYY-MM-DD`.
    pub booked_from: String,
    /// Booked on or before, `YYYY-MM-DD`.
    pub booked_to: String,
}

/// A treasury credit with what its causale references and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditItem {
    /// The creditor whose account was credited.
    pub creditor_fiscal_code: String,
    /// The account credited: its IBAN, or `OPI:<codice_ente>` for a giornale di cassa.
    pub account: String,
    /// camt `AcctSvcrRef`, OPI `codice_riferimento_interno`.
    pub id: CreditId,
    /// Cents.
    pub amount_cents: i64,
    /// Booking day.
    pub booking_date: Date,
    /// Value day.
    pub value_date: Date,
    /// The causale as read.
    pub causale: String,
    /// TRN, when the bank gives it.
    pub trn: Option<String>,
    /// The IUFs its causale names, as written (a truncated one included).
    pub referenced_flow_ids: Vec<String>,
    /// The IUVs of its `/RFB/`·`/RFS/` markers.
    pub referenced_iuvs: Vec<String>,
    /// The flows it is attributed to.
    pub attributed_flow_ids: Vec<FlowId>,
    /// `None` until assessed.
    pub label: Option<Label>,
    /// Advice (candidate flows of a truncated IUF, ...).
    pub suggestions: Vec<Suggestion>,
    /// Other credits that are probably the same movement, imported from another source.
    pub possible_duplicates: Vec<PossibleDuplicate>,
}

/// One page of credits.
#[derive(Debug, Clone)]
pub struct CreditPage {
    /// In (creditor, credit id) order.
    pub credits: Vec<CreditItem>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

/// Count and sum of the items of one label (`None`: not labelled yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelTotal {
    /// Items.
    pub count: u64,
    /// Their amounts, cents.
    pub amount_cents: i64,
}

/// What a date range holds, for the finance office.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconciliationSummary {
    /// The creditors' own transfers paid in the range, per primary label.
    pub transfers: BTreeMap<Option<Label>, LabelTotal>,
    /// Treasury credits booked in the range, per label.
    pub credits: BTreeMap<Option<Label>, LabelTotal>,
    /// `transferAmount` of those transfers that have a receipt.
    pub paid_cents: i64,
    /// `singoloImportoPagato` of those transfers that a flow reports.
    pub reported_cents: i64,
    /// What of those transfers reached the treasury: the reported amount of the ones whose
    /// flow is cashed, the receipt amount of the ones an `/RFB/` credit matched (`RT_TES`).
    pub cashed_cents: i64,
    /// Credits booked in the range that are probably a movement also imported from another
    /// source (each of a pair counts): both count in `credits`.
    pub possibly_duplicated_credits: LabelTotal,
    /// Reversals of credits booked in the range: money the treasury took back, which no
    /// label shows (the cents of those whose amount the document gives).
    pub reversals: LabelTotal,
}

impl Store {
    /// One page of reporting flows (the revision of each that counts), in (creditor, flow
    /// id) order.
    pub async fn list_reporting_flows(
        &self,
        input: &FlowFilterInput,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<FlowPage, AppError> {
        let mut errors = ValidationErrors::new();
        let creditor = creditor_filter(&mut errors, &input.creditor_fiscal_code);
        let flow_id = optional(&input.flow_id)
            .and_then(|t| errors.check("flow_id", FlowId::parse(t)))
            .map(String::from);
        let psp_id = optional(&input.psp_id).map(str::to_owned);
        let (from, to) = day_range(
            &mut errors,
            ("regulation_from", &input.regulation_from),
            ("regulation_to", &input.regulation_to),
        );
        let size = page_token::page_size(
            &mut errors,
            page_size_requested,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        );
        let fingerprint = fingerprint(
            "recon flows",
            &[
                creditor.clone(),
                flow_id.clone(),
                psp_id.clone(),
                from.map(|d| d.to_string()),
                to.map(|d| d.to_string()),
                input.treasury_state.map(|s| s.code().to_owned()),
            ],
        );
        let after = page_token::decode_key(&mut errors, page_token, &fingerprint, 2);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let db = self.db();
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(
            "SELECT f.creditor_fiscal_code, f.flow_id, f.revision, f.psp_id, f.trn, f.regulation_date, \
             f.total_cents, f.line_count, f.lines_cents, l.assessment FROM recon_flow f \
             LEFT JOIN recon_label l \
             ON l.creditor_fiscal_code = f.creditor_fiscal_code AND l.subject_kind = 'flow' \
             AND l.flow_id = f.flow_id WHERE ",
        );
        sql.counting("f");
        if let Some(creditor) = &creditor {
            sql.push(" AND f.creditor_fiscal_code = ")
                .bind(creditor.clone());
        }
        if let Some(flow_id) = &flow_id {
            sql.push(" AND f.flow_id = ").bind(flow_id.clone());
        }
        if let Some(psp_id) = &psp_id {
            sql.push(" AND f.psp_id = ").bind(psp_id.clone());
        }
        if let Some(from) = from {
            sql.push(" AND f.regulation_date >= ").bind(from);
        }
        if let Some(to) = to {
            sql.push(" AND f.regulation_date <= ").bind(to);
        }
        if let Some(state) = input.treasury_state {
            sql.push(" AND l.treasury_state = ").bind(state.code());
        }
        if let Some([creditor, flow_id]) = after.as_deref() {
            sql.push(" AND (f.creditor_fiscal_code, f.flow_id) > (")
                .bind(creditor.clone())
                .push(", ")
                .bind(flow_id.clone())
                .push(")");
        }
        sql.push(" ORDER BY f.creditor_fiscal_code, f.flow_id LIMIT ")
            .bind(i64::try_from(size + 1).unwrap_or(i64::MAX));
        let mut flows = Vec::new();
        for row in db.query_all_raw(sql.statement()).await? {
            let flow_id: String = row.try_get("", "flow_id")?;
            let revision: i32 = row.try_get("", "revision")?;
            let assessment = parse_assessment(row.try_get("", "assessment")?)?;
            let (treasury_state, treasury_credit_ids, suggestions) = match assessment {
                Some(a) => (
                    a.treasury_state,
                    a.credit_ids.into_iter().collect(),
                    a.suggestions,
                ),
                None => (None, Vec::new(), Vec::new()),
            };
            flows.push(FlowItem {
                creditor_fiscal_code: row.try_get("", "creditor_fiscal_code")?,
                flow_id: FlowId::parse(&flow_id).map_err(corrupt)?,
                revision: u32::try_from(revision).map_err(corrupt)?,
                psp_id: row.try_get("", "psp_id")?,
                regulation_date: row.try_get("", "regulation_date")?,
                trn: row.try_get("", "trn")?,
                total_cents: row.try_get("", "total_cents")?,
                line_count: row.try_get("", "line_count")?,
                lines_cents: row.try_get("", "lines_cents")?,
                treasury_state,
                treasury_credit_ids,
                suggestions,
            });
        }
        let more = flows.len() as u64 > size;
        flows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_page_token = match (more, flows.last()) {
            (true, Some(last)) => page_token::encode_key(
                &[
                    last.creditor_fiscal_code.clone(),
                    last.flow_id.as_str().to_owned(),
                ],
                &fingerprint,
            ),
            _ => String::new(),
        };
        Ok(FlowPage {
            flows,
            next_page_token,
        })
    }

    /// One page of treasury credits, in (creditor, credit id) order.
    pub async fn list_treasury_credits(
        &self,
        input: &CreditFilterInput,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<CreditPage, AppError> {
        let mut errors = ValidationErrors::new();
        let page = BookedPage::parse(
            "recon credits",
            (
                &input.creditor_fiscal_code,
                &input.booked_from,
                &input.booked_to,
            ),
            &[input.label.map(|l| l.code().to_owned())],
            page_size_requested,
            page_token,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let (size, fingerprint) = (page.size, page.fingerprint.clone());
        let db = self.db();
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(
            "SELECT c.creditor_fiscal_code, c.credit_id, c.amount_cents, c.booking_date, c.value_date, \
             c.causale, c.trn, c.end_to_end_id, c.account, l.label, l.assessment FROM recon_credit c \
             LEFT JOIN recon_label l \
             ON l.creditor_fiscal_code = c.creditor_fiscal_code AND l.subject_kind = 'credit' \
             AND l.credit_id = c.credit_id WHERE 1 = 1",
        );
        page.filter(&mut sql, "c");
        if let Some(label) = input.label {
            sql.push(" AND l.label = ").bind(label.code());
        }
        page.page(&mut sql, "c", "credit_id");
        let mut credits = Vec::new();
        let mut movements: BTreeMap<String, Vec<CreditMovement>> = BTreeMap::new();
        for row in db.query_all_raw(sql.statement()).await? {
            let id: String = row.try_get("", "credit_id")?;
            let causale: String = row.try_get("", "causale")?;
            let (referenced_flow_ids, referenced_iuvs) = match parse_causale(&causale) {
                CausaleReferences::Flows(flows) => (flows, Vec::new()),
                CausaleReferences::Iuvs(iuvs) => (
                    Vec::new(),
                    iuvs.iter().map(|i| i.as_str().to_owned()).collect(),
                ),
                CausaleReferences::None => (Vec::new(), Vec::new()),
            };
            let assessment = parse_assessment(row.try_get("", "assessment")?)?;
            let (attributed_flow_ids, suggestions) = match assessment {
                Some(a) => (a.flow_ids.into_iter().collect(), a.suggestions),
                None => (Vec::new(), Vec::new()),
            };
            credits.push(CreditItem {
                creditor_fiscal_code: row.try_get("", "creditor_fiscal_code")?,
                account: row.try_get("", "account")?,
                id: CreditId::parse(&id).map_err(corrupt)?,
                amount_cents: row.try_get("", "amount_cents")?,
                booking_date: row.try_get("", "booking_date")?,
                value_date: row.try_get("", "value_date")?,
                causale,
                trn: row.try_get("", "trn")?,
                referenced_flow_ids,
                referenced_iuvs,
                attributed_flow_ids,
                label: parse_label(row.try_get("", "label")?)?,
                suggestions,
                possible_duplicates: Vec::new(),
            });
            if let Some(credit) = credits.last() {
                movements
                    .entry(credit.creditor_fiscal_code.clone())
                    .or_default()
                    .push(CreditMovement {
                        id: credit.id.clone(),
                        amount_cents: credit.amount_cents,
                        value_date: credit.value_date,
                        trn: credit.trn.clone(),
                        end_to_end_id: row.try_get("", "end_to_end_id")?,
                    });
            }
        }
        let more = credits.len() as u64 > size;
        credits.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        for (creditor, movements) in movements {
            let mut found = possible_duplicates(db, &creditor, &movements).await?;
            for credit in credits
                .iter_mut()
                .filter(|c| c.creditor_fiscal_code == creditor)
            {
                credit.possible_duplicates = found.remove(&credit.id).unwrap_or_default();
            }
        }
        let next_page_token = match (more, credits.last()) {
            (true, Some(last)) => page_token::encode_key(
                &[
                    last.creditor_fiscal_code.clone(),
                    last.id.as_str().to_owned(),
                ],
                &fingerprint,
            ),
            _ => String::new(),
        };
        Ok(CreditPage {
            credits,
            next_page_token,
        })
    }

    /// The summary of the days `from..=to` (`YYYY-MM-DD`, both required): the creditors' own
    /// transfers paid in the range per label with the totals paid, reported and cashed, and
    /// the credits booked in the range per label. It walks the range's transfers and credits
    /// page by page, so its cost grows with the range.
    pub async fn reconciliation_summary(
        &self,
        creditor_fiscal_code: &str,
        from: &str,
        to: &str,
    ) -> Result<ReconciliationSummary, AppError> {
        let mut errors = ValidationErrors::new();
        for (field, value) in [("from", from), ("to", to)] {
            if optional(value).is_none() {
                errors.add(field, "required (YYYY-MM-DD)");
            }
        }
        let _ = day_range(&mut errors, ("from", from), ("to", to));
        let _ = creditor_filter(&mut errors, creditor_fiscal_code);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut summary = ReconciliationSummary::default();
        let transfers = TransferFilterInput {
            creditor_fiscal_code: creditor_fiscal_code.to_owned(),
            paid_from: from.to_owned(),
            paid_to: to.to_owned(),
            scope: Some(TransferScope::Creditor),
            ..TransferFilterInput::default()
        };
        let mut token = String::new();
        loop {
            let page = self
                .list_reconciliation_transfers(&transfers, SUMMARY_CHUNK, &token)
                .await?;
            for item in &page.transfers {
                let total = summary.transfers.entry(item.label).or_default();
                total.count += 1;
                total.amount_cents += item.amount_cents;
                summary.paid_cents += item.receipt_cents.unwrap_or_default();
                if let Some(reported) = item.reported_cents {
                    summary.reported_cents += reported;
                    if item.treasury_state == Some(FlowTreasuryState::Cashed) {
                        summary.cashed_cents += reported;
                    }
                } else if item.labels.contains(&Label::RtTes) {
                    summary.cashed_cents += item.receipt_cents.unwrap_or_default();
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let credits = CreditFilterInput {
            creditor_fiscal_code: creditor_fiscal_code.to_owned(),
            booked_from: from.to_owned(),
            booked_to: to.to_owned(),
            ..CreditFilterInput::default()
        };
        let mut token = String::new();
        loop {
            let page = self
                .list_treasury_credits(&credits, SUMMARY_CHUNK, &token)
                .await?;
            for credit in &page.credits {
                let total = summary.credits.entry(credit.label).or_default();
                total.count += 1;
                total.amount_cents += credit.amount_cents;
                if !credit.possible_duplicates.is_empty() {
                    summary.possibly_duplicated_credits.count += 1;
                    summary.possibly_duplicated_credits.amount_cents += credit.amount_cents;
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let reversals = ReversalFilterInput {
            creditor_fiscal_code: creditor_fiscal_code.to_owned(),
            booked_from: from.to_owned(),
            booked_to: to.to_owned(),
        };
        let mut token = String::new();
        loop {
            let page = self
                .list_treasury_reversals(&reversals, SUMMARY_CHUNK, &token)
                .await?;
            for reversal in &page.reversals {
                summary.reversals.count += 1;
                summary.reversals.amount_cents += reversal.amount_cents.unwrap_or_default();
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        Ok(summary)
    }
}
