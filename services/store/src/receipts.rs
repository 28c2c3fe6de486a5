//! Receipts (paSendRT, paSendRTV2): persist first, answer second. One transaction stores the
//! raw receipt (encrypted) with its SHA-256, the receipt's facts, the installment's and the
//! position's new states, the ledger entries and the outbox events; the Node hears OK only
//! after it commits. A receipt is never refused: a second payment, a payment of a cancelled or
//! closed notice, of an unknown notice or of another creditor's notice is stored, booked to
//! refunds or suspense, flagged, and acknowledged.
//!
//! The idempotency key is PagoPA's: creditor fiscal code, IUV and receipt id. An exact
//! redelivery finds its key and books nothing; the same key with other content is recorded as
//! a conflict for an operator and acknowledged, so that the Node stops retrying.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait};
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use incasso_domain::debt_position::payment::{PaymentOutcome, apply_payment};
use incasso_domain::debt_position::{DebtPosition, InstallmentState};
use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::rules::{self, Receipt as LedgerReceipt};
use incasso_domain::ledger::{EntryDraft, is_psp_id};
use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::rome_time;

use crate::Store;
use crate::batch::insert_chunked;
use crate::entity::{debt_position, installment, receipt, receipt_conflict, receipt_transfer};
use crate::error::AppError;
use crate::ledger::{self, SourceDocumentInput};
use crate::outbox;
use crate::positions::lock_position;

/// One transfer of a receipt, stored in `receipt_transfer` for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptTransferInput {
    /// idTransfer (1..5): the reporting flows' indiceDatiSingoloPagamento.
    pub id_transfer: u8,
    /// Beneficiary fiscal code (11 digits).
    pub beneficiary: String,
    /// The account credited; `None` for a digital stamp (MBDAttachment).
    pub iban: Option<String>,
    /// Cents.
    pub amount_cents: i64,
    /// remittanceInformation.
    pub remittance_information: String,
    /// transferCategory (taxonomy code).
    pub transfer_category: String,
}

/// A receipt as the Node delivered it.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiptInput {
    /// The creditor that received it (idPA).
    pub receiving_creditor: String,
    /// paSendRT or paSendRTV2.
    pub primitive: &'static str,
    /// The notice's creditor (receipt.fiscalCode).
    pub creditor_fiscal_code: String,
    /// NAV.
    pub notice_number: String,
    /// IUV (creditorReferenceId).
    pub iuv: String,
    /// The payment token.
    pub receipt_id: String,
    /// Outcome OK.
    pub outcome_ok: bool,
    /// idPSP.
    pub psp_id: String,
    /// idChannel.
    pub channel_id: String,
    /// Cents.
    pub payment_amount_cents: i64,
    /// Fee, cents.
    pub fee_cents: Option<i64>,
    /// paymentDateTime as sent.
    pub payment_date_time: Option<String>,
    /// Paid in Stand-In.
    pub stand_in: bool,
    /// The transfers.
    pub transfers: Vec<ReceiptTransferInput>,
    /// The receipt's canonical form: every field it carries (debtor, payer and metadata
    /// included) independent of how the XML was written, to tell a redelivery from a
    /// conflict. It holds personal data: only its keyed hash is stored.
    pub canonical: Vec<u8>,
    /// The message as received; stored encrypted.
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for ReceiptInput {
    // The raw message and the canonical form carry the debtor and the payer: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptInput")
            .field("receiving_creditor", &self.receiving_creditor)
            .field("primitive", &self.primitive)
            .field("creditor_fiscal_code", &self.creditor_fiscal_code)
            .field("notice_number", &self.notice_number)
            .field("iuv", &self.iuv)
            .field("receipt_id", &self.receipt_id)
            .field("outcome_ok", &self.outcome_ok)
            .field("payment_amount_cents", &self.payment_amount_cents)
            .field("stand_in", &self.stand_in)
            .field("transfers", &self.transfers)
            .finish_non_exhaustive()
    }
}

/// The purpose under which a receipt's canonical form is hashed (see
/// [`crate::PrivacyKeys::document_hash`]).
const RECEIPT_HASH_PURPOSE: &str = "receipt-content/v1";

