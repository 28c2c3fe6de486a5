//! The poller: for each creditor, under the store's lease so one replica polls a creditor
//! at a time, list the flows published since the watermark, fetch every revision not yet
//! held (header, then the payment pages) and import each as one document, then move the
//! watermark over what is now held.
//!
//! The list is asked with both bounds explicit: `publishedGt` is the watermark less an
//! overlap (flows published at nearly the same instant may become visible out of order;
//! revisions already held are skipped, so the overlap costs one list), and `flowDate` is as
//! old as the API's 30-day window, because the API filters on both and a new revision of an
//! older flow would otherwise be missed. Neither bound is older than the window, which the
//! API refuses. The list gives only each flow's latest revision; earlier revisions never
//! fetched are read by number, so every revision is kept.
//!
//! The watermark only passes flows that are held: a flow that failed (the API down, a flow
//! refused) holds it, so the next poll lists it again, while the flows after it, already
//! held, are skipped. A flow that stays unread grows old: past `stale_after` (25 days by
//! default) every poll logs a warning with its age, and `incasso recon fdr-sync` prints it,
//! days before it leaves the API's window.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use incasso_store::Store;
use incasso_store::reconciliation::{FdrRevision, ImportOutcome};

use crate::client::{ClientConfig, FdrClient, FdrError, ListQuery, PublishedFlow};

/// How long the API keeps a published flow listable.
pub const PLATFORM_WINDOW: time::Duration = time::Duration::days(30);
/// How far the bounds stay inside the window, for clocks that disagree.
pub const WINDOW_MARGIN: time::Duration = time::Duration::minutes(10);
/// How far before the watermark the list starts again.
pub const OVERLAP: time::Duration = time::Duration::hours(1);

/// The poller's settings.
#[derive(Debug, Clone)]
pub struct FdrConfig {
    /// How the API is reached.
    pub client: ClientConfig,
    /// Pause between polls of `incasso serve`.
    pub poll_interval: Duration,
    /// Items asked per page, 1..=1000 (the API's maximum and default is 1000).
    pub page_size: u32,
    /// A listed flow still unread this long after its publication is warned about.
    pub stale_after: Duration,
    /// How long the lease on a creditor holds; renewed before each flow.
    pub lease: Duration,
}

impl FdrConfig {
    /// Production defaults for `base_url`.
    pub fn new(base_url: &str, subscription_key: Option<String>) -> Self {
        Self {
            client: ClientConfig {
                base_url: base_url.trim().trim_end_matches('/').to_owned(),
                subscription_key,
                request_timeout: Duration::from_secs(30),
                attempts: 4,
                retry_base: Duration::from_secs(2),
                retry_max: Duration::from_secs(60),
                tls: incasso_relay::outbound_tls::OutboundTls::default(),
            },
            poll_interval: Duration::from_secs(600),
            page_size: 1000,
            stale_after: Duration::from_secs(25 * 86_400),
            lease: Duration::from_secs(300),
        }
    }
}

/// The list's bounds at `now` for a creditor whose watermark is `watermark`:
/// (`publishedGt`, `flowDate`).
pub fn list_bounds(
    now: OffsetDateTime,
    watermark: Option<OffsetDateTime>,
) -> (OffsetDateTime, OffsetDateTime) {
    let earliest = now - PLATFORM_WINDOW + WINDOW_MARGIN;
    let published_gt = watermark
        .map(|w| (w - OVERLAP).max(earliest))
        .unwrap_or(earliest);
    (published_gt, earliest)
}

/// The watermark after a poll: the latest publication instant below which every listed
/// flow is held (`results`: each listed flow's publication and whether it is held now).
/// It never goes back.
pub fn next_watermark(
    previous: Option<OffsetDateTime>,
    results: &[(OffsetDateTime, bool)],
) -> Option<OffsetDateTime> {
    let first_unread = results
        .iter()
        .filter(|(_, held)| !held)
        .map(|(published, _)| *published)
        .min();
    let passed = results
        .iter()
        .filter(|(published, held)| *held && first_unread.is_none_or(|u| *published < u))
        .map(|(published, _)| *published)
        .max();
    match (previous, passed) {
        (Some(p), Some(n)) => Some(p.max(n)),
        (p, n) => p.or(n),
    }
}

/// Whole days since `published` when that is at least `stale_after`.
pub fn stale_age_days(
    published: OffsetDateTime,
    now: OffsetDateTime,
    stale_after: Duration,
) -> Option<i64> {
    let age = now - published;
    (age >= stale_after).then(|| age.whole_days())
}

/// A listed flow not imported and close to leaving the API's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleFlow {
    /// The flow as listed.
    pub flow: PublishedFlow,
    /// Days since its publication.
    pub age_days: i64,
}

/// A revision that could not be fetched or imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRevision {
    /// The revision.
    pub revision: FdrRevision,
    /// Why.
    pub reason: String,
}

