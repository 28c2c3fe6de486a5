//! The outbox's leases: a relay that lost its lease changes nothing, and an aggregate's
//! events are claimed one at a time, in order.

use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::datetime;

use incasso_domain::debt_position::update::CancelInput;
use incasso_store::Store;
use incasso_store::outbox::{ACA_POSITION, PositionChanged};
use incasso_store::testing::Engine;

use crate::fixtures::{self, Harness};
use crate::on_both_engines;

on_both_engines!(
    a_relay_that_lost_its_lease_changes_nothing,
    an_aggregate_is_claimed_one_event_at_a_time_in_order,
);

const T0: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);

fn at(store: &Store, instant: OffsetDateTime) -> Store {
    store.clone().with_clock(Arc::new(move || instant))
}

fn change(payload: &str) -> String {
    serde_json::from_str::<PositionChanged>(payload)
        .unwrap()
        .change
}

async fn a_relay_that_lost_its_lease_changes_nothing(engine: Engine) {
    let harness = Harness::new(engine).await;
    harness
        .store
        .create_debt_position(&fixtures::school_fee("lease-1"))
        .await
        .unwrap();
    let first = at(&harness.store, T0);
    let mine = first.claim_outbox(ACA_POSITION, 10, 1000).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].attempts, 1);
    assert!(
        first
            .claim_outbox(ACA_POSITION, 10, 1000)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert!(first.outbox_renew(&mine[0], 1000).await.unwrap());

    // The first relay stalls past its lease; another replica takes the event over.
    let second = at(&harness.replica().await, T0 + time::Duration::seconds(3));
    let theirs = second.claim_outbox(ACA_POSITION, 10, 1000).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].id, mine[0].id);
    assert_eq!(theirs[0].attempts, 2);
    assert_ne!(theirs[0].lease_token, mine[0].lease_token);

    assert!(!first.outbox_renew(&mine[0], 1000).await.unwrap());
    assert!(!first.outbox_failed(&mine[0], "late", None).await.unwrap());
    assert!(!first.outbox_delivered(&mine[0], None).await.unwrap());
    assert!(
        first.outbox_dead(ACA_POSITION).await.unwrap().is_empty(),
        "the stale failure was not recorded"
    );
    assert!(
        second
            .claim_outbox(ACA_POSITION, 10, 1000)
            .await
            .unwrap()
            .is_empty(),
        "the stale delivery did not release the event"
    );

    assert!(second.outbox_delivered(&theirs[0], None).await.unwrap());
    assert!(
        !second.outbox_delivered(&theirs[0], None).await.unwrap(),
        "recorded once"
    );
    let later = at(&harness.store, T0 + time::Duration::hours(1));
    assert!(
        later
            .claim_outbox(ACA_POSITION, 10, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    harness.finish().await;
}

async fn an_aggregate_is_claimed_one_event_at_a_time_in_order(engine: Engine) {
    let harness = Harness::new(engine).await;
    let store = at(&harness.store, T0);
    let cancelled = store
        .create_debt_position(&fixtures::school_fee("order-1"))
        .await
        .unwrap()
        .position;
    store
        .cancel_debt_position(&CancelInput {
            request_id: "order-1-cancel".to_owned(),
            id: cancelled.id.to_string(),
            reason: "errore".to_owned(),
        })
        .await
        .unwrap();
    let other = store
        .create_debt_position(&fixtures::school_fee("order-2"))
        .await
        .unwrap()
        .position;
    let cancelled_id = cancelled.id.to_string();

    let claimed = store.claim_outbox(ACA_POSITION, 10, 1000).await.unwrap();
    let mut aggregates: Vec<_> = claimed.iter().map(|e| e.aggregate_id.clone()).collect();
    aggregates.sort();
    let mut expected = vec![cancelled_id.clone(), other.id.to_string()];
    expected.sort();
    assert_eq!(aggregates, expected, "one event per aggregate");
    let created = claimed
        .iter()
        .find(|e| e.aggregate_id == cancelled_id)
        .unwrap()
        .clone();
    assert_eq!(change(&created.payload), "created", "the oldest first");
    let done = claimed
        .iter()
        .find(|e| e.aggregate_id != cancelled_id)
        .unwrap();
    assert!(store.outbox_delivered(done, None).await.unwrap());
    assert!(
        store
            .claim_outbox(ACA_POSITION, 10, 1000)
            .await
            .unwrap()
            .is_empty(),
        "the cancellation waits while the creation is leased"
    );

    // Backing off, the creation still holds the cancellation back.
    assert!(
        store
            .outbox_failed(&created, "503", Some(60_000))
            .await
            .unwrap()
    );
    let soon = at(&harness.store, T0 + time::Duration::seconds(2));
    assert!(
        soon.claim_outbox(ACA_POSITION, 10, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    // The cancellation is not due before the creation's retry either: claims do not read
    // and reject it until then.
    {
        use incasso_store::entity::outbox_event;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let waiting = outbox_event::Entity::find()
            .filter(outbox_event::Column::AggregateId.eq(cancelled_id.as_str()))
            .filter(outbox_event::Column::Id.ne(created.id))
            .all(harness.store.db())
            .await
            .unwrap();
        assert_eq!(waiting.len(), 1);
        let retry_at = (T0 + time::Duration::seconds(60)).unix_timestamp_nanos() / 1000;
        assert_eq!(i128::from(waiting[0].next_attempt_at), retry_at);
    }

    // Dead, it no longer does; replayed, it queues behind the cancellation.
    let retried = at(&harness.store, T0 + time::Duration::seconds(61))
        .claim_outbox(ACA_POSITION, 10, 1000)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, created.id);
    assert!(soon.outbox_failed(&retried[0], "400", None).await.unwrap());
    let later = at(&harness.store, T0 + time::Duration::seconds(70));
    let cancellation = later.claim_outbox(ACA_POSITION, 10, 1000).await.unwrap();
    assert_eq!(cancellation.len(), 1);
    assert_eq!(change(&cancellation[0].payload), "cancelled");
    later.outbox_replay(&created.id.to_string()).await.unwrap();
    assert!(
        later
            .claim_outbox(ACA_POSITION, 10, 1000)
            .await
            .unwrap()
            .is_empty(),
        "the replayed event waits for the cancellation in flight"
    );
    assert!(
        later
            .outbox_delivered(&cancellation[0], None)
            .await
            .unwrap()
    );
    let replayed = later.claim_outbox(ACA_POSITION, 10, 1000).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].id, created.id);
    assert_eq!(replayed[0].attempts, 1, "attempts start again");
    harness.finish().await;
}

