//! Changing and cancelling a debt position. Both are planned here, purely, against the
//! position as stored: the result says exactly what to write, or why the change is refused.
//! Notice numbers never change: a changed installment keeps its NAV, and a cancelled one
//! keeps its number forever, never to be issued again.

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use super::input::{
    TrafficFineInput, TransferContext, TransferInput, parse_expiry, parse_fine, parse_transfers,
};
use super::{
    DebtPosition, Installment, InstallmentState, KindDetails, PositionState, TrafficFineDetails,
    Transfer,
};
use crate::creditor::CreditorRegistry;
use crate::money::AmountCents;
use crate::notice_number::NoticeNumber;
use crate::validation::{self, ValidationErrors};

/// A change to one installment as sent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallmentUpdateInput {
    /// Which installment.
    pub notice_number: String,
    /// New amount, cents.
    pub amount_cents: Option<i64>,
    /// New due date, YYYY-MM-DD.
    pub due_date: Option<String>,
    /// New expiry date, YYYY-MM-DD, or "" to remove it.
    pub expiry_date: Option<String>,
    /// Replaces every transfer when not empty.
    pub transfers: Vec<TransferInput>,
}

/// An update request as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateInput {
    /// Idempotency key.
    pub request_id: String,
    /// The position's id, as sent.
    pub id: String,
    /// Installment changes.
    pub installments: Vec<InstallmentUpdateInput>,
    /// New subject.
    pub description: Option<String>,
    /// New fine schedule (fines only).
    pub traffic_fine: Option<TrafficFineInput>,
}

/// A cancel request as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelInput {
    /// Idempotency key.
    pub request_id: String,
    /// The position's id, as sent.
    pub id: String,
    /// Why it is cancelled.
    pub reason: String,
}

/// The new values of one installment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentChange {
    /// Which installment.
    pub installment_id: Uuid,
    /// New amount.
    pub amount: AmountCents,
    /// New due date.
    pub due_date: Date,
    /// New expiry date.
    pub expiry_date: Option<Date>,
    /// New transfers, summing to `amount`.
    pub transfers: Vec<Transfer>,
}

/// Everything an update writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionChange {
    /// The (possibly unchanged) subject.
    pub description: String,
    /// The new fine details, for fines whose schedule changed.
    pub traffic_fine: Option<TrafficFineDetails>,
    /// Changed installments, with their complete new values.
    pub installments: Vec<InstallmentChange>,
}

/// Why a change or a cancellation is refused although the request is well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefused {
    /// The position is paid, partly or wholly, and cannot be cancelled.
    #[error("the position has paid installments and can no longer be cancelled")]
    HasPayments,
    /// The position is fully paid.
    #[error("the position is paid and can no longer be changed")]
    Paid,
    /// The position was cancelled.
    #[error("the position is cancelled and can no longer be changed")]
    Cancelled,
    /// This installment is paid.
    #[error("installment {notice_number} is paid and can no longer be changed")]
    InstallmentPaid {
        /// Its notice number.
        notice_number: String,
    },
    /// Another option was paid, so this installment is closed.
    #[error(
        "installment {notice_number} can no longer be paid (another payment option was chosen)"
    )]
    InstallmentClosed {
        /// Its notice number.
        notice_number: String,
    },
}

/// The outcome of planning a change that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// The request is well formed but the position's state forbids it.
    #[error("{0}")]
    Refused(ChangeRefused),
}

impl From<ChangeRefused> for UpdateError {
    fn from(refused: ChangeRefused) -> Self {
        Self::Refused(refused)
    }
}

/// Plans an update of `position` on `today`; the request id and position id are checked by
/// the caller. Malformed requests are reported before state refusals.
pub fn plan_update(
    position: &DebtPosition,
    input: &UpdateInput,
    registry: &CreditorRegistry,
    today: Date,
) -> Result<PositionChange, UpdateError> {
    let mut errors = ValidationErrors::new();
    let description = match &input.description {
        Some(description) => validation::text(&mut errors, "description", description, 1, 140),
        None => Some(position.description.clone()),
    };
    if input.installments.is_empty() && input.description.is_none() && input.traffic_fine.is_none()
    {
        errors.add(
            "installments",
            "nothing to change: give installments, description or traffic_fine",
        );
    }
    let is_fine = matches!(position.details, KindDetails::TrafficFine(_));
    if is_fine && !input.installments.is_empty() {
        errors.add(
            "installments",
            "the notice of a traffic fine follows its schedule: change traffic_fine instead",
        );
    }
    let fine = match &input.traffic_fine {
        Some(_) if !is_fine => {
            errors.add("traffic_fine", "only a traffic fine has a fine schedule");
            None
        }
        Some(fine) => parse_fine(&mut errors, "traffic_fine", fine, today),
        None => None,
    };
    let Some(creditor) = registry.get(position.creditor.as_str()) else {
        errors.add("id", "the position's creditor is no longer configured");
        return Err(UpdateError::Invalid(errors));
    };
    let mut changes = Vec::new();
    let mut targets = Vec::new();
    for (i, change) in input.installments.iter().enumerate() {
        let prefix = format!("installments[{i}]");
        let field = format!("{prefix}.notice_number");
        let Some(notice) = errors.check(&field, NoticeNumber::parse(&change.notice_number)) else {
            continue;
        };
        let Some(installment) = position.installment(&notice) else {
            errors.add(
                field,
                format!("{notice} is not an installment of this position"),
            );
            continue;
        };
        if targets.contains(&installment.id) {
            errors.add(field, format!("{notice} is changed twice in one request"));
            continue;
        }
        targets.push(installment.id);
        let context = TransferContext {
            registry,
            creditor,
            details: &position.details,
            description: description.as_deref().unwrap_or(&position.description),
            today,
        };
        if let Some(change) = plan_installment(&mut errors, &prefix, installment, change, &context)
        {
            changes.push(change);
        }
    }
    if !errors.is_empty() {
        return Err(UpdateError::Invalid(errors));
    }
    check_changeable(position)?;
    for id in &targets {
        if let Some(installment) = position.installments().find(|i| i.id == *id) {
            check_installment_changeable(installment)?;
        }
    }
    if let Some(fine) = &fine {
        // A new schedule moves the fine's one notice: printed amount and due date follow it.
        for installment in position.installments() {
            check_installment_changeable(installment)?;
            let amount = fine
                .schedule
                .amount_payable_on(fine.schedule.notification_date());
            let transfers = installment
                .transfers
                .iter()
                .map(|t| Transfer {
                    amount,
                    ..t.clone()
                })
                .collect();
            changes.push(InstallmentChange {
                installment_id: installment.id,
                amount,
                due_date: fine.schedule.full_deadline(),
                expiry_date: installment.expiry_date,
                transfers,
            });
        }
    }
    Ok(PositionChange {
        description: description.unwrap_or_else(|| position.description.clone()),
        traffic_fine: fine,
        installments: changes,
    })
}

