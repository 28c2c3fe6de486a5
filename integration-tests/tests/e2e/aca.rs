//! The Stand-In archive relay against a local fake that speaks paCreatePosition: outages,
//! slow answers, refusals, several relays on one database, and fines whose amount changes
//! with the day.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use time::OffsetDateTime;

use incasso_domain::money::AmountCents;
use incasso_domain::rome_time;
use incasso_domain::traffic_fine::{FineAmounts, FineSchedule};
use incasso_grpc::pb;
use incasso_integration_tests::fake_aca::{Answer, FakeAca, SUBSCRIPTION_KEY};
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};
use incasso_relay::aca::{AcaConfig, AcaRelay};
use incasso_store::Store;

use crate::on_both_engines;

on_both_engines!(
    positions_reach_the_stand_in_archive_through_outages,
    refused_positions_wait_as_dead_letters_until_replayed,
    two_relays_on_a_slow_archive_never_send_one_event_at_once,
    the_events_of_one_position_are_published_one_at_a_time_in_order,
    closing_a_position_the_archive_never_had_completes,
    too_many_failures_make_a_dead_letter,
    without_the_subscription_key_the_archive_refuses,
    a_fine_is_republished_when_its_amount_band_changes,
);

fn fast(fake: &FakeAca) -> AcaConfig {
    AcaConfig {
        poll_interval: Duration::from_millis(20),
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        max_attempts: 50,
        ..AcaConfig::new(&fake.base_url(), Some(SUBSCRIPTION_KEY.to_owned()))
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A second replica's store on the app's database, with its own pool (and clock).
async fn replica(app: &TestApp) -> anyhow::Result<Store> {
    app.replica().await
}

/// A relay of another replica, running until the sender is dropped or used.
async fn second_relay(
    app: &TestApp,
    config: AcaConfig,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = AcaRelay::new(replica(app).await?, config)?;
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    Ok((stop, task))
}

/// An outbox row, as an operator would look at it.
#[derive(Debug)]
struct Event {
    state: String,
    attempts: i32,
    next_attempt_at: i64,
    last_error: Option<String>,
}

/// The ACA events of a position, in their queue's order.
async fn events_of(app: &TestApp, position_id: &str) -> anyhow::Result<Vec<Event>> {
    // Formatted into the SQL, so it must be what it claims to be.
    let id = uuid::Uuid::parse_str(position_id)?;
    let db = app.store.db();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT state, attempts, next_attempt_at, last_error FROM outbox_event \
                 WHERE topic = 'aca.position' AND aggregate_id = '{id}' \
                 ORDER BY order_micros, id"
            ),
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Event {
                state: row.try_get("", "state")?,
                attempts: row.try_get("", "attempts")?,
                next_attempt_at: row.try_get("", "next_attempt_at")?,
                last_error: row.try_get("", "last_error")?,
            })
        })
        .collect()
}

