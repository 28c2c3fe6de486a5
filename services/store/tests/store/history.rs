//! A key's history is whole, as an auditor reads it: while the key's label is composed with a
//! flow, each change of the flow's treasury state is a change of the key's, and those changes
//! stay in the history once the key is written otherwise (here, reported by a second flow).

use incasso_domain::reconciliation::{FlowId, Label, Subject};
use incasso_reconciliation::testing::fdr_xml;
use incasso_store::Store;
use incasso_store::testing::Engine;

use crate::fixtures::{Harness, MILANO};
use crate::on_both_engines;
use crate::plain::{clocked, history};
use crate::reconciliation::{
    TREASURY_IBAN, accounts, flow, key, receipt, statement, undo_migrations_from, write,
};

on_both_engines!(
    a_keys_history_keeps_its_flows_changes_once_the_key_is_written_otherwise,
    rows_written_before_migration_33_follow_the_flow_their_key_is_composed_with
);

async fn import(store: &Store, name: &str, text: &str) {
    store
        .import_reconciliation_file(&write(name, text), &accounts())
        .await
        .unwrap();
}

/// The key's receipt, its flow, and the statement cashing the flow: the key reads
/// RT_IUF_TES, its row unwritten since the flow's import.
async fn reported_and_cashed(store: &Store) {
    store.record_receipt(receipt()).await.unwrap();
    store.refresh_reconciliation(MILANO).await.unwrap();
    import(store, "flow.xml", &fdr_xml(&flow(), MILANO)).await;
    import(store, "statement.xml", &statement(TREASURY_IBAN, 9_500)).await;
}

/// A second flow reports the key too: its row is written, no longer composed with the first.
async fn reported_again(store: &Store) {
    let mut second = flow();
    second.flow_id = FlowId::parse("2026-11-23ABI03069-0002").unwrap();
    second.trn = "TRN-0002".to_owned();
    import(store, "second-flow.xml", &fdr_xml(&second, MILANO)).await;
}

async fn a_keys_history_keeps_its_flows_changes_once_the_key_is_written_otherwise(engine: Engine) {
    for plain_keys_composed in [false, true] {
        let h = Harness::new(engine).await;
        let store = clocked(&h, plain_keys_composed);
        reported_and_cashed(&store).await;
        reported_again(&store).await;
        assert_whole(
            &store,
            &format!("plain_keys_composed = {plain_keys_composed}"),
        )
        .await;
        h.finish().await;
    }
}

/// History rows written before migration 33 name no flow: each row of a key with a treasury
/// state follows the flow the key's current row is composed with, as the previous release
/// read them, so a key written otherwise after the migration keeps its flow's changes.
async fn rows_written_before_migration_33_follow_the_flow_their_key_is_composed_with(
    engine: Engine,
) {
    let h = Harness::new(engine).await;
    let store = clocked(&h, false);
    reported_and_cashed(&store).await;
    undo_migrations_from(&h, "_000033_").await;
    use sea_orm_migration::MigratorTrait;
    incasso_migrations::Migrator::up(h.store.db(), None)
        .await
        .unwrap();
    // The key's row of the flow's import; not its receipt's (no treasury state), nor the
    // flow's own rows.
    assert_eq!(
        crate::fixtures::count(&h, "recon_label_change WHERE composed_flow_id IS NOT NULL").await,
        1
    );
    reported_again(&store).await;
    assert_whole(&store, "rows of before migration 33").await;
    h.finish().await;
}

/// The key's history: its receipt, its flow, the statement cashing the flow, then the second
/// flow, each change starting where the one before left the key, the last ending on its label.
async fn assert_whole(store: &Store, case: &str) {
    use Label::{RtIuf, RtIufTes, RtNoIuf};
    let now = store
        .reconciliation_assessments(MILANO)
        .await
        .unwrap()
        .remove(&Subject::Transfer(key(1)))
        .unwrap()
        .label;
    let history = history(store).await;
    let setting = format!("{case}: {history:#?}");
    let expected_start = [
        (None, Some(RtNoIuf), None),
        (Some(RtNoIuf), Some(RtIuf), Some("flow.xml".to_owned())),
        (
            Some(RtIuf),
            Some(RtIufTes),
            Some("statement.xml".to_owned()),
        ),
    ];
    assert_eq!(history[..3], expected_start, "{setting}");
    assert_eq!(history.len(), 4, "{setting}");
    assert_eq!(
        history[3].0,
        Some(RtIufTes),
        "the second flow's change starts where the statement left the key: {setting}"
    );
    assert_eq!(history[3].1, now, "{setting}");
    assert_eq!(
        history[3].2.as_deref(),
        Some("second-flow.xml"),
        "{setting}"
    );
}
