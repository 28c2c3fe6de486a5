//! The contract's scenarios, one by one, and the properties: any order and any grouping of the
//! same evidence ends in the same labels, and the incremental engine always agrees with a
//! classification from scratch.

use std::collections::BTreeSet;

use proptest::prelude::*;
use time::macros::{date, datetime};
use time::{Date, Duration};

use super::*;
use crate::notice_number::Iuv;

fn iuv(n: u32) -> Iuv {
    Iuv::parse(&format!("120000000000{n:05}")).unwrap()
}

fn key(n: u32, receipt: &str, index: i64) -> TransferKey {
    TransferKey::new(iuv(n), receipt, TransferIndex::new(index).unwrap()).unwrap()
}

fn receipt(k: &TransferKey, cents: i64) -> EvidenceItem {
    EvidenceItem::Receipt(ReceiptTransfer {
        key: k.clone(),
        amount_cents: cents,
        paid_on: date!(2026 - 03 - 10),
        stand_in: false,
    })
}

fn line(k: &TransferKey, cents: i64, outcome: OutcomeCode) -> FlowLine {
    FlowLine {
        key: k.clone(),
        amount_cents: cents,
        outcome,
        paid_on: date!(2026 - 03 - 10),
    }
}

fn flow_rev(id: &str, revision: u32, regulation: Date, lines: Vec<FlowLine>) -> ReportingFlow {
    ReportingFlow {
        flow_id: FlowId::parse(id).unwrap(),
        revision,
        created_at: datetime!(2026-03-11 08:00 UTC) + Duration::hours(i64::from(revision)),
        psp_id: "ABI03069".to_owned(),
        trn: format!("TRN-{id}"),
        regulation_date: regulation,
        total_cents: lines.iter().map(|l| l.amount_cents).sum(),
        lines,
    }
}

fn flow(id: &str, lines: Vec<FlowLine>) -> EvidenceItem {
    EvidenceItem::Flow(flow_rev(id, 1, date!(2026 - 03 - 11), lines))
}

fn credit(id: &str, cents: i64, causale: &str) -> EvidenceItem {
    EvidenceItem::Credit(TreasuryCredit {
        id: CreditId::parse(id).unwrap(),
        amount_cents: cents,
        booking_date: date!(2026 - 03 - 12),
        value_date: date!(2026 - 03 - 12),
        causale: causale.to_owned(),
        trn: None,
    })
}

fn covered(day: Date) -> EvidenceItem {
    EvidenceItem::TreasuryCoverage(day)
}

fn run(items: Vec<EvidenceItem>) -> Reconciler {
    let mut reconciler = Reconciler::new();
    reconciler.apply(items).unwrap();
    assert_eq!(
        *reconciler.assessments(),
        reconciler.recompute_all(),
        "incremental and from-scratch labels differ"
    );
    reconciler
}

fn of(reconciler: &Reconciler, subject: Subject) -> Assessment {
    reconciler
        .assessments()
        .get(&subject)
        .unwrap_or_else(|| panic!("{subject:?} has no assessment"))
        .clone()
}

fn label_of(reconciler: &Reconciler, k: &TransferKey) -> Label {
    of(reconciler, Subject::Transfer(k.clone())).label.unwrap()
}

fn credit_label(reconciler: &Reconciler, id: &str) -> Label {
    of(reconciler, Subject::Credit(CreditId::parse(id).unwrap()))
        .label
        .unwrap()
}

fn flow_state(reconciler: &Reconciler, id: &str) -> FlowTreasuryState {
    of(reconciler, Subject::Flow(FlowId::parse(id).unwrap()))
        .treasury_state
        .unwrap()
}

const IUF: &str = "2026-03-11ABI03069-0001";

#[test]
fn receipt_reported_and_cashed_is_rt_iuf_tes() {
    let k = key(1, "R1", 1);
    let r = run(vec![
        receipt(&k, 12_550),
        flow(IUF, vec![line(&k, 12_550, OutcomeCode::Executed)]),
        credit("C1", 12_550, &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}")),
        covered(date!(2026 - 03 - 12)),
    ]);
    assert_eq!(label_of(&r, &k), Label::RtIufTes);
    assert_eq!(credit_label(&r, "C1"), Label::RtIufTes);
    assert_eq!(flow_state(&r, IUF), FlowTreasuryState::Cashed);
}

