//! Plain keys left unwritten (`[reconciliation] plain_keys_composed`): a flow's import leaves
//! the row of a key its flow alone decides as its receipt left it, every reader composes it
//! with the flow, and undoing migration 32 writes the rows and the history rows back so that
//! the previous release reads the same labels and history.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use incasso_domain::reconciliation::{EvidenceRef, FlowId, Label, Subject};
use incasso_reconciliation::testing::fdr_xml;
use incasso_store::Store;
use incasso_store::reconciliation::{TransferFilterInput, TransferScope};
use incasso_store::testing::Engine;
use sea_orm::{ConnectionTrait, Statement};
use time::macros::datetime;

use crate::fixtures::{Harness, MILANO};
use crate::on_both_engines;
use crate::reconciliation::{
    IUF, TREASURY_IBAN, accounts, flow, key, receipt, statement, undo_migrations_from, write,
};

on_both_engines!(
    a_plain_key_reads_as_its_flow_makes_it_and_migration_32s_down_writes_it_back,
    a_plain_key_written_back_reads_as_before_and_migration_32s_down_adds_nothing,
    a_key_two_flows_report_with_other_amounts_reads_as_its_row_in_every_list
);

/// The store leaving plain keys unwritten, its clock a minute later at each reading.
fn composing(h: &Harness) -> Store {
    clocked(h, true)
}

/// The store, leaving plain keys unwritten or not, its clock a minute later at each reading, so
/// that each import has its own instant as in production.
pub(crate) fn clocked(h: &Harness, plain_keys_composed: bool) -> Store {
    let minutes = Arc::new(AtomicI64::new(0));
    h.store
        .clone()
        .with_plain_keys_composed(plain_keys_composed)
        .with_clock(Arc::new(move || {
            datetime!(2026-11-24 10:00 UTC)
                + time::Duration::minutes(minutes.fetch_add(1, Ordering::SeqCst))
        }))
}

/// The key's row as stored: (label, labels, composed_flow_id).
async fn row(h: &Harness) -> (Option<String>, String, Option<String>) {
    let db = h.store.db();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT label, labels, composed_flow_id FROM recon_label \
             WHERE subject_kind = 'transfer' AND id_transfer = 1",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "label").unwrap(),
        row.try_get("", "labels").unwrap(),
        row.try_get("", "composed_flow_id").unwrap(),
    )
}

/// The keys ListTransfers gives for `label`, by receiptId.
async fn listed_as(store: &Store, label: Label) -> Vec<String> {
    let filter = TransferFilterInput {
        label: Some(label),
        scope: Some(TransferScope::Creditor),
        ..TransferFilterInput::default()
    };
    store
        .list_reconciliation_transfers(&filter, 0, "")
        .await
        .unwrap()
        .transfers
        .into_iter()
        .map(|t| {
            assert_eq!(t.label, Some(label));
            t.receipt_id
        })
        .collect()
}

/// The key's history: (previous label, label, file of the import).
pub(crate) async fn history(store: &Store) -> Vec<(Option<Label>, Option<Label>, Option<String>)> {
    store
        .reconciliation_history(MILANO, &Subject::Transfer(key(1)))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let file = c.causes.document.as_ref().map(|d| {
                let path = std::path::Path::new(&d.1);
                path.file_name().unwrap().to_string_lossy().into_owned()
            });
            (c.previous_label, c.label, file)
        })
        .collect()
}

