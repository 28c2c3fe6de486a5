//! The citizen's side of a debt: who the citizen of a position is (the debtor, when a natural
//! person: legal entities have no Fascicolo del Cittadino), which changes of a position or
//! receipt the citizen is told about, and how each citizen's changes are numbered: 1, 2, 3,
//! ... per citizen, no gaps, never reused, in the order they were committed. The numbers let
//! the receiver tell a missing change from a late one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::debt_position::{DebtPosition, InstallmentState};
use crate::fiscal_code::{EntityType, FiscalCode};
use crate::notice_number::NoticeNumber;
use crate::receipt::Classification;

/// One change the citizen is told about. It names what changed, never its content: the
/// message is built from the current state when it is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CitizenChange {
    /// A new notice.
    NoticeIssued {
        /// Its position.
        debt_position_id: Uuid,
        /// The notice.
        notice_number: NoticeNumber,
    },
    /// A notice's amount, dates, subject or state changed.
    NoticeChanged {
        /// Its position.
        debt_position_id: Uuid,
        /// The notice.
        notice_number: NoticeNumber,
    },
    /// A position cancelled: the notices it cancels.
    NoticeCancelled {
        /// The position.
        debt_position_id: Uuid,
        /// Its notices not already paid.
        notice_numbers: Vec<NoticeNumber>,
    },
    /// A payment of one of the citizen's notices.
    PaymentReceived {
        /// The receipt (its row id).
        receipt_row_id: Uuid,
    },
    /// A payment to give back: a double payment, or the payment of a closed notice.
    RefundDue {
        /// The receipt (its row id).
        receipt_row_id: Uuid,
    },
}

/// The citizen of `position`: its debtor's fiscal code when the debtor is a natural person.
pub fn citizen_of(position: &DebtPosition) -> Option<&FiscalCode> {
    position
        .debtor
        .as_ref()
        .filter(|d| d.entity_type == EntityType::F)
        .map(|d| &d.fiscal_code)
}

/// What the citizen is told when `position` is issued: each of its notices, in order.
pub fn on_issue(position: &DebtPosition) -> Vec<CitizenChange> {
    position
        .installments()
        .map(|i| CitizenChange::NoticeIssued {
            debt_position_id: position.id,
            notice_number: i.notice_number.clone(),
        })
        .collect()
}

/// What the citizen is told when `before` becomes `after` by an update: every notice whose
/// amount, dates or state changed, or every notice when the subject or the kind's details
/// (a fine's schedule) changed.
pub fn on_update(before: &DebtPosition, after: &DebtPosition) -> Vec<CitizenChange> {
    let all = before.description != after.description || before.details != after.details;
    after
        .installments()
        .filter(|new| {
            all || before.installment(&new.notice_number).is_none_or(|old| {
                old.amount != new.amount
                    || old.due_date != new.due_date
                    || old.expiry_date != new.expiry_date
                    || old.state != new.state
            })
        })
        .map(|i| CitizenChange::NoticeChanged {
            debt_position_id: after.id,
            notice_number: i.notice_number.clone(),
        })
        .collect()
}

/// What the citizen is told when `before` is cancelled: the notices that could still have
/// been paid (a paid notice stays paid).
pub fn on_cancel(before: &DebtPosition) -> CitizenChange {
    CitizenChange::NoticeCancelled {
        debt_position_id: before.id,
        notice_numbers: before
            .installments()
            .filter(|i| i.state != InstallmentState::Paid)
            .map(|i| i.notice_number.clone())
            .collect(),
    }
}

/// What the citizen is told about a receipt booked as `classification` for one of their
/// notices: a payment, a refund owed, or nothing (a KO, a parked receipt, a notice unknown).
pub fn on_receipt(classification: Classification, receipt_row_id: Uuid) -> Option<CitizenChange> {
    match classification {
        Classification::Settled | Classification::SettledLate => {
            Some(CitizenChange::PaymentReceived { receipt_row_id })
        }
        Classification::DoublePayment | Classification::ClosedNotice => {
            Some(CitizenChange::RefundDue { receipt_row_id })
        }
        Classification::UnknownNotice | Classification::NotPaid | Classification::Parked => None,
    }
}

