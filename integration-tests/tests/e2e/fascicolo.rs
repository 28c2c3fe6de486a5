//! The Fascicolo del Cittadino push against a local fake that speaks fascicolo.v1: notices
//! issued, paid through paSendRTV2, changed and cancelled reach it in order per citizen with
//! two relays running; outages, gap reports, refusals and dead letters; resync.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tonic::Code;

use incasso_grpc::pb;
use incasso_integration_tests::fake_fascicolo::{FakeFascicolo, citizen_code};
use incasso_integration_tests::node_simulator::{self as node, Caller, ReceiptSpec, post};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_relay::fascicolo::{self, FascicoloConfig, pb as fpb};
use incasso_store::outbox::FASCICOLO_CITIZEN;

use crate::on_both_engines;

on_both_engines!(
    every_change_reaches_the_fascicolo_in_order_per_citizen,
    an_outage_is_recovered_with_nothing_lost_or_duplicated,
    a_gap_report_makes_incasso_resend,
    refused_events_wait_as_dead_letters_until_replayed,
    without_a_url_nothing_is_queued,
    resync_queues_a_citizens_whole_picture_again,
);

fn fast(fake: &FakeFascicolo) -> FascicoloConfig {
    FascicoloConfig {
        poll_interval: Duration::from_millis(20),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ..FascicoloConfig::new(&fake.url())
    }
}

async fn spawn(engine: Engine, fake: &FakeFascicolo) -> anyhow::Result<TestApp> {
    let config = fast(fake);
    TestApp::spawn_with(engine, move |settings| settings.fascicolo = Some(config)).await
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A relay of a second replica (its own pool), running until the sender is used or dropped.
async fn second_relay(
    app: &TestApp,
    fake: &FakeFascicolo,
) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
    let store = app.replica().await?.with_citizen_events(true);
    let relay = fascicolo::relay(store, &fast(fake))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    Ok(stop)
}

fn with_debtor(
    mut request: pb::CreateDebtPositionRequest,
    fiscal_code: &str,
) -> pb::CreateDebtPositionRequest {
    if let Some(debtor) = request.debtor.as_mut() {
        debtor.fiscal_code = fiscal_code.to_owned();
    }
    request
}

async fn create(
    app: &TestApp,
    request: pb::CreateDebtPositionRequest,
) -> anyhow::Result<pb::DebtPosition> {
    Ok(app
        .notices()
        .await?
        .create_debt_position(request)
        .await?
        .into_inner())
}

