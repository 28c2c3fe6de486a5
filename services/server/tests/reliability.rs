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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

use incasso_grpc::pb;
use incasso_grpc::pb::bulk_create_debt_positions_response::Result as ItemResult;
use incasso_integration_tests::node_simulator::ReceiptSpec;
use incasso_integration_tests::process::ServerProcess;
use incasso_integration_tests::receipt_load::{Answer, Delivery, Load, deliver, wait_for};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_store::testing::{Engine, TestDatabase, postgres_admin_url};

/// Notices, one receipt each.
const NOTICES: usize = 300;
/// Concurrent senders, as the Node's many PSP flows.
const WORKERS: usize = 32;
/// The Milan bank account of the sample registry's transfers, when a transfer names none.
const MILANO_BANK: &str = "IT02N0306909400000012345678";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_incasso"))
}

fn ymd(date: time::Date) -> String {
    format!(
        "{}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn cents(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// `n` school fees of one installment each, created in one bulk stream; the receipt paying
/// each (receipt ids `{tag}-00000`, ...), one in three as paSendRT (V1), the others V2.
async fn issue_notices(
    server: &ServerProcess,
    tag: &str,
    n: usize,
) -> anyhow::Result<Vec<Delivery>> {
    let today = time::OffsetDateTime::now_utc().date();
    let due = ymd(today + time::Duration::days(60));
    let items: Vec<pb::CreateDebtPositionRequest> = (0..n)
        .map(|i| {
            let mut fee = requests::school_fee(&format!("{tag}-fee-{i}"));
            fee.payment_options[0].installments[0].due_date = due.clone();
            fee
        })
        .collect();
    let mut responses = server
        .notices()
        .await?
        .bulk_create_debt_positions(tokio_stream::iter(items))
        .await?
        .into_inner();
    let paid_at = format!("{}T10:15:00", ymd(today));
    let mut deliveries = Vec::with_capacity(n);
    while let Some(item) = responses.message().await? {
        let Some(ItemResult::DebtPosition(position)) = item.result else {
            anyhow::bail!("item {} not created: {:?}", item.index, item.result);
        };
        let installment = &position.payment_options[0].installments[0];
        let spec = ReceiptSpec {
            receipt_id: format!("{tag}-{:05}", deliveries.len()),
            notice_number: installment.notice_number.clone(),
            fiscal_code: MILANO.to_owned(),
            iuv: installment.iuv.clone(),
            amount: cents(installment.amount_cents),
            psp: "BCITITMM".to_owned(),
            transfers: installment
                .transfers
                .iter()
                .map(|t| {
                    let iban = if t.iban.is_empty() {
                        MILANO_BANK.to_owned()
                    } else {
                        t.iban.clone()
                    };
                    (
                        t.beneficiary_fiscal_code.clone(),
                        cents(t.amount_cents),
                        iban,
                    )
                })
                .collect(),
            stand_in: false,
            payment_date_time: paid_at.clone(),
        };
        deliveries.push(Delivery {
            v2: deliveries.len() % 3 != 0,
            spec,
        });
    }
    anyhow::ensure!(deliveries.len() == n, "{} of {n} created", deliveries.len());
    Ok(deliveries)
}

/// Runs one SQL query on `url`; every row as text columns.
async fn query(url: &str, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let db = incasso_store::db::connect(url, 2).await?;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut columns = Vec::new();
        for i in 0.. {
            match row.try_get_by_index::<String>(i) {
                Ok(value) => columns.push(value),
                Err(_) => break,
            }
        }
        out.push(columns);
    }
    db.close().await?;
    Ok(out)
}

/// Every ledger entry of `event_type`, through ListEntries, all pages.
async fn entries_of(
    server: &ServerProcess,
    event_type: &str,
) -> anyhow::Result<Vec<pb::LedgerEntry>> {
    let mut ledger = server.ledger().await?;
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ledger
            .list_entries(pb::ListEntriesRequest {
                event_type: event_type.to_owned(),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return Ok(entries);
        }
        page_token = page.next_page_token;
    }
}

/// What an auditor and the finance office check once the dust settles: every receipt stored
/// once and settled, every notice paid and booked by exactly one `receipt_paid` entry (the
/// receipt's), no double payment, no conflict, nothing parked, and the whole chain verified
/// (deep: the queryable tables against the recorded entries).
async fn assert_booked_exactly_once(
    server: &ServerProcess,
    database_url: &str,
    deliveries: &[Delivery],
) -> anyhow::Result<()> {
    let n = deliveries.len();
    // The receipt table, by PagoPA's key.
    let stored = query(
        database_url,
        "SELECT creditor_fiscal_code || '/' || iuv || '/' || receipt_id, classification \
         FROM receipt",
    )
    .await?;
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for row in stored {
        by_key
            .entry(row[0].clone())
            .or_default()
            .push(row[1].clone());
    }
    for d in deliveries {
        let key = format!(
            "{}/{}/{}",
            d.spec.fiscal_code, d.spec.iuv, d.spec.receipt_id
        );
        let classes = by_key.get(&key).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            classes,
            ["settled".to_owned()],
            "receipt {key}: stored {} times as {classes:?}",
            classes.len()
        );
    }
    assert_eq!(by_key.len(), n, "receipts stored that were never sent");
    let conflicts = query(database_url, "SELECT count(*)::text FROM receipt_conflict").await?;
    assert_eq!(conflicts[0][0], "0", "redeliveries recorded as conflicts");
    let parked = query(database_url, "SELECT count(*)::text FROM parked_receipt").await?;
    assert_eq!(parked[0][0], "0", "receipts parked");

    // Every notice paid, as the municipal backend sees it.
    let mut notices = server.notices().await?;
    let mut paid = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = notices
            .list_debt_positions(pb::ListDebtPositionsRequest {
                creditor_fiscal_code: MILANO.to_owned(),
                state: pb::DebtPositionState::Paid as i32,
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        paid.extend(page.debt_positions);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paid.len(), n, "positions paid");
    for position in &paid {
        let installment = &position.payment_options[0].installments[0];
        assert_eq!(installment.state, pb::InstallmentState::Paid as i32);
    }

    // The books: one receipt_paid entry per receipt and per notice, nothing else.
    let booked = entries_of(server, "receipt_paid").await?;
    let mut per_receipt: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_notice: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &booked {
        *per_receipt.entry(entry.receipt_id.as_str()).or_default() += 1;
        for notice in &entry.notices {
            *per_notice.entry(notice.notice_number.as_str()).or_default() += 1;
        }
    }
    for d in deliveries {
        assert_eq!(
            per_receipt.get(d.spec.receipt_id.as_str()),
            Some(&1),
            "receipt_paid entries of receipt {}",
            d.spec.receipt_id
        );
        assert_eq!(
            per_notice.get(d.spec.notice_number.as_str()),
            Some(&1),
            "receipt_paid entries of notice {}",
            d.spec.notice_number
        );
    }
    assert_eq!(booked.len(), n, "receipt_paid entries");
    for other in [
        "double_payment",
        "receipt_closed_notice",
        "receipt_unknown_notice",
    ] {
        let entries = entries_of(server, other).await?;
        assert!(entries.is_empty(), "{} {other} entries", entries.len());
    }

    let verify = server
        .ledger()
        .await?
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(
        verify.ok,
        "the ledger is broken at entry {}: {}",
        verify.first_broken_sequence, verify.reason
    );
    // n notices issued, n receipts paid.
    assert_eq!(verify.entries_checked, 2 * n as i64, "entries verified");
    Ok(())
}

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
