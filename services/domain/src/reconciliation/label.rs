//! The labels of the contract (§4, §5), the treasury state of a flow (§3), what an assessment
//! of one subject says, and the suggestions that sit next to a label without changing it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::key::{CreditId, FlowId, TransferKey};
use crate::notice_number::Iuv;

/// A reconciliation label, named as in the contract. The declaration order is the priority
/// order of a transfer key's primary label (§4); credit labels come last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Label {
    /// Two or more distinct receiptIds/IURs for the same (IUV, idTransfer): a double payment.
    Doppi,
    /// An FdR line and no receipt.
    IuvNoRt,
    /// An FdR line whose flow's treasury component is divergent; for a credit, attributed to
    /// a divergent component.
    IufTesDivImp,
    /// An FdR line whose flow is due and not cashed.
    IufNoTes,
    /// Receipt and FdR line of equal amounts, flow cashed; for a credit, attributed to a
    /// cashed component.
    RtIufTes,
    /// Receipt and FdR line of equal amounts, flow not due yet.
    RtIuf,
    /// Receipt, no FdR line, an `/RFB/` or `/RFS/` credit of its IUV and amount; for a credit,
    /// that match seen from the credit.
    RtTes,
    /// Receipt, but no FdR line with its amount, and not `RT_TES`.
    RtNoIuf,
    /// A credit with a pagoPA marker whose IUF or IUV is unknown (or does not match).
    TesNoIufOrIuv,
    /// A credit with no pagoPA marker.
    TesNoMatch,
}

impl Label {
    /// Every label, in priority order.
    pub const ALL: [Self; 10] = [
        Self::Doppi,
        Self::IuvNoRt,
        Self::IufTesDivImp,
        Self::IufNoTes,
        Self::RtIufTes,
        Self::RtIuf,
        Self::RtTes,
        Self::RtNoIuf,
        Self::TesNoIufOrIuv,
        Self::TesNoMatch,
    ];

    /// The contract's code: `RT_IUF_TES`, `DOPPI`, ...
    pub fn code(self) -> &'static str {
        match self {
            Self::Doppi => "DOPPI",
            Self::IuvNoRt => "IUV_NO_RT",
            Self::IufTesDivImp => "IUF_TES_DIV_IMP",
            Self::IufNoTes => "IUF_NO_TES",
            Self::RtIufTes => "RT_IUF_TES",
            Self::RtIuf => "RT_IUF",
            Self::RtTes => "RT_TES",
            Self::RtNoIuf => "RT_NO_IUF",
            Self::TesNoIufOrIuv => "TES_NO_IUF_OR_IUV",
            Self::TesNoMatch => "TES_NO_MATCH",
        }
    }

    /// The label with this code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }
}

/// Where a flow's money stands in the treasury evidence (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FlowTreasuryState {
    /// Its component's credits equal its flows' totals.
    Cashed,
    /// Credits attributed, sums differ.
    DivImp,
    /// Due (regulation date on or before the last covered booking day) and no credit.
    NoTes,
    /// Not due yet.
    Pending,
}

impl FlowTreasuryState {
    /// `CASHED`, `DIV_IMP`, `NO_TES`, `PENDING`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Cashed => "CASHED",
            Self::DivImp => "DIV_IMP",
            Self::NoTes => "NO_TES",
            Self::Pending => "PENDING",
        }
    }

    /// The state with this code.
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Cashed, Self::DivImp, Self::NoTes, Self::Pending]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// What is labelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Subject {
    /// A transfer key of the creditor.
    Transfer(TransferKey),
    /// A treasury credit.
    Credit(CreditId),
    /// A reporting flow (its latest revision).
    Flow(FlowId),
}

/// Why a flow is suggested for a credit whose IUF is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CandidateReason {
    /// The credit's TRN is the flow's `identificativoUnivocoRegolamento`.
    Trn,
    /// The credit's amount is the flow's total.
    Amount,
    /// The flow's regulation date is within [`CANDIDATE_DAYS`] days of the credit's value date.
    Date,
    /// The unknown identifier is the beginning of the flow's id (a truncated IUF).
    Prefix,
}

/// How far apart a regulation date and a value date may be for [`CandidateReason::Date`].
pub const CANDIDATE_DAYS: i64 = 5;

