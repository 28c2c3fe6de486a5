//! Posting rules: pure functions from business events to journal entries.
//!
//! Positions are booked by *assessment*: at any moment the books should carry, for each
//! position, what it still asks of its debtor: the unpaid installments of the payment option
//! in force (the first option until a payment chooses another; none once cancelled). Issuing,
//! changing, cancelling and choosing an option are all the same rule, [`reassess`]: post the
//! difference between what was assessed before and after. Receipts then settle one
//! installment at a time, and the money moves on: PSP clearing, in transit (reported by the
//! PSP's flow), treasury (cashed), and out again for refunds.

use std::collections::BTreeMap;

use super::{Account, Cause, EntryDraft, EventType, Line};
use crate::debt_position::{DebtPosition, Installment, InstallmentState, PositionState};
use crate::fiscal_code::OrganizationFiscalCode;

/// Net amounts per account.
pub type Amounts = BTreeMap<Account, i64>;

/// Adds `cents` to `account`'s amount.
pub(super) fn add(amounts: &mut Amounts, account: Account, cents: i64) {
    *amounts.entry(account).or_insert(0) += cents;
}

/// The non-zero amounts as entry lines.
pub(super) fn lines(amounts: Amounts) -> Vec<Line> {
    amounts
        .into_iter()
        .filter(|(_, cents)| *cents != 0)
        .map(|(account, amount_cents)| Line {
            account,
            amount_cents,
        })
        .collect()
}

/// The notices of a position, as (NAV, IUV) pairs, for an entry's cause.
pub fn position_notices(position: &DebtPosition) -> Vec<(String, String)> {
    position
        .installments()
        .map(|i| {
            (
                i.notice_number.as_str().to_owned(),
                i.iuv.as_str().to_owned(),
            )
        })
        .collect()
}

/// What one installment assesses: its amount as receivable, its transfers as revenue (the
/// creditor's share) or as due to the other beneficiaries.
pub fn installment_claim(position: &DebtPosition, installment: &Installment) -> Amounts {
    let creditor = &position.creditor;
    let kind = position.kind();
    let mut amounts = Amounts::new();
    add(
        &mut amounts,
        Account::receivable(creditor, kind),
        installment.amount.get(),
    );
    for transfer in &installment.transfers {
        let account = if &transfer.beneficiary == creditor {
            Account::revenue(creditor, kind)
        } else {
            Account::due_to_beneficiary(creditor, &transfer.beneficiary)
        };
        add(&mut amounts, account, -transfer.amount.get());
    }
    amounts
}

/// The payment option in force: the one with a paid installment, else the first.
fn option_in_force(position: &DebtPosition) -> usize {
    position
        .payment_options
        .iter()
        .position(|o| {
            o.installments
                .iter()
                .any(|i| i.state == InstallmentState::Paid)
        })
        .unwrap_or(0)
}

/// What a position assesses now: the unpaid installments of the option in force; nothing
/// once cancelled.
pub fn assessed(position: &DebtPosition) -> Amounts {
    let mut amounts = Amounts::new();
    if position.state == PositionState::Cancelled {
        return amounts;
    }
    if let Some(option) = position.payment_options.get(option_in_force(position)) {
        for installment in option
            .installments
            .iter()
            .filter(|i| i.state == InstallmentState::Unpaid)
        {
            for (account, cents) in installment_claim(position, installment) {
                add(&mut amounts, account, cents);
            }
        }
    }
    amounts
}

/// The entry moving the books from `before` to `after` for `position`, if anything changed.
pub fn reassess(
    event_type: EventType,
    position: &DebtPosition,
    before: &Amounts,
    after: &Amounts,
    description: &str,
) -> Option<EntryDraft> {
    let mut delta = after.clone();
    for (account, cents) in before {
        add(&mut delta, account.clone(), -cents);
    }
    let lines = lines(delta);
    (!lines.is_empty()).then(|| EntryDraft {
        event_type,
        creditor: position.creditor.clone(),
        kind: Some(position.kind()),
        description: description.to_owned(),
        cause: Cause {
            debt_position_id: Some(position.id),
            notices: position_notices(position),
            ..Cause::default()
        },
        lines,
    })
}

