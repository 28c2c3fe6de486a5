//! Benchmark of the ledger on PostgreSQL (issue: the ledger).
//!
//! Writes N entries (default 10 million) with the production writer, spread over one year:
//! for every position a `notice_issued` (3 lines, 4 notices) and a `receipt_paid` (3 lines,
//! 1 notice), and per 500 receipts a `reported` and a `cashed`. Then, against the real
//! `incasso` binary over gRPC, it prints ListEntries p50/p99 by notice number and by account +
//! month, ExportEntries rows/s with the server's RSS sampled along the export, and
//! VerifyLedger entries/s next to `sha256sum` over the same bytes (`previous_hash || body` of
//! every entry, read back from the database), with the ratio.
//!
//! ```text
//! cargo build --release -p incasso-server -p incasso-integration-tests
//! target/release/bench-ledger [entries]
//! ```
//! `INCASSO_BENCH_KEEP=1` keeps the populated database and prints its URL;
//! `INCASSO_BENCH_POPULATE_ONLY=1` stops after populating (and keeps it);
//! `INCASSO_BENCH_DATABASE_URL` reuses it instead of populating a new one.

// Rates, mebibytes and percentiles, never money.
#![allow(clippy::float_arithmetic)]

use std::io::Write;
use std::time::{Duration, Instant};

