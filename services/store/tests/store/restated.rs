//! A statement restates each key of one flow from its flow; a key it cannot restate (reported
//! by two flows, or whose receipt was booked since the last import) is relabelled from its
//! evidence in the same import. Either way the labels and the history are the contract's.

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    CreditId, EvidenceRef, FlowId, FlowLine, FlowTreasuryState, Label, OutcomeCode, ReportingFlow,
    Subject, TransferIndex, TransferKey,
};
use incasso_reconciliation::testing::fdr_xml;
use incasso_store::reconciliation::TransferFilterInput;
use incasso_store::testing::Engine;
use time::macros::date;

use crate::fixtures::{Harness, MILANO};
use crate::on_both_engines;
use crate::reconciliation::{
    self, IUF, TREASURY_IBAN, accounts, receipt_to_milan, statement, write,
};

const IUVS: [&str; 5] = [
    "99000000000000201",
    "99000000000000202",
    "99000000000000203",
    "99000000000000204",
    "99000000000000205",
];

/// Reported a second time, in a flow regulated after the statement's day.
const LATER_IUF: &str = "2026-11-30ABI03069-0002";

fn key(n: usize) -> TransferKey {
    TransferKey::new(
        Iuv::parse(IUVS[n]).unwrap(),
        &format!("RCPT-RS-{n}"),
        TransferIndex::new(1).unwrap(),
    )
    .unwrap()
}

fn line(n: usize) -> FlowLine {
    FlowLine {
        key: key(n),
        amount_cents: 9_500,
        outcome: OutcomeCode::Executed,
        paid_on: date!(2026 - 11 - 23),
    }
}

async fn import(h: &Harness, name: &str, text: &str) {
    h.store
        .import_reconciliation_file(&write(name, text), &accounts())
        .await
        .unwrap();
}

/// Each key's history: (label, its conditions, treasury state, caused by the statement).
async fn history(h: &Harness, n: usize) -> Vec<(Option<Label>, Vec<Label>, Option<String>, bool)> {
    h.store
        .reconciliation_history(MILANO, &Subject::Transfer(key(n)))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let by_statement = c
                .causes
                .document
                .as_ref()
                .is_some_and(|d| d.1.ends_with("statement.xml"))
                && c.causes
                    .evidence
                    .contains(&EvidenceRef::Credit(CreditId::parse("ASR-77").unwrap()));
            (c.label, c.labels, c.treasury_state, by_statement)
        })
        .collect()
}

async fn a_statement_restates_a_flows_keys_and_relabels_the_rest_from_evidence(engine: Engine) {
    restates(engine, false).await;
}

/// Flows whose keys an earlier release labelled (before migration 31: not composed with their
/// flow) have their keys read, restated and written once by the statement, composed from then on.
async fn a_statement_rewrites_once_the_keys_an_earlier_release_labelled(engine: Engine) {
    restates(engine, true).await;
}

