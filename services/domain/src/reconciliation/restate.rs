//! A key restated from its flow: when a treasury document (credits, coverage) changes a
//! flow's treasury standing, every key its lines report changes with it, and nothing else of
//! the key does. A key reported by one flow is restated from its own last assessment and the
//! flow's new one, without reading its receipts and lines: what the key's receipts and lines
//! decided (a double payment, a missing receipt, a line of another amount) is read back from
//! its last assessment, and the flow brings its state, its component's credits and their
//! difference. The import of a day's statement restates a million keys this way
//! (docs/reconciliation.md, "Scaling the day"); anything else goes the whole way through
//! [`super::Reconciler`].
//!
//! A restatement is checked before it is trusted: the key's facts read back from its last
//! assessment, composed with its flow's standing as that assessment records it, must give that
//! assessment again, or the key is not restated. The property tests check restatements
//! against [`super::classify_all`].

use std::collections::{BTreeMap, BTreeSet};

use super::engine::Reconciler;
use super::evidence::{Evidence, EvidenceError, EvidenceItem, EvidenceRef};
use super::key::{CreditId, FlowId};
use super::label::{Assessment, FlowTreasuryState, Label, Subject, Suggestion};

/// A flow's treasury standing as its keys see it.
#[derive(PartialEq, Eq)]
struct Standing<'a> {
    state: FlowTreasuryState,
    credit_ids: &'a BTreeSet<CreditId>,
    difference: Option<&'a Suggestion>,
}

impl<'a> Standing<'a> {
    /// The standing an assessment records (a flow's, or a key's of one flow).
    fn of(assessment: &'a Assessment) -> Option<Self> {
        Some(Self {
            state: assessment.treasury_state?,
            credit_ids: &assessment.credit_ids,
            difference: assessment
                .suggestions
                .iter()
                .find(|s| matches!(s, Suggestion::ComponentDifference { .. })),
        })
    }
}

/// What a key's labels say of its receipts and lines, which its flow's standing does not
/// change: all a key's history row keeps of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LabelFacts {
    doppi: bool,
    receipt: bool,
    equal_line: bool,
}

impl LabelFacts {
    /// Read back from a key's labels, for a key its flow's lines report.
    fn of(labels: &BTreeSet<Label>) -> Self {
        // With lines, a key without receipt is IUV_NO_RT, and a receipt with no line of its
        // amount is RT_NO_IUF, whatever the flow's state (contract §4).
        let receipt = !labels.contains(&Label::IuvNoRt);
        Self {
            doppi: labels.contains(&Label::Doppi),
            receipt,
            equal_line: receipt && !labels.contains(&Label::RtNoIuf),
        }
    }

    /// The key's labels with its flow in `state`: the rules of
    /// [`super::classify::assess_transfer`] for a key reported by one flow.
    fn labels(self, state: FlowTreasuryState) -> BTreeSet<Label> {
        let mut labels = BTreeSet::new();
        if self.doppi {
            labels.insert(Label::Doppi);
        }
        if !self.receipt {
            labels.insert(Label::IuvNoRt);
        }
        match state {
            FlowTreasuryState::DivImp => {
                labels.insert(Label::IufTesDivImp);
            }
            FlowTreasuryState::NoTes => {
                labels.insert(Label::IufNoTes);
            }
            FlowTreasuryState::Cashed | FlowTreasuryState::Pending => {}
        }
        if self.receipt {
            if !self.equal_line {
                labels.insert(Label::RtNoIuf);
            } else if state == FlowTreasuryState::Cashed {
                labels.insert(Label::RtIufTes);
            } else if state == FlowTreasuryState::Pending {
                labels.insert(Label::RtIuf);
            }
        }
        labels
    }
}

/// What a key's receipts and its one flow's lines decided, which a treasury document does
/// not change.
struct KeyFacts<'a> {
    flow_id: &'a FlowId,
    labels: LabelFacts,
    line_differences: Vec<&'a Suggestion>,
}

impl<'a> KeyFacts<'a> {
    /// Read back from the key's assessment; `None` unless one flow reports the key.
    fn of(assessment: &'a Assessment) -> Option<Self> {
        let mut flows = assessment.flow_ids.iter();
        let (Some(flow_id), None) = (flows.next(), flows.next()) else {
            return None;
        };
        Some(Self {
            flow_id,
            labels: LabelFacts::of(&assessment.labels),
            line_differences: assessment
                .suggestions
                .iter()
                .filter(|s| matches!(s, Suggestion::LineDifference { .. }))
                .collect(),
        })
    }

    /// Read back from a stored assessment, and checked: composed with the flow's standing as
    /// the assessment records it, the facts give the assessment again.
    fn checked(assessment: &'a Assessment) -> Option<Self> {
        let facts = Self::of(assessment)?;
        (facts.compose(&Standing::of(assessment)?) == *assessment).then_some(facts)
    }