/// The ACA events of a position once none is pending: the fake answers before the relay
/// records the outcome.
async fn settled(app: &TestApp, position_id: &str) -> anyhow::Result<Vec<Event>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = events_of(app, position_id).await?;
        if events.iter().all(|e| e.state != "pending") {
            return Ok(events);
        }
        anyhow::ensure!(Instant::now() < deadline, "still pending: {events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `relay` round after round until a round finds nothing due.
async fn drain(relay: &AcaRelay) -> anyhow::Result<usize> {
    let mut handled = 0;
    loop {
        match relay.run_once().await? {
            0 => return Ok(handled),
            n => handled += n,
        }
    }
}

fn iuv_of(position: &pb::DebtPosition) -> String {
    position.payment_options[0].installments[0].iuv.clone()
}

async fn positions_reach_the_stand_in_archive_through_outages(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    fake.with(|s| {
        s.behaviour.script.extend([
            Answer::Status(503),
            Answer::Status(502),
            Answer::Status(500),
        ])
    });
    let config = AcaConfig {
        retry_base: Duration::from_millis(60),
        request_timeout: Duration::from_millis(500),
        ..fast(&fake)
    };
    let app = TestApp::spawn_with(engine, |s| s.aca = Some(config)).await?;
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("aca-tari"))
        .await?
        .into_inner();
    eventually("the four notices in ACA", || {
        fake.with(|s| s.accepted.len()) == 4
    })
    .await?;
    let first = tari.payment_options[0].installments[0].clone();
    fake.with(|s| {
        assert_eq!(
            s.statuses(&first.iuv),
            [503, 502, 500, 200],
            "three failures, then the call that went through"
        );
        let calls: Vec<_> = s.calls.iter().filter(|c| c.iuv == first.iuv).collect();
        // Retries 1, 2 and 3 wait at least half of 60, 120 and 240 ms: without backoff the
        // relay would be back every 20 ms poll.
        assert!(
            calls[3].at - calls[0].at >= Duration::from_millis(180),
            "the retries backed off: {:?}",
            calls[3].at - calls[0].at
        );
        assert!(s.keys.iter().all(|k| k == SUBSCRIPTION_KEY));
        let single = s
            .accepted
            .iter()
            .find(|b| b["iuv"] == first.iuv.as_str())
            .expect("the rata unica");
        assert_eq!(single["paFiscalCode"], "01199250158");
        assert_eq!(single["nav"], first.notice_number.as_str());
        assert_eq!(single["amount"], 30000);
        assert_eq!(single["entityType"], "F");
        assert_eq!(single["entityFiscalCode"], "RSSMRA80A01F205X");
        assert_eq!(
            single["payStandIn"], false,
            "TEFA makes it multi-beneficiary"
        );
        assert_eq!(
            single["expirationDate"], "2026-07-31T23:59:59+02:00",
            "the end of the due day in Rome, summer time"
        );
    });
    let events = settled(&app, &tari.id).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, "delivered");
    assert_eq!(
        events[0].attempts, 4,
        "delivered once, on the fourth attempt"
    );

    // ACA unreachable: connections refused while the position is cancelled.
    fake.refuse_connections();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "aca-tari-cancel".to_owned(),
            id: tari.id.clone(),
            reason: "autotutela".to_owned(),
        })
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = events_of(&app, &tari.id).await?;
        if events[1].attempts >= 2 {
            let error = events[1].last_error.as_deref().unwrap_or_default();
            assert!(error.contains("unreachable"), "{error}");
            assert_eq!(
                events[1].state, "pending",
                "a refused connection is retried"
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no retries while refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.accept_connections().await?;
    eventually("the cancellation in ACA", || {
        fake.with(|s| s.accepted.len()) == 8
    })
    .await?;
    fake.with(|s| {
        assert!(
            s.accepted[4..].iter().all(|b| b["amount"] == 0),
            "amount 0 closes"
        );
        assert!(s.archive.values().all(|p| !p.valid && p.amount == 0));
    });

    // ACA slower than the relay waits: the call is abandoned and made again.
    fake.with(|s| {
        s.behaviour
            .script
            .push_back(Answer::Slow(Duration::from_secs(2)))
    });
    let fee = notices
        .create_debt_position(requests::school_fee("aca-fee"))
        .await?
        .into_inner();
    eventually("the fee in ACA", || fake.with(|s| s.accepted.len()) == 9).await?;
    fake.with(|s| {
        let last = s.accepted.last().expect("the fee");
        assert_eq!(last["iuv"], iuv_of(&fee).as_str());
        assert_eq!(last["payStandIn"], true);
        assert!(
            last["postalIban"]
                .as_str()
                .is_some_and(|i| &i[5..10] == "07601")
        );
        assert_eq!(s.accepted_amounts(&iuv_of(&fee)), [46500], "published once");
    });
    let events = settled(&app, &fee.id).await?;
    assert_eq!(events[0].state, "delivered");
    assert_eq!(
        events[0].attempts, 2,
        "the slow call timed out and was retried"
    );
    app.stop().await
}

async fn refused_positions_wait_as_dead_letters_until_replayed(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    // The first call is refused as formally invalid.
    fake.with(|s| s.behaviour.script.push_back(Answer::Status(400)));
    let config = fast(&fake);
    let app = TestApp::spawn_with(engine, |s| s.aca = Some(config)).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("aca-dead"))
        .await?
        .into_inner();
    let iuv = iuv_of(&fee);
    let store = app.store.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = store.outbox_dead("aca.position").await?;
        if let Some(event) = dead.into_iter().find(|e| e.aggregate_id == fee.id) {
            break event;
        }
        anyhow::ensure!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead.attempts, 1, "a 400 is not retried");
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("400"))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fake.with(|s| s.statuses(&iuv)),
        [400],
        "left alone once dead"
    );
    store.outbox_replay(&dead.id.to_string()).await?;
    eventually("the replayed position in ACA", || {
        fake.with(|s| s.accepted.iter().any(|b| b["iuv"] == iuv.as_str()))
    })
    .await?;
    assert!(
        store
            .outbox_dead("aca.position")
            .await?
            .iter()
            .all(|e| e.aggregate_id != fee.id)
    );
    assert!(
        store.outbox_replay(&dead.id.to_string()).await.is_err(),
        "only dead letters are replayed"
    );
    app.stop().await
}

