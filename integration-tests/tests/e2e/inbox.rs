//! The receipt inbox: a receipt whose booking fails for a reason retrying at once cannot fix
//! is kept (parked), acknowledged, and booked exactly once by the background worker after a
//! fix; a failing receipt never fails the others of its group commit; a payment's day is its
//! Rome day whatever offset paymentDateTime is written with.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{
    self as node, Caller, ReceiptSpec, element_text, post, validate,
};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_store::receipts::park::RetryOutcome;

use crate::on_both_engines;

on_both_engines!(
    a_receipt_whose_booking_fails_is_parked_acknowledged_and_booked_once_after_a_fix,
    one_failing_receipt_never_fails_the_others_of_its_batch,
    the_payment_day_is_the_rome_day_of_payment_date_time,
);

const XML: &str = "text/xml; charset=utf-8";

fn receipt(installment: &pb::Installment, receipt_id: &str, paid: &str) -> ReceiptSpec {
    ReceiptSpec::paying(installment, receipt_id, "BCITITMM", paid)
}

/// Delivers `spec` and returns the answer's outcome.
async fn deliver(app: &TestApp, spec: &ReceiptSpec) -> anyhow::Result<String> {
    let request = node::send_rt(&Caller::default(), true, spec);
    validate(&request)?;
    let reply = post(app.soap_addr, Some("paSendRTV2"), XML, request.as_bytes()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    validate(&reply.body)?;
    Ok(element_text(&reply.body, "outcome")
        .unwrap_or_default()
        .to_owned())
}

async fn execute(app: &TestApp, sql: &str) -> anyhow::Result<()> {
    app.execute_sql(sql).await.map(|_| ())
}

async fn scalar_i64(app: &TestApp, sql: &str) -> anyhow::Result<i64> {
    app.query_i64(sql).await
}

async fn classification(app: &TestApp, receipt_id: &str) -> anyhow::Result<String> {
    let db = app.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT classification FROM receipt WHERE receipt_id = '{receipt_id}'"),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("receipt {receipt_id} not stored"))?;
    db.close().await?;
    Ok(row.try_get_by_index(0)?)
}

async fn school_fee(app: &TestApp, request_id: &str) -> anyhow::Result<pb::Installment> {
    Ok(app
        .notices()
        .await?
        .create_debt_position(requests::school_fee(request_id))
        .await?
        .into_inner()
        .payment_options[0]
        .installments[0]
        .clone())
}

async fn a_receipt_whose_booking_fails_is_parked_acknowledged_and_booked_once_after_a_fix(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(engine, |s| {
        s.parked_retry_interval = Duration::from_millis(200);
    })
    .await?;
    let fee = school_fee(&app, "inbox-parked").await?;
    // Stored data an operator (or a bug) broke: the position can no longer be read.
    execute(
        &app,
        &format!(
            "UPDATE installment SET state = 'bogus' WHERE notice_number = '{}'",
            fee.notice_number
        ),
    )
    .await?;
    let spec = receipt(&fee, "parked-receipt-1", "2026-12-01T10:15:00");
    assert_eq!(deliver(&app, &spec).await?, "OK", "the Node hears OK");
    assert_eq!(classification(&app, "parked-receipt-1").await?, "parked");
    let parked = app.store.list_parked_receipts(false).await?;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].receipt_id, "parked-receipt-1");
    assert_eq!(parked[0].notice_number, fee.notice_number);
    assert_eq!(parked[0].payment_amount_cents, 46500);
    assert!(
        parked[0].reason.contains("cannot be read"),
        "{}",
        parked[0].reason
    );
    let booked_entries = "SELECT COUNT(*) FROM ledger_entry WHERE receipt_id = 'parked-receipt-1'";
    assert_eq!(
        scalar_i64(&app, booked_entries).await?,
        0,
        "nothing booked yet"
    );
    // A redelivery of a parked receipt is a redelivery: OK, nothing new.
    assert_eq!(deliver(&app, &spec).await?, "OK");
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT COUNT(*) FROM receipt WHERE receipt_id = 'parked-receipt-1'"
        )
        .await?,
        1
    );
    // Retried before the fix: still parked, the attempt counted.
    let retried = app
        .store
        .retry_parked_receipts(Some(&[parked[0].id]))
        .await?;
    assert!(
        matches!(&retried[0].1, RetryOutcome::StillParked(reason) if reason.contains("cannot be read")),
        "{retried:?}"
    );
    assert_eq!(app.store.list_parked_receipts(false).await?[0].attempts, 1);

    // The fix; the background worker books it at its next attempt (5 to 7.5 s later).
    execute(
        &app,
        &format!(
            "UPDATE installment SET state = 'unpaid' WHERE notice_number = '{}'",
            fee.notice_number
        ),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while app.store.count_parked_receipts().await? > 0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the worker did not book the parked receipt"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(classification(&app, "parked-receipt-1").await?, "settled");
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT COUNT(*) FROM ledger_entry WHERE receipt_id = 'parked-receipt-1' \
             AND event_type = 'receipt_paid'"
        )
        .await?,
        1
    );
    let state = app
        .notices()
        .await?
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::NoticeNumber(
                fee.notice_number.clone(),
            )),
            creditor_fiscal_code: MILANO.to_owned(),
        })
        .await?
        .into_inner()
        .state;
    assert_eq!(state, pb::DebtPositionState::Paid as i32);
    // Booked exactly once: another retry finds nothing to do, a redelivery books nothing.
    let history = app.store.list_parked_receipts(true).await?;
    assert_eq!(history.len(), 1);
    assert!(history[0].booked_at.is_some());
    assert_eq!(
        app.store
            .retry_parked_receipts(Some(&[history[0].id]))
            .await?[0]
            .1,
        RetryOutcome::NotParked
    );
    assert_eq!(deliver(&app, &spec).await?, "OK");
    assert_eq!(scalar_i64(&app, booked_entries).await?, 1);
    // The chain is intact.
    let verified = app
        .ledger()
        .await?
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    app.stop().await
}

