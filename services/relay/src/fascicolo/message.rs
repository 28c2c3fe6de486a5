//! Builds the `fascicolo.v1.CitizenEvent` of a queued change from the current state: the
//! position (with its debtor, decrypted here and nowhere earlier) and the receipt. The outbox
//! only named what changed; a late or repeated delivery therefore sends today's picture.

use std::collections::HashMap;

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::citizen::{self, CitizenChange};
use incasso_domain::creditor::CreditorRegistry;
use incasso_domain::debt_position::{DebtKind, DebtPosition, EffectiveInstallmentState};
use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::receipt::Classification;
use incasso_domain::validation::format_date;
use incasso_store::PrivacyKeys;
use incasso_store::citizens::{CitizenEvent, CitizenReceipt};

use super::pb;
use crate::Claimed;

/// The current state a batch of events is built from.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    /// Positions by id.
    pub positions: HashMap<Uuid, DebtPosition>,
    /// Receipts by row id.
    pub receipts: HashMap<Uuid, CitizenReceipt>,
}

/// What else a message needs.
pub(crate) struct Context<'a> {
    pub registry: &'a CreditorRegistry,
    pub keys: &'a PrivacyKeys,
    pub today: Date,
}

/// The positions and receipts the changes of `batch` name.
pub(crate) fn wanted(batch: &[Claimed<CitizenEvent>]) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut positions = Vec::new();
    let mut receipts = Vec::new();
    for claimed in batch {
        match &claimed.payload.change {
            CitizenChange::NoticeIssued {
                debt_position_id, ..
            }
            | CitizenChange::NoticeChanged {
                debt_position_id, ..
            }
            | CitizenChange::NoticeCancelled {
                debt_position_id, ..
            } => positions.push(*debt_position_id),
            CitizenChange::PaymentReceived { receipt_row_id }
            | CitizenChange::RefundDue { receipt_row_id } => receipts.push(*receipt_row_id),
        }
    }
    (positions, receipts)
}

fn timestamp(instant: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.unix_timestamp(),
        nanos: i32::try_from(instant.nanosecond()).unwrap_or(0),
    }
}

/// When the change was committed: the event id is a UUIDv7 taken in its transaction.
fn occurred_at(id: Uuid) -> Option<prost_types::Timestamp> {
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    Some(prost_types::Timestamp {
        seconds: i64::try_from(seconds).ok()?,
        nanos: i32::try_from(nanos).ok()?,
    })
}

/// The event for `claimed`, or why it cannot be built (a dead letter: retrying reads the same
/// state).
pub(crate) fn build(
    context: &Context<'_>,
    sources: &Sources,
    claimed: &Claimed<CitizenEvent>,
) -> Result<pb::CitizenEvent, String> {
    let position_of = |id: &Uuid| {
        sources
            .positions
            .get(id)
            .ok_or_else(|| format!("debt position {id} no longer exists"))
    };
    let (position, event) = match &claimed.payload.change {
        CitizenChange::NoticeIssued {
            debt_position_id,
            notice_number,
        } => {
            let position = position_of(debt_position_id)?;
            let notice = notice(context, position, notice_number)?;
            (position, pb::citizen_event::Event::NoticeIssued(notice))
        }
        CitizenChange::NoticeChanged {
            debt_position_id,
            notice_number,
        } => {
            let position = position_of(debt_position_id)?;
            let notice = notice(context, position, notice_number)?;
            (position, pb::citizen_event::Event::NoticeChanged(notice))
        }
        CitizenChange::NoticeCancelled {
            debt_position_id,
            notice_numbers,
        } => {
            let position = position_of(debt_position_id)?;
            (
                position,
                pb::citizen_event::Event::NoticeCancelled(pb::NoticeCancelled {
                    creditor_fiscal_code: position.creditor.as_str().to_owned(),
                    debt_position_id: position.id.to_string(),
                    notice_numbers: notice_numbers
                        .iter()
                        .map(|n| n.as_str().to_owned())
                        .collect(),
                }),
            )
        }
        CitizenChange::PaymentReceived { receipt_row_id }
        | CitizenChange::RefundDue { receipt_row_id } => {
            let receipt = sources
                .receipts
                .get(receipt_row_id)
                .ok_or_else(|| format!("receipt {receipt_row_id} no longer exists"))?;
            let position_id = receipt
                .debt_position_id
                .ok_or_else(|| format!("receipt {receipt_row_id} paid no position of incasso's"))?;
            let position = position_of(&position_id)?;
            (position, receipt_event(receipt))
        }
    };
    let citizen = citizen::citizen_of(position).ok_or_else(|| {
        format!(
            "debt position {}: no citizen debtor (personal data erased?)",
            position.id
        )
    })?;
    // The queue is the citizen's: a position whose debtor is someone else now must not leak
    // into it.
    if hex::encode(context.keys.fiscal_code_hash(citizen)) != claimed.event.aggregate_id {
        return Err(format!(
            "debt position {}: its debtor is not the citizen of this queue",
            position.id
        ));
    }
    Ok(pb::CitizenEvent {
        event_id: claimed.event.id.to_string(),
        citizen_fiscal_code: citizen.as_str().to_owned(),
        citizen_sequence: claimed.payload.citizen_sequence,
        occurred_at: occurred_at(claimed.event.id),
        event: Some(event),
    })
}

