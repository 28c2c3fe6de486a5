use proptest::prelude::*;
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::*;
use crate::debt_position::payment::apply_payment;
use crate::debt_position::update::{apply_cancel, plan_cancel};
use crate::debt_position::{
    Debtor, InstallmentState, PaymentOption, PositionState, SchoolFeeDetails, TariDetails,
    TrafficFineDetails,
};
use crate::fiscal_code::OrganizationFiscalCode;
use crate::notice_number::{IuvBase, SegregationCode};
use crate::traffic_fine::{FineAmounts, FineSchedule};

const MARIO: &str = "RSSMRA80A01F205X";

fn nav(base: u64) -> NoticeNumber {
    NoticeNumber::issue(
        SegregationCode::new(12).unwrap(),
        IuvBase::new(base).unwrap(),
    )
}

fn installment(base: u64, amount: i64, due: Date, expiry: Option<Date>) -> Installment {
    let notice_number = nav(base);
    Installment {
        id: Uuid::from_u128(u128::from(base)),
        iuv: notice_number.iuv(),
        notice_number,
        amount: AmountCents::new(amount).unwrap(),
        due_date: due,
        expiry_date: expiry,
        state: InstallmentState::Unpaid,
        transfers: vec![],
    }
}

fn position(
    details: KindDetails,
    description: &str,
    name: &str,
    options: Vec<(&str, Vec<Installment>)>,
    created_at: OffsetDateTime,
) -> DebtPosition {
    DebtPosition {
        id: Uuid::nil(),
        request_id: "r".to_owned(),
        creditor: OrganizationFiscalCode::parse("01199250158").unwrap(),
        debtor: Some(Debtor {
            entity_type: EntityType::F,
            fiscal_code: FiscalCode::parse(MARIO).unwrap(),
            full_name: name.to_owned(),
            email: None,
        }),
        description: description.to_owned(),
        details,
        state: PositionState::Valid,
        payment_options: options
            .into_iter()
            .map(|(label, installments)| PaymentOption {
                id: Uuid::nil(),
                label: label.to_owned(),
                installments,
            })
            .collect(),
        version: 1,
        cancellation_reason: None,
        created_at,
        updated_at: created_at,
    }
}

fn tari() -> KindDetails {
    KindDetails::Tari(TariDetails {
        tax_year: 2026,
        property_ref: "UT000123".to_owned(),
    })
}

fn fine_details(notified: Date) -> KindDetails {
    let cents = |c| AmountCents::new(c).unwrap();
    KindDetails::TrafficFine(TrafficFineDetails {
        report_number: "V123456/2026".to_owned(),
        plate: "AB123CD".to_owned(),
        violation_date: notified - Duration::days(5),
        schedule: FineSchedule::new(
            FineAmounts::new(cents(2940), cents(4200), cents(8400), 1260).unwrap(),
            notified,
        ),
    })
}

/// The acceptance TARI: a rata unica and three rates, issued on 1 June 2026.
fn sample_tari() -> DebtPosition {
    position(
        tari(),
        "TARI 2026 utenza domestica",
        "Mario Rossi",
        vec![
            (
                "Rata unica",
                vec![installment(1, 30000, date!(2026 - 07 - 31), None)],
            ),
            (
                "Tre rate",
                vec![
                    installment(2, 10000, date!(2026 - 07 - 31), None),
                    installment(3, 10000, date!(2026 - 09 - 30), None),
                    installment(4, 10000, date!(2026 - 11 - 30), None),
                ],
            ),
        ],
        datetime!(2026-06-01 10:00 UTC),
    )
}

fn at(when: SendWhen) -> OffsetDateTime {
    match when {
        SendWhen::At(at) => at,
        SendWhen::AtIssue => panic!("not scheduled at an instant"),
    }
}

fn when_of(
    messages: &[ScheduledMessage],
    notice: &NoticeNumber,
    purpose: IoPurpose,
) -> Option<SendWhen> {
    messages
        .iter()
        .find(|m| &m.notice_number == notice && m.purpose == purpose)
        .map(|m| m.when)
}

