//! What a receipt means for the books: its classification (settled, settled late, double
//! payment, closed notice, unknown notice, not paid) and its flags, decided from the notice's
//! position as it stands when the receipt is booked. A receipt is never refused: whatever the
//! state of its notice, it gets a classification that says where its money goes (the
//! receivable, refunds payable or suspense), and flags for what an operator should know.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::debt_position::DebtPosition;
use crate::debt_position::payment::{PaymentOutcome, apply_payment};
use crate::notice_number::NoticeNumber;

/// The outcome a receipt reports (`stOutcome`): the payment was made, or it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeOutcome {
    /// Paid.
    #[serde(rename = "OK")]
    Ok,
    /// Not paid.
    #[serde(rename = "KO")]
    Ko,
}

impl NodeOutcome {
    /// `OK` or `KO`, exactly as PagoPA writes them; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OK" => Some(Self::Ok),
            "KO" => Some(Self::Ko),
            _ => None,
        }
    }

    /// `OK` or `KO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Ko => "KO",
        }
    }

    /// True when the payment was made.
    pub fn is_paid(self) -> bool {
        self == Self::Ok
    }
}

/// How a receipt was booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Stored but not booked yet: its booking failed and is retried (see the store's inbox).
    Parked,
}

impl Classification {
    /// Every classification, in the order above.
    pub const ALL: [Self; 7] = [
        Self::Settled,
        Self::SettledLate,
        Self::DoublePayment,
        Self::ClosedNotice,
        Self::UnknownNotice,
        Self::NotPaid,
        Self::Parked,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settled => "settled",
            Self::SettledLate => "settled_late",
            Self::DoublePayment => "double_payment",
            Self::ClosedNotice => "closed_notice",
            Self::UnknownNotice => "unknown_notice",
            Self::NotPaid => "not_paid",
            Self::Parked => "parked",
        }
    }

    /// The classification of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether the citizen is owed the money back: the refund worklist.
    pub fn is_refund_due(self) -> bool {
        matches!(self, Self::DoublePayment | Self::ClosedNotice)
    }
}

/// Something an operator should know about a receipt, whatever its classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiptFlag {
    /// Paid while the Node ran in Stand-In.
    StandIn,
    /// Paid after the notice's expiry date.
    Late,
    /// The amount paid is not the notice's amount on the day of payment.
    AmountDiffers,
    /// The notice's creditor is not the creditor that received the receipt (idPA).
    OtherCreditorNotice,
}

impl ReceiptFlag {
    /// Every flag, in the order above.
    pub const ALL: [Self; 4] = [
        Self::StandIn,
        Self::Late,
        Self::AmountDiffers,
        Self::OtherCreditorNotice,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandIn => "stand_in",
            Self::Late => "late",
            Self::AmountDiffers => "amount_differs",
            Self::OtherCreditorNotice => "other_creditor_notice",
        }
    }

    /// The flag of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The stored form of a set of flags: comma-separated, in the order of [`Self::ALL`].
    pub fn join(flags: &[Self]) -> String {
        let mut sorted = flags.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a receipt says, as far as its classification is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFacts<'a> {
    /// The notice paid, when its number is valid.
    pub notice: Option<&'a NoticeNumber>,
    /// Outcome OK: money was taken.
    pub paid: bool,
    /// The civil day (Europe/Rome) of the payment.
    pub paid_on: Date,
    /// What was paid, cents.
    pub amount_cents: i64,
    /// Paid in Stand-In.
    pub stand_in: bool,
    /// The notice's creditor is not the receiving creditor.
    pub other_creditor: bool,
}

/// A receipt's classification and flags, and what it did to its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// How it is booked.
    pub classification: Classification,
    /// What an operator should know.
    pub flags: Vec<ReceiptFlag>,
    /// The payment's effect on the position, when the notice is one of its.
    pub outcome: Option<PaymentOutcome>,
}

