//! Benchmark of BulkCreateDebtPositions on PostgreSQL (issue: the foundation).
//!
//! Streams N TARI positions (a single payment plus a plan of three installments: four notices
//! each) through the real `incasso` binary, run as a child process on a fresh database, and
//! reports positions/s, notices/s and the server's peak RSS as the stream advances (it must
//! not grow with N). In the same run it writes the same rows into another fresh database
//! with plain multi-row INSERTs in transactions of the same size, no service in between, and
//! prints the ratio of the two rates.
//!
//! ```text
//! cargo build --release -p incasso-server -p incasso-integration-tests
//! target/release/bench-bulk-create [positions]        # default 200000
//! ```
//! PostgreSQL: `INCASSO_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432/postgres).

// Rates and mebibytes, never money.
#![allow(clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use sea_orm::sqlx::{self, PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::notice_number::{IuvBase, NoticeNumber, SegregationCode};
use incasso_grpc::pb;
use incasso_grpc::pb::notice_service_client::NoticeServiceClient;
use incasso_integration_tests::bench::{Server, peak_rss_kib};
use incasso_integration_tests::requests;
use incasso_store::testing::{Engine, TestDatabase};

/// Positions per transaction, as the service batches them.
const BATCH: usize = 500;

fn peak_rss_mib(pid: u32) -> f64 {
    peak_rss_kib(pid).map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

async fn run_service(
    positions: usize,
    database_url: &str,
) -> anyhow::Result<(Duration, usize, Vec<(usize, f64)>)> {
    let (server, channel) = Server::start(database_url).await?;
    let pid = server.pid();
    let mut client = NoticeServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let requests =
        futures::stream::iter(0..positions).map(|i| requests::tari(&format!("bench-{i}")));
    let started = Instant::now();
    let mut responses = client
        .bulk_create_debt_positions(requests)
        .await?
        .into_inner();
    let mut notices = 0usize;
    let mut done = 0usize;
    let mut rss = Vec::new();
    let checkpoints = [positions / 10, positions / 4, positions / 2, positions];
    while let Some(item) = responses.message().await? {
        match item.result {
            Some(pb::bulk_create_debt_positions_response::Result::DebtPosition(p)) => {
                notices += p
                    .payment_options
                    .iter()
                    .map(|o| o.installments.len())
                    .sum::<usize>();
            }
            other => bail!("item {} failed: {other:?}", item.index),
        }
        done += 1;
        if checkpoints.contains(&done) {
            rss.push((done, peak_rss_mib(pid)));
        }
    }
    let elapsed = started.elapsed();
    if done != positions {
        bail!("{done} results for {positions} positions");
    }
    drop(server);
    Ok((elapsed, notices, rss))
}

/// The rows the service writes for position `i`, written with plain multi-row INSERTs.
async fn run_baseline(positions: usize, pool: &PgPool) -> anyhow::Result<Duration> {
    let segregation = SegregationCode::new(12)?;
    let now = OffsetDateTime::now_utc();
    let hash = vec![7u8; 32];
    let nonce = vec![1u8; 12];
    let ciphertext = vec![2u8; 110];
    // The size of an encrypted CreateDebtPosition request.
    let document = vec![3u8; 1250];
    // The size of the canonical encoding of a TARI notice_issued entry.
    let body = vec![4u8; 620];
    // The service mirrors its configured creditors at start-up; so does the baseline.
    sqlx::query(
        "INSERT INTO creditor (fiscal_code, name, segregation_code, created_at, updated_at) \
         VALUES ('01199250158', 'Comune di Milano', 12, now(), now())",
    )
    .execute(pool)
    .await?;
    let started = Instant::now();
    let mut next_base = 1u64;
    for start in (0..positions).step_by(BATCH) {
        let end = (start + BATCH).min(positions);
        let mut tx = pool.begin().await?;
        let ids: Vec<(Uuid, Uuid)> = (start..end)
            .map(|_| (Uuid::now_v7(), Uuid::now_v7()))
            .collect();
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO command (creditor_fiscal_code, request_id, kind, request_sha256, debt_position_id, created_at) ",
        );
        q.push_values(ids.iter().enumerate(), |mut b, (k, (id, _))| {
            b.push_bind("01199250158")
                .push_bind(format!("bench-{}", start + k))
                .push_bind("create")
                .push_bind("0".repeat(64))
                .push_bind(*id)
                .push_bind(now);
        });
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO personal_data (id, key_id, nonce, ciphertext, created_at) ",
        );
        q.push_values(&ids, |mut b, (_, pd)| {
            b.push_bind(*pd)
                .push_bind("dev")
                .push_bind(&nonce)
                .push_bind(&ciphertext)
                .push_bind(now);
        });
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO debt_position (id, creditor_fiscal_code, request_id, kind, description, state, expires_on, \
             debtor_entity_type, debtor_fiscal_code_hash, personal_data_id, tari_tax_year, tari_property_ref, \
             fine_report_number, fine_violation_date, fine_notification_date, fine_reduced_amount_cents, \
             fine_full_amount_cents, fine_increased_amount_cents, fine_notification_costs_cents, school_pupil_ref, \
             school_service, school_year, school_month, version, cancellation_reason, created_at, updated_at, cancelled_at) ",
        );
        q.push_values(ids.iter().enumerate(), |mut b, (k, (id, pd))| {
            b.push_bind(*id)
                .push_bind("01199250158")
                .push_bind(format!("bench-{}", start + k))
                .push_bind("tari")
                .push_bind("TARI 2026 utenza domestica")
                .push_bind("valid")
                .push_bind(None::<time::Date>)
                .push_bind("F")
                .push_bind(&hash)
                .push_bind(*pd)
                .push_bind(Some(2026))
                .push_bind(Some("UT000123"))
                .push_bind(None::<String>)
                .push_bind(None::<time::Date>)
                .push_bind(None::<time::Date>)
                .push_bind(None::<i64>)
                .push_bind(None::<i64>)
                .push_bind(None::<i64>)
                .push_bind(None::<i64>)
                .push_bind(None::<String>)
                .push_bind(None::<String>)
                .push_bind(None::<String>)
                .push_bind(None::<String>)
                .push_bind(1i64)
                .push_bind(None::<String>)
                .push_bind(now)
                .push_bind(now)
                .push_bind(None::<OffsetDateTime>);
        });
        q.build().execute(&mut *tx).await?;
        let mut options = Vec::new();
        let mut installments = Vec::new();
        let mut transfers = Vec::new();
        for (id, _) in &ids {
            for (o, (label, plan)) in [
                ("Rata unica", vec![30000i64]),
                ("Tre rate", vec![10000, 10000, 10000]),
            ]
            .into_iter()
            .enumerate()
            {
                let option_id = Uuid::now_v7();
                options.push((option_id, *id, o as i16, label));
                for (i, amount) in plan.into_iter().enumerate() {
                    let nav = NoticeNumber::issue(segregation, IuvBase::new(next_base)?);
                    next_base += 1;
                    let installment_id = Uuid::now_v7();
                    let tefa = amount / 20;
                    transfers.push((
                        installment_id,
                        1i16,
                        "01199250158",
                        amount - tefa,
                        "IT02N0306909400000012345678",
                    ));
                    transfers.push((
                        installment_id,
                        2i16,
                        "08911820960",
                        tefa,
                        "IT66Q0503401633000000098765",
                    ));
                    installments.push((
                        installment_id,
                        *id,
                        option_id,
                        o as i16,
                        i as i16,
                        nav,
                        amount,
                    ));
                }
            }
        }
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO payment_option (id, debt_position_id, option_index, label) ",
        );
        q.push_values(&options, |mut b, (id, p, o, label)| {
            b.push_bind(*id)
                .push_bind(*p)
                .push_bind(*o)
                .push_bind(*label);
        });
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO installment (id, debt_position_id, payment_option_id, option_index, installment_index, \
             creditor_fiscal_code, notice_number, iuv, amount_cents, due_date, expiry_date, state, paid_at, \
             created_at, updated_at) ",
        );
        let due = time::macros::date!(2026 - 07 - 31);
        q.push_values(&installments, |mut b, (id, p, o, oi, ii, nav, amount)| {
            b.push_bind(*id)
                .push_bind(*p)
                .push_bind(*o)
                .push_bind(*oi)
                .push_bind(*ii)
                .push_bind("01199250158")
                .push_bind(nav.as_str().to_owned())
                .push_bind(nav.iuv().as_str().to_owned())
                .push_bind(*amount)
                .push_bind(due)
                .push_bind(None::<time::Date>)
                .push_bind("unpaid")
                .push_bind(None::<OffsetDateTime>)
                .push_bind(now)
                .push_bind(now);
        });
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO transfer (installment_id, transfer_index, beneficiary_fiscal_code, amount_cents, \
             remittance_information, iban, postal_iban, taxonomy_code) ",
        );
        q.push_values(
            &transfers,
            |mut b, (id, index, beneficiary, amount, iban)| {
                b.push_bind(*id)
                    .push_bind(*index)
                    .push_bind(*beneficiary)
                    .push_bind(*amount)
                    .push_bind("TARI 2026 utenza domestica")
                    .push_bind(*iban)
                    .push_bind(None::<String>)
                    .push_bind("9/0101101IM/");
            },
        );
        q.build().execute(&mut *tx).await?;
        // The ledger rows the service writes with each position: the request as source
        // document, one entry, its three lines and four notices, and the chain head.
        let documents: Vec<Uuid> = ids.iter().map(|_| Uuid::now_v7()).collect();
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO source_document (id, kind, media_type, sha256, key_id, nonce, ciphertext, created_at) ",
        );
        q.push_values(&documents, |mut b, id| {
            b.push_bind(*id)
                .push_bind("grpc.CreateDebtPosition")
                .push_bind("application/json")
                .push_bind(&hash)
                .push_bind("dev")
                .push_bind(&nonce)
                .push_bind(&document)
                .push_bind(now);
        });
        q.build().execute(&mut *tx).await?;
        let (last, _): (i64, Vec<u8>) = sqlx::query_as(
            "UPDATE ledger_head SET id = id WHERE id = 1 RETURNING last_sequence, last_hash",
        )
        .fetch_one(&mut *tx)
        .await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO ledger_entry (sequence, id, event_type, creditor_fiscal_code, kind, description, \
             debt_position_id, receipt_id, reporting_flow_id, treasury_line_id, corrects_sequence, \
             source_document_id, source_document_sha256, recorded_at, recorded_micros, previous_hash, hash, body) ",
        );
        q.push_values(
            ids.iter().zip(&documents).enumerate(),
            |mut b, (k, ((id, _), doc))| {
                b.push_bind(last + 1 + k as i64)
                    .push_bind(Uuid::now_v7())
                    .push_bind("notice_issued")
                    .push_bind("01199250158")
                    .push_bind("tari")
                    .push_bind("notices issued")
                    .push_bind(*id)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(None::<i64>)
                    .push_bind(*doc)
                    .push_bind(&hash)
                    .push_bind(now)
                    .push_bind(now.unix_timestamp() * 1_000_000)
                    .push_bind(&hash)
                    .push_bind(&hash)
                    .push_bind(&body);
            },
        );
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO ledger_line (entry_sequence, line_index, account, account_type, creditor_fiscal_code, \
             kind, amount_cents) ",
        );
        let lines = [
            (
                "receivable:01199250158:tari",
                "receivable",
                Some("tari"),
                30000i64,
            ),
            ("revenue:01199250158:tari", "revenue", Some("tari"), -28500),
            (
                "due_to_beneficiary:01199250158:08911820960",
                "due_to_beneficiary",
                None,
                -1500,
            ),
        ];
        q.push_values(
            (0..ids.len()).flat_map(|k| lines.iter().enumerate().map(move |l| (k, l))),
            |mut b, (k, (i, line))| {
                b.push_bind(last + 1 + k as i64)
                    .push_bind(i as i16)
                    .push_bind(line.0)
                    .push_bind(line.1)
                    .push_bind("01199250158")
                    .push_bind(line.2)
                    .push_bind(line.3);
            },
        );
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO ledger_entry_notice (entry_sequence, notice_index, notice_number, iuv) ",
        );
        q.push_values(
            installments.iter().enumerate(),
            |mut b, (n, (_, _, _, _, _, nav, _))| {
                b.push_bind(last + 1 + (n / 4) as i64)
                    .push_bind((n % 4) as i16)
                    .push_bind(nav.as_str().to_owned())
                    .push_bind(nav.iuv().as_str().to_owned());
            },
        );
        q.build().execute(&mut *tx).await?;
        sqlx::query("UPDATE ledger_head SET last_sequence = $1, last_hash = $2, last_recorded_at = $3 WHERE id = 1")
            .bind(last + ids.len() as i64)
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let positions: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    println!(
        "bench-bulk-create: {positions} TARI positions ({} notices), PostgreSQL",
        positions * 4
    );

    let baseline_db = TestDatabase::create(Engine::Postgres).await?;
    let migrated = incasso_store::db::connect(&baseline_db.url, 4).await?;
    incasso_store::db::migrate(&migrated).await?;
    migrated.close().await?;
    let pool = PgPool::connect(&baseline_db.url).await?;
    let baseline = run_baseline(positions, &pool).await?;
    pool.close().await;
    baseline_db.drop_database().await?;

    let service_db = TestDatabase::create(Engine::Postgres).await?;
    let (elapsed, notices, rss) = run_service(positions, &service_db.url).await?;
    service_db.drop_database().await?;

    let rate = |d: Duration| positions as f64 / d.as_secs_f64();
    println!(
        "service : {:>9.0} positions/s {:>9.0} notices/s  ({:.1} s)",
        rate(elapsed),
        notices as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "baseline: {:>9.0} positions/s {:>9.0} notices/s  ({:.1} s)  plain multi-row INSERT, same rows",
        rate(baseline),
        (positions * 4) as f64 / baseline.as_secs_f64(),
        baseline.as_secs_f64()
    );
    println!(
        "ratio service/baseline: {:.2}  (target >= 0.50)",
        baseline.as_secs_f64() / elapsed.as_secs_f64()
    );
    for (done, mib) in rss {
        println!(
            "server peak RSS after {done:>7} positions: {mib:.1} MiB  (target < 300 MiB, flat)"
        );
    }
    Ok(())
}
