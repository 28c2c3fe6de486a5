//! App IO messages end to end: positions created over gRPC queue their messages in the
//! outbox, due at the instants the domain plans; a relay on a replica whose clock the test
//! moves sends them to a fake IO that validates like the real API. Checked: every accepted
//! message is valid (the fake refuses anything else) and carries no personal data in its
//! subject; nobody off IO (or who turned the service off) is written to, and why is
//! recorded; the rata unica goes first and each rate after its due date; reminders come on
//! the right Rome day; 429 is retried, 401/403/400 are dead letters that replay; a change or
//! a cancellation before a message is due sends nothing stale.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::{Date, Month, OffsetDateTime};

use incasso_domain::debt_position::DebtKind;
use incasso_grpc::pb;
use incasso_integration_tests::fake_io::{FakeIo, Profile, SERVICE_KEY};
use incasso_integration_tests::node_simulator::{self as node, ReceiptSpec};
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};
use incasso_relay::app_io::{IoConfig, IoRelay, IoService};
use incasso_store::Store;
use incasso_store::io_messages::{IO_MESSAGE, IoMessageFilter};

use crate::on_both_engines;

on_both_engines!(
    a_new_notice_reaches_io_and_nobody_off_io_is_written_to,
    the_rata_unica_goes_first_then_each_rate_and_reminders_on_their_rome_day,
    refusals_are_retried_or_dead_lettered_and_replayed,
    nothing_stale_is_sent_after_a_change_or_a_cancellation,
);

const MARIO: &str = "RSSMRA80A01F205X";
const LAURA: &str = "BNCLRA85M41F205C";
const GIULIA: &str = "VRDGLI90C45F205O";

fn config(fake: &FakeIo) -> IoConfig {
    let service = |kind| IoService {
        creditor: requests::MILANO.to_owned(),
        kind,
        subscription_key: SERVICE_KEY.to_owned(),
        enabled: true,
        reminder_days: 7,
    };
    IoConfig {
        // The server's own relay looks once at start and then not for an hour: the test's
        // relay, whose clock it sets, sends everything.
        poll_interval: Duration::from_secs(3600),
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(1),
        ..IoConfig::new(
            &fake.base_url(),
            vec![
                service(DebtKind::Tari),
                service(DebtKind::TrafficFine),
                service(DebtKind::SchoolFee),
            ],
        )
    }
}

/// The app, the fake IO and a relay on a replica reading the time from a clock the test
/// sets.
struct Harness {
    app: TestApp,
    fake: FakeIo,
    clock: Arc<Mutex<OffsetDateTime>>,
    relay: IoRelay,
}

impl Harness {
    async fn start(engine: Engine) -> anyhow::Result<Self> {
        Self::start_with(engine, |_| {}).await
    }

    async fn start_with(
        engine: Engine,
        adjust: impl FnOnce(&mut IoConfig),
    ) -> anyhow::Result<Self> {
        let fake = FakeIo::start().await?;
        let mut io = config(&fake);
        adjust(&mut io);
        let server_io = io.clone();
        let app =
            TestApp::spawn_with(engine, move |settings| settings.io = Some(server_io)).await?;
        let clock = Arc::new(Mutex::new(OffsetDateTime::now_utc()));
        let read = clock.clone();
        let db = incasso_store::db::connect(&app.database_url, 4).await?;
        let replica = Store::open(
            db,
            app.store.registry().clone(),
            incasso_store::PrivacyKeys::development(),
            &incasso_store::IuvFloors::default(),
        )
        .await?
        .with_clock(Arc::new(move || *read.lock().expect("the clock")));
        let relay = IoRelay::new(replica, io)?;
        Ok(Self {
            app,
            fake,
            clock,
            relay,
        })
    }