#[test]
fn a_rata_unica_goes_first_and_each_rate_after_it_ahead_of_its_own_due_date() {
    let p = sample_tari();
    let messages = schedule(&p, 7, p.created_at);
    let rata_unica = nav(1);
    assert_eq!(
        when_of(&messages, &rata_unica, IoPurpose::Notice),
        Some(SendWhen::AtIssue)
    );
    // Rate 1 is due with the rata unica: its message waits for the day after.
    assert_eq!(
        at(when_of(&messages, &nav(2), IoPurpose::Notice).unwrap()),
        datetime!(2026-08-01 09:00 +02:00)
    );
    assert_eq!(
        at(when_of(&messages, &nav(3), IoPurpose::Notice).unwrap()),
        datetime!(2026-08-31 09:00 +02:00)
    );
    assert_eq!(
        at(when_of(&messages, &nav(4), IoPurpose::Notice).unwrap()),
        datetime!(2026-10-31 09:00 +01:00),
        "after summer time ended"
    );
    assert_eq!(
        at(when_of(&messages, &rata_unica, IoPurpose::Reminder).unwrap()),
        datetime!(2026-07-24 09:00 +02:00)
    );
    // Rate 1's reminder day is before its own message: none.
    assert_eq!(when_of(&messages, &nav(2), IoPurpose::Reminder), None);
    assert_eq!(
        at(when_of(&messages, &nav(4), IoPurpose::Reminder).unwrap()),
        datetime!(2026-11-23 09:00 +01:00)
    );
    assert_eq!(messages.len(), 4 + 3);
}

#[test]
fn a_fine_is_reminded_the_day_before_its_reduced_amount_ends_naming_both_amounts() {
    // Notified on Tuesday 10 November 2026: the fifth day is Sunday 15, so the reduced
    // amount lasts to Monday 16; the reminder goes out on Sunday 15.
    let notified = date!(2026 - 11 - 10);
    let p = position(
        fine_details(notified),
        "Verbale V123456/2026",
        "Laura Bianchi",
        vec![(
            "Multa",
            vec![installment(7, 4200, date!(2027 - 01 - 11), None)],
        )],
        datetime!(2026-11-10 08:00 UTC),
    );
    let messages = schedule(&p, 7, p.created_at);
    let when = when_of(&messages, &nav(7), IoPurpose::ReducedAmountEnding).unwrap();
    assert_eq!(at(when), datetime!(2026-11-15 09:00 +01:00));
    let message = compose(
        &p,
        &nav(7),
        IoPurpose::ReducedAmountEnding,
        when,
        7,
        "Comune di Milano",
        at(when),
    )
    .unwrap();
    assert_eq!(
        message.amount.get(),
        4200,
        "still the reduced amount plus costs"
    );
    assert!(message.markdown.contains("€ 42,00"), "{}", message.markdown);
    assert!(message.markdown.contains("€ 54,60"), "{}", message.markdown);
    assert!(
        message.markdown.contains("16/11/2026"),
        "{}",
        message.markdown
    );
    // Too late once the reduced amount is over.
    assert_eq!(
        compose(
            &p,
            &nav(7),
            IoPurpose::ReducedAmountEnding,
            when,
            7,
            "Comune di Milano",
            datetime!(2026-11-17 09:00 +01:00),
        ),
        Err(NotSent::ReducedAmountOver)
    );
}

#[test]
fn the_due_date_is_the_last_second_of_the_rome_day_in_utc() {
    assert_eq!(
        end_of_due_day_utc(date!(2026 - 07 - 31)),
        datetime!(2026-07-31 21:59:59 UTC)
    );
    assert_eq!(
        end_of_due_day_utc(date!(2026 - 12 - 15)),
        datetime!(2026-12-15 22:59:59 UTC)
    );
}

#[test]
fn euros_are_written_the_italian_way() {
    let euro = |c| format_euro(AmountCents::new(c).unwrap());
    assert_eq!(euro(5), "€ 0,05");
    assert_eq!(euro(30000), "€ 300,00");
    assert_eq!(euro(123_456_789), "€ 1.234.567,89");
}

#[test]
fn a_legal_entity_gets_no_message() {
    let mut p = sample_tari();
    if let Some(debtor) = p.debtor.as_mut() {
        debtor.entity_type = EntityType::G;
        debtor.fiscal_code = FiscalCode::parse("01199250158").unwrap();
    }
    assert!(schedule(&p, 7, p.created_at).is_empty());
    assert_eq!(
        compose(
            &p,
            &nav(1),
            IoPurpose::Notice,
            SendWhen::AtIssue,
            7,
            "Comune di Milano",
            p.created_at
        ),
        Err(NotSent::NotACitizen)
    );
}

