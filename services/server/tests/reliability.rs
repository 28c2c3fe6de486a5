//! Receipts survive what production does to a server: the real `incasso` binary, run as a
//! child process on PostgreSQL, is killed with SIGKILL in the middle of a load of receipts and
//! started again, or has its database connections cut under it. Afterwards every receipt
//! the Node was told OK is stored, every notice is booked exactly once, and the ledger's chain
//! verifies.
//!
//! PostgreSQL only, by nature: killing the backends of a database (`pg_terminate_backend`)
//! has no SQLite counterpart, and an SQLite file's crash safety is the file system's and
//! SQLite's own (WAL, `synchronous = FULL`), not something a process kill exercises in
//! incasso. Both tests need PostgreSQL at `INCASSO_TEST_PG_URL` (default 127.0.0.1:5432).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

use incasso_integration_tests::process::ServerProcess;
use incasso_integration_tests::receipt_load::{Answer, Delivery, Load, deliver, wait_for};
use incasso_store::testing::{Engine, TestDatabase, postgres_admin_url};

use common::{assert_booked_exactly_once, binary, issue_notices, query};

/// Notices, one receipt each.
const NOTICES: usize = 300;
/// Concurrent senders, as the Node's many PSP flows.
const WORKERS: usize = 32;

/// Delivers `deliveries[i]` for each `i` in `indices` again, 32 at a time, until each is
/// answered OK (at most `rounds` rounds, a second apart); every answer must be OK or KO
/// PAA_SYSTEM_ERROR. The number of deliveries that needed more than one round.
async fn deliver_until_ok(
    server: &ServerProcess,
    deliveries: &[Delivery],
    indices: Vec<usize>,
    rounds: usize,
) -> anyhow::Result<usize> {
    let mut pending = indices;
    let mut retried = 0;
    for round in 0..rounds {
        let batch: Arc<Vec<Delivery>> =
            Arc::new(pending.iter().map(|&i| deliveries[i].clone()).collect());
        let answers = Load::start(server.soap_addr, batch, WORKERS)
            .finish()
            .await?;
        let mut again = Vec::new();
        for (&index, answer) in pending.iter().zip(&answers) {
            assert!(
                answer.is_ok_or_system_error(),
                "receipt {} answered {answer:?}\n{}",
                deliveries[index].spec.receipt_id,
                server.log_tail(20)
            );
            if !answer.is_ok() {
                again.push(index);
            }
        }
        if round == 0 {
            retried = again.len();
        }
        if again.is_empty() {
            return Ok(retried);
        }
        pending = again;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!(
        "{} receipts still not acknowledged after {rounds} rounds\n{}",
        pending.len(),
        server.log_tail(30)
    )
}

/// kill -9 in the middle of a load of receipts, restart on the same database, deliver again
/// what was not acknowledged (and some that were): nothing acknowledged is lost, nothing is
/// booked twice, the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_load_loses_no_acknowledged_receipt_and_books_none_twice()
-> anyhow::Result<()> {
    let started = Instant::now();
    let database = TestDatabase::create(Engine::Postgres).await?;
    let mut server = ServerProcess::start(binary(), &database.url).await?;
    let deliveries = Arc::new(issue_notices(&server, "kill", NOTICES).await?);

    let load = Load::start(server.soap_addr, Arc::clone(&deliveries), WORKERS);
    let progress = Arc::clone(&load.progress);
    assert!(
        wait_for(&progress.acknowledged, NOTICES / 3, Duration::from_secs(60)).await,
        "the load did not get going: {} acknowledged\n{}",
        progress.acknowledged.load(Ordering::SeqCst),
        server.log_tail(30)
    );
    let old_pid = server.pid();
    server.kill9()?;
    let answers = load.finish().await?;

    let acknowledged: Vec<usize> = (0..NOTICES).filter(|&i| answers[i].is_ok()).collect();
    let unacknowledged: Vec<usize> = (0..NOTICES).filter(|&i| !answers[i].is_ok()).collect();
    // The kill landed in the middle: some receipts were acknowledged, some not.
    assert!(acknowledged.len() >= NOTICES / 3);
    assert!(
        !unacknowledged.is_empty(),
        "every receipt was acknowledged before the kill"
    );
    for (i, answer) in answers.iter().enumerate() {
        // Before the kill a healthy server answers OK; after it, nothing answers.
        assert!(
            matches!(answer, Answer::Ok | Answer::NoAnswer(_)),
            "receipt {i} answered {answer:?}"
        );
    }

    // Before anything is delivered again, straight from the database: every receipt the
    // Node heard OK for is stored. Some the Node did not hear OK for may be stored too
    // (committed, the answer lost in the kill): their redelivery must book nothing.
    let stored_before: HashSet<String> = query(&database.url, "SELECT receipt_id FROM receipt")
        .await?
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    for &i in &acknowledged {
        assert!(
            stored_before.contains(&deliveries[i].spec.receipt_id),
            "receipt {} was acknowledged and is not stored",
            deliveries[i].spec.receipt_id
        );
    }
    let committed_unanswered = unacknowledged
        .iter()
        .filter(|&&i| stored_before.contains(&deliveries[i].spec.receipt_id))
        .count();

    let server = ServerProcess::start(binary(), &database.url).await?;
    assert_ne!(server.pid(), old_pid);
    // The Node delivers again what it did not hear OK for, and, a second copy of some
    // acknowledged ones (its answer lost on the way): both must be OK.
    let mut again = unacknowledged.clone();
    again.extend(acknowledged.iter().copied().step_by(5));
    for &i in &again {
        let answer = deliver(server.soap_addr, &deliveries[i]).await;
        assert_eq!(
            answer,
            Answer::Ok,
            "receipt {i} redelivered after the restart\n{}",
            server.log_tail(20)
        );
    }
    assert_booked_exactly_once(&server, &database.url, &deliveries).await?;
    eprintln!(
        "kill -9 after {} acknowledgements ({} unacknowledged, {committed_unanswered} of them \
         committed), all booked once in {:?}",
        acknowledged.len(),
        unacknowledged.len(),
        started.elapsed()
    );
    server.stop().await?;
    database.drop_database().await?;
    Ok(())
}

/// Kills the backends of `database` (every connection the server holds), from a connection
/// to another database; how many it killed.
async fn terminate_backends(database: &str) -> anyhow::Result<usize> {
    let admin = incasso_store::db::connect(&postgres_admin_url(), 2).await?;
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND pid <> pg_backend_pid()"
            ),
        ))
        .await?;
    admin.close().await?;
    Ok(rows.len())
}

