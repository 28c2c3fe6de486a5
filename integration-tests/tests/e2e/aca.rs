//! The Stand-In archive relay against a local fake that speaks paCreatePosition.

use std::time::{Duration, Instant};

use incasso_grpc::pb;
use incasso_integration_tests::fake_aca::FakeAca;
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};
use incasso_node::aca::{AcaConfig, AcaRelay};

use crate::on_both_engines;

on_both_engines!(
    positions_reach_the_stand_in_archive_through_outages,
    refused_positions_wait_as_dead_letters_until_replayed,
    two_relays_never_send_an_event_twice,
);

fn fast(fake: &FakeAca) -> AcaConfig {
    AcaConfig {
        poll_interval: Duration::from_millis(20),
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        max_attempts: 50,
        ..AcaConfig::new(&fake.base_url(), Some("test-key".to_owned()))
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn positions_reach_the_stand_in_archive_through_outages(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    fake.with(|s| s.behaviour.down_for = 3);
    let config = fast(&fake);
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
        assert!(s.refused >= 3, "the outage was met");
        assert!(s.keys.iter().all(|k| k == "test-key"));
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
        assert_eq!(single["expirationDate"], "2026-07-31T23:59:59+02:00");
    });
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "aca-tari-cancel".to_owned(),
            id: tari.id.clone(),
            reason: "autotutela".to_owned(),
        })
        .await?;
    eventually("the cancellation in ACA", || {
        fake.with(|s| s.accepted.len()) == 8
    })
    .await?;
    fake.with(|s| {
        assert!(
            s.accepted[4..].iter().all(|b| b["amount"] == 0),
            "amount 0 closes"
        )
    });
    let fee = notices
        .create_debt_position(requests::school_fee("aca-fee"))
        .await?
        .into_inner();
    eventually("the fee in ACA", || fake.with(|s| s.accepted.len()) == 9).await?;
    fake.with(|s| {
        let last = s.accepted.last().expect("the fee");
        assert_eq!(
            last["iuv"],
            fee.payment_options[0].installments[0].iuv.as_str()
        );
        assert_eq!(last["payStandIn"], true);
        assert!(
            last["postalIban"]
                .as_str()
                .is_some_and(|i| &i[5..10] == "07601")
        );
    });
    app.stop().await
}

async fn refused_positions_wait_as_dead_letters_until_replayed(
    engine: Engine,
) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    let config = fast(&fake);
    let app = TestApp::spawn_with(engine, |s| s.aca = Some(config)).await?;
    let mut notices = app.notices().await?;
    // ACA will refuse the first IUV the service issues.
    let fee = notices
        .create_debt_position(requests::school_fee("aca-dead"))
        .await?
        .into_inner();
    let iuv = fee.payment_options[0].installments[0].iuv.clone();
    fake.with(|s| s.behaviour.refuse_iuv = Some(iuv.clone()));
    // The event may already be delivered if the relay was quicker; create one more to be sure.
    let fee = notices
        .create_debt_position(requests::school_fee("aca-dead-2"))
        .await?
        .into_inner();
    let iuv = fee.payment_options[0].installments[0].iuv.clone();
    fake.with(|s| s.behaviour.refuse_iuv = Some(iuv.clone()));
    let store = app.store.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
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
    fake.with(|s| s.behaviour.refuse_iuv = None);
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

async fn two_relays_never_send_an_event_twice(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeAca::start().await?;
    let config = fast(&fake);
    let app = TestApp::spawn_with(engine, |s| s.aca = Some(config.clone())).await?;
    // A second replica's relay on the same database.
    let db = incasso_store::db::connect(&app.database_url, 4).await?;
    let replica = incasso_store::Store::open(
        db,
        app.store.registry().clone(),
        incasso_store::PrivacyKeys::development(),
        &incasso_store::IuvFloors::default(),
    )
    .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(AcaRelay::new(replica, config)?.run(async {
        let _ = stopped.await;
    }));
    let mut notices = app.notices().await?;
    let items: Vec<_> = (0..40)
        .map(|i| requests::school_fee(&format!("aca-many-{i}")))
        .collect();
    let mut results = notices
        .bulk_create_debt_positions(tokio_stream::iter(items))
        .await?
        .into_inner();
    while results.message().await?.is_some() {}
    eventually("forty positions in ACA", || {
        fake.with(|s| s.accepted.len()) >= 40
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.with(|s| {
        let mut iuvs: Vec<_> = s
            .accepted
            .iter()
            .map(|b| b["iuv"].as_str().unwrap_or_default().to_owned())
            .collect();
        iuvs.sort();
        iuvs.dedup();
        assert_eq!(iuvs.len(), 40);
        assert_eq!(s.accepted.len(), 40, "no event was delivered twice");
    });
    let _ = stop.send(());
    second.await?;
    app.stop().await
}