/// What one poll of one creditor did.
#[derive(Debug, Clone, Default)]
pub struct PollSummary {
    /// Flows listed (each at its latest revision).
    pub listed: usize,
    /// Listed flows whose every revision was held already.
    pub already_held: usize,
    /// Revisions imported, one document each.
    pub imported: Vec<ImportOutcome>,
    /// Earlier revisions the API no longer has (404), skipped.
    pub unavailable_revisions: Vec<FdrRevision>,
    /// Revisions that failed; the watermark stays before them.
    pub failed: Vec<FailedRevision>,
    /// Flows not imported whose publication is older than `stale_after`.
    pub stale: Vec<StaleFlow>,
    /// The watermark after the poll.
    pub watermark: Option<OffsetDateTime>,
    /// The lease ran out during the poll (another replica took over): it stopped there.
    pub lease_lost: bool,
}

/// What became of one creditor in a poll.
#[derive(Debug, Clone)]
pub enum CreditorPoll {
    /// Another replica holds the creditor's lease: not polled.
    LeaseHeld,
    /// Polled (some revisions may have failed: see the summary).
    Polled(PollSummary),
    /// The poll could not start or was cut short (the API refused the key, was down when
    /// listing, or the database failed).
    Failed {
        /// Why.
        reason: String,
        /// What was done before, if anything.
        summary: PollSummary,
    },
}

/// One poll of every creditor.
#[derive(Debug, Clone, Default)]
pub struct PollReport {
    /// Each creditor polled, in the registry's order.
    pub creditors: Vec<(String, CreditorPoll)>,
}

impl PollReport {
    /// True when something failed (a creditor, or a revision).
    pub fn has_failures(&self) -> bool {
        self.creditors.iter().any(|(_, poll)| match poll {
            CreditorPoll::LeaseHeld => false,
            CreditorPoll::Polled(summary) => !summary.failed.is_empty(),
            CreditorPoll::Failed { .. } => true,
        })
    }
}

/// The poller of one replica.
#[derive(Debug, Clone)]
pub struct FdrPoller {
    store: Store,
    client: FdrClient,
    config: FdrConfig,
    holder: Uuid,
}

/// Why one revision was not imported.
enum Failure {
    /// The API did not give it.
    Api(FdrError),
    /// The import refused what the API gave (a wrong total, another creditor's flow) or the
    /// database failed.
    Import(String),
}

enum Stop {
    /// The whole creditor's poll stops here.
    Creditor(String),
    /// This revision failed (recorded in the summary); the next flows may still be read.
    Revision,
}

