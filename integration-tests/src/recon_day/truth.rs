//! The ground truth of a day: what the contract says incasso must compute for each transfer
//! key, credit and flow, written from the scenario's intent (its flows' treasury states, its
//! credits' labels, its payments' stories) through the contract's §4 table, never by asking
//! incasso's classifier.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use time::Date;

use incasso_domain::reconciliation::{FlowTreasuryState, Label};

use super::Writer;
use super::scenario::{CreditIntent, Payee};
use crate::requests::MILANO;

/// Whose transfer a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// Milan's own: reconciled and labelled.
    Creditor,
    /// Another beneficiary's (the TEFA of a TARI): listed, never labelled.
    OtherBeneficiary,
}

/// The truth about one transfer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferTruth {
    /// The transfer's beneficiary (`fiscalCodePA`).
    pub beneficiary: String,
    /// IUV.
    pub iuv: String,
    /// receiptId / IUR.
    pub receipt_id: String,
    /// idTransfer.
    pub id_transfer: u32,
    /// Creditor or other beneficiary.
    pub scope: Scope,
    /// The primary label (contract §4); none for another beneficiary's transfer.
    #[serde(serialize_with = "optional_label_code")]
    pub label: Option<Label>,
    /// The receipt's `transferAmount` (the line's amount when no receipt has the key).
    pub amount_cents: i64,
    /// The receipt's `transferAmount`, when a receipt has the key.
    pub receipt_cents: Option<i64>,
    /// The line's `singoloImportoPagato`, when a flow reports the key.
    pub reported_cents: Option<i64>,
    /// The flow reporting it.
    pub flow_id: Option<String>,
    /// What happened to it, in words (for a reader of a failed comparison).
    pub story: String,
}

/// The truth about one treasury credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditTruth {
    /// camt `AcctSvcrRef` / OPI `codice_riferimento_interno`.
    pub id: String,
    /// Its label (contract §5).
    #[serde(serialize_with = "label_code")]
    pub label: Label,
    /// Amount.
    pub amount_cents: i64,
    /// Booking day.
    pub booking_date: Date,
    /// The flows it is attributed to, sorted.
    pub attributed_flow_ids: Vec<String>,
    /// What it is, in words.
    pub story: String,
}

/// The truth about one flow (its revision that counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowTruth {
    /// IUF.
    pub flow_id: String,
    /// Treasury state (contract §3).
    #[serde(serialize_with = "state_code")]
    pub state: FlowTreasuryState,
    /// `importoTotalePagamenti` of the revision that counts.
    pub total_cents: i64,
    /// Its number of lines.
    pub line_count: usize,
    /// The credits of its component, sorted.
    pub credit_ids: Vec<String>,
    /// How many revisions were sent.
    pub revisions: usize,
}

/// What incasso must compute for the day, once every receipt and document is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroundTruth {
    /// Every transfer key (both scopes), sorted by (beneficiary, IUV, receiptId, idTransfer).
    pub transfers: Vec<TransferTruth>,
    /// Every treasury credit, sorted by id.
    pub credits: Vec<CreditTruth>,
    /// Every flow, sorted by IUF.
    pub flows: Vec<FlowTruth>,
}

/// Writes a label as the contract's code (`RT_IUF_TES`).
fn label_code<S: serde::Serializer>(label: &Label, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(label.code())
}

/// Writes a label as the contract's code, none as null.
fn optional_label_code<S: serde::Serializer>(
    label: &Option<Label>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match label {
        Some(label) => serializer.serialize_str(label.code()),
        None => serializer.serialize_none(),
    }
}

/// Writes a treasury state as the contract's code (`CASHED`).
fn state_code<S: serde::Serializer>(
    state: &FlowTreasuryState,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.code())
}

