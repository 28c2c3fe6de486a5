//! Reporting flows over REST against a fake FdR organization API that validates like the
//! real one: every page of flows and payments read, a second poll fetching nothing again,
//! every revision kept with the latest one labelled, one replica polling a creditor at a
//! time, a 5xx mid-flow leaving nothing half-imported, a wrong subscription key named, a flow
//! near the end of the API's window warned about, and `incasso serve` polling on its own.

use std::time::Duration;

use incasso_domain::reconciliation::{Label, Subject};
use incasso_fdr::{CreditorPoll, FdrConfig, FdrPoller, PollReport, PollSummary};
use incasso_integration_tests::fake_fdr::{
    CallKind, FakeFdr, FakeFlow, FakePayment, SUBSCRIPTION_KEY,
};
use incasso_integration_tests::{Engine, TestApp};
use incasso_store::reconciliation::FdrRevision;
use time::OffsetDateTime;

use crate::on_both_engines;

const MILANO: &str = "01199250158";
const PSP: &str = "ABI03069";

fn config(fake: &FakeFdr, key: &str) -> FdrConfig {
    let mut config = FdrConfig::new(&fake.base_url(), Some(key.to_owned()));
    // Small pages, so a handful of flows and payments take several.
    config.page_size = 2;
    config.client.attempts = 3;
    config.client.retry_base = Duration::from_millis(10);
    config.client.retry_max = Duration::from_millis(50);
    config.client.request_timeout = Duration::from_secs(5);
    config.poll_interval = Duration::from_millis(200);
    config
}

fn ago(hours: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    (now - time::Duration::hours(hours))
        .replace_nanosecond(0)
        .unwrap_or(now)
}

fn payments(prefix: &str, count: usize, cents: i64) -> Vec<FakePayment> {
    (1..=count)
        .map(|n| {
            FakePayment::executed(
                &format!("{prefix}{n:03}"),
                &format!("IUR{prefix}{n}"),
                cents,
                ago(30),
            )
        })
        .collect()
}

fn milan(report: &PollReport) -> &CreditorPoll {
    &report
        .creditors
        .iter()
        .find(|(creditor, _)| creditor == MILANO)
        .expect("Milan polled")
        .1
}

fn summary(poll: &CreditorPoll) -> &PollSummary {
    match poll {
        CreditorPoll::Polled(summary) | CreditorPoll::Failed { summary, .. } => summary,
        CreditorPoll::LeaseHeld => panic!("not polled: lease held"),
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.query_i64(sql).await.unwrap()
}

async fn labelled(app: &TestApp) -> Vec<(String, Option<Label>)> {
    app.store
        .reconciliation_assessments(MILANO)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(subject, assessment)| match subject {
            Subject::Transfer(key) => Some((key.to_string(), assessment.label)),
            _ => None,
        })
        .collect()
}