/// An outage of `length`: `database` refuses new connections and its backends are killed;
/// then it takes connections again.
async fn outage(database: &str, length: Duration) -> anyhow::Result<usize> {
    let admin = incasso_store::db::connect(&postgres_admin_url(), 2).await?;
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS false"
        ))
        .await?;
    let killed = terminate_backends(database).await;
    tokio::time::sleep(length).await;
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true"
        ))
        .await?;
    admin.close().await?;
    killed
}

/// The database connections are cut under the server several times while 32 workers send
/// receipts: it answers OK or KO PAA_SYSTEM_ERROR throughout, keeps serving without a
/// restart, and once the KOs are delivered again everything is booked exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_database_connections_mid_load_cost_retries_not_receipts() -> anyhow::Result<()> {
    let started = Instant::now();
    let database = TestDatabase::create(Engine::Postgres).await?;
    let name = database
        .url
        .rsplit_once('/')
        .map(|(_, name)| name.to_owned())
        .expect("a database URL ends with its name");
    let mut server = ServerProcess::start(binary(), &database.url).await?;
    let pid = server.pid();
    let deliveries = Arc::new(issue_notices(&server, "cut", NOTICES).await?);

    let load = Load::start(server.soap_addr, Arc::clone(&deliveries), WORKERS);
    let progress = Arc::clone(&load.progress);
    let mut terminated = Vec::new();
    for cut in 1..=4 {
        // The cuts are spread over the load, by deliveries answered (OK or not).
        if !wait_for(
            &progress.answered,
            NOTICES * cut / 5,
            Duration::from_secs(60),
        )
        .await
        {
            break;
        }
        terminated.push(if cut == 3 {
            outage(&name, Duration::from_secs(1)).await?
        } else {
            terminate_backends(&name).await?
        });
    }
    let answers = load.finish().await?;
    assert_eq!(terminated.len(), 4, "the load ended before the fourth cut");
    assert!(
        terminated.iter().any(|&n| n > 0),
        "no connection of the server was cut: {terminated:?}"
    );
    for (i, answer) in answers.iter().enumerate() {
        assert!(
            answer.is_ok_or_system_error(),
            "receipt {i} answered {answer:?} while its connections were cut\n{}",
            server.log_tail(20)
        );
    }
    let not_ok: Vec<usize> = (0..NOTICES).filter(|&i| !answers[i].is_ok()).collect();

    // The same process, without a restart, takes the Node's redeliveries.
    let retried = deliver_until_ok(&server, &deliveries, not_ok.clone(), 5).await?;
    assert!(server.is_running());
    assert_eq!(server.pid(), pid);
    assert_booked_exactly_once(&server, &database.url, &deliveries).await?;
    eprintln!(
        "connections cut {terminated:?}: {} receipts answered KO and delivered again \
         ({retried} needed a second round), all booked once in {:?}; server warnings: {:#?}",
        not_ok.len(),
        started.elapsed(),
        server.warnings()
    );
    server.stop().await?;
    database.drop_database().await?;
    Ok(())
}
