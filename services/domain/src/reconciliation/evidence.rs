//! The evidence reconciliation reads (contract §1): receipt transfers, reporting flows with
//! their lines (every revision kept, the latest one counts), treasury credits, and how far the
//! treasury evidence reaches. [`Evidence`] holds a set of them with the indexes the rules
//! need; adding what it already holds changes nothing, so the set, and every label computed
//! from it, does not depend on the order or the grouping in which evidence arrived.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::causale::{CausaleReferences, parse_causale};
use super::key::{CreditId, FlowId, OutcomeCode, TransferIndex, TransferKey};
use crate::notice_number::Iuv;

/// One transfer of a receipt paying the creditor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptTransfer {
    /// (IUV, receiptId, idTransfer).
    pub key: TransferKey,
    /// `transferAmount` (never `paymentAmount`).
    pub amount_cents: i64,
    /// The receipt's payment day (Europe/Rome).
    pub paid_on: Date,
    /// The receipt says `standIn=true`.
    pub stand_in: bool,
}

/// One `datiSingoliPagamenti` line of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowLine {
    /// (IUV, IUR, indiceDatiSingoloPagamento); a missing index is 1.
    pub key: TransferKey,
    /// `singoloImportoPagato` (negative for a revoked line, as SACI asks).
    pub amount_cents: i64,
    /// `codiceEsitoSingoloPagamento`.
    pub outcome: OutcomeCode,
    /// `dataEsitoSingoloPagamento`.
    pub paid_on: Date,
}

/// One revision of a reporting flow (FdR) of the creditor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportingFlow {
    /// `identificativoFlusso` / `fdr`.
    pub flow_id: FlowId,
    /// The REST revision; XML flows are ordered by `created_at` instead.
    pub revision: u32,
    /// `dataOraFlusso` / `created`: a later one replaces an earlier one.
    pub created_at: OffsetDateTime,
    /// The PSP (`codiceIdentificativoUnivoco` of the sender / `sender.pspId`).
    pub psp_id: String,
    /// `identificativoUnivocoRegolamento`, the SCT's TRN.
    pub trn: String,
    /// `dataRegolamento`.
    pub regulation_date: Date,
    /// `importoTotalePagamenti`.
    pub total_cents: i64,
    /// `datiSingoliPagamenti`.
    pub lines: Vec<FlowLine>,
}

impl ReportingFlow {
    /// Which revision counts when two are held: the later `created_at`, then the higher
    /// revision number.
    pub fn version(&self) -> (OffsetDateTime, u32) {
        (self.created_at, self.revision)
    }

    /// What its lines add up to, in cents.
    pub fn lines_cents(&self) -> i64 {
        self.lines.iter().map(|l| l.amount_cents).sum()
    }

    /// Why the flow's declared total cannot be taken at its word: `importoTotalePagamenti`
    /// (`sumPayments`) differs from what its lines add up to. The PSP's declaration is kept
    /// (it is the contract's flow amount, which a credit is compared with), so a flow that
    /// declares more than it lists leaves the difference in suspense once cashed; `None` when
    /// the two agree.
    pub fn total_discrepancy(&self) -> Option<String> {
        let lines_cents = self.lines_cents();
        (lines_cents != self.total_cents).then(|| {
            format!(
                "flow {} revision {} declares a total of {} cents, its {} lines add up to \
                 {lines_cents} cents ({:+} cents)",
                self.flow_id,
                self.revision,
                self.total_cents,
                self.lines.len(),
                self.total_cents - lines_cents
            )
        })
    }
}

/// One credit on the creditor's treasury account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreasuryCredit {
    /// camt `AcctSvcrRef` / OPI `codice_riferimento_interno`.
    pub id: CreditId,
    /// camt `Ntry/Amt` / OPI `importo`.
    pub amount_cents: i64,
    /// Booking day.
    pub booking_date: Date,
    /// Value day.
    pub value_date: Date,
    /// The causale (camt: every `Ustrd` concatenated).
    pub causale: String,
    /// camt `Refs/ClrSysRef` / OPI `codice_riferimento_operazione`.
    pub trn: Option<String>,
}

