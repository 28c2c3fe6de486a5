//! The Stand-In archive relay: delivers the outbox's `aca.position` events to PagoPA's
//! Archivio Centralizzato Avvisi with `paCreatePosition`, one call per installment, built from
//! the position's state at delivery time (amount 0 once it can no longer be paid).
//!
//! Failures that may pass (connection errors, timeouts, 5xx, 408, 429) are retried with
//! exponential backoff and jitter; a refusal that retrying cannot fix (any other 4xx), or too
//! many failures, puts the event in the dead-letter state, where an operator lists and replays
//! it (`incasso outbox dead`, `incasso outbox replay`). A 404 to a close (amount 0) means ACA
//! never had the position (created and cancelled before the relay ran): closing it is done.
//!
//! It is one [`Publisher`] on the generic [`Relay`]: a claim holds an event under a token for
//! three request timeouts, the publisher renews the lease before every call and the relay
//! records the outcome under the same token, so an event is never sent by two relays at once
//! and a relay that lost its lease changes nothing. Only an aggregate's (a position's) first
//! pending event is claimable, so one position is never published by two relays at once nor
//! out of order. The events of a claim (each of another position) are delivered concurrently.
//!
//! A traffic fine's amount depends on the day, while ACA keeps the amount it was last sent:
//! after publishing a payable fine the relay queues its next publication for the first instant
//! (Europe/Rome) of the day its band changes, so a Stand-In payment collects the right amount.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use incasso_domain::debt_position::{DebtPosition, EffectiveInstallmentState, KindDetails};
use incasso_domain::rome_time;
use incasso_domain::traffic_fine::FineBand;
use incasso_domain::validation::format_date;
use incasso_store::outbox::{AMOUNT_BAND, PositionChanged};
use incasso_store::{AppError, Store};

use crate::{Claimed, Lease, Outcome, Policy, Publisher, Relay};

/// How the relay reaches ACA.
#[derive(Debug, Clone)]
pub struct AcaConfig {
    /// Base URL, e.g. `https://api.platform.pagopa.it/aca/v1`.
    pub base_url: String,
    /// The API Management subscription key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: Option<String>,
    /// How often the relay looks for due events.
    pub poll_interval: Duration,
    /// Events claimed per round and delivered concurrently (each of another position).
    pub batch: u64,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts before an event is dead.
    pub max_attempts: i32,
    /// Per-request timeout, connection included; the lease on an event is three of these.
    pub request_timeout: Duration,
    /// The CA and client certificate of the HTTPS calls.
    pub tls: crate::outbound_tls::OutboundTls,
}

impl AcaConfig {
    /// Production defaults for `base_url`.
    pub fn new(base_url: &str, subscription_key: Option<String>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            subscription_key,
            poll_interval: Duration::from_secs(2),
            batch: 10,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            request_timeout: Duration::from_secs(10),
            tls: crate::outbound_tls::OutboundTls::default(),
        }
    }

    /// How long a claim or a renewal holds an event: longer than any one call can take (the
    /// client gives up after `request_timeout`), renewed before each call.
    pub fn lease(&self) -> Duration {
        self.request_timeout.saturating_mul(3)
    }

    /// The relay policy: one worker, `batch` events a round, backoff from `retry_base` to
    /// `retry_max`, dead after `max_attempts`.
    pub fn policy(&self) -> Policy {
        Policy {
            // The Stand-In archive should know a change before a Stand-In payment meets it.
            wake_on_commit: true,
            poll_interval: self.poll_interval,
            batch: self.batch,
            workers: 1,
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            max_attempts: Some(self.max_attempts),
            lease: self.lease(),
        }
    }
}

/// paCreatePosition's request body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NewDebtPositionRequest {
    /// Creditor.
    pub pa_fiscal_code: String,
    /// F or G.
    pub entity_type: String,
    /// Debtor's fiscal code.
    pub entity_fiscal_code: String,
    /// Debtor's name.
    pub entity_full_name: String,
    /// IUV.
    pub iuv: String,
    /// NAV.
    pub nav: String,
    /// Euro cents; 0 closes the position in ACA.
    pub amount: i64,
    /// Subject.
    pub description: String,
    /// Date-time (RFC 3339, with the Rome offset) after which the notice is overdue.
    pub expiration_date: String,
    /// The creditor's bank IBAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// The creditor's postal IBAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_iban: Option<String>,
    /// True when the notice cannot be paid after its expiry date.
    pub switch_to_expired: bool,
    /// False for what Stand-In must not collect (multi-beneficiary notices).
    pub pay_stand_in: bool,
}

