//! Benchmark of the paForNode endpoint on PostgreSQL (issues: the PagoPA Node interface;
//! receipts in group commits).
//!
//! The Node simulator drives the real `incasso` binary at increasing concurrency. At each
//! level: whole payments (verify, activate with paGetPaymentV2, receipt with paSendRTV2, and
//! for 10% of them the receipt again), printing each primitive's rate and p50/p99 within that
//! mix; then receipts alone (10% redelivered). Then receipts paced at 200/s, and verify and
//! activate paced at 200 requests/s, each p99 against its target. It checks that every
//! receipt was booked exactly once. Last, in the same run and on the same database, three
//! baselines write the same rows a receipt writes with no service in between:
//! 1. 32 concurrent transactions, one receipt each, under the chain-head lock (the design
//!    before group commit: one receipt per fsync);
//! 2. 32 concurrent transactions, one receipt each, ledger entries numbered by a sequence and
//!    no head lock (what PostgreSQL's own group commit gives independent writers);
//! 3. 2 concurrent writers of 16 receipts per transaction in multi-row inserts, one head lock
//!    each (the physical limit of the write path);
//!
//! and the receipts-alone rate at concurrency 64 is printed against each.
//!
//! ```text
//! cargo build --release -p incasso-server -p incasso-integration-tests
//! target/release/bench-node [payments per batch]      # default 1500
//! ```

// Rates and percentiles, never money.
#![allow(clippy::float_arithmetic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rand::Rng;
use sea_orm::sqlx::{self, PgPool};
use tokio::sync::Mutex;
use uuid::Uuid;

use incasso_grpc::pb;
use incasso_grpc::pb::notice_service_client::NoticeServiceClient;
use incasso_integration_tests::bench::{Server, percentile};
use incasso_integration_tests::node_simulator::{
    self as node, Caller, ReceiptSpec, element_text, post,
};
use incasso_integration_tests::requests;
use incasso_store::testing::{Engine, TestDatabase};

const XML: &str = "text/xml; charset=utf-8";

#[derive(Default)]
struct Samples {
    verify: Vec<Duration>,
    activate: Vec<Duration>,
    receipt: Vec<Duration>,
    redelivery: Vec<Duration>,
    errors: Vec<String>,
}

fn receipt_for(installment: &pb::Installment, receipt_id: &str) -> ReceiptSpec {
    ReceiptSpec::paying(installment, receipt_id, "BCITITMM", "2026-11-20T10:15:00")
}

async fn timed(
    addr: std::net::SocketAddr,
    action: &str,
    body: &str,
) -> Result<(Duration, String), String> {
    let started = Instant::now();
    let reply = post(addr, Some(action), XML, body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if element_text(&reply.body, "outcome") != Some("OK") {
        return Err(format!(
            "{action}: {}",
            element_text(&reply.body, "faultCode").unwrap_or("no outcome")
        ));
    }
    Ok((elapsed, reply.body))
}

/// What one simulated payment sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Verify, activate, receipt: the whole payment as the Node drives it.
    Whole,
    /// The receipt alone, to measure receipts against the bare transaction.
    ReceiptOnly,
}

