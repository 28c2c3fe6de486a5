//! The one conversion layer between the incasso.v1 protobuf types and the domain. Requests
//! become the domain's input structs unchanged (validation, with field paths, is the
//! domain's job, so every transport gets the same rules); domain values become responses.

use prost_types::Timestamp;
use time::{Date, OffsetDateTime};

use incasso_domain::debt_position::input::{
    DebtPositionInput, DebtorInput, DetailsInput, InstallmentInput, PaymentOptionInput,
    SchoolFeeInput, TariInput, TrafficFineInput, TransferInput,
};
use incasso_domain::debt_position::update::{CancelInput, InstallmentUpdateInput, UpdateInput};
use incasso_domain::debt_position::{
    DebtKind, DebtPosition, Debtor, EffectiveInstallmentState, EffectivePositionState, Installment,
    KindDetails, PaymentOption, SchoolService, Transfer,
};
use incasso_domain::fiscal_code::EntityType;
use incasso_domain::ledger::chain::hex_lower;
use incasso_domain::traffic_fine::FineBand;
use incasso_domain::validation::{ValidationErrors, format_date};
use incasso_store::ledger::{Checkpoint, EntryFilterInput, SourceDocument, StoredEntry};
use incasso_store::positions::{ListQuery, PayableAmount};
use incasso_store::receipts::park::{ParkedReceipt, RetryOutcome};
use incasso_store::receipts::query::{
    ReceiptConflict, ReceiptDetail, ReceiptFilterInput, ReceiptLookup, StoredReceipt,
};
use incasso_store::receipts::{Classification, ReceiptFlag};
use uuid::Uuid;

use crate::pb;

pub mod reconciliation;

/// The domain's kind for a proto enum value; `None` for unspecified or unknown values.
pub fn debt_kind(value: i32) -> Option<DebtKind> {
    match pb::DebtKind::try_from(value).ok()? {
        pb::DebtKind::Unspecified => None,
        pb::DebtKind::Tari => Some(DebtKind::Tari),
        pb::DebtKind::TrafficFine => Some(DebtKind::TrafficFine),
        pb::DebtKind::SchoolFee => Some(DebtKind::SchoolFee),
    }
}

fn entity_type(value: i32) -> Option<EntityType> {
    match pb::EntityType::try_from(value).ok()? {
        pb::EntityType::Unspecified => None,
        pb::EntityType::F => Some(EntityType::F),
        pb::EntityType::G => Some(EntityType::G),
    }
}

fn school_service(value: i32) -> Option<SchoolService> {
    match pb::SchoolService::try_from(value).ok()? {
        pb::SchoolService::Unspecified => None,
        pb::SchoolService::Nido => Some(SchoolService::Nido),
        pb::SchoolService::Infanzia => Some(SchoolService::Infanzia),
        pb::SchoolService::Refezione => Some(SchoolService::Refezione),
    }
}

/// The domain's state filter for a proto enum value.
pub fn position_state_filter(value: i32) -> Option<EffectivePositionState> {
    match pb::DebtPositionState::try_from(value).ok()? {
        pb::DebtPositionState::Unspecified => None,
        pb::DebtPositionState::Valid => Some(EffectivePositionState::Valid),
        pb::DebtPositionState::PartiallyPaid => Some(EffectivePositionState::PartiallyPaid),
        pb::DebtPositionState::Paid => Some(EffectivePositionState::Paid),
        pb::DebtPositionState::Expired => Some(EffectivePositionState::Expired),
        pb::DebtPositionState::Cancelled => Some(EffectivePositionState::Cancelled),
    }
}

fn fine_input(fine: &pb::TrafficFineDetails) -> TrafficFineInput {
    TrafficFineInput {
        report_number: fine.report_number.clone(),
        plate: fine.plate.clone(),
        violation_date: fine.violation_date.clone(),
        notification_date: fine.notification_date.clone(),
        reduced_amount_cents: fine.reduced_amount_cents,
        full_amount_cents: fine.full_amount_cents,
        increased_amount_cents: fine.increased_amount_cents,
        notification_costs_cents: fine.notification_costs_cents,
    }
}

fn transfer_input(transfer: &pb::Transfer) -> TransferInput {
    TransferInput {
        beneficiary_fiscal_code: transfer.beneficiary_fiscal_code.clone(),
        amount_cents: transfer.amount_cents,
        remittance_information: transfer.remittance_information.clone(),
        iban: transfer.iban.clone(),
        taxonomy_code: transfer.taxonomy_code.clone(),
    }
}