/// Delivers the receipt of `installment` as the Node does: again after a transient
/// `PAA_SYSTEM_ERROR` (on SQLite a second replica's relay can hold the database briefly).
async fn pay(app: &TestApp, installment: &pb::Installment, receipt_id: &str) -> anyhow::Result<()> {
    let spec = ReceiptSpec::paying(installment, receipt_id, "BCITITMM", "2026-11-20T10:15:00");
    let request = node::send_rt(&Caller::default(), true, &spec);
    for _ in 0..20 {
        let reply = post(
            app.soap_addr,
            Some("paSendRTV2"),
            "text/xml; charset=utf-8",
            request.as_bytes(),
        )
        .await?;
        if node::element_text(&reply.body, "outcome") == Some("OK") {
            return Ok(());
        }
        anyhow::ensure!(
            node::element_text(&reply.body, "faultCode") == Some("PAA_SYSTEM_ERROR"),
            "{}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("receipt {receipt_id} never accepted")
}

/// Outbox rows of the Fascicolo topic in each state: (pending, delivered, dead).
async fn outbox_states(app: &TestApp) -> anyhow::Result<(i64, i64, i64)> {
    let count = |state: &str| {
        format!(
            "SELECT COUNT(*) FROM outbox_event WHERE topic = '{FASCICOLO_CITIZEN}' AND state = '{state}'"
        )
    };
    Ok((
        app.query_i64(&count("pending")).await?,
        app.query_i64(&count("delivered")).await?,
        app.query_i64(&count("dead")).await?,
    ))
}

fn kinds(fake: &FakeFascicolo, citizen: &str) -> Vec<&'static str> {
    fake.history(citizen).iter().map(|a| a.kind).collect()
}

async fn every_change_reaches_the_fascicolo_in_order_per_citizen(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeFascicolo::start().await?;
    fake.state().behaviour.delay = Duration::from_millis(5);
    let app = spawn(engine, &fake).await?;
    let _second = second_relay(&app, &fake).await?;
    let citizens: Vec<String> = (0..4).map(citizen_code).collect();

    // Each citizen: three school fees and a TARI bill (four notices), created concurrently.
    let mut creations = tokio::task::JoinSet::new();
    for (c, code) in citizens.iter().enumerate() {
        for n in 0..4 {
            let request = if n == 3 {
                requests::tari(&format!("fasc-tari-{c}"))
            } else {
                requests::school_fee(&format!("fasc-fee-{c}-{n}"))
            };
            let request = with_debtor(request, code);
            let mut client = app.notices().await?;
            creations.spawn(async move {
                let position = client.create_debt_position(request).await?.into_inner();
                anyhow::Ok((c, n, position))
            });
        }
    }
    // A company's position: legal entities have no Fascicolo.
    let mut company = requests::school_fee("fasc-company");
    if let Some(debtor) = company.debtor.as_mut() {
        debtor.r#type = pb::EntityType::G as i32;
        debtor.fiscal_code = "12345678903".to_owned();
    }
    create(&app, company).await?;
    let mut positions = std::collections::HashMap::new();
    while let Some(created) = creations.join_next().await {
        let (c, n, position) = created??;
        positions.insert((c, n), position);
    }

    // Citizen 0 pays a fee, then pays it again; citizen 1's TARI subject changes; citizen
    // 2's first fee is cancelled.
    let paid = positions[&(0, 0)].payment_options[0].installments[0].clone();
    pay(&app, &paid, "fasc-receipt-1").await?;
    pay(&app, &paid, "fasc-receipt-2").await?;
    // Citizen 3 pays the TARI in one go: the plan's three notices can no longer be paid.
    let tari3 = positions[&(3, 3)].clone();
    pay(
        &app,
        &tari3.payment_options[0].installments[0],
        "fasc-receipt-3",
    )
    .await?;
    let mut notices = app.notices().await?;
    notices
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "fasc-update-1".to_owned(),
            id: positions[&(1, 3)].id.clone(),
            description: Some("TARI 2026 utenza domestica (rettifica)".to_owned()),
            ..Default::default()
        })
        .await?;
    let cancelled = &positions[&(2, 0)];
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "fasc-cancel-1".to_owned(),
            id: cancelled.id.clone(),
            reason: "annullato in autotutela".to_owned(),
        })
        .await?;

    // 4 x 7 notices issued, a payment, a refund, 4 notices changed, one cancellation, a
    // payment closing 3 notices.
    let expected = 28 + 1 + 1 + 4 + 1 + 1 + 3;
    eventually("every event at the Fascicolo", || {
        fake.accepted_count() >= expected
    })
    .await?;
    eventually("the outbox drained", || true).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_states(&app).await? != (0, i64::try_from(expected)?, 0) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "outbox: {:?}",
            outbox_states(&app).await?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.accepted_count(), expected, "nothing delivered twice");
    {
        let state = fake.state();
        assert!(state.violations.is_empty(), "{:?}", state.violations);
        assert_eq!(
            state.max_in_flight_per_citizen, 1,
            "one call at a time per citizen"
        );
        let seen: HashSet<&str> = state.accepted.iter().map(|a| a.citizen.as_str()).collect();
        assert_eq!(
            seen,
            citizens.iter().map(String::as_str).collect::<HashSet<_>>(),
            "the company is never pushed"
        );
        assert!(state.calls.iter().all(|c| c.events <= 500));
    }
    for code in &citizens {
        let sequences = fake.sequences(code);
        let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(sequences, expected, "in sequence order, no gap");
    }
    assert_eq!(
        kinds(&fake, &citizens[0]),
        [
            vec!["notice_issued"; 7],
            vec!["payment_received", "refund_due"]
        ]
        .concat()
    );
    assert_eq!(
        kinds(&fake, &citizens[1]),
        [vec!["notice_issued"; 7], vec!["notice_changed"; 4]].concat()
    );
    assert_eq!(
        kinds(&fake, &citizens[2]),
        [vec!["notice_issued"; 7], vec!["notice_cancelled"]].concat()
    );

    assert_eq!(
        kinds(&fake, &citizens[3]),
        [
            vec!["notice_issued"; 7],
            vec!["payment_received"],
            vec!["notice_changed"; 3]
        ]
        .concat()
    );
    let closed: Vec<(String, i32)> = fake.history(&citizens[3])[8..]
        .iter()
        .filter_map(|a| match &a.event.event {
            Some(fpb::citizen_event::Event::NoticeChanged(n)) => {
                Some((n.notice_number.clone(), n.state))
            }
            _ => None,
        })
        .collect();
    let plan3: Vec<(String, i32)> = tari3.payment_options[1]
        .installments
        .iter()
        .map(|i| (i.notice_number.clone(), fpb::NoticeState::Unpayable as i32))
        .collect();
    assert_eq!(closed, plan3);

    // What the citizen sees is what incasso holds.
    let history = fake.history(&citizens[0]);
    let Some(fpb::citizen_event::Event::PaymentReceived(payment)) = &history[7].event.event else {
        panic!("{:?}", history[7]);
    };
    assert_eq!(payment.notice_number, paid.notice_number);
    assert_eq!(payment.receipt_id, "fasc-receipt-1");
    assert_eq!(payment.amount_cents, 46500);
    assert_eq!(payment.debt_position_id, positions[&(0, 0)].id);
    let Some(fpb::citizen_event::Event::RefundDue(refund)) = &history[8].event.event else {
        panic!("{:?}", history[8]);
    };
    assert_eq!(refund.receipt_id, "fasc-receipt-2");
    assert_eq!(refund.reason, fpb::RefundReason::DoublePayment as i32);
    let tari = &positions[&(1, 3)];
    let plan = &tari.payment_options[1];
    let issued: Vec<fpb::Notice> = fake
        .history(&citizens[1])
        .into_iter()
        .filter_map(|a| match a.event.event {
            Some(fpb::citizen_event::Event::NoticeIssued(n)) if n.debt_position_id == tari.id => {
                Some(n)
            }
            _ => None,
        })
        .collect();
    let second = issued
        .iter()
        .find(|n| n.notice_number == plan.installments[1].notice_number)
        .expect("the plan's second instalment");
    assert_eq!(second.payment_option_label, "Tre rate");
    assert_eq!((second.installment_index, second.installment_count), (2, 3));
    assert_eq!(second.amount_cents, 10000);
    assert_eq!(second.due_date, "2026-09-30");
    assert_eq!(second.creditor_name, "Comune di Milano");
    assert_eq!(second.kind, fpb::DebtKind::Tari as i32);
    assert_eq!(
        second.qr_payload,
        format!("PAGOPA|002|{}|{MILANO}|10000", second.notice_number)
    );
    let changed = fake.history(&citizens[1]);
    let Some(fpb::citizen_event::Event::NoticeChanged(change)) = &changed[7].event.event else {
        panic!("{:?}", changed[7]);
    };
    assert_eq!(change.description, "TARI 2026 utenza domestica (rettifica)");
    let history = fake.history(&citizens[2]);
    let Some(fpb::citizen_event::Event::NoticeCancelled(cancel)) = &history[7].event.event else {
        panic!("{:?}", history[7]);
    };
    assert_eq!(cancel.debt_position_id, cancelled.id);
    assert_eq!(
        cancel.notice_numbers,
        vec![
            cancelled.payment_options[0].installments[0]
                .notice_number
                .clone()
        ]
    );
    app.stop().await
}