async fn every_page_is_read_and_a_second_poll_fetches_nothing(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeFdr::start().await?;
    let mut first = FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0001",
        PSP,
        1,
        ago(48),
        payments("1100", 5, 1_050),
    );
    // A payment without RPT and one in Stand-In, as the platform reports them.
    first.payments[3].pay_status = "NO_RPT";
    first.payments[4].pay_status = "STAND_IN";
    first.payments[4].id_transfer = 2;
    fake.publish(first.clone());
    fake.publish(FakeFlow::new(
        MILANO,
        "2026-12-02ABI03069-0002",
        PSP,
        1,
        ago(24),
        payments("1200", 1, 99_999),
    ));
    let last = FakeFlow::new(
        MILANO,
        "2026-12-03ABI03069-0003",
        PSP,
        1,
        ago(2),
        payments("1300", 2, 1),
    );
    fake.publish(last.clone());
    // Another creditor's flow is never asked for Milan.
    fake.publish(FakeFlow::new(
        "08911820960",
        "2026-12-03ABI03069-0009",
        PSP,
        1,
        ago(2),
        payments("1900", 1, 500),
    ));

    let poller = FdrPoller::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let report = poller.poll_once().await;
    let done = summary(milan(&report));
    assert!(
        matches!(milan(&report), CreditorPoll::Polled(_)),
        "{report:?}"
    );
    assert_eq!(
        (done.listed, done.imported.len(), done.failed.len()),
        (3, 3, 0),
        "{done:?}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM recon_flow WHERE creditor_fiscal_code = '01199250158'"
        )
        .await,
        3
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_flow_line").await, 9);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM recon_flow WHERE bic = 'BPPIITRRXXX'"
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &app,
            "SELECT CAST(SUM(total_cents) AS BIGINT) FROM recon_flow WHERE creditor_fiscal_code = '01199250158'"
        )
        .await,
        5 * 1_050 + 99_999 + 2
    );
    // Outcome codes as the contract numbers them: NO_RPT 9, STAND_IN 4.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM recon_flow_line WHERE iuv = '1100004' AND outcome = 9"
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM recon_flow_line WHERE iuv = '1100005' AND outcome = 4 AND id_transfer = 2").await,
        1
    );
    // Lists in two pages of two; the five payments of the first flow in three pages.
    let (lists, first_pages) = fake.with(|s| {
        (
            s.answered(CallKind::List)
                .iter()
                .filter(|c| c.target.contains(MILANO))
                .count(),
            s.answered(CallKind::Payments)
                .iter()
                .filter(|c| c.target.contains(&first.fdr))
                .map(|c| c.target.clone())
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(lists, 2);
    assert_eq!(first_pages.len(), 3, "{first_pages:?}");
    assert!(first_pages[2].contains("page=3"), "{first_pages:?}");
    // No receipts: every reported transfer is IUV_NO_RT, the code-9 one included.
    let labels = labelled(&app).await;
    assert_eq!(labels.len(), 8, "{labels:?}");
    assert!(
        labels
            .iter()
            .all(|(_, label)| *label == Some(Label::IuvNoRt)),
        "{labels:?}"
    );
    assert_eq!(app.store.fdr_watermark(MILANO).await?, Some(last.published));

    let fetched = |s: &incasso_integration_tests::fake_fdr::FakeFdrState| {
        s.calls_of(CallKind::Header).len() + s.calls_of(CallKind::Payments).len()
    };
    let before = fake.with(|s| fetched(s));
    let documents = count(&app, "SELECT COUNT(*) FROM recon_document").await;
    let again = poller.poll_once().await;
    let done = summary(milan(&again));
    // Only the flow within the hour of overlap before the watermark is listed again, and
    // it is not fetched.
    assert_eq!(
        (done.listed, done.already_held, done.imported.len()),
        (1, 1, 0),
        "{done:?}"
    );
    assert_eq!(
        fake.with(|s| fetched(s)),
        before,
        "a second poll fetched flows again"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM recon_document").await,
        documents
    );
    app.stop().await
}

async fn every_revision_is_kept_and_the_latest_labels(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeFdr::start().await?;
    let fdr = "2026-12-01ABI03069-0042";
    fake.publish(FakeFlow::new(
        MILANO,
        fdr,
        PSP,
        1,
        ago(50),
        payments("4200", 2, 1_000),
    ));
    let poller = FdrPoller::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    poller.poll_once().await;
    assert_eq!(
        labelled(&app)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        ["4200001/IUR42001/1", "4200002/IUR42002/1"]
    );

    // Two revisions published before the next poll: the list shows only the third, the
    // second is read by number.
    fake.publish(FakeFlow::new(
        MILANO,
        fdr,
        PSP,
        2,
        ago(30),
        payments("4300", 1, 2_000),
    ));
    fake.publish(FakeFlow::new(
        MILANO,
        fdr,
        PSP,
        3,
        ago(20),
        payments("4400", 1, 2_000),
    ));
    let report = poller.poll_once().await;
    let done = summary(milan(&report));
    assert_eq!((done.listed, done.imported.len()), (1, 2), "{done:?}");
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM recon_flow WHERE flow_id = '{fdr}'")
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT CAST(SUM(revision) AS BIGINT) FROM recon_flow WHERE flow_id = '{fdr}'"
            )
        )
        .await,
        1 + 2 + 3
    );
    // Only the third revision's payment is labelled now; the first revision's keys left.
    assert_eq!(
        labelled(&app).await,
        [("4400001/IUR44001/1".to_owned(), Some(Label::IuvNoRt))]
    );

    // The same revision fetched again (its very bodies) stores nothing new.
    let client = incasso_fdr::FdrClient::new(config(&fake, SUBSCRIPTION_KEY).client)?;
    let header = client.flow_header(MILANO, fdr, 3, PSP).await?;
    let pages = client.flow_payments(MILANO, fdr, 3, PSP, 2).await?;
    let revision = FdrRevision {
        fdr: fdr.to_owned(),
        psp_id: PSP.to_owned(),
        revision: 3,
    };
    let outcome = app
        .store
        .import_fdr_rest_flow(MILANO, &revision, &header, &pages)
        .await?;
    assert!(outcome.already_imported, "{outcome:?}");
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM recon_flow WHERE flow_id = '{fdr}'")
        )
        .await,
        3
    );
    app.stop().await
}