/// A new position's notices are issued: its first option is assessed.
pub fn notice_issued(position: &DebtPosition) -> Option<EntryDraft> {
    reassess(
        EventType::NoticeIssued,
        position,
        &Amounts::new(),
        &assessed(position),
        "notices issued",
    )
}

/// A position changed (amounts, transfers): the difference in what it assesses.
pub fn notice_changed(
    before: &DebtPosition,
    after: &DebtPosition,
    description: &str,
) -> Option<EntryDraft> {
    reassess(
        EventType::NoticeChanged,
        after,
        &assessed(before),
        &assessed(after),
        description,
    )
}

/// A position was cancelled: what it still assessed is withdrawn.
pub fn notice_cancelled(before: &DebtPosition, reason: &str) -> Option<EntryDraft> {
    reassess(
        EventType::NoticeCancelled,
        before,
        &assessed(before),
        &Amounts::new(),
        &format!("cancelled: {reason}"),
    )
}

/// What a receipt says was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The PSP that collected (idPSP).
    pub psp: String,
    /// PagoPA's receipt id.
    pub receipt_id: String,
    /// The notice paid.
    pub notice_number: String,
    /// Its IUV.
    pub iuv: String,
    /// Each transfer: beneficiary and amount paid to it.
    pub transfers: Vec<(OrganizationFiscalCode, i64)>,
}

impl Receipt {
    fn cause(&self) -> Cause {
        Cause {
            notices: vec![(self.notice_number.clone(), self.iuv.clone())],
            receipt_id: Some(self.receipt_id.clone()),
            ..Cause::default()
        }
    }

    /// What the receipt pays to `creditor`.
    pub fn share_of(&self, creditor: &OrganizationFiscalCode) -> i64 {
        self.transfers
            .iter()
            .filter(|(b, _)| b == creditor)
            .map(|(_, c)| c)
            .sum()
    }
}

/// A payable installment was paid. `before` and `after` are the position around the
/// payment (see `debt_position::payment::apply_payment`), `installment` as it was booked.
/// The first entry, when present, moves the assessment to the option the payment chose; the
/// second settles the installment: the creditor's share is now owed by the PSP, the other
/// beneficiaries' shares were paid to them directly, and any difference between what was
/// paid and what was booked (a fine paid after its reduced period) is revenue.
pub fn receipt_paid(
    before: &DebtPosition,
    after: &DebtPosition,
    installment: &Installment,
    receipt: &Receipt,
) -> Vec<EntryDraft> {
    let creditor = &before.creditor;
    let kind = before.kind();
    let claim = installment_claim(before, installment);
    let mut expected_after = assessed(after);
    for (account, cents) in &claim {
        add(&mut expected_after, account.clone(), *cents);
    }
    let mut drafts = Vec::new();
    if let Some(mut chosen) = reassess(
        EventType::NoticeChanged,
        after,
        &assessed(before),
        &expected_after,
        "payment option chosen by the first payment",
    ) {
        chosen.cause.receipt_id = Some(receipt.receipt_id.clone());
        drafts.push(chosen);
    }
    let mut booked: BTreeMap<&OrganizationFiscalCode, i64> = BTreeMap::new();
    for transfer in &installment.transfers {
        *booked.entry(&transfer.beneficiary).or_insert(0) += transfer.amount.get();
    }
    let mut paid: BTreeMap<&OrganizationFiscalCode, i64> = BTreeMap::new();
    for (beneficiary, cents) in &receipt.transfers {
        *paid.entry(beneficiary).or_insert(0) += cents;
    }
    let mut amounts = Amounts::new();
    add(
        &mut amounts,
        Account::receivable(creditor, kind),
        -installment.amount.get(),
    );
    let beneficiaries: std::collections::BTreeSet<_> =
        booked.keys().chain(paid.keys()).copied().collect();
    for beneficiary in beneficiaries {
        let paid_cents = paid.get(beneficiary).copied().unwrap_or(0);
        let booked_cents = booked.get(beneficiary).copied().unwrap_or(0);
        if beneficiary == creditor {
            add(
                &mut amounts,
                Account::psp_clearing(creditor, &receipt.psp),
                paid_cents,
            );
            add(
                &mut amounts,
                Account::revenue(creditor, kind),
                booked_cents - paid_cents,
            );
        } else {
            // Paid to the beneficiary directly: what the creditor's notice assessed for it is
            // settled, and a difference is the beneficiary's too.
            add(
                &mut amounts,
                Account::due_to_beneficiary(creditor, beneficiary),
                booked_cents,
            );
        }
    }
    let mut cause = receipt.cause();
    cause.debt_position_id = Some(before.id);
    let settled = EntryDraft {
        event_type: EventType::ReceiptPaid,
        creditor: creditor.clone(),
        kind: Some(kind),
        description: "notice paid".to_owned(),
        cause,
        lines: lines(amounts),
    };
    drafts.push(settled);
    drafts
}