async fn a_plain_key_reads_as_its_flow_makes_it_and_migration_32s_down_writes_it_back(
    engine: Engine,
) {
    use Label::{RtIuf, RtIufTes, RtNoIuf};
    let h = Harness::new(engine).await;
    let store = composing(&h);
    store.record_receipt(receipt()).await.unwrap();
    store.refresh_reconciliation(MILANO).await.unwrap();
    assert_eq!(
        row(&h).await,
        (Some("RT_NO_IUF".into()), "RT_NO_IUF".into(), None)
    );

    let history_rows = crate::fixtures::count(&h, "recon_label_change").await;
    let imported = store
        .import_reconciliation_file(&write("flow.xml", &fdr_xml(&flow(), MILANO)), &accounts())
        .await
        .unwrap();
    // The flow's change and the key's, counted though only the flow's was written.
    assert_eq!(imported.label_changes, 2);
    assert_eq!(
        crate::fixtures::count(&h, "recon_label_change").await,
        history_rows + 1
    );
    assert_eq!(
        row(&h).await,
        (Some("RT_NO_IUF".into()), "RT_NO_IUF".into(), None)
    );
    assert_eq!(
        crate::fixtures::count(&h, "recon_flow WHERE plain_keys_unwritten").await,
        1
    );
    assert_eq!(listed_as(&store, RtIuf).await, ["RCPT-1"]);
    assert!(listed_as(&store, RtNoIuf).await.is_empty());
    let assessed = store.reconciliation_assessments(MILANO).await.unwrap();
    let key_now = &assessed[&Subject::Transfer(key(1))];
    assert_eq!(key_now.label, Some(RtIuf));
    assert_eq!(
        key_now.flow_ids.iter().collect::<Vec<_>>(),
        [&FlowId::parse(IUF).unwrap()]
    );

    store
        .import_reconciliation_file(
            &write("statement.xml", &statement(TREASURY_IBAN, 9_500)),
            &accounts(),
        )
        .await
        .unwrap();
    assert_eq!(listed_as(&store, RtIufTes).await, ["RCPT-1"]);
    let expected = vec![
        (None, Some(RtNoIuf), None),
        (Some(RtNoIuf), Some(RtIuf), Some("flow.xml".to_owned())),
        (
            Some(RtIuf),
            Some(RtIufTes),
            Some("statement.xml".to_owned()),
        ),
    ];
    assert_eq!(history(&store).await, expected);
    let changes = store
        .reconciliation_history(MILANO, &Subject::Transfer(key(1)))
        .await
        .unwrap();
    assert_eq!(
        changes[1].causes.evidence,
        [EvidenceRef::Flow(FlowId::parse(IUF).unwrap(), 1)]
    );

    // Undone, the key's row and its flow's change are written as the previous release reads
    // them: composed with the flow.
    undo_migrations_from(&h, "_000032_").await;
    assert_eq!(
        row(&h).await,
        (
            Some("RT_IUF_TES".into()),
            "RT_IUF_TES".into(),
            Some(IUF.to_owned())
        )
    );
    assert_eq!(
        crate::fixtures::count(&h, "recon_label_change WHERE previous_label = 'RT_NO_IUF'").await,
        1
    );
    // And up again: read as before, with no flow marked.
    use sea_orm_migration::MigratorTrait;
    incasso_migrations::Migrator::up(h.store.db(), None)
        .await
        .unwrap();
    assert_eq!(
        crate::fixtures::count(&h, "recon_flow WHERE plain_keys_unwritten").await,
        0
    );
    assert_eq!(listed_as(&store, RtIufTes).await, ["RCPT-1"]);
    assert_eq!(history(&store).await, expected);
    h.finish().await;
}

