//! Benchmark of reconciliation on PostgreSQL (issue 12, `bench-recon`).
//!
//! Loads one day of N receipts (default 1,000,000) paid to the Comune di Milano, outside the
//! timing, in the order they would arrive (no IUV order): COPY into `receipt` and
//! `receipt_transfer` as the receipt path leaves them (notices
//! incasso did not issue, so classification `unknown_notice`), and each receipt's booking
//! (`receipt_unknown_notice`: `psp_clearing` against suspense) through the production ledger
//! writer, since the books' `reported` postings read it. One receipt in 50 has two transfers
//! to the creditor. Then it writes the day's evidence as files: one FlussoRiversamento per
//! PSP (80 PSPs; one transfer in 1000 is never reported, one in 5000 is reported with 1 euro
//! more) and one camt.053 statement with a credit per flow (every 20th flow split in two
//! credits, every 20th other one 1.50 euro short) and a few unrelated credits.
//!
//! Timed: the receipts' labels (`Store::refresh_reconciliation`, what `incasso recon refresh`
//! runs, and what the first import would do otherwise), then through
//! `Store::import_reconciliation_file` (what `incasso recon import` runs per file) the FdR
//! import (every flow file, one after the other) and the treasury import; their sum is the
//! day labelled; the process's peak RSS (`VmHWM`) after loading and after each
//! phase; an incremental step, one new flow of 1,000 lines (receipts loaded with the others,
//! reported by no flow of the day) and then its credit in a next-day statement. As the
//! baseline, in the same run, one SQL query joins the same receipt transfers to flow lines
//! and credits (exact matches only), with hash joins and with the planner's own plan, the
//! faster counting; the ratio day labelled / baseline is printed.
//!
//! ```text
//! cargo build --release -p incasso-integration-tests --bin bench-recon
//! target/release/bench-recon [receipts]
//! ```
//! Between phases (not timed) it runs `ANALYZE`, as autovacuum would after each phase's
//! commit; with `INCASSO_BENCH_VACUUM=1`, `VACUUM ANALYZE`, as autovacuum also does after a
//! phase's inserts and deletes (the refresh empties the receipts' queue, the FdR import adds
//! a line, a position and a notice per key): in a real day the phases are hours apart.
//!
//! `INCASSO_TEST_PG_URL` names the PostgreSQL server (as for the tests and bench-node); `INCASSO_BENCH_KEEP=1` keeps the database and prints its URL.
//! `INCASSO_BENCH_PSPS=N` (1 to 999, default 80) spreads the day over N PSPs' flows;
//! `INCASSO_BENCH_IUVS_PER_SLICE=N` sets `[reconciliation] iuvs_per_slice`.
//! The imports leave plain keys' labels unwritten (`[reconciliation] plain_keys_composed`, the
//! setting once every replica reads them); `INCASSO_BENCH_PLAIN_KEYS=written` writes every key.
//! `INCASSO_BENCH_STATEMENTS=N` prints each phase's `N` costliest statements when the server
//! loads `pg_stat_statements`. Under each phase it prints the WAL it wrote (and how many
//! full-page images), the checkpoints it spanned and the buffers the backend had to write out
//! itself: where a phase stops scaling linearly with N.

// Rates, mebibytes and ratios, never money.
#![allow(clippy::float_arithmetic)]

