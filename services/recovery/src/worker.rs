//! The recovery pass: for each creditor, under the store's recovery lease (one replica at a
//! time), ask biz-events for every missing receipt that is due, book each one found through
//! the receipt path, record every attempt, and relabel the creditor's keys once at the end so
//! the label history names the recovered receipts.
//!
//! PagoPA allows a subscription 10 calls an hour and asks that the API be used after an
//! anomaly, never in a polling loop (`pagopa-spec.md` §6). So a pass makes at most
//! `calls_per_pass` calls (10), `incasso serve` runs one pass per `interval` (an hour), a
//! receipt PagoPA does not have (404) or could not give (a failure) is asked again only after
//! a pause that doubles with each attempt (6 hours, then 12, up to 2 days), and a 429 ends the
//! pass. Code-9 lines (paid without RPT) have no receipt to recover: they are never asked for
//! and stay `IUV_NO_RT`, as the contract says.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use incasso_store::Store;
use incasso_store::outbox::retry_delay_ms;
use incasso_store::receipts::ReceiptOutcome;
use incasso_store::reconciliation::{MissingReceipt, ReceiptRecovery, RecoveryState};

use crate::client::{BizEventsClient, BizEventsError, ClientConfig};
use crate::receipt::{ReceiptRequest, read_receipt};

/// The recovery's settings.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// How the API is reached.
    pub client: ClientConfig,
    /// Pause between passes of `incasso serve`.
    pub interval: Duration,
    /// The most receipts asked for in one pass (the API allows 10 calls an hour).
    pub calls_per_pass: u32,
    /// The pause after a receipt's first unsuccessful attempt; doubled after each one.
    pub retry_after: Duration,
    /// The longest pause between attempts of one receipt.
    pub retry_max: Duration,
    /// How long the lease on a creditor holds; renewed before each call.
    pub lease: Duration,
}

impl RecoveryConfig {
    /// Production defaults for `base_url`.
    pub fn new(base_url: &str, subscription_key: Option<String>) -> Self {
        Self {
            client: ClientConfig {
                base_url: base_url.trim().trim_end_matches('/').to_owned(),
                subscription_key,
                request_timeout: Duration::from_secs(30),
                attempts: 3,
                retry_base: Duration::from_secs(2),
                retry_max: Duration::from_secs(30),
                tls: incasso_relay::outbound_tls::OutboundTls::default(),
            },
            interval: Duration::from_secs(3600),
            calls_per_pass: 10,
            retry_after: Duration::from_secs(6 * 3600),
            retry_max: Duration::from_secs(48 * 3600),
            lease: Duration::from_secs(300),
        }
    }
}

/// Why a missing receipt was not asked for in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAsked {
    /// Its lines say paid without RPT (code 9): PagoPA holds no receipt; it stays `IUV_NO_RT`.
    PaidWithoutRpt,
    /// An earlier attempt found nothing; it is asked again from this instant.
    NotDue(OffsetDateTime),
    /// The pass's calls were spent (or the API rate limited the pass): the next pass asks.
    NoCallsLeft,
}

/// What became of one missing receipt in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Found at PagoPA and booked through the receipt path, as `outcome` says (a redelivery
    /// when it was stored meanwhile).
    Recovered {
        /// The receipt path's outcome.
        outcome: ReceiptOutcome,
        /// The attempt as recorded.
        recovery: ReceiptRecovery,
    },
    /// A receipt of the key is stored already (the Node's, delivered since the last
    /// relabelling): not asked for, the key only relabelled.
    AlreadyHeld,
    /// PagoPA has no such receipt: recorded, asked again after a pause.
    NotFound(ReceiptRecovery),
    /// The attempt failed: recorded, asked again after a pause.
    Failed(ReceiptRecovery),
    /// Not asked for.
    NotAsked(NotAsked),
}

/// What a pass did for one creditor.
#[derive(Debug, Clone, Default)]
pub struct CreditorSummary {
    /// Every missing receipt and what became of it, in (IUV, IUR) order.
    pub receipts: Vec<(MissingReceipt, Recovery)>,
    /// Label changes the relabelling after the recoveries wrote.
    pub label_changes: usize,
}