/// The contract's §4 as a decision on a key's facts: the first label that holds in the order
/// `DOPPI > IUV_NO_RT > IUF_TES_DIV_IMP > IUF_NO_TES > RT_IUF_TES > RT_IUF > RT_TES > RT_NO_IUF`.
/// `line` is the treasury state of the flow reporting the key and whether the line's amount
/// equals the receipt's.
fn transfer_label(
    double: bool,
    received: bool,
    line: Option<(FlowTreasuryState, bool)>,
    paid_by_iuv_credit: bool,
) -> Label {
    if double {
        return Label::Doppi;
    }
    match (received, line) {
        (false, _) => Label::IuvNoRt,
        (true, Some((FlowTreasuryState::DivImp, _))) => Label::IufTesDivImp,
        (true, Some((FlowTreasuryState::NoTes, _))) => Label::IufNoTes,
        (true, Some((FlowTreasuryState::Cashed, true))) => Label::RtIufTes,
        (true, Some((FlowTreasuryState::Pending, true))) => Label::RtIuf,
        (true, Some(_)) => Label::RtNoIuf,
        (true, None) if paid_by_iuv_credit => Label::RtTes,
        (true, None) => Label::RtNoIuf,
    }
}

impl Writer<'_> {
    pub(super) fn truth(&self) -> GroundTruth {
        let s = self.s;
        // Payments with evidence (a receipt or a line) per notice: two or more is DOPPI.
        let mut evidenced: BTreeMap<usize, usize> = BTreeMap::new();
        for p in &s.payments {
            if p.delivery.is_some() || p.reported.is_some() {
                *evidenced.entry(p.notice).or_default() += 1;
            }
        }
        let mut transfers = Vec::new();
        for p in &s.payments {
            let notice = &s.notices[p.notice];
            let double = evidenced.get(&p.notice).copied().unwrap_or(0) > 1;
            for (t, (beneficiary, cents)) in notice.transfers.iter().enumerate() {
                let id_transfer = u32::try_from(t + 1).unwrap_or(u32::MAX);
                let mine = *beneficiary == MILANO;
                // Every transfer of Milan's is a line of a reported payment; the PSP's
                // mistake, if any, is on the first.
                let line = p.reported.filter(|_| mine);
                let delta_cents = line.map_or(0, |r| if t == 0 { r.delta_cents } else { 0 });
                if p.delivery.is_none() && line.is_none() {
                    continue;
                }
                let flow_state = line.map(|r| (s.flows[r.flow].state, delta_cents == 0));
                let label = mine.then(|| {
                    transfer_label(
                        double,
                        p.delivery.is_some(),
                        flow_state,
                        p.paid_by_iuv_credit,
                    )
                });
                let amount_cents = if p.delivery.is_some() {
                    *cents
                } else {
                    cents + delta_cents
                };
                let mut story = Vec::new();
                if !mine {
                    story.push("another beneficiary's transfer".to_owned());
                }
                if double {
                    story.push("double payment".to_owned());
                }
                match p.delivery {
                    None => story.push("no receipt".to_owned()),
                    Some(d) => {
                        story.push(if d.v2 { "paSendRTV2" } else { "paSendRT" }.to_owned());
                        if d.stand_in {
                            story.push("Stand-In".to_owned());
                        }
                    }
                }
                if matches!(notice.payee, Payee::Legacy(_)) {
                    story.push("notice incasso did not issue".to_owned());
                }
                if let Some(r) = line {
                    story.push(format!(
                        "line code {} in a {} flow",
                        r.outcome.code(),
                        s.flows[r.flow].state.code()
                    ));
                    if delta_cents != 0 {
                        story.push(format!("line off by {delta_cents} cents"));
                    }
                }
                if p.paid_by_iuv_credit && mine {
                    story.push("paid by an /RFB/ or /RFS/ credit".to_owned());
                }
                transfers.push(TransferTruth {
                    beneficiary: (*beneficiary).to_owned(),
                    iuv: self.iuv(p.notice).to_owned(),
                    receipt_id: p.receipt_id.clone(),
                    id_transfer,
                    scope: if mine {
                        Scope::Creditor
                    } else {
                        Scope::OtherBeneficiary
                    },
                    label,
                    amount_cents,
                    receipt_cents: p.delivery.map(|_| *cents),
                    reported_cents: line.map(|_| cents + delta_cents),
                    flow_id: line.map(|r| s.flows[r.flow].id.clone()),
                    story: story.join(", "),
                });
            }
        }
        transfers.sort_by(|a, b| {
            (&a.beneficiary, &a.iuv, &a.receipt_id, a.id_transfer).cmp(&(
                &b.beneficiary,
                &b.iuv,
                &b.receipt_id,
                b.id_transfer,
            ))
        });

        let mut credits = Vec::new();
        let mut flow_credits: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for c in &s.credits {
            let (attributed, story): (Vec<usize>, String) = match &c.intent {
                CreditIntent::Flows { flows, spelling } => (
                    flows.clone(),
                    format!("pays {} flow(s), marker {spelling:?}", flows.len()),
                ),
                CreditIntent::FlowPart { flow, part } => (
                    vec![*flow],
                    format!(
                        "part {part} of a flow paid in two{}",
                        if c.label == Label::IufTesDivImp {
                            " parts short of its total"
                        } else {
                            ""
                        }
                    ),
                ),
                CreditIntent::Truncated { also: None, .. } => {
                    (Vec::new(), "truncated IUF".to_owned())
                }
                CreditIntent::Truncated { also: Some(_), .. } => {
                    (Vec::new(), "a known IUF and a truncated one".to_owned())
                }
                CreditIntent::Iuv { rfs, .. } => (
                    Vec::new(),
                    format!(
                        "{} of a receipt no flow reports",
                        if *rfs { "/RFS/" } else { "/RFB/" }
                    ),
                ),
                CreditIntent::UnknownIuv { .. } => {
                    (Vec::new(), "/RFB/ of an IUV nobody issued".to_owned())
                }
                CreditIntent::Unrelated { .. } => (Vec::new(), "not pagoPA's".to_owned()),
            };
            for &f in &attributed {
                flow_credits.entry(f).or_default().push(c.id.clone());
            }
            let mut attributed_flow_ids: Vec<String> =
                attributed.iter().map(|&f| s.flows[f].id.clone()).collect();
            attributed_flow_ids.sort();
            credits.push(CreditTruth {
                id: c.id.clone(),
                label: c.label,
                amount_cents: c.amount_cents,
                booking_date: c.booking_date,
                attributed_flow_ids,
                story,
            });
        }
        credits.sort_by(|a, b| a.id.cmp(&b.id));

        let mut flows: Vec<FlowTruth> = s
            .flows
            .iter()
            .enumerate()
            .map(|(f, flow)| {
                let mut credit_ids = flow_credits.get(&f).cloned().unwrap_or_default();
                credit_ids.sort();
                FlowTruth {
                    flow_id: flow.id.clone(),
                    state: flow.state,
                    total_cents: s.flow_total(f),
                    line_count: flow.lines.iter().map(|&p| s.lines(p).len()).sum(),
                    credit_ids,
                    revisions: if flow.revised { 2 } else { 1 },
                }
            })
            .collect();
        flows.sort_by(|a, b| a.flow_id.cmp(&b.flow_id));
        GroundTruth {
            transfers,
            credits,
            flows,
        }
    }
}

impl GroundTruth {
    /// Writes the truth as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A short summary of a day (counts per label and state), for logs and the trial files.
pub fn summary(truth: &GroundTruth) -> String {
    let mut out = String::new();
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &truth.transfers {
        *labels
            .entry(t.label.map_or("(other beneficiary)", Label::code))
            .or_default() += 1;
    }
    let _ = writeln!(out, "transfers: {}", truth.transfers.len());
    for (label, count) in &labels {
        let _ = writeln!(out, "  {label}: {count}");
    }
    let mut credit_labels: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &truth.credits {
        *credit_labels.entry(c.label.code()).or_default() += 1;
    }
    let _ = writeln!(out, "credits: {}", truth.credits.len());
    for (label, count) in &credit_labels {
        let _ = writeln!(out, "  {label}: {count}");
    }
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &truth.flows {
        *states.entry(f.state.code()).or_default() += 1;
    }
    let _ = writeln!(out, "flows: {}", truth.flows.len());
    for (state, count) in &states {
        let _ = writeln!(out, "  {state}: {count}");
    }
    out
}