/// A create request as the domain's input.
pub fn create_input(request: &pb::CreateDebtPositionRequest) -> DebtPositionInput {
    use pb::create_debt_position_request::Details;
    DebtPositionInput {
        request_id: request.request_id.clone(),
        creditor_fiscal_code: request.creditor_fiscal_code.clone(),
        kind: debt_kind(request.kind),
        debtor: request.debtor.as_ref().map(|d| DebtorInput {
            entity_type: entity_type(d.r#type),
            fiscal_code: d.fiscal_code.clone(),
            full_name: d.full_name.clone(),
            email: d.email.clone(),
        }),
        description: request.description.clone(),
        details: request.details.as_ref().map(|details| match details {
            Details::Tari(tari) => DetailsInput::Tari(TariInput {
                tax_year: tari.tax_year,
                property_ref: tari.property_ref.clone(),
            }),
            Details::TrafficFine(fine) => DetailsInput::TrafficFine(fine_input(fine)),
            Details::SchoolFee(fee) => DetailsInput::SchoolFee(SchoolFeeInput {
                pupil_ref: fee.pupil_ref.clone(),
                service: school_service(fee.service),
                school_year: fee.school_year.clone(),
                month: fee.month.clone(),
            }),
        }),
        payment_options: request
            .payment_options
            .iter()
            .map(|option| PaymentOptionInput {
                label: option.label.clone(),
                installments: option
                    .installments
                    .iter()
                    .map(|i| InstallmentInput {
                        amount_cents: i.amount_cents,
                        due_date: i.due_date.clone(),
                        expiry_date: i.expiry_date.clone(),
                        transfers: i.transfers.iter().map(transfer_input).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// An update request as the domain's input.
pub fn update_input(request: &pb::UpdateDebtPositionRequest) -> UpdateInput {
    UpdateInput {
        request_id: request.request_id.clone(),
        id: request.id.clone(),
        installments: request
            .installments
            .iter()
            .map(|i| InstallmentUpdateInput {
                notice_number: i.notice_number.clone(),
                amount_cents: i.amount_cents,
                due_date: i.due_date.clone(),
                expiry_date: i.expiry_date.clone(),
                transfers: i.transfers.iter().map(transfer_input).collect(),
            })
            .collect(),
        description: request.description.clone(),
        traffic_fine: request.traffic_fine.as_ref().map(fine_input),
    }
}

/// A cancel request as the domain's input.
pub fn cancel_input(request: &pb::CancelDebtPositionRequest) -> CancelInput {
    CancelInput {
        request_id: request.request_id.clone(),
        id: request.id.clone(),
        reason: request.reason.clone(),
    }
}

/// A list request as the store's query.
pub fn list_query(
    request: &pb::ListDebtPositionsRequest,
) -> Result<ListQuery, incasso_store::AppError> {
    if request.state != 0 && pb::DebtPositionState::try_from(request.state).is_err() {
        return Err(incasso_store::AppError::invalid(
            "state",
            format!("{} is not a debt position state", request.state),
        ));
    }
    Ok(ListQuery {
        creditor_fiscal_code: request.creditor_fiscal_code.clone(),
        debtor_fiscal_code: request.debtor_fiscal_code.clone(),
        kind: kind_filter(request.kind)?,
        state: position_state_filter(request.state),
        page_size: request.page_size,
        page_token: request.page_token.clone(),
        // The caller's scope is the access layer's to add.
        scope: None,
    })
}

/// A `kind` filter: unspecified means any kind, a value the API does not define is refused
/// rather than silently widened to "any".
fn kind_filter(value: i32) -> Result<Option<DebtKind>, incasso_store::AppError> {
    if value != 0 && pb::DebtKind::try_from(value).is_err() {
        return Err(incasso_store::AppError::invalid(
            "kind",
            format!("{value} is not a debt kind"),
        ));
    }
    Ok(debt_kind(value))
}

/// A timestamp for an instant.
pub fn timestamp(instant: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: instant.unix_timestamp(),
        nanos: i32::try_from(instant.nanosecond()).unwrap_or(0),
    }
}

fn kind_value(kind: DebtKind) -> pb::DebtKind {
    match kind {
        DebtKind::Tari => pb::DebtKind::Tari,
        DebtKind::TrafficFine => pb::DebtKind::TrafficFine,
        DebtKind::SchoolFee => pb::DebtKind::SchoolFee,
    }
}

fn position_state_value(state: EffectivePositionState) -> pb::DebtPositionState {
    match state {
        EffectivePositionState::Valid => pb::DebtPositionState::Valid,
        EffectivePositionState::PartiallyPaid => pb::DebtPositionState::PartiallyPaid,
        EffectivePositionState::Paid => pb::DebtPositionState::Paid,
        EffectivePositionState::Expired => pb::DebtPositionState::Expired,
        EffectivePositionState::Cancelled => pb::DebtPositionState::Cancelled,
    }
}

/// The proto value of an installment state.
pub fn installment_state_value(state: EffectiveInstallmentState) -> pb::InstallmentState {
    match state {
        EffectiveInstallmentState::Unpaid => pb::InstallmentState::Unpaid,
        EffectiveInstallmentState::Paid => pb::InstallmentState::Paid,
        EffectiveInstallmentState::Expired => pb::InstallmentState::Expired,
        EffectiveInstallmentState::Cancelled => pb::InstallmentState::Cancelled,
        EffectiveInstallmentState::Unpayable => pb::InstallmentState::Unpayable,
    }
}

fn debtor(debtor: &Debtor) -> pb::Debtor {
    pb::Debtor {
        r#type: match debtor.entity_type {
            EntityType::F => pb::EntityType::F,
            EntityType::G => pb::EntityType::G,
        } as i32,
        fiscal_code: debtor.fiscal_code.as_str().to_owned(),
        full_name: debtor.full_name.clone(),
        email: debtor.email.clone().unwrap_or_default(),
    }
}

fn transfer(index: usize, transfer: &Transfer) -> pb::Transfer {
    pb::Transfer {
        beneficiary_fiscal_code: transfer.beneficiary.as_str().to_owned(),
        amount_cents: transfer.amount.get(),
        remittance_information: transfer.remittance_information.clone(),
        iban: transfer.iban.as_str().to_owned(),
        taxonomy_code: transfer.taxonomy.as_str().to_owned(),
        index: i32::try_from(index + 1).unwrap_or(0),
        postal_iban: transfer
            .postal_iban
            .as_ref()
            .map(|iban| iban.as_str().to_owned())
            .unwrap_or_default(),
    }
}

fn installment(position: &DebtPosition, installment: &Installment, today: Date) -> pb::Installment {
    pb::Installment {
        amount_cents: installment.amount.get(),
        due_date: format_date(installment.due_date),
        expiry_date: installment.expiry_date.map(format_date).unwrap_or_default(),
        transfers: installment
            .transfers
            .iter()
            .enumerate()
            .map(|(i, t)| transfer(i, t))
            .collect(),
        notice_number: installment.notice_number.as_str().to_owned(),
        iuv: installment.iuv.as_str().to_owned(),
        qr_code: installment
            .notice_number
            .qr_code_payload(&position.creditor, installment.amount),
        printed_notice_number: installment.notice_number.printed(),
        state: installment_state_value(installment.effective_state(today)) as i32,
    }
}

fn option(position: &DebtPosition, option: &PaymentOption, today: Date) -> pb::PaymentOption {
    pb::PaymentOption {
        label: option.label.clone(),
        installments: option
            .installments
            .iter()
            .map(|i| installment(position, i, today))
            .collect(),
    }
}

fn fine_details(
    fine: &incasso_domain::debt_position::TrafficFineDetails,
) -> pb::TrafficFineDetails {
    let amounts = fine.schedule.amounts();
    pb::TrafficFineDetails {
        report_number: fine.report_number.clone(),
        plate: fine.plate.clone(),
        violation_date: format_date(fine.violation_date),
        notification_date: format_date(fine.schedule.notification_date()),
        reduced_amount_cents: amounts.reduced().get(),
        full_amount_cents: amounts.full().get(),
        increased_amount_cents: amounts.increased().get(),
        notification_costs_cents: amounts.notification_costs_cents(),
    }
}

/// A position as the API shows it on `today` (states such as "expired" depend on the day).
pub fn debt_position(position: &DebtPosition, today: Date) -> pb::DebtPosition {
    use pb::debt_position::Details;
    pb::DebtPosition {
        id: position.id.to_string(),
        request_id: position.request_id.clone(),
        creditor_fiscal_code: position.creditor.as_str().to_owned(),
        kind: kind_value(position.kind()) as i32,
        debtor: position.debtor.as_ref().map(debtor),
        description: position.description.clone(),
        state: position_state_value(position.effective_state(today)) as i32,
        details: Some(match &position.details {
            KindDetails::Tari(tari) => Details::Tari(pb::TariDetails {
                tax_year: tari.tax_year,
                property_ref: tari.property_ref.clone(),
            }),
            KindDetails::TrafficFine(fine) => Details::TrafficFine(fine_details(fine)),
            KindDetails::SchoolFee(fee) => Details::SchoolFee(pb::SchoolFeeDetails {
                pupil_ref: fee.pupil_ref.clone(),
                service: match fee.service {
                    SchoolService::Nido => pb::SchoolService::Nido,
                    SchoolService::Infanzia => pb::SchoolService::Infanzia,
                    SchoolService::Refezione => pb::SchoolService::Refezione,
                } as i32,
                school_year: fee.school_year.clone(),
                month: fee.month.clone().unwrap_or_default(),
            }),
        }),
        payment_options: position
            .payment_options
            .iter()
            .map(|o| option(position, o, today))
            .collect(),
        created_at: Some(timestamp(position.created_at)),
        updated_at: Some(timestamp(position.updated_at)),
        version: position.version,
        cancellation_reason: position.cancellation_reason.clone().unwrap_or_default(),
    }
}

/// The payable amount as the API shows it.
pub fn payable_amount(amount: &PayableAmount) -> pb::GetPayableAmountResponse {
    pb::GetPayableAmountResponse {
        notice_number: amount.notice_number.as_str().to_owned(),
        date: format_date(amount.day),
        amount_cents: amount.amount.get(),
        payable: amount.payable,
        state: installment_state_value(amount.state) as i32,
        fine_band: match amount.fine_band {
            None => pb::FineBand::Unspecified,
            Some(FineBand::Reduced) => pb::FineBand::Reduced,
            Some(FineBand::Full) => pb::FineBand::Full,
            Some(FineBand::Increased) => pb::FineBand::Increased,
        } as i32,
        due_date: format_date(amount.due_date),
    }
}

/// An instant from a protobuf timestamp; `field` names it in the error.
pub fn instant(
    field: &str,
    timestamp: Option<&Timestamp>,
) -> Result<Option<OffsetDateTime>, incasso_store::AppError> {
    let Some(timestamp) = timestamp else {
        return Ok(None);
    };
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(Some)
        .map_err(|_| incasso_store::AppError::invalid(field, "not a valid timestamp"))
}

/// A ListEntries request as the store's filter.
pub fn entry_filter(
    from: Option<&Timestamp>,
    to: Option<&Timestamp>,
    filter: EntryFilterFields<'_>,
) -> Result<EntryFilterInput, incasso_store::AppError> {
    Ok(EntryFilterInput {
        from: instant("from", from)?,
        to: instant("to", to)?,
        account: filter.account.to_owned(),
        creditor_fiscal_code: filter.creditor_fiscal_code.to_owned(),
        kind: kind_filter(filter.kind)?,
        event_type: filter.event_type.to_owned(),
        notice_number: filter.notice_number.to_owned(),
        iuv: filter.iuv.to_owned(),
        debt_position_id: filter.debt_position_id.to_owned(),
        receipt_id: filter.receipt_id.to_owned(),
        reporting_flow_id: filter.reporting_flow_id.to_owned(),
        treasury_credit_id: filter.treasury_credit_id.to_owned(),
    })
}

/// The filter fields shared by ListEntries and ExportEntries.
#[derive(Debug, Clone, Copy)]
pub struct EntryFilterFields<'a> {
    /// Account code.
    pub account: &'a str,
    /// Creditor.
    pub creditor_fiscal_code: &'a str,
    /// Kind enum value.
    pub kind: i32,
    /// Event type name.
    pub event_type: &'a str,
    /// Notice number.
    pub notice_number: &'a str,
    /// IUV.
    pub iuv: &'a str,
    /// Debt position id.
    pub debt_position_id: &'a str,
    /// PagoPA receiptId.
    pub receipt_id: &'a str,
    /// Reporting flow id (IUF).
    pub reporting_flow_id: &'a str,
    /// Treasury credit id.
    pub treasury_credit_id: &'a str,
}

/// An entry as the API shows it.
pub fn ledger_entry(stored: &StoredEntry) -> pb::LedgerEntry {
    let entry = &stored.entry;
    let draft = &entry.draft;
    pb::LedgerEntry {
        sequence: entry.sequence,
        id: entry.id.to_string(),
        event_type: draft.event_type.as_str().to_owned(),
        creditor_fiscal_code: draft.creditor.as_str().to_owned(),
        kind: draft.kind.map_or(pb::DebtKind::Unspecified, kind_value) as i32,
        description: draft.description.clone(),
        recorded_at: Some(timestamp(entry.recorded_at)),
        lines: draft
            .lines
            .iter()
            .map(|l| pb::LedgerLine {
                account: l.account.code(),
                amount_cents: l.amount_cents,
            })
            .collect(),
        debt_position_id: draft
            .cause
            .debt_position_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        notices: draft
            .cause
            .notices
            .iter()
            .map(|(notice_number, iuv)| pb::LedgerNotice {
                notice_number: notice_number.clone(),
                iuv: iuv.clone(),
            })
            .collect(),
        receipt_id: draft.cause.receipt_id.clone().unwrap_or_default(),
        reporting_flow_id: draft.cause.reporting_flow_id.clone().unwrap_or_default(),
        treasury_line_id: draft.cause.treasury_line_id.clone().unwrap_or_default(),
        reporting_flow_revision: draft.cause.reporting_flow_revision.unwrap_or(0),
        posting_key: draft.cause.posting_key.clone().unwrap_or_default(),
        corrects_sequence: draft.cause.corrects_sequence.unwrap_or(0),
        source_document_id: stored
            .source_document_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        source_document_sha256: entry
            .source_document_sha256
            .as_ref()
            .map(hex_lower)
            .unwrap_or_default(),
        previous_hash: hex_lower(&entry.previous_hash),
        hash: hex_lower(&entry.hash),
    }
}

/// A source document as the API shows it.
///
/// `intact` compares the content with the hash the chained entry recorded, not with the
/// document row's own hash column: a document swapped or rewritten together with its row
/// still cannot match what the hash chain says.
pub fn source_document(
    document: &SourceDocument,
    recorded_sha256: Option<[u8; 32]>,
) -> pb::SourceDocument {
    use sha2::Digest;
    let intact = document.content.as_ref().is_some_and(|c| {
        let actual = <[u8; 32]>::from(sha2::Sha256::digest(c));
        actual == document.sha256 && Some(actual) == recorded_sha256
    });
    pb::SourceDocument {
        id: document.id.to_string(),
        kind: document.kind.clone(),
        media_type: document.media_type.clone(),
        sha256: hex_lower(&document.sha256),
        content: document.content.clone().unwrap_or_default(),
        created_at: Some(timestamp(document.created_at)),
        intact,
    }
}

/// A checkpoint as the API shows it.
pub fn checkpoint(checkpoint: &Checkpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        sequence: checkpoint.sequence,
        hash: hex_lower(&checkpoint.hash),
    }
}

/// Checkpoints sent by an auditor.
pub fn checkpoints(
    checkpoints: &[pb::Checkpoint],
) -> Result<Vec<Checkpoint>, incasso_store::AppError> {
    checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Checkpoint::parse(&format!("{}:{}", c.sequence, c.hash))
                .map_err(|e| incasso_store::AppError::invalid(&format!("checkpoints[{i}]"), e))
        })
        .collect()
}

/// The domain's classification for a proto enum value; `None` for unspecified or unknown.
pub fn classification(value: i32) -> Option<Classification> {
    match pb::ReceiptClassification::try_from(value).ok()? {
        pb::ReceiptClassification::Unspecified => None,
        pb::ReceiptClassification::Settled => Some(Classification::Settled),
        pb::ReceiptClassification::SettledLate => Some(Classification::SettledLate),
        pb::ReceiptClassification::DoublePayment => Some(Classification::DoublePayment),
        pb::ReceiptClassification::ClosedNotice => Some(Classification::ClosedNotice),
        pb::ReceiptClassification::UnknownNotice => Some(Classification::UnknownNotice),
        pb::ReceiptClassification::NotPaid => Some(Classification::NotPaid),
        pb::ReceiptClassification::Parked => Some(Classification::Parked),
    }
}

/// The proto value of a classification.
pub fn classification_value(classification: Classification) -> pb::ReceiptClassification {
    match classification {
        Classification::Settled => pb::ReceiptClassification::Settled,
        Classification::SettledLate => pb::ReceiptClassification::SettledLate,
        Classification::DoublePayment => pb::ReceiptClassification::DoublePayment,
        Classification::ClosedNotice => pb::ReceiptClassification::ClosedNotice,
        Classification::UnknownNotice => pb::ReceiptClassification::UnknownNotice,
        Classification::NotPaid => pb::ReceiptClassification::NotPaid,
        Classification::Parked => pb::ReceiptClassification::Parked,
    }
}

/// The domain's flag for a proto enum value; `None` for unspecified or unknown.
pub fn receipt_flag(value: i32) -> Option<ReceiptFlag> {
    match pb::ReceiptFlag::try_from(value).ok()? {
        pb::ReceiptFlag::Unspecified => None,
        pb::ReceiptFlag::StandIn => Some(ReceiptFlag::StandIn),
        pb::ReceiptFlag::Late => Some(ReceiptFlag::Late),
        pb::ReceiptFlag::AmountDiffers => Some(ReceiptFlag::AmountDiffers),
        pb::ReceiptFlag::OtherCreditorNotice => Some(ReceiptFlag::OtherCreditorNotice),
    }
}

fn receipt_flag_value(flag: ReceiptFlag) -> pb::ReceiptFlag {
    match flag {
        ReceiptFlag::StandIn => pb::ReceiptFlag::StandIn,
        ReceiptFlag::Late => pb::ReceiptFlag::Late,
        ReceiptFlag::AmountDiffers => pb::ReceiptFlag::AmountDiffers,
        ReceiptFlag::OtherCreditorNotice => pb::ReceiptFlag::OtherCreditorNotice,
    }
}

/// The filter fields shared by ListReceipts and ExportReceipts.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptFilterFields<'a> {
    /// Classification enum values.
    pub classifications: &'a [i32],
    /// Flag enum value.
    pub flag: i32,
    /// Notice number.
    pub notice_number: &'a str,
    /// IUV.
    pub iuv: &'a str,
    /// PagoPA receiptId.
    pub receipt_id: &'a str,
    /// The key's creditor.
    pub creditor_fiscal_code: &'a str,
    /// First Rome day, `YYYY-MM-DD`.
    pub paid_from: &'a str,
    /// Last Rome day, `YYYY-MM-DD`.
    pub paid_to: &'a str,
}