async fn an_outage_is_recovered_with_nothing_lost_or_duplicated(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeFascicolo::start().await?;
    fake.state().behaviour.down = Some(Code::Unavailable);
    let app = spawn(engine, &fake).await?;
    let citizens: Vec<String> = (10..12).map(citizen_code).collect();
    for (c, code) in citizens.iter().enumerate() {
        create(&app, with_debtor(requests::tari(&format!("out-{c}")), code)).await?;
        create(
            &app,
            with_debtor(requests::school_fee(&format!("out-fee-{c}")), code),
        )
        .await?;
    }
    // The relay keeps trying, and gives up on nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempts = app
            .query_i64(&format!(
                "SELECT CAST(COALESCE(MAX(attempts), 0) AS BIGINT) FROM outbox_event \
                 WHERE topic = '{FASCICOLO_CITIZEN}' AND state = 'pending'"
            ))
            .await?;
        if attempts >= 3 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outbox_states(&app).await?.2, 0, "no dead letter");
    assert_eq!(fake.accepted_count(), 0);
    {
        // Back, but slow to recover: a deadline and an overload first.
        let mut state = fake.state();
        state.behaviour.down = None;
        state.behaviour.script = [
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Unavailable,
        ]
        .into();
    }
    eventually("every event delivered", || fake.accepted_count() >= 10).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_states(&app).await? != (0, 10, 0) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{:?}",
            outbox_states(&app).await?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let state = fake.state();
        assert_eq!(state.accepted.len(), 10);
        let ids: HashSet<&str> = state.accepted.iter().map(|a| a.event_id.as_str()).collect();
        assert_eq!(ids.len(), 10, "nothing duplicated");
        assert!(
            state
                .calls
                .iter()
                .filter(|c| c.status == Some(Code::Unavailable))
                .count()
                >= 3
        );
    }
    for code in &citizens {
        assert_eq!(fake.sequences(code), vec![1, 2, 3, 4, 5]);
    }
    app.stop().await
}