/// Classifies a receipt against `position`, the notice's position as it stands (`None` when
/// incasso did not issue the notice), and applies a settling payment to it: a later receipt
/// classified against the same position sees this one.
pub fn classify(position: Option<&mut DebtPosition>, facts: &PaymentFacts<'_>) -> Classified {
    let mut flags = Vec::new();
    if facts.stand_in {
        flags.push(ReceiptFlag::StandIn);
    }
    if facts.other_creditor {
        flags.push(ReceiptFlag::OtherCreditorNotice);
    }
    let (position, notice) = match (position, facts.notice) {
        (Some(position), Some(notice)) => (position, notice),
        _ => {
            let classification = if facts.paid {
                Classification::UnknownNotice
            } else {
                Classification::NotPaid
            };
            flags.sort();
            return Classified {
                classification,
                flags,
                outcome: None,
            };
        }
    };
    if let Some(installment) = position.installment(notice)
        && position.amount_payable_on(installment, facts.paid_on).get() != facts.amount_cents
    {
        flags.push(ReceiptFlag::AmountDiffers);
    }
    let outcome = if facts.paid {
        apply_payment(position, notice, facts.paid_on)
    } else {
        None
    };
    let classification = match (&outcome, facts.paid) {
        (_, false) => Classification::NotPaid,
        (Some(PaymentOutcome::Settled { late: false, .. }), true) => Classification::Settled,
        (Some(PaymentOutcome::Settled { late: true, .. }), true) => {
            flags.push(ReceiptFlag::Late);
            Classification::SettledLate
        }
        (Some(PaymentOutcome::AlreadyPaid), true) => Classification::DoublePayment,
        (Some(PaymentOutcome::NotPayable { .. }), true) => Classification::ClosedNotice,
        (None, true) => Classification::UnknownNotice,
    };
    flags.sort();
    Classified {
        classification,
        flags,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debt_position::payment::tests::position;
    use proptest::prelude::*;
    use time::macros::date;

    fn facts(notice: &NoticeNumber, paid: bool, day: Date) -> PaymentFacts<'_> {
        PaymentFacts {
            notice: Some(notice),
            paid,
            paid_on: day,
            amount_cents: 1000,
            stand_in: false,
            other_creditor: false,
        }
    }

    #[test]
    fn outcomes_read_and_write_as_pagopa_spells_them() {
        assert_eq!(NodeOutcome::parse("OK"), Some(NodeOutcome::Ok));
        assert_eq!(NodeOutcome::parse("KO"), Some(NodeOutcome::Ko));
        for wrong in ["ok", "Ko", " OK", "OKK", ""] {
            assert_eq!(NodeOutcome::parse(wrong), None, "{wrong:?}");
        }
        assert!(NodeOutcome::Ok.is_paid() && !NodeOutcome::Ko.is_paid());
        assert_eq!(NodeOutcome::Ko.as_str(), "KO");
    }

    #[test]
    fn names_round_trip() {
        for c in Classification::ALL {
            assert_eq!(Classification::parse(c.as_str()), Some(c));
        }
        for f in ReceiptFlag::ALL {
            assert_eq!(ReceiptFlag::parse(f.as_str()), Some(f));
        }
        assert_eq!(Classification::parse("paid"), None);
        assert_eq!(
            ReceiptFlag::join(&[ReceiptFlag::Late, ReceiptFlag::StandIn, ReceiptFlag::Late]),
            "stand_in,late"
        );
    }

    #[test]
    fn a_second_payment_of_a_notice_is_a_double_payment() {
        let mut p = position(&[1]);
        let notice = p.installments().next().unwrap().notice_number.clone();
        let day = date!(2026 - 02 - 01);
        let first = classify(Some(&mut p), &facts(&notice, true, day));
        assert_eq!(first.classification, Classification::Settled);
        let second = classify(Some(&mut p), &facts(&notice, true, day));
        assert_eq!(second.classification, Classification::DoublePayment);
    }

    #[test]
    fn late_unknown_not_paid_and_other_amounts() {
        let mut p = position(&[1]);
        let notice = p.installments().next().unwrap().notice_number.clone();
        let late = classify(
            Some(&mut p.clone()),
            &facts(&notice, true, date!(2026 - 07 - 01)),
        );
        assert_eq!(late.classification, Classification::SettledLate);
        assert_eq!(late.flags, vec![ReceiptFlag::Late]);
        let ko = classify(
            Some(&mut p.clone()),
            &facts(&notice, false, date!(2026 - 02 - 01)),
        );
        assert_eq!(ko.classification, Classification::NotPaid);
        let unknown = classify(None, &facts(&notice, true, date!(2026 - 02 - 01)));
        assert_eq!(unknown.classification, Classification::UnknownNotice);
        let mut other = facts(&notice, true, date!(2026 - 02 - 01));
        other.amount_cents = 999;
        other.stand_in = true;
        other.other_creditor = true;
        let differs = classify(Some(&mut p), &other);
        assert_eq!(
            differs.flags,
            vec![
                ReceiptFlag::StandIn,
                ReceiptFlag::AmountDiffers,
                ReceiptFlag::OtherCreditorNotice
            ]
        );
    }

    proptest! {
        /// Whatever receipts arrive, in whatever order: each notice is settled at most once,
        /// a KO receipt changes nothing, only a settling receipt changes the position, and a
        /// receipt of a notice already settled is a double payment.
        #[test]
        fn each_notice_is_settled_at_most_once(
            sizes in proptest::collection::vec(1usize..4, 1..4),
            receipts in proptest::collection::vec((0usize..12, any::<bool>(), 0i64..300), 0..30),
        ) {
            let mut p = position(&sizes);
            let notices: Vec<_> = p.installments().map(|i| i.notice_number.clone()).collect();
            let mut settled = std::collections::HashSet::new();
            for (n, paid, day) in receipts {
                let notice = &notices[n % notices.len()];
                let day = date!(2026 - 01 - 01) + time::Duration::days(day);
                let before = p.clone();
                let c = classify(Some(&mut p), &facts(notice, paid, day));
                match c.classification {
                    Classification::Settled | Classification::SettledLate => {
                        prop_assert!(settled.insert(notice.clone()), "settled twice");
                        prop_assert_eq!(c.flags.contains(&ReceiptFlag::Late), c.classification == Classification::SettledLate);
                    }
                    Classification::DoublePayment => {
                        prop_assert!(settled.contains(notice));
                        prop_assert_eq!(&p, &before);
                    }
                    Classification::NotPaid => {
                        prop_assert!(!paid);
                        prop_assert_eq!(&p, &before);
                    }
                    Classification::ClosedNotice => prop_assert_eq!(&p, &before),
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