impl TreasuryCredit {
    /// The facts, by name, in which `other` (a credit under the same id) differs from this
    /// one; empty when they are the same credit.
    pub fn differing_facts(&self, other: &Self) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.id != other.id {
            differ.push("id");
        }
        if self.amount_cents != other.amount_cents {
            differ.push("amount");
        }
        if self.causale != other.causale {
            differ.push("causale");
        }
        if self.booking_date != other.booking_date {
            differ.push("booking date");
        }
        if self.value_date != other.value_date {
            differ.push("value date");
        }
        if self.trn != other.trn {
            differ.push("TRN");
        }
        differ
    }

    /// Whether `other` tells of this credit again, perhaps with other days or TRN: the same
    /// id, amount and causale. A camt.054 notification and the camt.053 that books the entry
    /// at the end of the day carry the same `AcctSvcrRef`, and the notification may lack the
    /// value day the statement gives. Labels read only the id, the amount and the causale
    /// (days and TRN feed suggestions), so the credit held stands; another amount or causale
    /// under one id is a contradiction.
    pub fn is_restated_by(&self, other: &Self) -> bool {
        self.id == other.id
            && self.amount_cents == other.amount_cents
            && self.causale == other.causale
    }
}

/// One piece of evidence, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvidenceItem {
    /// A receipt transfer of the creditor.
    Receipt(ReceiptTransfer),
    /// A revision of a flow.
    Flow(ReportingFlow),
    /// A treasury credit.
    Credit(TreasuryCredit),
    /// Treasury evidence covers booking days up to this one (a statement's or a giornale's
    /// last day).
    TreasuryCoverage(Date),
}

impl EvidenceItem {
    /// The reference history records as the cause of a label change.
    pub fn reference(&self) -> EvidenceRef {
        match self {
            Self::Receipt(r) => EvidenceRef::Receipt(r.key.clone()),
            Self::Flow(f) => EvidenceRef::Flow(f.flow_id.clone(), f.revision),
            Self::Credit(c) => EvidenceRef::Credit(c.id.clone()),
            Self::TreasuryCoverage(d) => EvidenceRef::TreasuryCoverage(*d),
        }
    }
}

/// Names one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EvidenceRef {
    /// A receipt transfer.
    Receipt(TransferKey),
    /// A flow revision.
    Flow(FlowId, u32),
    /// A treasury credit.
    Credit(CreditId),
    /// Treasury coverage reaching a day.
    TreasuryCoverage(Date),
}

/// Evidence that contradicts what is held under the same identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The same transfer key with other facts.
    #[error("receipt transfer {0} is already held with other facts")]
    ReceiptConflict(TransferKey),
    /// The same flow revision with other facts.
    #[error("flow {0} revision {1} is already held with other facts")]
    FlowConflict(FlowId, u32),
    /// The same credit id with other facts.
    #[error("treasury credit {0} is already held with other facts")]
    CreditConflict(CreditId),
}

/// A credit with its causale read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCredit {
    /// The credit.
    pub credit: TreasuryCredit,
    /// What its causale references.
    pub references: CausaleReferences,
}