impl CreditorSummary {
    /// How many receipts were recovered.
    pub fn recovered(&self) -> usize {
        self.receipts
            .iter()
            .filter(|(_, r)| matches!(r, Recovery::Recovered { .. }))
            .count()
    }

    /// Whether receipts are stored whose keys still wait for their labels.
    fn relabel(&self) -> bool {
        self.receipts
            .iter()
            .any(|(_, r)| matches!(r, Recovery::Recovered { .. } | Recovery::AlreadyHeld))
    }
}

/// What became of one creditor in a pass.
#[derive(Debug, Clone)]
pub enum CreditorPass {
    /// Another replica holds the creditor's lease: not recovered now.
    LeaseHeld,
    /// Done (some receipts may not be found: see the summary).
    Done(CreditorSummary),
    /// Cut short: the API refused the key or rate limited the pass, or the database failed.
    Failed {
        /// Why.
        reason: String,
        /// What was done before.
        summary: CreditorSummary,
    },
}

/// One pass over the creditors.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Each creditor, in the registry's order.
    pub creditors: Vec<(String, CreditorPass)>,
}

impl RecoveryReport {
    /// True when a creditor's pass was cut short.
    pub fn has_failures(&self) -> bool {
        self.creditors
            .iter()
            .any(|(_, pass)| matches!(pass, CreditorPass::Failed { .. }))
    }
}

/// The recoverer of one replica.
#[derive(Debug, Clone)]
pub struct Recoverer {
    store: Store,
    client: BizEventsClient,
    config: RecoveryConfig,
    holder: Uuid,
}

/// Why a creditor's pass stopped.
enum Stop {
    /// The pass's calls are spent or the API rate limits: the other creditors wait too.
    NoCalls(String),
    /// This creditor's pass failed.
    Creditor(String),
}