impl<'a> From<&'a pb::ListReceiptsRequest> for ReceiptFilterFields<'a> {
    fn from(r: &'a pb::ListReceiptsRequest) -> Self {
        Self {
            classifications: &r.classifications,
            flag: r.flag,
            notice_number: &r.notice_number,
            iuv: &r.iuv,
            receipt_id: &r.receipt_id,
            creditor_fiscal_code: &r.creditor_fiscal_code,
            paid_from: &r.paid_from,
            paid_to: &r.paid_to,
        }
    }
}

impl<'a> From<&'a pb::ReceiptFilter> for ReceiptFilterFields<'a> {
    fn from(r: &'a pb::ReceiptFilter) -> Self {
        Self {
            classifications: &r.classifications,
            flag: r.flag,
            notice_number: &r.notice_number,
            iuv: &r.iuv,
            receipt_id: &r.receipt_id,
            creditor_fiscal_code: &r.creditor_fiscal_code,
            paid_from: &r.paid_from,
            paid_to: &r.paid_to,
        }
    }
}

/// A receipt filter as the store's input. An enum value the API does not define, or an
/// unspecified classification in the list, is refused rather than silently widened to "any".
pub fn receipt_filter(
    fields: ReceiptFilterFields<'_>,
) -> Result<ReceiptFilterInput, incasso_store::AppError> {
    let mut errors = ValidationErrors::new();
    let mut classifications = Vec::with_capacity(fields.classifications.len());
    for (i, value) in fields.classifications.iter().enumerate() {
        match classification(*value) {
            Some(c) => classifications.push(c),
            None => errors.add(
                format!("classifications[{i}]"),
                format!("{value} is not a receipt classification"),
            ),
        }
    }
    let flag = receipt_flag(fields.flag);
    if fields.flag != 0 && flag.is_none() {
        errors.add("flag", format!("{} is not a receipt flag", fields.flag));
    }
    errors
        .into_result(|| ReceiptFilterInput {
            classifications,
            flag,
            notice_number: fields.notice_number.to_owned(),
            iuv: fields.iuv.to_owned(),
            receipt_id: fields.receipt_id.to_owned(),
            creditor_fiscal_code: fields.creditor_fiscal_code.to_owned(),
            paid_from: fields.paid_from.to_owned(),
            paid_to: fields.paid_to.to_owned(),
        })
        .map_err(incasso_store::AppError::Invalid)
}