/// Writing back the plain keys of old flows (`incasso recon write-plain-keys`) writes each as its
/// flow's import would have: the row composed with the flow and the history row of the import's
/// change. Nothing the interface says changes, and undoing migration 32 finds nothing left to
/// write for it.
async fn a_plain_key_written_back_reads_as_before_and_migration_32s_down_adds_nothing(
    engine: Engine,
) {
    use Label::{RtIufTes, RtNoIuf};
    let h = Harness::new(engine).await;
    let store = composing(&h);
    store.record_receipt(receipt()).await.unwrap();
    store.refresh_reconciliation(MILANO).await.unwrap();
    for (name, text) in [
        ("flow.xml", fdr_xml(&flow(), MILANO)),
        ("statement.xml", statement(TREASURY_IBAN, 9_500)),
    ] {
        store
            .import_reconciliation_file(&write(name, &text), &accounts())
            .await
            .unwrap();
    }
    let before = history(&store).await;
    let evidence = |changes: Vec<incasso_store::reconciliation::LabelChangeRecord>| {
        changes
            .into_iter()
            .map(|c| (c.changed_at, c.causes, c.labels, c.treasury_state))
            .collect::<Vec<_>>()
    };
    let subject = Subject::Transfer(key(1));
    let before_in_full = evidence(
        store
            .reconciliation_history(MILANO, &subject)
            .await
            .unwrap(),
    );
    assert_eq!(before.len(), 3, "{before:?}");
    let rows_before = crate::fixtures::count(&h, "recon_label_change").await;

    // Flows imported later than the cut-off are left alone.
    let none = store
        .write_back_plain_keys(MILANO, datetime!(2026-11-24 10:00 UTC))
        .await
        .unwrap();
    assert_eq!((none.revisions, none.keys), (0, 0));
    assert_eq!(row(&h).await.2, None);

    let written = store
        .write_back_plain_keys(MILANO, datetime!(2026-12-31 00:00 UTC))
        .await
        .unwrap();
    assert_eq!((written.revisions, written.keys), (1, 1));
    assert_eq!(
        row(&h).await,
        (
            Some("RT_IUF_TES".into()),
            "RT_IUF_TES".into(),
            Some(IUF.to_owned())
        )
    );
    // The import's change, now a row of the key's.
    assert_eq!(
        crate::fixtures::count(&h, "recon_label_change").await,
        rows_before + 1
    );
    assert_eq!(history(&store).await, before);
    assert_eq!(
        evidence(
            store
                .reconciliation_history(MILANO, &subject)
                .await
                .unwrap()
        ),
        before_in_full
    );
    assert_eq!(listed_as(&store, RtIufTes).await, ["RCPT-1"]);
    assert!(listed_as(&store, RtNoIuf).await.is_empty());
    // The revision is no longer marked: nothing of it is left unwritten.
    assert_eq!(
        crate::fixtures::count(&h, "recon_flow WHERE plain_keys_unwritten").await,
        0
    );
    let again = store
        .write_back_plain_keys(MILANO, datetime!(2026-12-31 00:00 UTC))
        .await
        .unwrap();
    assert_eq!((again.revisions, again.keys), (0, 0));

    // The previous release reads the key from its rows: undoing migration 32 has nothing to add.
    undo_migrations_from(&h, "_000032_").await;
    assert_eq!(
        crate::fixtures::count(&h, "recon_label_change").await,
        rows_before + 1
    );
    use sea_orm_migration::MigratorTrait;
    incasso_migrations::Migrator::up(h.store.db(), None)
        .await
        .unwrap();
    assert_eq!(history(&store).await, before);
    h.finish().await;
}

/// A key two marked flows report, each with another amount than its receipt's, is no plain
/// key: its row (`RT_NO_IUF`, with its flows' treasury state, composed with neither flow)
/// reads as written, in the label filter too, though each of its lines lies in a revision that
/// left plain keys unwritten.
async fn a_key_two_flows_report_with_other_amounts_reads_as_its_row_in_every_list(engine: Engine) {
    use Label::{RtIuf, RtNoIuf};
    let h = Harness::new(engine).await;
    let store = composing(&h);
    store.record_receipt(receipt()).await.unwrap();
    let mut first = flow();
    first.lines[0].amount_cents = 9_400;
    first.total_cents = 9_400;
    let mut second = flow();
    second.flow_id = FlowId::parse("2026-11-23ABI03069-0002").unwrap();
    second.lines[0].amount_cents = 9_300;
    second.total_cents = 9_300;
    for (name, flow) in [("first.xml", &first), ("second.xml", &second)] {
        store
            .import_reconciliation_file(&write(name, &fdr_xml(flow, MILANO)), &accounts())
            .await
            .unwrap();
    }
    assert_eq!(
        crate::fixtures::count(&h, "recon_flow WHERE plain_keys_unwritten").await,
        2
    );
    let assessed = store.reconciliation_assessments(MILANO).await.unwrap();
    assert_eq!(assessed[&Subject::Transfer(key(1))].label, Some(RtNoIuf));
    assert_eq!(listed_as(&store, RtNoIuf).await, ["RCPT-1"]);
    assert!(listed_as(&store, RtIuf).await.is_empty());
    assert!(
        history(&store)
            .await
            .iter()
            .all(|(_, label, _)| *label == Some(RtNoIuf))
    );
    // Undone, migration 32 finds no plain key to write back: the row stays as written.
    undo_migrations_from(&h, "_000032_").await;
    let (label, labels, composed) = row(&h).await;
    assert_eq!(
        (label.as_deref(), labels.as_str(), composed),
        (Some("RT_NO_IUF"), "RT_NO_IUF", None)
    );
    assert_eq!(
        crate::fixtures::count(
            &h,
            "recon_label WHERE treasury_state IS NOT NULL AND subject_kind = 'transfer'"
        )
        .await,
        1
    );
    h.finish().await;
}