/// A random position: kind, description, debtor's name, options of random sizes with
/// random amounts, due dates (from 1 June 2026) and expiry dates (none, the due date, or
/// later), created on a random day before.
fn any_position() -> impl Strategy<Value = DebtPosition> {
    let installment_spec = (1i64..999_999_999, 0i64..500, 0u8..3, 0i64..60);
    let option = proptest::collection::vec(installment_spec, 1..4);
    (
        0u8..3,
        "\\PC{0,140}",
        "[A-Z][a-z]{2,10} [A-Z][a-z]{2,10}",
        proptest::collection::vec(option, 1..4),
        0i64..400,
        0i64..86_400,
    )
        .prop_map(
            |(kind, description, name, options, created_day, created_second)| {
                let base_day = date!(2026 - 06 - 01);
                let created = base_day - Duration::days(created_day / 4);
                let created_at = OffsetDateTime::new_utc(created, time::Time::MIDNIGHT)
                    + Duration::seconds(created_second);
                let mut base = 0;
                let details = match kind {
                    0 => tari(),
                    1 => fine_details(created),
                    _ => KindDetails::SchoolFee(SchoolFeeDetails {
                        pupil_ref: "ALU7781".to_owned(),
                        service: SchoolService::Refezione,
                        school_year: "2026/2027".to_owned(),
                        month: Some("2026-11".to_owned()),
                    }),
                };
                let options: Vec<_> = options
                    .into_iter()
                    .map(|installments| {
                        let installments = installments
                            .into_iter()
                            .map(|(amount, due, expiry, later)| {
                                base += 1;
                                let due = base_day + Duration::days(due);
                                let expiry = match expiry {
                                    0 => None,
                                    1 => Some(due),
                                    _ => Some(due + Duration::days(later)),
                                };
                                installment(base, amount, due, expiry)
                            })
                            .collect();
                        ("Piano", installments)
                    })
                    .collect();
                position(details, &description, &name, options, created_at)
            },
        )
}