async fn pay(
    addr: std::net::SocketAddr,
    installment: pb::Installment,
    redeliver: bool,
    mode: Mode,
    samples: Arc<Mutex<Samples>>,
) {
    let caller = Caller::default();
    let mut local = Samples::default();
    let result: Result<(), String> = async {
        if mode == Mode::Whole {
            activate_first(addr, &caller, &installment, &mut local).await?;
        }
        let receipt = node::send_rt(
            &caller,
            true,
            &receipt_for(&installment, &Uuid::new_v4().simple().to_string()),
        );
        let (d, _) = timed(addr, "paSendRTV2", &receipt).await?;
        local.receipt.push(d);
        if redeliver {
            let (d, _) = timed(addr, "paSendRTV2", &receipt).await?;
            local.redelivery.push(d);
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        local.errors.push(error);
    }
    let mut samples = samples.lock().await;
    samples.verify.extend(local.verify);
    samples.activate.extend(local.activate);
    samples.receipt.extend(local.receipt);
    samples.redelivery.extend(local.redelivery);
    samples.errors.extend(local.errors);
}

/// Verify, then activation, as the Node does before a receipt.
async fn activate_first(
    addr: std::net::SocketAddr,
    caller: &Caller,
    installment: &pb::Installment,
    local: &mut Samples,
) -> Result<(), String> {
    {
        let (d, _) = timed(
            addr,
            "paVerifyPaymentNotice",
            &node::verify(caller, "01199250158", &installment.notice_number),
        )
        .await?;
        local.verify.push(d);
        let amount = format!(
            "{}.{:02}",
            installment.amount_cents / 100,
            installment.amount_cents % 100
        );
        let (d, _) = timed(
            addr,
            "paGetPaymentV2",
            &node::get_payment(
                caller,
                true,
                "01199250158",
                &installment.notice_number,
                &amount,
                None,
            ),
        )
        .await?;
        local.activate.push(d);
        Ok(())
    }
}

/// Runs `batch` payments in `mode` with `level` concurrent callers; returns the samples and
/// the wall time.
async fn run_level(
    soap: std::net::SocketAddr,
    batch: Vec<pb::Installment>,
    level: usize,
    mode: Mode,
) -> anyhow::Result<(Samples, Duration)> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let queue = Arc::new(Mutex::new(batch.into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..level {
        let queue = queue.clone();
        let samples = samples.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().await.next();
                let Some(installment) = next else { break };
                let redeliver = rand::rng().random_range(0..10) == 0;
                pay(soap, installment, redeliver, mode, samples.clone()).await;
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    let samples = std::mem::take(&mut *samples.lock().await);
    ensure!(
        samples.errors.is_empty(),
        "errors: {:?}",
        &samples.errors[..samples.errors.len().min(5)]
    );
    Ok((samples, elapsed))
}

/// "met" or "MISSED", for a target.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn report(name: &str, samples: &mut [Duration], elapsed: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<11} {:>6} calls {:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(samples, 50)),
        ms(percentile(samples, 99))
    );
}

/// One receipt of a bare transaction: its number, receipt row id, document id, position id.
type BareRow = (i64, Uuid, Uuid, Uuid);

/// How a bare transaction chains its ledger entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// Under the chain-head row lock, held to the commit: what incasso does.
    HeadLock,
    /// From a PostgreSQL sequence, no lock: independent writers, which PostgreSQL's own
    /// group commit batches at the fsync.
    Sequence,
}

