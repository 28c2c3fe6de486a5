//! Incremental reconciliation (§6): new evidence relabels only the subjects it can affect,
//! and reports every change with the evidence that caused it. The set of subjects touched is
//! derived from the rules' dependencies (a key depends on its IUV's receipts and lines, its
//! flow's component and the coverage; a credit on its component or its IUVs' receipts and
//! lines, and on the known flows for its suggestions); the property tests check it against
//! [`classify_all`] after every step.

use std::collections::{BTreeMap, BTreeSet};

use super::classify::{Component, assess, classify_all, component_of_credit, component_of_flow};
use super::evidence::{Added, Evidence, EvidenceError, EvidenceItem, EvidenceRef};
use super::key::FlowId;
use super::label::{Assessment, Subject};
use crate::notice_number::Iuv;

/// One subject whose assessment changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relabel {
    /// What changed.
    pub subject: Subject,
    /// Before (`None`: the subject is new).
    pub previous: Option<Assessment>,
    /// After (`None`: the subject is gone, e.g. a line dropped by a new revision).
    pub current: Option<Assessment>,
    /// The evidence of this step that reached the subject.
    pub causes: BTreeSet<EvidenceRef>,
}

impl Relabel {
    /// True when the label or its conditions changed (not only suggestions or evidence lists).
    pub fn is_label_change(&self) -> bool {
        match (&self.previous, &self.current) {
            (Some(p), Some(c)) => p.label_differs(c),
            _ => true,
        }
    }
}

/// One creditor's evidence and its current labels, kept up to date step by step.
#[derive(Debug, Clone, Default)]
pub struct Reconciler {
    evidence: Evidence,
    assessments: BTreeMap<Subject, Assessment>,
}

type Touched = BTreeMap<Subject, BTreeSet<EvidenceRef>>;

impl Reconciler {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Holding `evidence`, every subject of it assessed.
    pub fn with_evidence(evidence: Evidence) -> Self {
        Self {
            assessments: classify_all(&evidence),
            evidence,
        }
    }

    /// The evidence held.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// The current assessment of every subject.
    pub fn assessments(&self) -> &BTreeMap<Subject, Assessment> {
        &self.assessments
    }

    /// Adds a batch (one file, one receipt) and relabels what it touches. A batch that
    /// contradicts held evidence, or itself, is refused whole.
    pub fn apply(
        &mut self,
        items: impl IntoIterator<Item = EvidenceItem>,
    ) -> Result<Vec<Relabel>, EvidenceError> {
        let items: Vec<EvidenceItem> = items.into_iter().collect();
        let mut trial = self.evidence.clone();
        for item in &items {
            trial.insert(item.clone())?;
        }
        let mut touched = Touched::new();
        for item in items {
            let cause = item.reference();
            let before = self.before(&item);
            let added = self.evidence.insert(item)?;
            let mut subjects = before;
            subjects.extend(self.after(&added));
            for subject in subjects {
                touched.entry(subject).or_default().insert(cause.clone());
            }
        }
        let mut changes = Vec::new();
        for (subject, causes) in touched {
            let current = assess(&self.evidence, &subject);
            let previous = self.assessments.get(&subject).cloned();
            if previous == current {
                continue;
            }
            match &current {
                Some(a) => self.assessments.insert(subject.clone(), a.clone()),
                None => self.assessments.remove(&subject),
            };
            changes.push(Relabel {
                subject,
                previous,
                current,
                causes,
            });
        }
        Ok(changes)
    }

    /// Subjects whose inputs an item changes, read before it is added.
    fn before(&self, item: &EvidenceItem) -> BTreeSet<Subject> {
        let mut out = BTreeSet::new();
        if let EvidenceItem::Flow(flow) = item
            && let Some(latest) = self.evidence.latest_flow(&flow.flow_id)
            && latest.version() < flow.version()
        {
            self.add_component(&mut out, &component_of_flow(&self.evidence, &flow.flow_id));
            for line in &latest.lines {
                self.add_iuv(&mut out, &line.key.iuv);
            }
        }
        out
    }

    /// Subjects whose inputs an addition changed, read after it.
    fn after(&self, added: &Added) -> BTreeSet<Subject> {
        let evidence = &self.evidence;
        let mut out = BTreeSet::new();
        match added {
            Added::Nothing => {}
            Added::Receipt(key) => self.add_iuv(&mut out, &key.iuv),
            Added::Flow { latest: false, .. } => {}
            Added::Flow { flow_id, .. } => {
                out.insert(Subject::Flow(flow_id.clone()));
                self.add_component(&mut out, &component_of_flow(evidence, flow_id));
                if let Some(flow) = evidence.latest_flow(flow_id) {
                    for line in &flow.lines {
                        self.add_iuv(&mut out, &line.key.iuv);
                    }
                }
                for credit in evidence
                    .credits_by_flow_ref
                    .get(flow_id.as_str())
                    .into_iter()
                    .flatten()
                    .chain(&evidence.credits_with_unknown_flow)
                {
                    out.insert(Subject::Credit(credit.clone()));
                }
            }
            Added::Credit(id) => {
                out.insert(Subject::Credit(id.clone()));
                self.add_component(&mut out, &component_of_credit(evidence, id));
                if let Some(credit) = evidence.credit(id)
                    && let super::causale::CausaleReferences::Iuvs(iuvs) = &credit.references
                {
                    for iuv in iuvs {
                        self.add_iuv(&mut out, iuv);
                    }
                }
            }
            Added::Coverage(before, after) => {
                let newly_due: Vec<FlowId> = evidence
                    .latest_flows()
                    .filter(|f| {
                        f.regulation_date <= *after && before.is_none_or(|b| f.regulation_date > b)
                    })
                    .map(|f| f.flow_id.clone())
                    .collect();
                for flow_id in newly_due {
                    self.add_component(&mut out, &component_of_flow(evidence, &flow_id));
                }
            }
        }
        out
    }

    /// Every key of an IUV (double payments and `/RFB/` matches are per IUV) and the credits
    /// naming it.
    fn add_iuv(&self, out: &mut BTreeSet<Subject>, iuv: &Iuv) {
        out.extend(
            self.evidence
                .keys_of_iuv(iuv)
                .cloned()
                .map(Subject::Transfer),
        );
        out.extend(
            self.evidence
                .credits_by_iuv
                .get(iuv)
                .into_iter()
                .flatten()
                .cloned()
                .map(Subject::Credit),
        );
    }

    /// The component's flows, credits and the keys of its flows' lines.
    fn add_component(&self, out: &mut BTreeSet<Subject>, component: &Component) {
        out.extend(component.credit_ids.iter().cloned().map(Subject::Credit));
        for flow_id in &component.flow_ids {
            out.insert(Subject::Flow(flow_id.clone()));
            if let Some(flow) = self.evidence.latest_flow(flow_id) {
                out.extend(flow.lines.iter().map(|l| Subject::Transfer(l.key.clone())));
            }
        }
    }

    /// Recomputes everything from scratch (for checks and repairs).
    pub fn recompute_all(&self) -> BTreeMap<Subject, Assessment> {
        classify_all(&self.evidence)
    }
}