    /// Sets the relay's clock to `at` and delivers everything due then, retries included:
    /// each round moves the clock 2 ms on, past the 1 ms retry delay, so that within the
    /// rounds the clock stays well inside the second it was set to.
    async fn deliver_at(&self, at: OffsetDateTime) -> anyhow::Result<()> {
        let mut now = at;
        let mut idle = 0;
        for _ in 0..50 {
            *self.clock.lock().expect("the clock") = now;
            if self.relay.run_once().await? == 0 {
                idle += 1;
                if idle == 2 {
                    break;
                }
            } else {
                idle = 0;
            }
            now += time::Duration::milliseconds(2);
        }
        Ok(())
    }

    async fn deliver_now(&self) -> anyhow::Result<()> {
        self.deliver_at(OffsetDateTime::now_utc()).await
    }

    fn accepted_for(&self, notice: &str) -> Vec<serde_json::Value> {
        self.fake.with(|s| {
            s.messages_for(notice)
                .into_iter()
                .map(|m| m.body.clone())
                .collect()
        })
    }

    async fn outcomes(&self, notice: &str) -> anyhow::Result<Vec<(String, String, String)>> {
        Ok(self
            .app
            .store
            .list_io_messages(&IoMessageFilter {
                notice_number: Some(notice.to_owned()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|r| (r.purpose, r.outcome, r.reason.unwrap_or_default()))
            .collect())
    }
}

fn for_citizen(
    mut request: pb::CreateDebtPositionRequest,
    request_id: &str,
    fiscal_code: &str,
) -> pb::CreateDebtPositionRequest {
    request.request_id = request_id.to_owned();
    if let Some(debtor) = request.debtor.as_mut() {
        debtor.fiscal_code = fiscal_code.to_owned();
    }
    request
}

/// A school fee due on `due`.
fn school_fee(request_id: &str, fiscal_code: &str, due: Date) -> pb::CreateDebtPositionRequest {
    let mut request = for_citizen(requests::school_fee(request_id), request_id, fiscal_code);
    request.payment_options[0].installments[0].due_date = due.to_string();
    request
}

/// The year whose 15 January is at least 40 days away: the dates of the plan below all fall
/// in winter time (UTC+1), so 09:00 in Rome is 08:00 UTC.
fn plan_year() -> i32 {
    let today = OffsetDateTime::now_utc().date();
    let year = today.year() + 1;
    let january = Date::from_calendar_date(year, Month::January, 15).expect("a date");
    if (january - today).whole_days() >= 40 {
        year
    } else {
        year + 1
    }
}

fn day(year: i32, month: Month, day: u8) -> Date {
    Date::from_calendar_date(year, month, day).expect("a date")
}

/// 09:00 Europe/Rome on `day`, for a winter day.
fn nine_in_rome_winter(day: Date) -> OffsetDateTime {
    day.with_hms(8, 0, 0).expect("a time").assume_utc()
}

fn notice_numbers(position: &pb::DebtPosition) -> Vec<String> {
    position
        .payment_options
        .iter()
        .flat_map(|o| o.installments.iter().map(|i| i.notice_number.clone()))
        .collect()
}

async fn pay(app: &TestApp, installment: &pb::Installment, receipt_id: &str) -> anyhow::Result<()> {
    let spec = ReceiptSpec::paying(installment, receipt_id, "BCITITMM", "2026-12-01T10:00:00");
    node::deliver_receipt(app.soap_addr, &spec).await
}

async fn a_new_notice_reaches_io_and_nobody_off_io_is_written_to(
    engine: Engine,
) -> anyhow::Result<()> {
    let h = Harness::start(engine).await?;
    h.fake.with(|s| {
        s.behaviour
            .profiles
            .insert(LAURA.to_owned(), Profile::NotOnIo);
        s.behaviour
            .profiles
            .insert(GIULIA.to_owned(), Profile::OnIo(false));
    });
    let due = day(plan_year(), Month::January, 15);
    let mut notices = h.app.notices().await?;
    let mario = notices
        .create_debt_position(school_fee("io-mario", MARIO, due))
        .await?
        .into_inner();
    let laura = notices
        .create_debt_position(school_fee("io-laura", LAURA, due))
        .await?
        .into_inner();
    let giulia = notices
        .create_debt_position(school_fee("io-giulia", GIULIA, due))
        .await?
        .into_inner();
    h.deliver_now().await?;

    let number = &mario.payment_options[0].installments[0].notice_number;
    let sent = h.accepted_for(number);
    assert_eq!(sent.len(), 1, "one message for one new notice");
    let message = &sent[0];
    assert_eq!(message["fiscal_code"], MARIO);
    let content = &message["content"];
    let subject = content["subject"].as_str().unwrap();
    assert!(
        !subject.contains(MARIO) && !subject.contains("Mario") && !subject.contains("Rossi"),
        "{subject}"
    );
    assert_eq!(content["payment_data"]["amount"], 46500);
    assert_eq!(content["payment_data"]["notice_number"], number.as_str());
    assert_eq!(content["payment_data"]["invalid_after_due_date"], false);
    assert!(content["payment_data"].get("payee").is_none());
    // The last second of 15 January in Rome, in UTC.
    assert_eq!(content["due_date"], format!("{due}T22:59:59.000Z"));
    let markdown = content["markdown"].as_str().unwrap();
    assert!(markdown.contains("€ 465,00"), "{markdown}");
    assert!(markdown.contains("Comune di Milano"), "{markdown}");

    // Nobody off IO, or who turned the service off, is written to; why is recorded.
    for (position, outcome) in [(&laura, "not_on_io"), (&giulia, "sender_not_allowed")] {
        let number = &position.payment_options[0].installments[0].notice_number;
        assert!(h.accepted_for(number).is_empty());
        let outcomes = h.outcomes(number).await?;
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert_eq!(
            (outcomes[0].0.as_str(), outcomes[0].1.as_str()),
            ("notice", outcome)
        );
    }
    let sent = h.outcomes(number).await?;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "sent");
    let recorded = h
        .app
        .store
        .list_io_messages(&IoMessageFilter {
            outcome: Some("sent".to_owned()),
            ..Default::default()
        })
        .await?;
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].io_message_id.as_deref(),
        h.fake.with(|s| Some(s.accepted[0].id.clone())).as_deref()
    );
    // Every call carried the service's key; nothing was refused.
    assert!(
        h.fake
            .with(|s| s.calls.iter().all(|c| c.status < 400 || c.status == 404))
    );
    h.app.stop().await
}

