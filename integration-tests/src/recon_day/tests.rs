//! The generator's promises: every label and state of the contract and every scenario of the
//! issue in every day, whatever the seed; the same seed giving the same day; a truth whose
//! sums agree with the documents it describes.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::causale::MARKER_SPELLINGS;
use incasso_domain::reconciliation::{FlowTreasuryState, Label};

use super::*;

const SEEDS: std::ops::Range<u64> = 0..24;

fn day(seed: u64) -> Day {
    let plan = Plan::generate(seed, DayShape::small());
    plan.day(&plan.synthetic_notices()).unwrap()
}

fn text_of(document: &Document) -> &str {
    &document.content
}

#[test]
fn every_label_state_and_scope_occurs_whatever_the_seed() {
    for seed in SEEDS {
        let day = day(seed);
        let truth = &day.truth;
        let own: BTreeSet<Label> = truth
            .transfers
            .iter()
            .filter(|t| t.scope == Scope::Creditor)
            .map(|t| t.label.unwrap())
            .collect();
        assert_eq!(
            own,
            BTreeSet::from([
                Label::Doppi,
                Label::IuvNoRt,
                Label::IufTesDivImp,
                Label::IufNoTes,
                Label::RtIufTes,
                Label::RtIuf,
                Label::RtTes,
                Label::RtNoIuf,
            ]),
            "seed {seed}"
        );
        let credits: BTreeSet<Label> = truth.credits.iter().map(|c| c.label).collect();
        assert_eq!(
            credits,
            BTreeSet::from([
                Label::RtIufTes,
                Label::IufTesDivImp,
                Label::RtTes,
                Label::TesNoIufOrIuv,
                Label::TesNoMatch,
            ]),
            "seed {seed}"
        );
        let states: BTreeSet<FlowTreasuryState> = truth.flows.iter().map(|f| f.state).collect();
        assert_eq!(states.len(), 4, "seed {seed}: {states:?}");
        let others: Vec<&TransferTruth> = truth
            .transfers
            .iter()
            .filter(|t| t.scope == Scope::OtherBeneficiary)
            .collect();
        assert!(!others.is_empty(), "seed {seed}");
        assert!(others.iter().all(|t| {
            t.label.is_none()
                && t.beneficiary == crate::requests::CITTA_METROPOLITANA
                && t.id_transfer == 2
        }));
    }
}