async fn restates(engine: Engine, labelled_by_an_earlier_release: bool) {
    use Label::{IuvNoRt, RtIuf, RtIufTes, RtNoIuf};
    let h = Harness::new(engine).await;
    // Keys 0, 1 and 2 are paid and labelled; key 3's receipt comes after its flow; key 4's
    // never comes.
    for (n, iuv) in IUVS.iter().enumerate().take(3) {
        h.store
            .record_receipt(receipt_to_milan(iuv, &format!("RCPT-RS-{n}"), 9_500))
            .await
            .unwrap();
    }
    h.store.refresh_reconciliation(MILANO).await.unwrap();
    let flow = ReportingFlow {
        total_cents: 9_500 * 5,
        lines: (0..IUVS.len()).map(line).collect(),
        ..reconciliation::flow()
    };
    import(&h, "flow.xml", &fdr_xml(&flow, MILANO)).await;
    // Reported by one flow, key 2 is composed with it (until the later flow reports it too).
    assert_eq!(
        crate::fixtures::count(
            &h,
            &format!(
                "recon_label WHERE iuv = '{}' AND composed_flow_id = '{IUF}'",
                IUVS[2]
            )
        )
        .await,
        1
    );
    // Key 2 is reported again by a flow regulated on the 30th.
    let later = ReportingFlow {
        flow_id: FlowId::parse(LATER_IUF).unwrap(),
        trn: "TRN-0002".to_owned(),
        regulation_date: date!(2026 - 11 - 30),
        total_cents: 9_500,
        lines: vec![line(2)],
        ..reconciliation::flow()
    };
    import(&h, "later.xml", &fdr_xml(&later, MILANO)).await;
    h.store
        .record_receipt(receipt_to_milan(IUVS[3], "RCPT-RS-3", 9_500))
        .await
        .unwrap();

    if labelled_by_an_earlier_release {
        for sql in [
            "UPDATE recon_flow SET keys_composed = FALSE",
            "UPDATE recon_label SET composed_flow_id = NULL",
        ] {
            crate::fixtures::execute(&h, sql).await.unwrap();
        }
    } else {
        assert_eq!(
            crate::fixtures::count(&h, "recon_flow WHERE keys_composed").await,
            2
        );
        // Key 2's row named its first flow; reported by two, it is composed with neither: the
        // rewrite cleared the column (a NULL a batch leaves out of its JSON row still replaces).
        assert_eq!(
            crate::fixtures::count(
                &h,
                &format!(
                    "recon_label WHERE iuv = '{}' AND composed_flow_id IS NULL AND \
                     assessment LIKE '%{LATER_IUF}%'",
                    IUVS[2]
                )
            )
            .await,
            1
        );
        assert_eq!(
            crate::fixtures::count(
                &h,
                &format!(
                    "recon_label WHERE iuv = '{}' AND composed_flow_id = '{IUF}'",
                    IUVS[0]
                )
            )
            .await,
            1
        );
    }
    // The statement cashes the first flow (covering the 24th, before the later flow is due).
    import(&h, "statement.xml", &statement(TREASURY_IBAN, 9_500 * 5)).await;

    let cashed = Some("CASHED".to_owned());
    let pending = Some("PENDING".to_owned());
    for n in 0..2 {
        assert_eq!(
            history(&h, n).await,
            vec![
                (Some(RtNoIuf), vec![RtNoIuf], None, false),
                (Some(RtIuf), vec![RtIuf], pending.clone(), false),
                (Some(RtIufTes), vec![RtIufTes], cashed.clone(), true),
            ],
            "key {n}"
        );
    }
    // Reported by both flows: cashed by one, the other not due yet.
    assert_eq!(
        history(&h, 2).await,
        vec![
            (Some(RtNoIuf), vec![RtNoIuf], None, false),
            (Some(RtIuf), vec![RtIuf], pending.clone(), false),
            (Some(RtIufTes), vec![RtIufTes, RtIuf], cashed.clone(), true),
        ]
    );
    // The receipt booked after its line is caught up first, then cashed.
    let late = h
        .store
        .reconciliation_history(MILANO, &Subject::Transfer(key(3)))
        .await
        .unwrap();
    assert_eq!(
        late.iter().map(|c| c.label).collect::<Vec<_>>(),
        vec![Some(IuvNoRt), Some(RtIuf), Some(RtIufTes)]
    );
    assert_eq!(late[1].causes.evidence, vec![EvidenceRef::Receipt(key(3))]);
    assert!(history(&h, 3).await[2].3, "cashed by the statement");
    // The line whose receipt never came stays IUV_NO_RT, its flow now cashed.
    assert_eq!(
        history(&h, 4).await,
        vec![
            (Some(IuvNoRt), vec![IuvNoRt], pending.clone(), false),
            (Some(IuvNoRt), vec![IuvNoRt], cashed.clone(), true),
        ]
    );
    let flow_state = h
        .store
        .reconciliation_assessments(MILANO)
        .await
        .unwrap()
        .remove(&Subject::Flow(FlowId::parse(IUF).unwrap()))
        .unwrap()
        .treasury_state;
    assert_eq!(flow_state, Some(FlowTreasuryState::Cashed));
    let verified = h.store.verify_ledger(None, None, &[], true).await.unwrap();
    assert!(verified.ok, "{}", verified.reason);

    // Keys 0 and 1 were not written by the statement: their rows keep what the FdR import
    // wrote (RT_IUF, one history row each since the refresh), and read as composed with their
    // flow's, in the lists too, filtered by label in SQL. Labelled by an earlier release, they
    // were rewritten once, composed from then on.
    let (stored_rt_iuf, key_0_history) = if labelled_by_an_earlier_release {
        (0, 3)
    } else {
        (2, 2)
    };
    assert_eq!(
        crate::fixtures::count(
            &h,
            "recon_label WHERE label = 'RT_IUF' AND composed_flow_id IS NOT NULL"
        )
        .await,
        stored_rt_iuf
    );
    assert_eq!(
        crate::fixtures::count(&h, "recon_label_change WHERE subject_key LIKE '%0000201%'").await,
        key_0_history
    );
    assert_eq!(
        crate::fixtures::count(
            &h,
            "recon_label WHERE subject_kind = 'transfer' AND composed_flow_id IS NULL"
        )
        .await,
        1,
        "only the key of two flows is not composed"
    );
    let store = &h.store;
    let listed = |label| async move {
        let filter = TransferFilterInput {
            label: Some(label),
            ..TransferFilterInput::default()
        };
        let page = store
            .list_reconciliation_transfers(&filter, 0, "")
            .await
            .unwrap();
        page.transfers
            .into_iter()
            .map(|t| (t.iuv, t.label))
            .collect::<Vec<_>>()
    };
    let with = |ns: &[usize], label| {
        ns.iter()
            .map(|n| (IUVS[*n].to_owned(), Some(label)))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(RtIufTes).await, with(&[0, 1, 2, 3], RtIufTes));
    assert_eq!(listed(RtIuf).await, Vec::new());
    assert_eq!(listed(IuvNoRt).await, with(&[4], IuvNoRt));
    h.finish().await;
}

on_both_engines!(
    a_statement_restates_a_flows_keys_and_relabels_the_rest_from_evidence,
    a_statement_rewrites_once_the_keys_an_earlier_release_labelled,
);