/// The contract compares credits with the flows' declared totals: a flow declaring more than
/// its lines is cashed by a credit of what it declares, and its keys are reconciled.
#[test]
fn a_flow_is_cashed_by_its_declared_total_even_when_its_lines_add_up_to_less() {
    let k = key(1, "R1", 1);
    let mut declaring = flow_rev(
        IUF,
        1,
        date!(2026 - 03 - 11),
        vec![line(&k, 12_550, OutcomeCode::Executed)],
    );
    declaring.total_cents = 12_600;
    let r = run(vec![
        receipt(&k, 12_550),
        EvidenceItem::Flow(declaring),
        credit("C1", 12_600, &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}")),
        covered(date!(2026 - 03 - 12)),
    ]);
    assert_eq!(label_of(&r, &k), Label::RtIufTes);
    assert_eq!(credit_label(&r, "C1"), Label::RtIufTes);
    assert_eq!(flow_state(&r, IUF), FlowTreasuryState::Cashed);
}

#[test]
fn flow_not_due_is_rt_iuf_and_due_without_credit_is_iuf_no_tes() {
    let k = key(1, "R1", 1);
    let items = vec![
        receipt(&k, 100),
        flow(IUF, vec![line(&k, 100, OutcomeCode::Executed)]),
    ];
    let mut r = run(items.clone());
    assert_eq!(label_of(&r, &k), Label::RtIuf);
    assert_eq!(flow_state(&r, IUF), FlowTreasuryState::Pending);
    // Treasury reaches the day before the regulation day: still pending.
    r.apply([covered(date!(2026 - 03 - 10))]).unwrap();
    assert_eq!(label_of(&r, &k), Label::RtIuf);
    let changes = r.apply([covered(date!(2026 - 03 - 11))]).unwrap();
    assert_eq!(label_of(&r, &k), Label::IufNoTes);
    assert_eq!(flow_state(&r, IUF), FlowTreasuryState::NoTes);
    let change = changes
        .iter()
        .find(|c| c.subject == Subject::Transfer(k.clone()))
        .unwrap();
    assert!(change.is_label_change());
    assert_eq!(
        change.causes,
        BTreeSet::from([EvidenceRef::TreasuryCoverage(date!(2026 - 03 - 11))])
    );
    assert_eq!(*r.assessments(), r.recompute_all());
}

#[test]
fn divergent_amount_names_the_cents() {
    let k = key(1, "R1", 1);
    let r = run(vec![
        receipt(&k, 10_000),
        flow(IUF, vec![line(&k, 10_000, OutcomeCode::Executed)]),
        credit("C1", 9_995, &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}")),
    ]);
    let a = of(&r, Subject::Transfer(k.clone()));
    assert_eq!(a.label, Some(Label::IufTesDivImp));
    assert!(a.suggestions.contains(&Suggestion::ComponentDifference {
        credits_cents: 9_995,
        flows_cents: 10_000,
        difference_cents: -5
    }));
    assert_eq!(credit_label(&r, "C1"), Label::IufTesDivImp);
    assert_eq!(flow_state(&r, IUF), FlowTreasuryState::DivImp);
}

#[test]
fn a_line_without_receipt_is_iuv_no_rt_whatever_its_code() {
    for outcome in [
        OutcomeCode::Executed,
        OutcomeCode::NoRpt,
        OutcomeCode::Revoked,
    ] {
        let k = key(2, "IUR9", 1);
        let r = run(vec![flow(IUF, vec![line(&k, 500, outcome)])]);
        assert_eq!(label_of(&r, &k), Label::IuvNoRt, "{outcome:?}");
    }
}

#[test]
fn stand_in_line_with_its_receipt_is_an_ordinary_paid_line() {
    let k = key(1, "R1", 1);
    let r = run(vec![
        receipt(&k, 700),
        flow(IUF, vec![line(&k, 700, OutcomeCode::StandIn)]),
    ]);
    assert_eq!(label_of(&r, &k), Label::RtIuf);
}

#[test]
fn two_receipt_ids_for_one_transfer_are_doppi_on_every_key() {
    let first = key(1, "R1", 1);
    let second = key(1, "R2", 1);
    let other_transfer = key(1, "R1", 2);
    let r = run(vec![
        receipt(&first, 100),
        receipt(&other_transfer, 50),
        flow(IUF, vec![line(&second, 100, OutcomeCode::Executed)]),
    ]);
    assert_eq!(label_of(&r, &first), Label::Doppi);
    let second_labels = of(&r, Subject::Transfer(second.clone())).labels;
    assert_eq!(
        second_labels,
        BTreeSet::from([Label::Doppi, Label::IuvNoRt])
    );
    assert_eq!(label_of(&r, &other_transfer), Label::RtNoIuf);
}