async fn the_rata_unica_goes_first_then_each_rate_and_reminders_on_their_rome_day(
    engine: Engine,
) -> anyhow::Result<()> {
    let h = Harness::start(engine).await?;
    let year = plan_year();
    let rata_unica_due = day(year, Month::January, 15);
    let dues = [
        day(year, Month::January, 15),
        day(year, Month::February, 15),
        day(year, Month::March, 15),
    ];
    let plan = |request_id: &str| {
        let mut request = for_citizen(requests::tari(request_id), request_id, MARIO);
        request.payment_options[0].installments[0].due_date = rata_unica_due.to_string();
        for (rate, due) in request.payment_options[1].installments.iter_mut().zip(dues) {
            rate.due_date = due.to_string();
        }
        request
    };
    let mut notices = h.app.notices().await?;
    let tari = notices
        .create_debt_position(plan("io-tari"))
        .await?
        .into_inner();
    // A second plan whose rata unica is paid: none of its rates is ever sent.
    let paid = notices
        .create_debt_position(plan("io-tari-paid"))
        .await?
        .into_inner();
    pay(
        &h.app,
        &paid.payment_options[0].installments[0],
        "io-receipt-1",
    )
    .await?;
    h.deliver_now().await?;

    let rata_unica = &tari.payment_options[0].installments[0].notice_number;
    let rates: Vec<&str> = tari.payment_options[1]
        .installments
        .iter()
        .map(|i| i.notice_number.as_str())
        .collect();
    assert_eq!(h.accepted_for(rata_unica).len(), 1, "the rata unica first");
    for rate in &rates {
        assert!(
            h.accepted_for(rate).is_empty(),
            "no rate before the rata unica is due"
        );
    }

    // Its reminder: 7 days ahead, 09:00 in Rome; not a second earlier.
    let reminder_at = nine_in_rome_winter(rata_unica_due - time::Duration::days(7));
    h.deliver_at(reminder_at - time::Duration::seconds(1))
        .await?;
    assert_eq!(h.accepted_for(rata_unica).len(), 1);
    h.deliver_at(reminder_at).await?;
    let sent = h.accepted_for(rata_unica);
    assert_eq!(sent.len(), 2);
    assert!(
        sent[1]["content"]["subject"]
            .as_str()
            .unwrap()
            .contains("promemoria")
    );

    // The day after the rata unica's due date, unpaid: rates 1 and 2 (due within 30 days).
    let after = nine_in_rome_winter(rata_unica_due + time::Duration::days(1));
    h.deliver_at(after).await?;
    assert_eq!(h.accepted_for(rates[0]).len(), 1);
    assert_eq!(h.accepted_for(rates[1]).len(), 1);
    assert!(h.accepted_for(rates[2]).is_empty());
    let first = &h.accepted_for(rates[0])[0]["content"];
    assert_eq!(first["payment_data"]["amount"], 10000);
    assert!(first["subject"].as_str().unwrap().contains("rata 1 di 3"));
    // The paid plan's rates are recorded as not sent, and nothing went out.
    for rate in notice_numbers(&paid).iter().skip(1) {
        assert!(h.accepted_for(rate).is_empty());
        let outcomes = h.outcomes(rate).await?;
        assert!(
            outcomes
                .iter()
                .all(|(_, outcome, reason)| outcome == "not_sent"
                    && reason.contains("another payment option")),
            "{outcomes:?}"
        );
    }

    // Rate 2 is paid: its reminder (8 February) sends nothing; rate 3 goes 30 days ahead.
    pay(
        &h.app,
        &tari.payment_options[1].installments[1],
        "io-receipt-2",
    )
    .await?;
    h.deliver_at(nine_in_rome_winter(dues[1] - time::Duration::days(7)))
        .await?;
    assert_eq!(h.accepted_for(rates[1]).len(), 1);
    assert!(
        h.outcomes(rates[1])
            .await?
            .iter()
            .any(|(purpose, outcome, reason)| purpose == "reminder"
                && outcome == "not_sent"
                && reason.contains("paid"))
    );
    h.deliver_at(nine_in_rome_winter(dues[2] - time::Duration::days(30)))
        .await?;
    assert_eq!(h.accepted_for(rates[2]).len(), 1);
    h.app.stop().await
}