/// `error` with every invalid field's path put under `prefix` (`filter.paid_from`), for a
/// request whose fields sit in a nested message.
pub fn nested(prefix: &str, error: incasso_store::AppError) -> incasso_store::AppError {
    match error {
        incasso_store::AppError::Invalid(errors) => {
            let mut nested = ValidationErrors::new();
            for v in errors.violations() {
                nested.add(format!("{prefix}.{}", v.field), &v.description);
            }
            incasso_store::AppError::Invalid(nested)
        }
        other => other,
    }
}

fn receipt_key(creditor_fiscal_code: &str, iuv: &str, receipt_id: &str) -> pb::ReceiptKey {
    pb::ReceiptKey {
        creditor_fiscal_code: creditor_fiscal_code.to_owned(),
        iuv: iuv.to_owned(),
        receipt_id: receipt_id.to_owned(),
    }
}

/// A stored receipt as the API shows it.
pub fn receipt(stored: &StoredReceipt) -> pb::Receipt {
    pb::Receipt {
        id: stored.id.to_string(),
        key: Some(receipt_key(
            &stored.creditor_fiscal_code,
            &stored.iuv,
            &stored.receipt_id,
        )),
        notice_number: stored.notice_number.clone(),
        receiving_creditor: stored.receiving_creditor.clone(),
        primitive: stored.primitive.clone(),
        psp_id: stored.psp_id.clone(),
        channel_id: stored.channel_id.clone(),
        payment_amount_cents: stored.payment_amount_cents,
        fee_cents: stored.fee_cents,
        payment_date_time: stored.payment_date_time.clone().unwrap_or_default(),
        paid_at: stored.paid_at.map(timestamp),
        classification: classification_value(stored.classification) as i32,
        flags: stored
            .flags
            .iter()
            .map(|f| receipt_flag_value(*f) as i32)
            .collect(),
        stand_in: stored.stand_in,
        debt_position_id: stored
            .debt_position_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        installment_id: stored
            .installment_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        received_at: Some(timestamp(stored.received_at)),
        recovered: stored.recovered,
    }
}