#[test]
fn every_scenario_of_the_issue_occurs_whatever_the_seed() {
    for seed in SEEDS {
        let plan = Plan::generate(seed, DayShape::small());
        let notices = plan.synthetic_notices();
        let day = plan.day(&notices).unwrap();
        let issued: BTreeSet<&str> = notices.iter().map(|n| n.iuv.as_str()).collect();
        let treasury: String = day
            .documents
            .iter()
            .filter(|d| d.kind == DocumentKind::Treasury)
            .map(text_of)
            .collect::<String>()
            // A causale cut into 140-character pieces reads as one text.
            .replace("</Ustrd><Ustrd>", "");
        let flows: String = day
            .documents
            .iter()
            .filter(|d| d.kind == DocumentKind::Flow)
            .map(text_of)
            .collect();
        // Receipts over both operations, Stand-In ones, and of notices incasso did not issue.
        assert!(day.receipts.iter().any(|r| r.v2), "seed {seed}");
        assert!(day.receipts.iter().any(|r| !r.v2), "seed {seed}");
        assert!(day.receipts.iter().any(|r| r.spec.stand_in), "seed {seed}");
        assert!(
            day.receipts
                .iter()
                .any(|r| !issued.contains(r.spec.iuv.as_str())),
            "seed {seed}"
        );
        assert!(day.receipts.len() <= 300, "a small day stays small");
        // A receipt sent twice.
        let ids: BTreeSet<&str> = day
            .receipts
            .iter()
            .map(|r| r.spec.receipt_id.as_str())
            .collect();
        assert!(ids.len() < day.receipts.len(), "seed {seed}");
        // A transfer of idTransfer 2 of Milan's.
        assert!(
            day.truth
                .transfers
                .iter()
                .any(|t| t.scope == Scope::Creditor && t.id_transfer == 2),
            "seed {seed}"
        );
        // Stand-In and code-9 lines.
        assert!(
            flows.contains("<codiceEsitoSingoloPagamento>4<"),
            "seed {seed}"
        );
        assert!(
            flows.contains("<codiceEsitoSingoloPagamento>9<"),
            "seed {seed}"
        );
        assert!(
            flows.contains("<codiceEsitoSingoloPagamento>8<"),
            "seed {seed}"
        );
        // Flows with two revisions.
        assert!(
            day.truth.flows.iter().any(|f| f.revisions == 2),
            "seed {seed}"
        );
        // A flow paid by two transfers, one transfer paying two flows.
        assert!(treasury.contains("/TXT/0/URI/") && treasury.contains("/TXT/1/URI/"));
        assert!(day.truth.flows.iter().any(|f| f.credit_ids.len() == 2));
        assert!(
            day.truth
                .credits
                .iter()
                .any(|c| c.attributed_flow_ids.len() == 2)
        );
        // Every spelling of the marker, embedded markers and split dates.
        for marker in MARKER_SPELLINGS {
            assert!(
                treasury.contains(&format!("/PUR/{marker}/URI/")),
                "{marker}"
            );
        }
        assert!(treasury.contains("RIVERSAMENTO URI "));
        assert!(treasury.contains(":RI3:/PUR/LGPE-RIVERSAMENTO/URI/"));
        assert!(treasury.contains("ACCREDITI VARI /PUR/"));
        assert!(
            day.truth.flows.iter().any(|f| treasury.contains(&format!(
                "/URI/{} {}",
                &f.flow_id[..9],
                &f.flow_id[9..]
            ))),
            "seed {seed}: no split date"
        );
        // A truncated IUF: a prefix of a flow's id that is no flow's id.
        assert!(day.truth.credits.iter().any(|c| c.story == "truncated IUF"));
        assert!(
            day.truth
                .credits
                .iter()
                .any(|c| c.story == "a known IUF and a truncated one")
        );
        // A flow paid in two parts that fall short.
        assert!(
            day.truth
                .flows
                .iter()
                .any(|f| f.state == FlowTreasuryState::DivImp && f.credit_ids.len() == 2)
        );
        // Amounts off by cents: a line against its receipt, a credit against its flow.
        assert!(
            day.truth
                .transfers
                .iter()
                .any(|t| t.story.contains("line off by")),
            "seed {seed}"
        );
        assert!(
            day.truth
                .flows
                .iter()
                .any(|f| f.state == FlowTreasuryState::DivImp)
        );
        // A flow whose declared total its lines do not add up to.
        // A decimal amount's text, read as the readers read it.
        let cents = |euro: &str| incasso_reconciliation::json_amount_cents(euro).unwrap();
        assert!(
            day.documents
                .iter()
                .filter(|d| d.kind == DocumentKind::Flow)
                .any(|d| {
                    let declared =
                        crate::node_simulator::element_text(&d.content, "importoTotalePagamenti")
                            .map(cents);
                    let lines: i64 =
                        crate::node_simulator::element_texts(&d.content, "singoloImportoPagato")
                            .into_iter()
                            .map(cents)
                            .sum();
                    declared.is_some_and(|total| total != lines)
                }),
            "seed {seed}"
        );
        // /RFB/ and /RFS/ credits, and a credit of no pagoPA's.
        assert!(treasury.contains("/RFB/") && treasury.contains("/RFS/"));
        // Three treasury documents: camt.053, camt.054, the OPI giornale.
        assert!(treasury.contains("camt.053.001.") && treasury.contains("camt.054.001."));
        assert!(treasury.contains("<flusso_giornale_di_cassa"));
    }
}