async fn two_relays_on_a_slow_archive_never_send_one_event_at_once(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    // Every call takes almost half the relay's timeout: fifty of them one after another take
    // longer than the twenty timeouts the relay once leased a batch of fifty for.
    fake.with(|s| s.behaviour.delay = Duration::from_millis(200));
    let config = AcaConfig {
        request_timeout: Duration::from_millis(450),
        ..fast(&fake)
    };
    let app = TestApp::spawn_with(engine, |s| s.aca = Some(config.clone())).await?;
    let (stop, second) = second_relay(&app, config).await?;
    let mut notices = app.notices().await?;
    let items: Vec<_> = (0..60)
        .map(|i| requests::school_fee(&format!("aca-many-{i}")))
        .collect();
    let mut results = notices
        .bulk_create_debt_positions(tokio_stream::iter(items))
        .await?
        .into_inner();
    while results.message().await?.is_some() {}
    eventually("sixty positions in ACA", || {
        fake.with(|s| s.accepted.len()) >= 60
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.with(|s| {
        let mut iuvs: Vec<_> = s
            .accepted
            .iter()
            .map(|b| b["iuv"].as_str().unwrap_or_default().to_owned())
            .collect();
        iuvs.sort();
        iuvs.dedup();
        assert_eq!(iuvs.len(), 60);
        assert_eq!(s.accepted.len(), 60, "no event was delivered twice");
        assert_eq!(
            s.max_concurrent_per_iuv(),
            1,
            "never two calls for one notice at once"
        );
    });
    let _ = stop.send(());
    second.await?;
    app.stop().await
}

async fn the_events_of_one_position_are_published_one_at_a_time_in_order(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    fake.with(|s| s.behaviour.delay = Duration::from_millis(300));
    let config = AcaConfig {
        request_timeout: Duration::from_secs(2),
        ..fast(&fake)
    };
    let app = TestApp::spawn_with(engine, |s| s.aca = Some(config.clone())).await?;
    let (stop, second) = second_relay(&app, config).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("aca-order"))
        .await?
        .into_inner();
    let installment = fee.payment_options[0].installments[0].clone();
    eventually("the creation being published", || {
        fake.with(|s| s.max_in_flight.contains_key(&installment.iuv))
    })
    .await?;
    // Two more events while the first is in flight: either relay could take them.
    notices
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "aca-order-update".to_owned(),
            id: fee.id.clone(),
            installments: vec![pb::InstallmentUpdate {
                notice_number: installment.notice_number.clone(),
                amount_cents: Some(40000),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await?;
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "aca-order-cancel".to_owned(),
            id: fee.id.clone(),
            reason: "ritirato".to_owned(),
        })
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = events_of(&app, &fee.id).await?;
        if events.len() == 3 && events.iter().all(|e| e.state != "pending") {
            assert!(events.iter().all(|e| e.state == "delivered"), "{events:?}");
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "events not delivered: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.with(|s| {
        assert_eq!(s.max_in_flight[&installment.iuv], 1, "one call at a time");
        let amounts = s.accepted_amounts(&installment.iuv);
        assert_eq!(amounts.len(), 3, "{amounts:?}");
        assert_eq!(amounts[0], 46500);
        let closed = amounts.iter().position(|a| *a == 0).expect("closed");
        assert!(
            amounts[closed..].iter().all(|a| *a == 0),
            "nothing published after the close: {amounts:?}"
        );
        assert!(s.statuses(&installment.iuv).iter().all(|s| *s == 200));
        assert!(!s.archive[&installment.iuv].valid, "closed in ACA");
    });
    let _ = stop.send(());
    second.await?;
    app.stop().await
}

