//! What the tests that run the real `incasso` binary as child processes share: notices
//! issued in bulk with the receipts that pay them, SQL straight on the database, and the
//! checks an auditor makes once the dust settles (every receipt stored once, every notice
//! booked once, the chain verified).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sea_orm::{ConnectionTrait, Statement};

use incasso_grpc::pb;
use incasso_grpc::pb::bulk_create_debt_positions_response::Result as ItemResult;
use incasso_integration_tests::node_simulator::ReceiptSpec;
use incasso_integration_tests::process::ServerProcess;
use incasso_integration_tests::receipt_load::Delivery;
use incasso_integration_tests::requests::{self, MILANO};

/// The Milan bank account of the sample registry's transfers, when a transfer names none.
pub const MILANO_BANK: &str = "IT02N0306909400000012345678";

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_incasso"))
}

pub fn ymd(date: time::Date) -> String {
    format!(
        "{}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

pub fn cents(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// The receipt paying `installment` (of the Milan sample registry), paid today at 10:15
/// Rome time: paSendRTV2 when `v2`, else paSendRT.
pub fn delivery_paying(installment: &pb::Installment, receipt_id: String, v2: bool) -> Delivery {
    let today = time::OffsetDateTime::now_utc().date();
    Delivery {
        v2,
        spec: ReceiptSpec {
            receipt_id,
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
            payment_date_time: format!("{}T10:15:00", ymd(today)),
        },
    }
}

/// A school fee of one installment due in 60 days, under `request_id`.
pub fn school_fee_due_soon(request_id: &str) -> pb::CreateDebtPositionRequest {
    let today = time::OffsetDateTime::now_utc().date();
    let mut fee = requests::school_fee(request_id);
    fee.payment_options[0].installments[0].due_date = ymd(today + time::Duration::days(60));
    fee
}

/// `n` school fees of one installment each, created in one bulk stream; the receipt paying
/// each (receipt ids `{tag}-00000`, ...), one in three as paSendRT (V1), the others V2.
pub async fn issue_notices(
    server: &ServerProcess,
    tag: &str,
    n: usize,
) -> anyhow::Result<Vec<Delivery>> {
    let items: Vec<pb::CreateDebtPositionRequest> = (0..n)
        .map(|i| school_fee_due_soon(&format!("{tag}-fee-{i}")))
        .collect();
    let mut responses = server
        .notices()
        .await?
        .bulk_create_debt_positions(tokio_stream::iter(items))
        .await?
        .into_inner();
    let mut deliveries = Vec::with_capacity(n);
    while let Some(item) = responses.message().await? {
        let Some(ItemResult::DebtPosition(position)) = item.result else {
            anyhow::bail!("item {} not created: {:?}", item.index, item.result);
        };
        let installment = &position.payment_options[0].installments[0];
        let receipt_id = format!("{tag}-{:05}", deliveries.len());
        let v2 = deliveries.len() % 3 != 0;
        deliveries.push(delivery_paying(installment, receipt_id, v2));
    }
    anyhow::ensure!(deliveries.len() == n, "{} of {n} created", deliveries.len());
    Ok(deliveries)
}

/// Runs one SQL query on `url`; every row as text columns.
pub async fn query(url: &str, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
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
pub async fn entries_of(
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
pub async fn assert_booked_exactly_once(
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
