//! What a payment does to a position's states. PagoPA never lets the creditor refuse a
//! receipt, so every payment is accepted here; the outcome says whether it settled a payable
//! installment or must be flagged (a second payment, a payment of a closed notice).
//!
//! Payment options are mutually exclusive: the first payment of an installment of one option
//! makes every unpaid installment of the other options unpayable. The position is paid when
//! every installment of the chosen option is paid, partially paid before that.

use time::Date;

use super::{DebtPosition, EffectiveInstallmentState, InstallmentState, PositionState};
use crate::notice_number::NoticeNumber;

/// What a payment of one notice did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// A payable installment is now paid. `late` when it was past its expiry date.
    Settled {
        /// Paid after its expiry date.
        late: bool,
        /// The position's state after the payment.
        position_state: PositionState,
        /// How many installments of other options this payment closed.
        closed_installments: usize,
    },
    /// The installment was already paid: this is a second payment, to be refunded.
    AlreadyPaid,
    /// The installment could not be paid (cancelled, or another option was chosen): the
    /// money must be refunded or re-allocated. States are unchanged.
    NotPayable {
        /// The installment's state when the payment arrived.
        state: EffectiveInstallmentState,
    },
}

/// Records the payment of `notice_number` on `today` in `position`. `None` when the notice
/// is not one of this position's.
pub fn apply_payment(
    position: &mut DebtPosition,
    notice_number: &NoticeNumber,
    today: Date,
) -> Option<PaymentOutcome> {
    let (option_index, installment_index) = position.place_of(notice_number)?;
    let installment = &position.payment_options[option_index].installments[installment_index];
    let effective = installment.effective_state(today);
    match installment.state {
        InstallmentState::Paid => return Some(PaymentOutcome::AlreadyPaid),
        InstallmentState::Cancelled | InstallmentState::Unpayable => {
            return Some(PaymentOutcome::NotPayable { state: effective });
        }
        InstallmentState::Unpaid => {}
    }
    let late = effective == EffectiveInstallmentState::Expired;
    position.payment_options[option_index].installments[installment_index].state =
        InstallmentState::Paid;
    let mut closed_installments = 0;
    for (o, option) in position.payment_options.iter_mut().enumerate() {
        if o == option_index {
            continue;
        }
        for installment in &mut option.installments {
            if installment.state == InstallmentState::Unpaid {
                installment.state = InstallmentState::Unpayable;
                closed_installments += 1;
            }
        }
    }
    let chosen = &position.payment_options[option_index];
    let all_paid = chosen
        .installments
        .iter()
        .all(|i| i.state == InstallmentState::Paid);
    position.state = if all_paid {
        PositionState::Paid
    } else {
        PositionState::PartiallyPaid
    };
    Some(PaymentOutcome::Settled {
        late,
        position_state: position.state,
        closed_installments,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::debt_position::update::{apply_cancel, plan_cancel};
    use crate::debt_position::{
        DebtPosition, Installment, KindDetails, PaymentOption, SchoolFeeDetails, SchoolService,
    };
    use crate::fiscal_code::OrganizationFiscalCode;
    use crate::money::AmountCents;
    use crate::notice_number::{IuvBase, SegregationCode};
    use proptest::prelude::*;
    use time::macros::{date, datetime};
    use uuid::Uuid;

    /// A position with options of the given sizes; installment `k` expires on day `k`.
    pub(crate) fn position(option_sizes: &[usize]) -> DebtPosition {
        let mut base = 0;
        let payment_options = option_sizes
            .iter()
            .map(|&size| PaymentOption {
                id: Uuid::nil(),
                label: "option".to_owned(),
                installments: (0..size)
                    .map(|_| {
                        base += 1;
                        let notice_number = NoticeNumber::issue(
                            SegregationCode::new(12).unwrap(),
                            IuvBase::new(base).unwrap(),
                        );
                        Installment {
                            id: Uuid::from_u128(u128::from(base)),
                            iuv: notice_number.iuv(),
                            notice_number,
                            amount: AmountCents::new(1000).unwrap(),
                            due_date: date!(2026 - 01 - 01),
                            expiry_date: Some(date!(2026 - 06 - 30)),
                            state: InstallmentState::Unpaid,
                            transfers: vec![],
                        }
                    })
                    .collect(),
            })
            .collect();
        DebtPosition {
            id: Uuid::nil(),
            request_id: "r".to_owned(),
            creditor: OrganizationFiscalCode::parse("01199250158").unwrap(),
            debtor: None,
            description: "d".to_owned(),
            details: KindDetails::SchoolFee(SchoolFeeDetails {
                pupil_ref: "p".to_owned(),
                service: SchoolService::Nido,
                school_year: "2026/2027".to_owned(),
                month: None,
            }),
            state: PositionState::Valid,
            payment_options,
            version: 1,
            cancellation_reason: None,
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn paying_the_single_payment_closes_the_plan() {
        let mut p = position(&[1, 3]);
        let single = p.payment_options[0].installments[0].notice_number.clone();
        let outcome = apply_payment(&mut p, &single, date!(2026 - 02 - 01)).unwrap();
        assert_eq!(
            outcome,
            PaymentOutcome::Settled {
                late: false,
                position_state: PositionState::Paid,
                closed_installments: 3
            }
        );
        assert!(
            p.payment_options[1]
                .installments
                .iter()
                .all(|i| i.state == InstallmentState::Unpayable)
        );
        let rate = p.payment_options[1].installments[0].notice_number.clone();
        assert!(matches!(
            apply_payment(&mut p, &rate, date!(2026 - 02 - 02)),
            Some(PaymentOutcome::NotPayable {
                state: EffectiveInstallmentState::Unpayable
            })
        ));
        assert_eq!(
            apply_payment(&mut p, &single, date!(2026 - 02 - 03)),
            Some(PaymentOutcome::AlreadyPaid)
        );
    }

    #[test]
    fn a_plan_is_partially_paid_until_its_last_installment() {
        let mut p = position(&[1, 2]);
        let first = p.payment_options[1].installments[0].notice_number.clone();
        let second = p.payment_options[1].installments[1].notice_number.clone();
        apply_payment(&mut p, &first, date!(2026 - 02 - 01));
        assert_eq!(p.state, PositionState::PartiallyPaid);
        assert!(
            plan_cancel(&p, "x").is_err(),
            "a position with payments cannot be cancelled"
        );
        let late = apply_payment(&mut p, &second, date!(2026 - 07 - 01)).unwrap();
        assert_eq!(
            late,
            PaymentOutcome::Settled {
                late: true,
                position_state: PositionState::Paid,
                closed_installments: 0
            }
        );
    }

    /// An operation of the random sequences: pay installment `n`, or cancel.
    #[derive(Debug, Clone)]
    enum Event {
        Pay(usize, u8),
        Cancel,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (0usize..12, 0u8..250).prop_map(|(n, day)| Event::Pay(n, day)),
            1 => Just(Event::Cancel),
        ]
    }

    proptest! {
        /// Whatever order payments and cancellations arrive in: at most one option ever has
        /// paid installments, a paid installment stays paid, the position is paid exactly when
        /// one option is fully paid, and a cancelled position never gains a payment.
        #[test]
        fn the_state_machine_keeps_its_invariants(
            sizes in proptest::collection::vec(1usize..4, 1..4),
            events in proptest::collection::vec(event(), 0..20),
        ) {
            let mut p = position(&sizes);
            let notices: Vec<_> = p.installments().map(|i| i.notice_number.clone()).collect();
            let mut paid_so_far = std::collections::HashSet::new();
            for event in events {
                let before = p.clone();
                match event {
                    Event::Pay(n, day) => {
                        let notice = &notices[n % notices.len()];
                        let day = date!(2026 - 01 - 01) + time::Duration::days(i64::from(day));
                        let outcome = apply_payment(&mut p, notice, day).unwrap();
                        match outcome {
                            PaymentOutcome::Settled { .. } => {
                                prop_assert_ne!(before.state, PositionState::Cancelled);
                                paid_so_far.insert(notice.clone());
                            }
                            _ => prop_assert_eq!(&p, &before, "a flagged payment changes nothing"),
                        }
                    }
                    Event::Cancel => match plan_cancel(&p, "autotutela") {
                        Ok(reason) => {
                            prop_assert!(paid_so_far.is_empty());
                            apply_cancel(&mut p, reason);
                        }
                        Err(_) => prop_assert!(!paid_so_far.is_empty() || p.state == PositionState::Cancelled),
                    },
                }
                let options_with_payments = p
                    .payment_options
                    .iter()
                    .filter(|o| o.installments.iter().any(|i| i.state == InstallmentState::Paid))
                    .count();
                prop_assert!(options_with_payments <= 1);
                for notice in &paid_so_far {
                    prop_assert_eq!(p.installment(notice).unwrap().state, InstallmentState::Paid);
                }
                let fully_paid = p
                    .payment_options
                    .iter()
                    .any(|o| o.installments.iter().all(|i| i.state == InstallmentState::Paid));
                prop_assert_eq!(p.state == PositionState::Paid, fully_paid);
                if p.state == PositionState::Cancelled {
                    prop_assert!(paid_so_far.is_empty());
                }
            }
        }
    }
}