/// How a receipt was booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// A payable notice, now paid.
    Settled,
    /// A notice past its expiry date, paid: settled and flagged.
    SettledLate,
    /// A notice already paid: refunds payable.
    DoublePayment,
    /// A cancelled notice, or one of an option not chosen: refunds payable.
    ClosedNotice,
    /// A notice incasso does not know: suspense.
    UnknownNotice,
    /// A receipt with outcome KO: stored, nothing booked.
    NotPaid,
}

impl Classification {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settled => "settled",
            Self::SettledLate => "settled_late",
            Self::DoublePayment => "double_payment",
            Self::ClosedNotice => "closed_notice",
            Self::UnknownNotice => "unknown_notice",
            Self::NotPaid => "not_paid",
        }
    }
}

/// What happened to a delivered receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Stored and booked now.
    Recorded(Classification),
    /// The same receipt again: nothing booked.
    Redelivered,
    /// Same key, other content: recorded for an operator, nothing booked.
    Conflict,
}

/// The civil day of a payment: its paymentDateTime (zone-less values are Rome time, as
/// PagoPA's samples write them), or today.
fn payment_day(text: Option<&str>, now: OffsetDateTime) -> Date {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    text.and_then(|t| {
        let (local, _) = t.split_at(t.len().min(19));
        PrimitiveDateTime::parse(local, format)
            .ok()
            .map(|dt| dt.date())
    })
    .unwrap_or_else(|| rome_time::rome_date(now))
}

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

