//! A key's label composed with its flow's in SQL (the lists' filter by label) is the label
//! the domain composes, for every kind of facts a key's labels record, every treasury state
//! its row was written under and every state its flow is in now.

use std::collections::BTreeSet;

use incasso_domain::reconciliation::{FlowTreasuryState, Label, compose_labels};
use incasso_store::reconciliation::composed_label_sql;
use incasso_store::testing::Engine;
use sea_orm::{ConnectionTrait, Statement};

use crate::fixtures::{Harness, MILANO, execute};
use crate::on_both_engines;

const STATES: [FlowTreasuryState; 4] = [
    FlowTreasuryState::Cashed,
    FlowTreasuryState::DivImp,
    FlowTreasuryState::NoTes,
    FlowTreasuryState::Pending,
];

/// The facts a key's receipts and lines can decide: a double payment or not, and no
/// receipt, a receipt without a line of its amount, or a receipt and its line.
fn facts() -> Vec<BTreeSet<Label>> {
    let mut out = Vec::new();
    for doppi in [false, true] {
        for own in [Some(Label::IuvNoRt), Some(Label::RtNoIuf), None] {
            let mut set: BTreeSet<Label> = own.into_iter().collect();
            if doppi {
                set.insert(Label::Doppi);
            }
            out.push(set);
        }
    }
    out
}

fn codes(labels: &BTreeSet<Label>) -> String {
    labels
        .iter()
        .map(|l| l.code())
        .collect::<Vec<_>>()
        .join(",")
}

async fn the_label_composed_in_sql_is_the_domains(engine: Engine) {
    let h = Harness::new(engine).await;
    for (n, state) in STATES.iter().enumerate() {
        execute(
            &h,
            &format!(
                "INSERT INTO recon_label (creditor_fiscal_code, subject_key, subject_kind, flow_id, \
                 labels, treasury_state, assessment, updated_at) VALUES ('{MILANO}', 'flow-{n}', \
                 'flow', 'FLOW-{n}', '', '{}', '{{}}', CURRENT_TIMESTAMP)",
                state.code()
            ),
        )
        .await
        .unwrap();
    }
    let mut expected = Vec::new();
    let mut iuv = 0;
    for facts in facts() {
        for written_under in STATES {
            let stored = compose_labels(&facts, written_under);
            for (flow, now) in STATES.iter().enumerate() {
                for composed in [true, false] {
                    iuv += 1;
                    let label = stored.first().unwrap();
                    execute(
                        &h,
                        &format!(
                            "INSERT INTO recon_label (creditor_fiscal_code, subject_key, subject_kind, \
                             iuv, receipt_id, id_transfer, label, labels, treasury_state, assessment, \
                             updated_at, composed_flow_id) VALUES ('{MILANO}', 'key-{iuv}', 'transfer', \
                             '{iuv:017}', 'R', 1, '{}', '{}', '{}', '{{}}', CURRENT_TIMESTAMP, {})",
                            label.code(),
                            codes(&stored),
                            written_under.code(),
                            if composed { format!("'FLOW-{flow}'") } else { "NULL".to_owned() }
                        ),
                    )
                    .await
                    .unwrap();
                    // A row not composed reads as written.
                    let reads_as = if composed {
                        *compose_labels(&stored, *now).first().unwrap()
                    } else {
                        *label
                    };
                    expected.push((format!("{iuv:017}"), reads_as.code().to_owned()));
                }
            }
        }
    }
    let db = h.store.db();
    // No revision left plain keys unwritten here: with or without the bare rows' branch, every
    // row reads the same.
    for plain_rows in [true, false] {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT l.iuv, {} AS label FROM recon_label l \
                     WHERE l.subject_kind = 'transfer' ORDER BY l.iuv",
                    composed_label_sql(db.get_database_backend(), "l", plain_rows)
                ),
            ))
            .await
            .unwrap();
        let read: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "iuv").unwrap(),
                    r.try_get("", "label").unwrap(),
                )
            })
            .collect();
        assert_eq!(read.len(), 6 * 4 * 4 * 2);
        assert_eq!(read, expected, "plain_rows = {plain_rows}");
    }
    h.finish().await;
}

on_both_engines!(the_label_composed_in_sql_is_the_domains);