async fn one_failing_receipt_never_fails_the_others_of_its_batch(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut fees = Vec::new();
    for i in 0..24 {
        fees.push(school_fee(&app, &format!("inbox-batch-{i}")).await?);
    }
    execute(
        &app,
        &format!(
            "UPDATE installment SET state = 'bogus' WHERE notice_number = '{}'",
            fees[7].notice_number
        ),
    )
    .await?;
    // All at once, so that they share group commits.
    let mut deliveries = Vec::new();
    for (i, fee) in fees.iter().enumerate() {
        let spec = receipt(fee, &format!("batch-receipt-{i}"), "2026-12-01T10:15:00");
        let soap = app.soap_addr;
        deliveries.push(tokio::spawn(async move {
            let request = node::send_rt(&Caller::default(), i % 2 == 0, &spec);
            let action = if i % 2 == 0 { "paSendRTV2" } else { "paSendRT" };
            post(soap, Some(action), XML, request.as_bytes()).await
        }));
    }
    for delivery in deliveries {
        let reply = delivery.await??;
        assert_eq!(
            element_text(&reply.body, "outcome"),
            Some("OK"),
            "{}",
            reply.body
        );
    }
    for i in 0..24 {
        let expected = if i == 7 { "parked" } else { "settled" };
        assert_eq!(
            classification(&app, &format!("batch-receipt-{i}")).await?,
            expected,
            "receipt {i}"
        );
    }
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT COUNT(*) FROM ledger_entry WHERE event_type = 'receipt_paid'"
        )
        .await?,
        23
    );
    assert_eq!(app.store.count_parked_receipts().await?, 1);
    app.stop().await
}

async fn the_payment_day_is_the_rome_day_of_payment_date_time(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let mut fees = Vec::new();
    for i in 0..2 {
        let mut request = requests::school_fee(&format!("inbox-day-{i}"));
        let installment = &mut request.payment_options[0].installments[0];
        installment.due_date = "2027-07-31".to_owned();
        installment.expiry_date = "2027-07-31".to_owned();
        fees.push(
            notices
                .create_debt_position(request)
                .await?
                .into_inner()
                .payment_options[0]
                .installments[0]
                .clone(),
        );
    }
    // 22:30 UTC on 31 July is 00:30 on 1 August in Rome (UTC+2): a day past the expiry.
    let late = receipt(&fees[0], "day-receipt-late", "2027-07-31T22:30:00Z");
    assert_eq!(deliver(&app, &late).await?, "OK");
    assert_eq!(
        classification(&app, "day-receipt-late").await?,
        "settled_late"
    );
    // 23:30 at +02:00 is still 31 July in Rome; so is 21:30 UTC.
    let in_time = receipt(&fees[1], "day-receipt-in-time", "2027-07-31T23:30:00+02:00");
    assert_eq!(deliver(&app, &in_time).await?, "OK");
    assert_eq!(
        classification(&app, "day-receipt-in-time").await?,
        "settled"
    );
    app.stop().await
}
