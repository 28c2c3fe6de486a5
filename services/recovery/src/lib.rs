//! Missing receipts recovered from PagoPA's biz-events API (issue 12 §3). When a reporting
//! flow (FdR) reports a payment whose receipt never reached incasso, its transfer key is
//! labelled `IUV_NO_RT`; PagoPA keeps its own copy of every receipt, which the creditor may
//! read by IUR and IUV. [`client`] speaks the API (`biz_events.json`, the subscription key,
//! retries and backoff, 429 and 404 told apart); [`receipt`] reads its answer into the same
//! receipt the Node's paSendRT gives the store; [`worker`] runs a pass per creditor under the
//! store's lease, books each receipt found through the receipt path (marked recovered),
//! records every attempt (a receipt PagoPA does not have is asked again only after a growing
//! pause) and relabels the creditor's keys so their history names the recovered receipts.
//! `incasso serve` runs a pass every hour when `INCASSO_BIZ_EVENTS_URL` is set; `incasso
//! recon recover` runs one now.

pub mod client;
pub mod receipt;
pub mod worker;

pub use client::{BizEventsClient, BizEventsError, ClientConfig};
pub use receipt::{ReceiptRequest, read_receipt};
pub use worker::{
    CreditorPass, CreditorSummary, NotAsked, Recoverer, Recovery, RecoveryConfig, RecoveryReport,
};
