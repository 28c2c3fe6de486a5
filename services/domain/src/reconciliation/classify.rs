//! The rules: attribution of credits to flows and the components they form (§3), the flow's
//! treasury state, the labels of a transfer key (§4) and of a credit (§5), and the
//! suggestions. Every function reads an [`Evidence`] and decides from exact cents only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::causale::CausaleReferences;
use super::evidence::{Evidence, HeldCredit, ReportingFlow};
use super::key::{CreditId, FlowId, TransferKey};
use super::label::{
    Assessment, CANDIDATE_DAYS, CandidateReason, FlowTreasuryState, Label, Subject, Suggestion,
};

/// Flows and credits linked by attributions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Component {
    /// The flows (latest revisions).
    pub flow_ids: BTreeSet<FlowId>,
    /// The credits attributed to them.
    pub credit_ids: BTreeSet<CreditId>,
    /// Sum of the credits.
    pub credits_cents: i64,
    /// Sum of the flows' `importoTotalePagamenti`.
    pub flows_cents: i64,
}

impl Component {
    /// Cashed when the sums are equal, to the cent.
    pub fn is_cashed(&self) -> bool {
        !self.credit_ids.is_empty() && self.credits_cents == self.flows_cents
    }
}

/// The flows a credit is attributed to: every IUF it names, when all are known flows.
pub fn attributed_flows(evidence: &Evidence, credit: &HeldCredit) -> Vec<FlowId> {
    match &credit.references {
        CausaleReferences::Flows(refs) => {
            let ids: Vec<FlowId> = refs
                .iter()
                .filter_map(|r| FlowId::parse(r).ok())
                .filter(|id| evidence.latest_flow(id).is_some())
                .collect();
            if ids.len() == refs.len() {
                ids
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// The credits attributed to a flow.
pub fn credits_of_flow(evidence: &Evidence, flow_id: &FlowId) -> Vec<CreditId> {
    evidence
        .credits_by_flow_ref
        .get(flow_id.as_str())
        .into_iter()
        .flatten()
        .filter(|id| {
            evidence
                .credit(id)
                .is_some_and(|c| !attributed_flows(evidence, c).is_empty())
        })
        .cloned()
        .collect()
}

/// The component holding a flow.
pub fn component_of_flow(evidence: &Evidence, flow_id: &FlowId) -> Component {
    let mut component = Component::default();
    if evidence.latest_flow(flow_id).is_none() {
        return component;
    }
    let mut queue = VecDeque::from([flow_id.clone()]);
    component.flow_ids.insert(flow_id.clone());
    while let Some(flow) = queue.pop_front() {
        for credit_id in credits_of_flow(evidence, &flow) {
            if !component.credit_ids.insert(credit_id.clone()) {
                continue;
            }
            let Some(credit) = evidence.credit(&credit_id) else {
                continue;
            };
            for other in attributed_flows(evidence, credit) {
                if component.flow_ids.insert(other.clone()) {
                    queue.push_back(other);
                }
            }
        }
    }
    for id in &component.flow_ids {
        if let Some(flow) = evidence.latest_flow(id) {
            component.flows_cents += flow.total_cents;
        }
    }
    for id in &component.credit_ids {
        if let Some(credit) = evidence.credit(id) {
            component.credits_cents += credit.credit.amount_cents;
        }
    }
    component
}

/// The component holding a credit (empty when the credit is attributed to nothing).
pub fn component_of_credit(evidence: &Evidence, credit_id: &CreditId) -> Component {
    evidence
        .credit(credit_id)
        .and_then(|c| attributed_flows(evidence, c).into_iter().next())
        .map(|flow| component_of_flow(evidence, &flow))
        .unwrap_or_default()
}

/// A flow's treasury state, given its component.
pub fn flow_state(
    evidence: &Evidence,
    flow: &ReportingFlow,
    component: &Component,
) -> FlowTreasuryState {
    if component.credit_ids.is_empty() {
        if evidence
            .covered_through()
            .is_some_and(|day| flow.regulation_date <= day)
        {
            FlowTreasuryState::NoTes
        } else {
            FlowTreasuryState::Pending
        }
    } else if component.is_cashed() {
        FlowTreasuryState::Cashed
    } else {
        FlowTreasuryState::DivImp
    }
}

fn difference(component: &Component) -> Suggestion {
    Suggestion::ComponentDifference {
        credits_cents: component.credits_cents,
        flows_cents: component.flows_cents,
        difference_cents: component.credits_cents - component.flows_cents,
    }
}

fn primary(labels: &BTreeSet<Label>) -> Option<Label> {
    labels.iter().next().copied()
}

/// A transfer key's assessment (§4); `None` when no receipt or latest line holds the key.
pub fn assess_transfer(evidence: &Evidence, key: &TransferKey) -> Option<Assessment> {
    let receipt = evidence.receipt(key);
    let lines = evidence.lines_of(key);
    if receipt.is_none() && lines.is_empty() {
        return None;
    }
    let mut labels = BTreeSet::new();
    let mut suggestions = Vec::new();
    let mut flow_ids = BTreeSet::new();
    let mut credit_ids = BTreeSet::new();
    let mut treasury_state = None;

    if evidence.receipt_ids_of(&key.iuv, key.transfer_index).len() >= 2 {
        labels.insert(Label::Doppi);
    }
    if !lines.is_empty() && receipt.is_none() {
        labels.insert(Label::IuvNoRt);
    }
    let mut equal_line = false;
    for (flow, line) in &lines {
        flow_ids.insert(flow.flow_id.clone());
        let component = component_of_flow(evidence, &flow.flow_id);
        let state = flow_state(evidence, flow, &component);
        treasury_state = Some(treasury_state.map_or(state, |s: FlowTreasuryState| s.min(state)));
        // The credits attributed to its flow (§3), not every credit of the flow's component:
        // a credit that names only another flow of the component is not this key's.
        credit_ids.extend(credits_of_flow(evidence, &flow.flow_id));
        match state {
            FlowTreasuryState::DivImp => {
                labels.insert(Label::IufTesDivImp);
                let suggestion = difference(&component);
                if !suggestions.contains(&suggestion) {
                    suggestions.push(suggestion);
                }
            }
            FlowTreasuryState::NoTes => {
                labels.insert(Label::IufNoTes);
            }
            FlowTreasuryState::Cashed | FlowTreasuryState::Pending => {}
        }
        if let Some(receipt) = receipt {
            if receipt.amount_cents == line.amount_cents {
                equal_line = true;
                match state {
                    FlowTreasuryState::Cashed => {
                        labels.insert(Label::RtIufTes);
                    }
                    FlowTreasuryState::Pending => {
                        labels.insert(Label::RtIuf);
                    }
                    FlowTreasuryState::DivImp | FlowTreasuryState::NoTes => {}
                }
            } else {
                suggestions.push(Suggestion::LineDifference {
                    flow_id: flow.flow_id.clone(),
                    receipt_cents: receipt.amount_cents,
                    line_cents: line.amount_cents,
                    difference_cents: line.amount_cents - receipt.amount_cents,
                });
            }
        }
    }
    if let Some(receipt) = receipt {
        let mut rt_tes = false;
        if lines.is_empty() {
            for credit_id in evidence.credits_by_iuv.get(&key.iuv).into_iter().flatten() {
                let Some(credit) = evidence.credit(credit_id) else {
                    continue;
                };
                if credit.credit.amount_cents == receipt.amount_cents {
                    rt_tes = true;
                    credit_ids.insert(credit_id.clone());
                } else {
                    suggestions.push(Suggestion::IuvCreditDifference {
                        credit_id: credit_id.clone(),
                        difference_cents: credit.credit.amount_cents - receipt.amount_cents,
                    });
                }
            }
        }
        if rt_tes {
            labels.insert(Label::RtTes);
        } else if !equal_line {
            labels.insert(Label::RtNoIuf);
        }
    }
    Some(Assessment {
        label: primary(&labels),
        labels,
        treasury_state,
        flow_ids,
        credit_ids,
        iuvs: BTreeSet::new(),
        suggestions,
    })
}

/// True when an IUV has a receipt transfer of the amount that no latest flow line reports.
fn unreported_receipt_of(evidence: &Evidence, iuv: &crate::notice_number::Iuv, cents: i64) -> bool {
    evidence.keys_of_iuv(iuv).any(|key| {
        evidence
            .receipt(key)
            .is_some_and(|r| r.amount_cents == cents && evidence.lines_of(key).is_empty())
    })
}

/// Known flows an unknown IUF of a credit may mean, best first.
fn candidate_flows(evidence: &Evidence, credit: &HeldCredit, unknown: &[&str]) -> Vec<Suggestion> {
    let mut candidates: Vec<(usize, Suggestion)> = Vec::new();
    for flow in evidence.latest_flows() {
        let mut reasons = Vec::new();
        if credit.credit.trn.as_deref() == Some(flow.trn.as_str()) {
            reasons.push(CandidateReason::Trn);
        }
        if credit.credit.amount_cents == flow.total_cents {
            reasons.push(CandidateReason::Amount);
        }
        let days = (credit.credit.value_date - flow.regulation_date).whole_days();
        if days.abs() <= CANDIDATE_DAYS {
            reasons.push(CandidateReason::Date);
        }
        if unknown
            .iter()
            .any(|u| flow.flow_id.as_str().starts_with(u) && u.len() < flow.flow_id.as_str().len())
        {
            reasons.push(CandidateReason::Prefix);
        }
        let strong = reasons.contains(&CandidateReason::Trn) || reasons.len() >= 2;
        if strong {
            candidates.push((
                reasons.len(),
                Suggestion::CandidateFlow {
                    flow_id: flow.flow_id.clone(),
                    reasons,
                },
            ));
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    candidates.into_iter().map(|(_, s)| s).collect()
}

/// A credit's assessment (§5).
pub fn assess_credit(evidence: &Evidence, credit_id: &CreditId) -> Option<Assessment> {
    let credit = evidence.credit(credit_id)?;
    let mut labels = BTreeSet::new();
    let mut suggestions = Vec::new();
    let mut flow_ids = BTreeSet::new();
    let mut credit_ids = BTreeSet::new();
    let mut iuvs = BTreeSet::new();
    let mut treasury_state = None;
    match &credit.references {
        CausaleReferences::Flows(refs) => {
            let attributed = attributed_flows(evidence, credit);
            if attributed.is_empty() {
                labels.insert(Label::TesNoIufOrIuv);
                let unknown: Vec<&str> = refs
                    .iter()
                    .map(String::as_str)
                    .filter(|r| !evidence.knows_flow(r))
                    .collect();
                suggestions.extend(candidate_flows(evidence, credit, &unknown));
            } else {
                let component = component_of_credit(evidence, credit_id);
                // The flows it is attributed to (those it names); the component's other credits
                // stand next to it, since its label is the component's.
                flow_ids.extend(attributed);
                credit_ids.extend(component.credit_ids.iter().cloned());
                if component.is_cashed() {
                    labels.insert(Label::RtIufTes);
                    treasury_state = Some(FlowTreasuryState::Cashed);
                } else {
                    labels.insert(Label::IufTesDivImp);
                    treasury_state = Some(FlowTreasuryState::DivImp);
                    suggestions.push(difference(&component));
                }
            }
        }
        CausaleReferences::Iuvs(list) => {
            iuvs.extend(list.iter().cloned());
            let matched = list
                .iter()
                .any(|iuv| unreported_receipt_of(evidence, iuv, credit.credit.amount_cents));
            labels.insert(if matched {
                Label::RtTes
            } else {
                Label::TesNoIufOrIuv
            });
        }
        CausaleReferences::None => {
            labels.insert(Label::TesNoMatch);
        }
    }
    Some(Assessment {
        label: primary(&labels),
        labels,
        treasury_state,
        flow_ids,
        credit_ids,
        iuvs,
        suggestions,
    })
}

/// A flow's assessment: its treasury state (its component's), the component's flows, the
/// credits attributed to it (§3: those naming it), and the component's difference when
/// divergent. `None` for a flow not held.
pub fn assess_flow(evidence: &Evidence, flow_id: &FlowId) -> Option<Assessment> {
    let flow = evidence.latest_flow(flow_id)?;
    let component = component_of_flow(evidence, flow_id);
    let state = flow_state(evidence, flow, &component);
    let mut suggestions = Vec::new();
    if state == FlowTreasuryState::DivImp {
        suggestions.push(difference(&component));
    }
    Some(Assessment {
        label: None,
        labels: BTreeSet::new(),
        treasury_state: Some(state),
        credit_ids: credits_of_flow(evidence, flow_id).into_iter().collect(),
        flow_ids: component.flow_ids,
        iuvs: BTreeSet::new(),
        suggestions,
    })
}

/// Assesses one subject.
pub fn assess(evidence: &Evidence, subject: &Subject) -> Option<Assessment> {
    match subject {
        Subject::Transfer(key) => assess_transfer(evidence, key),
        Subject::Credit(id) => assess_credit(evidence, id),
        Subject::Flow(id) => assess_flow(evidence, id),
    }
}

/// Every subject of the evidence, assessed from scratch: the reference the incremental
/// [`super::Reconciler`] must always agree with.
pub fn classify_all(evidence: &Evidence) -> BTreeMap<Subject, Assessment> {
    let mut out = BTreeMap::new();
    let subjects = evidence
        .transfer_keys()
        .cloned()
        .map(Subject::Transfer)
        .chain(
            evidence
                .credits()
                .map(|c| Subject::Credit(c.credit.id.clone())),
        )
        .chain(
            evidence
                .latest_flows()
                .map(|f| Subject::Flow(f.flow_id.clone())),
        )
        .collect::<Vec<_>>();
    for subject in subjects {
        if let Some(assessment) = assess(evidence, &subject) {
            out.insert(subject, assessment);
        }
    }
    out
}