impl Store {
    /// Stores and books a receipt; see the module documentation.
    pub async fn record_receipt(&self, input: &ReceiptInput) -> Result<ReceiptOutcome, AppError> {
        let now = self.now();
        let content_hash = self
            .keys()
            .document_hash(RECEIPT_HASH_PURPOSE, &input.canonical);
        let day = payment_day(input.payment_date_time.as_deref(), now);
        let position_id = self.position_of_notice(input).await?;
        let txn = self.db().begin().await?;
        if let Some(id) = position_id {
            lock_position(&txn, id, now).await?;
        }
        let position = match position_id {
            Some(id) => Some(self.load(&txn, id).await?),
            None => None,
        };
        let notice = NoticeNumber::parse(&input.notice_number).ok();
        let mut after = position.clone();
        let outcome = match (&mut after, &notice) {
            (Some(after), Some(notice)) if input.outcome_ok => apply_payment(after, notice, day),
            _ => None,
        };
        let classification = match (&outcome, input.outcome_ok) {
            (_, false) => Classification::NotPaid,
            (Some(PaymentOutcome::Settled { late: false, .. }), _) => Classification::Settled,
            (Some(PaymentOutcome::Settled { late: true, .. }), _) => Classification::SettledLate,
            (Some(PaymentOutcome::AlreadyPaid), _) => Classification::DoublePayment,
            (Some(PaymentOutcome::NotPayable { .. }), _) => Classification::ClosedNotice,
            (None, true) => Classification::UnknownNotice,
        };
        let installment = match (&position, &notice) {
            (Some(p), Some(n)) => p.installment(n).cloned(),
            _ => None,
        };
        let mut flags = Vec::new();
        if input.stand_in {
            flags.push("stand_in");
        }
        if classification == Classification::SettledLate {
            flags.push("late");
        }
        if let (Some(p), Some(i)) = (&position, &installment)
            && p.amount_payable_on(i, day).get() != input.payment_amount_cents
        {
            flags.push("amount_differs");
        }
        if input.creditor_fiscal_code != input.receiving_creditor {
            flags.push("other_creditor_notice");
        }

        let document = SourceDocumentInput {
            kind: if input.primitive == "paSendRTV2" {
                "pagopa.paSendRTV2"
            } else {
                "pagopa.paSendRT"
            },
            media_type: "text/xml",
            content: input.raw.clone(),
        };
        let documents = ledger::store_documents(&txn, self.keys(), vec![document], now).await?;
        let document_id = documents[0].0;
        let receipt_row_id = Uuid::now_v7();
        let receipt_row = receipt::ActiveModel {
            id: Set(receipt_row_id),
            creditor_fiscal_code: Set(input.creditor_fiscal_code.clone()),
            iuv: Set(input.iuv.clone()),
            receipt_id: Set(input.receipt_id.clone()),
            notice_number: Set(input.notice_number.clone()),
            receiving_creditor: Set(input.receiving_creditor.clone()),
            content_sha256: Set(content_hash.clone()),
            source_document_id: Set(document_id),
            primitive: Set(input.primitive.to_owned()),
            psp_id: Set(input.psp_id.chars().take(35).collect()),
            channel_id: Set(input.channel_id.chars().take(35).collect()),
            payment_amount_cents: Set(input.payment_amount_cents),
            fee_cents: Set(input.fee_cents),
            payment_date_time: Set(input.payment_date_time.clone()),
            stand_in: Set(input.stand_in),
            classification: Set(classification.as_str().to_owned()),
            flags: Set(flags.join(",")),
            debt_position_id: Set(position_id),
            installment_id: Set(installment.as_ref().map(|i| i.id)),
            received_at: Set(now),
        };
        let inserted = receipt::Entity::insert(receipt_row)
            .on_conflict(
                OnConflict::columns([
                    receipt::Column::CreditorFiscalCode,
                    receipt::Column::Iuv,
                    receipt::Column::ReceiptId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted != 1 {
            txn.rollback().await?;
            return self.redelivery(input, &content_hash, now).await;
        }
        let transfer_rows: Vec<receipt_transfer::ActiveModel> = input
            .transfers
            .iter()
            .enumerate()
            .map(|(index, t)| receipt_transfer::ActiveModel {
                receipt_row_id: Set(receipt_row_id),
                // At most five transfers: the parser refuses more.
                transfer_index: Set(i16::try_from(index).unwrap_or(i16::MAX)),
                creditor_fiscal_code: Set(input.creditor_fiscal_code.clone()),
                iuv: Set(input.iuv.clone()),
                receipt_id: Set(input.receipt_id.clone()),
                id_transfer: Set(i16::from(t.id_transfer)),
                beneficiary_fiscal_code: Set(t.beneficiary.clone()),
                iban: Set(t.iban.clone()),
                amount_cents: Set(t.amount_cents),
                remittance_information: Set(t.remittance_information.clone()),
                transfer_category: Set(t.transfer_category.clone()),
            })
            .collect();
        insert_chunked(&txn, transfer_rows, 11).await?;

        let mut drafts: Vec<EntryDraft> = Vec::new();
        let ledger_receipt = LedgerReceipt {
            psp: psp_account_id(&input.psp_id),
            receipt_id: input.receipt_id.clone(),
            notice_number: input.notice_number.clone(),
            iuv: input.iuv.clone(),
            transfers: input
                .transfers
                .iter()
                .filter_map(|t| {
                    OrganizationFiscalCode::parse(&t.beneficiary)
                        .ok()
                        .map(|b| (b, t.amount_cents))
                })
                .collect(),
        };
        match (&position, &after, &installment, &outcome) {
            (
                Some(before),
                Some(after),
                Some(installment),
                Some(PaymentOutcome::Settled { .. }),
            ) => {
                drafts.extend(rules::receipt_paid(
                    before,
                    after,
                    installment,
                    &ledger_receipt,
                ));
                self.write_states(&txn, before, after, now).await?;
                outbox::enqueue(
                    &txn,
                    outbox::ACA_POSITION,
                    &before.id.to_string(),
                    &outbox::PositionChanged {
                        debt_position_id: before.id,
                        change: "paid".to_owned(),
                    },
                    now,
                )
                .await?;
            }
            (Some(position), _, _, Some(PaymentOutcome::AlreadyPaid)) => {
                drafts.extend(rules::double_payment(position, &ledger_receipt));
            }
            (Some(position), _, _, Some(PaymentOutcome::NotPayable { .. })) => {
                drafts.extend(rules::receipt_closed_notice(position, &ledger_receipt));
            }
            _ if classification == Classification::UnknownNotice => {
                if let Ok(books) = OrganizationFiscalCode::parse(&input.receiving_creditor) {
                    drafts.extend(rules::receipt_unknown_notice(&books, &ledger_receipt));
                }
            }
            _ => {}
        }
        if classification != Classification::NotPaid {
            let fascicolo = serde_json::json!({
                "receipt_key": [input.creditor_fiscal_code, input.iuv, input.receipt_id],
                "classification": classification.as_str(),
                "debt_position_id": position_id,
            });
            outbox::enqueue(&txn, outbox::FASCICOLO_PAYMENT, &input.iuv, &fascicolo, now).await?;
        }
        let postings = drafts.into_iter().map(|d| (d, Some(0))).collect();
        ledger::append_with_documents(&txn, &documents, postings, now).await?;
        txn.commit().await?;
        tracing::info!(
            creditor = %input.creditor_fiscal_code,
            iuv = %input.iuv,
            classification = classification.as_str(),
            flags = %flags.join(","),
            "receipt recorded"
        );
        Ok(ReceiptOutcome::Recorded(classification))
    }

    /// The position a receipt's notice belongs to, if incasso issued it.
    async fn position_of_notice(&self, input: &ReceiptInput) -> Result<Option<Uuid>, AppError> {
        if self
            .registry()
            .issuer(&input.creditor_fiscal_code)
            .is_none()
        {
            return Ok(None);
        }
        Ok(installment::Entity::find()
            .select_only()
            .column(installment::Column::DebtPositionId)
            .filter(installment::Column::CreditorFiscalCode.eq(&input.creditor_fiscal_code))
            .filter(installment::Column::NoticeNumber.eq(&input.notice_number))
            .into_tuple::<Uuid>()
            .one(self.db())
            .await?)
    }

    /// A receipt whose key is already stored: a redelivery, or a conflict to record.
    async fn redelivery(
        &self,
        input: &ReceiptInput,
        content_hash: &str,
        now: OffsetDateTime,
    ) -> Result<ReceiptOutcome, AppError> {
        let stored = receipt::Entity::find()
            .filter(receipt::Column::CreditorFiscalCode.eq(&input.creditor_fiscal_code))
            .filter(receipt::Column::Iuv.eq(&input.iuv))
            .filter(receipt::Column::ReceiptId.eq(&input.receipt_id))
            .one(self.db())
            .await?
            .ok_or_else(|| AppError::Internal("receipt vanished after a conflict".into()))?;
        if stored.content_sha256 == content_hash {
            return Ok(ReceiptOutcome::Redelivered);
        }
        let txn = self.db().begin().await?;
        let document = SourceDocumentInput {
            kind: "pagopa.receipt_conflict",
            media_type: "text/xml",
            content: input.raw.clone(),
        };
        let documents = ledger::store_documents(&txn, self.keys(), vec![document], now).await?;
        receipt_conflict::Entity::insert(receipt_conflict::ActiveModel {
            id: Set(Uuid::now_v7()),
            creditor_fiscal_code: Set(input.creditor_fiscal_code.clone()),
            iuv: Set(input.iuv.clone()),
            receipt_id: Set(input.receipt_id.clone()),
            content_sha256: Set(content_hash.to_owned()),
            source_document_id: Set(documents[0].0),
            received_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        tracing::warn!(
            creditor = %input.creditor_fiscal_code,
            iuv = %input.iuv,
            "receipt redelivered with different content: recorded for an operator"
        );
        Ok(ReceiptOutcome::Conflict)
    }

    /// Writes the installment and position states a payment changed.
    async fn write_states(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        before: &DebtPosition,
        after: &DebtPosition,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        for (old, new) in before.installments().zip(after.installments()) {
            if old.state != new.state {
                let mut update = installment::Entity::update_many()
                    .col_expr(installment::Column::State, Expr::value(new.state.as_str()))
                    .col_expr(installment::Column::UpdatedAt, Expr::value(now));
                if new.state == InstallmentState::Paid {
                    update = update.col_expr(installment::Column::PaidAt, Expr::value(Some(now)));
                }
                update
                    .filter(installment::Column::Id.eq(new.id))
                    .exec(txn)
                    .await?;
            }
        }
        if before.state != after.state {
            debt_position::Entity::update_many()
                .col_expr(
                    debt_position::Column::State,
                    Expr::value(after.state.as_str()),
                )
                .filter(debt_position::Column::Id.eq(after.id))
                .exec(txn)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn the_payment_day_is_the_rome_day_of_the_payment() {
        let now = datetime!(2026-11-24 10:00 UTC);
        assert_eq!(
            payment_day(Some("2026-11-12T17:48:22"), now),
            date!(2026 - 11 - 12)
        );
        assert_eq!(
            payment_day(Some("2026-11-12T17:48:22.123+01:00"), now),
            date!(2026 - 11 - 12)
        );
        assert_eq!(payment_day(Some("garbage"), now), date!(2026 - 11 - 24));
        assert_eq!(payment_day(None, now), date!(2026 - 11 - 24));
        assert_eq!(psp_account_id("BCITITMM"), "BCITITMM");
        assert_eq!(psp_account_id("AB C:D"), "AB_C_D");
    }
}
