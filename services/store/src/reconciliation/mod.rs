//! Reconciliation's storage: importing evidence documents (reporting flows, from files or
//! fetched from the FdR REST API, treasury statements and giornali di cassa) one transaction
//! per document, the FdR poller's lease and watermark (`fdr_poll`), the receipts recovered
//! from biz-events for `IUV_NO_RT` keys (`recovery`), and keeping every subject's
//! label and the history of its changes.
//!
//! An import reads the document first, outside the transaction (a refused document stores
//! nothing), then under the creditor's lock loads the creditor's evidence into the domain's
//! [`Reconciler`], applies the document's records, and writes the new evidence, the labels
//! that changed and one history row per label change with the evidence that caused it. Labels
//! of transfer keys that moved because receipts arrived since the last import are caught up
//! in the same transaction, their history naming those receipts, and so are the ledger's
//! `reported` and `cashed` postings the evidence now asks for (`books`). The engine holds the
//! creditor's evidence in memory while it works: fine for a day's evidence of a Comune,
//! and the boundary to move (to neighbourhood loading) when the benchmark asks for it.

mod accounts;
mod books;
mod evidence;
mod fdr_poll;
mod import;
mod labels;
mod lease;
mod queries;
mod recovery;

pub use accounts::TreasuryAccounts;
pub use import::{FdrRevision, ImportOutcome};
pub use labels::{Causes, LabelChangeRecord};
pub use queries::{
    CreditFilterInput, CreditItem, CreditPage, FlowFilterInput, FlowItem, FlowPage, LabelTotal,
    ReconciliationSummary, TransferFilterInput, TransferItem, TransferKeyInput, TransferPage,
    TransferScope,
};
pub use recovery::{MissingReceipt, ReceiptRecovery, RecoveryState};