impl FdrPoller {
    /// A poller with its own lease identity.
    pub fn new(store: Store, config: FdrConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: FdrClient::new(config.client.clone())?,
            store,
            config,
            holder: Uuid::new_v4(),
        })
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Polls every creditor once, now.
    pub async fn poll_once(&self) -> PollReport {
        let creditors: Vec<String> = self
            .store
            .registry()
            .iter()
            .map(|c| c.fiscal_code().as_str().to_owned())
            .collect();
        let mut report = PollReport::default();
        for creditor in creditors {
            let poll = self.poll_creditor(&creditor).await;
            log(&creditor, &poll);
            report.creditors.push((creditor, poll));
        }
        report
    }

    /// Polls one creditor under its lease.
    pub async fn poll_creditor(&self, creditor: &str) -> CreditorPoll {
        match self
            .store
            .take_fdr_lease(creditor, self.holder, self.lease_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => return CreditorPoll::LeaseHeld,
            Err(error) => {
                return CreditorPoll::Failed {
                    reason: format!("taking the lease: {error}"),
                    summary: PollSummary::default(),
                };
            }
        }
        let poll = self.poll_leased(creditor).await;
        if let Err(error) = self.store.release_fdr_lease(creditor, self.holder).await {
            tracing::warn!(creditor, %error, "the FdR lease could not be released; it expires");
        }
        poll
    }

    async fn poll_leased(&self, creditor: &str) -> CreditorPoll {
        let mut summary = PollSummary::default();
        let failed =
            |reason: String, summary: PollSummary| CreditorPoll::Failed { reason, summary };
        let now = self.store.now();
        let watermark = match self.store.fdr_watermark(creditor).await {
            Ok(w) => w,
            Err(e) => return failed(format!("reading the watermark: {e}"), summary),
        };
        summary.watermark = watermark;
        let (published_gt, flow_date) = list_bounds(now, watermark);
        let query = ListQuery {
            published_gt,
            flow_date,
            size: self.config.page_size.clamp(1, 1000),
        };
        let mut listed = Vec::new();
        let mut page = 1u32;
        loop {
            match self.client.published_flows(creditor, query, page).await {
                Ok((flows, pages)) => {
                    listed.extend(flows);
                    if page >= pages {
                        break;
                    }
                    page += 1;
                }
                Err(e) => return failed(e.to_string(), summary),
            }
        }
        listed.sort_by(|a, b| {
            (a.published, &a.fdr, &a.psp_id).cmp(&(b.published, &b.fdr, &b.psp_id))
        });
        summary.listed = listed.len();

        let mut results: Vec<(OffsetDateTime, bool)> = Vec::new();
        let mut stopped: Option<String> = None;
        for flow in &listed {
            match self.read_flow(creditor, flow, &mut summary).await {
                Ok(held) => results.push((flow.published, held)),
                Err(Stop::Revision) => results.push((flow.published, false)),
                Err(Stop::Creditor(reason)) => {
                    results.push((flow.published, false));
                    stopped = Some(reason);
                    break;
                }
            }
        }
        let held: Vec<bool> = listed
            .iter()
            .enumerate()
            .map(|(i, _)| results.get(i).is_some_and(|(_, held)| *held))
            .collect();
        for (flow, held) in listed.iter().zip(held) {
            if held {
                continue;
            }
            if let Some(age_days) = stale_age_days(flow.published, now, self.config.stale_after) {
                summary.stale.push(StaleFlow {
                    flow: flow.clone(),
                    age_days,
                });
            }
        }
        let next = next_watermark(watermark, &results);
        match self
            .store
            .record_fdr_poll(creditor, self.holder, next)
            .await
        {
            Ok(true) => summary.watermark = next,
            Ok(false) => summary.lease_lost = true,
            Err(e) => return failed(format!("recording the poll: {e}"), summary),
        }
        match stopped {
            Some(reason) => failed(reason, summary),
            None => CreditorPoll::Polled(summary),
        }
    }

    /// Fetches and imports every revision of `flow` not held yet; true when all are held
    /// after.
    async fn read_flow(
        &self,
        creditor: &str,
        flow: &PublishedFlow,
        summary: &mut PollSummary,
    ) -> Result<bool, Stop> {
        let held = self
            .store
            .fdr_revisions_held(creditor, &flow.fdr, &flow.psp_id)
            .await
            .map_err(|e| Stop::Creditor(format!("reading the revisions held: {e}")))?;
        let missing: Vec<u32> = (1..=flow.revision).filter(|r| !held.contains(r)).collect();
        if missing.is_empty() {
            summary.already_held += 1;
            return Ok(true);
        }
        // Renewed before each flow, so a long poll keeps it and a stalled one loses it.
        match self
            .store
            .take_fdr_lease(creditor, self.holder, self.lease_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                summary.lease_lost = true;
                return Err(Stop::Creditor(
                    "the lease passed to another replica during the poll".into(),
                ));
            }
            Err(e) => return Err(Stop::Creditor(format!("renewing the lease: {e}"))),
        }
        for revision in missing {
            let wanted = FdrRevision {
                fdr: flow.fdr.clone(),
                psp_id: flow.psp_id.clone(),
                revision,
            };
            match self.import_revision(creditor, &wanted).await {
                Ok(outcome) => summary.imported.push(outcome),
                // An earlier revision the API no longer serves cannot be kept; the latest
                // one must be.
                Err(Failure::Api(FdrError::NotFound { .. })) if revision < flow.revision => {
                    summary.unavailable_revisions.push(wanted);
                }
                Err(Failure::Api(
                    error @ (FdrError::Unauthorized { .. } | FdrError::Unavailable { .. }),
                )) => {
                    let reason = error.to_string();
                    summary.failed.push(FailedRevision {
                        revision: wanted,
                        reason: reason.clone(),
                    });
                    return Err(Stop::Creditor(reason));
                }
                Err(Failure::Api(error)) => {
                    summary.failed.push(FailedRevision {
                        revision: wanted,
                        reason: error.to_string(),
                    });
                    return Err(Stop::Revision);
                }
                Err(Failure::Import(reason)) => {
                    summary.failed.push(FailedRevision {
                        revision: wanted,
                        reason,
                    });
                    return Err(Stop::Revision);
                }
            }
        }
        Ok(true)
    }

    /// Fetches one revision whole, then imports it in one transaction: a failure while
    /// fetching stores nothing.
    async fn import_revision(
        &self,
        creditor: &str,
        wanted: &FdrRevision,
    ) -> Result<ImportOutcome, Failure> {
        let header = self
            .client
            .flow_header(creditor, &wanted.fdr, wanted.revision, &wanted.psp_id)
            .await
            .map_err(Failure::Api)?;
        let pages = self
            .client
            .flow_payments(
                creditor,
                &wanted.fdr,
                wanted.revision,
                &wanted.psp_id,
                self.config.page_size.clamp(1, 1000),
            )
            .await
            .map_err(Failure::Api)?;
        self.store
            .import_fdr_rest_flow(creditor, wanted, &header, &pages)
            .await
            .map_err(|e| Failure::Import(format!("refused by the import: {e}")))
    }

    /// Polls every `poll_interval` until `shutdown` resolves; a poll in flight finishes
    /// first (each revision is its own transaction, so stopping between them is safe too).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        tracing::info!(
            url = %self.config.client.base_url,
            interval_seconds = self.config.poll_interval.as_secs(),
            "FdR poller started"
        );
        loop {
            let _ = self.poll_once().await;
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!("FdR poller stopped");
    }
}