async fn a_gap_report_makes_incasso_resend(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeFascicolo::start().await?;
    let app = spawn(engine, &fake).await?;
    let code = citizen_code(20);
    for n in 0..3 {
        create(
            &app,
            with_debtor(requests::school_fee(&format!("gap-{n}")), &code),
        )
        .await?;
    }
    eventually("three events", || fake.accepted_count() == 3).await?;
    let first_ids: Vec<String> = fake
        .history(&code)
        .iter()
        .map(|a| a.event_id.clone())
        .collect();
    // The Fascicolo restores a backup that lacks the citizen's events 2 and 3.
    fake.forget_from(&code, 2);
    create(&app, with_debtor(requests::school_fee("gap-3"), &code)).await?;
    eventually("the events resent", || fake.accepted_count() == 6).await?;
    assert_eq!(fake.sequences(&code), vec![1, 2, 3, 2, 3, 4]);
    let history = fake.history(&code);
    assert_eq!(
        history[3].event_id, first_ids[1],
        "a resent event keeps its id"
    );
    assert_eq!(history[4].event_id, first_ids[2]);
    assert!(fake.state().violations.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_states(&app).await? != (0, 4, 0) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{:?}",
            outbox_states(&app).await?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await
}

async fn refused_events_wait_as_dead_letters_until_replayed(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeFascicolo::start().await?;
    let refused = citizen_code(31);
    let fine = citizen_code(30);
    fake.state()
        .behaviour
        .refuse_citizens
        .insert(refused.clone());
    let app = spawn(engine, &fake).await?;
    for n in 0..2 {
        create(
            &app,
            with_debtor(requests::school_fee(&format!("dead-ok-{n}")), &fine),
        )
        .await?;
        create(
            &app,
            with_debtor(requests::school_fee(&format!("dead-ko-{n}")), &refused),
        )
        .await?;
    }
    // The refusal of one citizen's event does not hold back the other's.
    eventually("the accepted citizen's events", || {
        fake.sequences(&fine) == vec![1, 2]
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = app.store.outbox_dead(FASCICOLO_CITIZEN).await?;
        if dead.len() == 2 {
            break dead;
        }
        anyhow::ensure!(Instant::now() < deadline, "dead letters: {dead:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for event in &dead {
        let error = event.last_error.clone().unwrap_or_default();
        assert!(error.contains("InvalidArgument"), "{error}");
        assert!(
            !error.contains(&refused),
            "no fiscal code in the outbox: {error}"
        );
    }
    // A set-up fault: every call refused.
    fake.state().behaviour.down = Some(Code::PermissionDenied);
    create(&app, with_debtor(requests::school_fee("dead-ok-2"), &fine)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.store.outbox_dead(FASCICOLO_CITIZEN).await?.len() != 3 {
        anyhow::ensure!(Instant::now() < deadline, "no third dead letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let mut state = fake.state();
        state.behaviour.down = None;
        state.behaviour.refuse_citizens.clear();
    }
    assert_eq!(app.store.outbox_replay_dead(FASCICOLO_CITIZEN).await?, 3);
    eventually("the replayed events", || {
        fake.sequences(&refused) == vec![1, 2] && fake.sequences(&fine) == vec![1, 2, 3]
    })
    .await?;
    assert!(app.store.outbox_dead(FASCICOLO_CITIZEN).await?.is_empty());
    app.stop().await
}

async fn without_a_url_nothing_is_queued(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let position = create(&app, requests::tari("no-url")).await?;
    app.notices()
        .await?
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "no-url-cancel".to_owned(),
            id: position.id,
            reason: "errore".to_owned(),
        })
        .await?;
    assert_eq!(
        app.query_i64(&format!(
            "SELECT COUNT(*) FROM outbox_event WHERE topic = '{FASCICOLO_CITIZEN}'"
        ))
        .await?,
        0
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM citizen_sequence")
            .await?,
        0
    );
    assert!(app.store.resync_citizen(&citizen_code(1)).await.is_err());
    app.stop().await
}

async fn resync_queues_a_citizens_whole_picture_again(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeFascicolo::start().await?;
    let app = spawn(engine, &fake).await?;
    let code = citizen_code(40);
    let other = citizen_code(41);
    let fee = create(&app, with_debtor(requests::school_fee("resync-fee"), &code)).await?;
    create(&app, with_debtor(requests::tari("resync-tari"), &code)).await?;
    create(
        &app,
        with_debtor(requests::school_fee("resync-other"), &other),
    )
    .await?;
    pay(
        &app,
        &fee.payment_options[0].installments[0],
        "resync-receipt",
    )
    .await?;
    if let Err(error) = eventually("the first picture", || fake.accepted_count() == 7).await {
        let dead = app.store.outbox_dead(FASCICOLO_CITIZEN).await?;
        anyhow::bail!(
            "{error}: accepted {}, outbox {:?}, dead {dead:?}",
            fake.accepted_count(),
            outbox_states(&app).await?
        );
    }

    // An invalid code is refused naming the field, never echoing the code.
    let error = app
        .store
        .resync_citizen("RSSMRA80A01F205Y")
        .await
        .expect_err("a wrong check character");
    assert!(error.to_string().contains("citizen"), "{error}");
    assert!(!error.to_string().contains("RSSMRA80A01F205Y"), "{error}");

    assert_eq!(app.store.resync_citizen(&code).await?, 6);
    eventually("the picture again", || fake.accepted_count() == 13).await?;
    assert_eq!(
        fake.sequences(&code),
        (1..=12).collect::<Vec<u64>>(),
        "numbered after what was sent"
    );
    let again: Vec<fpb::citizen_event::Event> = fake.history(&code)[6..]
        .iter()
        .filter_map(|a| a.event.event.clone())
        .collect();
    let paid_state = again.iter().find_map(|e| match e {
        fpb::citizen_event::Event::NoticeIssued(n)
            if n.notice_number == fee.payment_options[0].installments[0].notice_number =>
        {
            Some(n.state)
        }
        _ => None,
    });
    assert_eq!(paid_state, Some(fpb::NoticeState::Paid as i32));
    // Position by position: the fee's notice and its payment, then the TARI's four notices.
    let picture: Vec<&str> = fake.history(&code)[6..].iter().map(|a| a.kind).collect();
    assert_eq!(
        picture,
        [
            vec!["notice_issued", "payment_received"],
            vec!["notice_issued"; 4]
        ]
        .concat()
    );

    // Every citizen, a page of one at a time, resumable from each page's token.
    let first = app.store.resync_citizens_page(None, 1).await?;
    assert_eq!(first.citizens, 1);
    let second = app
        .store
        .resync_citizens_page(first.last.as_deref(), 1)
        .await?;
    assert_eq!(second.citizens, 1);
    assert_ne!(first.last, second.last);
    let end = app
        .store
        .resync_citizens_page(second.last.as_deref(), 1)
        .await?;
    assert_eq!((end.citizens, end.last), (0, None));
    assert_eq!(first.events + second.events, 6 + 1);
    eventually("both pictures again", || fake.accepted_count() == 20).await?;
    assert_eq!(fake.sequences(&other), vec![1, 2]);
    app.stop().await
}