async fn closing_a_position_the_archive_never_had_completes(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    // No relay runs while the position is created and cancelled.
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("aca-gone"))
        .await?
        .into_inner();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "aca-gone-cancel".to_owned(),
            id: fee.id.clone(),
            reason: "errore di emissione".to_owned(),
        })
        .await?;
    let relay = AcaRelay::new(app.store.clone(), fast(&fake))?;
    assert_eq!(drain(&relay).await?, 2);
    let iuv = iuv_of(&fee);
    fake.with(|s| {
        assert_eq!(s.statuses(&iuv), [404, 404], "ACA never had it");
        assert!(!s.archive.contains_key(&iuv));
    });
    let events = events_of(&app, &fee.id).await?;
    assert!(
        events
            .iter()
            .all(|e| e.state == "delivered" && e.attempts == 1),
        "{events:?}"
    );
    assert!(app.store.outbox_dead("aca.position").await?.is_empty());
    app.stop().await
}

async fn too_many_failures_make_a_dead_letter(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("aca-exhausted"))
        .await?
        .into_inner();
    let iuv = iuv_of(&fee);
    fake.with(|s| s.behaviour.status_for_iuv.insert(iuv.clone(), 503));
    let relay = AcaRelay::new(
        app.store.clone(),
        AcaConfig {
            max_attempts: 3,
            ..fast(&fake)
        },
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        relay.run_once().await?;
        if let Some(dead) = app.store.outbox_dead("aca.position").await?.pop() {
            break dead;
        }
        anyhow::ensure!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead.aggregate_id, fee.id);
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("503"))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(drain(&relay).await?, 0, "nothing more to do");
    assert_eq!(fake.with(|s| s.statuses(&iuv)), [503, 503, 503]);
    app.stop().await
}

async fn without_the_subscription_key_the_archive_refuses(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("aca-keyless"))
        .await?
        .into_inner();
    let relay = AcaRelay::new(
        app.store.clone(),
        AcaConfig {
            subscription_key: None,
            ..fast(&fake)
        },
    )?;
    assert_eq!(drain(&relay).await?, 1);
    let dead = app.store.outbox_dead("aca.position").await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].aggregate_id, fee.id);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("401"))
    );
    assert!(fake.with(|s| s.accepted.is_empty()));

    // A second position dead for the same reason; then the key is put right and the operator
    // queues every dead letter again at once.
    let tari = notices
        .create_debt_position(requests::tari("aca-keyless-tari"))
        .await?
        .into_inner();
    assert_eq!(drain(&relay).await?, 1);
    assert_eq!(app.store.outbox_dead("aca.position").await?.len(), 2);
    assert_eq!(
        app.store.outbox_replay_dead("no.such.topic").await?,
        0,
        "another topic's dead letters are left alone"
    );
    assert_eq!(app.store.outbox_replay_dead("aca.position").await?, 2);
    assert!(app.store.outbox_dead("aca.position").await?.is_empty());
    let keyed = AcaRelay::new(app.store.clone(), fast(&fake))?;
    assert_eq!(drain(&keyed).await?, 2);
    let mut accepted: Vec<String> = fake.with(|s| {
        s.accepted
            .iter()
            .filter_map(|b| b["iuv"].as_str().map(str::to_owned))
            .collect()
    });
    let mut expected = vec![iuv_of(&fee)];
    expected.extend(
        tari.payment_options
            .iter()
            .flat_map(|o| o.installments.iter().map(|i| i.iuv.clone())),
    );
    accepted.sort();
    expected.sort();
    assert_eq!(
        accepted, expected,
        "each position published once, every IUV of the TARI"
    );
    assert_eq!(
        app.store.outbox_replay_dead("").await?,
        0,
        "nothing left dead"
    );
    app.stop().await
}