/// The `incasso` binary's allocator, so that the import runs here as `incasso recon import`
/// runs it (glibc's malloc took about a third of this process's CPU).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use time::macros::{date, datetime};
use time::{Date, Duration as TimeDuration, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::rules::{Receipt as LedgerReceipt, receipt_unknown_notice};
use incasso_domain::notice_number::{IuvBase, NoticeNumber, SegregationCode};
use incasso_domain::reconciliation::{
    FlowId, FlowLine, OutcomeCode, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, camt, fdr_xml};
use incasso_server::config::{FileConfig, Overrides, SAMPLE_MILANO_BANK_IBAN, Settings};
use incasso_store::Store;
use incasso_store::reconciliation::TreasuryAccounts;
use incasso_store::testing::{Engine, TestDatabase};

const CREDITOR: &str = "01199250158";
/// PSPs, one flow each, unless `INCASSO_BENCH_PSPS` says otherwise: fewer PSPs give a smaller
/// day the flow sizes of a bigger one (a million receipts over 80 PSPs is 12,500 per flow),
/// which is what an import's peak memory follows.
fn psps() -> u64 {
    static PSPS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PSPS.get_or_init(|| {
        std::env::var("INCASSO_BENCH_PSPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &u64| (1..=999).contains(&n))
            .unwrap_or(80)
    })
}
/// Receipts of the incremental step's flow.
const INCREMENTAL_LINES: u64 = 1000;
/// The day paid.
const DAY: Date = date!(2026 - 11 - 16);
/// Rows per COPY chunk and entries per ledger transaction.
const CHUNK: u64 = 5000;

/// Receipt `k` of the day: its IUV, notice, receipt id, PSP and transfers (idTransfer, cents).
struct Paid {
    iuv: String,
    notice: String,
    receipt_id: String,
    psp: String,
    transfers: Vec<(u8, i64)>,
    paid_at: OffsetDateTime,
}

fn paid(k: u64, n: u64) -> Paid {
    // Segregation code 21: notices of another system, paid to the creditor; reconciliation
    // treats them like its own.
    let segregation = SegregationCode::new(21).unwrap_or_else(|_| unreachable!());
    let nav = NoticeNumber::issue(
        segregation,
        IuvBase::new(k + 1).unwrap_or_else(|_| unreachable!()),
    );
    let amount = 500 + i64::try_from((k * 7919) % 20_000).unwrap_or(0);
    let transfers = if k % 50 == 7 {
        vec![(1, amount), (2, 250 + amount / 3)]
    } else {
        vec![(1, amount)]
    };
    let psp = if k < n {
        format!("PSPBENCH{:03}", k % psps())
    } else {
        "PSPBENCHINC".to_owned()
    };
    let total = n + INCREMENTAL_LINES;
    // Spread over the day from 06:00 Rome.
    let paid_at = datetime!(2026-11-16 06:00 +01:00)
        + TimeDuration::milliseconds(i64::try_from(k * 60_000_000 / total).unwrap_or(0));
    Paid {
        iuv: nav.iuv().as_str().to_owned(),
        notice: nav.as_str().to_owned(),
        receipt_id: format!("{:011}-{k:010}", 20_261_116),
        psp,
        transfers,
        paid_at,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The order receipts arrive in: the `i`-th to arrive is receipt `nth(i)`. Notices are
/// numbered (their IUVs) when they are issued and paid whenever the citizen pays, so the
/// tables hold receipts in no IUV order; loaded in IUV order instead, every read of a slice
/// of consecutive IUVs would find its rows on neighbouring pages, which production never
/// does. A multiplication by a number prime to `total` is a permutation of `0..total`.
struct Arrival {
    stride: u64,
    total: u64,
}

impl Arrival {
    fn new(total: u64) -> Self {
        let total = total.max(1);
        let mut stride: u64 = 7919;
        while gcd(stride, total) != 1 {
            stride += 2;
        }
        Self { stride, total }
    }

    fn nth(&self, i: u64) -> u64 {
        let product = u128::from(i) * u128::from(self.stride) % u128::from(self.total);
        u64::try_from(product).unwrap_or_else(|_| unreachable!())
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Loads receipts `0..total` with COPY in the order they arrive ([`Arrival`]), and their
/// bookings with the ledger writer.
async fn load_receipts(store: &Store, url: &str, n: u64, total: u64) -> anyhow::Result<()> {
    use sea_orm::sqlx::postgres::PgPoolCopyExt;
    let pool = sea_orm::sqlx::PgPool::connect(url).await?;
    let source_document = Uuid::now_v7();
    let arrival = Arrival::new(total);
    let mut k = 0;
    while k < total {
        let end = (k + CHUNK).min(total);
        let mut receipts = String::new();
        let mut transfers = String::new();
        let mut pending = String::new();
        for i in (k..end).map(|i| arrival.nth(i)) {
            let p = paid(i, n);
            let row = Uuid::now_v7();
            let amount: i64 = p.transfers.iter().map(|t| t.1).sum();
            let at = rfc3339(p.paid_at);
            let received = rfc3339(p.paid_at + TimeDuration::seconds(3));
            let _ = writeln!(
                receipts,
                "{row}\t{CREDITOR}\t{}\t{}\t{}\t{CREDITOR}\t{:064x}\t{source_document}\tpaSendRTV2\t{}\tCH{}\t{amount}\t100\t{at}\t{at}\tf\tunknown_notice\t\t\\N\t\\N\t{received}",
                p.iuv, p.receipt_id, p.notice, i, p.psp, p.psp
            );
            let _ = writeln!(pending, "{CREDITOR}\t{}", p.iuv);
            for (index, (id_transfer, cents)) in p.transfers.iter().enumerate() {
                let _ = writeln!(
                    transfers,
                    "{row}\t{index}\t{CREDITOR}\t{}\t{}\t{id_transfer}\t{CREDITOR}\t{SAMPLE_MILANO_BANK_IBAN}\t{cents}\t/RFB/{}/{cents}\t9/0101100IM/",
                    p.iuv, p.receipt_id, p.iuv
                );
            }
        }
        let mut copy = pool
            .copy_in_raw(
                "COPY receipt (id, creditor_fiscal_code, iuv, receipt_id, notice_number, \
                 receiving_creditor, content_sha256, source_document_id, primitive, psp_id, \
                 channel_id, payment_amount_cents, fee_cents, payment_date_time, paid_at, \
                 stand_in, classification, flags, debt_position_id, installment_id, \
                 received_at) FROM STDIN",
            )
            .await?;
        copy.send(receipts.as_bytes()).await?;
        copy.finish().await?;
        let mut copy = pool
            .copy_in_raw(
                "COPY receipt_transfer (receipt_row_id, transfer_index, creditor_fiscal_code, \
                 iuv, receipt_id, id_transfer, beneficiary_fiscal_code, iban, amount_cents, \
                 remittance_information, transfer_category) FROM STDIN",
            )
            .await?;
        copy.send(transfers.as_bytes()).await?;
        copy.finish().await?;
        // What the receipt path queues for reconciliation: the IUVs to label.
        let mut copy = pool
            .copy_in_raw("COPY recon_pending_iuv (creditor_fiscal_code, iuv) FROM STDIN")
            .await?;
        copy.send(pending.as_bytes()).await?;
        copy.finish().await?;

        // The bookings, as the receipt path posts them for a notice incasso did not issue.
        let books = OrganizationFiscalCode::parse(CREDITOR)?;
        let postings: Vec<_> = (k..end)
            .map(|i| arrival.nth(i))
            .filter_map(|i| {
                let p = paid(i, n);
                receipt_unknown_notice(
                    &books,
                    &LedgerReceipt {
                        psp: p.psp.clone(),
                        receipt_id: p.receipt_id.clone(),
                        notice_number: p.notice.clone(),
                        iuv: p.iuv.clone(),
                        transfers: p.transfers.iter().map(|t| (books.clone(), t.1)).collect(),
                    },
                )
            })
            .map(|d| (d, None))
            .collect();
        let txn = store.db().begin().await?;
        incasso_store::ledger::append(
            &txn,
            store.keys(),
            vec![],
            postings,
            OffsetDateTime::now_utc(),
        )
        .await?;
        txn.commit().await?;
        k = end;
        if k % 200_000 < CHUNK {
            println!("  loaded {k} receipts");
        }
    }
    pool.close().await;
    Ok(())
}

/// Whether receipt `k`'s transfers are reported in the day's flows.
fn reported(k: u64) -> bool {
    k % 1000 != 999
}

fn flow_id(p: u64) -> FlowId {
    FlowId::parse(&format!("2026-11-17PSPBENCH{p:03}-0001")).unwrap_or_else(|_| unreachable!())
}

fn line_of(p: &Paid, id_transfer: u8, cents: i64) -> FlowLine {
    FlowLine {
        key: TransferKey::new(
            incasso_domain::notice_number::Iuv::parse(&p.iuv).unwrap_or_else(|_| unreachable!()),
            &p.receipt_id,
            TransferIndex::new(i64::from(id_transfer)).unwrap_or_else(|_| unreachable!()),
        )
        .unwrap_or_else(|_| unreachable!()),
        amount_cents: cents,
        outcome: OutcomeCode::parse_code("0").unwrap_or_else(|_| unreachable!()),
        paid_on: DAY,
    }
}

fn flow(
    id: FlowId,
    psp: &str,
    regulation_date: Date,
    trn: String,
    lines: Vec<FlowLine>,
) -> ReportingFlow {
    ReportingFlow {
        flow_id: id,
        revision: 0,
        created_at: regulation_date.midnight().assume_utc() + TimeDuration::hours(6),
        psp_id: psp.to_owned(),
        trn,
        regulation_date,
        total_cents: lines.iter().map(|l| l.amount_cents).sum(),
        lines,
    }
}

fn causale(flow: &FlowId) -> String {
    format!("/PUR/LGPE-RIVERSAMENTO/URI/{flow}")
}

/// The day's files: one flow per PSP and one statement. Returns the flow files in order, the
/// statement, and (lines, transfer keys reported exactly, credits).
fn write_day(dir: &Path, n: u64) -> anyhow::Result<(Vec<PathBuf>, PathBuf, (u64, u64))> {
    std::fs::create_dir_all(dir.join("fdr"))?;
    let regulation = DAY.next_day().unwrap_or(DAY);
    let mut files = Vec::new();
    let mut entries = Vec::new();
    let mut lines_total = 0;
    for p in 0..psps() {
        let mut lines = Vec::new();
        let mut k = p;
        while k < n {
            if reported(k) {
                let paid = paid(k, n);
                for (id_transfer, cents) in &paid.transfers {
                    let cents = if k % 5000 == 4321 {
                        cents + 100
                    } else {
                        *cents
                    };
                    lines.push(line_of(&paid, *id_transfer, cents));
                }
            }
            k += psps();
        }
        lines_total += lines.len() as u64;
        let id = flow_id(p);
        let f = flow(
            id.clone(),
            &format!("PSPBENCH{p:03}"),
            regulation,
            format!("TRN2026111700{p:05}"),
            lines,
        );
        let path = dir.join("fdr").join(format!("{id}.xml"));
        std::fs::write(&path, fdr_xml(&f, CREDITOR))?;
        files.push(path);
        let value = regulation.next_day().unwrap_or(regulation);
        if p % 20 == 3 {
            let half = f.total_cents / 2;
            entries.push(CamtEntry::credit(
                &format!("CRD{p:05}A"),
                half,
                value,
                &causale(&id),
            ));
            entries.push(CamtEntry::credit(
                &format!("CRD{p:05}B"),
                f.total_cents - half,
                value,
                &causale(&id),
            ));
        } else {
            let cents = if p % 20 == 7 {
                f.total_cents - 150
            } else {
                f.total_cents
            };
            let mut entry = CamtEntry::credit(&format!("CRD{p:05}A"), cents, value, &causale(&id));
            entry.trn = Some(f.trn.clone());
            entries.push(entry);
        }
    }
    for u in 0..5 {
        entries.push(CamtEntry::credit(
            &format!("OTHER{u:05}"),
            123_456 + u,
            regulation.next_day().unwrap_or(regulation),
            "RIMBORSO SPESE CONDOMINIALI",
        ));
    }
    let statement = dir.join("statement-2026-11-18.xml");
    std::fs::write(
        &statement,
        camt(
            CamtMessage::Statement,
            CamtVersion::V08,
            SAMPLE_MILANO_BANK_IBAN,
            regulation,
            regulation.next_day().unwrap_or(regulation),
            &entries,
        ),
    )?;
    let credits = entries.len() as u64;
    Ok((files, statement, (lines_total, credits)))
}

/// The incremental step's files: a flow of the receipts `n..n+1000` and its credit.
fn write_incremental(dir: &Path, n: u64) -> anyhow::Result<(PathBuf, PathBuf)> {
    let regulation = date!(2026 - 11 - 19);
    let mut lines = Vec::new();
    for k in n..n + INCREMENTAL_LINES {
        let paid = paid(k, n);
        let (id_transfer, cents) = paid.transfers[0];
        lines.push(line_of(&paid, id_transfer, cents));
        if lines.len() as u64 == INCREMENTAL_LINES {
            break;
        }
    }
    let id = FlowId::parse("2026-11-19PSPBENCHINC-0001")?;
    let f = flow(
        id.clone(),
        "PSPBENCHINC",
        regulation,
        "TRNINC".to_owned(),
        lines,
    );
    let flow_path = dir.join(format!("{id}.xml"));
    std::fs::write(&flow_path, fdr_xml(&f, CREDITOR))?;
    let credit = CamtEntry::credit("CRDINC", f.total_cents, regulation, &causale(&id));
    let statement = dir.join("statement-2026-11-19.xml");
    std::fs::write(
        &statement,
        camt(
            CamtMessage::Statement,
            CamtVersion::V08,
            SAMPLE_MILANO_BANK_IBAN,
            regulation,
            regulation,
            &[credit],
        ),
    )?;
    Ok((flow_path, statement))
}

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> f64 {
    incasso_integration_tests::bench::peak_rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

async fn import(
    store: &Store,
    accounts: &TreasuryAccounts,
    files: &[PathBuf],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for file in files {
        let outcome = store.import_reconciliation_file(file, accounts).await?;
        anyhow::ensure!(
            !outcome.already_imported && (outcome.flows_added + outcome.credits_added) > 0,
            "{} added nothing",
            file.display()
        );
    }
    Ok(started.elapsed())
}

/// The baseline: one query joining the creditor's receipt transfers to the latest flow lines
/// reporting them with the same amount and to the credits naming those flows with their
/// total (exact matches only). The physical limit of that work is hash joins over the tables
/// read once, in memory: PostgreSQL's own plan misjudges the credits' join (one row expected,
/// eighty found) and probes two indexes per line instead, about seven times slower at a
/// million (10 s against 1.5 s). So each of three rounds runs the query both ways, the
/// planner's plan and hash joins only (`enable_nestloop` off, `work_mem` for the hashes), and
/// the best time of either is the baseline.
async fn baseline(db: &sea_orm::DatabaseConnection) -> anyhow::Result<Baseline> {
    let sql = "SELECT COUNT(*) AS matched FROM receipt_transfer t \
         JOIN receipt r ON r.id = t.receipt_row_id \
         JOIN recon_flow_line l ON l.iuv = t.iuv AND l.receipt_id = t.receipt_id \
           AND l.id_transfer = t.id_transfer AND l.amount_cents = t.amount_cents \
         JOIN recon_flow f ON f.id = l.flow_row_id AND f.creditor_fiscal_code = $1 \
         JOIN recon_credit c ON c.creditor_fiscal_code = f.creditor_fiscal_code \
           AND c.causale = '/PUR/LGPE-RIVERSAMENTO/URI/' || f.flow_id \
           AND c.amount_cents = f.total_cents \
         WHERE t.beneficiary_fiscal_code = $1 AND r.classification <> 'not_paid'";
    let mut out = Baseline {
        planned: Duration::MAX,
        hashed: Duration::MAX,
        matched: 0,
    };
    for _ in 0..3 {
        for hash_joins in [false, true] {
            let txn = db.begin().await?;
            if hash_joins {
                txn.execute_unprepared(
                    "SET LOCAL enable_nestloop = off; SET LOCAL work_mem = '256MB'",
                )
                .await?;
            }
            let started = Instant::now();
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [CREDITOR.into()],
                ))
                .await?
                .ok_or_else(|| anyhow::anyhow!("the baseline returned no row"))?;
            let took = started.elapsed();
            txn.commit().await?;
            let matched: i64 = row.try_get("", "matched")?;
            anyhow::ensure!(
                out.matched == 0 || matched == out.matched,
                "the baseline's two plans found {matched} and {} transfers",
                out.matched
            );
            out.matched = matched;
            let best = if hash_joins {
                &mut out.hashed
            } else {
                &mut out.planned
            };
            *best = (*best).min(took);
        }
    }
    Ok(out)
}

/// The baseline's best times, by plan, and the transfers it matched.
struct Baseline {
    /// With the plan PostgreSQL chooses.
    planned: Duration,
    /// With hash joins only.
    hashed: Duration,
    matched: i64,
}

impl Baseline {
    /// The faster of the two plans.
    fn best(&self) -> Duration {
        self.planned.min(self.hashed)
    }
}

/// Planner statistics between phases, not timed: what autovacuum does after a phase commits
/// hundreds of thousands of rows (this machine's PostgreSQL runs with autovacuum off). Without
/// them the planner still sees the reconciliation tables as empty and reads labels by IUV
/// through the wrong index.
async fn analyze(store: &Store) -> anyhow::Result<()> {
    let vacuum = std::env::var("INCASSO_BENCH_VACUUM").is_ok_and(|v| v == "1");
    store
        .db()
        .execute_unprepared(if vacuum { "VACUUM ANALYZE" } else { "ANALYZE" })
        .await?;
    Ok(())
}

/// The PostgreSQL settings the figures depend on most, printed with them: the same import
/// takes very different times with the 128 MB of shared buffers a default cluster has and with
/// the memory a production server gives it.
async fn server_settings(db: &impl ConnectionTrait) -> anyhow::Result<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name IN \
             ('server_version', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', \
             'wal_compression', 'synchronous_commit', 'autovacuum') ORDER BY name",
        ))
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let value: String = row.try_get("", "value")?;
        out.push(format!("{name}={value}"));
    }
    Ok(out.join(" "))
}

/// With `INCASSO_BENCH_STATEMENTS=N` (and `pg_stat_statements` loaded on the server), where a
/// phase's database time went: its `N` costliest statements, printed after it. Not timed
/// (the statistics are reset before each phase and read after it).
struct StatementProfile {
    top: Option<usize>,
}

impl StatementProfile {
    fn from_env() -> anyhow::Result<Self> {
        let top = match std::env::var("INCASSO_BENCH_STATEMENTS") {
            Ok(n) => Some(n.parse().map_err(|e| {
                anyhow::anyhow!("INCASSO_BENCH_STATEMENTS={n} is not a number of statements: {e}")
            })?),
            Err(_) => None,
        };
        Ok(Self { top })
    }

    async fn reset(&self, db: &impl ConnectionTrait) -> anyhow::Result<()> {
        if self.top.is_some() {
            db.execute_unprepared(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
                 SELECT pg_stat_statements_reset()",
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "INCASSO_BENCH_STATEMENTS needs pg_stat_statements in the server's \
                     shared_preload_libraries: {e}"
                )
            })?;
        }
        Ok(())
    }

    async fn print(&self, db: &impl ConnectionTrait, phase: &str) -> anyhow::Result<()> {
        let Some(top) = self.top else {
            return Ok(());
        };
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT total_exec_time + total_plan_time AS ms, calls, rows, \
                 regexp_replace(query, '\\s+', ' ', 'g') AS query FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 ORDER BY 1 DESC LIMIT $1",
                [i64::try_from(top)?.into()],
            ))
            .await?;
        println!("  {phase}: costliest statements");
        for row in rows {
            let ms: f64 = row.try_get("", "ms")?;
            let calls: i64 = row.try_get("", "calls")?;
            let count: i64 = row.try_get("", "rows")?;
            let query: String = row.try_get("", "query")?;
            let query: String = query.chars().take(150).collect();
            println!("  {:9.0} ms {calls:7} calls {count:9} rows  {query}", ms);
        }
        Ok(())
    }
}