/// The ACA requests that publish `position` as of `now`.
pub fn requests_for(
    position: &DebtPosition,
    now: time::OffsetDateTime,
) -> Vec<NewDebtPositionRequest> {
    let today = rome_time::rome_date(now);
    let (entity_type, code, name) = match &position.debtor {
        Some(d) => (
            d.entity_type.as_str(),
            d.fiscal_code.as_str().to_owned(),
            d.full_name.clone(),
        ),
        None => ("F", "ANONIMO".to_owned(), "ANONIMO".to_owned()),
    };
    position
        .installments()
        .map(|installment| {
            let payable = installment.effective_state(today) == EffectiveInstallmentState::Unpaid;
            let amount = if payable {
                position.amount_payable_on(installment, today).get()
            } else {
                0
            };
            let first = installment.transfers.first();
            let single_beneficiary = installment.transfers.len() == 1;
            NewDebtPositionRequest {
                pa_fiscal_code: position.creditor.as_str().to_owned(),
                entity_type: entity_type.to_owned(),
                entity_fiscal_code: code.clone(),
                entity_full_name: name.chars().take(255).collect(),
                iuv: installment.iuv.as_str().to_owned(),
                nav: installment.notice_number.as_str().to_owned(),
                amount,
                description: position.description.chars().take(255).collect(),
                expiration_date: end_of_rome_day(
                    installment.expiry_date.unwrap_or(installment.due_date),
                ),
                iban: first.map(|t| t.iban.as_str().to_owned()),
                postal_iban: first
                    .and_then(|t| t.postal_iban.as_ref())
                    .map(|i| i.as_str().to_owned()),
                switch_to_expired: installment.expiry_date.is_some(),
                pay_stand_in: single_beneficiary,
            }
        })
        .collect()
}

/// The last second of `day` in Europe/Rome as an RFC 3339 date-time: ACA reads an
/// `OffsetDateTime`, so a date-time without an offset is refused.
fn end_of_rome_day(day: time::Date) -> String {
    let end = day
        .next_day()
        .map(rome_time::start_of_rome_day)
        .map(|start| rome_time::to_rome(start - time::Duration::seconds(1)));
    end.and_then(|end| end.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{}T23:59:59+01:00", format_date(day)))
}

/// True when some installment of `position` can be paid on `now`'s day (Europe/Rome).
fn payable(position: &DebtPosition, now: OffsetDateTime) -> bool {
    let today = rome_time::rome_date(now);
    position
        .installments()
        .any(|i| i.effective_state(today) == EffectiveInstallmentState::Unpaid)
}

/// When a published position must be published again although nothing about it changes: for
/// a traffic fine still payable on `now`'s day, the first instant (Europe/Rome) of the day
/// its band changes (reduced to full, full to increased); `None` for anything else.
pub fn republish_at(position: &DebtPosition, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let KindDetails::TrafficFine(fine) = &position.details else {
        return None;
    };
    if !payable(position, now) {
        return None;
    }
    let today = rome_time::rome_date(now);
    let schedule = &fine.schedule;
    let last_day = match schedule.band_on(today) {
        FineBand::Reduced => schedule.reduced_deadline(),
        FineBand::Full => schedule.full_deadline(),
        FineBand::Increased => return None,
    };
    last_day.next_day().map(rome_time::start_of_rome_day)
}

/// What one answer from ACA means for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Published (or, for a close, nothing left to close).
    Done,
    /// Retrying may help.
    Transient,
    /// Retrying will not help: dead letter.
    Permanent,
}

/// The verdict on HTTP `status` for a call publishing `amount` cents. The OpenAPI answers 404
/// "Debit position not found" to a position ACA does not have: for a close that is the state
/// wanted. 408 and 429 ask to come back later; every other 4xx names a fault in the request
/// or in incasso's set-up that the same request will meet again.
pub fn verdict(status: u16, amount: i64) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        404 if amount == 0 => Verdict::Done,
        408 | 429 => Verdict::Transient,
        400..=499 => Verdict::Permanent,
        _ => Verdict::Transient,
    }
}

/// Why a delivery failed.
#[derive(Debug)]
enum Failure {
    /// Retrying may help.
    Transient(String),
    /// Retrying will not help.
    Permanent(String),
    /// Another relay holds the event now: it is no longer this relay's to send or record.
    LeaseLost,
}

/// The Stand-In archive's publisher: `aca.position` events, one position per aggregate.
#[derive(Debug)]
pub struct AcaPublisher {
    store: Store,
    client: reqwest::Client,
    config: AcaConfig,
    policy: Policy,
}

impl AcaPublisher {
    /// A publisher reading positions from `store`.
    pub fn new(store: Store, config: AcaConfig) -> Result<Self, reqwest::Error> {
        let client = config
            .tls
            .reqwest()?
            .timeout(config.request_timeout)
            .build()?;
        let policy = config.policy();
        Ok(Self {
            store,
            client,
            config,
            policy,
        })
    }