async fn refusals_are_retried_or_dead_lettered_and_replayed(engine: Engine) -> anyhow::Result<()> {
    let h = Harness::start(engine).await?;
    let due = day(plan_year(), Month::January, 15);
    let mut notices = h.app.notices().await?;

    // A burst of 429 and a 503: retried until IO takes it, once.
    h.fake.with(|s| s.behaviour.script.extend([429, 429, 503]));
    let first = notices
        .create_debt_position(school_fee("io-429", MARIO, due))
        .await?
        .into_inner();
    h.deliver_now().await?;
    let number = &first.payment_options[0].installments[0].notice_number;
    assert_eq!(h.accepted_for(number).len(), 1);
    assert_eq!(
        h.fake.with(|s| s.statuses("/profiles")),
        [429, 429, 503, 200]
    );

    // 403 (the service not enabled for production), 401 (a wrong key), 400: dead letters
    // naming the status, nothing sent; replayed once the cause is fixed, sent once.
    for (status, request_id) in [(403, "io-403"), (401, "io-401"), (400, "io-400")] {
        match status {
            403 => h.fake.with(|s| {
                s.behaviour.forbidden_keys.insert(SERVICE_KEY.to_owned());
            }),
            401 => h.fake.with(|s| {
                s.behaviour.keys.clear();
            }),
            _ => h.fake.with(|s| s.behaviour.script.push_back(400)),
        }
        let position = notices
            .create_debt_position(school_fee(request_id, MARIO, due))
            .await?
            .into_inner();
        h.deliver_now().await?;
        let number = &position.payment_options[0].installments[0].notice_number;
        assert!(h.accepted_for(number).is_empty());
        let dead = h.app.store.outbox_dead(IO_MESSAGE).await?;
        assert_eq!(dead.len(), 1, "{dead:?}");
        let error = dead[0].last_error.clone().unwrap_or_default();
        assert!(error.contains(&format!("IO answered {status}")), "{error}");
        assert!(!error.contains(MARIO), "{error}");
        h.fake.with(|s| {
            s.behaviour.forbidden_keys.clear();
            s.behaviour.keys.insert(SERVICE_KEY.to_owned());
        });
        assert_eq!(h.app.store.outbox_replay_dead(IO_MESSAGE).await?, 1);
        h.deliver_now().await?;
        assert_eq!(
            h.accepted_for(number).len(),
            1,
            "sent once after the replay"
        );
        assert!(h.app.store.outbox_dead(IO_MESSAGE).await?.is_empty());
    }
    h.app.stop().await
}