#[test]
fn rfb_credit_of_the_amount_is_rt_tes() {
    let k = key(3, "R1", 1);
    let causale = format!("/RFB/{}/12.00/TXT/TARI", iuv(3));
    let r = run(vec![receipt(&k, 1_200), credit("C1", 1_200, &causale)]);
    assert_eq!(label_of(&r, &k), Label::RtTes);
    assert_eq!(credit_label(&r, "C1"), Label::RtTes);
    // Another amount: the receipt is not reported, the credit matches nothing, and the
    // difference is suggested.
    let r = run(vec![receipt(&k, 1_200), credit("C1", 1_100, &causale)]);
    let a = of(&r, Subject::Transfer(k));
    assert_eq!(a.label, Some(Label::RtNoIuf));
    assert!(a.suggestions.contains(&Suggestion::IuvCreditDifference {
        credit_id: CreditId::parse("C1").unwrap(),
        difference_cents: -100
    }));
    assert_eq!(credit_label(&r, "C1"), Label::TesNoIufOrIuv);
    // An IUV never issued.
    let r = run(vec![credit("C2", 1_200, "/RFB/99999999999999999/12.00")]);
    assert_eq!(credit_label(&r, "C2"), Label::TesNoIufOrIuv);
    // A marker whose IUV cannot be read is still a pagoPA marker of an unknown IUV.
    let r = run(vec![credit(
        "C3",
        1_200,
        &format!("/RFB/ {}/12.00", iuv(3)),
    )]);
    assert_eq!(credit_label(&r, "C3"), Label::TesNoIufOrIuv);
}

#[test]
fn an_rf_reference_printed_in_groups_of_four_pays_its_receipt() {
    let rf = Iuv::parse("RF18539007547034").unwrap();
    let k = TransferKey::new(rf, "R1", TransferIndex::new(1).unwrap()).unwrap();
    let r = run(vec![
        receipt(&k, 1_250),
        credit("C1", 1_250, "/RFS/RF18 5390 0754 7034/12.50/TXT/RETTA"),
    ]);
    assert_eq!(label_of(&r, &k), Label::RtTes);
    assert_eq!(credit_label(&r, "C1"), Label::RtTes);
}

#[test]
fn receipt_alone_or_reported_with_another_amount_is_rt_no_iuf() {
    let k = key(1, "R1", 1);
    let r = run(vec![receipt(&k, 100)]);
    assert_eq!(label_of(&r, &k), Label::RtNoIuf);
    let r = run(vec![
        receipt(&k, 100),
        flow(IUF, vec![line(&k, 101, OutcomeCode::Executed)]),
    ]);
    let a = of(&r, Subject::Transfer(k));
    assert_eq!(a.label, Some(Label::RtNoIuf));
    assert!(a.suggestions.iter().any(|s| matches!(
        s,
        Suggestion::LineDifference {
            difference_cents: 1,
            ..
        }
    )));
}

#[test]
fn a_flow_paid_by_two_transfers_and_a_transfer_paying_two_flows_are_cashed() {
    let a = key(1, "R1", 1);
    let b = key(2, "R2", 1);
    let c = key(3, "R3", 1);
    let other = "2026-03-11ABI05034-0007";
    let third = "2026-03-11ABI01030-0002";
    let r = run(vec![
        receipt(&a, 1_000),
        receipt(&b, 2_000),
        receipt(&c, 300),
        flow(IUF, vec![line(&a, 1_000, OutcomeCode::Executed)]),
        flow(other, vec![line(&b, 2_000, OutcomeCode::Executed)]),
        flow(third, vec![line(&c, 300, OutcomeCode::Executed)]),
        credit(
            "C0",
            600,
            &format!("/PUR/LGPE-RIVERSAMENTO/TXT/0/URI/{IUF}"),
        ),
        credit(
            "C1",
            400,
            &format!("/PUR/LGPE-RIVERSAMENTO/TXT/1/URI/{IUF}"),
        ),
        credit(
            "C2",
            2_300,
            &format!("/PUR/LGPE-RIVERSAMENTO/URI/{other} /PUR/LGPE-RIVERSAMENTO/URI/{third}"),
        ),
    ]);
    for k in [&a, &b, &c] {
        assert_eq!(label_of(&r, k), Label::RtIufTes, "{k}");
    }
    for id in ["C0", "C1", "C2"] {
        assert_eq!(credit_label(&r, id), Label::RtIufTes, "{id}");
    }
}

