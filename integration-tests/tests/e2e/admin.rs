//! The admin listener as Kubernetes and Prometheus use it: `/livez`, `/readyz` following the
//! database and its schema, gRPC health following `/readyz`, and `/metrics` showing, from the
//! database, a receipt parked and a dead letter made through the real interfaces.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

use incasso_integration_tests::fake_aca::{Answer, FakeAca, SUBSCRIPTION_KEY};
use incasso_integration_tests::node_simulator::{self as node, Caller, HttpReply, ReceiptSpec};
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};
use incasso_relay::aca::AcaConfig;

use crate::on_both_engines;

on_both_engines!(
    a_migrated_replica_is_live_ready_and_serving,
    readiness_follows_the_migrations_table,
    a_replica_told_so_stays_ready_on_a_newer_releases_schema,
    metrics_show_a_parked_receipt_and_a_dead_letter,
    the_outbox_age_counts_from_when_an_event_was_queued,
);

/// GETs `path` from the admin listener.
async fn get(app: &TestApp, path: &str) -> anyhow::Result<HttpReply> {
    node::request(app.admin_addr, "GET", path, &[], b"").await
}

/// gRPC health of `service` ("" for the whole server): true when SERVING.
async fn grpc_serving(app: &TestApp, service: &str) -> anyhow::Result<bool> {
    Ok(app.health_and_reflection(service).await?.0)
}

/// Waits until gRPC health of `service` is `serving` (the server re-checks every 100 ms here).
async fn grpc_health_becomes(app: &TestApp, service: &str, serving: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while grpc_serving(app, service).await? != serving {
        anyhow::ensure!(
            Instant::now() < deadline,
            "gRPC health of '{service}' never became serving={serving}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn spawn(engine: Engine) -> anyhow::Result<TestApp> {
    TestApp::spawn_with(engine, |s| {
        s.readiness_interval = Duration::from_millis(100);
    })
    .await
}

async fn a_migrated_replica_is_live_ready_and_serving(engine: Engine) -> anyhow::Result<()> {
    let app = spawn(engine).await?;
    let live = get(&app, "/livez").await?;
    assert_eq!(live.status, 200, "{}", live.body);
    let ready = get(&app, "/readyz").await?;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body.trim(), "ready");
    assert!(grpc_serving(&app, "").await?);
    assert!(grpc_serving(&app, "incasso.v1.NoticeService").await?);
    assert!(grpc_serving(&app, "incasso.v1.ReceiptService").await?);
    assert_eq!(get(&app, "/nothing-here").await?.status, 404);
    app.stop().await
}

/// The version of the newest migration the database records.
async fn newest_migration(app: &TestApp) -> anyhow::Result<String> {
    let db = app.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version DESC LIMIT 1".to_owned(),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no migration recorded"))?;
    db.close().await?;
    Ok(row.try_get_by_index(0)?)
}

async fn readiness_follows_the_migrations_table(engine: Engine) -> anyhow::Result<()> {
    let app = spawn(engine).await?;
    assert_eq!(get(&app, "/readyz").await?.status, 200);

    // A newer release migrated the database: this binary does not know its schema.
    let future = "m20991231_000001_from_a_newer_release";
    app.execute_sql(&format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{future}', 0)"
    ))
    .await?;
    grpc_health_becomes(&app, "", false).await?;
    assert!(!grpc_serving(&app, "incasso.v1.LedgerService").await?);
    let ahead = get(&app, "/readyz").await?;
    assert_eq!(ahead.status, 503, "{}", ahead.body);
    assert!(ahead.body.contains("ahead"), "{}", ahead.body);
    assert!(ahead.body.contains(future), "{}", ahead.body);
    assert!(
        !ahead.body.contains(&app.database_url),
        "no connection details in the answer"
    );
    assert_eq!(get(&app, "/livez").await?.status, 200, "still live");
    app.execute_sql(&format!(
        "DELETE FROM seaql_migrations WHERE version = '{future}'"
    ))
    .await?;
    assert_eq!(get(&app, "/readyz").await?.status, 200);
    grpc_health_becomes(&app, "", true).await?;

    // A migration of this binary is missing: `incasso migrate` has not run.
    let newest = newest_migration(&app).await?;
    app.execute_sql(&format!(
        "DELETE FROM seaql_migrations WHERE version = '{newest}'"
    ))
    .await?;
    grpc_health_becomes(&app, "incasso.v1.NoticeService", false).await?;
    let behind = get(&app, "/readyz").await?;
    assert_eq!(behind.status, 503, "{}", behind.body);
    assert!(behind.body.contains("behind"), "{}", behind.body);
    assert!(behind.body.contains(&newest), "{}", behind.body);
    assert!(behind.body.contains("incasso migrate"), "{}", behind.body);
    app.execute_sql(&format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{newest}', 0)"
    ))
    .await?;
    assert_eq!(get(&app, "/readyz").await?.status, 200);
    grpc_health_becomes(&app, "incasso.v1.NoticeService", true).await?;
    app.stop().await
}

