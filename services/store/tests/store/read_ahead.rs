//! Reading slices ahead (PostgreSQL only: SQLite's one connection is the import's). An import
//! whose read-ahead finds no free connection reads each slice in its own transaction, and
//! labels and posts exactly as one with connections to spare.

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    FlowId, FlowLine, Label, OutcomeCode, ReportingFlow, Subject, TransferIndex, TransferKey,
};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, camt, fdr_xml};
use incasso_store::Store;
use incasso_store::receipts::ReceiptInput;
use incasso_store::testing::Engine;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use time::macros::date;

use crate::fixtures::{Harness, MILANO};
use crate::reconciliation::{self, TREASURY_IBAN, accounts, receipt_to_milan, statement, write};

/// The flows of [`several_flows_cashed`]: the five IUVs reported two, two and one.
const FLOWS: [(&str, std::ops::Range<usize>); 3] = [
    ("2026-11-23ABI03069-0001", 0..2),
    ("2026-11-23ABI03069-0002", 2..4),
    ("2026-11-23ABI03069-0003", 4..5),
];

/// Five IUVs: with slices of two, every pass has three slices to read ahead.
const IUVS: [&str; 5] = [
    "99000000000000101",
    "99000000000000102",
    "99000000000000103",
    "99000000000000104",
    "99000000000000105",
];

fn key(n: usize) -> TransferKey {
    TransferKey::new(
        Iuv::parse(IUVS[n]).unwrap(),
        &format!("RCPT-RA-{n}"),
        TransferIndex::new(1).unwrap(),
    )
    .unwrap()
}

/// A receipt of 95.00, all of it to Milan.
fn receipt_of(n: usize) -> ReceiptInput {
    receipt_to_milan(IUVS[n], &format!("RCPT-RA-{n}"), 9_500)
}

/// The shared test flow, reporting the five receipts.
fn flow() -> ReportingFlow {
    ReportingFlow {
        total_cents: 9_500 * 5,
        lines: (0..IUVS.len())
            .map(|n| FlowLine {
                key: key(n),
                amount_cents: 9_500,
                outcome: OutcomeCode::Executed,
                paid_on: date!(2026 - 11 - 23),
            })
            .collect(),
        ..reconciliation::flow()
    }
}

async fn labels(store: &Store) -> Vec<Option<Label>> {
    let assessments = store.reconciliation_assessments(MILANO).await.unwrap();
    (0..IUVS.len())
        .map(|n| {
            assessments
                .get(&Subject::Transfer(key(n)))
                .and_then(|a| a.label)
        })
        .collect()
}

async fn entries(store: &Store, event_type: &str) -> i64 {
    count(
        store,
        &format!("ledger_entry WHERE event_type = '{event_type}'"),
    )
    .await
}

/// The rows of `from` (a table and its condition).
async fn count(store: &Store, from: &str) -> i64 {
    let db = store.db();
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT COUNT(*) AS n FROM {from}"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "n")
    .unwrap()
}