#[test]
fn a_flow_and_its_keys_name_the_credits_attributed_to_it_not_its_components() {
    // X pays A and B; Y pays B alone. One component {A, B, X, Y}, cashed; but Y names only B:
    // it is attributed to B (§3), so A and A's key name X alone, and Y names B alone.
    let a = key(1, "R1", 1);
    let b = key(2, "R2", 1);
    let flow_b = "2026-03-11ABI05034-0007";
    let r = run(vec![
        receipt(&a, 1_000),
        receipt(&b, 2_000),
        flow(IUF, vec![line(&a, 1_000, OutcomeCode::Executed)]),
        flow(flow_b, vec![line(&b, 2_000, OutcomeCode::Executed)]),
        credit(
            "X",
            2_500,
            &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF} /PUR/LGPE-RIVERSAMENTO/URI/{flow_b}"),
        ),
        credit(
            "Y",
            500,
            &format!("/PUR/LGPE-RIVERSAMENTO/TXT/1/URI/{flow_b}"),
        ),
    ]);
    let ids = |a: &Assessment| -> Vec<String> {
        a.credit_ids.iter().map(|c| c.as_str().to_owned()).collect()
    };
    let flows = |a: &Assessment| -> Vec<String> {
        a.flow_ids.iter().map(|f| f.as_str().to_owned()).collect()
    };
    let flow_a = of(&r, Subject::Flow(FlowId::parse(IUF).unwrap()));
    assert_eq!(flow_a.treasury_state, Some(FlowTreasuryState::Cashed));
    assert_eq!(ids(&flow_a), ["X"]);
    assert_eq!(
        ids(&of(&r, Subject::Flow(FlowId::parse(flow_b).unwrap()))),
        ["X", "Y"]
    );
    assert_eq!(ids(&of(&r, Subject::Transfer(a.clone()))), ["X"]);
    assert_eq!(ids(&of(&r, Subject::Transfer(b.clone()))), ["X", "Y"]);
    assert_eq!(label_of(&r, &a), Label::RtIufTes);
    let y = of(&r, Subject::Credit(CreditId::parse("Y").unwrap()));
    assert_eq!(flows(&y), [flow_b]);
    assert_eq!(y.label, Some(Label::RtIufTes));
    let mut both = vec![IUF.to_owned(), flow_b.to_owned()];
    both.sort();
    assert_eq!(
        flows(&of(&r, Subject::Credit(CreditId::parse("X").unwrap()))),
        both
    );
}

#[test]
fn a_truncated_iuf_is_attributed_to_nothing_and_candidates_are_suggested() {
    let k = key(1, "R1", 1);
    let mut credit_item = credit("C1", 1_000, "/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI0");
    if let EvidenceItem::Credit(c) = &mut credit_item {
        c.trn = Some(format!("TRN-{IUF}"));
    }
    let r = run(vec![
        receipt(&k, 1_000),
        flow(IUF, vec![line(&k, 1_000, OutcomeCode::Executed)]),
        flow(
            "UNRELATED",
            vec![line(&key(9, "X", 1), 5, OutcomeCode::Executed)],
        ),
        credit_item,
        covered(date!(2026 - 03 - 12)),
    ]);
    let c = of(&r, Subject::Credit(CreditId::parse("C1").unwrap()));
    assert_eq!(c.label, Some(Label::TesNoIufOrIuv));
    assert_eq!(
        c.suggestions,
        vec![Suggestion::CandidateFlow {
            flow_id: FlowId::parse(IUF).unwrap(),
            reasons: vec![
                CandidateReason::Trn,
                CandidateReason::Amount,
                CandidateReason::Date,
                CandidateReason::Prefix
            ]
        }]
    );
    // The suggestion does not change the key's label.
    assert_eq!(label_of(&r, &k), Label::IufNoTes);
}

#[test]
fn a_credit_without_marker_is_tes_no_match() {
    let r = run(vec![credit("C1", 1_000, "RIMBORSO SPESE LEGALI")]);
    assert_eq!(credit_label(&r, "C1"), Label::TesNoMatch);
}

#[test]
fn a_new_revision_replaces_the_old_one_and_both_are_kept() {
    let k = key(1, "R1", 1);
    let dropped = key(2, "IUR2", 1);
    let mut r = run(vec![
        receipt(&k, 100),
        EvidenceItem::Flow(flow_rev(
            IUF,
            1,
            date!(2026 - 03 - 11),
            vec![
                line(&k, 90, OutcomeCode::Executed),
                line(&dropped, 5, OutcomeCode::Executed),
            ],
        )),
    ]);
    assert_eq!(label_of(&r, &k), Label::RtNoIuf);
    assert_eq!(label_of(&r, &dropped), Label::IuvNoRt);
    let changes = r
        .apply([EvidenceItem::Flow(flow_rev(
            IUF,
            2,
            date!(2026 - 03 - 11),
            vec![line(&k, 100, OutcomeCode::Executed)],
        ))])
        .unwrap();
    assert_eq!(label_of(&r, &k), Label::RtIuf);
    assert!(
        !r.assessments()
            .contains_key(&Subject::Transfer(dropped.clone()))
    );
    let gone = changes
        .iter()
        .find(|c| c.subject == Subject::Transfer(dropped.clone()))
        .unwrap();
    assert!(gone.current.is_none());
    let flow_id = FlowId::parse(IUF).unwrap();
    assert_eq!(r.evidence().flow_revisions(&flow_id).count(), 2);
    // An older revision arriving late changes nothing.
    let late = r
        .apply([EvidenceItem::Flow(flow_rev(
            IUF,
            0,
            date!(2026 - 03 - 11),
            vec![line(&k, 1, OutcomeCode::Executed)],
        ))])
        .unwrap();
    assert!(late.is_empty());
    assert_eq!(*r.assessments(), r.recompute_all());
}

