//! Reconciliation's storage: importing evidence documents (reporting flows, from files or
//! fetched from the FdR REST API, treasury statements and giornali di cassa) one transaction
//! per document, the FdR poller's lease and watermark (`fdr_poll`), the receipts recovered
//! from biz-events for `IUV_NO_RT` keys (`recovery`), and keeping every subject's
//! label and the history of its changes.
//!
//! An import reads the document first, outside the transaction (a refused document stores
//! nothing), then under the creditor's lock writes the new evidence and relabels its
//! neighbourhood (`scope`): the flow headers and credits whole, the receipts and lines of the
//! IUVs the document reaches, slice by slice, each slice through the domain's
//! [`incasso_domain::reconciliation::Reconciler`], the next slices read ahead on other
//! connections while one is written (`read_ahead`; a statement's cashed flows likewise,
//! `cashed_ahead`); a treasury document's keys are restated from their flows' new standing
//! instead (`restated`). It writes the labels that changed and one
//! history row per label change with the evidence that caused it. Labels of the IUVs whose
//! receipts arrived since the last import (queued by the receipt path in
//! `recon_pending_iuv`) are caught up in the same transaction, their history naming those
//! receipts, and so are the ledger's `reported` and `cashed` postings the evidence now asks
//! for (`books`). Between imports the queue is worked off by the server's catch-up task and
//! before every reconciliation read (`catch_up`).

mod accounts;
mod books;
mod cashed_ahead;
mod catch_up;
mod composed;
mod duplicates;
mod evidence;
mod fdr_poll;
mod import;
mod labels;
mod lease;
mod plain;
mod plain_write_back;
mod plans;
mod queries;
mod read_ahead;
mod recovery;
mod restated;
mod reversals;
mod scope;

pub use accounts::TreasuryAccounts;
pub use composed::label_sql as composed_label_sql;
pub use duplicates::PossibleDuplicate;
pub use import::{FdrRevision, ImportOutcome};
pub use labels::{Causes, LabelChangeRecord};
pub use plain_write_back::PlainKeysWrittenBack;
pub use queries::{
    CreditFilterInput, CreditItem, CreditPage, FlowFilterInput, FlowItem, FlowPage, LabelTotal,
    ReconciliationSummary, ReportedPosting, TransferFilterInput, TransferItem, TransferKeyInput,
    TransferPage, TransferScope,
};
pub use recovery::{MissingReceipt, ReceiptRecovery, RecoveryState};
pub use reversals::{ReversalFilterInput, ReversalItem, ReversalPage};
pub(crate) use scope::{DEFAULT_IUVS_PER_SLICE, IUVS_PER_SLICE};