fn unearned(
    event_type: EventType,
    creditor: &OrganizationFiscalCode,
    receipt: &Receipt,
    counter: Account,
    description: &str,
    position: Option<&DebtPosition>,
) -> Option<EntryDraft> {
    let share = receipt.share_of(creditor);
    if share == 0 {
        return None;
    }
    let mut cause = receipt.cause();
    cause.debt_position_id = position.map(|p| p.id);
    Some(EntryDraft {
        event_type,
        creditor: creditor.clone(),
        kind: position.map(DebtPosition::kind),
        description: description.to_owned(),
        cause,
        lines: vec![
            Line {
                account: Account::psp_clearing(creditor, &receipt.psp),
                amount_cents: share,
            },
            Line {
                account: counter,
                amount_cents: -share,
            },
        ],
    })
}

/// A notice already paid was paid again: the creditor's share is to be refunded.
pub fn double_payment(position: &DebtPosition, receipt: &Receipt) -> Option<EntryDraft> {
    let creditor = &position.creditor;
    unearned(
        EventType::DoublePayment,
        creditor,
        receipt,
        Account::refunds_payable(creditor),
        "second payment of a paid notice: to refund",
        Some(position),
    )
}

/// A notice that could not be paid (cancelled, or another option chosen) was paid.
pub fn receipt_closed_notice(position: &DebtPosition, receipt: &Receipt) -> Option<EntryDraft> {
    let creditor = &position.creditor;
    unearned(
        EventType::ReceiptClosedNotice,
        creditor,
        receipt,
        Account::refunds_payable(creditor),
        "payment of a notice that could not be paid: to refund",
        Some(position),
    )
}

/// A receipt for a notice incasso does not know, paying `creditor`: held in suspense.
pub fn receipt_unknown_notice(
    creditor: &OrganizationFiscalCode,
    receipt: &Receipt,
) -> Option<EntryDraft> {
    unearned(
        EventType::ReceiptUnknownNotice,
        creditor,
        receipt,
        Account::suspense(creditor),
        "receipt for an unknown notice: in suspense",
        None,
    )
}

fn transfer(
    event_type: EventType,
    creditor: &OrganizationFiscalCode,
    debit: Account,
    credit: Account,
    amount_cents: i64,
    description: String,
    cause: Cause,
) -> Option<EntryDraft> {
    (amount_cents > 0).then(|| EntryDraft {
        event_type,
        creditor: creditor.clone(),
        kind: None,
        description,
        cause,
        lines: vec![
            Line {
                account: debit,
                amount_cents,
            },
            Line {
                account: credit,
                amount_cents: -amount_cents,
            },
        ],
    })
}

/// A PSP's reporting flow declares `amount_cents` transferred to `creditor` for `notices`.
pub fn reported(
    creditor: &OrganizationFiscalCode,
    psp: &str,
    reporting_flow_id: &str,
    amount_cents: i64,
    notices: Vec<(String, String)>,
) -> Option<EntryDraft> {
    transfer(
        EventType::Reported,
        creditor,
        Account::in_transit(creditor),
        Account::psp_clearing(creditor, psp),
        amount_cents,
        format!("reported by {psp} in flow {reporting_flow_id}"),
        Cause {
            notices,
            reporting_flow_id: Some(reporting_flow_id.to_owned()),
            ..Cause::default()
        },
    )
}