/// A GetReceipt request as the store's lookup.
pub fn receipt_lookup(
    request: &pb::GetReceiptRequest,
) -> Result<ReceiptLookup, incasso_store::AppError> {
    use pb::get_receipt_request::Lookup;
    match &request.lookup {
        Some(Lookup::Id(id)) => Ok(ReceiptLookup::Id(id.clone())),
        Some(Lookup::Key(key)) => Ok(ReceiptLookup::Key {
            creditor_fiscal_code: key.creditor_fiscal_code.clone(),
            iuv: key.iuv.clone(),
            receipt_id: key.receipt_id.clone(),
        }),
        None => Err(incasso_store::AppError::invalid(
            "id",
            "required: id or key",
        )),
    }
}

/// A parked receipt as the API shows it.
pub fn parked_receipt(parked: &ParkedReceipt) -> pb::ParkedReceipt {
    pb::ParkedReceipt {
        id: parked.id.to_string(),
        key: Some(receipt_key(
            &parked.creditor_fiscal_code,
            &parked.iuv,
            &parked.receipt_id,
        )),
        notice_number: parked.notice_number.clone(),
        payment_amount_cents: parked.payment_amount_cents,
        reason: parked.reason.clone(),
        attempts: parked.attempts,
        parked_at: Some(timestamp(parked.parked_at)),
        last_attempt_at: parked.last_attempt_at.map(timestamp),
        next_attempt_at: parked.next_attempt_at.map(timestamp),
        booked_at: parked.booked_at.map(timestamp),
    }
}