async fn one_replica_polls_a_creditor_at_a_time(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeFdr::start().await?;
    fake.publish(FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0501",
        PSP,
        1,
        ago(5),
        payments("5100", 3, 700),
    ));
    fake.publish(FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0502",
        PSP,
        1,
        ago(4),
        payments("5200", 1, 700),
    ));
    // The list answers slowly, so both pollers are at it at the same time.
    fake.with(|s| s.behaviour.list_delay = Duration::from_millis(500));
    let one = FdrPoller::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let other = FdrPoller::new(app.replica().await?, config(&fake, SUBSCRIPTION_KEY))?;
    let (a, b) = tokio::join!(one.poll_creditor(MILANO), other.poll_creditor(MILANO));
    let held = [&a, &b]
        .iter()
        .filter(|p| matches!(p, CreditorPoll::LeaseHeld))
        .count();
    let polled = [&a, &b]
        .iter()
        .filter(|p| matches!(p, CreditorPoll::Polled(_)))
        .count();
    assert_eq!((held, polled), (1, 1), "{a:?} {b:?}");
    assert_eq!(fake.with(|s| s.calls_of(CallKind::List).len()), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_flow").await, 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_document").await, 2);
    // The lease was given back: the other replica polls next (and finds everything held).
    match other.poll_creditor(MILANO).await {
        CreditorPoll::Polled(summary) => {
            assert!(summary.imported.is_empty(), "{summary:?}");
            assert_eq!(summary.already_held, summary.listed, "{summary:?}");
        }
        poll => panic!("{poll:?}"),
    }
    app.stop().await
}

async fn a_failure_mid_flow_stores_nothing_of_it_and_the_next_poll_completes(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeFdr::start().await?;
    let early = FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0601",
        PSP,
        1,
        ago(10),
        payments("6100", 2, 300),
    );
    let broken = FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0602",
        PSP,
        1,
        ago(9),
        payments("6200", 5, 300),
    );
    fake.publish(early.clone());
    fake.publish(broken.clone());
    fake.with(|s| {
        // A burst of throttling on the first call, retried; then the broken flow's second
        // page of payments keeps failing.
        s.behaviour.script.push_back(429);
        s.behaviour.failing_payments_page = Some((broken.fdr.clone(), 2));
    });
    let poller = FdrPoller::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let report = poller.poll_once().await;
    let done = summary(milan(&report));
    assert_eq!(done.imported.len(), 1, "{done:?}");
    assert_eq!(done.failed.len(), 1, "{done:?}");
    assert_eq!(done.failed[0].revision.fdr, broken.fdr);
    assert!(
        done.failed[0].reason.contains("500"),
        "{}",
        done.failed[0].reason
    );
    let statuses: Vec<u16> = fake.with(|s| {
        s.calls_of(CallKind::List)
            .iter()
            .take(2)
            .map(|c| c.status)
            .collect()
    });
    assert_eq!(statuses, [429, 200]);
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM recon_flow WHERE flow_id = '{}'",
                broken.fdr
            )
        )
        .await,
        0
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_flow_line").await, 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_document").await, 1);
    assert_eq!(
        app.store.fdr_watermark(MILANO).await?,
        Some(early.published)
    );

    fake.with(|s| s.behaviour.failing_payments_page = None);
    let report = poller.poll_once().await;
    let done = summary(milan(&report));
    assert!(
        matches!(milan(&report), CreditorPoll::Polled(_)),
        "{report:?}"
    );
    assert_eq!((done.imported.len(), done.already_held), (1, 1), "{done:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_flow_line").await, 7);
    assert_eq!(
        app.store.fdr_watermark(MILANO).await?,
        Some(broken.published)
    );
    app.stop().await
}