#[test]
fn the_history_of_a_key_moves_from_rt_no_iuf_to_rt_iuf_to_rt_iuf_tes() {
    let k = key(1, "R1", 1);
    let subject = Subject::Transfer(k.clone());
    let mut r = Reconciler::new();
    let mut history = Vec::new();
    for item in [
        receipt(&k, 100),
        flow(IUF, vec![line(&k, 100, OutcomeCode::Executed)]),
        credit("C1", 100, &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}")),
    ] {
        for change in r.apply([item]).unwrap() {
            if change.subject == subject && change.is_label_change() {
                history.push((change.current.unwrap().label.unwrap(), change.causes));
            }
        }
    }
    assert_eq!(
        history,
        vec![
            (
                Label::RtNoIuf,
                BTreeSet::from([EvidenceRef::Receipt(k.clone())])
            ),
            (
                Label::RtIuf,
                BTreeSet::from([EvidenceRef::Flow(FlowId::parse(IUF).unwrap(), 1)])
            ),
            (
                Label::RtIufTes,
                BTreeSet::from([EvidenceRef::Credit(CreditId::parse("C1").unwrap())])
            ),
        ]
    );
}

#[test]
fn the_same_evidence_twice_changes_nothing_and_a_contradiction_is_refused_whole() {
    let k = key(1, "R1", 1);
    let items = vec![
        receipt(&k, 100),
        flow(IUF, vec![line(&k, 100, OutcomeCode::Executed)]),
    ];
    let mut r = run(items.clone());
    assert!(r.apply(items).unwrap().is_empty());
    let before = r.assessments().clone();
    let err = r
        .apply([credit("C9", 1, "X"), receipt(&k, 101)])
        .unwrap_err();
    assert_eq!(err, EvidenceError::ReceiptConflict(k));
    assert_eq!(*r.assessments(), before);
    assert!(
        r.evidence()
            .credit(&CreditId::parse("C9").unwrap())
            .is_none()
    );
}

/// The flows' headers of `items` as an import holds them (the skeleton: no lines, no
/// receipts), with the credits and the coverage.
fn headers(items: &[EvidenceItem]) -> Evidence {
    let mut held = Evidence::new();
    for item in items {
        match item {
            EvidenceItem::Receipt(_) => {}
            EvidenceItem::Flow(f) => held
                .add(EvidenceItem::Flow(ReportingFlow {
                    lines: Vec::new(),
                    ..f.clone()
                }))
                .unwrap(),
            other => held.add(other.clone()).unwrap(),
        }
    }
    held
}

#[test]
fn a_statement_restates_each_key_of_one_flow_from_its_flow_alone() {
    let paid = key(1, "R1", 1);
    let short = key(2, "R2", 1);
    let lost = key(3, "R3", 1);
    let twice = key(4, "R4", 1);
    let other = "2026-03-11ABI05034-0007";
    let held = vec![
        receipt(&paid, 1_000),
        receipt(&short, 2_000),
        receipt(&twice, 300),
        flow(
            IUF,
            vec![
                line(&paid, 1_000, OutcomeCode::Executed),
                line(&short, 1_500, OutcomeCode::Executed),
                line(&lost, 700, OutcomeCode::Executed),
                line(&twice, 300, OutcomeCode::Executed),
            ],
        ),
        flow(other, vec![line(&twice, 300, OutcomeCode::Executed)]),
    ];
    let statement = vec![credit(
        "C0",
        3_500,
        &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}"),
    )];
    let before = run(held.clone());
    let mut after = before.clone();
    after.apply(statement.clone()).unwrap();
    let flows = restated_flows(&headers(&held), &statement).unwrap();
    let flow = &flows[&FlowId::parse(IUF).unwrap()];
    assert_eq!(
        flow.assessment.treasury_state,
        Some(FlowTreasuryState::Cashed)
    );
    assert_eq!(
        flow.causes,
        BTreeSet::from([statement[0].reference()]),
        "the credit reached the flow"
    );
    assert!(!flows.contains_key(&FlowId::parse(other).unwrap()));
    let restated =
        |k: &TransferKey| restate_transfer(&of(&before, Subject::Transfer(k.clone())), &flows);
    // Paid and reported: RT_IUF -> RT_IUF_TES; the line of another amount keeps its
    // difference and RT_NO_IUF; the line without receipt stays IUV_NO_RT.
    for (k, label) in [
        (&paid, Label::RtIufTes),
        (&short, Label::RtNoIuf),
        (&lost, Label::IuvNoRt),
    ] {
        let now = restated(k).unwrap();
        assert_eq!(now.label, Some(label), "{k}");
        assert_eq!(now, of(&after, Subject::Transfer(k.clone())), "{k}");
    }
    assert_eq!(
        of(&before, Subject::Transfer(paid.clone())).label,
        Some(Label::RtIuf)
    );
    // Reported by two flows: assessed from its evidence instead.
    assert_eq!(restated(&twice), None);
}