impl Recoverer {
    /// A recoverer with its own lease identity.
    pub fn new(store: Store, config: RecoveryConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: BizEventsClient::new(config.client.clone())?,
            store,
            config,
            holder: Uuid::new_v4(),
        })
    }

    /// The recovery's settings.
    pub fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// When a receipt whose attempt number `attempts` just failed is asked again.
    fn next_attempt(&self, now: OffsetDateTime, attempts: u32) -> OffsetDateTime {
        let base = u64::try_from(self.config.retry_after.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.config.retry_max.as_millis()).unwrap_or(u64::MAX);
        let ms = retry_delay_ms(i32::try_from(attempts).unwrap_or(i32::MAX), base, max, 1000);
        now + Duration::from_millis(ms)
    }

    /// One pass, now, over every creditor of the registry (or only `only`).
    pub async fn recover_once(&self, only: Option<&str>) -> RecoveryReport {
        let creditors: Vec<String> = self
            .store
            .registry()
            .iter()
            .map(|c| c.fiscal_code().as_str().to_owned())
            .filter(|c| only.is_none_or(|o| o == c))
            .collect();
        let mut report = RecoveryReport::default();
        let mut calls_left = self.config.calls_per_pass;
        for creditor in creditors {
            let pass = self.recover_creditor(&creditor, &mut calls_left).await;
            log(&creditor, &pass);
            report.creditors.push((creditor, pass));
        }
        report
    }

    /// Recovers one creditor's missing receipts under its lease, with at most `calls_left`
    /// calls (decremented).
    pub async fn recover_creditor(&self, creditor: &str, calls_left: &mut u32) -> CreditorPass {
        match self
            .store
            .take_recovery_lease(creditor, self.holder, self.lease_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => return CreditorPass::LeaseHeld,
            Err(error) => {
                return CreditorPass::Failed {
                    reason: format!("taking the lease: {error}"),
                    summary: CreditorSummary::default(),
                };
            }
        }
        let mut summary = CreditorSummary::default();
        let stopped = self
            .recover_leased(creditor, calls_left, &mut summary)
            .await;
        // The labels follow whatever was booked, even when the pass stopped early.
        let mut reason = match stopped {
            Ok(()) => None,
            Err(Stop::NoCalls(reason)) => {
                *calls_left = 0;
                Some(reason)
            }
            Err(Stop::Creditor(reason)) => Some(reason),
        };
        if summary.relabel() {
            match self.store.refresh_reconciliation(creditor).await {
                Ok(changes) => summary.label_changes = changes,
                Err(error) => {
                    reason.get_or_insert(format!("relabelling after the recoveries: {error}"));
                }
            }
        }
        if let Err(error) = self
            .store
            .release_recovery_lease(creditor, self.holder)
            .await
        {
            tracing::warn!(creditor, %error, "the recovery lease could not be released; it expires");
        }
        match reason {
            None => CreditorPass::Done(summary),
            Some(reason) => CreditorPass::Failed { reason, summary },
        }
    }

    async fn recover_leased(
        &self,
        creditor: &str,
        calls_left: &mut u32,
        summary: &mut CreditorSummary,
    ) -> Result<(), Stop> {
        let missing = self
            .store
            .missing_receipts(creditor)
            .await
            .map_err(|e| Stop::Creditor(format!("reading the missing receipts: {e}")))?;
        let mut stop = None;
        for receipt in missing {
            let now = self.store.now();
            let recovery = if receipt.held {
                Recovery::AlreadyHeld
            } else if receipt.paid_without_rpt() {
                Recovery::NotAsked(NotAsked::PaidWithoutRpt)
            } else if !receipt.due(now) {
                Recovery::NotAsked(NotAsked::NotDue(
                    receipt
                        .last_attempt
                        .as_ref()
                        .and_then(|a| a.next_attempt_at)
                        .unwrap_or(now),
                ))
            } else if stop.is_some() || *calls_left == 0 {
                Recovery::NotAsked(NotAsked::NoCallsLeft)
            } else {
                match self.recover_one(creditor, &receipt, calls_left).await {
                    Ok(recovery) => recovery,
                    Err(Stop::NoCalls(reason)) => {
                        stop = Some(Stop::NoCalls(reason));
                        Recovery::NotAsked(NotAsked::NoCallsLeft)
                    }
                    // The creditor's pass stops here; this receipt was not recovered and
                    // nothing was recorded against it.
                    Err(other) => return Err(other),
                }
            };
            summary.receipts.push((receipt, recovery));
        }
        stop.map_or(Ok(()), Err)
    }

    async fn recover_one(
        &self,
        creditor: &str,
        receipt: &MissingReceipt,
        calls_left: &mut u32,
    ) -> Result<Recovery, Stop> {
        // Renewed before each call, so a long pass keeps it and a stalled one loses it.
        match self
            .store
            .take_recovery_lease(creditor, self.holder, self.lease_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(Stop::Creditor(
                    "the lease passed to another replica during the pass".into(),
                ));
            }
            Err(e) => return Err(Stop::Creditor(format!("renewing the lease: {e}"))),
        }
        let asked = ReceiptRequest {
            creditor_fiscal_code: creditor.to_owned(),
            receipt_id: receipt.receipt_id.clone(),
            iuv: receipt.iuv.clone(),
        };
        *calls_left = calls_left.saturating_sub(1);
        let attempts = receipt.last_attempt.as_ref().map_or(0, |a| a.attempts) + 1;
        let record = |state: RecoveryState, detail: String| async move {
            let next = self.next_attempt(self.store.now(), attempts);
            self.store
                .record_receipt_recovery(
                    creditor,
                    &receipt.iuv,
                    &receipt.receipt_id,
                    state,
                    Some(detail),
                    Some(next),
                )
                .await
                .map_err(|e| Stop::Creditor(format!("recording the attempt: {e}")))
        };
        let body = match self.client.organization_receipt(&asked).await {
            Ok(body) => body,
            Err(BizEventsError::NotFound { detail }) => {
                let detail = if detail.is_empty() {
                    "not found at PagoPA (404)".to_owned()
                } else {
                    format!("not found at PagoPA (404): {detail}")
                };
                return Ok(Recovery::NotFound(
                    record(RecoveryState::NotFound, detail).await?,
                ));
            }
            Err(error @ BizEventsError::RateLimited { .. }) => {
                return Err(Stop::NoCalls(error.to_string()));
            }
            Err(error @ BizEventsError::Unauthorized { .. }) => {
                return Err(Stop::Creditor(error.to_string()));
            }
            Err(error) => {
                return Ok(Recovery::Failed(
                    record(RecoveryState::Failed, error.to_string()).await?,
                ));
            }
        };
        let input = match read_receipt(&asked, &body) {
            Ok(input) => input,
            Err(reason) => {
                return Ok(Recovery::Failed(
                    record(
                        RecoveryState::Failed,
                        format!("biz-events answered something that is not the receipt: {reason}"),
                    )
                    .await?,
                ));
            }
        };
        if !input.facts.outcome.is_paid() {
            return Ok(Recovery::Failed(
                record(
                    RecoveryState::Failed,
                    "biz-events has the receipt with outcome KO: nothing was paid".into(),
                )
                .await?,
            ));
        }
        let notice_number = input.facts.notice_number.clone();
        match self.store.record_receipt(input).await {
            Ok(ReceiptOutcome::Conflict) => {
                Ok(Recovery::Failed(
                    record(
                        RecoveryState::Failed,
                        "a receipt with this key is stored with other content: recorded as a conflict for an operator".into(),
                    )
                    .await?,
                ))
            }
            Ok(outcome) => {
                let detail = format!(
                    "receipt of notice {notice_number} booked from biz-events ({})",
                    describe_outcome(outcome)
                );
                let recovery = self
                    .store
                    .record_receipt_recovery(
                        creditor,
                        &receipt.iuv,
                        &receipt.receipt_id,
                        RecoveryState::Recovered,
                        Some(detail),
                        None,
                    )
                    .await
                    .map_err(|e| Stop::Creditor(format!("recording the attempt: {e}")))?;
                Ok(Recovery::Recovered { outcome, recovery })
            }
            Err(error) => Ok(Recovery::Failed(
                record(
                    RecoveryState::Failed,
                    format!("the receipt could not be stored: {error}"),
                )
                .await?,
            )),
        }
    }

    /// Runs a pass every `interval` until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        loop {
            let report = self.recover_once(None).await;
            let recovered: usize = report
                .creditors
                .iter()
                .map(|(_, pass)| match pass {
                    CreditorPass::Done(s) | CreditorPass::Failed { summary: s, .. } => {
                        s.recovered()
                    }
                    CreditorPass::LeaseHeld => 0,
                })
                .sum();
            tracing::debug!(recovered, "receipt recovery pass done");
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}