use rand::Rng;
use sea_orm::{ConnectionTrait, TransactionTrait};
use time::macros::datetime;
use time::{Duration as TimeDuration, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::debt_position::DebtKind;
use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::{Account, Cause, EntryDraft, EventType, Line};
use incasso_domain::notice_number::{IuvBase, NoticeNumber, SegregationCode};
use incasso_grpc::pb;
use incasso_grpc::pb::ledger_service_client::LedgerServiceClient;
use incasso_integration_tests::bench::{Server, peak_rss_kib, percentile, rss_kib};
use incasso_server::config::{FileConfig, Overrides, Settings};
use incasso_store::testing::{Engine, TestDatabase};

const BATCH: usize = 2000;
const START: OffsetDateTime = datetime!(2026-01-01 08:00 UTC);

fn line(account: Account, amount_cents: i64) -> Line {
    Line {
        account,
        amount_cents,
    }
}

/// The entries of position `k`: issue and receipt (and settlement every 500 receipts).
fn entries_of(
    k: u64,
    milan: &OrganizationFiscalCode,
    cm: &OrganizationFiscalCode,
) -> Vec<EntryDraft> {
    let segregation = SegregationCode::new(12).unwrap_or_else(|_| unreachable!());
    let notices: Vec<(String, String)> = (0..4)
        .map(|i| {
            let nav = NoticeNumber::issue(
                segregation,
                IuvBase::new(k * 4 + i + 1).unwrap_or_else(|_| unreachable!()),
            );
            (nav.as_str().to_owned(), nav.iuv().as_str().to_owned())
        })
        .collect();
    let psp = if k.is_multiple_of(3) {
        "BCITITMM"
    } else {
        "POSOIT22XXX"
    };
    let position = Some(Uuid::from_u128(u128::from(k) + 1));
    let mut drafts = vec![
        EntryDraft {
            event_type: EventType::NoticeIssued,
            creditor: milan.clone(),
            kind: Some(DebtKind::Tari),
            description: "notices issued".to_owned(),
            cause: Cause {
                debt_position_id: position,
                notices: notices.clone(),
                ..Cause::default()
            },
            lines: vec![
                line(Account::receivable(milan, DebtKind::Tari), 30000),
                line(Account::revenue(milan, DebtKind::Tari), -28500),
                line(Account::due_to_beneficiary(milan, cm), -1500),
            ],
        },
        EntryDraft {
            event_type: EventType::ReceiptPaid,
            creditor: milan.clone(),
            kind: Some(DebtKind::Tari),
            description: "notice paid".to_owned(),
            cause: Cause {
                debt_position_id: position,
                notices: vec![notices[0].clone()],
                receipt_id: Some(format!("R{k:012}")),
                ..Cause::default()
            },
            lines: vec![
                line(Account::receivable(milan, DebtKind::Tari), -30000),
                line(Account::due_to_beneficiary(milan, cm), 1500),
                line(Account::psp_clearing(milan, psp), 28500),
            ],
        },
    ];
    if k % 500 == 499 {
        let flow = format!("2026-FLOW-{k}");
        drafts.push(EntryDraft {
            event_type: EventType::Reported,
            creditor: milan.clone(),
            kind: None,
            description: format!("reported in flow {flow}"),
            cause: Cause {
                reporting_flow_id: Some(flow.clone()),
                ..Cause::default()
            },
            lines: vec![
                line(Account::in_transit(milan), 500 * 28500),
                line(Account::psp_clearing(milan, psp), -500 * 28500),
            ],
        });
        drafts.push(EntryDraft {
            event_type: EventType::Cashed,
            creditor: milan.clone(),
            kind: None,
            description: "cashed".to_owned(),
            cause: Cause {
                treasury_line_id: Some(format!("T{k}")),
                reporting_flow_id: Some(flow),
                ..Cause::default()
            },
            lines: vec![
                line(Account::treasury(milan), 500 * 28500),
                line(Account::in_transit(milan), -500 * 28500),
            ],
        });
    }
    drafts
}

/// Writes `target` entries with the production writer.
async fn populate(url: &str, target: u64) -> anyhow::Result<()> {
    let settings = Settings::resolve(
        FileConfig::default(),
        Overrides {
            database_url: Some(url.to_owned()),
            ..Overrides::default()
        },
    )?;
    let store = incasso_server::open_store(settings).await?;
    let milan = OrganizationFiscalCode::parse("01199250158")?;
    let cm = OrganizationFiscalCode::parse("08911820960")?;
    let mut written = 0u64;
    let mut k = 0u64;
    let step = TimeDuration::seconds(365 * 86_400) / (target as f64);
    let started = Instant::now();
    while written < target {
        let mut drafts = Vec::with_capacity(BATCH + 4);
        while drafts.len() < BATCH && written + (drafts.len() as u64) < target {
            drafts.extend(entries_of(k, &milan, &cm));
            k += 1;
        }
        drafts.truncate(usize::try_from(target - written)?);
        let now = START + step * (written as f64);
        let txn = store.db().begin().await?;
        let postings = drafts.into_iter().map(|d| (d, None)).collect();
        let chained =
            incasso_store::ledger::append(&txn, store.keys(), vec![], postings, now).await?;
        txn.commit().await?;
        written += chained.len() as u64;
        if written % 1_000_000 < BATCH as u64 {
            println!(
                "  written {written} entries ({:.0}/s)",
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    store.db().clone().close().await?;
    Ok(())
}

/// Writes what verification hashes, `previous_hash || body` of every entry in order, to a
/// file for `sha256sum`: the same bytes, read from the same database.
async fn dump_chain_bytes(url: &str) -> anyhow::Result<(std::path::PathBuf, u64)> {
    use futures::TryStreamExt;
    let pool = sea_orm::sqlx::PgPool::connect(url).await?;
    let path = std::env::temp_dir().join(format!(
        "incasso-ledger-canonical-{}.bin",
        std::process::id()
    ));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut bytes = 0u64;
    let mut rows = sea_orm::sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(
        "SELECT previous_hash, body FROM ledger_entry ORDER BY sequence",
    )
    .fetch(&pool);
    while let Some((previous_hash, body)) = rows.try_next().await? {
        file.write_all(&previous_hash)?;
        file.write_all(&body)?;
        bytes += (previous_hash.len() + body.len()) as u64;
    }
    file.flush()?;
    pool.close().await;
    Ok((path, bytes))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let reuse = std::env::var("INCASSO_BENCH_DATABASE_URL").ok();
    let database = match &reuse {
        Some(_) => None,
        None => Some(TestDatabase::create(Engine::Postgres).await?),
    };
    let url = reuse
        .clone()
        .unwrap_or_else(|| database.as_ref().map(|d| d.url.clone()).unwrap_or_default());
    println!("bench-ledger: {target} entries, PostgreSQL");
    if reuse.is_none() {
        let started = Instant::now();
        populate(&url, target).await?;
        println!("populated in {:.0} s", started.elapsed().as_secs_f64());
        sea_orm::Database::connect(&url)
            .await?
            .execute_unprepared("VACUUM ANALYZE")
            .await?;
        if std::env::var("INCASSO_BENCH_POPULATE_ONLY").is_ok() {
            println!("kept for INCASSO_BENCH_DATABASE_URL: {url}");
            return Ok(());
        }
    }
    let (canonical, canonical_bytes) = dump_chain_bytes(&url).await?;

    let (server, channel) = Server::start(&url).await?;
    let mut ledger = LedgerServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let head = ledger
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await?
        .into_inner();
    // 500 positions write 1002 entries (two each, plus a report and a cashing).
    let positions = (head.sequence as u64 * 500 / 1002).saturating_sub(1).max(1);
    let segregation = SegregationCode::new(12)?;
    let mut rng = rand::rng();

    let mut by_notice = Vec::new();
    for _ in 0..1000 {
        let k = rng.random_range(0..positions);
        let nav = NoticeNumber::issue(segregation, IuvBase::new(k * 4 + 1)?);
        let started = Instant::now();
        let page = ledger
            .list_entries(pb::ListEntriesRequest {
                notice_number: nav.to_string(),
                page_size: 100,
                ..Default::default()
            })
            .await?
            .into_inner();
        by_notice.push(started.elapsed());
        anyhow::ensure!(!page.entries.is_empty(), "no entries for {nav}");
    }
    let mut by_month = Vec::new();
    for _ in 0..1000 {
        let month = rng.random_range(1..=12u8);
        let from = time::Date::from_calendar_date(2026, time::Month::try_from(month)?, 1)?;
        let to = time::Date::from_calendar_date(
            if month == 12 { 2027 } else { 2026 },
            time::Month::try_from(if month == 12 { 1 } else { month + 1 })?,
            1,
        )?;
        let ts = |d: time::Date| prost_types::Timestamp {
            seconds: d.midnight().assume_utc().unix_timestamp(),
            nanos: 0,
        };
        let started = Instant::now();
        let page = ledger
            .list_entries(pb::ListEntriesRequest {
                account: "receivable:01199250158:tari".to_owned(),
                from: Some(ts(from)),
                to: Some(ts(to)),
                page_size: 100,
                ..Default::default()
            })
            .await?
            .into_inner();
        by_month.push(started.elapsed());
        anyhow::ensure!(
            page.entries.len() == 100,
            "a month holds more than 100 entries of the account"
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "ListEntries by notice number : p50 {:.2} ms  p99 {:.2} ms  (target p99 < 20 ms)",
        ms(percentile(&mut by_notice, 50)),
        ms(percentile(&mut by_notice, 99))
    );
    println!(
        "ListEntries by account+month : p50 {:.2} ms  p99 {:.2} ms  (target p99 < 20 ms)",
        ms(percentile(&mut by_month, 50)),
        ms(percentile(&mut by_month, 99))
    );

    // The export first, so that the memory it shows is its own and not what a verification
    // before it left behind; RSS is sampled every tenth of the way.
    let rss_before = rss_kib(server.pid()).unwrap_or(0);
    let started = Instant::now();
    let mut export = ledger
        .export_entries(pb::ExportEntriesRequest::default())
        .await?
        .into_inner();
    let mut exported = 0u64;
    let mut rss_samples = Vec::new();
    let tenth = (head.sequence as u64 / 10).max(1);
    while let Some(_entry) = export.message().await? {
        exported += 1;
        if exported.is_multiple_of(tenth) {
            rss_samples.push(rss_kib(server.pid()).unwrap_or(0));
        }
    }
    let export_time = started.elapsed();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let samples: Vec<String> = rss_samples
        .iter()
        .map(|k| format!("{:.0}", mib(*k)))
        .collect();
    println!(
        "ExportEntries: {exported} rows in {:.1} s = {:.0} rows/s; server RSS {:.1} MiB before, every 10%: [{}] MiB, peak {:.1} MiB",
        export_time.as_secs_f64(),
        exported as f64 / export_time.as_secs_f64(),
        mib(rss_before),
        samples.join(", "),
        mib(peak_rss_kib(server.pid()).unwrap_or(0))
    );

    let started = Instant::now();
    let report = ledger
        .verify_ledger(pb::VerifyLedgerRequest {
            chain_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let verify = started.elapsed();
    anyhow::ensure!(report.ok, "verify failed: {report:?}");
    let verify_rate = report.entries_checked as f64 / verify.as_secs_f64();
    println!(
        "VerifyLedger chain only: {} entries in {:.1} s = {verify_rate:.0} entries/s (target >= 500000)",
        report.entries_checked,
        verify.as_secs_f64()
    );
    let started = Instant::now();
    let deep = ledger
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    let deep_time = started.elapsed();
    anyhow::ensure!(deep.ok, "deep verify failed: {deep:?}");
    println!(
        "VerifyLedger deep (also every column, line and notice of the queryable tables): {:.1} s = {:.0} entries/s",
        deep_time.as_secs_f64(),
        deep.entries_checked as f64 / deep_time.as_secs_f64()
    );
    let started = Instant::now();
    let status = std::process::Command::new("sha256sum")
        .arg(&canonical)
        .stdout(std::process::Stdio::null())
        .status()?;
    let sha = started.elapsed();
    anyhow::ensure!(status.success());
    println!(
        "sha256sum over the same {canonical_bytes} bytes (previous_hash || body of every entry): {:.1} s; chain-only verify / sha256sum time ratio {:.1}",
        sha.as_secs_f64(),
        verify.as_secs_f64() / sha.as_secs_f64()
    );
    let _ = std::fs::remove_file(&canonical);

    drop(server);
    if let Some(database) = database {
        if std::env::var("INCASSO_BENCH_KEEP").is_ok() {
            println!("kept for INCASSO_BENCH_DATABASE_URL: {}", database.url);
        } else {
            database.drop_database().await?;
        }
    }
    Ok(())
}