/// A receipt with its transfers, entries and parked state as the API shows it.
pub fn receipt_detail(detail: &ReceiptDetail) -> pb::GetReceiptResponse {
    pb::GetReceiptResponse {
        receipt: Some(receipt(&detail.receipt)),
        transfers: detail
            .transfers
            .iter()
            .map(|t| pb::ReceiptTransfer {
                id_transfer: i32::from(t.id_transfer),
                beneficiary_fiscal_code: t.beneficiary_fiscal_code.clone(),
                iban: t.iban.clone().unwrap_or_default(),
                amount_cents: t.amount_cents,
                remittance_information: t.remittance_information.clone(),
                transfer_category: t.transfer_category.clone(),
            })
            .collect(),
        ledger_entries: detail.ledger_entries.iter().map(ledger_entry).collect(),
        parked: detail.parked.as_ref().map(parked_receipt),
    }
}

/// A conflict as the API shows it.
pub fn receipt_conflict(conflict: &ReceiptConflict) -> pb::ReceiptConflict {
    pb::ReceiptConflict {
        id: conflict.id.to_string(),
        key: Some(receipt_key(
            &conflict.creditor_fiscal_code,
            &conflict.iuv,
            &conflict.receipt_id,
        )),
        content_sha256: conflict.content_sha256.clone(),
        received_at: Some(timestamp(conflict.received_at)),
        receipt_row_id: conflict
            .receipt_row_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

/// The row ids of a RetryParkedReceipts request: exactly one of `ids` and `all`; `None`
/// means all.
pub fn retry_ids(
    request: &pb::RetryParkedReceiptsRequest,
) -> Result<Option<Vec<Uuid>>, incasso_store::AppError> {
    match (request.ids.is_empty(), request.all) {
        (true, true) => Ok(None),
        (true, false) => Err(incasso_store::AppError::invalid(
            "ids",
            "required: the ids of the receipts to retry, or all",
        )),
        (false, true) => Err(incasso_store::AppError::invalid(
            "all",
            "give either ids or all, not both",
        )),
        (false, false) => {
            let mut errors = ValidationErrors::new();
            let ids: Vec<Uuid> = request
                .ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    errors.check(
                        &format!("ids[{i}]"),
                        Uuid::try_parse(id.trim())
                            .map_err(|_| format!("'{id}' is not a receipt id (UUID)")),
                    )
                })
                .collect();
            errors
                .into_result(|| Some(ids))
                .map_err(incasso_store::AppError::Invalid)
        }
    }
}

