//! Receipts (paSendRT, paSendRTV2): persist first, answer second, never lose one.
//!
//! The story of a receipt, one file per chapter:
//! - [`writer`]: receipts arriving together are booked by one writer in shared transactions
//!   (group commit), and each caller hears its outcome only after the commit that holds it;
//! - [`book`]: one batch transaction stores each receipt (its raw message encrypted, its facts
//!   and transfers), classifies it against its notice's position, writes the new states, the
//!   ledger entries (one chain-head lock per batch) and the outbox events;
//! - [`park`]: a receipt whose booking fails for a reason retrying at once cannot fix (a row
//!   missing, an invariant broken in stored data, a bug in a posting rule) is stored anyway,
//!   as *parked*, in a transaction of its own: the Node hears OK, because the receipt is now
//!   incasso's responsibility. Parked receipts are retried with backoff and by operators, and
//!   book exactly once;
//! - [`query`]: the read side, for the finance office and operators: receipts by filter with
//!   page tokens and in chunks for export (the refund worklist), one receipt with its
//!   transfers, ledger entries and parked state, and the recorded conflicts.
//!
//! The idempotency key is PagoPA's: creditor fiscal code, IUV and receipt id. An exact
//! redelivery finds its key and books nothing; the same key with other content is recorded as
//! a conflict for an operator and acknowledged, so that the Node stops retrying. Only a
//! transient failure (the database unreachable, a lost deadlock) is an error the Node sees,
//! so that it retries.

pub mod book;
pub mod park;
pub mod query;
pub mod writer;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use incasso_domain::notice_number::NoticeNumber;
pub use incasso_domain::receipt::{Classification, NodeOutcome, ReceiptFlag};

use crate::Store;
use crate::error::AppError;

/// One transfer of a receipt, stored in `receipt_transfer` for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The primitive a receipt arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptPrimitive {
    /// paSendRT.
    SendRt,
    /// paSendRTV2.
    SendRtV2,
    /// Not delivered by the Node: recovered from PagoPA's biz-events API (the organization
    /// receipt by IUR and IUV) for an FdR line whose receipt never came. Booked like the
    /// others, and marked `recovered`.
    BizEvents,
}

impl ReceiptPrimitive {
    /// The primitive's name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::SendRt => "paSendRT",
            Self::SendRtV2 => "paSendRTV2",
            Self::BizEvents => "bizEvents",
        }
    }

    /// True for a receipt recovered from biz-events rather than delivered by the Node.
    pub fn is_recovered(self) -> bool {
        self == Self::BizEvents
    }

    /// The kind of the source document that keeps the raw message.
    pub(crate) fn document_kind(self) -> &'static str {
        match self {
            Self::SendRt => "pagopa.paSendRT",
            Self::SendRtV2 => "pagopa.paSendRTV2",
            Self::BizEvents => "pagopa.bizEvents.receipt",
        }
    }

    /// The media type of the raw message: SOAP XML from the Node, JSON from biz-events.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Self::SendRt | Self::SendRtV2 => "text/xml",
            Self::BizEvents => "application/json",
        }
    }
}

/// PagoPA's idempotency key of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptKey {
    /// The notice's creditor (receipt.fiscalCode).
    pub creditor_fiscal_code: String,
    /// IUV (creditorReferenceId).
    pub iuv: String,
    /// receiptId.
    pub receipt_id: String,
}

/// What a receipt says, as read from the Node's message: everything the booking needs. It
/// is what a parked receipt keeps (sealed) to be booked later.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFacts {
    /// The creditor that received it (idPA).
    pub receiving_creditor: String,
    /// paSendRT or paSendRTV2.
    pub primitive: ReceiptPrimitive,
    /// The notice's creditor (receipt.fiscalCode).
    pub creditor_fiscal_code: String,
    /// The notice number as sent (18 digits).
    pub notice_number: String,
    /// The notice number, when its check digits hold; a receipt is never refused for them.
    pub notice: Option<NoticeNumber>,
    /// IUV (creditorReferenceId).
    pub iuv: String,
    /// The payment token (receiptId).
    pub receipt_id: String,
    /// Whether the payment was taken.
    pub outcome: NodeOutcome,
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
    /// paymentDateTime as an instant (a zone-less value is Europe/Rome time).
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
    /// Paid in Stand-In (the request's `standin` or the receipt's `standIn`).
    pub stand_in: bool,
    /// The transfers.
    pub transfers: Vec<ReceiptTransferInput>,
}

impl ReceiptFacts {
    /// PagoPA's idempotency key.
    pub fn key(&self) -> ReceiptKey {
        ReceiptKey {
            creditor_fiscal_code: self.creditor_fiscal_code.clone(),
            iuv: self.iuv.clone(),
            receipt_id: self.receipt_id.clone(),
        }
    }
}

impl std::fmt::Debug for ReceiptFacts {
    // Remittance texts may name the debtor: only the key and the figures are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptFacts")
            .field("receiving_creditor", &self.receiving_creditor)
            .field("primitive", &self.primitive)
            .field("creditor_fiscal_code", &self.creditor_fiscal_code)
            .field("notice_number", &self.notice_number)
            .field("iuv", &self.iuv)
            .field("receipt_id", &self.receipt_id)
            .field("outcome", &self.outcome)
            .field("payment_amount_cents", &self.payment_amount_cents)
            .field("stand_in", &self.stand_in)
            .field("transfers", &self.transfers.len())
            .finish_non_exhaustive()
    }
}

/// A receipt as the Node delivered it (or as biz-events gave it back, when recovered).
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiptInput {
    /// What it says.
    pub facts: ReceiptFacts,
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
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// The purpose under which a receipt's canonical form is hashed (see
/// [`crate::PrivacyKeys::document_hash`]).
const RECEIPT_HASH_PURPOSE: &str = "receipt-content/v1";

/// What happened to a delivered receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Stored and booked now.
    Recorded(Classification),
    /// The same receipt again: nothing booked.
    Redelivered,
    /// Same key, other content: recorded for an operator, nothing booked.
    Conflict,
    /// Stored, but its booking failed: parked, to be retried.
    Parked,
}

impl Store {
    /// Stores and books a receipt; see the module documentation. With a receipt writer
    /// running ([`Store::with_receipt_writer`]) the receipt joins the next group commit;
    /// otherwise it is booked in a transaction of its own. An error is always transient: the
    /// receipt was not stored, and the Node should deliver it again.
    pub async fn record_receipt(&self, input: ReceiptInput) -> Result<ReceiptOutcome, AppError> {
        match self.receipt_writer() {
            Some(writer) => writer.submit(input).await,
            None => book::book_batch(self, vec![input])
                .await
                .pop()
                .unwrap_or_else(|| {
                    Err(AppError::Internal("a batch of one gave no outcome".into()))
                }),
        }
    }
}