/// The rows the receipts `ids` write (a receipt row, its transfer, its raw message, the
/// position's lock and state, two outbox events, a ledger entry with two lines and a notice),
/// in one bare transaction with multi-row inserts: no service in between.
async fn bare_transaction(
    pool: &PgPool,
    document: &[u8],
    body: &[u8],
    ids: &[i64],
    chain: Chain,
) -> Result<(), sqlx::Error> {
    use sqlx::QueryBuilder;
    let mut tx = pool.begin().await?;
    let hash = vec![7u8; 32];
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<BareRow> = ids
        .iter()
        .map(|&i| (i, Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()))
        .collect();
    let mut positions: Vec<i64> = ids.iter().map(|i| i % 1000).collect();
    positions.sort_unstable();
    positions.dedup();
    for position in &positions {
        sqlx::query("UPDATE bench_position SET version = version + 1 WHERE id = $1")
            .bind(position)
            .execute(&mut *tx)
            .await?;
    }
    QueryBuilder::new("INSERT INTO source_document (id, kind, media_type, sha256, key_id, nonce, ciphertext, created_at) ")
        .push_values(&rows, |mut b, (_, _, doc, _)| {
            b.push_bind(doc).push_bind("pagopa.paSendRTV2").push_bind("text/xml").push_bind(&hash)
                .push_bind("dev").push_bind(&hash[..12]).push_bind(document).push_bind(now);
        })
        .build().execute(&mut *tx).await?;
    QueryBuilder::new("INSERT INTO receipt (id, creditor_fiscal_code, iuv, receipt_id, notice_number, receiving_creditor, content_sha256, source_document_id, primitive, psp_id, channel_id, payment_amount_cents, fee_cents, payment_date_time, paid_at, stand_in, classification, flags, debt_position_id, installment_id, received_at) ")
        .push_values(&rows, |mut b, (i, row, doc, position)| {
            b.push_bind(row).push_bind("01199250158").push_bind(format!("B{i}")).push_bind(format!("R{i}"))
                .push_bind("312000000000000000").push_bind("01199250158").push_bind("0".repeat(64)).push_bind(doc)
                .push_bind("paSendRTV2").push_bind("BCITITMM").push_bind("BCITITMM_01").push_bind(46500i64)
                .push_bind(100i64).push_bind("2026-11-20T10:15:00").push_bind(now).push_bind(false)
                .push_bind("settled").push_bind("").push_bind(position).push_bind(position).push_bind(now);
        })
        .build().execute(&mut *tx).await?;
    // The receipt's transfer, as the service stores it for reconciliation.
    QueryBuilder::new("INSERT INTO receipt_transfer (receipt_row_id, transfer_index, creditor_fiscal_code, iuv, receipt_id, id_transfer, beneficiary_fiscal_code, iban, amount_cents, remittance_information, transfer_category) ")
        .push_values(&rows, |mut b, (i, row, _, _)| {
            b.push_bind(row).push_bind(0i16).push_bind("01199250158").push_bind(format!("B{i}")).push_bind(format!("R{i}"))
                .push_bind(1i16).push_bind("01199250158").push_bind("IT02N0306909400000012345678").push_bind(46500i64)
                .push_bind("Retta nido").push_bind("9/0101108TS/");
        })
        .build().execute(&mut *tx).await?;
    for position in &positions {
        sqlx::query("UPDATE bench_position SET state = 'paid' WHERE id = $1")
            .bind(position)
            .execute(&mut *tx)
            .await?;
    }
    // The Stand-In archive's event, as the service queues it here: the bench configures no
    // Fascicolo, so no citizen event is written by either.
    QueryBuilder::new("INSERT INTO outbox_event (id, topic, aggregate_id, payload, state, attempts, next_attempt_at, created_at) ")
        .push_values(rows.iter().map(|r| (r, "aca.position")), |mut b, ((_, _, _, position), topic)| {
            b.push_bind(Uuid::now_v7()).push_bind(topic).push_bind(position.to_string()).push_bind("{}")
                .push_bind("pending").push_bind(0i32).push_bind(0i64).push_bind(now);
        })
        .build().execute(&mut *tx).await?;
    let n = i64::try_from(rows.len()).unwrap_or(0);
    let first = match chain {
        Chain::HeadLock => {
            let (last,): (i64,) = sqlx::query_as(
                "UPDATE ledger_head SET id = id WHERE id = 1 RETURNING last_sequence",
            )
            .fetch_one(&mut *tx)
            .await?;
            last + 1
        }
        Chain::Sequence => {
            let (first,): (i64,) = sqlx::query_as("SELECT nextval('bench_entry_sequence')")
                .fetch_one(&mut *tx)
                .await?;
            first
        }
    };
    let sequences: Vec<(i64, &BareRow)> = rows
        .iter()
        .enumerate()
        .map(|(k, r)| (first + k as i64, r))
        .collect();
    QueryBuilder::new("INSERT INTO ledger_entry (sequence, id, event_type, creditor_fiscal_code, kind, description, debt_position_id, receipt_id, source_document_id, source_document_sha256, recorded_at, recorded_micros, previous_hash, hash, body) ")
        .push_values(&sequences, |mut b, (sequence, (i, _, doc, position))| {
            b.push_bind(sequence).push_bind(Uuid::now_v7()).push_bind("receipt_paid").push_bind("01199250158")
                .push_bind("school_fee").push_bind("notice paid").push_bind(position).push_bind(format!("R{i}"))
                .push_bind(doc).push_bind(&hash).push_bind(now).push_bind(now.unix_timestamp() * 1_000_000)
                .push_bind(&hash).push_bind(&hash).push_bind(body);
        })
        .build().execute(&mut *tx).await?;
    QueryBuilder::new("INSERT INTO ledger_line (entry_sequence, line_index, account, account_type, creditor_fiscal_code, kind, amount_cents) ")
        .push_values(sequences.iter().flat_map(|(s, _)| [(*s, 0i16), (*s, 1i16)]), |mut b, (sequence, line)| {
            let (account, account_type, kind, cents) = if line == 0 {
                ("receivable:01199250158:school_fee", "receivable", Some("school_fee"), -46500i64)
            } else {
                ("psp_clearing:01199250158:BCITITMM", "psp_clearing", None, 46500i64)
            };
            b.push_bind(sequence).push_bind(line).push_bind(account).push_bind(account_type)
                .push_bind("01199250158").push_bind(kind).push_bind(cents);
        })
        .build().execute(&mut *tx).await?;
    QueryBuilder::new(
        "INSERT INTO ledger_entry_notice (entry_sequence, notice_index, notice_number, iuv) ",
    )
    .push_values(&sequences, |mut b, (sequence, _)| {
        b.push_bind(sequence)
            .push_bind(0i16)
            .push_bind("312000000000000000")
            .push_bind("12000000000000000");
    })
    .build()
    .execute(&mut *tx)
    .await?;
    if chain == Chain::HeadLock {
        sqlx::query("UPDATE ledger_head SET last_sequence = $1, last_hash = $2, last_recorded_at = $3 WHERE id = 1")
            .bind(first + n - 1).bind(&hash).bind(now).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Receipts per second written by `writers` concurrent bare transactions of `per_tx`
/// receipts each, `count` receipts in all, numbered from `from`.
async fn bare_rate(
    url: &str,
    from: i64,
    count: i64,
    per_tx: i64,
    writers: usize,
    chain: Chain,
) -> anyhow::Result<f64> {
    let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(writers).unwrap_or(32))
        .connect(url)
        .await?;
    let document = vec![5u8; 3000];
    let body = vec![6u8; 600];
    let next = Arc::new(std::sync::atomic::AtomicI64::new(from));
    let end = from + count;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..writers {
        let pool = pool.clone();
        let next = next.clone();
        let (document, body) = (document.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(per_tx, std::sync::atomic::Ordering::Relaxed);
                if first >= end {
                    break;
                }
                let ids: Vec<i64> = (first..(first + per_tx).min(end)).collect();
                bare_transaction(&pool, &document, &body, &ids, chain).await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let per_level: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1500);
    let levels = [8usize, 32, 64];
    let database = TestDatabase::create(Engine::Postgres).await?;
    let (server, channel) = Server::start(&database.url).await?;
    let soap = server.soap_addr();
    let mut notices = NoticeServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    // Per level: a batch of whole payments and a batch of receipts alone; then one batch
    // for the paced verify and activate.
    let total = per_level * (2 * levels.len() + 2);
    println!(
        "bench-node: {total} payments on PostgreSQL, concurrency {levels:?}, 10% redelivered receipts"
    );
    let stream =
        futures::stream::iter((0..total).map(|i| requests::school_fee(&format!("node-bench-{i}"))));
    let mut created = notices
        .bulk_create_debt_positions(stream)
        .await?
        .into_inner();
    let mut installments = Vec::with_capacity(total);
    while let Some(item) = created.message().await? {
        if let Some(pb::bulk_create_debt_positions_response::Result::DebtPosition(p)) = item.result
        {
            installments.push(p.payment_options[0].installments[0].clone());
        }
    }
    ensure!(
        installments.len() == total,
        "created {} of {total}",
        installments.len()
    );

    // Planner statistics before each timed phase, not timed: what autovacuum does as tables
    // grow (this machine's PostgreSQL runs with autovacuum off). Without them PostgreSQL
    // guesses that an `= ANY(list)` matches 5% of a table and reads the whole of `transfer`,
    // `payment_option` and `receipt` for every receipt batch (seen in pg_stat_user_tables:
    // 8 million transfer rows read for 24,000 receipts).
    let analyzer = PgPool::connect(&database.url).await?;
    let analyze = || async { sqlx::query("ANALYZE").execute(&analyzer).await.map(|_| ()) };
    let mut remaining = installments.into_iter();
    let mut redelivered = 0usize;
    let mut receipts_per_second = 0f64;
    let mut receipt_p99_64 = Duration::ZERO;
    for level in levels {
        // The mix: whole payments. Each primitive's rate is its calls over the phase's wall
        // time, i.e. what it was served at while sharing the server with the other two.
        let batch: Vec<_> = remaining.by_ref().take(per_level).collect();
        analyze().await?;
        let (mut s, elapsed) = run_level(soap, batch, level, Mode::Whole).await?;
        println!(
            "concurrency {level}, whole payments (verify -> activate -> receipt, 10% receipts redelivered): {:.1} s",
            elapsed.as_secs_f64()
        );
        report("verify", &mut s.verify, elapsed);
        report("activate", &mut s.activate, elapsed);
        report("receipt", &mut s.receipt, elapsed);
        report("redelivery", &mut s.redelivery, elapsed);
        redelivered += s.redelivery.len();
        // Receipts alone, the figure compared with the bare transaction.
        let batch: Vec<_> = remaining.by_ref().take(per_level).collect();
        analyze().await?;
        let (mut s, elapsed) = run_level(soap, batch, level, Mode::ReceiptOnly).await?;
        println!(
            "concurrency {level}, receipts only (10% redelivered): {:.1} s",
            elapsed.as_secs_f64()
        );
        report("receipt", &mut s.receipt, elapsed);
        report("redelivery", &mut s.redelivery, elapsed);
        redelivered += s.redelivery.len();
        if level == 64 {
            receipts_per_second = s.receipt.len() as f64 / elapsed.as_secs_f64();
            receipt_p99_64 = percentile(&mut s.receipt, 99);
        }
    }

    // Receipts paced at 200/s.
    analyze().await?;
    let paced_receipts: Vec<_> = remaining.by_ref().take(per_level).collect();
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    let mut tasks = Vec::new();
    for installment in paced_receipts {
        ticker.tick().await;
        let body = node::send_rt(
            &Caller::default(),
            true,
            &receipt_for(&installment, &Uuid::new_v4().simple().to_string()),
        );
        tasks.push(tokio::spawn(async move {
            timed(soap, "paSendRTV2", &body).await
        }));
    }
    let mut paced_receipt = Vec::new();
    for task in tasks {
        let (d, _) = task.await?.map_err(|e| anyhow::anyhow!(e))?;
        paced_receipt.push(d);
    }
    let p99 = percentile(&mut paced_receipt, 99);
    println!(
        "receipts paced at 200/s ({} receipts): p50 {:.2} ms, p99 {:.2} ms: target p99 < 100 ms {}",
        paced_receipt.len(),
        percentile(&mut paced_receipt, 50).as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        verdict(p99 < Duration::from_millis(100))
    );

    // Verify and activate paced at 200 requests/s on the notices left.
    let paced: Vec<_> = remaining.collect();
    let mut verify = Vec::new();
    let mut activate = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    let mut tasks = Vec::new();
    let caller = Caller::default();
    for (i, installment) in paced.iter().enumerate() {
        ticker.tick().await;
        let body = if i % 2 == 0 {
            node::verify(&caller, "01199250158", &installment.notice_number)
        } else {
            node::get_payment(
                &caller,
                true,
                "01199250158",
                &installment.notice_number,
                "465.00",
                None,
            )
        };
        let action = if i % 2 == 0 {
            "paVerifyPaymentNotice"
        } else {
            "paGetPaymentV2"
        };
        tasks.push((
            i % 2 == 0,
            tokio::spawn(async move { timed(soap, action, &body).await }),
        ));
    }
    for (is_verify, task) in tasks {
        let (d, _) = task.await?.map_err(|e| anyhow::anyhow!(e))?;
        if is_verify {
            verify.push(d)
        } else {
            activate.push(d)
        }
    }
    println!("paced at 200 requests/s ({} requests):", paced.len());
    let span = Duration::from_millis(5 * paced.len() as u64);
    report("verify", &mut verify, span);
    report("activate", &mut activate, span);
    for (name, samples) in [("verify", &mut verify), ("activate", &mut activate)] {
        let p99 = percentile(samples, 99);
        println!(
            "  {name} p99 {:.2} ms at 200 requests/s: target < 50 ms {}",
            p99.as_secs_f64() * 1000.0,
            verdict(p99 < Duration::from_millis(50))
        );
    }

    // No double bookings.
    let pool = PgPool::connect(&database.url).await?;
    let (receipts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM receipt")
        .fetch_one(&pool)
        .await?;
    let (paid,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM ledger_entry WHERE event_type = 'receipt_paid'")
            .fetch_one(&pool)
            .await?;
    let (doubles,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM receipt WHERE classification <> 'settled'")
            .fetch_one(&pool)
            .await?;
    let paid_expected = (2 * per_level * levels.len() + per_level) as i64;
    println!(
        "receipts stored {receipts}, booked {paid}, other than settled {doubles}, redeliveries {redelivered} (expected {paid_expected} booked, 0 other)"
    );
    ensure!(
        receipts == paid_expected && paid == paid_expected && doubles == 0,
        "double bookings"
    );
    drop(server);

    // The baselines: the same rows a receipt writes, no service in between.
    sqlx::query("CREATE TABLE bench_position (id BIGINT PRIMARY KEY, version BIGINT, state TEXT)")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO bench_position SELECT g, 1, 'valid' FROM generate_series(0, 999) g")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE SEQUENCE bench_entry_sequence START 1000000000")
        .execute(&pool)
        .await?;
    let count = 3000i64;
    let baseline_1 = bare_rate(&database.url, 0, count, 1, 32, Chain::HeadLock).await?;
    println!(
        "baseline 1: 32 concurrent bare transactions, one receipt each, under the chain-head lock: {baseline_1:.0} tx/s"
    );
    let baseline_2 = bare_rate(&database.url, count, count, 1, 32, Chain::Sequence).await?;
    println!(
        "baseline 2: 32 concurrent bare transactions, one receipt each, entries numbered by a sequence, no head lock: {baseline_2:.0} tx/s"
    );
    let baseline_3 = bare_rate(&database.url, 2 * count, 4 * count, 16, 2, Chain::HeadLock).await?;
    println!(
        "baseline 3: 2 concurrent writers, 16 receipts per transaction in multi-row inserts, one head lock each: {baseline_3:.0} receipts/s"
    );
    println!(
        "receipts alone through incasso at concurrency 64: {receipts_per_second:.0}/s (p99 {:.2} ms)",
        receipt_p99_64.as_secs_f64() * 1000.0
    );
    println!(
        "  ratio to baseline 1: {:.2}",
        receipts_per_second / baseline_1
    );
    println!(
        "  ratio to baseline 2: {:.2}: target >= 1.0 {}",
        receipts_per_second / baseline_2,
        verdict(receipts_per_second / baseline_2 >= 1.0)
    );
    println!(
        "  ratio to baseline 3: {:.2}: target >= 0.3 {}",
        receipts_per_second / baseline_3,
        verdict(receipts_per_second / baseline_3 >= 0.3)
    );
    pool.close().await;
    database.drop_database().await?;
    Ok(())
}