/// One retry outcome as the API shows it.
pub fn retry_outcome(id: Uuid, outcome: &RetryOutcome) -> pb::ParkedReceiptRetry {
    let (result, classification, reason) = match outcome {
        RetryOutcome::Booked(c) => (
            pb::RetryResult::Booked,
            classification_value(*c),
            String::new(),
        ),
        RetryOutcome::StillParked(reason) => (
            pb::RetryResult::StillParked,
            pb::ReceiptClassification::Parked,
            reason.clone(),
        ),
        RetryOutcome::NotParked => (
            pb::RetryResult::NotParked,
            pb::ReceiptClassification::Unspecified,
            String::new(),
        ),
    };
    pb::ParkedReceiptRetry {
        id: id.to_string(),
        result: result as i32,
        classification: classification as i32,
        reason,
    }
}

// The citizen's payments (CitizenPaymentsService).

/// A ListCitizenNotices request as the store's query.
pub fn citizen_notice_query(
    request: &pb::ListCitizenNoticesRequest,
) -> Result<incasso_store::citizen_payments::CitizenNoticeQuery, incasso_store::AppError> {
    use incasso_store::citizen_payments::CitizenNoticeFilter;
    let filter = match pb::CitizenNoticeFilter::try_from(request.filter) {
        Ok(pb::CitizenNoticeFilter::Pending) => CitizenNoticeFilter::Pending,
        Ok(pb::CitizenNoticeFilter::Paid) => CitizenNoticeFilter::Paid,
        Ok(pb::CitizenNoticeFilter::All | pb::CitizenNoticeFilter::Unspecified) => {
            CitizenNoticeFilter::All
        }
        Err(_) => {
            return Err(incasso_store::AppError::invalid(
                "filter",
                format!("{} is not a citizen notice filter", request.filter),
            ));
        }
    };
    Ok(incasso_store::citizen_payments::CitizenNoticeQuery {
        fiscal_code: request.fiscal_code.clone(),
        filter,
        kind: kind_filter(request.kind)?,
        page_size: request.page_size,
        page_token: request.page_token.clone(),
    })
}