/// A set of evidence of one creditor, indexed for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub(super) receipts: BTreeMap<TransferKey, ReceiptTransfer>,
    /// Every revision of every flow, by version; the last is the one that counts.
    pub(super) flows: BTreeMap<FlowId, BTreeMap<(OffsetDateTime, u32), ReportingFlow>>,
    pub(super) credits: BTreeMap<CreditId, HeldCredit>,
    pub(super) covered_through: Option<Date>,
    /// Keys of receipts and of lines of latest revisions, by IUV.
    pub(super) keys_by_iuv: BTreeMap<Iuv, BTreeSet<TransferKey>>,
    /// Lines of latest revisions: key -> flows reporting it, each with the positions of its
    /// lines for the key in that revision (so reading a key's lines never scans a flow).
    pub(super) line_flows: BTreeMap<TransferKey, BTreeMap<FlowId, Vec<usize>>>,
    /// Credits naming an IUF (as written).
    pub(super) credits_by_flow_ref: BTreeMap<String, BTreeSet<CreditId>>,
    /// Credits naming an IUV.
    pub(super) credits_by_iuv: BTreeMap<Iuv, BTreeSet<CreditId>>,
    /// Credits with an IUF marker naming an unknown flow.
    pub(super) credits_with_unknown_flow: BTreeSet<CreditId>,
}

/// What adding an item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Added {
    /// Already held: nothing changed.
    Nothing,
    /// A receipt transfer.
    Receipt(TransferKey),
    /// A flow revision; `replaced` is the latest revision before, when there was one and the
    /// new one is now the latest; `latest` is false when an older revision arrived late.
    Flow {
        flow_id: FlowId,
        replaced: Option<ReportingFlow>,
        latest: bool,
    },
    /// A credit.
    Credit(CreditId),
    /// Coverage moved from the first day to the second.
    Coverage(Option<Date>, Date),
}

impl Evidence {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one item; what is already held is ignored, a contradiction refused.
    pub fn add(&mut self, item: EvidenceItem) -> Result<(), EvidenceError> {
        self.insert(item).map(|_| ())
    }

    pub(super) fn insert(&mut self, item: EvidenceItem) -> Result<Added, EvidenceError> {
        match item {
            EvidenceItem::Receipt(receipt) => {
                if let Some(held) = self.receipts.get(&receipt.key) {
                    return if *held == receipt {
                        Ok(Added::Nothing)
                    } else {
                        Err(EvidenceError::ReceiptConflict(receipt.key))
                    };
                }
                let key = receipt.key.clone();
                self.keys_by_iuv
                    .entry(key.iuv.clone())
                    .or_default()
                    .insert(key.clone());
                self.receipts.insert(key.clone(), receipt);
                Ok(Added::Receipt(key))
            }
            EvidenceItem::Flow(flow) => {
                let flow_id = flow.flow_id.clone();
                let version = flow.version();
                let revisions = self.flows.entry(flow_id.clone()).or_default();
                if let Some(held) = revisions.get(&version) {
                    return if *held == flow {
                        Ok(Added::Nothing)
                    } else {
                        Err(EvidenceError::FlowConflict(flow_id, flow.revision))
                    };
                }
                let previous = revisions.last_key_value().map(|(_, f)| f.clone());
                let latest = previous.as_ref().is_none_or(|p| p.version() < version);
                revisions.insert(version, flow.clone());
                if !latest {
                    return Ok(Added::Flow {
                        flow_id,
                        replaced: None,
                        latest,
                    });
                }
                if let Some(previous) = &previous {
                    for line in &previous.lines {
                        self.unindex_line(&line.key, &flow_id);
                    }
                } else {
                    self.credits_with_unknown_flow_may_know(&flow_id);
                }
                for (position, line) in flow.lines.iter().enumerate() {
                    self.line_flows
                        .entry(line.key.clone())
                        .or_default()
                        .entry(flow_id.clone())
                        .or_default()
                        .push(position);
                    self.keys_by_iuv
                        .entry(line.key.iuv.clone())
                        .or_default()
                        .insert(line.key.clone());
                }
                Ok(Added::Flow {
                    flow_id,
                    replaced: previous,
                    latest,
                })
            }
            EvidenceItem::Credit(credit) => {
                if let Some(held) = self.credits.get(&credit.id) {
                    return if held.credit == credit {
                        Ok(Added::Nothing)
                    } else {
                        Err(EvidenceError::CreditConflict(credit.id))
                    };
                }
                let references = parse_causale(&credit.causale);
                let id = credit.id.clone();
                match &references {
                    CausaleReferences::Flows(refs) => {
                        for r in refs {
                            self.credits_by_flow_ref
                                .entry(r.clone())
                                .or_default()
                                .insert(id.clone());
                        }
                        if refs.iter().any(|r| !self.knows_flow(r)) {
                            self.credits_with_unknown_flow.insert(id.clone());
                        }
                    }
                    CausaleReferences::Iuvs(iuvs) => {
                        for iuv in iuvs {
                            self.credits_by_iuv
                                .entry(iuv.clone())
                                .or_default()
                                .insert(id.clone());
                        }
                    }
                    CausaleReferences::None => {}
                }
                self.credits
                    .insert(id.clone(), HeldCredit { credit, references });
                Ok(Added::Credit(id))
            }
            EvidenceItem::TreasuryCoverage(day) => {
                let before = self.covered_through;
                if before.is_some_and(|b| b >= day) {
                    return Ok(Added::Nothing);
                }
                self.covered_through = Some(day);
                Ok(Added::Coverage(before, day))
            }
        }
    }