/// The receipt path's outcome, in words.
pub fn describe_outcome(outcome: ReceiptOutcome) -> String {
    match outcome {
        ReceiptOutcome::Recorded(classification) => classification.as_str().to_owned(),
        ReceiptOutcome::Redelivered => "already stored".to_owned(),
        ReceiptOutcome::Conflict => "conflict".to_owned(),
        ReceiptOutcome::Parked => "parked, to be booked".to_owned(),
    }
}

fn log(creditor: &str, pass: &CreditorPass) {
    let summary = match pass {
        CreditorPass::LeaseHeld => {
            tracing::debug!(
                creditor,
                "receipt recovery: another replica holds the lease"
            );
            return;
        }
        CreditorPass::Done(summary) => summary,
        CreditorPass::Failed { reason, summary } => {
            tracing::warn!(creditor, %reason, "receipt recovery cut short");
            summary
        }
    };
    for (receipt, recovery) in &summary.receipts {
        match recovery {
            Recovery::Recovered { outcome, .. } => tracing::info!(
                creditor,
                iuv = %receipt.iuv,
                outcome = %describe_outcome(*outcome),
                "missing receipt recovered from biz-events"
            ),
            Recovery::NotFound(r) | Recovery::Failed(r) => tracing::warn!(
                creditor,
                iuv = %receipt.iuv,
                attempts = r.attempts,
                detail = r.detail.as_deref().unwrap_or_default(),
                "missing receipt not recovered"
            ),
            Recovery::AlreadyHeld | Recovery::NotAsked(_) => {}
        }
    }
}