fn fine_band_value(band: Option<FineBand>) -> pb::FineBand {
    match band {
        None => pb::FineBand::Unspecified,
        Some(FineBand::Reduced) => pb::FineBand::Reduced,
        Some(FineBand::Full) => pb::FineBand::Full,
        Some(FineBand::Increased) => pb::FineBand::Increased,
    }
}

/// A citizen's notice as the Fascicolo shows it: the amount, band, state and QR payload of
/// the day it was read.
pub fn citizen_notice(
    notice: &incasso_store::citizen_payments::CitizenNotice,
    registry: &incasso_domain::creditor::CreditorRegistry,
) -> pb::CitizenNotice {
    let position = &notice.position;
    let installment = notice.installment();
    let today = notice.today;
    let state = installment.effective_state(today);
    let payable_today = state == EffectiveInstallmentState::Unpaid;
    let amount_today = position.amount_payable_on(installment, today);
    let fine_band = match &position.details {
        KindDetails::TrafficFine(fine) => Some(fine.schedule.band_on(today)),
        _ => None,
    };
    let creditor = position.creditor.as_str();
    pb::CitizenNotice {
        notice_number: installment.notice_number.as_str().to_owned(),
        iuv: installment.iuv.as_str().to_owned(),
        creditor_fiscal_code: creditor.to_owned(),
        creditor_name: registry
            .get(creditor)
            .map_or_else(|| creditor.to_owned(), |c| c.name().to_owned()),
        debt_position_id: position.id.to_string(),
        kind: kind_value(position.kind()) as i32,
        description: position.description.clone(),
        payment_option_label: notice.option().label.clone(),
        installment_index: i32::try_from(notice.installment_index + 1).unwrap_or(i32::MAX),
        installment_count: i32::try_from(notice.option().installments.len()).unwrap_or(i32::MAX),
        amount_cents: installment.amount.get(),
        amount_payable_today_cents: if payable_today { amount_today.get() } else { 0 },
        fine_band: fine_band_value(fine_band) as i32,
        due_date: format_date(installment.due_date),
        expiry_date: installment.expiry_date.map(format_date).unwrap_or_default(),
        state: installment_state_value(state) as i32,
        qr_code: installment.notice_number.qr_code_payload(
            &position.creditor,
            if payable_today {
                amount_today
            } else {
                installment.amount
            },
        ),
        receipt: notice.receipt.as_ref().map(citizen_receipt),
    }
}

/// A receipt as the citizen sees it: no payer, no operator detail.
pub fn citizen_receipt(stored: &StoredReceipt) -> pb::CitizenReceipt {
    pb::CitizenReceipt {
        receipt_id: stored.receipt_id.clone(),
        notice_number: stored.notice_number.clone(),
        iuv: stored.iuv.clone(),
        creditor_fiscal_code: stored.creditor_fiscal_code.clone(),
        amount_cents: stored.payment_amount_cents,
        fee_cents: stored.fee_cents,
        psp_id: stored.psp_id.clone(),
        paid_at: stored.paid_at.map(timestamp),
        stand_in: stored.stand_in,
    }
}

/// A GetCitizenReceipt request's lookup.
pub fn citizen_receipt_lookup(
    request: &pb::GetCitizenReceiptRequest,
) -> Result<incasso_store::citizen_payments::CitizenReceiptLookup, incasso_store::AppError> {
    use incasso_store::citizen_payments::CitizenReceiptLookup;
    use pb::get_citizen_receipt_request::Lookup;
    match &request.lookup {
        Some(Lookup::ReceiptId(id)) => Ok(CitizenReceiptLookup::ReceiptId(id.clone())),
        Some(Lookup::NoticeNumber(notice)) => {
            Ok(CitizenReceiptLookup::NoticeNumber(notice.clone()))
        }
        None => Err(incasso_store::AppError::invalid(
            "receipt_id",
            "required: receipt_id or notice_number",
        )),
    }
}