/// The log lines of one creditor's poll; a flow near the end of the window is a WARN.
fn log(creditor: &str, poll: &CreditorPoll) {
    let summary = match poll {
        CreditorPoll::LeaseHeld => {
            tracing::debug!(
                creditor,
                "FdR poll skipped: another replica holds the lease"
            );
            return;
        }
        CreditorPoll::Polled(summary) => summary,
        CreditorPoll::Failed { reason, summary } => {
            tracing::warn!(creditor, %reason, "FdR poll failed");
            summary
        }
    };
    for outcome in &summary.imported {
        tracing::info!(
            creditor,
            document = %outcome.file,
            flows_added = outcome.flows_added,
            lines_added = outcome.lines_added,
            label_changes = outcome.label_changes,
            "FdR flow revision imported"
        );
    }
    for failed in &summary.failed {
        tracing::warn!(
            creditor,
            flow = %failed.revision.fdr,
            revision = failed.revision.revision,
            psp = %failed.revision.psp_id,
            reason = %failed.reason,
            "FdR flow revision not imported"
        );
    }
    for stale in &summary.stale {
        tracing::warn!(
            creditor,
            flow = %stale.flow.fdr,
            revision = stale.flow.revision,
            psp = %stale.flow.psp_id,
            age_days = stale.age_days,
            "FdR flow not imported yet and near the end of the API's 30-day window"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-03 18:00 UTC);

    #[test]
    fn the_bounds_stay_inside_the_window() {
        let earliest = datetime!(2026-11-03 18:10 UTC);
        assert_eq!(list_bounds(NOW, None), (earliest, earliest));
        assert_eq!(
            list_bounds(NOW, Some(datetime!(2026-12-02 09:00 UTC))),
            (datetime!(2026-12-02 08:00 UTC), earliest)
        );
        // A watermark older than the window (the service was down a month) starts at its edge.
        assert_eq!(
            list_bounds(NOW, Some(datetime!(2026-10-01 00:00 UTC))),
            (earliest, earliest)
        );
    }

    #[test]
    fn the_watermark_stops_before_the_first_unread_flow() {
        let t = |h: u8| datetime!(2026-12-01 00:00 UTC) + time::Duration::hours(i64::from(h));
        assert_eq!(
            next_watermark(None, &[(t(1), true), (t(2), true)]),
            Some(t(2))
        );
        assert_eq!(
            next_watermark(None, &[(t(1), true), (t(2), false), (t(3), true)]),
            Some(t(1))
        );
        // A held flow published at the same instant as an unread one does not pass it.
        assert_eq!(
            next_watermark(Some(t(0)), &[(t(2), true), (t(2), false)]),
            Some(t(0))
        );
        assert_eq!(next_watermark(Some(t(5)), &[(t(1), true)]), Some(t(5)));
        assert_eq!(next_watermark(None, &[]), None);
    }

    #[test]
    fn a_flow_is_stale_from_the_threshold_on() {
        let threshold = Duration::from_secs(25 * 86_400);
        assert_eq!(
            stale_age_days(NOW - time::Duration::days(26), NOW, threshold),
            Some(26)
        );
        assert_eq!(
            stale_age_days(NOW - time::Duration::days(24), NOW, threshold),
            None
        );
    }

    proptest! {
        /// Whatever failed, the watermark never passes an unread flow and never goes back;
        /// with nothing unread it reaches the last flow.
        #[test]
        fn the_watermark_never_passes_an_unread_flow(
            flows in proptest::collection::vec((0i64..1000, any::<bool>()), 0..30),
            previous in proptest::option::of(0i64..1000),
        ) {
            let at = |m: i64| NOW + time::Duration::minutes(m);
            let results: Vec<_> = flows.iter().map(|(m, held)| (at(*m), *held)).collect();
            let next = next_watermark(previous.map(at), &results);
            if let Some(p) = previous {
                prop_assert!(next >= Some(at(p)));
            }
            for (published, held) in &results {
                if !held && previous.is_none_or(|p| at(p) < *published) {
                    prop_assert!(next < Some(*published));
                }
            }
            if results.iter().all(|(_, held)| *held) {
                let last = results.iter().map(|(p, _)| *p).max();
                prop_assert_eq!(next, previous.map(at).max(last));
            }
        }
    }
}