/// What a phase cost the server's write-ahead log and checkpoints: read before and after it
/// (`pg_stat_wal`, `pg_stat_bgwriter`; cluster-wide, so meaningful on an otherwise idle
/// server). Random index insertions over indexes larger than the shared buffers show here as
/// full-page images and buffers the backend itself had to write out.
#[derive(Debug, Clone)]
struct WriteCost {
    /// Where the log was, for `pg_walinspect` over a phase's records.
    wal_lsn: String,
    wal_bytes: i64,
    wal_full_page_images: i64,
    checkpoints: i64,
    buffers_written_by_backend: i64,
}

impl WriteCost {
    async fn read(db: &impl ConnectionTrait) -> anyhow::Result<Self> {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT CAST(pg_current_wal_lsn() AS TEXT) AS wal_lsn, \
                 CAST(w.wal_bytes AS BIGINT) AS wal_bytes, w.wal_fpi, \
                 b.checkpoints_timed + b.checkpoints_req AS checkpoints, b.buffers_backend \
                 FROM pg_stat_wal w, pg_stat_bgwriter b",
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("pg_stat_wal returned no row"))?;
        Ok(Self {
            wal_lsn: row.try_get("", "wal_lsn")?,
            wal_bytes: row.try_get("", "wal_bytes")?,
            wal_full_page_images: row.try_get("", "wal_fpi")?,
            checkpoints: row.try_get("", "checkpoints")?,
            buffers_written_by_backend: row.try_get("", "buffers_backend")?,
        })
    }

    /// The phase's share, printed under its figure.
    async fn print_since(self, db: &impl ConnectionTrait) -> anyhow::Result<()> {
        let now = Self::read(db).await?;
        println!(
            "  WAL {:.0} MiB ({} full-page images; LSN {} to {}), {} checkpoints, {} buffers \
             written by the backend",
            (now.wal_bytes - self.wal_bytes) as f64 / (1024.0 * 1024.0),
            now.wal_full_page_images - self.wal_full_page_images,
            self.wal_lsn,
            now.wal_lsn,
            now.checkpoints - self.checkpoints,
            now.buffers_written_by_backend - self.buffers_written_by_backend
        );
        Ok(())
    }
}