async fn a_replica_told_so_stays_ready_on_a_newer_releases_schema(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(engine, |s| {
        s.readiness_interval = Duration::from_millis(100);
        s.ready_on_newer_schema = true;
    })
    .await?;
    // A newer release's additive migration: the previous release keeps its traffic.
    app.execute_sql(
        "INSERT INTO seaql_migrations (version, applied_at) \
         VALUES ('m20991231_000001_from_a_newer_release', 0)",
    )
    .await?;
    let ready = get(&app, "/readyz").await?;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(grpc_serving(&app, "").await?);
    // A migration this binary does not know that sorts before its own newest is another
    // branch's, not a newer release's: not ready.
    app.execute_sql(
        "INSERT INTO seaql_migrations (version, applied_at) \
         VALUES ('m20000101_000001_from_another_branch', 0)",
    )
    .await?;
    let other = get(&app, "/readyz").await?;
    assert_eq!(other.status, 503, "{}", other.body);
    assert!(other.body.contains("ahead"), "{}", other.body);
    grpc_health_becomes(&app, "", false).await?;
    // A missing migration is never ready.
    app.execute_sql(
        "DELETE FROM seaql_migrations WHERE version IN \
         ('m20000101_000001_from_another_branch', 'm20261124_000001_create_creditor')",
    )
    .await?;
    let behind = get(&app, "/readyz").await?;
    assert_eq!(behind.status, 503, "{}", behind.body);
    assert!(behind.body.contains("behind"), "{}", behind.body);
    app.stop().await
}

/// PostgreSQL only, by nature: an SQLite database is a file the process holds open, it has
/// no server to lose. The database refuses connections and the server's are cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_is_lost_while_the_database_is_unreachable_and_comes_back() -> anyhow::Result<()>
{
    let app = spawn(Engine::Postgres).await?;
    assert_eq!(get(&app, "/readyz").await?.status, 200);
    let name = app
        .database_url
        .rsplit_once('/')
        .map(|(_, name)| name.to_owned())
        .ok_or_else(|| anyhow::anyhow!("no database name"))?;
    let admin =
        incasso_store::db::connect(&incasso_store::testing::postgres_admin_url(), 2).await?;
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
        ))
        .await?;
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await?;
    let down = get(&app, "/readyz").await?;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("database"), "{}", down.body);
    assert!(!down.body.contains("postgres://"), "{}", down.body);
    assert_eq!(get(&app, "/livez").await?.status, 200, "still live");
    grpc_health_becomes(&app, "", false).await?;
    let metrics = get(&app, "/metrics").await?;
    assert_eq!(
        metrics.status, 200,
        "metrics are served without the database"
    );
    let scrape = parse(&metrics.body)?;
    assert_eq!(gauge(&scrape, "incasso_database_up", None), Some(0.0));
    assert_eq!(gauge(&scrape, "incasso_ready", None), Some(0.0));

    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
        ))
        .await?;
    admin.close().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = get(&app, "/readyz").await?;
        if ready.status == 200 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not ready again: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    grpc_health_becomes(&app, "", true).await?;
    app.stop().await
}

/// Parses a scrape with an independent parser, and checks it read every sample line.
fn parse(text: &str) -> anyhow::Result<prometheus_parse::Scrape> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines)?;
    // The parser gathers a histogram's buckets of one label set into one sample: they count
    // once, by their `+Inf` bucket.
    let sample_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter(|l| !l.contains("_bucket{") || l.contains("le=\"+Inf\""))
        .count();
    anyhow::ensure!(
        scrape.samples.len() == sample_lines,
        "{} of {sample_lines} sample lines parsed:\n{text}",
        scrape.samples.len()
    );
    Ok(scrape)
}

/// The value of gauge `metric`, with `topic` when given.
fn gauge(scrape: &prometheus_parse::Scrape, metric: &str, topic: Option<&str>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && topic.is_none_or(|t| s.labels.get("topic") == Some(t)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        })
}

async fn scrape(app: &TestApp) -> anyhow::Result<(prometheus_parse::Scrape, String)> {
    let reply = get(app, "/metrics").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type
    );
    Ok((parse(&reply.body)?, reply.body))
}