async fn a_wrong_subscription_key_is_named(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeFdr::start().await?;
    fake.publish(FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0701",
        PSP,
        1,
        ago(3),
        payments("7100", 1, 100),
    ));
    let poller = FdrPoller::new(app.store.clone(), config(&fake, "not-the-key"))?;
    let report = poller.poll_once().await;
    match milan(&report) {
        CreditorPoll::Failed { reason, .. } => {
            assert!(reason.contains("subscription key"), "{reason}");
            assert!(reason.contains("401"), "{reason}");
        }
        poll => panic!("{poll:?}"),
    }
    assert!(report.has_failures());
    // Refused, not retried.
    assert_eq!(
        fake.with(|s| s
            .calls_of(CallKind::List)
            .iter()
            .map(|c| c.status)
            .collect::<Vec<_>>()),
        [401, 401]
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM recon_flow").await, 0);
    app.stop().await
}

async fn a_flow_near_the_end_of_the_window_is_warned_about(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeFdr::start().await?;
    let mut refused = FakeFlow::new(
        MILANO,
        "2026-11-07ABI03069-0801",
        PSP,
        1,
        ago(26 * 24),
        payments("8100", 2, 100),
    );
    refused.declared_count = Some(3);
    fake.publish(refused.clone());
    // Declaring 0.50 more than its payment: imported as declared, with a warning.
    let mut declaring = FakeFlow::new(
        MILANO,
        "2026-12-02ABI03069-0802",
        PSP,
        1,
        ago(24),
        payments("8200", 1, 100),
    );
    declaring.declared_sum_cents = Some(150);
    fake.publish(declaring);
    let poller = FdrPoller::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let report = poller.poll_once().await;
    let done = summary(milan(&report));
    assert_eq!(done.imported.len(), 1, "{done:?}");
    assert_eq!(done.failed.len(), 1, "{done:?}");
    assert!(
        done.failed[0].reason.contains("totPayments"),
        "{}",
        done.failed[0].reason
    );
    assert_eq!(done.imported[0].warnings.len(), 1, "{done:?}");
    assert!(
        done.imported[0].warnings[0].contains("+50 cents"),
        "{:?}",
        done.imported[0].warnings
    );
    assert_eq!(done.stale.len(), 1, "{done:?}");
    assert_eq!(done.stale[0].flow.fdr, refused.fdr);
    assert_eq!(done.stale[0].age_days, 26);
    // The refused flow holds the watermark, so it is asked for again next time.
    assert_eq!(app.store.fdr_watermark(MILANO).await?, None);
    app.stop().await
}

async fn serve_polls_when_a_url_is_configured(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeFdr::start().await?;
    fake.publish(FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-0901",
        PSP,
        1,
        ago(6),
        payments("9100", 3, 4_200),
    ));
    let fdr = config(&fake, SUBSCRIPTION_KEY);
    let app = TestApp::spawn_with(engine, move |settings| settings.fdr = Some(fdr)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(&app, "SELECT COUNT(*) FROM recon_flow_line").await < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poller imported nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It keeps polling (two creditors a poll), and fetches the flow only once.
    while fake.with(|s| s.calls_of(CallKind::List).len()) < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poller stopped polling"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.with(|s| s.calls_of(CallKind::Header).len()), 1);
    app.stop().await
}

on_both_engines!(
    every_page_is_read_and_a_second_poll_fetches_nothing,
    every_revision_is_kept_and_the_latest_labels,
    one_replica_polls_a_creditor_at_a_time,
    a_failure_mid_flow_stores_nothing_of_it_and_the_next_poll_completes,
    a_wrong_subscription_key_is_named,
    a_flow_near_the_end_of_the_window_is_warned_about,
    serve_polls_when_a_url_is_configured,
);