/// What is watched of one phase: its costliest statements (when asked for) and its write cost.
struct Watched<'a> {
    profile: &'a StatementProfile,
    cost: WriteCost,
}

impl<'a> Watched<'a> {
    /// Before the phase: the statements' statistics reset, the write counters read.
    async fn start(
        profile: &'a StatementProfile,
        db: &impl ConnectionTrait,
    ) -> anyhow::Result<Self> {
        profile.reset(db).await?;
        Ok(Self {
            profile,
            cost: WriteCost::read(db).await?,
        })
    }

    /// After it, under its figure: what it wrote, then its costliest statements.
    async fn print(self, db: &impl ConnectionTrait, phase: &str) -> anyhow::Result<()> {
        self.cost.print_since(db).await?;
        self.profile.print(db, phase).await
    }
}

async fn label_counts(db: &impl ConnectionTrait) -> anyhow::Result<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                // A key's label as it reads: composed with its flow's.
                "SELECT subject_kind, label, COUNT(*) AS n FROM (SELECT l.subject_kind, \
                 COALESCE({}, '-') AS label FROM recon_label l) x \
                 GROUP BY subject_kind, label ORDER BY subject_kind, label",
                incasso_store::reconciliation::composed_label_sql(DbBackend::Postgres, "l", true)
            ),
        ))
        .await?;
    let mut out = String::new();
    for row in rows {
        let kind: String = row.try_get("", "subject_kind")?;
        let label: String = row.try_get("", "label")?;
        let n: i64 = row.try_get("", "n")?;
        let _ = write!(out, " {kind}/{label}={n}");
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.replace('_', "").parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let total = n + INCREMENTAL_LINES;
    let profile = StatementProfile::from_env()?;
    // INCASSO_BENCH_LOG (a filter such as `incasso_store::reconciliation=debug`) shows the
    // importer's log on stderr, for finding out where a figure comes from.
    if let Ok(filter) = std::env::var("INCASSO_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| {
                    anyhow::anyhow!("INCASSO_BENCH_LOG={filter} is not a log filter: {e}")
                })?,
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let database = TestDatabase::create(Engine::Postgres).await?;
    let url = database.url.clone();
    println!(
        "bench-recon: {n} receipts of one day (+{INCREMENTAL_LINES} for the incremental step), \
         {} PSPs, PostgreSQL",
        psps()
    );
    let mut settings = Settings::resolve(
        FileConfig::default(),
        Overrides {
            database_url: Some(url.clone()),
            ..Overrides::default()
        },
    )?;
    if let Ok(iuvs) = std::env::var("INCASSO_BENCH_IUVS_PER_SLICE") {
        settings.recon_iuvs_per_slice = Some(iuvs.parse().map_err(|e| {
            anyhow::anyhow!("INCASSO_BENCH_IUVS_PER_SLICE={iuvs} is not a number of IUVs: {e}")
        })?);
    }
    settings.recon_plain_keys_composed = match std::env::var("INCASSO_BENCH_PLAIN_KEYS") {
        Err(_) => true,
        Ok(value) if value == "written" => false,
        Ok(value) if value == "composed" => true,
        Ok(other) => anyhow::bail!("INCASSO_BENCH_PLAIN_KEYS={other}: `composed` or `written`"),
    };
    println!(
        "plain keys: {}",
        if settings.recon_plain_keys_composed {
            "composed when read ([reconciliation] plain_keys_composed)"
        } else {
            "written (INCASSO_BENCH_PLAIN_KEYS=written)"
        }
    );
    println!(
        "between phases (not timed): {}",
        if std::env::var("INCASSO_BENCH_VACUUM").is_ok_and(|v| v == "1") {
            "VACUUM ANALYZE (INCASSO_BENCH_VACUUM=1)"
        } else {
            "ANALYZE"
        }
    );
    let accounts = settings.treasury_accounts.clone();
    let store = incasso_server::open_store(settings).await?;
    println!("server: {}", server_settings(store.db()).await?);
    // Before the load, so that a server without the extension is found out at once.
    if let Err(e) = profile.reset(store.db()).await {
        store.db().clone().close().await?;
        database.drop_database().await?;
        return Err(e);
    }

    let started = Instant::now();
    load_receipts(&store, &url, n, total).await?;
    store.db().execute_unprepared("VACUUM ANALYZE").await?;
    println!(
        "loaded {total} receipts and their bookings in {:.0} s (not timed); peak RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    let dir = std::env::temp_dir().join(format!("incasso-bench-recon-{}", std::process::id()));
    let (flows, statement, (lines, credits)) = write_day(&dir, n)?;
    let (inc_flow, inc_statement) = write_incremental(&dir, n)?;
    println!(
        "wrote {} flows ({lines} lines) and a camt.053 with {credits} credits",
        flows.len()
    );

    let watched = Watched::start(&profile, store.db()).await?;
    let started = Instant::now();
    let caught_up = store.refresh_reconciliation(CREDITOR).await?;
    let catch_up = started.elapsed();
    println!(
        "receipts labelled (recon refresh): {:8.2} s  ({caught_up} label changes)  peak RSS {:.1} MiB",
        catch_up.as_secs_f64(),
        peak_rss_mib()
    );
    watched.print(store.db(), "refresh").await?;
    analyze(&store).await?;
    let watched = Watched::start(&profile, store.db()).await?;
    let fdr = import(&store, &accounts, &flows).await?;
    let rss_fdr = peak_rss_mib();
    println!(
        "FdR import     : {:8.2} s  ({:.0} lines/s)  peak RSS {rss_fdr:.1} MiB",
        fdr.as_secs_f64(),
        lines as f64 / fdr.as_secs_f64()
    );
    watched.print(store.db(), "FdR import").await?;
    analyze(&store).await?;
    let watched = Watched::start(&profile, store.db()).await?;
    let treasury = import(&store, &accounts, std::slice::from_ref(&statement)).await?;
    let rss_day = peak_rss_mib();
    println!(
        "treasury import: {:8.2} s  peak RSS {rss_day:.1} MiB",
        treasury.as_secs_f64()
    );
    watched.print(store.db(), "treasury import").await?;
    let day = catch_up + fdr + treasury;
    println!(
        "day labelled (receipts + FdR + treasury): {:.2} s  (target < 60 s)",
        day.as_secs_f64()
    );
    println!("labels:{}", label_counts(store.db()).await?);

    analyze(&store).await?;
    let step_flow = import(&store, &accounts, std::slice::from_ref(&inc_flow)).await?;
    let step_credit = import(&store, &accounts, std::slice::from_ref(&inc_statement)).await?;
    println!(
        "incremental: flow of {INCREMENTAL_LINES} lines {:.3} s, its credit {:.3} s  (target < 1 s each)",
        step_flow.as_secs_f64(),
        step_credit.as_secs_f64()
    );
    println!(
        "peak RSS: {:.1} MiB  (target < 500 MiB, flat in N)",
        peak_rss_mib()
    );

    store.db().execute_unprepared("VACUUM ANALYZE").await?;
    let baseline = baseline(store.db()).await?;
    let join = baseline.best();
    println!(
        "baseline: one SQL join of receipt transfers, flow lines and credits (exact matches): \
         {:.2} s, {} transfers (best of hash joins {:.2} s and the planner's plan {:.2} s)",
        join.as_secs_f64(),
        baseline.matched,
        baseline.hashed.as_secs_f64(),
        baseline.planned.as_secs_f64()
    );
    println!(
        "ratio day labelled / baseline: {:.1}  (target <= 3)",
        day.as_secs_f64() / join.as_secs_f64()
    );

    let _ = std::fs::remove_dir_all(&dir);
    store.db().clone().close().await?;
    if std::env::var("INCASSO_BENCH_KEEP").is_ok() {
        println!("kept: {url}");
    } else {
        database.drop_database().await?;
    }
    Ok(())
}