/// Right after a bulk load the outbox has no planner statistics (this machine's PostgreSQL
/// even runs with autovacuum off), and the claim's anti-join then scans the whole topic for
/// each candidate. A slow claim refreshes the statistics, so the relay recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_claim_refreshes_the_outbox_statistics() {
    let harness = Harness::new(Engine::Postgres).await;
    fixtures::execute(
        &harness,
        "INSERT INTO outbox_event (id, topic, aggregate_id, payload, state, attempts, \
         next_attempt_at, created_at, order_micros) \
         SELECT gen_random_uuid(), 'aca.position', 'bulk-' || g, '{}', 'pending', 0, 0, \
         now(), g FROM generate_series(1, 30000) g",
    )
    .await
    .unwrap();
    let analyzed = "SELECT count(*) FROM pg_stat_user_tables \
                    WHERE relname = 'outbox_event' AND last_analyze IS NOT NULL";
    let scalar = |sql: &'static str| {
        let db = harness.store.db().clone();
        async move {
            use sea_orm::ConnectionTrait;
            db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
        }
    };
    assert_eq!(scalar(analyzed).await, 0, "analyzed before any claim");
    let claimed = harness
        .store
        .claim_outbox(ACA_POSITION, 500, 30_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 500);
    let mut refreshed = false;
    for _ in 0..100 {
        if scalar(analyzed).await == 1 {
            refreshed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(refreshed, "the slow claim did not refresh the statistics");
    let next = harness
        .store
        .claim_outbox(ACA_POSITION, 500, 30_000)
        .await
        .unwrap();
    assert_eq!(next.len(), 500);
    harness.finish().await;
}