/// Advice shown next to a label. Never changes the label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Suggestion {
    /// A known flow that an unknown (truncated) IUF of this credit may mean.
    CandidateFlow {
        /// The flow.
        flow_id: FlowId,
        /// Why, at least two reasons or a TRN.
        reasons: Vec<CandidateReason>,
    },
    /// The component of this subject is divergent by this much.
    ComponentDifference {
        /// Sum of the component's credits.
        credits_cents: i64,
        /// Sum of the component's flows' totals.
        flows_cents: i64,
        /// `credits_cents - flows_cents`.
        difference_cents: i64,
    },
    /// The receipt transfer and the FdR line of this key differ by this much.
    LineDifference {
        /// The flow reporting the line.
        flow_id: FlowId,
        /// `transferAmount`.
        receipt_cents: i64,
        /// `singoloImportoPagato`.
        line_cents: i64,
        /// `line_cents - receipt_cents`.
        difference_cents: i64,
    },
    /// A credit of this key's IUV whose amount is not the transfer's.
    IuvCreditDifference {
        /// The credit.
        credit_id: CreditId,
        /// `credit - transfer`.
        difference_cents: i64,
    },
}

/// One subject's label, the full set of labels whose conditions hold, the evidence behind it
/// and the suggestions.
///
/// Stored as JSON (a million rows a day). Every field may be missing when read, as empty, and
/// empty fields are left out of what is written: a narrower row for each label write (a
/// transfer key's assessment is mostly its label, conditions and flow). The release before
/// this one already read missing fields as empty, so it reads these rows while it still
/// serves during a rolling upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The primary label; `None` for a flow (flows carry a treasury state instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Every label whose condition holds.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub labels: BTreeSet<Label>,
    /// A flow's treasury state; for a transfer key, its flow's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treasury_state: Option<FlowTreasuryState>,
    /// The flows involved: a key's reporting flow, a credit's attributed flows.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub flow_ids: BTreeSet<FlowId>,
    /// The credits involved: the component's for a key or a flow, the `/RFB/` match for a key.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub credit_ids: BTreeSet<CreditId>,
    /// For a credit, the IUVs its causale names.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub iuvs: BTreeSet<Iuv>,
    /// Advice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
}

impl Assessment {
    /// True when `other` differs in label or conditions (suggestions and evidence lists can
    /// move without it being a label change).
    pub fn label_differs(&self, other: &Self) -> bool {
        self.label != other.label
            || self.labels != other.labels
            || self.treasury_state != other.treasury_state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assessment_without_its_empty_fields_reads_as_with_them() {
        let full = Assessment {
            label: Some(Label::RtIuf),
            labels: BTreeSet::from([Label::RtIuf]),
            treasury_state: Some(FlowTreasuryState::Pending),
            flow_ids: BTreeSet::from([FlowId::parse("2026-11-24ABI03069-0001").unwrap()]),
            credit_ids: BTreeSet::new(),
            iuvs: BTreeSet::new(),
            suggestions: Vec::new(),
        };
        let narrow = r#"{"label":"RtIuf","labels":["RtIuf"],"treasury_state":"Pending","flow_ids":["2026-11-24ABI03069-0001"]}"#;
        assert_eq!(serde_json::from_str::<Assessment>(narrow).unwrap(), full);
        let written = serde_json::to_string(&full).unwrap();
        assert_eq!(
            written, narrow,
            "empty fields are left out of what is written"
        );
        assert_eq!(serde_json::from_str::<Assessment>(&written).unwrap(), full);
        let empty = Assessment {
            label: None,
            treasury_state: None,
            flow_ids: BTreeSet::new(),
            ..full
        };
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"labels":["RtIuf"]}"#
        );
        assert_eq!(
            serde_json::from_str::<Assessment>("{}").unwrap().labels,
            BTreeSet::new()
        );
    }

    #[test]
    fn codes_round_trip() {
        for label in Label::ALL {
            assert_eq!(Label::parse(label.code()), Some(label));
        }
        assert_eq!(Label::parse("rt_iuf_tes"), None);
        for code in ["CASHED", "DIV_IMP", "NO_TES", "PENDING"] {
            assert_eq!(FlowTreasuryState::parse(code).unwrap().code(), code);
        }
    }

    #[test]
    fn priority_is_the_contracts() {
        let order: Vec<&str> = Label::ALL[..8].iter().map(|l| l.code()).collect();
        assert_eq!(
            order,
            [
                "DOPPI",
                "IUV_NO_RT",
                "IUF_TES_DIV_IMP",
                "IUF_NO_TES",
                "RT_IUF_TES",
                "RT_IUF",
                "RT_TES",
                "RT_NO_IUF"
            ]
        );
    }
}