/// What the citizen is told, besides the payment, when payments turn `before` into `after`:
/// the notices of the other payment options, which can no longer be paid.
pub fn closed_by_payment(before: &DebtPosition, after: &DebtPosition) -> Vec<CitizenChange> {
    after
        .installments()
        .filter(|new| {
            new.state == InstallmentState::Unpayable
                && before
                    .installment(&new.notice_number)
                    .is_some_and(|old| old.state != new.state)
        })
        .map(|i| CitizenChange::NoticeChanged {
            debt_position_id: after.id,
            notice_number: i.notice_number.clone(),
        })
        .collect()
}

/// How many changes each citizen gets among `citizens` (one entry per change).
pub fn counts<K: Ord + Clone>(citizens: &[K]) -> BTreeMap<K, u64> {
    let mut counts = BTreeMap::new();
    for citizen in citizens {
        *counts.entry(citizen.clone()).or_insert(0) += 1;
    }
    counts
}

/// The sequence number of each change of `citizens` (one entry per change, in commit order),
/// given each citizen's counter after it was advanced by its [`counts`]: a citizen's changes
/// take the numbers after the counter's previous value, in order. `None` when a citizen's
/// counter is missing or lower than its count (the counter was not advanced).
pub fn number<K: Ord + Clone>(citizens: &[K], last_after: &BTreeMap<K, u64>) -> Option<Vec<u64>> {
    let counts = counts(citizens);
    let mut next = BTreeMap::new();
    for (citizen, count) in &counts {
        let last = *last_after.get(citizen)?;
        next.insert(citizen.clone(), last.checked_sub(*count)?.checked_add(1)?);
    }
    citizens
        .iter()
        .map(|citizen| {
            let n = next.get_mut(citizen)?;
            let sequence = *n;
            *n += 1;
            Some(sequence)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the batches, each citizen's numbers are 1, 2, 3, ... in commit order:
        /// no gap, no number twice.
        #[test]
        fn each_citizens_changes_are_numbered_from_one_without_gaps(
            batches in prop::collection::vec(prop::collection::vec(0u8..6, 0..20), 1..10)
        ) {
            let mut counter: BTreeMap<u8, u64> = BTreeMap::new();
            let mut seen: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
            for batch in &batches {
                for (citizen, count) in counts(batch) {
                    *counter.entry(citizen).or_insert(0) += count;
                }
                let numbers = number(batch, &counter).expect("counters advanced");
                prop_assert_eq!(numbers.len(), batch.len());
                for (citizen, n) in batch.iter().zip(numbers) {
                    seen.entry(*citizen).or_default().push(n);
                }
            }
            for (citizen, numbers) in seen {
                let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
                prop_assert_eq!(numbers, expected, "citizen {}", citizen);
            }
        }

        /// A counter that was not advanced by the batch's count is refused, never a number
        /// reused.
        #[test]
        fn a_counter_not_advanced_is_refused(count in 1usize..10, last in 0u64..5) {
            let batch = vec![1u8; count];
            let counter = BTreeMap::from([(1u8, last)]);
            let numbered = number(&batch, &counter);
            if last >= count as u64 {
                let first = last - count as u64 + 1;
                prop_assert_eq!(numbered, Some((first..=last).collect::<Vec<_>>()));
            } else {
                prop_assert_eq!(numbered, None);
            }
        }
    }

    #[test]
    fn only_settlements_and_refunds_reach_the_citizen() {
        let id = Uuid::nil();
        assert!(matches!(
            on_receipt(Classification::SettledLate, id),
            Some(CitizenChange::PaymentReceived { .. })
        ));
        assert!(matches!(
            on_receipt(Classification::ClosedNotice, id),
            Some(CitizenChange::RefundDue { .. })
        ));
        assert_eq!(on_receipt(Classification::UnknownNotice, id), None);
        assert_eq!(on_receipt(Classification::NotPaid, id), None);
    }
}