proptest! {
    /// Every message a position calls for, composed when it is due, fits IO's limits, keeps
    /// personal data out of its subject and states today's amount, the due date in UTC and
    /// invalid_after_due_date exactly when the notice expires on its due date.
    #[test]
    fn every_message_fits_io_and_keeps_personal_data_out_of_the_subject(
        p in any_position(),
        reminder_days in 0u16..30,
    ) {
        let name = p.debtor.as_ref().unwrap().full_name.clone();
        for scheduled in schedule(&p, reminder_days, p.created_at) {
            let send_at = match scheduled.when {
                SendWhen::AtIssue => p.created_at,
                SendWhen::At(at) => at.max(p.created_at),
            };
            let composed = compose(
                &p,
                &scheduled.notice_number,
                scheduled.purpose,
                scheduled.when,
                reminder_days,
                "Comune di Milano",
                send_at,
            );
            let installment = p.installment(&scheduled.notice_number).unwrap();
            let today = rome_time::rome_date(send_at);
            let message = match composed {
                Ok(message) => message,
                Err(reason) => {
                    // Only a notice past its expiry, or a fine's reduced band already over,
                    // is not sent from an untouched position.
                    prop_assert!(
                        reason == NotSent::Expired || reason == NotSent::ReducedAmountOver,
                        "{reason:?}"
                    );
                    continue;
                }
            };
            let subject_chars = message.subject.chars().count();
            prop_assert!((SUBJECT_MIN_CHARS..=SUBJECT_MAX_CHARS).contains(&subject_chars));
            let markdown_chars = message.markdown.chars().count();
            prop_assert!((MARKDOWN_MIN_CHARS..=MARKDOWN_MAX_CHARS).contains(&markdown_chars));
            prop_assert!(!message.subject.contains(MARIO));
            prop_assert!(!message.subject.contains(&name));
            prop_assert!(!message.markdown.contains(MARIO));
            let debug = format!("{message:?}");
            prop_assert!(!debug.contains(MARIO));
            if let KindDetails::TrafficFine(fine) = &p.details {
                prop_assert!(!message.subject.contains(&fine.plate));
            }
            prop_assert_eq!(message.amount, p.amount_payable_on(installment, today));
            prop_assert_eq!(
                message.invalid_after_due_date,
                installment.expiry_date == Some(installment.due_date)
            );
            prop_assert_eq!(message.due_date.offset(), UtcOffset::UTC);
            prop_assert_eq!(rome_time::rome_date(message.due_date), installment.due_date);
            prop_assert_eq!(
                rome_time::rome_date(message.due_date + Duration::seconds(1)),
                installment.due_date + Duration::days(1)
            );
        }
    }

    /// The schedule: one notice message per notice; the first notice of the first option
    /// (the rata unica) at issue; another option's notices not before the day after the rata
    /// unica's due date; reminders at 09:00 Rome on the day N days before the due date,
    /// after the notice's own message; the fine's reminder on the day before its reduced
    /// amount ends.
    #[test]
    fn messages_fall_on_the_right_rome_days(
        p in any_position(),
        reminder_days in 0u16..30,
    ) {
        let messages = schedule(&p, reminder_days, p.created_at);
        let primary = primary_option(&p);
        for (o, option) in p.payment_options.iter().enumerate() {
            for (i, installment) in option.installments.iter().enumerate() {
                let notice = &installment.notice_number;
                let notices = messages
                    .iter()
                    .filter(|m| &m.notice_number == notice && m.purpose == IoPurpose::Notice)
                    .count();
                prop_assert_eq!(notices, 1);
                let notice_when = when_of(&messages, notice, IoPurpose::Notice).unwrap();
                if o == primary && i == 0 {
                    prop_assert_eq!(notice_when, SendWhen::AtIssue);
                } else {
                    let notice_at = at(notice_when);
                    let local = rome_time::to_rome(notice_at);
                    prop_assert_eq!((local.hour(), local.minute()), (SEND_HOUR, 0));
                    if o != primary {
                        let rata_unica = &p.payment_options[primary].installments[0];
                        prop_assert!(
                            rome_time::rome_date(notice_at) > rata_unica.due_date,
                            "a rate's message waits for the rata unica's due date"
                        );
                    }
                }
                if let Some(when) = when_of(&messages, notice, IoPurpose::Reminder) {
                    let reminder = at(when);
                    prop_assert!(reminder_days > 0);
                    prop_assert_eq!(
                        rome_time::rome_date(reminder),
                        installment.due_date - Duration::days(i64::from(reminder_days))
                    );
                    prop_assert_eq!(rome_time::to_rome(reminder).hour(), SEND_HOUR);
                    prop_assert!(reminder >= p.created_at);
                    if let SendWhen::At(notice_at) = notice_when {
                        prop_assert!(reminder > notice_at);
                    }
                }
                match (&p.details, when_of(&messages, notice, IoPurpose::ReducedAmountEnding)) {
                    (KindDetails::TrafficFine(fine), Some(when)) => prop_assert_eq!(
                        rome_time::rome_date(at(when)),
                        fine.schedule.reduced_deadline() - Duration::days(1)
                    ),
                    (KindDetails::TrafficFine(_), None) => {}
                    (_, found) => prop_assert_eq!(found, None),
                }
            }
        }
    }

    /// Nothing goes out for a notice paid, cancelled or closed by another option's payment
    /// since its message was queued, nor with a time its position no longer plans.
    #[test]
    fn nothing_stale_is_sent(
        p in any_position(),
        pay in 0usize..12,
        cancel in any::<bool>(),
        shift in 1i64..40,
    ) {
        let queued = schedule(&p, 7, p.created_at);
        let notices: Vec<NoticeNumber> = p.installments().map(|i| i.notice_number.clone()).collect();
        let mut changed = p.clone();
        if cancel {
            let reason = plan_cancel(&changed, "autotutela").unwrap();
            apply_cancel(&mut changed, reason);
        } else {
            let paid = &notices[pay % notices.len()];
            apply_payment(&mut changed, paid, date!(2026 - 06 - 01)).unwrap();
        }
        let mut moved = p.clone();
        for option in &mut moved.payment_options {
            for installment in &mut option.installments {
                installment.due_date += Duration::days(shift);
                installment.expiry_date = installment.expiry_date.map(|d| d + Duration::days(shift));
            }
        }
        for message in &queued {
            let send_at = match message.when {
                SendWhen::AtIssue => p.created_at,
                SendWhen::At(at) => at.max(p.created_at),
            };
            let result = compose(&changed, &message.notice_number, message.purpose, message.when, 7, "Comune", send_at);
            let state = changed.installment(&message.notice_number).unwrap().state;
            if state != InstallmentState::Unpaid {
                prop_assert!(result.is_err(), "{state:?}");
                let expected = match state {
                    InstallmentState::Paid => NotSent::Paid,
                    InstallmentState::Cancelled => NotSent::Cancelled,
                    InstallmentState::Unpayable => NotSent::Unpayable,
                    InstallmentState::Unpaid => unreachable!(),
                };
                if result != Err(NotSent::Expired) {
                    prop_assert_eq!(result, Err(expected));
                }
            }
            // Dates moved: a message queued at an instant now wrong is not sent.
            if let SendWhen::At(_) = message.when {
                let now_planned = planned(&moved, &message.notice_number, message.purpose, 7);
                let result = compose(&moved, &message.notice_number, message.purpose, message.when, 7, "Comune", send_at);
                if now_planned != Some(message.when) {
                    prop_assert!(result.is_err());
                }
            }
        }
    }

    /// Euro amounts written the Italian way read back to the same cents.
    #[test]
    fn euro_texts_read_back(cents in 1i64..=99_999_999_999) {
        let text = format_euro(AmountCents::new(cents).unwrap());
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        prop_assert_eq!(digits.parse::<i64>().unwrap(), cents);
        prop_assert!(text.starts_with("€ "));
    }
}