    /// Publishes the event's position; on success, what to queue next.
    async fn deliver(
        &self,
        lease: &Lease,
        claimed: &Claimed<PositionChanged>,
    ) -> Result<Option<(OffsetDateTime, PositionChanged)>, Failure> {
        let change = &claimed.payload;
        let position = match self
            .store
            .get_debt_position(&change.debt_position_id.to_string())
            .await
        {
            Ok(position) => position,
            Err(AppError::NotFound { .. }) => {
                return Err(Failure::Permanent("position no longer exists".into()));
            }
            Err(error) => return Err(Failure::Transient(error.to_string())),
        };
        let now = self.store.now();
        if change.change == AMOUNT_BAND && !payable(&position, now) {
            // Paid or cancelled since the republication was queued: the event of that change
            // published the close, and closing twice gains nothing.
            return Ok(None);
        }
        for request in requests_for(&position, now) {
            // The lease must outlast the call: renewed first, it does (the call gives up
            // after one request timeout, the lease lasts three).
            match lease.renew(&claimed.event).await {
                Ok(true) => {}
                Ok(false) => return Err(Failure::LeaseLost),
                Err(error) => return Err(Failure::Transient(error.to_string())),
            }
            self.publish_one(&request).await?;
        }
        Ok(republish_at(&position, now).map(|due| {
            (
                due,
                PositionChanged {
                    debt_position_id: position.id,
                    change: AMOUNT_BAND.to_owned(),
                },
            )
        }))
    }

    /// One paCreatePosition call.
    async fn publish_one(&self, request: &NewDebtPositionRequest) -> Result<(), Failure> {
        let mut call = self
            .client
            .post(format!("{}/paCreatePosition", self.config.base_url))
            .headers(incasso_telemetry::propagation::current_headers())
            .json(request);
        if let Some(key) = &self.config.subscription_key {
            call = call.header("Ocp-Apim-Subscription-Key", key);
        }
        let response = call
            .send()
            .await
            .map_err(|e| Failure::Transient(format!("ACA unreachable: {e}")))?;
        let status = response.status().as_u16();
        let iuv = &request.iuv;
        match verdict(status, request.amount) {
            Verdict::Done => {
                if !response.status().is_success() {
                    tracing::info!(%iuv, status, "ACA does not have the position: nothing to close");
                }
                Ok(())
            }
            Verdict::Transient => Err(Failure::Transient(format!(
                "ACA answered {status} for IUV {iuv}"
            ))),
            Verdict::Permanent => {
                let body: String = response
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(500)
                    .collect();
                Err(Failure::Permanent(format!(
                    "ACA answered {status} for IUV {iuv}: {body}"
                )))
            }
        }
    }
}

impl Publisher for AcaPublisher {
    type Event = PositionChanged;

    fn name(&self) -> &'static str {
        "ACA"
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    async fn publish(
        &self,
        lease: &Lease,
        batch: &[Claimed<PositionChanged>],
    ) -> Vec<Outcome<PositionChanged>> {
        // Each event is another position: delivered concurrently.
        let deliveries = batch.iter().map(|claimed| async move {
            match self.deliver(lease, claimed).await {
                Ok(follow_up) => Outcome::Delivered(follow_up),
                Err(Failure::LeaseLost) => Outcome::LeaseLost,
                Err(Failure::Permanent(error)) => Outcome::Dead(error),
                Err(Failure::Transient(error)) => Outcome::Retry(error),
            }
        });
        futures::future::join_all(deliveries).await
    }
}

/// The Stand-In archive relay: the generic relay with the [`AcaPublisher`].
#[derive(Debug, Clone)]
pub struct AcaRelay {
    relay: Relay<AcaPublisher>,
}

impl AcaRelay {
    /// A relay for `store`'s outbox.
    pub fn new(store: Store, config: AcaConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            relay: Relay::new(store.clone(), AcaPublisher::new(store, config)?),
        })
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tracing::info!(url = %self.relay.publisher().config.base_url, "ACA relay configured");
        self.relay.run(shutdown).await;
    }

    /// Claims one batch of due events and delivers them concurrently (they are of different
    /// positions); returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        self.relay.run_once().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn closing_what_aca_never_had_is_done_and_other_refusals_are_final() {
        assert_eq!(verdict(200, 30000), Verdict::Done);
        assert_eq!(verdict(201, 0), Verdict::Done);
        assert_eq!(verdict(404, 0), Verdict::Done);
        assert_eq!(verdict(404, 30000), Verdict::Permanent);
        for status in [400, 401, 403, 409, 422] {
            assert_eq!(verdict(status, 30000), Verdict::Permanent, "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(verdict(status, 0), Verdict::Transient, "{status}");
        }
    }

    #[test]
    fn expiration_dates_carry_the_rome_offset() {
        assert_eq!(
            end_of_rome_day(date!(2026 - 07 - 31)),
            "2026-07-31T23:59:59+02:00"
        );
        assert_eq!(
            end_of_rome_day(date!(2026 - 12 - 15)),
            "2026-12-15T23:59:59+01:00"
        );
        // The night summer time ends: 23:59:59 is already back on +01:00.
        assert_eq!(
            end_of_rome_day(date!(2026 - 10 - 25)),
            "2026-10-25T23:59:59+01:00"
        );
    }
}