async fn a_fine_is_republished_when_its_amount_band_changes(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    let app = TestApp::spawn(engine).await?;
    // Notified today, whenever the test runs.
    let today = rome_time::rome_date(OffsetDateTime::now_utc());
    let notified = incasso_domain::validation::format_date(today);
    let fine_request = |request_id: &str| {
        let mut request = requests::fine(request_id);
        if let Some(pb::create_debt_position_request::Details::TrafficFine(fine)) =
            request.details.as_mut()
        {
            fine.violation_date = notified.clone();
            fine.notification_date = notified.clone();
        }
        request
    };
    let mut notices = app.notices().await?;
    let fine = notices
        .create_debt_position(fine_request("aca-fine"))
        .await?
        .into_inner();
    let withdrawn = notices
        .create_debt_position(fine_request("aca-fine-withdrawn"))
        .await?
        .into_inner();
    let iuv = iuv_of(&fine);
    let withdrawn_iuv = iuv_of(&withdrawn);
    let cents = |c| AmountCents::new(c).expect("an amount");
    let schedule = FineSchedule::new(
        FineAmounts::new(cents(2940), cents(4200), cents(8400), 1260)?,
        today,
    );
    let full_from =
        rome_time::start_of_rome_day(schedule.reduced_deadline().next_day().expect("a day"));
    let increased_from =
        rome_time::start_of_rome_day(schedule.full_deadline().next_day().expect("a day"));

    // The relay's replica reads the time from a clock the test moves.
    let clock = Arc::new(Mutex::new(
        OffsetDateTime::now_utc() + time::Duration::seconds(1),
    ));
    let set = |instant: OffsetDateTime| *clock.lock().expect("the clock") = instant;
    let read = clock.clone();
    let store = replica(&app)
        .await?
        .with_clock(Arc::new(move || *read.lock().expect("the clock")));
    let relay = AcaRelay::new(store, fast(&fake))?;
    let pending = |events: &[Event]| -> Vec<i64> {
        events
            .iter()
            .filter(|e| e.state == "pending")
            .map(|e| e.next_attempt_at)
            .collect()
    };
    let micros = |t: OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap();

    assert_eq!(drain(&relay).await?, 2);
    fake.with(|s| {
        assert_eq!(s.accepted_amounts(&iuv), [4200], "reduced + costs");
        assert_eq!(s.accepted_amounts(&withdrawn_iuv), [4200]);
    });
    assert_eq!(
        pending(&events_of(&app, &fine.id).await?),
        [micros(full_from)],
        "republication queued for the first day of the full amount"
    );

    // Withdrawn before the band changes: the close is published at once, not behind the
    // scheduled republication.
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "aca-fine-withdrawn-cancel".to_owned(),
            id: withdrawn.id.clone(),
            reason: "ricorso accolto".to_owned(),
        })
        .await?;
    set(full_from - time::Duration::seconds(1));
    assert_eq!(
        drain(&relay).await?,
        1,
        "only the close: no band changed yet"
    );
    assert_eq!(fake.with(|s| s.accepted_amounts(&withdrawn_iuv)), [4200, 0]);

    set(full_from);
    assert_eq!(drain(&relay).await?, 2);
    fake.with(|s| {
        assert_eq!(s.accepted_amounts(&iuv), [4200, 5460], "full + costs");
        assert_eq!(
            s.statuses(&withdrawn_iuv),
            [200, 200],
            "the withdrawn fine's republication did not call ACA"
        );
    });
    assert_eq!(
        pending(&events_of(&app, &fine.id).await?),
        [micros(increased_from)]
    );
    assert!(pending(&events_of(&app, &withdrawn.id).await?).is_empty());

    // A change meanwhile is published at once and queues no second republication.
    notices
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "aca-fine-update".to_owned(),
            id: fine.id.clone(),
            description: Some("Verbale V123456/2026 (rettificato)".to_owned()),
            ..Default::default()
        })
        .await?;
    set(full_from + time::Duration::hours(1));
    assert_eq!(drain(&relay).await?, 1);
    fake.with(|s| {
        assert_eq!(s.accepted_amounts(&iuv), [4200, 5460, 5460]);
        assert_eq!(
            s.archive[&iuv].body["description"],
            "Verbale V123456/2026 (rettificato)"
        );
    });
    assert_eq!(
        pending(&events_of(&app, &fine.id).await?),
        [micros(increased_from)]
    );

    set(increased_from);
    assert_eq!(drain(&relay).await?, 1);
    assert_eq!(
        fake.with(|s| s.accepted_amounts(&iuv)),
        [4200, 5460, 5460, 9660],
        "increased + costs"
    );
    assert!(
        pending(&events_of(&app, &fine.id).await?).is_empty(),
        "the last band never changes"
    );
    set(increased_from + time::Duration::days(400));
    assert_eq!(drain(&relay).await?, 0);
    app.stop().await
}