fn plan_installment(
    errors: &mut ValidationErrors,
    prefix: &str,
    installment: &Installment,
    change: &InstallmentUpdateInput,
    context: &TransferContext<'_>,
) -> Option<InstallmentChange> {
    let amount = match change.amount_cents {
        Some(cents) => errors.check(&format!("{prefix}.amount_cents"), AmountCents::new(cents))?,
        None => installment.amount,
    };
    let due_date = match &change.due_date {
        Some(due) => validation::date(errors, &format!("{prefix}.due_date"), due)?,
        None => installment.due_date,
    };
    let expiry_date = match &change.expiry_date {
        Some(expiry) => parse_expiry(errors, prefix, expiry, Some(due_date))?,
        None => {
            if installment
                .expiry_date
                .is_some_and(|expiry| expiry < due_date)
            {
                errors.add(
                    format!("{prefix}.due_date"),
                    "must not be after the installment's expiry_date",
                );
                return None;
            }
            installment.expiry_date
        }
    };
    let transfers = if !change.transfers.is_empty() {
        parse_transfers(errors, prefix, &change.transfers, amount, context)?
    } else if amount == installment.amount {
        installment.transfers.clone()
    } else if let [only] = installment.transfers.as_slice() {
        vec![Transfer {
            amount,
            ..only.clone()
        }]
    } else {
        errors.add(
            format!("{prefix}.transfers"),
            format!(
                "required when the amount of an installment with {} transfers changes",
                installment.transfers.len()
            ),
        );
        return None;
    };
    Some(InstallmentChange {
        installment_id: installment.id,
        amount,
        due_date,
        expiry_date,
        transfers,
    })
}

fn check_changeable(position: &DebtPosition) -> Result<(), ChangeRefused> {
    match position.state {
        PositionState::Paid => Err(ChangeRefused::Paid),
        PositionState::Cancelled => Err(ChangeRefused::Cancelled),
        PositionState::Valid | PositionState::PartiallyPaid => Ok(()),
    }
}

fn check_installment_changeable(installment: &Installment) -> Result<(), ChangeRefused> {
    let notice_number = installment.notice_number.to_string();
    match installment.state {
        InstallmentState::Unpaid => Ok(()),
        InstallmentState::Paid => Err(ChangeRefused::InstallmentPaid { notice_number }),
        InstallmentState::Unpayable => Err(ChangeRefused::InstallmentClosed { notice_number }),
        InstallmentState::Cancelled => Err(ChangeRefused::Cancelled),
    }
}

/// Validates a cancellation reason and checks that `position` can be cancelled: nothing
/// paid, not cancelled already. Returns the trimmed reason.
pub fn plan_cancel(position: &DebtPosition, reason: &str) -> Result<String, UpdateError> {
    let mut errors = ValidationErrors::new();
    let reason = validation::text(&mut errors, "reason", reason, 1, 140);
    let Some(reason) = reason else {
        return Err(UpdateError::Invalid(errors));
    };
    if position
        .installments()
        .any(|i| i.state == InstallmentState::Paid)
    {
        return Err(ChangeRefused::HasPayments.into());
    }
    match position.state {
        PositionState::Valid => Ok(reason),
        PositionState::Cancelled => Err(ChangeRefused::Cancelled.into()),
        PositionState::PartiallyPaid | PositionState::Paid => {
            Err(ChangeRefused::HasPayments.into())
        }
    }
}

/// Applies a cancellation to the in-memory position (the store writes the same).
pub fn apply_cancel(position: &mut DebtPosition, reason: String) {
    position.state = PositionState::Cancelled;
    position.cancellation_reason = Some(reason);
    for option in &mut position.payment_options {
        for installment in &mut option.installments {
            debug_assert_ne!(installment.state, InstallmentState::Paid);
            installment.state = InstallmentState::Cancelled;
        }
    }
}