async fn nothing_stale_is_sent_after_a_change_or_a_cancellation(
    engine: Engine,
) -> anyhow::Result<()> {
    let h = Harness::start(engine).await?;
    let year = plan_year();
    let due = day(year, Month::January, 15);
    let mut notices = h.app.notices().await?;
    let moved = notices
        .create_debt_position(school_fee("io-moved", MARIO, due))
        .await?
        .into_inner();
    let cancelled = notices
        .create_debt_position(school_fee("io-cancelled", MARIO, due))
        .await?
        .into_inner();
    let changed = notices
        .create_debt_position(school_fee("io-changed", MARIO, due))
        .await?
        .into_inner();
    // Before any message went out: one is cancelled, one gets a new amount.
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "io-cancel".to_owned(),
            id: cancelled.id.clone(),
            reason: "ritiro".to_owned(),
        })
        .await?;
    let changed_number = changed.payment_options[0].installments[0]
        .notice_number
        .clone();
    notices
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "io-change".to_owned(),
            id: changed.id.clone(),
            installments: vec![pb::InstallmentUpdate {
                notice_number: changed_number.clone(),
                amount_cents: Some(40000),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await?;
    h.deliver_now().await?;
    let cancelled_number = &cancelled.payment_options[0].installments[0].notice_number;
    assert!(h.accepted_for(cancelled_number).is_empty());
    assert!(
        h.outcomes(cancelled_number)
            .await?
            .iter()
            .all(|(_, o, r)| o == "not_sent" && r.contains("cancelled"))
    );
    let sent = h.accepted_for(&changed_number);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["content"]["payment_data"]["amount"], 40000,
        "the amount as it is now"
    );

    // The moved one's due date goes from 15 to 29 January: the reminder of the 8th is not
    // sent, the one of the 22nd is.
    let moved_number = moved.payment_options[0].installments[0]
        .notice_number
        .clone();
    notices
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "io-move".to_owned(),
            id: moved.id.clone(),
            installments: vec![pb::InstallmentUpdate {
                notice_number: moved_number.clone(),
                due_date: Some(day(year, Month::January, 29).to_string()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await?;
    h.deliver_at(nine_in_rome_winter(day(year, Month::January, 8)))
        .await?;
    assert_eq!(
        h.accepted_for(&moved_number).len(),
        1,
        "only the notice so far"
    );
    assert!(
        h.outcomes(&moved_number)
            .await?
            .iter()
            .any(|(p, o, r)| p == "reminder" && o == "not_sent" && r.contains("changed"))
    );
    h.deliver_at(nine_in_rome_winter(day(year, Month::January, 22)))
        .await?;
    let sent = h.accepted_for(&moved_number);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["content"]["due_date"],
        format!("{year}-01-29T22:59:59.000Z")
    );
    // Nothing for the cancelled one, ever.
    assert!(h.accepted_for(cancelled_number).is_empty());
    h.app.stop().await
}
