//! Reconciliation of one creditor's receipts with the PSPs' reporting flows (FdR) and the
//! treasury's credits, as `../shared/research/reconciliation.md` (the contract) defines it:
//! the keys (`key`), reading a causale (`causale`), the evidence and its indexes (`evidence`),
//! attribution, treasury states and labels (`classify`, `label`), the incremental engine that
//! relabels what new evidence touches and says why (`engine`), a key restated from its
//! flow's new treasury standing (`restate`), the keys whose flow alone decides their
//! label (`plain`), and one movement seen through two treasury
//! sources, which is warned of and never labelled (`duplicate`). Exact cents decide every
//! label; tolerances only ever produce suggestions.

pub mod causale;
pub mod classify;
pub mod duplicate;
pub mod engine;
pub mod evidence;
pub mod key;
pub mod label;
pub mod plain;
pub mod restate;

#[cfg(test)]
mod tests;

pub use causale::{CausaleReferences, parse_causale};
pub use classify::{assess, classify_all};
pub use duplicate::{DuplicateReason, MovementFacts, names_a_movement, same_movement};
pub use engine::{Reconciler, Relabel};
pub use evidence::{
    Evidence, EvidenceError, EvidenceItem, EvidenceRef, FlowLine, ReceiptTransfer, ReportingFlow,
    TreasuryCredit,
};
pub use key::{CreditId, FlowId, KeyError, OutcomeCode, TransferIndex, TransferKey};
pub use label::{Assessment, CandidateReason, FlowTreasuryState, Label, Subject, Suggestion};
pub use plain::{PlainKey, compose_plain, plain, receipt_only};
pub use restate::{
    RestatedFlow, compose_labels, compose_with_flow, composed_flow, recompose, records_standing_of,
    restate_transfer, restated_flows,
};