    /// The key's assessment with its flow in `standing`.
    fn compose(&self, standing: &Standing<'_>) -> Assessment {
        let labels = self.labels.labels(standing.state);
        let mut suggestions = Vec::new();
        if standing.state == FlowTreasuryState::DivImp {
            suggestions.extend(standing.difference.cloned());
        }
        suggestions.extend(self.line_differences.iter().map(|s| (*s).clone()));
        Assessment {
            label: labels.iter().next().copied(),
            labels,
            treasury_state: Some(standing.state),
            flow_ids: BTreeSet::from([self.flow_id.clone()]),
            credit_ids: standing.credit_ids.clone(),
            iuvs: BTreeSet::new(),
            suggestions,
        }
    }
}

/// The assessment of a key its flow alone decides (one receipt, one line of the receipt's
/// amount: [`super::plain`]), in the flow `flow_id` assessed `flow`; `None` when `flow` has
/// no treasury state.
pub fn compose_plain(flow_id: &FlowId, flow: &Assessment) -> Option<Assessment> {
    let facts = KeyFacts {
        flow_id,
        labels: LabelFacts {
            doppi: false,
            receipt: true,
            equal_line: true,
        },
        line_differences: Vec::new(),
    };
    Some(facts.compose(&Standing::of(flow)?))
}

/// The flow a key's stored assessment is composed with when it is read: the one flow whose
/// lines report the key, when the assessment is what these rules give for that flow's
/// standing. A key's label then changes with its flow's treasury standing without its row
/// being written (docs/reconciliation.md, "A key's label composed with its flow's").
pub fn composed_flow(stored: &Assessment) -> Option<&FlowId> {
    KeyFacts::checked(stored).map(|facts| facts.flow_id)
}

/// A key's stored assessment composed with its flow's current one (`flow`): the key's
/// assessment now. `None` when the key is not composed with a flow ([`composed_flow`]) or
/// `flow` has no treasury state.
pub fn compose_with_flow(stored: &Assessment, flow: &Assessment) -> Option<Assessment> {
    Some(KeyFacts::checked(stored)?.compose(&Standing::of(flow)?))
}

/// True when `flow`'s treasury standing (state, component credits, difference) is the one a
/// key's `stored` assessment records: composing them gives `stored` again.
pub fn records_standing_of(stored: &Assessment, flow: &Assessment) -> bool {
    matches!((Standing::of(stored), Standing::of(flow)), (Some(a), Some(b)) if a == b)
}

/// A key's `stored` assessment as it reads with its flow's current assessment `flow`: `None`
/// when it reads as stored (`flow`'s standing the one it records, or the key not composed with
/// a flow), else [`compose_with_flow`]. Checks the standing first: most keys were written with
/// their flow's standing as it still is, and that costs no composition.
pub fn recompose(stored: &Assessment, flow: &Assessment) -> Option<Assessment> {
    if records_standing_of(stored, flow) {
        return None;
    }
    compose_with_flow(stored, flow)
}

/// The labels of a key once labelled `labels` (its flow's lines report it), with its flow
/// now in `state`: what a key's history row becomes when its flow's treasury state changes.
pub fn compose_labels(labels: &BTreeSet<Label>, state: FlowTreasuryState) -> BTreeSet<Label> {
    LabelFacts::of(labels).labels(state)
}

/// A flow whose treasury standing a treasury document changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestatedFlow {
    /// The flow's new assessment.
    pub assessment: Assessment,
    /// The document's evidence that reached it: the causes of each key it reports.
    pub causes: BTreeSet<EvidenceRef>,
}

/// The assessment of a key last assessed as `previous`, after evidence that changed only
/// flows' treasury standing (credits and coverage): `flows` holds the new assessment of every
/// flow whose assessment changed. `None` when the key cannot be restated (reported by no
/// flow or by several, or an assessment these rules would not give): assess it from its
/// evidence instead. A key whose flow is not in `flows` is restated as it was.
pub fn restate_transfer(
    previous: &Assessment,
    flows: &BTreeMap<FlowId, RestatedFlow>,
) -> Option<Assessment> {
    let facts = KeyFacts::checked(previous)?;
    match flows.get(facts.flow_id) {
        Some(flow) => Some(facts.compose(&Standing::of(&flow.assessment)?)),
        None => Some(previous.clone()),
    }
}

/// The flows whose assessment `items` (a treasury document's credits and coverage) change,
/// given the `held` evidence (flow headers suffice: lines are not read): each flow's new
/// assessment and the items that reached it.
pub fn restated_flows(
    held: &Evidence,
    items: &[EvidenceItem],
) -> Result<BTreeMap<FlowId, RestatedFlow>, EvidenceError> {
    let mut reconciler = Reconciler::with_evidence(held.clone());
    Ok(reconciler
        .apply(items.iter().cloned())?
        .into_iter()
        .filter_map(|change| match (change.subject, change.current) {
            (Subject::Flow(id), Some(assessment)) => Some((
                id,
                RestatedFlow {
                    assessment,
                    causes: change.causes,
                },
            )),
            _ => None,
        })
        .collect())
}
