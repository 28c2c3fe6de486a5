//! The Stand-In archive relay: delivers the outbox's `aca.position` events to PagoPA's
//! Archivio Centralizzato Avvisi with `paCreatePosition`, one call per installment, built from
//! the position's state at delivery time (amount 0 once it can no longer be paid). Failures
//! are retried with exponential backoff and jitter; a refusal that retrying cannot fix (400,
//! 422), or too many failures, puts the event in the dead-letter state, where an operator lists
//! and replays it (`incasso outbox dead`, `incasso outbox replay`). Several replicas share the
//! work through leases on the events, so no event is sent by two relays at once.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use incasso_domain::debt_position::{DebtPosition, EffectiveInstallmentState};
use incasso_domain::rome_time;
use incasso_domain::validation::format_date;
use incasso_store::outbox::{ACA_POSITION, ClaimedEvent, PositionChanged, retry_delay_ms};
use incasso_store::{AppError, Store};

/// How the relay reaches ACA.
#[derive(Debug, Clone)]
pub struct AcaConfig {
    /// Base URL, e.g. `https://api.platform.pagopa.it/aca/v1`.
    pub base_url: String,
    /// The API Management subscription key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: Option<String>,
    /// How often the relay looks for due events.
    pub poll_interval: Duration,
    /// Events claimed per round.
    pub batch: u64,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts before an event is dead.
    pub max_attempts: i32,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl AcaConfig {
    /// Production defaults for `base_url`.
    pub fn new(base_url: &str, subscription_key: Option<String>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            subscription_key,
            poll_interval: Duration::from_secs(2),
            batch: 50,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            request_timeout: Duration::from_secs(10),
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
    /// Date-time after which the notice is overdue.
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
                expiration_date: format!(
                    "{}T23:59:59",
                    format_date(installment.expiry_date.unwrap_or(installment.due_date))
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

/// Why a delivery failed.
#[derive(Debug)]
enum Failure {
    /// Retrying may help (network, 5xx, 429, 409 while ACA catches up).
    Transient(String),
    /// Retrying will not help.
    Permanent(String),
}

/// The relay.
#[derive(Debug, Clone)]
pub struct AcaRelay {
    store: Store,
    client: reqwest::Client,
    config: AcaConfig,
}

impl AcaRelay {
    /// A relay for `store`'s outbox.
    pub fn new(store: Store, config: AcaConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()?;
        Ok(Self {
            store,
            client,
            config,
        })
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!(url = %self.config.base_url, "ACA relay started");
        loop {
            match self.run_once().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(events = n, "ACA events handled"),
                Err(error) => tracing::warn!(%error, "ACA relay round failed"),
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!("ACA relay stopped");
    }

    /// Claims and delivers one batch of due events; returns how many were handled.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        let lease_ms = u64::try_from(self.config.request_timeout.as_millis().saturating_mul(20))
            .unwrap_or(u64::MAX);
        let events = self
            .store
            .claim_outbox(ACA_POSITION, self.config.batch, lease_ms)
            .await?;
        let count = events.len();
        for event in events {
            match self.deliver(&event).await {
                Ok(()) => {
                    self.store.outbox_delivered(&event, None).await?;
                }
                Err(Failure::Permanent(error)) => {
                    tracing::error!(event = %event.id, %error, "ACA refused the position: dead letter");
                    self.store.outbox_failed(&event, &error, None).await?;
                }
                Err(Failure::Transient(error)) if event.attempts >= self.config.max_attempts => {
                    tracing::error!(event = %event.id, attempts = event.attempts, %error, "ACA unreachable too long: dead letter");
                    self.store.outbox_failed(&event, &error, None).await?;
                }
                Err(Failure::Transient(error)) => {
                    let jitter = rand::rng().random_range(500..1500);
                    let base =
                        u64::try_from(self.config.retry_base.as_millis()).unwrap_or(u64::MAX);
                    let max = u64::try_from(self.config.retry_max.as_millis()).unwrap_or(u64::MAX);
                    let delay = retry_delay_ms(event.attempts, base, max, jitter);
                    tracing::warn!(event = %event.id, attempts = event.attempts, delay_ms = delay, %error, "ACA delivery failed: will retry");
                    self.store
                        .outbox_failed(&event, &error, Some(delay))
                        .await?;
                }
            }
        }
        Ok(count)
    }

    async fn deliver(&self, event: &ClaimedEvent) -> Result<(), Failure> {
        let change: PositionChanged = serde_json::from_str(&event.payload)
            .map_err(|e| Failure::Permanent(format!("bad event payload: {e}")))?;
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
        for request in requests_for(&position, self.store.now()) {
            let mut call = self
                .client
                .post(format!("{}/paCreatePosition", self.config.base_url))
                .json(&request);
            if let Some(key) = &self.config.subscription_key {
                call = call.header("Ocp-Apim-Subscription-Key", key);
            }
            let response = call
                .send()
                .await
                .map_err(|e| Failure::Transient(format!("ACA unreachable: {e}")))?;
            let status = response.status().as_u16();
            match status {
                200..=299 => {}
                400 | 422 => {
                    let body: String = response
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(500)
                        .collect();
                    return Err(Failure::Permanent(format!(
                        "ACA answered {status} for IUV {}: {body}",
                        request.iuv
                    )));
                }
                _ => {
                    return Err(Failure::Transient(format!(
                        "ACA answered {status} for IUV {}",
                        request.iuv
                    )));
                }
            }
        }
        Ok(())
    }
}