/// The receipts, then a refresh, the flow and the statement, checked after each step.
async fn a_day(store: &Store) {
    for n in 0..IUVS.len() {
        store.record_receipt(receipt_of(n)).await.unwrap();
    }
    assert_eq!(store.refresh_reconciliation(MILANO).await.unwrap(), 5);
    assert_eq!(labels(store).await, vec![Some(Label::RtNoIuf); 5]);

    let outcome = store
        .import_reconciliation_file(&write("flow.xml", &fdr_xml(&flow(), MILANO)), &accounts())
        .await
        .unwrap();
    assert_eq!(outcome.lines_added, 5);
    assert_eq!(labels(store).await, vec![Some(Label::RtIuf); 5]);
    // The flow's keys are journaled one entry per slice (2 + 2 + 1 IUVs), each key's own
    // posting a position.
    assert_eq!(entries(store, "reported").await, 3);
    assert_eq!(count(store, "ledger_reported_position").await, 5);

    store
        .import_reconciliation_file(
            &write("statement.xml", &statement(TREASURY_IBAN, 9_500 * 5)),
            &accounts(),
        )
        .await
        .unwrap();
    assert_eq!(labels(store).await, vec![Some(Label::RtIufTes); 5]);
    assert_eq!(entries(store, "cashed").await, 1);
    for n in 0..IUVS.len() {
        let history = store
            .reconciliation_history(MILANO, &Subject::Transfer(key(n)))
            .await
            .unwrap();
        let changes: Vec<_> = history.iter().map(|c| c.label).collect();
        assert_eq!(
            changes,
            vec![
                Some(Label::RtNoIuf),
                Some(Label::RtIuf),
                Some(Label::RtIufTes)
            ],
            "history of {}",
            key(n)
        );
    }
    let verified = store.verify_ledger(None, None, &[], true).await.unwrap();
    assert!(verified.ok, "{}", verified.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_with_connections_to_spare_reads_ahead() {
    let h = Harness::new(Engine::Postgres).await;
    let store = h.replica_with_pool(8).await.with_reconciliation_slice(2);
    a_day(&store).await;
    store.db().clone().close().await.unwrap();
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_without_a_free_connection_reads_each_slice_itself() {
    let h = Harness::new(Engine::Postgres).await;
    // Two connections: the import's transaction takes one, and this test holds the other
    // for the whole day, so every read-ahead waits its second and gives up.
    let store = h.replica_with_pool(2).await.with_reconciliation_slice(2);
    let held = store.db().begin().await.unwrap();
    a_day(&store).await;
    held.rollback().await.unwrap();
    store.db().clone().close().await.unwrap();
    h.finish().await;
}

/// Three flows, then a statement with a credit for each: three components whose `cashed`
/// entries are read (their lines and notices) ahead of the transaction when it can, each
/// entry naming its flow's notices either way.
async fn several_flows_cashed(store: &Store) {
    for n in 0..IUVS.len() {
        store.record_receipt(receipt_of(n)).await.unwrap();
    }
    let mut credits = Vec::new();
    for (number, (iuf, iuvs)) in FLOWS.iter().enumerate() {
        let total_cents = 9_500 * i64::try_from(iuvs.len()).unwrap();
        let flow = ReportingFlow {
            flow_id: FlowId::parse(iuf).unwrap(),
            trn: format!("TRN-000{number}"),
            total_cents,
            lines: flow()
                .lines
                .into_iter()
                .enumerate()
                .filter(|(n, _)| iuvs.contains(n))
                .map(|(_, line)| line)
                .collect(),
            ..reconciliation::flow()
        };
        store
            .import_reconciliation_file(
                &write(&format!("flow-{number}.xml"), &fdr_xml(&flow, MILANO)),
                &accounts(),
            )
            .await
            .unwrap();
        credits.push(CamtEntry::credit(
            &format!("ASR-9{number}"),
            total_cents,
            date!(2026 - 11 - 24),
            &format!("/PUR/LGPE-RIVERSAMENTO/URI/{iuf}"),
        ));
    }
    let statement = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        TREASURY_IBAN,
        date!(2026 - 11 - 24),
        date!(2026 - 11 - 24),
        &credits,
    );
    store
        .import_reconciliation_file(&write("statement.xml", &statement), &accounts())
        .await
        .unwrap();
    assert_eq!(labels(store).await, vec![Some(Label::RtIufTes); 5]);
    assert_eq!(entries(store, "cashed").await, 3);
    // Each flow's entry names the notices its own IUVs' receipts paid.
    for (number, (iuf, iuvs)) in FLOWS.into_iter().enumerate() {
        let named = count(
            store,
            &format!(
                "ledger_entry_notice n JOIN ledger_entry e ON e.sequence = n.entry_sequence \
                 JOIN receipt r ON r.iuv = n.iuv AND r.notice_number = n.notice_number \
                 WHERE e.event_type = 'cashed' AND e.posting_key = 'cashed:ASR-9{number}' \
                 AND n.iuv IN ({})",
                IUVS[iuvs.clone()]
                    .iter()
                    .map(|iuv| format!("'{iuv}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await;
        assert_eq!(
            named,
            i64::try_from(iuvs.len()).unwrap(),
            "notices of {iuf}"
        );
    }
    let verified = store.verify_ledger(None, None, &[], true).await.unwrap();
    assert!(verified.ok, "{}", verified.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_cashing_several_flows_reads_them_ahead() {
    let h = Harness::new(Engine::Postgres).await;
    let store = h.replica_with_pool(8).await.with_reconciliation_slice(2);
    several_flows_cashed(&store).await;
    store.db().clone().close().await.unwrap();
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_without_a_free_connection_reads_its_cashed_flows_itself() {
    let h = Harness::new(Engine::Postgres).await;
    let store = h.replica_with_pool(2).await.with_reconciliation_slice(2);
    let held = store.db().begin().await.unwrap();
    several_flows_cashed(&store).await;
    held.rollback().await.unwrap();
    store.db().clone().close().await.unwrap();
    h.finish().await;
}