#[test]
fn a_key_its_flow_alone_decides_is_told_from_the_others() {
    let paid = key(1, "R1", 1);
    let short = key(2, "R2", 1);
    let twice = key(3, "R3", 1);
    let named = key(4, "R4", 1);
    let waiting = key(5, "R5", 1);
    let mut items: Vec<EvidenceItem> = [&paid, &short, &twice, &named, &waiting]
        .into_iter()
        .map(|k| receipt(k, 1_000))
        .collect();
    items.push(receipt(&key(3, "D3", 1), 1_000));
    items.push(flow(
        IUF,
        vec![
            line(&paid, 1_000, OutcomeCode::Executed),
            line(&short, 900, OutcomeCode::Executed),
            line(&twice, 1_000, OutcomeCode::Executed),
            line(&named, 1_000, OutcomeCode::Executed),
        ],
    ));
    items.push(credit("C1", 1_000, &format!("/RFB/{}/TXT/X", named.iuv)));
    let r = run(items);
    let evidence = r.evidence();
    let flow_id = FlowId::parse(IUF).unwrap();
    assert_eq!(plain(evidence, &paid), Some(PlainKey::ReportedBy(&flow_id)));
    assert_eq!(plain(evidence, &waiting), Some(PlainKey::ReceiptOnly));
    for k in [&short, &twice, &named] {
        assert_eq!(plain(evidence, k), None, "{k}");
    }
    assert_eq!(of(&r, Subject::Transfer(waiting.clone())), receipt_only());
    let flow_now = of(&r, Subject::Flow(flow_id.clone()));
    let composed = compose_plain(&flow_id, &flow_now).unwrap();
    assert_eq!(composed.label, Some(Label::RtIuf));
    assert_eq!(of(&r, Subject::Transfer(paid)), composed);
}

// ---- properties ----

/// The parameters of a random day of evidence for a few IUVs.
#[derive(Debug, Clone)]
struct DayPlan {
    /// Per IUV: (second receipt id?, second transfer?, amount index).
    receipts: Vec<(bool, bool, usize, bool)>,
    /// Per flow: (which IUVs' keys it reports, line amount offset, revision 2 offset?, regulation day).
    flows: Vec<(Vec<usize>, i64, Option<i64>, u8)>,
    /// Per credit: (kind, referenced flows, amount offset).
    credits: Vec<(u8, Vec<usize>, i64)>,
    coverage: Vec<u8>,
}

fn day_plan() -> impl Strategy<Value = DayPlan> {
    (
        prop::collection::vec(
            (any::<bool>(), any::<bool>(), 0usize..3, any::<bool>()),
            1..5,
        ),
        prop::collection::vec(
            (
                prop::collection::vec(0usize..5, 1..4),
                prop_oneof![Just(0i64), Just(0), Just(1)],
                prop::option::of(prop_oneof![Just(0i64), Just(-1), Just(2)]),
                1u8..5,
            ),
            0..4,
        ),
        prop::collection::vec(
            (
                0u8..5,
                prop::collection::vec(0usize..4, 1..3),
                prop_oneof![Just(0i64), Just(0), Just(-3)],
            ),
            0..5,
        ),
        prop::collection::vec(1u8..6, 0..3),
    )
        .prop_map(|(receipts, flows, credits, coverage)| DayPlan {
            receipts,
            flows,
            credits,
            coverage,
        })
}