    fn unindex_line(&mut self, key: &TransferKey, flow_id: &FlowId) {
        if let Some(flows) = self.line_flows.get_mut(key) {
            flows.remove(flow_id);
            if flows.is_empty() {
                self.line_flows.remove(key);
                if !self.receipts.contains_key(key)
                    && let Some(keys) = self.keys_by_iuv.get_mut(&key.iuv)
                {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.keys_by_iuv.remove(&key.iuv);
                    }
                }
            }
        }
    }

    fn credits_with_unknown_flow_may_know(&mut self, flow_id: &FlowId) {
        let Some(credits) = self.credits_by_flow_ref.get(flow_id.as_str()) else {
            return;
        };
        let now_known: Vec<CreditId> = credits
            .iter()
            .filter(|id| {
                self.credits
                    .get(*id)
                    .is_some_and(|held| match &held.references {
                        CausaleReferences::Flows(refs) => refs
                            .iter()
                            .all(|r| r == flow_id.as_str() || self.knows_flow(r)),
                        _ => false,
                    })
            })
            .cloned()
            .collect();
        for id in now_known {
            self.credits_with_unknown_flow.remove(&id);
        }
    }

    /// True when a flow with this id (as written in a causale) is held.
    pub fn knows_flow(&self, reference: &str) -> bool {
        FlowId::parse(reference).is_ok_and(|id| self.flows.contains_key(&id))
    }

    /// The revision of a flow that counts.
    pub fn latest_flow(&self, flow_id: &FlowId) -> Option<&ReportingFlow> {
        self.flows
            .get(flow_id)
            .and_then(|r| r.last_key_value())
            .map(|(_, f)| f)
    }

    /// The latest revision of every flow.
    pub fn latest_flows(&self) -> impl Iterator<Item = &ReportingFlow> {
        self.flows
            .values()
            .filter_map(|r| r.last_key_value().map(|(_, f)| f))
    }

    /// Every revision of every flow.
    pub fn all_flow_revisions(&self) -> impl Iterator<Item = &ReportingFlow> {
        self.flows.values().flat_map(|r| r.values())
    }

    /// Every revision of a flow, oldest first.
    pub fn flow_revisions(&self, flow_id: &FlowId) -> impl Iterator<Item = &ReportingFlow> {
        self.flows.get(flow_id).into_iter().flat_map(|r| r.values())
    }

    /// A held credit.
    pub fn credit(&self, id: &CreditId) -> Option<&HeldCredit> {
        self.credits.get(id)
    }

    /// Every held credit.
    pub fn credits(&self) -> impl Iterator<Item = &HeldCredit> {
        self.credits.values()
    }

    /// A receipt transfer.
    pub fn receipt(&self, key: &TransferKey) -> Option<&ReceiptTransfer> {
        self.receipts.get(key)
    }

    /// The last booking day the treasury evidence covers.
    pub fn covered_through(&self) -> Option<Date> {
        self.covered_through
    }

    /// Every transfer key of the creditor present in a receipt or a latest flow line.
    pub fn transfer_keys(&self) -> impl Iterator<Item = &TransferKey> {
        self.keys_by_iuv.values().flatten()
    }

    /// The transfer keys of one IUV.
    pub fn keys_of_iuv(&self, iuv: &Iuv) -> impl Iterator<Item = &TransferKey> {
        self.keys_by_iuv.get(iuv).into_iter().flatten()
    }

    /// The lines reporting `key` in latest revisions, with their flows.
    pub fn lines_of(&self, key: &TransferKey) -> Vec<(&ReportingFlow, &FlowLine)> {
        let mut out = Vec::new();
        for (flow_id, positions) in self.line_flows.get(key).into_iter().flatten() {
            if let Some(flow) = self.latest_flow(flow_id) {
                out.extend(
                    positions
                        .iter()
                        .filter_map(|p| flow.lines.get(*p))
                        .map(|l| (flow, l)),
                );
            }
        }
        out
    }

    /// The (IUV, idTransfer) pairs a receipt or a latest line names, with their receipt ids.
    pub(super) fn receipt_ids_of(&self, iuv: &Iuv, index: TransferIndex) -> BTreeSet<&str> {
        self.keys_of_iuv(iuv)
            .filter(|k| k.transfer_index == index)
            .map(|k| k.receipt_id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;

    fn credit(cents: i64, causale: &str, value_day: u8, trn: Option<&str>) -> TreasuryCredit {
        TreasuryCredit {
            id: CreditId::parse("ASR-1").unwrap(),
            amount_cents: cents,
            booking_date: date!(2026 - 11 - 24),
            value_date: Date::from_calendar_date(2026, time::Month::November, value_day).unwrap(),
            causale: causale.to_owned(),
            trn: trn.map(str::to_owned),
        }
    }

    #[test]
    fn a_statement_may_restate_a_notification_with_other_days_and_trn_only() {
        let notified = credit(9_500, "/PUR/LGPE-RIVERSAMENTO/URI/X", 24, None);
        let booked = credit(9_500, "/PUR/LGPE-RIVERSAMENTO/URI/X", 23, Some("TRN-1"));
        assert!(notified.is_restated_by(&booked));
        assert_eq!(notified.differing_facts(&booked), ["value date", "TRN"]);
        let other_amount = credit(9_400, "/PUR/LGPE-RIVERSAMENTO/URI/X", 24, None);
        assert!(!notified.is_restated_by(&other_amount));
        assert_eq!(notified.differing_facts(&other_amount), ["amount"]);
        let other_causale = credit(9_500, "/PUR/LGPE-RIVERSAMENTO/URI/Y", 24, None);
        assert!(!notified.is_restated_by(&other_causale));
        assert_eq!(notified.differing_facts(&other_causale), ["causale"]);
    }

    proptest! {
        /// A credit restates itself, restating is symmetric, and the facts differ exactly
        /// when the credits do.
        #[test]
        fn restating_is_an_equivalence_on_what_labels_read(
            a in (0i64..3, "[AB]{1,2}", 1u8..4, proptest::option::of("[TU]")),
            b in (0i64..3, "[AB]{1,2}", 1u8..4, proptest::option::of("[TU]")),
        ) {
            let x = credit(a.0, &a.1, a.2, a.3.as_deref());
            let y = credit(b.0, &b.1, b.2, b.3.as_deref());
            prop_assert!(x.is_restated_by(&x));
            prop_assert_eq!(x.is_restated_by(&y), y.is_restated_by(&x));
            prop_assert_eq!(x.differing_facts(&y).is_empty(), x == y);
            prop_assert_eq!(
                x.is_restated_by(&y),
                !x.differing_facts(&y).iter().any(|f| ["id", "amount", "causale"].contains(f))
            );
        }
    }
}