fn receipt_event(receipt: &CitizenReceipt) -> pb::citizen_event::Event {
    let position_id = receipt
        .debt_position_id
        .map(|id| id.to_string())
        .unwrap_or_default();
    match receipt.classification {
        Classification::DoublePayment | Classification::ClosedNotice => {
            let reason = if receipt.classification == Classification::DoublePayment {
                pb::RefundReason::DoublePayment
            } else {
                pb::RefundReason::ClosedNotice
            };
            pb::citizen_event::Event::RefundDue(pb::RefundDue {
                creditor_fiscal_code: receipt.creditor_fiscal_code.clone(),
                debt_position_id: position_id,
                notice_number: receipt.notice_number.clone(),
                receipt_id: receipt.receipt_id.clone(),
                reason: reason.into(),
                amount_cents: receipt.amount_cents,
                paid_at: Some(timestamp(receipt.paid_at)),
            })
        }
        _ => pb::citizen_event::Event::PaymentReceived(pb::PaymentReceived {
            creditor_fiscal_code: receipt.creditor_fiscal_code.clone(),
            debt_position_id: position_id,
            notice_number: receipt.notice_number.clone(),
            iuv: receipt.iuv.clone(),
            receipt_id: receipt.receipt_id.clone(),
            amount_cents: receipt.amount_cents,
            fee_cents: receipt.fee_cents.unwrap_or(0),
            psp_id: receipt.psp_id.clone(),
            psp_name: receipt.psp_id.clone(),
            paid_at: Some(timestamp(receipt.paid_at)),
            stand_in: receipt.stand_in,
        }),
    }
}

/// One notice of `position` as it stands on `context.today`.
fn notice(
    context: &Context<'_>,
    position: &DebtPosition,
    notice_number: &NoticeNumber,
) -> Result<pb::Notice, String> {
    let (option, index, installment) = position
        .payment_options
        .iter()
        .find_map(|option| {
            option
                .installments
                .iter()
                .position(|i| &i.notice_number == notice_number)
                .map(|index| (option, index, &option.installments[index]))
        })
        .ok_or_else(|| {
            format!(
                "notice {} is not one of debt position {}'s",
                notice_number.as_str(),
                position.id
            )
        })?;
    let state = match installment.effective_state(context.today) {
        EffectiveInstallmentState::Unpaid => pb::NoticeState::Payable,
        EffectiveInstallmentState::Paid => pb::NoticeState::Paid,
        EffectiveInstallmentState::Expired => pb::NoticeState::Expired,
        EffectiveInstallmentState::Cancelled => pb::NoticeState::Cancelled,
        EffectiveInstallmentState::Unpayable => pb::NoticeState::Unpayable,
    };
    let kind = match position.kind() {
        DebtKind::Tari => pb::DebtKind::Tari,
        DebtKind::TrafficFine => pb::DebtKind::TrafficFine,
        DebtKind::SchoolFee => pb::DebtKind::SchoolFee,
    };
    Ok(pb::Notice {
        creditor_fiscal_code: position.creditor.as_str().to_owned(),
        creditor_name: context
            .registry
            .get(position.creditor.as_str())
            .map(|c| c.name().to_owned())
            .unwrap_or_default(),
        debt_position_id: position.id.to_string(),
        kind: kind.into(),
        description: position.description.clone(),
        notice_number: installment.notice_number.as_str().to_owned(),
        iuv: installment.iuv.as_str().to_owned(),
        amount_cents: installment.amount.get(),
        due_date: format_date(installment.due_date),
        expiry_date: installment.expiry_date.map(format_date).unwrap_or_default(),
        payment_option_label: option.label.clone(),
        installment_index: u32::try_from(index + 1).unwrap_or(u32::MAX),
        installment_count: u32::try_from(option.installments.len()).unwrap_or(u32::MAX),
        qr_payload: installment
            .notice_number
            .qr_code_payload(&position.creditor, installment.amount),
        state: state.into(),
        amount_payable_today_cents: position.amount_payable_on(installment, context.today).get(),
    })
}