fn build(plan: &DayPlan) -> Vec<EvidenceItem> {
    const AMOUNTS: [i64; 3] = [100, 250, 1_000];
    let day = |d: u8| date!(2026 - 03 - 01) + Duration::days(i64::from(d));
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for (i, (second_receipt, second_transfer, amount, unreported)) in
        plan.receipts.iter().enumerate()
    {
        let n = i as u32 + 1;
        let cents = AMOUNTS[*amount];
        let first = key(n, &format!("R{n}"), 1);
        if !*unreported {
            items.push(receipt(&first, cents));
        }
        keys.push((first, cents));
        if *second_transfer {
            let k = key(n, &format!("R{n}"), 2);
            items.push(receipt(&k, cents / 2));
            keys.push((k, cents / 2));
        }
        if *second_receipt {
            let k = key(n, &format!("D{n}"), 1);
            items.push(receipt(&k, cents));
        }
    }
    let mut flow_totals = Vec::new();
    for (f, (reported, offset, revision, regulation)) in plan.flows.iter().enumerate() {
        let id = format!("2026-03-0{regulation}PSP{f}-X");
        let lines: Vec<FlowLine> = reported
            .iter()
            .filter_map(|i| keys.get(*i))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|(k, cents)| line(k, cents + offset, OutcomeCode::Executed))
            .collect();
        if lines.is_empty() {
            continue;
        }
        let first = flow_rev(&id, 1, day(*regulation), lines.clone());
        flow_totals.push((id.clone(), first.total_cents, first.trn.clone()));
        items.push(EvidenceItem::Flow(first));
        if let Some(delta) = revision {
            let mut later: Vec<FlowLine> = lines.into_iter().skip(1).collect();
            for l in &mut later {
                l.amount_cents += delta;
            }
            if !later.is_empty() {
                let second = flow_rev(&id, 2, day(*regulation), later);
                flow_totals.push((id.clone(), second.total_cents, second.trn.clone()));
                items.push(EvidenceItem::Flow(second));
            }
        }
    }
    for (c, (kind, refs, offset)) in plan.credits.iter().enumerate() {
        let id = format!("C{c}");
        let chosen: Vec<&(String, i64, String)> =
            refs.iter().filter_map(|r| flow_totals.get(*r)).collect();
        let item = match kind {
            0 | 1 if !chosen.is_empty() => {
                let causale = chosen
                    .iter()
                    .map(|(f, _, _)| format!("/PUR/LGPE - RIVERSAMENTO URI {f} "))
                    .collect::<String>();
                let cents: i64 = chosen.iter().map(|(_, t, _)| t).sum::<i64>() + offset;
                credit(&id, cents, &causale)
            }
            2 if !chosen.is_empty() => {
                // Truncated.
                let (f, t, trn) = chosen[0];
                let mut item = credit(
                    &id,
                    t + offset,
                    &format!("/PUR/LGPE-RIVERSAMENTO/URI/{}", &f[..6]),
                );
                if let EvidenceItem::Credit(c) = &mut item {
                    c.trn = Some(trn.clone());
                }
                item
            }
            3 => {
                let (k, cents) = &keys[refs[0] % keys.len()];
                credit(&id, cents + offset, &format!("/RFB/{}/TXT/X", k.iuv))
            }
            _ => credit(&id, 100 + offset, "VERSAMENTO CONTANTI"),
        };
        items.push(item);
    }
    items.extend(plan.coverage.iter().map(|d| covered(day(*d))));
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_total_discrepancy_is_named_exactly_when_the_lines_do_not_add_up_to_the_total(
        amounts in prop::collection::vec(-10_000i64..1_000_000, 0..20),
        shift in -500i64..500,
    ) {
        let lines = amounts
            .iter()
            .enumerate()
            .map(|(n, cents)| line(&key(u32::try_from(n).unwrap() + 1, "R", 1), *cents, OutcomeCode::Executed))
            .collect();
        let mut flow = flow_rev(IUF, 1, date!(2026 - 03 - 11), lines);
        let sum: i64 = amounts.iter().sum();
        prop_assert_eq!(flow.lines_cents(), sum);
        prop_assert_eq!(flow.total_discrepancy(), None);
        flow.total_cents = sum + shift;
        let warning = flow.total_discrepancy();
        prop_assert_eq!(warning.is_some(), shift != 0);
        if let Some(warning) = warning {
            prop_assert!(warning.contains(&format!("({shift:+} cents)")), "{}", warning);
            prop_assert!(warning.contains(&format!("add up to {sum} cents")), "{}", warning);
        }
    }

    #[test]
    fn any_order_and_any_steps_give_the_labels_of_all_at_once(
        (items, cuts) in day_plan().prop_map(|p| build(&p)).prop_flat_map(|items| {
            let n = items.len();
            (Just(items).prop_shuffle(), prop::collection::vec(0..=n, 0..6))
        }),
    ) {
        let mut all_at_once = Reconciler::new();
        all_at_once.apply(items.clone()).unwrap();
        prop_assert_eq!(all_at_once.assessments(), &classify_all(all_at_once.evidence()));

        let mut cuts = cuts;
        cuts.push(0);
        cuts.push(items.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut stepwise = Reconciler::new();
        for window in cuts.windows(2) {
            stepwise.apply(items[window[0]..window[1]].to_vec()).unwrap();
            prop_assert_eq!(stepwise.assessments(), &stepwise.recompute_all());
        }
        prop_assert_eq!(stepwise.assessments(), all_at_once.assessments());
        prop_assert_eq!(stepwise.evidence(), all_at_once.evidence());
        // Again: nothing moves.
        prop_assert!(stepwise.apply(items).unwrap().is_empty());
    }

    #[test]
    fn a_key_restated_from_its_flow_is_labelled_as_its_whole_evidence_labels_it(
        (items, cut) in day_plan().prop_map(|p| build(&p)).prop_flat_map(|items| {
            let n = items.len();
            (Just(items), 0..=n)
        }),
    ) {
        // Held: the receipts, the flows and some of the treasury; then a statement with
        // the rest of the credits and coverage.
        let (treasury, reporting): (Vec<EvidenceItem>, Vec<EvidenceItem>) = items
            .into_iter()
            .partition(|i| matches!(i, EvidenceItem::Credit(_) | EvidenceItem::TreasuryCoverage(_)));
        let cut = cut.min(treasury.len());
        let held: Vec<EvidenceItem> = reporting.into_iter().chain(treasury[..cut].iter().cloned()).collect();
        let statement = treasury[cut..].to_vec();
        let before = run(held.clone());
        let mut after = before.clone();
        let changes = after.apply(statement.clone()).unwrap();
        let flows = restated_flows(&headers(&held), &statement).unwrap();
        let named: BTreeSet<Iuv> = statement
            .iter()
            .filter_map(|i| match i {
                EvidenceItem::Credit(c) => match parse_causale(&c.causale) {
                    CausaleReferences::Iuvs(list) => Some(list),
                    _ => None,
                },
                _ => None,
            })
            .flatten()
            .collect();
        for (subject, previous) in before.assessments() {
            let Subject::Transfer(key) = subject else { continue };
            let now = after.assessments().get(subject);
            match restate_transfer(previous, &flows) {
                Some(restated) => prop_assert_eq!(Some(&restated), now, "{}", key),
                None => prop_assert_ne!(previous.flow_ids.len(), 1, "{} not restated", key),
            }
            // Composed with its flow's assessment as the statement leaves it, when read, the
            // key's stored assessment is the statement's; and so is a history row's labels.
            prop_assert_eq!(composed_flow(previous).is_some(), previous.flow_ids.len() == 1, "{}", key);
            if let Some(flow) = composed_flow(previous) {
                let flow_now = after.assessments().get(&Subject::Flow(flow.clone()));
                let composed = flow_now.and_then(|f| compose_with_flow(previous, f));
                prop_assert_eq!(composed.as_ref(), now, "{} composed", key);
                let state = flow_now.and_then(|f| f.treasury_state).unwrap();
                prop_assert_eq!(
                    Some(&compose_labels(&previous.labels, state)),
                    now.map(|n| &n.labels),
                    "{} history", key
                );
            }
            // A key the statement changes was reached by what reached its flow.
            if previous.flow_ids.len() == 1 && !named.contains(&key.iuv)
                && let Some(change) = changes.iter().find(|c| &c.subject == subject)
            {
                let flow = previous.flow_ids.iter().next().unwrap();
                prop_assert_eq!(Some(&change.causes), flows.get(flow).map(|f| &f.causes), "{}", key);
            }
        }
    }

    #[test]
    fn a_plain_key_is_labelled_by_its_receipt_or_by_its_flow_alone(plan in day_plan()) {
        let r = run(build(&plan));
        let evidence = r.evidence();
        for (subject, assessment) in r.assessments() {
            let Subject::Transfer(key) = subject else { continue };
            match plain(evidence, key) {
                Some(PlainKey::ReceiptOnly) => {
                    prop_assert_eq!(assessment, &receipt_only(), "{}", key);
                }
                Some(PlainKey::ReportedBy(flow)) => {
                    let flow_now = r.assessments().get(&Subject::Flow(flow.clone()));
                    let composed = flow_now.and_then(|f| compose_plain(flow, f));
                    prop_assert_eq!(Some(assessment), composed.as_ref(), "{}", key);
                }
                None => {}
            }
        }
    }

    #[test]
    fn every_key_gets_one_primary_label_the_first_of_its_conditions(plan in day_plan()) {
        let r = run(build(&plan));
        for (subject, a) in r.assessments() {
            match subject {
                Subject::Transfer(_) => {
                    prop_assert!(!a.labels.is_empty());
                    prop_assert_eq!(a.label, a.labels.iter().next().copied());
                    prop_assert!(a.labels.iter().all(|l| !matches!(l, Label::TesNoIufOrIuv | Label::TesNoMatch)));
                }
                Subject::Credit(_) => prop_assert_eq!(a.labels.len(), 1),
                Subject::Flow(_) => prop_assert!(a.treasury_state.is_some()),
            }
        }
    }
}