/// The treasury statement shows `amount_cents` credited for a reporting flow.
pub fn cashed(
    creditor: &OrganizationFiscalCode,
    treasury_line_id: &str,
    reporting_flow_id: Option<&str>,
    amount_cents: i64,
) -> Option<EntryDraft> {
    transfer(
        EventType::Cashed,
        creditor,
        Account::treasury(creditor),
        Account::in_transit(creditor),
        amount_cents,
        format!("cashed, treasury line {treasury_line_id}"),
        Cause {
            treasury_line_id: Some(treasury_line_id.to_owned()),
            reporting_flow_id: reporting_flow_id.map(str::to_owned),
            ..Cause::default()
        },
    )
}

/// A refund was paid out of the treasury.
pub fn refund_paid(
    creditor: &OrganizationFiscalCode,
    amount_cents: i64,
    treasury_line_id: &str,
    cause: Cause,
) -> Option<EntryDraft> {
    transfer(
        EventType::RefundPaid,
        creditor,
        Account::refunds_payable(creditor),
        Account::treasury(creditor),
        amount_cents,
        format!("refund paid, treasury line {treasury_line_id}"),
        Cause {
            treasury_line_id: Some(treasury_line_id.to_owned()),
            ..cause
        },
    )
}

/// The reversal of the entry with sequence number `sequence`: every line negated. Ledger
/// entries are never changed; a mistake is corrected by this entry and, where needed, a new
/// right one.
pub fn correction(original: &EntryDraft, sequence: i64, reason: &str) -> EntryDraft {
    EntryDraft {
        event_type: EventType::Correction,
        creditor: original.creditor.clone(),
        kind: original.kind,
        description: format!("reversal of entry {sequence}: {reason}"),
        cause: Cause {
            corrects_sequence: Some(sequence),
            ..original.cause.clone()
        },
        lines: original
            .lines
            .iter()
            .map(|l| Line {
                account: l.account.clone(),
                amount_cents: -l.amount_cents,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debt_position::payment::{PaymentOutcome, apply_payment};
    use crate::debt_position::update::{apply_cancel, plan_cancel};
    use crate::debt_position::{KindDetails, PaymentOption, TariDetails, Transfer};
    use crate::iban::Iban;
    use crate::ledger::AccountType;
    use crate::money::AmountCents;
    use crate::notice_number::{IuvBase, NoticeNumber, SegregationCode};
    use crate::taxonomy::TaxonomyCode;
    use proptest::prelude::*;
    use time::macros::{date, datetime};
    use uuid::Uuid;

    fn milan() -> OrganizationFiscalCode {
        OrganizationFiscalCode::parse("01199250158").unwrap()
    }

    fn cm() -> OrganizationFiscalCode {
        OrganizationFiscalCode::parse("08911820960").unwrap()
    }

    fn transfer(beneficiary: OrganizationFiscalCode, cents: i64) -> Transfer {
        Transfer {
            beneficiary,
            amount: AmountCents::new(cents).unwrap(),
            remittance_information: "TARI".to_owned(),
            iban: Iban::parse("IT02N0306909400000012345678").unwrap(),
            postal_iban: None,
            taxonomy: TaxonomyCode::parse("9/0101101IM/").unwrap(),
        }
    }

    /// A TARI position: each option a list of (amount, TEFA share) installments.
    fn position(id: u128, options: &[Vec<(i64, i64)>], next_base: &mut u64) -> DebtPosition {
        let payment_options = options
            .iter()
            .map(|installments| PaymentOption {
                id: Uuid::nil(),
                label: "o".to_owned(),
                installments: installments
                    .iter()
                    .map(|&(amount, tefa)| {
                        *next_base += 1;
                        let notice_number = NoticeNumber::issue(
                            SegregationCode::new(12).unwrap(),
                            IuvBase::new(*next_base).unwrap(),
                        );
                        let mut transfers = vec![transfer(milan(), amount - tefa)];
                        if tefa > 0 {
                            transfers.push(transfer(cm(), tefa));
                        }
                        Installment {
                            id: Uuid::from_u128(u128::from(*next_base)),
                            iuv: notice_number.iuv(),
                            notice_number,
                            amount: AmountCents::new(amount).unwrap(),
                            due_date: date!(2026 - 07 - 31),
                            expiry_date: None,
                            state: InstallmentState::Unpaid,
                            transfers,
                        }
                    })
                    .collect(),
            })
            .collect();
        DebtPosition {
            id: Uuid::from_u128(id),
            request_id: format!("r{id}"),
            creditor: milan(),
            debtor: None,
            description: "TARI".to_owned(),
            details: KindDetails::Tari(TariDetails {
                tax_year: 2026,
                property_ref: "UT".to_owned(),
            }),
            state: PositionState::Valid,
            payment_options,
            version: 1,
            cancellation_reason: None,
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    /// The books of the test: every entry posted, and balances kept incrementally.
    #[derive(Default)]
    struct Books {
        entries: Vec<EntryDraft>,
        balances: Amounts,
    }

    impl Books {
        fn post(&mut self, draft: Option<EntryDraft>) {
            if let Some(draft) = draft {
                assert_eq!(draft.validate(), Ok(()), "{draft:?}");
                let t = datetime!(2026-06-01 12:00 UTC);
                let encoded =
                    crate::ledger::chain::canonical_encoding(1, Uuid::nil(), t, None, &draft);
                let decoded = crate::ledger::chain::decode_canonical(&encoded).unwrap();
                assert_eq!(decoded.draft, draft, "the canonical encoding round-trips");
                for line in &draft.lines {
                    add(&mut self.balances, line.account.clone(), line.amount_cents);
                }
                self.entries.push(draft);
            }
        }

        fn balance(&self, account_type: AccountType) -> i64 {
            self.balances
                .iter()
                .filter(|(a, _)| a.account_type() == account_type)
                .map(|(_, c)| c)
                .sum()
        }

        fn recomputed(&self) -> Amounts {
            let mut amounts = Amounts::new();
            for entry in &self.entries {
                for line in &entry.lines {
                    add(&mut amounts, line.account.clone(), line.amount_cents);
                }
            }
            amounts.retain(|_, c| *c != 0);
            amounts
        }
    }

    #[derive(Debug, Clone)]
    enum Event {
        Pay {
            position: usize,
            installment: usize,
            psp: usize,
        },
        Cancel(usize),
        Reprice {
            position: usize,
            installment: usize,
            cents: i64,
        },
        UnknownReceipt(i64),
        Report(usize),
        Cash,
        Refund,
        Correct(usize),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (0usize..4, 0usize..8, 0usize..2).prop_map(|(position, installment, psp)| Event::Pay { position, installment, psp }),
            1 => (0usize..4).prop_map(Event::Cancel),
            2 => (0usize..4, 0usize..8, 100i64..50_000).prop_map(|(position, installment, cents)| Event::Reprice { position, installment, cents }),
            1 => (1i64..10_000).prop_map(Event::UnknownReceipt),
            2 => (0usize..2).prop_map(Event::Report),
            2 => Just(Event::Cash),
            1 => Just(Event::Refund),
            1 => (0usize..100).prop_map(Event::Correct),
        ]
    }

    fn options() -> impl Strategy<Value = Vec<Vec<(i64, i64)>>> {
        proptest::collection::vec(
            proptest::collection::vec(
                (200i64..100_000, 0i64..100).prop_map(|(a, t)| (a, a * t / 2000)),
                1..4,
            ),
            1..4,
        )
    }

    const PSPS: [&str; 2] = ["BCITITMM", "POSOIT22XXX"];

    proptest! {
        /// Random sequences of business events: every entry balances, balances kept as entries
        /// are posted equal a recomputation from scratch, the books always sum to zero, the
        /// receivables equal what the positions still assess, and the money held (PSP
        /// clearing, in transit, treasury) is exactly what was received minus what was
        /// refunded.
        #[test]
        fn the_books_balance_whatever_happens(
            shapes in proptest::collection::vec(options(), 1..5),
            events in proptest::collection::vec(event(), 0..40),
        ) {
            let mut next_base = 0;
            let mut positions: Vec<DebtPosition> = shapes
                .iter()
                .enumerate()
                .map(|(i, shape)| position(i as u128 + 1, shape, &mut next_base))
                .collect();
            let mut books = Books::default();
            for p in &positions {
                books.post(notice_issued(p));
            }
            let mut received = 0i64;
            let mut refunded = 0i64;
            let day = date!(2026 - 06 - 01);
            for event in events {
                match event {
                    Event::Pay { position, installment, psp } => {
                        let p = &mut positions[position % shapes.len()];
                        let all: Vec<_> = p.installments().cloned().collect();
                        let booked = all[installment % all.len()].clone();
                        let receipt = Receipt {
                            psp: PSPS[psp].to_owned(),
                            receipt_id: format!("R{}", books.entries.len()),
                            notice_number: booked.notice_number.to_string(),
                            iuv: booked.iuv.to_string(),
                            transfers: booked.transfers.iter().map(|t| (t.beneficiary.clone(), t.amount.get())).collect(),
                        };
                        let before = p.clone();
                        received += receipt.share_of(&milan());
                        match apply_payment(p, &booked.notice_number, day).unwrap() {
                            PaymentOutcome::Settled { .. } => {
                                for draft in receipt_paid(&before, p, &booked, &receipt) {
                                    books.post(Some(draft));
                                }
                            }
                            PaymentOutcome::AlreadyPaid => books.post(double_payment(p, &receipt)),
                            PaymentOutcome::NotPayable { .. } => books.post(receipt_closed_notice(p, &receipt)),
                        }
                    }
                    Event::Cancel(position) => {
                        let p = &mut positions[position % shapes.len()];
                        if let Ok(reason) = plan_cancel(p, "autotutela") {
                            let before = p.clone();
                            apply_cancel(p, reason);
                            books.post(notice_cancelled(&before, "autotutela"));
                        }
                    }
                    Event::Reprice { position, installment, cents } => {
                        let p = &mut positions[position % shapes.len()];
                        if matches!(p.state, PositionState::Valid | PositionState::PartiallyPaid) {
                            let before = p.clone();
                            let count = p.installments().count();
                            let target = installment % count;
                            let i = p
                                .payment_options
                                .iter_mut()
                                .flat_map(|o| o.installments.iter_mut())
                                .nth(target)
                                .unwrap();
                            if i.state == InstallmentState::Unpaid {
                                let tefa = cents / 20;
                                i.amount = AmountCents::new(cents).unwrap();
                                i.transfers = vec![transfer(milan(), cents - tefa), transfer(cm(), tefa)];
                                books.post(notice_changed(&before, p, "repriced"));
                            }
                        }
                    }
                    Event::UnknownReceipt(cents) => {
                        let receipt = Receipt {
                            psp: PSPS[0].to_owned(),
                            receipt_id: "U".to_owned(),
                            notice_number: "399999999999999999".to_owned(),
                            iuv: "99999999999999999".to_owned(),
                            transfers: vec![(milan(), cents)],
                        };
                        received += cents;
                        books.post(receipt_unknown_notice(&milan(), &receipt));
                    }
                    Event::Report(psp) => {
                        let clearing = Account::psp_clearing(&milan(), PSPS[psp]);
                        let amount = books.balances.get(&clearing).copied().unwrap_or(0);
                        books.post(reported(&milan(), PSPS[psp], "IUF1", amount, vec![]));
                    }
                    Event::Cash => {
                        let amount = books.balances.get(&Account::in_transit(&milan())).copied().unwrap_or(0);
                        books.post(cashed(&milan(), "T1", Some("IUF1"), amount));
                    }
                    Event::Refund => {
                        let owed = -books.balances.get(&Account::refunds_payable(&milan())).copied().unwrap_or(0);
                        let treasury = books.balances.get(&Account::treasury(&milan())).copied().unwrap_or(0);
                        let amount = owed.min(treasury);
                        refunded += amount.max(0);
                        books.post(refund_paid(&milan(), amount, "T2", Cause::default()));
                    }
                    Event::Correct(n) => {
                        // A settlement entry posted by mistake is reversed and posted again:
                        // the reversal negates it exactly, so the pair leaves no trace.
                        let settlements: Vec<_> = books
                            .entries
                            .iter()
                            .filter(|e| matches!(e.event_type, EventType::Reported | EventType::Cashed))
                            .cloned()
                            .collect();
                        if !settlements.is_empty() {
                            let original = settlements[n % settlements.len()].clone();
                            let before = books.balances.clone();
                            let reversal = correction(&original, 1, "posted twice");
                            prop_assert_eq!(reversal.lines.len(), original.lines.len());
                            books.post(Some(reversal));
                            books.post(Some(EntryDraft { event_type: EventType::Correction, ..original }));
                            let mut after = books.balances.clone();
                            after.retain(|_, c| *c != 0);
                            let mut before = before;
                            before.retain(|_, c| *c != 0);
                            prop_assert_eq!(after, before);
                        }
                    }
                }
                let mut kept = books.balances.clone();
                kept.retain(|_, c| *c != 0);
                prop_assert_eq!(&kept, &books.recomputed());
                prop_assert_eq!(books.balances.values().sum::<i64>(), 0);
                let assessed_receivable: i64 = positions
                    .iter()
                    .flat_map(|p| assessed(p).into_iter())
                    .filter(|(a, _)| a.account_type() == AccountType::Receivable)
                    .map(|(_, c)| c)
                    .sum();
                prop_assert_eq!(books.balance(AccountType::Receivable), assessed_receivable);
                let held = books.balance(AccountType::PspClearing)
                    + books.balance(AccountType::InTransit)
                    + books.balance(AccountType::Treasury);
                prop_assert_eq!(held, received - refunded);
                prop_assert!(books.balance(AccountType::Treasury) >= 0);
            }
        }
    }

    #[test]
    fn a_fine_paid_late_books_the_difference_as_revenue() {
        let mut next_base = 0;
        let mut p = position(9, &[vec![(4200, 0)]], &mut next_base);
        p.details = KindDetails::TrafficFine(crate::debt_position::TrafficFineDetails {
            report_number: "V1".to_owned(),
            plate: String::new(),
            violation_date: date!(2026 - 11 - 02),
            schedule: crate::traffic_fine::FineSchedule::new(
                crate::traffic_fine::FineAmounts::new(
                    AmountCents::new(2940).unwrap(),
                    AmountCents::new(4200).unwrap(),
                    AmountCents::new(8400).unwrap(),
                    1260,
                )
                .unwrap(),
                date!(2026 - 11 - 10),
            ),
        });
        let issued = notice_issued(&p).unwrap();
        assert_eq!(
            issued
                .lines
                .iter()
                .map(|l| (l.account.code(), l.amount_cents))
                .collect::<Vec<_>>(),
            [
                ("receivable:01199250158:traffic_fine".to_owned(), 4200),
                ("revenue:01199250158:traffic_fine".to_owned(), -4200),
            ]
        );
        let booked = p.payment_options[0].installments[0].clone();
        let before = p.clone();
        apply_payment(&mut p, &booked.notice_number, date!(2026 - 12 - 01));
        let receipt = Receipt {
            psp: "BCITITMM".to_owned(),
            receipt_id: "R1".to_owned(),
            notice_number: booked.notice_number.to_string(),
            iuv: booked.iuv.to_string(),
            transfers: vec![(milan(), 5460)],
        };
        let drafts = receipt_paid(&before, &p, &booked, &receipt);
        assert_eq!(drafts.len(), 1);
        assert_eq!(
            drafts[0]
                .lines
                .iter()
                .map(|l| (l.account.code(), l.amount_cents))
                .collect::<Vec<_>>(),
            [
                ("receivable:01199250158:traffic_fine".to_owned(), -4200),
                ("revenue:01199250158:traffic_fine".to_owned(), -1260),
                ("psp_clearing:01199250158:BCITITMM".to_owned(), 5460),
            ]
        );
    }
}