/// A flow reporting `payment` again and again in one flow would make the truth's sums wrong;
/// here the sums are taken from the documents themselves.
#[test]
fn the_truth_agrees_with_the_documents() {
    for seed in SEEDS {
        let day = day(seed);
        let credit_amount: BTreeMap<&str, i64> = day
            .truth
            .credits
            .iter()
            .map(|c| (c.id.as_str(), c.amount_cents))
            .collect();
        for flow in &day.truth.flows {
            // The revision that counts is the last document of the flow.
            let document = day
                .documents
                .iter()
                .rfind(|d| {
                    d.content
                        .contains(&format!("<identificativoFlusso>{}<", flow.flow_id))
                })
                .unwrap();
            let total =
                crate::node_simulator::element_text(&document.content, "importoTotalePagamenti")
                    .unwrap();
            assert_eq!(
                total,
                euro(flow.total_cents),
                "seed {seed} {}",
                flow.flow_id
            );
            assert_eq!(
                crate::node_simulator::element_texts(&document.content, "datiSingoliPagamenti")
                    .len(),
                flow.line_count
            );
            // Cashed: its component's credits equal its component's totals; divergent: not.
            let component_flows: BTreeSet<&str> = day
                .truth
                .credits
                .iter()
                .filter(|c| flow.credit_ids.contains(&c.id))
                .flat_map(|c| c.attributed_flow_ids.iter().map(String::as_str))
                .collect();
            let flows_total: i64 = day
                .truth
                .flows
                .iter()
                .filter(|f| component_flows.contains(f.flow_id.as_str()))
                .map(|f| f.total_cents)
                .sum();
            let credits_total: i64 = flow
                .credit_ids
                .iter()
                .map(|c| credit_amount[c.as_str()])
                .sum();
            match flow.state {
                FlowTreasuryState::Cashed => assert_eq!(credits_total, flows_total),
                FlowTreasuryState::DivImp => assert_ne!(credits_total, flows_total),
                FlowTreasuryState::NoTes => {
                    assert!(flow.credit_ids.is_empty());
                    assert!(document.content.contains("<dataRegolamento>2026-11-2"));
                }
                FlowTreasuryState::Pending => {
                    assert!(flow.credit_ids.is_empty());
                    assert!(document.content.contains("<dataRegolamento>2026-11-26<"));
                }
            }
        }
        // Every reported key is a line of its flow's document, with the truth's amount when
        // the receipt is missing.
        for t in day.truth.transfers.iter().filter(|t| t.flow_id.is_some()) {
            let flow = t.flow_id.as_deref().unwrap();
            let document = day
                .documents
                .iter()
                .rfind(|d| {
                    d.content
                        .contains(&format!("<identificativoFlusso>{flow}<"))
                })
                .unwrap();
            assert!(
                document.content.contains(&format!(
                    "<identificativoUnivocoRiscossione>{}<",
                    t.receipt_id
                )),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_day_and_another_seed_another() {
    let fingerprint = |day: &Day| {
        let receipts: Vec<String> = day.receipts.iter().map(Receipt::envelope).collect();
        let documents: Vec<(String, String)> = day
            .documents
            .iter()
            .map(|d| (d.name.clone(), d.content.clone()))
            .collect();
        (receipts, documents, day.truth.to_json())
    };
    assert_eq!(fingerprint(&day(7)), fingerprint(&day(7)));
    assert_ne!(fingerprint(&day(7)), fingerprint(&day(8)));
    let plan = Plan::generate(7, DayShape::small());
    assert_eq!(
        plan.requests(),
        Plan::generate(7, DayShape::small()).requests()
    );
}

#[test]
fn a_bigger_shape_gives_a_bigger_day_with_unique_identifiers() {
    let small = day(3);
    let plan = Plan::generate(3, DayShape::scaled(4, 6));
    let big = plan.day(&plan.synthetic_notices()).unwrap();
    assert!(big.receipts.len() > 3 * small.receipts.len());
    let receipt_ids: BTreeSet<&str> = big
        .receipts
        .iter()
        .map(|r| r.spec.receipt_id.as_str())
        .collect();
    let keys: BTreeSet<(&str, &str, u32)> = big
        .truth
        .transfers
        .iter()
        .map(|t| (t.iuv.as_str(), t.receipt_id.as_str(), t.id_transfer))
        .collect();
    assert_eq!(keys.len(), big.truth.transfers.len());
    assert!(
        receipt_ids.len() < big.receipts.len(),
        "some receipts are sent twice"
    );
    let names: BTreeSet<&str> = big.documents.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.len(), big.documents.len());
    let credit_ids: BTreeSet<&str> = big.truth.credits.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(credit_ids.len(), big.truth.credits.len());
}
