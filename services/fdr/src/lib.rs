//! Reporting flows over REST: each creditor's published flows (FdR) read from PagoPA's FdR
//! organization API, the primary path since the SOAP retrieval was retired on 30 June 2026.
//! [`client`] speaks the API (`pagopa-fdr.org.openapi.json`: the list of published flows, a
//! revision's header and its payment pages, with the subscription key, retries and
//! backoff); [`poller`] runs one poll per creditor under the store's lease, imports every
//! revision not yet held through the same import as a FlussoRiversamento file (one document
//! per revision, one transaction each), moves the watermark and warns about flows about to
//! leave the API's 30-day window. `incasso serve` runs the poller when `INCASSO_FDR_URL` is
//! set; `incasso recon fdr-sync` runs one poll.

pub mod client;
pub mod poller;

pub use client::{ClientConfig, FdrClient, FdrError, PublishedFlow};
pub use poller::{CreditorPoll, FdrConfig, FdrPoller, PollReport, PollSummary, StaleFlow};
