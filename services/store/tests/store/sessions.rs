//! How the connection pool protects the others from one stuck session (PostgreSQL: SQLite has
//! one connection in one process).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, TransactionTrait};

use incasso_store::db;
use incasso_store::testing::{Engine, TestDatabase};

/// A replica frozen inside a transaction (a VM pause, SIGSTOP) holds the ledger head's row
/// lock. The server ends its session after `db::IDLE_IN_TRANSACTION`, so another replica's
/// booking goes on instead of waiting until TCP keepalive notices, and the frozen replica's
/// transaction is rolled back, not committed later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_frozen_in_a_transaction_is_ended_and_its_locks_released() {
    let (database, migrated) = TestDatabase::migrated(Engine::Postgres).await.unwrap();
    migrated.close().await.unwrap();
    let frozen = db::connect(&database.url, 2).await.unwrap();
    let other = db::connect(&database.url, 2).await.unwrap();

    let stuck = frozen.begin().await.unwrap();
    stuck
        .execute_unprepared("SELECT last_sequence FROM ledger_head WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    stuck
        .execute_unprepared("UPDATE ledger_head SET last_sequence = 999 WHERE id = 1")
        .await
        .unwrap();

    let started = Instant::now();
    let waiting = other.begin().await.unwrap();
    waiting
        .execute_unprepared("UPDATE ledger_head SET last_sequence = last_sequence WHERE id = 1")
        .await
        .expect("the lock is released once the frozen session is ended");
    waiting.commit().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= db::IDLE_IN_TRANSACTION - Duration::from_secs(1),
        "waited only {waited:?}: the lock was not held"
    );

    // The frozen replica wakes up: its transaction is gone, and its change with it.
    let woke = stuck.commit().await;
    assert!(woke.is_err(), "a commit after the session ended succeeded");
    let error = incasso_store::AppError::from(woke.unwrap_err());
    assert!(
        matches!(error, incasso_store::AppError::Unavailable(_)),
        "{error:?} is not transient: the Node would not redeliver"
    );
    let head = other
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT last_sequence FROM ledger_head WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.try_get::<i64>("", "last_sequence").unwrap(), 0);

    frozen.close().await.unwrap();
    other.close().await.unwrap();
    database.drop_database().await.unwrap();
}