async fn metrics_show_a_parked_receipt_and_a_dead_letter(engine: Engine) -> anyhow::Result<()> {
    let aca = FakeAca::start().await?;
    // The archive refuses the first position as invalid: a dead letter, not retried.
    aca.with(|s| s.behaviour.script.push_back(Answer::Status(400)));
    let config = AcaConfig {
        poll_interval: Duration::from_millis(20),
        ..AcaConfig::new(&aca.base_url(), Some(SUBSCRIPTION_KEY.to_owned()))
    };
    let app = TestApp::spawn_with(engine, |s| {
        s.aca = Some(config);
        // Not retried during the test: the parked receipt stays parked.
        s.parked_retry_interval = Duration::from_secs(3600);
    })
    .await?;
    let (before, _) = scrape(&app).await?;
    assert_eq!(gauge(&before, "incasso_receipts_parked", None), Some(0.0));
    assert_eq!(
        gauge(&before, "incasso_outbox_dead_letters", Some("aca.position")),
        Some(0.0)
    );
    assert_eq!(gauge(&before, "incasso_database_up", None), Some(1.0));
    assert_eq!(gauge(&before, "incasso_ready", None), Some(1.0));
    assert!(gauge(&before, "incasso_db_pool_connections", None).is_some_and(|n| n >= 1.0));
    assert!(gauge(&before, "incasso_db_pool_max_connections", None).is_some_and(|n| n >= 1.0));

    let mut notices = app.notices().await?;
    let refused = notices
        .create_debt_position(requests::school_fee("admin-dead"))
        .await?
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app
        .store
        .outbox_dead("aca.position")
        .await?
        .iter()
        .any(|e| e.aggregate_id == refused.id)
    {
        anyhow::ensure!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A receipt whose position an operator broke is parked and acknowledged.
    let fee = notices
        .create_debt_position(requests::school_fee("admin-parked"))
        .await?
        .into_inner()
        .payment_options[0]
        .installments[0]
        .clone();
    app.execute_sql(&format!(
        "UPDATE installment SET state = 'bogus' WHERE notice_number = '{}'",
        fee.notice_number
    ))
    .await?;
    let spec = ReceiptSpec::paying(&fee, "admin-parked-1", "BCITITMM", "2026-12-01T10:15:00");
    let request = node::send_rt(&Caller::default(), true, &spec);
    let reply = node::post(
        app.soap_addr,
        Some("paSendRTV2"),
        "text/xml; charset=utf-8",
        request.as_bytes(),
    )
    .await?;
    assert_eq!(
        node::element_text(&reply.body, "outcome"),
        Some("OK"),
        "{}",
        reply.body
    );

    let (after, text) = scrape(&app).await?;
    assert_eq!(gauge(&after, "incasso_receipts_parked", None), Some(1.0));
    assert_eq!(
        gauge(&after, "incasso_outbox_dead_letters", Some("aca.position")),
        Some(1.0)
    );
    assert_eq!(
        gauge(&after, "incasso_outbox_dead_letters", Some("io.message")),
        Some(0.0)
    );
    // No personal data and no identifiers of payments in the scrape.
    let debtor = requests::school_fee("admin-parked")
        .debtor
        .map(|d| d.fiscal_code)
        .unwrap_or_default();
    assert!(!debtor.is_empty());
    for secret in [
        debtor.as_str(),
        fee.notice_number.as_str(),
        "admin-parked-1",
    ] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
    app.stop().await
}

async fn the_outbox_age_counts_from_when_an_event_was_queued(engine: Engine) -> anyhow::Result<()> {
    // No archive configured: the position's event waits in the outbox.
    let app = spawn(engine).await?;
    app.notices()
        .await?
        .create_debt_position(requests::school_fee("admin-age"))
        .await?;
    let (fresh, _) = scrape(&app).await?;
    assert_eq!(
        gauge(
            &fresh,
            "incasso_outbox_pending_events",
            Some("aca.position")
        ),
        Some(1.0)
    );
    let age = gauge(
        &fresh,
        "incasso_outbox_oldest_pending_age_seconds",
        Some("aca.position"),
    );
    assert!(age.is_some_and(|a| a < 60.0), "{age:?}");

    // Queued an hour ago.
    app.execute_sql(
        "UPDATE outbox_event SET order_micros = order_micros - 3600000000, \
         next_attempt_at = next_attempt_at - 3600000000 WHERE topic = 'aca.position'",
    )
    .await?;
    let (old, _) = scrape(&app).await?;
    let age = gauge(
        &old,
        "incasso_outbox_oldest_pending_age_seconds",
        Some("aca.position"),
    );
    assert!(
        age.is_some_and(|a| (3600.0..3660.0).contains(&a)),
        "{age:?}"
    );
    assert_eq!(
        gauge(
            &old,
            "incasso_outbox_oldest_pending_age_seconds",
            Some("io.message")
        ),
        Some(0.0),
        "nothing waits on io.message"
    );

    // Scheduled for tomorrow (as a fine's republication is): pending, but not waiting yet.
    app.execute_sql(
        "UPDATE outbox_event SET order_micros = order_micros + 90000000000, \
         next_attempt_at = next_attempt_at + 90000000000 WHERE topic = 'aca.position'",
    )
    .await?;
    let (scheduled, _) = scrape(&app).await?;
    assert_eq!(
        gauge(
            &scheduled,
            "incasso_outbox_pending_events",
            Some("aca.position")
        ),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &scheduled,
            "incasso_outbox_oldest_pending_age_seconds",
            Some("aca.position")
        ),
        Some(0.0)
    );
    app.stop().await
}