/// The lease as the store keeps it: held until it expires, then taken over, and the
/// stalled holder's writes refused.
async fn an_expired_lease_is_taken_over_and_the_stalled_holder_writes_nothing(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let replica = app.replica().await?;
    let (stalled, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    assert!(app.store.take_fdr_lease(MILANO, stalled, 300).await?);
    assert!(!replica.take_fdr_lease(MILANO, other, 60_000).await?);
    // Renewing one's own lease works.
    assert!(app.store.take_fdr_lease(MILANO, stalled, 300).await?);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(replica.take_fdr_lease(MILANO, other, 60_000).await?);
    let moved = ago(1);
    assert!(
        !app.store
            .record_fdr_poll(MILANO, stalled, Some(moved))
            .await?
    );
    assert_eq!(app.store.fdr_watermark(MILANO).await?, None);
    // Releasing someone else's lease does nothing.
    app.store.release_fdr_lease(MILANO, stalled).await?;
    assert!(!app.store.take_fdr_lease(MILANO, stalled, 300).await?);
    assert!(replica.record_fdr_poll(MILANO, other, Some(moved)).await?);
    assert_eq!(app.store.fdr_watermark(MILANO).await?, Some(moved));
    replica.release_fdr_lease(MILANO, other).await?;
    assert!(app.store.take_fdr_lease(MILANO, stalled, 300).await?);
    app.stop().await
}

on_both_engines!(an_expired_lease_is_taken_over_and_the_stalled_holder_writes_nothing);

/// The fake refuses what the real API refuses, so the poller's requests are checked.
#[tokio::test]
async fn the_fake_validates_like_the_api() -> anyhow::Result<()> {
    let fake = FakeFdr::start().await?;
    fake.publish(FakeFlow::new(
        MILANO,
        "2026-12-01ABI03069-1001",
        PSP,
        1,
        ago(3),
        payments("1010", 1, 100),
    ));
    let http = reqwest::Client::new();
    let get = |path: String, key: Option<&'static str>| {
        let mut request = http.get(format!("{}{path}", fake.base_url()));
        if let Some(key) = key {
            request = request.header("Ocp-Apim-Subscription-Key", key);
        }
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    let list = format!("/organizations/{MILANO}/fdrs");
    let key = Some(SUBSCRIPTION_KEY);
    assert_eq!(get(list.clone(), None).await?, 401);
    assert_eq!(get(list.clone(), Some("other")).await?, 401);
    assert_eq!(get(list.clone(), key).await?, 200);
    let old = incasso_fdr::client::query_instant(ago(31 * 24));
    for (query, status) in [
        ("?page=0".to_owned(), 400),
        ("?page=x".to_owned(), 400),
        ("?size=0".to_owned(), 400),
        ("?size=1001".to_owned(), 400),
        ("?size=1000&page=2".to_owned(), 200),
        ("?publishedGt=yesterday".to_owned(), 400),
        ("?flowDate=2026-13-01T00:00:00".to_owned(), 400),
        (format!("?publishedGt={old}"), 400),
        ("?pspId=".to_owned() + &"A".repeat(36), 400),
    ] {
        assert_eq!(get(format!("{list}{query}"), key).await?, status, "{query}");
    }
    let revision = format!("/organizations/{MILANO}/fdrs/2026-12-01ABI03069-1001/revisions");
    assert_eq!(get(format!("{revision}/1/psps/{PSP}"), key).await?, 200);
    assert_eq!(get(format!("{revision}/0/psps/{PSP}"), key).await?, 400);
    assert_eq!(get(format!("{revision}/2/psps/{PSP}"), key).await?, 404);
    assert_eq!(
        get(format!("{revision}/1/psps/{PSP}/payments?page=0"), key).await?,
        400
    );
    assert_eq!(
        get(format!("{revision}/1/psps/{PSP}/payments?size=5000"), key).await?,
        200
    );
    Ok(())
}
